//! Several coordinators in one process, each on its own thread and runtime, and a small
//! driver that plays the Java side: it computes a round-robin model, "stops" and "starts"
//! containers, and an ownership ledger records every violation of "no partition has two
//! owners". Shared by the coordinator tests and the chaos test.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::recording::Recording;
use super::{azurite, unique, Faithful};
use samza_azure_coordinator::coordinator::names::JobIdentity;
use samza_azure_coordinator::coordinator::{Coordinator, CoordinatorConfig, Event, Timing};
use samza_azure_coordinator::lease::LeaseTiming;

pub const PARTITIONS: u32 = 8;

pub fn timing() -> Timing {
    Timing {
        heartbeat: Duration::from_millis(300),
        liveness: Duration::from_millis(1500),
        poll: Duration::from_millis(5000),
        scan: Duration::from_millis(100),
        rebalance_poll: Duration::from_millis(50),
        debounce: Duration::from_millis(300),
        barrier_timeout: Duration::from_secs(5),
        lease: LeaseTiming {
            acquire_interval: Duration::from_secs(1),
            ..LeaseTiming::default()
        },
    }
}

/// The model: processor id -> partitions, as JSON (stands in for Samza's JobModel).
pub fn compute(members: &[String]) -> String {
    let mut m: BTreeMap<&str, Vec<u32>> = members.iter().map(|p| (p.as_str(), vec![])).collect();
    for p in 0..PARTITIONS {
        m.get_mut(members[(p as usize) % members.len()].as_str())
            .unwrap()
            .push(p);
    }
    serde_json::to_string(&m).unwrap()
}

pub fn assignment(model: &str, me: &str) -> Vec<u32> {
    let m: BTreeMap<String, Vec<u32>> = serde_json::from_str(model).unwrap();
    m.get(me).cloned().unwrap_or_default()
}

/// How the driver answers a compute, instead of computing (taken in order by any leader).
#[derive(Clone, Copy, Debug)]
pub enum ComputeFault {
    /// Reports a failure, as an unreachable input system would make Java do.
    Fail,
    /// Never answers, as a Java thread stuck on an input's metadata.
    Ignore,
}

/// Who runs which partition now, and every violation seen.
#[derive(Default)]
pub struct Ledger {
    pub compute_faults: std::collections::VecDeque<ComputeFault>,
    pub owners: HashMap<u32, String>,
    pub running: HashMap<String, (u64, Vec<u32>)>,
    /// Processors woken from a pause that have not fenced yet, with what they held.
    pub frozen: HashMap<String, Vec<u32>>,
    pub violations: Vec<String>,
    /// Engines that stopped with an error.
    pub errors: Vec<String>,
    pub starts: Vec<(String, u64)>,
    /// Each processor's coordinator: a container whose processor is past its self-fence
    /// deadline holds its partitions but processes nothing (its processing gate is closed).
    pub coordinators: HashMap<String, Arc<Coordinator>>,
}

impl Ledger {
    pub fn start(&mut self, me: &str, version: u64, parts: Vec<u32>) {
        if self.frozen.contains_key(me) {
            self.violations.push(format!(
                "{me} started v{version} after a pause without fencing first"
            ));
        }
        for p in &parts {
            if let Some(other) = self.owners.get(p).filter(|o| self.processing(o)) {
                self.violations.push(format!(
                    "partition {p}: {me} started v{version} while {other} holds it"
                ));
            }
            self.owners.insert(*p, me.to_owned());
        }
        self.starts.push((me.to_owned(), version));
        self.running.insert(me.to_owned(), (version, parts));
    }

    /// Whether `id`'s container may process now: its processing gate is open.
    pub fn processing(&self, id: &str) -> bool {
        self.coordinators
            .get(id)
            .is_none_or(|c| c.metrics().fence_remaining_nanos() >= 0)
    }

    /// Records a violation if two containers that may process hold one partition: a paused
    /// container that resumed while its partitions were given to another.
    pub fn check(&mut self) {
        let mut holders: HashMap<u32, Vec<&str>> = HashMap::new();
        for (id, (_, parts)) in &self.running {
            if self.processing(id) {
                for p in parts {
                    holders.entry(*p).or_default().push(id);
                }
            }
        }
        let found: Vec<String> = holders
            .into_iter()
            .filter(|(_, ids)| ids.len() > 1)
            .map(|(p, ids)| format!("partition {p} processed by {ids:?} at once"))
            .collect();
        self.violations.extend(found);
    }

