//! `computeAttendanceSummary`: per person per day of the organization's time zone, from closed
//! work sessions and their idle intervals. Sessions across midnight are split at local
//! midnight (a DST day has 23 or 25 hours); recomputing days replaces them in one transaction.
//!
//! Definitions (also in `docs/METRICS.md`), for the part of each closed session inside the day:
//! `worked` = its length; `idle` = idle intervals inside it; `active` = worked − idle;
//! `first_in` / `last_out` = earliest start / latest end; `sessions` = sessions touching the
//! day; `overtime` = max(0, active − the organization's daily target); `auto_closed` = any of
//! them was closed by DevPulse. Open sessions count once they are closed.

use chrono::NaiveDate;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};
use serde::Serialize;

use crate::{
    domain::stmt,
    people::{OrgId, UserId},
};

/// Days recomputed at most by one call (a year and a bit).
pub const MAX_DAYS: i64 = 400;

// $1 organization, $2..$3 first and last day, $4/$5 optional (user, day) pairs to limit it to.
// Most sessions lie within one local day: they are one piece as they are, and take their idle
// total from `work_sessions.idle_micros`. Only sessions across midnight are cut into days, and
// only their pieces read idle intervals.
const COMPUTE: &str = "\
WITH o AS (SELECT id, time_zone, daily_target_seconds FROM organizations WHERE id = $1), \
sessions AS ( \
    SELECT s.user_id, s.id, s.auto_closed, s.started_at, s.ended_at, s.idle_micros, o.time_zone, \
        (s.started_at AT TIME ZONE o.time_zone)::date AS first_day, \
        (s.ended_at AT TIME ZONE o.time_zone)::date AS last_day \
    FROM o JOIN work_sessions s ON s.organization_id = o.id \
    WHERE s.ended_at IS NOT NULL \
      AND s.started_at < ($3::date + 1)::timestamp AT TIME ZONE o.time_zone \
      AND s.ended_at > $2::date::timestamp AT TIME ZONE o.time_zone \
      AND ($4::bigint[] IS NULL OR s.user_id = ANY($4::bigint[])) \
), cut AS ( \
    SELECT s.user_id, s.first_day AS day, s.id, s.auto_closed, s.started_at, s.ended_at, \
        s.idle_micros, s.started_at AS p_start, s.ended_at AS p_end \
    FROM sessions s WHERE s.first_day = s.last_day \
    UNION ALL \
    SELECT s.user_id, d.day, s.id, s.auto_closed, s.started_at, s.ended_at, s.idle_micros, \
        GREATEST(s.started_at, d.day::timestamp AT TIME ZONE s.time_zone), \
        LEAST(s.ended_at, (d.day + 1)::timestamp AT TIME ZONE s.time_zone) \
    FROM sessions s CROSS JOIN LATERAL (SELECT g::date AS day \
        FROM generate_series(s.first_day, s.last_day, interval '1 day') g) d \
    WHERE s.first_day < s.last_day \
), pieces AS ( \
    SELECT * FROM cut \
    WHERE day BETWEEN $2::date AND $3::date \
      AND ($4::bigint[] IS NULL OR (user_id, day) IN (SELECT * FROM unnest($4::bigint[], $5::date[]))) \
), measured AS ( \
    SELECT p.*, EXTRACT(EPOCH FROM p.p_end - p.p_start) AS worked, \
        CASE WHEN p.p_start = p.started_at AND p.p_end = p.ended_at THEN p.idle_micros / 1000000.0 \
        ELSE COALESCE((SELECT sum(EXTRACT(EPOCH FROM LEAST(i.ended_at, p.p_end) - GREATEST(i.started_at, p.p_start))) \
            FROM idle_intervals i \
            WHERE i.session_id = p.id AND i.started_at < p.p_end AND i.ended_at > p.p_start), 0) END AS idle \
    FROM pieces p WHERE p.p_end > p.p_start \
), days AS ( \
    SELECT user_id, day, min(p_start) AS first_in, max(p_end) AS last_out, \
        round(sum(worked))::bigint AS worked, round(sum(idle))::bigint AS idle, \
        count(*)::int AS sessions, bool_or(auto_closed) AS auto_closed \
    FROM measured GROUP BY user_id, day \
) \
INSERT INTO attendance_summaries (organization_id, user_id, day, first_in, last_out, \
    worked_seconds, idle_seconds, active_seconds, sessions, overtime_seconds, auto_closed, computed_at) \
SELECT o.id, d.user_id, d.day, d.first_in, d.last_out, d.worked, d.idle, d.worked - d.idle, \
    d.sessions, GREATEST(0, d.worked - d.idle - o.daily_target_seconds), d.auto_closed, now() \
FROM days d, o";

/// Takes the organization's summary lock until the transaction ends. Recomputes delete and
/// then insert: two at once over the same (person, day) — the nightly run or `worker attendance
/// recompute` while a worker drains clock-outs — would both find nothing to delete and the
/// second insert would fail on the key. Under the lock the second one's delete sees the
/// first's rows.
async fn lock_summaries<C: ConnectionTrait>(db: &C, org: OrgId) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "SELECT pg_advisory_xact_lock(hashtextextended('devpulse.attendance', $1))",
        [org.0.into()],
    ))
    .await?;
    Ok(())
}

