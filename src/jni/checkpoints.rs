//! Natives for `NativeCheckpoints`: one checkpoint store per Samza container.

use jni::objects::JString;
use jni::sys::{jboolean, jint, jlong};
use jni::Env;
use samza_azure_coordinator_macros::natives;

use super::convert::{block, processor_config, record_array, string, strings};
use super::error::BridgeResult;
use super::handle::{self, HandleType};
use super::payloads::{StoredCheckpoint, UpstreamOffset};
use crate::checkpoint::{CheckpointConfig, CheckpointStore};
use crate::error::{Error, ErrorKind};
use crate::storage::AzureStorage;

/// The natives of `Native.java` this file implements, in the `#[natives]` block below (see
/// `registry.rs`).
pub(super) struct Natives;

pub struct CheckpointHandle {
    store: CheckpointStore<AzureStorage>,
    upstream_table: Option<String>,
}

impl HandleType for CheckpointHandle {
    const TAG: u64 = 0x5341_5a43_4b50_5431; // "SAZCKPT1"
    const NAME: &'static str = "NativeCheckpoints";
}

fn checkpoints<'a>(h: jlong) -> BridgeResult<&'a CheckpointHandle> {
    Ok(handle::borrow::<CheckpointHandle>(h)?)
}

fn version(v: jint) -> BridgeResult<u16> {
    u16::try_from(v).map_err(|_| {
        Error::new(
            ErrorKind::BadRequest,
            format!("checkpoint version {v} is out of range"),
        )
        .into()
    })
}

#[natives]
impl Natives {
    fn checkpoint_open(env: Env, keys: [JString], values: [JString], id: JString) -> jlong {
        let (config, storage, processor_id) =
            processor_config(env, &keys, &values, &id, CheckpointConfig::from_map)?;
        Ok(handle::into_handle(CheckpointHandle {
            store: CheckpointStore::new(storage, &config.table, &processor_id),
            upstream_table: config.upstream_table,
        }))
    }

    fn checkpoint_close(h: jlong) {
        Ok(handle::destroy::<CheckpointHandle>(h)?)
    }

    /// The table's name, for logs and tools.
    fn checkpoint_table(env: Env, h: jlong) -> JString {
        Ok(env.new_string(checkpoints(h)?.store.table())?)
    }

    /// Creates the table if absent: one bounded attempt (the leader's `createResources`), or,
    /// `patient`, waiting out an outage (a container's start).
    fn checkpoint_create(h: jlong, patient: jboolean) {
        let c = checkpoints(h)?;
        if patient {
            block(c.store.create_resources())
        } else {
            block(c.store.create_resources_once())
        }
    }

    /// Gives up everything in flight on this handle and fails every later call at once (the
    /// container is being stopped). Never blocks.
    fn checkpoint_abandon(env: Env, h: jlong, reason: JString) {
        let reason = string(env, &reason, "reason")?;
        checkpoints(h)?.store.abandon(&reason);
        Ok(())
    }

    /// Claims every task for `generation` (see `CheckpointStore::claim_all`).
    fn checkpoint_claim(env: Env, h: jlong, tasks: [JString], generation: jlong) {
        let tasks = strings(env, &tasks, "task names")?;
        let c = checkpoints(h)?;
        block(c.store.claim_all(&tasks, generation.max(0) as u64))
    }

    /// A [`StoredCheckpoint`] per checkpoint of the task.
    fn checkpoint_read(env: Env, h: jlong, task: JString) -> [JString] {
        let task = string(env, &task, "task name")?;
        let c = checkpoints(h)?;
        let read = block(c.store.read(&task))?;
        let records = read.into_iter().map(|(v, text)| StoredCheckpoint {
            version: v.to_string(),
            text,
        });
        record_array(env, Vec::new(), records)
    }

    fn checkpoint_write(
        env: Env,
        h: jlong,
        task: JString,
        checkpoint_version: jint,
        text: JString,
    ) {
        let task = string(env, &task, "task name")?;
        let text = string(env, &text, "checkpoint")?;
        let v = version(checkpoint_version)?;
        let c = checkpoints(h)?;
        block(c.store.write(&task, v, &text))
    }

    /// An [`UpstreamOffset`] per row of upstream samza-azure's table; empty when reading it
    /// is off, or it holds nothing for the task.
    fn checkpoint_upstream(env: Env, h: jlong, task: JString) -> [JString] {
        let task = string(env, &task, "task name")?;
        let c = checkpoints(h)?;
        let rows = match &c.upstream_table {
            Some(table) => block(c.store.read_upstream_patiently(table, &task))?,
            None => Vec::new(),
        };
        let records = rows
            .into_iter()
            .map(|(row_key, offset)| UpstreamOffset { row_key, offset });
        record_array(env, Vec::new(), records)
    }

    fn checkpoint_clear(env: Env, h: jlong, tasks: [JString]) {
        let tasks = strings(env, &tasks, "task names")?;
        let c = checkpoints(h)?;
        block(c.store.clear(&tasks))
    }
}
