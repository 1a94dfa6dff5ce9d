//! Task checkpoints against a real Azurite: atomic writes, fencing of stale owners, large
//! checkpoints, clearing, and reading upstream samza-azure's layout.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::recording::{Inject, Recording};
use common::{azurite, unique};
use samza_azure_coordinator::checkpoint::{self, CheckpointStore, MAX_CHECKPOINT_BYTES};
use samza_azure_coordinator::storage::{
    AzureStorage, Entity, IfMatch, PageQuery, TableStore, Update,
};
use samza_azure_coordinator::ErrorKind;

async fn store(table: &str, processor: &str) -> CheckpointStore<AzureStorage> {
    let s = CheckpointStore::new(Arc::new(azurite().storage()), table, processor);
    s.create_resources().await.unwrap();
    s
}

/// A store whose requests are recorded, to count them and see which storage refused.
async fn recorded_store(
    table: &str,
    processor: &str,
) -> (Arc<Recording>, CheckpointStore<Recording>) {
    let recording = Arc::new(Recording::new(azurite().storage()));
    let s = CheckpointStore::new(recording.clone(), table, processor);
    s.create_resources().await.unwrap();
    (recording, s)
}

/// The task's row keys, without the task's own prefix (`owner`, `v2.0`, ...).
async fn row_keys(table: &str, task: &str) -> Vec<String> {
    let raw = azurite()
        .storage()
        .query_partition(table, checkpoint::PARTITION, PageQuery::default())
        .await
        .unwrap();
    let prefix = format!("{}|", checkpoint::task_key(task));
    raw.entities
        .into_iter()
        .filter_map(|e| e.row_key.strip_prefix(&prefix).map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_stale_owner_cannot_overwrite_the_new_owners_checkpoint() {
    let table = unique("cp");
    let old = store(&table, "p1").await;
    let new = store(&table, "p2").await;
    let task = "Partition 0";

    old.claim(task, 5).await.unwrap();
    assert!(old.read(task).await.unwrap().is_empty());
    old.write(task, 1, "offsets of p1").await.unwrap();

    // A rebalance gives the task to p2 at version 7; p2 sees p1's last checkpoint.
    new.claim(task, 7).await.unwrap();
    assert_eq!(new.read(task).await.unwrap()[&1], "offsets of p1");

    // p1, a zombie still running version 5, tries to commit: refused, nothing applied.
    let err = old.write(task, 1, "late offsets of p1").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fenced, "{err}");
    assert!(
        err.message().contains("'p2'") && err.message().contains("version 7"),
        "{err}"
    );
    new.write(task, 1, "offsets of p2").await.unwrap();
    let err = old.write(task, 2, "v2 of p1").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fenced);

    // A fresh read by anyone sees p2's checkpoint only.
    let reader = store(&table, "p3").await;
    reader.claim(task, 8).await.unwrap();
    let read = reader.read(task).await.unwrap();
    assert_eq!(read[&1], "offsets of p2");
    assert!(!read.contains_key(&2), "{read:?}");

    // And p1 cannot even claim with its old generation.
    let err = old.claim(task, 5).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fenced);
}

#[tokio::test]
async fn large_checkpoints_span_rows_atomically_and_shrink_cleanly() {
    let table = unique("cp");
    let s = store(&table, "p1").await;
    let task = "task/with#odd?chars\\";
    s.claim(task, 1).await.unwrap();

    // ~2 MiB: rows of its own, written with the owner row in one transaction.
    let big: String = (0..40_000)
        .map(|i| format!("{{\"ssp\":{i},\"offset\":\"{i:020}\"}}"))
        .collect();
    assert!(big.len() > 1024 * 1024 && big.len() < MAX_CHECKPOINT_BYTES);
    s.write(task, 2, &big).await.unwrap();
    s.write(task, 1, "small v1").await.unwrap();
    let keys = row_keys(&table, task).await;
    assert!(
        keys.len() > 2 && keys[0] == "owner" && keys[1..].iter().all(|k| k.starts_with("v2.")),
        "{keys:?}"
    );

    let other = store(&table, "p2").await;
    other.claim(task, 2).await.unwrap();
    let read = other.read(task).await.unwrap();
    assert_eq!(read[&2], big);
    assert_eq!(read[&1], "small v1");

    // Shrinking deletes the rows the big one used: nothing stale is left to misread.
    other.write(task, 2, "small v2").await.unwrap();
    let third = store(&table, "p3").await;
    third.claim(task, 3).await.unwrap();
    assert_eq!(third.read(task).await.unwrap()[&2], "small v2");
    // Small checkpoints live in the owner row itself.
    assert_eq!(row_keys(&table, task).await, ["owner"]);

    let too_big = "z".repeat(MAX_CHECKPOINT_BYTES + 1);
    let err = third.write(task, 1, &too_big).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert!(err.message().contains(task), "{err}");
}

