//! The Azure SDK backend: client construction, error classification and request accounting.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::error::ErrorKind as SdkKind;
use azure_core::request_options::Timeout;
use azure_core::{ClientOptions, RetryOptions, StatusCode, TimeoutPolicy, TransportOptions};
use azure_data_tables::clients::TableServiceClientBuilder;
use azure_data_tables::prelude::TableServiceClient;
use azure_storage::{CloudLocation, StorageCredentials};
use azure_storage_blobs::prelude::{BlobClient, BlobServiceClient, ClientBuilder};

use crate::config::{Credential, RequestPolicy, StorageConfig};
use crate::error::{Error, ErrorKind, Result};

use super::retry::{with_retry, Idempotency};
use super::BlobRef;

/// Counters for metrics and benchmarks. Cheap to update from any task.
#[derive(Debug, Default)]
pub struct StorageStats {
    requests: AtomicU64,
    errors: AtomicU64,
    latency_micros: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StorageStatsSnapshot {
    /// Logical operations, each possibly several attempts.
    pub requests: u64,
    pub errors: u64,
    pub latency_micros: u64,
}

impl StorageStats {
    pub fn snapshot(&self) -> StorageStatsSnapshot {
        StorageStatsSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            latency_micros: self.latency_micros.load(Ordering::Relaxed),
        }
    }
}

/// Blob and Table clients for one storage account, sharing one HTTP connection pool.
pub struct AzureStorage {
    blobs: BlobServiceClient,
    tables: TableServiceClient,
    pub(super) policy: RequestPolicy,
    stats: Arc<StorageStats>,
    account: String,
}

impl std::fmt::Debug for AzureStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureStorage")
            .field("account", &self.account)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl AzureStorage {
    /// Builds clients with our own HTTP transport (timeouts, pooling) and no SDK retries.
    pub fn new(config: &StorageConfig) -> Result<Self> {
        let conn = &config.connection;
        let http = reqwest::Client::builder()
            .connect_timeout(config.policy.connect_timeout)
            .timeout(config.policy.request_timeout)
            .pool_idle_timeout(Duration::from_secs(50))
            .pool_max_idle_per_host(16)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| Error::internal(format!("cannot build the HTTP client: {e}")))?;
        let transport = TransportOptions::new(Arc::new(http));
        let credentials = match &conn.credential {
            Credential::AccountKey(key) => {
                StorageCredentials::access_key(conn.account.clone(), key.expose().to_owned())
            }
            Credential::Sas(sas) => StorageCredentials::sas_token(sas.expose()).map_err(|_| {
                Error::config(
                    crate::config::KEY_CONNECT,
                    "SharedAccessSignature is not a valid SAS query string",
                )
            })?,
        };
        let location = |uri: &url::Url| CloudLocation::Custom {
            account: conn.account.clone(),
            uri: uri.as_str().trim_end_matches('/').to_owned(),
        };
        // Storage is told how long we wait (whole seconds, at most our own per-attempt
        // timeout), so a write cannot be applied long after we gave up on it: Azure would
        // otherwise keep working on a table write for up to 30 s. The parameter is added
        // before the request is signed.
        let server_timeout = (config.policy.request_timeout.as_secs()).max(1);
        let options = ClientOptions::new(transport)
            .retry(RetryOptions::none())
            .timeout(TimeoutPolicy::new(Some(Timeout::new(Duration::from_secs(
                server_timeout,
            )))));
        let blobs =
            ClientBuilder::with_location(location(&conn.blob_endpoint), credentials.clone())
                .client_options(options.clone())
                .blob_service_client();
        let tables =
            TableServiceClientBuilder::with_location(location(&conn.table_endpoint), credentials)
                .client_options(options)
                .build();
        Ok(AzureStorage {
            blobs,
            tables,
            policy: config.policy.clone(),
            stats: Arc::new(StorageStats::default()),
            account: conn.account.clone(),
        })
    }

    pub fn stats(&self) -> StorageStatsSnapshot {
        self.stats.snapshot()
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    pub(super) fn blob_client(&self, blob: &BlobRef) -> BlobClient {
        self.blobs
            .container_client(blob.container())
            .blob_client(blob.blob())
    }

    pub(super) fn container_client(
        &self,
        container: &str,
    ) -> azure_storage_blobs::prelude::ContainerClient {
        self.blobs.container_client(container)
    }

    pub(super) fn table_client(&self, table: &str) -> azure_data_tables::prelude::TableClient {
        self.tables.table_client(table)
    }

    /// [`Self::run`] within the policy's deadline, with one SDK client: its request builders
    /// take the client by value, so each attempt gets its own clone. `client` may be a tuple
    /// that carries the request's owned inputs (a body, an entity) along with the client.
    pub(super) async fn run_on<C, T, F, Fut>(
        &self,
        what: impl std::fmt::Display,
        idempotency: Idempotency,
        client: C,
        mut op: F,
    ) -> Result<T>
    where
        C: Clone,
        F: FnMut(C) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        self.run(what, idempotency, None, || op(client.clone()))
            .await
    }

    /// [`Self::run_on`] for a create, answered as the `ensure_*` calls report it: `false` when
    /// it existed already.
    pub(super) async fn run_create<C, F, Fut>(
        &self,
        what: impl std::fmt::Display,
        client: C,
        create: F,
    ) -> Result<bool>
    where
        C: Clone,
        F: FnMut(C) -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        match self
            .run_on(what, Idempotency::Idempotent, client, create)
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Runs one logical operation with our retry policy, counting it, and labelling any error
    /// with `what`.
    pub(super) async fn run<T, F, Fut>(
        &self,
        what: impl std::fmt::Display,
        idempotency: Idempotency,
        deadline: Option<Duration>,
        op: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let start = Instant::now();
        let result = with_retry(&self.policy, deadline, idempotency, op).await;
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        self.stats
            .latency_micros
            .fetch_add(start.elapsed().as_micros() as u64, Ordering::Relaxed);
        let elapsed_us = start.elapsed().as_micros() as u64;
        match result {
            Ok(v) => {
                tracing::trace!(op = %what, elapsed_us, "storage operation succeeded");
                Ok(v)
            }
            Err(e) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                let e = e.context(what);
                tracing::debug!(elapsed_us, error = %e, "storage operation failed");
                Err(e)
            }
        }
    }
}

