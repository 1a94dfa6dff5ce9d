//! Forwarding to Azurite: one pooled HTTP/1.1 client, whole bodies (storage requests in tests
//! are small, and the Azure rules need to read and rewrite them).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::request::{Buffered, Service};

/// Azurite answers in milliseconds; this only stops a wedged upstream from pinning a task.
const UPSTREAM_BOUND: Duration = Duration::from_secs(60);

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "host",
];

pub struct Upstream {
    client: Client<HttpConnector, Full<Bytes>>,
    blob: SocketAddr,
    table: SocketAddr,
}

/// A response as the proxy holds it, fully buffered.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("upstream request failed: {0}")]
    Client(#[from] hyper_util::client::legacy::Error),
    #[error("upstream body failed: {0}")]
    Body(#[from] hyper::Error),
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    #[error("bad upstream request: {0}")]
    Http(#[from] http::Error),
}

pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
}

impl Upstream {
    pub fn new(blob: SocketAddr, table: SocketAddr) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(4))
            .build(connector);
        Upstream {
            client,
            blob,
            table,
        }
    }

    pub fn addr(&self, service: Service) -> SocketAddr {
        match service {
            Service::Blob => self.blob,
            Service::Table => self.table,
        }
    }

    pub async fn send(&self, service: Service, req: &Buffered) -> Result<Answer, ForwardError> {
        self.send_parts(
            service,
            req.method.clone(),
            &req.path,
            req.query.as_deref(),
            &req.headers,
            req.body.clone(),
        )
        .await
    }

    pub async fn send_parts(
        &self,
        service: Service,
        method: Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Answer, ForwardError> {
        let addr = self.addr(service);
        let uri = match query {
            Some(q) => format!("http://{addr}{path}?{q}"),
            None => format!("http://{addr}{path}"),
        };
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(h) = builder.headers_mut() {
            h.extend(headers.clone());
            strip_hop_by_hop(h);
            h.remove(http::header::CONTENT_LENGTH);
        }
        let request = builder.body(Full::new(body))?;
        let exchange = async {
            let resp = self.client.request(request).await?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, ForwardError>(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(UPSTREAM_BOUND, exchange)
            .await
            .map_err(|_| ForwardError::Timeout(UPSTREAM_BOUND))?
    }
}
