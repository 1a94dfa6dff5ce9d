//! The coordinator's own code over a `MemStore`: callers cannot tell it from the adapter.

use std::sync::Arc;
use std::time::Duration;

use samza_azure_coordinator::storage::TableStore;
use samza_azure_coordinator::ErrorKind;
use tokio::time::advance;

use super::*;
use crate::memstore::{Endpoint, MemStore};
/// The real membership and checkpoint code over the in-memory store, as against Azurite in
/// `tests/membership.rs` and `tests/checkpoint.rs`.
#[tokio::test(start_paused = true)]
async fn membership_and_checkpoints_run_unchanged() {
    use samza_azure_coordinator::checkpoint::{CheckpointStore, INLINE_CHUNKS};
    use samza_azure_coordinator::membership::{Heartbeat, Membership};

    const TIMEOUT: Duration = Duration::from_secs(10);
    let s = Arc::new(Endpoint(MemStore::new()));
    let ids = |v: Vec<&samza_azure_coordinator::membership::Member>| {
        v.iter().map(|m| m.processor_id.clone()).collect::<Vec<_>>()
    };
    let mut a = Membership::new(s.as_ref(), "members1", "proc-a").unwrap();
    let mut b = Membership::new(s.as_ref(), "members1", "proc-b").unwrap();
    let mut c = Membership::new(s.as_ref(), "members1", "proc-c").unwrap();
    a.register().await.unwrap();
    b.register().await.unwrap();
    c.register().await.unwrap();
    let Heartbeat::Notified(mut etag) = a.heartbeat_watching(None).await.unwrap() else {
        panic!("the first watch asks for a re-read");
    };
    for _ in 0..3 {
        advance(secs(4)).await;
        match a.heartbeat_watching(Some(&etag)).await.unwrap() {
            Heartbeat::Quiet(e) => etag = e,
            other => panic!("nobody touched it: {other:?}"),
        }
        b.heartbeat().await.unwrap();
    }
    b.notify(&["proc-a".to_string()]).await.unwrap();
    assert!(matches!(
        a.heartbeat_watching(Some(&etag)).await.unwrap(),
        Heartbeat::Notified(_)
    ));
    // c stopped heartbeating 12 s ago (virtual), by server time.
    let snap = a.snapshot().await.unwrap();
    assert_eq!(ids(snap.live(TIMEOUT)), ["proc-a", "proc-b"]);
    assert_eq!(ids(snap.dead(TIMEOUT)), ["proc-c"]);
    assert_eq!(a.remove_dead(&snap, TIMEOUT).await.unwrap(), ["proc-c"]);
    assert_eq!(
        ids(a.snapshot().await.unwrap().live(TIMEOUT)),
        ["proc-a", "proc-b"]
    );
    b.leave().await.unwrap();
    assert_eq!(ids(a.snapshot().await.unwrap().live(TIMEOUT)), ["proc-a"]);

    // Checkpoints: ownership fencing and a checkpoint too large for the owner row.
    let old = CheckpointStore::new(s.clone(), "checkpoints1", "p1");
    old.create_resources().await.unwrap();
    let new = CheckpointStore::new(s.clone(), "checkpoints1", "p2");
    let task = "Partition 0";
    old.claim(task, 5).await.unwrap();
    old.write(task, 1, "offsets of p1").await.unwrap();
    new.claim(task, 7).await.unwrap();
    assert_eq!(new.read(task).await.unwrap()[&1], "offsets of p1");
    let err = old.write(task, 1, "late").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fenced, "{err}");
    let big: String = (0..40_000)
        .map(|i| format!("{{\"ssp\":{i},\"offset\":\"{i:020}\"}}"))
        .collect();
    assert!(big.len() > INLINE_CHUNKS * 32_000);
    new.write(task, 2, &big).await.unwrap();
    new.write(task, 1, "offsets of p2").await.unwrap();
    let third = CheckpointStore::new(s.clone(), "checkpoints1", "p3");
    third.claim(task, 8).await.unwrap();
    let read = third.read(task).await.unwrap();
    assert_eq!(
        (read[&1].as_str(), read[&2] == big),
        ("offsets of p2", true)
    );
    third.write(task, 2, "small").await.unwrap();
    let rows = s
        .partition_rows("checkpoints1", "tasks", None)
        .await
        .unwrap();
    assert_eq!(keys(&rows), ["Partition 0|owner"]);
}

