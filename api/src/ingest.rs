//! Group commit of deliveries: concurrent requests share one INSERT and one fsync, then one
//! push to Redis. A request is answered only after its row is committed.
//!
//! Requests queue up on a channel while up to [`MAX_IN_FLIGHT`] batches are being committed;
//! the next batch takes whatever has accumulated. Under light load a batch is one delivery
//! (no added latency); under heavy load batches grow and the fsync cost is shared.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use entities::DeliveryStatus;
use jobs::{
    Queue, WebhookJob,
    deliveries::{self, NewDelivery},
    relay::Relay,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::metrics::Metrics;

/// Most deliveries per INSERT. Also bounds how far concurrent batches can overshoot the queue's
/// room (each checks it alongside its INSERT): at most `MAX_IN_FLIGHT × MAX_BATCH` = 256 jobs
/// per api process beyond `QUEUE_MAX_BACKLOG`.
pub const MAX_BATCH: usize = 64;
/// Most payload bytes per INSERT.
const MAX_BATCH_BYTES: usize = 32 * 1024 * 1024;
/// Batches being committed at once.
pub const MAX_IN_FLIGHT: usize = 4;
/// Requests waiting for a batch before new ones wait for room (back-pressure).
const CHANNEL_CAPACITY: usize = 4 * MAX_BATCH;

/// What happened to a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Stored, and its job is in Redis.
    Queued,
    /// Stored; the relay will hand it to Redis (Redis away, or the queue full).
    Pending,
    /// Stored as `ignored`: an event the platform keeps but does not process.
    Ignored,
    /// The delivery id was already stored; nothing changed.
    Duplicate,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum IngestError {
    #[error("database: {0}")]
    Database(String),
    #[error("the ingest pipeline is shut down")]
    Closed,
}

struct Submission {
    delivery: NewDelivery,
    reply: oneshot::Sender<Result<Stored, IngestError>>,
}

/// The request side of the pipeline; cheap to clone.
#[derive(Clone, Debug)]
pub struct Ingestor {
    tx: mpsc::Sender<Submission>,
}

#[derive(Clone)]
struct Pipeline {
    /// Queue room seen by the latest check (starts optimistic).
    last_room: Arc<AtomicU64>,
    pool: deadpool_postgres::Pool,
    queue: Queue,
    relay: Relay,
    metrics: Arc<Metrics>,
}

impl Ingestor {
    /// Starts the batching task. It ends once every `Ingestor` clone is dropped and the
    /// batches in flight are committed.
    pub fn start(
        pool: deadpool_postgres::Pool,
        queue: Queue,
        relay: Relay,
        metrics: Arc<Metrics>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let pipeline = Pipeline {
            last_room: Arc::new(AtomicU64::new(u64::MAX)),
            pool,
            queue,
            relay,
            metrics,
        };
        let handle = tokio::spawn(batch_loop(rx, pipeline));
        (Self { tx }, handle)
    }

    /// Stores one delivery; resolves once it is committed (or could not be).
    pub async fn submit(&self, delivery: NewDelivery) -> Result<Stored, IngestError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Submission { delivery, reply })
            .await
            .map_err(|_| IngestError::Closed)?;
        answer.await.map_err(|_| IngestError::Closed)?
    }
}

async fn batch_loop(mut rx: mpsc::Receiver<Submission>, pipeline: Pipeline) {
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let Some(first) = rx.recv().await else {
            break;
        };
        let mut bytes = first.delivery.payload_json.len();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(next) => {
                    bytes += next.delivery.payload_json.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        tokio::spawn(pipeline.clone().commit(batch, permit));
    }
    // Wait for the batches in flight before reporting the pipeline drained.
    let _ = permits.acquire_many(MAX_IN_FLIGHT as u32).await;
}

impl Pipeline {
    async fn commit(self, batch: Vec<Submission>, _permit: OwnedSemaphorePermit) {
        self.metrics.batch_size.observe(batch.len() as f64);
        let (deliveries, replies): (Vec<NewDelivery>, Vec<_>) =
            batch.into_iter().map(|s| (s.delivery, s.reply)).unzip();
        let results = match self.store(&deliveries).await {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            // A failure of the data (not of the connection): store one by one so one bad
            // delivery cannot fail its neighbours.
            Err(e) if deliveries.len() > 1 && e.is_data_error() => {
                tracing::warn!(error = %e, size = deliveries.len(), "batch insert failed; storing one by one");
                let mut results = Vec::with_capacity(deliveries.len());
                for d in &deliveries {
                    results.push(
                        self.store(std::slice::from_ref(d))
                            .await
                            .map(|mut o| o.remove(0))
                            .map_err(|e| IngestError::Database(e.to_string())),
                    );
                }
                results
            }
            Err(e) => {
                let error = IngestError::Database(e.to_string());
                deliveries.iter().map(|_| Err(error.clone())).collect()
            }
        };
        if results.iter().any(|r| matches!(r, Ok(Stored::Pending))) {
            self.relay.wake();
        }
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }

