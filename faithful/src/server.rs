//! Client endpoints: listeners, connections, and the path of one request through the proxy
//! (outage → latency → injected failure → Azure rules → Azurite → Azure rules → ambiguity).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Notify;

use crate::azure_error::{self, Body};
use crate::etag::Etags;
use crate::faults::{Action, ClientFaults, Counters, Facts, OutageMode, Outcome, Phase, Rules};
use crate::forward::{strip_hop_by_hop, Answer, Upstream};
use crate::lease_rules::{self, Leases, Refusal};
use crate::request::{Buffered, Service};

/// State shared by every endpoint of one proxy: Azure semantics (leases, ETags) are per
/// account, so they must not depend on which endpoint a request came through.
pub struct Shared {
    pub clients: Vec<ClientFaults>,
    pub rules: Rules,
    pub leases: Leases,
    pub etags: Etags,
    pub upstream: Upstream,
    pub chaos: crate::chaos::Schedules,
}

/// Lets a request's handler end its connection: with a reset, or a plain close.
#[derive(Default)]
struct ConnCtl {
    kill: Notify,
    reset: AtomicBool,
}

/// A listener that can give its port back during a `refuse` outage and take it again.
/// `SO_REUSEADDR` on both sockets lets the bound, non-listening placeholder keep the port from
/// being handed out as an ephemeral port while nothing listens (connects are then refused).
fn socket(port: u16) -> std::io::Result<TcpSocket> {
    let s = TcpSocket::new_v4()?;
    s.set_reuseaddr(true)?;
    s.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    Ok(s)
}

pub fn bind(port: u16) -> std::io::Result<TcpListener> {
    socket(port)?.listen(1024)
}

async fn rebind(port: u16) -> TcpListener {
    let mut wait = Duration::from_millis(5);
    loop {
        match bind(port) {
            Ok(l) => return l,
            Err(e) => {
                eprintln!("azure-faithful: rebinding 127.0.0.1:{port} after an outage: {e}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_millis(500));
            }
        }
    }
}

fn refusing(faults: &ClientFaults) -> Option<tokio::time::Instant> {
    faults
        .outage_now()
        .filter(|o| o.mode == OutageMode::Refuse)
        .map(|o| o.until.into())
}

pub async fn listen(shared: Arc<Shared>, client: usize, service: Service, listener: TcpListener) {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let mut listener = Some(listener);
    let mut changed = shared.clients[client].changed.subscribe();
    loop {
        let faults = &shared.clients[client];
        if let Some(until) = refusing(faults) {
            drop(listener.take());
            let hold = socket(port);
            faults.closed_listeners.fetch_add(1, Ordering::SeqCst);
            let mut until = until;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => {}
                    _ = changed.changed() => {}
                }
                match refusing(faults) {
                    Some(later) => until = later,
                    None => break,
                }
            }
            listener = Some(rebind(port).await);
            faults.closed_listeners.fetch_sub(1, Ordering::SeqCst);
            drop(hold);
            continue;
        }
        let Some(l) = listener.as_ref() else {
            listener = Some(rebind(port).await);
            continue;
        };
        tokio::select! {
            accepted = l.accept() => {
                if let Ok((stream, _)) = accepted {
                    tokio::spawn(serve_connection(shared.clone(), client, service, stream));
                }
            }
            _ = changed.changed() => {}
        }
    }
}

fn set_reset_on_close(fd: RawFd) {
    // SAFETY: the connection future that owns this fd is alive until after this call.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let _ = socket2::SockRef::from(&fd).set_linger(Some(Duration::ZERO));
}

