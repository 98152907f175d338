//! Outgoing notifications, the PostgreSQL side: claiming due ones, recording how a send went,
//! dead letters. The body is Slack-compatible JSON (`text`, plus `event` and `alert`), signed with
//! HMAC-SHA256 of the exact body ([`signature`]); the HTTP request itself is the worker's
//! (`worker::analytics`), since this crate knows nothing of HTTP.
//!
//! Retries are the platform's: the attempt is counted before the request is sent, backoff is
//! exponential with jitter, a 4xx other than 408/429 is permanent, and a notification out of
//! attempts becomes a dead letter (queue `sendNotification`) that `worker dlq retry` re-drives.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};
use sha2::Sha256;

use crate::domain::stmt;

pub const QUEUE: &str = "sendNotification";

/// How notifications are sent.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The platform's backoff and attempt budget (`max_attempts`).
    pub retry: crate::runner::RetryPolicy,
    pub timeout: Duration,
    /// How long a claimed notification stays invisible to other workers while it is sent.
    pub lease: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            retry: crate::runner::RetryPolicy::default(),
            timeout: Duration::from_secs(10),
            lease: Duration::from_secs(60),
        }
    }
}

/// The signature header's value for `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length; an empty secret signs with an empty key.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A notification claimed for sending.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: i64,
    pub org_id: i64,
    /// This attempt's number (already counted).
    pub attempts: i32,
    pub url: Option<String>,
    pub secret: Option<String>,
    pub body: String,
}

/// Why a send did not land.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Will never land (a 4xx other than 408/429, no URL): dead-letter at once.
    pub permanent: bool,
    pub error: String,
}

/// What became of a notification after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    Retrying,
    Dead,
}

/// Claims up to `batch` due notifications: the attempt is counted and the row hidden from other
/// workers for the lease, committed before any request leaves.
pub async fn claim_due<C: ConnectionTrait>(
    db: &C,
    policy: &Policy,
    batch: i64,
) -> Result<Vec<Due>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            "UPDATE notifications n SET attempts = n.attempts + 1, \
                next_attempt_at = now() + make_interval(secs => $2) \
             FROM organizations o \
             WHERE n.id IN (SELECT id FROM notifications WHERE status = 'pending' \
                 AND next_attempt_at <= now() ORDER BY next_attempt_at LIMIT $1 \
                 FOR UPDATE SKIP LOCKED) \
               AND o.id = n.org_id \
             RETURNING n.id, n.org_id, n.attempts, o.notification_url, o.notification_secret, \
                n.body::text AS body",
            [batch.into(), policy.lease.as_secs_f64().into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Due {
                id: r.try_get("", "id")?,
                org_id: r.try_get("", "org_id")?,
                attempts: r.try_get("", "attempts")?,
                url: r.try_get("", "notification_url")?,
                secret: r.try_get("", "notification_secret")?,
                body: r.try_get("", "body")?,
            })
        })
        .collect()
}

/// Records how an attempt went: sent, retried later, or dead-lettered.
pub async fn record(
    db: &DatabaseConnection,
    policy: &Policy,
    n: &Due,
    result: Result<(), Failure>,
) -> Result<Outcome, DbErr> {
    match result {
        Ok(()) => {
            db.execute_raw(stmt(
                "UPDATE notifications SET status = 'sent', sent_at = now(), last_error = NULL \
                 WHERE id = $1",
                [n.id.into()],
            ))
            .await?;
            Ok(Outcome::Sent)
        }
        Err(failure) => {
            tracing::warn!(notification_id = n.id, organization_id = n.org_id,
                attempts = n.attempts, error = %failure.error, "notification not delivered");
            let budget = i32::try_from(policy.retry.max_attempts).unwrap_or(i32::MAX);
            if failure.permanent || n.attempts >= budget {
                bury(db, n, failure.permanent, &failure.error).await?;
                return Ok(Outcome::Dead);
            }
            let delay = policy.retry.delay(n.attempts);
            db.execute_raw(stmt(
                "UPDATE notifications SET last_error = $2, \
                    next_attempt_at = now() + make_interval(secs => $3) WHERE id = $1",
                [
                    n.id.into(),
                    failure.error.into(),
                    delay.as_secs_f64().into(),
                ],
            ))
            .await?;
            Ok(Outcome::Retrying)
        }
    }
}

async fn bury(db: &DatabaseConnection, n: &Due, permanent: bool, error: &str) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    txn.execute_raw(stmt(
        "UPDATE notifications SET status = 'dead', last_error = $2 WHERE id = $1",
        [n.id.into(), error.into()],
    ))
    .await?;
    txn.execute_raw(stmt(
        "INSERT INTO dead_letters (queue, notification_id, job, reason, error, attempts, organization_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (notification_id) WHERE retried_at IS NULL DO NOTHING",
        [
            QUEUE.into(),
            n.id.into(),
            serde_json::json!({"v": "1", "kind": QUEUE, "notification_id": n.id}).into(),
            if permanent { "permanent" } else { "exhausted" }.into(),
            error.into(),
            n.attempts.into(),
            n.org_id.into(),
        ],
    ))
    .await?;
    txn.commit().await
}

/// Puts dead notifications back in line with a fresh attempt budget (a dead-letter re-drive).
pub async fn redrive<C: ConnectionTrait>(db: &C, ids: &[i64]) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "UPDATE notifications SET status = 'pending', attempts = 0, next_attempt_at = now() \
         WHERE id = ANY($1::int8[]) AND status = 'dead'",
        [ids.to_vec().into()],
    ))
    .await?;
    Ok(())
}
