//! The storage traits over anything that answers [`Op`]s: [`MemStore`] itself (each request
//! applied at once, for unit tests) and the simulator's network client (`net::Client`), so the
//! mapping from trait calls to requests is written once.

use std::ops::Deref;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use samza_azure_coordinator::storage::{
    BatchOp, BlobRef, Change, Document, DocumentStore, ETag, Entity, Guard, IfMatch, LeaseDuration,
    LeaseId, LeaseStore, Page, PageQuery, TableStore, Update, WriteMode,
};
use samza_azure_coordinator::{Error, Result};

use super::{Answer, MemStore, Op};

/// Something that answers storage requests.
#[async_trait]
pub trait Requests: Send + Sync {
    /// Answers `op`; `deadline` bounds it with its retries (only renew sets one).
    async fn request(&self, op: Op, deadline: Option<Duration>) -> Result<Answer>;
}

#[async_trait]
impl Requests for MemStore {
    async fn request(&self, op: Op, _deadline: Option<Duration>) -> Result<Answer> {
        self.apply(&op)
    }
}

/// The storage traits over `R`'s requests.
pub struct Endpoint<R>(pub R);

impl<R> Deref for Endpoint<R> {
    type Target = R;

    fn deref(&self) -> &R {
        &self.0
    }
}

fn unexpected(op: &str, answer: Answer) -> Error {
    Error::internal(format!(
        "the simulated storage answered {op} with {answer:?}"
    ))
}

impl<R: Requests> Endpoint<R> {
    async fn ask(&self, op: Op, deadline: Option<Duration>) -> Result<Answer> {
        self.0.request(op, deadline).await
    }
}

/// Sends the op and takes the answer of the variant the call returns.
macro_rules! expect {
    ($self:ident, $op:expr, $variant:ident) => {{
        let op = $op;
        let what = op.describe();
        match $self.ask(op, None).await? {
            Answer::$variant(v) => Ok(v),
            other => Err(unexpected(&what, other)),
        }
    }};
    ($self:ident, $op:expr) => {{
        let op = $op;
        let what = op.describe();
        match $self.ask(op, None).await? {
            Answer::Unit => Ok(()),
            other => Err(unexpected(&what, other)),
        }
    }};
}

