//! Clock-in, clock-out and idle uploads from the desktop tracker.
//!
//! Every request names its session with an id the client made, so the tracker's offline
//! buffer can resend anything: the same request again gives the same result. Writes for one
//! person are serialized on their `users` row. A session left open past the organization's
//! limit is closed at its last activity and flagged, whenever anyone next looks (a request of
//! that person, or the worker's sweep), so a forgotten timer never counts.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ConnectionTrait, DbErr, QueryResult};
use serde::Serialize;
use uuid::Uuid;

use super::intervals::{Interval, merge};
use crate::{
    domain::stmt,
    people::{OrgId, UserId},
};

/// How far in the future a client's timestamp may be (clock skew), and no further.
pub const MAX_FUTURE: Duration = Duration::minutes(5);
/// How far back a client may submit sessions after being offline.
pub const MAX_PAST: Duration = Duration::days(60);
/// A session the tracker wrote to this recently is not swept as forgotten: its clock-out may be
/// on its way (an offline buffer sends clock-in and clock-out of a past session one by one).
pub const SWEEP_GRACE: Duration = Duration::minutes(10);
/// Idle intervals accepted in one request.
pub const MAX_INTERVALS: usize = 1_000;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Session {
    pub id: Uuid,
    pub user_id: i64,
    pub device_id: Option<Uuid>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub last_activity_at: DateTime<Utc>,
    /// Closed by DevPulse at its last activity because it stayed open past the limit.
    pub auto_closed: bool,
    pub idle_seconds: i64,
    pub idle: Vec<Interval>,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The person already has an open session (returned, so the tracker can resume it).
    #[error("you are already clocked in (session {})", .0.id)]
    AlreadyOpen(Box<Session>),
    #[error("this session id is already used by another session")]
    IdTaken,
    #[error("this session overlaps session {} of the same person", .0.id)]
    Overlap(Box<Session>),
    #[error("no such session")]
    NotFound,
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error(transparent)]
    Db(#[from] DbErr),
}

fn invalid(code: &'static str, message: impl Into<String>) -> SessionError {
    SessionError::Invalid {
        code,
        message: message.into(),
    }
}

/// Rejects timestamps more than [`MAX_FUTURE`] ahead or [`MAX_PAST`] behind the server's clock.
pub fn check_time(field: &str, at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), SessionError> {
    if at > now + MAX_FUTURE {
        return Err(invalid(
            "timestamp_in_future",
            format!("{field} {at} is more than 5 minutes ahead of the server's clock ({now})"),
        ));
    }
    if at < now - MAX_PAST {
        return Err(invalid(
            "timestamp_too_old",
            format!("{field} {at} is more than 60 days in the past"),
        ));
    }
    Ok(())
}

const SESSION_SELECT: &str = "SELECT s.id, s.user_id, s.device_id, s.started_at, s.ended_at, \
        s.last_activity_at, s.auto_closed, \
        COALESCE((SELECT jsonb_agg(jsonb_build_object('start', i.started_at, 'end', i.ended_at) \
            ORDER BY i.started_at) FROM idle_intervals i WHERE i.session_id = s.id), '[]'::jsonb) AS idle \
     FROM work_sessions s";

fn session(row: &QueryResult) -> Result<Session, DbErr> {
    let idle: serde_json::Value = row.try_get("", "idle")?;
    let idle: Vec<Interval> =
        serde_json::from_value(idle).map_err(|e| DbErr::Custom(format!("idle intervals: {e}")))?;
    Ok(Session {
        id: row.try_get("", "id")?,
        user_id: row.try_get("", "user_id")?,
        device_id: row.try_get("", "device_id")?,
        started_at: row.try_get("", "started_at")?,
        ended_at: row.try_get("", "ended_at")?,
        last_activity_at: row.try_get("", "last_activity_at")?,
        auto_closed: row.try_get("", "auto_closed")?,
        idle_seconds: idle.iter().map(|i| i.seconds()).sum(),
        idle,
    })
}

