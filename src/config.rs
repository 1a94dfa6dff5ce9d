//! Storage configuration from Samza config keys.
//!
//! Every value is validated here, once; errors name the key and what was expected. The
//! connection string's secret never appears in `Debug`/`Display` output.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use url::Url;

use crate::error::{Error, Result};
use crate::redact;

/// Compatible with upstream samza-azure.
pub const KEY_CONNECT: &str = "azure.storage.connect";
/// Samza masks `sensitive.*` values when it logs config; preferred over [`KEY_CONNECT`].
pub const KEY_CONNECT_SENSITIVE: &str = "sensitive.azure.storage.connect";
pub const KEY_REQUEST_TIMEOUT_MS: &str = "azure.storage.request.timeout.ms";
pub const KEY_CONNECT_TIMEOUT_MS: &str = "azure.storage.connect.timeout.ms";
pub const KEY_RETRY_MAX_ATTEMPTS: &str = "azure.storage.retry.max.attempts";
pub const KEY_RETRY_BACKOFF_BASE_MS: &str = "azure.storage.retry.backoff.base.ms";
pub const KEY_RETRY_BACKOFF_MAX_MS: &str = "azure.storage.retry.backoff.max.ms";
pub const KEY_RETRY_DEADLINE_MS: &str = "azure.storage.retry.deadline.ms";

/// Azurite's and the legacy emulator's well-known development account. Public by design.
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
pub const DEV_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A string that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        redact::register(&value);
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// Shared key (account key); also what Azurite's development account uses.
    AccountKey(Secret),
    /// A SAS token (query string without the leading `?`).
    Sas(Secret),
}

/// Where storage lives and how to authenticate, parsed from a connection string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    pub account: String,
    pub blob_endpoint: Url,
    pub table_endpoint: Url,
    pub credential: Credential,
}

