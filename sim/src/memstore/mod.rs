//! In-memory Azure Storage with Azure's documented semantics (not Azurite's), on tokio's
//! clock: blob leases and block blobs ([`blobs`]), Table Storage ([`tables`]) and the few
//! `$filter` forms the coordinator sends ([`filter`]).
//!
//! [`MemStore::apply`] takes one request as an [`Op`] and applies it atomically at one
//! virtual instant. Before it reaches the "server", the checks the real adapter makes on the
//! client side run too, so callers cannot tell the two apart.

mod blobs;
mod clock;
mod filter;
mod tables;
#[cfg(test)]
mod tests;

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use samza_azure_coordinator::storage::names::{validate_container, validate_key, validate_table};
use samza_azure_coordinator::storage::{
    classify_answer, BatchOp, BlobRef, Change, Continuation, Document, DocumentStore, ETag, Entity,
    IfMatch, LeaseDuration, LeaseId, LeaseStore, Page, TableStore, WriteMode, MAX_BATCH_OPERATIONS,
};
use samza_azure_coordinator::{Error, ErrorKind, Result};

pub use filter::Filter;

/// The adapter refuses larger single-shot documents (`document.rs`).
const MAX_DOCUMENT_BYTES: usize = 256 * 1024 * 1024;
/// The adapter refuses entities whose JSON is larger (`table.rs`).
const MAX_ENTITY_JSON_BYTES: usize = 1024 * 1024;

/// One storage request, as the traits' methods take them (owned values).
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    EnsureContainer {
        container: String,
    },
    AcquireLease {
        blob: BlobRef,
        duration: LeaseDuration,
        proposed: Option<LeaseId>,
    },
    RenewLease {
        blob: BlobRef,
        lease: LeaseId,
    },
    ReleaseLease {
        blob: BlobRef,
        lease: LeaseId,
    },
    BreakLease {
        blob: BlobRef,
        period: Duration,
    },
    ChangeLease {
        blob: BlobRef,
        lease: LeaseId,
        proposed: LeaseId,
    },
    CreateDocument {
        blob: BlobRef,
        body: Bytes,
    },
    ReadDocument {
        blob: BlobRef,
    },
    ReadDocumentIfChanged {
        blob: BlobRef,
        known: ETag,
    },
    CheckDocument {
        blob: BlobRef,
        known: ETag,
    },
    ReplaceDocument {
        blob: BlobRef,
        body: Bytes,
        if_match: Option<ETag>,
        lease: Option<LeaseId>,
    },
    DeleteDocument {
        blob: BlobRef,
        if_match: Option<ETag>,
        lease: Option<LeaseId>,
    },
    EnsureTable {
        table: String,
    },
    DeleteTable {
        table: String,
    },
    InsertEntity {
        table: String,
        entity: Entity,
    },
    UpsertEntity {
        table: String,
        entity: Entity,
        mode: WriteMode,
    },
    UpdateEntity {
        table: String,
        entity: Entity,
        if_match: IfMatch,
        mode: WriteMode,
    },
    GetEntity {
        table: String,
        partition_key: String,
        row_key: String,
    },
    QueryPartition {
        table: String,
        partition_key: String,
        filter: Option<String>,
        page_size: Option<u32>,
        continuation: Option<Continuation>,
    },
    Batch {
        table: String,
        partition_key: String,
        ops: Vec<BatchOp>,
    },
    DeleteEntity {
        table: String,
        partition_key: String,
        row_key: String,
        if_match: IfMatch,
    },
}

/// What a request returns, one variant per trait method's result type.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Bool(bool),
    Lease(LeaseId),
    Unit,
    Duration(Duration),
    ETag(ETag),
    Document(Document),
    MaybeDocument(Option<Document>),
    Change(Change),
    Entity(Entity),
    Page(Page),
    Batch(Vec<Option<ETag>>),
}

impl Op {
    /// Whether the request may change server state (so a lost response leaves its outcome
    /// unknown). Lease operations and creates count.
    pub fn is_write(&self) -> bool {
        !matches!(
            self,
            Op::ReadDocument { .. }
                | Op::ReadDocumentIfChanged { .. }
                | Op::CheckDocument { .. }
                | Op::GetEntity { .. }
                | Op::QueryPartition { .. }
        )
    }