async fn find<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    filter: &str,
    values: Vec<sea_orm::Value>,
) -> Result<Option<Session>, DbErr> {
    let mut all = vec![org.0.into()];
    all.extend(values);
    db.query_one_raw(stmt(
        &format!("{SESSION_SELECT} WHERE s.organization_id = $1 AND {filter} LIMIT 1"),
        all,
    ))
    .await?
    .as_ref()
    .map(session)
    .transpose()
}

/// Serializes one person's session writes and closes their forgotten timer, if any.
async fn lock_person<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    user: UserId,
) -> Result<(), SessionError> {
    db.query_one_raw(stmt(
        "SELECT 1 FROM users WHERE organization_id = $1 AND id = $2 FOR UPDATE",
        [org.0.into(), user.0.into()],
    ))
    .await?
    .ok_or(SessionError::NotFound)?;
    close_forgotten(db, Some(user)).await?;
    Ok(())
}

/// One of `user`'s sessions, after taking their lock.
async fn own_session<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    user: UserId,
    id: Uuid,
) -> Result<Session, SessionError> {
    lock_person(db, org, user).await?;
    find(
        db,
        org,
        "s.id = $2 AND s.user_id = $3",
        vec![id.into(), user.0.into()],
    )
    .await?
    .ok_or(SessionError::NotFound)
}

/// Opens a session. Returns it and whether it was created now (false: a resend).
pub async fn clock_in<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    user: UserId,
    device: Option<Uuid>,
    id: Uuid,
    started_at: DateTime<Utc>,
) -> Result<(Session, bool), SessionError> {
    check_time("started_at", started_at, Utc::now())?;
    lock_person(db, org, user).await?;
    if let Some(existing) = find(db, org, "s.id = $2", vec![id.into()]).await? {
        return if existing.user_id == user.0 {
            Ok((existing, false))
        } else {
            Err(SessionError::IdTaken)
        };
    }
    if let Some(open) = find(
        db,
        org,
        "s.user_id = $2 AND s.ended_at IS NULL",
        vec![user.0.into()],
    )
    .await?
    {
        return Err(SessionError::AlreadyOpen(Box::new(open)));
    }
    if let Some(other) = find(
        db,
        org,
        "s.user_id = $2 AND s.started_at <= $3 AND s.ended_at > $3",
        vec![user.0.into(), started_at.into()],
    )
    .await?
    {
        return Err(SessionError::Overlap(Box::new(other)));
    }
    let inserted = db
        .execute_raw(stmt(
            "INSERT INTO work_sessions (id, organization_id, user_id, device_id, started_at, last_activity_at) \
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (id) DO NOTHING",
            [
                id.into(),
                org.0.into(),
                user.0.into(),
                device.into(),
                started_at.into(),
            ],
        ))
        .await?
        .rows_affected();
    if inserted == 0 {
        // The id exists in another organization: invisible here, but taken.
        return Err(SessionError::IdTaken);
    }
    let created = find(db, org, "s.id = $2", vec![id.into()])
        .await?
        .ok_or(SessionError::NotFound)?;
    Ok((created, true))
}

/// Closes a session. Closing a closed session returns it unchanged (a resend). A session that
/// would end more than the organization's limit after it started is closed at its last
/// activity instead, and flagged.
pub async fn clock_out<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    user: UserId,
    id: Uuid,
    ended_at: DateTime<Utc>,
) -> Result<Session, SessionError> {
    check_time("ended_at", ended_at, Utc::now())?;
    let current = own_session(db, org, user, id).await?;
    if current.ended_at.is_some() {
        return Ok(current);
    }
    if ended_at < current.started_at {
        return Err(invalid(
            "ended_before_start",
            format!(
                "ended_at {ended_at} is before the session started ({})",
                current.started_at
            ),
        ));
    }
    if let Some(other) = find(
        db,
        org,
        "s.user_id = $2 AND s.id <> $3 AND s.started_at < $5 AND COALESCE(s.ended_at, 'infinity') > $4",
        vec![user.0.into(), id.into(), current.started_at.into(), ended_at.into()],
    )
    .await?
    {
        return Err(SessionError::Overlap(Box::new(other)));
    }
    close(db, Some(user), Some((id, ended_at))).await?;
    find(db, org, "s.id = $2", vec![id.into()])
        .await?
        .ok_or(SessionError::NotFound)
}

