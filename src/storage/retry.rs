//! Our own retry loop. The SDK's is switched off: its default (8 tries, ~82 s to give up)
//! would outlive a lease many times over.
//!
//! Bounded exponential backoff with full jitter, a cap on attempts, and an overall deadline
//! that also cuts the last attempt short. A write whose earlier attempt may have reached
//! storage and whose retry then conflicts is reported as [`ErrorKind::OutcomeUnknown`], never
//! as a clean conflict: the first attempt may have been the one that won.

use std::future::Future;
use std::time::Duration;

// The runtime's clock, so that the simulator's paused clock governs deadlines too.
use tokio::time::Instant;

use super::{BatchOp, Guard, IfMatch, Update};
use crate::config::RequestPolicy;
use crate::error::{Error, ErrorKind, Result};

/// Whether repeating the operation is harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Reads, and writes whose repetition has the same effect (upsert, break, renew).
    Idempotent,
    /// Conditional or create-only writes: a repeat can report a conflict with our own success.
    Conditional,
}

impl Idempotency {
    fn conditional_if(conditional: bool) -> Self {
        if conditional {
            Idempotency::Conditional
        } else {
            Idempotency::Idempotent
        }
    }

    /// A write conditioned on an ETag can report a conflict with its own earlier success.
    pub fn of_condition(m: &IfMatch) -> Self {
        Self::conditional_if(matches!(m, IfMatch::ETag(_)))
    }

    /// A blob overwrite repeats harmlessly unless it is a compare-and-swap.
    pub fn of_blob_write(guard: &Guard) -> Self {
        Self::conditional_if(guard.if_match.is_some())
    }

    /// A transaction is conditional if any of its operations is: an insert, or an update or
    /// delete on an ETag.
    pub fn of_batch(ops: &[BatchOp]) -> Self {
        Self::conditional_if(ops.iter().any(|op| match op {
            BatchOp::Insert(_) => true,
            BatchOp::Upsert(..) => false,
            BatchOp::Update(_, Update { if_match, .. }) | BatchOp::Delete { if_match, .. } => {
                Self::of_condition(if_match) == Idempotency::Conditional
            }
        }))
    }
}

/// Delay before attempt `attempt` (1-based count of failures so far): full jitter over an
/// exponentially growing, capped window.
pub fn backoff(policy: &RequestPolicy, attempt: u32) -> Duration {
    let exp = policy
        .backoff_base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let cap = exp.min(policy.backoff_max);
    let millis = cap.as_millis() as u64;
    Duration::from_millis(crate::random::in_range(millis / 2..=millis.max(1)))
}

/// A doubling wait between attempts, from `first` up to `max`, without jitter: for loops that
/// wait storage out for as long as it takes (the callers above the storage layer), where
/// [`with_retry`]'s budget does not apply.
#[derive(Clone, Debug)]
pub struct Doubling {
    next: Duration,
    max: Duration,
}

impl Doubling {
    pub const fn new(first: Duration, max: Duration) -> Self {
        Doubling { next: first, max }
    }

    /// The wait due now; the one after is twice as long, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next.min(self.max);
        self.next = delay.saturating_mul(2);
        delay
    }

    pub async fn sleep(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }
}

