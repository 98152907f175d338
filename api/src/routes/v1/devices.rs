//! Device tokens for the desktop tracker.
// utoipa's `path` macro spells the parameter types out in full.
#![allow(unused_qualifications)]

use axum::{Extension, Json, extract::State, http::StatusCode};
use jobs::people::{
    tenant,
    tokens::{self, Device},
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ApiJson, ApiPath};
use crate::{auth::Caller, error::ApiError, startup::AppState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// What the person calls this device, e.g. "work laptop".
    name: String,
}

#[derive(Debug, Serialize)]
pub struct Created {
    device: Device,
    /// Shown once; the tracker sends it as `Authorization: Bearer …`.
    token: String,
}

#[tracing::instrument(skip_all, fields(user = %caller.user))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<CreateRequest>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let txn = tenant::begin(&state.db, caller.org).await?;
    let (device, token) = tokens::create_device(&txn, caller.org, caller.user, &body.name).await?;
    txn.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(Created {
            device,
            token: token.text.expose_secret().to_owned(),
        }),
    ))
}

/// Your tracker devices (never their tokens).
#[utoipa::path(get, path = "/api/v1/devices", tag = "people", 
    security(("bearer" = [])),
    responses((status = 200, body = Vec<jobs::people::tokens::Device>), crate::error::ReadErrors))]
#[tracing::instrument(skip_all, fields(user = %caller.user))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<Device>>, ApiError> {
    let txn = tenant::begin(&state.db, caller.org).await?;
    let devices = tokens::list_devices(&txn, caller.org, caller.user).await?;
    txn.commit().await?;
    Ok(Json(devices))
}

/// Revokes one of the caller's devices; owners and admins may revoke any device of the
/// organization (a lost laptop).
#[tracing::instrument(skip_all, fields(user = %caller.user, device = %device))]
pub async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(device): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    let txn = tenant::begin(&state.db, caller.org).await?;
    let owner = (!caller.role.administers()).then_some(caller.user);
    tokens::revoke_device(&txn, caller.org, device, owner).await?;
    txn.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
