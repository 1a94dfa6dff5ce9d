//! One simulated run: N processors on one thread and tokio's paused clock, the seeded fault
//! schedule, and the checks at the end.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use samza_azure_coordinator::coordinator::names::JobIdentity;
use samza_azure_coordinator::coordinator::{Coordinator, CoordinatorConfig, Timing};
use samza_azure_coordinator::tasks;
use tokio::time::Instant;

use crate::checker::Checker;
use crate::freeze::Freeze;
use crate::java::{JavaFaults, JavaSide};
use crate::memstore::Endpoint;
use crate::net::{Bug, Client, Latency, Net};
use crate::schedule::{Fault, Slot, Step};

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub processors: usize,
    pub tasks: u32,
    pub schedule: Vec<Step>,
    pub timing: Timing,
    pub latency: Latency,
    /// How long a container takes to stop.
    pub stop_time: Duration,
    pub compute_time: Duration,
    /// After the last fault, every task must run on a live processor within this.
    pub settle_bound: Duration,
    /// Samza's `task.commit.ms` for the containers' checkpoint commits.
    pub commit_every: Duration,
    pub bug: Option<Bug>,
}

impl SimConfig {
    /// A run of `processors` with the default timing and a few seconds' container stops.
    pub fn new(seed: u64, processors: usize, tasks: u32, schedule: Vec<Step>) -> Self {
        let timing = Timing::default();
        // A version can wait out one barrier timeout for a stuck Java side and another for
        // the version after it; then the lease, the liveness timeout and a rebalance.
        let settle_bound =
            timing.barrier_timeout * 2 + timing.lease.duration + Duration::from_secs(30);
        SimConfig {
            seed,
            processors,
            tasks,
            schedule,
            timing,
            latency: Latency::default(),
            stop_time: Duration::from_millis(1500),
            compute_time: Duration::from_millis(50),
            settle_bound,
            // Far shorter than Samza's default (60 s), so that commits meet the faults.
            commit_every: Duration::from_secs(1),
            bug: None,
        }
    }
}

#[derive(Debug)]
pub struct Outcome {
    pub violations: Vec<String>,
    /// From the last fault to every task running on a live processor, all on one version.
    pub settled_after: Option<Duration>,
    /// Virtual time the run covered.
    pub simulated: Duration,
    pub trace: Vec<String>,
    pub requests: u64,
    pub publishes: u64,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.violations.is_empty() && self.settled_after.is_some()
    }

    /// A digest of the trace, to compare two runs event for event.
    pub fn digest(&self) -> u64 {
        // FNV-1a: stable across runs and platforms, unlike the std hasher's seed.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.trace.iter().flat_map(|l| l.bytes().chain([b'\n'])) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    }
}

struct Processor {
    id: String,
    freeze: Arc<Freeze>,
    coordinator: Arc<Coordinator>,
    java: Arc<Mutex<JavaFaults>>,
    /// Stopped gracefully, or crashed: not expected to run anything.
    gone: bool,
    /// Its coordinator has stopped (after a graceful leave or a failure).
    ended: Arc<std::sync::atomic::AtomicBool>,
}

impl Processor {
    /// Nothing of this process runs any more, so its id may start again: it crashed, or
    /// its coordinator stopped (an id still in use by a process that is stopping is the
    /// operator error the coordinator refuses).
    fn over(&self) -> bool {
        self.gone
            && (self.freeze.is_dead() || self.ended.load(std::sync::atomic::Ordering::Acquire))
    }
}

struct World {
    cfg: SimConfig,
    net: Arc<Net>,
    checker: Arc<Checker>,
    procs: Vec<Processor>,
    /// Client numbers: one per processor start, so a restarted id is told apart.
    clients: usize,
    clock: Instant,
    /// Processors whose container failed and whose coordinator has stopped: (id, client).
    rejoins: Arc<Mutex<Vec<(String, usize)>>>,
    /// Their fresh starts, as `AzureApplicationRunner` schedules them: (slot, client, when).
    restarts: Vec<(Slot, usize, Instant)>,
}

/// `AzureApplicationRunner`'s wait before a processor that failed for coordination rejoins
/// (its first; later ones in a row wait longer there).
const REJOIN_AFTER: Duration = Duration::from_secs(1);

/// The processor id of slot `n`.
fn id_of(slot: Slot) -> String {
    format!("p{slot:04}")
}

