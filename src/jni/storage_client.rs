//! Natives for `AzureStorageClient`: one storage client per handle, with lease and document
//! operations on single blobs.

use std::time::Duration;

use jni::objects::{JByteArray, JClass, JLongArray, JObject, JObjectArray, JString};
use jni::sys::{jboolean, jint, jlong};
use jni::{Env, NativeMethod};

use super::convert::{
    blob, block, bytes, config_map, etag, lease_id, long_array, opt_etag, opt_lease_id, string,
};
use super::error::{BridgeResult, Throw};
use super::handle::{self, HandleType};
use super::payloads::{StorageStats, DOCUMENT};
use super::registry::native;
use crate::config::StorageConfig;
use crate::error::{Error, ErrorKind};
use crate::runtime;
use crate::storage::{AzureStorage, Change, DocumentStore, LeaseDuration, LeaseStore};

impl HandleType for AzureStorage {
    const TAG: u64 = 0x5341_5a53_544f_5231; // "SAZSTOR1"
    const NAME: &'static str = "AzureStorageClient";
}

fn storage<'a>(h: jlong) -> BridgeResult<&'a AzureStorage> {
    Ok(handle::borrow::<AzureStorage>(h)?)
}

/// The natives of `Native.java` this file implements (see `registry.rs`).
pub(super) const NATIVES: &[NativeMethod<'static>] = &[
    native!(fn storage_open(keys: JString[], values: JString[]) -> jlong),
    native!(fn storage_close(h: jlong)),
    native!(fn storage_stats(h: jlong) -> jlong[]),
    native!(fn ensure_container(h: jlong, container: JString) -> jboolean),
    native!(fn lease_acquire(h: jlong, container: JString, name: JString, seconds: jint, proposed: JString) -> JString),
    native!(fn lease_renew(h: jlong, container: JString, name: JString, lease: JString)),
    native!(fn lease_release(h: jlong, container: JString, name: JString, lease: JString)),
    native!(fn lease_break(h: jlong, container: JString, name: JString, period_seconds: jint) -> jlong),
    native!(fn lease_change(h: jlong, container: JString, name: JString, lease: JString, proposed: JString) -> JString),
    native!(fn doc_create(h: jlong, container: JString, name: JString, body: jbyte[]) -> JString),
    native!(fn doc_read(h: jlong, container: JString, name: JString) -> JObject[]),
    native!(fn doc_read_if_changed(h: jlong, container: JString, name: JString, known: JString) -> JObject[]),
    native!(fn doc_check(h: jlong, container: JString, name: JString, known: JString) -> JString),
    native!(fn doc_replace(h: jlong, container: JString, name: JString, body: jbyte[], if_match: JString, lease: JString) -> JString),
    native!(fn doc_delete(h: jlong, container: JString, name: JString, if_match: JString, lease: JString)),
];

fn storage_open<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    keys: JObjectArray<'l, JString<'l>>,
    values: JObjectArray<'l, JString<'l>>,
) -> BridgeResult<jlong> {
    let map = config_map(env, &keys, &values)?;
    let config = StorageConfig::from_map(&map)?;
    // The HTTP client must be built inside the runtime context.
    let storage = runtime::enter(|| AzureStorage::new(&config))??;
    Ok(handle::into_handle(storage))
}

fn storage_close<'l>(_env: &mut Env<'l>, _class: JClass<'l>, h: jlong) -> BridgeResult<()> {
    Ok(handle::destroy::<AzureStorage>(h)?)
}

/// A [`StorageStats`] record: counters since the client was opened.
fn storage_stats<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
) -> BridgeResult<JLongArray<'l>> {
    let s = storage(h)?.stats();
    let record = StorageStats {
        requests: s.requests as i64,
        errors: s.errors as i64,
        latency_micros: s.latency_micros as i64,
    };
    long_array(env, &record.to_array())
}

fn ensure_container<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
    container: JString<'l>,
) -> BridgeResult<jboolean> {
    let container = string(env, &container, "container")?;
    let s = storage(h)?;
    block(s.ensure_container(&container))
}

fn lease_acquire<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
    container: JString<'l>,
    name: JString<'l>,
    seconds: jint,
    proposed: JString<'l>,
) -> BridgeResult<JString<'l>> {
    let blob = blob(env, &container, &name)?;
    let duration = LeaseDuration::from_secs_or_infinite(i64::from(seconds))?;
    let proposed = opt_lease_id(env, &proposed)?;
    let s = storage(h)?;
    let id = block(s.acquire_lease(&blob, duration, proposed))?;
    Ok(env.new_string(id.to_string())?)
}

fn lease_renew<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
    container: JString<'l>,
    name: JString<'l>,
    lease: JString<'l>,
) -> BridgeResult<()> {
    let (blob, lease) = (blob(env, &container, &name)?, lease_id(env, &lease)?);
    block(storage(h)?.renew_lease(&blob, lease, None))
}

