//! Exported `Java_org_apache_samza_azure_jni_Native_*` functions. Each one only converts
//! arguments and results; the work happens in the core.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use jni::objects::{JByteArray, JClass, JObject, JObjectArray, JString};
use jni::sys::{jboolean, jint, jlong, jlongArray};
use jni::{Env, EnvUnowned};

use super::error::{BridgeError, BridgeResult, Throw};
use super::handle::{self, HandleType};
use crate::config::StorageConfig;
use crate::error::{Error, ErrorKind};
use crate::logging;
use crate::runtime;
use crate::storage::{
    AzureStorage, BlobRef, Change, DocumentStore, ETag, LeaseDuration, LeaseId, LeaseStore,
};

impl HandleType for AzureStorage {
    const TAG: u64 = 0x5341_5a53_544f_5231; // "SAZSTOR1"
    const NAME: &'static str = "AzureStorageClient";
}

pub(super) fn null_argument(what: &str) -> BridgeError {
    Error::new(ErrorKind::BadRequest, format!("{what} must not be null")).into()
}

pub(super) fn string(env: &Env<'_>, s: &JString<'_>, what: &str) -> BridgeResult<String> {
    opt_string(env, s)?.ok_or_else(|| null_argument(what))
}

pub(super) fn opt_string(env: &Env<'_>, s: &JString<'_>) -> BridgeResult<Option<String>> {
    if s.is_null() {
        Ok(None)
    } else {
        Ok(Some(s.try_to_string(env)?))
    }
}

pub(super) fn strings(
    env: &mut Env<'_>,
    arr: &JObjectArray<'_, JString<'_>>,
    what: &str,
) -> BridgeResult<Vec<String>> {
    if arr.is_null() {
        return Err(null_argument(what));
    }
    let n = arr.len(env)?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let s = arr.get_element(env, i)?;
        out.push(string(env, &s, what)?);
    }
    Ok(out)
}

fn bytes(env: &Env<'_>, arr: &JByteArray<'_>, what: &str) -> BridgeResult<Bytes> {
    if arr.is_null() {
        return Err(null_argument(what));
    }
    Ok(Bytes::from(env.convert_byte_array(arr)?))
}

fn blob(env: &Env<'_>, container: &JString<'_>, name: &JString<'_>) -> BridgeResult<BlobRef> {
    Ok(BlobRef::new(
        &string(env, container, "container")?,
        &string(env, name, "blob")?,
    )?)
}

fn lease_id(env: &Env<'_>, s: &JString<'_>) -> BridgeResult<LeaseId> {
    Ok(LeaseId::parse(&string(env, s, "lease id")?)?)
}

fn opt_lease_id(env: &Env<'_>, s: &JString<'_>) -> BridgeResult<Option<LeaseId>> {
    Ok(opt_string(env, s)?
        .map(|s| LeaseId::parse(&s))
        .transpose()?)
}

/// Runs a core future on the shared runtime from this (Java) thread.
/// Samza config passed as parallel key and value arrays.
pub(super) fn config_map(
    env: &mut Env<'_>,
    keys: &JObjectArray<'_, JString<'_>>,
    values: &JObjectArray<'_, JString<'_>>,
) -> BridgeResult<HashMap<String, String>> {
    let keys = strings(env, keys, "config keys")?;
    let values = strings(env, values, "config values")?;
    if keys.len() != values.len() {
        return Err(Error::internal("config keys and values differ in length").into());
    }
    Ok(keys.into_iter().zip(values).collect())
}

/// A Java `String[]` of `items`, freeing each local reference as it goes (a long array can
/// exceed the JNI frame's capacity).
pub(super) fn string_array<'l>(
    env: &mut Env<'l>,
    items: impl ExactSizeIterator<Item = String>,
) -> BridgeResult<JObjectArray<'l, JString<'l>>> {
    nullable_string_array(env, items.map(Some))
}

/// Like [`string_array`], with `None` as a Java null.
pub(super) fn nullable_string_array<'l>(
    env: &mut Env<'l>,
    items: impl ExactSizeIterator<Item = Option<String>>,
) -> BridgeResult<JObjectArray<'l, JString<'l>>> {
    let arr = JObjectArray::<JString>::new(env, items.len(), JString::null())?;
    for (i, text) in items.enumerate() {
        if let Some(text) = text {
            let s = env.new_string(text)?;
            arr.set_element(env, i, &s)?;
            env.delete_local_ref(s);
        }
    }
    Ok(arr)
}

