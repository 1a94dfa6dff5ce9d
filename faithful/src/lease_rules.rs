//! Blob lease rules where Azurite 3.35 differs from Azure.
//!
//! 1. Precedence on create: `Put Blob` with `If-None-Match: *` and no lease id on a leased blob
//!    is `412 LeaseIdMissing` on Azure, `409 BlobAlreadyExists` on Azurite (Azurite #2637).
//!    Only such a 409 is examined, and the lease state is then read from Azurite itself with a
//!    signed `Get Blob Properties`: Azurite is the one that knows whether a lease is active (it
//!    runs the lease clock), and the proxy may not have seen every lease request (tests also
//!    talk to Azurite directly). Nothing is rewritten unless Azurite says the blob is locked.
//! 2. Renew after expiry: Azure renews an expired lease only if the blob was neither leased
//!    again nor modified since; Azurite renews even after a modification (Azurite #2352).
//!    A write without the lease id can succeed on a blob whose lease the proxy saw granted
//!    only if that lease is no longer active, so such a write marks the lease stale and a
//!    later renew of it is answered `409 LeaseNotPresentWithLeaseOperation`. This needs no
//!    clock: the proxy learns it from responses it forwards (all clients share this state).
//!    Leasing again is already refused by Azurite (`LeaseIdMismatchWithLeaseOperation`).

use std::collections::HashMap;
use std::sync::Mutex;

use http::{Method, StatusCode};

use crate::forward::{Answer, Upstream};
use crate::request::{Buffered, Service};
use crate::sign;

/// What the proxy knows of a lease it saw granted.
struct Record {
    lease_id: String,
    /// The blob was written by someone not holding this lease: it had expired, and Azure will
    /// not renew it any more.
    stale: bool,
}

#[derive(Default)]
pub struct Leases {
    records: Mutex<HashMap<String, Record>>,
}

/// An answer the proxy gives instead of Azurite's.
pub struct Refusal {
    pub status: u16,
    pub code: &'static str,
    pub message: &'static str,
}

fn blob_key(req: &Buffered) -> Option<String> {
    let (container, blob) = req.blob_address()?;
    Some(format!("{container}/{}", blob?))
}

fn lease_id(req: &Buffered) -> Option<String> {
    req.header("x-ms-lease-id").map(str::to_ascii_lowercase)
}

/// Requests that change a blob's content, metadata or properties.
fn modifies_blob(req: &Buffered) -> bool {
    if req.query_param("restype").is_some() {
        return false;
    }
    match req.method {
        Method::DELETE => true,
        Method::PUT => matches!(
            req.query_param("comp").as_deref(),
            None | Some("blocklist" | "metadata" | "properties" | "page" | "appendblock")
        ),
        _ => false,
    }
}

impl Leases {
    /// Checked before forwarding: a renew Azure would refuse is not sent.
    pub fn before(&self, req: &Buffered) -> Option<Refusal> {
        if req.method != Method::PUT
            || req.query_param("comp").as_deref() != Some("lease")
            || !req
                .header("x-ms-lease-action")
                .is_some_and(|a| a.eq_ignore_ascii_case("renew"))
        {
            return None;
        }
        let key = blob_key(req)?;
        let id = lease_id(req)?;
        let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let rec = records.get(&key)?;
        (rec.lease_id == id && rec.stale).then_some(Refusal {
            status: 409,
            code: "LeaseNotPresentWithLeaseOperation",
            message: "There is currently no lease on the blob.",
        })
    }

    /// Learns from a forwarded blob request and Azurite's answer.
    pub fn learn(&self, req: &Buffered, answer: &Answer) {
        if !answer.status.is_success() {
            return;
        }
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        if req.method == Method::DELETE
            && req.query_param("restype").as_deref() == Some("container")
        {
            if let Some((container, _)) = req.blob_address() {
                let prefix = format!("{container}/");
                records.retain(|k, _| !k.starts_with(&prefix));
            }
            return;
        }
        let Some(key) = blob_key(req) else { return };
        if req.query_param("comp").as_deref() == Some("lease") {
            let action = req
                .header("x-ms-lease-action")
                .unwrap_or("")
                .to_ascii_lowercase();
            match action.as_str() {
                "acquire" | "change" => {
                    if let Some(id) = answer.header("x-ms-lease-id") {
                        records.insert(
                            key,
                            Record {
                                lease_id: id.to_ascii_lowercase(),
                                stale: false,
                            },
                        );
                    }
                }
                "release" | "break" => {
                    records.remove(&key);
                }
                _ => {}
            }
            return;
        }
        if req.method == Method::DELETE && modifies_blob(req) {
            records.remove(&key);
        } else if modifies_blob(req) {
            if let Some(rec) = records.get_mut(&key) {
                if lease_id(req).as_deref() != Some(rec.lease_id.as_str()) {
                    rec.stale = true;
                }
            }
        }
    }
}

/// Azure checks the lease before `If-None-Match`: a create-if-absent without a lease id on a
/// locked blob is `412 LeaseIdMissing`. Returns the replacement when Azurite answered otherwise.
pub async fn create_precedence(
    upstream: &Upstream,
    req: &Buffered,
    answer: &Answer,
) -> Option<Refusal> {
    let is_create = req.method == Method::PUT
        && req.query_param("comp").is_none()
        && req.query_param("restype").is_none()
        && req.header("if-none-match") == Some("*")
        && lease_id(req).is_none();
    if !is_create
        || answer.status != StatusCode::CONFLICT
        || answer.header("x-ms-error-code") != Some("BlobAlreadyExists")
    {
        return None;
    }
    let headers = sign::blob_headers("HEAD", &req.path);
    let props = upstream
        .send_parts(
            Service::Blob,
            Method::HEAD,
            &req.path,
            None,
            &headers,
            bytes::Bytes::new(),
        )
        .await
        .ok()?;
    (props.status.is_success() && props.header("x-ms-lease-status") == Some("locked"))
        .then_some(Refusal {
        status: 412,
        code: "LeaseIdMissing",
        message:
            "There is currently a lease on the blob and no lease ID was specified in the request.",
    })
}
