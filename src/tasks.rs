//! Spawning the protocol's background tasks (a coordinator's loop, its lease keeper and fence
//! timer) through one function, so that the deterministic simulator can run one processor's
//! tasks under a wrapper of its own: freezing them together, as SIGSTOP freezes a process.
//! Without a wrapper in scope this is `tokio::spawn`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::task::JoinHandle;

/// A task as the wrapper sees it.
pub type BoxTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Wraps every task spawned while it is in scope, and the tasks those spawn.
pub type Wrapper = Arc<dyn Fn(BoxTask) -> BoxTask + Send + Sync>;

tokio::task_local! {
    static WRAPPER: Wrapper;
}

/// Spawns `task` on the current runtime, under the wrapper in scope if any.
pub fn spawn<F: Future<Output = ()> + Send + 'static>(task: F) -> JoinHandle<()> {
    match WRAPPER.try_with(Arc::clone) {
        Ok(wrap) => {
            let inner = wrap(Box::pin(task));
            tokio::spawn(WRAPPER.scope(wrap, inner))
        }
        Err(_) => tokio::spawn(task),
    }
}

/// Runs `f` (which starts tasks) with `wrap` in scope for every [`spawn`] inside it.
pub fn with_wrapper<R>(wrap: Wrapper, f: impl FnOnce() -> R) -> R {
    WRAPPER.sync_scope(wrap, f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn tasks_spawned_by_wrapped_tasks_are_wrapped_too() {
        let wrapped = Arc::new(AtomicUsize::new(0));
        let count = wrapped.clone();
        let wrap: Wrapper = Arc::new(move |t| {
            count.fetch_add(1, Ordering::SeqCst);
            t
        });
        let outer = with_wrapper(wrap, || {
            spawn(async {
                spawn(async {}).await.unwrap();
            })
        });
        outer.await.unwrap();
        assert_eq!(wrapped.load(Ordering::SeqCst), 2);
        // Out of scope: not wrapped.
        spawn(async {}).await.unwrap();
        assert_eq!(wrapped.load(Ordering::SeqCst), 2);
    }
}
