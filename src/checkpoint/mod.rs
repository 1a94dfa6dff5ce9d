//! Task checkpoints in Table Storage, fenced by task ownership.
//!
//! One table per job, and one partition ([`PARTITION`]) for all of its tasks, so that commits of
//! different tasks can share a transaction. A task's rows all start with its escaped name and
//! `|` ([`task_key`]). Its row `<task>|owner` records who may write the task's checkpoints: the
//! processor and the generation (the JobModel version in which it started the container holding
//! the task). It also holds each checkpoint version's text, split into string properties
//! `v<version>c<n>`, when it fits ([`INLINE_CHUNKS`] per version); a larger one goes to rows
//! `<task>|v<version>.<n>`.
//!
//! A write is a merge of the owner row conditional on the ETag this writer last saw, or, when
//! extra rows are involved, an entity-group transaction of that merge with the rows' upserts and
//! deletes. A new owner merges its name into the owner row when it claims the task, which changes
//! the ETag, so a stale writer's next write fails as a whole and nothing of it applies.
//!
//! Group commit: the merges of concurrent commits (a container commits its tasks on a pool of
//! threads) go to storage together, as one transaction of up to 100, while the previous request
//! is in flight; nothing waits for company. Each merge keeps its own If-Match. A transaction
//! fails as a whole, so when one does, each commit in it is sent again alone and judged alone.
//!
//! Outages: every operation a container depends on (creating the table, claiming, reading,
//! committing) waits out storage that cannot be reached, retrying with backoff for as long as it
//! takes, as Samza's Kafka checkpoint manager does: a failed commit or start ends Samza's
//! container, and an outage must not. It fails only on an answer (another owner, a bad request),
//! or when the container is being stopped ([`CheckpointStore::abandon`]): then whatever is in
//! flight gives up at once, so the container stops within `task.shutdown.ms`.
//!
//! One file per job: `config` reads the job's config, `rows` is the row layout (pure
//! encoding and decoding), `store` the ownership protocol (claim, read, write, clear),
//! `group_commit` shares transactions between concurrent commits, `outage` waits out storage
//! that cannot be reached, and `upstream` reads upstream samza-azure's table.

mod config;
pub mod group_commit;
mod outage;
mod rows;
mod store;
mod upstream;

pub use config::{CheckpointConfig, KEY_UPSTREAM_READ, KEY_UPSTREAM_TABLE};
pub use rows::{task_key, Owner, INLINE_CHUNKS, MAX_CHECKPOINT_BYTES, PARTITION};
pub use store::{highest_generation, CheckpointStore};
pub use upstream::{read_upstream, upstream_table};
