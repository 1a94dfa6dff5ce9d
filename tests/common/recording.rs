//! A storage wrapper that records every write and whether storage accepted it, so tests can
//! prove what a processor managed to change (e.g. nothing, after a pause cost it the lease).
#![allow(dead_code)]

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use samza_azure_coordinator::storage::{
    AzureStorage, BatchOp, BlobRef, Document, DocumentStore, ETag, Entity, Guard, IfMatch,
    LeaseDuration, LeaseId, LeaseStore, Page, PageQuery, TableStore, Update, WriteMode,
};
use samza_azure_coordinator::{ErrorKind, Result};
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct Write {
    pub at: Instant,
    pub op: String,
    pub accepted: bool,
    /// The document written, for document writes.
    pub body: Option<Bytes>,
}

/// A failure to inject into a call (see [`Recording::inject`]).
#[derive(Clone, Copy, Debug)]
pub enum Inject {
    /// The request never reaches storage.
    Fail(ErrorKind),
    /// Storage applies the write, then the caller gets this error anyway: a response lost
    /// to a timeout or a reset. With [`ErrorKind::OutcomeUnknown`], an ambiguous write as our
    /// retry loop reports it.
    AppliedThenFail(ErrorKind),
    /// The request is sent this much later: a slow request (zero: on time).
    Delay(Duration),
}

/// One queued failure: for the next call of `op` whose target (row keys, blob) contains
/// `touching`, or any call of `op` when `touching` is empty.
struct Rule {
    op: &'static str,
    touching: String,
    inject: Inject,
}

pub struct Recording {
    inner: AzureStorage,
    writes: Mutex<Vec<Write>>,
    /// Until then every request fails as storage being unreachable would.
    down_until: Mutex<Option<Instant>>,
    /// Until then every request hangs, and fails when the window ends: storage that accepts
    /// connections but never answers, as a client sees it until its timeout.
    silent_until: Mutex<Option<Instant>>,
    /// Failures queued per operation, taken one per matching call, in order.
    injected: Mutex<Vec<Rule>>,
}

impl Recording {
    pub fn new(inner: AzureStorage) -> Self {
        Recording {
            inner,
            writes: Mutex::new(Vec::new()),
            down_until: Mutex::new(None),
            silent_until: Mutex::new(None),
            injected: Mutex::new(Vec::new()),
        }
    }

    /// The next call of `op` (a method name of the storage traits, any of them) fails as
    /// `inject` says; calls queue up in order.
    pub fn inject(&self, op: &'static str, inject: Inject) {
        self.inject_touching(op, "", inject);
    }

    /// The next call of `op` whose target contains `touching` fails as `inject` says. The
    /// target is what the call names: a batch's row keys joined by commas, an entity's row
    /// key, a blob's `container/name`. So one caller's request can be picked out among
    /// others of the same operation (e.g. a leader's notify among its heartbeats, both
    /// batches).
    pub fn inject_touching(&self, op: &'static str, touching: &str, inject: Inject) {
        self.injected.lock().unwrap().push(Rule {
            op,
            touching: touching.to_owned(),
            inject,
        });
    }

    /// Injected failures not taken yet: a test asserts 0 to prove that its failure happened.
    pub fn injections_left(&self) -> usize {
        self.injected.lock().unwrap().len()
    }

    fn injected(&self, op: &str, target: &str) -> Option<Inject> {
        let mut queue = self.injected.lock().unwrap();
        let i = queue
            .iter()
            .position(|r| r.op == op && target.contains(r.touching.as_str()))?;
        Some(queue.remove(i).inject)
    }

    /// Runs `call` after the outage windows, unless a failure is injected for it.
    async fn through<T, F>(&self, op: &str, target: &str, call: F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        self.gate()?;
        self.silence().await?;
        self.run(op, target, call).await
    }

    /// Runs `call` after the outage window (not the silent one: as before, only reads,
    /// document replaces and batches hang in it), unless a failure is injected for it.
    async fn gated<T, F>(&self, op: &str, target: &str, call: F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        self.gate()?;
        self.run(op, target, call).await
    }

    /// Runs `call` unless a failure is injected for it; an applied-then-failed write runs it
    /// and reports the error instead of its outcome.
    async fn run<T, F>(&self, op: &str, target: &str, call: F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        let error = |kind| {
            Err(samza_azure_coordinator::Error::new(
                kind,
                format!("injected failure of {op}"),
            ))
        };
        match self.injected(op, target) {
            None => call.await,
            Some(Inject::Fail(kind)) => error(kind),
            Some(Inject::AppliedThenFail(kind)) => {
                let _ = call.await;
                error(kind)
            }
            Some(Inject::Delay(d)) => {
                tokio::time::sleep(d).await;
                call.await
            }
        }
    }

