//! The barrier of a published version: complete it once everyone concerned acknowledged,
//! remind those it waits for, or abandon it and compute again (docs/protocol.md, "Leader
//! side"). The rules are `decisions::barrier_step`.

use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::decisions::{self, Abandon, BarrierStep};
use super::leader::LeaderPhase;
use super::{Engine, Storage};
use crate::coordinator::jobmodel::{MemberRef, Phase};
use crate::error::Result;
use crate::membership::Snapshot;

impl<S: Storage> Engine<'_, S> {
    /// The barrier of the version in the document, after a scan: complete it, remind the
    /// processors it waits for, or abandon it and compute again (see `decisions::barrier_step`).
    pub(super) async fn barrier_tick(
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
}
