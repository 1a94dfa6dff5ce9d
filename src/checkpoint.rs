//! Task checkpoints in Table Storage, fenced by task ownership.
//!
//! One table per job; one partition per task (PartitionKey = the task name, escaped). In it:
//! - `owner`: who may write the task's checkpoints: the processor and the generation (the
//!   JobModel version in which it started the container holding the task);
//! - `v<version>` (and `v<version>.<n>` when one row is not enough): the last checkpoint of
//!   that checkpoint version, opaque text split into string properties.
//!
//! A write is one entity-group transaction: the checkpoint rows, deletes of rows the previous
//! write used and this one does not, and a no-op merge of `owner` conditional on the ETag this
//! writer last saw. A new owner replaces `owner` when it claims the task, so a stale writer's
//! next transaction fails as a whole and nothing of it is applied.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::coordinator::config::{KEY_JOB_ID, KEY_JOB_NAME};
use crate::coordinator::names::JobNames;
use crate::error::{Error, ErrorKind, Result};
use crate::storage::{BatchOp, ETag, Entity, IfMatch, TableStore, WriteMode};

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
        let name = config
            .get(KEY_JOB_NAME)
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| Error::config(KEY_JOB_NAME, "a non-empty job name"))?;
        let id = config.get(KEY_JOB_ID).map(String::as_str).unwrap_or("1");
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
            None => upstream_table(name),
        };
        Ok(CheckpointConfig {
            table: JobNames::new(name, id)?.checkpoint_table,
            // A job name with no letters or digits gave upstream no valid table either.
            upstream_table: (read && crate::storage::names::validate_table(&upstream_table).is_ok())
                .then_some(upstream_table),
        })
    }
}

const OWNER_ROW: &str = "owner";
/// UTF-16 code units per string property: the Table service allows 64 KiB per property.
const CHUNK_UNITS: usize = 32_000;
/// Chunks per row: 15 × 64,000 bytes stays under the 1 MiB entity limit with room for names.
const CHUNKS_PER_ROW: usize = 15;
/// Largest checkpoint accepted: its UTF-8 text must fit one 4 MiB transaction with the
/// multipart and JSON overhead.
pub const MAX_CHECKPOINT_BYTES: usize = 3 * 1024 * 1024;

/// Who owns a task, as recorded in its `owner` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub processor: String,
    pub generation: u64,
}

/// What is known about one claimed task.
struct TaskState {
    owner_etag: ETag,
    generation: u64,
    /// Rows each checkpoint version occupies now.
    rows: BTreeMap<u16, usize>,
    /// Checkpoints read while claiming, handed to the first read.
    claimed: Option<BTreeMap<u16, String>>,
}

/// The checkpoints of one job, as written by one processor.
pub struct CheckpointStore<S: TableStore> {
    store: Arc<S>,
    table: String,
    processor: String,
    tasks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<TaskState>>>>>,
}

