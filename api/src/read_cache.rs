//! A per-replica cache of the organization-wide dashboard answers (overview, teams, repositories,
//! DORA), dropped for an organization as soon as PostgreSQL says one of its precomputed tables
//! changed.
//!
//! The jobs that write `daily_metrics`, `dora_metrics`, `reliability_scores`, `health_alerts`,
//! `teams` and `organizations` notify channel `devpulse_reads` with the organization id, on
//! commit (triggers of migration `m20261203_000001_read_cache`). Every replica listens; a lost
//! listening connection clears everything, and entries also expire after `ttl` (so "today"
//! moves on at midnight). An answer computed while a change committed is not kept: each
//! organization has a generation number, bumped by every notification, checked before
//! inserting.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::body::Bytes;
use deadpool_postgres::tokio_postgres::AsyncMessage;
use jobs::people::OrgId;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The channel the triggers notify.
pub const CHANNEL: &str = "devpulse_reads";

/// A JSON answer and its entity tag.
#[derive(Debug)]
pub struct Cached {
    pub body: Bytes,
    pub etag: String,
}

impl Cached {
    pub fn new(body: Bytes) -> Self {
        let etag = etag_of(&body);
        Self { body, etag }
    }
}

/// A strong entity tag for a body: the first 128 bits of its SHA-256, quoted.
pub fn etag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", hex::encode(&digest[..16]))
}

/// Where a cached answer may be reused: an organization and a request's path and query.
type Key = (i64, String);

#[derive(Clone)]
pub struct ReadCache {
    entries: moka::sync::Cache<Key, Arc<Cached>>,
    generations: Arc<Mutex<Generations>>,
}

#[derive(Default)]
struct Generations {
    /// Bumped when the listening connection is lost: every organization changed.
    epoch: u64,
    per_org: HashMap<i64, u64>,
}

impl Generations {
    fn of(&self, org: i64) -> (u64, u64) {
        (self.epoch, self.per_org.get(&org).copied().unwrap_or(0))
    }
}

/// The generation a computation started at; [`ReadCache::insert`] keeps its answer only when
/// nothing changed meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation((u64, u64));

impl std::fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCache")
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

impl ReadCache {
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .support_invalidation_closures()
                .build(),
            generations: Arc::default(),
        }
    }

    pub fn get(&self, org: OrgId, key: &str) -> Option<Arc<Cached>> {
        self.entries.get(&(org.0, key.to_owned()))
    }

    /// Read before computing an answer.
    pub fn generation(&self, org: OrgId) -> Generation {
        Generation(self.lock().of(org.0))
    }

    /// Keeps `body` unless `org`'s data changed since `started`; returns it as [`Cached`] either way.
    pub fn insert(&self, org: OrgId, key: &str, started: Generation, body: Bytes) -> Arc<Cached> {
        let cached = Arc::new(Cached::new(body));
        let guard = self.lock();
        if guard.of(org.0) == started.0 {
            self.entries.insert((org.0, key.to_owned()), cached.clone());
        }
        drop(guard);
        cached
    }

    /// `org`'s precomputed data changed.
    pub fn invalidate(&self, org: i64) {
        *self.lock().per_org.entry(org).or_default() += 1;
        // Lazily applied by moka, but entries matching a registered predicate are never returned.
        let _ = self
            .entries
            .invalidate_entries_if(move |key, _| key.0 == org);
    }

    /// Anything may have changed (the notifications could not be heard).
    pub fn clear(&self) {
        self.lock().epoch += 1;
        self.entries.invalidate_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // A panic while holding the lock cannot leave the counters inconsistent.
        self.generations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Listens on [`CHANNEL`] until `stop`, reconnecting with backoff; every lost connection clears
/// the cache (notifications may have been missed), and so does every new one.
pub async fn listen(database_url: String, cache: ReadCache, stop: CancellationToken) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let outcome = tokio::select! {
            () = stop.cancelled() => return,
            outcome = listen_once(&database_url, &cache) => outcome,
        };
        cache.clear();
        match outcome {
            Ok(()) => backoff = Duration::from_millis(200),
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64,
                    "read cache: lost the notification connection; serving uncached until it is back");
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn listen_once(database_url: &str, cache: &ReadCache) -> Result<(), String> {
    let (config, tls, _) = jobs::runtime::pg_tls::target(database_url)?;
    let (client, mut connection) = config.connect(tls).await.map_err(|e| e.to_string())?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if tx.send(n.payload().to_owned()).is_err() {
                        return Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("the connection closed".to_owned()),
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|e| e.to_string())?;
    // Answers cached before LISTEN took effect may predate a change it did not hear.
    cache.clear();
    tracing::debug!("read cache: listening for changes");
    while let Some(payload) = rx.recv().await {
        match payload.parse::<i64>() {
            Ok(org) => cache.invalidate(org),
            Err(_) => cache.clear(),
        }
    }
    drop(client);
    driver
        .await
        .map_err(|e| e.to_string())
        .and_then(|result| result)
        .and(Err("the notification connection ended".to_owned()))
}
