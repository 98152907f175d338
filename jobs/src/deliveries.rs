//! Every SQL statement on `webhook_deliveries`, in one place.
//!
//! The ingest path writes many deliveries per statement (group commit) and never parses the
//! payload into a tree: the JSON text goes to PostgreSQL as-is and becomes `jsonb` there; the
//! projection the API made of it in one streaming pass (`github::projection::project`) is
//! stored beside it as text.

use std::time::Duration;

use entities::DeliveryStatus;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, Value};

use crate::{
    github::projection,
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
    /// What the worker's parsers read of it ([`projection::project`]), when it could be made.
    pub projection: Option<String>,
}

impl NewDelivery {
    /// The job that will process it, or `None` when the platform only keeps it.
    pub fn job_kind(&self) -> Option<JobKind> {
        JobKind::for_event(&self.event)
    }
}

/// One statement for any batch size (so it is prepared once per connection): the batch travels
/// as nine arrays and the projection version, and the JSON text becomes `jsonb` in PostgreSQL.
const INSERT_MANY: &str = "\
    INSERT INTO webhook_deliveries \
        (delivery_id, event, action, installation_id, repository_id, hook_id, payload, status, queued_at, \
         projection, projection_version) \
    SELECT d, e, a, i, r, h, p::jsonb, s, CASE WHEN s = 'queued' THEN now() END, \
        pj, CASE WHEN pj IS NOT NULL THEN $10::int8 END \
    FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[], $7::text[], $8::text[], \
        $9::text[]) AS t(d, e, a, i, r, h, p, s, pj) \
    ON CONFLICT (delivery_id) DO NOTHING \
    RETURNING delivery_id";

/// Stores deliveries with their initial statuses in one statement. Returns, for each input,
/// whether *this* call stored it (`false`: the delivery id was already there, or earlier in the
/// slice).
pub async fn insert_many(
    client: &impl deadpool_postgres::GenericClient,
    deliveries: &[NewDelivery],
    statuses: &[DeliveryStatus],
) -> Result<Vec<bool>, tokio_postgres::Error> {
    debug_assert_eq!(deliveries.len(), statuses.len());
    if deliveries.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = deliveries.iter().map(|d| d.delivery_id.as_str()).collect();
    let events: Vec<&str> = deliveries.iter().map(|d| d.event.as_str()).collect();
    let actions: Vec<Option<&str>> = deliveries.iter().map(|d| d.action.as_deref()).collect();
    let installations: Vec<Option<i64>> = deliveries.iter().map(|d| d.installation_id).collect();
    let repositories: Vec<Option<i64>> = deliveries.iter().map(|d| d.repository_id).collect();
    let hooks: Vec<Option<i64>> = deliveries.iter().map(|d| d.hook_id).collect();
    let payloads: Vec<&str> = deliveries.iter().map(|d| d.payload_json.as_str()).collect();
    let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    let projections: Vec<Option<&str>> =
        deliveries.iter().map(|d| d.projection.as_deref()).collect();
    let statement = client.prepare_cached(INSERT_MANY).await?;
    let rows = client
        .query(
            &statement,
            &[
                &ids,
                &events,
                &actions,
                &installations,
                &repositories,
                &hooks,
                &payloads,
                &statuses,
                &projections,
                &projection::version(),
            ],
        )
        .await?;
    let mut inserted: std::collections::HashSet<&str> =
        rows.iter().map(|row| row.get::<_, &str>(0)).collect();
    // A delivery id twice in one statement is stored once; the first occurrence owns it.
    Ok(deliveries
        .iter()
        .map(|d| inserted.remove(d.delivery_id.as_str()))
        .collect())
}

/// Puts deliveries back to `pending` inside the transaction that inserted them as `queued`,
/// when their push to Redis failed: the relay hands them over later.
pub async fn set_pending(
    client: &impl deadpool_postgres::GenericClient,
    ids: &[&str],
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "UPDATE webhook_deliveries SET status = 'pending', queued_at = NULL \
             WHERE delivery_id = ANY($1::text[])",
            &[&ids],
        )
        .await
}

/// Takes up to `limit` deliveries due for a hand-off — `pending` ones oldest first, then
/// `failed` ones whose retry time has come — locking them for the caller's transaction so
/// concurrent relays skip them.
pub async fn lock_pending<C: ConnectionTrait>(
    txn: &C,
    limit: u64,
) -> Result<Vec<(i64, WebhookJob)>, DbErr> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // Two statements: PostgreSQL allows no FOR UPDATE under UNION.
    let mut rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT id, delivery_id, event FROM webhook_deliveries \
             WHERE status = 'pending' ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
            [Value::from(limit)],
        ))
        .await?;
    let room = limit - rows.len() as i64;
    if room > 0 {
        rows.extend(
            txn.query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT id, delivery_id, event FROM webhook_deliveries \
                 WHERE status = 'failed' AND next_attempt_at <= now() \
                 ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED",
                [Value::from(room)],
            ))
            .await?,
        );
    }
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
    // One statement for any number of rows (ids as a JSON array), as every bulk update here.
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE webhook_deliveries \
         SET status = 'queued', queued_at = now(), next_attempt_at = NULL, updated_at = now() \
         WHERE id = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)::int8))",
        [Value::from(serde_json::json!(row_ids))],
    ))
    .await?;
    Ok(())
}

