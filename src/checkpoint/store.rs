//! Task checkpoints in Table Storage, fenced by task ownership.
//!
//! One table per job, and one partition ([`PARTITION`]) for all of its tasks, so that commits of
//! different tasks can share a transaction. A task's rows all start with its escaped name and
//! `|` ([`task_key`]). Its row `<task>|owner` records who may write the task's checkpoints: the
//! processor and the generation (the JobModel version in which it started the container holding
//! the task). It also holds each checkpoint version's text, split into string properties
//! `v<version>c<n>`, when it fits ([`INLINE_CHUNKS`] per version); a larger one goes to rows
//! `<task>|v<version>.<n>`.
//!
//! A write is a merge of the owner row conditional on the ETag this writer last saw, or, when
//! extra rows are involved, an entity-group transaction of that merge with the rows' upserts and
//! deletes. A new owner merges its name into the owner row when it claims the task, which changes
//! the ETag, so a stale writer's next write fails as a whole and nothing of it applies.
//!
//! Group commit: the merges of concurrent commits (a container commits its tasks on a pool of
//! threads) go to storage together, as one transaction of up to 100, while the previous request
//! is in flight; nothing waits for company. Each merge keeps its own If-Match. A transaction
//! fails as a whole, so when one does, each commit in it is sent again alone and judged alone.
//!
//! Outages: every operation a container depends on (creating the table, claiming, reading,
//! committing) waits out storage that cannot be reached, retrying with backoff for as long as it
//! takes, as Samza's Kafka checkpoint manager does: a failed commit or start ends Samza's
//! container, and an outage must not. It fails only on an answer (another owner, a bad request),
//! or when the container is being stopped ([`CheckpointStore::abandon`]): then whatever is in
//! flight gives up at once, so the container stops within `task.shutdown.ms`.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::group_commit::{GroupCommit, Outcome};
use crate::coordinator::names::JobIdentity;
use crate::error::{Error, ErrorKind, Result};
use crate::storage::retry::Doubling;
use crate::storage::{
    quote, BatchOp, ETag, Entity, IfMatch, TableStore, WriteMode, MAX_BATCH_OPERATIONS,
};

pub const KEY_UPSTREAM_READ: &str = "task.checkpoint.azure.upstream.read";
pub const KEY_UPSTREAM_TABLE: &str = "task.checkpoint.azure.upstream.table";

/// What the checkpoint manager reads from the job's config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointConfig {
    pub table: String,
    /// Where upstream samza-azure kept this job's checkpoints, if they are to be read.
    pub upstream_table: Option<String>,
}

impl CheckpointConfig {
    pub fn from_map(config: &HashMap<String, String>) -> Result<Self> {
        let job = JobIdentity::from_map(config)?;
        let read = match config.get(KEY_UPSTREAM_READ).map(|s| s.trim()) {
            None | Some("true") => true,
            Some("false") => false,
            Some(other) => {
                return Err(Error::config(
                    KEY_UPSTREAM_READ,
                    format!("true or false, got '{other}'"),
                ))
            }
        };
        let upstream_table = match config.get(KEY_UPSTREAM_TABLE) {
            Some(t) => {
                crate::storage::names::validate_table(t)
                    .map_err(|e| Error::config(KEY_UPSTREAM_TABLE, e.message()))?;
                t.clone()
            }
            None => upstream_table(&job.name),
        };
        Ok(CheckpointConfig {
            table: job.names()?.checkpoint_table,
            // A job name with no letters or digits gave upstream no valid table either.
            upstream_table: (read
                && crate::storage::names::validate_table(&upstream_table).is_ok())
            .then_some(upstream_table),
        })
    }
}

/// The one partition of a job's checkpoint table. Azure serves a partition up to about 2,000
/// entities/s: a commit writes one entity per checkpoint version, so that is a thousand tasks
/// committing versions 1 and 2 every second (Samza's default `task.commit.ms` is 60 s).
pub const PARTITION: &str = "tasks";
const OWNER_ROW: &str = "owner";
/// UTF-16 code units per string property: the Table service allows 64 KiB per property.
const CHUNK_UNITS: usize = 32_000;
/// Chunks per extra row: 15 × 64,000 bytes stays under the 1 MiB entity limit.
const CHUNKS_PER_ROW: usize = 15;
/// Chunks per version kept in the owner row: three versions × 4 × 64,000 bytes stay under the
/// 1 MiB entity limit with the owner's own properties.
pub const INLINE_CHUNKS: usize = 4;
/// Largest checkpoint accepted, measured as it travels: JSON-escaped inside one transaction,
/// whose whole body the Table service limits to 4 MiB; the rest is left for the multipart
/// framing and the other properties.
pub const MAX_CHECKPOINT_BYTES: usize = 3 * 1024 * 1024 + 512 * 1024;

/// The length of `text` as a JSON string body (quotes, backslashes and control characters
/// are escaped).
fn escaped_len(text: &str) -> usize {
    text.chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        })
        .sum()
}

/// Who owns a task, as recorded in its `owner` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub processor: String,
    pub generation: u64,
}

/// Where a checkpoint version lives now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Stored {
    /// `v<version>c<n>` properties present in the owner row (some may be blanked).
    inline_props: usize,
    /// Extra rows `v<version>.<n>` (0: inline).
    rows: usize,
}

