//! The whole protocol against a real Azurite, with several coordinators in one process. A
//! small driver plays the Java side: it computes a round-robin model, "stops" and "starts"
//! containers, and an ownership ledger asserts that no partition ever has two owners
//! (`common::cluster`). (The end-to-end tests with real Samza processes are in the JUnit
//! suite.)

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::azurite;
use common::cluster::{timing, Cluster, ComputeFault, Control};
use samza_azure_coordinator::coordinator::names::JobIdentity;
use samza_azure_coordinator::coordinator::{Coordinator, CoordinatorConfig};
use samza_azure_coordinator::storage::{DocumentStore, Guard, LeaseStore, PageQuery};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_leave_crash_and_leader_failover_keep_one_owner_per_partition() {
    let mut c = Cluster::new();
    c.spawn_all(&["p1", "p2", "p3"]);
    let (v1, t) = c.settled(0, Duration::from_secs(20)).await;
    eprintln!("3 processors running v{v1} after {t:?}");
    // The job's first version owes no barrier: nothing can be running yet.
    for p in &c.procs {
        let events = p.events.lock().unwrap();
        let first = events
            .iter()
            .map(|(_, e)| e.as_str())
            .find(|e| e.starts_with("Prepare") || e.starts_with("Start"));
        assert!(
            first.is_some_and(|e| e.starts_with("Start")),
            "{}: {first:?}",
            p.id
        );
    }

    c.spawn("p4");
    let (v2, t) = c.settled(v1, Duration::from_secs(20)).await;
    eprintln!("join: v{v2} after {t:?}");

    let leader = c.leader().expect("a leader");
    let follower = ["p1", "p2", "p3", "p4"]
        .into_iter()
        .find(|p| *p != leader)
        .unwrap();
    c.stop(follower).await;
    let (v3, t) = c.settled(v2, Duration::from_secs(20)).await;
    eprintln!("graceful stop of {follower}: v{v3} after {t:?}");

    let leader = c.leader().expect("a leader");
    let follower = c.procs.iter().find(|p| p.id != leader).unwrap().id.clone();
    c.crash(&follower);
    let (v4, t) = c.settled(v3, Duration::from_secs(20)).await;
    eprintln!("crash of follower {follower}: v{v4} after {t:?}");

    let leader = c.leader().expect("a leader");
    c.crash(&leader);
    let (v5, t) = c.settled(v4, Duration::from_secs(20)).await;
    let new_leader = c.leader().expect("a new leader");
    assert_ne!(new_leader, leader);
    eprintln!("crash of leader {leader}: v{v5} after {t:?}, {new_leader} leads");

    assert!(c.ledger.lock().unwrap().violations.is_empty());
    for id in c.procs.iter().map(|p| p.id.clone()).collect::<Vec<_>>() {
        c.stop(&id).await;
    }
}

/// What the Java leader does when an input's partition count changes: the same members get a
/// new version, through the whole barrier, and only the leader's request counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requested_recompute_runs_one_new_version_for_the_same_members() {
    let mut c = Cluster::new();
    for id in ["p1", "p2"] {
        c.spawn(id);
    }
    let (v1, _) = c.settled(0, Duration::from_secs(20)).await;
    let leader = c.leader().expect("a leader");
    let follower = if leader == "p1" { "p2" } else { "p1" };
    c.get(follower).coordinator.request_rebalance();
    c.get(&leader).coordinator.request_rebalance();
    let running = |id: &str| c.running(id);
    let start = Instant::now();
    while running("p1") <= v1 || running("p2") <= v1 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no new version after a recompute request"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // One request from the leader, one new version: the follower's request was ignored.
    assert_eq!((running("p1"), running("p2")), (v1 + 1, v1 + 1));
    let computes: Vec<String> = c
        .get(&leader)
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, e)| e.starts_with(&format!("Compute {{ version: {}", v1 + 1)))
        .map(|(_, e)| e.clone())
        .collect();
    assert_eq!(computes.len(), 1, "{computes:?}");
    assert!(c.ledger.lock().unwrap().violations.is_empty());
    for id in ["p1", "p2"] {
        c.stop(id).await;
    }
}

