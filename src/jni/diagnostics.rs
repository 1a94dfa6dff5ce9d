//! Natives for the runtime, logging, diagnostics and tests: version, the log pull, runtime
//! shutdown, a no-op round trip and sized result for benchmarks, and entry points that throw,
//! panic or log on purpose so tests can check the error mapping and the log bridge.

use jni::objects::{JObjectArray, JString};
use jni::sys::{jboolean, jint, jlong};
use jni::Env;
use samza_azure_coordinator_macros::natives;

use super::convert::{block, millis, record_array, string};
use super::error::BridgeError;
use super::payloads::LogLine;
use crate::error::{Error, ErrorKind};
use crate::logging;
use crate::runtime;

/// The natives of `Native.java` this file implements, in the `#[natives]` block below (see
/// `registry.rs`).
pub(super) struct Natives;

#[natives]
impl Natives {
    fn version(env: Env) -> JString {
        Ok(env.new_string(env!("CARGO_PKG_VERSION"))?)
    }

    fn init_logging(level: jint) {
        Ok(logging::init_jvm_bridge(level.clamp(0, 5) as u8)?)
    }

    fn set_log_level(level: jint) {
        logging::set_max_level(level.clamp(0, 5) as u8);
        Ok(())
    }

    /// Blocks up to `timeout_ms` for native log records. Returns the number dropped, then a
    /// [`LogLine`] per record, or null when there was nothing.
    fn poll_logs(env: Env, timeout_ms: jlong, max: jint) -> [JString] {
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

    fn shutdown_runtime(timeout_ms: jlong) {
        runtime::shutdown(millis(timeout_ms));
        Ok(())
    }

    fn is_runtime_running() -> jboolean {
        Ok(runtime::is_running())
    }

    /// Round trip through the boundary and the runtime, doing nothing (benchmarks, smoke tests).
    fn noop() {
        block(async { Ok(()) })
    }

    /// Returns `size` bytes produced on the runtime (benchmarks: cost of a sized result).
    fn echo(env: Env, size: jint) -> [jbyte] {
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
    fn test_throw(env: Env, code: JString, message: JString) {
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
    fn test_panic(env: Env, message: JString, on_runtime: jboolean) {
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
    fn test_log(env: Env, level: jint, message: JString) {
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
}
