//! The ownership protocol of task checkpoints: a processor claims a task for a generation,
//! reads its checkpoints, and writes them conditional on its claim, so a stale owner's write
//! is refused as a whole (docs/protocol.md, "Checkpoints").

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};

use super::group_commit::{GroupCommit, Outcome};
use super::outage::{Patience, OUTAGE_FIRST_BACKOFF};
use super::rows::{
    assemble, escaped_len, layout, owner_entity, parse_extra, parse_owner, task_key,
    task_rows_filter, Owner, Stored, MALFORMED_OWNER, MAX_CHECKPOINT_BYTES, OWNER_ROW, PARTITION,
};
use super::upstream::read_upstream;
use crate::error::{Error, ErrorKind, Result};
use crate::storage::{BatchOp, ETag, Entity, IfMatch, TableStore, Update, MAX_BATCH_OPERATIONS};

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

/// A task's rows as read: its owner, its complete checkpoints, and where each version lives.
struct StoredTask {
    owner: Option<(Owner, ETag)>,
    checkpoints: BTreeMap<u16, String>,
    stored: BTreeMap<u16, Stored>,
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

    /// Reads the task's rows (see [`StoredTask`]); a version that is incomplete is left out
    /// with an ERROR, and a malformed owner row stands for an owner any claim takes over.
    async fn read_task(&self, task: &str) -> Result<StoredTask> {
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
            return Ok(StoredTask {
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
        Ok(StoredTask {
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
        let p = self.read_task(task).await?;
        let owner_etag = match &p.owner {
            None => {
                self.store
                    .insert_entity(&self.table, &owner_entity(key, me))
                    .await?
            }
            Some((o, etag)) if o == me => etag.clone(),
            Some((o, etag)) if generation == 0 || o.generation < generation => {
                // A merge: the checkpoints in the row stay for the new owner. Conditional on
                // the row as read, even for generation 0 (which takes the task whoever owns
                // it): a commit that lands between the read and this merge is read again,
                // not passed over and then overwritten from an older checkpoint.
                let if_match = IfMatch::ETag(etag.clone());
                let etag = self
                    .store
                    .update_entity(&self.table, &owner_entity(key, me), Update::merge(if_match))
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
        // The claims are made before the stream sees them, so that its future stays `Send`
        // for a spawned caller (a closure over `&String` inside a stream combinator is not).
        let claims: Vec<_> = tasks.iter().map(|t| self.claim(t, generation)).collect();
        futures::stream::iter(claims)
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
            let p = self.patiently(&what, || self.read_task(task)).await?;
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
                            .update_entity(&self.table, &head, Update::merge(if_match))
                            .await
                    }
                }
            } else {
                let mut ops = Vec::with_capacity(1 + extra.len());
                ops.push(BatchOp::Update(head, Update::merge(if_match)));
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
            let p = match self.read_task(task).await {
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
