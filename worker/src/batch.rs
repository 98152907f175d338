//! Groups the jobs that apalis hands to concurrent handlers into batches for
//! [`Runner::run_batch`]: one attempt statement and one transaction for many jobs. Under load
//! batches grow while earlier ones are in flight; alone, a job is a batch of one.

use jobs::{
    WebhookJob,
    runner::{Outcome, Runner},
};
use sea_orm::DbErr;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Most jobs per batch.
pub const MAX_BATCH: usize = 64;
/// Batches running at once (each holds one database connection).
pub const MAX_IN_FLIGHT: usize = 4;

type Request = (WebhookJob, oneshot::Sender<Result<Outcome, DbErr>>);

#[derive(Debug, Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Request>,
}

/// The batcher has stopped (only at shutdown).
#[derive(Debug, thiserror::Error)]
#[error("the batcher has stopped")]
pub struct Stopped;

impl Batcher {
    /// Starts the batching loop; it ends when every [`Batcher`] clone is dropped.
    pub fn start(runner: Runner) -> Self {
        let (tx, rx) = mpsc::channel(MAX_BATCH * MAX_IN_FLIGHT * 2);
        tokio::spawn(run(runner, rx));
        Self { tx }
    }

    /// Runs `job` in the next batch and returns its outcome.
    pub async fn run(&self, job: WebhookJob) -> Result<Result<Outcome, DbErr>, Stopped> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((job, reply)).await.map_err(|_| Stopped)?;
        answer.await.map_err(|_| Stopped)
    }
}

async fn run(runner: Runner, mut rx: mpsc::Receiver<Request>) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        // Waiting for a slot is when the next batch fills up.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let runner = runner.clone();
        tokio::spawn(async move {
            let (jobs, replies): (Vec<WebhookJob>, Vec<_>) = batch.into_iter().unzip();
            let outcomes = runner.run_batch(&jobs).await;
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                // The handler may have been cut off by shutdown; nothing to tell then.
                let _ = reply.send(outcome);
            }
            drop(slot);
        });
    }
}