impl ConnectionInfo {
    /// Parses the standard Azure Storage connection-string forms: account key, SAS,
    /// `UseDevelopmentStorage=true`, and explicit `BlobEndpoint=`/`TableEndpoint=`.
    /// `key` is the config key the value came from, for error messages.
    pub fn parse(key: &str, value: &str) -> Result<Self> {
        let mut fields: HashMap<String, String> = HashMap::new();
        for part in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, val)) = part.split_once('=') else {
                return Err(Error::config(
                    key,
                    format!(
                        "expected 'Name=value' pairs separated by ';', found a part without '=' (starting '{}')",
                        preview(part)
                    ),
                ));
            };
            let name = name.trim().to_ascii_lowercase();
            // Register secrets before anything can fail so later errors cannot echo them.
            if name == "accountkey" || name == "sharedaccesssignature" {
                redact::register(val.trim());
            }
            fields.insert(name, val.trim().to_owned());
        }
        if fields.is_empty() {
            return Err(Error::config(
                key,
                "expected an Azure Storage connection string, found an empty value",
            ));
        }

        if let Some(dev) = fields.get("usedevelopmentstorage") {
            if !dev.eq_ignore_ascii_case("true") {
                return Err(Error::config(
                    key,
                    format!("UseDevelopmentStorage must be 'true', found '{dev}'"),
                ));
            }
            let proxy = fields
                .get("developmentstorageproxyuri")
                .map(String::as_str)
                .unwrap_or("http://127.0.0.1");
            let base = parse_url(key, "DevelopmentStorageProxyUri", proxy)?;
            let host = base.host_str().unwrap_or("127.0.0.1").to_owned();
            let scheme = base.scheme().to_owned();
            return Ok(ConnectionInfo {
                account: DEV_ACCOUNT.to_owned(),
                blob_endpoint: parse_url(
                    key,
                    "BlobEndpoint",
                    &format!("{scheme}://{host}:10000/{DEV_ACCOUNT}"),
                )?,
                table_endpoint: parse_url(
                    key,
                    "TableEndpoint",
                    &format!("{scheme}://{host}:10002/{DEV_ACCOUNT}"),
                )?,
                credential: Credential::AccountKey(Secret::new(DEV_ACCOUNT_KEY)),
            });
        }

        let credential =
            match (
                fields.get("accountkey"),
                fields.get("sharedaccesssignature"),
            ) {
                (Some(_), Some(_)) => {
                    return Err(Error::config(
                        key,
                        "expected either AccountKey or SharedAccessSignature, found both",
                    ))
                }
                (Some(k), None) => {
                    if k.is_empty() {
                        return Err(Error::config(key, "AccountKey is empty"));
                    }
                    if base64_len(k).is_none() {
                        return Err(Error::config(key, "AccountKey must be base64"));
                    }
                    Credential::AccountKey(Secret::new(k.clone()))
                }
                (None, Some(s)) => {
                    let s = s.trim_start_matches('?');
                    if !s.contains("sig=") {
                        return Err(Error::config(
                            key,
                            "SharedAccessSignature must be a SAS query string containing 'sig='",
                        ));
                    }
                    Credential::Sas(Secret::new(s.to_owned()))
                }
                (None, None) => return Err(Error::config(
                    key,
                    "expected AccountKey=, SharedAccessSignature= or UseDevelopmentStorage=true",
                )),
            };

        let protocol = fields
            .get("defaultendpointsprotocol")
            .map(|p| p.to_ascii_lowercase())
            .unwrap_or_else(|| "https".to_owned());
        if protocol != "https" && protocol != "http" {
            return Err(Error::config(
                key,
                format!("DefaultEndpointsProtocol must be 'http' or 'https', found '{protocol}'"),
            ));
        }
        let suffix = fields
            .get("endpointsuffix")
            .cloned()
            .unwrap_or_else(|| "core.windows.net".to_owned());
        let account = fields.get("accountname").cloned();

        let endpoint = |field: &str, service: &str| -> Result<Url> {
            if let Some(explicit) = fields.get(field) {
                return parse_url(key, field, explicit.trim_end_matches('/'));
            }
            let Some(account) = &account else {
                return Err(Error::config(
                    key,
                    format!("expected AccountName= or an explicit {field}="),
                ));
            };
            parse_url(
                key,
                field,
                &format!("{protocol}://{account}.{service}.{suffix}"),
            )
        };
        let blob_endpoint = endpoint("blobendpoint", "blob")?;
        let table_endpoint = endpoint("tableendpoint", "table")?;

        let account = match account {
            Some(a) => a,
            None => account_from_endpoint(&blob_endpoint).ok_or_else(|| {
                Error::config(
                    key,
                    "expected AccountName= (it cannot be derived from BlobEndpoint)",
                )
            })?,
        };
        if account.is_empty() || !account.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(Error::config(
                key,
                format!("AccountName must be letters and digits, found '{account}'"),
            ));
        }
        if matches!(credential, Credential::AccountKey(_)) && !fields.contains_key("accountname") {
            return Err(Error::config(key, "AccountKey requires AccountName="));
        }
        Ok(ConnectionInfo {
            account,
            blob_endpoint,
            table_endpoint,
            credential,
        })
    }
}

fn preview(s: &str) -> String {
    // Enough to locate the mistake, never a whole value (it might be a key pasted wrongly).
    let p: String = s.chars().take(4).collect();
    format!("{p}...")
}

fn base64_len(s: &str) -> Option<usize> {
    let ok = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    (ok && s.len() % 4 == 0).then_some(s.len() / 4 * 3)
}

fn parse_url(key: &str, field: &str, value: &str) -> Result<Url> {
    let url = Url::parse(value).map_err(|e| {
        Error::config(
            key,
            format!("{field} must be an http(s) URL ({e}), found '{value}'"),
        )
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(Error::config(
            key,
            format!("{field} must use http or https, found '{}'", url.scheme()),
        ));
    }
    if url.query().is_some() {
        return Err(Error::config(
            key,
            format!("{field} must not carry a query string; put a SAS in SharedAccessSignature="),
        ));
    }
    Ok(url)
}

/// `https://acct.blob.core.windows.net` or path-style `http://host:port/acct`.
fn account_from_endpoint(url: &Url) -> Option<String> {
    if let Some(first) = url.path_segments().and_then(|mut s| s.next()) {
        if !first.is_empty() {
            return Some(first.to_owned());
        }
    }
    let host = url.host_str()?;
    host.split('.').next().map(str::to_owned)
}

/// Timeouts and retry budget for every storage request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestPolicy {
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Overall bound for one logical operation including retries.
    pub deadline: Duration,
}

