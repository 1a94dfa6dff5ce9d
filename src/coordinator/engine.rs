//! The per-processor protocol task: membership heartbeats, leadership, the JobModel document
//! and the barrier. See docs/protocol.md for the state machine this follows.
//!
//! The task never calls into Java. It emits [`Event`]s that the Java side takes one at a time
//! on its own thread, and Java answers with [`Command`]s (a computed model, an acknowledgement
//! that containers stopped). So a slow listener delays the protocol but never blocks a runtime
//! worker, and no Java lock is ever held by native code.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Mutex};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::config::{CoordinatorConfig, Timing};
use super::jobmodel::{MemberRef, ModelDocument, Phase};
use super::names::JobNames;
use crate::error::{Error, ErrorKind, Result};
use crate::lease::{LeaseKeeper, LeaseState};
use crate::membership::{Heartbeat, MemberState, Membership, Snapshot};
use crate::storage::retry::Doubling;
use crate::storage::{BlobRef, DocumentStore, ETag, LeaseId, LeaseStore, TableStore};

mod decisions;

use decisions::{Abandon, BarrierStep, IdleStep};

/// Everything the engine needs from storage.
pub trait Storage: LeaseStore + DocumentStore + TableStore + 'static {}
impl<T: LeaseStore + DocumentStore + TableStore + 'static> Storage for T {}

/// What the Java side must act on, in order.
#[derive(Clone, Debug)]
pub enum Event {
    /// This processor became (true) or stopped being (false) the leader.
    Leadership { leader: bool },
    /// Leader only: compute the model of `version` for `members` and answer with
    /// [`Coordinator::computed`]. `previous` is the last published model ("" if none).
    Compute {
        version: u64,
        members: Vec<String>,
        previous: Arc<str>,
    },
    /// A new version is out: stop the container if this processor's assignment changes, then
    /// answer with [`Coordinator::prepared`].
    Prepare { version: u64, model: Arc<str> },
    /// Every processor acknowledged `version`: run it. `epoch` is the fence epoch
    /// ([`Metrics::fences`]) when this was decided: the container may process only while the
    /// epoch is unchanged, so a self-fence between here and Java's start is not adopted.
    Start {
        version: u64,
        model: Arc<str>,
        epoch: u64,
    },
    /// No heartbeat reached storage within the self-fence bound: stop the container now,
    /// since the leader may already be handing its partitions to others.
    Fence,
    /// Stopping: stop the container and answer with [`Coordinator::released`].
    Release,
    /// The last event. `error` is set when the coordinator failed.
    Stopped { error: Option<Error> },
}

enum Command {
    Computed {
        version: u64,
        result: std::result::Result<String, String>,
    },
    Prepared {
        version: u64,
        stopped: bool,
    },
    Released,
    /// Recompute the model for the same members (an input's partition count changed).
    Rebalance,
    Stop,
}

/// Counters read by the Java metrics gauges.
#[derive(Debug, Default)]
pub struct Metrics {
    pub is_leader: AtomicBool,
    /// Version whose container runs here (0: none).
    pub running_version: AtomicU64,
    /// Newest version seen in the document.
    pub seen_version: AtomicU64,
    /// Versions this processor published as leader.
    pub rebalances: AtomicU64,
    pub barrier_timeouts: AtomicU64,
    pub heartbeat_failures: AtomicU64,
    /// Times leadership was lost without asking (a renew failed or was refused).
    pub lease_losses: AtomicU64,
    /// From noticing a membership change to every processor acknowledging, last time.
    pub last_rebalance_ms: AtomicU64,
    /// Self-fences so far: the fence epoch. A container started at epoch e must not process
    /// once this differs from e.
    pub fences: AtomicU64,
    /// Processing is paused: no heartbeat got through within the self-fence bound, and the
    /// container is kept until storage tells whether the job moved on without it.
    pub paused: AtomicBool,
    /// Times the engine's loop woke up. An idle processor wakes a few times per heartbeat and
    /// scan interval; a count that races ahead means the loop spins.
    pub wakeups: AtomicU64,
    /// When the last accepted heartbeat was sent, as nanoseconds since [`clock_base`].
    last_heartbeat_ok_nanos: AtomicU64,
    /// The self-fence bound in nanoseconds.
    self_fence_nanos: AtomicU64,
}

/// A fixed point of the monotonic clock shared by all coordinators in the process.
fn clock_base() -> std::time::Instant {
    static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(std::time::Instant::now)
}

fn nanos_since_base(t: Instant) -> u64 {
    t.into_std()
        .saturating_duration_since(clock_base())
        .as_nanos() as u64
}

impl Metrics {
    /// Nanoseconds left before this processor must stop processing (negative: past it),
    /// by the monotonic clock. Cheap enough to ask before processing a message.
    pub fn fence_remaining_nanos(&self) -> i64 {
        let deadline = self.last_heartbeat_ok_nanos.load(Ordering::Acquire) as i128
            + self.self_fence_nanos.load(Ordering::Relaxed) as i128;
        let now = nanos_since_base(Instant::now()) as i128;
        (deadline - now).clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }

    /// Marks processing paused, once per pause, when a container runs and the self-fence
    /// deadline passed; returns the running version then. The engine and the fence timer
    /// both ask, so whichever is first logs it. Processing itself stops by the deadline,
    /// which the tasks' processing gate reads directly.
    fn pause_due(&self) -> Option<u64> {
        let v = self.running_version.load(Ordering::Acquire);
        if v == 0 || self.fence_remaining_nanos() >= 0 || self.paused.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(v)
    }

    fn heartbeat_accepted(&self, sent: Instant) {
        self.last_heartbeat_ok_nanos
            .fetch_max(nanos_since_base(sent), Ordering::AcqRel);
    }
}

/// Notes the pause at the self-fence deadline, on its own task: the engine may be waiting on
/// a storage request that hangs. (Processing stops at the deadline whatever notes it.)
async fn fence_timer(metrics: Arc<Metrics>, bound: Duration) {
    // Past the deadline there is nothing more to note; look again now and then, since only a
    // heartbeat moves the deadline.
    let idle = (bound / 8).max(Duration::from_millis(10));
    loop {
        let remaining = metrics.fence_remaining_nanos();
        if remaining > 0 {
            tokio::time::sleep(Duration::from_nanos(remaining as u64)).await;
            continue;
        }
        if let Some(version) = metrics.pause_due() {
            log_pause(version);
        }
        tokio::time::sleep(idle).await;
    }
}

