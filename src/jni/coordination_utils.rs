//! Natives for Samza's CoordinationUtils: a group handle, lease keepers (leader elector,
//! locks) and cluster members.

use std::time::Duration;

use jni::objects::{JClass, JObjectArray, JString};
use jni::sys::{jboolean, jint, jlong};
use jni::{Env, NativeMethod};

use super::convert::{block, config_and_id, destroy_in_runtime, millis, open_storage, string};
use super::error::{BridgeResult, Throw};
use super::handle::{self, HandleType};
use super::registry::native;
use crate::coordination::{ClusterMember, Group};
use crate::coordinator::names::JobIdentity;
use crate::lease::{LeaseKeeper, LeaseState};
use crate::storage::AzureStorage;

/// The natives of `Native.java` this file implements (see `registry.rs`).
pub(super) const NATIVES: &[NativeMethod<'static>] = &[
    native!(fn utils_open(keys: JString[], values: JString[], group_id: JString) -> jlong),
    native!(fn utils_close(h: jlong)),
    native!(fn utils_lease(h: jlong, name: JString, acquire_ms: jlong) -> jlong),
    native!(fn lease_await(kh: jlong, until_leader: jboolean, timeout_ms: jlong) -> jint),
    native!(fn lease_stop(kh: jlong)),
    native!(fn lease_close(kh: jlong)),
    native!(fn latch_count_down(h: jlong, latch: JString, participant: JString)),
    native!(fn latch_await(h: jlong, latch: JString, size: jint, timeout_ms: jlong) -> jboolean),
    native!(fn cluster_register(h: jlong, id: JString) -> jlong),
    native!(fn cluster_member_close(mh: jlong)),
    native!(fn cluster_unregister(h: jlong, id: JString)),
    native!(fn cluster_size(h: jlong) -> jint),
];

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

fn utils_open<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    keys: JObjectArray<'l, JString<'l>>,
    values: JObjectArray<'l, JString<'l>>,
    group_id: JString<'l>,
) -> BridgeResult<jlong> {
    let (map, group_id) = config_and_id(env, &keys, &values, &group_id, "group id")?;
    let storage = open_storage(&map)?;
    let job = JobIdentity::from_map(&map)?;
    Ok(handle::into_handle(Group::new(storage, &job, &group_id)?))
}

fn utils_close<'l>(_env: &mut Env<'l>, _class: JClass<'l>, h: jlong) -> BridgeResult<()> {
    Ok(handle::destroy::<Group<AzureStorage>>(h)?)
}

/// Starts competing for lease `name` of the group; returns a keeper handle.
fn utils_lease<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
    name: JString<'l>,
    acquire_ms: jlong,
) -> BridgeResult<jlong> {
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
fn lease_await<'l>(
    _env: &mut Env<'l>,
    _class: JClass<'l>,
    kh: jlong,
    until_leader: jboolean,
    timeout_ms: jlong,
) -> BridgeResult<jint> {
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
fn lease_stop<'l>(_env: &mut Env<'l>, _class: JClass<'l>, kh: jlong) -> BridgeResult<()> {
    let k = handle::borrow::<Keeper>(kh)?;
    block(async {
        k.keeper.lock().await.stop().await;
        Ok(())
    })
}

fn lease_close<'l>(_env: &mut Env<'l>, _class: JClass<'l>, kh: jlong) -> BridgeResult<()> {
    // Dropping aborts the keeper's task.
    destroy_in_runtime::<Keeper>(kh)
}

fn latch_count_down<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
    latch: JString<'l>,
    participant: JString<'l>,
) -> BridgeResult<()> {
    let latch = string(env, &latch, "latch id")?;
    let participant = string(env, &participant, "participant id")?;
    let g = group(h)?;
    block(g.count_down(&latch, &participant))
}

/// True once the latch reached `size`; false if `timeout_ms` passed first.
fn latch_await<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
    latch: JString<'l>,
    size: jint,
    timeout_ms: jlong,
) -> BridgeResult<jboolean> {
    let latch = string(env, &latch, "latch id")?;
    let g = group(h)?;
    let timeout = millis(timeout_ms);
    block(g.await_latch(&latch, size.max(0) as usize, timeout))
}

fn cluster_register<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
    id: JString<'l>,
) -> BridgeResult<jlong> {
    let id = string(env, &id, "processor id")?;
    let g = group(h)?;
    let member = block(g.register(&id))?;
    Ok(handle::into_handle(std::sync::Mutex::new(member)))
}

/// Stops the member's heartbeats and frees it (the row is deleted by `clusterUnregister`).
fn cluster_member_close<'l>(_env: &mut Env<'l>, _class: JClass<'l>, mh: jlong) -> BridgeResult<()> {
    // Dropping aborts the member's heartbeat task.
    destroy_in_runtime::<std::sync::Mutex<ClusterMember>>(mh)
}

fn cluster_unregister<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
    id: JString<'l>,
) -> BridgeResult<()> {
    let id = string(env, &id, "processor id")?;
    let g = group(h)?;
    block(g.unregister(&id))
}

fn cluster_size<'l>(_env: &mut Env<'l>, _class: JClass<'l>, h: jlong) -> BridgeResult<jint> {
    let g = group(h)?;
    Ok(block(g.cluster_size())? as jint)
}
