//! Entity properties as the Table service types and limits them: Edm types from the JSON
//! wire form and its `@odata.type` annotations, key rules, and the documented size limits.

use std::collections::BTreeMap;

use samza_azure_coordinator::storage::Entity;
use serde_json::{Map, Number, Value};

use super::{refuse, Refusal, Served};

/// Service limits ("Understanding the Table service data model").
const MAX_USER_PROPERTIES: usize = 252;
const MAX_VALUE_BYTES: usize = 64 * 1024;
const MAX_ENTITY_BYTES: usize = 1024 * 1024;
const MAX_KEY_UNITS: usize = 1024;
const MAX_NAME_CHARS: usize = 255;

const ANNOTATION: &str = "@odata.type";

/// A property value with its Edm type.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Prop {
    Str(String),
    Bool(bool),
    Int32(i32),
    Int64(i64),
    Double(f64),
    DateTime(String),
    Guid(String),
    Binary(String),
}

impl Prop {
    /// Bytes the value counts for in the entity size (the documented estimate).
    pub(crate) fn size(&self) -> usize {
        match self {
            Prop::Str(s) => s.encode_utf16().count() * 2 + 4,
            Prop::Bool(_) => 1,
            Prop::Int32(_) => 4,
            Prop::Int64(_) | Prop::Double(_) | Prop::DateTime(_) => 8,
            Prop::Guid(_) => 16,
            Prop::Binary(b) => b.len() * 3 / 4 + 4,
        }
    }

    /// Wire form as the adapter returns it (full metadata): strings, booleans, 32-bit ints
    /// and finite doubles bare, every other type with its annotation.
    pub(crate) fn render(&self, name: &str, out: &mut Map<String, Value>) {
        let (value, edm) = match self {
            Prop::Str(s) => (Value::String(s.clone()), None),
            Prop::Bool(b) => (Value::Bool(*b), None),
            Prop::Int32(n) => (Value::from(*n), None),
            Prop::Int64(n) => (Value::String(n.to_string()), Some("Edm.Int64")),
            // Finite doubles go bare (full metadata does not annotate them); NaN and the
            // infinities are strings, so they need theirs.
            Prop::Double(d) => match Number::from_f64(*d) {
                Some(n) => (Value::Number(n), None),
                None => {
                    let text = if d.is_nan() {
                        "NaN"
                    } else if *d > 0.0 {
                        "Infinity"
                    } else {
                        "-Infinity"
                    };
                    (Value::String(text.into()), Some("Edm.Double"))
                }
            },
            Prop::DateTime(s) => (Value::String(s.clone()), Some("Edm.DateTime")),
            Prop::Guid(s) => (Value::String(s.clone()), Some("Edm.Guid")),
            Prop::Binary(s) => (Value::String(s.clone()), Some("Edm.Binary")),
        };
        if let Some(edm) = edm {
            out.insert(format!("{name}{ANNOTATION}"), Value::String(edm.into()));
        }
        out.insert(name.to_owned(), value);
    }
}

/// The properties the adapter sends for `entity`.
pub(crate) fn wire_json(entity: &Entity) -> Map<String, Value> {
    samza_azure_coordinator::storage::wire_properties(entity)
}

pub(crate) fn invalid(what: String) -> Refusal {
    refuse(400, "InvalidInput", what)
}

pub(crate) fn check_key(name: &str, key: &str) -> Served<()> {
    if key.encode_utf16().count() > MAX_KEY_UNITS {
        return Err(refuse(
            400,
            "KeyValueTooLarge",
            format!("{name} '{key}' is longer than {MAX_KEY_UNITS} characters"),
        ));
    }
    if key.chars().any(|c| {
        matches!(c, '/' | '\\' | '#' | '?')
            || ('\u{0}'..='\u{1f}').contains(&c)
            || ('\u{7f}'..='\u{9f}').contains(&c)
    }) {
        return Err(refuse(
            400,
            "OutOfRangeInput",
            format!("{name} '{key}' contains a character the Table service forbids in keys"),
        ));
    }
    Ok(())
}