/// What is known about one claimed task.
struct TaskState {
    owner_etag: ETag,
    generation: u64,
    stored: BTreeMap<u16, Stored>,
    /// Checkpoints read while claiming, handed to the first read.
    claimed: Option<BTreeMap<u16, String>>,
}

/// The checkpoints of one job, as written by one processor.
pub struct CheckpointStore<S: TableStore + 'static> {
    store: Arc<S>,
    table: String,
    processor: String,
    tasks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<TaskState>>>>>,
    commits: Arc<GroupCommit<S>>,
    /// Why the container stopped needing this store (see [`CheckpointStore::abandon`]).
    abandoned: tokio::sync::watch::Sender<Option<String>>,
}

/// First wait after storage could not be reached; doubled on each failure up to
/// [`OUTAGE_MAX_BACKOFF`].
const OUTAGE_FIRST_BACKOFF: Duration = Duration::from_millis(250);
const OUTAGE_MAX_BACKOFF: Duration = Duration::from_secs(5);
/// While an operation keeps failing, it says so at WARN at most this often.
const OUTAGE_LOG_EVERY: Duration = Duration::from_secs(30);

/// Waits out an outage for one operation: a doubling backoff, and WARN lines saying what it
/// waits for (the first failure, then every [`OUTAGE_LOG_EVERY`]).
struct Patience {
    what: String,
    failures: u32,
    backoff: Doubling,
    since: Instant,
    logged: Option<Instant>,
}

impl Patience {
    fn new(what: String) -> Self {
        Patience {
            what,
            failures: 0,
            backoff: Doubling::new(OUTAGE_FIRST_BACKOFF, OUTAGE_MAX_BACKOFF),
            since: Instant::now(),
            logged: None,
        }
    }

    async fn wait(&mut self, e: &Error) {
        self.failures += 1;
        if self.logged.is_none_or(|t| t.elapsed() >= OUTAGE_LOG_EVERY) {
            self.logged = Some(Instant::now());
            tracing::warn!(
                error = %e,
                attempts = self.failures,
                waiting_ms = self.since.elapsed().as_millis() as u64,
                "{}: storage cannot be reached; retrying until it answers or the container stops",
                self.what
            );
        } else {
            tracing::debug!(error = %e, attempts = self.failures, "{}: retrying", self.what);
        }
        self.backoff.sleep().await;
    }

    /// After a success that followed failures, says the wait is over.
    fn done(&self) {
        if self.failures > 0 {
            tracing::info!(
                attempts = self.failures + 1,
                waited_ms = self.since.elapsed().as_millis() as u64,
                "{}: storage answered again",
                self.what
            );
        }
    }
}

/// The highest generation that any task's owner row in `table` records (0 for no table or no
/// rows). A claim is refused below it, so after the job model document was reset the leader
/// numbers versions above it; otherwise every container start of the job would be refused
/// until the versions caught up. Malformed owner rows are left out (any claim takes them).
pub async fn highest_generation<S: TableStore + ?Sized>(store: &S, table: &str) -> Result<u64> {
    let rows = store.partition_rows(table, PARTITION, None).await?;
    let owner_suffix = format!("|{OWNER_ROW}");
    Ok(rows
        .iter()
        .filter(|e| e.row_key.ends_with(&owner_suffix))
        .filter_map(|e| parse_owner(&e.row_key, e).ok())
        .map(|o| o.generation)
        .max()
        .unwrap_or(0))
}

