//! The rules of Azure's documentation that the in-memory storage keeps, one test per area.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use samza_azure_coordinator::storage::{
    BatchOp, BlobRef, Change, DocumentStore, ETag, Entity, IfMatch, LeaseDuration, LeaseId,
    LeaseStore, TableStore, WriteMode,
};
use samza_azure_coordinator::{Error, ErrorKind};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::time::advance;

use super::{Answer, MemStore, Op};

const T: &str = "members";

fn blob() -> BlobRef {
    BlobRef::new("jobs", "j-1/jobmodel").unwrap()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn body(s: &str) -> Bytes {
    Bytes::from(s.to_owned())
}

fn id(n: u128) -> LeaseId {
    LeaseId(uuid::Uuid::from_u128(n))
}

/// Status and code of a storage refusal, with its kind.
fn refusal(e: &Error) -> (ErrorKind, Option<u16>, Option<&str>) {
    (e.kind(), e.status(), e.storage_code())
}

async fn with_blob() -> MemStore {
    let s = MemStore::new();
    assert!(s.ensure_container("jobs").await.unwrap());
    assert!(!s.ensure_container("jobs").await.unwrap());
    s.create_document(&blob(), body("v1")).await.unwrap();
    s
}

fn lease_state(s: &MemStore) -> &'static str {
    let mut st = s.state.lock().unwrap();
    st.blobs
        .lease_state(&blob(), tokio::time::Instant::now())
        .unwrap()
}

fn leased(secs: u8) -> LeaseDuration {
    LeaseDuration::Seconds(secs)
}

#[tokio::test(start_paused = true)]
async fn acquire_renew_and_expiry_follow_the_virtual_clock() {
    let s = with_blob().await;
    let b = blob();
    assert_eq!(lease_state(&s), "available");
    let a = s.acquire_lease(&b, leased(15), Some(id(1))).await.unwrap();
    assert_eq!(a, id(1));
    assert_eq!(lease_state(&s), "leased");
    // Someone else: 409 LeaseAlreadyPresent; the holder again: the same lease, new duration.
    let e = s
        .acquire_lease(&b, leased(15), Some(id(2)))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&e),
        (ErrorKind::LeaseHeld, Some(409), Some("LeaseAlreadyPresent"))
    );
    assert!(
        e.message().contains("acquire lease on jobs/j-1/jobmodel"),
        "{e}"
    );
    assert_eq!(
        s.acquire_lease(&b, leased(20), Some(id(1))).await.unwrap(),
        id(1)
    );
    advance(secs(19)).await;
    s.renew_lease(&b, a, None).await.unwrap();
    advance(secs(19)).await;
    assert_eq!(lease_state(&s), "leased");
    let e = s.renew_lease(&b, id(2), None).await.unwrap_err();
    assert_eq!(e.storage_code(), Some("LeaseIdMismatchWithLeaseOperation"));
    assert_eq!(e.kind(), ErrorKind::LeaseLost);
    advance(secs(1)).await;
    assert_eq!(lease_state(&s), "expired");
    // An expired lease nobody touched since renews (Azure; Azurite #2352 refuses).
    s.renew_lease(&b, a, None).await.unwrap();
    assert_eq!(lease_state(&s), "leased");
    // Once expired and written, it does not.
    advance(secs(20)).await;
    s.replace_document(&b, body("v2"), None, None)
        .await
        .unwrap();
    assert_eq!(lease_state(&s), "expired");
    let e = s.renew_lease(&b, a, None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LeaseLost, "{e}");
    assert_eq!(e.status(), Some(409));
    // Once expired and leased again by another, neither.
    let other = s.acquire_lease(&b, leased(15), None).await.unwrap();
    advance(secs(15)).await;
    assert_eq!(lease_state(&s), "expired");
    let e = s.renew_lease(&b, a, None).await.unwrap_err();
    assert_eq!(e.storage_code(), Some("LeaseIdMismatchWithLeaseOperation"));
    s.renew_lease(&b, other, None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn generated_lease_ids_are_deterministic_uuids() {
    let (s1, s2) = (with_blob().await, with_blob().await);
    let a = s1.acquire_lease(&blob(), leased(15), None).await.unwrap();
    let b = s2.acquire_lease(&blob(), leased(15), None).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(a.0.get_version_num(), 4);
    s1.release_lease(&blob(), a).await.unwrap();
    let c = s1.acquire_lease(&blob(), leased(15), None).await.unwrap();
    assert_ne!(a, c);
    assert_eq!(LeaseId::parse(&c.to_string()).unwrap(), c);
}

#[tokio::test(start_paused = true)]
async fn infinite_leases_never_expire_and_durations_are_checked() {
    let s = with_blob().await;
    let a = s
        .acquire_lease(&blob(), LeaseDuration::Infinite, Some(id(1)))
        .await
        .unwrap();
    advance(secs(3600)).await;
    assert_eq!(lease_state(&s), "leased");
    s.renew_lease(&blob(), a, None).await.unwrap();
    s.release_lease(&blob(), a).await.unwrap();
    for bad in [14, 61] {
        let e = s
            .acquire_lease(&blob(), leased(bad), None)
            .await
            .unwrap_err();
        assert_eq!(
            refusal(&e),
            (ErrorKind::BadRequest, Some(400), Some("InvalidHeaderValue"))
        );
    }
    let missing = BlobRef::new("jobs", "nothing").unwrap();
    let e = s
        .acquire_lease(&missing, leased(15), None)
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&e),
        (ErrorKind::NotFound, Some(404), Some("BlobNotFound"))
    );
    let e = s
        .acquire_lease(&BlobRef::new("nope", "b").unwrap(), leased(15), None)
        .await
        .unwrap_err();
    assert_eq!(e.storage_code(), Some("ContainerNotFound"));
}

