//! The coordination protocol of one Samza processor: membership, leadership, the versioned
//! JobModel document and the rebalance barrier (docs/protocol.md).

pub mod config;
mod engine;
pub mod jobmodel;
pub mod names;

pub use config::{CoordinatorConfig, Timing};
pub use engine::{Coordinator, Event, Metrics, Storage};
