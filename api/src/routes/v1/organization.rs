//! The caller's organization and its settings.
// utoipa's `path` macro spells the parameter types out in full.
#![allow(unused_qualifications)]

use axum::{Extension, Json, extract::State};
use jobs::people::{
    accounts::{self, OrgChanges, Organization},
    tenant,
};
use serde::Deserialize;

use super::{ApiJson, double_option};
use crate::{auth::Caller, error::ApiError, startup::AppState};

/// Your organization and its settings.
#[utoipa::path(get, path = "/api/v1/organization", tag = "people", 
    security(("bearer" = [])),
    responses((status = 200, body = jobs::people::accounts::Organization), crate::error::ReadErrors))]
#[tracing::instrument(skip_all, fields(org = %caller.org))]
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Organization>, ApiError> {
    let txn = tenant::begin(&state.db, caller.org).await?;
    let org = accounts::organization_by_id(&txn, caller.org).await?;
    txn.commit().await?;
    Ok(Json(org))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    name: Option<String>,
    time_zone: Option<String>,
    /// A session open longer than this is closed at its last activity (3600–172800).
    session_limit_seconds: Option<i32>,
    /// Active time beyond this counts as overtime (0–86400).
    daily_target_seconds: Option<i32>,
    /// Analytics settings (docs/METRICS.md); replaces them, missing keys take defaults.
    analytics: Option<serde_json::Value>,
    /// Where health-alert notifications go; null turns them off.
    #[serde(default, deserialize_with = "double_option")]
    notification_url: Option<Option<String>>,
    /// Signs notifications (16–200 characters); null sends them unsigned. Never shown again.
    #[serde(default, deserialize_with = "double_option")]
    notification_secret: Option<Option<String>>,
}

#[tracing::instrument(skip_all, fields(org = %caller.org))]
pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<UpdateRequest>,
) -> Result<Json<Organization>, ApiError> {
    let txn = tenant::begin(&state.db, caller.org).await?;
    let org = accounts::update_org(
        &txn,
        caller.org,
        OrgChanges {
            name: body.name,
            time_zone: body.time_zone,
            session_limit_seconds: body.session_limit_seconds,
            daily_target_seconds: body.daily_target_seconds,
            analytics: body.analytics,
            notification_url: body.notification_url,
            notification_secret: body.notification_secret,
        },
    )
    .await?;
    txn.commit().await?;
    Ok(Json(org))
}