    /// Storage is unreachable from this client for `d`, starting now.
    pub fn outage(&self, d: Duration) {
        *self.down_until.lock().unwrap() = Some(Instant::now() + d);
    }

    /// Storage answers nothing to this client for `d`, starting now: each request made
    /// meanwhile hangs until the window ends, then fails.
    pub fn silent_outage(&self, d: Duration) {
        *self.silent_until.lock().unwrap() = Some(Instant::now() + d);
    }

    async fn silence(&self) -> Result<()> {
        let until = *self.silent_until.lock().unwrap();
        match until {
            Some(until) if Instant::now() < until => {
                tokio::time::sleep_until(until.into()).await;
                Err(samza_azure_coordinator::Error::new(
                    samza_azure_coordinator::ErrorKind::Transient,
                    "simulated silent outage: no answer before the timeout",
                ))
            }
            _ => Ok(()),
        }
    }

    fn gate(&self) -> Result<()> {
        match *self.down_until.lock().unwrap() {
            Some(until) if Instant::now() < until => Err(samza_azure_coordinator::Error::new(
                samza_azure_coordinator::ErrorKind::Transient,
                "simulated outage: storage unreachable",
            )),
            _ => Ok(()),
        }
    }

    pub fn writes(&self) -> Vec<Write> {
        self.writes.lock().unwrap().clone()
    }

    /// The last lease this client acquired, and on which blob.
    pub fn last_lease(&self) -> Option<(String, LeaseId)> {
        self.writes().into_iter().rev().find_map(|w| {
            let mut f = w.op.split(' ');
            match (f.next(), f.next(), f.next()) {
                (Some("acquire_lease"), Some(blob), Some(id)) if w.accepted => {
                    Some((blob.to_owned(), LeaseId::parse(id).ok()?))
                }
                _ => None,
            }
        })
    }

    fn note<T>(&self, op: String, r: Result<T>) -> Result<T> {
        self.writes.lock().unwrap().push(Write {
            at: Instant::now(),
            op,
            accepted: r.is_ok(),
            body: None,
        });
        r
    }
}

#[async_trait]
impl LeaseStore for Recording {
    async fn acquire_lease(
        &self,
        blob: &BlobRef,
        duration: LeaseDuration,
        proposed: Option<LeaseId>,
    ) -> Result<LeaseId> {
        let r = self
            .gated(
                "acquire_lease",
                &blob.to_string(),
                self.inner.acquire_lease(blob, duration, proposed),
            )
            .await;
        let id = r.as_ref().map(|l| l.to_string()).unwrap_or_default();
        self.note(format!("acquire_lease {blob} {id}"), r)
    }
    async fn renew_lease(&self, blob: &BlobRef, lease: LeaseId, d: Option<Duration>) -> Result<()> {
        let r = self
            .gated(
                "renew_lease",
                &blob.to_string(),
                self.inner.renew_lease(blob, lease, d),
            )
            .await;
        self.note(format!("renew_lease {blob}"), r)
    }
    async fn release_lease(&self, blob: &BlobRef, lease: LeaseId) -> Result<()> {
        let r = self
            .gated(
                "release_lease",
                &blob.to_string(),
                self.inner.release_lease(blob, lease),
            )
            .await;
        self.note(format!("release_lease {blob}"), r)
    }
    async fn break_lease(&self, blob: &BlobRef, period: Duration) -> Result<Duration> {
        let r = self
            .gated(
                "break_lease",
                &blob.to_string(),
                self.inner.break_lease(blob, period),
            )
            .await;
        self.note(format!("break_lease {blob}"), r)
    }
    async fn change_lease(&self, b: &BlobRef, l: LeaseId, p: LeaseId) -> Result<LeaseId> {
        let r = self
            .gated(
                "change_lease",
                &b.to_string(),
                self.inner.change_lease(b, l, p),
            )
            .await;
        self.note(format!("change_lease {b}"), r)
    }
}

