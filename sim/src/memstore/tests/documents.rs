//! Put Blob, Get Blob and Delete Blob: lease rules before conditional headers.

use bytes::Bytes;
use samza_azure_coordinator::storage::{BlobRef, Change, DocumentStore, Guard, LeaseStore};
use samza_azure_coordinator::ErrorKind;
use tokio::time::advance;

use super::*;
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
    refused(
        s.create_document(&b, body("x")).await,
        (ErrorKind::AlreadyExists, 409, "BlobAlreadyExists"),
    );
    refused(
        s.replace_document(&b, body("x"), Guard::lease(id(1))).await,
        (
            ErrorKind::LeaseLost,
            412,
            "LeaseNotPresentWithBlobOperation",
        ),
    );
    let a = s.acquire_lease(&b, leased(15), Some(id(1))).await.unwrap();
    // Leased: a create is refused for the lease first (Azure; Azurite #2637 says 409).
    refused(
        s.create_document(&b, body("x")).await,
        (ErrorKind::LeaseLost, 412, "LeaseIdMissing"),
    );
    assert!(!s.create_if_absent(&b, body("x")).await.unwrap());
    let e = s
        .replace_document(&b, body("x"), Guard::if_match(v1.clone()))
        .await
        .unwrap_err();
    assert_eq!(e.storage_code(), Some("LeaseIdMissing"));
    refused(
        s.replace_document(&b, body("x"), Guard::lease(id(2))).await,
        (
            ErrorKind::LeaseLost,
            412,
            "LeaseIdMismatchWithBlobOperation",
        ),
    );
    // With the lease: the If-Match condition decides.
    let v2 = s
        .replace_document(&b, body("v2"), Guard::leader(v1.clone(), a))
        .await
        .unwrap();
    assert_ne!(v1, v2);
    refused(
        s.replace_document(&b, body("x"), Guard::leader(v1.clone(), a))
            .await,
        (ErrorKind::PreconditionFailed, 412, "ConditionNotMet"),
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
        .replace_document(&b, body("x"), Guard::lease(a))
        .await
        .unwrap_err();
    assert_eq!(e.storage_code(), Some("LeaseLost"));
    let v3 = s
        .replace_document(&b, body("v3"), Guard::if_match(v2.clone()))
        .await
        .unwrap();
    // Delete follows the same rules.
    let a = s.acquire_lease(&b, leased(15), Some(id(1))).await.unwrap();
    let e = s
        .delete_document(&b, Guard::if_match(v3.clone()))
        .await
        .unwrap_err();
    assert_eq!(e.storage_code(), Some("LeaseIdMissing"));
    let e = s
        .delete_document(&b, Guard::leader(v1.clone(), a))
        .await
        .unwrap_err();
    assert_eq!(e.storage_code(), Some("ConditionNotMet"));
    s.delete_document(&b, Guard::leader(v3.clone(), a))
        .await
        .unwrap();
    refused(
        s.read_document(&b).await,
        (ErrorKind::NotFound, 404, "BlobNotFound"),
    );
    let e = s.delete_document(&b, Guard::NONE).await.unwrap_err();
    assert_eq!(e.storage_code(), Some("BlobNotFound"));
    // A re-created blob has no lease; If-Match on a missing blob is 412.
    let e = s
        .replace_document(&b, body("x"), Guard::if_match(v3.clone()))
        .await
        .unwrap_err();
    assert_eq!(e.storage_code(), Some("ConditionNotMet"));
    let e = s
        .replace_document(&b, body("x"), Guard::lease(a))
        .await
        .unwrap_err();
    assert_eq!(e.storage_code(), Some("LeaseNotPresentWithBlobOperation"));
    assert!(s.create_if_absent(&b, body("new")).await.unwrap());
    assert_eq!(lease_state(&s), "available");
    // Containers must exist; the adapter refuses empty bodies before sending.
    let nowhere = BlobRef::new("nope", "b").unwrap();
    refused(
        s.create_document(&nowhere, body("x")).await,
        (ErrorKind::NotFound, 404, "ContainerNotFound"),
    );
    let e = s.create_document(&b, Bytes::new()).await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (ErrorKind::BadRequest, None));
    assert!(e.message().contains("jobs/j-1/jobmodel"), "{e}");
}
