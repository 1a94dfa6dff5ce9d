//! The seeded fault schedule: what happens to whom, and when.

use std::fmt;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Processors are named by their slot: the n-th processor ever started in the run.
pub type Slot = usize;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// kill -9. A crashed processor's id is started again later with `Restart`.
    Crash(Slot),
    /// The same processor id starts again (a restarted pod).
    Restart(Slot),
    /// A new processor joins.
    Join,
    /// A graceful stop.
    Leave(Slot),
    /// The whole process freezes (SIGSTOP, GC) at whatever await point it is.
    Pause(Slot, Duration),
    /// Its requests hang, then go through.
    Stall(Slot, Duration),
    /// Every request hangs (a partition-wide stall).
    StallAll(Duration),
    /// Its requests are answered 503 ServerBusy.
    Busy(Slot, Duration),
    /// Every request is answered 503.
    BusyAll(Duration),
    /// Its writes are applied but their answers lost.
    Ambiguous(Slot, Duration),
    /// Its requests are applied and their answers lost.
    LostAnswers(Slot, Duration),
    /// Its Java event thread is stuck: no event handled, no compute answered.
    JavaStuck(Slot, Duration),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |d: &Duration| format!("{:.1}s", d.as_secs_f64());
        match self {
            Fault::Crash(p) => write!(f, "crash p{p}"),
            Fault::Restart(p) => write!(f, "restart p{p}"),
            Fault::Join => write!(f, "join"),
            Fault::Leave(p) => write!(f, "leave p{p}"),
            Fault::Pause(p, d) => write!(f, "pause p{p} {}", s(d)),
            Fault::Stall(p, d) => write!(f, "stall p{p} {}", s(d)),
            Fault::StallAll(d) => write!(f, "stall all {}", s(d)),
            Fault::Busy(p, d) => write!(f, "503s p{p} {}", s(d)),
            Fault::BusyAll(d) => write!(f, "503s all {}", s(d)),
            Fault::Ambiguous(p, d) => write!(f, "ambiguous writes p{p} {}", s(d)),
            Fault::LostAnswers(p, d) => write!(f, "lost answers p{p} {}", s(d)),
            Fault::JavaStuck(p, d) => write!(f, "java stuck p{p} {}", s(d)),
        }
    }
}

/// A fault at a virtual instant after the start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub at: Duration,
    pub fault: Fault,
}

impl Step {
    /// When the fault is over.
    pub fn end(&self) -> Duration {
        self.at
            + match &self.fault {
                Fault::Pause(_, d)
                | Fault::Stall(_, d)
                | Fault::StallAll(d)
                | Fault::Busy(_, d)
                | Fault::BusyAll(d)
                | Fault::Ambiguous(_, d)
                | Fault::LostAnswers(_, d)
                | Fault::JavaStuck(_, d) => *d,
                Fault::Crash(_) | Fault::Restart(_) | Fault::Join | Fault::Leave(_) => {
                    Duration::ZERO
                }
            }
    }
}

/// `count` faults spread over `window`, drawn from `seed`, for `processors` initial
/// processors. Slots a fault names may be dead or gone by then: the world skips those.
pub fn generate(seed: u64, processors: usize, window: Duration, count: usize) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x7363_6865_6475_6c65);
    let mut slots = processors;
    let mut steps: Vec<Step> = (0..count)
        .map(|_| {
            let at = Duration::from_millis(rng.gen_range(0..window.as_millis() as u64));
            let p = rng.gen_range(0..slots);
            // Mostly shorter than the self-fence bound, sometimes well past the liveness
            // timeout and the lease.
            let d = Duration::from_millis(match rng.gen_range(0..10) {
                0..=5 => rng.gen_range(200..4_000),
                6..=8 => rng.gen_range(4_000..12_000),
                _ => rng.gen_range(12_000..40_000),
            });
            let fault = match rng.gen_range(0..24) {
                0..=2 => Fault::Crash(p),
                3..=4 => Fault::Restart(p),
                5..=6 => {
                    slots += 1;
                    Fault::Join
                }
                7 => Fault::Leave(p),
                8..=10 => Fault::Pause(p, d),
                11..=12 => Fault::Stall(p, d),
                13 => Fault::StallAll(d.min(Duration::from_secs(12))),
                14..=15 => Fault::Busy(p, d),
                16 => Fault::BusyAll(d.min(Duration::from_secs(8))),
                17..=18 => Fault::Ambiguous(p, d),
                19..=20 => Fault::LostAnswers(p, d),
                _ => Fault::JavaStuck(p, d),
            };
            Step { at, fault }
        })
        .collect();
    steps.sort_by_key(|s| s.at);
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_one_schedule() {
        let a = generate(5, 4, Duration::from_secs(60), 10);
        assert_eq!(a, generate(5, 4, Duration::from_secs(60), 10));
        assert_ne!(a, generate(6, 4, Duration::from_secs(60), 10));
        assert!(a.windows(2).all(|w| w[0].at <= w[1].at));
    }
}
