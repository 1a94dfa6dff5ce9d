//! Shared Key signing for the proxy's own requests to Azurite (the development account's key is
//! public). Used to read a blob's lease state, which only Azurite knows for sure.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue};
use sha2::Sha256;
use std::time::{SystemTime, UNIX_EPOCH};

pub const ACCOUNT: &str = "devstoreaccount1";
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// A blob API version Azurite 3.35 accepts in strict mode.
const VERSION: &str = "2023-11-03";

/// Headers for a body-less blob request on `path` (`/account/container/blob`, as sent).
pub fn blob_headers(method: &str, path: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let date = http_date(SystemTime::now());
    headers.insert(
        "x-ms-date",
        HeaderValue::from_str(&date).expect("ascii date"),
    );
    headers.insert("x-ms-version", HeaderValue::from_static(VERSION));
    // VERB, then 11 standard headers that are all empty here, then the x-ms- headers and the
    // resource (for the emulator's path-style URLs the account appears twice).
    let to_sign = format!(
        "{method}\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{VERSION}\n/{ACCOUNT}{path}"
    );
    let key = STANDARD.decode(ACCOUNT_KEY).expect("the dev key is base64");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(to_sign.as_bytes());
    let sig = STANDARD.encode(mac.finalize().into_bytes());
    headers.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("SharedKey {ACCOUNT}:{sig}")).expect("ascii signature"),
    );
    headers
}

/// RFC 1123 date (`Sun, 29 Nov 2026 22:05:21 GMT`), as x-ms-date wants.
pub fn http_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{weekday}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        months[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn http_date_is_rfc1123() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_989_921);
        assert_eq!(http_date(t), "Sun, 29 Nov 2026 22:05:21 GMT");
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
