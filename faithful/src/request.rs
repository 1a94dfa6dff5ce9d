//! What a request addresses: its service, whether it writes, its blob, and for tables its
//! table, partition and row, taken from the URL, the `$filter`, the body or a batch's parts.

use http::{HeaderMap, Method};
use percent_encoding::percent_decode_str;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    Blob,
    Table,
}

/// A request as the proxy holds it: fully buffered (storage requests here are small).
#[derive(Clone, Debug)]
pub struct Buffered {
    pub method: Method,
    /// Path and query exactly as the client sent them (still percent-encoded).
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

impl Buffered {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Reads leave storage unchanged; everything else may have been applied when it fails.
    pub fn is_write(&self) -> bool {
        !matches!(self.method, Method::GET | Method::HEAD | Method::OPTIONS)
    }

    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query.as_deref().and_then(|q| query_param(q, name))
    }

    /// `/account/container/blob…` → (container, blob) for blob requests.
    pub fn blob_address(&self) -> Option<(String, Option<String>)> {
        let mut parts = self.path.trim_start_matches('/').splitn(3, '/');
        let _account = parts.next()?;
        let container = parts.next().filter(|c| !c.is_empty())?.to_owned();
        let blob = parts.next().filter(|b| !b.is_empty()).map(str::to_owned);
        Some((container, blob))
    }

    /// The table, partition and row this table request addresses, as far as it says.
    pub fn table_address(&self) -> TableAddress {
        let rest = self.path.trim_start_matches('/');
        let resource = rest.split_once('/').map(|(_, r)| r).unwrap_or("");
        if resource == "$batch" {
            let parts = batch_parts(&String::from_utf8_lossy(&self.body));
            return parts.into_iter().next().unwrap_or_default();
        }
        let mut addr = parse_resource(&decode(resource));
        if addr.partition.is_none() {
            if let Some(filter) = self.query_param("$filter") {
                addr.partition = literal_after(&filter, "PartitionKey eq '");
            }
        }
        if addr.partition.is_none() && self.method == Method::POST && !self.body.is_empty() {
            let (p, r) = keys_in_json(&self.body);
            addr.partition = p;
            addr.row = addr.row.or(r);
        }
        addr
    }
}

/// Table, PartitionKey and RowKey of a table request or of one part of a batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableAddress {
    pub table: Option<String>,
    pub partition: Option<String>,
    pub row: Option<String>,
}

impl TableAddress {
    /// The entity this addresses, as a string for hashing and lookups.
    pub fn entity_key(&self) -> String {
        format!(
            "{}\u{0}{}\u{0}{}",
            self.table.as_deref().unwrap_or("").to_ascii_lowercase(),
            self.partition.as_deref().unwrap_or(""),
            self.row.as_deref().unwrap_or("")
        )
    }
}

pub fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (decode(k) == name).then(|| decode(&v.replace('+', " ")))
    })
}

/// `name(PartitionKey='a',RowKey='b')`, `name()`, `name` or `Tables('name')` (decoded).
fn parse_resource(resource: &str) -> TableAddress {
    let (name, args) = match resource.split_once('(') {
        Some((n, a)) => (n, Some(a)),
        None => (resource, None),
    };
    if name.eq_ignore_ascii_case("Tables") {
        let table = args.and_then(|a| literal_after(a, "'"));
        return TableAddress {
            table,
            ..TableAddress::default()
        };
    }
    TableAddress {
        table: (!name.is_empty()).then(|| name.to_owned()),
        partition: args.and_then(|a| literal_after(a, "PartitionKey='")),
        row: args.and_then(|a| literal_after(a, "RowKey='")),
    }
}

/// The OData string literal that starts right after `prefix` (`''` is an escaped quote).
pub fn literal_after(s: &str, prefix: &str) -> Option<String> {
    let start = s.find(prefix)? + prefix.len();
    let mut out = String::new();
    let mut chars = s[start..].chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            if chars.peek() == Some(&'\'') {
                chars.next();
                out.push('\'');
            } else {
                return Some(out);
            }
        } else {
            out.push(c);
        }
    }
    None
}

fn keys_in_json(body: &[u8]) -> (Option<String>, Option<String>) {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => (
            v.get("PartitionKey")
                .and_then(|p| p.as_str())
                .map(str::to_owned),
            v.get("RowKey").and_then(|p| p.as_str()).map(str::to_owned),
        ),
        Err(_) => (None, None),
    }
}

