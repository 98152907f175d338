//! The dead-letter queue, kept in PostgreSQL: jobs given up on, per job type (`queue`), until an
//! operator re-drives (`retry`) or purges them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};
use serde::Serialize;

use crate::{domain::stmt, job::WebhookJob, people::OrgId};

/// Whose dead letters: all of them (the operator's command line), or one organization's (its
/// admins, over the API). Letters whose installation is unknown belong to the platform only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Platform,
    Organization(OrgId),
}

impl Scope {
    fn org(self) -> Option<i64> {
        match self {
            Scope::Platform => None,
            Scope::Organization(org) => Some(org.0),
        }
    }
}

/// Why a job was given up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The payload can never be applied (malformed, unknown shape).
    Permanent,
    /// Every attempt failed.
    Exhausted,
    /// Attempts were used up by runs that never finished (a crash loop).
    Interrupted,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Permanent => "permanent",
            Self::Exhausted => "exhausted",
            Self::Interrupted => "interrupted",
        }
    }
}

/// Moves a delivery's job to the dead-letter queue and marks the delivery `dead`, atomically.
/// A delivery already processed is left alone.
pub async fn bury(
    db: &DatabaseConnection,
    row_id: i64,
    job: &WebhookJob,
    reason: Reason,
    error: &str,
    attempts: i32,
) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    let marked = txn
        .execute_raw(stmt(
            "UPDATE webhook_deliveries SET status = 'dead', last_error = $2, next_attempt_at = NULL, \
                updated_at = now() \
             WHERE id = $1 AND status IN ('pending', 'queued', 'failed')",
            [row_id.into(), error.into()],
        ))
        .await?
        .rows_affected();
    if marked > 0 {
        let job_json = serde_json::to_value(job).map_err(|e| DbErr::Custom(e.to_string()))?;
        txn.execute_raw(stmt(
            "INSERT INTO dead_letters (queue, delivery_id, job, reason, error, attempts, organization_id) \
             VALUES ($1, $2, $3, $4, $5, $6, (SELECT o.id FROM organizations o \
                 JOIN webhook_deliveries d ON d.installation_id = o.installation_id \
                 WHERE d.id = $7 ORDER BY o.id LIMIT 1)) \
             ON CONFLICT (delivery_id) WHERE retried_at IS NULL DO NOTHING",
            [
                job.kind().as_str().into(),
                job.delivery_id().as_str().into(),
                job_json.into(),
                reason.as_str().into(),
                error.into(),
                attempts.into(),
                row_id.into(),
            ],
        ))
        .await?;
    }
    txn.commit().await
}

/// One open dead letter, as listed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetter {
    pub id: i64,
    pub queue: String,
    pub delivery_id: Option<String>,
    pub reason: String,
    pub error: String,
    pub attempts: i32,
    pub dead_at: DateTime<Utc>,
}

/// A dead letter with what an operator needs to fix it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetterDetail {
    #[serde(flatten)]
    pub letter: DeadLetter,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub job: serde_json::Value,
    pub retried_at: Option<DateTime<Utc>>,
    pub event: Option<String>,
    pub action: Option<String>,
    pub installation_id: Option<i64>,
    pub repository_id: Option<i64>,
    pub received_at: Option<DateTime<Utc>>,
    pub delivery_status: Option<String>,
}

const COLUMNS: &str = "l.id, l.queue, l.delivery_id, l.reason, l.error, l.attempts, l.dead_at";

fn letter(row: &sea_orm::QueryResult) -> Result<DeadLetter, DbErr> {
    Ok(DeadLetter {
        id: row.try_get("", "id")?,
        queue: row.try_get("", "queue")?,
        delivery_id: row.try_get("", "delivery_id")?,
        reason: row.try_get("", "reason")?,
        error: row.try_get("", "error")?,
        attempts: row.try_get("", "attempts")?,
        dead_at: row.try_get("", "dead_at")?,
    })
}

/// Open dead letters (not yet re-driven), newest first, optionally of one queue.
pub async fn list<C: ConnectionTrait>(
    db: &C,
    scope: Scope,
    queue: Option<&str>,
    limit: u64,
) -> Result<Vec<DeadLetter>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            &format!(
                "SELECT {COLUMNS} FROM dead_letters l \
                 WHERE l.retried_at IS NULL AND ($1::text IS NULL OR l.queue = $1) \
                   AND ($3::bigint IS NULL OR l.organization_id = $3) \
                 ORDER BY l.dead_at DESC, l.id DESC LIMIT $2"
            ),
            [
                queue.map(str::to_owned).into(),
                i64::try_from(limit).unwrap_or(i64::MAX).into(),
                scope.org().into(),
            ],
        ))
        .await?;
    rows.iter().map(letter).collect()
}

