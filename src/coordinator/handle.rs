//! The public handle on one processor's coordinator: start it, take its [`Event`]s, answer
//! with commands. The protocol itself runs in `engine`, on a task of its own.
//!
//! The task never calls into Java. It emits [`Event`]s that the Java side takes one at a time
//! on its own thread, and Java answers with [`Command`]s (a computed model, an acknowledgement
//! that containers stopped). So a slow listener delays the protocol but never blocks a runtime
//! worker, and no Java lock is ever held by native code.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;

use super::config::CoordinatorConfig;
use super::engine;
use super::metrics::{clock_base, Metrics};
use crate::error::{Error, Result};
use crate::storage::{DocumentStore, LeaseStore, TableStore};

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

pub(super) enum Command {
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
        let task = crate::tasks::spawn(async move {
            let outcome =
                engine::run(store, names, config.timing, me, command_rx, &event_tx, m).await;
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