/// The lease keeper over the in-memory store: one leader at a time, a take-over after the
/// holder stops renewing, and the old holder's fenced writes refused.
#[tokio::test(start_paused = true)]
async fn the_lease_keeper_elects_one_leader() {
    use samza_azure_coordinator::lease::{LeaseKeeper, LeaseTiming};
    use samza_azure_coordinator::storage::{BlobRef, DocumentStore, Guard, LeaseStore};

    let s = Arc::new(Endpoint(MemStore::new()));
    s.ensure_container("samza").await.unwrap();
    let blob = BlobRef::new("samza", "leader").unwrap();
    s.create_document(&blob, bytes::Bytes::from_static(b"lease"))
        .await
        .unwrap();
    let timing = LeaseTiming {
        duration: Duration::from_secs(15),
        renew_interval: Duration::from_secs(1),
        acquire_interval: Duration::from_millis(300),
        safety_margin: Duration::from_secs(1),
    };
    let store: Arc<dyn LeaseStore> = s.clone();
    let mut first = LeaseKeeper::spawn(store.clone(), blob.clone(), timing.clone()).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = LeaseKeeper::spawn(store, blob.clone(), timing).unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let lease = first.state().lease().expect("the first keeper leads");
    assert!(!second.state().is_leader());
    // Writes fenced by the leader's lease pass; without it they are refused.
    s.replace_document(&blob, bytes::Bytes::from_static(b"x"), Guard::lease(lease))
        .await
        .unwrap();
    let e = s
        .replace_document(&blob, bytes::Bytes::from_static(b"x"), Guard::NONE)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LeaseLost);
    first.stop().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let next = second.state().lease().expect("the second keeper took over");
    assert_ne!(next, lease);
    let e = s
        .replace_document(&blob, bytes::Bytes::from_static(b"x"), Guard::lease(lease))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LeaseLost);
}

/// The same requests at the same virtual instants give the same answers, ETags, lease ids
/// and timestamps included: nothing depends on the wall clock, randomness or hash order.
#[tokio::test(start_paused = true)]
async fn answers_are_deterministic() {
    use crate::memstore::{Answer, Op};
    use samza_azure_coordinator::storage::{BatchOp, BlobRef, Entity, LeaseDuration, WriteMode};

    async fn run() -> Vec<String> {
        let s = Endpoint(MemStore::new());
        let blob = BlobRef::new("jobs", "j-1/jobmodel").unwrap();
        let rows = |n: usize| {
            (0..n)
                .map(|i| {
                    BatchOp::Upsert(
                        Entity::new("p", format!("r{i}")).with("x", i as i64),
                        WriteMode::Merge,
                    )
                })
                .collect::<Vec<_>>()
        };
        let ops = vec![
            Op::EnsureContainer {
                container: "jobs".into(),
            },
            Op::CreateDocument {
                blob: blob.clone(),
                body: bytes::Bytes::from_static(b"v1"),
            },
            Op::AcquireLease {
                blob: blob.clone(),
                duration: LeaseDuration::Seconds(15),
                proposed: None,
            },
            Op::BreakLease {
                blob: blob.clone(),
                period: Duration::from_secs(7),
            },
            Op::EnsureTable {
                table: "members".into(),
            },
            Op::Batch {
                table: "members".into(),
                partition_key: "p".into(),
                ops: rows(50),
            },
            Op::QueryPartition {
                table: "members".into(),
                partition_key: "p".into(),
                filter: None,
                page_size: Some(10),
                continuation: None,
            },
            Op::ReadDocument { blob: blob.clone() },
        ];
        let mut out = Vec::new();
        for op in &ops {
            tokio::time::advance(Duration::from_millis(1_234)).await;
            let a: Result<Answer, _> = s.apply(op);
            out.push(format!("{a:?}"));
        }
        out
    }
    assert_eq!(run().await, run().await);
}
