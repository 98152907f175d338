//! `worker run`: the supervised consumers, the relay, the Redis janitor, the statistics keeper and
//! the metrics port, until shutdown. Start-up is `Worker::build(config)` → `Worker::run(shutdown)`.

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc, time::Duration};

use jobs::{
    JobKind, Queue, WebhookJob,
    consumer::{self, JobFailure},
    relay::{Relay, RelaySettings},
    runner::{Outcome, Runner},
    runtime::connect,
};
use sea_orm::DatabaseConnection;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::{
    batch::Batcher,
    config::WorkerConfig,
    metrics::Metrics,
    sync::{
        SyncContext,
        client::{ClientOptions, Github},
    },
};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Database(#[from] connect::DatabaseConnectError),
    #[error("invalid REDIS_URL: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Github(#[from] crate::sync::client::BuildError),
    #[error("cannot listen on WORKER_METRICS_ADDR {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A worker process, connected and bound, not yet consuming.
#[derive(Debug)]
pub struct Worker {
    config: WorkerConfig,
    db: DatabaseConnection,
    queue: Queue,
    metrics: Arc<Metrics>,
    listener: Option<tokio::net::TcpListener>,
    github: Option<Arc<Github>>,
}

impl Worker {
    pub async fn build(config: WorkerConfig) -> Result<Self, RunError> {
        let db = connect::database(&config.common).await?;
        let queue = Queue::new(
            connect::redis(&config.common)?,
            &config.common.queue_namespace,
            config.common.queue_max_backlog,
        );
        let listener = match config.metrics_addr {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| RunError::Metrics { addr, source })?,
            ),
            None => None,
        };
        let metrics = Arc::new(Metrics::new());
        let github = match &config.common.github.app {
            Some(app) => Some(Arc::new(Github::new(
                &config.common.github.api_url,
                app,
                db.clone(),
                ClientOptions::default(),
                metrics.sync.clone(),
            )?)),
            None => {
                tracing::warn!(
                    "GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY are not set: running on webhooks alone \
                     (no backfill, reconcile or redelivery of failed webhooks)"
                );
                None
            }
        };
        Ok(Self {
            config,
            db,
            queue,
            metrics,
            listener,
            github,
        })
    }

    /// Where `/metrics` is served (the real port when configured with port 0).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Consumes until `shutdown`; then stops fetching, gives in-flight jobs `SHUTDOWN_GRACE`
    /// to finish, and returns. A job cut off runs again later (apalis re-enqueues it from the
    /// dead worker's in-flight set; its attempt is already counted).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), RunError> {
        let Self {
            config,
            db,
            queue,
            metrics,
            listener,
            github,
        } = self;
        let relay = Relay::new(db.clone(), queue.clone(), RelaySettings::default());
        if let Err(e) = relay.tick().await {
            tracing::warn!(error = %e, "first relay round failed; retrying in the background");
        }
        let background = shutdown.child_token();
        let scheduler_name = format!(
            "worker-{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        if let Err(e) = crate::schedule::start(
            db.clone(),
            config.schedules.clone(),
            scheduler_name.clone(),
            background.clone(),
        )
        .await
        {
            tracing::error!(error = %e, "schedules did not start; nightly runs are off in this process");
        }
        let mut tasks = vec![
            tokio::spawn(relay.run(background.clone())),
            tokio::spawn(janitor(queue.clone(), background.clone())),
            tokio::spawn(crate::attendance::run(db.clone(), background.clone())),
            tokio::spawn(jobs::statistics::run(db.clone(), background.clone())),
            tokio::spawn(crate::analytics::run(
                db.clone(),
                config.analytics_settle,
                background.clone(),
            )),
            tokio::spawn(crate::metrics::refresh_loop(
                metrics.clone(),
                db.clone(),
                queue.clone(),
                background.clone(),
            )),
        ];
        if let Some(github) = github {
            let ctx = SyncContext {
                db: db.clone(),
                github,
                cache: jobs::domain::cache::Cache::default(),
                settings: config.sync.clone(),
                worker: scheduler_name,
            };
            tasks.push(tokio::spawn(crate::sync::run(ctx, background.clone())));
        }
        if let Some(listener) = listener {
            let metrics = metrics.clone();
            let stop = background.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = crate::metrics::serve(listener, metrics, stop).await {
                    tracing::error!(error = %e, "metrics server stopped");
                }
            }));
        }
        let handler = Arc::new(Handler {
            batcher: Batcher::start(Runner::new(db, config.retry.clone())),
            limits: config
                .concurrency_by_kind
                .iter()
                .map(|(kind, n)| (*kind, Arc::new(Semaphore::new(*n))))
                .collect(),
            metrics,
        });
        let consumers = consumer::run(
            queue,
            "worker",
            config.concurrency,
            move |job| {
                let handler = handler.clone();
                async move { handler.handle(job).await }
            },
            shutdown.clone(),
        );
        let grace = config.shutdown_grace;
        tokio::select! {
            () = consumers => {}
            () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(grace_ms = grace.as_millis() as u64, "in-flight jobs did not finish in time; they will run again");
            }
        }
        background.cancel();
        for task in tasks {
            let _ = task.await;
        }
        Ok(())
    }
}

/// Convenience for `main`: build, then run until `shutdown`.
pub async fn run(config: WorkerConfig, shutdown: CancellationToken) -> Result<(), RunError> {
    Worker::build(config).await?.run(shutdown).await
}

#[derive(Debug)]
struct Handler {
    batcher: Batcher,
    limits: BTreeMap<JobKind, Arc<Semaphore>>,
    metrics: Arc<Metrics>,
}

impl Handler {
    /// Runs a job under its type's concurrency limit. Returns `Err` (apalis retries it about a
    /// second later) only when PostgreSQL could not record the outcome, or the delivery row is
    /// not visible yet.
    async fn handle(&self, job: WebhookJob) -> Result<(), JobFailure> {
        let kind = job.kind().as_str();
        let _permit = match self.limits.get(&job.kind()) {
            Some(limit) => Some(limit.acquire().await.map_err(JobFailure::new)?),
            None => None,
        };
        let outcome = self
            .batcher
            .run(job.clone())
            .await
            .map_err(JobFailure::new)?;
        match outcome {
            Ok(Outcome::Processed { latency }) => {
                self.metrics.count(kind, "processed");
                if let Some(latency) = latency {
                    self.metrics.observe_latency(kind, latency);
                }
                Ok(())
            }
            Ok(Outcome::Skipped) => {
                self.metrics.count(kind, "skipped");
                Ok(())
            }
            Ok(Outcome::Retrying { .. }) => {
                self.metrics.count(kind, "retried");
                Ok(())
            }
            Ok(Outcome::Dead { .. }) => {
                self.metrics.count(kind, "dead");
                Ok(())
            }
            Ok(Outcome::NotVisible) => {
                self.metrics.count(kind, "not_visible");
                Err(JobFailure::new("delivery not committed yet"))
            }
            Err(e) => {
                self.metrics.count(kind, "error");
                tracing::warn!(delivery_id = %job.delivery_id(), kind, error = %e, "could not record the job's outcome; apalis retries it");
                Err(JobFailure::new(e))
            }
        }
    }
}

/// Removes finished and abandoned jobs' bookkeeping from Redis every few seconds (apalis-redis
/// keeps it forever, ~450 bytes a job).
async fn janitor(queue: Queue, shutdown: CancellationToken) {
    loop {
        if let Err(e) = queue.trim_dead(1_000).await {
            tracing::debug!(error = %e, "janitor: redis");
        }
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
