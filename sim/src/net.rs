//! The path between a processor and storage: latency, the faults the schedule turns on, and
//! the crate's own retry loop above it.
//!
//! Each attempt is sent to a server task that is not the processor's, so what was sent is
//! applied whatever happens to the sender afterwards: a request in flight when its processor
//! freezes or dies still lands, and one whose answer is lost or late was applied all the same,
//! as on a real network. The processor sees only the answer, after the return leg.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use samza_azure_coordinator::config::RequestPolicy;
use samza_azure_coordinator::error::{Error, ErrorKind, Result};
use samza_azure_coordinator::storage::retry::{with_retry, Idempotency};
use samza_azure_coordinator::storage::{classify_answer, BatchOp, Entity, Guard, IfMatch};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::checker::Checker;
use crate::memstore::{Answer, MemStore, Op, Requests};

/// Round-trip times of Azure Storage in the same region: p50 about 10 ms, p99 about 50 ms,
/// and now and then a stall of a second or more.
#[derive(Clone, Debug)]
pub struct Latency {
    /// Chance that a request stalls for 1-3 s.
    pub stall_chance: f64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            stall_chance: 0.0005,
        }
    }
}

impl Latency {
    fn round_trip(&self, rng: &mut StdRng) -> Duration {
        let r: f64 = rng.gen();
        let ms = if r < self.stall_chance {
            rng.gen_range(1000..3000)
        } else if r < 0.90 {
            rng.gen_range(5..15)
        } else if r < 0.99 {
            rng.gen_range(15..50)
        } else {
            rng.gen_range(50..150)
        };
        Duration::from_millis(ms)
    }
}

/// What the schedule has switched on, each until an instant.
#[derive(Default, Debug)]
pub struct Faults {
    /// Requests of one processor are held until then (a hung connection, a slow node).
    pub stalled: BTreeMap<usize, Instant>,
    /// Every request is held until then (a partition-wide stall).
    pub stalled_all: Option<Instant>,
    /// Answered 503 ServerBusy without being applied.
    pub busy: BTreeMap<usize, Instant>,
    pub busy_all: Option<Instant>,
    /// Writes are applied and their answers lost (the client times out).
    pub ambiguous: BTreeMap<usize, Instant>,
    /// Any request is applied and its answer lost.
    pub lost: BTreeMap<usize, Instant>,
}

fn on(map: &BTreeMap<usize, Instant>, who: usize, now: Instant) -> bool {
    map.get(&who).is_some_and(|until| now < *until)
}

/// Test-only reintroductions of known bugs, to show that the checker catches them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// Leader writes of the JobModel document go out without `If-Match`.
    NoIfMatch,
    /// Containers ignore the self-fence deadline (only a fence stops them).
    IgnoreFence,
    /// Java acknowledges a new version before its container has stopped, and stops it after.
    AckBeforeStop,
    /// Checkpoint writes go out without `If-Match` on the owner row's ETag.
    UnfencedCheckpoints,
}

impl Bug {
    pub const ALL: [Bug; 4] = [
        Bug::NoIfMatch,
        Bug::IgnoreFence,
        Bug::AckBeforeStop,
        Bug::UnfencedCheckpoints,
    ];

    /// Its name on the command line (`--bug`).
    pub fn name(self) -> &'static str {
        match self {
            Bug::NoIfMatch => "no-if-match",
            Bug::IgnoreFence => "ignore-fence",
            Bug::AckBeforeStop => "ack-before-stop",
            Bug::UnfencedCheckpoints => "unfenced-checkpoints",
        }
    }

    pub fn named(name: &str) -> Option<Bug> {
        Bug::ALL.into_iter().find(|b| b.name() == name)
    }
}

/// Requests, and entities read or written, per resource and virtual second, for the scale
/// report (Azure's targets: about 2,000 entities/s per table partition, 500 requests/s per
/// blob, 20,000 requests/s per account).
#[derive(Default, Debug)]
pub struct Load {
    /// (resource, second) -> requests.
    pub requests: BTreeMap<(String, u64), u32>,
    /// (table partition, second) -> entities read or written.
    pub entities: BTreeMap<(String, u64), u32>,
    /// (resource, second) -> request kind -> entities (tables) or requests (blobs), to say
    /// what a peak was made of.
    pub kinds: BTreeMap<(String, u64), BTreeMap<&'static str, u32>>,
    pub total: u64,
}

