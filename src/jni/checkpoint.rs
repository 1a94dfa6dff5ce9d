//! Exports for `NativeCheckpoints`: one checkpoint store per Samza container.

use jni::objects::{JClass, JObjectArray, JString};
use jni::sys::{jboolean, jint, jlong};
use jni::EnvUnowned;

use super::error::{BridgeResult, Throw};
use super::exports::{
    block, config_map, nullable_string_array, open_storage, string, string_array, strings,
};
use super::handle::{self, HandleType};
use crate::checkpoint::{CheckpointConfig, CheckpointStore};
use crate::error::{Error, ErrorKind};
use crate::storage::AzureStorage;

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

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_checkpointOpen<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    keys: JObjectArray<'l, JString<'l>>,
    values: JObjectArray<'l, JString<'l>>,
    processor_id: JString<'l>,
) -> jlong {
    env.with_env(|env| -> BridgeResult<jlong> {
        let map = config_map(env, &keys, &values)?;
        let processor_id = string(env, &processor_id, "processor id")?;
        let config = CheckpointConfig::from_map(&map)?;
        let storage = open_storage(&map)?;
        Ok(handle::into_handle(CheckpointHandle {
            store: CheckpointStore::new(storage, &config.table, &processor_id),
            upstream_table: config.upstream_table,
        }))
    })
    .resolve::<Throw>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_checkpointClose<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
) {
    env.with_env(|_| -> BridgeResult<()> { Ok(handle::destroy::<CheckpointHandle>(h)?) })
        .resolve::<Throw>()
}

/// The table's name, for logs and tools.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_checkpointTable<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
) -> JString<'l> {
    env.with_env(|env| -> BridgeResult<JString<'l>> {
        Ok(env.new_string(checkpoints(h)?.store.table())?)
    })
    .resolve::<Throw>()
}

/// Creates the table if absent: one bounded attempt (the leader's `createResources`), or,
/// `patient`, waiting out an outage (a container's start).
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_checkpointCreate<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
    patient: jboolean,
) {
    env.with_env(|_| -> BridgeResult<()> {
        let c = checkpoints(h)?;
        if patient {
            block(c.store.create_resources())
        } else {
            block(c.store.create_resources_once())
        }
    })
    .resolve::<Throw>()
}

/// Gives up everything in flight on this handle and fails every later call at once (the
/// container is being stopped). Never blocks.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_checkpointAbandon<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
    reason: JString<'l>,
) {
    env.with_env(|env| -> BridgeResult<()> {
        let reason = string(env, &reason, "reason")?;
        checkpoints(h)?.store.abandon(&reason);
        Ok(())
    })
    .resolve::<Throw>()
}

/// Claims every task for `generation` (see `CheckpointStore::claim_all`).
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_checkpointClaim<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
    tasks: JObjectArray<'l, JString<'l>>,
    generation: jlong,
) {
    env.with_env(|env| -> BridgeResult<()> {
        let tasks = strings(env, &tasks, "task names")?;
        let c = checkpoints(h)?;
        block(c.store.claim_all(&tasks, generation.max(0) as u64))
    })
    .resolve::<Throw>()
}

/// `[version, text, version, text, ...]` of the task's checkpoints.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_checkpointRead<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
    task: JString<'l>,
) -> JObjectArray<'l, JString<'l>> {
    env.with_env(|env| -> BridgeResult<JObjectArray<'l, JString<'l>>> {
        let task = string(env, &task, "task name")?;
        let c = checkpoints(h)?;
        let read = block(c.store.read(&task))?;
        let flat: Vec<String> = read
            .into_iter()
            .flat_map(|(v, text)| [v.to_string(), text])
            .collect();
        string_array(env, flat.into_iter())
    })
    .resolve::<Throw>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_checkpointWrite<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
    task: JString<'l>,
    checkpoint_version: jint,
    text: JString<'l>,
) {
    env.with_env(|env| -> BridgeResult<()> {
        let task = string(env, &task, "task name")?;
        let text = string(env, &text, "checkpoint")?;
        let v = version(checkpoint_version)?;
        let c = checkpoints(h)?;
        block(c.store.write(&task, v, &text))
    })
    .resolve::<Throw>()
}

/// `[row key, offset or null, ...]` from upstream samza-azure's table; empty when reading it
/// is off, or it holds nothing for the task.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_checkpointUpstream<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
    task: JString<'l>,
) -> JObjectArray<'l, JString<'l>> {
    env.with_env(|env| -> BridgeResult<JObjectArray<'l, JString<'l>>> {
        let task = string(env, &task, "task name")?;
        let c = checkpoints(h)?;
        let rows = match &c.upstream_table {
            Some(table) => block(c.store.read_upstream_patiently(table, &task))?,
            None => Vec::new(),
        };
        let flat: Vec<Option<String>> = rows
            .into_iter()
            .flat_map(|(k, offset)| [Some(k), offset])
            .collect();
        nullable_string_array(env, flat.into_iter())
    })
    .resolve::<Throw>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_checkpointClear<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
    tasks: JObjectArray<'l, JString<'l>>,
) {
    env.with_env(|env| -> BridgeResult<()> {
        let tasks = strings(env, &tasks, "task names")?;
        let c = checkpoints(h)?;
        block(c.store.clear(&tasks))
    })
    .resolve::<Throw>()
}