#[tokio::test]
async fn writing_an_unclaimed_task_names_it() {
    let s = store(&unique("cp"), "p1").await;
    let err = s.write("Partition 9", 1, "x").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.message().contains("Partition 9"), "{err}");
}

#[tokio::test]
async fn clear_removes_every_row_of_the_tasks() {
    let table = unique("cp");
    let s = store(&table, "p1").await;
    for t in ["a", "b"] {
        s.claim(t, 1).await.unwrap();
        s.write(t, 1, t).await.unwrap();
    }
    s.clear(&["a".to_owned()]).await.unwrap();
    let r = store(&table, "p2").await;
    r.claim("a", 2).await.unwrap();
    r.claim("b", 2).await.unwrap();
    assert!(r.read("a").await.unwrap().is_empty());
    assert_eq!(r.read("b").await.unwrap()[&1], "b");
}

#[tokio::test]
async fn upstream_rows_are_read_as_written_by_samza_azure() {
    let az = azurite().storage();
    let job = format!("{}-job", unique("legacy"));
    let table = checkpoint::upstream_table(&job);
    az.ensure_table(&table).await.unwrap();
    let ssp = r#"{"system":"eventhubs","partition":"3","stream":"orders"}"#;
    az.insert_entity(
        &table,
        &Entity::new("Partition 3", ssp).with("Offset", "1234"),
    )
    .await
    .unwrap();
    let rows = checkpoint::read_upstream(&az, &table, "Partition 3")
        .await
        .unwrap();
    assert_eq!(rows, vec![(ssp.to_owned(), Some("1234".to_owned()))]);
    assert!(checkpoint::read_upstream(&az, &table, "Partition 4")
        .await
        .unwrap()
        .is_empty());
    assert!(
        checkpoint::read_upstream(&az, "nosuchtable1", "Partition 3")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn claiming_many_tasks_at_once_takes_each_or_fails_on_a_newer_owner() {
    let table = unique("cp");
    let tasks: Vec<String> = (0..40).map(|i| format!("Partition {i}")).collect();
    let old = store(&table, "p1").await;
    old.claim_all(&tasks, 4).await.unwrap();
    for t in &tasks {
        old.write(t, 1, t).await.unwrap();
    }
    // A newer container takes them all and sees every checkpoint.
    let new = store(&table, "p2").await;
    new.claim_all(&tasks, 5).await.unwrap();
    for t in &tasks {
        assert_eq!(new.read(t).await.unwrap()[&1], *t);
    }
    // The old generation cannot take them back.
    let err = old.claim_all(&tasks, 4).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fenced, "{err}");
}

/// A write of ours that storage applied without us hearing so moves the owner row's ETag; the
/// next write finds the task still ours and goes through instead of failing the commit.
#[tokio::test]
async fn a_moved_etag_with_the_same_owner_is_retried_not_failed() {
    let table = unique("cp");
    let s = store(&table, "p1").await;
    s.claim("t", 3).await.unwrap();
    s.write("t", 1, "first").await.unwrap();
    // What a lost answer leaves behind: the row changed, still owned by p1 at generation 3.
    let az = azurite().storage();
    let row = az
        .get_entity(&table, checkpoint::PARTITION, "t|owner")
        .await
        .unwrap();
    let touch = Entity::new(checkpoint::PARTITION, "t|owner").with("processor", "p1");
    az.update_entity(
        &table,
        &touch,
        Update::merge(IfMatch::ETag(row.etag.unwrap())),
    )
    .await
    .unwrap();
    s.write("t", 1, "second").await.unwrap();
    let r = store(&table, "p2").await;
    r.claim("t", 4).await.unwrap();
    assert_eq!(r.read("t").await.unwrap()[&1], "second");
}

/// Concurrent commits of different tasks share requests (a container commits its tasks on a
/// pool of threads), and every one of them lands.
#[tokio::test]
async fn concurrent_commits_share_requests_and_all_land() {
    let table = unique("cp");
    let (recording, s) = recorded_store(&table, "p1").await;
    let tasks: Vec<String> = (0..16).map(|i| format!("Partition {i}")).collect();
    s.claim_all(&tasks, 1).await.unwrap();
    let before = recording.writes().len();

    let commits = tasks.iter().map(|t| s.write(t, 1, t));
    for result in futures::future::join_all(commits).await {
        result.unwrap();
    }
    let requests = &recording.writes()[before..];
    assert!(
        requests.len() <= 4 && requests.iter().all(|w| w.accepted),
        "16 commits took {} requests: {requests:?}",
        requests.len()
    );
    assert!(
        requests.iter().any(|w| w.op.starts_with("batch ")),
        "{requests:?}"
    );

    let reader = store(&table, "p2").await;
    reader.claim_all(&tasks, 2).await.unwrap();
    for t in &tasks {
        assert_eq!(reader.read(t).await.unwrap()[&1], *t);
    }
}

/// A stale commit in a group must not fail the others: the transaction fails as a whole, then
/// each commit is judged alone.
#[tokio::test]
async fn a_stale_commit_in_a_group_fails_alone() {
    let table = unique("cp");
    let (recording, old) = recorded_store(&table, "p1").await;
    let tasks: Vec<String> = (0..8).map(|i| format!("Partition {i}")).collect();
    old.claim_all(&tasks, 1).await.unwrap();
    let new = store(&table, "p2").await;
    new.claim(&tasks[3], 2).await.unwrap();
    new.write(&tasks[3], 1, "p2's").await.unwrap();

    let commits = tasks.iter().map(|t| old.write(t, 1, "p1's"));
    let results = futures::future::join_all(commits).await;
    // The group's transaction was refused as a whole, because of the one stale merge in it.
    assert!(
        recording
            .writes()
            .iter()
            .any(|w| w.op.starts_with("batch ") && !w.accepted),
        "{:?}",
        recording.writes()
    );
    for (t, r) in tasks.iter().zip(&results) {
        if t == &tasks[3] {
            assert_eq!(r.as_ref().unwrap_err().kind(), ErrorKind::Fenced, "{r:?}");
        } else {
            r.as_ref().unwrap();
        }
    }
    let reader = store(&table, "p3").await;
    reader.claim_all(&tasks, 3).await.unwrap();
    for t in &tasks {
        let want = if t == &tasks[3] { "p2's" } else { "p1's" };
        assert_eq!(reader.read(t).await.unwrap()[&1], want, "{t}");
    }
}

/// Task names that differ only past a character the layout escapes, or that prefix each other,
/// keep separate rows.
#[tokio::test]
async fn tasks_whose_names_prefix_each_other_stay_apart() {
    let table = unique("cp");
    let s = store(&table, "p1").await;
    let tasks = ["a", "a|owner", "a|", "ab", "a b", "a%7C", "a'b", "a}"];
    for t in tasks {
        s.claim(t, 1).await.unwrap();
        s.write(t, 1, t).await.unwrap();
    }
    let r = store(&table, "p2").await;
    for t in tasks {
        r.claim(t, 2).await.unwrap();
        assert_eq!(r.read(t).await.unwrap()[&1], t);
        assert_eq!(row_keys(&table, t).await, ["owner"], "{t}");
    }
    r.clear(&["a".to_owned()]).await.unwrap();
    let again = store(&table, "p3").await;
    again.claim("a", 3).await.unwrap();
    assert!(again.read("a").await.unwrap().is_empty());
    again.claim("ab", 3).await.unwrap();
    assert_eq!(again.read("ab").await.unwrap()[&1], "ab");
}

/// A commit abandoned while its group's request is in flight (its caller's future dropped)
/// strands nobody: the commits queued behind it still go, and the abandoned task can commit
/// again.
#[tokio::test]
async fn an_abandoned_commit_strands_nobody() {
    let table = unique("cp");
    let s = store(&table, "p1").await;
    let tasks: Vec<String> = (0..6).map(|i| format!("Partition {i}")).collect();
    s.claim_all(&tasks, 1).await.unwrap();

    let mut first = Box::pin(s.write(&tasks[0], 1, "abandoned"));
    assert!(
        futures::poll!(&mut first).is_pending(),
        "no request in flight"
    );
    let mut rest = Box::pin(futures::future::join_all(
        tasks[1..].iter().map(|t| s.write(t, 1, t)),
    ));
    assert!(futures::poll!(&mut rest).is_pending());
    drop(first);
    let results = tokio::time::timeout(std::time::Duration::from_secs(20), rest)
        .await
        .expect("the queued commits were stranded");
    for r in results {
        r.unwrap();
    }
    s.write(&tasks[0], 1, "again").await.unwrap();

    let reader = store(&table, "p2").await;
    reader.claim_all(&tasks, 2).await.unwrap();
    assert_eq!(reader.read(&tasks[0]).await.unwrap()[&1], "again");
    for t in &tasks[1..] {
        assert_eq!(reader.read(t).await.unwrap()[&1], *t);
    }
}

/// A store over `recording`, without creating its table (a test may cut storage first).
fn store_over(
    recording: &Arc<Recording>,
    table: &str,
    processor: &str,
) -> CheckpointStore<Recording> {
    CheckpointStore::new(recording.clone(), table, processor)
}

/// A container starting while its storage is cut waits until storage answers instead of
/// failing (a failed start ends Samza's container, and with it the processor).
#[tokio::test]
async fn a_container_start_waits_out_an_outage() {
    let table = unique("cp");
    let recording = Arc::new(Recording::new(azurite().storage()));
    let s = store_over(&recording, &table, "p1");
    let outage = Duration::from_millis(1500);
    recording.outage(outage);
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(20), async {
        s.create_resources().await?;
        s.claim("Partition 0", 1).await?;
        s.read("Partition 0").await
    })
    .await
    .expect("the start did not finish within 20 s of an outage of 1.5 s")
    .unwrap();
    assert!(started.elapsed() >= outage, "{:?}", started.elapsed());
    s.write("Partition 0", 1, "after the outage").await.unwrap();
}