fn lease_release<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
    container: JString<'l>,
    name: JString<'l>,
    lease: JString<'l>,
) -> BridgeResult<()> {
    let (blob, lease) = (blob(env, &container, &name)?, lease_id(env, &lease)?);
    block(storage(h)?.release_lease(&blob, lease))
}

/// Returns the seconds until the broken lease can be acquired.
fn lease_break<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
    container: JString<'l>,
    name: JString<'l>,
    period_seconds: jint,
) -> BridgeResult<jlong> {
    let blob = blob(env, &container, &name)?;
    let period = u64::try_from(period_seconds).map_err(|_| {
        Error::new(
            ErrorKind::BadRequest,
            format!("break period must be 0-60 seconds, found {period_seconds}"),
        )
    })?;
    let left = block(storage(h)?.break_lease(&blob, Duration::from_secs(period)))?;
    Ok(left.as_secs() as jlong)
}

fn lease_change<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
    container: JString<'l>,
    name: JString<'l>,
    lease: JString<'l>,
    proposed: JString<'l>,
) -> BridgeResult<JString<'l>> {
    let blob = blob(env, &container, &name)?;
    let (lease, proposed) = (lease_id(env, &lease)?, lease_id(env, &proposed)?);
    let id = block(storage(h)?.change_lease(&blob, lease, proposed))?;
    Ok(env.new_string(id.to_string())?)
}

fn doc_create<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
    container: JString<'l>,
    name: JString<'l>,
    body: JByteArray<'l>,
) -> BridgeResult<JString<'l>> {
    let (blob, body) = (blob(env, &container, &name)?, bytes(env, &body, "body")?);
    let etag = block(storage(h)?.create_document(&blob, body))?;
    Ok(env.new_string(etag.0)?)
}

/// A [`DOCUMENT`]: its body and ETag.
fn document_pair<'l>(env: &mut Env<'l>, body: &[u8], etag: &str) -> BridgeResult<JObjectArray<'l>> {
    let arr = JObjectArray::<JObject>::new(env, DOCUMENT.head.len(), JObject::null())?;
    let body = env.byte_array_from_slice(body)?;
    let etag = env.new_string(etag)?;
    arr.set_element(env, DOCUMENT.position("body")?, &body)?;
    arr.set_element(env, DOCUMENT.position("etag")?, &etag)?;
    Ok(arr)
}

/// A [`DOCUMENT`].
fn doc_read<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
    container: JString<'l>,
    name: JString<'l>,
) -> BridgeResult<JObjectArray<'l>> {
    let blob = blob(env, &container, &name)?;
    let d = block(storage(h)?.read_document(&blob))?;
    document_pair(env, &d.body, &d.etag.0)
}

/// A [`DOCUMENT`], or null while the blob is still at `known`.
fn doc_read_if_changed<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
    container: JString<'l>,
    name: JString<'l>,
    known: JString<'l>,
) -> BridgeResult<JObjectArray<'l>> {
    let blob = blob(env, &container, &name)?;
    let known = etag(env, &known, "known etag")?;
    match block(storage(h)?.read_document_if_changed(&blob, &known))? {
        Some(d) => document_pair(env, &d.body, &d.etag.0),
        None => Ok(JObjectArray::<JObject>::null()),
    }
}

/// The new ETag, or null while the blob is still at `known`.
fn doc_check<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
    container: JString<'l>,
    name: JString<'l>,
    known: JString<'l>,
) -> BridgeResult<JString<'l>> {
    let blob = blob(env, &container, &name)?;
    let known = etag(env, &known, "known etag")?;
    match block(storage(h)?.check_document(&blob, &known))? {
        Change::Unchanged => Ok(JString::null()),
        Change::Changed(etag) => Ok(env.new_string(etag.0)?),
    }
}

// The arity is Java's: one argument per request field.
#[allow(clippy::too_many_arguments)]
fn doc_replace<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
    container: JString<'l>,
    name: JString<'l>,
    body: JByteArray<'l>,
    if_match: JString<'l>,
    lease: JString<'l>,
) -> BridgeResult<JString<'l>> {
    let (blob, body) = (blob(env, &container, &name)?, bytes(env, &body, "body")?);
    let if_match = opt_etag(env, &if_match)?;
    let lease = opt_lease_id(env, &lease)?;
    let etag = block(storage(h)?.replace_document(&blob, body, if_match.as_ref(), lease))?;
    Ok(env.new_string(etag.0)?)
}

fn doc_delete<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    h: jlong,
    container: JString<'l>,
    name: JString<'l>,
    if_match: JString<'l>,
    lease: JString<'l>,
) -> BridgeResult<()> {
    let blob = blob(env, &container, &name)?;
    let if_match = opt_etag(env, &if_match)?;
    let lease = opt_lease_id(env, &lease)?;
    block(storage(h)?.delete_document(&blob, if_match.as_ref(), lease))
}
