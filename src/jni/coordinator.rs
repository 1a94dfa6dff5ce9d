//! Natives for `NativeCoordinator`: one coordinator per Samza processor.
//!
//! Events, metrics and fence readings cross as arrays laid out in `payloads.rs`; events are
//! pulled by one Java thread. The final error, if any, is kept here and thrown by
//! `coordinatorThrowFailure`, so it reaches Java through the same typed-exception policy as
//! every other error.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use jni::objects::{JClass, JLongArray, JObjectArray, JString};
use jni::sys::{jboolean, jlong};
use jni::{Env, NativeMethod};

use super::convert::{
    block, config_and_id, destroy_in_runtime, long_array, millis, open_storage, opt_string,
    record_array, string, string_array,
};
use super::error::{BridgeResult, Throw};
use super::handle::{self, HandleType};
use super::payloads::event::{self, kind};
use super::payloads::{flag, CoordinatorMetrics, FenceReading, JobStorageNames};
use super::registry::native;
use crate::coordinator::names::{JobIdentity, JOB_MODEL_BLOB};
use crate::coordinator::{Coordinator, CoordinatorConfig, Event};
use crate::error::Error;
use crate::runtime;
use crate::storage::AzureStorage;

/// The natives of `Native.java` this file implements (see `registry.rs`).
pub(super) const NATIVES: &[NativeMethod<'static>] = &[
    native!(fn coordinator_start(keys: JString[], values: JString[], processor_id: JString) -> jlong),
    native!(fn coordinator_close(h: jlong)),
    native!(fn coordinator_next_event(h: jlong, timeout_ms: jlong) -> JString[]),
    native!(fn coordinator_throw_failure(h: jlong)),
    native!(fn coordinator_computed(h: jlong, version: jlong, model: JString, failure: JString)),
    native!(fn coordinator_prepared(h: jlong, version: jlong, stopped: jboolean)),
    native!(fn coordinator_released(h: jlong)),
    native!(fn coordinator_rebalance(h: jlong)),
    native!(fn coordinator_stop(h: jlong)),
    native!(fn coordinator_metrics(h: jlong) -> jlong[]),
    native!(fn job_storage_names(job_name: JString, job_id: JString) -> JString[]),
    native!(fn coordinator_fence(h: jlong) -> jlong[]),
];

pub struct CoordinatorHandle {
    coordinator: Coordinator,
    storage: Arc<AzureStorage>,
    failure: Mutex<Option<Error>>,
}

impl HandleType for CoordinatorHandle {
    const TAG: u64 = 0x5341_5a43_4f4f_5231; // "SAZCOOR1"
    const NAME: &'static str = "NativeCoordinator";
}

fn coordinator<'a>(h: jlong) -> BridgeResult<&'a CoordinatorHandle> {
    Ok(handle::borrow::<CoordinatorHandle>(h)?)
}

/// The event's fields in the order of its layout (`payloads::event`).
pub(super) fn encode(event: Event, failure: &Mutex<Option<Error>>) -> Vec<String> {
    match event {
        Event::Leadership { leader } => vec![kind(&event::LEADER), flag(leader)],
        Event::Compute {
            version,
            members,
            previous,
        } => {
            let mut v = vec![
                kind(&event::COMPUTE),
                version.to_string(),
                previous.to_string(),
            ];
            v.extend(members);
            v
        }
        Event::Prepare { version, model } => {
            vec![
                kind(&event::PREPARE),
                version.to_string(),
                model.to_string(),
            ]
        }
        Event::Start {
            version,
            model,
            epoch,
        } => vec![
            kind(&event::START),
            version.to_string(),
            model.to_string(),
            epoch.to_string(),
        ],
        Event::Fence => vec![kind(&event::FENCE)],
        Event::Release => vec![kind(&event::RELEASE)],
        Event::Stopped { error } => {
            let failed = error.is_some();
            if let Ok(mut slot) = failure.lock() {
                *slot = error;
            }
            vec![kind(&event::STOPPED), flag(failed)]
        }
    }
}

fn coordinator_start<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    keys: JObjectArray<'l, JString<'l>>,
    values: JObjectArray<'l, JString<'l>>,
    processor_id: JString<'l>,
) -> BridgeResult<jlong> {
    let (map, processor_id) = config_and_id(env, &keys, &values, &processor_id, "processor id")?;
    let config = CoordinatorConfig::from_map(&map)?;
    let storage = open_storage(&map)?;
    // Starting spawns the protocol task, which needs the runtime's context.
    let coordinator =
        runtime::enter(|| Coordinator::start(storage.clone(), config, &processor_id))??;
    Ok(handle::into_handle(CoordinatorHandle {
        coordinator,
        storage,
        failure: Mutex::new(None),
    }))
}

