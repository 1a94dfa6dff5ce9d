//! The `$filter` forms the coordinator sends, and no others: comparisons (`eq ne lt le gt
//! ge`) of `PartitionKey`, `RowKey` or a string property with a quoted string literal,
//! joined by `and`/`or`, with parentheses. Anything else is refused by name, so a new filter
//! in the code fails loudly here instead of being evaluated wrongly.

use std::cmp::Ordering;

use samza_azure_coordinator::{Error, Result};

/// A parsed filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    Compare {
        property: String,
        op: &'static str,
        literal: String,
    },
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Ident(String),
    Str(String),
    Open,
    Close,
}

fn tokens(text: &str) -> std::result::Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                out.push(Token::Open);
            }
            ')' => {
                chars.next();
                out.push(Token::Close);
            }
            '\'' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        // A doubled quote is a quote (`storage::quote`).
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            s.push('\'');
                        }
                        Some('\'') => break,
                        Some(c) => s.push(c),
                        None => return Err("unterminated string literal".into()),
                    }
                }
                out.push(Token::Str(s));
            }
            c if c.is_alphanumeric() || c == '_' => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_alphanumeric() || c == '_' {
                        s.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Token::Ident(s));
            }
            other => return Err(format!("unexpected character '{other}'")),
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek_ident(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token::Ident(w)) if w == word)
    }

    fn or(&mut self) -> std::result::Result<Filter, String> {
        self.joined("or", Self::and, Filter::Or)
    }

    fn and(&mut self) -> std::result::Result<Filter, String> {
        self.joined("and", Self::primary, Filter::And)
    }

    /// `operand (word operand)*`, joined from the left.
    fn joined(
        &mut self,
        word: &str,
        operand: fn(&mut Self) -> std::result::Result<Filter, String>,
        join: fn(Box<Filter>, Box<Filter>) -> Filter,
    ) -> std::result::Result<Filter, String> {
        let mut left = operand(self)?;
        while self.peek_ident(word) {
            self.pos += 1;
            left = join(Box::new(left), Box::new(operand(self)?));
        }
        Ok(left)
    }

    fn primary(&mut self) -> std::result::Result<Filter, String> {
        match self.tokens.get(self.pos).cloned() {
            Some(Token::Open) => {
                self.pos += 1;
                let inner = self.or()?;
                if self.tokens.get(self.pos) != Some(&Token::Close) {
                    return Err("missing ')'".into());
                }
                self.pos += 1;
                Ok(inner)
            }
            Some(Token::Ident(property)) if !matches!(property.as_str(), "and" | "or" | "not") => {
                let op = match self.tokens.get(self.pos + 1) {
                    Some(Token::Ident(op)) => match op.as_str() {
                        "eq" => "eq",
                        "ne" => "ne",
                        "lt" => "lt",
                        "le" => "le",
                        "gt" => "gt",
                        "ge" => "ge",
                        other => return Err(format!("unsupported operator '{other}'")),
                    },
                    _ => return Err(format!("expected an operator after '{property}'")),
                };
                let literal = match self.tokens.get(self.pos + 2) {
                    Some(Token::Str(s)) => s.clone(),
                    _ => {
                        return Err(format!(
                            "'{property} {op}' must be followed by a quoted string literal"
                        ))
                    }
                };
                self.pos += 3;
                Ok(Filter::Compare {
                    property,
                    op,
                    literal,
                })
            }
            other => Err(format!("expected a comparison, found {other:?}")),
        }
    }
}

impl Filter {
    /// Parses `text`; an unsupported form is an internal error naming the filter.
    pub fn parse(text: &str) -> Result<Filter> {
        let fail = |why: String| {
            Error::internal(format!(
                "memstore does not support the $filter \"{text}\" ({why}); it evaluates only \
                 comparisons (eq ne lt le gt ge) of PartitionKey, RowKey or string properties \
                 with quoted string literals, joined by and/or"
            ))
        };
        let tokens = tokens(text).map_err(fail)?;
        let mut parser = Parser { tokens, pos: 0 };
        let filter = parser.or().map_err(fail)?;
        if parser.pos != parser.tokens.len() {
            return Err(fail(format!(
                "unexpected {:?} after the expression",
                parser.tokens[parser.pos]
            )));
        }
        Ok(filter)
    }

    /// Evaluates against a row; `value` gives a property's string value (`None` when it is
    /// absent or not a string, and then a comparison is false).
    pub fn matches<'a>(&self, value: &dyn Fn(&str) -> Option<&'a str>) -> bool {
        match self {
            Filter::And(a, b) => a.matches(value) && b.matches(value),
            Filter::Or(a, b) => a.matches(value) || b.matches(value),
            Filter::Compare {
                property,
                op,
                literal,
            } => {
                let Some(v) = value(property) else {
                    return false;
                };
                // Ordinal comparison, as the service orders keys.
                let ord = v.cmp(literal.as_str());
                match *op {
                    "eq" => ord == Ordering::Equal,
                    "ne" => ord != Ordering::Equal,
                    "lt" => ord == Ordering::Less,
                    "le" => ord != Ordering::Greater,
                    "gt" => ord == Ordering::Greater,
                    _ => ord != Ordering::Less,
                }
            }
        }
    }
}