/// The address of each operation of an entity-group transaction, in order. Operations are the
/// `application/http` parts: a request line with an absolute URL, headers, and maybe a JSON body.
pub fn batch_parts(body: &str) -> Vec<TableAddress> {
    let mut out = Vec::new();
    let mut lines = body.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(url) = request_line_url(line) else {
            continue;
        };
        let path = url
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('/'))
            .map(|(_, p)| p)
            .unwrap_or(url);
        let (path, _query) = path.split_once('?').unwrap_or((path, ""));
        let resource = path.split_once('/').map(|(_, r)| r).unwrap_or(path);
        let mut addr = parse_resource(&decode(resource));
        // The JSON body (if any) follows the blank line after the part's headers.
        while let Some(l) = lines.peek() {
            if l.is_empty() || request_line_url(l).is_some() || l.starts_with("--") {
                break;
            }
            lines.next();
        }
        if let Some(l) = lines.peek() {
            if l.is_empty() {
                lines.next();
                if let Some(json) = lines.peek().filter(|l| l.starts_with('{')) {
                    let (p, r) = keys_in_json(json.as_bytes());
                    addr.partition = addr.partition.or(p);
                    addr.row = addr.row.or(r);
                }
            }
        }
        out.push(addr);
    }
    out
}

/// `PUT http://host/acct/t(...) HTTP/1.1` → the URL.
pub fn request_line_url(line: &str) -> Option<&str> {
    let (method, rest) = line.split_once(' ')?;
    if !matches!(
        method,
        "GET" | "POST" | "PUT" | "MERGE" | "PATCH" | "DELETE"
    ) {
        return None;
    }
    let url = rest.strip_suffix(" HTTP/1.1")?;
    url.starts_with("http").then_some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, path: &str, query: Option<&str>, body: &str) -> Buffered {
        Buffered {
            method,
            path: path.into(),
            query: query.map(Into::into),
            headers: HeaderMap::new(),
            body: bytes::Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn entity_url_gives_table_partition_and_row() {
        let r = req(
            Method::PUT,
            "/devstoreaccount1/members(PartitionKey='job%201',RowKey='it''s')",
            None,
            "",
        );
        let a = r.table_address();
        assert_eq!(a.table.as_deref(), Some("members"));
        assert_eq!(a.partition.as_deref(), Some("job 1"));
        assert_eq!(a.row.as_deref(), Some("it's"));
    }

    #[test]
    fn query_filter_and_insert_body_give_the_partition() {
        let q = req(
            Method::GET,
            "/devstoreaccount1/members()",
            Some("$filter=PartitionKey%20eq%20'p1'%20and%20RowKey%20gt%20'a'"),
            "",
        );
        assert_eq!(q.table_address().partition.as_deref(), Some("p1"));
        let i = req(
            Method::POST,
            "/devstoreaccount1/members",
            None,
            r#"{"PartitionKey":"p2","RowKey":"r"}"#,
        );
        let a = i.table_address();
        assert_eq!(
            (a.partition.as_deref(), a.row.as_deref()),
            (Some("p2"), Some("r"))
        );
    }

    #[test]
    fn batch_parts_are_read_in_order() {
        let body = "--batch_1\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n--cs\r\n\
            Content-Type: application/http\r\n\r\n\
            POST http://127.0.0.1:1/devstoreaccount1/t HTTP/1.1\r\nAccept: x\r\n\r\n\
            {\"PartitionKey\":\"p\",\"RowKey\":\"a\"}\r\n--cs\r\n\
            Content-Type: application/http\r\n\r\n\
            DELETE http://127.0.0.1:1/devstoreaccount1/t(PartitionKey='p',RowKey='b') HTTP/1.1\r\n\
            If-Match: *\r\n\r\n--cs--\r\n--batch_1--\r\n";
        let parts = batch_parts(body);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].row.as_deref(), Some("a"));
        assert_eq!(parts[1].row.as_deref(), Some("b"));
        assert!(parts.iter().all(|p| p.partition.as_deref() == Some("p")));
        let r = req(Method::POST, "/devstoreaccount1/$batch", None, body);
        assert_eq!(r.table_address().table.as_deref(), Some("t"));
    }
}
