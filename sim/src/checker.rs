//! The invariants, checked on every request storage applied and on a fine sample of virtual
//! time:
//! - no task is processed by two processors at the same instant;
//! - storage never accepts a leader write under a lease that, by the checker's own account of
//!   the lease requests storage applied, was no longer active, or was held by someone else;
//! - each version number names one content, and every processor starts a version with the
//!   content that was published for it;
//! - no coordinator ends with an error (a storage outage never ends a processor);
//! - storage never accepts a checkpoint from a container other than the task's latest claim,
//!   nor a claim below the owner's generation; a task's checkpoint never goes back; what a
//!   commit acknowledged is read back at the end; and a container's start or commit fails only
//!   on another owner's claim, never on an outage.
//!
//! It also keeps the run's trace: the events that matter, with their virtual time, so that two
//! runs of one seed can be compared event for event.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use samza_azure_coordinator::coordinator::jobmodel::ModelDocument;
use samza_azure_coordinator::coordinator::Coordinator;
use samza_azure_coordinator::error::Result;
use samza_azure_coordinator::storage::{BatchOp, Entity, LeaseDuration, LeaseId};

use crate::container;
use crate::freeze::Freeze;
use crate::memstore::{Answer, Op};

/// What `ProcessingFence.Gate` decides from: the processor's fence count when the container
/// started, its coordinator's self-fence deadline, and whether it is frozen.
#[derive(Clone)]
pub struct Gate {
    /// The fence epoch it started under.
    pub epoch: u64,
    pub coordinator: Arc<Coordinator>,
    pub freeze: Arc<Freeze>,
    /// Containers of a build that ignores the self-fence deadline (a reintroduced bug).
    pub ignores_deadline: bool,
}

impl Gate {
    /// What `ProcessingFence.Gate` lets through: not frozen, no fence since it started, and
    /// before the self-fence deadline.
    pub fn may_process(&self) -> bool {
        let m = self.coordinator.metrics();
        !self.freeze.is_frozen()
            && m.fences.load(Ordering::Acquire) == self.epoch
            && (self.ignores_deadline || m.fence_remaining_nanos() > 0)
    }
}

/// A container as the Java side started it: it may process while its gate is open.
pub struct Container {
    pub version: u64,
    pub tasks: Vec<u32>,
    pub gate: Gate,
}

impl Container {
    pub fn may_process(&self) -> bool {
        self.gate.may_process()
    }
}

/// The lease as storage must see it, rebuilt from the lease requests it applied.
#[derive(Clone, Debug)]
struct Lease {
    id: LeaseId,
    holder: usize,
    /// What it was acquired for (None: infinite); a renew extends it by as much.
    duration: Option<Duration>,
    /// None: never.
    expires: Option<Duration>,
}

#[derive(Default)]
struct State {
    containers: BTreeMap<String, Container>,
    lease: Option<Lease>,
    /// version -> (content id, model) as published.
    versions: BTreeMap<u64, (String, String)>,
    /// client number -> processor id.
    names: BTreeMap<usize, String>,
    violations: Vec<String>,
    trace: Vec<String>,
    /// Seen at the last sample: task -> holders, to report an overlap once.
    overlapping: BTreeMap<u32, Vec<String>>,
    /// Checkpoint owner rows by row key, as storage must hold them by the writes it accepted.
    checkpoint_rows: BTreeMap<String, CheckpointRow>,
    /// Task -> the highest offset whose commit a container was told succeeded.
    acked: BTreeMap<u32, u64>,
}

/// A task's checkpoint owner row, by the checker's account of the writes storage accepted.
#[derive(Default, Debug)]
struct CheckpointRow {
    /// (processor, generation) of the latest claim.
    owner: Option<(String, u64)>,
    /// The offset its checkpoint holds.
    offset: Option<u64>,
}

#[derive(Default)]
pub struct Checker {
    state: Mutex<State>,
    /// Leader writes of the document storage accepted (for the report).
    pub publishes: std::sync::atomic::AtomicU64,
}