/// A commit that cannot reach storage keeps trying while the task is still ours, and lands
/// once storage answers (Samza fails the container on a failed commit).
#[tokio::test]
async fn a_commit_waits_out_an_outage_while_the_task_is_ours() {
    let table = unique("cp");
    let (recording, s) = recorded_store(&table, "p1").await;
    s.claim("t", 1).await.unwrap();
    s.write("t", 1, "before").await.unwrap();
    let outage = Duration::from_secs(6);
    recording.outage(outage);
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(30), s.write("t", 1, "during"))
        .await
        .expect("the commit did not land within 30 s of a 6 s outage")
        .unwrap();
    assert!(started.elapsed() >= outage, "{:?}", started.elapsed());
    let r = store(&table, "p2").await;
    r.claim("t", 2).await.unwrap();
    assert_eq!(r.read("t").await.unwrap()[&1], "during");
}

/// A commit waiting out an outage still fails when the task turns out to belong to a newer
/// owner: it keeps trying only while the task is ours.
#[tokio::test]
async fn a_commit_waiting_out_an_outage_fails_once_another_owner_has_the_task() {
    let table = unique("cp");
    let (recording, old) = recorded_store(&table, "p1").await;
    old.claim("t", 1).await.unwrap();
    recording.outage(Duration::from_millis(1500));
    let mut commit = Box::pin(old.write("t", 1, "late"));
    assert!(futures::poll!(&mut commit).is_pending());
    let new = store(&table, "p2").await;
    new.claim("t", 2).await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(20), commit)
        .await
        .expect("the commit neither landed nor failed")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fenced, "{err}");
    assert!(err.message().contains("'p2'"), "{err}");
}

