//! Azure Storage primitives behind small traits, so the SDK can be swapped without touching
//! the coordination protocol: [`LeaseStore`] (blob leases), [`DocumentStore`] (versioned block
//! blobs), [`TableStore`] (Table Storage entities).
//!
//! [`AzureStorage`] implements all three on the Azure SDK crates; see `docs/storage.md` for
//! why those crates and how they are configured.

mod azure;
mod document;
mod lease;
pub mod names;
pub mod retry;
mod table;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{Error, ErrorKind, Result};

pub use azure::{AzureStorage, StorageStats, StorageStatsSnapshot};

/// Classifies an answer of Azure Storage (status and error code) as the adapter does: the
/// simulator's in-memory storage answers in Azure's terms and goes through this same mapping.
pub fn classify_answer(status: u16, code: Option<&str>, message: Option<&str>) -> Error {
    match azure_core::StatusCode::try_from(status) {
        Ok(s) => azure::from_status(s, code, message),
        Err(_) => Error::internal(format!("HTTP {status} is not a status code")),
    }
}
pub use names::BlobRef;
pub use table::{quote, wire_properties};

/// An entity-group transaction holds at most this many operations (service limit).
pub const MAX_BATCH_OPERATIONS: usize = 100;

/// A lease id. Always a UUID: Azure requires it (Azurite does not check).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseId(pub Uuid);

impl LeaseId {
    pub fn random() -> Self {
        LeaseId(crate::random::uuid())
    }

    pub fn parse(s: &str) -> Result<Self> {
        Uuid::parse_str(s)
            .map(LeaseId)
            .map_err(|_| Error::bad_request(format!("lease id must be a UUID, found '{s}'")))
    }
}

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LeaseId({})", self.0)
    }
}

/// How long a lease lasts unless renewed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseDuration {
    /// 15 to 60 seconds (service limits).
    Seconds(u8),
    Infinite,
}

impl LeaseDuration {
    pub fn seconds(secs: u64) -> Result<Self> {
        if (15..=60).contains(&secs) {
            Ok(LeaseDuration::Seconds(secs as u8))
        } else {
            Err(Error::bad_request(format!(
                "lease duration must be 15-60 seconds or infinite, found {secs}"
            )))
        }
    }

    /// From the wire convention shared with Java: -1 = infinite.
    pub fn from_secs_or_infinite(secs: i64) -> Result<Self> {
        if secs == -1 {
            Ok(LeaseDuration::Infinite)
        } else if secs < 0 {
            Err(Error::bad_request(format!(
                "lease duration must be 15-60 seconds or -1 (infinite), found {secs}"
            )))
        } else {
            LeaseDuration::seconds(secs as u64)
        }
    }
}

/// An opaque version tag from storage, compared for equality only (Azurite's are not
/// monotonic). Kept verbatim, quotes included.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ETag(pub String);

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ETag({})", self.0)
    }
}

/// What a blob write is conditioned on; storage applies it only if every part holds, and
/// leaves the blob untouched otherwise. The default is [`Guard::NONE`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Guard {
    /// The blob must still be at this ETag (`If-Match`: a compare-and-swap); at another version
    /// storage refuses the write with [`ErrorKind::PreconditionFailed`].
    pub if_match: Option<ETag>,
    /// This must be the blob's active lease (a fenced write); storage refuses the write with
    /// [`ErrorKind::LeaseLost`] otherwise, and also without one if someone holds the blob leased.
    pub lease: Option<LeaseId>,
}

impl Guard {
    /// No condition: the write applies at whatever version the blob is (unless it is leased).
    pub const NONE: Guard = Guard {
        if_match: None,
        lease: None,
    };

    /// Only while the blob is at `etag`.
    pub fn if_match(etag: ETag) -> Self {
        Guard {
            if_match: Some(etag),
            lease: None,
        }
    }

    /// Only under `lease`.
    pub fn lease(lease: LeaseId) -> Self {
        Guard {
            if_match: None,
            lease: Some(lease),
        }
    }