pub(super) fn long_array(env: &mut Env<'_>, values: &[i64]) -> BridgeResult<jlongArray> {
    let arr = env.new_long_array(values.len())?;
    arr.set_region(env, 0, values)?;
    Ok(arr.into_raw())
}

/// The storage client for a job's config (its `azure.storage.*` keys), built inside the runtime.
pub(super) fn open_storage(
    config: &HashMap<String, String>,
) -> BridgeResult<std::sync::Arc<AzureStorage>> {
    let storage_config = crate::config::StorageConfig::from_map(config)?;
    // The HTTP client must be built inside the runtime context.
    let storage = runtime::enter(|| AzureStorage::new(&storage_config))??;
    Ok(std::sync::Arc::new(storage))
}

pub(super) fn block<T>(
    fut: impl std::future::Future<Output = crate::Result<T>>,
) -> BridgeResult<T> {
    Ok(runtime::block_on(fut)??)
}

fn storage<'a>(h: jlong) -> BridgeResult<&'a AzureStorage> {
    Ok(handle::borrow::<AzureStorage>(h)?)
}

// ---- runtime, logging, diagnostics ----

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_version<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
) -> JString<'l> {
    env.with_env(|env| -> BridgeResult<JString<'l>> {
        Ok(env.new_string(env!("CARGO_PKG_VERSION"))?)
    })
    .resolve::<Throw>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_initLogging<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    level: jint,
) {
    env.with_env(|_| -> BridgeResult<()> { Ok(logging::init_jvm_bridge(level.clamp(0, 5) as u8)?) })
        .resolve::<Throw>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_setLogLevel<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    level: jint,
) {
    env.with_env(|_| -> BridgeResult<()> {
        logging::set_max_level(level.clamp(0, 5) as u8);
        Ok(())
    })
    .resolve::<Throw>()
}

/// Blocks up to `timeout_ms` for native log records. Returns `[dropped, level, target,
/// message, level, target, message, ...]` as strings, or null when there was nothing.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_pollLogs<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    timeout_ms: jlong,
    max: jint,
) -> JObjectArray<'l, JString<'l>> {
    env.with_env(|env| -> BridgeResult<JObjectArray<'l, JString<'l>>> {
        let (records, dropped) = logging::poll(
            Duration::from_millis(timeout_ms.max(0) as u64),
            max.max(1) as usize,
        );
        if records.is_empty() && dropped == 0 {
            return Ok(JObjectArray::<JString>::null());
        }
        let mut fields = vec![dropped.to_string()];
        for r in &records {
            fields.push(logging::level_name(r.level).to_owned());
            fields.push(r.target.clone());
            fields.push(r.message.clone());
        }
        string_array(env, fields.into_iter())
    })
    .resolve::<Throw>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_shutdownRuntime<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    timeout_ms: jlong,
) {
    env.with_env(|_| -> BridgeResult<()> {
        runtime::shutdown(Duration::from_millis(timeout_ms.max(0) as u64));
        Ok(())
    })
    .resolve::<Throw>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_isRuntimeRunning<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
) -> jboolean {
    env.with_env(|_| -> BridgeResult<jboolean> { Ok(runtime::is_running()) })
        .resolve::<Throw>()
}

/// Round trip through the boundary and the runtime, doing nothing (benchmarks, smoke tests).
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_noop<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
) {
    env.with_env(|_| -> BridgeResult<()> { block(async { Ok(()) }) })
        .resolve::<Throw>()
}

/// Returns `size` bytes produced on the runtime (benchmarks: cost of a sized result).
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_echo<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    size: jint,
) -> JByteArray<'l> {
    env.with_env(|env| -> BridgeResult<JByteArray<'l>> {
        let n = usize::try_from(size).map_err(|_| {
            Error::new(
                ErrorKind::BadRequest,
                format!("size must be >= 0, found {size}"),
            )
        })?;
        let data = block(async move { Ok(vec![0x5a_u8; n]) })?;
        Ok(env.byte_array_from_slice(&data)?)
    })
    .resolve::<Throw>()
}

/// Fails with the given error code, so tests can check every mapping to a Java class.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_testThrow<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    code: JString<'l>,
    message: JString<'l>,
) {
    env.with_env(|env| -> BridgeResult<()> {
        let code = string(env, &code, "code")?;
        let message = string(env, &message, "message")?;
        let kind = ErrorKind::ALL
            .into_iter()
            .find(|k| k.code() == code)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::BadRequest,
                    format!("unknown error code '{code}'"),
                )
            })?;
        Err(BridgeError::Core(Error::new(kind, message)))
    })
    .resolve::<Throw>()
}

