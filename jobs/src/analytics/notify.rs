//! Outgoing notifications: a Slack-compatible JSON body (`text`, plus `event` and `alert`),
//! POSTed to the organization's webhook URL and signed with HMAC-SHA256 of the exact body in
//! `X-DevPulse-Signature-256: sha256=<hex>`. Each has an id (`X-DevPulse-Delivery`) so the
//! receiver can drop a repeat: delivery is at least once.
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

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendReport {
    pub sent: u64,
    pub failed: u64,
    pub dead: u64,
}

struct Claimed {
    id: i64,
    org_id: i64,
    attempts: i32,
    url: Option<String>,
    secret: Option<String>,
    body: String,
}

/// Sends up to `batch` due notifications. Claiming counts the attempt and hides the row for
/// the lease, in its own transaction, before any request leaves.
pub async fn send_due(
    db: &DatabaseConnection,
    http: &reqwest::Client,
    policy: &Policy,
    batch: i64,
) -> Result<SendReport, DbErr> {
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
    let mut claimed = Vec::with_capacity(rows.len());
    for r in &rows {
        claimed.push(Claimed {
            id: r.try_get("", "id")?,
            org_id: r.try_get("", "org_id")?,
            attempts: r.try_get("", "attempts")?,
            url: r.try_get("", "notification_url")?,
            secret: r.try_get("", "notification_secret")?,
            body: r.try_get("", "body")?,
        });
    }
    let mut report = SendReport::default();
    for n in claimed {
        let outcome = match &n.url {
            None => Err((true, "the organization has no notification URL".to_owned())),
            Some(url) => post(http, policy, url, n.secret.as_deref(), n.id, &n.body).await,
        };
        match outcome {
            Ok(()) => {
                db.execute_raw(stmt(
                    "UPDATE notifications SET status = 'sent', sent_at = now(), last_error = NULL \
                     WHERE id = $1",
                    [n.id.into()],
                ))
                .await?;
                report.sent += 1;
            }
            Err((permanent, error)) => {
                tracing::warn!(notification_id = n.id, organization_id = n.org_id,
                    attempts = n.attempts, %error, "notification not delivered");
                let budget = i32::try_from(policy.retry.max_attempts).unwrap_or(i32::MAX);
                if permanent || n.attempts >= budget {
                    bury(db, &n, permanent, &error).await?;
                    report.dead += 1;
                } else {
                    let delay = policy.retry.delay(n.attempts);
                    db.execute_raw(stmt(
                        "UPDATE notifications SET last_error = $2, \
                            next_attempt_at = now() + make_interval(secs => $3) WHERE id = $1",
                        [n.id.into(), error.into(), delay.as_secs_f64().into()],
                    ))
                    .await?;
                    report.failed += 1;
                }
            }
        }
    }
    Ok(report)
}

/// One POST; `Err((permanent, why))` when it did not land.
async fn post(
    http: &reqwest::Client,
    policy: &Policy,
    url: &str,
    secret: Option<&str>,
    id: i64,
    body: &str,
) -> Result<(), (bool, String)> {
    let response = http
        .post(url)
        .timeout(policy.timeout)
        .header("content-type", "application/json")
        .header("user-agent", "DevPulse-Notifications")
        .header("x-devpulse-event", "health_alert")
        .header("x-devpulse-delivery", id.to_string())
        .header(
            "x-devpulse-signature-256",
            signature(secret.unwrap_or("").as_bytes(), body.as_bytes()),
        )
        .body(body.to_owned())
        .send()
        .await
        .map_err(|e| (false, format!("request failed: {e}")))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let permanent = status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429;
    Err((permanent, format!("the receiver answered {status}")))
}

async fn bury(
    db: &DatabaseConnection,
    n: &Claimed,
    permanent: bool,
    error: &str,
) -> Result<(), DbErr> {
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
