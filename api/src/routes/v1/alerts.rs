//! Health alerts: the ones a caller may see, newest first, and acknowledging one.
// utoipa's `path` macro spells the parameter types out in full.
#![allow(unused_qualifications)]

use axum::{Extension, Json, extract::State};
use jobs::{
    people::{UserId, tenant},
    reads::{self, Alert, AlertStatus},
};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{
    ApiPath, ApiQuery,
    dashboards::{Page, cursor_field, decode_cursor, limit},
};
use crate::{
    auth::Caller,
    error::{ApiError, ErrorResponse, ReadErrors},
    startup::AppState,
};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// `open` (default), `resolved` or `all`.
    #[param(inline)]
    status: Option<AlertStatus>,
    /// Only the alerts about this person.
    user_id: Option<i64>,
    /// Alerts per page, 1–500 (default 100).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The alerts the caller may see: the organization's, and those about people they may see
/// (`inactivity` only to the person and their managers).
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", params(AlertQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<Alert>), ReadErrors))]
#[tracing::instrument(skip_all, fields(org = %caller.org, user = %caller.user))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(query): ApiQuery<AlertQuery>,
) -> Result<Json<Page<Alert>>, ApiError> {
    let limit = limit(query.limit)?;
    let before = match query
        .cursor
        .as_deref()
        .map(decode_cursor::<1>)
        .transpose()?
    {
        Some([id]) => Some(cursor_field::<i64>(&id)?),
        None => None,
    };
    let txn = tenant::begin(&state.db, caller.org).await?;
    let items = reads::alerts(
        &txn,
        &caller.viewer(),
        query.status.unwrap_or_default(),
        query.user_id.map(UserId),
        before,
        limit,
    )
    .await?;
    txn.commit().await?;
    Ok(Json(Page::new(items, limit, |last| {
        vec![last.id.to_string()]
    })))
}

/// Acknowledges an open alert the caller may see (the first acknowledgement is kept).
#[utoipa::path(post, path = "/api/v1/alerts/{alert_id}/acknowledge", tag = "alerts",
    params(("alert_id" = i64, Path, description = "The alert")),
    security(("bearer" = [])),
    responses((status = 200, body = Alert), (status = 409, body = ErrorResponse), ReadErrors))]
#[tracing::instrument(skip_all, fields(org = %caller.org, user = %caller.user, alert))]
pub async fn acknowledge(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(alert): ApiPath<i64>,
) -> Result<Json<Alert>, ApiError> {
    tracing::Span::current().record("alert", alert);
    let txn = tenant::begin(&state.db, caller.org).await?;
    let acknowledged = reads::acknowledge(&txn, &caller.viewer(), alert).await?;
    txn.commit().await?;
    Ok(Json(acknowledged))
}
