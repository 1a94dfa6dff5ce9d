//! In-memory Azure Storage.