/// A notify that fails must not leave the barrier waiting for the backstop poll: while a
/// version waits for acknowledgements, the leader touches the notification rows of those who
/// have not acknowledged once per heartbeat interval. Here the leader's first notify of a new
/// version fails; the backstop poll and the barrier timeout (whose abandon-and-republish would
/// notify again) are set far beyond the bound, so only that retry can bring the followers in
/// on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_notify_is_retried_before_the_backstop_poll() {
    use common::recording::Inject;
    use samza_azure_coordinator::ErrorKind;
    let mut c = Cluster::new();
    c.timing.poll = Duration::from_secs(120);
    c.timing.barrier_timeout = Duration::from_secs(120);
    c.spawn_all(&["p1", "p2", "p3"]);
    let (v1, _) = c.settled(0, Duration::from_secs(20)).await;
    let leader = c.leader().expect("a leader");
    let follower = c.a_follower();
    let follower = follower.as_str();
    let store = c.get(&leader).storage.clone();
    // A notify is one batch of the followers' notification rows; the leader's own heartbeats
    // touch only its own, so this picks out the first notify.
    let probe = format!("~probe~{follower}");
    store.inject_touching("batch", &probe, Inject::Fail(ErrorKind::Transient));
    let asked = Instant::now();
    // A recompute for the same members: no joiner that would read the document by itself.
    c.get(&leader).coordinator.request_rebalance();
    // About a heartbeat interval for the retry, one for the follower's heartbeat to see it,
    // then the acknowledgement and the start: a second or two, far below the 120 s poll.
    let bound = Duration::from_secs(6);
    let (v2, t) = c.agreed(v1, bound).await;
    eprintln!("every processor runs v{v2} {t:?} after the recompute, its first notify failed");
    assert_eq!(store.injections_left(), 0, "the notify never failed");
    let notifies: Vec<(Instant, bool)> = store
        .writes()
        .iter()
        .filter(|w| w.at >= asked && w.op.starts_with("batch") && w.op.contains(&probe))
        .map(|w| (w.at, w.accepted))
        .collect();
    assert!(
        notifies.first().is_some_and(|(_, accepted)| !accepted),
        "the first notify after the recompute did not fail: {notifies:?}"
    );
    assert!(c.ledger.lock().unwrap().violations.is_empty());
    for id in ["p1", "p2", "p3"] {
        c.stop(id).await;
    }
}