/// Adds idle intervals measured on the device: clipped to the session, merged with those
/// already stored (the same upload twice changes nothing). `last_active_at` tells when the
/// person was last seen active; with the ends of idle intervals it moves the session's last
/// activity, where a forgotten timer is closed.
pub async fn add_idle<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    user: UserId,
    id: Uuid,
    intervals: &[Interval],
    last_active_at: Option<DateTime<Utc>>,
) -> Result<Session, SessionError> {
    let now = Utc::now();
    if intervals.len() > MAX_INTERVALS {
        return Err(invalid(
            "too_many_intervals",
            format!("at most {MAX_INTERVALS} intervals per request"),
        ));
    }
    for (n, i) in intervals.iter().enumerate() {
        if i.start >= i.end {
            return Err(invalid(
                "invalid_interval",
                format!("intervals[{n}]: start must be before end"),
            ));
        }
        check_time(&format!("intervals[{n}].end"), i.end, now)?;
        check_time(&format!("intervals[{n}].start"), i.start, now)?;
    }
    if let Some(at) = last_active_at {
        check_time("last_active_at", at, now)?;
    }
    let current = own_session(db, org, user, id).await?;
    let mut all = current.idle.clone();
    all.extend(
        intervals
            .iter()
            .filter_map(|i| i.clip(current.started_at, current.ended_at)),
    );
    let merged = merge(all);
    if merged != current.idle {
        db.execute_raw(stmt(
            "DELETE FROM idle_intervals WHERE organization_id = $1 AND session_id = $2",
            [org.0.into(), id.into()],
        ))
        .await?;
        db.execute_raw(stmt(
            "INSERT INTO idle_intervals (session_id, organization_id, started_at, ended_at) \
             SELECT $2, $1, s, e FROM unnest($3::timestamptz[], $4::timestamptz[]) AS t(s, e)",
            [
                org.0.into(),
                id.into(),
                merged.iter().map(|i| i.start).collect::<Vec<_>>().into(),
                merged.iter().map(|i| i.end).collect::<Vec<_>>().into(),
            ],
        ))
        .await?;
        let micros: i64 = merged
            .iter()
            .filter_map(|i| (i.end - i.start).num_microseconds())
            .sum();
        db.execute_raw(stmt(
            "UPDATE work_sessions SET idle_micros = $3, updated_at = now() \
             WHERE organization_id = $1 AND id = $2",
            [org.0.into(), id.into(), micros.into()],
        ))
        .await?;
    }
    if current.ended_at.is_none() {
        let seen = intervals
            .iter()
            .map(|i| i.end)
            .chain(last_active_at)
            .filter(|at| *at >= current.started_at)
            .max();
        if let Some(seen) = seen.filter(|s| *s > current.last_activity_at) {
            db.execute_raw(stmt(
                "UPDATE work_sessions SET last_activity_at = GREATEST(last_activity_at, $3), updated_at = now() \
                 WHERE organization_id = $1 AND id = $2",
                [org.0.into(), id.into(), seen.into()],
            ))
            .await?;
        }
    } else if merged != current.idle {
        // A late upload for a closed session changes its days' summaries.
        let ended = current.ended_at.unwrap_or(current.started_at);
        mark_dirty(db, org, user, current.started_at, ended).await?;
    }
    find(db, org, "s.id = $2", vec![id.into()])
        .await?
        .ok_or(SessionError::NotFound)
}

/// A person's sessions that overlap `[from, to)`, oldest first.
pub async fn list<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    user: UserId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Session>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            &format!(
                "{SESSION_SELECT} WHERE s.organization_id = $1 AND s.user_id = $2 \
                   AND s.started_at < $4 AND COALESCE(s.ended_at, 'infinity') > $3 \
                 ORDER BY s.started_at LIMIT 5000"
            ),
            [org.0.into(), user.0.into(), from.into(), to.into()],
        ))
        .await?;
    rows.iter().map(session).collect()
}

