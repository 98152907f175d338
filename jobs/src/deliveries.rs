//! Every SQL statement on `webhook_deliveries`, in one place.
//!
//! The ingest path writes many deliveries per statement (group commit) and never parses the
//! payload into a tree: the JSON text goes to PostgreSQL as-is and becomes `jsonb` there.

use std::time::Duration;

use entities::DeliveryStatus;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, TransactionTrait, Value,
};

use crate::{
    ids::{DeliveryId, EventName},
    job::{JobKind, WebhookJob},
};

/// A verified delivery, ready to be stored.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub delivery_id: DeliveryId,
    pub event: EventName,
    pub action: Option<String>,
    pub installation_id: Option<i64>,
    pub repository_id: Option<i64>,
    pub hook_id: Option<i64>,
    /// The JSON document as received (already checked to be a JSON object).
    pub payload_json: String,
}

impl NewDelivery {
    /// The job that will process it, or `None` when the platform only keeps it.
    pub fn job_kind(&self) -> Option<JobKind> {
        JobKind::for_event(&self.event)
    }

    /// `pending` when a job must be handed to Redis, `ignored` otherwise.
    pub fn initial_status(&self) -> DeliveryStatus {
        match self.job_kind() {
            Some(_) => DeliveryStatus::Pending,
            None => DeliveryStatus::Ignored,
        }
    }
}

const INSERT_COLUMNS: usize = 8;

/// Stores deliveries in one statement. Returns, for each input, whether *this* call stored it
/// (`false`: the delivery id was already there, or earlier in the same slice).
pub async fn insert_many<C: ConnectionTrait>(
    db: &C,
    deliveries: &[NewDelivery],
) -> Result<Vec<bool>, DbErr> {
    if deliveries.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = String::with_capacity(200 + deliveries.len() * 64);
    sql.push_str(
        "INSERT INTO webhook_deliveries \
         (delivery_id, event, action, installation_id, repository_id, hook_id, payload, status) VALUES ",
    );
    let mut values: Vec<Value> = Vec::with_capacity(deliveries.len() * INSERT_COLUMNS);
    for (i, d) in deliveries.iter().enumerate() {
        let p = i * INSERT_COLUMNS;
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&format!(
            "(${},${},${},${},${},${},${}::jsonb,${})",
            p + 1,
            p + 2,
            p + 3,
            p + 4,
            p + 5,
            p + 6,
            p + 7,
            p + 8
        ));
        values.push(d.delivery_id.as_str().into());
        values.push(d.event.as_str().into());
        values.push(d.action.clone().into());
        values.push(d.installation_id.into());
        values.push(d.repository_id.into());
        values.push(d.hook_id.into());
        values.push(d.payload_json.clone().into());
        values.push(d.initial_status().as_str().into());
    }
    sql.push_str(" ON CONFLICT (delivery_id) DO NOTHING RETURNING delivery_id");
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            values,
        ))
        .await?;
    let mut inserted = std::collections::HashSet::with_capacity(rows.len());
    for row in rows {
        inserted.insert(row.try_get::<String>("", "delivery_id")?);
    }
    // A delivery id twice in one statement is stored once; the first occurrence owns it.
    Ok(deliveries
        .iter()
        .map(|d| inserted.remove(d.delivery_id.as_str()))
        .collect())
}

fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Records that jobs for these deliveries are in Redis.
///
/// Committed with `synchronous_commit = off`: losing this mark in a crash only means the relay
/// pushes the job again, which processing tolerates; the delivery itself was committed durably.
pub async fn mark_queued(db: &DatabaseConnection, ids: &[DeliveryId]) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    let txn = db.begin().await?;
    txn.execute_unprepared("SET LOCAL synchronous_commit = off")
        .await?;
    let sql = format!(
        "UPDATE webhook_deliveries SET status = 'queued', queued_at = now(), updated_at = now() \
         WHERE status = 'pending' AND delivery_id IN ({})",
        placeholders(1, ids.len())
    );
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        ids.iter().map(|id| Value::from(id.as_str())),
    ))
    .await?;
    txn.commit().await
}

/// Takes up to `limit` pending deliveries older than `grace`, oldest first, locking them for
/// the caller's transaction so concurrent relays skip them. The grace leaves fresh rows to the
/// API's own fast hand-off.
pub async fn lock_pending<C: ConnectionTrait>(
    txn: &C,
    limit: u64,
    grace: Duration,
) -> Result<Vec<(i64, WebhookJob)>, DbErr> {
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT id, delivery_id, event FROM webhook_deliveries \
             WHERE status = 'pending' AND received_at < now() - make_interval(secs => $1) \
             ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
            [
                Value::from(grace.as_secs_f64()),
                Value::from(i64::try_from(limit).unwrap_or(i64::MAX)),
            ],
        ))
        .await?;
    let mut jobs = Vec::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.try_get("", "id")?;
        let delivery_id: String = row.try_get("", "delivery_id")?;
        let event: String = row.try_get("", "event")?;
        // Rows were validated on the way in; one that no longer parses is left for an operator.
        let (Ok(delivery_id), Ok(event)) =
            (DeliveryId::parse(&delivery_id), EventName::parse(&event))
        else {
            tracing::error!(
                row_id = id,
                "pending delivery with an invalid id or event; skipped"
            );
            continue;
        };
        match JobKind::for_event(&event) {
            Some(kind) => jobs.push((id, WebhookJob::new(kind, delivery_id))),
            None => {
                tracing::error!(row_id = id, %event, "pending delivery of an unprocessed event; skipped")
            }
        }
    }
    Ok(jobs)
}

/// Marks rows locked by [`lock_pending`] as queued, in the caller's transaction.
pub async fn mark_rows_queued<C: ConnectionTrait>(txn: &C, row_ids: &[i64]) -> Result<(), DbErr> {
    if row_ids.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE webhook_deliveries SET status = 'queued', queued_at = now(), updated_at = now() \
         WHERE id IN ({})",
        placeholders(1, row_ids.len())
    );
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        row_ids.iter().map(|id| Value::from(*id)),
    ))
    .await?;
    Ok(())
}

/// Puts every `queued` delivery back to `pending`: called when Redis lost its data, so that
/// the relay hands each of them over again.
pub async fn requeue_queued<C: ConnectionTrait>(db: &C) -> Result<u64, DbErr> {
    let result = db
        .execute_unprepared(
            "UPDATE webhook_deliveries SET status = 'pending', updated_at = now() WHERE status = 'queued'",
        )
        .await?;
    Ok(result.rows_affected())
}

/// Deliveries waiting to be handed to Redis.
pub async fn count_pending(db: &DatabaseConnection) -> Result<u64, DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'pending'",
        ))
        .await?;
    let n: i64 = match row {
        Some(row) => row.try_get("", "n")?,
        None => 0,
    };
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Counts an attempt before a worker runs a job, so a run that crashes its process still counts.
/// Returns the attempt number, or `None` when there is nothing to run: the delivery does not
/// exist, or is already processed, ignored or dead.
pub async fn record_attempt(
    db: &DatabaseConnection,
    delivery_id: &DeliveryId,
) -> Result<Option<i32>, DbErr> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE webhook_deliveries \
             SET attempts = attempts + 1, last_attempt_at = now(), updated_at = now() \
             WHERE delivery_id = $1 AND status IN ('pending', 'queued', 'failed') \
             RETURNING attempts",
            [Value::from(delivery_id.as_str())],
        ))
        .await?;
    row.map(|row| row.try_get::<i32>("", "attempts"))
        .transpose()
}
