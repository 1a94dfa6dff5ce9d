//! The fault controller: one command set, used in-process by Rust tests and over HTTP (JSON in,
//! JSON out, `POST /` on the control port) by the binary's users, so both expose the same thing.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::chaos::{Chaos, ChaosFault};
use crate::error::{Error, Result};
use crate::faults::{
    Action, BurstError, ClientStats, Latency, Outage, OutageMode, Outcome, Rule, Scope, Target,
    Trigger, DEFAULT_HANG_MS, MAX_FAULT_MS, MAX_HANG_MS,
};
use crate::server::Shared;

fn default_hang_ms() -> u64 {
    DEFAULT_HANG_MS
}

/// Everything the controller can do. On the wire: `{"op": "<name>", ...fields}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// An outage of `ms` for the scope's endpoints.
    Outage {
        #[serde(default)]
        scope: Scope,
        mode: OutageMode,
        ms: u64,
    },
    /// Every matching request answers `error` for `ms`, without reaching Azurite.
    Burst {
        #[serde(default)]
        scope: Scope,
        #[serde(default)]
        target: Target,
        error: BurstError,
        ms: u64,
    },
    /// Matching writes are applied by Azurite, then the client sees `outcome`.
    Ambiguous {
        #[serde(default)]
        scope: Scope,
        #[serde(default)]
        target: Target,
        outcome: Outcome,
        trigger: Trigger,
        #[serde(default = "default_hang_ms")]
        hang_ms: u64,
    },
    /// Matching requests get their connection reset without being forwarded.
    Reset {
        #[serde(default)]
        scope: Scope,
        #[serde(default)]
        target: Target,
        trigger: Trigger,
    },
    /// Sets (or with `null`, removes) the scope's latency.
    Latency {
        #[serde(default)]
        scope: Scope,
        latency: Option<Latency>,
    },
    /// Ends the scope's outages, removes its rules and stops its chaos schedules (latency
    /// stays).
    Clear {
        #[serde(default)]
        scope: Scope,
    },
    /// Starts a seeded schedule of faults (see [`Chaos`]); replies with its id and the
    /// schedule drawn.
    Chaos(Chaos),
    /// Removes one rule by the id `burst`, `ambiguous` or `reset` returned, or stops the chaos
    /// schedule `chaos` returned (its rules go with it; its outages run out).
    Remove { id: u64 },
    /// Per-client counters.
    Stats,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Vec<ClientStats>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The faults a `chaos` command drew, to log for a replay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Vec<ChaosFault>>,
}

/// Handle on a running proxy's faults; cheap to clone.
#[derive(Clone)]
pub struct Controller {
    shared: Arc<Shared>,
    /// The proxy's runtime, where chaos schedules run (commands may come from any thread).
    runtime: tokio::runtime::Handle,
}

fn bounded(what: &str, ms: u64, max: u64) -> Result<Duration> {
    if ms > max {
        return Err(Error::Command(format!(
            "{what} of {ms} ms exceeds {max} ms"
        )));
    }
    Ok(Duration::from_millis(ms))
}