impl Default for RequestPolicy {
    fn default() -> Self {
        RequestPolicy {
            request_timeout: Duration::from_millis(4_000),
            connect_timeout: Duration::from_millis(2_000),
            max_attempts: 4,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1_000),
            deadline: Duration::from_millis(5_000),
        }
    }
}

/// Everything the storage layer needs.
#[derive(Clone, Debug)]
pub struct StorageConfig {
    pub connection: ConnectionInfo,
    pub policy: RequestPolicy,
}

impl StorageConfig {
    /// Reads the `azure.storage.*` keys from a Samza config map.
    pub fn from_map(config: &HashMap<String, String>) -> Result<Self> {
        let (key, value) = [KEY_CONNECT_SENSITIVE, KEY_CONNECT]
            .into_iter()
            .find_map(|k| config.get(k).map(|v| (k, v)))
            .ok_or_else(|| {
                Error::config(
                    KEY_CONNECT,
                    format!(
                        "missing; expected an Azure Storage connection string (or set {KEY_CONNECT_SENSITIVE})"
                    ),
                )
            })?;
        let connection = ConnectionInfo::parse(key, value)?;
        let d = RequestPolicy::default();
        let keys = Keys(config);
        let policy = RequestPolicy {
            request_timeout: keys.ms(KEY_REQUEST_TIMEOUT_MS, d.request_timeout, 100, 60_000)?,
            connect_timeout: keys.ms(KEY_CONNECT_TIMEOUT_MS, d.connect_timeout, 100, 30_000)?,
            max_attempts: keys.u64(KEY_RETRY_MAX_ATTEMPTS, d.max_attempts as u64, 1, 10)? as u32,
            backoff_base: keys.ms(KEY_RETRY_BACKOFF_BASE_MS, d.backoff_base, 1, 10_000)?,
            backoff_max: keys.ms(KEY_RETRY_BACKOFF_MAX_MS, d.backoff_max, 1, 30_000)?,
            deadline: keys.ms(KEY_RETRY_DEADLINE_MS, d.deadline, 100, 120_000)?,
        };
        if policy.backoff_max < policy.backoff_base {
            return Err(Error::config(
                KEY_RETRY_BACKOFF_MAX_MS,
                format!(
                    "must be at least {KEY_RETRY_BACKOFF_BASE_MS} ({} ms), found {} ms",
                    policy.backoff_base.as_millis(),
                    policy.backoff_max.as_millis()
                ),
            ));
        }
        Ok(StorageConfig { connection, policy })
    }

    /// Convenience for tests and tools: a connection string with default policy.
    pub fn from_connection_string(value: &str) -> Result<Self> {
        let mut map = HashMap::new();
        map.insert(KEY_CONNECT.to_owned(), value.to_owned());
        StorageConfig::from_map(&map)
    }
}

/// A Samza config map read key by key with bounds: an absent key means its default, and a
/// value out of bounds is an error naming the key.
#[derive(Clone, Copy)]
pub struct Keys<'a>(pub &'a HashMap<String, String>);