impl World {
    fn now(&self) -> Duration {
        self.clock.elapsed()
    }

    fn start(&mut self, slot: Slot) {
        let id = id_of(slot);
        let who = self.clients;
        self.clients += 1;
        self.checker.name(who, &id);
        let freeze = Arc::new(Freeze::default());
        let client = Arc::new(Endpoint(Client {
            net: self.net.clone(),
            who,
            generation: None,
        }));
        let config = CoordinatorConfig {
            job: JobIdentity {
                name: "simjob".into(),
                id: "1".into(),
            },
            timing: self.cfg.timing.clone(),
        };
        let wrapper = freeze.wrapper();
        let coordinator = Arc::new(
            tasks::with_wrapper(wrapper.clone(), || Coordinator::start(client, config, &id))
                .expect("a valid processor id and config"),
        );
        let java = Arc::new(Mutex::new(JavaFaults::default()));
        let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let side = Arc::new(JavaSide {
            id: id.clone(),
            coordinator: coordinator.clone(),
            freeze: freeze.clone(),
            checker: self.checker.clone(),
            faults: java.clone(),
            tasks: self.cfg.tasks,
            stop_time: self.cfg.stop_time,
            compute_time: self.cfg.compute_time,
            ignores_deadline: self.cfg.bug == Some(Bug::IgnoreFence),
            acks_before_stop: self.cfg.bug == Some(Bug::AckBeforeStop),
            clock: self.clock,
            net: self.net.clone(),
            who,
            commit_every: self.cfg.commit_every,
            rejoins: self.rejoins.clone(),
            ended: ended.clone(),
        });
        tasks::with_wrapper(wrapper, || tasks::spawn(side.drive()));
        self.checker.trace(self.now(), format!("{id} started"));
        let p = Processor {
            id,
            freeze,
            coordinator,
            java,
            gone: false,
            ended,
        };
        match self.procs.get_mut(slot) {
            Some(old) => *old = p,
            None => self.procs.push(p),
        }
    }

    /// Takes in the processors that failed, and starts those whose rejoin is due.
    fn tend(&mut self) {
        let failed: Vec<(String, usize)> = std::mem::take(&mut *self.rejoins.lock().unwrap());
        for (id, who) in failed {
            let slot = self.procs.iter().position(|p| p.id == id);
            if let Some(slot) = slot.filter(|s| self.live(*s).is_some()) {
                if self.client_of(slot) == who {
                    self.procs[slot].gone = true;
                    self.restarts
                        .push((slot, who, Instant::now() + REJOIN_AFTER));
                    self.checker.trace(
                        self.now(),
                        format!("{id} failed; it rejoins in {REJOIN_AFTER:?}"),
                    );
                }
            }
        }
        let now = Instant::now();
        let due: Vec<(Slot, usize)> = self
            .restarts
            .iter()
            .filter(|(_, _, at)| *at <= now)
            .map(|(s, w, _)| (*s, *w))
            .collect();
        self.restarts.retain(|(_, _, at)| *at > now);
        for (slot, who) in due {
            // Unless the schedule restarted it meanwhile.
            if self.procs[slot].gone && self.client_of(slot) == who {
                self.start(slot);
            }
        }
    }

    /// Waits until `until`, tending to rejoins meanwhile.
    async fn wait_until(&mut self, until: Instant) {
        loop {
            self.tend();
            let now = Instant::now();
            if now >= until {
                return;
            }
            tokio::time::sleep_until(until.min(now + Duration::from_millis(100))).await;
        }
    }

    /// Reads every task's checkpoint back through a fresh checkpoint store (claiming it, as a
    /// new owner would), for the checker to hold against what was acknowledged.
    async fn audit_checkpoints(&mut self) {
        let who = self.clients;
        self.clients += 1;
        self.checker.name(who, "auditor");
        let client = Client {
            net: self.net.clone(),
            who,
            generation: None,
        };
        let store = crate::container::open(client, "auditor");
        for task in 0..self.cfg.tasks {
            let name = crate::container::task_name(task);
            let read = match store.claim(&name, 0).await {
                Ok(()) => store.read(&name).await,
                Err(e) => Err(e),
            };
            match read {
                Ok(read) => {
                    self.checker
                        .audit(self.now(), task, crate::container::offset_in(&read))
                }
                Err(e) => self.checker.violation(
                    self.now(),
                    format!("reading back task {task}'s checkpoint: {e}"),
                ),
            }
        }
    }

