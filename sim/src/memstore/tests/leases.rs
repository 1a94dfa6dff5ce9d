//! Lease Blob: every state (available, leased, expired, breaking, broken) and transition.

use std::time::Duration;

use samza_azure_coordinator::storage::{
    DocumentStore, ETag, Guard, LeaseDuration, LeaseId, LeaseStore,
};
use samza_azure_coordinator::ErrorKind;
use tokio::time::advance;

use super::*;
#[tokio::test(start_paused = true)]
async fn acquire_renew_and_expiry_follow_the_virtual_clock() {
    let s = with_blob().await;
    let b = blob();
    assert_eq!(lease_state(&s), "available");
    let a = s.acquire_lease(&b, leased(15), Some(id(1))).await.unwrap();
    assert_eq!(a, id(1));
    assert_eq!(lease_state(&s), "leased");
    // Someone else: 409 LeaseAlreadyPresent; the holder again: the same lease, new duration.
    let e = refused(
        s.acquire_lease(&b, leased(15), Some(id(2))).await,
        (ErrorKind::LeaseHeld, 409, "LeaseAlreadyPresent"),
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
    // A write refused for its condition is no modification.
    advance(secs(20)).await;
    let stale = ETag("\"0x8D0\"".into());
    let e = s
        .replace_document(&b, body("x"), Guard::if_match(stale))
        .await
        .unwrap_err();
    assert_eq!(e.storage_code(), Some("ConditionNotMet"));
    s.renew_lease(&b, a, None).await.unwrap();
    // Once expired and written, it does not.
    advance(secs(20)).await;
    s.replace_document(&b, body("v2"), Guard::NONE)
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
        refused(
            s.acquire_lease(&blob(), leased(bad), None).await,
            (ErrorKind::BadRequest, 400, "InvalidHeaderValue"),
        );
    }
    let missing = BlobRef::new("jobs", "nothing").unwrap();
    refused(
        s.acquire_lease(&missing, leased(15), None).await,
        (ErrorKind::NotFound, 404, "BlobNotFound"),
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
    refused(
        s.acquire_lease(&b, leased(15), Some(id(2))).await,
        (
            ErrorKind::LeaseHeld,
            409,
            "LeaseIsBreakingAndCannotBeAcquired",
        ),
    );
    // Even the holder cannot acquire, renew or change while it breaks.
    let e = s.acquire_lease(&b, leased(15), Some(a)).await.unwrap_err();
    assert_eq!(e.storage_code(), Some("LeaseIsBreakingAndCannotBeAcquired"));
    refused(
        s.renew_lease(&b, a, None).await,
        (ErrorKind::LeaseLost, 409, "LeaseIsBrokenAndCannotBeRenewed"),
    );
    let e = s.change_lease(&b, a, id(3)).await.unwrap_err();
    assert_eq!(e.storage_code(), Some("LeaseIsBreakingAndCannotBeChanged"));
    // Writes while breaking still need the lease.
    let e = s
        .replace_document(&b, body("x"), Guard::NONE)
        .await
        .unwrap_err();
    assert_eq!(e.storage_code(), Some("LeaseIdMissing"));
    s.replace_document(&b, body("v2"), Guard::lease(a))
        .await
        .unwrap();
    advance(secs(4)).await;
    assert_eq!(lease_state(&s), "broken");
    let e = s.renew_lease(&b, a, None).await.unwrap_err();
    assert_eq!(e.storage_code(), Some("LeaseIsBrokenAndCannotBeRenewed"));
    // Broken: writes need no lease, the old lease id is refused, a break again is 0 s.
    refused(
        s.replace_document(&b, body("x"), Guard::lease(a)).await,
        (ErrorKind::LeaseLost, 412, "LeaseLost"),
    );
    s.replace_document(&b, body("v3"), Guard::NONE)
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
    refused(
        s.break_lease(&b, secs(5)).await,
        (
            ErrorKind::LeaseLost,
            409,
            "LeaseNotPresentWithLeaseOperation",
        ),
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
    refused(
        s.release_lease(&b, id(9)).await,
        (
            ErrorKind::LeaseLost,
            409,
            "LeaseIdMismatchWithLeaseOperation",
        ),
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
