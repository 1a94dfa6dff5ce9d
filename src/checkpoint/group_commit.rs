//! Group commit of conditional merges into one table partition.
//!
//! Callers that merge concurrently share requests: the first caller sends its merge at once;
//! whatever arrives while a request is in flight goes in the next one, as one entity-group
//! transaction of up to [`MAX_BATCH_OPERATIONS`]. Nothing waits for company, so a lone caller
//! costs what a plain merge does. Each merge keeps its own If-Match; a transaction fails as a
//! whole, so when one fails, its callers are told to send their merge alone and judge their own
//! outcome (one stale ETag must not fail the others).
//!
//! The entities of one group must be distinct rows; callers guarantee it (one merge of a row in
//! flight at a time).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::storage::{BatchOp, ETag, Entity, IfMatch, TableStore, Update, MAX_BATCH_OPERATIONS};

/// What became of a merge handed to the group.
#[derive(Debug)]
pub enum Outcome {
    /// Sent (alone or in a transaction that applied): storage's answer.
    Done(Result<ETag>),
    /// Not applied as part of a group (its transaction failed, or the group stopped before
    /// sending it): the caller sends it alone.
    Alone,
}

struct Pending {
    entity: Entity,
    if_match: IfMatch,
    bytes: usize,
    reply: oneshot::Sender<Outcome>,
}

#[derive(Default)]
struct Queue {
    pending: VecDeque<Pending>,
    /// Someone is sending; while true, new merges only queue. Invariant: `pending` is empty
    /// whenever this is false.
    sending: bool,
}

pub struct GroupCommit<S: TableStore> {
    store: Arc<S>,
    table: String,
    partition: String,
    /// Most bytes of entity text in one transaction (the Table service allows 4 MiB per
    /// request, framing included). A single merge is sent whatever its size.
    max_bytes: usize,
    queue: Mutex<Queue>,
}

impl<S: TableStore + 'static> GroupCommit<S> {
    pub fn new(store: Arc<S>, table: &str, partition: &str, max_bytes: usize) -> Arc<Self> {
        Arc::new(GroupCommit {
            store,
            table: table.to_owned(),
            partition: partition.to_owned(),
            max_bytes,
            queue: Mutex::new(Queue::default()),
        })
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Merges `entity` (of this group's partition) if its row still matches `if_match`, in
    /// company when others are merging too. `bytes` is its size as sent, roughly.
    pub async fn merge(
        self: &Arc<Self>,
        entity: Entity,
        if_match: IfMatch,
        bytes: usize,
    ) -> Outcome {
        let (reply, answer) = oneshot::channel();
        let lead = {
            let mut q = self.queue();
            q.pending.push_back(Pending {
                entity,
                if_match,
                bytes,
                reply,
            });
            !std::mem::replace(&mut q.sending, true)
        };
        if lead {
            // This caller sends the first request itself (no hop to another thread when it is
            // alone); the guard then hands the queue on, also should this future be dropped.
            let _hand_on = HandOn(Arc::clone(self));
            self.send_one().await;
        }
        answer.await.unwrap_or(Outcome::Alone)
    }

    /// After a request: stops sending if nothing queued meanwhile, else lets a task send the
    /// next request, so the caller that sent is not kept waiting on others' merges. Every
    /// request, the caller's or a task's, ends here (through [`HandOn`], even on a panic), so
    /// the queue never stalls with `sending` left set.
    fn hand_on(self: Arc<Self>) {
        let mut q = self.queue();
        if q.pending.is_empty() {
            q.sending = false;
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                drop(q);
                runtime.spawn(async move {
                    let _hand_on = HandOn(Arc::clone(&self));
                    self.send_one().await;
                });
            }
            // No runtime (it is shutting down): the queued callers send alone, or fail doing so.
            Err(_) => {
                q.sending = false;
                q.pending.clear();
            }
        }
    }

    /// Sends the oldest queued merges: one alone, or several as one transaction.
    async fn send_one(&self) {
        let group: Vec<Pending> = {
            let mut q = self.queue();
            let mut bytes = 0;
            let mut n = 0;
            for p in q.pending.iter().take(MAX_BATCH_OPERATIONS) {
                if n > 0 && bytes + p.bytes > self.max_bytes {
                    break;
                }
                bytes += p.bytes;
                n += 1;
            }
            q.pending.drain(..n).collect()
        };
        match group.len() {
            0 => {}
            1 => {
                let p = group.into_iter().next().expect("one");
                let result = self
                    .store
                    .update_entity(&self.table, &p.entity, Update::merge(p.if_match))
                    .await;
                let _ = p.reply.send(Outcome::Done(result));
            }
            n => {
                let mut replies = Vec::with_capacity(n);
                let ops = group
                    .into_iter()
                    .map(|p| {
                        replies.push(p.reply);
                        BatchOp::Update(p.entity, Update::merge(p.if_match))
                    })
                    .collect();
                match self.store.batch(&self.table, &self.partition, ops).await {
                    Ok(etags) => {
                        for (reply, etag) in replies.into_iter().zip(etags) {
                            let answer = etag.ok_or_else(|| {
                                Error::internal("a merge in a transaction returned no ETag")
                            });
                            let _ = reply.send(Outcome::Done(answer));
                        }
                    }
                    Err(e) => {
                        tracing::debug!(merges = n, error = %e, "a group commit failed as a whole; each merge goes alone");
                        for reply in replies {
                            let _ = reply.send(Outcome::Alone);
                        }
                    }
                }
            }
        }
    }
}

/// Hands the queue on when a request is done, or when the future sending it is dropped.
struct HandOn<S: TableStore + 'static>(Arc<GroupCommit<S>>);

impl<S: TableStore + 'static> Drop for HandOn<S> {
    fn drop(&mut self) {
        Arc::clone(&self.0).hand_on();
    }
}
