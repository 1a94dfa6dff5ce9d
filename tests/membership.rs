//! Membership rows and server-time liveness against a real Azurite.

mod common;

use std::time::{Duration, Instant};

use common::{azurite, unique};
use samza_azure_coordinator::membership::Membership;
use samza_azure_coordinator::storage::AzureStorage;

const TIMEOUT: Duration = Duration::from_secs(2);

fn ids(v: Vec<&samza_azure_coordinator::membership::Member>) -> Vec<String> {
    v.into_iter().map(|m| m.processor_id.clone()).collect()
}

#[tokio::test]
async fn heartbeats_keep_members_live_and_silence_makes_them_dead() {
    let s: Vec<AzureStorage> = (0..3).map(|_| azurite().storage()).collect();
    let table = unique("members");
    let mut a = Membership::new(&s[0], &table, "proc-a").unwrap();
    let mut b = Membership::new(&s[1], &table, "proc-b").unwrap();
    let mut c = Membership::new(&s[2], &table, "proc-c").unwrap();
    for m in [&mut a, &mut b, &mut c] {
        m.register().await.unwrap();
    }
    let snap = a.snapshot().await.unwrap();
    assert_eq!(ids(snap.live(TIMEOUT)), ["proc-a", "proc-b", "proc-c"]);

    // a and b keep heartbeating; c falls silent. Judged on server time only.
    let start = Instant::now();
    let snap = loop {
        a.heartbeat().await.unwrap();
        b.heartbeat().await.unwrap();
        let snap = a.snapshot().await.unwrap();
        if !snap.dead(TIMEOUT).is_empty() {
            break snap;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "silent member never judged dead"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        start.elapsed() >= TIMEOUT - Duration::from_millis(300),
        "judged dead too soon: {:?}",
        start.elapsed()
    );
    assert_eq!(ids(snap.dead(TIMEOUT)), ["proc-c"]);
    assert_eq!(ids(snap.live(TIMEOUT)), ["proc-a", "proc-b"]);
    assert!(
        snap.members
            .iter()
            .find(|m| m.processor_id == "proc-a")
            .unwrap()
            .heartbeats
            > 0
    );

    assert_eq!(a.remove_dead(&snap, TIMEOUT).await.unwrap(), ["proc-c"]);
    let after = a.snapshot().await.unwrap();
    assert_eq!(ids(after.live(TIMEOUT)), ["proc-a", "proc-b"]);
    assert!(after.dead(TIMEOUT).is_empty());
}

#[tokio::test]
async fn a_member_that_heartbeats_after_the_snapshot_is_not_removed() {
    let (s1, s2) = (azurite().storage(), azurite().storage());
    let table = unique("members");
    let mut leader = Membership::new(&s1, &table, "leader").unwrap();
    let mut slow = Membership::new(&s2, &table, "slow").unwrap();
    leader.register().await.unwrap();
    slow.register().await.unwrap();
    let start = Instant::now();
    let snap = loop {
        leader.heartbeat().await.unwrap();
        let snap = leader.snapshot().await.unwrap();
        if !snap.dead(TIMEOUT).is_empty() {
            break snap;
        }
        assert!(start.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The slow processor was only paused: it heartbeats before the leader acts on the snapshot.
    slow.heartbeat().await.unwrap();
    assert!(
        leader.remove_dead(&snap, TIMEOUT).await.unwrap().is_empty(),
        "a live row was removed"
    );
    leader.heartbeat().await.unwrap();
    assert_eq!(
        ids(leader.snapshot().await.unwrap().live(TIMEOUT)),
        ["leader", "slow"]
    );
}

#[tokio::test]
async fn graceful_leave_removes_the_row_at_once() {
    let s = azurite().storage();
    let table = unique("members");
    let mut a = Membership::new(&s, &table, "a").unwrap();
    let mut b = Membership::new(&s, &table, "b").unwrap();
    a.register().await.unwrap();
    b.register().await.unwrap();
    b.leave().await.unwrap();
    b.leave().await.unwrap(); // idempotent
    assert_eq!(ids(a.snapshot().await.unwrap().live(TIMEOUT)), ["a"]);
    b.register().await.unwrap();
    assert_eq!(ids(a.snapshot().await.unwrap().live(TIMEOUT)), ["a", "b"]);
    let e = Membership::new(&s, &table, "bad/id")
        .err()
        .expect("invalid id");
    assert!(e.message().contains("processor id"), "{e}");
}

/// The heartbeat doubles as notification: quiet until someone touches the row's probe, then
/// one "notified", then quiet again; probes never count as members.
#[tokio::test]
async fn heartbeats_learn_of_notifications_in_the_same_request() {
    use samza_azure_coordinator::membership::Heartbeat;
    let (s1, s2) = (azurite().storage(), azurite().storage());
    let table = unique("notify");
    let mut a = Membership::new(&s1, &table, "proc-a").unwrap();
    let leader = Membership::new(&s2, &table, "proc-l").unwrap();
    a.register().await.unwrap();

    let Heartbeat::Notified(mut etag) = a.heartbeat_watching(None).await.unwrap() else {
        panic!("the first watch must ask for a re-read");
    };
    for _ in 0..2 {
        match a.heartbeat_watching(Some(&etag)).await.unwrap() {
            Heartbeat::Quiet(e) => etag = e,
            other => panic!("nobody touched it, got {other:?}"),
        }
    }
    leader.notify(&["proc-a".to_string()]).await.unwrap();
    match a.heartbeat_watching(Some(&etag)).await.unwrap() {
        Heartbeat::Notified(e) => etag = e,
        other => panic!("a touch must be seen, got {other:?}"),
    }
    assert!(matches!(
        a.heartbeat_watching(Some(&etag)).await.unwrap(),
        Heartbeat::Quiet(_)
    ));
    let snap = a.snapshot().await.unwrap();
    assert_eq!(ids(snap.live(TIMEOUT)), ["proc-a"]);
    assert!(
        Membership::new(&s1, &table, "~probe~x").is_err(),
        "ids of special rows are refused"
    );
}

/// A snapshot that spans pages must judge each row against storage's time when its page was
/// read. Here the second page comes back late while everyone keeps heartbeating: a member of
/// the first page must not look dead next to a row written long after that page was read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_second_page_does_not_make_a_live_member_of_the_first_dead() {
    use common::recording::{Inject, Recording};
    use samza_azure_coordinator::membership::partition_of;
    use samza_azure_coordinator::storage::{BatchOp, Entity, TableStore, WriteMode};
    let table = unique("pages");
    // "a", the late row and the observer share one partition (the observer reads its own
    // first), so its two pages are the snapshot's first two reads.
    let partition = partition_of("a");
    let near = |prefix: &str| {
        (0..)
            .map(|n| format!("{prefix}{n}"))
            .find(|id| partition_of(id) == partition)
            .unwrap()
    };
    let (z_id, observer_id) = (near("z"), near("observer"));
    let observer_store = Recording::new(azurite().storage());
    let store = azurite().storage();
    let mut a = Membership::new(&store, &table, "a").unwrap();
    a.register().await.unwrap();
    // 999 more rows: "a" and 999 of them fill the first page of 1,000; z is on the second.
    for chunk in (0..999).collect::<Vec<u32>>().chunks(100) {
        let ops = chunk
            .iter()
            .map(|i| {
                BatchOp::Upsert(
                    Entity::new(&partition, format!("f{i:04}")),
                    WriteMode::Replace,
                )
            })
            .collect();
        store.batch(&table, &partition, ops).await.unwrap();
    }
    let writer = azurite().storage();
    let mut z = Membership::new(&writer, &table, &z_id).unwrap();
    z.register().await.unwrap();
    a.heartbeat().await.unwrap();

    let slow = TIMEOUT * 2;
    observer_store.inject("query_partition", Inject::Delay(Duration::ZERO));
    observer_store.inject("query_partition", Inject::Delay(slow));
    let observer = Membership::new(&observer_store, &table, &observer_id).unwrap();
    let scan = observer.snapshot();
    let beat = async {
        // "z" heartbeats while the second page is on its way; "a" does too, but the snapshot
        // saw it on the first page.
        let until = Instant::now() + slow;
        while Instant::now() < until {
            z.heartbeat().await.unwrap();
            a.heartbeat().await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let (snap, ()) = tokio::join!(scan, beat);
    let snap = snap.unwrap();
    assert_eq!(snap.members.len(), 1001);
    let live = ids(snap.live(TIMEOUT));
    assert!(
        live.contains(&"a".to_owned()),
        "a heartbeating member read on the first page was judged dead"
    );
}

/// Two live processes with the same processor id would both write one row and both look like
/// one healthy member: the one whose conditional heartbeat is refused by the other's write
/// finds a foreign incarnation in its row and fails with an error naming the id.
#[tokio::test]
async fn two_live_processes_with_one_processor_id_are_told_apart() {
    use samza_azure_coordinator::membership::MemberState;
    let table = unique("dupes");
    let (s1, s2) = (azurite().storage(), azurite().storage());
    let mut first = Membership::new(&s1, &table, "p1").unwrap();
    first.set_state(MemberState {
        incarnation: "first".into(),
        ..MemberState::default()
    });
    first.register().await.unwrap();
    let mut probe = match first.heartbeat_watching(None).await.unwrap() {
        samza_azure_coordinator::membership::Heartbeat::Notified(e)
        | samza_azure_coordinator::membership::Heartbeat::Quiet(e) => e,
    };
    probe = match first.heartbeat_watching(Some(&probe)).await.unwrap() {
        samza_azure_coordinator::membership::Heartbeat::Quiet(e) => e,
        other => panic!("no one touched the notification row: {other:?}"),
    };
    let mut second = Membership::new(&s2, &table, "p1").unwrap();
    second.set_state(MemberState {
        incarnation: "second".into(),
        ..MemberState::default()
    });
    second.register().await.unwrap();
    let e = first
        .heartbeat_watching(Some(&probe))
        .await
        .expect_err("a heartbeat over another process's row must fail");
    assert!(
        e.message().contains("processor.id") && e.message().contains("'p1'"),
        "{e}"
    );
}