fn log_pause(version: u64) {
    tracing::warn!(
        version,
        "no heartbeat reached storage within the self-fence bound; processing paused, the \
         container kept until storage tells whether the job moved on without it"
    );
}

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Handle to a running coordinator task.
pub struct Coordinator {
    commands: mpsc::UnboundedSender<Command>,
    events: Mutex<mpsc::UnboundedReceiver<Event>>,
    metrics: Arc<Metrics>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Coordinator {
    /// Starts the protocol for `processor_id` on the current runtime.
    pub fn start<S: Storage>(
        store: Arc<S>,
        config: CoordinatorConfig,
        processor_id: &str,
    ) -> Result<Self> {
        crate::storage::names::validate_key("processor id", processor_id)?;
        if processor_id.is_empty() || processor_id.starts_with(crate::membership::SPECIAL_PREFIX) {
            return Err(Error::config(
                "processor.id",
                format!(
                    "a non-empty processor id not starting with '{}', found '{processor_id}'",
                    crate::membership::SPECIAL_PREFIX
                ),
            ));
        }
        let names = config.job.names()?;
        // Fix the clock base before any instant is measured against it.
        clock_base();
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (event_tx, events) = mpsc::unbounded_channel();
        let metrics = Arc::new(Metrics::default());
        let me = processor_id.to_owned();
        let m = metrics.clone();
        let task = tokio::spawn(async move {
            let outcome = run(store, names, config.timing, me, command_rx, &event_tx, m).await;
            let error = outcome.err();
            if let Some(e) = &error {
                tracing::error!(error = %e, "coordinator failed");
            }
            let _ = event_tx.send(Event::Stopped { error });
        });
        Ok(Coordinator {
            commands,
            events: Mutex::new(events),
            metrics,
            task: std::sync::Mutex::new(Some(task)),
        })
    }

    /// The next event, or `None` if none arrived within `timeout` (or after `Stopped`).
    pub async fn next_event(&self, timeout: Duration) -> Option<Event> {
        let mut rx = self.events.lock().await;
        tokio::time::timeout(timeout, rx.recv())
            .await
            .ok()
            .flatten()
    }

    pub fn computed(&self, version: u64, result: std::result::Result<String, String>) {
        let _ = self.commands.send(Command::Computed { version, result });
    }

    /// The container stopped if `stopped`, or kept running because its assignment is
    /// unchanged in `version`.
    pub fn prepared(&self, version: u64, stopped: bool) {
        let _ = self.commands.send(Command::Prepared { version, stopped });
    }

    pub fn released(&self) {
        let _ = self.commands.send(Command::Released);
    }

    /// Leader only (ignored otherwise): compute a new model for the current members, because
    /// something the model is derived from besides membership changed, such as an input's
    /// partition count. Rebalances already under way are not restarted.
    pub fn request_rebalance(&self) {
        let _ = self.commands.send(Command::Rebalance);
    }

    /// Asks the task to leave the group and stop; returns at once. Idempotent.
    pub fn stop(&self) {
        let _ = self.commands.send(Command::Stop);
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        // Abandoning without stop is safe: the row goes stale and the lease lapses.
        if let Some(task) = self.task.lock().ok().and_then(|mut t| t.take()) {
            task.abort();
        }
    }
}

fn is_fatal(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Authentication | ErrorKind::Config | ErrorKind::BadRequest | ErrorKind::Internal
    )
}

/// The wait between the engine's retries of a setup step.
fn engine_backoff() -> Doubling {
    Doubling::new(Duration::from_millis(100), Duration::from_secs(2))
}

/// Retries `op` until it succeeds or fails fatally.
async fn until_ok<T, F, Fut>(what: &str, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut backoff = engine_backoff();
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if is_fatal(&e) => return Err(e.context(what)),
            Err(e) => {
                tracing::warn!(error = %e, "{what} failed; retrying");
                backoff.sleep().await;
            }
        }
    }
}

enum LeaderPhase {
    Idle,
    Debounce {
        started: Instant,
        deadline: Instant,
        seen: Vec<MemberRef>,
    },
    Computing {
        version: u64,
        members: Vec<MemberRef>,
        must_ack: Vec<String>,
        /// Past this the compute counts as failed (Java may be stuck on an input's metadata).
        deadline: Instant,
        /// This compute answers a recompute request, which stands again if it fails.
        recompute: bool,
        /// No live row reported a running container when the compute began.
        nothing_running: bool,
    },
    Barrier {
        deadline: Instant,
    },
}

struct Leader {
    lease: LeaseId,
    /// Local bound on the lease; past it this processor must not act as leader even before
    /// the lease task notices (it may have been paused, e.g. by SIGSTOP).
    valid_until: Instant,
    phase: LeaderPhase,
    next_scan: Instant,
    /// When the current rebalance was first noticed.
    rebalance_started: Option<Instant>,
    compute_failures: u32,
    /// A recompute was asked for (see [`Coordinator::request_rebalance`]).
    recompute: bool,
    /// The lowest version number this leader may still compute. A number is never used twice,
    /// not even for a compute that failed or a publish whose outcome is unknown, so that one
    /// number always names one content. Raised above every version a membership row reports
    /// (acknowledged or running), so numbering goes on above them after a reset.
    next_version: u64,
    /// As of the last scan, no live row reports a running container.
    nothing_running: bool,
    /// When to look for notification rows of processors that are gone.
    next_sweep: Instant,
    /// The checkpoint table's highest owner generation was read (see `seed_from_checkpoints`).
    checkpoints_read: bool,
    /// When to touch the notification rows of processors the barrier still waits for: a
    /// notify that failed is not lost, and nobody waits for the 30 s backstop poll.
    next_renotify: Instant,
}

/// How often a leader collects the notification rows of processors that are gone.
const PROBE_SWEEP: Duration = Duration::from_secs(300);

