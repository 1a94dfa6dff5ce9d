//! Samza standalone coordination on Azure Storage.
//!
//! The core is plain Rust with no JNI types; `jni` is the only module that touches the JVM.

pub mod checkpoint;
pub mod config;
pub mod coordination;
pub mod coordinator;
pub mod error;
pub mod lease;
pub mod logging;
pub mod membership;
pub mod random;
pub mod redact;
pub mod runtime;
pub mod storage;
pub mod tasks;

mod jni;

pub use error::{Error, ErrorKind, Result};
