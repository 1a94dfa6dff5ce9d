//! The per-processor protocol task: its state, startup, and the loop that wakes on commands,
//! lease changes and due times and runs each step in order (docs/protocol.md, "Per-processor
//! loop"). The steps live beside it, one file per side of the protocol:
//! - `member`: heartbeat, self-fence, reading the document and acting on it as a member;
//! - `reachability`: whether this processor could reach storage long enough to judge deaths;
//! - `successor`: the successor's watch of the leader;
//! - `leader`: leadership, the leader's scan, computing and publishing versions;
//! - `barrier`: completing or abandoning a published version;
//! - `decisions`: the leader's decisions as pure functions;
//! - `stop`: leaving the group and the end of the task.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::config::Timing;
use super::handle::{Command, Event, Storage};
use super::jobmodel::ModelDocument;
use super::metrics::{fence_timer, Metrics};
use super::names::JobNames;
use crate::error::{Error, ErrorKind, Result};
use crate::lease::{LeaseKeeper, LeaseState};
use crate::membership::{MemberState, Membership};
use crate::storage::retry::Doubling;
use crate::storage::{BlobRef, ETag};

mod barrier;
mod decisions;
mod leader;
mod member;
mod reachability;
mod stop;
mod successor;

use leader::Leader;
use stop::RELEASE_TIMEOUT;

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
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
    /// The leader whose lease this processor last broke as successor: it breaks one
    /// leader's lease once.
    broke_lease_of: Option<String>,
    /// The highest version known before the document was last reset: versions never go
    /// back, so a leader numbers above it.
    version_floor: u64,
}

pub(super) async fn run<S: Storage>(
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

    let _fence_timer = AbortOnDrop(crate::tasks::spawn(fence_timer(
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
        // At a random point of the first interval: processors started together then spread
        // their heartbeats, and the reads that notifications prompt, over the interval.
        next_heartbeat: now + crate::random::up_to(timing.heartbeat),
        next_poll: now,
        next_watch: now + timing.scan,
        leader: None,
        leaving: None,
        resume_sent: None,
        last_read: None,
        reachable_since: None,
        last_ok_sent: None,
        version_floor: 0,
        broke_lease_of: None,
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
    format!("{:016x}", crate::random::u64())
}

impl<S: Storage> Engine<'_, S> {
    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    /// The main loop. Returns when the processor has left (its container stopped) or must
    /// stop at once (the handle was dropped, or a fatal error).
    async fn run(&mut self, commands: &mut mpsc::UnboundedReceiver<Command>) -> Result<()> {
        // The lease keeper ends when the processor leaves; its closed channel would then be
        // ready at every turn and the loop would spin until the container stopped.
        let mut lease_open = true;
        loop {
            let wake = self.next_wake();
            tokio::select! {
                // In order, not at random, so that a seeded simulation replays: a lease change
                // first (losing leadership must be acted on before anything a leader would
                // do), then commands, then due times.
                biased;
                changed = self.lease_state.changed(), if lease_open => match changed {
                    Ok(()) => {
                        let state = self.lease_state.borrow_and_update().clone();
                        self.on_lease(state).await?;
                    }
                    Err(_) => lease_open = false,
                },
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
                    // Java took a while: the document may have moved on meanwhile. (After a
                    // quick answer the paced polls will do; every processor re-reading at
                    // once would double a large job's reads of the one blob.)
                    if self
                        .last_read
                        .is_none_or(|t| t.elapsed() >= self.timing.rebalance_poll)
                    {
                        self.next_poll = Instant::now();
                    }
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
}