    fn live(&self, slot: Slot) -> Option<&Processor> {
        self.procs.get(slot).filter(|p| !p.gone)
    }

    fn live_count(&self) -> usize {
        self.procs.iter().filter(|p| !p.gone).count()
    }

    fn apply(&mut self, fault: &Fault) {
        let now = Instant::now();
        let until = |d: &Duration| now + *d;
        let applied = match fault {
            Fault::Crash(p) if self.live(*p).is_some() && self.live_count() > 1 => {
                let proc = &mut self.procs[*p];
                proc.freeze.kill();
                proc.gone = true;
                let id = proc.id.clone();
                // A dead process processes nothing.
                self.checker.stop(self.now(), &id, "crashed");
                true
            }
            Fault::Restart(p) if self.procs.get(*p).is_some_and(Processor::over) => {
                self.start(*p);
                true
            }
            Fault::Join => {
                let slot = self.procs.len();
                self.start(slot);
                true
            }
            Fault::Leave(p) if self.live(*p).is_some() && self.live_count() > 1 => {
                let proc = &mut self.procs[*p];
                proc.coordinator.stop();
                proc.gone = true;
                true
            }
            Fault::Pause(p, d) if self.live(*p).is_some() => {
                self.procs[*p].freeze.pause_until(until(d));
                true
            }
            Fault::Stall(p, d) => self.net_fault(*p, |f, w| {
                f.stalled.insert(w, until(d));
            }),
            Fault::StallAll(d) => {
                self.net.faults.lock().unwrap().stalled_all = Some(until(d));
                true
            }
            Fault::Busy(p, d) => self.net_fault(*p, |f, w| {
                f.busy.insert(w, until(d));
            }),
            Fault::BusyAll(d) => {
                self.net.faults.lock().unwrap().busy_all = Some(until(d));
                true
            }
            Fault::Ambiguous(p, d) => self.net_fault(*p, |f, w| {
                f.ambiguous.insert(w, until(d));
            }),
            Fault::LostAnswers(p, d) => self.net_fault(*p, |f, w| {
                f.lost.insert(w, until(d));
            }),
            Fault::JavaStuck(p, d) if self.live(*p).is_some() => {
                self.procs[*p].java.lock().unwrap().stuck_until = Some(until(d));
                true
            }
            _ => false,
        };
        if applied {
            self.checker.trace(self.now(), format!("fault: {fault}"));
        }
    }

    /// Network faults are keyed by client number: the processor's current start.
    fn net_fault(&self, slot: Slot, f: impl FnOnce(&mut crate::net::Faults, usize)) -> bool {
        if self.live(slot).is_none() {
            return false;
        }
        let who = self.client_of(slot);
        f(&mut self.net.faults.lock().unwrap(), who);
        true
    }

    fn client_of(&self, slot: Slot) -> usize {
        // Client numbers are handed out in start order; find the last start of this slot.
        self.checker.client_named(&self.procs[slot].id)
    }

    fn leader(&self) -> Option<Slot> {
        self.procs.iter().position(|p| {
            !p.gone
                && p.coordinator
                    .metrics()
                    .is_leader
                    .load(std::sync::atomic::Ordering::Acquire)
        })
    }

