//! Versioned documents in block blobs on the Azure backend.

use async_trait::async_trait;
use azure_core::request_options::{IfMatchCondition, LeaseId as SdkLeaseId};
use bytes::Bytes;
use futures::StreamExt;

use super::azure::{classify, AzureStorage};
use super::retry::Idempotency;
use super::{BlobRef, Change, Document, DocumentStore, ETag, Guard};
use crate::error::{Error, ErrorKind, Result};

/// A block blob written in one Put Blob call may be at most this large (service limit for a
/// single-shot upload at the API version the SDK sends).
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024 * 1024;

fn check_body(blob: &BlobRef, body: &Bytes) -> Result<()> {
    // The SDK's GET always sends a Range header, which storage answers with 416 for an empty
    // blob; so empty documents are refused on write rather than unreadable later.
    if body.is_empty() {
        return Err(Error::bad_request(format!(
            "document {blob}: body must not be empty"
        )));
    }
    if body.len() > MAX_DOCUMENT_BYTES {
        return Err(Error::bad_request(format!(
                "document {blob}: {} bytes exceeds the single-write limit of {MAX_DOCUMENT_BYTES} bytes",
                body.len()
            ),
        ));
    }
    Ok(())
}

fn is_not_modified(e: &Error) -> bool {
    e.status() == Some(304)
}

#[async_trait]
impl DocumentStore for AzureStorage {
    async fn ensure_container(&self, container: &str) -> Result<bool> {
        super::names::validate_container(container)?;
        self.run_create(
            format!("create container {container}"),
            self.container_client(container),
            |client| async move { client.create().await.map(|_| ()).map_err(classify) },
        )
        .await
    }

    async fn create_document(&self, blob: &BlobRef, body: Bytes) -> Result<ETag> {
        check_body(blob, &body)?;
        self.run_on(
            format!("create document {blob}"),
            Idempotency::Conditional,
            (self.blob_client(blob), body),
            |(client, body)| async move {
                let resp = client
                    .put_block_blob(body)
                    .content_type("application/octet-stream")
                    .if_match(IfMatchCondition::NotMatch("*".to_owned()))
                    .await
                    .map_err(classify)?;
                Ok(ETag(resp.etag))
            },
        )
        .await
    }

    async fn read_document(&self, blob: &BlobRef) -> Result<Document> {
        self.run_on(
            format!("read document {blob}"),
            Idempotency::Idempotent,
            self.blob_client(blob),
            |client| async move {
                read(client, None)
                    .await
                    .map(|d| d.expect("unconditional read"))
            },
        )
        .await
    }

    async fn read_document_if_changed(
        &self,
        blob: &BlobRef,
        known: &ETag,
    ) -> Result<Option<Document>> {
        self.run_on(
            format!("poll document {blob}"),
            Idempotency::Idempotent,
            self.blob_client(blob),
            |client| read(client, Some(known.clone())),
        )
        .await
    }

    async fn check_document(&self, blob: &BlobRef, known: &ETag) -> Result<Change> {
        self.run_on(
            format!("check document {blob}"),
            Idempotency::Idempotent,
            (self.blob_client(blob), known.clone()),
            |(client, known)| async move {
                match client
                    .get_properties()
                    .if_match(IfMatchCondition::NotMatch(known.0))
                    .await
                    .map_err(classify)
                {
                    Ok(props) => Ok(Change::Changed(ETag(
                        props.blob.properties.etag.to_string(),
                    ))),
                    Err(e) if is_not_modified(&e) => Ok(Change::Unchanged),
                    Err(e) => Err(e),
                }
            },
        )
        .await
    }

    async fn replace_document(&self, blob: &BlobRef, body: Bytes, guard: Guard) -> Result<ETag> {
        check_body(blob, &body)?;
        let idempotency = Idempotency::of_blob_write(&guard);
        self.run_on(
            format!("replace document {blob}"),
            idempotency,
            (self.blob_client(blob), body, guard),
            |(client, body, Guard { if_match, lease })| async move {
                let mut put = client
                    .put_block_blob(body)
                    .content_type("application/octet-stream");
                if let Some(etag) = if_match {
                    put = put.if_match(IfMatchCondition::Match(etag.0));
                }
                if let Some(lease) = lease {
                    put = put.lease_id(SdkLeaseId::from(lease.0));
                }
                let resp = put.await.map_err(classify)?;
                Ok(ETag(resp.etag))
            },
        )
        .await
    }

    async fn delete_document(&self, blob: &BlobRef, guard: Guard) -> Result<()> {
        self.run_on(
            format!("delete document {blob}"),
            Idempotency::Conditional,
            (self.blob_client(blob), guard),
            |(client, Guard { if_match, lease })| async move {
                let mut del = client.delete();
                if let Some(etag) = if_match {
                    del = del.if_match(IfMatchCondition::Match(etag.0));
                }
                if let Some(lease) = lease {
                    del = del.lease_id(SdkLeaseId::from(lease.0));
                }
                del.await.map(|_| ()).map_err(classify)
            },
        )
        .await
    }
}

/// GET the whole blob; with `known`, `None` means 304 (still at that version).
async fn read(
    client: azure_storage_blobs::prelude::BlobClient,
    known: Option<ETag>,
) -> Result<Option<Document>> {
    let mut get = client.get();
    if let Some(known) = &known {
        get = get.if_match(IfMatchCondition::NotMatch(known.0.clone()));
    }
    let mut stream = get.into_stream();
    let mut body = Vec::new();
    let mut etag: Option<ETag> = None;
    while let Some(page) = stream.next().await {
        let page = match page.map_err(classify) {
            Ok(p) => p,
            Err(e) if known.is_some() && is_not_modified(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let page_etag = ETag(page.blob.properties.etag.to_string());
        // A blob replaced between two range reads would splice two versions together.
        if let Some(first) = &etag {
            if *first != page_etag {
                return Err(Error::new(
                    ErrorKind::Transient,
                    "document changed while it was being read; retrying",
                ));
            }
        }
        etag = Some(page_etag);
        let data = page.data.collect().await.map_err(classify)?;
        body.extend_from_slice(&data);
    }
    let etag = etag.ok_or_else(|| Error::internal("storage returned no pages for a blob read"))?;
    Ok(Some(Document {
        body: Bytes::from(body),
        etag,
    }))
}
