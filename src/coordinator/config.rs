//! Coordinator settings from Samza config: timing of the protocol and the job's identity.
//! Every key, default and bound is listed in docs/configuration.md.

use std::collections::HashMap;
use std::time::Duration;

use crate::config::{Keys, RequestPolicy, KEY_REQUEST_TIMEOUT_MS};
use crate::error::{Error, Result};
use crate::lease::LeaseTiming;

use super::names::JobIdentity;

pub use super::names::{KEY_JOB_ID, KEY_JOB_NAME};
pub const KEY_HEARTBEAT_MS: &str = "job.coordinator.azure.heartbeat.interval.ms";
pub const KEY_LIVENESS_MS: &str = "job.coordinator.azure.liveness.timeout.ms";
pub const KEY_POLL_MS: &str = "job.coordinator.azure.poll.interval.ms";
pub const KEY_SCAN_MS: &str = "job.coordinator.azure.leader.scan.interval.ms";
pub const KEY_REBALANCE_POLL_MS: &str = "job.coordinator.azure.rebalance.poll.interval.ms";
pub const KEY_DEBOUNCE_MS: &str = "job.coordinator.azure.debounce.ms";
pub const KEY_BARRIER_TIMEOUT_MS: &str = "job.coordinator.azure.barrier.timeout.ms";
pub const KEY_LEASE_MS: &str = "job.coordinator.azure.lease.duration.ms";
pub const KEY_LEASE_RENEW_MS: &str = "job.coordinator.azure.lease.renew.interval.ms";
pub const KEY_ACQUIRE_MS: &str = "job.coordinator.azure.leader.acquire.interval.ms";
/// Samza's bound on a container's stop, and its default.
pub const KEY_TASK_SHUTDOWN_MS: &str = "task.shutdown.ms";
const DEFAULT_TASK_SHUTDOWN: Duration = Duration::from_millis(30_000);

/// The keys the coordinator reads (Java passes only these, plus the storage keys, to native).
pub const KEYS: [&str; 12] = [
    KEY_JOB_NAME,
    KEY_JOB_ID,
    KEY_HEARTBEAT_MS,
    KEY_LIVENESS_MS,
    KEY_POLL_MS,
    KEY_SCAN_MS,
    KEY_REBALANCE_POLL_MS,
    KEY_DEBOUNCE_MS,
    KEY_BARRIER_TIMEOUT_MS,
    KEY_LEASE_MS,
    KEY_LEASE_RENEW_MS,
    KEY_ACQUIRE_MS,
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How often each processor refreshes its membership row.
    pub heartbeat: Duration,
    /// A row not refreshed for this long (by storage's clock) is dead.
    pub liveness: Duration,
    /// How often processors re-read the JobModel document unprompted. Normally the leader's
    /// touch of their notification row tells them at their next heartbeat; this is the
    /// backstop.
    pub poll: Duration,
    /// How often the leader reads the membership while nothing is happening.
    pub scan: Duration,
    /// How often the document (processors) and the membership (leader) are read while a
    /// rebalance is in flight.
    pub rebalance_poll: Duration,
    /// How long the leader lets joins settle before computing a model.
    pub debounce: Duration,
    /// How long the leader waits for every acknowledgement of a new version.
    pub barrier_timeout: Duration,
    pub lease: LeaseTiming,
}

impl Timing {
    /// A processor that has not heartbeated successfully for this long stops its containers:
    /// the leader may hand its partitions to others after `liveness`, so this must come first.
    pub fn self_fence(&self) -> Duration {
        self.liveness - (self.liveness / 4).min(Duration::from_secs(1))
    }

    /// The longest a processor may have gone without a confirmed answer from storage (from
    /// sending one successful heartbeat to the answer of the next) and still judge others
    /// dead. After a stall of this length that everyone saw, another's row is at most this
    /// plus one interval and one retry old, which stays under the liveness timeout. Never
    /// below one and a half intervals, or ordinary latency would count as a stall.
    pub fn reachability_gap(&self) -> Duration {
        let interval = self.heartbeat;
        (self.liveness.saturating_sub(interval + interval / 4)).max(interval * 3 / 2)
    }

    /// How long the leader waits for Java to compute a model before counting the compute as
    /// failed: as long as it waits on a barrier.
    pub fn compute_timeout(&self) -> Duration {
        self.barrier_timeout
    }

    /// How often a processor re-reads the document while a rebalance is in flight, in a job
    /// of `members` processors: every `rebalance_poll`, but slower as the job grows, so that
    /// all of them together read the one blob at most about [`PACED_READS_PER_SEC`] times a
    /// second (Azure serves about 500 requests/s per blob). Notifications, at the next
    /// heartbeat, tell the others.
    pub fn rebalance_poll_for(&self, members: usize) -> Duration {
        self.rebalance_poll
            .max(per_member(members, PACED_READS_PER_SEC))
    }

