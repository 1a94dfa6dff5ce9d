//! Injected conditions: latency, error bursts, ambiguous writes, connection resets, outages.
//!
//! Everything is scoped to one client endpoint or all of them. Random choices (latency samples,
//! rate triggers) come from one `StdRng` per client seeded from the proxy's seed, so a run is
//! reproducible given the same request order. Every hang is bounded: outages end at their
//! deadline, ambiguous hangs after their `hang_ms`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::request::{Buffered, Service};

/// Upper bounds, so no command can wedge a test for long.
pub const MAX_FAULT_MS: u64 = 600_000;
pub const MAX_HANG_MS: u64 = 120_000;
pub const DEFAULT_HANG_MS: u64 = 30_000;

/// Which client endpoints a fault applies to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    #[default]
    All,
    Client(usize),
}

impl Scope {
    fn covers(self, client: usize) -> bool {
        match self {
            Scope::All => true,
            Scope::Client(c) => c == client,
        }
    }
}

/// Which requests: the whole account, or one table partition (table names compare
/// case-insensitively, as the service does).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    #[default]
    Account,
    Partition {
        table: String,
        partition_key: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutageMode {
    /// New connections are refused (nothing listens), open ones are reset.
    Refuse,
    /// Connections are accepted and requests read, but nothing is answered; at the end of the
    /// outage those connections are closed without an answer.
    Silent,
}

/// The error a burst answers with, in Azure's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BurstError {
    /// 503 ServerBusy.
    ServerBusy,
    /// 500 OperationTimedOut.
    OperationTimedOut,
}

impl BurstError {
    pub fn status_code(self) -> (u16, &'static str, &'static str) {
        match self {
            BurstError::ServerBusy => (
                503,
                "ServerBusy",
                "The server is currently unable to receive requests. Please retry your request.",
            ),
            BurstError::OperationTimedOut => (
                500,
                "OperationTimedOut",
                "The operation could not be completed within the permitted time.",
            ),
        }
    }
}

/// What a client sees of a write that storage did apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// 500 OperationTimedOut.
    TimeoutError,
    /// No answer for `hang_ms`, then the connection closes.
    Hang,
    /// The connection is reset (RST) without an answer.
    Reset,
}

/// Which matching requests a rule hits.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The next N matching requests.
    Next(u32),
    /// Each matching request with this probability (0..=1), from the client's seeded RNG.
    Rate(f64),
}

/// Per-request delay: log-uniform between `min_ms` and `max_ms`, and with probability
/// `stall_rate` a stall uniform between `stall_min_ms` and `stall_max_ms` instead.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub min_ms: u64,
    pub max_ms: u64,
    #[serde(default)]
    pub stall_rate: f64,
    #[serde(default)]
    pub stall_min_ms: u64,
    #[serde(default)]
    pub stall_max_ms: u64,
}

impl Latency {
    /// The `realistic` profile: 5–50 ms, and one request in 200 stalls for 0.5–3 s.
    pub const REALISTIC: Latency = Latency {
        min_ms: 5,
        max_ms: 50,
        stall_rate: 0.005,
        stall_min_ms: 500,
        stall_max_ms: 3_000,
    };

