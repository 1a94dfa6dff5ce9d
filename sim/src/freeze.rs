//! Freezing one processor: every task it spawned (its coordinator loop, lease keeper, fence
//! timer, and the model of its Java side) stops being polled, at whatever await point it is,
//! as SIGSTOP or a long GC pause stops a JVM; and a crash, after which nothing of it runs.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use samza_azure_coordinator::tasks::{BoxTask, Wrapper};
use tokio::time::{Instant, Sleep};

#[derive(Default)]
struct State {
    until: Option<Instant>,
    dead: bool,
    /// Polls of this processor's tasks at one virtual instant: a loop that never waits keeps
    /// the paused clock from moving, and the run from ending.
    polls_at: Option<(Instant, u32)>,
    spun: bool,
}

/// Polls at one virtual instant past which a processor counts as spinning. A busy instant
/// (a rebalance of hundreds of tasks) takes a few hundred.
const SPIN_POLLS: u32 = 100_000;

#[derive(Default)]
pub struct Freeze {
    state: Mutex<State>,
}

impl Freeze {
    /// Freezes until `until` (extending a freeze under way).
    pub fn pause_until(&self, until: Instant) {
        let mut s = self.state.lock().unwrap();
        s.until = Some(s.until.map_or(until, |u| u.max(until)));
    }

    /// Nothing of the processor runs again.
    pub fn kill(&self) {
        self.state.lock().unwrap().dead = true;
    }

    /// Whether this processor was stopped for spinning: its tasks were polled
    /// [`SPIN_POLLS`] times without virtual time moving.
    pub fn spun(&self) -> bool {
        self.state.lock().unwrap().spun
    }

    pub fn is_dead(&self) -> bool {
        self.state.lock().unwrap().dead
    }

    pub fn is_frozen(&self) -> bool {
        let s = self.state.lock().unwrap();
        s.dead || s.until.is_some_and(|u| Instant::now() < u)
    }

    /// The wrapper for [`samza_azure_coordinator::tasks`]: tasks spawned under it obey this.
    pub fn wrapper(self: &Arc<Self>) -> Wrapper {
        let freeze = self.clone();
        Arc::new(move |task: BoxTask| -> BoxTask {
            Box::pin(Frozen {
                task,
                freeze: freeze.clone(),
                wait: None,
            })
        })
    }
}

struct Frozen {
    task: BoxTask,
    freeze: Arc<Freeze>,
    wait: Option<Pin<Box<Sleep>>>,
}

impl Future for Frozen {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let until = {
                let mut s = self.freeze.state.lock().unwrap();
                let now = Instant::now();
                let polls = match s.polls_at {
                    Some((at, n)) if at == now => n + 1,
                    _ => 1,
                };
                s.polls_at = Some((now, polls));
                if polls >= SPIN_POLLS && !s.dead {
                    // Stopped like a crash, so that the run goes on and reports it.
                    s.spun = true;
                    s.dead = true;
                }
                if s.dead {
                    // Never woken: the task is dropped with the processor.
                    return Poll::Pending;
                }
                s.until.filter(|u| Instant::now() < *u)
            };
            let Some(until) = until else { break };
            let wait = self
                .wait
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
            if wait.deadline() != until {
                wait.as_mut().reset(until);
            }
            match wait.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => self.wait = None,
            }
        }
        self.task.as_mut().poll(cx)
    }
}
