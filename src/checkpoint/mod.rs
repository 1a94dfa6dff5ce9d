//! Task checkpoints in Table Storage, fenced by task ownership (see `store`).

pub mod group_commit;
mod store;

pub use store::*;
