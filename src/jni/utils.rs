//! Exports for Samza's CoordinationUtils: a group handle, lease keepers (leader elector,
//! locks) and cluster members.

use std::time::Duration;

use jni::objects::{JClass, JObjectArray, JString};
use jni::sys::{jboolean, jint, jlong};
use jni::EnvUnowned;

use super::error::{BridgeResult, Throw};
use super::exports::{block, config_map, open_storage, string};
use super::handle::{self, HandleType};
use crate::coordination::{ClusterMember, Group};
use crate::coordinator::names::JobIdentity;
use crate::lease::{LeaseKeeper, LeaseState};
use crate::runtime;
use crate::storage::AzureStorage;

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

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_utilsOpen<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    keys: JObjectArray<'l, JString<'l>>,
    values: JObjectArray<'l, JString<'l>>,
    group_id: JString<'l>,
) -> jlong {
    env.with_env(|env| -> BridgeResult<jlong> {
        let map = config_map(env, &keys, &values)?;
        let group_id = string(env, &group_id, "group id")?;
        let storage = open_storage(&map)?;
        let job = JobIdentity::from_map(&map)?;
        Ok(handle::into_handle(Group::new(storage, &job, &group_id)?))
    })
    .resolve::<Throw>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_utilsClose<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
) {
    env.with_env(|_| -> BridgeResult<()> { Ok(handle::destroy::<Group<AzureStorage>>(h)?) })
        .resolve::<Throw>()
}

/// Starts competing for lease `name` of the group; returns a keeper handle.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_utilsLease<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
    name: JString<'l>,
    acquire_ms: jlong,
) -> jlong {
    env.with_env(|env| -> BridgeResult<jlong> {
        let name = string(env, &name, "lease name")?;
        let g = group(h)?;
        let every = Duration::from_millis(acquire_ms.max(50) as u64);
        let keeper = block(async { g.lease(&name, every).await })?;
        let state = keeper.subscribe();
        Ok(handle::into_handle(Keeper {
            keeper: tokio::sync::Mutex::new(keeper),
            state,
        }))
    })
    .resolve::<Throw>()
}

/// Waits up to `timeout_ms` for the keeper to lead (`until_leader`) or for any change;
/// returns the state then: 0 follower, 1 leader, 2 stopped.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_leaseAwait<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    kh: jlong,
    until_leader: jboolean,
    timeout_ms: jlong,
) -> jint {
    env.with_env(|_| -> BridgeResult<jint> {
        let k = handle::borrow::<Keeper>(kh)?;
        let mut rx = k.state.clone();
        let timeout = Duration::from_millis(timeout_ms.max(0) as u64);
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
    })
    .resolve::<Throw>()
}

/// Releases the lease if held and stops competing. Idempotent.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_leaseStop<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    kh: jlong,
) {
    env.with_env(|_| -> BridgeResult<()> {
        let k = handle::borrow::<Keeper>(kh)?;
        block(async {
            k.keeper.lock().await.stop().await;
            Ok(())
        })
    })
    .resolve::<Throw>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_leaseClose<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    kh: jlong,
) {
    env.with_env(|_| -> BridgeResult<()> {
        // Dropping aborts the keeper's task.
        Ok(runtime::enter(|| handle::destroy::<Keeper>(kh))??)
    })
    .resolve::<Throw>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_latchCountDown<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
    latch: JString<'l>,
    participant: JString<'l>,
) {
    env.with_env(|env| -> BridgeResult<()> {
        let latch = string(env, &latch, "latch id")?;
        let participant = string(env, &participant, "participant id")?;
        let g = group(h)?;
        block(g.count_down(&latch, &participant))
    })
    .resolve::<Throw>()
}

/// True once the latch reached `size`; false if `timeout_ms` passed first.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_latchAwait<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
    latch: JString<'l>,
    size: jint,
    timeout_ms: jlong,
) -> jboolean {
    env.with_env(|env| -> BridgeResult<jboolean> {
        let latch = string(env, &latch, "latch id")?;
        let g = group(h)?;
        let timeout = Duration::from_millis(timeout_ms.max(0) as u64);
        block(g.await_latch(&latch, size.max(0) as usize, timeout))
    })
    .resolve::<Throw>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_clusterRegister<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
    id: JString<'l>,
) -> jlong {
    env.with_env(|env| -> BridgeResult<jlong> {
        let id = string(env, &id, "processor id")?;
        let g = group(h)?;
        let member = block(g.register(&id))?;
        Ok(handle::into_handle(std::sync::Mutex::new(member)))
    })
    .resolve::<Throw>()
}

/// Stops the member's heartbeats and frees it (the row is deleted by `clusterUnregister`).
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_clusterMemberClose<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    mh: jlong,
) {
    env.with_env(|_| -> BridgeResult<()> {
        // Dropping aborts the member's heartbeat task.
        Ok(runtime::enter(|| {
            handle::destroy::<std::sync::Mutex<ClusterMember>>(mh)
        })??)
    })
    .resolve::<Throw>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_clusterUnregister<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
    id: JString<'l>,
) {
    env.with_env(|env| -> BridgeResult<()> {
        let id = string(env, &id, "processor id")?;
        let g = group(h)?;
        block(g.unregister(&id))
    })
    .resolve::<Throw>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_clusterSize<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
) -> jint {
    env.with_env(|_| -> BridgeResult<jint> {
        let g = group(h)?;
        Ok(block(g.cluster_size())? as jint)
    })
    .resolve::<Throw>()
}