/// Panics inside the runtime and on the calling thread; both must surface as exceptions.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_testPanic<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    message: JString<'l>,
    on_runtime: jboolean,
) {
    env.with_env(|env| -> BridgeResult<()> {
        let message = string(env, &message, "message")?;
        if on_runtime {
            let task = runtime::handle()?.spawn(async move { panic!("{message}") });
            match runtime::block_on(task)? {
                Ok(()) => Ok(()),
                Err(join) => std::panic::resume_unwind(join.into_panic()),
            }
        } else {
            panic!("{message}")
        }
    })
    .resolve::<Throw>()
}

/// Emits one native log record at `level` (1 = ERROR … 5 = TRACE).
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_testLog<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    level: jint,
    message: JString<'l>,
) {
    env.with_env(|env| -> BridgeResult<()> {
        let message = string(env, &message, "message")?;
        // Logged from a runtime worker, like real protocol logs.
        block(async move {
            match level {
                1 => tracing::error!("{message}"),
                2 => tracing::warn!("{message}"),
                3 => tracing::info!("{message}"),
                4 => tracing::debug!("{message}"),
                _ => tracing::trace!("{message}"),
            }
            Ok(())
        })
    })
    .resolve::<Throw>()
}

// ---- storage client ----

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_storageOpen<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    keys: JObjectArray<'l, JString<'l>>,
    values: JObjectArray<'l, JString<'l>>,
) -> jlong {
    env.with_env(|env| -> BridgeResult<jlong> {
        let map = config_map(env, &keys, &values)?;
        let config = StorageConfig::from_map(&map)?;
        // The HTTP client must be built inside the runtime context.
        let storage = runtime::enter(|| AzureStorage::new(&config))??;
        Ok(handle::into_handle(storage))
    })
    .resolve::<Throw>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_storageClose<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
) {
    env.with_env(|_| -> BridgeResult<()> { Ok(handle::destroy::<AzureStorage>(h)?) })
        .resolve::<Throw>()
}

/// `[requests, errors, latency_micros]` since the client was opened.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_storageStats<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
) -> jlongArray {
    env.with_env(|env| -> BridgeResult<jlongArray> {
        let s = storage(h)?.stats();
        long_array(
            env,
            &[s.requests as i64, s.errors as i64, s.latency_micros as i64],
        )
    })
    .resolve::<Throw>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_ensureContainer<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
    container: JString<'l>,
) -> jboolean {
    env.with_env(|env| -> BridgeResult<jboolean> {
        let container = string(env, &container, "container")?;
        let s = storage(h)?;
        block(s.ensure_container(&container))
    })
    .resolve::<Throw>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_leaseAcquire<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
    container: JString<'l>,
    name: JString<'l>,
    seconds: jint,
    proposed: JString<'l>,
) -> JString<'l> {
    env.with_env(|env| -> BridgeResult<JString<'l>> {
        let blob = blob(env, &container, &name)?;
        let duration = LeaseDuration::from_secs_or_infinite(i64::from(seconds))?;
        let proposed = opt_lease_id(env, &proposed)?;
        let s = storage(h)?;
        let id = block(s.acquire_lease(&blob, duration, proposed))?;
        Ok(env.new_string(id.to_string())?)
    })
    .resolve::<Throw>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_leaseRenew<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
    container: JString<'l>,
    name: JString<'l>,
    lease: JString<'l>,
) {
    env.with_env(|env| -> BridgeResult<()> {
        let (blob, lease) = (blob(env, &container, &name)?, lease_id(env, &lease)?);
        block(storage(h)?.renew_lease(&blob, lease, None))
    })
    .resolve::<Throw>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_leaseRelease<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
    container: JString<'l>,
    name: JString<'l>,
    lease: JString<'l>,
) {
    env.with_env(|env| -> BridgeResult<()> {
        let (blob, lease) = (blob(env, &container, &name)?, lease_id(env, &lease)?);
        block(storage(h)?.release_lease(&blob, lease))
    })
    .resolve::<Throw>()
}