#[tokio::test(start_paused = true)]
async fn breaking_then_broken() {
    let s = with_blob().await;
    let b = blob();
    let a = s.acquire_lease(&b, leased(60), Some(id(1))).await.unwrap();
    advance(secs(50)).await;
    // The break period applies only when shorter than what is left of the lease (10 s).
    assert_eq!(s.break_lease(&b, secs(30)).await.unwrap(), secs(10));
    assert_eq!(lease_state(&s), "breaking");
    // A second break can only shorten it.
    assert_eq!(s.break_lease(&b, secs(20)).await.unwrap(), secs(10));
    assert_eq!(s.break_lease(&b, secs(4)).await.unwrap(), secs(4));
    let e = s
        .acquire_lease(&b, leased(15), Some(id(2)))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&e),
        (
            ErrorKind::LeaseHeld,
            Some(409),
            Some("LeaseIsBreakingAndCannotBeAcquired")
        )
    );
    // Even the holder cannot acquire, renew or change while it breaks.
    let e = s.acquire_lease(&b, leased(15), Some(a)).await.unwrap_err();
    assert_eq!(e.storage_code(), Some("LeaseIsBreakingAndCannotBeAcquired"));
    let e = s.renew_lease(&b, a, None).await.unwrap_err();
    assert_eq!(
        refusal(&e),
        (
            ErrorKind::LeaseLost,
            Some(409),
            Some("LeaseIsBrokenAndCannotBeRenewed")
        )
    );
    let e = s.change_lease(&b, a, id(3)).await.unwrap_err();
    assert_eq!(e.storage_code(), Some("LeaseIsBreakingAndCannotBeChanged"));
    // Writes while breaking still need the lease.
    let e = s
        .replace_document(&b, body("x"), None, None)
        .await
        .unwrap_err();
    assert_eq!(e.storage_code(), Some("LeaseIdMissing"));
    s.replace_document(&b, body("v2"), None, Some(a))
        .await
        .unwrap();
    advance(secs(4)).await;
    assert_eq!(lease_state(&s), "broken");
    let e = s.renew_lease(&b, a, None).await.unwrap_err();
    assert_eq!(e.storage_code(), Some("LeaseIsBrokenAndCannotBeRenewed"));
    // Broken: writes need no lease, the old lease id is refused, a break again is 0 s.
    let e = s
        .replace_document(&b, body("x"), None, Some(a))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&e),
        (ErrorKind::LeaseLost, Some(412), Some("LeaseLost"))
    );
    s.replace_document(&b, body("v3"), None, None)
        .await
        .unwrap();
    assert_eq!(s.break_lease(&b, secs(10)).await.unwrap(), Duration::ZERO);
    let n = s.acquire_lease(&b, leased(15), Some(id(2))).await.unwrap();
    assert_eq!(n, id(2));
    // Break with period 0: broken at once.
    assert_eq!(
        s.break_lease(&b, Duration::ZERO).await.unwrap(),
        Duration::ZERO
    );
    assert_eq!(lease_state(&s), "broken");
    // A broken lease can be released by its holder.
    s.release_lease(&b, n).await.unwrap();
    assert_eq!(lease_state(&s), "available");
    let e = s.break_lease(&b, secs(5)).await.unwrap_err();
    assert_eq!(
        refusal(&e),
        (
            ErrorKind::LeaseLost,
            Some(409),
            Some("LeaseNotPresentWithLeaseOperation")
        )
    );
    // An infinite lease breaks after the whole period; an expired lease cannot be broken.
    s.acquire_lease(&b, LeaseDuration::Infinite, None)
        .await
        .unwrap();
    assert_eq!(s.break_lease(&b, secs(60)).await.unwrap(), secs(60));
    let e = s.break_lease(&b, secs(61)).await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (ErrorKind::BadRequest, None));
    advance(secs(60)).await;
    let x = s.acquire_lease(&b, leased(15), None).await.unwrap();
    advance(secs(15)).await;
    let e = s.break_lease(&b, secs(0)).await.unwrap_err();
    assert_eq!(e.storage_code(), Some("LeaseNotPresentWithLeaseOperation"));
    s.release_lease(&b, x).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn release_and_change() {
    let s = with_blob().await;
    let b = blob();
    let e = s.release_lease(&b, id(1)).await.unwrap_err();
    assert_eq!(e.storage_code(), Some("LeaseNotPresentWithLeaseOperation"));
    let e = s.change_lease(&b, id(1), id(2)).await.unwrap_err();
    assert_eq!(e.storage_code(), Some("LeaseNotPresentWithLeaseOperation"));
    let a = s.acquire_lease(&b, leased(30), Some(id(1))).await.unwrap();
    let e = s.release_lease(&b, id(9)).await.unwrap_err();
    assert_eq!(
        refusal(&e),
        (
            ErrorKind::LeaseLost,
            Some(409),
            Some("LeaseIdMismatchWithLeaseOperation")
        )
    );
    assert_eq!(s.change_lease(&b, a, id(2)).await.unwrap(), id(2));
    // A retried change (the answer was lost) succeeds: the lease already has that id.
    assert_eq!(s.change_lease(&b, a, id(2)).await.unwrap(), id(2));
    let e = s.change_lease(&b, id(8), id(9)).await.unwrap_err();
    assert_eq!(e.storage_code(), Some("LeaseIdMismatchWithLeaseOperation"));
    let e = s.renew_lease(&b, a, None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LeaseLost);
    // Change keeps the lease's expiry: 30 s from the acquire.
    advance(secs(30)).await;
    assert_eq!(lease_state(&s), "expired");
    let e = s.change_lease(&b, id(2), id(3)).await.unwrap_err();
    assert_eq!(e.storage_code(), Some("LeaseNotPresentWithLeaseOperation"));
    // Release of an expired lease by its holder works; then anyone may acquire.
    s.release_lease(&b, id(2)).await.unwrap();
    let c = s.acquire_lease(&b, leased(15), Some(id(5))).await.unwrap();
    s.break_lease(&b, secs(10)).await.unwrap();
    // A breaking lease can be released, and acquired at once after.
    s.release_lease(&b, c).await.unwrap();
    s.acquire_lease(&b, leased(15), Some(id(6))).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn blob_writes_check_the_lease_before_the_conditions() {
    let s = with_blob().await;
    let b = blob();
    let v1 = s.read_document(&b).await.unwrap().etag;
    assert!(
        v1.0.starts_with("\"0x8D") && v1.0.ends_with('"') && v1.0.len() == 19,
        "{v1}"
    );
    // Not leased: create is 409 BlobAlreadyExists; a lease id is 412 LeaseNotPresent...
    let e = s.create_document(&b, body("x")).await.unwrap_err();
    assert_eq!(
        refusal(&e),
        (
            ErrorKind::AlreadyExists,
            Some(409),
            Some("BlobAlreadyExists")
        )
    );
    let e = s
        .replace_document(&b, body("x"), None, Some(id(1)))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&e),
        (
            ErrorKind::LeaseLost,
            Some(412),
            Some("LeaseNotPresentWithBlobOperation")
        )
    );
    let a = s.acquire_lease(&b, leased(15), Some(id(1))).await.unwrap();
    // Leased: a create is refused for the lease first (Azure; Azurite #2637 says 409).
    let e = s.create_document(&b, body("x")).await.unwrap_err();
    assert_eq!(
        refusal(&e),
        (ErrorKind::LeaseLost, Some(412), Some("LeaseIdMissing"))
    );
    assert!(!s.create_if_absent(&b, body("x")).await.unwrap());
    let e = s
        .replace_document(&b, body("x"), Some(&v1), None)
        .await
        .unwrap_err();
    assert_eq!(e.storage_code(), Some("LeaseIdMissing"));
    let e = s
        .replace_document(&b, body("x"), None, Some(id(2)))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&e),
        (
            ErrorKind::LeaseLost,
            Some(412),
            Some("LeaseIdMismatchWithBlobOperation")
        )
    );
    // With the lease: the If-Match condition decides.
    let v2 = s
        .replace_document(&b, body("v2"), Some(&v1), Some(a))
        .await
        .unwrap();
    assert_ne!(v1, v2);
    let e = s
        .replace_document(&b, body("x"), Some(&v1), Some(a))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&e),
        (
            ErrorKind::PreconditionFailed,
            Some(412),
            Some("ConditionNotMet")
        )
    );
    // Lease operations do not change the ETag.
    s.renew_lease(&b, a, None).await.unwrap();
    assert_eq!(s.check_document(&b, &v2).await.unwrap(), Change::Unchanged);
    assert_eq!(s.read_document_if_changed(&b, &v2).await.unwrap(), None);
    assert_eq!(
        s.check_document(&b, &v1).await.unwrap(),
        Change::Changed(v2.clone())
    );
    let d = s.read_document_if_changed(&b, &v1).await.unwrap().unwrap();
    assert_eq!((d.body, d.etag), (body("v2"), v2.clone()));
    // Expired: the old id is refused with LeaseLost, a write without one is fine.
    advance(secs(15)).await;
    let e = s
        .replace_document(&b, body("x"), None, Some(a))
        .await
        .unwrap_err();
    assert_eq!(e.storage_code(), Some("LeaseLost"));
    let v3 = s
        .replace_document(&b, body("v3"), Some(&v2), None)
        .await
        .unwrap();
    // Delete follows the same rules.
    let a = s.acquire_lease(&b, leased(15), Some(id(1))).await.unwrap();
    let e = s.delete_document(&b, Some(&v3), None).await.unwrap_err();
    assert_eq!(e.storage_code(), Some("LeaseIdMissing"));
    let e = s.delete_document(&b, Some(&v1), Some(a)).await.unwrap_err();
    assert_eq!(e.storage_code(), Some("ConditionNotMet"));
    s.delete_document(&b, Some(&v3), Some(a)).await.unwrap();
    let e = s.read_document(&b).await.unwrap_err();
    assert_eq!(
        refusal(&e),
        (ErrorKind::NotFound, Some(404), Some("BlobNotFound"))
    );
    let e = s.delete_document(&b, None, None).await.unwrap_err();
    assert_eq!(e.storage_code(), Some("BlobNotFound"));
    // A re-created blob has no lease; If-Match on a missing blob is 412.
    let e = s
        .replace_document(&b, body("x"), Some(&v3), None)
        .await
        .unwrap_err();
    assert_eq!(e.storage_code(), Some("ConditionNotMet"));
    let e = s
        .replace_document(&b, body("x"), None, Some(a))
        .await
        .unwrap_err();
    assert_eq!(e.storage_code(), Some("LeaseNotPresentWithBlobOperation"));
    assert!(s.create_if_absent(&b, body("new")).await.unwrap());
    assert_eq!(lease_state(&s), "available");
    // Containers must exist; the adapter refuses empty bodies before sending.
    let nowhere = BlobRef::new("nope", "b").unwrap();
    let e = s.create_document(&nowhere, body("x")).await.unwrap_err();
    assert_eq!(
        refusal(&e),
        (ErrorKind::NotFound, Some(404), Some("ContainerNotFound"))
    );
    let e = s.create_document(&b, Bytes::new()).await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (ErrorKind::BadRequest, None));
    assert!(e.message().contains("jobs/j-1/jobmodel"), "{e}");
}

