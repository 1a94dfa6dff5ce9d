//! Samza's CoordinationUtils on Azure Storage, for one coordination group of a job: leases for
//! the leader elector and locks, a table partition per latch, and heartbeated rows for cluster
//! membership. Everything lives in the job's own container and table (see
//! `coordinator::names`), under names prefixed by the group.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::coordinator::names::{JobIdentity, JobNames};
use crate::coordinator::Storage;
use crate::error::{Error, ErrorKind, Result};
use crate::lease::{LeaseKeeper, LeaseTiming};
use crate::membership::Membership;
use crate::storage::names::validate_key;
use crate::storage::retry::Doubling;
use crate::storage::{BlobRef, Entity, WriteMode};

/// How long a cluster member's row stays live without a heartbeat, and how often it beats.
const CLUSTER_LIVENESS: Duration = Duration::from_secs(6);
const CLUSTER_HEARTBEAT: Duration = Duration::from_secs(2);
/// A row rewritten by every size query to carry storage's current time; never a member
/// (rows starting with `~` are not).
const CLOCK_ROW: &str = "~clock";

/// One group's coordination utilities.
pub struct Group<S: Storage> {
    store: Arc<S>,
    names: JobNames,
    group: String,
}

impl<S: Storage> Group<S> {
    pub fn new(store: Arc<S>, job: &JobIdentity, group: &str) -> Result<Self> {
        validate_key("coordination group", group)?;
        if group.is_empty() {
            return Err(Error::new(
                ErrorKind::BadRequest,
                "coordination group must not be empty",
            ));
        }
        Ok(Group {
            store,
            names: job.names()?,
            group: group.to_owned(),
        })
    }

    /// Starts competing for the lease named `name` (a lock id, or "leader"). The blob is
    /// created first if needed. `acquire_every` is how often a follower retries.
    pub async fn lease(&self, name: &str, acquire_every: Duration) -> Result<LeaseKeeper> {
        validate_key("lock id", name)?;
        let blob = BlobRef::new(
            &self.names.container,
            &format!("utils/{}/{}", self.group, name),
        )?;
        self.store.ensure_container(&self.names.container).await?;
        let body = bytes::Bytes::from_static(b"lease\n");
        self.store.create_if_absent(&blob, body).await?;
        LeaseKeeper::spawn(
            self.store.clone(),
            blob,
            LeaseTiming {
                acquire_interval: acquire_every,
                ..LeaseTiming::default()
            },
        )
    }

    fn partition(&self, kind: &str, id: &str) -> String {
        format!("{kind}:{}:{id}", self.group)
    }

    /// Counts the latch down once (each call counts, as in Samza's ZooKeeper latch).
    pub async fn count_down(&self, latch: &str, participant: &str) -> Result<()> {
        validate_key("latch id", latch)?;
        let table = &self.names.table;
        self.store.ensure_table(table).await?;
        let row = format!("{participant}-{}", crate::random::uuid());
        let entity = Entity::new(self.partition("latch", latch), row);
        self.store.insert_entity(table, &entity).await.map(|_| ())
    }

    /// How many times the latch was counted down.
    pub async fn latch_count(&self, latch: &str) -> Result<usize> {
        let partition = self.partition("latch", latch);
        let rows = self
            .store
            .partition_rows(&self.names.table, &partition, None)
            .await?;
        Ok(rows.len())
    }

    /// Waits until the latch reached `size`; false if `timeout` passed first.
    pub async fn await_latch(&self, latch: &str, size: usize, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        let mut pauses = Doubling::new(Duration::from_millis(50), Duration::from_millis(500));
        loop {
            if self.latch_count(latch).await? >= size {
                return Ok(true);
            }
            let pause = pauses.next_delay();
            if Instant::now() + pause > deadline {
                return Ok(false);
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// Registers `id` in the group's cluster membership and keeps its row alive until
    /// [`ClusterMember::leave`] (or the process dies and the row goes stale).
    pub async fn register(&self, id: &str) -> Result<ClusterMember> {
        let store = self.store.clone();
        let table = self.names.table.clone();
        let partition = self.partition("cluster", "members");
        {
            let mut m = Membership::in_partition(&*store, &table, &partition, id)?;
            m.register().await?;
        }
        let (s, t, p, me) = (
            store.clone(),
            table.clone(),
            partition.clone(),
            id.to_owned(),
        );
        let task = tokio::spawn(async move {
            let Ok(mut m) = Membership::in_partition(&*s, &t, &p, &me) else {
                return;
            };
            loop {
                tokio::time::sleep(CLUSTER_HEARTBEAT).await;
                if let Err(e) = m.heartbeat().await {
                    tracing::warn!(error = %e, "cluster membership heartbeat failed");
                }
            }
        });
        Ok(ClusterMember {
            id: id.to_owned(),
            task: Some(task),
        })
    }

    /// Members whose rows are live by storage's clock.
    pub async fn cluster_size(&self) -> Result<usize> {
        let partition = self.partition("cluster", "members");
        // Writing a clock row first makes storage's "now" part of the snapshot, so stale rows
        // are judged dead even when no member is alive to heartbeat.
        let table = &self.names.table;
        self.store.ensure_table(table).await?;
        let clock = Entity::new(partition.clone(), CLOCK_ROW);
        self.store
            .upsert_entity(table, &clock, WriteMode::Replace)
            .await?;
        let observer = Membership::in_partition(&*self.store, table, &partition, "observer")?;
        Ok(observer.snapshot().await?.live(CLUSTER_LIVENESS).len())
    }

    /// Removes `id` from the cluster membership at once.
    pub async fn unregister(&self, id: &str) -> Result<()> {
        let partition = self.partition("cluster", "members");
        Membership::in_partition(&*self.store, &self.names.table, &partition, id)?
            .leave()
            .await
    }
}

/// A registered cluster member; its heartbeat task runs until [`leave`](Self::leave) or drop.
pub struct ClusterMember {
    pub id: String,
    task: Option<JoinHandle<()>>,
}

impl ClusterMember {
    /// Stops heartbeating (the caller deletes the row with [`Group::unregister`]).
    pub fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Drop for ClusterMember {
    fn drop(&mut self) {
        self.stop();
    }
}
