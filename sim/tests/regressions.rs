//! Runs the simulator found failing, each kept with the fix it needed (docs/simulator.md).

use std::time::Duration;

use samza_azure_sim::cases::{case, replay_command};
use samza_azure_sim::schedule::{Fault, Step};
use samza_azure_sim::world::{run, SimConfig};

fn assert_passes(cfg: SimConfig) {
    let command = replay_command(&cfg);
    let out = run(cfg);
    assert!(
        out.ok(),
        "{:?}\nreplay: {command}\n{}",
        out.violations,
        out.trace.join("\n")
    );
}

/// Seed 3: a processor leaving gracefully spun its loop for as long as its container took to
/// stop. Its lease keeper had ended, and the loop kept selecting the closed lease channel,
/// which is always ready (a CPU core in production; virtual time stood still here).
#[test]
fn a_leaving_processor_waits_for_its_container_without_spinning() {
    assert_passes(case(3));
    let leave = vec![Step {
        at: Duration::from_secs(20),
        fault: Fault::Leave(1),
    }];
    assert_passes(SimConfig::new(3, 3, 6, leave));
}

/// Seeds 7, 9, 59, 80, 100, 209, 216, 218, 273, 294: after one failed heartbeat (a burst of
/// 503s longer than a request's retries) a processor never judged anyone dead again: the
/// failure cleared when it became reachable, and only a gap longer than the reachability gap
/// set it anew. A crash after that was never rebalanced.
#[test]
fn a_failed_heartbeat_does_not_stop_a_leader_from_judging_deaths_for_good() {
    for seed in [7, 9, 59, 80] {
        assert_passes(case(seed));
    }
    // Seed 9 shrunk (`samza-azure-sim shrink --seed 9`): the burst, then a crash.
    let burst_then_crash = vec![
        Step {
            at: Duration::from_millis(26_670),
            fault: Fault::BusyAll(Duration::from_millis(2_600)),
        },
        Step {
            at: Duration::from_millis(37_103),
            fault: Fault::Crash(3),
        },
    ];
    assert_passes(SimConfig::new(9, 10, 60, burst_then_crash));
}