/// Puts `queued` deliveries back to `pending` so the relay hands them over again.
///
/// `Lost::All`: Redis lost its data, every queued job is gone. `Lost::Stale(age)`: a safety
/// net for a job lost some other way — queued longer than `age` with no attempt in that time (a
/// worker that crashes mid-job has its job re-run by apalis from Redis within a minute; a job
/// apalis gave up on while PostgreSQL was down is caught here). A job that was in fact still in
/// Redis then runs twice, which processing tolerates.
pub async fn requeue_queued<C: ConnectionTrait>(db: &C, lost: Lost) -> Result<u64, DbErr> {
    let statement = match lost {
        Lost::All => Statement::from_string(
            DbBackend::Postgres,
            "UPDATE webhook_deliveries SET status = 'pending', queued_at = NULL, updated_at = now() \
             WHERE status = 'queued'",
        ),
        Lost::Stale(age) => Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE webhook_deliveries SET status = 'pending', queued_at = NULL, updated_at = now() \
             WHERE status = 'queued' AND queued_at <= now() - make_interval(secs => $1) \
             AND (last_attempt_at IS NULL OR last_attempt_at <= now() - make_interval(secs => $1))",
            [Value::from(age.as_secs_f64())],
        ),
    };
    Ok(db.execute_raw(statement).await?.rows_affected())
}

/// Which `queued` deliveries [`requeue_queued`] takes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    All,
    Stale(Duration),
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

/// What [`record_attempts`] found for a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Counted: run the job on what was read.
    Run(AttemptInfo, Loaded),
    /// Processed, ignored or dead already: nothing to do.
    Finished,
    /// No such row (yet): the API pushes a job just before committing its row, so a very
    /// fast worker can get there first; or the row became visible (or runnable again) just
    /// after the attempt was counted. Try again shortly.
    NotVisible,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptInfo {
    pub row_id: i64,
    /// 1 for the first attempt.
    pub attempt: i32,
    /// When the job was handed to Redis (for enqueue-to-done latency).
    pub queued_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// What the parsers read of a delivery, loaded with its attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub event: String,
    /// What the parsers read of the payload (`github::projection`), as JSON text.
    pub payload: String,
    pub received_at: chrono::DateTime<chrono::Utc>,
}

/// Counts an attempt for each delivery before a worker runs its job, so a run that crashes its
/// process still counts, and reads what the job will parse. One statement for the whole batch
/// (ids may repeat: counted once), and one more only for rows without a usable stored
/// projection.
///
/// The projection comes from the row when the API stored one made with this build's trees;
/// PostgreSQL makes it for the others, so the 25 KB payload is read only where it has to be.
/// Reading before the row is claimed is safe: an operator edits a payload only while its row is
/// dead (the edit clears the stored projection), and `dlq retry` makes it runnable afterwards.
pub async fn record_attempts(
    db: &DatabaseConnection,
    delivery_ids: &[&DeliveryId],
) -> Result<std::collections::HashMap<String, Attempt>, DbErr> {
    let ids: Vec<&str> = delivery_ids.iter().map(|d| d.as_str()).collect();
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE webhook_deliveries \
             SET attempts = attempts + 1, last_attempt_at = now(), updated_at = now() \
             WHERE delivery_id = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb))) \
               AND status IN ('pending', 'queued', 'failed') \
             RETURNING id, delivery_id, attempts, queued_at, event, received_at, \
                CASE WHEN projection_version = $2 THEN projection END AS payload",
            [
                Value::from(serde_json::json!(ids)),
                Value::from(projection::version()),
            ],
        ))
        .await?;
    let mut found = std::collections::HashMap::with_capacity(ids.len());
    let mut unprojected = Vec::new();
    for row in rows {
        let info = AttemptInfo {
            row_id: row.try_get("", "id")?,
            attempt: row.try_get("", "attempts")?,
            queued_at: row.try_get("", "queued_at")?,
        };
        let payload: Option<String> = row.try_get("", "payload")?;
        if payload.is_none() {
            unprojected.push(info.row_id);
        }
        let loaded = Loaded {
            event: row.try_get("", "event")?,
            payload: payload.unwrap_or_default(),
            received_at: row.try_get("", "received_at")?,
        };
        found.insert(
            row.try_get::<String>("", "delivery_id")?,
            Attempt::Run(info, loaded),
        );
    }
    if !unprojected.is_empty() {
        let mut projected = project_in_database(db, &unprojected).await?;
        for attempt in found.values_mut() {
            if let Attempt::Run(info, loaded) = attempt
                && let Some(payload) = projected.remove(&info.row_id)
            {
                loaded.payload = payload;
            }
        }
    }
    let missing: Vec<&str> = ids
        .iter()
        .copied()
        .filter(|id| !found.contains_key(*id))
        .collect();
    if !missing.is_empty() {
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT delivery_id, status FROM webhook_deliveries \
                 WHERE delivery_id = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)))",
                [Value::from(serde_json::json!(missing))],
            ))
            .await?;
        for row in rows {
            let status: String = row.try_get("", "status")?;
            found.insert(
                row.try_get::<String>("", "delivery_id")?,
                unmatched_attempt(&status),
            );
        }
        for id in missing {
            found.entry(id.to_owned()).or_insert(Attempt::NotVisible);
        }
    }
    Ok(found)
}