    pub fn stop(&mut self, me: &str) {
        if let Some((_, parts)) = self.running.remove(me) {
            for p in parts {
                if self.owners.get(&p).map(String::as_str) == Some(me) {
                    self.owners.remove(&p);
                }
            }
        }
    }
}

pub enum Control {
    /// Freezes the processor's whole runtime, like SIGSTOP: no task runs, no timer fires.
    Pause(Duration),
    Stop,
    /// A graceful stop whose container takes this long to stop (Samza allows up to
    /// `task.shutdown.ms`, 30 s by default): it keeps processing meanwhile.
    SlowStop(Duration),
    /// The Java side stops answering `Prepare` (its event thread is stuck); the processing
    /// fence, which does not need that thread, still works.
    IgnorePrepares,
    /// kill -9: the driver returns at once and the runtime with all its tasks is dropped.
    Crash,
}

/// One processor: its own OS thread and single-threaded runtime, so it can be frozen or
/// killed (the runtime dropped) without touching the others.
pub struct Processor {
    pub id: String,
    pub coordinator: Arc<Coordinator>,
    pub storage: Arc<Recording>,
    pub control: tokio::sync::mpsc::UnboundedSender<Control>,
    /// Every event the driver took, with when.
    pub events: Arc<Mutex<Vec<(Instant, String)>>>,
    pub thread: Option<std::thread::JoinHandle<()>>,
}

pub struct Cluster {
    pub job: String,
    pub timing: Timing,
    pub ledger: Arc<Mutex<Ledger>>,
    pub procs: Vec<Processor>,
    /// Storage: the binary's shared proxy, or this proxy with one endpoint per processor id
    /// (in the order first spawned, kept by a restarted id).
    pub proxy: Option<Arc<Faithful>>,
    pub clients: Vec<String>,
}

async fn drive(
    c: Arc<Coordinator>,
    me: String,
    ledger: Arc<Mutex<Ledger>>,
    events: Arc<Mutex<Vec<(Instant, String)>>>,
    mut control: tokio::sync::mpsc::UnboundedReceiver<Control>,
) {
    let mut current: Option<Vec<u32>> = None;
    let mut stop_takes = Duration::ZERO;
    let mut ignore_prepares = false;
    loop {
        let event = tokio::select! {
            e = c.next_event(Duration::from_secs(60)) => e,
            ctl = control.recv() => {
                match ctl {
                    Some(Control::Pause(d)) => {
                        // Frozen containers process nothing: release them in the ledger, and
                        // the driver asserts below that the first thing after waking is a fence.
                        ledger.lock().unwrap().stop(&me);
                        events.lock().unwrap().push((Instant::now(), "paused".into()));
                        std::thread::sleep(d);
                        events.lock().unwrap().push((Instant::now(), "resumed".into()));
                        ledger.lock().unwrap().frozen.insert(me.clone(), current.clone().unwrap_or_default());
                    }
                    Some(Control::Crash) | None => return,
                    Some(Control::Stop) => c.stop(),
                    Some(Control::IgnorePrepares) => ignore_prepares = true,
                    Some(Control::SlowStop(d)) => {
                        stop_takes = d;
                        c.stop();
                    }
                }
                continue;
            }
        };
        let Some(event) = event else { continue };
        events.lock().unwrap().push((
            Instant::now(),
            format!("{event:?}").chars().take(40).collect(),
        ));
        match event {
            Event::Compute {
                version, members, ..
            } => {
                let fault = ledger.lock().unwrap().compute_faults.pop_front();
                match fault {
                    Some(ComputeFault::Fail) => {
                        c.computed(version, Err("input unreachable".into()))
                    }
                    Some(ComputeFault::Ignore) => {}
                    None => c.computed(version, Ok(compute(&members))),
                }
            }
            Event::Prepare { .. } if ignore_prepares => {}
            Event::Prepare { version, model } => {
                let next = assignment(&model, &me);
                let changed = current.as_ref() != Some(&next);
                if changed {
                    ledger.lock().unwrap().stop(&me);
                    current = None;
                }
                c.prepared(version, changed);
            }
            Event::Start { version, model, .. } => {
                let next = assignment(&model, &me);
                if current.as_ref() != Some(&next) {
                    ledger.lock().unwrap().start(&me, version, next.clone());
                    current = Some(next);
                }
            }
            Event::Fence => {
                ledger.lock().unwrap().frozen.remove(&me);
                ledger.lock().unwrap().stop(&me);
                current = None;
            }
            Event::Release if !stop_takes.is_zero() => {
                let (c, ledger, me) = (c.clone(), ledger.clone(), me.clone());
                tokio::spawn(async move {
                    // The container's own stop time: it still holds its partitions.
                    tokio::time::sleep(stop_takes).await;
                    ledger.lock().unwrap().stop(&me);
                    c.released();
                });
            }
            Event::Release => {
                ledger.lock().unwrap().stop(&me);
                c.released();
            }
            Event::Stopped { error } => {
                if let Some(e) = &error {
                    ledger.lock().unwrap().errors.push(format!("{me}: {e:?}"));
                }
                assert!(error.is_none(), "{me} failed: {error:?}");
                return;
            }
            Event::Leadership { .. } => {}
        }
    }
}

