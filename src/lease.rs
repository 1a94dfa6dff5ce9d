//! Leadership by blob lease: a background task that acquires a lease, renews it well inside
//! its duration, and publishes the current state on a `watch` channel.
//!
//! Safety rests on storage, not on this task: every leader write carries the lease id, so a
//! leader that has lost the lease cannot write (see `storage::DocumentStore::replace_document`).
//! This task's job is to make a leader *stop acting* promptly: it steps down as soon as storage
//! rejects a renew, and also when its own monotonic clock says the lease may have lapsed
//! without a successful renew (storage unreachable). That bound is measured from the moment
//! each acquire/renew request was *sent*, so it never outlasts storage's view of the lease.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::{Error, ErrorKind, Result};
use crate::storage::{BlobRef, LeaseDuration, LeaseId, LeaseStore};

/// Timing of the lease loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseTiming {
    /// Lease duration requested from storage: 15-60 s.
    pub duration: Duration,
    /// How often the leader renews; at most a third of `duration`.
    pub renew_interval: Duration,
    /// How often a follower tries to acquire on its own (it can also be asked to at once).
    pub acquire_interval: Duration,
    /// A leader steps down this long before its local bound on the lease runs out.
    pub safety_margin: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        LeaseTiming {
            duration: Duration::from_secs(15),
            renew_interval: Duration::from_secs(5),
            acquire_interval: Duration::from_secs(15),
            safety_margin: Duration::from_secs(1),
        }
    }
}

impl LeaseTiming {
    /// Checks the bounds; `keys` names the config keys for (duration, renew) in errors.
    pub fn validate(&self, keys: (&str, &str)) -> Result<()> {
        let secs = self.duration.as_secs();
        if !(15..=60).contains(&secs) || self.duration.subsec_nanos() != 0 {
            return Err(Error::config(
                keys.0,
                format!(
                    "expected whole seconds from 15000 to 60000 ms, found {} ms",
                    self.duration.as_millis()
                ),
            ));
        }
        if self.renew_interval.is_zero() || self.renew_interval * 3 > self.duration {
            return Err(Error::config(
                keys.1,
                format!(
                    "expected at most a third of the lease duration ({} ms), found {} ms",
                    self.duration.as_millis() / 3,
                    self.renew_interval.as_millis()
                ),
            ));
        }
        if self.safety_margin * 2 >= self.duration - self.renew_interval {
            return Err(Error::config(
                keys.0,
                "lease duration leaves no room for the safety margin",
            ));
        }
        Ok(())
    }
}

/// What this party currently is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseState {
    /// Not (or no longer) holding the lease.
    Follower,
    /// Holding the lease; `lease` fences every write made as leader. `term` counts the times
    /// this keeper became leader. `valid_until` is the local bound on the lease (measured
    /// from when the last accepted acquire/renew was sent, less the safety margin); it is
    /// republished on every renew, so a holder that was paused can tell it must not act.
    Leader {
        lease: LeaseId,
        term: u64,
        valid_until: Instant,
    },
    /// Stopped; the lease was released if it was held.
    Stopped,
}

impl LeaseState {
    pub fn is_leader(&self) -> bool {
        matches!(self, LeaseState::Leader { .. })
    }

    pub fn lease(&self) -> Option<LeaseId> {
        match self {
            LeaseState::Leader { lease, .. } => Some(*lease),
            _ => None,
        }
    }
}

enum Command {
    /// Try to acquire now (a follower that saw the leader go away).
    AcquireNow,
    /// Break whoever holds the lease, then try to acquire (the holder is known dead).
    TakeOver,
    /// Give up the lease if held and stop.
    Stop,
}

/// Handle to a running lease loop.
pub struct LeaseKeeper {
    state: watch::Receiver<LeaseState>,
    commands: mpsc::UnboundedSender<Command>,
    task: Option<JoinHandle<()>>,
}

impl LeaseKeeper {
    /// Starts the loop on the current tokio runtime. The lease blob must exist.
    pub fn spawn(store: Arc<dyn LeaseStore>, blob: BlobRef, timing: LeaseTiming) -> Result<Self> {
        timing.validate(("lease duration", "lease renew interval"))?;
        let (state_tx, state) = watch::channel(LeaseState::Follower);
        let (commands, rx) = mpsc::unbounded_channel();
        let task = crate::tasks::spawn(run(store, blob, timing, state_tx, rx));
        Ok(LeaseKeeper {
            state,
            commands,
            task: Some(task),
        })
    }

    pub fn state(&self) -> LeaseState {
        self.state.borrow().clone()
    }

    /// A receiver that sees every change of state.
    pub fn subscribe(&self) -> watch::Receiver<LeaseState> {
        self.state.clone()
    }

    pub fn acquire_now(&self) {
        let _ = self.commands.send(Command::AcquireNow);
    }

    /// Breaks the current holder's lease and competes for it. Only for a holder known to be
    /// dead: a live holder is fenced (its writes fail) but loses leadership too.
    pub fn take_over(&self) {
        let _ = self.commands.send(Command::TakeOver);
    }