/// The typed properties of a write, checked as the service checks them.
pub(crate) fn parse_props(what: &str, entity: &Entity) -> Served<BTreeMap<String, Prop>> {
    let json = wire_json(entity);
    let mut props = BTreeMap::new();
    for (name, value) in &json {
        if name == "PartitionKey" || name == "RowKey" || name.ends_with(ANNOTATION) {
            // An annotation of an absent property (e.g. a read's `Timestamp@odata.type`
            // sent back) is ignored.
            continue;
        }
        if name.is_empty() || name.contains(['@', '.', ' ']) {
            return Err(refuse(
                400,
                "PropertyNameInvalid",
                format!("{what}: property name '{name}' is invalid"),
            ));
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(refuse(
                400,
                "PropertyNameTooLong",
                format!(
                    "{what}: property name '{name}' is longer than {MAX_NAME_CHARS} characters"
                ),
            ));
        }
        let edm = match json.get(&format!("{name}{ANNOTATION}")) {
            None => None,
            Some(Value::String(t)) => Some(t.as_str()),
            Some(other) => {
                return Err(invalid(format!(
                    "{what}: annotation of '{name}' must be a string, found {other}"
                )))
            }
        };
        let bad = || {
            invalid(format!(
                "{what}: value {value} of property '{name}' is not a valid {}",
                edm.unwrap_or("untyped value")
            ))
        };
        let prop = match (edm, value) {
            // A null value writes nothing.
            (_, Value::Null) => continue,
            (None | Some("Edm.String"), Value::String(s)) => Prop::Str(s.clone()),
            (None | Some("Edm.Boolean"), Value::Bool(b)) => Prop::Bool(*b),
            (None | Some("Edm.Int32"), Value::Number(n)) if n.is_i64() || n.is_u64() => {
                // An integer without annotation is Edm.Int32; beyond its range it is
                // refused rather than guessed at (callers must annotate Edm.Int64).
                Prop::Int32(
                    n.as_i64()
                        .and_then(|v| i32::try_from(v).ok())
                        .ok_or_else(bad)?,
                )
            }
            (None | Some("Edm.Double"), Value::Number(n)) => {
                Prop::Double(n.as_f64().ok_or_else(bad)?)
            }
            (Some("Edm.Double"), Value::String(s)) => match s.as_str() {
                "NaN" => Prop::Double(f64::NAN),
                "Infinity" => Prop::Double(f64::INFINITY),
                "-Infinity" => Prop::Double(f64::NEG_INFINITY),
                _ => return Err(bad()),
            },
            (Some("Edm.Int64"), Value::String(s)) => Prop::Int64(s.parse().map_err(|_| bad())?),
            (Some("Edm.DateTime"), Value::String(s)) => {
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| bad())?;
                Prop::DateTime(s.clone())
            }
            (Some("Edm.Guid"), Value::String(s)) => {
                uuid::Uuid::parse_str(s).map_err(|_| bad())?;
                Prop::Guid(s.clone())
            }
            (Some("Edm.Binary"), Value::String(s))
                if s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)) =>
            {
                Prop::Binary(s.clone())
            }
            (Some(t), _) if !t.starts_with("Edm.") => {
                return Err(invalid(format!(
                    "{what}: unknown type '{t}' of property '{name}'"
                )))
            }
            _ => return Err(bad()),
        };
        if let Prop::Str(_) | Prop::Binary(_) = prop {
            if prop.size() - 4 > MAX_VALUE_BYTES {
                return Err(refuse(
                    400,
                    "PropertyValueTooLarge",
                    format!(
                        "{what}: property '{name}' is {} bytes; the limit is {MAX_VALUE_BYTES}",
                        prop.size() - 4
                    ),
                ));
            }
        }
        props.insert(name.clone(), prop);
    }
    Ok(props)
}

/// The whole entity's limits, after a merge too.
pub(crate) fn check_entity_limits(
    what: &str,
    pk: &str,
    rk: &str,
    props: &BTreeMap<String, Prop>,
) -> Served<()> {
    if props.len() > MAX_USER_PROPERTIES {
        return Err(refuse(
            400,
            "TooManyProperties",
            format!(
                "{what} has {} properties; the limit is {MAX_USER_PROPERTIES}",
                props.len()
            ),
        ));
    }
    // 4 bytes + keys as UTF-16 + per property 8 bytes, its name as UTF-16 and its value;
    // Timestamp counts too.
    let keys = (pk.encode_utf16().count() + rk.encode_utf16().count()) * 2;
    let size = 4
        + keys
        + (8 + "Timestamp".len() * 2 + 8)
        + props
            .iter()
            .map(|(n, p)| 8 + n.encode_utf16().count() * 2 + p.size())
            .sum::<usize>();
    if size > MAX_ENTITY_BYTES {
        return Err(refuse(
            400,
            "EntityTooLarge",
            format!("{what} is {size} bytes; the limit is {MAX_ENTITY_BYTES}"),
        ));
    }
    Ok(())
}