#[async_trait]
impl DocumentStore for Recording {
    async fn ensure_container(&self, container: &str) -> Result<bool> {
        self.gated(
            "ensure_container",
            container,
            self.inner.ensure_container(container),
        )
        .await
    }
    async fn create_document(&self, blob: &BlobRef, body: Bytes) -> Result<ETag> {
        let r = self
            .gated(
                "create_document",
                &blob.to_string(),
                self.inner.create_document(blob, body),
            )
            .await;
        self.note(format!("create_document {blob}"), r)
    }
    async fn read_document(&self, blob: &BlobRef) -> Result<Document> {
        self.through(
            "read_document",
            &blob.to_string(),
            self.inner.read_document(blob),
        )
        .await
    }
    async fn read_document_if_changed(&self, b: &BlobRef, k: &ETag) -> Result<Option<Document>> {
        self.through(
            "read_document_if_changed",
            &b.to_string(),
            self.inner.read_document_if_changed(b, k),
        )
        .await
    }
    async fn check_document(
        &self,
        b: &BlobRef,
        k: &ETag,
    ) -> Result<samza_azure_coordinator::storage::Change> {
        self.gated(
            "check_document",
            &b.to_string(),
            self.inner.check_document(b, k),
        )
        .await
    }
    async fn replace_document(&self, blob: &BlobRef, body: Bytes, guard: Guard) -> Result<ETag> {
        let if_match = if guard.if_match.is_some() {
            "yes"
        } else {
            "no"
        };
        let op = format!("replace_document {blob} if-match={if_match}");
        let r = self
            .through(
                "replace_document",
                &blob.to_string(),
                self.inner.replace_document(blob, body.clone(), guard),
            )
            .await;
        let r = self.note(op, r);
        if let Some(w) = self.writes.lock().unwrap().last_mut() {
            w.body = Some(body);
        }
        r
    }
    async fn delete_document(&self, blob: &BlobRef, guard: Guard) -> Result<()> {
        let r = self
            .gated(
                "delete_document",
                &blob.to_string(),
                self.inner.delete_document(blob, guard),
            )
            .await;
        self.note(format!("delete_document {blob}"), r)
    }
}

#[async_trait]
impl TableStore for Recording {
    async fn ensure_table(&self, table: &str) -> Result<bool> {
        self.gated("ensure_table", table, self.inner.ensure_table(table))
            .await
    }
    async fn delete_table(&self, table: &str) -> Result<()> {
        let r = self
            .gated("delete_table", table, self.inner.delete_table(table))
            .await;
        self.note(format!("delete_table {table}"), r)
    }
    async fn insert_entity(&self, table: &str, e: &Entity) -> Result<ETag> {
        let r = self
            .gated(
                "insert_entity",
                &e.row_key,
                self.inner.insert_entity(table, e),
            )
            .await;
        self.note(format!("insert_entity {}", e.row_key), r)
    }
    async fn upsert_entity(&self, table: &str, e: &Entity, mode: WriteMode) -> Result<ETag> {
        let r = self
            .gated(
                "upsert_entity",
                &e.row_key,
                self.inner.upsert_entity(table, e, mode),
            )
            .await;
        self.note(format!("upsert_entity {}", e.row_key), r)
    }
    async fn update_entity(&self, table: &str, e: &Entity, update: Update) -> Result<ETag> {
        let r = self
            .gated(
                "update_entity",
                &e.row_key,
                self.inner.update_entity(table, e, update),
            )
            .await;
        self.note(format!("update_entity {}", e.row_key), r)
    }
    async fn get_entity(&self, table: &str, pk: &str, rk: &str) -> Result<Entity> {
        self.gated("get_entity", rk, self.inner.get_entity(table, pk, rk))
            .await
    }
    async fn query_partition(&self, table: &str, pk: &str, query: PageQuery<'_>) -> Result<Page> {
        self.through(
            "query_partition",
            pk,
            self.inner.query_partition(table, pk, query),
        )
        .await
    }
    async fn batch(&self, table: &str, pk: &str, ops: Vec<BatchOp>) -> Result<Vec<Option<ETag>>> {
        let keys: Vec<String> = ops
            .iter()
            .map(|op| match op {
                BatchOp::Insert(e) | BatchOp::Upsert(e, _) | BatchOp::Update(e, _) => {
                    e.row_key.clone()
                }
                BatchOp::Delete { row_key, .. } => row_key.clone(),
            })
            .collect();
        let keys = keys.join(",");
        let r = self
            .through("batch", &keys, self.inner.batch(table, pk, ops))
            .await;
        self.note(format!("batch {pk} {keys}"), r)
    }
    async fn delete_entity(&self, table: &str, e: &Entity, m: &IfMatch) -> Result<()> {
        let r = self
            .gated(
                "delete_entity",
                &e.row_key,
                self.inner.delete_entity(table, e, m),
            )
            .await;
        self.note(format!("delete_entity {}", e.row_key), r)
    }
}
