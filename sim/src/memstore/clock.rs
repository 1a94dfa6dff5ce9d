//! The server's clock and the counters behind ETags and generated lease ids. Time is tokio's
//! (virtual under a paused clock); nothing here reads the wall clock or draws randomness.

use samza_azure_coordinator::storage::{ETag, LeaseId};
use time::OffsetDateTime;
use tokio::time::Instant;

/// 2026-01-01T00:00:00Z: server time when the store was created.
pub const EPOCH_UNIX_SECONDS: i64 = 1_767_225_600;

/// Azure's timestamps have 100 ns resolution.
const TICKS_PER_SECOND: u64 = 10_000_000;

pub(crate) struct Clock {
    start: Instant,
    /// Tick of the last write's stamp; write stamps strictly increase, so every table write
    /// gets its own ETag (they are derived from the stamp, as on Azure) even when many
    /// happen at one virtual instant.
    last_stamp: Option<u64>,
    blob_writes: u64,
    lease_ids: u64,
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            start: Instant::now(),
            last_stamp: None,
            blob_writes: 0,
            lease_ids: 0,
        }
    }

    pub fn ticks_at(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.start).as_nanos() / 100) as u64
    }

    /// The `Timestamp` of a write at `now`: now, or 100 ns after the previous write.
    pub fn stamp(&mut self, now: Instant) -> u64 {
        let mut t = self.ticks_at(now);
        if let Some(last) = self.last_stamp {
            t = t.max(last + 1);
        }
        self.last_stamp = Some(t);
        t
    }

    /// A new blob ETag in Azure's shape (`"0x8D…"`, 15 hex digits).
    pub fn blob_etag(&mut self) -> ETag {
        self.blob_writes += 1;
        ETag(format!("\"0x8DE{:012X}\"", self.blob_writes))
    }

    /// A lease id for an acquire that proposed none: a version-4 UUID built from a counter.
    pub fn lease_id(&mut self) -> LeaseId {
        self.lease_ids += 1;
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(b"msim");
        bytes[8..].copy_from_slice(&self.lease_ids.to_be_bytes());
        LeaseId(uuid::Builder::from_random_bytes(bytes).into_uuid())
    }
}

/// RFC 3339 with 7 fractional digits and `Z`, as the Table service writes `Timestamp`.
pub fn format_ticks(ticks: u64) -> String {
    let secs = (ticks / TICKS_PER_SECOND) as i64;
    let frac = ticks % TICKS_PER_SECOND;
    let t = OffsetDateTime::from_unix_timestamp(EPOCH_UNIX_SECONDS + secs)
        .expect("server time within range");
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{frac:07}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A table entity's ETag: its Timestamp, URL-encoded, in Azure's weak-ETag shape.
pub fn table_etag(ticks: u64) -> ETag {
    ETag(format!(
        "W/\"datetime'{}'\"",
        format_ticks(ticks).replace(':', "%3A")
    ))
}
