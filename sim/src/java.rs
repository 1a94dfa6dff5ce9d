//! A model of the Java side of one processor: `AzureJobCoordinator` turning the coordinator's
//! events into container starts and stops, a grouper computing JobModels, and containers that
//! take a while to stop and keep processing meanwhile.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use samza_azure_coordinator::coordinator::{Coordinator, Event};
use tokio::time::Instant;

use crate::checker::{Checker, Container, Gate};
use crate::container::{self, Checkpointing, Store};
use crate::freeze::Freeze;
use crate::net::{Client, Net};

/// A balanced, sticky grouper: each task stays with its previous processor while that one is
/// still a member and under its share; the rest go to the members with the fewest tasks.
/// The model is `{"processor": [task, ...]}`.
pub fn compute(tasks: u32, members: &[String], previous: &str) -> String {
    let mut members: Vec<&str> = members.iter().map(String::as_str).collect();
    members.sort_unstable();
    let mut model: BTreeMap<&str, Vec<u32>> = members.iter().map(|m| (*m, Vec::new())).collect();
    if members.is_empty() {
        return "{}".to_owned();
    }
    let share = (tasks as usize).div_ceil(members.len());
    let before: BTreeMap<String, Vec<u32>> = serde_json::from_str(previous).unwrap_or_default();
    let mut placed = vec![false; tasks as usize];
    for (p, ts) in &before {
        if let Some(list) = model.get_mut(p.as_str()) {
            for t in ts.iter().copied().filter(|t| *t < tasks) {
                if list.len() < share && !placed[t as usize] {
                    list.push(t);
                    placed[t as usize] = true;
                }
            }
        }
    }
    for t in 0..tasks {
        if !placed[t as usize] {
            let least = members
                .iter()
                .min_by_key(|m| (model[*m].len(), **m))
                .copied()
                .unwrap_or_default();
            if let Some(list) = model.get_mut(least) {
                list.push(t);
            }
        }
    }
    for list in model.values_mut() {
        list.sort_unstable();
    }
    serde_json::to_string(&model).unwrap_or_default()
}

pub fn assignment(model: &str, me: &str) -> Vec<u32> {
    let m: BTreeMap<String, Vec<u32>> = serde_json::from_str(model).unwrap_or_default();
    m.get(me).cloned().unwrap_or_default()
}

/// How this processor's Java side misbehaves, switched by the schedule.
#[derive(Default, Debug)]
pub struct JavaFaults {
    /// The event thread is stuck until then (a slow listener, a long GC of that thread): no
    /// event is handled, no compute answered. The processing gate still works.
    pub stuck_until: Option<Instant>,
}

/// What the model needs to play one processor's Java side.
pub struct JavaSide {
    pub id: String,
    pub coordinator: Arc<Coordinator>,
    pub freeze: Arc<Freeze>,
    pub checker: Arc<Checker>,
    pub faults: Arc<Mutex<JavaFaults>>,
    pub tasks: u32,
    /// How long a container takes to stop (Samza: up to `task.shutdown.ms`).
    pub stop_time: Duration,
    /// How long computing a JobModel takes.
    pub compute_time: Duration,
    pub ignores_deadline: bool,
    /// Acknowledges a Prepare before the container stopped (a reintroduced bug).
    pub acks_before_stop: bool,
    pub clock: Instant,
    /// Storage, for the containers' checkpoint stores, and this processor start's client number.
    pub net: Arc<Net>,
    pub who: usize,
    /// Samza's `task.commit.ms`.
    pub commit_every: Duration,
    /// Where a processor whose container failed asks the runner to start it again, once its
    /// coordinator has stopped: (processor id, client number).
    pub rejoins: Arc<Mutex<Vec<(String, usize)>>>,
    /// Set once the coordinator has stopped.
    pub ended: Arc<AtomicBool>,
}

/// The container running now, as far as its checkpoints go.
struct Running {
    version: u64,
    store: Arc<Store>,
    stopping: Arc<AtomicBool>,
}

/// `ContainerStops`: the container (if any) is being stopped, so its checkpoint manager gives
/// up what it waits for.
fn stop(running: &mut Option<Running>, reason: &str) {
    if let Some(r) = running.take() {
        r.stopping.store(true, Ordering::Release);
        r.store.abandon(reason);
    }
}

impl JavaSide {
    fn now(&self) -> Duration {
        self.clock.elapsed()
    }

    async fn unstuck(&self) {
        loop {
            let until = self.faults.lock().unwrap().stuck_until;
            match until {
                Some(u) if Instant::now() < u => tokio::time::sleep_until(u).await,
                _ => return,
            }
        }
    }