/// A storage outage shorter than the self-fence bound stops nothing: no fence, no new version,
/// the same container keeps running; it only shows as failed heartbeats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_storage_outage_stops_nothing() {
    let mut c = Cluster::new();
    // A wide margin, so a loaded machine's scheduling cannot turn the outage into a fence.
    c.timing.liveness = Duration::from_secs(3);
    for id in ["p1", "p2"] {
        c.spawn(id);
    }
    let (v1, _) = c.settled(0, Duration::from_secs(20)).await;
    let leader = c.leader().expect("a leader");
    let follower = if leader == "p1" { "p2" } else { "p1" };
    let before = c.heartbeat_failures(follower);
    // Self-fence bound: liveness 3 s - 0.75 s. The last accepted heartbeat was at most one
    // interval (0.3 s) before, and the next comes within one interval after: about 1.0 s of
    // silence.
    let outage = Duration::from_millis(400);
    let storage = c.get(follower).storage.clone();
    storage.outage(outage);
    let start = Instant::now();
    // Until a heartbeat failed in the outage and a later write got through.
    loop {
        let recovered = storage
            .writes()
            .iter()
            .any(|w| w.accepted && w.at > start + outage);
        if recovered && c.heartbeat_failures(follower) > before {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no failed heartbeat and recovery"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let events: Vec<String> = c
        .get(follower)
        .events
        .lock()
        .unwrap()
        .iter()
        .map(|(_, e)| e.clone())
        .collect();
    assert!(!events.iter().any(|e| e.starts_with("Fence")), "{events:?}");
    let running = |id: &str| c.running(id);
    assert_eq!((running("p1"), running("p2")), (v1, v1));
    assert!(c.ledger.lock().unwrap().violations.is_empty());
    for id in ["p1", "p2"] {
        c.stop(id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_fails_with_the_key_named() {
    let storage = Arc::new(azurite().storage());
    let config = CoordinatorConfig {
        job: JobIdentity {
            name: "j".into(),
            id: "1".into(),
        },
        timing: timing(),
    };
    let e = Coordinator::start(storage.clone(), config.clone(), "a/b")
        .err()
        .unwrap();
    assert!(e.message().contains("processor id"), "{e}");
    let e = Coordinator::start(storage, config, "~probe~x")
        .err()
        .unwrap();
    assert!(e.message().contains("processor.id"), "{e}");
}

/// A leader frozen past its lease (SIGSTOP-like) is replaced; when it wakes, its first act is
/// to stop its containers, it steps down, and storage accepts none of its leader writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_past_its_lease_is_fenced_by_storage_and_steps_down() {
    let mut c = Cluster::new();
    c.spawn_all(&["p1", "p2", "p3"]);
    let (v1, _) = c.settled(0, Duration::from_secs(20)).await;
    let paused = c.leader().expect("a leader");
    let others: Vec<String> = c
        .procs
        .iter()
        .map(|p| p.id.clone())
        .filter(|p| *p != paused)
        .collect();
    let others: Vec<&str> = others.iter().map(String::as_str).collect();

    // Longer than the 15 s lease, so it lapses even without the take-over.
    let pause = Duration::from_secs(16);
    c.pause(&paused, pause);
    let (v2, t) = c.settled_among(&others, v1, Duration::from_secs(20)).await;
    eprintln!("{paused} frozen: the others run v{v2} after {t:?}");
    let leads = |id: &&str| {
        c.get(id)
            .coordinator
            .metrics()
            .is_leader
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert!(others.iter().any(leads), "no new leader among {others:?}");

    // It wakes, fences, steps down and rejoins.
    let (v3, t) = c.settled(v2, Duration::from_secs(40)).await;
    eprintln!("{paused} rejoined: v{v3} after {t:?}");

    let events = c.get(&paused).events.lock().unwrap().clone();
    let resumed = events
        .iter()
        .position(|(_, e)| e == "resumed")
        .expect("it resumed");
    let woke_at = events[resumed].0;
    let next: Vec<&str> = events[resumed + 1..]
        .iter()
        .map(|(_, e)| e.as_str())
        .collect();
    // Its processing gate closed at the deadline while it slept; once storage shows the job
    // moved on, it stops the container for good, before starting or computing anything.
    let fenced = next
        .iter()
        .position(|e| e.starts_with("Fence"))
        .unwrap_or_else(|| panic!("it never stopped its container: {next:?}"));
    assert!(
        !next[..fenced]
            .iter()
            .any(|e| e.starts_with("Start") || e.starts_with("Compute")),
        "after waking: {next:?}"
    );
    let stepped_down = next
        .iter()
        .position(|e| e.starts_with("Leadership { leader: false"))
        .unwrap_or_else(|| panic!("it never stepped down: {next:?}"));
    // Nothing a leader does happens in between: its lease bound had run out while it slept,
    // even if it slept in the middle of reading the membership.
    assert!(
        !next[..stepped_down]
            .iter()
            .any(|e| e.starts_with("Compute")),
        "it acted as leader after waking: {next:?}"
    );
    let accepted: Vec<String> = c
        .get(&paused)
        .storage
        .writes()
        .into_iter()
        .filter(|w| w.at >= woke_at && w.accepted)
        // Its own heartbeats (its row, alone or with its notification row) are not leader writes.
        .filter(|w| {
            let own = format!(
                "batch {} {paused},~probe~{paused}",
                samza_azure_coordinator::membership::partition_of(&paused)
            );
            !w.op.starts_with("upsert_entity") && w.op != own
        })
        .map(|w| w.op)
        .collect();
    assert!(
        accepted.is_empty(),
        "storage accepted writes of the deposed leader: {accepted:?}"
    );
    let rejected = c
        .get(&paused)
        .storage
        .writes()
        .into_iter()
        .filter(|w| w.at >= woke_at && !w.accepted)
        .count();
    eprintln!("{paused} after waking: {rejected} writes rejected by storage");
    // It did not even try (its local lease bound had run out). Storage is what makes that
    // safe: a write under the lease it held is refused.
    let (blob, lease) = c
        .get(&paused)
        .storage
        .last_lease()
        .expect("it held a lease");
    let (container, name) = blob.split_once('/').unwrap();
    let blob = samza_azure_coordinator::storage::BlobRef::new(container, name).unwrap();
    let late = azurite()
        .storage()
        .replace_document(
            &blob,
            bytes::Bytes::from_static(b"stale"),
            Guard::lease(lease),
        )
        .await
        .unwrap_err();
    assert_eq!(
        late.kind(),
        samza_azure_coordinator::ErrorKind::LeaseLost,
        "{late}"
    );
    assert!(c.ledger.lock().unwrap().violations.is_empty());
    for id in c.procs.iter().map(|p| p.id.clone()).collect::<Vec<_>>() {
        c.stop(&id).await;
    }
}

/// An idle leader must sleep between its due times like a follower does. The loop's wake-ups
/// are counted; the timing here allows at most about 1/scan + 1/heartbeat of them a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_leader_sleeps_between_its_due_times() {
    let mut c = Cluster::new();
    for id in ["p1", "p2"] {
        c.spawn(id);
    }
    c.settled(0, Duration::from_secs(20)).await;
    let leader = c.leader().expect("a leader");
    let follower = if leader == "p1" { "p2" } else { "p1" };
    let wakeups = |id: &str| {
        c.get(id)
            .coordinator
            .metrics()
            .wakeups
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let (l0, f0, t0) = (wakeups(&leader), wakeups(follower), Instant::now());
    // Measure over a fixed window: the quantity is a rate, not a condition to await.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let secs = t0.elapsed().as_secs_f64();
    let per_sec = |n: u64| n as f64 / secs;
    let (leader_rate, follower_rate) = (
        per_sec(wakeups(&leader) - l0),
        per_sec(wakeups(follower) - f0),
    );
    eprintln!("wake-ups per second: leader {leader_rate:.1}, follower {follower_rate:.1}");
    let t = &c.timing;
    let bound = 2.0 * (1.0 / t.scan.as_secs_f64() + 1.0 / t.heartbeat.as_secs_f64()) + 5.0;
    assert!(
        leader_rate <= bound,
        "the idle leader woke {leader_rate:.0} times a second (follower {follower_rate:.1}), more than {bound:.0}: it spins"
    );
    for id in ["p1", "p2"] {
        c.stop(id).await;
    }
}

/// A leader whose publish landed but was reported failed, and whose read right after failed
/// too, must not publish again without If-Match: an unconditional write can reuse the version
/// number with other content, and acknowledgements of the first content would count for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_of_unknown_outcome_and_a_failed_read_never_reuse_a_version() {
    use common::recording::Inject;
    use samza_azure_coordinator::ErrorKind;
    let mut c = Cluster::new();
    c.spawn_all(&["p1", "p2", "p3"]);
    let (v1, _) = c.settled(0, Duration::from_secs(20)).await;
    let leader = c.leader().expect("a leader");
    let store = c.get(&leader).storage.clone();
    store.inject(
        "replace_document",
        Inject::AppliedThenFail(ErrorKind::OutcomeUnknown),
    );
    store.inject("read_document", Inject::Fail(ErrorKind::Transient));
    c.spawn("p4");
    let (v2, t) = c.settled(v1, Duration::from_secs(20)).await;
    eprintln!("join after an ambiguous publish: v{v2} after {t:?}");

    let mut seen = std::collections::HashSet::new();
    for w in store
        .writes()
        .iter()
        .filter(|w| w.op.starts_with("replace_document"))
    {
        assert!(
            w.op.ends_with("if-match=yes"),
            "unconditional publish: {}",
            w.op
        );
        let body = w.body.as_ref().expect("document body recorded");
        let header = body.split(|b| *b == b'\n').next().unwrap();
        let h: serde_json::Value = serde_json::from_slice(header).unwrap();
        let key = (h["version"].as_u64().unwrap(), h["phase"].to_string());
        assert!(
            seen.insert(key.clone()),
            "version {key:?} was published twice"
        );
    }
    assert!(c.ledger.lock().unwrap().violations.is_empty());
    for id in ["p1", "p2", "p3", "p4"] {
        c.stop(id).await;
    }
}

/// A short outage of the input system's metadata must not cascade: failed computes and a
/// compute that never answers are retried with backoff, and the leader keeps leading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_hung_computes_are_retried_without_losing_the_leader() {
    let mut c = Cluster::new();
    c.ledger.lock().unwrap().compute_faults.extend([
        ComputeFault::Fail,
        ComputeFault::Fail,
        ComputeFault::Fail,
        ComputeFault::Ignore,
    ]);
    for id in ["p1", "p2"] {
        c.spawn(id);
    }
    // Backoff 1 + 2 + 4 s, then the 5 s compute timeout of these timings.
    let (v, t) = c.settled(0, Duration::from_secs(40)).await;
    eprintln!("running v{v} after 3 failed computes and 1 unanswered, {t:?}");
    assert!(c.ledger.lock().unwrap().compute_faults.is_empty());
    assert!(c.leader().is_some());
    for id in ["p1", "p2"] {
        c.stop(id).await;
    }
}

/// A graceful stop whose container takes longer than the liveness timeout to stop: the
/// partitions must not move before it stopped (the row keeps heartbeating until then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_graceful_stop_keeps_its_partitions_until_the_container_stopped() {
    let mut c = Cluster::new();
    c.spawn_all(&["p1", "p2", "p3"]);
    let (v1, _) = c.settled(0, Duration::from_secs(20)).await;
    let follower = c.a_follower();
    let follower = follower.as_str();
    let takes = c.timing.liveness * 3;
    let started = Instant::now();
    let metrics = c.get(follower).coordinator.clone();
    let wakeups = || {
        metrics
            .metrics()
            .wakeups
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let woken_before = wakeups();
    // The stopping processor's row must hold its partitions while the container runs: the
    // ledger records a violation if another processor starts one meanwhile.
    c.slow_stop(follower, takes).await;
    assert!(
        started.elapsed() >= takes,
        "the stop returned before the container stopped"
    );
    // About one wake per heartbeat while it waits (found spinning by the simulator: the
    // ended lease keeper's channel was ready at every turn).
    let woken = wakeups() - woken_before;
    let heartbeats = (takes.as_millis() / c.timing.heartbeat.as_millis()) as u64;
    assert!(
        woken <= heartbeats * 4 + 20,
        "the loop woke {woken} times while the container stopped ({heartbeats} heartbeats)"
    );
    let (v2, t) = c.settled(v1, Duration::from_secs(20)).await;
    eprintln!("slow graceful stop of {follower} ({takes:?}): v{v2} {t:?} after it stopped");
    assert!(c.ledger.lock().unwrap().violations.is_empty());
    for id in c.procs.iter().map(|p| p.id.clone()).collect::<Vec<_>>() {
        c.stop(&id).await;
    }
}

/// A processor whose storage requests hang (storage accepts but never answers) must stop
/// processing on time, whatever request it is waiting on: the leader may hand its partitions
/// to others once the liveness timeout has passed since its last accepted heartbeat. Its
/// processing pauses at the self-fence deadline; when storage answers again and shows that the
/// job moved on without it, it stops its container for good and rejoins; it never processes
/// its old partitions next to their new owners (the ledger checks that throughout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_whose_requests_hang_pauses_on_time_and_stops_once_replaced() {
    let mut c = Cluster::new();
    c.spawn_all(&["p1", "p2", "p3"]);
    let (v1, _) = c.settled(0, Duration::from_secs(20)).await;
    let leader = c.leader().expect("a leader");
    let cut = ["p1", "p2", "p3"]
        .into_iter()
        .find(|p| *p != leader)
        .unwrap();
    let silence = c.timing.liveness * 2;
    let at = Instant::now();
    c.get(cut).storage.silent_outage(silence);
    let fence_bound = c.timing.self_fence();
    let metrics = c.get(cut).coordinator.clone();
    common::eventually("the cut processor to pause", silence, || {
        let paused = metrics
            .metrics()
            .paused
            .load(std::sync::atomic::Ordering::Acquire);
        async move { paused }
    })
    .await;
    let paused = at.elapsed();
    eprintln!("{cut} paused {paused:?} after its storage went silent (bound {fence_bound:?})");
    // Its last accepted heartbeat was before the cut, so the pause is due within the bound.
    assert!(
        paused <= fence_bound + Duration::from_millis(200),
        "{cut} paused {paused:?} after the cut, past the {fence_bound:?} bound"
    );
    let (v2, t) = c.settled(v1, Duration::from_secs(20)).await;
    eprintln!("all running v{v2} {t:?} later");
    let fenced = c
        .get(cut)
        .events
        .lock()
        .unwrap()
        .iter()
        .any(|(t, e)| *t > at && e.starts_with("Fence"));
    assert!(fenced, "{cut} was replaced but never stopped its container");
    assert!(c.ledger.lock().unwrap().violations.is_empty());
    for id in c.procs.iter().map(|p| p.id.clone()).collect::<Vec<_>>() {
        c.stop(&id).await;
    }
}

/// A storage stall that every processor sees, longer than the liveness timeout, must not
/// become a storm: processing pauses at the self-fence and resumes soon after storage answers
/// again, with no new version and no container stopped, since nobody could judge anybody dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_every_processor_sees_pauses_processing_and_moves_nothing() {
    let mut c = Cluster::new();
    c.spawn_all(&["p1", "p2", "p3"]);
    let (v1, _) = c.settled(0, Duration::from_secs(20)).await;
    let stall = c.timing.liveness * 3;
    let at = Instant::now();
    for p in &c.procs {
        p.storage.silent_outage(stall);
    }
    let coordinators: Vec<_> = c.procs.iter().map(|p| p.coordinator.clone()).collect();
    let gates_open = |open: bool| {
        let coordinators = coordinators.clone();
        move || {
            let all = coordinators
                .iter()
                .all(|c| (c.metrics().fence_remaining_nanos() >= 0) == open);
            async move { all }
        }
    };
    common::eventually("every processor to pause", stall, gates_open(false)).await;
    common::eventually(
        "every processor to resume",
        stall + Duration::from_secs(10),
        gates_open(true),
    )
    .await;
    let resumed = at.elapsed().saturating_sub(stall);
    eprintln!("all paused, and all resumed {resumed:?} after a {stall:?} stall ended");
    assert!(
        resumed <= Duration::from_secs(2),
        "processing resumed {resumed:?} after storage answered again"
    );
    // Let the leader watch for a liveness timeout and more: nothing may move.
    let (v, _) = c.settled(0, Duration::from_secs(5)).await;
    let watch = Instant::now();
    while watch.elapsed() < c.timing.liveness * 2 {
        c.ledger.lock().unwrap().check();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(v, v1, "a new version after the stall");
    for p in &c.procs {
        assert_eq!(c.running(&p.id), v1, "{} runs another version", p.id);
        let fences = c.fences_since(&p.id, at);
        assert_eq!(fences, 0, "{} stopped its container", p.id);
    }
    {
        let l = c.ledger.lock().unwrap();
        assert!(l.violations.is_empty(), "{:?}", l.violations);
        let starts = l.starts.len();
        assert_eq!(starts, 3, "containers were started again: {:?}", l.starts);
    }
    for id in ["p1", "p2", "p3"] {
        c.stop(id).await;
    }
}

/// A leader whose own requests were held through a stall, and answered once it ended, got
/// through without a failed call; yet it could not reach storage while the others' rows went
/// stale. It must not judge them dead on that evidence: a call's answer, not its start, says
/// when storage was last known reachable. (Found by `gradle faultBench`: a 5 s stall made the
/// successor break a live leader's lease, and the job rebalanced twice.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_calls_were_held_through_a_stall_judges_nobody_dead_on_it() {
    let mut c = Cluster::new();
    c.spawn_all(&["p1", "p2", "p3"]);
    let (v1, _) = c.settled(0, Duration::from_secs(20)).await;
    let leader = c.leader().expect("a leader");
    let stall = c.timing.liveness + c.timing.liveness / 3;
    let at = Instant::now();
    for p in &c.procs {
        if p.id == leader {
            // Its next heartbeat (a batch naming its row) is held for the stall, then applied:
            // as a call whose retries inside the client succeed once storage answers. The
            // engine, awaiting it, sends nothing else meanwhile.
            p.storage
                .inject_touching("batch", &leader, common::recording::Inject::Delay(stall));
        } else {
            // A little longer, so their rows are older than the liveness timeout when the
            // leader's held calls are answered.
            p.storage.silent_outage(stall + c.timing.liveness / 3);
        }
    }
    common::eventually(
        "every processor to run again",
        stall + Duration::from_secs(10),
        || {
            let done = at.elapsed() > stall * 2
                && c.procs
                    .iter()
                    .all(|p| p.coordinator.metrics().fence_remaining_nanos() >= 0);
            async move { done }
        },
    )
    .await;
    // Watch for two liveness timeouts more: nothing may move.
    let watch = Instant::now();
    while watch.elapsed() < c.timing.liveness * 2 {
        c.ledger.lock().unwrap().check();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (v, _) = c.settled(0, Duration::from_secs(5)).await;
    assert_eq!(
        v, v1,
        "a new version after the stall: someone was judged dead"
    );
    for p in &c.procs {
        let fences = c.fences_since(&p.id, at);
        assert_eq!(fences, 0, "{} stopped its container", p.id);
    }
    assert!(c.ledger.lock().unwrap().violations.is_empty());
    for id in ["p1", "p2", "p3"] {
        c.stop(id).await;
    }
}

/// One slow heartbeat of a leader that keeps reading the membership is not a stall: its scans
/// got answered meanwhile, so it goes on judging deaths. Counted from its heartbeats alone, the
/// gap (an interval plus the slow request) passed the reachability gap, and a follower that
/// died then waited a whole liveness timeout more to be replaced. (Seen in `gradle
/// failoverBench`: a kill -9 of a follower took 10.6 s.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_slow_heartbeat_of_a_leader_that_keeps_scanning_does_not_delay_judging_deaths() {
    use common::recording::Inject;
    let mut c = Cluster::new();
    // Wider than the shared test timings, so each side of the gap has a margin: heartbeats
    // alone give 1 + 3.2 = 4.2 s > 3.75 s; with scans every 0.1 s, about 3.3 s.
    c.timing.heartbeat = Duration::from_millis(1000);
    c.timing.liveness = Duration::from_millis(5000);
    assert_eq!(c.timing.reachability_gap(), Duration::from_millis(3750));
    c.spawn_all(&["p1", "p2", "p3"]);
    let (v1, _) = c.settled(0, Duration::from_secs(20)).await;
    let leader = c.leader().expect("a leader");
    let victim = c.a_follower();
    // Let the leader judge for a while first.
    c.reachable_for_a_while().await;
    let slow = Duration::from_millis(3200);
    c.get(&leader)
        .storage
        .inject_touching("batch", &leader, Inject::Delay(slow));
    let at = Instant::now();
    let survivors = c.crash_and_settle(&victim, v1).await;
    let took = at.elapsed();
    eprintln!("the survivors ran without {victim} {took:?} after it died");
    // Its row is dead 5 s after its last heartbeat (at most 1 s before the crash), seen at the
    // next scan, then a barrier of about a heartbeat: about 6 s. Deferring by a liveness
    // timeout after the slow heartbeat's answer would put it past 3.2 + 5 s, barrier aside.
    assert!(
        took < Duration::from_millis(7500),
        "{victim} was replaced only {took:?} after it died: the slow heartbeat deferred judging"
    );
    assert_eq!(
        c.get(&leader).storage.injections_left(),
        0,
        "the delay was never used"
    );
    for id in survivors {
        c.stop(&id).await;
    }
}