impl Controller {
    /// Called on the proxy's runtime.
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Controller {
            shared,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Runs one command; the HTTP control port calls exactly this.
    pub fn apply(&self, command: Command) -> Reply {
        match self.run(command) {
            Ok(reply) => reply,
            Err(e) => Reply {
                ok: false,
                error: Some(e.to_string()),
                ..Reply::default()
            },
        }
    }

    fn check_scope(&self, scope: Scope) -> Result<()> {
        match scope {
            Scope::Client(c) if c >= self.shared.clients.len() => Err(Error::Command(format!(
                "client {c} does not exist (the proxy has {})",
                self.shared.clients.len()
            ))),
            _ => Ok(()),
        }
    }

    fn clients_in(&self, scope: Scope) -> impl Iterator<Item = &crate::faults::ClientFaults> {
        self.shared
            .clients
            .iter()
            .enumerate()
            .filter(move |(i, _)| scope == Scope::All || scope == Scope::Client(*i))
            .map(|(_, c)| c)
    }

    /// Returns once every listener in scope has closed (each reacts within microseconds; the
    /// bound only guards against a wedged runtime).
    fn await_listeners_closed(&self, scope: Scope, until: Instant) {
        let bound = (Instant::now() + Duration::from_secs(2)).min(until);
        while Instant::now() < bound
            && self
                .clients_in(scope)
                .any(|c| c.closed_listeners.load(std::sync::atomic::Ordering::SeqCst) < 2)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn add_rule(
        &self,
        scope: Scope,
        target: Target,
        action: Action,
        until: Option<Instant>,
        trigger: Option<Trigger>,
    ) -> Result<Reply> {
        if let Some(Trigger::Rate(p)) = trigger {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::Command(format!("rate {p} is not within 0..=1")));
            }
        }
        let writes_only = matches!(action, Action::Ambiguous { .. });
        let id = self.shared.rules.add(Rule {
            id: 0,
            scope,
            target,
            action,
            until,
            trigger,
            writes_only,
        });
        Ok(Reply {
            ok: true,
            id: Some(id),
            ..Reply::default()
        })
    }

    fn run(&self, command: Command) -> Result<Reply> {
        let ok = Reply {
            ok: true,
            ..Reply::default()
        };
        match command {
            Command::Outage { scope, mode, ms } => {
                self.check_scope(scope)?;
                let until = Instant::now() + bounded("outage", ms, MAX_FAULT_MS)?;
                for c in self.clients_in(scope) {
                    c.set_outage(Some(Outage { mode, until }));
                }
                if mode == OutageMode::Refuse {
                    self.await_listeners_closed(scope, until);
                }
                Ok(ok)
            }
            Command::Burst {
                scope,
                target,
                error,
                ms,
            } => {
                self.check_scope(scope)?;
                let until = Instant::now() + bounded("burst", ms, MAX_FAULT_MS)?;
                self.add_rule(scope, target, Action::Fail(error), Some(until), None)
            }
            Command::Ambiguous {
                scope,
                target,
                outcome,
                trigger,
                hang_ms,
            } => {
                self.check_scope(scope)?;
                let hang = bounded("hang", hang_ms, MAX_HANG_MS)?;
                self.add_rule(
                    scope,
                    target,
                    Action::Ambiguous { outcome, hang },
                    None,
                    Some(trigger),
                )
            }
            Command::Reset {
                scope,
                target,
                trigger,
            } => {
                self.check_scope(scope)?;
                self.add_rule(scope, target, Action::Reset, None, Some(trigger))
            }
            Command::Latency { scope, latency } => {
                self.check_scope(scope)?;
                if let Some(l) = &latency {
                    l.validate().map_err(Error::Command)?;
                }
                for c in self.clients_in(scope) {
                    c.set_latency(latency);
                }
                Ok(ok)
            }
            Command::Clear { scope } => {
                self.check_scope(scope)?;
                self.shared.chaos.cancel_scope(scope);
                self.shared.rules.clear(scope);
                for c in self.clients_in(scope) {
                    c.set_outage(None);
                }
                Ok(ok)
            }
            Command::Chaos(chaos) => {
                let clients = self.shared.clients.len();
                chaos.validate(clients).map_err(Error::Command)?;
                let schedule = chaos.schedule(clients);
                let id = self.shared.rules.new_id();
                let cancel = self.shared.chaos.add(id, chaos.scope);
                let end = Duration::from_millis(chaos.duration_ms);
                self.runtime
                    .spawn(drive_chaos(self.clone(), id, schedule.clone(), end, cancel));
                Ok(Reply {
                    ok: true,
                    id: Some(id),
                    schedule: Some(schedule),
                    ..Reply::default()
                })
            }
            Command::Remove { id } => {
                if self.shared.rules.remove(id) || self.shared.chaos.cancel(id) {
                    Ok(ok)
                } else {
                    Err(Error::Command(format!("no rule {id}")))
                }
            }
            Command::Stats => Ok(Reply {
                ok: true,
                stats: Some(self.stats()),
                ..Reply::default()
            }),
        }
    }

