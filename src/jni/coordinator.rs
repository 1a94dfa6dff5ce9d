//! Exports for `NativeCoordinator`: one coordinator per Samza processor.
//!
//! Events cross as string arrays (`[kind, version, payload, members...]`) pulled by one Java
//! thread; the final error, if any, is kept here and thrown by `coordinatorThrowFailure` so it
//! reaches Java through the same typed-exception policy as every other error.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jni::objects::{JClass, JObjectArray, JString};
use jni::sys::{jboolean, jlong, jlongArray};
use jni::EnvUnowned;

use super::error::{BridgeResult, Throw};
use super::exports::{
    block, config_map, long_array, open_storage, opt_string, string, string_array,
};
use super::handle::{self, HandleType};
use crate::coordinator::names::JobIdentity;
use crate::coordinator::{Coordinator, CoordinatorConfig, Event};
use crate::error::Error;
use crate::runtime;
use crate::storage::AzureStorage;

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

fn encode(event: Event, failure: &Mutex<Option<Error>>) -> Vec<String> {
    match event {
        Event::Leadership { leader } => vec!["leader".into(), u8::from(leader).to_string()],
        Event::Compute {
            version,
            members,
            previous,
        } => {
            let mut v = vec!["compute".into(), version.to_string(), previous.to_string()];
            v.extend(members);
            v
        }
        Event::Prepare { version, model } => {
            vec!["prepare".into(), version.to_string(), model.to_string()]
        }
        Event::Start {
            version,
            model,
            epoch,
        } => vec![
            "start".into(),
            version.to_string(),
            model.to_string(),
            epoch.to_string(),
        ],
        Event::Fence => vec!["fence".into()],
        Event::Release => vec!["release".into()],
        Event::Stopped { error } => {
            let failed = error.is_some();
            if let Ok(mut slot) = failure.lock() {
                *slot = error;
            }
            vec!["stopped".into(), u8::from(failed).to_string()]
        }
    }
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_coordinatorStart<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    keys: JObjectArray<'l, JString<'l>>,
    values: JObjectArray<'l, JString<'l>>,
    processor_id: JString<'l>,
) -> jlong {
    env.with_env(|env| -> BridgeResult<jlong> {
        let map = config_map(env, &keys, &values)?;
        let processor_id = string(env, &processor_id, "processor id")?;
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
    })
    .resolve::<Throw>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_coordinatorClose<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
) {
    env.with_env(|_| -> BridgeResult<()> {
        // Dropping aborts a task still running; the runtime must be entered for that.
        Ok(runtime::enter(|| handle::destroy::<CoordinatorHandle>(h))??)
    })
    .resolve::<Throw>()
}

/// The next event, or null if none came within `timeout_ms`.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_coordinatorNextEvent<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
    timeout_ms: jlong,
) -> JObjectArray<'l, JString<'l>> {
    env.with_env(|env| -> BridgeResult<JObjectArray<'l, JString<'l>>> {
        let c = coordinator(h)?;
        let timeout = Duration::from_millis(timeout_ms.max(0) as u64);
        let Some(event) = block(async { Ok(c.coordinator.next_event(timeout).await) })? else {
            return Ok(JObjectArray::<JString>::null());
        };
        string_array(env, encode(event, &c.failure).into_iter())
    })
    .resolve::<Throw>()
}

/// Throws the error the coordinator stopped with, if it failed; returns normally otherwise.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_coordinatorThrowFailure<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
) {
    env.with_env(|_| -> BridgeResult<()> {
        let c = coordinator(h)?;
        let failure = c.failure.lock().ok().and_then(|mut f| f.take());
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    })
    .resolve::<Throw>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_coordinatorComputed<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
    version: jlong,
    model: JString<'l>,
    failure: JString<'l>,
) {
    env.with_env(|env| -> BridgeResult<()> {
        let result = if model.is_null() {
            Err(string(env, &failure, "model or failure")?)
        } else {
            Ok(string(env, &model, "model")?)
        };
        coordinator(h)?.coordinator.computed(version as u64, result);
        Ok(())
    })
    .resolve::<Throw>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_coordinatorPrepared<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
    version: jlong,
    stopped: jboolean,
) {
    env.with_env(|_| -> BridgeResult<()> {
        coordinator(h)?
            .coordinator
            .prepared(version as u64, stopped);
        Ok(())
    })
    .resolve::<Throw>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_coordinatorReleased<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
) {
    env.with_env(|_| -> BridgeResult<()> {
        coordinator(h)?.coordinator.released();
        Ok(())
    })
    .resolve::<Throw>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_coordinatorRebalance<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
) {
    env.with_env(|_| -> BridgeResult<()> {
        coordinator(h)?.coordinator.request_rebalance();
        Ok(())
    })
    .resolve::<Throw>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_coordinatorStop<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
) {
    env.with_env(|_| -> BridgeResult<()> {
        coordinator(h)?.coordinator.stop();
        Ok(())
    })
    .resolve::<Throw>()
}

/// `[is_leader, running_version, seen_version, rebalances, barrier_timeouts,
/// heartbeat_failures, lease_losses, last_rebalance_ms, fences, storage_requests,
/// storage_errors, storage_latency_micros]`.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_coordinatorMetrics<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
) -> jlongArray {
    env.with_env(|env| -> BridgeResult<jlongArray> {
        let c = coordinator(h)?;
        let m = c.coordinator.metrics();
        let s = c.storage.stats();
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as i64;
        let values = [
            i64::from(m.is_leader.load(Ordering::Relaxed)),
            get(&m.running_version),
            get(&m.seen_version),
            get(&m.rebalances),
            get(&m.barrier_timeouts),
            get(&m.heartbeat_failures),
            get(&m.lease_losses),
            get(&m.last_rebalance_ms),
            get(&m.fences),
            s.requests as i64,
            s.errors as i64,
            s.latency_micros as i64,
        ];
        long_array(env, &values)
    })
    .resolve::<Throw>()
}

/// `[container, membership table, checkpoint table]` of a job: where its state lives (tools,
/// tests). A null `job_id` is a config without `job.id`; both are read as the config is.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_jobStorageNames<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    job_name: JString<'l>,
    job_id: JString<'l>,
) -> JObjectArray<'l, JString<'l>> {
    env.with_env(|env| -> BridgeResult<JObjectArray<'l, JString<'l>>> {
        let (name, id) = (opt_string(env, &job_name)?, opt_string(env, &job_id)?);
        let names = JobIdentity::new(name.as_deref(), id.as_deref())?.names()?;
        string_array(
            env,
            [names.container, names.table, names.checkpoint_table].into_iter(),
        )
    })
    .resolve::<Throw>()
}

/// `[fence epoch, nanoseconds left before processing must stop]`; no runtime hop, so tasks
/// can ask it before processing a message.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_coordinatorFence<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
) -> jlongArray {
    env.with_env(|env| -> BridgeResult<jlongArray> {
        let m = coordinator(h)?.coordinator.metrics();
        let values = [
            m.fences.load(Ordering::Acquire) as i64,
            m.fence_remaining_nanos(),
        ];
        long_array(env, &values)
    })
    .resolve::<Throw>()
}