fn row(rk: &str) -> Entity {
    Entity::new("p", rk)
}

async fn with_table() -> MemStore {
    let s = MemStore::new();
    assert!(s.ensure_table(T).await.unwrap());
    assert!(!s.ensure_table(T).await.unwrap());
    s
}

#[tokio::test(start_paused = true)]
async fn entities_carry_server_timestamps_and_etags() {
    let s = with_table().await;
    advance(Duration::from_millis(5_123)).await;
    let e1 = s
        .insert_entity(
            T,
            &row("a")
                .with("n", 5)
                .with("big", "12")
                .with("big@odata.type", "Edm.Int64"),
        )
        .await
        .unwrap();
    assert_eq!(e1.0, "W/\"datetime'2026-01-01T00%3A00%3A05.1230000Z'\"");
    let got = s.get_entity(T, "p", "a").await.unwrap();
    assert_eq!(got.etag, Some(e1.clone()));
    let stamp = got.get_str("Timestamp").unwrap();
    assert_eq!(stamp, "2026-01-01T00:00:05.1230000Z");
    assert_eq!(got.get_str("Timestamp@odata.type"), Some("Edm.DateTime"));
    let t = OffsetDateTime::parse(stamp, &Rfc3339).unwrap();
    assert_eq!(t.unix_timestamp(), super::clock::EPOCH_UNIX_SECONDS + 5);
    assert_eq!(got.properties["n"], 5);
    assert_eq!(got.properties["big"], "12");
    assert_eq!(got.get_str("big@odata.type"), Some("Edm.Int64"));
    assert_eq!(s.server_time(), "2026-01-01T00:00:05.1230000Z");
    // Two writes at one instant still get distinct ETags.
    let e2 = s
        .upsert_entity(T, &row("a"), WriteMode::Merge)
        .await
        .unwrap();
    assert_ne!(e1, e2);
    // Sent back as read (Timestamp and its annotation included), it writes the same data.
    s.update_entity(T, &got, &IfMatch::ETag(e2), WriteMode::Replace)
        .await
        .unwrap();
    let again = s.get_entity(T, "p", "a").await.unwrap();
    assert_eq!(again.properties["big"], "12");
    assert_ne!(again.get_str("Timestamp"), Some(stamp));
}