/// Classifies an SDK error. The SDK's own `Display` is never used: it dumps headers and, for
/// transport errors, the request URL (which carries a SAS signature).
pub(super) fn classify(e: azure_core::Error) -> Error {
    match e.kind() {
        SdkKind::HttpResponse { status, error_code } => {
            let message = e
                .as_http_error()
                .and_then(|h| h.error_message())
                .map(|m| m.lines().next().unwrap_or("").to_owned());
            from_status(*status, error_code.as_deref(), message.as_deref())
        }
        SdkKind::Io => {
            let err = Error::new(
                ErrorKind::Transient,
                format!("transport error: {}", source_chain(&e)),
            );
            if failed_to_connect(&e) {
                err.mark_not_sent()
            } else {
                err
            }
        }
        SdkKind::Credential => Error::new(ErrorKind::Authentication, "credential error"),
        SdkKind::DataConversion => {
            Error::internal(format!("unexpected response: {}", source_chain(&e)))
        }
        _ => Error::internal(source_chain(&e)),
    }
}

/// True when the HTTP client could not even connect: nothing was sent.
fn failed_to_connect(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<reqwest::Error>() {
            return r.is_connect();
        }
        cur = err.source();
    }
    false
}

fn source_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

/// Maps an HTTP status and storage error code to our error kinds.
pub(super) fn from_status(status: StatusCode, code: Option<&str>, message: Option<&str>) -> Error {
    let n = u16::from(status);
    let kind = match (n, code.unwrap_or("")) {
        (409, "LeaseAlreadyPresent" | "LeaseIsBreakingAndCannotBeAcquired") => ErrorKind::LeaseHeld,
        (
            409,
            "LeaseIdMismatchWithLeaseOperation"
            | "LeaseIsBrokenAndCannotBeRenewed"
            | "LeaseNotPresentWithLeaseOperation"
            | "LeaseIsBreakingAndCannotBeChanged"
            | "LeaseLost",
        ) => ErrorKind::LeaseLost,
        (
            412,
            "LeaseIdMissing"
            | "LeaseIdMismatchWithBlobOperation"
            | "LeaseNotPresentWithBlobOperation"
            | "LeaseLost",
        ) => ErrorKind::LeaseLost,
        (409, "ContainerBeingDeleted" | "TableBeingDeleted") => ErrorKind::Transient,
        (409, c) if c.ends_with("AlreadyExists") => ErrorKind::AlreadyExists,
        (409 | 412, _) => ErrorKind::PreconditionFailed,
        (404, _) => ErrorKind::NotFound,
        (401 | 403, _) => ErrorKind::Authentication,
        (408 | 429 | 500 | 502 | 503 | 504, _) => ErrorKind::Transient,
        (400 | 405 | 411 | 413 | 414 | 416, _) => ErrorKind::BadRequest,
        _ => ErrorKind::Internal,
    };
    let mut text = format!("HTTP {n}");
    if let Some(c) = code {
        text.push(' ');
        text.push_str(c);
    }
    if let Some(m) = message.filter(|m| !m.is_empty()) {
        text.push_str(": ");
        text.push_str(m);
    }
    Error::storage(kind, text, n, code.map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_codes_classify() {
        let k =
            |s: u16, c: &str| from_status(StatusCode::try_from(s).unwrap(), Some(c), None).kind();
        assert_eq!(k(409, "LeaseAlreadyPresent"), ErrorKind::LeaseHeld);
        assert_eq!(
            k(409, "LeaseIdMismatchWithLeaseOperation"),
            ErrorKind::LeaseLost
        );
        assert_eq!(
            k(409, "LeaseIsBrokenAndCannotBeRenewed"),
            ErrorKind::LeaseLost
        );
        assert_eq!(k(412, "LeaseIdMissing"), ErrorKind::LeaseLost);
        assert_eq!(
            k(412, "LeaseIdMismatchWithBlobOperation"),
            ErrorKind::LeaseLost
        );
        assert_eq!(k(412, "ConditionNotMet"), ErrorKind::PreconditionFailed);
        assert_eq!(
            k(412, "UpdateConditionNotSatisfied"),
            ErrorKind::PreconditionFailed
        );
        assert_eq!(k(409, "BlobAlreadyExists"), ErrorKind::AlreadyExists);
        assert_eq!(k(409, "EntityAlreadyExists"), ErrorKind::AlreadyExists);
        assert_eq!(k(503, "ServerBusy"), ErrorKind::Transient);
        assert_eq!(k(429, ""), ErrorKind::Transient);
        assert_eq!(k(403, "AuthenticationFailed"), ErrorKind::Authentication);
        assert_eq!(k(404, "BlobNotFound"), ErrorKind::NotFound);
        assert_eq!(k(400, "InvalidHeaderValue"), ErrorKind::BadRequest);
    }
}
