//! In-memory Azure Storage with Azure's documented semantics (not Azurite's), on tokio's
//! clock: blob leases and block blobs ([`blobs`]), Table Storage ([`tables`]) and the few
//! `$filter` forms the coordinator sends ([`filter`]).
//!
//! [`MemStore::apply`] takes one request as an [`Op`] and applies it atomically at one
//! virtual instant. Before it reaches the "server", the checks the real adapter makes on the
//! client side run too (`Op::client_checks`), so callers cannot tell the two apart.
//!
//! Where the documentation is silent, this assumes (each a guess to correct against Azure):
//! the error codes of lease operations refused in a state the outcome table only marks
//! "fails (409)"; that a lease check comes before `If-Match` as it does before
//! `If-None-Match: *`; that an integer without `@odata.type` beyond Int32 is refused; that
//! a changeset's failure reaches callers as the adapter reports it (status, no code); that
//! a deleted table's name is unusable for exactly 40 s; and that write stamps are unique
//! (100 ns apart at one instant), as Azure's ETags derive from them.

mod blobs;
pub(crate) mod clock;
mod filter;
mod op;
mod props;
mod tables;
#[cfg(test)]
mod tests;
mod traits;

use std::sync::Mutex;

use samza_azure_coordinator::storage::classify_answer;
use samza_azure_coordinator::{Error, Result};

pub use clock::EPOCH_UNIX_SECONDS;
pub use filter::Filter;
pub use op::{Answer, Op};
pub use traits::{Endpoint, Requests};

/// An answer of the "server": HTTP status, Azure's error code and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

pub(crate) fn refuse(status: u16, code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        code,
        message: message.into(),
    }
}

impl Refusal {
    /// Classified exactly as the adapter classifies Azure's answer.
    pub(crate) fn into_error(self) -> Error {
        classify_answer(self.status, Some(self.code), Some(&self.message))
    }
}

pub(crate) type Served<T> = std::result::Result<T, Refusal>;

struct State {
    clock: clock::Clock,
    blobs: blobs::Blobs,
    tables: tables::Tables,
}

/// In-memory storage account: blobs, leases and tables behind one lock.
pub struct MemStore {
    state: Mutex<State>,
}

impl Default for MemStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemStore").finish_non_exhaustive()
    }
}

impl MemStore {
    /// An empty account whose server clock starts now (virtual time) at [`clock::EPOCH`].
    pub fn new() -> Self {
        MemStore {
            state: Mutex::new(State {
                clock: clock::Clock::new(),
                blobs: blobs::Blobs::default(),
                tables: tables::Tables::default(),
            }),
        }
    }

    /// Applies one request atomically at the current virtual instant.
    pub fn apply(&self, op: &Op) -> Result<Answer> {
        if let Some(answer) = op.client_checks()? {
            return Ok(answer);
        }
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let state = &mut *guard;
        let now = tokio::time::Instant::now();
        let result = match op {
            Op::EnsureContainer { .. }
            | Op::AcquireLease { .. }
            | Op::RenewLease { .. }
            | Op::ReleaseLease { .. }
            | Op::BreakLease { .. }
            | Op::ChangeLease { .. }
            | Op::CreateDocument { .. }
            | Op::ReadDocument { .. }
            | Op::ReadDocumentIfChanged { .. }
            | Op::CheckDocument { .. }
            | Op::ReplaceDocument { .. }
            | Op::DeleteDocument { .. } => state
                .blobs
                .apply(op, now, &mut state.clock)
                .map_err(Refusal::into_error),
            _ => state.tables.apply(op, now, &mut state.clock),
        };
        result.map_err(|e| e.context(op.describe()))
    }

    /// The server's `Timestamp` for the current virtual instant, as entities carry it.
    pub fn server_time(&self) -> String {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        clock::format_ticks(state.clock.ticks_at(tokio::time::Instant::now()))
    }
}