struct Engine<'a, S: Storage> {
    store: &'a S,
    me: String,
    timing: Timing,
    blob: BlobRef,
    /// The job's checkpoint table: versions are numbered above its owners' generations.
    checkpoint_table: String,
    membership: Membership<'a>,
    events: &'a mpsc::UnboundedSender<Event>,
    metrics: Arc<Metrics>,
    lease: LeaseKeeper,
    lease_state: watch::Receiver<LeaseState>,

    doc: Arc<ModelDocument>,
    etag: Option<ETag>,
    /// Version this processor acknowledged last, and the content id of what it acknowledged.
    acked: u64,
    acked_content: String,
    /// The content id of the version Java is preparing.
    preparing_content: String,
    /// Prepare emitted for this version; waiting for Java.
    preparing: Option<u64>,
    /// Since when Java owes an answer to a Prepare. Past the barrier timeout this processor
    /// stops heartbeating (see `tick`), so a Java side that never answers cannot hold every
    /// rebalance hostage: its row goes stale and the leader leaves it out.
    preparing_since: Option<Instant>,
    /// Start emitted for this version.
    started: u64,
    /// Version of the container running here (0: none).
    running: u64,
    /// ETag of this processor's notification row as of the last heartbeat.
    probe: Option<ETag>,
    next_heartbeat: Instant,
    next_poll: Instant,
    next_watch: Instant,
    leader: Option<Leader>,
    /// Leaving the group: Release was emitted and the container is stopping. Until Java
    /// reports it stopped, the row keeps heartbeating with `running` set, so nobody takes the
    /// partitions while they are still processed. Past this deadline the engine gives up.
    leaving: Option<Instant>,
    /// Paused processing got a heartbeat through, sent then: it resumes once a read of the
    /// document after it shows that the job did not move on without this processor.
    resume_sent: Option<Instant>,
    /// When the last successful read of the document (changed or not) was sent.
    last_read: Option<Instant>,
    /// Since when this processor's membership requests (heartbeats, scans) have been getting
    /// through without a gap longer than `Timing::reachability_gap`, from one answered
    /// request's sending to the next one's answer. A leader judges others dead only after it
    /// could itself reach storage for a whole liveness timeout: after a stall that every
    /// processor saw, their rows are all old, but they are not dead.
    reachable_since: Option<Instant>,
    /// When the last answered membership request was sent.
    last_ok_sent: Option<Instant>,
    /// The highest version known before the document was last reset: versions never go
    /// back, so a leader numbers above it.
    version_floor: u64,
}

/// How long a leaving processor waits for its container to stop. Samza bounds a container's
/// stop by `task.shutdown.ms` (30 s by default); a container still running after this is
/// stuck, and the row is then left to go stale rather than deleted (see `shutdown`).
const RELEASE_TIMEOUT: Duration = Duration::from_secs(120);

async fn run<S: Storage>(
    store: Arc<S>,
    names: JobNames,
    timing: Timing,
    me: String,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: &mpsc::UnboundedSender<Event>,
    metrics: Arc<Metrics>,
) -> Result<()> {
    let blob = names.job_model_blob();
    let s: &S = &store;
    until_ok("creating the job's container", || {
        s.ensure_container(&names.container)
    })
    .await?;
    until_ok("creating the job model document", || {
        create_if_absent(s, &blob)
    })
    .await?;
    let mut membership = Membership::new(s, &names.table, &me)?;
    membership.set_state(MemberState {
        incarnation: new_incarnation(),
        ..MemberState::default()
    });
    metrics
        .self_fence_nanos
        .store(timing.self_fence().as_nanos() as u64, Ordering::Relaxed);
    let registered_at = Instant::now();
    let mut backoff = engine_backoff();
    while let Err(e) = membership.register().await {
        if is_fatal(&e) {
            return Err(e.context("registering the processor"));
        }
        tracing::warn!(error = %e, "registering the processor failed; retrying");
        backoff.sleep().await;
    }
    metrics.heartbeat_accepted(registered_at);
    tracing::info!(processor = %me, container = %names.container, table = %names.table, "registered");

    let _fence_timer = AbortOnDrop(tokio::spawn(fence_timer(
        metrics.clone(),
        timing.self_fence(),
    )));
    let lease = LeaseKeeper::spawn(store.clone(), blob.clone(), timing.lease.clone())?;
    let lease_state = lease.subscribe();
    let now = Instant::now();
    let mut engine = Engine {
        store: s,
        me,
        blob,
        checkpoint_table: names.checkpoint_table.clone(),
        membership,
        events,
        metrics,
        lease,
        lease_state,
        doc: Arc::new(ModelDocument::initial()),
        etag: None,
        acked: 0,
        acked_content: String::new(),
        preparing_content: String::new(),
        preparing: None,
        preparing_since: None,
        started: 0,
        running: 0,
        probe: None,
        next_heartbeat: now + timing.heartbeat,
        next_poll: now,
        next_watch: now + timing.scan,
        leader: None,
        leaving: None,
        resume_sent: None,
        last_read: None,
        reachable_since: None,
        last_ok_sent: None,
        version_floor: 0,
        timing,
    };
    let result = engine.run(&mut commands).await;
    engine.shutdown(&mut commands, result.is_ok()).await;
    result
}

/// Creates the job model document (version 0) unless it exists.
async fn create_if_absent<S: Storage>(s: &S, blob: &BlobRef) -> Result<()> {
    let initial = ModelDocument::initial().encode()?;
    s.create_if_absent(blob, initial).await.map(|_| ())
}

