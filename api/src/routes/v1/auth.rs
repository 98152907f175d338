//! Sign-in, token refresh and sign-out.

use std::net::{IpAddr, SocketAddr};

use axum::{
    Json,
    extract::{ConnectInfo, State},
    http::{HeaderMap, StatusCode},
};
use jobs::people::{
    Email, OrgId, Role, UserId,
    accounts::find_for_login,
    secrets::{Password, verify_password},
    throttle::Scope,
    tokens::{self, RefreshError},
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::ApiJson;
use crate::{auth::ACCESS_TTL, error::ApiError, startup::AppState};

#[derive(Debug, Deserialize)]
pub struct LoginRequest {
    email: String,
    password: String,
}

/// What a successful sign-in or refresh returns.
#[derive(Debug, Serialize)]
pub struct TokenPair {
    access_token: String,
    token_type: &'static str,
    /// Seconds the access token is valid.
    expires_in: u64,
    refresh_token: String,
    user_id: i64,
    organization_id: i64,
    role: Role,
}

impl TokenPair {
    fn new(state: &AppState, user: UserId, org: OrgId, role: Role, refresh: String) -> Self {
        Self {
            access_token: state.jwt.issue(user, org, role),
            token_type: "Bearer",
            expires_in: ACCESS_TTL.as_secs(),
            refresh_token: refresh,
            user_id: user.0,
            organization_id: org.0,
            role,
        }
    }
}

/// The client's address for throttling: the peer, or the last `X-Forwarded-For` hop when the
/// deployment says a proxy writes it.
fn client_address(peer: SocketAddr, headers: &HeaderMap, trust_forwarded_for: bool) -> String {
    let forwarded = trust_forwarded_for
        .then(|| headers.get("x-forwarded-for")?.to_str().ok())
        .flatten()
        .and_then(|v| v.rsplit(',').next())
        .and_then(|v| v.trim().parse::<IpAddr>().ok());
    forwarded.unwrap_or(peer.ip()).to_string()
}

#[tracing::instrument(skip_all)]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    let email =
        Email::parse(&body.email).map_err(|m| ApiError::unprocessable("invalid_email", m))?;
    let address = client_address(peer, &headers, state.trust_forwarded_for);
    if let Err(blocked) = state
        .throttle
        .check(&state.db, email.as_str(), &address)
        .await?
    {
        let whom = match blocked.scope {
            Scope::Account => "this account",
            Scope::Address => "your address",
        };
        state.metrics.count_sign_in("throttled");
        return Err(ApiError::TooManyRequests {
            message: format!(
                "too many failed sign-ins for {whom}; try again in {} seconds",
                blocked.retry_after.as_secs()
            ),
            retry_after: blocked.retry_after,
        });
    }
    let record = find_for_login(&state.db, &email).await?;
    let stored = record.as_ref().and_then(|r| r.password_hash.clone());
    let password = body.password;
    let verified = state
        .hash(move || {
            password.len() <= Password::MAX_BYTES && verify_password(&password, stored.as_deref())
        })
        .await?;
    let Some(record) = record.filter(|_| verified) else {
        state
            .throttle
            .record_failure(&state.db, email.as_str(), &address)
            .await?;
        state.metrics.count_sign_in("invalid_credentials");
        tracing::info!(client = %address, "failed sign-in");
        return Err(ApiError::unauthorized(
            "invalid_credentials",
            "the email or password is wrong",
        ));
    };
    let refusal = if !record.active {
        Some("this account is disabled")
    } else if record.organization_status == "removed" {
        Some("this organization has been removed")
    } else {
        None
    };
    if let Some(refusal) = refusal {
        state.metrics.count_sign_in("disabled");
        return Err(ApiError::Forbidden(refusal.to_owned()));
    }
    state
        .throttle
        .clear_account(&state.db, email.as_str())
        .await?;
    let refresh = tokens::issue_refresh(&state.db, record.org, record.user_id, None).await?;
    state.metrics.count_sign_in("success");
    tracing::info!(user = %record.user_id, org = %record.org, "signed in");
    Ok(Json(TokenPair::new(
        &state,
        record.user_id,
        record.org,
        record.role,
        refresh.text.expose_secret().to_owned(),
    )))
}

#[derive(Debug, Deserialize)]
pub struct RefreshRequest {
    refresh_token: String,
}

#[tracing::instrument(skip_all)]
pub async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    match tokens::rotate(&state.db, &body.refresh_token).await {
        Ok((who, next)) => Ok(Json(TokenPair::new(
            &state,
            who.user,
            who.org,
            who.role,
            next.text.expose_secret().to_owned(),
        ))),
        Err(RefreshError::Invalid) => Err(ApiError::unauthorized(
            "invalid_refresh_token",
            RefreshError::Invalid.to_string(),
        )),
        Err(RefreshError::Reused) => {
            state.metrics.count_sign_in("refresh_reused");
            Err(ApiError::unauthorized(
                "refresh_token_reused",
                RefreshError::Reused.to_string(),
            ))
        }
        Err(RefreshError::Db(e)) => Err(e.into()),
    }
}

/// Ends the sign-in the refresh token belongs to (every token of its family). Access tokens
/// already issued expire on their own within 15 minutes.
#[tracing::instrument(skip_all)]
pub async fn logout(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    tokens::revoke_family(&state.db, &body.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}