    fn expect_id(reply: Reply) -> Result<u64> {
        match (reply.ok, reply.id) {
            (true, Some(id)) => Ok(id),
            _ => Err(Error::Command(reply.error.unwrap_or_default())),
        }
    }

    fn expect_ok(reply: Reply) -> Result<()> {
        if reply.ok {
            Ok(())
        } else {
            Err(Error::Command(reply.error.unwrap_or_default()))
        }
    }

    pub fn outage(&self, scope: Scope, mode: OutageMode, duration: Duration) -> Result<()> {
        Self::expect_ok(self.apply(Command::Outage {
            scope,
            mode,
            ms: duration.as_millis() as u64,
        }))
    }

    pub fn burst(
        &self,
        scope: Scope,
        target: Target,
        error: BurstError,
        duration: Duration,
    ) -> Result<u64> {
        Self::expect_id(self.apply(Command::Burst {
            scope,
            target,
            error,
            ms: duration.as_millis() as u64,
        }))
    }

    pub fn ambiguous(
        &self,
        scope: Scope,
        target: Target,
        outcome: Outcome,
        trigger: Trigger,
        hang: Duration,
    ) -> Result<u64> {
        Self::expect_id(self.apply(Command::Ambiguous {
            scope,
            target,
            outcome,
            trigger,
            hang_ms: hang.as_millis() as u64,
        }))
    }

    pub fn reset(&self, scope: Scope, target: Target, trigger: Trigger) -> Result<u64> {
        Self::expect_id(self.apply(Command::Reset {
            scope,
            target,
            trigger,
        }))
    }

    /// Starts a chaos schedule; returns its id (for `remove`) and the faults it drew.
    pub fn chaos(&self, chaos: Chaos) -> Result<(u64, Vec<ChaosFault>)> {
        let reply = self.apply(Command::Chaos(chaos));
        let schedule = reply.schedule.clone().unwrap_or_default();
        Ok((Self::expect_id(reply)?, schedule))
    }

    /// Chaos schedules still running (a test waits for 0 to know storage is left alone).
    pub fn chaos_running(&self) -> usize {
        self.shared.chaos.len()
    }

    pub fn latency(&self, scope: Scope, latency: Option<Latency>) -> Result<()> {
        Self::expect_ok(self.apply(Command::Latency { scope, latency }))
    }

    pub fn clear(&self, scope: Scope) -> Result<()> {
        Self::expect_ok(self.apply(Command::Clear { scope }))
    }

    pub fn remove(&self, id: u64) -> Result<()> {
        Self::expect_ok(self.apply(Command::Remove { id }))
    }

    pub fn stats(&self) -> Vec<ClientStats> {
        self.shared
            .clients
            .iter()
            .map(|c| c.counters.snapshot())
            .collect()
    }
}

/// Applies a schedule's faults at their times, then removes the rules it added: by the end of
/// its duration its bursts and outages are over (they were clipped to it), so storage is left
/// alone; a request an ambiguous hang holds is let go within that hang's length.
async fn drive_chaos(
    controller: Controller,
    id: u64,
    schedule: Vec<ChaosFault>,
    end: Duration,
    mut cancel: tokio::sync::watch::Receiver<bool>,
) {
    let start = tokio::time::Instant::now();
    let mut rules = Vec::new();
    for fault in schedule {
        let due = start + Duration::from_millis(fault.at_ms);
        let cancelled = tokio::select! {
            _ = tokio::time::sleep_until(due) => false,
            _ = cancel.wait_for(|c| *c) => true,
        };
        if cancelled {
            break;
        }
        let c = controller.clone();
        // A refuse outage waits for the listeners to close, which blocks.
        if let Ok(Reply { id: Some(rule), .. }) =
            tokio::task::spawn_blocking(move || c.apply(fault.command)).await
        {
            rules.push(rule);
        }
    }
    tokio::select! {
        _ = tokio::time::sleep_until(start + end) => {}
        _ = cancel.wait_for(|c| *c) => {}
    }
    for rule in rules {
        controller.shared.rules.remove(rule);
    }
    controller.shared.chaos.finished(id);
}