    /// Room in the Redis queue, or 0 when Redis is away (then deliveries wait as `pending`).
    async fn room(&self) -> usize {
        match self.queue.room().await {
            Ok(room) => {
                self.last_room.store(room, Ordering::Relaxed);
                room as usize
            }
            Err(e) => {
                tracing::debug!(error = %e, "queue depth unknown; storing deliveries as pending");
                self.relay.note_redis(false);
                0
            }
        }
    }

    /// One transaction: insert, push the jobs of the new rows, commit. The push comes before
    /// the commit so no committed row can miss its job (a worker that gets there before the
    /// commit retries); rows beyond the queue's room, or whose push failed, are stored
    /// `pending` instead and the relay hands them over later.
    ///
    /// BEGIN, the INSERT and the queue-room check travel together (tokio-postgres pipelines
    /// requests polled concurrently), so a batch costs three round trips, not five.
    async fn store(&self, deliveries: &[NewDelivery]) -> Result<Vec<Stored>, StoreError> {
        // While the queue is full (a burst), insert `pending` straight away instead of
        // `queued`-then-`pending`: the room check below runs alongside the INSERT.
        let redis_ok = self.relay.redis_ok() && self.last_room.load(Ordering::Relaxed) > 0;
        let statuses: Vec<DeliveryStatus> = deliveries
            .iter()
            .map(|d| match d.job_kind() {
                None => DeliveryStatus::Ignored,
                Some(_) if redis_ok => DeliveryStatus::Queued,
                Some(_) => DeliveryStatus::Pending,
            })
            .collect();
        let wants_redis =
            self.relay.redis_ok() && deliveries.iter().any(|d| d.job_kind().is_some());
        let client = self.pool.get().await?;
        // `biased`: BEGIN must be polled (and so sent) before the INSERT.
        let (begun, inserted, room) = tokio::join!(
            biased;
            client.batch_execute("BEGIN"),
            deliveries::insert_many(&client, deliveries, &statuses),
            async { if wants_redis { self.room().await } else { 0 } },
        );
        let result = async {
            begun?;
            let inserted = inserted?;
            let new_queued: Vec<usize> = (0..deliveries.len())
                .filter(|&i| inserted[i] && statuses[i] == DeliveryStatus::Queued)
                .collect();
            let (to_push, no_room) = new_queued.split_at(new_queued.len().min(room));
            let jobs: Vec<WebhookJob> = to_push
                .iter()
                .filter_map(|&i| {
                    let d = &deliveries[i];
                    d.job_kind()
                        .map(|k| WebhookJob::new(k, d.delivery_id.clone()))
                })
                .collect();
            let pushed = match self.queue.push(jobs).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::debug!(error = %e, "push failed; storing deliveries as pending");
                    self.relay.note_redis(false);
                    false
                }
            };
            let not_pushed: Vec<usize> = if pushed {
                no_room.to_vec()
            } else {
                new_queued.clone()
            };
            if !not_pushed.is_empty() {
                let ids: Vec<&str> = not_pushed
                    .iter()
                    .map(|&i| deliveries[i].delivery_id.as_str())
                    .collect();
                deliveries::set_pending(&client, &ids).await?;
            }
            client.batch_execute("COMMIT").await?;
            Ok::<_, StoreError>(
                (0..deliveries.len())
                    .map(|i| match (inserted[i], statuses[i]) {
                        (false, _) => Stored::Duplicate,
                        (true, DeliveryStatus::Ignored) => Stored::Ignored,
                        (true, DeliveryStatus::Queued) if !not_pushed.contains(&i) => {
                            Stored::Queued
                        }
                        (true, _) => Stored::Pending,
                    })
                    .collect(),
            )
        }
        .await;
        if result.is_err() {
            // Never hand a connection back to the pool inside a transaction.
            if client.batch_execute("ROLLBACK").await.is_err() {
                let _ = deadpool_postgres::Object::take(client);
            }
        }
        result
    }
}

/// Why a batch could not be stored.
#[derive(Debug, thiserror::Error)]
enum StoreError {
    #[error("{0}")]
    Postgres(#[from] deadpool_postgres::tokio_postgres::Error),
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
}

impl StoreError {
    /// PostgreSQL refused the data (as opposed to the connection failing).
    fn is_data_error(&self) -> bool {
        matches!(self, Self::Postgres(e) if e.as_db_error().is_some())
    }
}

/// How long the pipeline may take to commit what is in flight at shutdown.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