    fn sample(&self, rng: &mut StdRng) -> (Duration, bool) {
        if self.stall_rate > 0.0 && rng.gen_bool(self.stall_rate.clamp(0.0, 1.0)) {
            let lo = self.stall_min_ms.min(self.stall_max_ms);
            let ms = rng.gen_range(lo..=self.stall_max_ms.max(lo));
            return (Duration::from_millis(ms), true);
        }
        let lo = self.min_ms.max(1) as f64;
        let hi = (self.max_ms as f64).max(lo);
        let ms = (lo.ln() + rng.gen::<f64>() * (hi.ln() - lo.ln())).exp();
        (Duration::from_micros((ms * 1000.0) as u64), false)
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        let bounded = [
            self.min_ms,
            self.max_ms,
            self.stall_min_ms,
            self.stall_max_ms,
        ]
        .iter()
        .all(|&ms| ms <= MAX_HANG_MS);
        if !bounded || !(0.0..=1.0).contains(&self.stall_rate) || self.min_ms > self.max_ms {
            return Err(format!("latency out of bounds: {self:?}"));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Fail(BurstError),
    Reset,
    Ambiguous { outcome: Outcome, hang: Duration },
}

#[derive(Clone, Debug)]
pub struct Rule {
    pub id: u64,
    pub scope: Scope,
    pub target: Target,
    pub action: Action,
    pub until: Option<Instant>,
    pub trigger: Option<Trigger>,
    /// Only requests that may change storage (ambiguous outcomes are about writes).
    pub writes_only: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct Outage {
    pub mode: OutageMode,
    pub until: Instant,
}

/// Counters per client, for tests that check a fault really happened.
#[derive(Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub delayed: AtomicU64,
    pub stalls: AtomicU64,
    pub failed: AtomicU64,
    pub resets: AtomicU64,
    pub ambiguous: AtomicU64,
    pub refused_connections: AtomicU64,
    pub silenced: AtomicU64,
    pub lease_id_missing: AtomicU64,
    pub renew_refused: AtomicU64,
    pub etags_rewritten: AtomicU64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientStats {
    pub requests: u64,
    pub delayed: u64,
    pub stalls: u64,
    pub failed: u64,
    pub resets: u64,
    pub ambiguous: u64,
    pub refused_connections: u64,
    pub silenced: u64,
    pub lease_id_missing: u64,
    pub renew_refused: u64,
    pub etags_rewritten: u64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> ClientStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClientStats {
            requests: g(&self.requests),
            delayed: g(&self.delayed),
            stalls: g(&self.stalls),
            failed: g(&self.failed),
            resets: g(&self.resets),
            ambiguous: g(&self.ambiguous),
            refused_connections: g(&self.refused_connections),
            silenced: g(&self.silenced),
            lease_id_missing: g(&self.lease_id_missing),
            renew_refused: g(&self.renew_refused),
            etags_rewritten: g(&self.etags_rewritten),
        }
    }
}

/// One client endpoint's state.
pub struct ClientFaults {
    pub outage: Mutex<Option<Outage>>,
    pub latency: Mutex<Option<Latency>>,
    pub rng: Mutex<StdRng>,
    /// Bumped when an outage starts or is cleared: listeners re-check, connections of a
    /// `refuse` outage are reset.
    pub changed: watch::Sender<u64>,
    /// How many of this client's listeners have let go of their port for a `refuse` outage:
    /// the controller waits for both before it returns, so a connect right after is refused.
    pub closed_listeners: AtomicU64,
    pub counters: Counters,
}

impl ClientFaults {
    pub fn new(seed: u64, index: usize, latency: Option<Latency>) -> Self {
        // Distinct, reproducible streams per client.
        let stream = seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ClientFaults {
            outage: Mutex::new(None),
            latency: Mutex::new(latency),
            rng: Mutex::new(StdRng::seed_from_u64(stream)),
            changed: watch::channel(0).0,
            closed_listeners: AtomicU64::new(0),
            counters: Counters::default(),
        }
    }

    /// The outage in force now, if any.
    pub fn outage_now(&self) -> Option<Outage> {
        let mut o = self.outage.lock().unwrap_or_else(|p| p.into_inner());
        match *o {
            Some(out) if out.until > Instant::now() => Some(out),
            Some(_) => {
                *o = None;
                None
            }
            None => None,
        }
    }

    pub fn delay(&self) -> Option<(Duration, bool)> {
        let latency = (*self.latency.lock().unwrap_or_else(|p| p.into_inner()))?;
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        Some(latency.sample(&mut rng))
    }

    fn roll(&self, p: f64) -> bool {
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        rng.gen_bool(p.clamp(0.0, 1.0))
    }

    pub fn set_outage(&self, outage: Option<Outage>) {
        *self.outage.lock().unwrap_or_else(|p| p.into_inner()) = outage;
        self.changed.send_modify(|v| *v += 1);
    }

    pub fn set_latency(&self, latency: Option<Latency>) {
        *self.latency.lock().unwrap_or_else(|p| p.into_inner()) = latency;
    }
}

/// What a request is, as far as rules care.
pub struct Facts {
    pub service: Service,
    pub write: bool,
    pub table: Option<String>,
    pub partition: Option<String>,
}

impl Facts {
    pub fn of(service: Service, req: &Buffered) -> Facts {
        let (table, partition) = match service {
            Service::Table => {
                let a = req.table_address();
                (a.table, a.partition)
            }
            Service::Blob => (None, None),
        };
        Facts {
            service,
            write: req.is_write(),
            table,
            partition,
        }
    }

    fn hits(&self, target: &Target) -> bool {
        match target {
            Target::Account => true,
            Target::Partition {
                table,
                partition_key,
            } => {
                self.service == Service::Table
                    && self
                        .table
                        .as_deref()
                        .is_some_and(|t| t.eq_ignore_ascii_case(table))
                    && self.partition.as_deref() == Some(partition_key.as_str())
            }
        }
    }
}

/// The active rules, shared by all clients.
#[derive(Default)]
pub struct Rules {
    rules: Mutex<Vec<Rule>>,
    next_id: AtomicU64,
}

/// When a rule acts on a request.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Instead of forwarding.
    Before,
    /// After Azurite applied the request.
    After,
}

impl Rules {
    /// A fresh id, shared by rules and chaos schedules so that `remove` names one thing.
    pub fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn add(&self, mut rule: Rule) -> u64 {
        rule.id = self.new_id();
        let id = rule.id;
        self.rules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(rule);
        id
    }