#[tokio::test(start_paused = true)]
async fn conditional_writes_and_merges() {
    let s = MemStore::new();
    let e = s.insert_entity(T, &row("a")).await.unwrap_err();
    assert_eq!(
        refusal(&e),
        (ErrorKind::NotFound, Some(404), Some("TableNotFound"))
    );
    let e = s.get_entity(T, "p", "a").await.unwrap_err();
    assert_eq!(e.storage_code(), Some("TableNotFound"));
    s.ensure_table(T).await.unwrap();
    let v1 = s
        .insert_entity(T, &row("a").with("x", "1").with("y", "1"))
        .await
        .unwrap();
    let e = s.insert_entity(T, &row("a")).await.unwrap_err();
    assert_eq!(
        refusal(&e),
        (
            ErrorKind::AlreadyExists,
            Some(409),
            Some("EntityAlreadyExists")
        )
    );
    // Merge keeps what it does not name; replace drops it.
    let v2 = s
        .update_entity(
            T,
            &row("a").with("y", "2"),
            &IfMatch::ETag(v1.clone()),
            WriteMode::Merge,
        )
        .await
        .unwrap();
    let got = s.get_entity(T, "p", "a").await.unwrap();
    assert_eq!((got.get_str("x"), got.get_str("y")), (Some("1"), Some("2")));
    let e = s
        .update_entity(T, &row("a"), &IfMatch::ETag(v1.clone()), WriteMode::Replace)
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&e),
        (
            ErrorKind::PreconditionFailed,
            Some(412),
            Some("UpdateConditionNotSatisfied")
        )
    );
    s.update_entity(
        T,
        &row("a").with("z", true),
        &IfMatch::Any,
        WriteMode::Replace,
    )
    .await
    .unwrap();
    let got = s.get_entity(T, "p", "a").await.unwrap();
    assert_eq!(
        (got.get_str("x"), got.properties.get("z")),
        (None, Some(&true.into()))
    );
    let e = s
        .update_entity(T, &row("b"), &IfMatch::Any, WriteMode::Merge)
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&e),
        (ErrorKind::NotFound, Some(404), Some("ResourceNotFound"))
    );
    // Upserts create or replace/merge.
    s.upsert_entity(T, &row("b").with("x", "1"), WriteMode::Merge)
        .await
        .unwrap();
    s.upsert_entity(T, &row("b").with("y", "1"), WriteMode::Merge)
        .await
        .unwrap();
    let b = s.get_entity(T, "p", "b").await.unwrap();
    assert_eq!((b.get_str("x"), b.get_str("y")), (Some("1"), Some("1")));
    s.upsert_entity(T, &row("b").with("y", "2"), WriteMode::Replace)
        .await
        .unwrap();
    let b = s.get_entity(T, "p", "b").await.unwrap();
    assert_eq!((b.get_str("x"), b.get_str("y")), (None, Some("2")));
    // Deletes with If-Match.
    let e = s
        .delete_entity(T, "p", "b", &IfMatch::ETag(v2))
        .await
        .unwrap_err();
    assert_eq!(e.storage_code(), Some("UpdateConditionNotSatisfied"));
    s.delete_entity(T, "p", "b", &IfMatch::ETag(b.etag.unwrap()))
        .await
        .unwrap();
    let e = s
        .delete_entity(T, "p", "b", &IfMatch::Any)
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&e),
        (ErrorKind::NotFound, Some(404), Some("ResourceNotFound"))
    );
    // Table names are case-insensitive; a deleted name is unusable for 40 s.
    assert!(!s.ensure_table("MEMBERS").await.unwrap());
    s.delete_table(T).await.unwrap();
    let e = s.ensure_table(T).await.unwrap_err();
    assert_eq!(
        refusal(&e),
        (ErrorKind::Transient, Some(409), Some("TableBeingDeleted"))
    );
    let e = s.get_entity(T, "p", "a").await.unwrap_err();
    assert_eq!(e.storage_code(), Some("TableNotFound"));
    advance(secs(40)).await;
    assert!(s.ensure_table(T).await.unwrap());
    assert!(s.get_entity(T, "p", "a").await.is_err());
}

