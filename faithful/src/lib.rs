//! Azure-faithful storage for tests: an HTTP proxy in front of Azurite.
//!
//! Azurite is a convenience, not the truth. Where Azure's documented behaviour and Azurite
//! differ, this proxy answers as Azure does (see `docs/storage.md` for the list), and it
//! injects what real storage does to clients: latency, error bursts, ambiguous writes,
//! connection resets, outages, on command or at random from a seed (a chaos schedule). One proxy serves N client endpoints (a blob port and a table
//! port each), one per processor of a test, all forwarding to the same Azurite; faults can
//! target one endpoint or all, while Azure semantics are shared by all.
//!
//! Test-only: a dev-dependency of the coordinator, never shipped.

mod azure_error;
mod chaos;
mod control;
mod error;
mod etag;
mod faults;
mod forward;
mod lease_rules;
mod request;
mod server;
mod sign;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use chaos::{Chaos, ChaosFault, PartitionRef, MAX_CHAOS_OUTAGE_MS, MIN_CHAOS_GAP_MS};
pub use control::{Command, Controller, Reply};
pub use error::{Error, Result};
pub use faults::{
    BurstError, ClientStats, Latency, OutageMode, Outcome, Scope, Target, Trigger, DEFAULT_HANG_MS,
    MAX_FAULT_MS, MAX_HANG_MS,
};
pub use sign::{ACCOUNT, ACCOUNT_KEY};

/// `exact`: Azure semantics only, no latency. `realistic`: also latency on every request
/// (5–50 ms, occasional 0.5–3 s stalls, see [`Latency::REALISTIC`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    #[default]
    Exact,
    Realistic,
}

impl std::str::FromStr for Profile {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "exact" => Ok(Profile::Exact),
            "realistic" => Ok(Profile::Realistic),
            other => Err(Error::Config(format!(
                "profile must be exact or realistic, found '{other}'"
            ))),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ProxyConfig {
    pub blob_upstream: SocketAddr,
    pub table_upstream: SocketAddr,
    pub clients: usize,
    pub seed: u64,
    pub profile: Profile,
}

/// One client endpoint: the ports a processor talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub blob: u16,
    pub table: u16,
}

impl Endpoint {
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};\
             BlobEndpoint=http://127.0.0.1:{}/{ACCOUNT};TableEndpoint=http://127.0.0.1:{}/{ACCOUNT}",
            self.blob, self.table
        )
    }
}

/// A running proxy. Runs on its own thread and runtime, so sync and async tests can use it
/// alike; stops when dropped.
pub struct Proxy {
    endpoints: Vec<Endpoint>,
    control_port: u16,
    controller: Controller,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

struct Started {
    endpoints: Vec<Endpoint>,
    control_port: u16,
    controller: Controller,
}

fn bind_all(
    config: &ProxyConfig,
) -> Result<(
    Vec<(tokio::net::TcpListener, tokio::net::TcpListener)>,
    tokio::net::TcpListener,
)> {
    let bind = |what: String| server::bind(0).map_err(|source| Error::Bind { what, source });
    let mut pairs = Vec::with_capacity(config.clients);
    for i in 0..config.clients {
        pairs.push((
            bind(format!("client {i} blob"))?,
            bind(format!("client {i} table"))?,
        ));
    }
    Ok((pairs, bind("control".into())?))
}

impl Proxy {
    pub fn start(config: ProxyConfig) -> Result<Proxy> {
        if config.clients == 0 {
            return Err(Error::Config("a proxy needs at least one client".into()));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("azure-faithful")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<Started>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("azure-faithful".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let (pairs, control) = match bind_all(&config) {
                        Ok(b) => b,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let latency = match config.profile {
                        Profile::Exact => None,
                        Profile::Realistic => Some(Latency::REALISTIC),
                    };
                    let shared = Arc::new(server::Shared {
                        clients: (0..config.clients)
                            .map(|i| faults::ClientFaults::new(config.seed, i, latency))
                            .collect(),
                        rules: faults::Rules::default(),
                        leases: lease_rules::Leases::default(),
                        etags: etag::Etags::default(),
                        upstream: forward::Upstream::new(
                            config.blob_upstream,
                            config.table_upstream,
                        ),
                        chaos: chaos::Schedules::default(),
                    });
                    let port =
                        |l: &tokio::net::TcpListener| l.local_addr().map(|a| a.port()).unwrap_or(0);
                    let endpoints = pairs
                        .iter()
                        .map(|(b, t)| Endpoint {
                            blob: port(b),
                            table: port(t),
                        })
                        .collect();
                    let control_port = port(&control);
                    let controller = Controller::new(shared.clone());
                    for (i, (blob, table)) in pairs.into_iter().enumerate() {
                        tokio::spawn(server::listen(
                            shared.clone(),
                            i,
                            request::Service::Blob,
                            blob,
                        ));
                        tokio::spawn(server::listen(
                            shared.clone(),
                            i,
                            request::Service::Table,
                            table,
                        ));
                    }
                    tokio::spawn(control::serve(control, controller.clone()));
                    let _ = ready_tx.send(Ok(Started {
                        endpoints,
                        control_port,
                        controller,
                    }));
                    let _ = stop_rx.await;
                });
                // Hung requests and held connections end here, with the runtime.
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(Error::Runtime)?;
        let started = ready_rx
            .recv()
            .map_err(|_| Error::Config("the proxy thread ended before it was ready".into()))??;
        Ok(Proxy {
            endpoints: started.endpoints,
            control_port: started.control_port,
            controller: started.controller,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    pub fn clients(&self) -> usize {
        self.endpoints.len()
    }

    /// Client endpoint `i` (panics if out of range, as a test bug).
    pub fn client(&self, i: usize) -> &Endpoint {
        &self.endpoints[i]
    }

    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    pub fn control_port(&self) -> u16 {
        self.control_port
    }

    pub fn faults(&self) -> &Controller {
        &self.controller
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