impl Load {
    fn count(&mut self, op: &Op, answer: &Result<Answer>, at: Duration) {
        let second = at.as_secs();
        self.total += 1;
        let resource = resource(op);
        *self.requests.entry((resource.clone(), second)).or_default() += 1;
        *self
            .requests
            .entry(("account".to_owned(), second))
            .or_default() += 1;
        let table_partition = resource.starts_with("table:") && resource.contains('/');
        let entities = match (op, answer) {
            (Op::QueryPartition { .. }, Ok(Answer::Page(p))) => p.entities.len(),
            (Op::Batch { ops, .. }, _) => ops.len(),
            _ if table_partition => 1,
            _ => 0,
        };
        // Tables by entities, blobs and the rest by requests.
        let weight = if table_partition { entities } else { 1 };
        if weight > 0 {
            *self
                .kinds
                .entry((resource.clone(), second))
                .or_default()
                .entry(kind(op))
                .or_default() += weight as u32;
        }
        if entities > 0 {
            *self.entities.entry((resource, second)).or_default() += entities as u32;
        }
    }

    /// The resource and second of the peak [`Load::peak`] finds, with what it was made of.
    pub fn peak_kinds(
        &self,
        map: &BTreeMap<(String, u64), u32>,
        prefix: &str,
        from: u64,
        to: u64,
    ) -> Option<Peak> {
        let ((resource, second), _) = map
            .iter()
            .filter(|((r, s), _)| r.starts_with(prefix) && (from..to).contains(s))
            .max_by_key(|(_, n)| **n)?;
        let mut kinds: Vec<_> = self
            .kinds
            .get(&(resource.clone(), *second))
            .map(|k| k.iter().map(|(k, n)| (*k, *n)).collect())
            .unwrap_or_default();
        kinds.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        Some(Peak {
            resource: resource.clone(),
            second: *second,
            kinds,
        })
    }

    /// The highest count per second of any resource whose name starts with `prefix`, in
    /// seconds `from..to`.
    pub fn peak(map: &BTreeMap<(String, u64), u32>, prefix: &str, from: u64, to: u64) -> u32 {
        map.iter()
            .filter(|((r, s), _)| r.starts_with(prefix) && (from..to).contains(s))
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(0)
    }
}

/// The busiest second of one resource, and what it was made of (request kind, count).
#[derive(Clone, Debug)]
pub struct Peak {
    pub resource: String,
    pub second: u64,
    pub kinds: Vec<(&'static str, u32)>,
}

/// A request's kind for load breakdowns; transactions by size, since a heartbeat is a
/// transaction of two and a leader's notification one of up to 100.
fn kind(op: &Op) -> &'static str {
    match op {
        Op::EnsureContainer { .. } => "ensure container",
        Op::AcquireLease { .. } => "acquire lease",
        Op::RenewLease { .. } => "renew lease",
        Op::ReleaseLease { .. } => "release lease",
        Op::BreakLease { .. } => "break lease",
        Op::ChangeLease { .. } => "change lease",
        Op::CreateDocument { .. } => "create document",
        Op::ReadDocument { .. } => "read document",
        Op::ReadDocumentIfChanged { .. } => "read document if changed",
        Op::CheckDocument { .. } => "check document",
        Op::ReplaceDocument { .. } => "replace document",
        Op::DeleteDocument { .. } => "delete document",
        Op::EnsureTable { .. } => "ensure table",
        Op::DeleteTable { .. } => "delete table",
        Op::InsertEntity { .. } => "insert entity",
        Op::UpsertEntity { .. } => "upsert entity",
        Op::UpdateEntity { .. } => "update entity",
        Op::GetEntity { .. } => "get entity",
        Op::QueryPartition { .. } => "query partition",
        Op::Batch { ops, .. } if ops.len() <= 2 => "transaction of 1-2",
        Op::Batch { .. } => "transaction of 3+",
        Op::DeleteEntity { .. } => "delete entity",
    }
}

