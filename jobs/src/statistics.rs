//! Planner statistics kept fresh where autovacuum does not keep them (turned off, or not there
//! yet): tables changed by more rows than autovacuum's analyze threshold since their last
//! `ANALYZE` are analyzed.
//!
//! The worker's statements are planned from these statistics. While `pull_requests` grows from
//! hundreds to tens of thousands of rows between two analyzes, the first-commit refresh hashes
//! the whole table for every batch (20 ms a statement), and a week score planned for one row per
//! input ran for 10 s on one of the two cores (`scripts/bench-worker` on a
//! PostgreSQL with autovacuum off, `auto_explain`). Same-hour A/B, 40,000 jobs: 2,343 / 2,538
//! jobs/s without this, 3,275 / 3,223 with it. Where autovacuum runs it analyzes on the same
//! threshold, up to a minute (`autovacuum_naptime`) later; this finds the tables sooner, and
//! usually finds nothing: one query on `pg_stat_user_tables` every [`EVERY`].

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};
use tokio_util::sync::CancellationToken;

use crate::domain::stmt;

/// How often the worker looks for tables past the threshold.
pub const EVERY: Duration = Duration::from_secs(2);

/// The tables of the current schema whose rows inserted, updated or deleted since their last
/// analyze (`n_mod_since_analyze`, as the statistics collector has them: a few seconds behind)
/// exceed autovacuum's threshold — `autovacuum_analyze_threshold` +
/// `autovacuum_analyze_scale_factor` × rows at the last analyze (none: 0) — among those this
/// role may analyze (it owns them, or is a superuser).
const STALE: &str = "\
    SELECT s.relname::text AS name FROM pg_stat_user_tables s \
    JOIN pg_class c ON c.oid = s.relid \
    WHERE s.schemaname = current_schema() AND pg_has_role(c.relowner, 'USAGE') \
      AND s.n_mod_since_analyze >= current_setting('autovacuum_analyze_threshold')::float8 \
          + current_setting('autovacuum_analyze_scale_factor')::float8 * greatest(c.reltuples, 0) \
    ORDER BY s.relname";

/// Analyzes every table past the threshold; returns their names. A quiet round is the one
/// query. One process analyzes at a time (an advisory lock: replicas that find it taken leave
/// the round to the holder). A table another `ANALYZE` or `VACUUM` holds (a recompute analyzes
/// inside its transaction) is skipped, not waited for (`SKIP_LOCKED`); a later round takes it.
pub async fn analyze_stale(db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
    let tables: Vec<String> = db
        .query_all_raw(stmt(STALE, []))
        .await?
        .iter()
        .map(|row| row.try_get("", "name"))
        .collect::<Result<_, _>>()?;
    if tables.is_empty() {
        return Ok(tables);
    }
    let txn = db.begin().await?;
    let locked: bool = txn
        .query_one_raw(stmt(
            "SELECT pg_try_advisory_xact_lock(hashtextextended('devpulse.statistics', 0)) AS ok",
            [],
        ))
        .await?
        .map(|row| row.try_get("", "ok"))
        .transpose()?
        .unwrap_or(false);
    if !locked {
        txn.rollback().await?;
        return Ok(Vec::new());
    }
    let list = tables
        .iter()
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(", ");
    txn.execute_unprepared(&format!("ANALYZE (SKIP_LOCKED) {list}"))
        .await?;
    txn.commit().await?;
    Ok(tables)
}

/// Runs [`analyze_stale`] now and then every [`EVERY`] until `shutdown`.
pub async fn run(db: DatabaseConnection, shutdown: CancellationToken) {
    loop {
        let started = std::time::Instant::now();
        match analyze_stale(&db).await {
            Ok(tables) if !tables.is_empty() => tracing::debug!(
                tables = tables.join(","),
                ms = started.elapsed().as_millis() as u64,
                "analyzed tables past autovacuum's threshold"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "could not refresh planner statistics"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}