impl Cluster {
    pub fn new() -> Self {
        Cluster {
            job: unique("job"),
            timing: timing(),
            ledger: Arc::default(),
            procs: Vec::new(),
            proxy: None,
            clients: Vec::new(),
        }
    }

    /// Processors talk to storage through `proxy`, each through its own endpoint, so faults
    /// can target one of them.
    pub fn through(proxy: Faithful) -> Self {
        Cluster {
            proxy: Some(Arc::new(proxy)),
            ..Cluster::new()
        }
    }

    /// The proxy endpoint `id` talks through.
    pub fn client(&self, id: &str) -> Option<usize> {
        self.clients.iter().position(|c| c == id)
    }

    pub fn spawn(&mut self, id: &str) {
        let config = CoordinatorConfig {
            job: JobIdentity {
                name: self.job.clone(),
                id: "1".into(),
            },
            timing: self.timing.clone(),
        };
        let (ledger, me) = (self.ledger.clone(), id.to_owned());
        let events: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let ev = events.clone();
        let (control, control_rx) = tokio::sync::mpsc::unbounded_channel();
        let (tx, rx) = std::sync::mpsc::channel();
        if self.client(id).is_none() {
            self.clients.push(id.to_owned());
        }
        let storage = match &self.proxy {
            Some(proxy) => proxy.config(self.client(id).unwrap()),
            None => azurite().config(),
        };
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let storage = samza_azure_coordinator::storage::AzureStorage::new(&storage)
                    .expect("storage client");
                let storage = Arc::new(Recording::new(storage));
                let c = Arc::new(Coordinator::start(storage.clone(), config, &me).unwrap());
                ledger
                    .lock()
                    .unwrap()
                    .coordinators
                    .insert(me.clone(), c.clone());
                tx.send((c.clone(), storage)).unwrap();
                drive(c, me, ledger, ev, control_rx).await;
            });
        });
        let (coordinator, storage) = rx.recv().unwrap();
        self.procs.push(Processor {
            id: id.to_owned(),
            coordinator,
            storage,
            control,
            events,
            thread: Some(thread),
        });
    }

    /// Starts a processor for each id, in order.
    pub fn spawn_all(&mut self, ids: &[&str]) {
        for id in ids {
            self.spawn(id);
        }
    }

    /// The first processor (by id) that does not lead; panics if none leads.
    pub fn a_follower(&self) -> String {
        let leader = self.leader().expect("a leader");
        let mut ids: Vec<&String> = self.procs.iter().map(|p| &p.id).collect();
        ids.sort();
        ids.into_iter()
            .find(|id| **id != leader)
            .expect("a follower")
            .clone()
    }

    /// How many `Fence` events processor `id` heard after `at` (each stopped its container).
    pub fn fences_since(&self, id: &str, at: Instant) -> usize {
        self.get(id)
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, e)| *t > at && e.starts_with("Fence"))
            .count()
    }

    pub fn take(&mut self, id: &str) -> Processor {
        let i = self.procs.iter().position(|p| p.id == id).unwrap();
        self.procs.remove(i)
    }

    pub fn get(&self, id: &str) -> &Processor {
        self.procs.iter().find(|p| p.id == id).unwrap()
    }

    /// Graceful stop: the driver sees Release then Stopped.
    pub async fn stop(&mut self, id: &str) {
        let mut p = self.take(id);
        p.control.send(Control::Stop).unwrap();
        let thread = p.thread.take().unwrap();
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
    }

    /// A graceful stop whose container takes `takes` to stop.
    pub async fn slow_stop(&mut self, id: &str, takes: Duration) {
        let mut p = self.take(id);
        p.control.send(Control::SlowStop(takes)).unwrap();
        let thread = p.thread.take().unwrap();
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
    }

    /// kill -9: the runtime, its tasks and its "containers" vanish; storage is left as is.
    pub fn pause(&self, id: &str, d: Duration) {
        self.get(id).control.send(Control::Pause(d)).unwrap();
    }

    pub fn crash(&mut self, id: &str) {
        let mut p = self.take(id);
        p.control.send(Control::Crash).unwrap();
        p.thread.take().unwrap().join().unwrap();
        self.ledger.lock().unwrap().stop(id);
    }

    /// Version whose container runs at `id` (0: none).
    pub fn running(&self, id: &str) -> u64 {
        self.get(id)
            .coordinator
            .metrics()
            .running_version
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn heartbeat_failures(&self, id: &str) -> u64 {
        self.get(id)
            .coordinator
            .metrics()
            .heartbeat_failures
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn leader(&self) -> Option<String> {
        self.procs
            .iter()
            .find(|p| {
                p.coordinator
                    .metrics()
                    .is_leader
                    .load(std::sync::atomic::Ordering::Relaxed)
            })
            .map(|p| p.id.clone())
    }

    /// Waits until every processor in `ids` runs the same version, which covers every
    /// partition once, with work for each of them; returns it and how long it took.
    pub async fn settled_among(
        &self,
        ids: &[&str],
        after: u64,
        bound: Duration,
    ) -> (u64, Duration) {
        let start = Instant::now();
        loop {
            {
                let mut l = self.ledger.lock().unwrap();
                l.check();
                assert!(l.violations.is_empty(), "{:?}", l.violations);
                let versions: Vec<u64> = ids
                    .iter()
                    .map(|p| l.running.get(*p).map(|r| r.0).unwrap_or(0))
                    .collect();
                let v = versions[0];
                if v > after
                    && versions.iter().all(|x| *x == v)
                    && l.owners.len() == PARTITIONS as usize
                    // Paused containers (processing gate closed) hold but process nothing.
                    && l.running.keys().filter(|id| l.processing(id)).count() == ids.len()
                {
                    return (v, start.elapsed());
                }
            }
            assert!(
                start.elapsed() < bound,
                "not settled after {bound:?}: {:?}",
                self.ledger.lock().unwrap().running
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every processor's coordinator runs the same version above `after` (whether
    /// its container restarted for it or went on unchanged) while every partition has an owner
    /// and no violation was seen; returns it and how long it took.
    pub async fn agreed(&self, after: u64, bound: Duration) -> (u64, Duration) {
        let start = Instant::now();
        loop {
            {
                let mut l = self.ledger.lock().unwrap();
                l.check();
                assert!(l.violations.is_empty(), "{:?}", l.violations);
                let versions: Vec<u64> = self.procs.iter().map(|p| self.running(&p.id)).collect();
                let v = versions[0];
                if v > after
                    && versions.iter().all(|x| *x == v)
                    && l.owners.len() == PARTITIONS as usize
                {
                    return (v, start.elapsed());
                }
                assert!(
                    start.elapsed() < bound,
                    "no agreed version after {bound:?}: {versions:?}, {:?}",
                    l.running
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn settled(&self, after: u64, bound: Duration) -> (u64, Duration) {
        let ids: Vec<String> = self.procs.iter().map(|p| p.id.clone()).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        self.settled_among(&ids, after, bound).await
    }
}