/// Found by the simulator (sim/tests/regressions.rs): after one failed heartbeat between short
/// gaps, a leader never judged anyone dead again, so a crash was never rebalanced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_judges_deaths_again_after_one_failed_heartbeat() {
    use common::recording::Inject;
    use samza_azure_coordinator::ErrorKind;
    let mut c = Cluster::new();
    c.spawn_all(&["p1", "p2", "p3"]);
    let (v1, _) = c.settled(0, Duration::from_secs(20)).await;
    let leader = c.leader().expect("a leader");
    let victim = c.a_follower();
    c.get(&leader)
        .storage
        .inject_touching("batch", &leader, Inject::Fail(ErrorKind::Transient));
    common::eventually(
        "the leader's heartbeat failed once",
        Duration::from_secs(10),
        || {
            let left = c.get(&leader).storage.injections_left();
            async move { left == 0 }
        },
    )
    .await;
    // Reachable again for a whole liveness timeout: deaths may be judged.
    c.reachable_for_a_while().await;
    for id in c.crash_and_settle(&victim, v1).await {
        c.stop(&id).await;
    }
}

impl Cluster {
    /// Two liveness timeouts: long enough for a leader to have reached storage for a whole
    /// liveness timeout, so that it may judge deaths.
    async fn reachable_for_a_while(&self) {
        let from = Instant::now();
        while from.elapsed() < self.timing.liveness * 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Crashes `victim` and waits until the others run a version after `after` without it;
    /// returns them.
    async fn crash_and_settle(&mut self, victim: &str, after: u64) -> Vec<String> {
        self.crash(victim);
        let survivors: Vec<String> = self
            .procs
            .iter()
            .map(|p| p.id.clone())
            .filter(|p| p != victim)
            .collect();
        let ids: Vec<&str> = survivors.iter().map(String::as_str).collect();
        self.settled_among(&ids, after, Duration::from_secs(20))
            .await;
        survivors
    }

    fn names(&self) -> samza_azure_coordinator::coordinator::names::JobNames {
        samza_azure_coordinator::coordinator::names::JobNames::new(&self.job, "1").unwrap()
    }

    /// Writes `body` over the job model document, as its leader could.
    async fn overwrite_document(&self, body: &'static [u8]) {
        let leader = self.leader().expect("a leader");
        let (_, lease) = self.get(&leader).storage.last_lease().expect("its lease");
        azurite()
            .storage()
            .replace_document(
                &self.names().job_model_blob(),
                bytes::Bytes::from_static(body),
                Guard::lease(lease),
            )
            .await
            .unwrap();
    }
}

/// A document nobody can decode (truncated, corrupt, or of a future format) is "no agreed
/// version": no processor fails; the leader publishes a version above every known one over
/// it, and the job runs on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_job_model_document_is_replaced_not_fatal() {
    let mut c = Cluster::new();
    c.spawn_all(&["p1", "p2", "p3"]);
    let (v1, _) = c.settled(0, Duration::from_secs(20)).await;
    c.overwrite_document(b"{\"format\":99,\"version\":\n garbage")
        .await;
    // The leader publishes a good version over it, which reaches everyone. A processor that
    // read the bad document meanwhile stopped its container; one that did not may keep an
    // unchanged container running into the new version: both are right.
    let (v2, t) = c.agreed(v1, Duration::from_secs(30)).await;
    eprintln!("running v{v2} {t:?} after the document was corrupted");
    let doc = azurite()
        .storage()
        .read_document(&c.names().job_model_blob())
        .await
        .unwrap();
    let header = doc.body.split(|b| *b == b'\n').next().unwrap().to_vec();
    assert!(String::from_utf8_lossy(&header).contains("\"format\":1"));
    for id in ["p1", "p2", "p3"] {
        c.stop(id).await;
    }
}