static LIVE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Whether the environment variable `name` is set, read once per process: it is asked on
/// every trace line and every request.
pub(crate) fn env_set(cell: &'static std::sync::OnceLock<bool>, name: &str) -> bool {
    *cell.get_or_init(|| std::env::var_os(name).is_some())
}

/// The job model document's blob name (see `coordinator::names`).
const JOB_MODEL: &str = "jobmodel";

impl Checker {
    pub fn name(&self, who: usize, id: &str) {
        self.state.lock().unwrap().names.insert(who, id.to_owned());
    }

    /// The client number of `id`'s latest start.
    pub fn client_named(&self, id: &str) -> usize {
        let s = self.state.lock().unwrap();
        s.names
            .iter()
            .filter(|(_, n)| n.as_str() == id)
            .map(|(w, _)| *w)
            .max()
            .unwrap_or(usize::MAX)
    }

    pub fn trace(&self, at: Duration, line: impl Into<String>) {
        let line = line.into();
        if env_set(&LIVE, "SIM_LIVE") {
            // As it happens: a run that never ends shows where it got to.
            eprintln!("{:>10.3} {line}", at.as_secs_f64());
        }
        self.state
            .lock()
            .unwrap()
            .trace
            .push(format!("{:>10.3} {line}", at.as_secs_f64()));
    }

    pub fn violation(&self, at: Duration, what: impl Into<String>) {
        let what = format!("{:>10.3} {}", at.as_secs_f64(), what.into());
        let mut s = self.state.lock().unwrap();
        s.trace.push(format!("VIOLATION {what}"));
        s.violations.push(what);
    }

    pub fn violations(&self) -> Vec<String> {
        self.state.lock().unwrap().violations.clone()
    }

    pub fn trace_lines(&self) -> Vec<String> {
        self.state.lock().unwrap().trace.clone()
    }

