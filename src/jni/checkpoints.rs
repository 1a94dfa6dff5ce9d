//! Natives for `NativeCheckpoints`: one checkpoint store per Samza container.

use jni::objects::{JClass, JObjectArray, JString};
use jni::sys::{jboolean, jint, jlong};
use jni::{Env, NativeMethod};

use super::convert::{block, config_and_id, open_storage, record_array, string, strings};
use super::error::{BridgeResult, Throw};
use super::handle::{self, HandleType};
use super::payloads::{StoredCheckpoint, UpstreamOffset};
use super::registry::native;
use crate::checkpoint::{CheckpointConfig, CheckpointStore};
use crate::error::{Error, ErrorKind};
use crate::storage::AzureStorage;

/// The natives of `Native.java` this file implements (see `registry.rs`).
pub(super) const NATIVES: &[NativeMethod<'static>] = &[
    native!(fn checkpoint_open(keys: JString[], values: JString[], processor_id: JString) -> jlong),
    native!(fn checkpoint_close(h: jlong)),
    native!(fn checkpoint_table(h: jlong) -> JString),
    native!(fn checkpoint_create(h: jlong, patient: jboolean)),
    native!(fn checkpoint_abandon(h: jlong, reason: JString)),
    native!(fn checkpoint_claim(h: jlong, tasks: JString[], generation: jlong)),
    native!(fn checkpoint_read(h: jlong, task: JString) -> JString[]),
    native!(fn checkpoint_write(h: jlong, task: JString, checkpoint_version: jint, text: JString)),
    native!(fn checkpoint_upstream(h: jlong, task: JString) -> JString[]),
    native!(fn checkpoint_clear(h: jlong, tasks: JString[])),
];

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

fn checkpoint_open<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    keys: JObjectArray<'l, JString<'l>>,
    values: JObjectArray<'l, JString<'l>>,
    processor_id: JString<'l>,
) -> BridgeResult<jlong> {
    let (map, processor_id) = config_and_id(env, &keys, &values, &processor_id, "processor id")?;
    let config = CheckpointConfig::from_map(&map)?;
    let storage = open_storage(&map)?;
    Ok(handle::into_handle(CheckpointHandle {
        store: CheckpointStore::new(storage, &config.table, &processor_id),
        upstream_table: config.upstream_table,
    }))
}

fn checkpoint_close<'l>(_env: &mut Env<'l>, _class: JClass<'l>, h: jlong) -> BridgeResult<()> {
    Ok(handle::destroy::<CheckpointHandle>(h)?)
}

/// The table's name, for logs and tools.
fn checkpoint_table<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
) -> BridgeResult<JString<'l>> {
    Ok(env.new_string(checkpoints(h)?.store.table())?)
}

/// Creates the table if absent: one bounded attempt (the leader's `createResources`), or,
/// `patient`, waiting out an outage (a container's start).
fn checkpoint_create<'l>(
    _env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
    patient: jboolean,
) -> BridgeResult<()> {
    let c = checkpoints(h)?;
    if patient {
        block(c.store.create_resources())
    } else {
        block(c.store.create_resources_once())
    }
}

/// Gives up everything in flight on this handle and fails every later call at once (the
/// container is being stopped). Never blocks.
fn checkpoint_abandon<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
    reason: JString<'l>,
) -> BridgeResult<()> {
    let reason = string(env, &reason, "reason")?;
    checkpoints(h)?.store.abandon(&reason);
    Ok(())
}

/// Claims every task for `generation` (see `CheckpointStore::claim_all`).
fn checkpoint_claim<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
    tasks: JObjectArray<'l, JString<'l>>,
    generation: jlong,
) -> BridgeResult<()> {
    let tasks = strings(env, &tasks, "task names")?;
    let c = checkpoints(h)?;
    block(c.store.claim_all(&tasks, generation.max(0) as u64))
}

/// A [`StoredCheckpoint`] per checkpoint of the task.
fn checkpoint_read<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
    task: JString<'l>,
) -> BridgeResult<JObjectArray<'l, JString<'l>>> {
    let task = string(env, &task, "task name")?;
    let c = checkpoints(h)?;
    let read = block(c.store.read(&task))?;
    let records = read.into_iter().map(|(v, text)| StoredCheckpoint {
        version: v.to_string(),
        text,
    });
    record_array(env, Vec::new(), records)
}

fn checkpoint_write<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
    task: JString<'l>,
    checkpoint_version: jint,
    text: JString<'l>,
) -> BridgeResult<()> {
    let task = string(env, &task, "task name")?;
    let text = string(env, &text, "checkpoint")?;
    let v = version(checkpoint_version)?;
    let c = checkpoints(h)?;
    block(c.store.write(&task, v, &text))
}

/// An [`UpstreamOffset`] per row of upstream samza-azure's table; empty when reading it
/// is off, or it holds nothing for the task.
fn checkpoint_upstream<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
    task: JString<'l>,
) -> BridgeResult<JObjectArray<'l, JString<'l>>> {
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

fn checkpoint_clear<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
    tasks: JObjectArray<'l, JString<'l>>,
) -> BridgeResult<()> {
    let tasks = strings(env, &tasks, "task names")?;
    let c = checkpoints(h)?;
    block(c.store.clear(&tasks))
}
