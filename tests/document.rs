//! Versioned documents in block blobs against a real (strict) Azurite.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{azurite, unique};
use samza_azure_coordinator::storage::{
    AzureStorage, BlobRef, Change, DocumentStore, Guard, LeaseDuration, LeaseId, LeaseStore,
};
use samza_azure_coordinator::ErrorKind;

async fn doc(s: &AzureStorage) -> BlobRef {
    let container = unique("doc");
    assert!(s.ensure_container(&container).await.unwrap());
    assert!(
        !s.ensure_container(&container).await.unwrap(),
        "second ensure reports existing"
    );
    BlobRef::new(&container, "jobmodel").unwrap()
}

fn kib10(tag: u8) -> Bytes {
    Bytes::from(vec![tag; 10 * 1024])
}

#[tokio::test]
async fn create_if_absent_then_conflict() {
    let s = azurite().storage();
    let blob = doc(&s).await;
    let etag = s.create_document(&blob, kib10(1)).await.unwrap();
    let e = s.create_document(&blob, kib10(2)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    let read = s.read_document(&blob).await.unwrap();
    assert_eq!(read.etag, etag);
    assert_eq!(read.body, kib10(1), "the losing create changed nothing");
}

#[tokio::test]
async fn compare_and_swap_on_etag() {
    let s = azurite().storage();
    let blob = doc(&s).await;
    let v1 = s.create_document(&blob, kib10(1)).await.unwrap();
    let v2 = s
        .replace_document(&blob, kib10(2), Guard::if_match(v1.clone()))
        .await
        .unwrap();
    assert_ne!(v1, v2);
    let e = s
        .replace_document(&blob, kib10(3), Guard::if_match(v1))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PreconditionFailed, "{e}");
    assert_eq!(s.read_document(&blob).await.unwrap().body, kib10(2));
}

#[tokio::test]
async fn change_checks_answer_unchanged_without_a_body() {
    let s = azurite().storage();
    let blob = doc(&s).await;
    let v1 = s.create_document(&blob, kib10(1)).await.unwrap();
    assert_eq!(
        s.check_document(&blob, &v1).await.unwrap(),
        Change::Unchanged
    );
    assert_eq!(s.read_document_if_changed(&blob, &v1).await.unwrap(), None);
    let v2 = s
        .replace_document(&blob, kib10(2), Guard::if_match(v1.clone()))
        .await
        .unwrap();
    assert_eq!(
        s.check_document(&blob, &v1).await.unwrap(),
        Change::Changed(v2.clone())
    );
    let d = s
        .read_document_if_changed(&blob, &v1)
        .await
        .unwrap()
        .expect("changed");
    assert_eq!((d.etag, d.body), (v2, kib10(2)));
}

#[tokio::test]
async fn lease_fences_writes_including_a_paused_ex_leader() {
    let (leader, rival) = (azurite().storage(), azurite().storage());
    let blob = doc(&leader).await;
    let v1 = leader.create_document(&blob, kib10(1)).await.unwrap();
    let lease = leader
        .acquire_lease(&blob, LeaseDuration::Seconds(15), None)
        .await
        .unwrap();

    let e = rival
        .replace_document(&blob, kib10(9), Guard::NONE)
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::LeaseLost,
        "write without the lease: {e}"
    );
    let e = rival
        .replace_document(
            &blob,
            kib10(9),
            Guard::leader(v1.clone(), LeaseId::random()),
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::LeaseLost,
        "write with a wrong lease: {e}"
    );
    let v2 = leader
        .replace_document(&blob, kib10(2), Guard::leader(v1, lease))
        .await
        .unwrap();

    // The leader "pauses"; the rival breaks its lease and takes over.
    rival.break_lease(&blob, Duration::ZERO).await.unwrap();
    let rival_lease = rival
        .acquire_lease(&blob, LeaseDuration::Seconds(15), None)
        .await
        .unwrap();
    // The ex-leader wakes with the ETag it last wrote: storage rejects it on the lease alone.
    let e = leader
        .replace_document(&blob, kib10(3), Guard::leader(v2.clone(), lease))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LeaseLost, "ex-leader write: {e}");
    let e = leader
        .delete_document(&blob, Guard::lease(lease))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LeaseLost, "ex-leader delete: {e}");
    rival
        .replace_document(&blob, kib10(4), Guard::leader(v2, rival_lease))
        .await
        .unwrap();
    assert_eq!(rival.read_document(&blob).await.unwrap().body, kib10(4));
}

#[tokio::test]
async fn large_document_reads_back_whole() {
    let s = azurite().storage();
    let blob = doc(&s).await;
    // Larger than the SDK's 4 MiB range size, so the read spans several ranges.
    let body: Vec<u8> = (0..9 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let etag = s
        .create_document(&blob, Bytes::from(body.clone()))
        .await
        .unwrap();
    let d = s.read_document(&blob).await.unwrap();
    assert_eq!(d.etag, etag);
    assert!(d.body == body, "body differs");
}

#[tokio::test]
async fn errors_name_what_failed() {
    let s = azurite().storage();
    let blob = doc(&s).await;
    let e = s.read_document(&blob).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.message().contains(&blob.to_string()), "{e}");
    let e = s.create_document(&blob, Bytes::new()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadRequest);
    assert!(e.message().contains("empty"), "{e}");
    let e = BlobRef::new("Bad_Name", "x").unwrap_err();
    assert!(e.message().contains("Bad_Name"), "{e}");
    s.create_document(&blob, kib10(1)).await.unwrap();
    s.delete_document(&blob, Guard::NONE).await.unwrap();
    assert_eq!(
        s.read_document(&blob).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}