    /// How often the leader reads the membership while a rebalance is in flight: every
    /// `rebalance_poll`, slower as the job grows (each read returns every row), and never
    /// slower than the idle scan.
    pub fn busy_scan_for(&self, members: usize) -> Duration {
        let paced = per_member(members, PACED_SCAN_ROWS_PER_SEC);
        self.rebalance_poll
            .max(paced)
            .min(self.scan.max(self.rebalance_poll))
    }

    /// The longest a notified processor waits, at random, before reading the document.
    /// Heartbeats already spread the reads over one interval; a job too large for that alone
    /// spreads them further, to about [`PACED_READS_PER_SEC`] a second.
    pub fn notified_read_spread(&self, members: usize) -> Duration {
        per_member(members, PACED_READS_PER_SEC).saturating_sub(self.heartbeat)
    }
}

/// Reads per second of the one document that every processor together aims to stay under
/// when polling during a rebalance, and again when reading after notifications.
pub const PACED_READS_PER_SEC: u64 = 100;

/// Membership rows per second the leader's scans aim to stay under during a rebalance.
pub const PACED_SCAN_ROWS_PER_SEC: u64 = 500;

/// The interval at which `members` processors (or rows) make `per_sec` together.
fn per_member(members: usize, per_sec: u64) -> Duration {
    Duration::from_millis(members as u64 * 1000 / per_sec)
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat: Duration::from_millis(2000),
            liveness: Duration::from_millis(6000),
            poll: Duration::from_millis(30000),
            scan: Duration::from_millis(1000),
            rebalance_poll: Duration::from_millis(200),
            debounce: Duration::from_millis(1000),
            // Above Samza's default task.shutdown.ms (30 s): a processor acknowledges only
            // once its container stopped.
            barrier_timeout: Duration::from_millis(60000),
            lease: LeaseTiming::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoordinatorConfig {
    pub job: JobIdentity,
    pub timing: Timing,
}

impl CoordinatorConfig {
    pub fn from_map(config: &HashMap<String, String>) -> Result<Self> {
        let job = JobIdentity::from_map(config)?;
        let d = Timing::default();
        let keys = Keys(config);
        let heartbeat = keys.ms(KEY_HEARTBEAT_MS, d.heartbeat, 100, 60_000)?;
        let liveness = keys.ms(KEY_LIVENESS_MS, d.liveness, 1_000, 600_000)?;
        if liveness < heartbeat * 2 {
            return Err(Error::config(
                KEY_LIVENESS_MS,
                format!(
                    "at least twice {KEY_HEARTBEAT_MS} ({} ms), found {} ms",
                    heartbeat.as_millis() * 2,
                    liveness.as_millis()
                ),
            ));
        }
        let poll = keys.ms(KEY_POLL_MS, d.poll, 20, 600_000)?;
        let scan = keys.ms(KEY_SCAN_MS, d.scan, 20, 60_000)?;
        let rebalance_poll = keys.ms(KEY_REBALANCE_POLL_MS, d.rebalance_poll, 20, 60_000)?;
        if rebalance_poll > poll {
            return Err(Error::config(
                KEY_REBALANCE_POLL_MS,
                format!(
                    "at most {KEY_POLL_MS} ({} ms), found {} ms",
                    poll.as_millis(),
                    rebalance_poll.as_millis()
                ),
            ));
        }
        let debounce = keys.ms(KEY_DEBOUNCE_MS, d.debounce, 0, 60_000)?;
        let barrier_timeout =
            keys.ms(KEY_BARRIER_TIMEOUT_MS, d.barrier_timeout, 1_000, 3_600_000)?;
        let lease = LeaseTiming {
            duration: keys.ms(KEY_LEASE_MS, d.lease.duration, 15_000, 60_000)?,
            renew_interval: keys.ms(KEY_LEASE_RENEW_MS, d.lease.renew_interval, 100, 20_000)?,
            acquire_interval: keys.ms(KEY_ACQUIRE_MS, d.lease.acquire_interval, 100, 600_000)?,
            safety_margin: d.lease.safety_margin,
        };
        lease.validate((KEY_LEASE_MS, KEY_LEASE_RENEW_MS))?;
        let shutdown = keys.ms(KEY_TASK_SHUTDOWN_MS, DEFAULT_TASK_SHUTDOWN, 0, u64::MAX / 2)?;
        if barrier_timeout <= shutdown {
            return Err(Error::config(
                KEY_BARRIER_TIMEOUT_MS,
                format!(
                    "more than {KEY_TASK_SHUTDOWN_MS} ({} ms): a processor acknowledges a new \
                     version only once its container stopped; found {} ms",
                    shutdown.as_millis(),
                    barrier_timeout.as_millis()
                ),
            ));
        }
        let self_fence = Timing {
            liveness,
            ..Timing::default()
        }
        .self_fence();
        let request_timeout = keys.ms(
            KEY_REQUEST_TIMEOUT_MS,
            RequestPolicy::default().request_timeout,
            0,
            u64::MAX / 2,
        )?;
        if request_timeout >= self_fence {
            return Err(Error::config(
                KEY_REQUEST_TIMEOUT_MS,
                format!(
                    "less than the self-fence bound ({} ms, from {KEY_LIVENESS_MS}): a heartbeat \
                     attempt must be able to finish before the processor fences; found {} ms",
                    self_fence.as_millis(),
                    request_timeout.as_millis()
                ),
            ));
        }
        Ok(CoordinatorConfig {
            job,
            timing: Timing {
                heartbeat,
                liveness,
                poll,
                scan,
                rebalance_poll,
                debounce,
                barrier_timeout,
                lease,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_and_job_identity() {
        let c = CoordinatorConfig::from_map(&map(&[(KEY_JOB_NAME, "orders")])).unwrap();
        assert_eq!(c.job.id, "1");
        assert_eq!(c.timing, Timing::default());
        assert!(c.timing.self_fence() < c.timing.liveness);
    }

    #[test]
    fn reads_during_a_rebalance_slow_down_as_the_job_grows() {
        let t = Timing::default();
        let ms = Duration::from_millis;
        // Small jobs keep the fast poll; the whole job stays near 100 reads/s of the blob.
        assert_eq!(t.rebalance_poll_for(3), ms(200));
        assert_eq!(t.rebalance_poll_for(100), ms(1000));
        assert_eq!(t.rebalance_poll_for(1000), ms(10_000));
        // The leader's scans: 500 rows/s, between the fast poll and the idle scan.
        assert_eq!(t.busy_scan_for(10), ms(200));
        assert_eq!(t.busy_scan_for(300), ms(600));
        assert_eq!(t.busy_scan_for(1000), ms(1000));
        // Heartbeats spread notified reads over one interval; only large jobs wait longer.
        assert_eq!(t.notified_read_spread(100), Duration::ZERO);
        assert_eq!(t.notified_read_spread(1000), ms(8000));
    }

    #[test]
    fn a_stall_short_enough_to_judge_after_leaves_others_rows_fresh() {
        let t = Timing::default();
        assert_eq!(t.reachability_gap(), Duration::from_millis(3500));
        // A stall of the gap, plus another's unlucky interval and retry, stays under liveness.
        assert!(t.reachability_gap() + t.heartbeat + t.heartbeat / 4 <= t.liveness);
        // At the tightest allowed liveness (2 intervals) ordinary answers still count as
        // reachable: one interval and some latency is below the gap.
        let tight = Timing {
            liveness: t.heartbeat * 2,
            ..t
        };
        assert_eq!(tight.reachability_gap(), t.heartbeat * 3 / 2);
    }

    #[test]
    fn errors_name_the_key() {
        let e = CoordinatorConfig::from_map(&map(&[])).unwrap_err();
        assert!(e.message().contains(KEY_JOB_NAME), "{e}");
        let e =
            CoordinatorConfig::from_map(&map(&[(KEY_JOB_NAME, "j"), (KEY_LIVENESS_MS, "3000")]))
                .unwrap_err();
        assert!(
            e.message().contains(KEY_LIVENESS_MS) && e.message().contains("4000"),
            "{e}"
        );
        let e = CoordinatorConfig::from_map(&map(&[(KEY_JOB_NAME, "j"), (KEY_POLL_MS, "fast")]))
            .unwrap_err();
        assert!(
            e.message().contains(KEY_POLL_MS) && e.message().contains("fast"),
            "{e}"
        );
        let e =
            CoordinatorConfig::from_map(&map(&[(KEY_JOB_NAME, "j"), (KEY_LEASE_RENEW_MS, "6000")]))
                .unwrap_err();
        assert!(e.message().contains(KEY_LEASE_RENEW_MS), "{e}");
    }

    #[test]
    fn the_barrier_outlasts_a_container_stop_and_an_attempt_fits_before_the_fence() {
        let c = CoordinatorConfig::from_map(&map(&[(KEY_JOB_NAME, "j")])).unwrap();
        assert!(c.timing.barrier_timeout > DEFAULT_TASK_SHUTDOWN);
        let e = CoordinatorConfig::from_map(&map(&[
            (KEY_JOB_NAME, "j"),
            (KEY_TASK_SHUTDOWN_MS, "60000"),
        ]))
        .unwrap_err();
        assert!(
            e.message().contains(KEY_BARRIER_TIMEOUT_MS)
                && e.message().contains(KEY_TASK_SHUTDOWN_MS),
            "{e}"
        );
        let e = CoordinatorConfig::from_map(&map(&[
            (KEY_JOB_NAME, "j"),
            (KEY_LIVENESS_MS, "3000"),
            (KEY_HEARTBEAT_MS, "1000"),
            (KEY_REQUEST_TIMEOUT_MS, "4000"),
        ]))
        .unwrap_err();
        assert!(
            e.message().contains(KEY_REQUEST_TIMEOUT_MS) && e.message().contains(KEY_LIVENESS_MS),
            "{e}"
        );
    }
}