    /// How long until every task runs on one live processor, all on one version, looking
    /// every 10 ms; `None` if not within `bound`.
    async fn await_settled(&mut self, bound: Duration) -> Option<Duration> {
        let from = Instant::now();
        while Instant::now() < from + bound {
            self.tend();
            if self.settled() {
                return Some(Instant::now() - from);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    /// Each live processor's coordinator as its metrics tell, for a failure report.
    fn status(&self) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let holders = self.checker.holders();
        let unheld = (0..self.cfg.tasks)
            .filter(|t| !holders.contains_key(t))
            .count();
        let procs: Vec<String> = self
            .procs
            .iter()
            .filter(|p| !p.gone)
            .map(|p| {
                let m = p.coordinator.metrics();
                format!(
                    "{}{} seen v{} running v{} fences {} paused {} wakeups {}",
                    p.id,
                    if m.is_leader.load(Relaxed) {
                        " (leader)"
                    } else {
                        ""
                    },
                    m.seen_version.load(Relaxed),
                    m.running_version.load(Relaxed),
                    m.fences.load(Relaxed),
                    m.paused.load(Relaxed),
                    m.wakeups.load(Relaxed),
                )
            })
            .collect();
        format!("{unheld} tasks unheld; {}", procs.join(", "))
    }

    /// Every live processor runs the same version and every task has one live holder.
    fn settled(&self) -> bool {
        let live: Vec<&Processor> = self.procs.iter().filter(|p| !p.gone).collect();
        let versions: std::collections::BTreeSet<u64> = live
            .iter()
            .map(|p| {
                p.coordinator
                    .metrics()
                    .running_version
                    .load(std::sync::atomic::Ordering::Acquire)
            })
            .collect();
        if versions.len() != 1 || versions.contains(&0) {
            return false;
        }
        let holders = self.checker.holders();
        (0..self.cfg.tasks).all(|t| {
            holders
                .get(&t)
                .is_some_and(|h| h.len() == 1 && live.iter().any(|p| p.id == h[0]))
        })
    }
}

thread_local! {
    static RUN_START: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// When the run on this thread started, by its virtual clock (for log lines).
pub fn run_start() -> Option<Instant> {
    RUN_START.with(|s| s.get())
}

/// Runs `run` to its end on a fresh paused runtime on this thread, with the thread's
/// randomness seeded from `seed`.
fn in_virtual_time<T>(seed: u64, run: impl std::future::Future<Output = T>) -> T {
    samza_azure_coordinator::random::seed_thread(seed);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    rt.block_on(run)
}

impl World {
    /// A world with storage and the checker, and no processor yet. Call on the run's runtime.
    fn new(cfg: SimConfig) -> Self {
        RUN_START.with(|s| s.set(Some(Instant::now())));
        let checker = Arc::new(Checker::default());
        let net = Arc::new(Net::new(
            cfg.seed,
            cfg.latency.clone(),
            checker.clone(),
            cfg.bug,
        ));
        World {
            net,
            checker,
            procs: Vec::new(),
            clients: 0,
            clock: Instant::now(),
            rejoins: Arc::default(),
            restarts: Vec::new(),
            cfg,
        }
    }

    /// The ownership check, every `period` of virtual time.
    fn sample_every(&self, period: Duration) -> tokio::task::JoinHandle<()> {
        let (checker, clock) = (self.checker.clone(), self.clock);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                checker.sample(clock.elapsed());
            }
        })
    }
}

/// Runs one simulation to its end on a fresh paused runtime on this thread.
pub fn run(cfg: SimConfig) -> Outcome {
    in_virtual_time(cfg.seed, simulate(cfg))
}

async fn simulate(cfg: SimConfig) -> Outcome {
    let mut world = World::new(cfg);
    let (net, checker) = (world.net.clone(), world.checker.clone());
    for slot in 0..world.cfg.processors {
        world.start(slot);
    }
    let sampler = world.sample_every(Duration::from_millis(10));
    let schedule = world.cfg.schedule.clone();
    for step in &schedule {
        world.wait_until(world.clock + step.at).await;
        world.apply(&step.fault);
    }
    // Stalls, pauses and stuck threads run out by themselves: the settling time counts from
    // when the last of them ended.
    let quiet_from = world.clock + schedule.iter().map(Step::end).max().unwrap_or_default();
    let bound = world.cfg.settle_bound;
    world.wait_until(quiet_from).await;
    let settled_after = world.await_settled(bound).await;
    if settled_after.is_none() {
        checker.violation(
            world.now(),
            format!(
                "not every task ran on a live processor within {bound:?} of the last fault; {}",
                world.status()
            ),
        );
    }
    for p in &world.procs {
        if p.freeze.spun() {
            checker.violation(
                world.now(),
                format!(
                    "{} spun: its tasks ran without waiting, and virtual time stood still",
                    p.id
                ),
            );
        }
    }
    sampler.abort();
    for p in world.procs.iter().filter(|p| !p.gone) {
        p.coordinator.stop();
    }
    world.audit_checkpoints().await;
    let requests = net.load.lock().unwrap().total;
    Outcome {
        violations: checker.violations(),
        settled_after,
        simulated: world.now(),
        trace: checker.trace_lines(),
        requests,
        publishes: checker.publishes.load(std::sync::atomic::Ordering::Relaxed),
    }
}

