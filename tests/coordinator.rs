//! The whole protocol against a real Azurite, with several coordinators in one process. A
//! small driver plays the Java side: it computes a round-robin model, "stops" and "starts"
//! containers, and an ownership ledger asserts that no partition ever has two owners.
//! (The end-to-end tests with real Samza processes are in the JUnit suite.)

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{azurite, unique};
use samza_azure_coordinator::coordinator::{Coordinator, CoordinatorConfig, Event, Timing};
use samza_azure_coordinator::lease::LeaseTiming;

const PARTITIONS: u32 = 8;

fn timing() -> Timing {
    Timing {
        heartbeat: Duration::from_millis(300),
        liveness: Duration::from_millis(1500),
        poll: Duration::from_millis(100),
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
fn compute(members: &[String]) -> String {
    let mut m: BTreeMap<&str, Vec<u32>> = members.iter().map(|p| (p.as_str(), vec![])).collect();
    for p in 0..PARTITIONS {
        m.get_mut(members[(p as usize) % members.len()].as_str())
            .unwrap()
            .push(p);
    }
    serde_json::to_string(&m).unwrap()
}

fn assignment(model: &str, me: &str) -> Vec<u32> {
    let m: BTreeMap<String, Vec<u32>> = serde_json::from_str(model).unwrap();
    m.get(me).cloned().unwrap_or_default()
}

/// Who runs which partition now, and every violation seen.
#[derive(Default)]
struct Ledger {
    owners: HashMap<u32, String>,
    running: HashMap<String, (u64, Vec<u32>)>,
    violations: Vec<String>,
    starts: Vec<(String, u64)>,
}

impl Ledger {
    fn start(&mut self, me: &str, version: u64, parts: Vec<u32>) {
        for p in &parts {
            if let Some(other) = self.owners.get(p) {
                self.violations.push(format!(
                    "partition {p}: {me} started v{version} while {other} holds it"
                ));
            }
            self.owners.insert(*p, me.to_owned());
        }
        self.starts.push((me.to_owned(), version));
        self.running.insert(me.to_owned(), (version, parts));
    }

    fn stop(&mut self, me: &str) {
        if let Some((_, parts)) = self.running.remove(me) {
            for p in parts {
                if self.owners.get(&p).map(String::as_str) == Some(me) {
                    self.owners.remove(&p);
                }
            }
        }
    }
}

struct Processor {
    id: String,
    coordinator: Arc<Coordinator>,
    driver: tokio::task::JoinHandle<()>,
}

struct Cluster {
    job: String,
    ledger: Arc<Mutex<Ledger>>,
    procs: Vec<Processor>,
}

impl Cluster {
    fn new() -> Self {
        Cluster {
            job: unique("job"),
            ledger: Arc::default(),
            procs: Vec::new(),
        }
    }

    fn spawn(&mut self, id: &str) {
        let config = CoordinatorConfig {
            job_name: self.job.clone(),
            job_id: "1".into(),
            timing: timing(),
        };
        let storage = Arc::new(azurite().storage());
        let coordinator = Arc::new(Coordinator::start(storage, config, id).unwrap());
        let (c, ledger, me) = (coordinator.clone(), self.ledger.clone(), id.to_owned());
        let driver = tokio::spawn(async move {
            let mut current: Option<Vec<u32>> = None;
            loop {
                let Some(event) = c.next_event(Duration::from_secs(60)).await else {
                    continue;
                };
                match event {
                    Event::Compute {
                        version, members, ..
                    } => c.computed(version, Ok(compute(&members))),
                    Event::Prepare { version, model } => {
                        let next = assignment(&model, &me);
                        let changed = current.as_ref() != Some(&next);
                        if changed {
                            ledger.lock().unwrap().stop(&me);
                            current = None;
                        }
                        c.prepared(version, changed);
                    }
                    Event::Start { version, model } => {
                        let next = assignment(&model, &me);
                        if current.as_ref() != Some(&next) {
                            ledger.lock().unwrap().start(&me, version, next.clone());
                            current = Some(next);
                        }
                    }
                    Event::Fence => {
                        ledger.lock().unwrap().stop(&me);
                        current = None;
                    }
                    Event::Release => {
                        ledger.lock().unwrap().stop(&me);
                        c.released();
                    }
                    Event::Stopped { error } => {
                        assert!(error.is_none(), "{me} failed: {error:?}");
                        return;
                    }
                    Event::Leadership { .. } => {}
                }
            }
        });
        self.procs.push(Processor {
            id: id.to_owned(),
            coordinator,
            driver,
        });
    }

    fn take(&mut self, id: &str) -> Processor {
        let i = self.procs.iter().position(|p| p.id == id).unwrap();
        self.procs.remove(i)
    }

    /// Graceful stop: the driver sees Release then Stopped.
    async fn stop(&mut self, id: &str) {
        let p = self.take(id);
        p.coordinator.stop();
        tokio::time::timeout(Duration::from_secs(10), p.driver)
            .await
            .expect("stop within 10 s")
            .unwrap();
    }

    /// kill -9: the task and its "containers" vanish; storage is left as it was.
    fn crash(&mut self, id: &str) {
        let p = self.take(id);
        p.driver.abort();
        drop(p.coordinator);
        self.ledger.lock().unwrap().stop(id);
    }

    fn leader(&self) -> Option<String> {
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

    /// Waits until every live processor runs the same version, which covers every partition
    /// once, with work for each of them; returns it and how long it took.
    async fn settled(&self, after: u64, bound: Duration) -> (u64, Duration) {
        let start = Instant::now();
        loop {
            {
                let l = self.ledger.lock().unwrap();
                assert!(l.violations.is_empty(), "{:?}", l.violations);
                let versions: Vec<u64> = self
                    .procs
                    .iter()
                    .map(|p| l.running.get(&p.id).map(|r| r.0).unwrap_or(0))
                    .collect();
                let v = versions[0];
                if v > after
                    && versions.iter().all(|x| *x == v)
                    && l.owners.len() == PARTITIONS as usize
                    && l.running.len() == self.procs.len()
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_leave_crash_and_leader_failover_keep_one_owner_per_partition() {
    let mut c = Cluster::new();
    for id in ["p1", "p2", "p3"] {
        c.spawn(id);
    }
    let (v1, t) = c.settled(0, Duration::from_secs(20)).await;
    eprintln!("3 processors running v{v1} after {t:?}");

    c.spawn("p4");
    let (v2, t) = c.settled(v1, Duration::from_secs(20)).await;
    eprintln!("join: v{v2} after {t:?}");

    let leader = c.leader().expect("a leader");
    let follower = ["p1", "p2", "p3", "p4"]
        .into_iter()
        .find(|p| *p != leader)
        .unwrap();
    c.stop(follower).await;
    let (v3, t) = c.settled(v2, Duration::from_secs(20)).await;
    eprintln!("graceful stop of {follower}: v{v3} after {t:?}");

    let leader = c.leader().expect("a leader");
    let follower = c.procs.iter().find(|p| p.id != leader).unwrap().id.clone();
    c.crash(&follower);
    let (v4, t) = c.settled(v3, Duration::from_secs(20)).await;
    eprintln!("crash of follower {follower}: v{v4} after {t:?}");

    let leader = c.leader().expect("a leader");
    c.crash(&leader);
    let (v5, t) = c.settled(v4, Duration::from_secs(20)).await;
    let new_leader = c.leader().expect("a new leader");
    assert_ne!(new_leader, leader);
    eprintln!("crash of leader {leader}: v{v5} after {t:?}, {new_leader} leads");

    assert!(c.ledger.lock().unwrap().violations.is_empty());
    for id in c.procs.iter().map(|p| p.id.clone()).collect::<Vec<_>>() {
        c.stop(&id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_fails_with_the_key_named() {
    let storage = Arc::new(azurite().storage());
    let config = CoordinatorConfig {
        job_name: "j".into(),
        job_id: "1".into(),
        timing: timing(),
    };
    let e = Coordinator::start(storage, config, "a/b").err().unwrap();
    assert!(e.message().contains("processor id"), "{e}");
}