/// Escapes what the Table service forbids in keys (`/ \ # ?`, control characters) and `%`
/// itself, so distinct task names stay distinct.
pub fn partition_key(task: &str) -> String {
    let mut out = String::with_capacity(task.len());
    for c in task.chars() {
        if matches!(c, '/' | '\\' | '#' | '?' | '%') || c.is_control() {
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

fn row_key(version: u16, index: usize) -> String {
    if index == 0 {
        format!("v{version}")
    } else {
        format!("v{version}.{index}")
    }
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

fn owner_entity(pk: &str, owner: &Owner) -> Entity {
    Entity::new(pk, OWNER_ROW)
        .with("processor", owner.processor.as_str())
        .with("generation", owner.generation.to_string())
}

fn parse_owner(task: &str, e: &Entity) -> Result<Owner> {
    let bad = || {
        Error::new(
            ErrorKind::Internal,
            format!("the owner row of task '{task}' is malformed"),
        )
    };
    Ok(Owner {
        processor: e.get_str("processor").ok_or_else(bad)?.to_owned(),
        generation: e
            .get_str("generation")
            .and_then(|g| g.parse().ok())
            .ok_or_else(bad)?,
    })
}

/// The rows of one checkpoint: `v<version>` carries `rows` and `bytes` for checking
/// completeness on read.
fn checkpoint_rows(pk: &str, version: u16, generation: u64, text: &str) -> Vec<Entity> {
    let parts = chunks(text);
    let groups: Vec<&[&str]> = parts.chunks(CHUNKS_PER_ROW).collect();
    let n = groups.len();
    groups
        .into_iter()
        .enumerate()
        .map(|(i, group)| {
            let mut e = Entity::new(pk, row_key(version, i));
            if i == 0 {
                e = e
                    .with("rows", n as i64)
                    .with("bytes", text.len() as i64)
                    .with("generation", generation.to_string());
            }
            for (j, part) in group.iter().enumerate() {
                e = e.with(&format!("c{j}"), *part);
            }
            e
        })
        .collect()
}

/// A task's partition as read: its owner and its complete checkpoints.
struct Partition {
    owner: Option<(Owner, ETag)>,
    checkpoints: BTreeMap<u16, String>,
    rows: BTreeMap<u16, usize>,
}

fn parse_version(row_key: &str) -> Option<(u16, usize)> {
    let rest = row_key.strip_prefix('v')?;
    match rest.split_once('.') {
        None => Some((rest.parse().ok()?, 0)),
        Some((v, i)) => Some((v.parse().ok()?, i.parse().ok()?)),
    }
}

fn assemble(task: &str, rows: BTreeMap<u16, BTreeMap<usize, Entity>>) -> Result<Partition> {
    let mut checkpoints = BTreeMap::new();
    let mut counts = BTreeMap::new();
    for (version, parts) in rows {
        counts.insert(version, parts.len());
        let incomplete = || {
            Error::new(
                ErrorKind::Internal,
                format!("checkpoint version {version} of task '{task}' is incomplete in storage"),
            )
        };
        let head = parts.get(&0).ok_or_else(incomplete)?;
        let want_rows = head
            .properties
            .get("rows")
            .and_then(Value::as_i64)
            .ok_or_else(incomplete)? as usize;
        let want_bytes = head
            .properties
            .get("bytes")
            .and_then(Value::as_i64)
            .ok_or_else(incomplete)? as usize;
        let mut text = String::with_capacity(want_bytes);
        for i in 0..want_rows {
            let row = parts.get(&i).ok_or_else(incomplete)?;
            for j in 0..CHUNKS_PER_ROW {
                match row.get_str(&format!("c{j}")) {
                    Some(s) => text.push_str(s),
                    None => break,
                }
            }
        }
        if text.len() != want_bytes {
            return Err(incomplete());
        }
        checkpoints.insert(version, text);
    }
    Ok(Partition {
        owner: None,
        checkpoints,
        rows: counts,
    })
}

impl<S: TableStore> CheckpointStore<S> {
    pub fn new(store: Arc<S>, table: &str, processor: &str) -> Self {
        CheckpointStore {
            store,
            table: table.to_owned(),
            processor: processor.to_owned(),
            tasks: Mutex::new(HashMap::new()),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table if absent.
    pub async fn create_resources(&self) -> Result<()> {
        self.store.ensure_table(&self.table).await.map(|_| ())
    }

    fn slot(&self, task: &str) -> Arc<tokio::sync::Mutex<Option<TaskState>>> {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.entry(task.to_owned()).or_default().clone()
    }

    async fn read_partition(&self, task: &str) -> Result<Partition> {
        let pk = partition_key(task);
        let mut owner = None;
        let mut rows: BTreeMap<u16, BTreeMap<usize, Entity>> = BTreeMap::new();
        let mut continuation = None;
        loop {
            let page = self
                .store
                .query_partition(&self.table, &pk, None, Some(1000), continuation)
                .await?;
            for e in page.entities {
                if e.row_key == OWNER_ROW {
                    let etag = e.etag.clone().ok_or_else(|| {
                        Error::internal(format!("owner row of task '{task}' has no ETag"))
                    })?;
                    owner = Some((parse_owner(task, &e)?, etag));
                } else if let Some((v, i)) = parse_version(&e.row_key) {
                    rows.entry(v).or_default().insert(i, e);
                }
            }
            continuation = page.continuation;
            if continuation.is_none() {
                break;
            }
        }
        let mut partition = assemble(task, rows)?;
        partition.owner = owner;
        Ok(partition)
    }

    /// Takes ownership of `task` for `generation` (0: unfenced, see below) and reads its
    /// checkpoints. Refused with [`ErrorKind::Fenced`] when a newer generation owns it.
    ///
    /// Generation 0 means this processor was not started by our coordinator and has no
    /// generation: it takes the task whoever owns it, so nothing is fenced.
    pub async fn claim(&self, task: &str, generation: u64) -> Result<()> {
        let slot = self.slot(task);
        let mut state = slot.lock().await;
        let pk = partition_key(task);
        let me = Owner {
            processor: self.processor.clone(),
            generation,
        };
        for _ in 0..5 {
            let p = self.read_partition(task).await?;
            let write = match &p.owner {
                None => {
                    self.store
                        .insert_entity(&self.table, &owner_entity(&pk, &me))
                        .await
                }
                Some((o, etag)) if *o == me => Ok(etag.clone()),
                Some((o, etag)) if generation == 0 || o.generation < generation => {
                    let if_match = if generation == 0 {
                        IfMatch::Any
                    } else {
                        IfMatch::ETag(etag.clone())
                    };
                    self.store
                        .update_entity(
                            &self.table,
                            &owner_entity(&pk, &me),
                            &if_match,
                            WriteMode::Replace,
                        )
                        .await
                }
                Some((o, _)) => return Err(fenced(task, &me, o)),
            };
            match write {
                Ok(owner_etag) => {
                    if let Some((o, _)) = &p.owner {
                        if *o != me {
                            tracing::info!(task, from = %o.processor, from_generation = o.generation, generation, "took over task checkpoints");
                        }
                    }
                    *state = Some(TaskState {
                        owner_etag,
                        generation,
                        rows: p.rows,
                        claimed: Some(p.checkpoints),
                    });
                    return Ok(());
                }
                // Someone claimed it between our read and write: judge again.
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::AlreadyExists | ErrorKind::PreconditionFailed
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(
            ErrorKind::Transient,
            format!("could not claim task '{task}': its owner row kept changing"),
        ))
    }

    /// The task's checkpoints by checkpoint version (empty: none).
    pub async fn read(&self, task: &str) -> Result<BTreeMap<u16, String>> {
        let slot = self.slot(task);
        let mut state = slot.lock().await;
        let s = state.as_mut().ok_or_else(|| not_claimed(task))?;
        if let Some(claimed) = s.claimed.take() {
            return Ok(claimed);
        }
        let p = self.read_partition(task).await?;
        s.rows = p.rows;
        Ok(p.checkpoints)
    }

    /// Replaces the task's checkpoint of `version` with `text`, atomically, if this processor
    /// still owns the task.
    pub async fn write(&self, task: &str, version: u16, text: &str) -> Result<()> {
        if text.len() > MAX_CHECKPOINT_BYTES {
            return Err(Error::new(
                ErrorKind::BadRequest,
                format!(
                    "the checkpoint of task '{task}' is {} bytes; at most {MAX_CHECKPOINT_BYTES} fit in one atomic write",
                    text.len()
                ),
            ));
        }
        let slot = self.slot(task);
        let mut guard = slot.lock().await;
        let s = guard.as_mut().ok_or_else(|| not_claimed(task))?;
        let pk = partition_key(task);
        let me = Owner {
            processor: self.processor.clone(),
            generation: s.generation,
        };
        let rows = checkpoint_rows(&pk, version, s.generation, text);
        let n = rows.len();
        let before = s.rows.get(&version).copied().unwrap_or(0);
        let mut ops = Vec::with_capacity(1 + n.max(before));
        ops.push(BatchOp::Update(
            owner_entity(&pk, &me),
            IfMatch::ETag(s.owner_etag.clone()),
            WriteMode::Merge,
        ));
        ops.extend(
            rows.into_iter()
                .map(|e| BatchOp::Upsert(e, WriteMode::Replace)),
        );
        for i in n..before {
            ops.push(BatchOp::Delete {
                row_key: row_key(version, i),
                if_match: IfMatch::Any,
            });
        }
        match self.store.batch(&self.table, &pk, ops).await {
            Ok(etags) => {
                s.owner_etag = etags
                    .first()
                    .cloned()
                    .flatten()
                    .ok_or_else(|| Error::internal("the owner update returned no ETag"))?;
                s.rows.insert(version, n);
                s.claimed = None;
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::PreconditionFailed | ErrorKind::OutcomeUnknown
                ) =>
            {
                // Either a newer owner claimed the task, or a retry of our own transaction
                // found the ETag our first attempt had already changed. Storage tells which.
                let p = self.read_partition(task).await?;
                match p.owner {
                    Some((o, etag)) if o == me => {
                        s.owner_etag = etag;
                        s.rows = p.rows;
                        if p.checkpoints.get(&version).map(String::as_str) == Some(text) {
                            return Ok(());
                        }
                        Err(e.context(format!("writing the checkpoint of task '{task}'")))
                    }
                    Some((o, _)) => Err(fenced(task, &me, &o)),
                    None => Err(Error::new(
                        ErrorKind::Fenced,
                        format!("the checkpoint of task '{task}' was refused: its owner row is gone (checkpoints cleared?)"),
                    )),
                }
            }
            Err(e) => Err(e.context(format!("writing the checkpoint of task '{task}'"))),
        }
    }

    /// Deletes every row of these tasks (owner included), in transactions of up to 100.
    pub async fn clear(&self, tasks: &[String]) -> Result<()> {
        for task in tasks {
            let slot = self.slot(task);
            let mut state = slot.lock().await;
            let pk = partition_key(task);
            let mut keys = Vec::new();
            let mut continuation = None;
            loop {
                let page = match self
                    .store
                    .query_partition(&self.table, &pk, None, Some(1000), continuation)
                    .await
                {
                    Ok(p) => p,
                    Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(e),
                };
                keys.extend(page.entities.into_iter().map(|e| e.row_key));
                continuation = page.continuation;
                if continuation.is_none() {
                    break;
                }
            }
            for group in keys.chunks(100) {
                let ops = group
                    .iter()
                    .map(|k| BatchOp::Delete {
                        row_key: k.clone(),
                        if_match: IfMatch::Any,
                    })
                    .collect();
                self.store.batch(&self.table, &pk, ops).await?;
            }
            *state = None;
        }
        Ok(())
    }

    /// Forgets a task (it left this processor); its rows stay for the next owner.
    pub fn release(&self, task: &str) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.remove(task);
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
    let mut out = Vec::new();
    let mut continuation = None;
    loop {
        let page = match store
            .query_partition(table, task, None, Some(1000), continuation)
            .await
        {
            Ok(p) => p,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e.context(format!("reading upstream checkpoints of '{task}'"))),
        };
        for e in page.entities {
            let offset = e.get_str("Offset").map(str::to_owned);
            out.push((e.row_key, offset));
        }
        continuation = page.continuation;
        if continuation.is_none() {
            break;
        }
    }
    Ok(out)
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
    fn partition_keys_escape_forbidden_characters_reversibly() {
        assert_eq!(partition_key("Partition 0"), "Partition 0");
        assert_eq!(partition_key("a/b#c?d\\e%f"), "a%2Fb%23c%3Fd%5Ce%25f");
        assert_eq!(partition_key("t\u{1}"), "t%01");
        // "%2F" written literally and "/" must not meet.
        assert_ne!(partition_key("%2F"), partition_key("/"));
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

    #[test]
    fn rows_stay_within_entity_limits() {
        let text = "x".repeat(CHUNK_UNITS * CHUNKS_PER_ROW * 2 + 1);
        let rows = checkpoint_rows("t", 2, 7, &text);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].row_key, "v2");
        assert_eq!(rows[2].row_key, "v2.2");
        for r in &rows {
            assert!(r.properties.len() <= 255);
            let bytes: usize = r
                .properties
                .values()
                .filter_map(Value::as_str)
                .map(|s| s.encode_utf16().count() * 2)
                .sum();
            assert!(bytes < 1024 * 1024 - 16 * 1024, "{bytes}");
        }
        let mut by_index = BTreeMap::new();
        for (i, r) in rows.into_iter().enumerate() {
            by_index.insert(i, r);
        }
        let p = assemble("t", BTreeMap::from([(2u16, by_index)])).unwrap();
        assert_eq!(p.checkpoints[&2], text);
    }

    #[test]
    fn a_missing_chunk_row_is_an_error_not_a_short_checkpoint() {
        let text = "y".repeat(CHUNK_UNITS * CHUNKS_PER_ROW + 10);
        let mut rows = checkpoint_rows("t", 1, 1, &text);
        rows.pop();
        let by_index: BTreeMap<usize, Entity> = rows.into_iter().enumerate().collect();
        let err = assemble("t", BTreeMap::from([(1u16, by_index)]))
            .err()
            .expect("incomplete");
        assert!(err.message().contains("incomplete"), "{err}");
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
        assert_eq!(CheckpointConfig::from_map(&off).unwrap().upstream_table, None);
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
    fn upstream_table_names_drop_non_alphanumerics() {
        assert_eq!(upstream_table("my-job_1"), "myjob1");
    }
}
