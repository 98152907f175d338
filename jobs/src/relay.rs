//! The relay: hands `pending` deliveries to Redis as the queue drains, and re-hands everything
//! `queued` when Redis lost its data. PostgreSQL is the record; Redis may forget.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, TransactionTrait};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    deliveries::{self, Lost},
    queue::{Queue, QueueError},
};

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("database: {0}")]
    Database(#[from] DbErr),
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
}

/// Tunables of the relay loop.
#[derive(Debug, Clone, Copy)]
pub struct RelaySettings {
    /// A `queued` delivery no worker has touched for this long is assumed lost and handed over
    /// again (safety net for jobs lost outside a Redis restart, or given up on by apalis).
    pub stale_after: Duration,
    /// Idle wake-up period.
    pub interval: Duration,
    /// Wake-up period while a backlog of `pending` rows drains: the queue holds at most
    /// `QUEUE_MAX_BACKLOG` jobs, which fast workers finish in a fraction of `interval`, so a
    /// relay that slept `interval` between top-ups left them idle (a third of the time at
    /// 6,500 jobs/s and a backlog of 2,000).
    pub busy_interval: Duration,
    /// Most rows moved per transaction.
    pub batch: u64,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            stale_after: Duration::from_secs(600),
            interval: Duration::from_millis(250),
            busy_interval: Duration::from_millis(20),
            batch: 1_000,
        }
    }
}

/// What one [`Relay::tick`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TickReport {
    /// Jobs pushed to Redis.
    pub pushed: u64,
    /// Deliveries put back to `pending` because Redis lost its data or their job went stale.
    pub requeued: u64,
    /// True when the tick stopped at its batch size with room left: call again at once.
    pub more: bool,
    /// True when the queue had too little room to be worth a top-up, or was topped up to its
    /// limit with rows perhaps still `pending`: look again after `busy_interval`.
    pub busy: bool,
    /// False when another process holds the relay lock.
    pub leader: bool,
}

/// One per process; relays of several processes take turns through an advisory lock.
#[derive(Debug, Clone)]
pub struct Relay {
    db: DatabaseConnection,
    queue: Queue,
    settings: RelaySettings,
    wake: Arc<Notify>,
    redis_ok: Arc<AtomicBool>,
    lock_key: i64,
    last_stale_check: Arc<std::sync::Mutex<Option<tokio::time::Instant>>>,
}

impl Relay {
    pub fn new(db: DatabaseConnection, queue: Queue, settings: RelaySettings) -> Self {
        let lock_key = advisory_key(&queue.name());
        Self {
            db,
            queue,
            settings,
            wake: Arc::new(Notify::new()),
            redis_ok: Arc::new(AtomicBool::new(true)),
            lock_key,
            last_stale_check: Arc::default(),
        }
    }

    /// The stale sweep scans `queued` rows: once a minute is plenty. `take`: the caller runs
    /// the sweep now, so the next one is due in a minute.
    fn stale_check_due(&self, take: bool) -> bool {
        let mut last = self
            .last_stale_check
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = tokio::time::Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(60)) {
            return false;
        }
        if take {
            *last = Some(now);
        }
        true
    }

    /// Less room than this is not worth a transaction: a quarter of the backlog, so the queue
    /// is topped up in a few large pushes rather than many small ones while it drains.
    fn low_water(&self) -> u64 {
        (self.queue.max_backlog() / 4).max(1)
    }

    /// Asks the relay to run now (e.g. the API left rows `pending`).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Whether the last contact with Redis worked; the API skips its fast hand-off while not.
    pub fn redis_ok(&self) -> bool {
        self.redis_ok.load(Ordering::Relaxed)
    }

    pub fn note_redis(&self, ok: bool) {
        let was = self.redis_ok.swap(ok, Ordering::Relaxed);
        if was != ok {
            if ok {
                tracing::info!(queue = %self.queue.name(), "redis reachable again; handing over pending deliveries");
                self.wake();
            } else {
                tracing::warn!(queue = %self.queue.name(), "redis unreachable; deliveries stay pending in postgres");
            }
        }
    }

    /// Runs until `shutdown`, waking on [`Relay::wake`] or every `interval`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = self.settings.interval;
        loop {
            let pause = match self.tick().await {
                Ok(report) => {
                    self.note_redis(true);
                    backoff = self.settings.interval;
                    if report.more {
                        continue;
                    }
                    if report.busy {
                        self.settings.busy_interval
                    } else {
                        self.settings.interval
                    }
                }
                Err(RelayError::Queue(e)) => {
                    tracing::debug!(error = %e, "relay tick: redis");
                    self.note_redis(false);
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    backoff
                }
                Err(RelayError::Database(e)) => {
                    tracing::warn!(error = %e, "relay tick: database");
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    backoff
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One round: notice a Redis that lost its data, then top the queue up from `pending`. While
    /// the queue is nearly full (and no sweep is due) it is two Redis reads and nothing else.
    pub async fn tick(&self) -> Result<TickReport, RelayError> {
        let mut report = TickReport::default();
        // Checked before the lock so a Redis outage is noticed by every process.
        let epoch_present = self.queue.epoch_present().await?;
        let room = self.queue.room().await?;
        report.busy = room < self.low_water();
        if report.busy && epoch_present && !self.stale_check_due(false) {
            return Ok(report);
        }
        let txn = self.db.begin().await?;
        let locked = txn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_try_advisory_xact_lock($1) AS locked",
                [self.lock_key.into()],
            ))
            .await?
            .map(|row| row.try_get::<bool>("", "locked"))
            .transpose()?
            .unwrap_or(false);
        if !locked {
            txn.commit().await?;
            return Ok(report);
        }
        report.leader = true;
        if !epoch_present {
            // The mark is set only after this transaction commits (below): a crash in between
            // requeues again next time, never skips.
            report.requeued = deliveries::requeue_queued(&txn, Lost::All).await?;
            if report.requeued > 0 {
                tracing::warn!(
                    requeued = report.requeued,
                    "redis lost its jobs (epoch mark missing); every queued delivery goes back to pending"
                );
            }
        }
        if self.stale_check_due(true) {
            let stale =
                deliveries::requeue_queued(&txn, Lost::Stale(self.settings.stale_after)).await?;
            if stale > 0 {
                tracing::warn!(
                    requeued = stale,
                    "queued deliveries untouched by any worker for too long; handing them over again"
                );
            }
            report.requeued += stale;
        }
        let limit = if report.busy {
            0
        } else {
            room.min(self.settings.batch)
        };
        if limit > 0 {
            let rows = deliveries::lock_pending(&txn, limit).await?;
            let (row_ids, jobs): (Vec<i64>, Vec<_>) = rows.into_iter().unzip();
            self.queue.push(jobs).await?;
            deliveries::mark_rows_queued(&txn, &row_ids).await?;
            report.pushed = row_ids.len() as u64;
            report.more = report.pushed == limit && limit < room;
            report.busy |= report.pushed == limit && limit == room;
        }
        txn.commit().await?;
        if !epoch_present {
            self.queue
                .claim_epoch(&uuid::Uuid::new_v4().to_string())
                .await?;
        }
        if report.pushed > 0 {
            tracing::debug!(pushed = report.pushed, "relay handed deliveries to redis");
        }
        Ok(report)
    }
}

/// A stable 64-bit key for `pg_try_advisory_xact_lock`, from the queue name (FNV-1a).
fn advisory_key(name: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
}