/// The task's name as a row-key prefix: escapes what the Table service forbids in keys
/// (`/ \\ # ?`, control characters), `|` (it ends the prefix) and `%` itself, so distinct task
/// names stay distinct and no task's rows fall in another's range.
pub fn task_key(task: &str) -> String {
    let mut out = String::with_capacity(task.len());
    for c in task.chars() {
        if matches!(c, '/' | '\\' | '#' | '?' | '%' | '|') || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn owner_row(key: &str) -> String {
    format!("{key}|{OWNER_ROW}")
}

fn row_key(key: &str, version: u16, index: usize) -> String {
    format!("{key}|v{version}.{index}")
}

/// All of a task's rows and no other's: row keys from `<key>|` up to `<key>}` (`}` follows
/// `|`). A key never contains `|`, so another task's rows cannot sort in between.
fn task_rows_filter(key: &str) -> String {
    format!(
        "RowKey ge {} and RowKey lt {}",
        quote(&format!("{key}|")),
        quote(&format!("{key}}}"))
    )
}

fn chunk_name(version: u16, index: usize) -> String {
    format!("v{version}c{index}")
}

/// Splits `text` into chunks of at most [`CHUNK_UNITS`] UTF-16 units, never inside a character.
fn chunks(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut units) = (0, 0);
    for (i, c) in text.char_indices() {
        if units + c.len_utf16() > CHUNK_UNITS {
            out.push(&text[start..i]);
            start = i;
            units = 0;
        }
        units += c.len_utf16();
    }
    if start < text.len() || out.is_empty() {
        out.push(&text[start..]);
    }
    out
}

fn owner_entity(key: &str, owner: &Owner) -> Entity {
    Entity::new(PARTITION, owner_row(key))
        .with("processor", owner.processor.as_str())
        .with("generation", owner.generation.to_string())
}

/// Stands for the owner of a row whose owner properties are malformed: no processor is named
/// so (ids never start with `~`), and generation 0 lets any claim take the task over.
const MALFORMED_OWNER: &str = "~malformed owner row~";

fn parse_owner(task: &str, e: &Entity) -> std::result::Result<Owner, String> {
    let processor = e.get_str("processor");
    let generation = e.get_str("generation").and_then(|g| g.parse().ok());
    match (processor, generation) {
        (Some(p), Some(generation)) if !p.is_empty() => Ok(Owner {
            processor: p.to_owned(),
            generation,
        }),
        _ => Err(format!(
            "the owner row of task '{task}' is malformed: expected string properties 'processor' (non-empty) and 'generation' (a whole number), found processor={}, generation={}",
            e.properties.get("processor").map_or("none".to_owned(), |v| v.to_string()),
            e.properties.get("generation").map_or("none".to_owned(), |v| v.to_string()),
        )),
    }
}

/// The owner-row merge and extra rows that store `text` as `version`, given where the
/// version lives now. Stale inline chunks are blanked (a merge cannot drop properties) and
/// stale extra rows deleted.
fn layout(key: &str, version: u16, text: &str, before: Stored) -> (Entity, Vec<BatchOp>, Stored) {
    let parts = chunks(text);
    // Only the checkpoint's own properties: a write never touches who owns the task, so even
    // a write that storage wrongly let through could not hand the task back.
    let mut head =
        Entity::new(PARTITION, owner_row(key)).with(&format!("v{version}bytes"), text.len() as i64);
    let mut extra = Vec::new();
    let after = if parts.len() <= INLINE_CHUNKS {
        for (j, part) in parts.iter().enumerate() {
            head = head.with(&chunk_name(version, j), *part);
        }
        Stored {
            inline_props: before.inline_props.max(parts.len()),
            rows: 0,
        }
    } else {
        let groups: Vec<&[&str]> = parts.chunks(CHUNKS_PER_ROW).collect();
        for (i, group) in groups.iter().enumerate() {
            let mut e = Entity::new(PARTITION, row_key(key, version, i));
            for (j, part) in group.iter().enumerate() {
                e = e.with(&format!("c{j}"), *part);
            }
            extra.push(BatchOp::Upsert(e, WriteMode::Replace));
        }
        Stored {
            inline_props: before.inline_props,
            rows: groups.len(),
        }
    };
    let inline_now = if after.rows == 0 { parts.len() } else { 0 };
    for j in inline_now..before.inline_props {
        head = head.with(&chunk_name(version, j), "");
    }
    head = head
        .with(&format!("v{version}chunks"), inline_now as i64)
        .with(&format!("v{version}rows"), after.rows as i64);
    for i in after.rows..before.rows {
        extra.push(BatchOp::Delete {
            row_key: row_key(key, version, i),
            if_match: IfMatch::Any,
        });
    }
    (head, extra, after)
}

/// A task's partition as read: its owner and its complete checkpoints.
struct Partition {
    owner: Option<(Owner, ETag)>,
    checkpoints: BTreeMap<u16, String>,
    stored: BTreeMap<u16, Stored>,
}

/// The version and index of an extra row, from the part of its key after `<task>|`.
fn parse_extra(suffix: &str) -> Option<(u16, usize)> {
    let (v, i) = suffix.strip_prefix('v')?.split_once('.')?;
    Some((v.parse().ok()?, i.parse().ok()?))
}

/// The checkpoints in an owner row and its extra rows, each checked complete. A version that
/// is not (a chunk or row missing, a length that does not match) is left out of the
/// checkpoints, with what was expected and found in the third list; its rows are still in
/// `stored`, so the next write of that version replaces them whole.
#[allow(clippy::type_complexity)]
fn assemble(
    task: &str,
    owner: &Entity,
    extra: &BTreeMap<u16, BTreeMap<usize, Entity>>,
) -> (BTreeMap<u16, String>, BTreeMap<u16, Stored>, Vec<String>) {
    let int = |name: &str| owner.properties.get(name).and_then(Value::as_i64);
    let mut checkpoints = BTreeMap::new();
    let mut stored = BTreeMap::new();
    let mut problems = Vec::new();
    let versions = owner.properties.keys().filter_map(|k| {
        k.strip_prefix('v')?
            .strip_suffix("bytes")?
            .parse::<u16>()
            .ok()
    });
    for version in versions.collect::<Vec<_>>() {
        let parts = extra.get(&version);
        let inline_props = (0..)
            .take_while(|j| owner.properties.contains_key(&chunk_name(version, *j)))
            .count();
        // Rows 0, 1, ... as far as they go: deleting a row that is absent would fail the
        // transaction that replaces this version.
        let rows_present = (0..)
            .take_while(|i| parts.is_some_and(|p| p.contains_key(i)))
            .count();
        match version_text(task, version, owner, parts, &int) {
            Ok((text, rows)) => {
                // Extra rows beyond `rows` are leftovers of an interrupted history; delete them
                // too.
                stored.insert(
                    version,
                    Stored {
                        inline_props,
                        rows: parts.map_or(0, BTreeMap::len).max(rows),
                    },
                );
                checkpoints.insert(version, text);
            }
            Err(problem) => {
                stored.insert(
                    version,
                    Stored {
                        inline_props,
                        rows: rows_present,
                    },
                );
                problems.push(problem);
            }
        }
    }
    (checkpoints, stored, problems)
}

/// One version's text and its count of extra rows, or what is wrong with it.
fn version_text(
    task: &str,
    version: u16,
    owner: &Entity,
    parts: Option<&BTreeMap<usize, Entity>>,
    int: &dyn Fn(&str) -> Option<i64>,
) -> std::result::Result<(String, usize), String> {
    let count = |name: String| {
        int(&name)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                format!(
                    "checkpoint version {version} of task '{task}' is incomplete: expected property '{name}' (a whole number), found {}",
                    owner.properties.get(&name).map_or("none".to_owned(), |v| v.to_string())
                )
            })
    };
    let want = count(format!("v{version}bytes"))?;
    let inline = count(format!("v{version}chunks"))?;
    let rows = count(format!("v{version}rows"))?;
    let mut text = String::with_capacity(want.min(MAX_CHECKPOINT_BYTES));
    for j in 0..inline {
        let name = chunk_name(version, j);
        text.push_str(owner.get_str(&name).ok_or_else(|| {
            format!("checkpoint version {version} of task '{task}' is incomplete: expected {inline} inline chunks, property '{name}' is missing")
        })?);
    }
    for i in 0..rows {
        let row = parts.and_then(|p| p.get(&i)).ok_or_else(|| {
            format!(
                "checkpoint version {version} of task '{task}' is incomplete: expected {rows} extra rows, row '{}' is missing",
                row_key(&task_key(task), version, i)
            )
        })?;
        for j in 0..CHUNKS_PER_ROW {
            match row.get_str(&format!("c{j}")) {
                Some(s) => text.push_str(s),
                None => break,
            }
        }
    }
    if text.len() != want {
        return Err(format!(
            "checkpoint version {version} of task '{task}' is incomplete: expected {want} bytes, its chunks hold {}",
            text.len()
        ));
    }
    Ok((text, rows))
}