/// The job model blob is deleted while processors run (a reset, or an operator's mistake) and
/// a new processor recreates it: the first version after that must not skip the barrier,
/// since containers are still running, and versions must not go back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_job_model_document_does_not_skip_the_barrier() {
    let mut c = Cluster::new();
    for id in ["p1", "p2"] {
        c.spawn(id);
    }
    let (v1, _) = c.settled(0, Duration::from_secs(20)).await;
    c.spawn("p3");
    let (v2, _) = c.settled(v1, Duration::from_secs(20)).await;
    let blob = c.names().job_model_blob();
    let storage = azurite().storage();
    // A follower's backstop acquire may take the broken lease before the delete lands: then
    // break it again, a bounded number of times.
    let mut attempts = 0;
    loop {
        storage.break_lease(&blob, Duration::ZERO).await.unwrap();
        match storage.delete_document(&blob, Guard::NONE).await {
            Ok(()) => break,
            Err(e)
                if e.kind() == samza_azure_coordinator::ErrorKind::LeaseLost && attempts < 10 =>
            {
                attempts += 1
            }
            Err(e) => panic!("deleting {blob}: {e}"),
        }
    }
    let leader = c.leader().expect("a leader");
    c.crash(&leader);
    c.spawn("p4");
    let ids: Vec<String> = c.procs.iter().map(|p| p.id.clone()).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let (v3, t) = c.settled_among(&ids, v2, Duration::from_secs(40)).await;
    eprintln!("{ids:?} running v{v3} {t:?} after the document was deleted");
    assert!(c.ledger.lock().unwrap().violations.is_empty());
    for id in ids {
        c.stop(id).await;
    }
}

