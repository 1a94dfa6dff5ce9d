//! The member side of the protocol, for every processor including the leader: heartbeats,
//! the self-fence (pause, resume, or stop for good), reading the document and acting on it
//! (docs/protocol.md, "Per-processor loop" steps 1 to 3 and "Member side").

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::leader::LeaderPhase;
use super::{create_if_absent, is_fatal, new_incarnation, Engine, Storage};
use crate::coordinator::handle::Event;
use crate::coordinator::jobmodel::{ModelDocument, Phase};
use crate::coordinator::metrics::log_pause;
use crate::error::{ErrorKind, Result};
use crate::membership::{Heartbeat, MemberState};

impl<S: Storage> Engine<'_, S> {
    /// Faster polling while a version is in flight (ours to ack, or ours to start).
    fn rebalancing(&self) -> bool {
        self.preparing.is_some()
            || (self.doc.phase() == Phase::Pending && self.acked >= self.doc.version())
    }

    pub(super) fn poll_interval(&self) -> Duration {
        let members = self.doc.header.members.len();
        crate::random::shortened(if self.rebalancing() {
            self.timing.rebalance_poll_for(members)
        } else {
            self.timing.poll
        })
    }

    pub(super) async fn heartbeat(&mut self) -> Result<()> {
        // Checked again right before sending: a success must never paper over a silence
        // longer than the bound, whatever order the runtime resumes things in after a pause.
        self.check_fence();
        self.membership.set_state(MemberState {
            acked: self.acked,
            acked_content: Some(self.acked_content.clone()),
            running: self.running,
            incarnation: self.membership.state().incarnation.clone(),
        });
        let sent = Instant::now();
        let outcome = self
            .membership
            .heartbeat_watching(self.probe.as_ref())
            .await;
        match outcome {
            Ok(outcome) => {
                let etag = match outcome {
                    Heartbeat::Quiet(e) => e,
                    Heartbeat::Notified(e) => {
                        // The leader published something: read the document now, or in a
                        // large job within a spread that keeps the blob's load paced.
                        let spread = self
                            .timing
                            .notified_read_spread(self.doc.header.members.len());
                        // A read already due sooner stays: reminders during a barrier
                        // must not push it back again and again. While Java prepares, the
                        // reminder is about that version: the paced polls, and the read after
                        // a slow answer, see anything newer.
                        if self.preparing.is_none() {
                            let read = Instant::now() + crate::random::up_to(spread);
                            self.next_poll = self.next_poll.min(read);
                        }
                        e
                    }
                };
                self.probe = Some(etag);
                self.membership_answered(sent);
                // An answer that came past the deadline may have come after the leader judged
                // this processor dead: then it is a pause like any other.
                self.check_fence();
                if self.metrics.paused.load(Ordering::Acquire) {
                    self.resume_sent = Some(sent);
                    self.next_poll = Instant::now();
                } else {
                    self.metrics.heartbeat_accepted(sent);
                }
                self.next_heartbeat = sent + self.timing.heartbeat;
            }
            Err(e) if is_fatal(&e) => return Err(e.context("heartbeat")),
            Err(e) => {
                self.metrics
                    .heartbeat_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "heartbeat failed");
                self.reachable_since = None;
                // Retry sooner than the interval: the self-fence bound is running.
                self.next_heartbeat = Instant::now() + self.timing.heartbeat / 4;
                if e.kind() == ErrorKind::NotFound {
                    // The table was deleted under us: recreate it on the next attempt.
                    let _ = self.membership.register().await;
                }
            }
        }
        Ok(())
    }

    /// The document was reset (recreated, restored) or cannot be read: nothing agreed holds
    /// any more. Stop the container, as a fence does, and wait for the leader to publish a
    /// version above every one known; the leader does so at its next scan.
    fn on_reset(&mut self, doc: Arc<ModelDocument>, reason: String) {
        tracing::error!(
            blob = %self.blob,
            version = self.doc.version(),
            "the job model document was reset: {reason}; stopping the container until a new version is agreed"
        );
        self.version_floor = self.version_floor.max(self.doc.version());
        self.fence_now("the job model document was reset");
        self.preparing = None;
        self.preparing_since = None;
        if let Some(l) = self.leader.as_mut() {
            l.phase = LeaderPhase::Idle;
            l.next_scan = Instant::now();
        }
        self.metrics
            .seen_version
            .store(doc.version(), Ordering::Relaxed);
        self.doc = doc;
    }

    /// Java has owed an answer to a Prepare since `since` for longer than a barrier lasts.
    pub(super) fn unanswered(&self, since: Instant) -> bool {
        since.elapsed() >= self.timing.barrier_timeout
    }

    /// Pauses processing if the self-fence deadline passed (the timer may have noted it first).
    pub(super) fn check_fence(&mut self) {
        if let Some(version) = self.metrics.pause_due() {
            log_pause(version);
        }
    }

    /// Stops the container for good: the job moved on without it (or its state was reset).
    /// A new incarnation tells the leader this processor lost its work, and no version decided
    /// before may start here.
    fn fence_now(&mut self, reason: &str) {
        self.metrics.paused.store(false, Ordering::Release);
        self.resume_sent = None;
        if self.running != 0 {
            tracing::warn!(version = self.running, "{reason}; stopping the container");
            self.metrics.fences.fetch_add(1, Ordering::AcqRel);
            self.metrics.running_version.store(0, Ordering::Release);
            self.emit(Event::Fence);
        }
        self.running = 0;
        self.started = self.started.max(self.doc.version());
        let mut state = self.membership.state().clone();
        state.incarnation = new_incarnation();
        state.running = 0;
        self.membership.set_state(state);
    }

    /// Paused processing resumes, or the container stops for good, once a heartbeat got
    /// through and the document was read after it: resume only if the version this container
    /// runs is still the agreed one. A version being agreed without this processor means it
    /// was judged dead meanwhile; the leader never completes one while a live row outside
    /// its `must_ack` reports a running container, so a resumed container cannot meet one.
    pub(super) fn decide_pause(&mut self) {
        let (Some(sent), Some(read)) = (self.resume_sent, self.last_read) else {
            return;
        };
        if read < sent || !self.metrics.paused.load(Ordering::Acquire) {
            return;
        }
        let v = self.doc.version();
        let mine = self.doc.must_ack(&self.me);
        match self.doc.phase() {
            Phase::Done if v == self.running => {
                self.metrics.paused.store(false, Ordering::Release);
                self.resume_sent = None;
                self.metrics.heartbeat_accepted(sent);
                tracing::info!(
                    version = v,
                    "storage answered again and nothing moved; processing resumes"
                );
            }
            // About to start the version it acknowledged, or owing an acknowledgement: the
            // member side carries on; still paused.
            Phase::Done if v == self.acked => {}
            Phase::Pending | Phase::Abandoned | Phase::None if mine || v <= self.running => {}
            _ => self.fence_now(&format!(
                "the job moved on to version {v} while this processor could not reach storage"
            )),
        }
    }

    /// Reads the document if it changed (a HEAD with If-None-Match costs almost nothing).
    pub(super) async fn poll_document(&mut self) -> Result<()> {
        let sent = Instant::now();
        let read = match &self.etag {
            Some(etag) => self.store.read_document_if_changed(&self.blob, etag).await,
            None => self.store.read_document(&self.blob).await.map(Some),
        };
        if read.is_ok() {
            self.last_read = Some(sent);
        }
        match read {
            Ok(None) => Ok(()),
            Ok(Some(d)) => {
                self.etag = Some(d.etag);
                match ModelDocument::decode(&d.body) {
                    Ok(doc) => self.on_document(Arc::new(doc)),
                    // Bad stored state must not end every processor, again on each restart:
                    // it is "no agreed version", and the leader writes a good one over it.
                    Err(e) => self.on_reset(
                        Arc::new(ModelDocument::initial()),
                        format!("it cannot be read ({e})"),
                    ),
                }
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // Deleted under us (a reset): create it again, so a leader can hold its lease
                // and publish; reading it then shows the version went back.
                tracing::warn!(blob = %self.blob, "the job model document is gone; creating it again");
                self.etag = None;
                let recreated = async {
                    self.store.ensure_container(self.blob.container()).await?;
                    create_if_absent(self.store, &self.blob).await
                };
                if let Err(e) = recreated.await {
                    tracing::warn!(error = %e, "creating the job model document failed");
                }
                Ok(())
            }
            Err(e) if is_fatal(&e) => Err(e.context("reading the job model")),
            Err(e) => {
                tracing::warn!(error = %e, "reading the job model failed");
                Ok(())
            }
        }
    }

    /// Member side of the protocol, for every processor including the leader.
    pub(super) fn on_document(&mut self, doc: Arc<ModelDocument>) {
        let v = doc.version();
        if v < self.doc.version() {
            let reason = format!("its version went back from {} to {v}", self.doc.version());
            self.on_reset(doc, reason);
            return;
        }
        if v > self.doc.version() || doc.phase() != self.doc.phase() {
            tracing::debug!(version = v, phase = ?doc.phase(), "job model document changed");
        }
        self.metrics.seen_version.store(v, Ordering::Relaxed);
        self.doc = doc;
        if self.leaving.is_some() {
            // Stopping: no version may start here any more.
            return;
        }
        // Copied only when an event carries it: documents can be large.
        let model = || -> Arc<str> { Arc::from(self.doc.model.as_str()) };
        match self.doc.phase() {
            Phase::Pending
                if v > self.acked && self.preparing != Some(v) && self.doc.must_ack(&self.me) =>
            {
                tracing::info!(version = v, "new job model; preparing");
                self.preparing = Some(v);
                self.preparing_content = self.doc.header.content.clone();
                self.preparing_since.get_or_insert_with(Instant::now);
                self.next_poll = Instant::now();
                self.emit(Event::Prepare {
                    version: v,
                    model: model(),
                });
            }
            // Started after acknowledging, or, owing no acknowledgement, with nothing running
            // (the job's first version, or a processor that joined after it was computed).
            Phase::Done
                if self.started < v
                    && self.preparing.is_none()
                    && (v == self.acked || (self.running == 0 && !self.doc.must_ack(&self.me))) =>
            {
                // The epoch is read first: a fence after this point must leave the new
                // container unable to process.
                let epoch = self.metrics.fences.load(Ordering::Acquire);
                self.metrics.running_version.store(v, Ordering::Release);
                tracing::info!(
                    version = v,
                    member = self.doc.is_member(&self.me),
                    "job model agreed; starting"
                );
                self.started = v;
                self.running = v;
                // The row reports the new version at the next heartbeat.
                self.emit(Event::Start {
                    version: v,
                    model: model(),
                    epoch,
                });
            }
            _ => {}
        }
    }
}