    /// Releases the lease if held and ends the loop. Idempotent.
    pub async fn stop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        // Without an explicit stop the lease is left to lapse: abandoning is safe, since
        // storage fences a lapsed lease.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn run(
    store: Arc<dyn LeaseStore>,
    blob: BlobRef,
    timing: LeaseTiming,
    state: watch::Sender<LeaseState>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut term = 0u64;
    // Follower: when to try next. Leader: (lease, local validity bound, next renew).
    let mut next_acquire = Instant::now();
    let mut held: Option<(LeaseId, Instant, Instant)> = None;
    // Set when leadership was lost only to storage being out of reach: until when our own
    // lease may still be active in storage. Then a refusal may be our own lease, and an
    // unreachable storage says nothing of others, so we try again promptly instead of one
    // acquire interval later: until someone leads, nobody judges deaths or rebalances.
    let mut retake: Option<Instant> = None;
    // How soon a failed renew, or a retake, is tried again.
    let retry = timing.renew_interval / 5;
    loop {
        let wake = match held {
            Some((_, _, next_renew)) => next_renew,
            None => next_acquire,
        };
        let command = tokio::select! {
            // In order, not at random: a seeded simulation must replay (a command before a
            // due renew is as good an order as any).
            biased;
            c = commands.recv() => Some(c.unwrap_or(Command::Stop)),
            _ = tokio::time::sleep_until(wake) => None,
        };
        match command {
            Some(Command::Stop) => {
                // Publish first: nobody should act as leader while the release is in flight.
                state.send_replace(LeaseState::Stopped);
                if let Some((lease, _, _)) = held.take() {
                    if let Err(e) = store.release_lease(&blob, lease).await {
                        tracing::warn!(blob = %blob, error = %e, "lease release failed; it will lapse");
                    }
                }
                return;
            }
            Some(Command::TakeOver) if held.is_none() => {
                match store.break_lease(&blob, Duration::ZERO).await {
                    Ok(_) => {
                        tracing::info!(blob = %blob, "broke the lease of a leader judged dead")
                    }
                    Err(e) => tracing::warn!(blob = %blob, error = %e, "lease break failed"),
                }
                next_acquire = Instant::now();
                continue;
            }
            Some(Command::AcquireNow) if held.is_none() => {
                next_acquire = Instant::now();
                continue;
            }
            Some(_) => continue,
            None => {}
        }

        match held {
            None => {
                let sent = Instant::now();
                let duration = LeaseDuration::Seconds(timing.duration.as_secs() as u8);
                match store.acquire_lease(&blob, duration, None).await {
                    Ok(lease) => {
                        retake = None;
                        term += 1;
                        held = Some((lease, sent + timing.duration, sent + timing.renew_interval));
                        tracing::info!(blob = %blob, term, "became leader");
                        let valid_until = sent + timing.duration - timing.safety_margin;
                        state.send_replace(LeaseState::Leader {
                            lease,
                            term,
                            valid_until,
                        });
                    }
                    Err(e) => {
                        if e.kind() != ErrorKind::LeaseHeld {
                            tracing::warn!(blob = %blob, error = %e, "lease acquire failed");
                        }
                        let now = Instant::now();
                        retake = retake.filter(|own_lapse| {
                            e.kind() == ErrorKind::Transient
                                || (e.kind() == ErrorKind::LeaseHeld && now < *own_lapse)
                        });
                        next_acquire = now
                            + if retake.is_some() {
                                retry
                            } else {
                                crate::random::shortened(timing.acquire_interval)
                            };
                    }
                }
            }
            Some((lease, valid_until, _)) => {
                let sent = Instant::now();
                let budget = valid_until
                    .saturating_duration_since(sent)
                    .saturating_sub(timing.safety_margin);
                let result = if budget.is_zero() {
                    Err(Error::new(ErrorKind::Transient, "no time left to renew"))
                } else {
                    store.renew_lease(&blob, lease, Some(budget)).await
                };
                match result {
                    Ok(()) => {
                        held = Some((lease, sent + timing.duration, sent + timing.renew_interval));
                        let valid_until = sent + timing.duration - timing.safety_margin;
                        state.send_replace(LeaseState::Leader {
                            lease,
                            term,
                            valid_until,
                        });
                    }
                    Err(e)
                        if e.kind() == ErrorKind::Transient
                            && Instant::now() + timing.safety_margin < valid_until =>
                    {
                        tracing::warn!(blob = %blob, error = %e, "lease renew failed; retrying while the lease lasts");
                        held = Some((lease, valid_until, Instant::now() + retry));
                    }
                    Err(e) => {
                        tracing::warn!(blob = %blob, error = %e, "lost the lease; stepping down");
                        held = None;
                        state.send_replace(LeaseState::Follower);
                        if e.kind() == ErrorKind::Transient {
                            // Storage's copy lapses by `valid_until` (last renew sent plus
                            // the duration), plus a retry interval for clock rate.
                            retake = Some(valid_until + retry);
                            next_acquire = Instant::now() + retry;
                        } else {
                            next_acquire =
                                Instant::now() + crate::random::shortened(timing.acquire_interval);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_bounds_are_checked_with_key_names() {
        assert!(LeaseTiming::default().validate(("d", "r")).is_ok());
        let t = LeaseTiming {
            renew_interval: Duration::from_secs(6),
            ..LeaseTiming::default()
        };
        let e = t.validate(("job.lease.ms", "job.renew.ms")).unwrap_err();
        assert!(
            e.message().contains("job.renew.ms") && e.message().contains("5000"),
            "{e}"
        );
        let t = LeaseTiming {
            duration: Duration::from_secs(10),
            ..LeaseTiming::default()
        };
        let e = t.validate(("job.lease.ms", "job.renew.ms")).unwrap_err();
        assert!(e.message().contains("job.lease.ms"), "{e}");
    }
}
