//! Table ETags and Timestamps with Azure's 100-ns precision.
//!
//! Azure's table ETags are `W/"datetime'2026-11-29T22%3A01%3A34.1234567Z'"` and Timestamps carry
//! 7 fractional digits. An emulator that answers with fewer digits (milliseconds) lets code pass
//! that would break on Azure (for example code that parses or truncates them). Any value with
//! fewer than 7 digits is extended on the way out; the added digits come from a hash of the
//! entity and the original value, so they vary and stay stable across reads. Rewritten ETags are
//! remembered and mapped back exactly on the way in (`If-Match`, also inside batches).
//! Values that already have 7 digits pass untouched: Azurite 3.35.0's do (see docs/storage.md).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde_json::Value;

use crate::request::{batch_parts, request_line_url, TableAddress};

/// Bound on remembered rewrites; older ones are forgotten (their If-Match then fails as stale).
const REMEMBERED: usize = 200_000;

/// (entity, rewritten ETag) → Azurite's ETag, and the insertion order for forgetting.
type Remembered = (
    HashMap<(String, String), String>,
    VecDeque<(String, String)>,
);

#[derive(Default)]
pub struct Etags {
    map: Mutex<Remembered>,
}

/// FNV-1a: a stable hash, so the same entity and value always get the same digits.
fn hash(key: &str, value: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes().chain([0u8]).chain(value.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// `…:SS[.f…]Z` with fewer than 7 fractional digits → the same instant to 100 ns. The leading
/// digits are kept, so order across milliseconds is Azurite's; only equal values can reorder.
pub fn extend_datetime(datetime: &str, key: &str) -> Option<String> {
    let body = datetime.strip_suffix('Z')?;
    let (base, fraction) = match body.rsplit_once('.') {
        Some((b, f)) if f.bytes().all(|c| c.is_ascii_digit()) => (b, f),
        Some(_) => return None,
        None => (body, ""),
    };
    if fraction.len() >= 7 || !base.contains('T') {
        return None;
    }
    let missing = 7 - fraction.len() as u32;
    let extra = hash(key, datetime) % 10u64.pow(missing);
    Some(format!(
        "{base}.{fraction}{extra:0width$}Z",
        width = missing as usize
    ))
}

/// The datetime inside `W/"datetime'…'"`, with `%3A` decoded.
fn etag_datetime(etag: &str) -> Option<String> {
    let inner = etag.strip_prefix("W/\"datetime'")?.strip_suffix("'\"")?;
    Some(inner.replace("%3A", ":").replace("%3a", ":"))
}

fn etag_of(datetime: &str) -> String {
    format!("W/\"datetime'{}'\"", datetime.replace(':', "%3A"))
}

impl Etags {
    /// An ETag on its way to a client.
    pub fn outgoing(&self, etag: &str, key: &str) -> Option<String> {
        let dt = etag_datetime(etag)?;
        let new = etag_of(&extend_datetime(&dt, key)?);
        let mut guard = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *guard;
        let k = (key.to_owned(), new.clone());
        if map.insert(k.clone(), etag.to_owned()).is_none() {
            order.push_back(k);
            if order.len() > REMEMBERED {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
        }
        Some(new)
    }

    /// An ETag from a client (`If-Match`): the original if the proxy made this one.
    pub fn incoming(&self, etag: &str, key: &str) -> Option<String> {
        let guard = self.map.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.get(&(key.to_owned(), etag.to_owned())).cloned()
    }

    /// `odata.etag` and `Timestamp` of every entity in a JSON body (one entity or a query page).
    /// `None` when nothing changed, so untouched bodies keep their exact bytes.
    pub fn rewrite_json(&self, body: &[u8], request: &TableAddress) -> Option<Vec<u8>> {
        let mut value: Value = serde_json::from_slice(body).ok()?;
        let changed = match value.get_mut("value").and_then(Value::as_array_mut) {
            Some(page) => page
                .iter_mut()
                .fold(false, |c, e| self.rewrite_entity(e, request) | c),
            None => self.rewrite_entity(&mut value, request),
        };
        changed.then(|| serde_json::to_vec(&value).ok()).flatten()
    }

    fn rewrite_entity(&self, entity: &mut Value, request: &TableAddress) -> bool {
        let Some(obj) = entity.as_object_mut() else {
            return false;
        };
        let field = |obj: &serde_json::Map<String, Value>, name: &str| {
            obj.get(name).and_then(Value::as_str).map(str::to_owned)
        };
        let key = TableAddress {
            table: request.table.clone(),
            partition: field(obj, "PartitionKey").or_else(|| request.partition.clone()),
            row: field(obj, "RowKey").or_else(|| request.row.clone()),
        }
        .entity_key();
        let mut changed = false;
        if let Some(new) = field(obj, "odata.etag").and_then(|e| self.outgoing(&e, &key)) {
            obj.insert("odata.etag".into(), Value::String(new));
            changed = true;
        }
        if let Some(new) = field(obj, "Timestamp").and_then(|t| extend_datetime(&t, &key)) {
            obj.insert("Timestamp".into(), Value::String(new));
            changed = true;
        }
        changed
    }

    /// An entity-group transaction's multipart response: each operation's `ETag` header and
    /// JSON body, matched to the request's operations by position.
    pub fn rewrite_batch_response(&self, body: &str, request_body: &str) -> Option<String> {
        let ops = batch_parts(request_body);
        let mut index: Option<usize> = None;
        let mut changed = false;
        let mut out = String::with_capacity(body.len() + 64);
        for line in body.split_inclusive('\n') {
            let text = line.trim_end_matches(['\r', '\n']);
            let ending = &line[text.len()..];
            if text.starts_with("HTTP/1.1 ") {
                index = Some(index.map_or(0, |i| i + 1));
            }
            let op = index.and_then(|i| ops.get(i)).cloned().unwrap_or_default();
            let new = if let Some(v) = header_value(text, "etag") {
                self.outgoing(v, &op.entity_key())
                    .map(|e| format!("ETag: {e}"))
            } else if text.starts_with('{') {
                self.rewrite_json(text.as_bytes(), &op)
                    .and_then(|b| String::from_utf8(b).ok())
            } else {
                None
            };
            match new {
                Some(n) => {
                    changed = true;
                    out.push_str(&n);
                    out.push_str(ending);
                }
                None => out.push_str(line),
            }
        }
        changed.then_some(out)
    }

    /// `If-Match` lines inside an entity-group transaction's request, mapped back.
    pub fn rewrite_batch_request(&self, body: &str) -> Option<String> {
        let ops = batch_parts(body);
        let mut index: Option<usize> = None;
        let mut changed = false;
        let mut out = String::with_capacity(body.len());
        for line in body.split_inclusive('\n') {
            let text = line.trim_end_matches(['\r', '\n']);
            let ending = &line[text.len()..];
            if request_line_url(text).is_some() {
                index = Some(index.map_or(0, |i| i + 1));
            }
            let mapped = header_value(text, "if-match").and_then(|v| {
                let op = ops.get(index?)?;
                self.incoming(v, &op.entity_key())
            });
            match mapped {
                Some(orig) => {
                    changed = true;
                    out.push_str("If-Match: ");
                    out.push_str(&orig);
                    out.push_str(ending);
                }
                None => out.push_str(line),
            }
        }
        changed.then_some(out)
    }
}

fn header_value<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let (n, v) = line.split_once(':')?;
    n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: &str = "W/\"datetime'2026-11-29T22%3A01%3A34.123Z'\"";

    #[test]
    fn millisecond_values_get_seven_varying_digits_that_map_back() {
        let e = Etags::default();
        let a = e.outgoing(MS, "t\0p\0a").unwrap();
        let b = e.outgoing(MS, "t\0p\0b").unwrap();
        assert!(a.starts_with("W/\"datetime'2026-11-29T22%3A01%3A34.123"));
        assert_eq!(
            etag_datetime(&a).unwrap().len(),
            "2026-11-29T22:01:34.1234567Z".len()
        );
        assert_ne!(a, b, "the extra digits depend on the entity");
        assert_eq!(e.outgoing(MS, "t\0p\0a").unwrap(), a, "stable across reads");
        assert_eq!(e.incoming(&a, "t\0p\0a").as_deref(), Some(MS));
        assert_eq!(
            e.incoming(&a, "t\0p\0b"),
            None,
            "another entity's ETag is not mapped"
        );
    }

    #[test]
    fn seven_digit_values_pass_untouched() {
        let e = Etags::default();
        assert_eq!(
            e.outgoing("W/\"datetime'2026-11-29T22%3A01%3A34.1234567Z'\"", "k"),
            None
        );
        assert_eq!(extend_datetime("2026-11-29T22:01:34.1234567Z", "k"), None);
        assert_eq!(
            extend_datetime("2026-11-29T22:01:34Z", "k").map(|s| s.len()),
            Some(28)
        );
    }

    #[test]
    fn order_across_milliseconds_is_kept() {
        let earlier = extend_datetime("2026-11-29T22:01:34.123Z", "x").unwrap();
        let later = extend_datetime("2026-11-29T22:01:34.124Z", "y").unwrap();
        assert!(earlier < later);
    }

    #[test]
    fn json_pages_and_batches_are_rewritten_per_entity() {
        let e = Etags::default();
        let page = format!(
            r#"{{"value":[{{"odata.etag":{m},"PartitionKey":"p","RowKey":"a","Timestamp":"2026-11-29T22:01:34.123Z"}}]}}"#,
            m = serde_json::to_string(MS).unwrap()
        );
        let addr = TableAddress {
            table: Some("t".into()),
            ..Default::default()
        };
        let out: Value =
            serde_json::from_slice(&e.rewrite_json(page.as_bytes(), &addr).unwrap()).unwrap();
        let ent = &out["value"][0];
        let etag = ent["odata.etag"].as_str().unwrap();
        let ts = ent["Timestamp"].as_str().unwrap();
        assert_eq!(etag_datetime(etag).unwrap(), ts, "ETag and Timestamp agree");

        let request = "--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\n\
            Content-Type: application/http\r\n\r\n\
            PUT http://h/devstoreaccount1/t(PartitionKey='p',RowKey='a') HTTP/1.1\r\n\
            If-Match: *\r\n\r\n{\"v\":1}\r\n--c--\r\n--b--\r\n";
        let response = format!(
            "--r\r\n--cr\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n\
             ETag: {MS}\r\n\r\n\r\n--cr--\r\n--r--\r\n"
        );
        let rewritten = e.rewrite_batch_response(&response, request).unwrap();
        assert!(
            rewritten.contains(&format!("ETag: {etag}\r\n")),
            "{rewritten}"
        );
        let next = request.replace("If-Match: *", &format!("If-Match: {etag}"));
        let back = e.rewrite_batch_request(&next).unwrap();
        assert!(back.contains(&format!("If-Match: {MS}\r\n")));
    }
}