#[tokio::test(start_paused = true)]
async fn service_limits_answer_with_azures_codes() {
    let s = with_table().await;
    let code = |r: Result<ETag, Error>| {
        let e = r.unwrap_err();
        assert_eq!(
            (e.kind(), e.status()),
            (ErrorKind::BadRequest, Some(400)),
            "{e}"
        );
        e.storage_code().unwrap().to_owned()
    };
    // 32,768 UTF-16 units is 64 KiB: allowed; one more is not.
    s.insert_entity(T, &row("ok").with("s", "x".repeat(32_768)))
        .await
        .unwrap();
    assert_eq!(
        code(
            s.insert_entity(T, &row("a").with("s", "x".repeat(32_769)))
                .await
        ),
        "PropertyValueTooLarge"
    );
    // Characters outside the BMP count twice.
    assert_eq!(
        code(
            s.insert_entity(T, &row("a").with("s", "\u{1F600}".repeat(16_385)))
                .await
        ),
        "PropertyValueTooLarge"
    );
    let mut e = row("a");
    for i in 0..253 {
        e = e.with(&format!("p{i}"), i);
    }
    assert_eq!(code(s.insert_entity(T, &e).await), "TooManyProperties");
    let mut e = row("a");
    for i in 0..252 {
        e = e.with(&format!("p{i}"), i);
    }
    s.insert_entity(T, &e).await.unwrap();
    // 17 × 64,000 bytes as UTF-16 is over 1 MiB although the JSON is half that.
    let mut e = row("big");
    for i in 0..17 {
        e = e.with(&format!("c{i}"), "y".repeat(32_000));
    }
    assert_eq!(code(s.insert_entity(T, &e).await), "EntityTooLarge");
    // A merge is judged on the merged entity.
    let mut half = row("big");
    for i in 0..9 {
        half = half.with(&format!("c{i}"), "y".repeat(32_000));
    }
    s.insert_entity(T, &half).await.unwrap();
    let mut rest = row("big");
    for i in 9..17 {
        rest = rest.with(&format!("c{i}"), "y".repeat(32_000));
    }
    assert_eq!(
        code(s.upsert_entity(T, &rest, WriteMode::Merge).await),
        "EntityTooLarge"
    );
    // Typed values must be what they claim; an unannotated integer is an Int32.
    assert_eq!(
        code(
            s.insert_entity(
                T,
                &row("a").with("n", "x").with("n@odata.type", "Edm.Int64")
            )
            .await
        ),
        "InvalidInput"
    );
    assert_eq!(
        code(s.insert_entity(T, &row("a").with("n", 1i64 << 40)).await),
        "InvalidInput"
    );
    assert_eq!(
        code(
            s.insert_entity(
                T,
                &row("a").with("n", "1").with("n@odata.type", "Edm.Thing")
            )
            .await
        ),
        "InvalidInput"
    );
    // Forbidden key characters: the adapter refuses them before sending...
    let e = s.insert_entity(T, &row("a/b")).await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (ErrorKind::BadRequest, None));
    // ...and so would the service (U+007F-U+009F are control characters too).
    let r = s.apply(&Op::InsertEntity {
        table: T.into(),
        entity: row("a\u{85}b"),
    });
    assert!(r.is_err());
}

