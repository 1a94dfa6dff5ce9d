//! The coordination protocol of one Samza processor: membership, leadership, the versioned
//! JobModel document and the rebalance barrier (docs/protocol.md).

pub mod config;
mod engine;
mod handle;
pub mod jobmodel;
mod metrics;
pub mod names;

pub use config::{CoordinatorConfig, Timing};
pub use handle::{Coordinator, Event, Storage};
pub use metrics::Metrics;
