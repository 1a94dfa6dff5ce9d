//! Leaving the group: hand the lease on, have Java stop the container, and delete the row
//! only once it stopped (docs/protocol.md, "Stop").

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Engine, Storage};
use crate::coordinator::handle::{Command, Event};

/// How long a leaving processor waits for its container to stop. Samza bounds a container's
/// stop by `task.shutdown.ms` (30 s by default); a container still running after this is
/// stuck, and the row is then left to go stale rather than deleted (see `shutdown`).
pub(super) const RELEASE_TIMEOUT: Duration = Duration::from_secs(120);

impl<S: Storage> Engine<'_, S> {
    /// A graceful stop begins: hand leadership on at once and have Java stop the container.
    /// The main loop goes on heartbeating until Java reports the container stopped.
    pub(super) async fn begin_leaving(&mut self) {
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
    pub(super) async fn shutdown(
        &mut self,
        commands: &mut mpsc::UnboundedReceiver<Command>,
        left: bool,
    ) {
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