#[tokio::test(start_paused = true)]
async fn batches_are_all_or_nothing() {
    let s = with_table().await;
    let v = s.insert_entity(T, &row("a").with("x", "1")).await.unwrap();
    let ops = vec![
        BatchOp::Upsert(row("b"), WriteMode::Replace),
        BatchOp::Update(
            row("a").with("x", "2"),
            IfMatch::ETag(v.clone()),
            WriteMode::Merge,
        ),
        BatchOp::Insert(row("c")),
    ];
    let etags = s.batch(T, "p", ops.clone()).await.unwrap();
    assert!(etags.iter().all(Option::is_some));
    let a = s.get_entity(T, "p", "a").await.unwrap();
    assert_eq!(a.etag, etags[1]);
    // The same again: the update's ETag and the insert are stale, so nothing applies.
    s.delete_entity(T, "p", "b", &IfMatch::Any).await.unwrap();
    let e = s.batch(T, "p", ops).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.status()),
        (ErrorKind::PreconditionFailed, Some(412)),
        "{e}"
    );
    assert!(
        e.message().contains("no operation was applied") && e.message().contains("operation 1"),
        "{e}"
    );
    assert!(
        s.get_entity(T, "p", "b").await.is_err(),
        "the upsert was applied"
    );
    // A 409 in a batch is an insert that found its row.
    let e = s
        .batch(
            T,
            "p",
            vec![
                BatchOp::Delete {
                    row_key: "a".into(),
                    if_match: IfMatch::Any,
                },
                BatchOp::Insert(row("c")),
            ],
        )
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.status()),
        (ErrorKind::AlreadyExists, Some(409))
    );
    s.get_entity(T, "p", "a").await.unwrap();
    // Deletes answer no ETag.
    let etags = s
        .batch(
            T,
            "p",
            vec![
                BatchOp::Delete {
                    row_key: "a".into(),
                    if_match: IfMatch::Any,
                },
                BatchOp::Insert(row("d")),
            ],
        )
        .await
        .unwrap();
    assert!(etags[0].is_none() && etags[1].is_some());
    // One row at most once.
    let e = s
        .batch(
            T,
            "p",
            vec![
                BatchOp::Upsert(row("e"), WriteMode::Merge),
                BatchOp::Delete {
                    row_key: "e".into(),
                    if_match: IfMatch::Any,
                },
            ],
        )
        .await
        .unwrap_err();
    assert_eq!((e.kind(), e.status()), (ErrorKind::BadRequest, Some(400)));
    assert!(e.message().contains("InvalidDuplicateRow"), "{e}");
    assert!(s.get_entity(T, "p", "e").await.is_err());
    // More than 100, or another partition: refused before sending.
    let many = (0..101)
        .map(|i| BatchOp::Insert(row(&format!("r{i}"))))
        .collect();
    let e = s.batch(T, "p", many).await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (ErrorKind::BadRequest, None));
    let e = s
        .batch(T, "p", vec![BatchOp::Insert(Entity::new("q", "x"))])
        .await
        .unwrap_err();
    assert_eq!((e.kind(), e.status()), (ErrorKind::BadRequest, None));
    // The service refuses them too, should a request reach it.
    let served = s.state.lock().unwrap().tables.apply(
        &Op::Batch {
            table: T.into(),
            partition_key: "p".into(),
            ops: vec![BatchOp::Insert(Entity::new("q", "x"))],
        },
        tokio::time::Instant::now(),
        &mut super::clock::Clock::new(),
    );
    assert!(served
        .unwrap_err()
        .message()
        .contains("CommandsInBatchActOnDifferentPartitions"));
    let hundred = (0..100)
        .map(|i| BatchOp::Insert(row(&format!("r{i:03}"))))
        .collect();
    assert_eq!(s.batch(T, "p", hundred).await.unwrap().len(), 100);
    assert!(s.batch(T, "p", Vec::new()).await.unwrap().is_empty());
    let e = s
        .batch("absent", "p", vec![BatchOp::Insert(row("x"))])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

