//! Task checkpoints against a real Azurite: atomic writes, fencing of stale owners, large
//! checkpoints, clearing, and reading upstream samza-azure's layout.

mod common;

use std::sync::Arc;

use common::{azurite, unique};
use samza_azure_coordinator::checkpoint::{self, CheckpointStore, MAX_CHECKPOINT_BYTES};
use samza_azure_coordinator::storage::{AzureStorage, Entity, IfMatch, TableStore, WriteMode};
use samza_azure_coordinator::ErrorKind;

async fn store(table: &str, processor: &str) -> CheckpointStore<AzureStorage> {
    let s = CheckpointStore::new(Arc::new(azurite().storage()), table, processor);
    s.create_resources().await.unwrap();
    s
}

async fn row_keys(table: &str, task: &str) -> Vec<String> {
    let raw = azurite()
        .storage()
        .query_partition(table, &checkpoint::partition_key(task), None, None, None)
        .await
        .unwrap();
    raw.entities.into_iter().map(|e| e.row_key).collect()
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
    let row = az.get_entity(&table, "t", "owner").await.unwrap();
    let touch = Entity::new("t", "owner").with("processor", "p1");
    az.update_entity(
        &table,
        &touch,
        &IfMatch::ETag(row.etag.unwrap()),
        WriteMode::Merge,
    )
    .await
    .unwrap();
    s.write("t", 1, "second").await.unwrap();
    let r = store(&table, "p2").await;
    r.claim("t", 4).await.unwrap();
    assert_eq!(r.read("t").await.unwrap()[&1], "second");
}
