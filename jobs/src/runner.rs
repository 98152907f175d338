//! Runs jobs with the reliability the platform owns (apalis-redis does not): the attempt is
//! counted in PostgreSQL first, the delivery is applied and marked `processed` in one
//! transaction, and failures are retried with exponential backoff and jitter or dead-lettered.
//! Jobs that arrive together run as a batch (one attempt statement, one transaction).
//!
//! The apalis job is acknowledged in every case the database could record; the retry itself is
//! a new hand-off by the relay once `next_attempt_at` has come.

use std::{collections::BTreeMap, time::Duration};

use chrono::Utc;
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};

use crate::{
    dead_letters::{self, Reason},
    deliveries::{self, Attempt, AttemptInfo, Loaded},
    domain::cache::{Cache, Session},
    ids::DeliveryId,
    job::{JobKind, WebhookJob},
    process::{self, DeliveryInput, ProcessError},
};

/// Retry policy: `base × 2^(attempt−1)`, capped, with "equal jitter" (half fixed, half random),
/// and a maximum number of attempts per job type.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
    pub max_attempts: u32,
    pub max_attempts_by_kind: BTreeMap<JobKind, u32>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(600),
            max_attempts: 8,
            max_attempts_by_kind: BTreeMap::new(),
        }
    }
}

impl RetryPolicy {
    pub fn max_attempts(&self, kind: JobKind) -> i32 {
        let n = self
            .max_attempts_by_kind
            .get(&kind)
            .copied()
            .unwrap_or(self.max_attempts);
        i32::try_from(n).unwrap_or(i32::MAX)
    }

    /// The wait before the attempt after `attempt` (1-based).
    pub fn delay(&self, attempt: i32) -> Duration {
        let exponent = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        let full = self
            .base
            .saturating_mul(2u32.saturating_pow(exponent))
            .min(self.cap);
        let half = full / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// What happened to a job.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Applied and marked processed; `latency` is from hand-off to Redis to now.
    Processed { latency: Option<Duration> },
    /// Already processed, ignored or dead (a duplicate job).
    Skipped,
    /// Failed; another attempt is scheduled.
    Retrying { attempt: i32, after: Duration },
    /// Given up on: in the dead-letter queue.
    Dead { reason: Reason },
    /// The delivery row is not visible yet (its transaction has not committed).
    NotVisible,
}

/// Runs jobs, alone or in batches. Cheap to clone; one per process (it owns the writers' cache).
#[derive(Debug, Clone)]
pub struct Runner {
    db: DatabaseConnection,
    policy: RetryPolicy,
    cache: Cache,
}

/// A job whose attempt is counted, waiting to be applied.
struct Counted<'a> {
    index: usize,
    job: &'a WebhookJob,
    info: AttemptInfo,
    delivery: Loaded,
}

impl Runner {
    pub fn new(db: DatabaseConnection, policy: RetryPolicy) -> Self {
        Self {
            db,
            policy,
            cache: Cache::default(),
        }
    }

    /// Runs jobs (one or many), one outcome per job in the same order. An `Err` means
    /// PostgreSQL could not even record that job's outcome: the caller lets apalis retry it.
    /// The attempts are counted in one statement, the deliveries applied and marked processed
    /// in one transaction; if that transaction fails, each job runs again alone, so one bad
    /// delivery only fails itself.
    #[tracing::instrument(skip_all, fields(jobs = jobs.len()))]
    pub async fn run_batch(&self, jobs: &[WebhookJob]) -> Vec<Result<Outcome, DbErr>> {
        let mut outcomes: Vec<Option<Result<Outcome, DbErr>>> = vec![None; jobs.len()];
        let ids: Vec<&DeliveryId> = jobs.iter().map(WebhookJob::delivery_id).collect();
        let mut attempts = match deliveries::record_attempts(&self.db, &ids).await {
            Ok(attempts) => attempts,
            Err(e) => return jobs.iter().map(|_| Err(e.clone())).collect(),
        };
        let mut counted = Vec::with_capacity(jobs.len());
        for (index, job) in jobs.iter().enumerate() {
            // A delivery twice in one batch was counted once; its second job is a duplicate.
            match attempts.remove(job.delivery_id().as_str()) {
                Some(Attempt::Run(info, delivery)) => counted.push(Counted {
                    index,
                    job,
                    info,
                    delivery,
                }),
                Some(Attempt::NotVisible) => outcomes[index] = Some(Ok(Outcome::NotVisible)),
                Some(Attempt::Finished) | None => outcomes[index] = Some(Ok(Outcome::Skipped)),
            }
        }
        let mut runnable = Vec::with_capacity(counted.len());
        for c in counted {
            if c.info.attempt > self.policy.max_attempts(c.job.kind()) {
                // Only runs that never finished leave the count past the maximum: every
                // recorded failure at the maximum dead-letters the job.
                let attempts = c.info.attempt - 1;
                let error = format!(
                    "gave up after {attempts} attempts: earlier runs never finished (worker killed or disconnected)"
                );
                tracing::error!(delivery_id = %c.job.delivery_id(), attempts, "job keeps interrupting its worker; dead-lettered");
                outcomes[c.index] = Some(
                    dead_letters::bury(
                        &self.db,
                        c.info.row_id,
                        c.job,
                        Reason::Interrupted,
                        &error,
                        attempts,
                    )
                    .await
                    .map(|()| Outcome::Dead {
                        reason: Reason::Interrupted,
                    }),
                );
            } else {
                runnable.push(c);
            }
        }
        if !runnable.is_empty() {
            match self.apply_together(&runnable).await {
                Ok(results) => {
                    for (c, result) in runnable.iter().zip(results) {
                        outcomes[c.index] = Some(self.settle(c, result).await);
                    }
                }
                Err(e) => {
                    self.cache.clear();
                    if runnable.len() > 1 {
                        tracing::debug!(error = %e, "batch failed; running its jobs one by one");
                    }
                    for c in &runnable {
                        let result = self.apply_alone(c).await;
                        if result.is_err() {
                            self.cache.clear();
                        }
                        outcomes[c.index] = Some(self.settle(c, result).await);
                    }
                }
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Ok(Outcome::Skipped)))
            .collect()
    }