fn keys(rows: &[Entity]) -> Vec<&str> {
    rows.iter().map(|e| e.row_key.as_str()).collect()
}

#[tokio::test(start_paused = true)]
async fn filters_the_code_uses() {
    let s = with_table().await;
    for rk in [
        "a", "b", "t|owner", "t|v1.0", "t}", "u|owner", "~clock", "~probe~a", "o'neil",
    ] {
        s.insert_entity(T, &row(rk).with("who", rk)).await.unwrap();
    }
    s.insert_entity(T, &Entity::new("other", "a"))
        .await
        .unwrap();
    let q = |f: &str| {
        let f = f.to_owned();
        let s = &s;
        async move { s.partition_rows(T, "p", Some(&f)).await.unwrap() }
    };
    assert_eq!(
        keys(&q("RowKey lt '~probe~'").await),
        ["a", "b", "o'neil", "t|owner", "t|v1.0", "t}", "u|owner", "~clock"]
    );
    assert_eq!(keys(&q("RowKey ge '~probe~'").await), ["~probe~a"]);
    let task = format!(
        "RowKey ge {} and RowKey lt {}",
        samza_azure_coordinator::storage::quote("t|"),
        samza_azure_coordinator::storage::quote("t}")
    );
    assert_eq!(keys(&q(&task).await), ["t|owner", "t|v1.0"]);
    assert_eq!(keys(&q("RowKey eq 'a' or RowKey eq 'b'").await), ["a", "b"]);
    assert_eq!(
        keys(&q("(RowKey gt 'a' and RowKey le 'b') or who eq 'u|owner'").await),
        ["b", "u|owner"]
    );
    assert_eq!(
        keys(
            &q(&format!(
                "who eq {}",
                samza_azure_coordinator::storage::quote("o'neil")
            ))
            .await
        ),
        ["o'neil"]
    );
    assert_eq!(keys(&q("RowKey ne 'a' and RowKey lt 'o'").await), ["b"]);
    assert_eq!(
        keys(&q("PartitionKey eq 'p' and RowKey eq 'a'").await),
        ["a"]
    );
    assert_eq!(keys(&q("PartitionKey eq 'other'").await).len(), 0);
    // A comparison with an absent property is false.
    assert!(q("nothing eq 'a'").await.is_empty());
    // Anything else fails loudly, naming the filter.
    for bad in [
        "heartbeats gt 5L",
        "not RowKey eq 'a'",
        "RowKey eq 'a' and",
        "startswith(RowKey, 'a')",
        "RowKey lt 'a",
    ] {
        let e = s
            .query_partition(T, "p", Some(bad), None, None)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Internal, "{bad}");
        assert!(e.message().contains(bad), "{e}");
    }
}

#[tokio::test(start_paused = true)]
async fn queries_page_in_row_key_order_with_continuations() {
    let s = with_table().await;
    let e = s.query_partition(T, "p", None, None, None).await;
    assert!(e.unwrap().entities.is_empty());
    for i in (0..2_500).rev() {
        s.upsert_entity(T, &row(&format!("r{i:05}")), WriteMode::Replace)
            .await
            .unwrap();
    }
    s.insert_entity(T, &Entity::new("q", "r00000"))
        .await
        .unwrap();
    let pages = s.query_pages(T, "p", None).await.unwrap();
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [1000, 1000, 500]
    );
    let all: Vec<String> = pages.into_iter().flatten().map(|e| e.row_key).collect();
    let want: Vec<String> = (0..2_500).map(|i| format!("r{i:05}")).collect();
    assert_eq!(all, want);
    let page = s
        .query_partition(T, "p", None, Some(7), None)
        .await
        .unwrap();
    assert_eq!(
        keys(&page.entities),
        ["r00000", "r00001", "r00002", "r00003", "r00004", "r00005", "r00006"]
    );
    let c = page.continuation.unwrap();
    assert_eq!(
        (c.next_partition_key.as_str(), c.next_row_key.as_deref()),
        ("p", Some("r00007"))
    );
    let next = s
        .query_partition(T, "p", None, Some(2), Some(c))
        .await
        .unwrap();
    assert_eq!(keys(&next.entities), ["r00007", "r00008"]);
    // A filtered page stops where the scan stopped; the last page may be empty.
    let f = "RowKey ge 'r02497'";
    let page = s
        .query_partition(T, "p", Some(f), Some(3), None)
        .await
        .unwrap();
    assert_eq!(keys(&page.entities), ["r02497", "r02498", "r02499"]);
    assert!(page.continuation.is_none());
    let f = "RowKey lt 'r00003'";
    let page = s
        .query_partition(T, "p", Some(f), Some(3), None)
        .await
        .unwrap();
    assert!(page.continuation.is_some());
    let last = s
        .query_partition(T, "p", Some(f), Some(3), page.continuation)
        .await
        .unwrap();
    assert!(last.entities.is_empty() && last.continuation.is_none());
    for bad in [0, 1001] {
        let e = s
            .query_partition(T, "p", None, Some(bad), None)
            .await
            .unwrap_err();
        assert_eq!((e.kind(), e.status()), (ErrorKind::BadRequest, None));
    }
    assert!(s
        .partition_rows("absent", "p", None)
        .await
        .unwrap()
        .is_empty());
}

