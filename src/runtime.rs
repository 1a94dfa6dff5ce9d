//! The one process-wide tokio runtime.
//!
//! Java threads call into the core and block on futures here; runtime workers never block and
//! never attach to the JVM. The runtime is built lazily and lives until the process exits: the
//! shipped Java never stops it. [`shutdown`] serves `Native.shutdownRuntime`, which only
//! NativeSelfCheck calls; calls after it fail instead of hanging.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::runtime::{Builder, Handle, Runtime};

use crate::error::{Error, Result};

pub const WORKER_THREADS: usize = 2;
pub const THREAD_NAME: &str = "samza-azure-rt";

enum State {
    NotStarted,
    Running(Runtime),
    ShutDown,
}

static RUNTIME: Mutex<State> = Mutex::new(State::NotStarted);

/// A handle to the shared runtime, starting it on first use.
pub fn handle() -> Result<Handle> {
    let mut state = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    if let State::NotStarted = *state {
        let rt = Builder::new_multi_thread()
            .worker_threads(WORKER_THREADS)
            .thread_name(THREAD_NAME)
            .enable_all()
            .build()
            .map_err(|e| Error::internal(format!("cannot start the tokio runtime: {e}")))?;
        *state = State::Running(rt);
    }
    match &*state {
        State::Running(rt) => Ok(rt.handle().clone()),
        _ => Err(Error::internal(
            "the native runtime has been shut down (the JVM is exiting)",
        )),
    }
}

/// Runs `f` in the shared runtime's context without blocking on it: for what needs a runtime
/// but awaits nothing (spawning a task, building the HTTP client, dropping a handle whose
/// tasks or connections go with it). The one place that enters the runtime, so a call site
/// says only why it needs to.
pub fn enter<R>(f: impl FnOnce() -> R) -> Result<R> {
    let rt = handle()?;
    let _guard = rt.enter();
    Ok(f())
}

/// Runs `fut` to completion on the shared runtime from a thread that is not a runtime worker.
///
/// Refuses to run on a runtime worker: blocking there could deadlock the runtime.
pub fn block_on<F: Future>(fut: F) -> Result<F::Output> {
    if Handle::try_current().is_ok() {
        return Err(Error::internal(
            "block_on called from inside the async runtime; this is a bug in the caller",
        ));
    }
    Ok(handle()?.block_on(fut))
}

/// Stops the runtime, waiting up to `timeout` for tasks to finish. Idempotent.
pub fn shutdown(timeout: Duration) {
    let previous = {
        let mut state = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *state, State::ShutDown)
    };
    if let State::Running(rt) = previous {
        rt.shutdown_timeout(timeout);
    }
}

/// True while the runtime is running (started and not shut down).
pub fn is_running() -> bool {
    matches!(
        *RUNTIME.lock().unwrap_or_else(|e| e.into_inner()),
        State::Running(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_on_refuses_to_run_on_a_runtime_thread() {
        assert_eq!(block_on(async { 7 }).unwrap(), 7);
        let inner = handle().unwrap().block_on(async {
            tokio::spawn(async { block_on(async {}).map_err(|e| e.kind()) })
                .await
                .unwrap()
        });
        assert_eq!(inner, Err(crate::ErrorKind::Internal));
    }
}
