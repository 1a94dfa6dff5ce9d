//! Waiting out storage that cannot be reached: a doubling backoff, and WARN lines that say
//! what waits (the checkpoint manager's operations fail only on an answer).

use std::time::Duration;

use tokio::time::Instant;

use crate::error::Error;
use crate::storage::retry::Doubling;

/// First wait after storage could not be reached; doubled on each failure up to
/// [`OUTAGE_MAX_BACKOFF`].
pub(super) const OUTAGE_FIRST_BACKOFF: Duration = Duration::from_millis(250);

const OUTAGE_MAX_BACKOFF: Duration = Duration::from_secs(5);

/// While an operation keeps failing, it says so at WARN at most this often.
const OUTAGE_LOG_EVERY: Duration = Duration::from_secs(30);

/// Waits out an outage for one operation: a doubling backoff, and WARN lines saying what it
/// waits for (the first failure, then every [`OUTAGE_LOG_EVERY`]).
pub(super) struct Patience {
    what: String,
    failures: u32,
    backoff: Doubling,
    since: Instant,
    logged: Option<Instant>,
}

impl Patience {
    pub(super) fn new(what: String) -> Self {
        Patience {
            what,
            failures: 0,
            backoff: Doubling::new(OUTAGE_FIRST_BACKOFF, OUTAGE_MAX_BACKOFF),
            since: Instant::now(),
            logged: None,
        }
    }

    pub(super) async fn wait(&mut self, e: &Error) {
        self.failures += 1;
        if self.logged.is_none_or(|t| t.elapsed() >= OUTAGE_LOG_EVERY) {
            self.logged = Some(Instant::now());
            tracing::warn!(
                error = %e,
                attempts = self.failures,
                waiting_ms = self.since.elapsed().as_millis() as u64,
                "{}: storage cannot be reached; retrying until it answers or the container stops",
                self.what
            );
        } else {
            tracing::debug!(error = %e, attempts = self.failures, "{}: retrying", self.what);
        }
        self.backoff.sleep().await;
    }

    /// After a success that followed failures, says the wait is over.
    pub(super) fn done(&self) {
        if self.failures > 0 {
            tracing::info!(
                attempts = self.failures + 1,
                waited_ms = self.since.elapsed().as_millis() as u64,
                "{}: storage answered again",
                self.what
            );
        }
    }
}
