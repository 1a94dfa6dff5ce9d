//! A Samza container's checkpoints in the simulation: it claims its tasks for the JobModel
//! version it started with, resumes each task from its checkpoint, processes while its gate is
//! open and commits every task's offset on a timer, all of them at once, through the real
//! checkpoint store and its group commit (`src/checkpoint/`), as `AzureCheckpointManager`
//! drives it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use samza_azure_coordinator::checkpoint::CheckpointStore;
use samza_azure_coordinator::error::{Error, ErrorKind};
use samza_azure_coordinator::storage::Entity;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

use crate::checker::{Checker, Gate};
use crate::memstore::Endpoint;
use crate::net::Client;

/// The job's checkpoint table.
pub const TABLE: &str = "simcheckpoints";

/// The checkpoint version the containers write (Samza's `CheckpointV2`).
const VERSION: u16 = 2;

const PREFIX: &str = "sim-offset:";

pub fn task_name(task: u32) -> String {
    format!("Partition {task}")
}

fn text(offset: u64) -> String {
    format!("{PREFIX}{offset}")
}

/// The offset a checkpoint's text names, if it is one of ours.
pub fn offset_of(text: &str) -> Option<u64> {
    text.strip_prefix(PREFIX)?.parse().ok()
}

/// A write to a task's owner row (the layout of `checkpoint/rows.rs`): the task, and who
/// claims it if it is a claim (a claim names the owner; a checkpoint write never does).
pub fn owner_row_write(entity: &Entity) -> Option<(&str, Option<&str>)> {
    let task = entity.row_key.strip_suffix("|owner")?;
    Some((task, entity.get_str("processor")))
}

/// The offset of a task's checkpoints as the store reads them.
pub fn offset_in(read: &BTreeMap<u16, String>) -> Option<u64> {
    read.get(&VERSION).and_then(|t| offset_of(t))
}

pub type Store = CheckpointStore<Endpoint<Client>>;

/// A container's checkpoint store, opened for the JobModel version it started with.
pub fn open(client: Client, processor: &str) -> Arc<Store> {
    Arc::new(CheckpointStore::new(
        Arc::new(Endpoint(client)),
        TABLE,
        processor,
    ))
}

/// One container's checkpointing, from its start to its stop or failure.
pub struct Checkpointing {
    pub id: String,
    pub version: u64,
    pub tasks: Vec<u32>,
    pub store: Arc<Store>,
    pub gate: Gate,
    /// Samza's `task.commit.ms`: the first commit comes that long after the start, then one
    /// every that long, as Samza's run loop does (no jitter).
    pub commit_every: Duration,
    pub checker: Arc<Checker>,
    pub clock: Instant,
    /// Set when the Java side began stopping the container (before it abandons the store).
    pub stopping: Arc<AtomicBool>,
    /// Where a failed container says so: (its version, why). Samza then ends the processor.
    pub failed: UnboundedSender<(u64, String)>,
}

impl Checkpointing {
    /// Runs until the container stops or fails. Runs under the processor's freeze.
    pub async fn run(self) {
        let names: Vec<String> = self.tasks.iter().map(|t| task_name(*t)).collect();
        if let Err(e) = self.store.create_resources().await {
            return self.ended("creating the table", e);
        }
        if let Err(e) = self.store.claim_all(&names, self.version).await {
            return self.ended("claiming its tasks", e);
        }
        let mut offsets = Vec::with_capacity(names.len());
        for name in &names {
            match self.store.read(name).await {
                Ok(read) => offsets.push(offset_in(&read).unwrap_or(0)),
                Err(e) => return self.ended("reading its checkpoints", e),
            }
        }
        let mut next = Instant::now();
        loop {
            // A commit that took longer than the interval (or a freeze) is followed by the next
            // at once, not by a burst that catches up.
            next = (next + self.commit_every).max(Instant::now());
            tokio::time::sleep_until(next).await;
            if self.stopping.load(Ordering::Acquire) {
                return;
            }
            if self.gate.may_process() {
                // One message per task since the last commit.
                offsets.iter_mut().for_each(|o| *o += 1);
            }
            // Samza commits a container's tasks on a pool of threads: concurrently.
            let store = &self.store;
            let commits = names.iter().zip(&offsets).map(|(name, offset)| {
                let text = text(*offset);
                async move { store.write(name, VERSION, &text).await }
            });
            let results = futures::future::join_all(commits).await;
            for ((task, offset), result) in self.tasks.iter().zip(&offsets).zip(results) {
                match result {
                    Ok(()) => self.checker.acked(*task, *offset),
                    Err(e) => return self.ended("committing", e),
                }
            }
        }
    }

    /// The container's checkpoint manager failed with `e` while `doing`: quietly when the
    /// container was being stopped (Samza counts that as a stop); a fenced claim or commit
    /// fails the container, as it should; anything else (an outage that got through) is a
    /// violation. Either failure ends the processor, which the runner starts again.
    fn ended(&self, doing: &str, e: Error) {
        if self.stopping.load(Ordering::Acquire) {
            return;
        }
        let at = self.clock.elapsed();
        let what = format!(
            "{}'s container v{} failed {doing}: {e}",
            self.id, self.version
        );
        if e.kind() == ErrorKind::Fenced {
            self.checker.trace(at, what.clone());
        } else {
            self.checker.violation(at, what.clone());
        }
        let _ = self.failed.send((self.version, what));
    }
}
