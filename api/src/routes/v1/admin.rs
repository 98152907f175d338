//! The organization's dead letters and sync jobs, for its owners and admins.
// utoipa's `path` macro spells the parameter types out in full.
#![allow(unused_qualifications)]

use axum::{Extension, Json, extract::State};
use jobs::{
    JobKind,
    dead_letters::{self, DeadLetter, DeadLetterDetail, Scope, Selection},
    people::tenant,
    runtime::config::parse_duration,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiPath, ApiQuery};
use crate::{auth::Caller, error::ApiError, startup::AppState};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    queue: Option<String>,
    limit: Option<u64>,
}

fn queue(raw: Option<String>) -> Result<Option<String>, ApiError> {
    raw.map(|q| {
        JobKind::parse(&q)
            .map(|k| k.as_str().to_owned())
            .or_else(|| jobs::sync::SyncKind::parse(&q).map(|k| k.as_str().to_owned()))
            .or_else(|| (q == jobs::analytics::notify::QUEUE).then(|| q.clone()))
            .ok_or_else(|| ApiError::unprocessable("unknown_queue", format!("unknown queue {q:?}")))
    })
    .transpose()
}

/// Your organization's open dead letters, newest first.
#[utoipa::path(get, path = "/api/v1/admin/dead-letters", tag = "admin", params(ListQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<jobs::dead_letters::DeadLetter>), crate::error::ReadErrors))]
#[tracing::instrument(skip_all, fields(org = %caller.org))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Vec<DeadLetter>>, ApiError> {
    let queue = queue(query.queue)?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1_000);
    let txn = tenant::begin(&state.db, caller.org).await?;
    let letters = dead_letters::list(
        &txn,
        Scope::Organization(caller.org),
        queue.as_deref(),
        limit,
    )
    .await?;
    txn.commit().await?;
    Ok(Json(letters))
}

/// One dead letter with its job and delivery.
#[utoipa::path(get, path = "/api/v1/admin/dead-letters/{letter_id}", tag = "admin", params(("letter_id" = i64, Path, description = "The dead letter")),
    security(("bearer" = [])),
    responses((status = 200, body = jobs::dead_letters::DeadLetterDetail), crate::error::ReadErrors))]
#[tracing::instrument(skip_all, fields(org = %caller.org, letter = id))]
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<DeadLetterDetail>, ApiError> {
    let txn = tenant::begin(&state.db, caller.org).await?;
    let letter = dead_letters::show(&txn, Scope::Organization(caller.org), id).await?;
    txn.commit().await?;
    letter
        .map(Json)
        .ok_or_else(|| ApiError::Missing("no such dead letter".to_owned()))
}

#[tracing::instrument(skip_all, fields(org = %caller.org, letter = id))]
pub async fn retry_one(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    let scope = Scope::Organization(caller.org);
    let txn = tenant::begin(&state.db, caller.org).await?;
    let ids = dead_letters::retry(&txn, scope, &Selection::One(id)).await?;
    if ids.is_empty() {
        let exists = dead_letters::show(&txn, scope, id).await?.is_some();
        return Err(if exists {
            ApiError::Conflict {
                code: "not_open",
                message: format!("dead letter {id} was already retried"),
                details: None,
            }
        } else {
            ApiError::Missing("no such dead letter".to_owned())
        });
    }
    txn.commit().await?;
    Ok(Json(json!({ "retried": ids })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueQuery {
    queue: Option<String>,
}

#[tracing::instrument(skip_all, fields(org = %caller.org))]
pub async fn retry_all(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(query): ApiQuery<QueueQuery>,
) -> Result<Json<Value>, ApiError> {
    let queue = queue(query.queue)?;
    let txn = tenant::begin(&state.db, caller.org).await?;
    let ids = dead_letters::retry(
        &txn,
        Scope::Organization(caller.org),
        &Selection::All { queue },
    )
    .await?;
    txn.commit().await?;
    Ok(Json(json!({ "retried": ids })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeQuery {
    /// e.g. `30d`, `12h`.
    older_than: String,
}

#[tracing::instrument(skip_all, fields(org = %caller.org))]
pub async fn purge(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(query): ApiQuery<PurgeQuery>,
) -> Result<Json<Value>, ApiError> {
    let age = parse_duration(query.older_than.trim()).ok_or_else(|| {
        ApiError::unprocessable(
            "invalid_age",
            "older_than is an age such as 30d, 12h or 90m",
        )
    })?;
    let txn = tenant::begin(&state.db, caller.org).await?;
    let purged = dead_letters::purge(&txn, Scope::Organization(caller.org), age).await?;
    txn.commit().await?;
    Ok(Json(json!({ "purged": purged })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SyncQuery {
    limit: Option<u64>,
}

/// The organization's sync jobs (backfills, reconciles), newest first, with their progress.
#[utoipa::path(get, path = "/api/v1/admin/sync-jobs", tag = "admin", params(SyncQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<jobs::sync::JobRow>), crate::error::ReadErrors))]
#[tracing::instrument(skip_all, fields(org = %caller.org))]
pub async fn sync_jobs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(query): ApiQuery<SyncQuery>,
) -> Result<Json<Vec<jobs::sync::JobRow>>, ApiError> {
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let txn = tenant::begin(&state.db, caller.org).await?;
    let rows = jobs::sync::list(&txn, Some(caller.org.0), limit).await?;
    txn.commit().await?;
    Ok(Json(rows))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CronRunQuery {
    /// One schedule (`nightlyMetrics`, `hourlyAlerts`, …).
    schedule: Option<String>,
    /// Runs per page, 1–500 (default 100).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// When the cron schedules ran (every replica's runs; one claims each tick), newest first.
#[utoipa::path(get, path = "/api/v1/admin/cron-runs", tag = "admin", params(CronRunQuery),
    security(("bearer" = [])),
    responses((status = 200, body = super::dashboards::Page<jobs::reads::CronRun>), crate::error::ReadErrors))]
#[tracing::instrument(skip_all, fields(org = %caller.org))]
pub async fn cron_runs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(query): ApiQuery<CronRunQuery>,
) -> Result<Json<super::dashboards::Page<jobs::reads::CronRun>>, ApiError> {
    use super::dashboards::{Page, cursor_time, decode_cursor, limit};
    let limit = limit(query.limit)?;
    let before = match query
        .cursor
        .as_deref()
        .map(decode_cursor::<2>)
        .transpose()?
    {
        Some([tick, schedule]) => Some((
            cursor_time::<chrono::DateTime<chrono::FixedOffset>>(&tick)?.to_utc(),
            schedule,
        )),
        None => None,
    };
    let txn = tenant::begin(&state.db, caller.org).await?;
    let items = jobs::reads::cron_runs(&txn, query.schedule.as_deref(), before, limit).await?;
    txn.commit().await?;
    Ok(Json(Page::new(items, limit, |last| {
        vec![last.tick.to_rfc3339(), last.schedule.clone()]
    })))
}