    /// A short label for logs, as the adapter labels its errors (e.g. `replace document c/b`).
    pub fn describe(&self) -> String {
        match self {
            Op::EnsureContainer { container } => format!("create container {container}"),
            Op::AcquireLease { blob, .. } => format!("acquire lease on {blob}"),
            Op::RenewLease { blob, .. } => format!("renew lease on {blob}"),
            Op::ReleaseLease { blob, .. } => format!("release lease on {blob}"),
            Op::BreakLease { blob, .. } => format!("break lease on {blob}"),
            Op::ChangeLease { blob, .. } => format!("change lease on {blob}"),
            Op::CreateDocument { blob, .. } => format!("create document {blob}"),
            Op::ReadDocument { blob } => format!("read document {blob}"),
            Op::ReadDocumentIfChanged { blob, .. } => format!("poll document {blob}"),
            Op::CheckDocument { blob, .. } => format!("check document {blob}"),
            Op::ReplaceDocument { blob, .. } => format!("replace document {blob}"),
            Op::DeleteDocument { blob, .. } => format!("delete document {blob}"),
            Op::EnsureTable { table } => format!("create table {table}"),
            Op::DeleteTable { table } => format!("delete table {table}"),
            Op::InsertEntity { table, entity } => {
                format!("insert {table}/{}/{}", entity.partition_key, entity.row_key)
            }
            Op::UpsertEntity { table, entity, .. } => {
                format!("upsert {table}/{}/{}", entity.partition_key, entity.row_key)
            }
            Op::UpdateEntity { table, entity, .. } => {
                format!("update {table}/{}/{}", entity.partition_key, entity.row_key)
            }
            Op::GetEntity {
                table,
                partition_key,
                row_key,
            } => format!("read {table}/{partition_key}/{row_key}"),
            Op::QueryPartition {
                table,
                partition_key,
                ..
            } => format!("query {table}/{partition_key}"),
            Op::Batch {
                table,
                partition_key,
                ops,
            } => format!("batch of {} on {table}/{partition_key}", ops.len()),
            Op::DeleteEntity {
                table,
                partition_key,
                row_key,
                ..
            } => format!("delete {table}/{partition_key}/{row_key}"),
        }
    }

    /// The checks the real adapter makes before sending (`src/storage/*.rs`): the same
    /// refusals, with no status, since nothing reached storage. `Some(answer)` when the
    /// adapter answers without a request at all (an empty batch).
    pub fn client_checks(&self) -> Result<Option<Answer>> {
        match self {
            Op::EnsureContainer { container } => validate_container(container)?,
            Op::CreateDocument { blob, body } | Op::ReplaceDocument { blob, body, .. } => {
                check_body(blob, body)?
            }
            Op::BreakLease { period, .. } if *period > Duration::from_secs(60) => {
                return Err(Error::new(
                    ErrorKind::BadRequest,
                    format!(
                        "lease break period must be 0-60 seconds, found {} s",
                        period.as_secs()
                    ),
                ))
            }
            Op::EnsureTable { table } | Op::DeleteTable { table } => validate_table(table)?,
            Op::InsertEntity { table, entity }
            | Op::UpsertEntity { table, entity, .. }
            | Op::UpdateEntity { table, entity, .. } => check_entity(table, entity)?,
            Op::GetEntity {
                partition_key,
                row_key,
                ..
            }
            | Op::DeleteEntity {
                partition_key,
                row_key,
                ..
            } => {
                validate_key("PartitionKey", partition_key)?;
                validate_key("RowKey", row_key)?;
            }
            Op::QueryPartition {
                table, page_size, ..
            } => {
                validate_table(table)?;
                if let Some(n) = page_size.filter(|n| *n == 0 || *n > 1000) {
                    return Err(Error::new(
                        ErrorKind::BadRequest,
                        format!("query page size must be 1-1000, found {n}"),
                    ));
                }
            }
            Op::Batch {
                table,
                partition_key,
                ops,
            } => {
                if ops.is_empty() {
                    return Ok(Some(Answer::Batch(Vec::new())));
                }
                if ops.len() > MAX_BATCH_OPERATIONS {
                    return Err(Error::new(
                        ErrorKind::BadRequest,
                        format!(
                            "batch on {table}/{partition_key} has {} operations; the limit is {MAX_BATCH_OPERATIONS}",
                            ops.len()
                        ),
                    ));
                }
                validate_key("PartitionKey", partition_key)?;
                for op in ops {
                    if let BatchOp::Insert(e) | BatchOp::Upsert(e, _) | BatchOp::Update(e, _, _) =
                        op
                    {
                        if e.partition_key != *partition_key {
                            return Err(Error::new(
                                ErrorKind::BadRequest,
                                format!(
                                    "batch on partition '{partition_key}' contains an entity of partition '{}'",
                                    e.partition_key
                                ),
                            ));
                        }
                        check_entity(table, e)?;
                    }
                }
            }
            _ => {}
        }
        Ok(None)
    }
}

