//! Natives for `AzureStorageClient`: one storage client per handle, with lease and document
//! operations on single blobs.

use std::time::Duration;

use jni::objects::{JObject, JObjectArray, JString};
use jni::sys::{jboolean, jint, jlong};
use jni::Env;
use samza_azure_coordinator_macros::natives;

use super::convert::{
    blob, block, bytes, config_map, etag, guard, lease_id, long_array, opt_lease_id, string,
};
use super::error::BridgeResult;
use super::handle::{self, HandleType};
use super::payloads::{StorageStats, DOCUMENT};
use crate::config::StorageConfig;
use crate::error::{Error, ErrorKind};
use crate::runtime;
use crate::storage::{AzureStorage, Change, DocumentStore, LeaseDuration, LeaseStore};

/// The natives of `Native.java` this file implements, in the `#[natives]` block below (see
/// `registry.rs`).
pub(super) struct Natives;

impl HandleType for AzureStorage {
    const TAG: u64 = 0x5341_5a53_544f_5231; // "SAZSTOR1"
    const NAME: &'static str = "AzureStorageClient";
}

fn storage<'a>(h: jlong) -> BridgeResult<&'a AzureStorage> {
    Ok(handle::borrow::<AzureStorage>(h)?)
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

#[natives]
impl Natives {
    fn storage_open(env: Env, keys: [JString], values: [JString]) -> jlong {
        let map = config_map(env, &keys, &values)?;
        let config = StorageConfig::from_map(&map)?;
        // The HTTP client must be built inside the runtime context.
        let storage = runtime::enter(|| AzureStorage::new(&config))??;
        Ok(handle::into_handle(storage))
    }

    fn storage_close(h: jlong) {
        Ok(handle::destroy::<AzureStorage>(h)?)
    }

    /// A [`StorageStats`] record: counters since the client was opened.
    fn storage_stats(env: Env, h: jlong) -> [jlong] {
        let s = storage(h)?.stats();
        let record = StorageStats {
            requests: s.requests as i64,
            errors: s.errors as i64,
            latency_micros: s.latency_micros as i64,
        };
        long_array(env, &record.to_array())
    }

    fn ensure_container(env: Env, h: jlong, container: JString) -> jboolean {
        let container = string(env, &container, "container")?;
        let s = storage(h)?;
        block(s.ensure_container(&container))
    }

    fn lease_acquire(
        env: Env,
        h: jlong,
        container: JString,
        name: JString,
        seconds: jint,
        proposed: JString,
    ) -> JString {
        let blob = blob(env, &container, &name)?;
        let duration = LeaseDuration::from_secs_or_infinite(i64::from(seconds))?;
        let proposed = opt_lease_id(env, &proposed)?;
        let s = storage(h)?;
        let id = block(s.acquire_lease(&blob, duration, proposed))?;
        Ok(env.new_string(id.to_string())?)
    }

    fn lease_renew(env: Env, h: jlong, container: JString, name: JString, lease: JString) {
        let (blob, lease) = (blob(env, &container, &name)?, lease_id(env, &lease)?);
        block(storage(h)?.renew_lease(&blob, lease, None))
    }

    fn lease_release(env: Env, h: jlong, container: JString, name: JString, lease: JString) {
        let (blob, lease) = (blob(env, &container, &name)?, lease_id(env, &lease)?);
        block(storage(h)?.release_lease(&blob, lease))
    }

    /// Returns the seconds until the broken lease can be acquired.
    fn lease_break(
        env: Env,
        h: jlong,
        container: JString,
        name: JString,
        period_seconds: jint,
    ) -> jlong {
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

    fn lease_change(
        env: Env,
        h: jlong,
        container: JString,
        name: JString,
        lease: JString,
        proposed: JString,
    ) -> JString {
        let blob = blob(env, &container, &name)?;
        let (lease, proposed) = (lease_id(env, &lease)?, lease_id(env, &proposed)?);
        let id = block(storage(h)?.change_lease(&blob, lease, proposed))?;
        Ok(env.new_string(id.to_string())?)
    }

    fn doc_create(env: Env, h: jlong, container: JString, name: JString, body: [jbyte]) -> JString {
        let (blob, body) = (blob(env, &container, &name)?, bytes(env, &body, "body")?);
        let etag = block(storage(h)?.create_document(&blob, body))?;
        Ok(env.new_string(etag.0)?)
    }

    /// A [`DOCUMENT`].
    fn doc_read(env: Env, h: jlong, container: JString, name: JString) -> [JObject] {
        let blob = blob(env, &container, &name)?;
        let d = block(storage(h)?.read_document(&blob))?;
        document_pair(env, &d.body, &d.etag.0)
    }

    /// A [`DOCUMENT`], or null while the blob is still at `known`.
    fn doc_read_if_changed(
        env: Env,
        h: jlong,
        container: JString,
        name: JString,
        known: JString,
    ) -> [JObject] {
        let blob = blob(env, &container, &name)?;
        let known = etag(env, &known, "known etag")?;
        match block(storage(h)?.read_document_if_changed(&blob, &known))? {
            Some(d) => document_pair(env, &d.body, &d.etag.0),
            None => Ok(JObjectArray::<JObject>::null()),
        }
    }

    /// The new ETag, or null while the blob is still at `known`.
    fn doc_check(env: Env, h: jlong, container: JString, name: JString, known: JString) -> JString {
        let blob = blob(env, &container, &name)?;
        let known = etag(env, &known, "known etag")?;
        match block(storage(h)?.check_document(&blob, &known))? {
            Change::Unchanged => Ok(JString::null()),
            Change::Changed(etag) => Ok(env.new_string(etag.0)?),
        }
    }

    fn doc_replace(
        env: Env,
        h: jlong,
        container: JString,
        name: JString,
        body: [jbyte],
        if_match: JString,
        lease: JString,
    ) -> JString {
        let (blob, body) = (blob(env, &container, &name)?, bytes(env, &body, "body")?);
        let guard = guard(env, &if_match, &lease)?;
        let etag = block(storage(h)?.replace_document(&blob, body, guard))?;
        Ok(env.new_string(etag.0)?)
    }

    fn doc_delete(
        env: Env,
        h: jlong,
        container: JString,
        name: JString,
        if_match: JString,
        lease: JString,
    ) {
        let blob = blob(env, &container, &name)?;
        let guard = guard(env, &if_match, &lease)?;
        block(storage(h)?.delete_document(&blob, guard))
    }
}