/// The resource Azure's scalability targets apply to: a blob, a table partition, the account.
fn resource(op: &Op) -> String {
    match op {
        Op::EnsureContainer { container } => format!("blob:{container}"),
        Op::AcquireLease { blob, .. }
        | Op::RenewLease { blob, .. }
        | Op::ReleaseLease { blob, .. }
        | Op::BreakLease { blob, .. }
        | Op::ChangeLease { blob, .. }
        | Op::CreateDocument { blob, .. }
        | Op::ReadDocument { blob }
        | Op::ReadDocumentIfChanged { blob, .. }
        | Op::CheckDocument { blob, .. }
        | Op::ReplaceDocument { blob, .. }
        | Op::DeleteDocument { blob, .. } => format!("blob:{blob}"),
        Op::EnsureTable { table } | Op::DeleteTable { table } => format!("table:{table}"),
        Op::InsertEntity { table, entity }
        | Op::UpsertEntity { table, entity, .. }
        | Op::UpdateEntity { table, entity, .. } => {
            format!("table:{table}/{}", entity.partition_key)
        }
        Op::GetEntity {
            table,
            partition_key,
            ..
        }
        | Op::QueryPartition {
            table,
            partition_key,
            ..
        }
        | Op::Batch {
            table,
            partition_key,
            ..
        }
        | Op::DeleteEntity {
            table,
            partition_key,
            ..
        } => format!("table:{table}/{partition_key}"),
    }
}

/// Whether repeating `op` is harmless, by the adapter's own classification of the same call.
fn idempotency(op: &Op) -> Idempotency {
    match op {
        Op::ChangeLease { .. }
        | Op::CreateDocument { .. }
        | Op::DeleteDocument { .. }
        | Op::InsertEntity { .. } => Idempotency::Conditional,
        Op::ReplaceDocument { if_match, .. } => Idempotency::of_blob_write(&Guard {
            if_match: if_match.clone(),
            lease: None,
        }),
        Op::UpdateEntity { if_match, .. } | Op::DeleteEntity { if_match, .. } => {
            Idempotency::of_condition(if_match)
        }
        Op::Batch { ops, .. } => Idempotency::of_batch(ops),
        _ => Idempotency::Idempotent,
    }
}

static LOG_REQUESTS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Storage and the network, shared by every processor of a run.
pub struct Net {
    pub store: MemStore,
    pub faults: Mutex<Faults>,
    pub load: Mutex<Load>,
    pub checker: Arc<Checker>,
    rng: Mutex<StdRng>,
    latency: Latency,
    policy: RequestPolicy,
    start: Instant,
    bug: Option<Bug>,
}

impl Net {
    pub fn new(seed: u64, latency: Latency, checker: Arc<Checker>, bug: Option<Bug>) -> Self {
        Net {
            store: MemStore::new(),
            faults: Mutex::default(),
            load: Mutex::default(),
            checker,
            // Its own stream, so that the network's draws do not shift the engine's.
            rng: Mutex::new(StdRng::seed_from_u64(seed ^ 0x6e65_7477_6f72_6b00)),
            latency,
            policy: RequestPolicy::default(),
            start: Instant::now(),
            bug,
        }
    }

