//! The storage traits over [`MemStore`]: each call builds its [`Op`] and applies it at once
//! (no latency), for unit tests and simple use. `renew_lease`'s deadline is ignored.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use samza_azure_coordinator::storage::{
    BatchOp, BlobRef, Change, Continuation, Document, DocumentStore, ETag, Entity, IfMatch,
    LeaseDuration, LeaseId, LeaseStore, Page, TableStore, WriteMode,
};
use samza_azure_coordinator::{Error, Result};

use super::{Answer, MemStore, Op};

fn unexpected(op: &str, answer: Answer) -> Error {
    Error::internal(format!("memstore: {op} answered {answer:?}"))
}

macro_rules! expect {
    ($self:ident, $op:expr, $variant:ident) => {{
        let op = $op;
        match $self.apply(&op)? {
            Answer::$variant(v) => Ok(v),
            other => Err(unexpected(&op.describe(), other)),
        }
    }};
    ($self:ident, $op:expr) => {{
        let op = $op;
        match $self.apply(&op)? {
            Answer::Unit => Ok(()),
            other => Err(unexpected(&op.describe(), other)),
        }
    }};
}

#[async_trait]
impl LeaseStore for MemStore {
    async fn acquire_lease(
        &self,
        blob: &BlobRef,
        duration: LeaseDuration,
        proposed: Option<LeaseId>,
    ) -> Result<LeaseId> {
        expect!(
            self,
            Op::AcquireLease {
                blob: blob.clone(),
                duration,
                proposed
            },
            Lease
        )
    }

    async fn renew_lease(
        &self,
        blob: &BlobRef,
        lease: LeaseId,
        _deadline: Option<Duration>,
    ) -> Result<()> {
        expect!(
            self,
            Op::RenewLease {
                blob: blob.clone(),
                lease
            }
        )
    }

    async fn release_lease(&self, blob: &BlobRef, lease: LeaseId) -> Result<()> {
        expect!(
            self,
            Op::ReleaseLease {
                blob: blob.clone(),
                lease
            }
        )
    }

    async fn break_lease(&self, blob: &BlobRef, break_period: Duration) -> Result<Duration> {
        expect!(
            self,
            Op::BreakLease {
                blob: blob.clone(),
                period: break_period
            },
            Duration
        )
    }

    async fn change_lease(
        &self,
        blob: &BlobRef,
        lease: LeaseId,
        proposed: LeaseId,
    ) -> Result<LeaseId> {
        expect!(
            self,
            Op::ChangeLease {
                blob: blob.clone(),
                lease,
                proposed
            },
            Lease
        )
    }
}

#[async_trait]
impl DocumentStore for MemStore {
    async fn ensure_container(&self, container: &str) -> Result<bool> {
        expect!(
            self,
            Op::EnsureContainer {
                container: container.to_owned()
            },
            Bool
        )
    }

    async fn create_document(&self, blob: &BlobRef, body: Bytes) -> Result<ETag> {
        expect!(
            self,
            Op::CreateDocument {
                blob: blob.clone(),
                body
            },
            ETag
        )
    }

    async fn read_document(&self, blob: &BlobRef) -> Result<Document> {
        expect!(self, Op::ReadDocument { blob: blob.clone() }, Document)
    }

    async fn read_document_if_changed(
        &self,
        blob: &BlobRef,
        known: &ETag,
    ) -> Result<Option<Document>> {
        expect!(
            self,
            Op::ReadDocumentIfChanged {
                blob: blob.clone(),
                known: known.clone()
            },
            MaybeDocument
        )
    }

    async fn check_document(&self, blob: &BlobRef, known: &ETag) -> Result<Change> {
        expect!(
            self,
            Op::CheckDocument {
                blob: blob.clone(),
                known: known.clone()
            },
            Change
        )
    }

    async fn replace_document(
        &self,
        blob: &BlobRef,
        body: Bytes,
        if_match: Option<&ETag>,
        lease: Option<LeaseId>,
    ) -> Result<ETag> {
        expect!(
            self,
            Op::ReplaceDocument {
                blob: blob.clone(),
                body,
                if_match: if_match.cloned(),
                lease
            },
            ETag
        )
    }

    async fn delete_document(
        &self,
        blob: &BlobRef,
        if_match: Option<&ETag>,
        lease: Option<LeaseId>,
    ) -> Result<()> {
        expect!(
            self,
            Op::DeleteDocument {
                blob: blob.clone(),
                if_match: if_match.cloned(),
                lease
            }
        )
    }
}

#[async_trait]
impl TableStore for MemStore {
    async fn ensure_table(&self, table: &str) -> Result<bool> {
        expect!(
            self,
            Op::EnsureTable {
                table: table.to_owned()
            },
            Bool
        )
    }

    async fn delete_table(&self, table: &str) -> Result<()> {
        expect!(
            self,
            Op::DeleteTable {
                table: table.to_owned()
            }
        )
    }

    async fn insert_entity(&self, table: &str, entity: &Entity) -> Result<ETag> {
        expect!(
            self,
            Op::InsertEntity {
                table: table.to_owned(),
                entity: entity.clone()
            },
            ETag
        )
    }

    async fn upsert_entity(&self, table: &str, entity: &Entity, mode: WriteMode) -> Result<ETag> {
        expect!(
            self,
            Op::UpsertEntity {
                table: table.to_owned(),
                entity: entity.clone(),
                mode
            },
            ETag
        )
    }

    async fn update_entity(
        &self,
        table: &str,
        entity: &Entity,
        if_match: &IfMatch,
        mode: WriteMode,
    ) -> Result<ETag> {
        expect!(
            self,
            Op::UpdateEntity {
                table: table.to_owned(),
                entity: entity.clone(),
                if_match: if_match.clone(),
                mode
            },
            ETag
        )
    }

    async fn get_entity(&self, table: &str, partition_key: &str, row_key: &str) -> Result<Entity> {
        expect!(
            self,
            Op::GetEntity {
                table: table.to_owned(),
                partition_key: partition_key.to_owned(),
                row_key: row_key.to_owned()
            },
            Entity
        )
    }

    async fn query_partition(
        &self,
        table: &str,
        partition_key: &str,
        filter: Option<&str>,
        page_size: Option<u32>,
        continuation: Option<Continuation>,
    ) -> Result<Page> {
        expect!(
            self,
            Op::QueryPartition {
                table: table.to_owned(),
                partition_key: partition_key.to_owned(),
                filter: filter.map(str::to_owned),
                page_size,
                continuation
            },
            Page
        )
    }

    async fn batch(
        &self,
        table: &str,
        partition_key: &str,
        ops: Vec<BatchOp>,
    ) -> Result<Vec<Option<ETag>>> {
        expect!(
            self,
            Op::Batch {
                table: table.to_owned(),
                partition_key: partition_key.to_owned(),
                ops
            },
            Batch
        )
    }

    async fn delete_entity(
        &self,
        table: &str,
        partition_key: &str,
        row_key: &str,
        if_match: &IfMatch,
    ) -> Result<()> {
        expect!(
            self,
            Op::DeleteEntity {
                table: table.to_owned(),
                partition_key: partition_key.to_owned(),
                row_key: row_key.to_owned(),
                if_match: if_match.clone()
            }
        )
    }
}
