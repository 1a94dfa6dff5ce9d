//! Whether this processor may judge others dead: only once its own membership requests have
//! reached storage without a long gap for a whole liveness timeout (docs/protocol.md, "Stalls
//! that everyone sees").

use tokio::time::Instant;

use super::{Engine, Storage};

impl<S: Storage> Engine<'_, S> {
    /// A membership request sent at `sent` was answered now. Storage was reachable at some
    /// moment between the last answered request's sending and now; if that span is longer
    /// than the reachability gap, everyone's rows may have aged by it, so deaths are judged
    /// again only after a whole liveness timeout. Measured to the answer, not from the call's
    /// start: a call whose retries spanned a stall succeeds with an early start. Every
    /// membership request counts (heartbeats, the leader's and successor's scans), so a
    /// leader busy with a rebalance, whose heartbeat goes out late, is not taken for cut off.
    pub(super) fn membership_answered(&mut self, sent: Instant) {
        let answered = Instant::now();
        let gap = self
            .last_ok_sent
            .map(|t| answered.saturating_duration_since(t));
        // Not reachable (a membership request failed) counts from this answer too: only a
        // long gap used to restart the count, so after one failed heartbeat between short
        // gaps this processor never judged anyone dead again.
        let long_gap = gap.is_none_or(|g| g > self.timing.reachability_gap());
        if long_gap || self.reachable_since.is_none() {
            if long_gap && self.reachable_since.is_some() {
                tracing::info!(
                    gap_ms = gap.unwrap_or_default().as_millis() as u64,
                    "storage was out of reach for a while; judging nobody dead until it answers \
                     for a whole liveness timeout"
                );
            }
            self.reachable_since = Some(answered);
        }
        self.last_ok_sent = self.last_ok_sent.max(Some(sent));
    }

    /// Whether this processor may judge others dead: only on evidence gathered while it could
    /// itself reach storage, for a whole liveness timeout. After a stall that every processor
    /// saw, every row is old when storage answers again, yet nobody is dead.
    pub(super) fn may_judge_deaths(&self) -> bool {
        self.reachable_since
            .is_some_and(|t| t.elapsed() >= self.timing.liveness)
    }
}
