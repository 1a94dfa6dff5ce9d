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
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use samza_azure_coordinator::config::RequestPolicy;
use samza_azure_coordinator::error::{Error, ErrorKind, Result};
use samza_azure_coordinator::storage::retry::{with_retry, Idempotency};
use samza_azure_coordinator::storage::{
    classify_answer, BatchOp, BlobRef, Change, Continuation, Document, DocumentStore, ETag,
    Entity, IfMatch, LeaseDuration, LeaseId, LeaseStore, Page, TableStore, WriteMode,
};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::checker::Checker;
use crate::memstore::{Answer, MemStore, Op};

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
}

/// Requests per resource and virtual second, for the scale report.
#[derive(Default, Debug)]
pub struct Load {
    /// (resource, second) -> requests.
    pub per_second: BTreeMap<(String, u64), u32>,
    pub total: u64,
}

impl Load {
    fn count(&mut self, op: &Op, at: Duration) {
        let second = at.as_secs();
        self.total += 1;
        *self
            .per_second
            .entry((resource(op), second))
            .or_default() += 1;
        *self
            .per_second
            .entry(("account".to_owned(), second))
            .or_default() += 1;
    }

    /// The highest requests per second of any resource whose name starts with `prefix`, in
    /// seconds `from..to`.
    pub fn peak(&self, prefix: &str, from: u64, to: u64) -> u32 {
        self.per_second
            .iter()
            .filter(|((r, s), _)| r.starts_with(prefix) && (from..to).contains(s))
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(0)
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

/// Whether repeating `op` is harmless, as the Azure adapter classifies the same call.
fn idempotency(op: &Op) -> Idempotency {
    let conditional = match op {
        Op::ChangeLease { .. }
        | Op::CreateDocument { .. }
        | Op::DeleteDocument { .. }
        | Op::InsertEntity { .. } => true,
        Op::ReplaceDocument { if_match, .. } => if_match.is_some(),
        Op::UpdateEntity { if_match, .. } | Op::DeleteEntity { if_match, .. } => {
            matches!(if_match, IfMatch::ETag(_))
        }
        Op::Batch { ops, .. } => ops.iter().any(|o| {
            matches!(
                o,
                BatchOp::Insert(_)
                    | BatchOp::Update(_, IfMatch::ETag(_), _)
                    | BatchOp::Delete {
                        if_match: IfMatch::ETag(_),
                        ..
                    }
            )
        }),
        _ => false,
    };
    if conditional {
        Idempotency::Conditional
    } else {
        Idempotency::Idempotent
    }
}

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

    /// One attempt of `op` by processor `who`: the outbound leg, the server, the return leg.
    async fn attempt(self: &Arc<Self>, who: usize, op: Op) -> Result<Answer> {
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
            net.load.lock().unwrap().count(&op, net.elapsed());
            let answer = net.store.apply(&op);
            if std::env::var_os("SIM_REQUESTS").is_some() {
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
            net.checker.applied(who, &op, &answer, net.elapsed());
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
    async fn request(self: &Arc<Self>, who: usize, op: Op, deadline: Option<Duration>) -> Result<Answer> {
        let idem = idempotency(&op);
        let timeout = self.policy.request_timeout;
        with_retry(&self.policy, deadline, idem, || {
            let op = op.clone();
            async move {
                match tokio::time::timeout(timeout, self.attempt(who, op)).await {
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

/// One processor's storage client.
pub struct Client {
    pub net: Arc<Net>,
    pub who: usize,
}

fn unexpected(a: Answer) -> Error {
    Error::internal(format!("the simulated storage answered {a:?}"))
}

macro_rules! answer {
    ($self:ident, $op:expr, $pat:pat => $v:expr) => {
        match $self.net.request($self.who, $op, None).await? {
            $pat => Ok($v),
            other => Err(unexpected(other)),
        }
    };
}

#[async_trait]
impl LeaseStore for Client {
    async fn acquire_lease(
        &self,
        blob: &BlobRef,
        duration: LeaseDuration,
        proposed: Option<LeaseId>,
    ) -> Result<LeaseId> {
        let op = Op::AcquireLease {
            blob: blob.clone(),
            duration,
            proposed,
        };
        answer!(self, op, Answer::Lease(l) => l)
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
        match self.net.request(self.who, op, deadline).await? {
            Answer::Unit => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    async fn release_lease(&self, blob: &BlobRef, lease: LeaseId) -> Result<()> {
        let op = Op::ReleaseLease {
            blob: blob.clone(),
            lease,
        };
        answer!(self, op, Answer::Unit => ())
    }

    async fn break_lease(&self, blob: &BlobRef, period: Duration) -> Result<Duration> {
        let op = Op::BreakLease {
            blob: blob.clone(),
            period,
        };
        answer!(self, op, Answer::Duration(d) => d)
    }

    async fn change_lease(&self, blob: &BlobRef, lease: LeaseId, proposed: LeaseId) -> Result<LeaseId> {
        let op = Op::ChangeLease {
            blob: blob.clone(),
            lease,
            proposed,
        };
        answer!(self, op, Answer::Lease(l) => l)
    }
}

#[async_trait]
impl DocumentStore for Client {
    async fn ensure_container(&self, container: &str) -> Result<bool> {
        let op = Op::EnsureContainer {
            container: container.to_owned(),
        };
        answer!(self, op, Answer::Bool(b) => b)
    }

    async fn create_document(&self, blob: &BlobRef, body: Bytes) -> Result<ETag> {
        let op = Op::CreateDocument {
            blob: blob.clone(),
            body,
        };
        answer!(self, op, Answer::ETag(e) => e)
    }

    async fn read_document(&self, blob: &BlobRef) -> Result<Document> {
        let op = Op::ReadDocument { blob: blob.clone() };
        answer!(self, op, Answer::Document(d) => d)
    }

    async fn read_document_if_changed(&self, blob: &BlobRef, known: &ETag) -> Result<Option<Document>> {
        let op = Op::ReadDocumentIfChanged {
            blob: blob.clone(),
            known: known.clone(),
        };
        answer!(self, op, Answer::MaybeDocument(d) => d)
    }

    async fn check_document(&self, blob: &BlobRef, known: &ETag) -> Result<Change> {
        let op = Op::CheckDocument {
            blob: blob.clone(),
            known: known.clone(),
        };
        answer!(self, op, Answer::Change(c) => c)
    }

    async fn replace_document(
        &self,
        blob: &BlobRef,
        body: Bytes,
        if_match: Option<&ETag>,
        lease: Option<LeaseId>,
    ) -> Result<ETag> {
        let if_match = match self.net.bug() {
            Some(Bug::NoIfMatch) => None,
            _ => if_match.cloned(),
        };
        let op = Op::ReplaceDocument {
            blob: blob.clone(),
            body,
            if_match,
            lease,
        };
        answer!(self, op, Answer::ETag(e) => e)
    }

    async fn delete_document(&self, blob: &BlobRef, if_match: Option<&ETag>, lease: Option<LeaseId>) -> Result<()> {
        let op = Op::DeleteDocument {
            blob: blob.clone(),
            if_match: if_match.cloned(),
            lease,
        };
        answer!(self, op, Answer::Unit => ())
    }
}

#[async_trait]
impl TableStore for Client {
    async fn ensure_table(&self, table: &str) -> Result<bool> {
        let op = Op::EnsureTable {
            table: table.to_owned(),
        };
        answer!(self, op, Answer::Bool(b) => b)
    }

    async fn delete_table(&self, table: &str) -> Result<()> {
        let op = Op::DeleteTable {
            table: table.to_owned(),
        };
        answer!(self, op, Answer::Unit => ())
    }

    async fn insert_entity(&self, table: &str, entity: &Entity) -> Result<ETag> {
        let op = Op::InsertEntity {
            table: table.to_owned(),
            entity: entity.clone(),
        };
        answer!(self, op, Answer::ETag(e) => e)
    }

    async fn upsert_entity(&self, table: &str, entity: &Entity, mode: WriteMode) -> Result<ETag> {
        let op = Op::UpsertEntity {
            table: table.to_owned(),
            entity: entity.clone(),
            mode,
        };
        answer!(self, op, Answer::ETag(e) => e)
    }

    async fn update_entity(&self, table: &str, entity: &Entity, if_match: &IfMatch, mode: WriteMode) -> Result<ETag> {
        let op = Op::UpdateEntity {
            table: table.to_owned(),
            entity: entity.clone(),
            if_match: if_match.clone(),
            mode,
        };
        answer!(self, op, Answer::ETag(e) => e)
    }

    async fn get_entity(&self, table: &str, partition_key: &str, row_key: &str) -> Result<Entity> {
        let op = Op::GetEntity {
            table: table.to_owned(),
            partition_key: partition_key.to_owned(),
            row_key: row_key.to_owned(),
        };
        answer!(self, op, Answer::Entity(e) => e)
    }

    async fn query_partition(
        &self,
        table: &str,
        partition_key: &str,
        filter: Option<&str>,
        page_size: Option<u32>,
        continuation: Option<Continuation>,
    ) -> Result<Page> {
        let op = Op::QueryPartition {
            table: table.to_owned(),
            partition_key: partition_key.to_owned(),
            filter: filter.map(str::to_owned),
            page_size,
            continuation,
        };
        answer!(self, op, Answer::Page(p) => p)
    }

    async fn batch(&self, table: &str, partition_key: &str, ops: Vec<BatchOp>) -> Result<Vec<Option<ETag>>> {
        let op = Op::Batch {
            table: table.to_owned(),
            partition_key: partition_key.to_owned(),
            ops,
        };
        answer!(self, op, Answer::Batch(b) => b)
    }

    async fn delete_entity(&self, table: &str, partition_key: &str, row_key: &str, if_match: &IfMatch) -> Result<()> {
        let op = Op::DeleteEntity {
            table: table.to_owned(),
            partition_key: partition_key.to_owned(),
            row_key: row_key.to_owned(),
            if_match: if_match.clone(),
        };
        answer!(self, op, Answer::Unit => ())
    }
}