async fn control_request(
    controller: Controller,
    req: Request<Incoming>,
) -> std::result::Result<Response<Full<Bytes>>, Infallible> {
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => Bytes::from(format!("{{\"op\":\"invalid\",\"error\":\"{e}\"}}")),
    };
    let reply = match serde_json::from_slice::<Command>(&body) {
        // `apply` may wait for listeners of this runtime: off the async workers.
        Ok(cmd) => tokio::task::spawn_blocking(move || controller.apply(cmd))
            .await
            .unwrap_or_else(|e| Reply {
                ok: false,
                error: Some(format!("command failed: {e}")),
                ..Reply::default()
            }),
        Err(e) => Reply {
            ok: false,
            error: Some(format!("invalid command: {e}")),
            ..Reply::default()
        },
    };
    let status = if reply.ok {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let json = serde_json::to_vec(&reply).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(json)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

pub async fn serve(listener: TcpListener, controller: Controller) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let controller = controller.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| control_request(controller.clone(), req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::Chaos;
    use crate::{Profile, Proxy, ProxyConfig};

    /// A proxy whose upstream is never reached: these tests send no storage requests.
    fn proxy(clients: usize) -> Proxy {
        let nowhere = "127.0.0.1:9".parse().unwrap();
        Proxy::start(ProxyConfig {
            blob_upstream: nowhere,
            table_upstream: nowhere,
            clients,
            seed: 1,
            profile: Profile::Exact,
        })
        .unwrap()
    }

    fn eventually(what: &str, bound: Duration, condition: impl Fn() -> bool) {
        let start = Instant::now();
        while !condition() {
            assert!(start.elapsed() < bound, "not within {bound:?}: {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_chaos_schedule_applies_its_faults_and_leaves_nothing_behind() {
        let p = proxy(2);
        let c = p.faults();
        let chaos = Chaos {
            seed: 5,
            scope: Scope::All,
            duration_ms: 1_500,
            mean_gap_ms: 100,
            max_outage_ms: 400,
            partitions: vec![],
        };
        let (_, schedule) = c.chaos(chaos.clone()).unwrap();
        assert_eq!(
            schedule,
            chaos.schedule(2),
            "the reply is the seed's schedule"
        );
        // Ambiguous writes and resets wait for traffic that never comes here, so they stay
        // until the schedule removes them.
        assert!(schedule
            .iter()
            .any(|f| matches!(f.command, Command::Ambiguous { .. } | Command::Reset { .. })));
        eventually("a rule of the schedule", Duration::from_secs(2), || {
            c.shared.rules.len() > 0
        });
        eventually(
            "the schedule's end, its rules removed and its outages over",
            Duration::from_secs(5),
            || {
                c.chaos_running() == 0
                    && c.shared.rules.len() == 0
                    && c.shared.clients.iter().all(|cl| cl.outage_now().is_none())
            },
        );
    }

    #[test]
    fn a_chaos_schedule_stops_on_remove_and_on_clear() {
        let p = proxy(1);
        let c = p.faults();
        let long = Chaos {
            seed: 9,
            scope: Scope::All,
            duration_ms: 60_000,
            mean_gap_ms: 100,
            max_outage_ms: 200,
            partitions: vec![],
        };
        let (id, _) = c.chaos(long.clone()).unwrap();
        eventually("a rule", Duration::from_secs(5), || {
            c.shared.rules.len() > 0
        });
        c.remove(id).unwrap();
        eventually("the schedule stopped", Duration::from_secs(2), || {
            c.chaos_running() == 0 && c.shared.rules.len() == 0
        });
        c.chaos(long.clone()).unwrap();
        c.clear(Scope::All).unwrap();
        eventually("the schedule stopped", Duration::from_secs(2), || {
            c.chaos_running() == 0
        });
        let refused = c.chaos(Chaos {
            max_outage_ms: 120_000,
            ..long
        });
        assert!(refused.is_err());
    }
}