    /// Applies every runnable delivery in one transaction. `Ok` holds each delivery's own
    /// result (applied, already finished, or a permanent error nothing was written for); `Err`
    /// means the transaction failed as a whole.
    async fn apply_together(
        &self,
        runnable: &[Counted<'_>],
    ) -> Result<Vec<Result<bool, ProcessError>>, DbErr> {
        // Parsed before the transaction: a payload that does not fit is known without one.
        let mut results: Vec<Result<bool, ProcessError>> = Vec::with_capacity(runnable.len());
        let mut parsed = Vec::new();
        for (i, c) in runnable.iter().enumerate() {
            match process::parse(DeliveryInput {
                event: &c.delivery.event,
                payload: &c.delivery.payload,
                received_at: c.delivery.received_at,
            }) {
                Ok(p) => {
                    results.push(Ok(true));
                    parsed.push((i, p));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        if parsed.is_empty() {
            return Ok(results);
        }
        let txn = self.db.begin().await?;
        let row_ids: Vec<i64> = parsed
            .iter()
            .map(|(i, _)| runnable[*i].info.row_id)
            .collect();
        let claimed = deliveries::claim_for_processing(&txn, &row_ids).await?;
        // Finished meanwhile by another job of the same delivery: nothing to write.
        parsed.retain(|(i, _)| {
            let mine = claimed.contains(&runnable[*i].info.row_id);
            if !mine {
                results[*i] = Ok(false);
            }
            mine
        });
        // One write order for every batch (by entity), so concurrent batches lock rows alike.
        parsed.sort_by_key(|(_, p)| process::lock_order(p));
        let mut session = Session::new(&txn, self.cache.clone());
        let all: Vec<&process::Parsed> = parsed.iter().map(|(_, p)| p).collect();
        process::write_all(&mut session, &all).await?;
        let staged = session.finish();
        txn.commit().await?;
        self.cache.absorb(staged);
        Ok(results)
    }

    /// Applies one delivery in a transaction of its own (a batch of one). `Ok(false)`: another
    /// job of the same delivery finished it first.
    async fn apply_alone(&self, c: &Counted<'_>) -> Result<bool, ProcessError> {
        self.apply_together(std::slice::from_ref(c))
            .await?
            .pop()
            .unwrap_or(Ok(false))
    }

    /// Records what a run of `c` came to: processed, or a retry, or a dead letter.
    async fn settle(
        &self,
        c: &Counted<'_>,
        result: Result<bool, ProcessError>,
    ) -> Result<Outcome, DbErr> {
        let (job, info) = (c.job, c.info);
        match result {
            Ok(true) => Ok(Outcome::Processed {
                latency: info.queued_at.and_then(|t| (Utc::now() - t).to_std().ok()),
            }),
            Ok(false) => Ok(Outcome::Skipped),
            Err(ProcessError::Permanent(error)) => {
                tracing::error!(delivery_id = %job.delivery_id(), attempt = info.attempt, error = %error, "permanent error; dead-lettered");
                dead_letters::bury(
                    &self.db,
                    info.row_id,
                    job,
                    Reason::Permanent,
                    &error,
                    info.attempt,
                )
                .await?;
                Ok(Outcome::Dead {
                    reason: Reason::Permanent,
                })
            }
            Err(ProcessError::Database(e)) => {
                let error = e.to_string();
                if info.attempt >= self.policy.max_attempts(job.kind()) {
                    tracing::error!(delivery_id = %job.delivery_id(), attempt = info.attempt, error = %error, "out of attempts; dead-lettered");
                    dead_letters::bury(
                        &self.db,
                        info.row_id,
                        job,
                        Reason::Exhausted,
                        &error,
                        info.attempt,
                    )
                    .await?;
                    return Ok(Outcome::Dead {
                        reason: Reason::Exhausted,
                    });
                }
                let after = self.policy.delay(info.attempt);
                tracing::warn!(delivery_id = %job.delivery_id(), attempt = info.attempt, retry_in_ms = after.as_millis() as u64, error = %error, "job failed; retrying later");
                deliveries::schedule_retry(&self.db, info.row_id, after, &error).await?;
                Ok(Outcome::Retrying {
                    attempt: info.attempt,
                    after,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_stops_at_the_cap() {
        let policy = RetryPolicy::default();
        for attempt in 1..=12 {
            let full = Duration::from_secs(2 * 2u64.pow(attempt as u32 - 1)).min(policy.cap);
            for _ in 0..50 {
                let d = policy.delay(attempt);
                assert!(
                    d >= full / 2 && d <= full,
                    "attempt {attempt}: {d:?} vs {full:?}"
                );
            }
        }
    }

    #[test]
    fn max_attempts_can_differ_per_job_type() {
        let mut policy = RetryPolicy::default();
        policy
            .max_attempts_by_kind
            .insert(JobKind::ProcessInstallation, 20);
        assert_eq!(policy.max_attempts(JobKind::ProcessPush), 8);
        assert_eq!(policy.max_attempts(JobKind::ProcessInstallation), 20);
    }
}
