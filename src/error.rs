//! One error type for the whole core. The JNI boundary maps each [`ErrorKind`] to a Java
//! exception class, so the kinds are part of the public contract: add kinds, never rename or
//! merge them.

use std::fmt;

/// What went wrong, at the granularity a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Bad configuration or argument; the message names the key or value.
    Config,
    /// The blob, container, table or entity does not exist.
    NotFound,
    /// A create-only write found the target already present.
    AlreadyExists,
    /// A conditional write lost its compare-and-swap (stale ETag).
    PreconditionFailed,
    /// Someone else holds the lease we asked for.
    LeaseHeld,
    /// We do not (or no longer) hold the lease: renew/release/fenced write rejected by storage.
    LeaseLost,
    /// Throttling, 5xx, timeouts or I/O failures that outlived the retry budget.
    Transient,
    /// A write may or may not have been applied (a retry after an ambiguous failure conflicted).
    OutcomeUnknown,
    /// Credentials rejected by storage.
    Authentication,
    /// Storage rejected the request as malformed or over a limit.
    BadRequest,
    /// A bug: panic, broken invariant, unexpected response.
    Internal,
    /// A newer owner holds what this party wrote to (a task's checkpoints); storage refused
    /// the write and nothing of it was applied.
    Fenced,
}

impl ErrorKind {
    /// Stable code shared with the Java exception hierarchy.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Config => "CONFIG",
            ErrorKind::NotFound => "NOT_FOUND",
            ErrorKind::AlreadyExists => "ALREADY_EXISTS",
            ErrorKind::PreconditionFailed => "PRECONDITION_FAILED",
            ErrorKind::LeaseHeld => "LEASE_HELD",
            ErrorKind::LeaseLost => "LEASE_LOST",
            ErrorKind::Transient => "TRANSIENT",
            ErrorKind::OutcomeUnknown => "OUTCOME_UNKNOWN",
            ErrorKind::Authentication => "AUTHENTICATION",
            ErrorKind::BadRequest => "BAD_REQUEST",
            ErrorKind::Internal => "INTERNAL",
            ErrorKind::Fenced => "FENCED",
        }
    }

    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::Config,
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::PreconditionFailed,
        ErrorKind::LeaseHeld,
        ErrorKind::LeaseLost,
        ErrorKind::Transient,
        ErrorKind::OutcomeUnknown,
        ErrorKind::Authentication,
        ErrorKind::BadRequest,
        ErrorKind::Internal,
        ErrorKind::Fenced,
    ];

    /// Worth retrying after a backoff.
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorKind::Transient)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The core's error. Messages are built by us from status codes and storage error codes and are
/// passed through [`crate::redact::scrub`], so they never carry a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    /// HTTP status, when storage answered.
    status: Option<u16>,
    /// Storage error code such as `LeaseIdMismatchWithLeaseOperation`.
    storage_code: Option<String>,
    /// The request never left this process (e.g. connection refused), so it cannot have
    /// been applied; retries after it are not ambiguous.
    not_sent: bool,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: crate::redact::scrub(&message.into()),
            status: None,
            storage_code: None,
            not_sent: false,
        }
    }

    pub fn storage(
        kind: ErrorKind,
        message: impl Into<String>,
        status: u16,
        storage_code: Option<String>,
    ) -> Self {
        Error {
            status: Some(status),
            storage_code,
            ..Error::new(kind, message)
        }
    }

    pub fn config(key: &str, expected: impl fmt::Display) -> Self {
        Error::new(ErrorKind::Config, format!("config key '{key}': {expected}"))
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::BadRequest, message)
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn status(&self) -> Option<u16> {
        self.status
    }

    pub fn storage_code(&self) -> Option<&str> {
        self.storage_code.as_deref()
    }

    /// Marks a failure that happened before the request reached storage.
    pub fn mark_not_sent(mut self) -> Self {
        self.not_sent = true;
        self
    }

    pub fn not_sent(&self) -> bool {
        self.not_sent
    }

    /// Same error, reclassified (e.g. a conflict after an ambiguous retry).
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// Prefix the message with what we were doing, e.g. `renew lease on samza/leader`.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = crate::redact::scrub(&format!("{what}: {}", self.message));
        self
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
