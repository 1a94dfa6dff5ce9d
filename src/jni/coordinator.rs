//! Natives for `NativeCoordinator`: one coordinator per Samza processor.
//!
//! Events, metrics and fence readings cross as arrays laid out in `payloads.rs`; events are
//! pulled by one Java thread. The final error, if any, is kept here and thrown by
//! `coordinatorThrowFailure`, so it reaches Java through the same typed-exception policy as
//! every other error.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use jni::objects::{JObjectArray, JString};
use jni::sys::{jboolean, jlong};
use jni::Env;
use samza_azure_coordinator_macros::natives;

use super::convert::{
    block, destroy_in_runtime, long_array, millis, opt_string, processor_config, record_array,
    string, string_array,
};
use super::error::BridgeResult;
use super::handle::{self, HandleType};
use super::payloads::event::{self, kind};
use super::payloads::{flag, CoordinatorMetrics, FenceReading, JobStorageNames};
use crate::coordinator::names::{JobIdentity, JOB_MODEL_BLOB};
use crate::coordinator::{Coordinator, CoordinatorConfig, Event};
use crate::error::Error;
use crate::runtime;
use crate::storage::AzureStorage;

/// The natives of `Native.java` this file implements, in the `#[natives]` block below (see
/// `registry.rs`).
pub(super) struct Natives;

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

#[natives]
impl Natives {
    fn coordinator_start(env: Env, keys: [JString], values: [JString], id: JString) -> jlong {
        let (config, storage, processor_id) =
            processor_config(env, &keys, &values, &id, CoordinatorConfig::from_map)?;
        // Starting spawns the protocol task, which needs the runtime's context.
        let coordinator =
            runtime::enter(|| Coordinator::start(storage.clone(), config, &processor_id))??;
        Ok(handle::into_handle(CoordinatorHandle {
            coordinator,
            storage,
            failure: Mutex::new(None),
        }))
    }

    fn coordinator_close(h: jlong) {
        // Dropping aborts a task still running.
        destroy_in_runtime::<CoordinatorHandle>(h)
    }

    /// The next event, or null if none came within `timeout_ms`.
    fn coordinator_next_event(env: Env, h: jlong, timeout_ms: jlong) -> [JString] {
        let c = coordinator(h)?;
        let timeout = millis(timeout_ms);
        let Some(event) = block(async { Ok(c.coordinator.next_event(timeout).await) })? else {
            return Ok(JObjectArray::<JString>::null());
        };
        string_array(env, encode(event, &c.failure).into_iter())
    }

    /// Throws the error the coordinator stopped with, if it failed; returns normally otherwise.
    fn coordinator_throw_failure(h: jlong) {
        let c = coordinator(h)?;
        let failure = c.failure.lock().ok().and_then(|mut f| f.take());
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    fn coordinator_computed(env: Env, h: jlong, version: jlong, model: JString, failure: JString) {
        let result = if model.is_null() {
            Err(string(env, &failure, "model or failure")?)
        } else {
            Ok(string(env, &model, "model")?)
        };
        coordinator(h)?.coordinator.computed(version as u64, result);
        Ok(())
    }

    fn coordinator_prepared(h: jlong, version: jlong, stopped: jboolean) {
        coordinator(h)?
            .coordinator
            .prepared(version as u64, stopped);
        Ok(())
    }

    fn coordinator_released(h: jlong) {
        coordinator(h)?.coordinator.released();
        Ok(())
    }

    fn coordinator_rebalance(h: jlong) {
        coordinator(h)?.coordinator.request_rebalance();
        Ok(())
    }

    fn coordinator_stop(h: jlong) {
        coordinator(h)?.coordinator.stop();
        Ok(())
    }

    /// A [`CoordinatorMetrics`] record.
    fn coordinator_metrics(env: Env, h: jlong) -> [jlong] {
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
    fn job_storage_names(env: Env, job_name: JString, job_id: JString) -> [JString] {
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
    fn coordinator_fence(env: Env, h: jlong) -> [jlong] {
        let m = coordinator(h)?.coordinator.metrics();
        let reading = FenceReading {
            epoch: m.fences.load(Ordering::Acquire) as i64,
            nanos_left: m.fence_remaining_nanos(),
        };
        long_array(env, &reading.to_array())
    }
}