#[test]
fn ops_describe_themselves() {
    let op = Op::ReplaceDocument {
        blob: blob(),
        body: body("x"),
        if_match: None,
        lease: None,
    };
    assert_eq!(op.describe(), "replace document jobs/j-1/jobmodel");
    assert!(op.is_write());
    let read = Op::GetEntity {
        table: T.into(),
        partition_key: "p".into(),
        row_key: "r".into(),
    };
    assert_eq!(read.describe(), "read members/p/r");
    assert!(!read.is_write());
    assert!(Op::AcquireLease {
        blob: blob(),
        duration: LeaseDuration::Infinite,
        proposed: None
    }
    .is_write());
    let s = MemStore::new();
    assert_eq!(
        s.apply(&Op::EnsureContainer {
            container: "jobs".into()
        })
        .unwrap(),
        Answer::Bool(true)
    );
}

/// The real membership and checkpoint code over the in-memory store, as against Azurite in
/// `tests/membership.rs` and `tests/checkpoint.rs`.
#[tokio::test(start_paused = true)]
async fn membership_and_checkpoints_run_unchanged() {
    use samza_azure_coordinator::checkpoint::{CheckpointStore, INLINE_CHUNKS};
    use samza_azure_coordinator::membership::{Heartbeat, Membership};

    const TIMEOUT: Duration = Duration::from_secs(10);
    let s = Arc::new(MemStore::new());
    let ids = |v: Vec<&samza_azure_coordinator::membership::Member>| {
        v.iter().map(|m| m.processor_id.clone()).collect::<Vec<_>>()
    };
    let mut a = Membership::new(s.as_ref(), "members1", "proc-a").unwrap();
    let mut b = Membership::new(s.as_ref(), "members1", "proc-b").unwrap();
    let mut c = Membership::new(s.as_ref(), "members1", "proc-c").unwrap();
    a.register().await.unwrap();
    b.register().await.unwrap();
    c.register().await.unwrap();
    let Heartbeat::Notified(mut etag) = a.heartbeat_watching(None).await.unwrap() else {
        panic!("the first watch asks for a re-read");
    };
    for _ in 0..3 {
        advance(secs(4)).await;
        match a.heartbeat_watching(Some(&etag)).await.unwrap() {
            Heartbeat::Quiet(e) => etag = e,
            other => panic!("nobody touched it: {other:?}"),
        }
        b.heartbeat().await.unwrap();
    }
    b.notify(&["proc-a".to_string()]).await.unwrap();
    assert!(matches!(
        a.heartbeat_watching(Some(&etag)).await.unwrap(),
        Heartbeat::Notified(_)
    ));
    // c stopped heartbeating 12 s ago (virtual), by server time.
    let snap = a.snapshot().await.unwrap();
    assert_eq!(ids(snap.live(TIMEOUT)), ["proc-a", "proc-b"]);
    assert_eq!(ids(snap.dead(TIMEOUT)), ["proc-c"]);
    assert_eq!(a.remove_dead(&snap, TIMEOUT).await.unwrap(), ["proc-c"]);
    assert_eq!(
        ids(a.snapshot().await.unwrap().live(TIMEOUT)),
        ["proc-a", "proc-b"]
    );
    b.leave().await.unwrap();
    assert_eq!(ids(a.snapshot().await.unwrap().live(TIMEOUT)), ["proc-a"]);

    // Checkpoints: ownership fencing and a checkpoint too large for the owner row.
    let old = CheckpointStore::new(s.clone(), "checkpoints1", "p1");
    old.create_resources().await.unwrap();
    let new = CheckpointStore::new(s.clone(), "checkpoints1", "p2");
    let task = "Partition 0";
    old.claim(task, 5).await.unwrap();
    old.write(task, 1, "offsets of p1").await.unwrap();
    new.claim(task, 7).await.unwrap();
    assert_eq!(new.read(task).await.unwrap()[&1], "offsets of p1");
    let err = old.write(task, 1, "late").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fenced, "{err}");
    let big: String = (0..40_000)
        .map(|i| format!("{{\"ssp\":{i},\"offset\":\"{i:020}\"}}"))
        .collect();
    assert!(big.len() > INLINE_CHUNKS * 32_000);
    new.write(task, 2, &big).await.unwrap();
    new.write(task, 1, "offsets of p2").await.unwrap();
    let third = CheckpointStore::new(s.clone(), "checkpoints1", "p3");
    third.claim(task, 8).await.unwrap();
    let read = third.read(task).await.unwrap();
    assert_eq!(
        (read[&1].as_str(), read[&2] == big),
        ("offsets of p2", true)
    );
    third.write(task, 2, "small").await.unwrap();
    let rows = s
        .partition_rows("checkpoints1", "tasks", None)
        .await
        .unwrap();
    assert_eq!(keys(&rows), ["Partition 0|owner"]);
}
