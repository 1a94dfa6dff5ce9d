//! Blob leases against a real (strict) Azurite.

mod common;

use std::time::{Duration, Instant};

use common::{azurite, lease_blob, unique};
use samza_azure_coordinator::storage::{
    AzureStorage, BlobRef, DocumentStore, LeaseDuration, LeaseId, LeaseStore,
};
use samza_azure_coordinator::ErrorKind;

/// Retries `acquire` until it succeeds or `bound` passes: storage decides when a lease frees.
async fn acquire_within(s: &AzureStorage, blob: &BlobRef, bound: Duration) -> LeaseId {
    let start = Instant::now();
    loop {
        match s
            .acquire_lease(blob, LeaseDuration::Seconds(15), None)
            .await
        {
            Ok(id) => return id,
            Err(e) if e.kind() == ErrorKind::LeaseHeld && start.elapsed() < bound => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("lease not acquirable within {bound:?}: {e}"),
        }
    }
}

#[tokio::test]
async fn acquire_conflict_renew_release() {
    let (a, b) = (azurite().storage(), azurite().storage());
    let blob = lease_blob(&a, "lease").await;
    let id = a
        .acquire_lease(&blob, LeaseDuration::seconds(15).unwrap(), None)
        .await
        .unwrap();
    let e = b
        .acquire_lease(&blob, LeaseDuration::Seconds(15), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LeaseHeld, "{e}");
    a.renew_lease(&blob, id, None).await.unwrap();
    let e = b
        .renew_lease(&blob, LeaseId::random(), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LeaseLost, "{e}");
    a.release_lease(&blob, id).await.unwrap();
    let id_b = b
        .acquire_lease(&blob, LeaseDuration::Seconds(60), None)
        .await
        .unwrap();
    assert_ne!(id, id_b);
    let e = a.renew_lease(&blob, id, None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LeaseLost, "{e}");
}

#[tokio::test]
async fn proposed_id_is_used_and_reacquire_by_holder_is_idempotent() {
    let s = azurite().storage();
    let blob = lease_blob(&s, "lease").await;
    let proposed = LeaseId::random();
    let id = s
        .acquire_lease(&blob, LeaseDuration::Seconds(20), Some(proposed))
        .await
        .unwrap();
    assert_eq!(id, proposed);
    // A retried acquire with the same id (lost response) succeeds rather than conflicting.
    let again = s
        .acquire_lease(&blob, LeaseDuration::Seconds(20), Some(proposed))
        .await
        .unwrap();
    assert_eq!(again, proposed);
}

#[tokio::test]
async fn infinite_lease_and_immediate_break() {
    let (a, b) = (azurite().storage(), azurite().storage());
    let blob = lease_blob(&a, "lease").await;
    let id = a
        .acquire_lease(&blob, LeaseDuration::Infinite, None)
        .await
        .unwrap();
    a.renew_lease(&blob, id, None).await.unwrap();
    let remaining = b.break_lease(&blob, Duration::ZERO).await.unwrap();
    assert_eq!(remaining, Duration::ZERO);
    let e = a.renew_lease(&blob, id, None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LeaseLost, "{e}");
    b.acquire_lease(&blob, LeaseDuration::Seconds(15), None)
        .await
        .unwrap();
}

#[tokio::test]
async fn break_with_period_blocks_acquire_until_it_ends() {
    let (a, b) = (azurite().storage(), azurite().storage());
    let blob = lease_blob(&a, "lease").await;
    a.acquire_lease(&blob, LeaseDuration::Seconds(60), None)
        .await
        .unwrap();
    let remaining = b.break_lease(&blob, Duration::from_secs(3)).await.unwrap();
    assert!(
        remaining > Duration::ZERO && remaining <= Duration::from_secs(3),
        "{remaining:?}"
    );
    let e = b
        .acquire_lease(&blob, LeaseDuration::Seconds(15), None)
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::LeaseHeld,
        "acquire during the break period: {e}"
    );
    acquire_within(&b, &blob, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn change_moves_the_lease_to_a_new_id() {
    let s = azurite().storage();
    let blob = lease_blob(&s, "lease").await;
    let old = s
        .acquire_lease(&blob, LeaseDuration::Seconds(15), None)
        .await
        .unwrap();
    let new = LeaseId::random();
    assert_eq!(s.change_lease(&blob, old, new).await.unwrap(), new);
    s.renew_lease(&blob, new, None).await.unwrap();
    let e = s.renew_lease(&blob, old, None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LeaseLost, "{e}");
}

#[tokio::test]
async fn expired_lease_is_taken_over_and_old_holder_cannot_renew() {
    let (a, b) = (azurite().storage(), azurite().storage());
    let blob = lease_blob(&a, "lease").await;
    let old = a
        .acquire_lease(&blob, LeaseDuration::Seconds(15), None)
        .await
        .unwrap();
    // b waits for storage to free the lease (15 s), then owns it.
    let new = acquire_within(&b, &blob, Duration::from_secs(30)).await;
    assert_ne!(old, new);
    let e = a.renew_lease(&blob, old, None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LeaseLost, "{e}");
}

#[tokio::test]
async fn bad_arguments_and_missing_blob() {
    let s = azurite().storage();
    let e = LeaseDuration::seconds(10).unwrap_err();
    assert!(
        e.message().contains("15-60") && e.message().contains("10"),
        "{e}"
    );
    assert_eq!(
        LeaseDuration::from_secs_or_infinite(-1).unwrap(),
        LeaseDuration::Infinite
    );
    let container = unique("lease");
    s.ensure_container(&container).await.unwrap();
    let missing = BlobRef::new(&container, "nothing-here").unwrap();
    let e = s
        .acquire_lease(&missing, LeaseDuration::Seconds(15), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.message().contains("nothing-here"), "{e}");
}