impl<S: TableStore + 'static> CheckpointStore<S> {
    pub fn new(store: Arc<S>, table: &str, processor: &str) -> Self {
        CheckpointStore {
            commits: GroupCommit::new(store.clone(), table, PARTITION, MAX_CHECKPOINT_BYTES),
            store,
            table: table.to_owned(),
            processor: processor.to_owned(),
            tasks: Mutex::new(HashMap::new()),
            abandoned: tokio::sync::watch::channel(None).0,
        }
    }

    /// The container this store serves is being stopped (its processor was fenced, its job
    /// model expired, or the processor is stopping): every operation in flight gives up at
    /// once, and every later one fails at once, instead of waiting for storage. What an
    /// abandoned commit sent may still apply; it was conditional on this owner's ETag, so it
    /// can never land over a newer owner's claim. The first reason given is kept.
    pub fn abandon(&self, reason: &str) {
        self.abandoned.send_if_modified(|r| {
            let first = r.is_none();
            if first {
                *r = Some(reason.to_owned());
            }
            first
        });
    }

    /// Resolves with the reason once [`abandon`](Self::abandon) was called.
    async fn until_abandoned(&self) -> String {
        let mut rx = self.abandoned.subscribe();
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return reason;
            }
            // The sender lives as long as `self`, so this never ends the loop.
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Runs `op` unless or until the store is abandoned; then fails with `kind`, saying what
    /// was given up and why.
    async fn unless_abandoned<T>(
        &self,
        what: &str,
        kind: ErrorKind,
        op: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        tokio::select! {
            biased;
            reason = self.until_abandoned() => Err(Error::new(
                kind,
                format!("{what} (table '{}') was abandoned: {reason}", self.table),
            )),
            r = op => r,
        }
    }

    /// Runs `op` until it answers: transient failures (storage unreachable, throttling,
    /// timeouts) are waited out with [`Patience`]; anything else is returned.
    async fn patiently<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut patience = Patience::new(format!("{what} (table '{}')", self.table));
        loop {
            match op().await {
                Err(e) if e.kind().is_transient() => patience.wait(&e).await,
                r => {
                    patience.done();
                    return r;
                }
            }
        }
    }

    /// Creates the table if absent, waiting out an outage (a container's start-up: failing
    /// there ends Samza's container).
    pub async fn create_resources(&self) -> Result<()> {
        let what = "creating the checkpoint table";
        self.unless_abandoned(
            what,
            ErrorKind::Transient,
            self.patiently(what, || self.create_resources_once()),
        )
        .await
    }

    /// Upstream samza-azure's rows for `task` (see [`read_upstream`]), waiting out an outage.
    pub async fn read_upstream_patiently(
        &self,
        table: &str,
        task: &str,
    ) -> Result<Vec<(String, Option<String>)>> {
        let what = format!("reading upstream checkpoints of task '{task}' from '{table}'");
        self.unless_abandoned(
            &what,
            ErrorKind::Transient,
            self.patiently(&what, || read_upstream(self.store.as_ref(), table, task)),
        )
        .await
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The storage it writes to (upstream checkpoints are read through it too).
    pub fn storage(&self) -> &S {
        &self.store
    }

    /// Creates the table if absent: one attempt, bounded by the storage retry policy (the
    /// leader's `createResources`, whose failure only delays a model that is computed again).
    pub async fn create_resources_once(&self) -> Result<()> {
        self.store.ensure_table(&self.table).await.map(|_| ())
    }

    fn slot(&self, task: &str) -> Arc<tokio::sync::Mutex<Option<TaskState>>> {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.entry(task.to_owned()).or_default().clone()
    }

    /// Every row of the task (none when the table is absent).
    async fn task_rows(&self, key: &str) -> Result<Vec<Entity>> {
        self.store
            .partition_rows(&self.table, PARTITION, Some(&task_rows_filter(key)))
            .await
    }

    async fn read_partition(&self, task: &str) -> Result<Partition> {
        let key = task_key(task);
        let mut owner = None;
        let mut extra: BTreeMap<u16, BTreeMap<usize, Entity>> = BTreeMap::new();
        for e in self.task_rows(&key).await? {
            let suffix = e.row_key.get(key.len() + 1..).unwrap_or_default();
            if suffix == OWNER_ROW {
                owner = Some(e);
            } else if let Some((v, i)) = parse_extra(suffix) {
                extra.entry(v).or_default().insert(i, e);
            }
        }
        let Some(owner) = owner else {
            return Ok(Partition {
                owner: None,
                checkpoints: BTreeMap::new(),
                stored: BTreeMap::new(),
            });
        };
        let etag = owner.etag.clone().ok_or_else(|| {
            Error::internal(format!(
                "table '{}', row '{}': the owner row of task '{task}' has no ETag",
                self.table, owner.row_key
            ))
        })?;
        let (checkpoints, stored, problems) = assemble(task, &owner, &extra);
        // A broken row must not stop the task for good (every start of its container would
        // fail the same way): say what is wrong, and carry on with what can be trusted.
        for problem in problems {
            tracing::error!(
                "table '{}', partition '{PARTITION}', row '{}': {problem}; leaving that version out (the task reads its other versions, and its next commit of that version replaces it)",
                self.table,
                owner.row_key
            );
        }
        let parsed = parse_owner(task, &owner).unwrap_or_else(|problem| {
            tracing::error!(
                "table '{}', partition '{PARTITION}', row '{}': {problem}; whoever claims the task next takes it over (its checkpoints stay)",
                self.table,
                owner.row_key
            );
            Owner {
                processor: MALFORMED_OWNER.to_owned(),
                generation: 0,
            }
        });
        Ok(Partition {
            owner: Some((parsed, etag)),
            checkpoints,
            stored,
        })
    }

    /// Takes ownership of `task` for `generation` (0: unfenced, see below) and reads its
    /// checkpoints. Refused with [`ErrorKind::Fenced`] when a newer generation owns it. Waits
    /// out an outage (see [`abandon`](Self::abandon)).
    ///
    /// Generation 0 means this processor was not started by our coordinator and has no
    /// generation: it takes the task whoever owns it, so nothing is fenced.
    pub async fn claim(&self, task: &str, generation: u64) -> Result<()> {
        let what = format!("claiming task '{task}'");
        self.unless_abandoned(
            &what,
            ErrorKind::Transient,
            self.claim_patiently(&what, task, generation),
        )
        .await
    }

    async fn claim_patiently(&self, what: &str, task: &str, generation: u64) -> Result<()> {
        let slot = self.slot(task);
        let mut state = slot.lock().await;
        let key = task_key(task);
        let me = Owner {
            processor: self.processor.clone(),
            generation,
        };
        let mut patience = Patience::new(format!("{what} (table '{}')", self.table));
        let mut races = 0;
        loop {
            let e = match self.claim_once(task, &key, &me).await {
                Ok(claimed) => {
                    patience.done();
                    *state = Some(claimed);
                    return Ok(());
                }
                Err(e) => e,
            };
            match e.kind() {
                // Someone claimed it between our read and write, or our own write may have
                // applied unheard (an insert or merge that timed out): read and judge again.
                // A write of ours that applied shows up as this processor owning the task.
                ErrorKind::AlreadyExists
                | ErrorKind::PreconditionFailed
                | ErrorKind::OutcomeUnknown => {
                    races += 1;
                    if races % 5 == 0 {
                        // Contended (or answers keep getting lost): let the others finish.
                        tracing::debug!(error = %e, races, "{what}: the owner row keeps changing");
                        tokio::time::sleep(OUTAGE_FIRST_BACKOFF).await;
                    }
                }
                k if k.is_transient() => patience.wait(&e).await,
                _ => return Err(e),
            }
        }
    }

    /// One read of the task's rows and the write it calls for.
    async fn claim_once(&self, task: &str, key: &str, me: &Owner) -> Result<TaskState> {
        let generation = me.generation;
        let p = self.read_partition(task).await?;
        let owner_etag = match &p.owner {
            None => {
                self.store
                    .insert_entity(&self.table, &owner_entity(key, me))
                    .await?
            }
            Some((o, etag)) if o == me => etag.clone(),
            Some((o, etag)) if generation == 0 || o.generation < generation => {
                let if_match = if generation == 0 {
                    IfMatch::Any
                } else {
                    IfMatch::ETag(etag.clone())
                };
                // A merge: the checkpoints in the row stay for the new owner.
                let etag = self
                    .store
                    .update_entity(
                        &self.table,
                        &owner_entity(key, me),
                        &if_match,
                        WriteMode::Merge,
                    )
                    .await?;
                tracing::info!(task, from = %o.processor, from_generation = o.generation, generation, "took over task checkpoints");
                etag
            }
            Some((o, _)) => return Err(fenced(task, me, o)),
        };
        Ok(TaskState {
            owner_etag,
            generation,
            stored: p.stored,
            claimed: Some(p.checkpoints),
        })
    }

    /// [`claim`](Self::claim)s every task, up to 16 at a time: a container's start should not
    /// wait for hundreds of round trips in a row.
    pub async fn claim_all(&self, tasks: &[String], generation: u64) -> Result<()> {
        use futures::{StreamExt, TryStreamExt};
        futures::stream::iter(tasks)
            .map(|t| self.claim(t, generation))
            .buffer_unordered(16)
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
    }

    /// The task's checkpoints by checkpoint version (empty: none).
    pub async fn read(&self, task: &str) -> Result<BTreeMap<u16, String>> {
        let what = format!("reading the checkpoint of task '{task}'");
        self.unless_abandoned(&what, ErrorKind::Transient, async {
            let slot = self.slot(task);
            let mut state = slot.lock().await;
            let s = state.as_mut().ok_or_else(|| not_claimed(task))?;
            if let Some(claimed) = s.claimed.take() {
                return Ok(claimed);
            }
            let p = self.patiently(&what, || self.read_partition(task)).await?;
            s.stored = p.stored;
            Ok(p.checkpoints)
        })
        .await
    }

    /// Replaces the task's checkpoint of `version` with `text`, atomically, if this processor
    /// still owns the task. Waits out an outage for as long as the task is still ours and the
    /// store is not [`abandon`](Self::abandon)ed; an abandoned write fails with
    /// [`ErrorKind::OutcomeUnknown`] (what it sent may still apply).
    pub async fn write(&self, task: &str, version: u16, text: &str) -> Result<()> {
        let escaped = escaped_len(text);
        if escaped > MAX_CHECKPOINT_BYTES {
            return Err(Error::new(
                ErrorKind::BadRequest,
                format!(
                    "the checkpoint of task '{task}' is {} bytes ({escaped} as sent); at most {MAX_CHECKPOINT_BYTES} fit in one atomic write",
                    text.len()
                ),
            ));
        }
        let what = format!("writing checkpoint version {version} of task '{task}'");
        self.unless_abandoned(
            &what,
            ErrorKind::OutcomeUnknown,
            self.write_patiently(&what, task, version, text, escaped),
        )
        .await
    }

    async fn write_patiently(
        &self,
        what: &str,
        task: &str,
        version: u16,
        text: &str,
        escaped: usize,
    ) -> Result<()> {
        let slot = self.slot(task);
        let mut guard = slot.lock().await;
        let s = guard.as_mut().ok_or_else(|| not_claimed(task))?;
        let key = task_key(task);
        let me = Owner {
            processor: self.processor.clone(),
            generation: s.generation,
        };
        let mut patience = Patience::new(format!("{what} (table '{}')", self.table));
        // A second write after a read-back only once storage showed this processor still owns
        // the task and the ETag had moved (a write of ours applied unheard).
        let mut moved = 0;
        loop {
            let before = s.stored.get(&version).copied().unwrap_or_default();
            let (head, extra, after) = layout(&key, version, text, before);
            let if_match = IfMatch::ETag(s.owner_etag.clone());
            let result = if extra.is_empty() {
                match self
                    .commits
                    .merge(head.clone(), if_match.clone(), escaped)
                    .await
                {
                    Outcome::Done(result) => result,
                    Outcome::Alone => {
                        self.store
                            .update_entity(&self.table, &head, &if_match, WriteMode::Merge)
                            .await
                    }
                }
            } else {
                let mut ops = Vec::with_capacity(1 + extra.len());
                ops.push(BatchOp::Update(head, if_match, WriteMode::Merge));
                ops.extend(extra);
                self.store
                    .batch(&self.table, PARTITION, ops)
                    .await
                    .and_then(|etags| {
                        etags
                            .into_iter()
                            .next()
                            .flatten()
                            .ok_or_else(|| Error::internal("the owner update returned no ETag"))
                    })
            };
            let e = match result {
                Ok(etag) => {
                    patience.done();
                    s.owner_etag = etag;
                    s.stored.insert(version, after);
                    s.claimed = None;
                    return Ok(());
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::PreconditionFailed | ErrorKind::OutcomeUnknown
                    ) =>
                {
                    e
                }
                // Not sent, or refused before it could apply: the same write again, later.
                Err(e) if e.kind().is_transient() => {
                    patience.wait(&e).await;
                    continue;
                }
                Err(e) => return Err(e.context(format!("writing the checkpoint of task '{task}'"))),
            };
            // Either a newer owner claimed the task, or a write of ours applied without us
            // hearing so (a retried request, or an earlier call that failed). Storage tells which.
            let p = match self.read_partition(task).await {
                Ok(p) => p,
                Err(read) if read.kind().is_transient() => {
                    // Judged once storage answers: the write is sent again (same If-Match),
                    // and a refusal then leads back here.
                    patience.wait(&read).await;
                    continue;
                }
                Err(read) => return Err(read),
            };
            match p.owner {
                Some((o, etag)) if o == me => {
                    let etag_moved = etag != s.owner_etag;
                    s.owner_etag = etag;
                    s.stored = p.stored;
                    if p.checkpoints.get(&version).map(String::as_str) == Some(text) {
                        patience.done();
                        return Ok(());
                    }
                    if !etag_moved {
                        // Nothing applied (an ambiguous attempt that did not land): again.
                        patience.wait(&e).await;
                        continue;
                    }
                    moved += 1;
                    if moved >= 2 {
                        return Err(e.context(format!("writing the checkpoint of task '{task}'")));
                    }
                }
                Some((o, _)) => return Err(fenced(task, &me, &o)),
                None => {
                    return Err(Error::new(
                        ErrorKind::Fenced,
                        format!("the checkpoint of task '{task}' was refused: its owner row is gone (checkpoints cleared?)"),
                    ))
                }
            }
        }
    }

    /// Deletes every row of these tasks (owner included), in transactions of up to 100.
    pub async fn clear(&self, tasks: &[String]) -> Result<()> {
        for task in tasks {
            let slot = self.slot(task);
            let mut state = slot.lock().await;
            let rows = self.task_rows(&task_key(task)).await?;
            for group in rows.chunks(MAX_BATCH_OPERATIONS) {
                let ops = group
                    .iter()
                    .map(|e| BatchOp::Delete {
                        row_key: e.row_key.clone(),
                        if_match: IfMatch::Any,
                    })
                    .collect();
                self.store.batch(&self.table, PARTITION, ops).await?;
            }
            *state = None;
        }
        Ok(())
    }
}

