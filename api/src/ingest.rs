//! Group commit of deliveries: concurrent requests share one INSERT and one fsync, then one
//! push to Redis. A request is answered only after its row is committed.
//!
//! Requests queue up on a channel while up to [`MAX_IN_FLIGHT`] batches are being committed;
//! the next batch takes whatever has accumulated. Under light load a batch is one delivery
//! (no added latency); under heavy load batches grow and the fsync cost is shared.

use std::{sync::Arc, time::Duration};

use jobs::{
    DeliveryId, Queue, WebhookJob,
    deliveries::{self, NewDelivery},
    relay::Relay,
};
use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::metrics::Metrics;

/// Most deliveries per INSERT (8 parameters each; PostgreSQL allows 65,535).
pub const MAX_BATCH: usize = 256;
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
    db: DatabaseConnection,
    queue: Queue,
    relay: Relay,
    metrics: Arc<Metrics>,
}

impl Ingestor {
    /// Starts the batching task. It ends once every `Ingestor` clone is dropped and the
    /// batches in flight are committed.
    pub fn start(
        db: DatabaseConnection,
        queue: Queue,
        relay: Relay,
        metrics: Arc<Metrics>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let pipeline = Pipeline {
            db,
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
        let inserted = match self.insert(&deliveries).await {
            Ok(inserted) => inserted,
            Err(results) => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
                return;
            }
        };

        let mut outcomes: Vec<Stored> = deliveries
            .iter()
            .zip(&inserted)
            .map(|(d, &new)| match (new, d.job_kind()) {
                (false, _) => Stored::Duplicate,
                (true, None) => Stored::Ignored,
                (true, Some(_)) => Stored::Pending,
            })
            .collect();
        let to_queue: Vec<usize> = (0..outcomes.len())
            .filter(|&i| outcomes[i] == Stored::Pending)
            .collect();
        let queued = self.hand_off(&deliveries, &to_queue).await;
        for &i in &to_queue[..queued] {
            outcomes[i] = Stored::Queued;
        }
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            let _ = reply.send(Ok(outcome));
        }
    }

    /// Inserts the batch; when the batch fails as a whole, retries each delivery alone so one
    /// bad row cannot fail its neighbours. `Err` carries one result per delivery.
    async fn insert(
        &self,
        deliveries: &[NewDelivery],
    ) -> Result<Vec<bool>, Vec<Result<Stored, IngestError>>> {
        match deliveries::insert_many(&self.db, deliveries).await {
            Ok(inserted) => Ok(inserted),
            Err(e) if deliveries.len() == 1 || is_unavailable(&e) => {
                let error = IngestError::Database(e.to_string());
                Err(deliveries.iter().map(|_| Err(error.clone())).collect())
            }
            Err(e) => {
                tracing::warn!(error = %e, size = deliveries.len(), "batch insert failed; storing one by one");
                let mut inserted = Vec::with_capacity(deliveries.len());
                let mut failed = false;
                let mut results = Vec::with_capacity(deliveries.len());
                for d in deliveries {
                    match deliveries::insert_many(&self.db, std::slice::from_ref(d)).await {
                        Ok(v) => {
                            let new = v.first().copied().unwrap_or(false);
                            inserted.push(new);
                            results.push(Ok(if new {
                                Stored::Pending
                            } else {
                                Stored::Duplicate
                            }));
                        }
                        Err(e) => {
                            failed = true;
                            inserted.push(false);
                            results.push(Err(IngestError::Database(e.to_string())));
                        }
                    }
                }
                if failed {
                    // Rows stored one by one stay `pending`: the relay hands them over.
                    self.relay.wake();
                    Err(results)
                } else {
                    Ok(inserted)
                }
            }
        }
    }

    /// Pushes jobs for `deliveries[i]`, `i` in `indexes`, as far as the queue has room.
    /// Returns how many of them (a prefix) are now queued; the rest stay `pending`.
    async fn hand_off(&self, deliveries: &[NewDelivery], indexes: &[usize]) -> usize {
        if indexes.is_empty() {
            return 0;
        }
        if !self.relay.redis_ok() {
            self.relay.wake();
            return 0;
        }
        let room = match self.queue.room().await {
            Ok(room) => room as usize,
            Err(e) => {
                tracing::debug!(error = %e, "queue depth unknown; leaving deliveries pending");
                self.relay.note_redis(false);
                return 0;
            }
        };
        let n = indexes.len().min(room);
        if n < indexes.len() {
            // The queue is full: PostgreSQL holds the rest until workers drain it.
            self.relay.wake();
        }
        if n == 0 {
            return 0;
        }
        let ids: Vec<DeliveryId> = indexes[..n]
            .iter()
            .map(|&i| deliveries[i].delivery_id.clone())
            .collect();
        let jobs: Vec<WebhookJob> = indexes[..n]
            .iter()
            .filter_map(|&i| {
                let d = &deliveries[i];
                d.job_kind()
                    .map(|k| WebhookJob::new(k, d.delivery_id.clone()))
            })
            .collect();
        if let Err(e) = self.queue.push(jobs).await {
            tracing::debug!(error = %e, "push failed; leaving deliveries pending");
            self.relay.note_redis(false);
            return 0;
        }
        if let Err(e) = deliveries::mark_queued(&self.db, &ids).await {
            // The jobs are in Redis; the relay will push them again after its grace period,
            // which processing tolerates.
            tracing::warn!(error = %e, "could not mark deliveries queued");
        }
        n
    }
}

/// Connection-level failures: retrying row by row would only fail again, slower.
fn is_unavailable(e: &DbErr) -> bool {
    matches!(e, DbErr::ConnectionAcquire(_) | DbErr::Conn(_))
        || e.to_string().contains("connection")
}

/// How long the pipeline may take to commit what is in flight at shutdown.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