/// Runs `op` until it succeeds, fails permanently, or the policy's budget is spent.
pub async fn with_retry<T, F, Fut>(
    policy: &RequestPolicy,
    deadline: Option<Duration>,
    idempotency: Idempotency,
    mut op: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let budget = deadline.unwrap_or(policy.deadline);
    let start = Instant::now();
    let mut attempt = 0u32;
    let mut ambiguous = false;
    loop {
        attempt += 1;
        let remaining = budget.saturating_sub(start.elapsed());
        let result = match tokio::time::timeout(remaining, op()).await {
            Ok(r) => r,
            Err(_) => Err(Error::new(
                ErrorKind::Transient,
                format!("no answer within the {} ms deadline", budget.as_millis()),
            )),
        };
        let err = match result {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if ambiguous
            && idempotency == Idempotency::Conditional
            && matches!(
                err.kind(),
                ErrorKind::PreconditionFailed | ErrorKind::AlreadyExists
            )
        {
            return Err(err
                .with_kind(ErrorKind::OutcomeUnknown)
                .context("an earlier attempt may have been applied before this conflict"));
        }
        if !err.kind().is_transient() {
            return Err(err);
        }
        ambiguous |= !err.not_sent();
        let delay = backoff(policy, attempt);
        if attempt >= policy.max_attempts || start.elapsed() + delay >= budget {
            let err = err.context(format!(
                "gave up after {attempt} attempt(s) in {} ms",
                start.elapsed().as_millis()
            ));
            return Err(if ambiguous && idempotency == Idempotency::Conditional {
                err.with_kind(ErrorKind::OutcomeUnknown)
            } else {
                err
            });
        }
        tracing::debug!(attempt, delay_ms = delay.as_millis() as u64, error = %err, "retrying storage request");
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn policy() -> RequestPolicy {
        RequestPolicy {
            max_attempts: 4,
            backoff_base: Duration::from_millis(1),
            backoff_max: Duration::from_millis(4),
            deadline: Duration::from_secs(5),
            ..RequestPolicy::default()
        }
    }

    #[test]
    fn doubling_doubles_up_to_its_cap() {
        let mut d = Doubling::new(Duration::from_millis(100), Duration::from_millis(350));
        let delays: Vec<u128> = (0..4).map(|_| d.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 350, 350]);
    }

    #[test]
    fn backoff_stays_within_cap() {
        let p = RequestPolicy::default();
        for attempt in 1..40 {
            assert!(backoff(&p, attempt) <= p.backoff_max);
        }
    }

    /// Runs [`with_retry`] over attempts that fail with `fail(n)` (`n` counts from 0); returns
    /// how many attempts it made and the kind of error it gave up with.
    async fn retried(idempotency: Idempotency, fail: impl Fn(u32) -> Error) -> (u32, ErrorKind) {
        let calls = AtomicU32::new(0);
        let r: Result<()> = with_retry(&policy(), None, idempotency, || async {
            Err(fail(calls.fetch_add(1, Ordering::SeqCst)))
        })
        .await;
        (calls.load(Ordering::SeqCst), r.unwrap_err().kind())
    }

    fn transient(_: u32) -> Error {
        Error::new(ErrorKind::Transient, "503")
    }

    fn not_sent(_: u32) -> Error {
        Error::new(ErrorKind::Transient, "connection refused").mark_not_sent()
    }

    fn conflict(_: u32) -> Error {
        Error::new(ErrorKind::PreconditionFailed, "412")
    }

    /// `first` on the first attempt, then conflicts.
    fn then_conflict(first: fn(u32) -> Error) -> impl Fn(u32) -> Error {
        move |n| if n == 0 { first(n) } else { conflict(n) }
    }

    #[tokio::test]
    async fn transient_errors_retry_up_to_max_attempts() {
        let r = retried(Idempotency::Idempotent, transient).await;
        assert_eq!(r, (4, ErrorKind::Transient));
    }

    #[tokio::test]
    async fn permanent_errors_do_not_retry() {
        let r = retried(Idempotency::Idempotent, conflict).await;
        assert_eq!(r, (1, ErrorKind::PreconditionFailed));
    }

    #[tokio::test]
    async fn conflict_after_ambiguous_failure_is_outcome_unknown() {
        let timeout = |_| Error::new(ErrorKind::Transient, "timeout");
        let r = retried(Idempotency::Conditional, then_conflict(timeout)).await;
        assert_eq!(r.1, ErrorKind::OutcomeUnknown);
    }

    #[tokio::test]
    async fn failures_before_sending_are_not_ambiguous() {
        let r = retried(Idempotency::Conditional, then_conflict(not_sent)).await;
        assert_eq!(r.1, ErrorKind::PreconditionFailed);
        let r = retried(Idempotency::Conditional, not_sent).await;
        assert_eq!(r.1, ErrorKind::Transient, "never sent: not applied");
    }

    #[tokio::test]
    async fn exhausted_conditional_write_is_outcome_unknown() {
        let r = retried(Idempotency::Conditional, transient).await;
        assert_eq!(r.1, ErrorKind::OutcomeUnknown);
    }

    #[tokio::test]
    async fn deadline_cuts_a_hanging_attempt() {
        let p = RequestPolicy {
            deadline: Duration::from_millis(50),
            ..policy()
        };
        let r: Result<()> = with_retry(&p, None, Idempotency::Idempotent, || async {
            std::future::pending::<()>().await;
            Ok(())
        })
        .await;
        assert_eq!(r.unwrap_err().kind(), ErrorKind::Transient);
    }
}
