//! Natives for Samza's CoordinationUtils: a group handle, lease keepers (leader elector,
//! locks) and cluster members.

use std::time::Duration;

use jni::objects::JString;
use jni::sys::{jboolean, jint, jlong};
use jni::Env;
use samza_azure_coordinator_macros::natives;

use super::convert::{block, config_and_id, destroy_in_runtime, millis, open_storage, string};
use super::error::BridgeResult;
use super::handle::{self, HandleType};
use crate::coordination::{ClusterMember, Group};
use crate::coordinator::names::JobIdentity;
use crate::lease::{LeaseKeeper, LeaseState};
use crate::storage::AzureStorage;

/// The natives of `Native.java` this file implements, in the `#[natives]` block below (see
/// `registry.rs`).
pub(super) struct Natives;

impl HandleType for Group<AzureStorage> {
    const TAG: u64 = 0x5341_5a47_524f_5531; // "SAZGROU1"
    const NAME: &'static str = "NativeGroup";
}

pub struct Keeper {
    keeper: tokio::sync::Mutex<LeaseKeeper>,
    state: tokio::sync::watch::Receiver<LeaseState>,
}

impl HandleType for Keeper {
    const TAG: u64 = 0x5341_5a4b_4545_5031; // "SAZKEEP1"
    const NAME: &'static str = "NativeLease";
}

impl HandleType for std::sync::Mutex<ClusterMember> {
    const TAG: u64 = 0x5341_5a4d_454d_4231; // "SAZMEMB1"
    const NAME: &'static str = "NativeClusterMember";
}

fn group<'a>(h: jlong) -> BridgeResult<&'a Group<AzureStorage>> {
    Ok(handle::borrow::<Group<AzureStorage>>(h)?)
}

fn code(state: &LeaseState) -> jint {
    match state {
        LeaseState::Follower => 0,
        LeaseState::Leader { .. } => 1,
        LeaseState::Stopped => 2,
    }
}

#[natives]
impl Natives {
    fn utils_open(env: Env, keys: [JString], values: [JString], group_id: JString) -> jlong {
        let (map, group_id) = config_and_id(env, &keys, &values, &group_id, "group id")?;
        let storage = open_storage(&map)?;
        let job = JobIdentity::from_map(&map)?;
        Ok(handle::into_handle(Group::new(storage, &job, &group_id)?))
    }

    fn utils_close(h: jlong) {
        Ok(handle::destroy::<Group<AzureStorage>>(h)?)
    }

    /// Starts competing for lease `name` of the group; returns a keeper handle.
    fn utils_lease(env: Env, h: jlong, name: JString, acquire_ms: jlong) -> jlong {
        let name = string(env, &name, "lease name")?;
        let g = group(h)?;
        let every = Duration::from_millis(acquire_ms.max(50) as u64);
        let keeper = block(async { g.lease(&name, every).await })?;
        let state = keeper.subscribe();
        Ok(handle::into_handle(Keeper {
            keeper: tokio::sync::Mutex::new(keeper),
            state,
        }))
    }

    /// Waits up to `timeout_ms` for the keeper to lead (`until_leader`) or for any change;
    /// returns the state then: 0 follower, 1 leader, 2 stopped.
    fn lease_await(kh: jlong, until_leader: jboolean, timeout_ms: jlong) -> jint {
        let k = handle::borrow::<Keeper>(kh)?;
        let mut rx = k.state.clone();
        let timeout = millis(timeout_ms);
        block(async move {
            let wait = async {
                if until_leader {
                    let _ = rx.wait_for(|s| !matches!(s, LeaseState::Follower)).await;
                } else {
                    let _ = rx.changed().await;
                }
            };
            let _ = tokio::time::timeout(timeout, wait).await;
            let state = rx.borrow().clone();
            Ok(code(&state))
        })
    }

    /// Releases the lease if held and stops competing. Idempotent.
    fn lease_stop(kh: jlong) {
        let k = handle::borrow::<Keeper>(kh)?;
        block(async {
            k.keeper.lock().await.stop().await;
            Ok(())
        })
    }

    fn lease_close(kh: jlong) {
        // Dropping aborts the keeper's task.
        destroy_in_runtime::<Keeper>(kh)
    }

    fn latch_count_down(env: Env, h: jlong, latch: JString, participant: JString) {
        let latch = string(env, &latch, "latch id")?;
        let participant = string(env, &participant, "participant id")?;
        let g = group(h)?;
        block(g.count_down(&latch, &participant))
    }

    /// True once the latch reached `size`; false if `timeout_ms` passed first.
    fn latch_await(env: Env, h: jlong, latch: JString, size: jint, timeout_ms: jlong) -> jboolean {
        let latch = string(env, &latch, "latch id")?;
        let g = group(h)?;
        let timeout = millis(timeout_ms);
        block(g.await_latch(&latch, size.max(0) as usize, timeout))
    }

    fn cluster_register(env: Env, h: jlong, id: JString) -> jlong {
        let id = string(env, &id, "processor id")?;
        let g = group(h)?;
        let member = block(g.register(&id))?;
        Ok(handle::into_handle(std::sync::Mutex::new(member)))
    }

    /// Stops the member's heartbeats and frees it (the row is deleted by `clusterUnregister`).
    fn cluster_member_close(mh: jlong) {
        // Dropping aborts the member's heartbeat task.
        destroy_in_runtime::<std::sync::Mutex<ClusterMember>>(mh)
    }

    fn cluster_unregister(env: Env, h: jlong, id: JString) {
        let id = string(env, &id, "processor id")?;
        let g = group(h)?;
        block(g.unregister(&id))
    }

    fn cluster_size(h: jlong) -> jint {
        let g = group(h)?;
        Ok(block(g.cluster_size())? as jint)
    }
}
