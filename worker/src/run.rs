//! `worker run`: the job loop, the relay and the Redis janitor, until shutdown.

use std::time::Duration;

use jobs::{
    Queue, WebhookJob,
    consumer::{self, JobFailure},
    deliveries::{self, Attempt},
    relay::{Relay, RelaySettings},
    runtime::connect,
};
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::config::WorkerConfig;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Database(#[from] connect::DatabaseConnectError),
    #[error("invalid REDIS_URL: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Runs until `shutdown` is cancelled; in-flight jobs finish first.
pub async fn run(config: WorkerConfig, shutdown: CancellationToken) -> Result<(), RunError> {
    let db = connect::database(&config.common).await?;
    let queue = Queue::new(
        connect::redis(&config.common)?,
        &config.common.queue_namespace,
        config.common.queue_max_backlog,
    );
    let relay = Relay::new(db.clone(), queue.clone(), RelaySettings::default());
    if let Err(e) = relay.tick().await {
        tracing::warn!(error = %e, "first relay round failed; retrying in the background");
    }
    let relay_task = tokio::spawn(relay.run(shutdown.child_token()));
    let janitor_task = tokio::spawn(janitor(queue.clone(), shutdown.child_token()));

    let handler_db = db.clone();
    consumer::run(
        queue,
        "worker",
        config.concurrency,
        move |job| handle(handler_db.clone(), job),
        shutdown,
    )
    .await;
    let _ = tokio::join!(relay_task, janitor_task);
    Ok(())
}

/// Counts the attempt in PostgreSQL first, so a run that kills the process still counts.
#[tracing::instrument(skip_all, fields(delivery_id = %job.delivery_id(), kind = job.kind().as_str()))]
async fn handle(db: DatabaseConnection, job: WebhookJob) -> Result<(), JobFailure> {
    match deliveries::record_attempt(&db, job.delivery_id())
        .await
        .map_err(JobFailure::new)?
    {
        Attempt::Run(attempt) => {
            // Turning deliveries into pull requests, reviews, deployments… arrives with the
            // worker pool issue; until then the delivery stays `queued` with its attempts counted.
            tracing::info!(attempt, "job received; no processor for this kind yet");
            Ok(())
        }
        Attempt::Finished => {
            tracing::debug!("delivery already finished; nothing to do");
            Ok(())
        }
        // apalis-redis retries it about a second later.
        Attempt::NotVisible => Err(JobFailure::new("delivery not committed yet")),
    }
}

/// Removes finished jobs' bookkeeping from Redis every few seconds (apalis-redis keeps it
/// forever, ~450 bytes a job).
async fn janitor(queue: Queue, shutdown: CancellationToken) {
    loop {
        match queue.trim_done(1_000).await {
            Ok(1_000) => continue,
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "janitor: redis"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}
