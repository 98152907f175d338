//! Users: who am I, the people a role may see, invites, and changes by admins.
// utoipa's `path` macro spells the parameter types out in full.
#![allow(unused_qualifications)]

use axum::{Extension, Json, extract::State, http::StatusCode};
use jobs::people::{
    Email, Role, UserId,
    accounts::{self, GithubLink, NewUser, User, UserChanges},
    secrets::Password,
    teams::{self, Team},
    tenant,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::{ApiJson, ApiPath, double_option};
use crate::{auth::Caller, error::ApiError, startup::AppState};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Me {
    user: User,
    teams: Vec<Team>,
    /// Set when a device token is speaking.
    device_id: Option<uuid::Uuid>,
}

/// You, your teams, and the device speaking if a device token is used.
#[utoipa::path(get, path = "/api/v1/me", tag = "people", 
    security(("bearer" = [])),
    responses((status = 200, body = Me), crate::error::ReadErrors))]
#[tracing::instrument(skip_all, fields(user = %caller.user))]
pub async fn me(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Me>, ApiError> {
    let txn = tenant::begin(&state.db, caller.org).await?;
    let user = accounts::get_user(&txn, caller.org, caller.user).await?;
    let mut viewer = caller.viewer();
    // "My teams": the ones I belong to, whatever my role.
    viewer.role = Role::Developer;
    let teams = teams::list(&txn, &viewer).await?;
    txn.commit().await?;
    Ok(Json(Me {
        user,
        teams,
        device_id: caller.device,
    }))
}

/// Everything DevPulse stores about the caller (the transparency promise), secrets' hashes
/// left out.
#[tracing::instrument(skip_all, fields(user = %caller.user))]
pub async fn my_data(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let txn = tenant::begin(&state.db, caller.org).await?;
    let everything = jobs::people::export::everything(&txn, caller.org, caller.user).await?;
    txn.commit().await?;
    Ok(Json(everything))
}

/// The people you may see: everyone for owners and admins, your teams' members for managers, yourself for developers.
#[utoipa::path(get, path = "/api/v1/users", tag = "people", 
    security(("bearer" = [])),
    responses((status = 200, body = Vec<jobs::people::accounts::User>), crate::error::ReadErrors))]
#[tracing::instrument(skip_all, fields(user = %caller.user))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<User>>, ApiError> {
    let txn = tenant::begin(&state.db, caller.org).await?;
    let users = accounts::list_users(&txn, &caller.viewer()).await?;
    txn.commit().await?;
    Ok(Json(users))
}

/// One person you may see.
#[utoipa::path(get, path = "/api/v1/users/{user_id}", tag = "people", params(("user_id" = i64, Path, description = "The person")),
    security(("bearer" = [])),
    responses((status = 200, body = jobs::people::accounts::User), crate::error::ReadErrors))]
#[tracing::instrument(skip_all, fields(user = %caller.user, target = target))]
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(target): ApiPath<i64>,
) -> Result<Json<User>, ApiError> {
    let txn = tenant::begin(&state.db, caller.org).await?;
    let user = accounts::check_can_view(&txn, &caller.viewer(), UserId(target)).await?;
    txn.commit().await?;
    Ok(Json(user))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    email: String,
    display_name: String,
    role: Role,
}

#[derive(Debug, Serialize)]
pub struct Invited {
    user: User,
    /// Shown once: the invitee sets their password with it at `POST /api/v1/invites/accept`.
    invite_token: String,
    invite_url: String,
    invite_expires_at: chrono::DateTime<chrono::Utc>,
}

fn invited(state: &AppState, user: User, invite: accounts::Invite) -> Invited {
    let token = invite.token.text.expose_secret().to_owned();
    Invited {
        user,
        invite_url: format!("{}/invite#{token}", state.public_url),
        invite_token: token,
        invite_expires_at: invite.expires_at,
    }
}

/// Creates a user who sets their own password through the invite.
#[tracing::instrument(skip_all, fields(user = %caller.user))]
pub async fn invite(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<InviteRequest>,
) -> Result<(StatusCode, Json<Invited>), ApiError> {
    let email =
        Email::parse(&body.email).map_err(|m| ApiError::unprocessable("invalid_email", m))?;
    let display_name = jobs::people::display_name(&body.display_name)
        .map_err(|m| ApiError::unprocessable("invalid_name", m))?;
    if body.role == Role::Owner && caller.role != Role::Owner {
        return Err(ApiError::Forbidden(
            "only an owner can make someone owner".to_owned(),
        ));
    }
    let txn = tenant::begin(&state.db, caller.org).await?;
    let new = NewUser {
        email,
        display_name,
        role: body.role,
    };
    let created = accounts::create_user(&txn, caller.org, &new, None).await?;
    txn.commit().await?;
    let invite = created
        .invite
        .ok_or_else(|| ApiError::Internal("user created without an invite".to_owned()))?;
    Ok((
        StatusCode::CREATED,
        Json(invited(&state, created.user, invite)),
    ))
}

/// A new invite for a user (the old one stops working), e.g. after it expired.
#[tracing::instrument(skip_all, fields(user = %caller.user, target = target))]
pub async fn reinvite(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(target): ApiPath<i64>,
) -> Result<(StatusCode, Json<Invited>), ApiError> {
    let txn = tenant::begin(&state.db, caller.org).await?;
    let user = accounts::get_user(&txn, caller.org, UserId(target)).await?;
    if user.role == Role::Owner && caller.role != Role::Owner {
        return Err(ApiError::Forbidden(
            "only an owner can invite an owner".to_owned(),
        ));
    }
    let invite = accounts::create_invite(&txn, caller.org, UserId(target)).await?;
    txn.commit().await?;
    Ok((StatusCode::CREATED, Json(invited(&state, user, invite))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    display_name: Option<String>,
    role: Option<Role>,
    active: Option<bool>,
    /// `{"login": "octocat"}` or `{"id": 583231}`; `null` unlinks.
    #[serde(default, deserialize_with = "double_option")]
    github: Option<Option<GithubRef>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubRef {
    login: Option<String>,
    id: Option<i64>,
}

#[tracing::instrument(skip_all, fields(user = %caller.user, target = target))]
pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(target): ApiPath<i64>,
    ApiJson(body): ApiJson<UpdateRequest>,
) -> Result<Json<User>, ApiError> {
    let github = match body.github {
        None => None,
        Some(None) => Some(None),
        Some(Some(GithubRef {
            login: Some(login),
            id: None,
        })) => Some(Some(GithubLink::Login(login))),
        Some(Some(GithubRef {
            login: None,
            id: Some(id),
        })) => Some(Some(GithubLink::Id(id))),
        Some(Some(_)) => {
            return Err(ApiError::unprocessable(
                "invalid_github",
                "github takes exactly one of `login` or `id`",
            ));
        }
    };
    let changes = UserChanges {
        display_name: body.display_name,
        role: body.role,
        active: body.active,
        github,
    };
    let txn = tenant::begin(&state.db, caller.org).await?;
    let user = accounts::update_user(&txn, &caller.viewer(), UserId(target), changes).await?;
    txn.commit().await?;
    Ok(Json(user))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    token: String,
    password: String,
}

/// Sets the invitee's password; they sign in next.
#[tracing::instrument(skip_all)]
pub async fn accept_invite(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<AcceptRequest>,
) -> Result<Json<User>, ApiError> {
    let password =
        Password::parse(&body.password).map_err(|m| ApiError::unprocessable("weak_password", m))?;
    let hash = state.hash(move || password.hash()).await?;
    let user = accounts::accept_invite(&state.db, &body.token, hash).await?;
    Ok(Json(user))
}
