//! Teams and their members.
// utoipa's `path` macro spells the parameter types out in full.
#![allow(unused_qualifications)]

use axum::{Extension, Json, extract::State, http::StatusCode};
use jobs::people::{
    UserId,
    teams::{self, Team},
    tenant,
};
use serde::Deserialize;

use super::{ApiJson, ApiPath};
use crate::{auth::Caller, error::ApiError, startup::AppState};

/// The teams you may see: all for owners and admins, yours otherwise.
#[utoipa::path(get, path = "/api/v1/teams", tag = "people", 
    security(("bearer" = [])),
    responses((status = 200, body = Vec<jobs::people::teams::Team>), crate::error::ReadErrors))]
#[tracing::instrument(skip_all, fields(user = %caller.user))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<Team>>, ApiError> {
    let txn = tenant::begin(&state.db, caller.org).await?;
    let teams = teams::list(&txn, &caller.viewer()).await?;
    txn.commit().await?;
    Ok(Json(teams))
}

/// One team (its members and the organization's admins).
#[utoipa::path(get, path = "/api/v1/teams/{team_id}", tag = "people", params(("team_id" = i64, Path, description = "The team")),
    security(("bearer" = [])),
    responses((status = 200, body = jobs::people::teams::Team), crate::error::ReadErrors))]
#[tracing::instrument(skip_all, fields(user = %caller.user, team = team))]
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(team): ApiPath<i64>,
) -> Result<Json<Team>, ApiError> {
    let txn = tenant::begin(&state.db, caller.org).await?;
    let team = teams::get(&txn, &caller.viewer(), team).await?;
    txn.commit().await?;
    Ok(Json(team))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    name: String,
}

#[tracing::instrument(skip_all, fields(user = %caller.user))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<CreateRequest>,
) -> Result<(StatusCode, Json<Team>), ApiError> {
    let txn = tenant::begin(&state.db, caller.org).await?;
    let team = teams::create(&txn, caller.org, &body.name).await?;
    txn.commit().await?;
    Ok((StatusCode::CREATED, Json(team)))
}

#[tracing::instrument(skip_all, fields(user = %caller.user, team = team))]
pub async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(team): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    let txn = tenant::begin(&state.db, caller.org).await?;
    teams::delete(&txn, caller.org, team).await?;
    txn.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MemberRequest {
    #[serde(default)]
    manager: bool,
}

/// Adds a member, or sets whether they manage the team.
#[tracing::instrument(skip_all, fields(user = %caller.user, team = team, member = member))]
pub async fn set_member(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath((team, member)): ApiPath<(i64, i64)>,
    ApiJson(body): ApiJson<MemberRequest>,
) -> Result<StatusCode, ApiError> {
    let txn = tenant::begin(&state.db, caller.org).await?;
    teams::set_member(&txn, caller.org, team, UserId(member), body.manager).await?;
    txn.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[tracing::instrument(skip_all, fields(user = %caller.user, team = team, member = member))]
pub async fn remove_member(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath((team, member)): ApiPath<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    let txn = tenant::begin(&state.db, caller.org).await?;
    teams::remove_member(&txn, caller.org, team, UserId(member)).await?;
    txn.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