impl Keys<'_> {
    pub fn u64(self, key: &str, default: u64, min: u64, max: u64) -> Result<u64> {
        let Some(raw) = self.0.get(key) else {
            return Ok(default);
        };
        let value: u64 = raw.trim().parse().map_err(|_| {
            Error::config(
                key,
                format!("expected an integer in [{min}, {max}], found '{raw}'"),
            )
        })?;
        if value < min || value > max {
            return Err(Error::config(
                key,
                format!("expected an integer in [{min}, {max}], found {value}"),
            ));
        }
        Ok(value)
    }

    /// A duration in milliseconds, bounds included.
    pub fn ms(self, key: &str, default: Duration, min: u64, max: u64) -> Result<Duration> {
        self.u64(key, default.as_millis() as u64, min, max)
            .map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const KEY: &str = "AAAABBBBCCCCDDDDEEEEFFFFGGGGHHHH";

    fn parse(s: &str) -> Result<ConnectionInfo> {
        ConnectionInfo::parse(KEY_CONNECT, s)
    }

    /// The blob and table endpoints, in that order.
    fn endpoints(c: &ConnectionInfo) -> (&str, &str) {
        (c.blob_endpoint.as_str(), c.table_endpoint.as_str())
    }

    #[test]
    fn account_key_form_derives_public_endpoints() {
        let c = parse(&format!(
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={KEY};EndpointSuffix=core.windows.net"
        ))
        .unwrap();
        assert_eq!(c.account, "acct");
        assert_eq!(
            endpoints(&c),
            (
                "https://acct.blob.core.windows.net/",
                "https://acct.table.core.windows.net/"
            )
        );
        assert!(matches!(c.credential, Credential::AccountKey(_)));
        assert!(!format!("{c:?}").contains(KEY));
    }

    #[test]
    fn development_storage_points_at_azurite() {
        let c = parse("UseDevelopmentStorage=true").unwrap();
        assert_eq!(c.account, DEV_ACCOUNT);
        assert_eq!(
            endpoints(&c),
            (
                "http://127.0.0.1:10000/devstoreaccount1",
                "http://127.0.0.1:10002/devstoreaccount1"
            )
        );
    }

    #[test]
    fn explicit_endpoints_and_sas() {
        let c = parse("BlobEndpoint=http://127.0.0.1:1234/devstoreaccount1/;TableEndpoint=http://127.0.0.1:1236/devstoreaccount1;SharedAccessSignature=?sv=2022-11-02&ss=bt&sig=abcd%3D").unwrap();
        assert_eq!(c.account, "devstoreaccount1");
        assert_eq!(
            c.blob_endpoint.as_str(),
            "http://127.0.0.1:1234/devstoreaccount1"
        );
        match &c.credential {
            Credential::Sas(s) => assert_eq!(s.expose(), "sv=2022-11-02&ss=bt&sig=abcd%3D"),
            other => panic!("expected SAS, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_key_and_expectation() {
        for (input, expected) in [
            ("", "empty"),
            ("AccountName=a", "expected AccountKey="),
            ("garbage", "without '='"),
            ("UseDevelopmentStorage=false", "must be 'true'"),
            ("AccountName=a;AccountKey=%%%%", "base64"),
            ("AccountName=a-b;AccountKey=QUFBQQ==", "letters and digits"),
            (
                "BlobEndpoint=ftp://x;TableEndpoint=http://y/a;SharedAccessSignature=sig=1",
                "http or https",
            ),
            ("AccountName=a;SharedAccessSignature=sv=1", "sig="),
        ] {
            let e = parse(input).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{input}");
            assert!(e.message().contains(KEY_CONNECT), "{e}");
            assert!(e.message().contains(expected), "input {input:?}: {e}");
        }
    }

    #[test]
    fn missing_key_and_bad_numbers_are_named() {
        let e = StorageConfig::from_map(&HashMap::new()).unwrap_err();
        assert!(e.message().contains(KEY_CONNECT), "{e}");
        let mut m = HashMap::new();
        m.insert(
            KEY_CONNECT.to_owned(),
            "UseDevelopmentStorage=true".to_owned(),
        );
        m.insert(KEY_RETRY_MAX_ATTEMPTS.to_owned(), "99".to_owned());
        let e = StorageConfig::from_map(&m).unwrap_err();
        assert!(
            e.message().contains(KEY_RETRY_MAX_ATTEMPTS) && e.message().contains("[1, 10]"),
            "{e}"
        );
        m.insert(KEY_RETRY_MAX_ATTEMPTS.to_owned(), "two".to_owned());
        let e = StorageConfig::from_map(&m).unwrap_err();
        assert!(e.message().contains("'two'"), "{e}");
    }

    #[test]
    fn sensitive_key_wins() {
        let mut m = HashMap::new();
        m.insert(KEY_CONNECT.to_owned(), "garbage".to_owned());
        m.insert(
            KEY_CONNECT_SENSITIVE.to_owned(),
            "UseDevelopmentStorage=true".to_owned(),
        );
        assert!(StorageConfig::from_map(&m).is_ok());
    }

    #[test]
    fn secret_never_printed_even_in_errors() {
        let secret = "U2VjcmV0S2V5Rm9yUmVkYWN0aW9uVGVzdHMxMjM0NTY=";
        let e = parse(&format!("AccountKey={secret};Bogus")).unwrap_err();
        assert!(!e.to_string().contains(secret), "{e}");
        let c = parse(&format!("AccountName=a;AccountKey={secret}")).unwrap();
        assert!(!format!("{c:?}").contains(secret));
    }
}
