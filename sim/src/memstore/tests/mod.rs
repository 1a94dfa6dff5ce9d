//! The rules of Azure's documentation that the in-memory storage keeps, by area; and the real
//! membership and checkpoint code running over it.

mod callers;
mod documents;
mod leases;
mod tables;

use std::time::Duration;

use bytes::Bytes;
use samza_azure_coordinator::storage::{
    BlobRef, DocumentStore, Entity, LeaseDuration, LeaseId, TableStore,
};
use samza_azure_coordinator::{Error, ErrorKind};

use super::{Endpoint, MemStore};

pub(super) const T: &str = "members";

pub(super) fn blob() -> BlobRef {
    BlobRef::new("jobs", "j-1/jobmodel").unwrap()
}

pub(super) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub(super) fn body(s: &str) -> Bytes {
    Bytes::from(s.to_owned())
}

pub(super) fn id(n: u128) -> LeaseId {
    LeaseId(uuid::Uuid::from_u128(n))
}

/// Asserts that `r` is a storage refusal of this kind, status and code; returns the error.
#[track_caller]
pub(super) fn refused<T: std::fmt::Debug>(
    r: Result<T, Error>,
    (kind, status, code): (ErrorKind, u16, &str),
) -> Error {
    let e = r.unwrap_err();
    assert_eq!(
        (e.kind(), e.status(), e.storage_code()),
        (kind, Some(status), Some(code)),
        "{e}"
    );
    e
}

pub(super) async fn with_blob() -> Endpoint<MemStore> {
    let s = Endpoint(MemStore::new());
    assert!(s.ensure_container("jobs").await.unwrap());
    assert!(!s.ensure_container("jobs").await.unwrap());
    s.create_document(&blob(), body("v1")).await.unwrap();
    s
}

pub(super) fn lease_state(s: &MemStore) -> &'static str {
    let mut st = s.state.lock().unwrap();
    st.blobs
        .lease_state(&blob(), tokio::time::Instant::now())
        .unwrap()
}

pub(super) fn leased(secs: u8) -> LeaseDuration {
    LeaseDuration::Seconds(secs)
}

pub(super) fn row(rk: &str) -> Entity {
    Entity::new("p", rk)
}

pub(super) async fn with_table() -> Endpoint<MemStore> {
    let s = Endpoint(MemStore::new());
    assert!(s.ensure_table(T).await.unwrap());
    assert!(!s.ensure_table(T).await.unwrap());
    s
}

pub(super) fn keys(rows: &[Entity]) -> Vec<&str> {
    rows.iter().map(|e| e.row_key.as_str()).collect()
}
