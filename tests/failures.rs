//! Transport failures, authentication failures and secret hygiene, against real sockets.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{azurite, unique};
use samza_azure_coordinator::config::{StorageConfig, DEV_ACCOUNT};
use samza_azure_coordinator::logging::{init_standalone, Sink};
use samza_azure_coordinator::storage::{
    AzureStorage, BlobRef, DocumentStore, LeaseDuration, LeaseId, LeaseStore, TableStore,
};
use samza_azure_coordinator::ErrorKind;

/// A well-formed key that Azurite will reject: nobody should ever see it printed.
const WRONG_KEY: &str = "V3JvbmdLZXlUaGF0TXVzdE5ldmVyQmVQcmludGVkQW55d2hlcmUxMjM0NTY3ODkw";
const SAS_SIG: &str = "SasSignatureThatMustNeverBePrinted0123456789";

fn config_for(
    blob_port: u16,
    table_port: u16,
    credential: &str,
    extra: &[(&str, &str)],
) -> StorageConfig {
    let mut map = std::collections::HashMap::new();
    map.insert(
        "azure.storage.connect".to_owned(),
        format!(
            "AccountName={DEV_ACCOUNT};{credential};BlobEndpoint=http://127.0.0.1:{blob_port}/{DEV_ACCOUNT};TableEndpoint=http://127.0.0.1:{table_port}/{DEV_ACCOUNT}"
        ),
    );
    for (k, v) in extra {
        map.insert((*k).to_owned(), (*v).to_owned());
    }
    StorageConfig::from_map(&map).unwrap()
}

#[tokio::test]
async fn server_that_never_answers_fails_within_the_deadline() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cfg = config_for(
        port,
        port,
        &format!("AccountKey={WRONG_KEY}"),
        &[
            ("azure.storage.request.timeout.ms", "300"),
            ("azure.storage.retry.deadline.ms", "1000"),
        ],
    );
    let s = AzureStorage::new(&cfg).unwrap();
    let blob = BlobRef::new("hang", "x").unwrap();
    let start = Instant::now();
    let e = s
        .renew_lease(&blob, LeaseId::random(), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "hung for {:?}",
        start.elapsed()
    );
    assert!(!e.to_string().contains(WRONG_KEY));
    // The request was sent and never answered: a conditional write may have been applied.
    let e = s
        .create_document(&blob, Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OutcomeUnknown, "{e}");
    drop(listener);
}

#[tokio::test]
async fn closed_port_is_transient_after_bounded_retries() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = config_for(
        port,
        port,
        &format!("AccountKey={WRONG_KEY}"),
        &[("azure.storage.retry.max.attempts", "3")],
    );
    let s = AzureStorage::new(&cfg).unwrap();
    let e = s.ensure_table("closedport").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(e.message().contains("3 attempt"), "{e}");
    assert_eq!(s.stats().requests, 1);
    assert_eq!(s.stats().errors, 1);
    // Nothing reached storage, so even a conditional write is known not to have happened.
    let blob = BlobRef::new("closedport", "doc").unwrap();
    let e = s
        .create_document(&blob, Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
}

/// Drives errors with a known account key and a known SAS signature, with every log line at
/// TRACE going to a file, and checks neither secret appears in any error or log line.
#[tokio::test]
async fn secrets_never_reach_errors_or_logs() {
    let log = tempfile::NamedTempFile::new().unwrap();
    init_standalone(Sink::File(log.path().to_owned()), "TRACE").unwrap();
    let az = azurite();
    let mut messages = Vec::new();

    let key_cfg = config_for(
        az.blob_port,
        az.table_port,
        &format!("AccountKey={WRONG_KEY}"),
        &[],
    );
    let s = AzureStorage::new(&key_cfg).unwrap();
    let e = s.ensure_table(&unique("auth")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    messages.push(e.to_string());
    let e = s.ensure_container(&unique("auth")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    messages.push(e.to_string());
    messages.push(format!("{key_cfg:?} {s:?}"));

    let sas_cfg = config_for(
        az.blob_port,
        az.table_port,
        &format!("SharedAccessSignature=sv=2022-11-02&ss=bt&srt=sco&sp=rwdlacu&se=2099-01-01T00:00:00Z&sig={SAS_SIG}"),
        &[],
    );
    let s = AzureStorage::new(&sas_cfg).unwrap();
    let blob = BlobRef::new(&unique("sas"), "doc").unwrap();
    let e = s
        .create_document(&blob, Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    messages.push(e.to_string());
    let e = s
        .acquire_lease(&blob, LeaseDuration::Seconds(15), None)
        .await
        .unwrap_err();
    messages.push(e.to_string());
    messages.push(format!("{sas_cfg:?}"));

    // A transport error echoes the URL (with the SAS) in the SDK's own error text.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = config_for(
        port,
        port,
        &format!("SharedAccessSignature=sv=1&sig={SAS_SIG}"),
        &[("azure.storage.retry.max.attempts", "1")],
    );
    let e = AzureStorage::new(&dead)
        .unwrap()
        .read_document(&blob)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    messages.push(e.to_string());
    tracing::warn!(
        "connection failed: {}",
        format!("http://x/?sig={SAS_SIG}&AccountKey={WRONG_KEY}")
    );

    let logged = std::fs::read_to_string(log.path()).unwrap();
    assert!(
        logged.contains("sig=***"),
        "the SDK logged request URLs, scrubbed:\n{logged}"
    );
    assert!(
        logged.lines().count() > 3,
        "TRACE logging produced lines:\n{logged}"
    );
    for text in messages.iter().map(String::as_str).chain([logged.as_str()]) {
        assert!(!text.contains(WRONG_KEY), "account key leaked: {text}");
        assert!(!text.contains(SAS_SIG), "SAS signature leaked: {text}");
    }
}

/// Every request carries the server-side `timeout` (whole seconds, at most the client's own
/// per-attempt timeout), so a write cannot be applied long after the client gave up on it
/// (Azure's default is 30 s for a table write).
#[tokio::test]
async fn every_request_tells_storage_how_long_the_client_waits() {
    use std::io::{BufRead, BufReader};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Records each request line, then drops the connection.
    let lines = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for stream in listener.incoming().take(2) {
            let mut line = String::new();
            BufReader::new(stream.unwrap())
                .read_line(&mut line)
                .unwrap();
            seen.push(line);
        }
        seen
    });
    let config = config_for(
        port,
        port,
        &format!("AccountKey={WRONG_KEY}"),
        &[
            ("azure.storage.request.timeout.ms", "3500"),
            ("azure.storage.retry.max.attempts", "1"),
        ],
    );
    let s = AzureStorage::new(&config).unwrap();
    let blob = BlobRef::new("jobs", "doc").unwrap();
    let _ = s.read_document(&blob).await;
    let _ = s.get_entity("members", "p", "r").await;
    let lines = tokio::task::spawn_blocking(move || lines.join().unwrap())
        .await
        .unwrap();
    assert_eq!(lines.len(), 2);
    for line in lines {
        assert!(
            line.contains("timeout=3"),
            "no server-side timeout of 3 s: {line}"
        );
    }
}