#[async_trait]
impl<R: Requests> LeaseStore for Endpoint<R> {
    async fn acquire_lease(
        &self,
        blob: &BlobRef,
        duration: LeaseDuration,
        proposed: Option<LeaseId>,
    ) -> Result<LeaseId> {
        let blob = blob.clone();
        expect!(
            self,
            Op::AcquireLease {
                blob,
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
        deadline: Option<Duration>,
    ) -> Result<()> {
        let op = Op::RenewLease {
            blob: blob.clone(),
            lease,
        };
        let what = op.describe();
        match self.ask(op, deadline).await? {
            Answer::Unit => Ok(()),
            other => Err(unexpected(&what, other)),
        }
    }

    async fn release_lease(&self, blob: &BlobRef, lease: LeaseId) -> Result<()> {
        let blob = blob.clone();
        expect!(self, Op::ReleaseLease { blob, lease })
    }

    async fn break_lease(&self, blob: &BlobRef, period: Duration) -> Result<Duration> {
        let blob = blob.clone();
        expect!(self, Op::BreakLease { blob, period }, Duration)
    }

    async fn change_lease(
        &self,
        blob: &BlobRef,
        lease: LeaseId,
        proposed: LeaseId,
    ) -> Result<LeaseId> {
        let blob = blob.clone();
        expect!(
            self,
            Op::ChangeLease {
                blob,
                lease,
                proposed
            },
            Lease
        )
    }
}

#[async_trait]
impl<R: Requests> DocumentStore for Endpoint<R> {
    async fn ensure_container(&self, container: &str) -> Result<bool> {
        let container = container.to_owned();
        expect!(self, Op::EnsureContainer { container }, Bool)
    }

    async fn create_document(&self, blob: &BlobRef, body: Bytes) -> Result<ETag> {
        let blob = blob.clone();
        expect!(self, Op::CreateDocument { blob, body }, ETag)
    }

    async fn read_document(&self, blob: &BlobRef) -> Result<Document> {
        let blob = blob.clone();
        expect!(self, Op::ReadDocument { blob }, Document)
    }

    async fn read_document_if_changed(
        &self,
        blob: &BlobRef,
        known: &ETag,
    ) -> Result<Option<Document>> {
        let (blob, known) = (blob.clone(), known.clone());
        expect!(
            self,
            Op::ReadDocumentIfChanged { blob, known },
            MaybeDocument
        )
    }

    async fn check_document(&self, blob: &BlobRef, known: &ETag) -> Result<Change> {
        let (blob, known) = (blob.clone(), known.clone());
        expect!(self, Op::CheckDocument { blob, known }, Change)
    }

    async fn replace_document(&self, blob: &BlobRef, body: Bytes, guard: Guard) -> Result<ETag> {
        let op = Op::ReplaceDocument {
            blob: blob.clone(),
            body,
            if_match: guard.if_match,
            lease: guard.lease,
        };
        expect!(self, op, ETag)
    }

    async fn delete_document(&self, blob: &BlobRef, guard: Guard) -> Result<()> {
        let op = Op::DeleteDocument {
            blob: blob.clone(),
            if_match: guard.if_match,
            lease: guard.lease,
        };
        expect!(self, op)
    }
}

#[async_trait]
impl<R: Requests> TableStore for Endpoint<R> {
    async fn ensure_table(&self, table: &str) -> Result<bool> {
        let table = table.to_owned();
        expect!(self, Op::EnsureTable { table }, Bool)
    }

    async fn delete_table(&self, table: &str) -> Result<()> {
        let table = table.to_owned();
        expect!(self, Op::DeleteTable { table })
    }

    async fn insert_entity(&self, table: &str, entity: &Entity) -> Result<ETag> {
        let (table, entity) = (table.to_owned(), entity.clone());
        expect!(self, Op::InsertEntity { table, entity }, ETag)
    }

    async fn upsert_entity(&self, table: &str, entity: &Entity, mode: WriteMode) -> Result<ETag> {
        let (table, entity) = (table.to_owned(), entity.clone());
        expect!(
            self,
            Op::UpsertEntity {
                table,
                entity,
                mode
            },
            ETag
        )
    }

    async fn update_entity(&self, table: &str, entity: &Entity, update: Update) -> Result<ETag> {
        let op = Op::UpdateEntity {
            table: table.to_owned(),
            entity: entity.clone(),
            if_match: update.if_match,
            mode: update.mode,
        };
        expect!(self, op, ETag)
    }

    async fn get_entity(&self, table: &str, partition_key: &str, row_key: &str) -> Result<Entity> {
        let op = Op::GetEntity {
            table: table.to_owned(),
            partition_key: partition_key.to_owned(),
            row_key: row_key.to_owned(),
        };
        expect!(self, op, Entity)
    }

    async fn query_partition(
        &self,
        table: &str,
        partition_key: &str,
        query: PageQuery<'_>,
    ) -> Result<Page> {
        let op = Op::QueryPartition {
            table: table.to_owned(),
            partition_key: partition_key.to_owned(),
            filter: query.filter.map(str::to_owned),
            page_size: query.page_size,
            continuation: query.continuation,
        };
        expect!(self, op, Page)
    }

    async fn batch(
        &self,
        table: &str,
        partition_key: &str,
        ops: Vec<BatchOp>,
    ) -> Result<Vec<Option<ETag>>> {
        let (table, partition_key) = (table.to_owned(), partition_key.to_owned());
        expect!(
            self,
            Op::Batch {
                table,
                partition_key,
                ops
            },
            Batch
        )
    }

    async fn delete_entity(&self, table: &str, entity: &Entity, if_match: &IfMatch) -> Result<()> {
        let op = Op::DeleteEntity {
            table: table.to_owned(),
            partition_key: entity.partition_key.clone(),
            row_key: entity.row_key.clone(),
            if_match: if_match.clone(),
        };
        expect!(self, op)
    }
}
