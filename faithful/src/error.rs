//! Errors of the proxy itself (not the storage errors it forwards or injects).

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("cannot bind {what}: {source}")]
    Bind {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the proxy runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("invalid command: {0}")]
    Command(String),
}

pub type Result<T> = std::result::Result<T, Error>;
