//! A supervised apalis worker: restarted with backoff and a fresh name whenever it stops on an
//! error (a Redis restart ends an apalis-redis worker; a reused name is refused for a while).

use std::{future::Future, time::Duration};

use apalis::prelude::*;
use tokio_util::sync::CancellationToken;

use crate::{job::WebhookJob, queue::Queue};

/// A handler's failure, as apalis sees it (a concrete type: apalis' boxed errors do not
/// satisfy `tokio::spawn`'s bounds when the worker runs in a spawned task).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JobFailure(pub String);

impl JobFailure {
    pub fn new(cause: impl std::fmt::Display) -> Self {
        Self(cause.to_string())
    }
}

/// A name unique to this process and run: `{prefix}-{pid}-{random}`.
pub fn unique_worker_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Runs `handler` on every job of `queue` with up to `concurrency` jobs at once (polled
/// concurrently on one task: jobs are I/O-bound), until `shutdown`. Never returns early: a
/// failed worker is rebuilt with a fresh name after a jittered backoff.
pub async fn run<H, Fut>(
    queue: Queue,
    name_prefix: &str,
    concurrency: usize,
    handler: H,
    shutdown: CancellationToken,
) where
    H: Fn(WebhookJob) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobFailure>> + Send + 'static,
{
    let mut backoff = Duration::from_millis(200);
    while !shutdown.is_cancelled() {
        let name = unique_worker_name(name_prefix);
        let handler = handler.clone();
        let backend = queue.storage().poll_with_interval(Queue::POLL_INTERVAL);
        let worker = WorkerBuilder::new(name.clone())
            .backend(backend)
            .concurrency(concurrency.max(1))
            .build(move |job: WebhookJob| {
                let handler = handler.clone();
                async move { handler(job).await }
            });
        tracing::info!(worker = %name, queue = %queue.name(), "worker started");
        let stop = shutdown.clone();
        let started = tokio::time::Instant::now();
        let result = worker
            .run_until(async move {
                stop.cancelled().await;
                Ok::<(), std::io::Error>(())
            })
            .await;
        match result {
            Ok(()) if shutdown.is_cancelled() => break,
            Ok(()) => tracing::warn!(worker = %name, "worker stopped by itself; restarting"),
            Err(e) => tracing::warn!(worker = %name, error = %e, "worker failed; restarting"),
        }
        if started.elapsed() > Duration::from_secs(30) {
            backoff = Duration::from_millis(200);
        }
        let jitter = Duration::from_millis(rand::random_range(0..=backoff.as_millis() as u64 / 2));
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(backoff + jitter) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
    tracing::info!(queue = %queue.name(), "workers stopped");
}
