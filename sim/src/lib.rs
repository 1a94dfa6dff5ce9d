//! Deterministic simulation of the coordination protocol (issue 12; docs/simulator.md): the
//! real coordinator engine, lease keeper and membership, all processors on one thread and
//! tokio's paused clock, over an in-memory storage with Azure's semantics, under a seeded
//! schedule of faults, with the invariants checked throughout.
//!
//! - `memstore`: storage with Azure's semantics, one request at a virtual instant;
//! - `net`: latency, network and service faults, and the crate's own retry loop above them;
//! - `freeze`: pausing or killing one processor's tasks at any await point;
//! - `java`: the Java side (grouper, containers that take time to stop);
//! - `container`: a container's checkpoints, through the real checkpoint store;
//! - `schedule`: the seeded fault schedule;
//! - `checker`: the invariants and the run's trace;
//! - `world`: one run from seed to verdict.

pub mod cases;
pub mod checker;
pub mod container;
pub mod freeze;
pub mod java;
pub mod memstore;
pub mod net;
pub mod schedule;
pub mod world;
