//! The requests [`MemStore::apply`](super::MemStore::apply) takes, their answers, and the
//! checks the real adapter makes before it sends a request.

use std::time::Duration;

use bytes::Bytes;
use samza_azure_coordinator::storage::names::{validate_container, validate_key, validate_table};
use samza_azure_coordinator::storage::{
    BatchOp, BlobRef, Change, Continuation, Document, ETag, Entity, IfMatch, LeaseDuration,
    LeaseId, Page, WriteMode, MAX_BATCH_OPERATIONS,
};
use samza_azure_coordinator::{Error, Result};

use super::props;

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
                return Err(Error::bad_request(format!(
                    "lease break period must be 0-60 seconds, found {} s",
                    period.as_secs()
                )))
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
                    return Err(Error::bad_request(format!(
                        "query page size must be 1-1000, found {n}"
                    )));
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
                    return Err(Error::bad_request(
                        format!(
                            "batch on {table}/{partition_key} has {} operations; the limit is {MAX_BATCH_OPERATIONS}",
                            ops.len()
                        ),
                    ));
                }
                validate_key("PartitionKey", partition_key)?;
                for op in ops {
                    if let BatchOp::Insert(e) | BatchOp::Upsert(e, _) | BatchOp::Update(e, _) = op {
                        if e.partition_key != *partition_key {
                            return Err(Error::bad_request(
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
        return Err(Error::bad_request(format!(
            "document {blob}: body must not be empty"
        )));
    }
    if body.len() > MAX_DOCUMENT_BYTES {
        return Err(Error::bad_request(
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
    let json = props::wire_json(entity);
    let size = serde_json::to_vec(&json).map_or(usize::MAX, |v| v.len());
    if size > MAX_ENTITY_JSON_BYTES {
        return Err(Error::bad_request(format!(
            "entity {table}/{}/{} is {size} bytes; the limit is {MAX_ENTITY_JSON_BYTES}",
            entity.partition_key, entity.row_key
        )));
    }
    Ok(())
}