/// Once the container is being stopped, whatever waits for storage gives up at once, and later
/// calls fail at once: a stopping container must not wait for storage past task.shutdown.ms.
#[tokio::test]
async fn an_abandoned_store_gives_up_at_once() {
    let table = unique("cp");
    let (recording, s) = recorded_store(&table, "p1").await;
    s.claim("t", 1).await.unwrap();
    recording.outage(Duration::from_secs(120));
    let mut commit = Box::pin(s.write("t", 1, "stuck"));
    assert!(futures::poll!(&mut commit).is_pending());
    let mut claim = Box::pin(s.claim("u", 1));
    assert!(futures::poll!(&mut claim).is_pending());
    s.abandon("processor p1 was fenced");
    let bound = Duration::from_secs(1);
    let err = tokio::time::timeout(bound, commit)
        .await
        .expect("the commit did not give up")
        .unwrap_err();
    // What it sent may still land (conditional on p1's ETag), so the outcome is unknown.
    assert_eq!(err.kind(), ErrorKind::OutcomeUnknown, "{err}");
    assert!(
        err.message().contains("fenced") && err.message().contains(&table),
        "{err}"
    );
    let err = tokio::time::timeout(bound, claim)
        .await
        .expect("the claim did not give up")
        .unwrap_err();
    assert!(err.message().contains("abandoned"), "{err}");
    let err = tokio::time::timeout(bound, s.read("t"))
        .await
        .expect("a later read waited")
        .unwrap_err();
    assert!(err.message().contains("abandoned"), "{err}");
}