    /// A request storage applied, with its answer.
    pub fn applied(
        &self,
        who: usize,
        generation: Option<u64>,
        op: &Op,
        answer: &Result<crate::memstore::Answer>,
        at: Duration,
    ) {
        let Ok(answer) = answer else { return };
        let mut s = self.state.lock().unwrap();
        let s = &mut *s;
        match (op, answer) {
            (Op::AcquireLease { blob, duration, .. }, Answer::Lease(id))
                if blob.blob() == JOB_MODEL =>
            {
                let duration = lease_length(*duration);
                s.lease = Some(Lease {
                    id: *id,
                    holder: who,
                    duration,
                    expires: duration.map(|d| at + d),
                });
                let name = s.names.get(&who).cloned().unwrap_or_default();
                s.trace.push(format!(
                    "{:>10.3} lease acquired by {name}",
                    at.as_secs_f64()
                ));
            }
            (Op::RenewLease { blob, lease }, Answer::Unit) if blob.blob() == JOB_MODEL => {
                if let Some(l) = s.lease.as_mut().filter(|l| l.id == *lease) {
                    l.expires = l.duration.map(|d| at + d);
                }
            }
            (Op::ReleaseLease { blob, lease }, Answer::Unit)
                if blob.blob() == JOB_MODEL && s.lease.as_ref().is_some_and(|l| l.id == *lease) =>
            {
                s.lease = None;
            }
            (Op::BreakLease { blob, period }, Answer::Duration(_)) if blob.blob() == JOB_MODEL => {
                // Writes under the broken lease are refused once the break period is over;
                // during it the lease still counts as the holder's.
                if let Some(l) = s.lease.as_mut() {
                    let end = at + *period;
                    l.expires = Some(l.expires.map_or(end, |e| e.min(end)));
                }
            }
            (
                Op::ChangeLease {
                    blob,
                    lease,
                    proposed,
                },
                Answer::Lease(_),
            ) if blob.blob() == JOB_MODEL => {
                if let Some(l) = s.lease.as_mut().filter(|l| l.id == *lease) {
                    l.id = *proposed;
                }
            }
            (
                Op::ReplaceDocument {
                    blob, body, lease, ..
                },
                Answer::ETag(_),
            ) if blob.blob() == JOB_MODEL => {
                let writer = s.names.get(&who).cloned().unwrap_or_default();
                match (lease, &s.lease) {
                    (Some(id), Some(l))
                        if l.id == *id && l.expires.is_none_or(|e| at < e) && l.holder == who => {}
                    (Some(id), held) => s.violations.push(format!(
                        "{:>10.3} storage accepted {writer}'s document write under lease {id}, \
                         but the lease storage had granted was {held:?}",
                        at.as_secs_f64()
                    )),
                    // Unleased writes: only creation of the initial document, which
                    // `CreateDocument` does; a replace without a lease is not a leader write
                    // the protocol makes.
                    (None, _) => s.violations.push(format!(
                        "{:>10.3} {writer} replaced the document without the lease",
                        at.as_secs_f64()
                    )),
                }
                self.publishes.fetch_add(1, Ordering::Relaxed);
                match ModelDocument::decode(body) {
                    Ok(doc) => {
                        let v = doc.header.version;
                        let content = doc.header.content.clone();
                        s.trace.push(format!(
                            "{:>10.3} {writer} published v{v} {:?} must_ack={}",
                            at.as_secs_f64(),
                            doc.header.phase,
                            doc.header.must_ack.len()
                        ));
                        match s.versions.get(&v) {
                            Some((c, _)) if *c != content => s.violations.push(format!(
                                "{:>10.3} version {v} published with content {content}, but it \
                                 already named content {c}",
                                at.as_secs_f64()
                            )),
                            Some(_) => {}
                            None => {
                                s.versions.insert(v, (content, doc.model));
                            }
                        }
                    }
                    Err(e) => s.violations.push(format!(
                        "{:>10.3} {writer} published a document that does not decode: {e}",
                        at.as_secs_f64()
                    )),
                }
            }
            (Op::InsertEntity { table, entity }, _)
            | (Op::UpdateEntity { table, entity, .. }, _)
            | (Op::UpsertEntity { table, entity, .. }, _)
                if table == container::TABLE =>
            {
                checkpoint_write(s, who, generation, entity, at);
            }
            (Op::Batch { table, ops, .. }, _) if table == container::TABLE => {
                for op in ops {
                    if let BatchOp::Insert(e) | BatchOp::Update(e, _) | BatchOp::Upsert(e, _) = op {
                        checkpoint_write(s, who, generation, e, at);
                    }
                }
            }
            _ => {}
        }
    }

    /// A container was told that its commit of `offset` for `task` succeeded.
    pub fn acked(&self, task: u32, offset: u64) {
        let mut s = self.state.lock().unwrap();
        let a = s.acked.entry(task).or_default();
        *a = (*a).max(offset);
    }

    /// At the end of a run, `task`'s checkpoint as the checkpoint store reads it back: never
    /// below what was acknowledged.
    pub fn audit(&self, at: Duration, task: u32, read: Option<u64>) {
        let mut s = self.state.lock().unwrap();
        let acked = s.acked.get(&task).copied();
        if acked.is_some_and(|a| read.is_none_or(|r| r < a)) {
            s.violations.push(format!(
                "{:>10.3} the checkpoint of task {task} reads back as {read:?}, but offset {} \
                 was acknowledged",
                at.as_secs_f64(),
                acked.unwrap_or_default()
            ));
        }
    }

    /// A container starts (or keeps running) `tasks` of `version`.
    pub fn start(&self, at: Duration, id: &str, c: Container, model: &str) {
        let mut s = self.state.lock().unwrap();
        match s.versions.get(&c.version) {
            Some((_, published)) if published != model => s.violations.push(format!(
                "{:>10.3} {id} started v{} with a model other than the one published for it",
                at.as_secs_f64(),
                c.version
            )),
            None => s.violations.push(format!(
                "{:>10.3} {id} started v{}, which storage never accepted",
                at.as_secs_f64(),
                c.version
            )),
            _ => {}
        }
        s.trace.push(format!(
            "{:>10.3} {id} starts v{} with {} tasks",
            at.as_secs_f64(),
            c.version,
            c.tasks.len()
        ));
        s.containers.insert(id.to_owned(), c);
        drop(s);
        self.sample(at);
    }

