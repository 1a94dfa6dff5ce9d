//! Natives for the runtime, logging, diagnostics and tests: version, the log pull, runtime
//! shutdown, a no-op round trip and sized result for benchmarks, and entry points that throw,
//! panic or log on purpose so tests can check the error mapping and the log bridge.

use jni::objects::{JByteArray, JClass, JObjectArray, JString};
use jni::sys::{jboolean, jint, jlong};
use jni::{Env, NativeMethod};

use super::convert::{block, millis, record_array, string};
use super::error::{BridgeError, BridgeResult, Throw};
use super::payloads::LogLine;
use super::registry::native;
use crate::error::{Error, ErrorKind};
use crate::logging;
use crate::runtime;

/// The natives of `Native.java` this file implements (see `registry.rs`).
pub(super) const NATIVES: &[NativeMethod<'static>] = &[
    native!(fn version() -> JString),
    native!(fn init_logging(level: jint)),
    native!(fn set_log_level(level: jint)),
    native!(fn poll_logs(timeout_ms: jlong, max: jint) -> JString[]),
    native!(fn shutdown_runtime(timeout_ms: jlong)),
    native!(fn is_runtime_running() -> jboolean),
    native!(fn noop()),
    native!(fn echo(size: jint) -> jbyte[]),
    native!(fn test_throw(code: JString, message: JString)),
    native!(fn test_panic(message: JString, on_runtime: jboolean)),
    native!(fn test_log(level: jint, message: JString)),
];

fn version<'l>(env: &mut Env<'l>, _class: JClass<'l>) -> BridgeResult<JString<'l>> {
    Ok(env.new_string(env!("CARGO_PKG_VERSION"))?)
}

fn init_logging<'l>(_env: &mut Env<'l>, _class: JClass<'l>, level: jint) -> BridgeResult<()> {
    Ok(logging::init_jvm_bridge(level.clamp(0, 5) as u8)?)
}

fn set_log_level<'l>(_env: &mut Env<'l>, _class: JClass<'l>, level: jint) -> BridgeResult<()> {
    logging::set_max_level(level.clamp(0, 5) as u8);
    Ok(())
}

/// Blocks up to `timeout_ms` for native log records. Returns the number dropped, then a
/// [`LogLine`] per record, or null when there was nothing.
fn poll_logs<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    timeout_ms: jlong,
    max: jint,
) -> BridgeResult<JObjectArray<'l, JString<'l>>> {
    let (records, dropped) = logging::poll(millis(timeout_ms), max.max(1) as usize);
    if records.is_empty() && dropped == 0 {
        return Ok(JObjectArray::<JString>::null());
    }
    let lines = records.into_iter().map(|r| LogLine {
        level: logging::level_name(r.level).to_owned(),
        target: r.target,
        message: r.message,
    });
    record_array(env, vec![Some(dropped.to_string())], lines)
}

fn shutdown_runtime<'l>(
    _env: &mut Env<'l>,
    _class: JClass<'l>,
    timeout_ms: jlong,
) -> BridgeResult<()> {
    runtime::shutdown(millis(timeout_ms));
    Ok(())
}

fn is_runtime_running<'l>(_env: &mut Env<'l>, _class: JClass<'l>) -> BridgeResult<jboolean> {
    Ok(runtime::is_running())
}

/// Round trip through the boundary and the runtime, doing nothing (benchmarks, smoke tests).
fn noop<'l>(_env: &mut Env<'l>, _class: JClass<'l>) -> BridgeResult<()> {
    block(async { Ok(()) })
}

/// Returns `size` bytes produced on the runtime (benchmarks: cost of a sized result).
fn echo<'l>(env: &mut Env<'l>, _class: JClass<'l>, size: jint) -> BridgeResult<JByteArray<'l>> {
    let n = usize::try_from(size).map_err(|_| {
        Error::new(
            ErrorKind::BadRequest,
            format!("size must be >= 0, found {size}"),
        )
    })?;
    let data = block(async move { Ok(vec![0x5a_u8; n]) })?;
    Ok(env.byte_array_from_slice(&data)?)
}

/// Fails with the given error code, so tests can check every mapping to a Java class.
fn test_throw<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    code: JString<'l>,
    message: JString<'l>,
) -> BridgeResult<()> {
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
}

/// Panics inside the runtime and on the calling thread; both must surface as exceptions.
fn test_panic<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    message: JString<'l>,
    on_runtime: jboolean,
) -> BridgeResult<()> {
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
}

/// Emits one native log record at `level` (1 = ERROR … 5 = TRACE).
fn test_log<'l>(
    env: &mut Env<'l>,
    _class: JClass<'l>,
    level: jint,
    message: JString<'l>,
) -> BridgeResult<()> {
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
}