/// Asks for the summaries of the days (organization's zone) that `[from, to]` touches.
async fn mark_dirty<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    user: UserId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "INSERT INTO attendance_dirty (organization_id, user_id, day) \
         SELECT o.id, $2, d::date FROM organizations o, generate_series( \
             ($3::timestamptz AT TIME ZONE o.time_zone)::date, \
             ($4::timestamptz AT TIME ZONE o.time_zone)::date, interval '1 day') d \
         WHERE o.id = $1 \
         ON CONFLICT (user_id, day) DO UPDATE SET requested_at = excluded.requested_at",
        [org.0.into(), user.0.into(), from.into(), to.into()],
    ))
    .await?;
    Ok(())
}

/// Closes sessions open longer than their organization's limit (and untouched for
/// [`SWEEP_GRACE`]) at their last activity and flags them: all of them (the worker's sweep) or one
/// person's. Returns how many it closed.
pub async fn close_forgotten<C: ConnectionTrait>(
    db: &C,
    user: Option<UserId>,
) -> Result<u64, DbErr> {
    close(db, user, None).await
}

/// The one way a session is closed. With `clock_out = (id, ended_at)` that session ends at
/// `ended_at` — or, when that is more than the limit after its start, at its last activity,
/// flagged; without, forgotten sessions are closed as [`close_forgotten`] says. Either way its
/// idle intervals are trimmed to the end, its idle total follows them, and its days are asked
/// for. One statement that locks what it closes, so concurrent sweeps on several workers close
/// each session once.
async fn close<C: ConnectionTrait>(
    db: &C,
    user: Option<UserId>,
    clock_out: Option<(Uuid, DateTime<Utc>)>,
) -> Result<u64, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "WITH target AS ( \
                SELECT s.id, o.time_zone, \
                    COALESCE($3::timestamptz - s.started_at <= make_interval(secs => o.session_limit_seconds), \
                        false) AS in_time, \
                    CASE WHEN $3::timestamptz - s.started_at <= make_interval(secs => o.session_limit_seconds) \
                        THEN $3::timestamptz ELSE GREATEST(s.last_activity_at, s.started_at) END AS end_at \
                FROM work_sessions s JOIN organizations o ON o.id = s.organization_id \
                WHERE s.ended_at IS NULL AND ($1::bigint IS NULL OR s.user_id = $1) \
                  AND CASE WHEN $2::uuid IS NULL \
                      THEN s.started_at < now() - make_interval(secs => o.session_limit_seconds) \
                           AND s.updated_at < now() - make_interval(secs => $4) \
                      ELSE s.id = $2 END \
                FOR UPDATE OF s \
             ), closed AS ( \
                UPDATE work_sessions s SET ended_at = t.end_at, auto_closed = NOT t.in_time, \
                    updated_at = now(), \
                    idle_micros = (SELECT COALESCE(sum((EXTRACT(EPOCH FROM \
                        LEAST(i.ended_at, t.end_at) - i.started_at) * 1000000)::bigint), 0) \
                        FROM idle_intervals i WHERE i.session_id = s.id AND i.started_at < t.end_at) \
                FROM target t WHERE s.id = t.id \
                RETURNING s.id, s.organization_id, s.user_id, s.started_at, s.ended_at, t.time_zone \
             ), dropped AS ( \
                DELETE FROM idle_intervals i USING closed c \
                WHERE i.session_id = c.id AND i.started_at >= c.ended_at \
             ), clipped AS ( \
                UPDATE idle_intervals i SET ended_at = c.ended_at FROM closed c \
                WHERE i.session_id = c.id AND i.started_at < c.ended_at AND i.ended_at > c.ended_at \
             ), dirty AS ( \
                INSERT INTO attendance_dirty (organization_id, user_id, day) \
                SELECT c.organization_id, c.user_id, d::date FROM closed c, generate_series( \
                    (c.started_at AT TIME ZONE c.time_zone)::date, \
                    (c.ended_at AT TIME ZONE c.time_zone)::date, interval '1 day') d \
                ON CONFLICT (user_id, day) DO UPDATE SET requested_at = now() \
             ) SELECT count(*) AS n FROM closed",
            [
                user.map(|u| u.0).into(),
                clock_out.map(|(id, _)| id).into(),
                clock_out.map(|(_, at)| at).into(),
                SWEEP_GRACE.as_seconds_f64().into(),
            ],
        ))
        .await?;
    Ok(row
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?
        .map_or(0, |n| u64::try_from(n).unwrap_or(0)))
}
