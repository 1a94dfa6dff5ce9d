//! Sequential latency of the storage primitives against a local Azurite.
//!
//! `cargo bench --bench storage_latency`; `BENCH_OPS` sets the measured operations per
//! primitive (default 1000), each after a warm-up. Starts its own Azurite through the test
//! harness, which kills it when this process ends. Azurite is one Node process, so these
//! figures measure Azurite as much as the client.

#[path = "../tests/common/mod.rs"]
mod common;

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use samza_azure_coordinator::checkpoint::CheckpointStore;
use samza_azure_coordinator::storage::{
    AzureStorage, BatchOp, BlobRef, Change, DocumentStore, ETag, Entity, Guard, IfMatch,
    LeaseDuration, LeaseStore, TableStore, Update, WriteMode,
};
use samza_azure_coordinator::ErrorKind;

const WARMUP_OPS: usize = 50;
const DEFAULT_OPS: usize = 1000;
const BLOB_BYTES: usize = 10 * 1024;

struct Row {
    op: &'static str,
    samples: Vec<Duration>,
}

/// Runs `op` `WARMUP_OPS` times unmeasured, then `ops` times measured, one at a time.
async fn measure<F, Fut>(op: &'static str, ops: usize, mut f: F) -> Row
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    for _ in 0..WARMUP_OPS {
        f().await;
    }
    let mut samples = Vec::with_capacity(ops);
    for _ in 0..ops {
        let start = Instant::now();
        f().await;
        samples.push(start.elapsed());
    }
    Row { op, samples }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn print_table(rows: &mut [Row]) {
    println!("| op | ops | median ms | p99 ms | mean ms |");
    println!("|---|---:|---:|---:|---:|");
    for row in rows.iter_mut() {
        row.samples.sort_unstable();
        let n = row.samples.len();
        let mean = row.samples.iter().sum::<Duration>() / n as u32;
        println!(
            "| {} | {} | {:.3} | {:.3} | {:.3} |",
            row.op,
            n,
            ms(percentile(&row.samples, 50.0)),
            ms(percentile(&row.samples, 99.0)),
            ms(mean)
        );
    }
}

async fn run(s: &Arc<AzureStorage>, ops: usize) -> Vec<Row> {
    let container = common::unique("bench");
    s.ensure_container(&container).await.expect("container");
    let mut rows = Vec::new();

    let lease_blob = BlobRef::new(&container, "lease").expect("blob name");
    s.create_document(&lease_blob, Bytes::from_static(b"lease"))
        .await
        .expect("lease blob");
    let lease = s
        .acquire_lease(&lease_blob, LeaseDuration::Seconds(60), None)
        .await
        .expect("acquire lease");
    rows.push(
        measure("lease renew", ops, || async {
            s.renew_lease(&lease_blob, lease, None)
                .await
                .expect("renew lease");
        })
        .await,
    );
    s.release_lease(&lease_blob, lease)
        .await
        .expect("release lease");

    let doc = BlobRef::new(&container, "doc").expect("blob name");
    let body = Bytes::from(vec![b'x'; BLOB_BYTES]);
    let created = s.create_document(&doc, body.clone()).await.expect("doc");
    // The current ETag: each put is conditional on it and replaces it.
    let etag = RefCell::new(created);
    rows.push(
        measure("blob put 10 KiB (If-Match)", ops, || async {
            let known = etag.borrow().clone();
            let next = s
                .replace_document(&doc, body.clone(), Guard::if_match(known))
                .await
                .expect("conditional put");
            *etag.borrow_mut() = next;
        })
        .await,
    );
    let etag: ETag = etag.into_inner();
    rows.push(
        measure("unchanged check (HEAD, 304)", ops, || async {
            let change = s.check_document(&doc, &etag).await.expect("check");
            assert_eq!(change, Change::Unchanged);
        })
        .await,
    );

    let table = common::unique("bench");
    s.ensure_table(&table).await.expect("table");
    let entity = Entity::new("job", "p1")
        .with("host", "bench-host")
        .with("generation", 7)
        .with("payload", "x".repeat(256));
    rows.push(
        measure("table upsert (Replace)", ops, || async {
            s.upsert_entity(&table, &entity, WriteMode::Replace)
                .await
                .expect("upsert");
        })
        .await,
    );
    rows.push(
        measure("table point read", ops, || async {
            s.get_entity(&table, "job", "p1").await.expect("get");
        })
        .await,
    );
    // The least a table request costs here: Azurite finds nothing and answers 404.
    rows.push(
        measure("table point read, missing row (404)", ops, || async {
            let err = s.get_entity(&table, "job", "none").await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        })
        .await,
    );

    // One checkpoint commit: the conditional merge of the task's owner row, which holds a
    // CheckpointV1 of 8 SSPs as Samza serializes it.
    let checkpoints = CheckpointStore::new(Arc::clone(s), &table, "p1");
    checkpoints.claim("Partition 0", 1).await.expect("claim");
    let text = checkpoint_v1_json(8);
    rows.push(
        measure("checkpoint commit (8 SSPs)", ops, || async {
            checkpoints
                .write("Partition 0", 1, &text)
                .await
                .expect("commit");
        })
        .await,
    );
    rows
}

/// A CheckpointV1 of `ssps` Event Hubs-like SSPs, in the JSON shape Samza's serde writes.
fn checkpoint_v1_json(ssps: usize) -> String {
    let offsets: Vec<String> = (0..ssps)
        .map(|i| {
            format!(
                r#""SystemStreamPartition [eventhubs, stream-{i}, 0]":{{"system":"eventhubs","partition":"0","offset":"{}","stream":"stream-{i}"}}"#,
                1_000_000 * i
            )
        })
        .collect();
    format!("{{{}}}", offsets.join(","))
}

fn main() {
    let ops = match std::env::var("BENCH_OPS") {
        Ok(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .expect("BENCH_OPS must be a positive integer"),
        Err(_) => DEFAULT_OPS,
    };
    let azurite = common::azurite();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let storage = Arc::new(azurite.storage());
    let mut rows = runtime.block_on(run(&storage, ops));
    println!(
        "storage_latency: {ops} sequential ops per row after {WARMUP_OPS} warm-up, \
         Azurite pid {} on 127.0.0.1\n",
        azurite.pid
    );
    print_table(&mut rows);
    let rates = runtime.block_on(throughput(&storage));
    println!(
        "\n{CONCURRENT} requests in flight for {}s per row:\n",
        THROUGHPUT_WINDOW.as_secs()
    );
    println!("| op | operations/s |");
    println!("|---|---:|");
    for (op, rate) in rates {
        println!("| {op} | {rate:.0} |");
    }
}

const CONCURRENT: usize = 8;
const THROUGHPUT_WINDOW: Duration = Duration::from_secs(5);

/// Operations per second with `CONCURRENT` loops, each waiting for its answer before sending
/// again, all on this one client thread: what Azurite's one Node process answers when it, not
/// the client, is the limit. Concurrent checkpoint commits share requests (group commit).
async fn throughput(s: &Arc<AzureStorage>) -> Vec<(&'static str, f64)> {
    let table = common::unique("rate");
    s.ensure_table(&table).await.expect("table");
    let checkpoints = CheckpointStore::new(Arc::clone(s), &table, "p1");
    let tasks: Vec<String> = (0..CONCURRENT).map(|i| format!("Partition {i}")).collect();
    checkpoints.claim_all(&tasks, 1).await.expect("claim");
    let text = checkpoint_v1_json(8);
    let missing = rate(|i| {
        let (table, tasks) = (&table, &tasks);
        async move {
            let err = s.get_entity(table, &tasks[i], "none").await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        }
    })
    .await;
    let commits = rate(|i| {
        let (checkpoints, tasks, text) = (&checkpoints, &tasks, &text);
        async move { checkpoints.write(&tasks[i], 1, text).await.expect("commit") }
    })
    .await;
    // What group commit sends: one transaction of 16 merges of different rows of a partition.
    let rows: Vec<String> = (0..CONCURRENT * 16).map(|i| format!("row {i}")).collect();
    for row in &rows {
        s.upsert_entity(&table, &Entity::new("group", row), WriteMode::Replace)
            .await
            .expect("row");
    }
    let transactions = rate(|i| {
        let (table, rows, text) = (&table, &rows, &text);
        async move {
            let ops = rows[i * 16..(i + 1) * 16]
                .iter()
                .map(|row| {
                    let e = Entity::new("group", row).with("v1c0", text.as_str());
                    BatchOp::Update(e, Update::merge(IfMatch::Any))
                })
                .collect();
            s.batch(table, "group", ops).await.expect("transaction");
        }
    })
    .await;
    vec![
        ("table point read, missing row (404)", missing),
        (
            "checkpoint commits (8 SSPs), one task per loop, grouped",
            commits,
        ),
        ("transactions of 16 merges (8 SSPs each)", transactions),
    ]
}

async fn rate<F, Fut>(op: F) -> f64
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let start = Instant::now();
    let end = start + THROUGHPUT_WINDOW;
    let loops = (0..CONCURRENT).map(|i| {
        let op = &op;
        async move {
            let mut n = 0u64;
            while Instant::now() < end {
                op(i).await;
                n += 1;
            }
            n
        }
    });
    let done: u64 = futures::future::join_all(loops).await.into_iter().sum();
    done as f64 / start.elapsed().as_secs_f64()
}
