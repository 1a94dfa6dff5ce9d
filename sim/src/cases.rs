//! The runs a seed stands for, shared by the CI budget, the regression seeds and the command
//! line, so that the command a failure prints replays exactly that run.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::schedule;
use crate::world::SimConfig;

/// Seed `seed`'s run: 3-20 processors, 2-10 tasks each, 3-12 faults in the first minute.
pub fn case(seed: u64) -> SimConfig {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6361_7365);
    let processors = rng.gen_range(3..=20);
    let tasks = processors as u32 * rng.gen_range(2..=10);
    let faults = rng.gen_range(3..=12);
    let steps = schedule::generate(seed, processors, Duration::from_secs(60), faults);
    SimConfig::new(seed, processors, tasks, steps)
}

/// The command that replays `cfg` (a case, possibly with a bug switched on).
pub fn replay_command(cfg: &SimConfig) -> String {
    let bug = cfg
        .bug
        .map(|b| format!(" --bug {}", b.name()))
        .unwrap_or_default();
    format!(
        "cargo run --release -p samza-azure-sim -- run --seed {}{bug} --trace",
        cfg.seed
    )
}

/// The smallest schedule found that still fails as `cfg` does: steps are dropped one at a
/// time, and a drop is kept when the run still fails. Returns the failing config.
pub fn shrink(cfg: &SimConfig) -> SimConfig {
    let mut best = cfg.clone();
    let mut i = 0;
    while i < best.schedule.len() {
        let mut trial = best.clone();
        trial.schedule.remove(i);
        if !crate::world::run(trial.clone()).ok() {
            best = trial;
        } else {
            i += 1;
        }
    }
    best
}