fn new_incarnation() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl<'a, S: Storage> Engine<'a, S> {
    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    /// The main loop. Returns when the processor has left (its container stopped) or must
    /// stop at once (the handle was dropped, or a fatal error).
    async fn run(&mut self, commands: &mut mpsc::UnboundedReceiver<Command>) -> Result<()> {
        loop {
            let wake = self.next_wake();
            tokio::select! {
                c = commands.recv() => match c {
                    None => return Ok(()),
                    Some(Command::Stop) => self.begin_leaving().await,
                    Some(Command::Released) if self.leaving.is_some() => {
                        // The container stopped: nothing runs here any more.
                        self.running = 0;
                        self.metrics.running_version.store(0, Ordering::Relaxed);
                        return Ok(());
                    }
                    Some(c) => self.on_command(c).await?,
                },
                changed = self.lease_state.changed() => {
                    if changed.is_ok() {
                        let state = self.lease_state.borrow_and_update().clone();
                        self.on_lease(state).await?;
                    }
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
            self.metrics.wakeups.fetch_add(1, Ordering::Relaxed);
            self.tick().await?;
        }
    }

    fn next_wake(&self) -> Instant {
        let mut wake = self.next_heartbeat;
        // Only what the next tick will do counts: a due time nobody advances (a leader's
        // watch, a leaving processor's poll) would wake the loop at once, over and over.
        wake = match (&self.leader, self.leaving) {
            (_, Some(deadline)) => wake.min(deadline),
            (Some(l), None) => wake.min(self.next_poll).min(l.next_scan),
            (None, None) => wake.min(self.next_poll).min(self.next_watch),
        };
        // Not the self-fence deadline: processing stops there by itself (the tasks' gate
        // reads it) and the fence timer notes the pause; once past, it would wake the loop at
        // once, over and over, for as long as the pause lasts.
        wake
    }

    /// Faster polling while a version is in flight (ours to ack, or ours to start).
    fn rebalancing(&self) -> bool {
        self.preparing.is_some()
            || (self.doc.phase() == Phase::Pending && self.acked >= self.doc.version())
    }

    fn poll_interval(&self) -> Duration {
        if self.rebalancing() {
            self.timing.rebalance_poll
        } else {
            self.timing.poll
        }
    }

    async fn tick(&mut self) -> Result<()> {
        // Before anything else: after a pause (GC, SIGSTOP) the first thing to do is to stop
        // a container whose partitions may already be someone else's. A heartbeat first would
        // hide how long the silence lasted.
        self.check_fence();
        if self.preparing_since.is_some_and(|t| self.unanswered(t)) {
            // Withheld: the row goes stale and the self-fence stops whatever still runs.
            if Instant::now() >= self.next_heartbeat {
                tracing::error!(
                    version = ?self.preparing,
                    "the container was asked to stop for a new job model and did not answer \
                     within the barrier timeout; no longer heartbeating, so the job can go on \
                     without this processor"
                );
                self.next_heartbeat = Instant::now() + self.timing.barrier_timeout;
            }
        } else if Instant::now() >= self.next_heartbeat {
            self.heartbeat().await?;
        }
        if let Some(deadline) = self.leaving {
            // Leaving: only the heartbeat (and the self-fence) matter until the container
            // stopped; no new version may start here.
            if Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorKind::Internal,
                    format!(
                        "the container did not stop within {RELEASE_TIMEOUT:?} of leaving; \
                         leaving the membership row to go stale instead of deleting it"
                    ),
                ));
            }
            return Ok(());
        }
        if Instant::now() >= self.next_poll {
            self.poll_document().await?;
            self.next_poll = Instant::now() + self.poll_interval();
        }
        self.decide_pause();
        if self.leader.is_some() {
            self.leader_tick().await?;
        } else if Instant::now() >= self.next_watch {
            self.watch_leader().await?;
            self.next_watch = Instant::now() + self.timing.scan;
        }
        Ok(())
    }

    async fn heartbeat(&mut self) -> Result<()> {
        // Checked again right before sending: a success must never paper over a silence
        // longer than the bound, whatever order the runtime resumes things in after a pause.
        self.check_fence();
        self.membership.set_state(MemberState {
            acked: self.acked,
            acked_content: Some(self.acked_content.clone()),
            running: self.running,
            incarnation: self.membership.state().incarnation.clone(),
        });
        let sent = Instant::now();
        let outcome = self
            .membership
            .heartbeat_watching(self.probe.as_ref())
            .await;
        match outcome {
            Ok(outcome) => {
                let etag = match outcome {
                    Heartbeat::Quiet(e) => e,
                    Heartbeat::Notified(e) => {
                        // The leader published something: read the document now.
                        self.next_poll = Instant::now();
                        e
                    }
                };
                self.probe = Some(etag);
                self.membership_answered(sent);
                // An answer that came past the deadline may have come after the leader judged
                // this processor dead: then it is a pause like any other.
                self.check_fence();
                if self.metrics.paused.load(Ordering::Acquire) {
                    self.resume_sent = Some(sent);
                    self.next_poll = Instant::now();
                } else {
                    self.metrics.heartbeat_accepted(sent);
                }
                self.next_heartbeat = sent + self.timing.heartbeat;
            }
            Err(e) if is_fatal(&e) => return Err(e.context("heartbeat")),
            Err(e) => {
                self.metrics
                    .heartbeat_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "heartbeat failed");
                self.reachable_since = None;
                // Retry sooner than the interval: the self-fence bound is running.
                self.next_heartbeat = Instant::now() + self.timing.heartbeat / 4;
                if e.kind() == ErrorKind::NotFound {
                    // The table was deleted under us: recreate it on the next attempt.
                    let _ = self.membership.register().await;
                }
            }
        }
        Ok(())
    }

    /// The document was reset (recreated, restored) or cannot be read: nothing agreed holds
    /// any more. Stop the container, as a fence does, and wait for the leader to publish a
    /// version above every one known; the leader does so at its next scan.
    fn on_reset(&mut self, doc: Arc<ModelDocument>, reason: String) {
        tracing::error!(
            blob = %self.blob,
            version = self.doc.version(),
            "the job model document was reset: {reason}; stopping the container until a new version is agreed"
        );
        self.version_floor = self.version_floor.max(self.doc.version());
        self.fence_now("the job model document was reset");
        self.preparing = None;
        self.preparing_since = None;
        if let Some(l) = self.leader.as_mut() {
            l.phase = LeaderPhase::Idle;
            l.next_scan = Instant::now();
        }
        self.metrics
            .seen_version
            .store(doc.version(), Ordering::Relaxed);
        self.doc = doc;
    }

    /// Java has owed an answer to a Prepare since `since` for longer than a barrier lasts.
    fn unanswered(&self, since: Instant) -> bool {
        since.elapsed() >= self.timing.barrier_timeout
    }

    /// Pauses processing if the self-fence deadline passed (the timer may have noted it first).
    fn check_fence(&mut self) {
        if let Some(version) = self.metrics.pause_due() {
            log_pause(version);
        }
    }

    /// Stops the container for good: the job moved on without it (or its state was reset).
    /// A new incarnation tells the leader this processor lost its work, and no version decided
    /// before may start here.
    fn fence_now(&mut self, reason: &str) {
        self.metrics.paused.store(false, Ordering::Release);
        self.resume_sent = None;
        if self.running != 0 {
            tracing::warn!(version = self.running, "{reason}; stopping the container");
            self.metrics.fences.fetch_add(1, Ordering::AcqRel);
            self.metrics.running_version.store(0, Ordering::Release);
            self.emit(Event::Fence);
        }
        self.running = 0;
        self.started = self.started.max(self.doc.version());
        let mut state = self.membership.state().clone();
        state.incarnation = new_incarnation();
        state.running = 0;
        self.membership.set_state(state);
    }

    /// Paused processing resumes, or the container stops for good, once a heartbeat got
    /// through and the document was read after it: resume only if the version this container
    /// runs is still the agreed one. A version being agreed without this processor means it
    /// was judged dead meanwhile; the leader never completes one while a live row outside
    /// its `must_ack` reports a running container, so a resumed container cannot meet one.
    fn decide_pause(&mut self) {
        let (Some(sent), Some(read)) = (self.resume_sent, self.last_read) else {
            return;
        };
        if read < sent || !self.metrics.paused.load(Ordering::Acquire) {
            return;
        }
        let v = self.doc.version();
        let mine = self.doc.must_ack(&self.me);
        match self.doc.phase() {
            Phase::Done if v == self.running => {
                self.metrics.paused.store(false, Ordering::Release);
                self.resume_sent = None;
                self.metrics.heartbeat_accepted(sent);
                tracing::info!(
                    version = v,
                    "storage answered again and nothing moved; processing resumes"
                );
            }
            // About to start the version it acknowledged, or owing an acknowledgement: the
            // member side carries on; still paused.
            Phase::Done if v == self.acked => {}
            Phase::Pending | Phase::Abandoned | Phase::None if mine || v <= self.running => {}
            _ => self.fence_now(&format!(
                "the job moved on to version {v} while this processor could not reach storage"
            )),
        }
    }

    /// Reads the document if it changed (a HEAD with If-None-Match costs almost nothing).
    async fn poll_document(&mut self) -> Result<()> {
        let sent = Instant::now();
        let read = match &self.etag {
            Some(etag) => self.store.read_document_if_changed(&self.blob, etag).await,
            None => self.store.read_document(&self.blob).await.map(Some),
        };
        if read.is_ok() {
            self.last_read = Some(sent);
        }
        match read {
            Ok(None) => Ok(()),
            Ok(Some(d)) => {
                self.etag = Some(d.etag);
                match ModelDocument::decode(&d.body) {
                    Ok(doc) => self.on_document(Arc::new(doc)),
                    // Bad stored state must not end every processor, again on each restart:
                    // it is "no agreed version", and the leader writes a good one over it.
                    Err(e) => self.on_reset(
                        Arc::new(ModelDocument::initial()),
                        format!("it cannot be read ({e})"),
                    ),
                }
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // Deleted under us (a reset): create it again, so a leader can hold its lease
                // and publish; reading it then shows the version went back.
                tracing::warn!(blob = %self.blob, "the job model document is gone; creating it again");
                self.etag = None;
                let recreated = async {
                    self.store.ensure_container(self.blob.container()).await?;
                    create_if_absent(self.store, &self.blob).await
                };
                if let Err(e) = recreated.await {
                    tracing::warn!(error = %e, "creating the job model document failed");
                }
                Ok(())
            }
            Err(e) if is_fatal(&e) => Err(e.context("reading the job model")),
            Err(e) => {
                tracing::warn!(error = %e, "reading the job model failed");
                Ok(())
            }
        }
    }

    /// Member side of the protocol, for every processor including the leader.
    fn on_document(&mut self, doc: Arc<ModelDocument>) {
        let v = doc.version();
        if v < self.doc.version() {
            let reason = format!("its version went back from {} to {v}", self.doc.version());
            self.on_reset(doc, reason);
            return;
        }
        if v > self.doc.version() || doc.phase() != self.doc.phase() {
            tracing::debug!(version = v, phase = ?doc.phase(), "job model document changed");
        }
        self.metrics.seen_version.store(v, Ordering::Relaxed);
        self.doc = doc;
        if self.leaving.is_some() {
            // Stopping: no version may start here any more.
            return;
        }
        // Copied only when an event carries it: documents can be large.
        let model = || -> Arc<str> { Arc::from(self.doc.model.as_str()) };
        match self.doc.phase() {
            Phase::Pending
                if v > self.acked && self.preparing != Some(v) && self.doc.must_ack(&self.me) =>
            {
                tracing::info!(version = v, "new job model; preparing");
                self.preparing = Some(v);
                self.preparing_content = self.doc.header.content.clone();
                self.preparing_since.get_or_insert_with(Instant::now);
                self.next_poll = Instant::now();
                self.emit(Event::Prepare {
                    version: v,
                    model: model(),
                });
            }
            // Started after acknowledging, or, owing no acknowledgement, with nothing running
            // (the job's first version, or a processor that joined after it was computed).
            Phase::Done
                if self.started < v
                    && self.preparing.is_none()
                    && (v == self.acked || (self.running == 0 && !self.doc.must_ack(&self.me))) =>
            {
                // The epoch is read first: a fence after this point must leave the new
                // container unable to process.
                let epoch = self.metrics.fences.load(Ordering::Acquire);
                self.metrics.running_version.store(v, Ordering::Release);
                tracing::info!(
                    version = v,
                    member = self.doc.is_member(&self.me),
                    "job model agreed; starting"
                );
                self.started = v;
                self.running = v;
                // The row reports the new version at the next heartbeat.
                self.emit(Event::Start {
                    version: v,
                    model: model(),
                    epoch,
                });
            }
            _ => {}
        }
    }

    async fn on_command(&mut self, c: Command) -> Result<()> {
        match c {
            Command::Prepared { version, stopped } => {
                if self.preparing == Some(version) {
                    self.preparing = None;
                    if self
                        .preparing_since
                        .take()
                        .is_some_and(|t| self.unanswered(t))
                    {
                        tracing::info!(version, "Java answered at last; heartbeating again");
                    }
                    self.acked = version;
                    self.acked_content = std::mem::take(&mut self.preparing_content);
                    if stopped {
                        self.running = 0;
                        self.metrics.running_version.store(0, Ordering::Relaxed);
                    }
                    // Acknowledge at once: the barrier waits on this row.
                    self.next_heartbeat = Instant::now();
                    self.next_poll = Instant::now();
                    // The document may have moved on while Java was busy.
                    let doc = self.doc.clone();
                    self.on_document(doc);
                }
            }
            Command::Computed { version, result } => self.on_computed(version, result).await?,
            Command::Rebalance => {
                if let Some(l) = self.leader.as_mut() {
                    tracing::info!("recompute requested");
                    l.recompute = true;
                    l.next_scan = Instant::now();
                }
            }
            Command::Released | Command::Stop => {}
        }
        Ok(())
    }

    async fn on_lease(&mut self, state: LeaseState) -> Result<()> {
        match (state, self.leader.is_some()) {
            (
                LeaseState::Leader {
                    lease, valid_until, ..
                },
                false,
            ) => {
                self.metrics.is_leader.store(true, Ordering::Relaxed);
                self.leader = Some(Leader {
                    lease,
                    valid_until,
                    phase: LeaderPhase::Idle,
                    next_scan: Instant::now(),
                    rebalance_started: None,
                    compute_failures: 0,
                    recompute: false,
                    next_version: 0,
                    nothing_running: false,
                    next_sweep: Instant::now(),
                    checkpoints_read: false,
                    next_renotify: Instant::now(),
                });
                // Start from storage's current document, not our cached view. Until a read
                // succeeds the leader does nothing (see `sync_leader`).
                self.etag = None;
                self.sync_leader().await?;
                tracing::info!(version = self.doc.version(), "leading");
                self.emit(Event::Leadership { leader: true });
            }
            (LeaseState::Leader { valid_until, .. }, true) => {
                if let Some(l) = self.leader.as_mut() {
                    l.valid_until = valid_until;
                }
            }
            (_, true) => {
                tracing::warn!("no longer leader");
                self.metrics.is_leader.store(false, Ordering::Relaxed);
                self.metrics.lease_losses.fetch_add(1, Ordering::Relaxed);
                self.leader = None;
                self.emit(Event::Leadership { leader: false });
            }
            (_, false) => {}
        }
        Ok(())
    }

    /// The first member (by id) other than the leader watches the leader's row as often as the
    /// leader reads the membership (`scan`), and takes
    /// over as soon as storage's clock says it is dead or it left, instead of waiting out
    /// the lease.
    async fn watch_leader(&mut self) -> Result<()> {
        let leader = self.doc.header.leader.clone();
        if leader.is_empty() || leader == self.me {
            return Ok(());
        }
        let successor = self
            .doc
            .header
            .members
            .iter()
            .map(|m| m.id.as_str())
            .filter(|id| *id != leader)
            .min();
        if successor != Some(self.me.as_str()) {
            return Ok(());
        }
        if !self.may_judge_deaths() {
            return Ok(());
        }
        let sent = Instant::now();
        let snapshot = match self.membership.snapshot().await {
            Ok(s) => s,
            Err(e) if is_fatal(&e) => return Err(e),
            Err(_) => return Ok(()),
        };
        self.membership_answered(sent);
        let alive = snapshot
            .live(self.timing.liveness)
            .iter()
            .any(|m| m.processor_id == leader);
        if !alive {
            tracing::info!(%leader, "leader is dead or gone; taking over");
            self.lease.take_over();
        }
        Ok(())
    }

    /// A membership request sent at `sent` was answered now. Storage was reachable at some
    /// moment between the last answered request's sending and now; if that span is longer
    /// than the reachability gap, everyone's rows may have aged by it, so deaths are judged
    /// again only after a whole liveness timeout. Measured to the answer, not from the call's
    /// start: a call whose retries spanned a stall succeeds with an early start. Every
    /// membership request counts (heartbeats, the leader's and successor's scans), so a
    /// leader busy with a rebalance, whose heartbeat goes out late, is not taken for cut off.
    fn membership_answered(&mut self, sent: Instant) {
        let answered = Instant::now();
        let gap = self
            .last_ok_sent
            .map(|t| answered.saturating_duration_since(t));
        if gap.is_none_or(|g| g > self.timing.reachability_gap()) {
            if self.reachable_since.is_some() {
                tracing::info!(
                    gap_ms = gap.unwrap_or_default().as_millis() as u64,
                    "storage was out of reach for a while; judging nobody dead until it answers \
                     for a whole liveness timeout"
                );
            }
            self.reachable_since = Some(answered);
        }
        self.last_ok_sent = self.last_ok_sent.max(Some(sent));
    }

    /// Whether this processor may judge others dead: only on evidence gathered while it could
    /// itself reach storage, for a whole liveness timeout. After a stall that every processor
    /// saw, every row is old when storage answers again, yet nobody is dead.
    fn may_judge_deaths(&self) -> bool {
        self.reachable_since
            .is_some_and(|t| t.elapsed() >= self.timing.liveness)
    }

    /// Reads the document before the leader acts on it. Every publish is conditional on the
    /// ETag read here, so a leader that could not read publishes nothing: an unconditional
    /// write could reuse a version number with other content. Returns whether it read.
    async fn sync_leader(&mut self) -> Result<bool> {
        if self.etag.is_none() {
            self.poll_document().await?;
        }
        let Some(l) = self.leader.as_mut() else {
            return Ok(false);
        };
        if self.etag.is_none() {
            return Ok(false);
        }
        if self.doc.phase() == Phase::Pending && !matches!(l.phase, LeaderPhase::Barrier { .. }) {
            // A barrier in flight, inherited or our own publish of unknown outcome: keep
            // waiting on it rather than computing a new version over it.
            l.phase = LeaderPhase::Barrier {
                deadline: Instant::now() + self.timing.barrier_timeout,
            };
        }
        Ok(true)
    }

    /// When the document holds no version (the job's first start, or a reset that deleted it
    /// and kept the checkpoints), numbering must start above every generation in the
    /// checkpoint table, where a claim below it is refused. Read once per leadership; false
    /// if it could not be read yet.
    async fn seed_from_checkpoints(&mut self) -> Result<bool> {
        let Some(l) = self.leader.as_ref() else {
            return Ok(false);
        };
        if l.checkpoints_read || self.doc.phase() != Phase::None {
            return Ok(true);
        }
        match crate::checkpoint::highest_generation(self.store, &self.checkpoint_table).await {
            Ok(generation) => {
                if let Some(l) = self.leader.as_mut() {
                    l.checkpoints_read = true;
                    l.next_version = l.next_version.max(generation + 1);
                }
                if generation > 0 {
                    tracing::info!(
                        table = %self.checkpoint_table,
                        generation,
                        "numbering job model versions above the checkpoints' highest generation"
                    );
                }
                Ok(true)
            }
            Err(e) if is_fatal(&e) => Err(e.context("reading the checkpoint generations")),
            Err(e) => {
                tracing::warn!(error = %e, "reading the checkpoint generations failed");
                Ok(false)
            }
        }
    }

    async fn leader_tick(&mut self) -> Result<()> {
        let Some(l) = self.leader.as_mut() else {
            return Ok(());
        };
        let now = Instant::now();
        if now >= l.valid_until {
            // The lease task has not noticed yet; storage would refuse our writes anyway.
            tracing::warn!("leader lease may have lapsed; not acting as leader");
            l.next_scan = now + self.timing.rebalance_poll;
            return Ok(());
        }
        if let LeaderPhase::Computing { deadline, .. } = l.phase {
            // Java answers with a command, which wakes the loop; until then only the deadline.
            l.next_scan = deadline;
            if now >= deadline {
                self.compute_failed("no answer within the compute timeout");
            }
            return Ok(());
        }
        if now < l.next_scan {
            return Ok(());
        }
        if self.etag.is_none() && !self.sync_leader().await? {
            self.schedule_scan(false);
            return Ok(());
        }
        if !self.seed_from_checkpoints().await? {
            self.schedule_scan(false);
            return Ok(());
        }
        let sent = Instant::now();
        let snapshot = match self.membership.snapshot().await {
            Ok(s) => s,
            Err(e) if is_fatal(&e) => return Err(e.context("reading membership")),
            Err(e) => {
                tracing::warn!(error = %e, "reading membership failed");
                self.schedule_scan(false);
                return Ok(());
            }
        };
        self.membership_answered(sent);
        let may_judge = self.may_judge_deaths();
        let live = decisions::live_members(&snapshot, self.timing.liveness, may_judge);
        if let Some(l) = self.leader.as_mut() {
            let reported = decisions::highest_reported(&snapshot.members);
            l.next_version = l.next_version.max(reported + 1);
            l.nothing_running = decisions::nothing_running(&snapshot.members, &live);
        }
        let now = Instant::now();
        let published = self.doc.header.members.clone();
        let doc_phase = self.doc.phase();
        let debounce = self.timing.debounce;
        let Some(l) = self.leader.as_mut() else {
            return Ok(());
        };
        if Instant::now() >= l.valid_until {
            // Checked again: the process may have been paused while it read the membership.
            tracing::warn!("leader lease may have lapsed; not acting as leader");
            return Ok(());
        }
        let mut compute = false;
        let mut barrier = None;
        match &mut l.phase {
            LeaderPhase::Idle => {
                let change = decisions::membership_change(&snapshot, &live, &published);
                match decisions::idle_step(doc_phase, l.recompute, &live, &change, debounce) {
                    IdleStep::Recompute => {
                        l.rebalance_started.get_or_insert(now);
                        compute = true;
                    }
                    IdleStep::Rebalance { settle } => {
                        l.rebalance_started = Some(now);
                        if settle {
                            tracing::info!(
                                members = ?ids(&live),
                                joined = ?change.joined,
                                left = ?change.left,
                                dead = ?change.dead,
                                "membership changed; letting it settle"
                            );
                            l.phase = LeaderPhase::Debounce {
                                started: now,
                                deadline: now + debounce,
                                seen: live.clone(),
                            };
                        } else {
                            compute = true;
                        }
                    }
                    IdleStep::Unchanged
                        if may_judge && !snapshot.dead(self.timing.liveness).is_empty() =>
                    {
                        // Rows of processors no longer in the model: remove them (CAS).
                        let _ = self
                            .membership
                            .remove_dead(&snapshot, self.timing.liveness)
                            .await;
                    }
                    IdleStep::Unchanged if now >= l.next_sweep => {
                        l.next_sweep = now + PROBE_SWEEP;
                        match self.membership.remove_orphan_probes(&snapshot).await {
                            Ok(0) => {}
                            Ok(n) => tracing::info!(
                                rows = n,
                                "removed notification rows of processors that are gone"
                            ),
                            Err(e) => {
                                tracing::warn!(error = %e, "collecting notification rows failed")
                            }
                        }
                    }
                    IdleStep::Unchanged => {}
                }
            }
            LeaderPhase::Debounce {
                started,
                deadline,
                seen,
            } => {
                if live != *seen {
                    *seen = live.clone();
                    *deadline = decisions::settle_until(*started, now, debounce);
                }
                compute = now >= *deadline;
            }
            LeaderPhase::Barrier { deadline } => barrier = Some(*deadline),
            LeaderPhase::Computing { .. } => {}
        }
        if compute {
            let must_ack = decisions::must_ack(&live);
            self.begin_compute(live, must_ack);
        } else if let Some(deadline) = barrier {
            self.barrier_tick(&snapshot, live, deadline).await?;
        }
        self.schedule_scan(true);
        Ok(())
    }

    fn schedule_scan(&mut self, ok: bool) {
        let busy = self
            .leader
            .as_ref()
            .map(|l| !matches!(l.phase, LeaderPhase::Idle))
            .unwrap_or(false);
        let interval = if busy || !ok {
            self.timing.rebalance_poll
        } else {
            self.timing.scan
        };
        if let Some(l) = self.leader.as_mut() {
            l.next_scan = Instant::now() + interval;
        }
    }

    fn begin_compute(&mut self, members: Vec<MemberRef>, must_ack: Vec<String>) {
        let Some(l) = self.leader.as_mut() else {
            return;
        };
        let version =
            decisions::version_to_compute(self.doc.version(), self.version_floor, l.next_version);
        l.next_version = version + 1;
        tracing::info!(version, members = ?ids(&members), "computing job model");
        // This compute reads the inputs afresh, which is what a recompute asked for.
        let recompute = std::mem::take(&mut l.recompute);
        let deadline = Instant::now() + self.timing.compute_timeout();
        l.next_scan = deadline;
        l.phase = LeaderPhase::Computing {
            version,
            members: members.clone(),
            must_ack,
            deadline,
            recompute,
            nothing_running: l.nothing_running,
        };
        let previous: Arc<str> = Arc::from(self.doc.model.as_str());
        self.emit(Event::Compute {
            version,
            members: members.into_iter().map(|m| m.id).collect(),
            previous,
        });
    }

    async fn on_computed(
        &mut self,
        version: u64,
        result: std::result::Result<String, String>,
    ) -> Result<()> {
        let Some(l) = self.leader.as_mut() else {
            return Ok(());
        };
        let LeaderPhase::Computing {
            version: want,
            members,
            must_ack,
            nothing_running,
            ..
        } = &l.phase
        else {
            return Ok(());
        };
        if *want != version {
            // An answer to a compute that already timed out: its number is spent.
            return Ok(());
        }
        let (members, must_ack, nothing_running) =
            (members.clone(), must_ack.clone(), *nothing_running);
        let model = match result {
            Ok(m) => m,
            Err(message) => {
                self.compute_failed(&message);
                return Ok(());
            }
        };
        l.compute_failures = 0;
        let lease = l.lease;
        // The job's first version: no container is running anywhere (they only start on a
        // done version, and no live row reports one), so there is nothing to wait for. It
        // goes out done, with nobody owing an acknowledgement. After a reset of the document
        // containers may still run: then it takes the barrier like any other version.
        let first = decisions::first_version(self.doc.phase(), nothing_running);
        let doc = if first {
            ModelDocument::new(version, &self.me, members, Vec::new(), model)
                .with_phase(Phase::Done)
        } else {
            ModelDocument::new(version, &self.me, members, must_ack, model)
        };
        if self.publish(doc, lease).await? {
            self.metrics.rebalances.fetch_add(1, Ordering::Relaxed);
            if first {
                self.rebalance_done();
            } else if let Some(l) = self.leader.as_mut() {
                l.phase = LeaderPhase::Barrier {
                    deadline: Instant::now() + self.timing.barrier_timeout,
                };
            }
        } else if let Some(l) = self.leader.as_mut() {
            l.phase = LeaderPhase::Idle;
        }
        self.schedule_scan(true);
        Ok(())
    }

    /// A compute failed or timed out. The input system's metadata may be briefly out of
    /// reach, so the leader keeps leading and tries again later, backing off from a second
    /// to a minute, instead of failing the processor (the next leader would meet the same).
    fn compute_failed(&mut self, message: &str) {
        let Some(l) = self.leader.as_mut() else {
            return;
        };
        if let LeaderPhase::Computing { recompute, .. } = l.phase {
            l.recompute |= recompute;
        }
        l.compute_failures += 1;
        let n = l.compute_failures;
        let backoff = decisions::compute_backoff(n);
        if n >= 3 {
            tracing::error!(%message, failures = n, ?backoff, "computing the job model keeps failing; retrying");
        } else {
            tracing::warn!(%message, ?backoff, "computing the job model failed; retrying");
        }
        l.phase = LeaderPhase::Idle;
        l.next_scan = Instant::now() + backoff;
    }

    /// One conditional write of the whole document, fenced by the lease. Returns false if
    /// storage refused it (someone else leads now, or the document moved), or if the leader
    /// does not know the document's current ETag: it never writes unconditionally.
    async fn publish(&mut self, doc: ModelDocument, lease: LeaseId) -> Result<bool> {
        let valid = self.leader.as_ref().map(|l| Instant::now() < l.valid_until);
        if valid != Some(true) {
            return Ok(false);
        }
        let Some(etag) = self.etag.clone() else {
            return Ok(false);
        };
        let body = doc.encode()?;
        let result = self
            .store
            .replace_document(&self.blob, body, Some(&etag), Some(lease))
            .await;
        match result {
            Ok(etag) => {
                tracing::info!(version = doc.version(), phase = ?doc.phase(), "published job model");
                self.etag = Some(etag);
                // Tell everyone concerned at their next heartbeat, instead of having them poll.
                let ids = decisions::to_notify(&doc.header, &self.me);
                self.on_document(Arc::new(doc));
                if let Err(e) = self.membership.notify(&ids).await {
                    tracing::warn!(error = %e, "notifying processors failed; they will poll");
                }
                Ok(true)
            }
            Err(e) if is_fatal(&e) => Err(e.context("publishing the job model")),
            Err(e) => {
                tracing::warn!(error = %e, version = doc.version(), "publishing the job model failed");
                // Learn what storage holds now (it may be our own write, if the outcome was
                // unknown); the next scan decides again from there.
                self.etag = None;
                self.poll_document().await?;
                Ok(*self.doc == doc)
            }
        }
    }

    /// Every processor concerned runs the new version: record how long the rebalance took
    /// and go back to watching.
    fn rebalance_done(&mut self) {
        let Some(l) = self.leader.as_mut() else {
            return;
        };
        if let Some(t) = l.rebalance_started.take() {
            self.metrics
                .last_rebalance_ms
                .store(t.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
        l.phase = LeaderPhase::Idle;
    }

    /// The barrier of the version in the document, after a scan: complete it, remind the
    /// processors it waits for, or abandon it and compute again (see `decisions::barrier_step`).
    async fn barrier_tick(
        &mut self,
        snapshot: &Snapshot,
        live: Vec<MemberRef>,
        deadline: Instant,
    ) -> Result<()> {
        let Some(lease) = self.leader.as_ref().map(|l| l.lease) else {
            return Ok(());
        };
        let v = self.doc.version();
        let timed_out = Instant::now() >= deadline;
        let (why, next) =
            match decisions::barrier_step(&self.doc.header, &snapshot.members, &live, timed_out) {
                BarrierStep::Complete => {
                    let done = self.doc.with_phase(Phase::Done);
                    if self.publish(done, lease).await? {
                        self.rebalance_done();
                    }
                    return Ok(());
                }
                BarrierStep::Wait { waiting } => {
                    let renotify = self
                        .leader
                        .as_mut()
                        .filter(|l| Instant::now() >= l.next_renotify);
                    if let Some(l) = renotify {
                        l.next_renotify = Instant::now() + self.timing.heartbeat;
                        if let Err(e) = self.membership.notify(&waiting).await {
                            tracing::warn!(error = %e, "notifying processors failed; trying again");
                        }
                    }
                    return Ok(());
                }
                BarrierStep::Abandon { why, next } => (why, next),
            };
        // Give up on this version. A dead or departed processor holds nothing any more (it
        // fenced itself before storage judged it dead), so it is simply left out. A live
        // straggler loses its assignment but must still acknowledge the next version, since
        // its container may still be running.
        match &why {
            Abandon::TimedOut { waiting } => {
                self.metrics
                    .barrier_timeouts
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(version = v, ?waiting, "barrier timed out");
            }
            Abandon::Back { back } => tracing::info!(
                version = v,
                ?back,
                "processors judged dead are back; computing again with them"
            ),
            Abandon::Left { missing } => {
                tracing::info!(version = v, ?missing, "processors left during the barrier")
            }
        }
        let abandoned = self.doc.with_phase(Phase::Abandoned);
        if !self.publish(abandoned, lease).await? {
            if let Some(l) = self.leader.as_mut() {
                l.phase = LeaderPhase::Idle;
            }
            return Ok(());
        }
        if next.members.is_empty() {
            if let Some(l) = self.leader.as_mut() {
                l.phase = LeaderPhase::Idle;
            }
        } else {
            self.begin_compute(next.members, next.must_ack);
        }
        Ok(())
    }

    /// A graceful stop begins: hand leadership on at once and have Java stop the container.
    /// The main loop goes on heartbeating until Java reports the container stopped.
    async fn begin_leaving(&mut self) {
        if self.leaving.is_some() {
            return;
        }
        self.lease.stop().await;
        if self.leader.take().is_some() {
            self.metrics.is_leader.store(false, Ordering::Relaxed);
        }
        self.preparing = None;
        self.preparing_since = None;
        self.leaving = Some(Instant::now() + RELEASE_TIMEOUT);
        tracing::info!(processor = %self.me, "leaving the group; stopping the container");
        self.emit(Event::Release);
    }

    /// The end of the task. After a graceful stop (`left`) the container has stopped and the
    /// row is deleted, so the leader rebalances at once. Otherwise (a fatal error, a container
    /// that never stopped, a dropped handle) the row is left to go stale: the leader takes
    /// the partitions only after the liveness timeout, by when the self-fence has stopped
    /// processing here. A container that never stopped must not look as if it had.
    async fn shutdown(&mut self, commands: &mut mpsc::UnboundedReceiver<Command>, left: bool) {
        let was_leaving = self.leaving.is_some();
        self.begin_leaving().await;
        if !left && !was_leaving {
            // A fatal error: no heartbeat can be relied on to hold the row, but Java may
            // still stop the container in time, and then the row can go at once.
            let released = async {
                while let Some(c) = commands.recv().await {
                    if matches!(c, Command::Released) {
                        return true;
                    }
                }
                false
            };
            if tokio::time::timeout(RELEASE_TIMEOUT, released).await == Ok(true) {
                self.running = 0;
            }
        }
        if self.running != 0 {
            tracing::error!(
                processor = %self.me,
                "the container did not report stopping; the membership row is left to go stale"
            );
            return;
        }
        self.metrics.running_version.store(0, Ordering::Relaxed);
        if let Err(e) = self.membership.leave().await {
            tracing::warn!(error = %e, "could not delete the membership row; it will be judged dead");
        }
        tracing::info!(processor = %self.me, "left the group");
    }
}

fn ids(members: &[MemberRef]) -> Vec<&str> {
    members.iter().map(|m| m.id.as_str()).collect()
}
