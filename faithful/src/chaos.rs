//! A seeded chaos schedule: faults drawn at random from a seed and applied over time.
//!
//! The schedule (which fault, on which client and target, when, for how long) is a pure
//! function of the [`Chaos`] settings and the proxy's number of clients, so a run that failed
//! can be replayed with the same seed; which requests a fault then hits depends on the traffic,
//! as with commanded faults. Each fault is one [`Command`] that a test could have sent by hand,
//! applied through the same controller, so chaos adds no fault behaviour of its own.

use std::sync::Mutex;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::control::Command;
use crate::faults::{BurstError, OutageMode, Outcome, Scope, Target, Trigger, MAX_FAULT_MS};

/// Longest outage a schedule may draw (the "outages of 1–60 s").
pub const MAX_CHAOS_OUTAGE_MS: u64 = 60_000;
/// Shortest mean gap, which bounds a schedule to a few thousand faults.
pub const MIN_CHAOS_GAP_MS: u64 = 100;

fn default_mean_gap_ms() -> u64 {
    2_000
}

fn default_max_outage_ms() -> u64 {
    MAX_CHAOS_OUTAGE_MS
}

/// A table partition that bursts, ambiguous writes and resets may target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRef {
    pub table: String,
    pub partition_key: String,
}

/// Settings of a chaos schedule. On the wire: `{"op":"chaos","seed":…,"duration_ms":…, …}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chaos {
    pub seed: u64,
    /// One client: every fault hits it. All: each fault hits one client drawn at random, or
    /// (one fault in four, and always with a single client) every client at once.
    #[serde(default)]
    pub scope: Scope,
    /// Faults start within this window and are clipped to end by its end; then the rules the
    /// schedule added are removed.
    pub duration_ms: u64,
    /// Mean time between two faults' starts (exponential gaps): the intensity.
    #[serde(default = "default_mean_gap_ms")]
    pub mean_gap_ms: u64,
    /// Outages last from 1 s (or this, if shorter) up to this; bursts and hangs from 100 ms
    /// up to a quarter of it. At most 60 s; tests use a few seconds.
    #[serde(default = "default_max_outage_ms")]
    pub max_outage_ms: u64,
    /// Partitions a burst, an ambiguous write or a reset may target instead of the whole
    /// account (half of them do, when any is given).
    #[serde(default)]
    pub partitions: Vec<PartitionRef>,
}

/// One fault of a schedule: a command, and when it is applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChaosFault {
    /// From the schedule's start.
    pub at_ms: u64,
    pub command: Command,
}

impl Chaos {
    pub(crate) fn validate(&self, clients: usize) -> Result<(), String> {
        if self.duration_ms == 0 || self.duration_ms > MAX_FAULT_MS {
            return Err(format!(
                "chaos duration_ms {} is not within 1..={MAX_FAULT_MS}",
                self.duration_ms
            ));
        }
        if self.max_outage_ms == 0 || self.max_outage_ms > MAX_CHAOS_OUTAGE_MS {
            return Err(format!(
                "chaos max_outage_ms {} is not within 1..={MAX_CHAOS_OUTAGE_MS}",
                self.max_outage_ms
            ));
        }
        if self.mean_gap_ms < MIN_CHAOS_GAP_MS {
            return Err(format!(
                "chaos mean_gap_ms {} is below {MIN_CHAOS_GAP_MS}",
                self.mean_gap_ms
            ));
        }
        if let Scope::Client(c) = self.scope {
            if c >= clients {
                return Err(format!(
                    "client {c} does not exist (the proxy has {clients})"
                ));
            }
        }
        Ok(())
    }