    /// Handles events until the coordinator stops. Runs under the processor's freeze.
    pub async fn drive(self: Arc<Self>) {
        let c = &self.coordinator;
        let me = self.id.as_str();
        let mut current: Option<Vec<u32>> = None;
        let mut running: Option<Running> = None;
        let (failures, mut failed) = tokio::sync::mpsc::unbounded_channel();
        // A container failed: Samza ends the processor, and the runner starts it again.
        let mut rejoin = false;
        loop {
            let event = tokio::select! {
                // tokio picks among ready branches at random otherwise, unseeded.
                biased;
                e = c.next_event(Duration::from_secs(3600)) => e,
                Some((version, why)) = failed.recv() => {
                    if running.as_ref().is_some_and(|r| r.version == version) {
                        stop(&mut running, "the container failed");
                        self.checker.stop(self.now(), me, "failed");
                        current = None;
                        rejoin = true;
                        tracing::info!(processor = me, "{why}; the processor stops and rejoins");
                        c.stop();
                    }
                    continue;
                }
            };
            let Some(event) = event else { continue };
            self.unstuck().await;
            match event {
                Event::Leadership { leader } => {
                    self.checker
                        .trace(self.now(), format!("{me} leader={leader}"));
                }
                Event::Compute {
                    version,
                    members,
                    previous,
                } => {
                    // On a thread of its own, as Java does (protocol.md, "Compute").
                    let side = self.clone();
                    samza_azure_coordinator::tasks::spawn(async move {
                        tokio::time::sleep(side.compute_time).await;
                        side.unstuck().await;
                        let model = compute(side.tasks, &members, &previous);
                        side.coordinator.computed(version, Ok(model));
                    });
                }
                Event::Prepare { version, model } => {
                    let next = assignment(&model, me);
                    let changed = current.as_ref().is_some_and(|c| *c != next);
                    if changed {
                        stop(&mut running, "its work changed");
                    }
                    if changed && self.acks_before_stop {
                        c.prepared(version, true);
                        tokio::time::sleep(self.stop_time).await;
                        self.checker.stop(self.now(), me, "expired");
                        current = None;
                        continue;
                    }
                    if changed {
                        // StreamProcessor stops the container synchronously; it processes
                        // until it has stopped.
                        tokio::time::sleep(self.stop_time).await;
                        self.checker.stop(self.now(), me, "expired");
                        current = None;
                    }
                    c.prepared(version, changed || current.is_none());
                }
                Event::Start {
                    version,
                    model,
                    epoch,
                } => {
                    let next = assignment(&model, me);
                    if current.as_ref() != Some(&next) || !self.checker.running(me) {
                        stop(&mut running, "a new container starts");
                        let gate = Gate {
                            epoch,
                            coordinator: c.clone(),
                            freeze: self.freeze.clone(),
                            ignores_deadline: self.ignores_deadline,
                        };
                        let container = Container {
                            version,
                            tasks: next.clone(),
                            gate: gate.clone(),
                        };
                        self.checker.start(self.now(), me, container, &model);
                        running = Some(self.checkpoint(version, &next, gate, &failures));
                        current = Some(next);
                    }
                }
                Event::Fence => {
                    stop(&mut running, "the processor fenced itself");
                    self.checker.stop(self.now(), me, "fenced");
                    current = None;
                }
                Event::Release => {
                    stop(&mut running, "the processor is stopping");
                    if current.is_some() {
                        tokio::time::sleep(self.stop_time).await;
                    }
                    self.checker.stop(self.now(), me, "released");
                    current = None;
                    c.released();
                }
                Event::Stopped { error } => {
                    stop(&mut running, "the processor stopped");
                    self.checker.stop(self.now(), me, "coordinator stopped");
                    self.ended.store(true, Ordering::Release);
                    if rejoin {
                        self.rejoins.lock().unwrap().push((me.to_owned(), self.who));
                    }
                    if let Some(e) = error {
                        self.checker
                            .violation(self.now(), format!("{me}'s coordinator failed: {e}"));
                    }
                    return;
                }
            }
        }
    }
}

impl JavaSide {
    /// Opens the checkpoint store of a container of `version` and starts its checkpointing.
    fn checkpoint(
        &self,
        version: u64,
        tasks: &[u32],
        gate: Gate,
        failures: &tokio::sync::mpsc::UnboundedSender<(u64, String)>,
    ) -> Running {
        let client = Client {
            net: self.net.clone(),
            who: self.who,
            generation: Some(version),
        };
        let store = container::open(client, &self.id);
        let stopping = Arc::new(AtomicBool::new(false));
        let run = Checkpointing {
            id: self.id.clone(),
            version,
            tasks: tasks.to_vec(),
            store: store.clone(),
            gate,
            commit_every: self.commit_every,
            checker: self.checker.clone(),
            clock: self.clock,
            stopping: stopping.clone(),
            failed: failures.clone(),
        };
        // Under the processor's freeze, as the drive loop that spawns it.
        samza_azure_coordinator::tasks::spawn(run.run());
        Running {
            version,
            store,
            stopping,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("p{i:02}")).collect()
    }

    #[test]
    fn the_grouper_balances_and_keeps_tasks_where_it_can() {
        let first = compute(10, &ids(3), "");
        let counts: Vec<usize> = ids(3).iter().map(|p| assignment(&first, p).len()).collect();
        assert_eq!(counts.iter().sum::<usize>(), 10);
        assert!(counts.iter().all(|c| (3..=4).contains(c)), "{first}");
        // One member leaves: the others keep what they had and share its tasks.
        let second = compute(10, &ids(2), &first);
        for p in &ids(2) {
            let (a, b) = (assignment(&first, p), assignment(&second, p));
            assert!(a.iter().all(|t| b.contains(t)), "{p}: {a:?} then {b:?}");
        }
        assert_eq!(assignment(&second, "p00").len(), 5);
    }
}
