//! The leader side: taking and losing leadership, the leader's scan of the membership and
//! its state machine (idle, debounce, computing), computing and publishing versions
//! (docs/protocol.md, "Leader side"). What to do is decided in `decisions`; the barrier of a
//! published version is in `barrier`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::decisions::{self, IdleStep};
use super::{is_fatal, Engine, Storage};
use crate::coordinator::handle::Event;
use crate::coordinator::jobmodel::{MemberRef, ModelDocument, Phase};
use crate::error::Result;
use crate::lease::LeaseState;
use crate::storage::{Guard, LeaseId};

/// Where the leader is in its state machine (docs/protocol.md, "Leader side").
pub(super) enum LeaderPhase {
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

/// What a processor knows and plans while it leads.
pub(super) struct Leader {
    pub(super) lease: LeaseId,
    /// Local bound on the lease; past it this processor must not act as leader even before
    /// the lease task notices (it may have been paused, e.g. by SIGSTOP).
    valid_until: Instant,
    pub(super) phase: LeaderPhase,
    pub(super) next_scan: Instant,
    /// When the current rebalance was first noticed.
    rebalance_started: Option<Instant>,
    compute_failures: u32,
    /// A recompute was asked for (see [`Coordinator::request_rebalance`]).
    pub(super) recompute: bool,
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
    pub(super) next_renotify: Instant,
}

/// How often a leader collects the notification rows of processors that are gone.
const PROBE_SWEEP: Duration = Duration::from_secs(300);

impl<S: Storage> Engine<'_, S> {
    pub(super) async fn on_lease(&mut self, state: LeaseState) -> Result<()> {
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
                tracing::info!(processor = %self.me, version = self.doc.version(), "leading");
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

    pub(super) async fn leader_tick(&mut self) -> Result<()> {
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
                tracing::debug!(live = live.len(), may_judge, ?change, "leader scan");
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
            self.timing.busy_scan_for(self.doc.header.members.len())
        } else {
            self.timing.scan
        };
        if let Some(l) = self.leader.as_mut() {
            l.next_scan = Instant::now() + interval;
        }
    }

    pub(super) fn begin_compute(&mut self, members: Vec<MemberRef>, must_ack: Vec<String>) {
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

    pub(super) async fn on_computed(
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
    pub(super) async fn publish(&mut self, doc: ModelDocument, lease: LeaseId) -> Result<bool> {
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
            .replace_document(&self.blob, body, Guard::leader(etag, lease))
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
    pub(super) fn rebalance_done(&mut self) {
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
}

fn ids(members: &[MemberRef]) -> Vec<&str> {
    members.iter().map(|m| m.id.as_str()).collect()
}