/// What the scale runs measure (docs/benchmarks.md, "Scale in the simulator").
#[derive(Debug)]
pub struct ScaleReport {
    pub processors: usize,
    pub tasks: u32,
    /// Start to every task running.
    pub cold_start: Option<Duration>,
    /// A follower's kill -9 to every task running again.
    pub follower_crash: Option<Duration>,
    /// The leader's kill -9 to every task running again.
    pub leader_crash: Option<Duration>,
    /// A graceful stop to every task running again.
    pub graceful_leave: Option<Duration>,
    /// Peaks per second: (steady, during the rebalances).
    pub partition_entities: (u32, u32),
    pub partition_requests: (u32, u32),
    pub blob_requests: (u32, u32),
    pub account_requests: (u32, u32),
    /// What the peaks of partition entities and blob requests were made of, steady and busy:
    /// (what, steady or busy, the peak).
    pub breakdown: Vec<(&'static str, &'static str, crate::net::Peak)>,
    /// Leases broken over the whole run: one per leader crash when take-overs do not race.
    pub lease_breaks: u32,
    pub violations: Vec<String>,
}

/// Cold start, then 30 s steady, a follower crash, the leader's crash and a graceful leave,
/// each measured until every task runs again; no other faults.
pub fn scale(processors: usize, tasks: u32, seed: u64) -> ScaleReport {
    let mut cfg = SimConfig::new(seed, processors, tasks, Vec::new());
    // Samza's default `task.commit.ms`.
    cfg.commit_every = Duration::from_secs(60);
    in_virtual_time(seed, scale_run(cfg))
}

async fn scale_run(cfg: SimConfig) -> ScaleReport {
    let bound = Duration::from_secs(120);
    let mut world = World::new(cfg);
    let (net, checker) = (world.net.clone(), world.checker.clone());
    let sampler = world.sample_every(Duration::from_millis(50));
    for slot in 0..world.cfg.processors {
        world.start(slot);
    }
    let cold_start = world.await_settled(bound).await;
    let steady_from = world.now().as_secs() + 5;
    world
        .wait_until(Instant::now() + Duration::from_secs(35))
        .await;
    let steady_to = world.now().as_secs();
    let leader_slot = world.leader().unwrap_or(0);
    let follower = (0..world.procs.len())
        .find(|s| *s != leader_slot && !world.procs[*s].gone)
        .unwrap_or(1);
    let busy_from = world.now().as_secs();
    world.apply(&Fault::Crash(follower));
    let follower_crash = world.await_settled(bound).await;
    world
        .wait_until(Instant::now() + Duration::from_secs(10))
        .await;
    world.apply(&Fault::Crash(leader_slot));
    let leader_crash = world.await_settled(bound).await;
    world
        .wait_until(Instant::now() + Duration::from_secs(10))
        .await;
    let leaving = (0..world.procs.len())
        .find(|s| !world.procs[*s].gone && Some(*s) != world.leader())
        .unwrap_or(0);
    world.apply(&Fault::Leave(leaving));
    let graceful_leave = world.await_settled(bound).await;
    let busy_to = world.now().as_secs() + 1;
    sampler.abort();
    let load = net.load.lock().unwrap();
    let both = |map: &std::collections::BTreeMap<(String, u64), u32>, prefix: &str| {
        (
            crate::net::Load::peak(map, prefix, steady_from, steady_to),
            crate::net::Load::peak(map, prefix, busy_from, busy_to),
        )
    };
    if std::env::var_os("SIM_SECONDS").is_some() {
        for ((r, sec), kinds) in &load.kinds {
            eprintln!("{sec:>4} {r} {kinds:?}");
        }
    }
    let mut breakdown = Vec::new();
    for (what, map, prefix) in [
        ("partition entities", &load.entities, "table:"),
        ("blob requests", &load.requests, "blob:"),
    ] {
        for (when, from, to) in [
            ("steady", steady_from, steady_to),
            ("busy", busy_from, busy_to),
        ] {
            if let Some(peak) = load.peak_kinds(map, prefix, from, to) {
                breakdown.push((what, when, peak));
            }
        }
    }
    ScaleReport {
        processors: world.cfg.processors,
        tasks: world.cfg.tasks,
        cold_start,
        follower_crash,
        leader_crash,
        graceful_leave,
        partition_entities: both(&load.entities, "table:"),
        partition_requests: both(&load.requests, "table:"),
        blob_requests: both(&load.requests, "blob:"),
        account_requests: both(&load.requests, "account"),
        breakdown,
        lease_breaks: load
            .kinds
            .values()
            .filter_map(|k| k.get("break lease"))
            .sum(),
        violations: checker.violations(),
    }
}
