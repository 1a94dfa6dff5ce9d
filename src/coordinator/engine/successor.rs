//! The successor's watch: the first member other than the leader takes the lease over as soon
//! as the leader's row is dead or gone (docs/protocol.md, "Successor").

use super::{is_fatal, Engine, Storage};
use crate::error::Result;
use tokio::time::Instant;

impl<S: Storage> Engine<'_, S> {
    /// The first member (by id) other than the leader watches the leader's row as often as the
    /// leader reads the membership (`scan`), and takes
    /// over as soon as storage's clock says it is dead or it left, instead of waiting out
    /// the lease.
    pub(super) async fn watch_leader(&mut self) -> Result<()> {
        let leader = self.doc.header.leader.clone();
        if leader.is_empty() || leader == self.me {
            return Ok(());
        }
        let successor = self
            .doc
            .header
            .members
            .iter()
            .map(|m| m.id.as_str())
            .filter(|id| *id != leader)
            .min();
        if successor != Some(self.me.as_str()) {
            return Ok(());
        }
        if !self.may_judge_deaths() {
            return Ok(());
        }
        let sent = Instant::now();
        let snapshot = match self.membership.snapshot_around(&leader).await {
            Ok(s) => s,
            Err(e) if is_fatal(&e) => return Err(e),
            Err(_) => return Ok(()),
        };
        self.membership_answered(sent);
        let alive = snapshot
            .live(self.timing.liveness)
            .iter()
            .any(|m| m.processor_id == leader);
        if alive {
            return Ok(());
        }
        // Broken once per dead leader: if another processor's backstop acquire won the broken
        // lease, the document still names the dead one until the new leader publishes, and
        // breaking again would only interrupt the new leader's first barrier.
        if self.broke_lease_of.as_deref() == Some(leader.as_str()) {
            // Broken already: try for the free lease without breaking a new holder's.
            self.lease.acquire_now();
        } else {
            tracing::info!(processor = %self.me, %leader, "leader is dead or gone; taking over");
            self.broke_lease_of = Some(leader);
            self.lease.take_over();
        }
        Ok(())
    }
}