    pub fn stop(&self, at: Duration, id: &str, why: &str) {
        let mut s = self.state.lock().unwrap();
        if s.containers.remove(id).is_some() {
            s.trace.push(format!(
                "{:>10.3} {id} container stopped ({why})",
                at.as_secs_f64()
            ));
        }
    }

    pub fn running(&self, id: &str) -> bool {
        self.state.lock().unwrap().containers.contains_key(id)
    }

    /// Which processors may process each task now.
    pub fn holders(&self) -> BTreeMap<u32, Vec<String>> {
        let s = self.state.lock().unwrap();
        let mut holders: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for (id, c) in &s.containers {
            if c.may_process() {
                for t in &c.tasks {
                    holders.entry(*t).or_default().push(id.clone());
                }
            }
        }
        holders
    }

    /// Checks that no task has two processors that may process it now.
    pub fn sample(&self, at: Duration) {
        let overlaps: BTreeMap<u32, Vec<String>> = self
            .holders()
            .into_iter()
            .filter(|(_, ids)| ids.len() > 1)
            .collect();
        let mut s = self.state.lock().unwrap();
        for (task, ids) in &overlaps {
            if s.overlapping.get(task) != Some(ids) {
                let what = format!(
                    "{:>10.3} task {task} may be processed by {ids:?} at once",
                    at.as_secs_f64()
                );
                s.trace.push(format!("VIOLATION {what}"));
                s.violations.push(what);
            }
        }
        s.overlapping = overlaps;
    }
}

/// A write to a checkpoint owner row that storage accepted: a claim (it names the owner) must
/// not go below the owner's generation; a checkpoint (it does not) must come from the owner's
/// own container and not take the offset back.
fn checkpoint_write(
    s: &mut State,
    who: usize,
    generation: Option<u64>,
    entity: &Entity,
    at: Duration,
) {
    let Some((task, claimant)) = container::owner_row_write(entity) else {
        return;
    };
    let writer = s.names.get(&who).cloned().unwrap_or_default();
    let row = s.checkpoint_rows.entry(entity.row_key.clone()).or_default();
    let t = at.as_secs_f64();
    if let Some(processor) = claimant {
        let claimed: u64 = entity
            .get_str("generation")
            .and_then(|g| g.parse().ok())
            .unwrap_or_default();
        if let Some((owner, had)) = &row.owner {
            if claimed != 0 && claimed < *had {
                s.violations.push(format!(
                    "{t:>10.3} storage accepted {writer}'s claim of task '{task}' at generation \
                     {claimed}, but {owner} owned it at generation {had}"
                ));
            }
        }
        row.owner = Some((processor.to_owned(), claimed));
        return;
    }
    let owner_ok = matches!((&row.owner, generation),
        (Some((p, g)), Some(mine)) if *p == writer && *g == mine);
    if !owner_ok {
        s.violations.push(format!(
            "{t:>10.3} storage accepted a checkpoint of task '{task}' from {writer}'s container \
             of v{generation:?}, but the task's owner row names {:?}",
            row.owner
        ));
    }
    let written = entity
        .properties
        .values()
        .filter_map(|v| v.as_str())
        .find_map(container::offset_of);
    if let Some(offset) = written {
        if let Some(before) = row.offset.filter(|b| offset < *b) {
            s.violations.push(format!(
                "{t:>10.3} the checkpoint of task '{task}' went back from offset {before} to \
                 {offset} ({writer}'s write)"
            ));
        }
        row.offset = Some(offset);
    }
}

fn lease_length(d: LeaseDuration) -> Option<Duration> {
    match d {
        LeaseDuration::Seconds(s) => Some(Duration::from_secs(u64::from(s))),
        LeaseDuration::Infinite => None,
    }
}
