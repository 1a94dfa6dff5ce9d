//! Deterministic simulation of the coordination protocol (issue 12): the real engine, lease
//! keeper, membership and checkpoint store, all processors in one process on tokio's paused
//! clock, over an in-memory storage with Azure's semantics and seeded faults.

pub mod memstore;