/// Open dead letters per queue.
pub async fn depth_by_queue<C: ConnectionTrait>(db: &C) -> Result<Vec<(String, i64)>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            "SELECT queue, count(*) AS n FROM dead_letters WHERE retried_at IS NULL GROUP BY queue",
            [],
        ))
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("", "queue")?, r.try_get("", "n")?)))
        .collect()
}

/// One dead letter (open or re-driven) with its delivery's metadata — never its payload.
pub async fn show<C: ConnectionTrait>(
    db: &C,
    scope: Scope,
    id: i64,
) -> Result<Option<DeadLetterDetail>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            &format!(
                "SELECT {COLUMNS}, l.job, l.retried_at, d.event, d.action, d.installation_id, \
                    d.repository_id, d.received_at, d.status AS delivery_status \
                 FROM dead_letters l LEFT JOIN webhook_deliveries d ON d.delivery_id = l.delivery_id \
                 WHERE l.id = $1 AND ($2::bigint IS NULL OR l.organization_id = $2)"
            ),
            [id.into(), scope.org().into()],
        ))
        .await?;
    row.map(|row| {
        Ok(DeadLetterDetail {
            letter: letter(&row)?,
            job: row.try_get("", "job")?,
            retried_at: row.try_get("", "retried_at")?,
            event: row.try_get("", "event")?,
            action: row.try_get("", "action")?,
            installation_id: row.try_get("", "installation_id")?,
            repository_id: row.try_get("", "repository_id")?,
            received_at: row.try_get("", "received_at")?,
            delivery_status: row.try_get("", "delivery_status")?,
        })
    })
    .transpose()
}

/// Which open dead letters to re-drive.
#[derive(Debug, Clone)]
pub enum Selection {
    One(i64),
    All { queue: Option<String> },
}

/// Re-drives dead letters: each closes (`retried_at`), and its delivery goes back to `pending`
/// with a fresh attempt budget; the relay hands it to Redis within a second. Returns the ids
/// re-driven (an id that is not open is not in the list). Run it in a transaction.
pub async fn retry<C: ConnectionTrait>(
    txn: &C,
    scope: Scope,
    selection: &Selection,
) -> Result<Vec<i64>, DbErr> {
    let (filter, values): (&str, Vec<sea_orm::Value>) = match selection {
        Selection::One(id) => ("id = $1", vec![(*id).into(), scope.org().into()]),
        Selection::All { queue } => (
            "($1::text IS NULL OR queue = $1)",
            vec![queue.clone().into(), scope.org().into()],
        ),
    };
    let rows = txn
        .query_all_raw(stmt(
            &format!(
                "UPDATE dead_letters SET retried_at = now() \
                 WHERE retried_at IS NULL AND {filter} \
                   AND ($2::bigint IS NULL OR organization_id = $2) \
                 RETURNING id, delivery_id, notification_id, sync_job_id"
            ),
            values,
        ))
        .await?;
    let mut ids = Vec::with_capacity(rows.len());
    let mut deliveries = Vec::with_capacity(rows.len());
    let mut notifications = Vec::new();
    let mut sync_jobs = Vec::new();
    for row in &rows {
        if let Some(j) = row.try_get::<Option<i64>>("", "sync_job_id")? {
            sync_jobs.push(j);
        }
        ids.push(row.try_get::<i64>("", "id")?);
        if let Some(d) = row.try_get::<Option<String>>("", "delivery_id")? {
            deliveries.push(d);
        }
        if let Some(n) = row.try_get::<Option<i64>>("", "notification_id")? {
            notifications.push(n);
        }
    }
    if !notifications.is_empty() {
        crate::analytics::notify::redrive(txn, &notifications).await?;
    }
    if !sync_jobs.is_empty() {
        crate::sync::redrive(txn, &sync_jobs).await?;
    }
    if !deliveries.is_empty() {
        txn.execute_raw(stmt(
            "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = NULL, \
                queued_at = NULL, updated_at = now() \
             WHERE delivery_id = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb))) AND status = 'dead'",
            [serde_json::Value::from(deliveries).into()],
        ))
        .await?;
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Deletes dead letters older than `age` (open or re-driven). The deliveries stay, `dead`.
pub async fn purge<C: ConnectionTrait>(db: &C, scope: Scope, age: Duration) -> Result<u64, DbErr> {
    Ok(db
        .execute_raw(stmt(
            "DELETE FROM dead_letters WHERE dead_at < now() - make_interval(secs => $1) \
               AND ($2::bigint IS NULL OR organization_id = $2)",
            [age.as_secs_f64().into(), scope.org().into()],
        ))
        .await?
        .rows_affected())
}
