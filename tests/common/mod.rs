//! Azurite harness for cargo integration tests.
//!
//! One Azurite per test binary, on free loopback ports with a temporary data folder, started
//! through `scripts/azurite` (the same launcher the JUnit tests and the demo use). It is
//! spawned from a dedicated thread that lives as long as the process and asks the kernel to
//! SIGKILL Azurite when that thread dies (PR_SET_PDEATHSIG), so no Azurite outlives the test
//! binary, whether it passes, panics or is killed.
#![allow(dead_code)]

pub mod cluster;
pub mod recording;

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use samza_azure_coordinator::config::{StorageConfig, DEV_ACCOUNT, DEV_ACCOUNT_KEY};
use samza_azure_coordinator::storage::AzureStorage;

pub struct Azurite {
    pub blob_port: u16,
    pub table_port: u16,
    pub pid: u32,
}

impl Azurite {
    /// Through the binary's shared Azure-faithful proxy (exact profile: no faults, no
    /// latency): where Azure and Azurite answer differently, tests see Azure's answer.
    pub fn connection_string(&self) -> String {
        shared_proxy().connection_string(0)
    }

    pub fn config(&self) -> StorageConfig {
        StorageConfig::from_connection_string(&self.connection_string()).expect("valid test config")
    }

    pub fn storage(&self) -> AzureStorage {
        AzureStorage::new(&self.config()).expect("storage client")
    }

    /// Azurite itself, for tests that show where it differs from Azure.
    pub fn direct_storage(&self) -> AzureStorage {
        let config = StorageConfig::from_connection_string(&self.direct_connection_string())
            .expect("valid test config");
        AzureStorage::new(&config).expect("storage client")
    }

    pub fn direct_connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_ACCOUNT_KEY};\
             BlobEndpoint=http://127.0.0.1:{}/{DEV_ACCOUNT};TableEndpoint=http://127.0.0.1:{}/{DEV_ACCOUNT}",
            self.blob_port, self.table_port
        )
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn wait_listening(port: u16, child: &mut Child, bound: Duration) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < bound {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("azurite exited early with {status}"));
        }
        if TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
            .is_ok()
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("azurite did not listen on {port} within {bound:?}"))
}

/// Azurite's data folder, under cargo's target tmp dir and named by our pid. The process
/// usually ends before any destructor could delete it, so each start first removes the
/// folders of processes that are gone.
fn data_dir() -> Result<tempfile::TempDir, String> {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("azurite");
    std::fs::create_dir_all(&base).map_err(|e| e.to_string())?;
    if let Ok(entries) = std::fs::read_dir(&base) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name.split('-').next().unwrap_or("");
            if !pid.is_empty() && !PathBuf::from(format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    tempfile::Builder::new()
        .prefix(&format!("{}-", std::process::id()))
        .tempdir_in(&base)
        .map_err(|e| e.to_string())
}

fn spawn() -> Result<(Child, Azurite, tempfile::TempDir), String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = data_dir()?;
    let (blob, queue, table) = (free_port(), free_port(), free_port());
    let mut cmd = Command::new(root.join("scripts/azurite"));
    cmd.arg("run")
        .arg(dir.path())
        .args([blob.to_string(), queue.to_string(), table.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start scripts/azurite: {e}"))?;
    let ready = wait_listening(blob, &mut child, Duration::from_secs(60))
        .and_then(|_| wait_listening(table, &mut child, Duration::from_secs(10)));
    if let Err(e) = ready {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    let pid = child.id();
    Ok((
        child,
        Azurite {
            blob_port: blob,
            table_port: table,
            pid,
        },
        dir,
    ))
}

/// The binary's Azurite, started on first use.
pub fn azurite() -> &'static Azurite {
    static INSTANCE: OnceLock<Azurite> = OnceLock::new();
    INSTANCE.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("azurite-owner".into())
            .spawn(move || {
                // Ports picked free can be taken before Azurite binds them: try a few times.
                let mut last = String::new();
                for _ in 0..3 {
                    match spawn() {
                        Ok((mut child, info, dir)) => {
                            tx.send(Ok(info)).ok();
                            // Park for the life of the process; PDEATHSIG fires when this
                            // thread (and so the process) ends.
                            let _ = child.wait();
                            drop(dir);
                            return;
                        }
                        Err(e) => last = e,
                    }
                }
                tx.send(Err(last)).ok();
            })
            .expect("spawn azurite owner thread");
        rx.recv()
            .expect("azurite owner thread")
            .unwrap_or_else(|e| panic!("Azurite did not start: {e}"))
    })
}

/// A fresh container holding one small blob named `leader`, ready to be leased.
pub async fn lease_blob(
    storage: &AzureStorage,
    prefix: &str,
) -> samza_azure_coordinator::storage::BlobRef {
    use samza_azure_coordinator::storage::{BlobRef, DocumentStore};
    let container = unique(prefix);
    storage.ensure_container(&container).await.unwrap();
    let blob = BlobRef::new(&container, "leader").unwrap();
    storage
        .create_document(&blob, bytes::Bytes::from_static(b"leader"))
        .await
        .unwrap();
    blob
}

/// A name unique within this test run, valid for containers and tables.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// An Azure-faithful proxy (`azure-faithful`) in front of the binary's Azurite, with one client
/// endpoint per processor of a test. Dropping it stops the proxy.
pub struct Faithful {
    pub proxy: azure_faithful::Proxy,
}

impl Faithful {
    pub fn connection_string(&self, client: usize) -> String {
        self.proxy.client(client).connection_string()
    }

    pub fn config(&self, client: usize) -> StorageConfig {
        StorageConfig::from_connection_string(&self.connection_string(client))
            .expect("valid proxy config")
    }

    /// A storage client that talks through endpoint `client`.
    pub fn storage(&self, client: usize) -> AzureStorage {
        AzureStorage::new(&self.config(client)).expect("storage client")
    }

    pub fn faults(&self) -> &azure_faithful::Controller {
        self.proxy.faults()
    }
}

/// The binary's shared proxy in the exact profile, started on first use.
fn shared_proxy() -> &'static Faithful {
    static SHARED: OnceLock<Faithful> = OnceLock::new();
    SHARED.get_or_init(|| faithful(1))
}

/// A proxy in the `exact` profile (Azure semantics, no latency) with `clients` endpoints.
pub fn faithful(clients: usize) -> Faithful {
    faithful_with(clients, 1, azure_faithful::Profile::Exact)
}

pub fn faithful_with(clients: usize, seed: u64, profile: azure_faithful::Profile) -> Faithful {
    let a = azurite();
    let proxy = azure_faithful::Proxy::start(azure_faithful::ProxyConfig {
        blob_upstream: ([127, 0, 0, 1], a.blob_port).into(),
        table_upstream: ([127, 0, 0, 1], a.table_port).into(),
        clients,
        seed,
        profile,
    })
    .expect("azure-faithful proxy starts");
    Faithful { proxy }
}

/// Polls `condition` every 50 ms until it holds, failing the test after `bound`.
pub async fn eventually<F, Fut>(what: &str, bound: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !condition().await {
        assert!(
            start.elapsed() < bound,
            "timed out after {bound:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