    pub fn bug(&self) -> Option<Bug> {
        self.bug
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// One attempt of `op` by processor `who` (for a container of `generation`, if one sends
    /// it): the outbound leg, the server, the return leg.
    async fn attempt(
        self: &Arc<Self>,
        who: usize,
        generation: Option<u64>,
        op: Op,
    ) -> Result<Answer> {
        let now = Instant::now();
        let (there, back, busy, lose) = {
            let f = self.faults.lock().unwrap();
            let busy = on(&f.busy, who, now) || f.busy_all.is_some_and(|u| now < u);
            let lose = on(&f.lost, who, now) || (op.is_write() && on(&f.ambiguous, who, now));
            let mut rng = self.rng.lock().unwrap();
            let rtt = self.latency.round_trip(&mut rng);
            (rtt / 2, rtt - rtt / 2, busy, lose)
        };
        let (tx, rx) = oneshot::channel();
        let net = self.clone();
        // The server side: not the processor's task, so freezing the processor does not hold
        // back what it already sent.
        tokio::spawn(async move {
            tokio::time::sleep(there).await;
            net.hold(who).await;
            if busy {
                let _ = tx.send(Err(classify_answer(
                    503,
                    Some("ServerBusy"),
                    Some("The server is busy."),
                )));
                return;
            }
            let answer = net.store.apply(&op);
            net.load.lock().unwrap().count(&op, &answer, net.elapsed());
            if crate::checker::env_set(&LOG_REQUESTS, "SIM_REQUESTS") {
                let outcome = match &answer {
                    Ok(_) => "ok".to_owned(),
                    Err(e) => e.to_string(),
                };
                eprintln!(
                    "{:>10.3} client {who}: {} -> {outcome}{}",
                    net.elapsed().as_secs_f64(),
                    op.describe(),
                    if lose { " (answer lost)" } else { "" }
                );
            }
            net.checker
                .applied(who, generation, &op, &answer, net.elapsed());
            if !lose {
                let _ = tx.send(answer);
            }
        });
        // A lost answer never comes: the request timeout below ends the attempt.
        let answer = match rx.await {
            Ok(a) => a,
            Err(_) => std::future::pending().await,
        };
        tokio::time::sleep(back).await;
        answer
    }

    /// Waits out the stalls that hold `who`'s requests.
    async fn hold(&self, who: usize) {
        loop {
            let until = {
                let f = self.faults.lock().unwrap();
                [f.stalled.get(&who).copied(), f.stalled_all]
                    .into_iter()
                    .flatten()
                    .max()
            };
            match until {
                Some(t) if Instant::now() < t => tokio::time::sleep_until(t).await,
                _ => return,
            }
        }
    }

    /// `op` as the adapter runs it: per-attempt timeout, retries with backoff, deadline.
    async fn request(
        self: &Arc<Self>,
        who: usize,
        generation: Option<u64>,
        op: Op,
        deadline: Option<Duration>,
    ) -> Result<Answer> {
        let idem = idempotency(&op);
        let timeout = self.policy.request_timeout;
        with_retry(&self.policy, deadline, idem, || {
            let op = op.clone();
            async move {
                match tokio::time::timeout(timeout, self.attempt(who, generation, op)).await {
                    Ok(r) => r,
                    Err(_) => Err(Error::new(
                        ErrorKind::Transient,
                        format!("no answer within {} ms", timeout.as_millis()),
                    )),
                }
            }
        })
        .await
    }
}

/// A checkpoint write: a merge of a task's owner row that does not name the owner (a claim
/// does).
fn is_checkpoint(entity: &Entity) -> bool {
    matches!(crate::container::owner_row_write(entity), Some((_, None)))
}

/// One processor's storage client: the storage traits over it are [`Endpoint`]'s.
pub struct Client {
    pub net: Arc<Net>,
    pub who: usize,
    /// The JobModel version of the container whose checkpoint store sends through this client
    /// (None: the coordinator's client), so that the checker can tell a stale container's
    /// checkpoint write from its successor's on the same processor.
    pub generation: Option<u64>,
}

#[async_trait]
impl Requests for Client {
    async fn request(&self, mut op: Op, deadline: Option<Duration>) -> Result<Answer> {
        match (self.net.bug(), &mut op) {
            (Some(Bug::NoIfMatch), Op::ReplaceDocument { if_match, .. }) => *if_match = None,
            (
                Some(Bug::UnfencedCheckpoints),
                Op::UpdateEntity {
                    entity, if_match, ..
                },
            ) if is_checkpoint(entity) => {
                *if_match = IfMatch::Any;
            }
            (Some(Bug::UnfencedCheckpoints), Op::Batch { ops, .. }) => {
                for op in ops {
                    if let BatchOp::Update(entity, update) = op {
                        if is_checkpoint(entity) {
                            update.if_match = IfMatch::Any;
                        }
                    }
                }
            }
            _ => {}
        }
        self.net
            .request(self.who, self.generation, op, deadline)
            .await
    }
}