fn coordinator_close<'l>(_env: &mut Env<'l>, _class: JClass<'l>, h: jlong) -> BridgeResult<()> {
    // Dropping aborts a task still running.
    destroy_in_runtime::<CoordinatorHandle>(h)
}

/// The next event, or null if none came within `timeout_ms`.
fn coordinator_next_event<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
    timeout_ms: jlong,
) -> BridgeResult<JObjectArray<'l, JString<'l>>> {
    let c = coordinator(h)?;
    let timeout = millis(timeout_ms);
    let Some(event) = block(async { Ok(c.coordinator.next_event(timeout).await) })? else {
        return Ok(JObjectArray::<JString>::null());
    };
    string_array(env, encode(event, &c.failure).into_iter())
}

/// Throws the error the coordinator stopped with, if it failed; returns normally otherwise.
fn coordinator_throw_failure<'l>(
    _env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
) -> BridgeResult<()> {
    let c = coordinator(h)?;
    let failure = c.failure.lock().ok().and_then(|mut f| f.take());
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

fn coordinator_computed<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
    version: jlong,
    model: JString<'l>,
    failure: JString<'l>,
) -> BridgeResult<()> {
    let result = if model.is_null() {
        Err(string(env, &failure, "model or failure")?)
    } else {
        Ok(string(env, &model, "model")?)
    };
    coordinator(h)?.coordinator.computed(version as u64, result);
    Ok(())
}

fn coordinator_prepared<'l>(
    _env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
    version: jlong,
    stopped: jboolean,
) -> BridgeResult<()> {
    coordinator(h)?
        .coordinator
        .prepared(version as u64, stopped);
    Ok(())
}

fn coordinator_released<'l>(_env: &mut Env<'l>, _class: JClass<'l>, h: jlong) -> BridgeResult<()> {
    coordinator(h)?.coordinator.released();
    Ok(())
}

fn coordinator_rebalance<'l>(_env: &mut Env<'l>, _class: JClass<'l>, h: jlong) -> BridgeResult<()> {
    coordinator(h)?.coordinator.request_rebalance();
    Ok(())
}

fn coordinator_stop<'l>(_env: &mut Env<'l>, _class: JClass<'l>, h: jlong) -> BridgeResult<()> {
    coordinator(h)?.coordinator.stop();
    Ok(())
}

/// A [`CoordinatorMetrics`] record.
fn coordinator_metrics<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
) -> BridgeResult<JLongArray<'l>> {
    let c = coordinator(h)?;
    let m = c.coordinator.metrics();
    let s = c.storage.stats();
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as i64;
    let record = CoordinatorMetrics {
        is_leader: i64::from(m.is_leader.load(Ordering::Relaxed)),
        running_version: get(&m.running_version),
        seen_version: get(&m.seen_version),
        rebalances: get(&m.rebalances),
        barrier_timeouts: get(&m.barrier_timeouts),
        heartbeat_failures: get(&m.heartbeat_failures),
        lease_losses: get(&m.lease_losses),
        last_rebalance_ms: get(&m.last_rebalance_ms),
        fences: get(&m.fences),
        storage_requests: s.requests as i64,
        storage_errors: s.errors as i64,
        storage_latency_micros: s.latency_micros as i64,
    };
    long_array(env, &record.to_array())
}

/// A [`JobStorageNames`] record: where a job's state lives (tools, tests). A null `job_id` is
/// a config without `job.id`; both are read as the config is.
fn job_storage_names<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    job_name: JString<'l>,
    job_id: JString<'l>,
) -> BridgeResult<JObjectArray<'l, JString<'l>>> {
    let (name, id) = (opt_string(env, &job_name)?, opt_string(env, &job_id)?);
    let names = JobIdentity::new(name.as_deref(), id.as_deref())?.names()?;
    let record = JobStorageNames {
        container: names.container,
        table: names.table,
        checkpoint_table: names.checkpoint_table,
        job_model_blob: JOB_MODEL_BLOB.to_owned(),
    };
    record_array(env, Vec::new(), [record])
}

/// A [`FenceReading`]; no runtime hop, so tasks can ask it before processing a message.
fn coordinator_fence<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
) -> BridgeResult<JLongArray<'l>> {
    let m = coordinator(h)?.coordinator.metrics();
    let reading = FenceReading {
        epoch: m.fences.load(Ordering::Acquire) as i64,
        nanos_left: m.fence_remaining_nanos(),
    };
    long_array(env, &reading.to_array())
}
