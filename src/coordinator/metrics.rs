//! The coordinator's counters for the Java metrics gauges, and the self-fence deadline that
//! the tasks' processing gate reads on every message (with the timer that notes a pause).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// Counters read by the Java metrics gauges.
#[derive(Debug, Default)]
pub struct Metrics {
    pub is_leader: AtomicBool,
    /// Version whose container runs here (0: none).
    pub running_version: AtomicU64,
    /// Newest version seen in the document.
    pub seen_version: AtomicU64,
    /// Versions this processor published as leader.
    pub rebalances: AtomicU64,
    pub barrier_timeouts: AtomicU64,
    pub heartbeat_failures: AtomicU64,
    /// Times leadership was lost without asking (a renew failed or was refused).
    pub lease_losses: AtomicU64,
    /// From noticing a membership change to every processor acknowledging, last time.
    pub last_rebalance_ms: AtomicU64,
    /// Self-fences so far: the fence epoch. A container started at epoch e must not process
    /// once this differs from e.
    pub fences: AtomicU64,
    /// Processing is paused: no heartbeat got through within the self-fence bound, and the
    /// container is kept until storage tells whether the job moved on without it.
    pub paused: AtomicBool,
    /// Times the engine's loop woke up. An idle processor wakes a few times per heartbeat and
    /// scan interval; a count that races ahead means the loop spins.
    pub wakeups: AtomicU64,
    /// When the last accepted heartbeat was sent, as nanoseconds since [`clock_base`].
    last_heartbeat_ok_nanos: NanosSinceBase,
    /// The self-fence bound in nanoseconds.
    pub(super) self_fence_nanos: AtomicU64,
}

/// An instant as signed nanoseconds since [`clock_base`]; none yet is the earliest.
#[derive(Debug)]
struct NanosSinceBase(AtomicI64);

impl Default for NanosSinceBase {
    fn default() -> Self {
        NanosSinceBase(AtomicI64::new(i64::MIN))
    }
}

/// A fixed point of the monotonic clock shared by all coordinators in the process.
pub(super) fn clock_base() -> std::time::Instant {
    static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(std::time::Instant::now)
}

/// Signed: under the simulator's paused clock an instant can precede the base, which is
/// read from the real clock; saturating there would shift deadlines by the real time elapsed.
fn nanos_since_base(t: Instant) -> i64 {
    let (t, base) = (t.into_std(), clock_base());
    match t.checked_duration_since(base) {
        Some(after) => after.as_nanos() as i64,
        None => -(base.duration_since(t).as_nanos() as i64),
    }
}

impl Metrics {
    /// Nanoseconds left before this processor must stop processing (negative: past it),
    /// by the monotonic clock. Cheap enough to ask before processing a message.
    pub fn fence_remaining_nanos(&self) -> i64 {
        let deadline = self.last_heartbeat_ok_nanos.0.load(Ordering::Acquire) as i128
            + self.self_fence_nanos.load(Ordering::Relaxed) as i128;
        let now = nanos_since_base(Instant::now()) as i128;
        (deadline - now).clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }

    /// Marks processing paused, once per pause, when a container runs and the self-fence
    /// deadline passed; returns the running version then. The engine and the fence timer
    /// both ask, so whichever is first logs it. Processing itself stops by the deadline,
    /// which the tasks' processing gate reads directly.
    pub(super) fn pause_due(&self) -> Option<u64> {
        let v = self.running_version.load(Ordering::Acquire);
        if v == 0 || self.fence_remaining_nanos() >= 0 || self.paused.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(v)
    }

    pub(super) fn heartbeat_accepted(&self, sent: Instant) {
        self.last_heartbeat_ok_nanos
            .0
            .fetch_max(nanos_since_base(sent), Ordering::AcqRel);
    }
}

/// Notes the pause at the self-fence deadline, on its own task: the engine may be waiting on
/// a storage request that hangs. (Processing stops at the deadline whatever notes it.)
pub(super) async fn fence_timer(metrics: Arc<Metrics>, bound: Duration) {
    // Past the deadline there is nothing more to note; look again now and then, since only a
    // heartbeat moves the deadline.
    let idle = (bound / 8).max(Duration::from_millis(10));
    loop {
        let remaining = metrics.fence_remaining_nanos();
        if remaining > 0 {
            tokio::time::sleep(Duration::from_nanos(remaining as u64)).await;
            continue;
        }
        if let Some(version) = metrics.pause_due() {
            log_pause(version);
        }
        tokio::time::sleep(idle).await;
    }
}

pub(super) fn log_pause(version: u64) {
    tracing::warn!(
        version,
        "no heartbeat reached storage within the self-fence bound; processing paused, the \
         container kept until storage tells whether the job moved on without it"
    );
}