/// On Azure, creating the job model document while a leader holds its lease is refused for the
/// missing lease id (412 LeaseIdMissing), not as "already exists" (Azurite's 409). A processor
/// joining a running job must still register and get work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_joining_while_the_leader_holds_the_lease_gets_work() {
    let mut c = Cluster::new();
    c.spawn("p1");
    let (v1, _) = c.settled(0, Duration::from_secs(20)).await;
    assert_eq!(c.leader().as_deref(), Some("p1"));
    c.spawn("p2");
    let (v2, t) = c.settled(v1, Duration::from_secs(20)).await;
    eprintln!("p2 joined: v{v2} after {t:?}");
    for id in ["p1", "p2"] {
        c.stop(id).await;
    }
}

/// Notification rows of processors that crashed are collected, or the members partition
/// would grow with every crash (processor ids default to a fresh UUID per start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_rows_of_processors_that_are_gone_are_collected() {
    use samza_azure_coordinator::membership::partition_of;
    use samza_azure_coordinator::storage::{BatchOp, Entity, TableStore, WriteMode};
    let mut c = Cluster::new();
    let table = c.names().table;
    let storage = azurite().storage();
    storage.ensure_table(&table).await.unwrap();
    // All in one partition of the membership; the sweep reads every one.
    let partition = partition_of("ghost0");
    let partition = partition.as_str();
    let ghosts = (0..50)
        .map(|i| {
            BatchOp::Upsert(
                Entity::new(partition, format!("~probe~ghost{i}")),
                WriteMode::Merge,
            )
        })
        .collect();
    storage.batch(&table, partition, ghosts).await.unwrap();
    let count = || async {
        storage
            .query_partition(
                &table,
                partition,
                PageQuery {
                    filter: Some("RowKey ge '~probe~ghost' and RowKey lt '~probe~ghosu'"),
                    ..PageQuery::default()
                },
            )
            .await
            .unwrap()
            .entities
            .len()
    };
    assert_eq!(count().await, 50);
    c.spawn("p1");
    c.settled(0, Duration::from_secs(20)).await;
    common::eventually(
        "the ghosts' rows are gone",
        Duration::from_secs(10),
        || async { count().await == 0 },
    )
    .await;
    c.stop("p1").await;
}