/// Recomputes every summary of `org` from `from` to `to` (inclusive): the nightly run, and
/// `worker attendance recompute`. Days left without sessions lose their row. Returns rows
/// written.
pub async fn recompute_range(
    db: &DatabaseConnection,
    org: OrgId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<u64, DbErr> {
    if to < from || (to - from).num_days() > MAX_DAYS {
        return Err(DbErr::Custom(format!(
            "a recompute covers 1 to {MAX_DAYS} days, from <= to"
        )));
    }
    let txn = db.begin().await?;
    // On a month of a large organization PostgreSQL's JIT spends ~0.4 s compiling expressions
    // it then saves less than that on (measured by scripts/bench-attendance).
    txn.execute_unprepared("SET LOCAL jit = off").await?;
    lock_summaries(&txn, org).await?;
    txn.execute_raw(stmt(
        "DELETE FROM attendance_summaries WHERE organization_id = $1 AND day BETWEEN $2 AND $3",
        [org.0.into(), from.into(), to.into()],
    ))
    .await?;
    let none: Option<Vec<i64>> = None;
    let no_days: Option<Vec<NaiveDate>> = None;
    let written = txn
        .execute_raw(stmt(
            COMPUTE,
            [
                org.0.into(),
                from.into(),
                to.into(),
                none.into(),
                no_days.into(),
            ],
        ))
        .await?
        .rows_affected();
    txn.commit().await?;
    Ok(written)
}

/// Recomputes exactly the given (person, day) pairs of `org`, inside the caller's transaction.
async fn recompute_pairs<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    pairs: &[(i64, NaiveDate)],
) -> Result<u64, DbErr> {
    let (Some(from), Some(to)) = (
        pairs.iter().map(|p| p.1).min(),
        pairs.iter().map(|p| p.1).max(),
    ) else {
        return Ok(0);
    };
    let users: Vec<i64> = pairs.iter().map(|p| p.0).collect();
    let days: Vec<NaiveDate> = pairs.iter().map(|p| p.1).collect();
    lock_summaries(db, org).await?;
    db.execute_raw(stmt(
        "DELETE FROM attendance_summaries WHERE organization_id = $1 \
           AND (user_id, day) IN (SELECT * FROM unnest($2::bigint[], $3::date[]))",
        [org.0.into(), users.clone().into(), days.clone().into()],
    ))
    .await?;
    Ok(db
        .execute_raw(stmt(
            COMPUTE,
            [
                org.0.into(),
                from.into(),
                to.into(),
                users.into(),
                days.into(),
            ],
        ))
        .await?
        .rows_affected())
}

/// Recomputes up to `batch` days asked for by clock-outs, late uploads and automatic closes.
/// Claiming, recomputing and forgetting the requests is one transaction (a crash recomputes
/// again later); workers skip each other's claims. Returns the days recomputed.
pub async fn drain_dirty(db: &DatabaseConnection, batch: u64) -> Result<usize, DbErr> {
    let txn = db.begin().await?;
    let rows = txn
        .query_all_raw(stmt(
            "DELETE FROM attendance_dirty WHERE (user_id, day) IN ( \
                SELECT user_id, day FROM attendance_dirty ORDER BY requested_at \
                LIMIT $1 FOR UPDATE SKIP LOCKED) \
             RETURNING organization_id, user_id, day",
            [i64::try_from(batch).unwrap_or(i64::MAX).into()],
        ))
        .await?;
    let mut by_org: std::collections::BTreeMap<i64, Vec<(i64, NaiveDate)>> = Default::default();
    for row in &rows {
        by_org
            .entry(row.try_get("", "organization_id")?)
            .or_default()
            .push((row.try_get("", "user_id")?, row.try_get("", "day")?));
    }
    for (org, pairs) in &by_org {
        recompute_pairs(&txn, OrgId(*org), pairs).await?;
    }
    txn.commit().await?;
    Ok(rows.len())
}

/// One day's summary, as read by people and dashboards.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Summary {
    pub user_id: i64,
    pub day: NaiveDate,
    pub first_in: chrono::DateTime<chrono::Utc>,
    pub last_out: chrono::DateTime<chrono::Utc>,
    pub worked_seconds: i64,
    pub idle_seconds: i64,
    pub active_seconds: i64,
    pub sessions: i32,
    pub overtime_seconds: i64,
    pub auto_closed: bool,
}

/// The columns of a [`Summary`], in its order.
pub const COLUMNS: &str = "user_id, day, first_in, last_out, worked_seconds, idle_seconds, \
    active_seconds, sessions, overtime_seconds, auto_closed";

/// A person's summaries from `from` to `to` (inclusive), oldest first.
pub async fn list<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    user: UserId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Summary>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            &format!(
                "SELECT {COLUMNS} FROM attendance_summaries \
             WHERE organization_id = $1 AND user_id = $2 AND day BETWEEN $3 AND $4 ORDER BY day"
            ),
            [org.0.into(), user.0.into(), from.into(), to.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Summary {
                user_id: r.try_get("", "user_id")?,
                day: r.try_get("", "day")?,
                first_in: r.try_get("", "first_in")?,
                last_out: r.try_get("", "last_out")?,
                worked_seconds: r.try_get("", "worked_seconds")?,
                idle_seconds: r.try_get("", "idle_seconds")?,
                active_seconds: r.try_get("", "active_seconds")?,
                sessions: r.try_get("", "sessions")?,
                overtime_seconds: r.try_get("", "overtime_seconds")?,
                auto_closed: r.try_get("", "auto_closed")?,
            })
        })
        .collect()
}