    pub fn clear(&self, scope: Scope) {
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        rules.retain(|r| scope != Scope::All && r.scope != scope);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.rules.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn remove(&self, id: u64) -> bool {
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        let before = rules.len();
        rules.retain(|r| r.id != id);
        rules.len() != before
    }

    /// The first rule of `phase` that hits this request, consuming one of its `Next(n)`.
    pub fn pick(
        &self,
        phase: Phase,
        client: usize,
        facts: &Facts,
        faults: &ClientFaults,
    ) -> Option<Action> {
        let now = Instant::now();
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        rules.retain(|r| {
            r.until.is_none_or(|u| u > now) && !matches!(r.trigger, Some(Trigger::Next(0)))
        });
        for rule in rules.iter_mut() {
            let rule_phase = match rule.action {
                Action::Ambiguous { .. } => Phase::After,
                _ => Phase::Before,
            };
            if rule_phase != phase
                || !rule.scope.covers(client)
                || (rule.writes_only && !facts.write)
                || !facts.hits(&rule.target)
            {
                continue;
            }
            match &mut rule.trigger {
                Some(Trigger::Next(n)) => *n -= 1,
                Some(Trigger::Rate(p)) if !faults.roll(*p) => continue,
                Some(Trigger::Rate(_)) => {}
                None => {}
            }
            return Some(rule.action.clone());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(seed: u64, client: usize) -> Vec<Duration> {
        let c = ClientFaults::new(seed, client, Some(Latency::REALISTIC));
        (0..500).map(|_| c.delay().unwrap().0).collect()
    }

    #[test]
    fn latency_is_reproducible_from_the_seed_and_within_bounds() {
        let a = samples(7, 0);
        assert_eq!(a, samples(7, 0));
        assert_ne!(a, samples(8, 0), "another seed, other samples");
        assert_ne!(a, samples(7, 1), "each client has its own stream");
        let ms = |d: &Duration| d.as_millis() as u64;
        assert!(a
            .iter()
            .all(|d| (5..=50).contains(&ms(d)) || (500..=3000).contains(&ms(d))));
        assert!(
            a.iter().any(|d| ms(d) < 15) && a.iter().any(|d| ms(d) > 35),
            "spread"
        );
    }

    #[test]
    fn next_n_hits_exactly_n_matching_requests_and_rates_follow_the_seed() {
        let rules = Rules::default();
        let faults = ClientFaults::new(1, 0, None);
        let facts = |write| Facts {
            service: Service::Table,
            write,
            table: Some("T".into()),
            partition: Some("p".into()),
        };
        rules.add(Rule {
            id: 0,
            scope: Scope::Client(0),
            target: Target::Partition {
                table: "t".into(),
                partition_key: "p".into(),
            },
            action: Action::Reset,
            until: None,
            trigger: Some(Trigger::Next(2)),
            writes_only: false,
        });
        let hits = (0..5)
            .filter(|_| {
                rules
                    .pick(Phase::Before, 0, &facts(false), &faults)
                    .is_some()
            })
            .count();
        assert_eq!(hits, 2);
        assert!(rules
            .pick(Phase::Before, 1, &facts(false), &faults)
            .is_none());

        let run = || {
            let rules = Rules::default();
            let faults = ClientFaults::new(99, 0, None);
            rules.add(Rule {
                id: 0,
                scope: Scope::All,
                target: Target::Account,
                action: Action::Ambiguous {
                    outcome: Outcome::TimeoutError,
                    hang: Duration::ZERO,
                },
                until: None,
                trigger: Some(Trigger::Rate(0.3)),
                writes_only: true,
            });
            (0..200)
                .map(|_| rules.pick(Phase::After, 0, &facts(true), &faults).is_some())
                .collect::<Vec<_>>()
        };
        let first = run();
        assert_eq!(first, run());
        let n = first.iter().filter(|h| **h).count();
        assert!((30..=90).contains(&n), "{n} of 200 at rate 0.3");
    }
}
