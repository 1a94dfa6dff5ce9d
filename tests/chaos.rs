//! The protocol under storage that misbehaves at random: three processors, each through its
//! own endpoint of the Azure-faithful proxy, run while the proxy applies a seeded chaos
//! schedule (bursts, ambiguous writes, resets, outages), then storage recovers. The same
//! safety the other tests check must hold throughout: no partition is processed by two
//! processors at once, and no engine fails; afterwards everyone runs one agreed version.
//!
//! The seed is fixed, so a run is repeatable; `CHAOS_SEED=<n>` runs another schedule (the
//! schedule is printed, so a failure names what happened when).

mod common;

use std::time::{Duration, Instant};

use azure_faithful::{Chaos, PartitionRef, Scope};
use common::cluster::Cluster;
use samza_azure_coordinator::coordinator::names::JobNames;

const DEFAULT_SEED: u64 = 20_250_601;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processors_stay_safe_under_a_seeded_chaos_schedule() {
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .map(|s| s.parse().expect("CHAOS_SEED is a number"))
        .unwrap_or(DEFAULT_SEED);
    let mut c = Cluster::through(common::faithful(3));
    let ids = ["p1", "p2", "p3"];
    for id in ids {
        c.spawn(id);
    }
    let (v1, t) = c.settled(0, Duration::from_secs(20)).await;
    eprintln!("3 processors running v{v1} after {t:?}");

    let proxy = c.proxy.clone().expect("a proxy");
    let faults = proxy.faults();
    let before: u64 = faults.stats().iter().map(hits).sum();
    let chaos = Chaos {
        seed,
        scope: Scope::All,
        duration_ms: 12_000,
        mean_gap_ms: 800,
        // Outages of 1-3 s: longer than the liveness timeout (1.5 s), so some processors are
        // judged dead and the job rebalances under fire.
        max_outage_ms: 3_000,
        partitions: samza_azure_coordinator::membership::partitions()
            .into_iter()
            .map(|partition_key| PartitionRef {
                table: JobNames::new(&c.job, "1").unwrap().table,
                partition_key,
            })
            .collect(),
    };
    let (_, schedule) = faults.chaos(chaos.clone()).expect("the schedule starts");
    eprintln!("chaos seed {seed}: {} faults", schedule.len());
    for f in &schedule {
        eprintln!(
            "  +{:>5} ms {}",
            f.at_ms,
            serde_json::to_string(&f.command).unwrap()
        );
    }
    assert!(!schedule.is_empty());

    // Check the ledger throughout the schedule, not only at the end: a double owner may last
    // only until the next rebalance.
    let started = Instant::now();
    let bound = Duration::from_millis(chaos.duration_ms) + Duration::from_secs(5);
    while faults.chaos_running() > 0 {
        {
            let mut l = c.ledger.lock().unwrap();
            l.check();
            assert!(l.violations.is_empty(), "{:?}", l.violations);
            assert!(l.errors.is_empty(), "engines failed: {:?}", l.errors);
        }
        assert!(started.elapsed() < bound, "the schedule did not end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = faults.stats();
    let hit: u64 = stats.iter().map(hits).sum::<u64>() - before;
    eprintln!(
        "the schedule ended after {:?}; {hit} requests or connections hit: {stats:?}",
        started.elapsed()
    );
    assert!(hit > 0, "the schedule hit nothing");

    // Storage is healthy again: everyone comes to one version, and stays safe doing so.
    let (v, t) = c.agreed(0, Duration::from_secs(20)).await;
    eprintln!("all running v{v} {t:?} after the schedule ended");
    {
        let l = c.ledger.lock().unwrap();
        assert!(l.violations.is_empty(), "{:?}", l.violations);
        assert!(l.errors.is_empty(), "engines failed: {:?}", l.errors);
    }
    // A graceful stop joins each processor's thread: an engine that ended with an error fails
    // the test there too.
    for id in ids {
        c.stop(id).await;
    }
    assert!(c.ledger.lock().unwrap().errors.is_empty());
}

/// Requests and connections a fault acted on.
fn hits(s: &azure_faithful::ClientStats) -> u64 {
    s.failed + s.resets + s.ambiguous + s.refused_connections + s.silenced
}
