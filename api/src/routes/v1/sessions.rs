//! The desktop tracker's API (clock-in, clock-out, idle, sessions) and attendance summaries.
// utoipa's `path` macro spells the parameter types out in full.
#![allow(unused_qualifications)]

use axum::{Extension, Json, extract::State, http::StatusCode};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use jobs::{
    attendance::{
        intervals::Interval,
        sessions::{self, Session},
        summaries::{self, Summary},
    },
    people::{UserId, accounts, tenant},
};
use serde::Deserialize;
use uuid::Uuid;

use super::{ApiJson, ApiPath, ApiQuery};
use crate::{auth::Caller, error::ApiError, startup::AppState};

/// Longest range `GET /sessions` answers.
const MAX_SESSION_SPAN: Duration = Duration::days(92);
/// Longest range `GET /attendance` answers.
const MAX_ATTENDANCE_DAYS: i64 = 366;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockIn {
    session_id: Uuid,
    started_at: Option<DateTime<Utc>>,
}

/// 201 with the new session; 200 with the same session when this is a resend.
#[tracing::instrument(skip_all, fields(user = %caller.user, session = %body.session_id))]
pub async fn clock_in(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<ClockIn>,
) -> Result<(StatusCode, Json<Session>), ApiError> {
    let started_at = body.started_at.unwrap_or_else(Utc::now);
    let txn = tenant::begin(&state.db, caller.org).await?;
    let (session, created) = sessions::clock_in(
        &txn,
        caller.org,
        caller.user,
        caller.device,
        body.session_id,
        started_at,
    )
    .await?;
    txn.commit().await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(session)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockOut {
    session_id: Uuid,
    ended_at: Option<DateTime<Utc>>,
}

#[tracing::instrument(skip_all, fields(user = %caller.user, session = %body.session_id))]
pub async fn clock_out(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<ClockOut>,
) -> Result<Json<Session>, ApiError> {
    let ended_at = body.ended_at.unwrap_or_else(Utc::now);
    let txn = tenant::begin(&state.db, caller.org).await?;
    let session =
        sessions::clock_out(&txn, caller.org, caller.user, body.session_id, ended_at).await?;
    txn.commit().await?;
    Ok(Json(session))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Idle {
    intervals: Vec<Interval>,
    /// The last moment the device saw the person active (optional heartbeat).
    last_active_at: Option<DateTime<Utc>>,
}

#[tracing::instrument(skip_all, fields(user = %caller.user, session = %session))]
pub async fn idle(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(session): ApiPath<Uuid>,
    ApiJson(body): ApiJson<Idle>,
) -> Result<Json<Session>, ApiError> {
    let txn = tenant::begin(&state.db, caller.org).await?;
    let session = sessions::add_idle(
        &txn,
        caller.org,
        caller.user,
        session,
        &body.intervals,
        body.last_active_at,
    )
    .await?;
    txn.commit().await?;
    Ok(Json(session))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SessionRange {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    /// Someone else's sessions (a manager for their teams, owners and admins for anyone).
    user_id: Option<i64>,
}

/// Sessions overlapping `[from, to)` (default: the last 7 days).
#[utoipa::path(get, path = "/api/v1/sessions", tag = "attendance", params(SessionRange),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<jobs::attendance::sessions::Session>), crate::error::ReadErrors))]
#[tracing::instrument(skip_all, fields(user = %caller.user))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(range): ApiQuery<SessionRange>,
) -> Result<Json<Vec<Session>>, ApiError> {
    let to = range.to.unwrap_or_else(Utc::now);
    let from = range.from.unwrap_or(to - Duration::days(7));
    if from >= to || to - from > MAX_SESSION_SPAN {
        return Err(ApiError::unprocessable(
            "invalid_range",
            "`from` must be before `to`, at most 92 days apart",
        ));
    }
    let target = subject(&caller, range.user_id)?;
    let txn = tenant::begin(&state.db, caller.org).await?;
    accounts::check_can_view(&txn, &caller.viewer(), target).await?;
    let sessions = sessions::list(&txn, caller.org, target, from, to).await?;
    txn.commit().await?;
    Ok(Json(sessions))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DayRange {
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    user_id: Option<i64>,
}

/// Attendance summaries from `from` to `to` inclusive (default: the last 30 days, UTC dates).
#[utoipa::path(get, path = "/api/v1/attendance", tag = "attendance", params(DayRange),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<jobs::attendance::summaries::Summary>), crate::error::ReadErrors))]
#[tracing::instrument(skip_all, fields(user = %caller.user))]
pub async fn attendance(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(range): ApiQuery<DayRange>,
) -> Result<Json<Vec<Summary>>, ApiError> {
    let to = range.to.unwrap_or_else(|| Utc::now().date_naive());
    let from = range.from.unwrap_or(to - Duration::days(29));
    if from > to || (to - from).num_days() >= MAX_ATTENDANCE_DAYS {
        return Err(ApiError::unprocessable(
            "invalid_range",
            "`from` must not be after `to`, at most 366 days",
        ));
    }
    let target = subject(&caller, range.user_id)?;
    let txn = tenant::begin(&state.db, caller.org).await?;
    accounts::check_can_view(&txn, &caller.viewer(), target).await?;
    let rows = summaries::list(&txn, caller.org, target, from, to).await?;
    txn.commit().await?;
    Ok(Json(rows))
}

/// Whose data a read is about; a device token speaks only for its own user.
fn subject(caller: &Caller, user_id: Option<i64>) -> Result<UserId, ApiError> {
    match user_id {
        Some(id) if caller.device.is_some() && id != caller.user.0 => Err(ApiError::Forbidden(
            "a device token reads only its own user's sessions".to_owned(),
        )),
        Some(id) => Ok(UserId(id)),
        None => Ok(caller.user),
    }
}
