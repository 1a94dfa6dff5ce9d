//! Conversions between Java arguments and results and core types, shared by every export: a
//! null where a value is required becomes an error naming the argument, and core futures run on
//! the shared runtime from the calling Java thread.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use jni::objects::{JByteArray, JLongArray, JObjectArray, JString};
use jni::sys::jlong;
use jni::Env;

use super::error::{BridgeError, BridgeResult};
use super::handle::{self, HandleType};
use super::payloads::StringRecord;
use crate::error::{Error, ErrorKind};
use crate::runtime;
use crate::storage::{AzureStorage, BlobRef, ETag, Guard, LeaseId};

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

pub(super) fn bytes(env: &Env<'_>, arr: &JByteArray<'_>, what: &str) -> BridgeResult<Bytes> {
    if arr.is_null() {
        return Err(null_argument(what));
    }
    Ok(Bytes::from(env.convert_byte_array(arr)?))
}

pub(super) fn blob(
    env: &Env<'_>,
    container: &JString<'_>,
    name: &JString<'_>,
) -> BridgeResult<BlobRef> {
    Ok(BlobRef::new(
        &string(env, container, "container")?,
        &string(env, name, "blob")?,
    )?)
}

pub(super) fn lease_id(env: &Env<'_>, s: &JString<'_>) -> BridgeResult<LeaseId> {
    Ok(LeaseId::parse(&string(env, s, "lease id")?)?)
}

pub(super) fn opt_lease_id(env: &Env<'_>, s: &JString<'_>) -> BridgeResult<Option<LeaseId>> {
    Ok(opt_string(env, s)?
        .map(|s| LeaseId::parse(&s))
        .transpose()?)
}

pub(super) fn etag(env: &Env<'_>, s: &JString<'_>, what: &str) -> BridgeResult<ETag> {
    Ok(ETag(string(env, s, what)?))
}

/// The [`Guard`] of a blob write from its Java parts, an ETag and a lease id (each null for
/// none).
pub(super) fn guard(
    env: &Env<'_>,
    if_match: &JString<'_>,
    lease: &JString<'_>,
) -> BridgeResult<Guard> {
    Ok(Guard {
        if_match: opt_string(env, if_match)?.map(ETag),
        lease: opt_lease_id(env, lease)?,
    })
}

/// A Java timeout in milliseconds; a negative one is no wait.
pub(super) fn millis(ms: jlong) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

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

/// What the natives opening a handle take: Samza config as parallel key and value arrays, and
/// the id (`what`) of the processor or group opening it.
pub(super) fn config_and_id(
    env: &mut Env<'_>,
    keys: &JObjectArray<'_, JString<'_>>,
    values: &JObjectArray<'_, JString<'_>>,
    id: &JString<'_>,
    what: &str,
) -> BridgeResult<(HashMap<String, String>, String)> {
    let map = config_map(env, keys, values)?;
    Ok((map, string(env, id, what)?))
}

/// What a processor's handle opens from: its config as `read` takes it, the job's storage
/// client and the processor id. The config is read before the storage client is built, so a bad
/// setting is reported first.
pub(super) fn processor_config<C>(
    env: &mut Env<'_>,
    keys: &JObjectArray<'_, JString<'_>>,
    values: &JObjectArray<'_, JString<'_>>,
    id: &JString<'_>,
    read: impl FnOnce(&HashMap<String, String>) -> crate::Result<C>,
) -> BridgeResult<(C, std::sync::Arc<AzureStorage>, String)> {
    let (map, id) = config_and_id(env, keys, values, id, "processor id")?;
    let config = read(&map)?;
    Ok((config, open_storage(&map)?, id))
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

/// A Java `String[]` of `head`, then the fields of each record (a payload laid out in
/// `payloads.rs`).
pub(super) fn record_array<'l, R: StringRecord>(
    env: &mut Env<'l>,
    head: Vec<Option<String>>,
    records: impl IntoIterator<Item = R>,
) -> BridgeResult<JObjectArray<'l, JString<'l>>> {
    let mut fields = head;
    for record in records {
        record.push_to(&mut fields);
    }
    nullable_string_array(env, fields.into_iter())
}

pub(super) fn long_array<'l>(env: &mut Env<'l>, values: &[i64]) -> BridgeResult<JLongArray<'l>> {
    let arr = env.new_long_array(values.len())?;
    arr.set_region(env, 0, values)?;
    Ok(arr)
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

/// Frees a handle whose object owns runtime tasks: dropping it aborts them, which needs the
/// runtime's context.
pub(super) fn destroy_in_runtime<T: HandleType>(h: jlong) -> BridgeResult<()> {
    Ok(runtime::enter(|| handle::destroy::<T>(h))??)
}

/// Runs a core future on the shared runtime from this (Java) thread.
pub(super) fn block<T>(
    fut: impl std::future::Future<Output = crate::Result<T>>,
) -> BridgeResult<T> {
    Ok(runtime::block_on(fut)??)
}