async fn serve_connection(shared: Arc<Shared>, client: usize, service: Service, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let fd = stream.as_raw_fd();
    let ctl = Arc::new(ConnCtl::default());
    let mut changed = shared.clients[client].changed.subscribe();
    let svc = {
        let shared = shared.clone();
        let ctl = ctl.clone();
        service_fn(move |req| handle(shared.clone(), client, service, ctl.clone(), req))
    };
    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = ctl.kill.notified() => break,
            r = changed.changed() => {
                if r.is_err() {
                    break;
                }
                if refusing(&shared.clients[client]).is_some() {
                    Counters::bump(&shared.clients[client].counters.refused_connections);
                    ctl.reset.store(true, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
    if ctl.reset.load(Ordering::Relaxed) {
        set_reset_on_close(fd);
    }
    // Dropping `conn` closes the socket without an answer to whatever is in flight.
}

type Reply = Result<Response<Body>, Infallible>;

/// Ends the connection from inside a request: the connection task drops it, so this future
/// never completes.
async fn drop_connection(ctl: &ConnCtl, reset: bool) -> Reply {
    ctl.reset.store(reset, Ordering::Relaxed);
    ctl.kill.notify_one();
    std::future::pending().await
}

fn refusal(service: Service, r: Refusal) -> Reply {
    Ok(azure_error::response(service, r.status, r.code, r.message))
}

async fn handle(
    shared: Arc<Shared>,
    client: usize,
    service: Service,
    ctl: Arc<ConnCtl>,
    req: Request<Incoming>,
) -> Reply {
    let faults = &shared.clients[client];
    Counters::bump(&faults.counters.requests);
    let (parts, body) = req.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return drop_connection(&ctl, false).await;
    };
    let mut req = Buffered {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
    };

    if let Some(outage) = faults.outage_now() {
        if outage.mode == OutageMode::Silent {
            Counters::bump(&faults.counters.silenced);
            let mut changed = faults.changed.subscribe();
            while faults.outage_now().is_some() {
                tokio::select! {
                    _ = tokio::time::sleep_until(outage.until.into()) => {}
                    _ = changed.changed() => {}
                }
            }
        }
        return drop_connection(&ctl, outage.mode == OutageMode::Refuse).await;
    }
    if let Some((delay, stall)) = faults.delay() {
        Counters::bump(&faults.counters.delayed);
        if stall {
            Counters::bump(&faults.counters.stalls);
        }
        tokio::time::sleep(delay).await;
    }
    let facts = Facts::of(service, &req);
    match shared.rules.pick(Phase::Before, client, &facts, faults) {
        Some(Action::Fail(error)) => {
            Counters::bump(&faults.counters.failed);
            let (status, code, message) = error.status_code();
            return Ok(azure_error::response(service, status, code, message));
        }
        Some(Action::Reset) => {
            Counters::bump(&faults.counters.resets);
            return drop_connection(&ctl, true).await;
        }
        _ => {}
    }

    if service == Service::Blob {
        if let Some(r) = shared.leases.before(&req) {
            Counters::bump(&faults.counters.renew_refused);
            return refusal(service, r);
        }
    }
    let original_body = req.body.clone();
    if service == Service::Table {
        table_request(&shared.etags, &mut req);
    }
    let Ok(mut answer) = shared.upstream.send(service, &req).await else {
        // Azurite unreachable: the client sees its connection drop, as with a dead front end.
        return drop_connection(&ctl, true).await;
    };
    let mut body_changed = false;
    match service {
        Service::Blob => {
            shared.leases.learn(&req, &answer);
            if let Some(r) = lease_rules::create_precedence(&shared.upstream, &req, &answer).await {
                Counters::bump(&faults.counters.lease_id_missing);
                return refusal(service, r);
            }
        }
        Service::Table => {
            if table_response(&shared.etags, &req, &original_body, &mut answer) {
                Counters::bump(&faults.counters.etags_rewritten);
                body_changed = true;
            }
        }
    }

    if let Some(Action::Ambiguous { outcome, hang }) =
        shared.rules.pick(Phase::After, client, &facts, faults)
    {
        Counters::bump(&faults.counters.ambiguous);
        match outcome {
            Outcome::TimeoutError => {
                let (status, code, message) =
                    crate::faults::BurstError::OperationTimedOut.status_code();
                return Ok(azure_error::response(service, status, code, message));
            }
            Outcome::Hang => {
                tokio::time::sleep(hang).await;
                return drop_connection(&ctl, false).await;
            }
            Outcome::Reset => return drop_connection(&ctl, true).await,
        }
    }
    Ok(into_response(answer, body_changed))
}

/// Client ETags back to Azurite's, in `If-Match` and inside batches.
fn table_request(etags: &Etags, req: &mut Buffered) {
    if let Some(v) = req.header("if-match") {
        let key = req.table_address().entity_key();
        if let Some(orig) = etags.incoming(v, &key) {
            if let Ok(h) = http::HeaderValue::from_str(&orig) {
                req.headers.insert(http::header::IF_MATCH, h);
            }
        }
    }
    if req.path.ends_with("/$batch") {
        if let Some(b) = etags.rewrite_batch_request(&String::from_utf8_lossy(&req.body)) {
            req.body = bytes::Bytes::from(b);
        }
    }
}

/// Azurite's ETags and Timestamps to Azure's precision. Returns whether the body changed.
fn table_response(
    etags: &Etags,
    req: &Buffered,
    original_body: &[u8],
    answer: &mut Answer,
) -> bool {
    let addr = req.table_address();
    if let Some(v) = answer.header("etag") {
        if let Some(new) = etags.outgoing(v, &addr.entity_key()) {
            if let Ok(h) = http::HeaderValue::from_str(&new) {
                answer.headers.insert(http::header::ETAG, h);
            }
        }
    }
    let content_type = answer.header("content-type").unwrap_or("").to_owned();
    let new_body = if content_type.starts_with("multipart/mixed") {
        etags
            .rewrite_batch_response(
                &String::from_utf8_lossy(&answer.body),
                &String::from_utf8_lossy(original_body),
            )
            .map(String::into_bytes)
    } else if content_type.contains("json") {
        etags.rewrite_json(&answer.body, &addr)
    } else {
        None
    };
    match new_body {
        Some(b) => {
            answer.body = bytes::Bytes::from(b);
            true
        }
        None => false,
    }
}

fn into_response(answer: Answer, body_changed: bool) -> Response<Body> {
    let mut resp = Response::new(Full::new(answer.body));
    *resp.status_mut() = answer.status;
    *resp.headers_mut() = answer.headers;
    strip_hop_by_hop(resp.headers_mut());
    if body_changed {
        resp.headers_mut().remove(http::header::CONTENT_LENGTH);
    }
    resp
}
