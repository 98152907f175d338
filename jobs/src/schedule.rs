//! Schedule ticks in PostgreSQL: every worker replica's scheduler fires, one claims the tick.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};
use serde::Serialize;

use crate::domain::stmt;

/// Claims `tick` of `schedule` for `by`; false when another worker already has it.
pub async fn claim<C: ConnectionTrait>(
    db: &C,
    schedule: &str,
    tick: DateTime<Utc>,
    by: &str,
) -> Result<bool, DbErr> {
    Ok(db
        .execute_raw(stmt(
            "INSERT INTO schedule_ticks (schedule, tick, claimed_by) VALUES ($1, $2, $3) \
             ON CONFLICT (schedule, tick) DO NOTHING",
            [schedule.into(), tick.into(), by.into()],
        ))
        .await?
        .rows_affected()
        == 1)
}

/// Records how a claimed tick ended: `Ok(what it did)` or `Err(why it failed)`.
pub async fn finish<C: ConnectionTrait>(
    db: &C,
    schedule: &str,
    tick: DateTime<Utc>,
    result: &Result<String, String>,
) -> Result<(), DbErr> {
    let (outcome, detail) = match result {
        Ok(detail) => ("ok", detail),
        Err(error) => ("failed", error),
    };
    db.execute_raw(stmt(
        "UPDATE schedule_ticks SET finished_at = now(), outcome = $3, detail = $4 \
         WHERE schedule = $1 AND tick = $2",
        [
            schedule.into(),
            tick.into(),
            outcome.into(),
            detail.clone().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// A schedule's latest tick.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LastRun {
    pub tick: DateTime<Utc>,
    pub claimed_by: String,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    pub detail: Option<String>,
}

pub async fn last_run<C: ConnectionTrait>(
    db: &C,
    schedule: &str,
) -> Result<Option<LastRun>, DbErr> {
    db.query_one_raw(stmt(
        "SELECT tick, claimed_by, finished_at, outcome, detail FROM schedule_ticks \
         WHERE schedule = $1 ORDER BY tick DESC LIMIT 1",
        [schedule.into()],
    ))
    .await?
    .map(|r| {
        Ok(LastRun {
            tick: r.try_get("", "tick")?,
            claimed_by: r.try_get("", "claimed_by")?,
            finished_at: r.try_get("", "finished_at")?,
            outcome: r.try_get("", "outcome")?,
            detail: r.try_get("", "detail")?,
        })
    })
    .transpose()
}