/// PostgreSQL's projection of rows' payloads (rows stored before the column existed, by a build
/// with other trees, or whose payload an operator edited).
async fn project_in_database(
    db: &DatabaseConnection,
    row_ids: &[i64],
) -> Result<std::collections::HashMap<i64, String>, DbErr> {
    static PROJECT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT id, {} AS payload FROM webhook_deliveries, {} \
             WHERE id = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)::int8))",
            projection::payload_text_sql(),
            projection::DETOASTED_PAYLOAD,
        )
    });
    db.query_all_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        PROJECT.as_str(),
        [Value::from(serde_json::json!(row_ids))],
    ))
    .await?
    .into_iter()
    .map(|row| Ok((row.try_get("", "id")?, row.try_get("", "payload")?)))
    .collect()
}

/// What a row that the counting `UPDATE` did not match means. Each statement reads its own
/// snapshot, so a row committed between the `UPDATE` and this look-up is seen here still
/// runnable: it must be tried again, not taken for finished (that lost its job: the row stayed
/// `queued` with no attempt until the relay's stale sweep).
fn unmatched_attempt(status: &str) -> Attempt {
    if is_runnable(status) {
        Attempt::NotVisible
    } else {
        Attempt::Finished
    }
}

/// The statuses the counting `UPDATE` of [`record_attempts`] matches.
const RUNNABLE_STATUSES: [&str; 3] = ["pending", "queued", "failed"];

/// A delivery in this status still has its job to run (not processed, ignored or dead).
pub fn is_runnable(status: &str) -> bool {
    RUNNABLE_STATUSES.contains(&status)
}

/// Marks the deliveries that are still runnable `processed` in the caller's transaction — the
/// one that writes their rows — and returns their row ids. The update locks the rows, so
/// duplicate jobs of one delivery run one after the other and the second finds it no longer
/// runnable; if the transaction fails, the rows are as they were. (Two batches share a row only
/// when a delivery has two jobs; should they deadlock, one batch fails and its jobs run alone.)
pub async fn claim_for_processing<C: ConnectionTrait>(
    txn: &C,
    row_ids: &[i64],
) -> Result<std::collections::HashSet<i64>, DbErr> {
    if row_ids.is_empty() {
        return Ok(Default::default());
    }
    txn.query_all_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE webhook_deliveries SET status = 'processed', processed_at = now(), \
            next_attempt_at = NULL, last_error = NULL, updated_at = now() \
         WHERE id = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)::int8)) \
           AND status IN ('pending', 'queued', 'failed') \
         RETURNING id",
        [Value::from(serde_json::json!(row_ids))],
    ))
    .await?
    .into_iter()
    .map(|row| row.try_get("", "id"))
    .collect()
}

/// Schedules another attempt after `delay`; the relay hands it to Redis when it is due.
pub async fn schedule_retry(
    db: &DatabaseConnection,
    row_id: i64,
    delay: Duration,
    error: &str,
) -> Result<(), DbErr> {
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE webhook_deliveries SET status = 'failed', last_error = $2, \
            next_attempt_at = now() + make_interval(secs => $3), queued_at = NULL, updated_at = now() \
         WHERE id = $1 AND status IN ('pending', 'queued', 'failed')",
        [
            Value::from(row_id),
            Value::from(error),
            Value::from(delay.as_secs_f64()),
        ],
    ))
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_still_runnable_after_the_count_is_tried_again_not_dropped() {
        for status in RUNNABLE_STATUSES {
            assert_eq!(unmatched_attempt(status), Attempt::NotVisible, "{status}");
        }
        for status in ["processed", "ignored", "dead"] {
            assert_eq!(unmatched_attempt(status), Attempt::Finished, "{status}");
        }
    }
}
