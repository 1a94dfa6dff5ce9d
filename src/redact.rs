//! Keeps secrets out of every message, log line and exception.
//!
//! Two layers: exact secrets registered when a connection string is parsed are replaced
//! wherever they appear, and anything shaped like a secret (`sig=` in a SAS query,
//! `AccountKey=` / `SharedAccessSignature=` in a connection string) is masked even if it was
//! never registered, because SDK and HTTP errors echo request URLs.

use std::sync::RwLock;

const MASK: &str = "***";

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Registers a secret so that [`scrub`] masks it. Short strings are ignored: masking every
/// occurrence of a two-letter string would garble messages without protecting anything.
pub fn register(secret: &str) {
    if secret.len() < 8 {
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if !secrets.iter().any(|s| s == secret) {
        secrets.push(secret.to_owned());
        // Longest first, so a secret that contains another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// Returns `text` with every registered secret and every secret-shaped fragment masked.
pub fn scrub(text: &str) -> String {
    let mut out = text.to_owned();
    {
        let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
        for secret in secrets.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
    }
    for marker in ["sig=", "accountkey=", "sharedaccesssignature="] {
        out = mask_after(&out, marker);
    }
    out
}

/// Masks the value following each case-insensitive `marker` up to a delimiter.
fn mask_after(text: &str, marker: &str) -> String {
    let lower = text.to_ascii_lowercase();
    if !lower.contains(marker) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while let Some(found) = lower[pos..].find(marker) {
        let value_start = pos + found + marker.len();
        out.push_str(&text[pos..value_start]);
        let value_len = text[value_start..]
            .find(['&', ';', ' ', '\'', '"', ')', '\n', ',', '>'])
            .unwrap_or(text.len() - value_start);
        if value_len > 0 && &text[value_start..value_start + value_len] != MASK {
            out.push_str(MASK);
        } else {
            out.push_str(&text[value_start..value_start + value_len]);
        }
        pos = value_start + value_len;
    }
    out.push_str(&text[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_registered_secret_anywhere() {
        register("c2VjcmV0LWtleS1mb3ItdGVzdHM=");
        let s = scrub("failed with key c2VjcmV0LWtleS1mb3ItdGVzdHM= in header");
        assert_eq!(s, "failed with key *** in header");
    }

    #[test]
    fn masks_sas_signature_in_urls_even_unregistered() {
        let s = scrub("error sending request for url (https://a.blob.core.windows.net/c/b?sv=2022&SIG=abc%2Bdef&se=1)");
        assert!(!s.contains("abc%2Bdef"), "{s}");
        assert!(s.contains("SIG=***&se=1"), "{s}");
    }

    #[test]
    fn masks_connection_string_fields() {
        let s = scrub("AccountName=a;AccountKey=Zm9vYmFy;EndpointSuffix=x");
        assert_eq!(s, "AccountName=a;AccountKey=***;EndpointSuffix=x");
        let s = scrub("SharedAccessSignature=sv=1&sig=zz;BlobEndpoint=x");
        assert!(!s.contains("zz"), "{s}");
    }

    #[test]
    fn leaves_ordinary_text_alone() {
        assert_eq!(
            scrub("lease renewed on samza/leader"),
            "lease renewed on samza/leader"
        );
    }
}