    /// The faults this schedule applies, in time order, for a proxy of `clients` endpoints.
    pub fn schedule(&self, clients: usize) -> Vec<ChaosFault> {
        // A stream of its own: the same seed as the proxy's must not replay its latencies.
        let mut rng = StdRng::seed_from_u64(self.seed ^ 0xC4A0_5C4A_05C4_A05C);
        let mean = self.mean_gap_ms.max(MIN_CHAOS_GAP_MS) as f64;
        let short_max = (self.max_outage_ms / 4).max(100);
        let outage_min = self.max_outage_ms.min(1_000);
        let mut faults = Vec::new();
        let mut at = 0u64;
        loop {
            // Exponential gaps: faults arrive as a Poisson process, bunching as real ones do.
            let u: f64 = rng.gen();
            at += ((-(1.0 - u).ln() * mean) as u64).max(1);
            if at >= self.duration_ms {
                return faults;
            }
            let left = self.duration_ms - at;
            let scope = match self.scope {
                Scope::Client(c) => Scope::Client(c),
                Scope::All if clients <= 1 || rng.gen_ratio(1, 4) => Scope::All,
                Scope::All => Scope::Client(rng.gen_range(0..clients)),
            };
            let target = if self.partitions.is_empty() || rng.gen_bool(0.5) {
                Target::Account
            } else {
                let p = &self.partitions[rng.gen_range(0..self.partitions.len())];
                Target::Partition {
                    table: p.table.clone(),
                    partition_key: p.partition_key.clone(),
                }
            };
            let short = rng.gen_range(100..=short_max).min(left);
            let command = match rng.gen_range(0..10) {
                0..=2 => Command::Burst {
                    scope,
                    target,
                    error: if rng.gen_bool(0.5) {
                        BurstError::ServerBusy
                    } else {
                        BurstError::OperationTimedOut
                    },
                    ms: short,
                },
                3..=4 => Command::Ambiguous {
                    scope,
                    target,
                    outcome: [Outcome::TimeoutError, Outcome::Hang, Outcome::Reset]
                        [rng.gen_range(0..3)],
                    trigger: Trigger::Next(rng.gen_range(1..=3)),
                    hang_ms: short,
                },
                5..=6 => Command::Reset {
                    scope,
                    target,
                    trigger: Trigger::Next(rng.gen_range(1..=3)),
                },
                _ => Command::Outage {
                    scope,
                    mode: if rng.gen_bool(0.5) {
                        OutageMode::Refuse
                    } else {
                        OutageMode::Silent
                    },
                    ms: rng.gen_range(outage_min..=self.max_outage_ms).min(left),
                },
            };
            faults.push(ChaosFault { at_ms: at, command });
        }
    }
}

/// The schedules running now, so `remove` and `clear` can stop them.
#[derive(Default)]
pub struct Schedules {
    running: Mutex<Vec<(u64, Scope, watch::Sender<bool>)>>,
}

