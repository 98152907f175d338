//! Runs one job with the reliability the platform owns (apalis-redis does not): the attempt is
//! counted in PostgreSQL first, the delivery is applied and marked `processed` in one
//! transaction, and failures are retried with exponential backoff and jitter or dead-lettered.
//!
//! The apalis job is acknowledged in every case the database could record; the retry itself is
//! a new hand-off by the relay once `next_attempt_at` has come.

use std::{collections::BTreeMap, time::Duration};

use chrono::Utc;
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};

use crate::{
    dead_letters::{self, Reason},
    deliveries::{self, Attempt},
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

/// Runs `job`. An `Err` means PostgreSQL could not even record the outcome: the caller should
/// let apalis retry it.
#[tracing::instrument(skip_all, fields(delivery_id = %job.delivery_id(), kind = job.kind().as_str()))]
pub async fn run(
    db: &DatabaseConnection,
    policy: &RetryPolicy,
    job: &WebhookJob,
) -> Result<Outcome, DbErr> {
    let info = match deliveries::record_attempt(db, job.delivery_id()).await? {
        Attempt::Run(info) => info,
        Attempt::Finished => return Ok(Outcome::Skipped),
        Attempt::NotVisible => return Ok(Outcome::NotVisible),
    };
    let max = policy.max_attempts(job.kind());
    if info.attempt > max {
        // Only runs that never finished leave the count past the maximum: every recorded
        // failure at the maximum dead-letters the job.
        let error = format!(
            "gave up after {} attempts: earlier runs never finished (worker killed or disconnected)",
            info.attempt - 1
        );
        tracing::error!(
            attempt = info.attempt,
            "job keeps interrupting its worker; dead-lettered"
        );
        dead_letters::bury(
            db,
            info.row_id,
            job,
            Reason::Interrupted,
            &error,
            info.attempt - 1,
        )
        .await?;
        return Ok(Outcome::Dead {
            reason: Reason::Interrupted,
        });
    }
    match apply(db, info.row_id).await {
        Ok(true) => Ok(Outcome::Processed {
            latency: info.queued_at.and_then(|t| (Utc::now() - t).to_std().ok()),
        }),
        Ok(false) => Ok(Outcome::Skipped),
        Err(ProcessError::Permanent(error)) => {
            tracing::error!(attempt = info.attempt, error = %error, "permanent error; dead-lettered");
            dead_letters::bury(
                db,
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
            if info.attempt >= max {
                tracing::error!(attempt = info.attempt, error = %error, "out of attempts; dead-lettered");
                dead_letters::bury(
                    db,
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
            let after = policy.delay(info.attempt);
            tracing::warn!(attempt = info.attempt, retry_in_ms = after.as_millis() as u64, error = %error, "job failed; retrying later");
            deliveries::schedule_retry(db, info.row_id, after, &error).await?;
            Ok(Outcome::Retrying {
                attempt: info.attempt,
                after,
            })
        }
    }
}

/// Applies the delivery and marks it processed in one transaction. `Ok(false)`: another job of
/// the same delivery finished it first.
async fn apply(db: &DatabaseConnection, row_id: i64) -> Result<bool, ProcessError> {
    let txn = db.begin().await?;
    let Some(delivery) = deliveries::lock_for_processing(&txn, row_id).await? else {
        return Ok(false);
    };
    if !matches!(delivery.status.as_str(), "pending" | "queued" | "failed") {
        txn.commit().await?;
        return Ok(false);
    }
    process::apply(
        &txn,
        DeliveryInput {
            event: &delivery.event,
            payload: &delivery.payload,
            received_at: delivery.received_at,
        },
    )
    .await?;
    deliveries::mark_processed(&txn, row_id).await?;
    txn.commit().await?;
    Ok(true)
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