/// The reset that keeps the checkpoints (delete the job's container and membership table,
/// keep the checkpoint table): versions start again, and must start above the checkpoints'
/// generations, or every container's claim is refused until they catch up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_reset_that_keeps_the_checkpoints_versions_start_above_them() {
    use samza_azure_coordinator::checkpoint::CheckpointStore;
    let mut c = Cluster::new();
    let table = c.names().checkpoint_table;
    // An earlier life of the job left its checkpoints, claimed up to generation 57.
    let earlier = CheckpointStore::new(Arc::new(azurite().storage()), &table, "earlier");
    earlier.create_resources().await.unwrap();
    earlier.claim("Partition 0", 57).await.unwrap();
    c.spawn("p1");
    let (v, _) = c.settled(0, Duration::from_secs(20)).await;
    let now = CheckpointStore::new(Arc::new(azurite().storage()), &table, "p1");
    now.claim("Partition 0", v)
        .await
        .unwrap_or_else(|e| panic!("a container of version {v} cannot claim its task: {e}"));
    c.stop("p1").await;
}

/// A processor whose Java side never answers a Prepare must not hold every later rebalance
/// hostage: past the barrier timeout it stops claiming to be alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_that_never_answers_cannot_hold_the_job_hostage() {
    let mut c = Cluster::new();
    for id in ["p1", "p2"] {
        c.spawn(id);
    }
    let (v1, _) = c.settled(0, Duration::from_secs(20)).await;
    let leader = c.leader().expect("a leader");
    let stuck = if leader == "p1" { "p2" } else { "p1" };
    c.get(stuck).control.send(Control::IgnorePrepares).unwrap();
    c.spawn("p3");
    // Barrier timeout (5 s here), then the liveness timeout, then a version without it.
    let (v, t) = c
        .settled_among(&[leader.as_str(), "p3"], v1, Duration::from_secs(40))
        .await;
    eprintln!("{leader} and p3 run v{v} without the unanswering {stuck}, {t:?} after the join");
    for id in c.procs.iter().map(|p| p.id.clone()).collect::<Vec<_>>() {
        c.stop(&id).await;
    }
}