    /// A leader's write: only while the blob is at `etag` and under `lease`, so it neither
    /// overwrites a version it has not seen nor lands once the lease is lost.
    pub fn leader(etag: ETag, lease: LeaseId) -> Self {
        Guard {
            if_match: Some(etag),
            lease: Some(lease),
        }
    }
}

/// A document's bytes and the version they were read at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    pub body: Bytes,
    pub etag: ETag,
}

/// Answer of a cheap change check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Unchanged,
    Changed(ETag),
}

#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Acquires a lease, proposing `proposed` as its id (a random UUID if `None`).
    async fn acquire_lease(
        &self,
        blob: &BlobRef,
        duration: LeaseDuration,
        proposed: Option<LeaseId>,
    ) -> Result<LeaseId>;
    /// Renews within `deadline` (defaults to the policy's), so a renew never outlives the lease.
    async fn renew_lease(
        &self,
        blob: &BlobRef,
        lease: LeaseId,
        deadline: Option<Duration>,
    ) -> Result<()>;
    async fn release_lease(&self, blob: &BlobRef, lease: LeaseId) -> Result<()>;
    /// Breaks whoever holds the lease; returns the seconds until it can be acquired.
    async fn break_lease(&self, blob: &BlobRef, break_period: Duration) -> Result<Duration>;
    async fn change_lease(
        &self,
        blob: &BlobRef,
        lease: LeaseId,
        proposed: LeaseId,
    ) -> Result<LeaseId>;
}

#[async_trait]
pub trait DocumentStore: Send + Sync {
    /// Creates the container if it does not exist; returns whether it was created.
    async fn ensure_container(&self, container: &str) -> Result<bool>;
    /// Writes only if the blob does not exist (If-None-Match: *).
    async fn create_document(&self, blob: &BlobRef, body: Bytes) -> Result<ETag>;
    /// Creates the blob with `body` unless it exists; returns whether this call created it.
    /// On Azure a create on a blob someone holds leased is refused for the missing lease id
    /// (412 `LeaseIdMissing`) before `If-None-Match: *` is looked at (Azurite answers 409
    /// `BlobAlreadyExists`), so a lease error here also means that the blob exists.
    async fn create_if_absent(&self, blob: &BlobRef, body: Bytes) -> Result<bool> {
        match self.create_document(blob, body).await {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.kind(), ErrorKind::AlreadyExists | ErrorKind::LeaseLost) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
    async fn read_document(&self, blob: &BlobRef) -> Result<Document>;
    /// `None` when the blob still has `known` (HTTP 304: no body transferred).
    async fn read_document_if_changed(
        &self,
        blob: &BlobRef,
        known: &ETag,
    ) -> Result<Option<Document>>;
    /// HEAD with If-None-Match: the cheapest way to learn whether a new version exists.
    async fn check_document(&self, blob: &BlobRef, known: &ETag) -> Result<Change>;
    /// Replaces the document if `guard` holds: its `if_match` makes it a compare-and-swap, its
    /// `lease` fences it (storage rejects it with [`ErrorKind::LeaseLost`] unless that is the
    /// blob's active lease; so too without a lease if the blob is leased).
    async fn replace_document(&self, blob: &BlobRef, body: Bytes, guard: Guard) -> Result<ETag>;
    /// Deletes the blob if `guard` holds, as [`replace_document`](Self::replace_document).
    async fn delete_document(&self, blob: &BlobRef, guard: Guard) -> Result<()>;
}

/// A table row. Property values are JSON in the Table service's wire form: typed values other
/// than strings, booleans and 32-bit ints carry `Name@odata.type` annotations.
#[derive(Clone, Debug, PartialEq)]
pub struct Entity {
    pub partition_key: String,
    pub row_key: String,
    pub properties: Map<String, Value>,
    /// Set on read; used by callers for If-Match.
    pub etag: Option<ETag>,
}

impl Entity {
    pub fn new(partition_key: impl Into<String>, row_key: impl Into<String>) -> Self {
        Entity {
            partition_key: partition_key.into(),
            row_key: row_key.into(),
            properties: Map::new(),
            etag: None,
        }
    }

    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.properties.insert(name.to_owned(), value.into());
        self
    }

    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.properties.get(name).and_then(Value::as_str)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IfMatch {
    Any,
    ETag(ETag),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    Replace,
    Merge,
}

/// How an update writes an entity that exists (unlike an upsert): only if it matches
/// `if_match`, replacing its properties or merging into them as `mode` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    pub if_match: IfMatch,
    pub mode: WriteMode,
}