impl Schedules {
    pub fn add(&self, id: u64, scope: Scope) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        self.lock().push((id, scope, tx));
        rx
    }

    /// Stops schedule `id`; false if there is none.
    pub fn cancel(&self, id: u64) -> bool {
        let mut running = self.lock();
        let before = running.len();
        running.retain(|(i, _, tx)| {
            let hit = *i == id;
            if hit {
                tx.send_replace(true);
            }
            !hit
        });
        running.len() != before
    }

    /// Stops the schedules `clear(scope)` covers: all of them, or those of that one client.
    pub fn cancel_scope(&self, scope: Scope) {
        self.lock().retain(|(_, s, tx)| {
            let hit = scope == Scope::All || *s == scope;
            if hit {
                tx.send_replace(true);
            }
            !hit
        });
    }

    pub fn finished(&self, id: u64) {
        self.lock().retain(|(i, _, _)| *i != id);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Scope, watch::Sender<bool>)>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chaos(seed: u64) -> Chaos {
        Chaos {
            seed,
            scope: Scope::All,
            duration_ms: 120_000,
            mean_gap_ms: 500,
            max_outage_ms: 5_000,
            partitions: vec![PartitionRef {
                table: "t".into(),
                partition_key: "members".into(),
            }],
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_schedule_and_another_seed_another() {
        let a = chaos(7).schedule(3);
        assert_eq!(a, chaos(7).schedule(3));
        assert_ne!(a, chaos(8).schedule(3));
        assert_ne!(
            a,
            chaos(7).schedule(4),
            "the client count is part of the draw"
        );
        // About duration / mean faults.
        assert!((120..=360).contains(&a.len()), "{} faults", a.len());
    }

    #[test]
    fn a_schedule_stays_within_its_bounds_and_draws_every_kind() {
        let c = chaos(11);
        let faults = c.schedule(3);
        let mut kinds = std::collections::BTreeSet::new();
        let mut scopes = std::collections::BTreeSet::new();
        let mut partition_targets = 0;
        let mut last = 0;
        for f in &faults {
            assert!(f.at_ms >= last && f.at_ms < c.duration_ms, "{f:?}");
            last = f.at_ms;
            let left = c.duration_ms - f.at_ms;
            let (scope, target, kind) = match &f.command {
                Command::Outage { scope, mode, ms } => {
                    assert!(*ms <= left && *ms <= c.max_outage_ms, "{f:?}");
                    assert!(*ms >= 1_000 || *ms == left, "{f:?}");
                    (*scope, None, format!("outage {mode:?}"))
                }
                Command::Burst {
                    scope,
                    target,
                    error,
                    ms,
                } => {
                    assert!((100..=c.max_outage_ms / 4).contains(ms) || *ms == left);
                    (*scope, Some(target), format!("burst {error:?}"))
                }
                Command::Ambiguous {
                    scope,
                    target,
                    outcome,
                    trigger,
                    hang_ms,
                } => {
                    assert!(matches!(trigger, Trigger::Next(1..=3)), "{f:?}");
                    assert!(*hang_ms <= c.max_outage_ms / 4, "{f:?}");
                    (*scope, Some(target), format!("ambiguous {outcome:?}"))
                }
                Command::Reset {
                    scope,
                    target,
                    trigger,
                } => {
                    assert!(matches!(trigger, Trigger::Next(1..=3)), "{f:?}");
                    (*scope, Some(target), "reset".into())
                }
                other => panic!("not a fault: {other:?}"),
            };
            if let Some(Target::Partition { table, .. }) = target {
                assert_eq!(table, "t");
                partition_targets += 1;
            }
            if let Scope::Client(i) = scope {
                assert!(i < 3, "{f:?}");
            }
            scopes.insert(format!("{scope:?}"));
            kinds.insert(kind);
        }
        assert_eq!(kinds.len(), 8, "{kinds:?}");
        assert_eq!(scopes.len(), 4, "all, and each of 3 clients: {scopes:?}");
        assert!(partition_targets > 0);
    }

    #[test]
    fn a_schedule_for_one_client_touches_only_it() {
        let c = Chaos {
            scope: Scope::Client(1),
            ..chaos(3)
        };
        let scopes: std::collections::BTreeSet<String> = c
            .schedule(3)
            .iter()
            .map(|f| match &f.command {
                Command::Outage { scope, .. }
                | Command::Burst { scope, .. }
                | Command::Ambiguous { scope, .. }
                | Command::Reset { scope, .. } => format!("{scope:?}"),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(scopes.into_iter().collect::<Vec<_>>(), ["Client(1)"]);
    }

    #[test]
    fn settings_out_of_bounds_are_refused() {
        let ok = chaos(1);
        assert!(ok.validate(3).is_ok());
        for bad in [
            Chaos {
                max_outage_ms: 60_001,
                ..ok.clone()
            },
            Chaos {
                max_outage_ms: 0,
                ..ok.clone()
            },
            Chaos {
                duration_ms: 0,
                ..ok.clone()
            },
            Chaos {
                mean_gap_ms: 10,
                ..ok.clone()
            },
            Chaos {
                scope: Scope::Client(3),
                ..ok.clone()
            },
        ] {
            assert!(bad.validate(3).is_err(), "{bad:?}");
        }
    }
}
