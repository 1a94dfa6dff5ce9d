//! The CI budget: 1,000 seeded runs of 3-20 processors each (`cases::case`), and the seeds'
//! determinism. A failing seed prints the command that replays it.

use samza_azure_sim::cases::{case, replay_command};
use samza_azure_sim::net::Bug;
use samza_azure_sim::world::run;

const SEEDS: u64 = 1000;

#[test]
fn a_thousand_seeded_fault_schedules_keep_every_invariant() {
    let mut failures = Vec::new();
    for seed in 0..SEEDS {
        let cfg = case(seed);
        let command = replay_command(&cfg);
        let out = run(cfg);
        if !out.ok() {
            failures.push(format!(
                "seed {seed}: {:?}\n  replay: {command}",
                out.violations
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_seed_replays_event_for_event() {
    for seed in [3, 7, 42] {
        let (a, b) = (run(case(seed)), run(case(seed)));
        assert_eq!(a.trace, b.trace, "seed {seed}");
        assert_eq!(a.requests, b.requests, "seed {seed}");
    }
    assert_ne!(run(case(1)).digest(), run(case(2)).digest());
}

/// The checker can fail: with a known bug put back, seeds catch it.
#[test]
fn the_checker_catches_reintroduced_bugs() {
    for (bug, symptom) in [
        (Bug::IgnoreFence, "at once"),
        (Bug::AckBeforeStop, "at once"),
        (Bug::UnfencedCheckpoints, "storage accepted a checkpoint"),
    ] {
        let caught = (0..20)
            .map(|seed| {
                let mut cfg = case(seed);
                cfg.bug = Some(bug);
                run(cfg)
            })
            .filter(|out| out.violations.iter().any(|v| v.contains(symptom)))
            .count();
        assert!(caught > 0, "{bug:?} went unnoticed in 20 seeds");
    }
}
