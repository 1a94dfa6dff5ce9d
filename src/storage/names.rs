//! Validation of container, blob and table names against the service's naming rules, so a bad
//! name fails here with a message that names it rather than as an opaque 400 from storage.

use std::fmt;

use crate::error::{Error, Result};

/// A validated container + blob name.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BlobRef {
    container: String,
    blob: String,
}

impl BlobRef {
    pub fn new(container: &str, blob: &str) -> Result<Self> {
        validate_container(container)?;
        let ok = !blob.is_empty() && blob.len() <= 1024 && !blob.ends_with(['.', '/']);
        require(ok, || {
            format!("blob name must be 1-1024 characters not ending in '.' or '/', found '{blob}'")
        })?;
        Ok(BlobRef {
            container: container.to_owned(),
            blob: blob.to_owned(),
        })
    }

    pub fn container(&self) -> &str {
        &self.container
    }

    pub fn blob(&self) -> &str {
        &self.blob
    }
}

impl fmt::Display for BlobRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.container, self.blob)
    }
}

impl fmt::Debug for BlobRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobRef({self})")
    }
}

/// `Ok` when `ok`, else a bad request saying `message()`.
fn require(ok: bool, message: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::bad_request(message()))
    }
}

/// 3-63 characters of lowercase letters, digits and single hyphens, starting and ending with a
/// letter or digit.
pub fn validate_container(name: &str) -> Result<()> {
    let ok = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    require(ok, || {
        format!("container name must be 3-63 lowercase letters, digits or single hyphens, found '{name}'")
    })
}

/// 3-63 letters and digits, starting with a letter; `tables` is reserved.
pub fn validate_table(name: &str) -> Result<()> {
    let ok = (3..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric())
        && name.as_bytes()[0].is_ascii_alphabetic()
        && !name.eq_ignore_ascii_case("tables");
    require(ok, || {
        format!("table name must be 3-63 letters or digits starting with a letter, found '{name}'")
    })
}

/// Characters the Table service forbids in PartitionKey and RowKey.
pub fn validate_key(what: &str, key: &str) -> Result<()> {
    let ok = key.len() <= 1024
        && !key
            .chars()
            .any(|c| matches!(c, '/' | '\\' | '#' | '?') || c.is_control());
    require(ok, || {
        format!("{what} must be at most 1 KiB without '/', '\\', '#', '?' or control characters, found '{key}'")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_rules() {
        assert!(validate_container("samza-job-1").is_ok());
        for bad in ["ab", "Upper", "a--b", "-ab", "ab-", "a_b"] {
            let e = validate_container(bad).unwrap_err();
            assert!(e.message().contains(bad), "{e}");
        }
    }

    #[test]
    fn table_rules() {
        assert!(validate_table("samzaMembers1").is_ok());
        for bad in ["1abc", "ab", "a-b", "tables"] {
            assert!(validate_table(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_rules() {
        assert!(validate_key("RowKey", "processor-1").is_ok());
        assert!(validate_key("RowKey", "a/b").is_err());
    }
}