/// A paused processor (past its self-fence, storage refusing it) waits between its heartbeat
/// retries like any other: its self-fence deadline, long past, must not wake it over and over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_processor_sleeps_between_its_retries() {
    let mut c = Cluster::new();
    c.spawn("p1");
    c.settled(0, Duration::from_secs(20)).await;
    let p = c.get("p1");
    let outage = c.timing.liveness * 4;
    p.storage.outage(outage);
    let metrics = p.coordinator.clone();
    common::eventually("p1 to pause", outage, || {
        let paused = metrics
            .metrics()
            .paused
            .load(std::sync::atomic::Ordering::Acquire);
        async move { paused }
    })
    .await;
    let wakeups = || {
        metrics
            .metrics()
            .wakeups
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let (w0, t0) = (wakeups(), Instant::now());
    // Measure over a fixed window inside the outage: the quantity is a rate.
    tokio::time::sleep(c.timing.liveness).await;
    let rate = (wakeups() - w0) as f64 / t0.elapsed().as_secs_f64();
    let t = &c.timing;
    let bound = 2.0 * (4.0 / t.heartbeat.as_secs_f64() + 1.0 / t.scan.as_secs_f64()) + 5.0;
    eprintln!("paused: {rate:.1} wake-ups per second (bound {bound:.0})");
    assert!(
        rate <= bound,
        "a paused processor woke {rate:.0} times a second: it spins"
    );
    c.stop("p1").await;
}