/// Reads checkpoints in the layout of upstream samza-azure's AzureCheckpointManager: table
/// = job.name without non-alphanumerics, PartitionKey = task name, RowKey = the SSP as JSON,
/// property `Offset`. Returns (RowKey, offset) pairs; none when the table or task is absent.
pub async fn read_upstream<S: TableStore>(
    store: &S,
    table: &str,
    task: &str,
) -> Result<Vec<(String, Option<String>)>> {
    let rows = store
        .partition_rows(table, task, None)
        .await
        .map_err(|e| e.context(format!("reading upstream checkpoints of '{task}'")))?;
    Ok(rows
        .into_iter()
        .map(|e| {
            let offset = e.get_str("Offset").map(str::to_owned);
            (e.row_key, offset)
        })
        .collect())
}

/// Upstream's table name for a job.
pub fn upstream_table(job_name: &str) -> String {
    job_name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

fn not_claimed(task: &str) -> Error {
    Error::new(
        ErrorKind::Config,
        format!("task '{task}' was not registered with the checkpoint manager before start"),
    )
}

fn fenced(task: &str, me: &Owner, owner: &Owner) -> Error {
    Error::new(
        ErrorKind::Fenced,
        format!(
            "the checkpoint of task '{task}' was refused: processor '{}' owns the task since job model version {}, and this processor ('{}') had it at version {}",
            owner.processor, owner.generation, me.processor, me.generation
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_keys_escape_forbidden_characters_reversibly() {
        assert_eq!(task_key("Partition 0"), "Partition 0");
        assert_eq!(task_key("a/b#c?d\\e%f|g"), "a%2Fb%23c%3Fd%5Ce%25f%7Cg");
        assert_eq!(task_key("t\u{1}"), "t%01");
        // "%2F" written literally and "/" must not meet.
        assert_ne!(task_key("%2F"), task_key("/"));
    }

    #[test]
    fn chunks_respect_the_property_limit_and_characters() {
        let text = "é".repeat(CHUNK_UNITS + 5);
        let parts = chunks(&text);
        assert_eq!(parts.len(), 2);
        assert!(parts
            .iter()
            .all(|p| p.encode_utf16().count() <= CHUNK_UNITS));
        assert_eq!(parts.concat(), text);
        // A character outside the BMP is two UTF-16 units and is never split.
        let wide = "\u{1F600}".repeat(CHUNK_UNITS / 2 + 1);
        let parts = chunks(&wide);
        assert!(parts
            .iter()
            .all(|p| p.encode_utf16().count() <= CHUNK_UNITS));
        assert_eq!(parts.concat(), wide);
        assert_eq!(chunks(""), vec![""]);
    }

    /// Applies a layout the way storage would: merge into the owner, upsert and delete rows.
    fn apply(
        owner: &mut Entity,
        extra: &mut BTreeMap<u16, BTreeMap<usize, Entity>>,
        head: Entity,
        ops: Vec<BatchOp>,
    ) {
        assert_eq!(
            (head.partition_key.as_str(), head.row_key.as_str()),
            (PARTITION, "t|owner")
        );
        owner.properties.extend(head.properties);
        for op in ops {
            match op {
                BatchOp::Upsert(e, _) => {
                    assert_eq!(e.partition_key, PARTITION);
                    let (v, i) = parse_extra(e.row_key.strip_prefix("t|").unwrap()).unwrap();
                    extra.entry(v).or_default().insert(i, e);
                }
                BatchOp::Delete { row_key, .. } => {
                    let (v, i) = parse_extra(row_key.strip_prefix("t|").unwrap()).unwrap();
                    assert!(extra.get_mut(&v).unwrap().remove(&i).is_some(), "{row_key}");
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    fn entity_bytes(e: &Entity) -> usize {
        e.properties
            .iter()
            .map(|(k, v)| {
                k.len() * 2
                    + v.as_str()
                        .map(|s| s.encode_utf16().count() * 2)
                        .unwrap_or(8)
            })
            .sum()
    }

    #[test]
    fn checkpoints_move_between_inline_and_rows_and_read_back_whole() {
        let me = Owner {
            processor: "p".into(),
            generation: 3,
        };
        let mut owner = owner_entity("t", &me);
        let mut extra = BTreeMap::new();
        let mut stored = Stored::default();
        let small = "s".repeat(100);
        let big = "b".repeat(CHUNK_UNITS * CHUNKS_PER_ROW * 2 + 7);
        let medium = "m".repeat(CHUNK_UNITS * 3 + 1);
        for (i, text) in [&small, &big, &medium, &small, &big, &small]
            .iter()
            .enumerate()
        {
            let (head, ops, after) = layout("t", 2, text, stored);
            // Small and medium ones are one merge, with no transaction.
            assert_eq!(
                ops.is_empty(),
                text.len() <= CHUNK_UNITS * INLINE_CHUNKS && stored.rows == 0,
                "step {i}"
            );
            apply(&mut owner, &mut extra, head, ops);
            stored = after;
            let (read, seen, problems) = assemble("t", &owner, &extra);
            assert!(problems.is_empty(), "{problems:?}");
            assert_eq!(read[&2], **text, "step {i}");
            assert_eq!(seen[&2], stored, "step {i}");
            assert!(owner.properties.len() <= 255);
            assert!(
                entity_bytes(&owner) < 1024 * 1024 / 3,
                "{}",
                entity_bytes(&owner)
            );
            for row in extra.values().flat_map(|r| r.values()) {
                assert!(entity_bytes(row) < 1024 * 1024 - 16 * 1024);
            }
        }
        // The other version is untouched by all this.
        let (head, ops, _) = layout("t", 1, "v1 text", Stored::default());
        apply(&mut owner, &mut extra, head, ops);
        let (read, _, _) = assemble("t", &owner, &extra);
        assert_eq!(read[&1], "v1 text");
        assert_eq!(read[&2], small);
    }

    #[test]
    fn a_missing_chunk_row_is_reported_and_left_out_not_a_short_checkpoint() {
        let me = Owner {
            processor: "p".into(),
            generation: 1,
        };
        let text = "y".repeat(CHUNK_UNITS * CHUNKS_PER_ROW + 10);
        let mut owner = owner_entity("t", &me);
        let mut extra = BTreeMap::new();
        let (head, ops, _) = layout("t", 1, &text, Stored::default());
        apply(&mut owner, &mut extra, head, ops);
        extra.get_mut(&1).unwrap().remove(&1);
        let (read, stored, problems) = assemble("t", &owner, &extra);
        assert!(!read.contains_key(&1), "{read:?}");
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].contains("incomplete") && problems[0].contains("'t|v1.1' is missing"),
            "{problems:?}"
        );
        // The row still there is known, so the next write of version 1 deletes it.
        assert_eq!(stored[&1].rows, 1);
    }

    #[test]
    fn config_names_bad_values_and_derives_tables() {
        let map = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let c = CheckpointConfig::from_map(&map(&[("job.name", "my-job")])).unwrap();
        assert_eq!(c.upstream_table.as_deref(), Some("myjob"));
        assert!(c.table.starts_with("samzacpmyjob1"), "{}", c.table);
        let off = map(&[("job.name", "j"), (KEY_UPSTREAM_READ, "false")]);
        assert_eq!(
            CheckpointConfig::from_map(&off).unwrap().upstream_table,
            None
        );
        let bad = map(&[("job.name", "j"), (KEY_UPSTREAM_READ, "yes")]);
        let e = CheckpointConfig::from_map(&bad).unwrap_err();
        assert!(e.message().contains(KEY_UPSTREAM_READ) && e.message().contains("yes"));
        let bad = map(&[("job.name", "j"), (KEY_UPSTREAM_TABLE, "no-dashes")]);
        let e = CheckpointConfig::from_map(&bad).unwrap_err();
        assert!(e.message().contains(KEY_UPSTREAM_TABLE), "{e}");
        let e = CheckpointConfig::from_map(&map(&[])).unwrap_err();
        assert!(e.message().contains("job.name"));
    }

    #[test]
    fn escaped_length_is_what_serde_json_sends() {
        for text in [
            "plain",
            "{\"a\":\"b\\c\"}",
            "line\nbreak\ttab\u{1}\u{7f}é😀",
            "",
        ] {
            let json = serde_json::to_string(text).unwrap();
            assert_eq!(escaped_len(text), json.len() - 2, "{text:?}");
        }
    }

    #[test]
    fn upstream_table_names_drop_non_alphanumerics() {
        assert_eq!(upstream_table("my-job_1"), "myjob1");
    }
}
