//! The coordinator's own code over a `MemStore`: callers cannot tell it from the adapter.

use std::sync::Arc;
use std::time::Duration;

use samza_azure_coordinator::storage::TableStore;
use samza_azure_coordinator::ErrorKind;
use tokio::time::advance;

use super::*;
use crate::memstore::MemStore;
/// The real membership and checkpoint code over the in-memory store, as against Azurite in
/// `tests/membership.rs` and `tests/checkpoint.rs`.
#[tokio::test(start_paused = true)]
async fn membership_and_checkpoints_run_unchanged() {
    use samza_azure_coordinator::checkpoint::{CheckpointStore, INLINE_CHUNKS};
    use samza_azure_coordinator::membership::{Heartbeat, Membership};

    const TIMEOUT: Duration = Duration::from_secs(10);
    let s = Arc::new(MemStore::new());
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