/// Returns the seconds until the broken lease can be acquired.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_leaseBreak<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
    container: JString<'l>,
    name: JString<'l>,
    period_seconds: jint,
) -> jlong {
    env.with_env(|env| -> BridgeResult<jlong> {
        let blob = blob(env, &container, &name)?;
        let period = u64::try_from(period_seconds).map_err(|_| {
            Error::new(
                ErrorKind::BadRequest,
                format!("break period must be 0-60 seconds, found {period_seconds}"),
            )
        })?;
        let left = block(storage(h)?.break_lease(&blob, Duration::from_secs(period)))?;
        Ok(left.as_secs() as jlong)
    })
    .resolve::<Throw>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_leaseChange<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
    container: JString<'l>,
    name: JString<'l>,
    lease: JString<'l>,
    proposed: JString<'l>,
) -> JString<'l> {
    env.with_env(|env| -> BridgeResult<JString<'l>> {
        let blob = blob(env, &container, &name)?;
        let (lease, proposed) = (lease_id(env, &lease)?, lease_id(env, &proposed)?);
        let id = block(storage(h)?.change_lease(&blob, lease, proposed))?;
        Ok(env.new_string(id.to_string())?)
    })
    .resolve::<Throw>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_docCreate<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
    container: JString<'l>,
    name: JString<'l>,
    body: JByteArray<'l>,
) -> JString<'l> {
    env.with_env(|env| -> BridgeResult<JString<'l>> {
        let (blob, body) = (blob(env, &container, &name)?, bytes(env, &body, "body")?);
        let etag = block(storage(h)?.create_document(&blob, body))?;
        Ok(env.new_string(etag.0)?)
    })
    .resolve::<Throw>()
}

fn document_pair<'l>(env: &mut Env<'l>, body: &[u8], etag: &str) -> BridgeResult<JObjectArray<'l>> {
    let arr = JObjectArray::<JObject>::new(env, 2, JObject::null())?;
    let body = env.byte_array_from_slice(body)?;
    let etag = env.new_string(etag)?;
    arr.set_element(env, 0, &body)?;
    arr.set_element(env, 1, &etag)?;
    Ok(arr)
}

/// `[byte[] body, String etag]`.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_docRead<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
    container: JString<'l>,
    name: JString<'l>,
) -> JObjectArray<'l> {
    env.with_env(|env| -> BridgeResult<JObjectArray<'l>> {
        let blob = blob(env, &container, &name)?;
        let d = block(storage(h)?.read_document(&blob))?;
        document_pair(env, &d.body, &d.etag.0)
    })
    .resolve::<Throw>()
}

/// `[byte[] body, String etag]`, or null while the blob is still at `known`.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_docReadIfChanged<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
    container: JString<'l>,
    name: JString<'l>,
    known: JString<'l>,
) -> JObjectArray<'l> {
    env.with_env(|env| -> BridgeResult<JObjectArray<'l>> {
        let blob = blob(env, &container, &name)?;
        let known = ETag(string(env, &known, "known etag")?);
        match block(storage(h)?.read_document_if_changed(&blob, &known))? {
            Some(d) => document_pair(env, &d.body, &d.etag.0),
            None => Ok(JObjectArray::<JObject>::null()),
        }
    })
    .resolve::<Throw>()
}

/// The new ETag, or null while the blob is still at `known`.
#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_docCheck<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
    container: JString<'l>,
    name: JString<'l>,
    known: JString<'l>,
) -> JString<'l> {
    env.with_env(|env| -> BridgeResult<JString<'l>> {
        let blob = blob(env, &container, &name)?;
        let known = ETag(string(env, &known, "known etag")?);
        match block(storage(h)?.check_document(&blob, &known))? {
            Change::Unchanged => Ok(JString::null()),
            Change::Changed(etag) => Ok(env.new_string(etag.0)?),
        }
    })
    .resolve::<Throw>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_docReplace<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
    container: JString<'l>,
    name: JString<'l>,
    body: JByteArray<'l>,
    if_match: JString<'l>,
    lease: JString<'l>,
) -> JString<'l> {
    env.with_env(|env| -> BridgeResult<JString<'l>> {
        let (blob, body) = (blob(env, &container, &name)?, bytes(env, &body, "body")?);
        let if_match = opt_string(env, &if_match)?.map(ETag);
        let lease = opt_lease_id(env, &lease)?;
        let etag = block(storage(h)?.replace_document(&blob, body, if_match.as_ref(), lease))?;
        Ok(env.new_string(etag.0)?)
    })
    .resolve::<Throw>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_org_apache_samza_azure_jni_Native_docDelete<'l>(
    mut env: EnvUnowned<'l>,
    _c: JClass<'l>,
    h: jlong,
    container: JString<'l>,
    name: JString<'l>,
    if_match: JString<'l>,
    lease: JString<'l>,
) {
    env.with_env(|env| -> BridgeResult<()> {
        let blob = blob(env, &container, &name)?;
        let if_match = opt_string(env, &if_match)?.map(ETag);
        let lease = opt_lease_id(env, &lease)?;
        block(storage(h)?.delete_document(&blob, if_match.as_ref(), lease))
    })
    .resolve::<Throw>()
}