/// A claim whose insert (first owner) or merge (takeover) applied while its answer was lost is
/// read back and judged, as commits are, instead of failing the container.
#[tokio::test]
async fn an_ambiguous_claim_is_read_back_and_kept() {
    let table = unique("cp");
    let ambiguous = Inject::AppliedThenFail(ErrorKind::OutcomeUnknown);
    let (recording, first) = recorded_store(&table, "p1").await;
    // The first owner inserts the owner row.
    recording.inject("insert_entity", ambiguous);
    first.claim("t", 1).await.unwrap();
    assert_eq!(recording.injections_left(), 0, "the claim inserted nothing");
    first.write("t", 1, "p1's").await.unwrap();

    let (recording, second) = recorded_store(&table, "p2").await;
    // A takeover merges into it.
    recording.inject("update_entity", ambiguous);
    second.claim("t", 2).await.unwrap();
    assert_eq!(recording.injections_left(), 0, "the claim merged nothing");
    assert_eq!(second.read("t").await.unwrap()[&1], "p1's");
    second.write("t", 1, "p2's").await.unwrap();
    let err = first.write("t", 1, "stale").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fenced, "{err}");
}

/// A malformed owner row (not written by us: no generation number) does not stop the task
/// for good: the claim takes it over, with an error logged naming the row, and the
/// checkpoints in it are kept.
#[tokio::test]
async fn a_malformed_owner_row_is_taken_over_not_a_crash_loop() {
    let table = unique("cp");
    let s = store(&table, "p1").await;
    s.claim("t", 1).await.unwrap();
    s.write("t", 1, "kept").await.unwrap();
    let az = azurite().storage();
    let broken = Entity::new(checkpoint::PARTITION, "t|owner")
        .with("processor", "p0")
        .with("generation", "not a number");
    az.update_entity(&table, &broken, Update::merge(IfMatch::Any))
        .await
        .unwrap();
    let r = store(&table, "p2").await;
    r.claim("t", 2).await.unwrap();
    assert_eq!(r.read("t").await.unwrap()[&1], "kept");
    r.write("t", 1, "p2's").await.unwrap();
    // The row is whole again: the old owner is fenced by the new one.
    let err = s.write("t", 1, "stale").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fenced, "{err}");
}

/// A checkpoint version whose text is incomplete in storage (a chunk missing, a length that
/// does not match) is reported and left out; the task's other versions are still read, and
/// the next commit of that version replaces it whole.
#[tokio::test]
async fn an_incomplete_checkpoint_version_is_left_out_not_a_crash_loop() {
    let table = unique("cp");
    let s = store(&table, "p1").await;
    s.claim("t", 1).await.unwrap();
    s.write("t", 1, "v1 text").await.unwrap();
    s.write("t", 2, "v2 text").await.unwrap();
    let az = azurite().storage();
    let broken = Entity::new(checkpoint::PARTITION, "t|owner").with("v2bytes", 1000i64);
    az.update_entity(&table, &broken, Update::merge(IfMatch::Any))
        .await
        .unwrap();
    let r = store(&table, "p2").await;
    r.claim("t", 2).await.unwrap();
    let read = r.read("t").await.unwrap();
    assert_eq!(read.get(&1).map(String::as_str), Some("v1 text"));
    assert!(!read.contains_key(&2), "{read:?}");
    r.write("t", 2, "v2 again").await.unwrap();
    let again = store(&table, "p3").await;
    again.claim("t", 3).await.unwrap();
    assert_eq!(again.read("t").await.unwrap()[&2], "v2 again");
}