impl Update {
    pub fn replace(if_match: IfMatch) -> Self {
        Update {
            if_match,
            mode: WriteMode::Replace,
        }
    }

    pub fn merge(if_match: IfMatch) -> Self {
        Update {
            if_match,
            mode: WriteMode::Merge,
        }
    }
}

/// Where a partition query stopped; pass back to continue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Continuation {
    pub next_partition_key: String,
    pub next_row_key: Option<String>,
}

/// Which page of a partition to read: the rows matching `filter` (an OData `$filter`, ANDed
/// with the partition), at most `page_size` (1-1000) of them, from where `continuation` stopped.
/// The default is the first page of the whole partition, at the service's page size.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageQuery<'a> {
    pub filter: Option<&'a str>,
    pub page_size: Option<u32>,
    pub continuation: Option<Continuation>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    pub entities: Vec<Entity>,
    pub continuation: Option<Continuation>,
}

/// One operation of an entity-group transaction (all in one partition).
#[derive(Clone, Debug, PartialEq)]
pub enum BatchOp {
    Insert(Entity),
    Upsert(Entity, WriteMode),
    Update(Entity, Update),
    Delete { row_key: String, if_match: IfMatch },
}

#[async_trait]
pub trait TableStore: Send + Sync {
    /// Creates the table if absent; returns whether it was created.
    async fn ensure_table(&self, table: &str) -> Result<bool>;
    async fn delete_table(&self, table: &str) -> Result<()>;
    async fn insert_entity(&self, table: &str, entity: &Entity) -> Result<ETag>;
    async fn upsert_entity(&self, table: &str, entity: &Entity, mode: WriteMode) -> Result<ETag>;
    async fn update_entity(&self, table: &str, entity: &Entity, update: Update) -> Result<ETag>;
    async fn get_entity(&self, table: &str, partition_key: &str, row_key: &str) -> Result<Entity>;
    /// One page of a partition, as `query` says.
    async fn query_partition(
        &self,
        table: &str,
        partition_key: &str,
        query: PageQuery<'_>,
    ) -> Result<Page>;
    /// Every row of a partition matching `filter`, following continuations, 1,000 a page,
    /// kept page by page and in order (a page was read after every row of the pages before
    /// it was written).
    async fn query_pages(
        &self,
        table: &str,
        partition_key: &str,
        filter: Option<&str>,
    ) -> Result<Vec<Vec<Entity>>> {
        let mut pages = Vec::new();
        let mut continuation = None;
        loop {
            let query = PageQuery {
                filter,
                page_size: Some(1000),
                continuation,
            };
            let page = self.query_partition(table, partition_key, query).await?;
            pages.push(page.entities);
            continuation = page.continuation;
            if continuation.is_none() {
                return Ok(pages);
            }
        }
    }
    /// Every row of a partition matching `filter`, as one list; none when the table does not
    /// exist (yet), which readers of state that may never have been written treat as empty.
    async fn partition_rows(
        &self,
        table: &str,
        partition_key: &str,
        filter: Option<&str>,
    ) -> Result<Vec<Entity>> {
        match self.query_pages(table, partition_key, filter).await {
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            other => Ok(other?.into_iter().flatten().collect()),
        }
    }
    /// Atomic: all operations apply or none. Returns the new ETag of each operation (`None`
    /// for deletes). Any failed operation fails the whole call with its error.
    async fn batch(
        &self,
        table: &str,
        partition_key: &str,
        ops: Vec<BatchOp>,
    ) -> Result<Vec<Option<ETag>>>;
    /// Deletes the row of `entity`'s keys (its properties are not looked at) if it matches
    /// `if_match`.
    async fn delete_entity(&self, table: &str, entity: &Entity, if_match: &IfMatch) -> Result<()>;
}