fn check_body(blob: &BlobRef, body: &Bytes) -> Result<()> {
    if body.is_empty() {
        return Err(Error::new(
            ErrorKind::BadRequest,
            format!("document {blob}: body must not be empty"),
        ));
    }
    if body.len() > MAX_DOCUMENT_BYTES {
        return Err(Error::new(
            ErrorKind::BadRequest,
            format!(
                "document {blob}: {} bytes exceeds the single-write limit of {MAX_DOCUMENT_BYTES} bytes",
                body.len()
            ),
        ));
    }
    Ok(())
}

/// The adapter's `to_json` checks: keys, and the size of the JSON it would send.
fn check_entity(table: &str, entity: &Entity) -> Result<()> {
    validate_key("PartitionKey", &entity.partition_key)?;
    validate_key("RowKey", &entity.row_key)?;
    let json = tables::wire_json(entity);
    let size = serde_json::to_vec(&json).map_or(usize::MAX, |v| v.len());
    if size > MAX_ENTITY_JSON_BYTES {
        return Err(Error::new(
            ErrorKind::BadRequest,
            format!(
                "entity {table}/{}/{} is {size} bytes; the limit is {MAX_ENTITY_JSON_BYTES}",
                entity.partition_key, entity.row_key
            ),
        ));
    }
    Ok(())
}

/// An answer of the "server": HTTP status, Azure's error code and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

pub(crate) fn refuse(status: u16, code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        code,
        message: message.into(),
    }
}

impl Refusal {
    /// Classified exactly as the adapter classifies Azure's answer.
    pub(crate) fn into_error(self) -> Error {
        classify_answer(self.status, Some(self.code), Some(&self.message))
    }
}

pub(crate) type Served<T> = std::result::Result<T, Refusal>;

struct State {
    clock: clock::Clock,
    blobs: blobs::Blobs,
    tables: tables::Tables,
}

/// In-memory storage account: blobs, leases and tables behind one lock.
pub struct MemStore {
    state: Mutex<State>,
}

impl Default for MemStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemStore").finish_non_exhaustive()
    }
}

impl MemStore {
    /// An empty account whose server clock starts now (virtual time) at [`clock::EPOCH`].
    pub fn new() -> Self {
        MemStore {
            state: Mutex::new(State {
                clock: clock::Clock::new(),
                blobs: blobs::Blobs::default(),
                tables: tables::Tables::default(),
            }),
        }
    }

    /// Applies one request atomically at the current virtual instant.
    pub fn apply(&self, op: &Op) -> Result<Answer> {
        if let Some(answer) = op.client_checks()? {
            return Ok(answer);
        }
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let state = &mut *guard;
        let now = tokio::time::Instant::now();
        let result = match op {
            Op::EnsureContainer { .. }
            | Op::AcquireLease { .. }
            | Op::RenewLease { .. }
            | Op::ReleaseLease { .. }
            | Op::BreakLease { .. }
            | Op::ChangeLease { .. }
            | Op::CreateDocument { .. }
            | Op::ReadDocument { .. }
            | Op::ReadDocumentIfChanged { .. }
            | Op::CheckDocument { .. }
            | Op::ReplaceDocument { .. }
            | Op::DeleteDocument { .. } => state
                .blobs
                .apply(op, now, &mut state.clock)
                .map_err(Refusal::into_error),
            _ => state.tables.apply(op, now, &mut state.clock),
        };
        result.map_err(|e| e.context(op.describe()))
    }

    /// The server's `Timestamp` for the current virtual instant, as entities carry it.
    pub fn server_time(&self) -> String {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        clock::format_ticks(state.clock.ticks_at(tokio::time::Instant::now()))
    }
}

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
