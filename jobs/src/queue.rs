//! The Redis job queue (apalis-redis 1.0), kept small: PostgreSQL is the buffer, Redis the transport.
//!
//! apalis-redis promotes every due job in one Lua `unpack`, which fails at about 8,000 due jobs
//! and then fails on every restart (`docs/ARCHITECTURE.md`). So nothing pushes without first
//! checking [`Queue::room`]; the relay tops the queue up as workers drain it.

use std::time::Duration;

use apalis_core::backend::TaskSink;
use apalis_redis::{Config as RedisQueueConfig, RedisStorage};
use redis::aio::ConnectionManager;

use crate::job::WebhookJob;

/// A Redis error, or apalis' push error around one.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("pushing jobs: {0}")]
    Push(String),
}

/// Handle on the webhook job queue; cheap to clone (one multiplexed connection).
#[derive(Clone)]
pub struct Queue {
    storage: RedisStorage<WebhookJob, ConnectionManager>,
    conn: ConnectionManager,
    max_backlog: u64,
    namespace: String,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name())
            .field("max_backlog", &self.max_backlog)
            .finish()
    }
}

impl Queue {
    /// How often an idle worker looks for new jobs.
    pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
    /// Heartbeat × missed heartbeats = how long before a dead worker's jobs are taken over.
    pub const HEARTBEAT: Duration = Duration::from_secs(5);
    pub const MISSED_HEARTBEATS: usize = 6;

    pub fn new(conn: ConnectionManager, namespace: &str, max_backlog: u64) -> Self {
        let config = Self::apalis_config(namespace);
        Self {
            storage: RedisStorage::new(conn.clone()).with_config(config),
            conn,
            max_backlog,
            namespace: namespace.to_owned(),
        }
    }

    fn apalis_config(namespace: &str) -> RedisQueueConfig {
        RedisQueueConfig::default()
            .queue(format!("{namespace}:webhooks"))
            .heartbeat_interval(Self::HEARTBEAT)
            .missed_heartbeats(Self::MISSED_HEARTBEATS)
            .batch_size(50)
            // Nobody subscribes to per-task pub/sub events; publishing them costs a round trip each.
            .emit_events(false)
            // Leases add nothing here: the attempt is counted in PostgreSQL and a dead worker's
            // jobs come back from its inflight set whatever their lease. Taking one costs an
            // `LREM` over the whole active list per job (the id left it when fetched), which
            // was ~70 % of Redis's CPU time at a backlog of 2,000.
            .lock_tasks(false)
    }

    /// The apalis queue name, `{namespace}:webhooks`.
    pub fn name(&self) -> String {
        format!("{}:webhooks", self.namespace)
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A storage handle for an apalis worker.
    pub fn storage(&self) -> RedisStorage<WebhookJob, ConnectionManager> {
        self.storage.clone()
    }

    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Jobs waiting in Redis: scheduled (not yet due or not yet promoted) plus active.
    pub async fn depth(&self) -> Result<u64, QueueError> {
        let config = self.storage.get_config();
        let mut conn = self.conn.clone();
        let (scheduled, active): (u64, u64) = redis::pipe()
            .zcard(config.scheduled_jobs_set())
            .llen(config.active_jobs_list())
            .query_async(&mut conn)
            .await?;
        Ok(scheduled + active)
    }

    /// The most jobs this queue holds in Redis (`QUEUE_MAX_BACKLOG`).
    pub fn max_backlog(&self) -> u64 {
        self.max_backlog
    }

    /// How many more jobs may be pushed now without passing `max_backlog`.
    pub async fn room(&self) -> Result<u64, QueueError> {
        Ok(self.max_backlog.saturating_sub(self.depth().await?))
    }

    /// Pushes jobs in one round trip. The caller checked [`Queue::room`].
    pub async fn push(&self, jobs: Vec<WebhookJob>) -> Result<(), QueueError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let mut storage = self.storage.clone();
        storage
            .push_bulk(jobs)
            .await
            .map_err(|e| QueueError::Push(e.to_string()))
    }

    /// Marks the current Redis dataset with `epoch` unless it has one; returns `true` when the
    /// mark was missing, i.e. Redis is new or lost its data (restart without persistence,
    /// flush, eviction) and every job it held must be assumed gone.
    pub async fn claim_epoch(&self, epoch: &str) -> Result<bool, QueueError> {
        let mut conn = self.conn.clone();
        let set: bool = redis::cmd("SET")
            .arg(self.epoch_key())
            .arg(epoch)
            .arg("NX")
            .query_async::<Option<String>>(&mut conn)
            .await?
            .is_some();
        Ok(set)
    }

    /// True while the epoch mark set by [`Queue::claim_epoch`] is still there.
    pub async fn epoch_present(&self) -> Result<bool, QueueError> {
        let mut conn = self.conn.clone();
        let exists: bool = redis::cmd("EXISTS")
            .arg(self.epoch_key())
            .query_async(&mut conn)
            .await?;
        Ok(exists)
    }

    fn epoch_key(&self) -> String {
        format!("{}:epoch", self.name())
    }

    /// Removes the bookkeeping apalis keeps forever for finished jobs (`{q}:done` members, their
    /// data and meta), at most `limit` per call. Jobs waiting for a retry are never touched.
    pub async fn trim_done(&self, limit: usize) -> Result<usize, QueueError> {
        let config = self.storage.get_config();
        self.trim_set(&config.done_jobs_set(), limit).await
    }

    /// Removes jobs apalis gave up on (`{q}:dead`: 25 failed runs, e.g. PostgreSQL down for
    /// minutes). Safe: their deliveries are still `queued` in PostgreSQL, and the relay's stale
    /// sweep hands them over again.
    pub async fn trim_dead(&self, limit: usize) -> Result<usize, QueueError> {
        let config = self.storage.get_config();
        self.trim_set(&config.dead_jobs_set(), limit).await
    }

    async fn trim_set(&self, set: &str, limit: usize) -> Result<usize, QueueError> {
        let config = self.storage.get_config();
        let mut conn = self.conn.clone();
        let ids: Vec<String> = redis::cmd("SPOP")
            .arg(set)
            .arg(limit)
            .query_async(&mut conn)
            .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let meta_prefix = config.job_meta_hash();
        // One transaction: nobody sees a job's data gone and its meta still there.
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.hdel(config.job_data_hash(), &ids).ignore();
        for id in &ids {
            pipe.del(format!("{meta_prefix}:{id}")).ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
        Ok(ids.len())
    }
}
