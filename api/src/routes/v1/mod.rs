//! `/api/v1`: every route with the rule that guards it, declared in one table ([`table`]).
//!
//! A rule says who may call a route at all (signed in, which roles, whether a device token
//! will do). What a caller may see inside a route — a manager their teams' people, a developer
//! themselves — is decided by the handlers through `jobs::people::accounts::check_can_view`,
//! and every query runs in a tenant transaction that row-level security checks again.

pub mod admin;
pub mod alerts;
pub mod auth;
pub mod dashboards;
pub mod deployments;
pub mod devices;
pub mod organization;
pub mod sessions;
pub mod teams;
pub mod users;

use axum::{
    Router,
    extract::{FromRequest, FromRequestParts, Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{MethodRouter, delete, get, patch, post, put},
};
use jobs::people::{
    Role,
    secrets::{TokenKind, is_token_of},
    tokens,
};

use crate::{
    auth::{Caller, TokenProblem},
    error::ApiError,
    startup::AppState,
};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// No credentials (sign-in, token refresh, invite acceptance).
    Public,
    /// A signed-in user whose role is listed; `device`: a device token will do as well.
    Signed {
        roles: &'static [Role],
        device: bool,
    },
    /// An organization API key (`dpk_…`), for machine clients.
    ApiKey,
}

const EVERYONE: &[Role] = &Role::ALL;
const ADMINS: &[Role] = &[Role::Owner, Role::Admin];

/// Any signed-in user (what they see inside is scoped by role).
pub const SIGNED_IN: Rule = Rule::Signed {
    roles: EVERYONE,
    device: false,
};
/// The desktop tracker: a device token or any signed-in user.
pub const TRACKER: Rule = Rule::Signed {
    roles: EVERYONE,
    device: true,
};
/// Owners and admins.
pub const ADMIN: Rule = Rule::Signed {
    roles: ADMINS,
    device: false,
};

/// One route of `/api/v1`, as the authorization test enumerates them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub rule: Rule,
}

fn spec(method: Method, path: &'static str, rule: Rule) -> RouteSpec {
    RouteSpec { method, path, rule }
}

/// Every `/api/v1` route, its rule and its handler: the one place rules are declared.
fn table() -> Vec<(RouteSpec, MethodRouter<AppState>)> {
    use Method as M;
    vec![
        (
            spec(M::POST, "/api/v1/auth/login", Rule::Public),
            post(auth::login),
        ),
        (
            spec(M::POST, "/api/v1/auth/refresh", Rule::Public),
            post(auth::refresh),
        ),
        (
            spec(M::POST, "/api/v1/auth/logout", Rule::Public),
            post(auth::logout),
        ),
        (
            spec(M::POST, "/api/v1/invites/accept", Rule::Public),
            post(users::accept_invite),
        ),
        (spec(M::GET, "/api/v1/me", SIGNED_IN), get(users::me)),
        (
            spec(M::GET, "/api/v1/me/data", SIGNED_IN),
            get(users::my_data),
        ),
        (
            spec(M::GET, "/api/v1/organization", SIGNED_IN),
            get(organization::show),
        ),
        (
            spec(M::PATCH, "/api/v1/organization", ADMIN),
            patch(organization::update),
        ),
        (spec(M::GET, "/api/v1/users", SIGNED_IN), get(users::list)),
        (spec(M::POST, "/api/v1/users", ADMIN), post(users::invite)),
        (
            spec(M::GET, "/api/v1/users/{user_id}", SIGNED_IN),
            get(users::show),
        ),
        (
            spec(M::PATCH, "/api/v1/users/{user_id}", ADMIN),
            patch(users::update),
        ),
        (
            spec(M::POST, "/api/v1/users/{user_id}/invite", ADMIN),
            post(users::reinvite),
        ),
        (spec(M::GET, "/api/v1/teams", SIGNED_IN), get(teams::list)),
        (spec(M::POST, "/api/v1/teams", ADMIN), post(teams::create)),
        (
            spec(M::GET, "/api/v1/teams/{team_id}", SIGNED_IN),
            get(teams::show),
        ),
        (
            spec(M::DELETE, "/api/v1/teams/{team_id}", ADMIN),
            delete(teams::remove),
        ),
        (
            spec(M::PUT, "/api/v1/teams/{team_id}/members/{user_id}", ADMIN),
            put(teams::set_member),
        ),
        (
            spec(
                M::DELETE,
                "/api/v1/teams/{team_id}/members/{user_id}",
                ADMIN,
            ),
            delete(teams::remove_member),
        ),
        (
            spec(M::POST, "/api/v1/devices", SIGNED_IN),
            post(devices::create),
        ),
        (
            spec(M::GET, "/api/v1/devices", SIGNED_IN),
            get(devices::list),
        ),
        (
            spec(M::DELETE, "/api/v1/devices/{device_id}", SIGNED_IN),
            delete(devices::revoke),
        ),
        (
            spec(M::POST, "/api/v1/sessions/clock-in", TRACKER),
            post(sessions::clock_in),
        ),
        (
            spec(M::POST, "/api/v1/sessions/clock-out", TRACKER),
            post(sessions::clock_out),
        ),
        (
            spec(M::POST, "/api/v1/sessions/{session_id}/idle", TRACKER),
            post(sessions::idle),
        ),
        (
            spec(M::GET, "/api/v1/sessions", TRACKER),
            get(sessions::list),
        ),
        (
            spec(M::GET, "/api/v1/attendance", SIGNED_IN),
            get(sessions::attendance),
        ),
        (
            spec(M::GET, "/api/v1/admin/dead-letters", ADMIN),
            get(admin::list),
        ),
        (
            spec(M::GET, "/api/v1/admin/dead-letters/{letter_id}", ADMIN),
            get(admin::show),
        ),
        (
            spec(
                M::POST,
                "/api/v1/admin/dead-letters/{letter_id}/retry",
                ADMIN,
            ),
            post(admin::retry_one),
        ),
        (
            spec(M::POST, "/api/v1/admin/dead-letters/retry", ADMIN),
            post(admin::retry_all),
        ),
        (
            spec(M::DELETE, "/api/v1/admin/dead-letters", ADMIN),
            delete(admin::purge),
        ),
        (
            spec(M::GET, "/api/v1/admin/sync-jobs", ADMIN),
            get(admin::sync_jobs),
        ),
        (
            spec(M::POST, "/api/v1/admin/api-keys", ADMIN),
            post(deployments::create_key),
        ),
        (
            spec(M::GET, "/api/v1/admin/api-keys", ADMIN),
            get(deployments::list_keys),
        ),
        (
            spec(M::DELETE, "/api/v1/admin/api-keys/{key_id}", ADMIN),
            delete(deployments::revoke_key),
        ),
        (
            spec(M::POST, "/api/v1/deployments", Rule::ApiKey),
            post(deployments::report),
        ),
        (
            spec(M::GET, "/api/v1/overview", SIGNED_IN),
            get(dashboards::overview),
        ),
        (
            spec(M::GET, "/api/v1/teams/{team_id}/metrics", SIGNED_IN),
            get(dashboards::team),
        ),
        (
            spec(M::GET, "/api/v1/developers/{user_id}", SIGNED_IN),
            get(dashboards::developer),
        ),
        (
            spec(M::GET, "/api/v1/repositories", SIGNED_IN),
            get(dashboards::repositories),
        ),
        (
            spec(M::GET, "/api/v1/dora", SIGNED_IN),
            get(dashboards::dora),
        ),
        (
            spec(M::GET, "/api/v1/metrics/daily", SIGNED_IN),
            get(dashboards::daily),
        ),
        (
            spec(M::GET, "/api/v1/metrics/definitions", SIGNED_IN),
            get(dashboards::definitions),
        ),
        (spec(M::GET, "/api/v1/alerts", SIGNED_IN), get(alerts::list)),
        (
            spec(M::POST, "/api/v1/alerts/{alert_id}/acknowledge", SIGNED_IN),
            post(alerts::acknowledge),
        ),
        (
            spec(M::GET, "/api/v1/admin/cron-runs", ADMIN),
            get(admin::cron_runs),
        ),
    ]
}

/// The declared routes and rules (for tests and documentation).
pub fn specs() -> Vec<RouteSpec> {
    table().into_iter().map(|(spec, _)| spec).collect()
}

/// The `/api/v1` router, each route behind its rule.
pub fn router(state: AppState) -> Router<AppState> {
    table()
        .into_iter()
        .fold(Router::new(), |router, (spec, handler)| {
            let guarded = handler.route_layer(middleware::from_fn_with_state(
                (state.clone(), spec.rule, spec.path),
                enforce,
            ));
            router.route(spec.path, guarded)
        })
}

/// Authenticates the request as its route's rule asks and hands the handler a [`Caller`];
/// counts and times every request by route template.
async fn enforce(
    State((state, rule, route)): State<(AppState, Rule, &'static str)>,
    request: Request,
    next: Next,
) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().to_string();
    let metrics = state.metrics.clone();
    let if_none_match = (request.method() == Method::GET)
        .then(|| request.headers().get(header::IF_NONE_MATCH).cloned())
        .flatten();
    // PostgreSQL's text cannot hold NUL; refuse it at the edge rather than fail in a query.
    let nul_in_query = request
        .uri()
        .query()
        .is_some_and(|q| q.contains("%00") || q.contains('\0'));
    let mut response = if nul_in_query {
        ApiError::BadRequest {
            code: "invalid_query",
            message: "the query string contains a NUL character (%00)".to_owned(),
        }
        .into_response()
    } else {
        match authorize(&state, rule, request).await {
            Ok(request) => next.run(request).await,
            Err(e) => e.into_response(),
        }
    };
    if method == "GET" && response.status() == StatusCode::OK {
        response = conditional(response, if_none_match.as_ref()).await;
    }
    metrics.observe_api(
        &method,
        route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

async fn authorize(
    state: &AppState,
    rule: Rule,
    mut request: Request,
) -> Result<Request, ApiError> {
    let (roles, device) = match rule {
        Rule::Public => return Ok(request),
        Rule::Signed { roles, device } => (roles, device),
        Rule::ApiKey => return authorize_api_key(state, request).await,
    };
    let token = bearer(&request).ok_or_else(|| {
        ApiError::unauthorized(
            "unauthorized",
            "sign in: send `Authorization: Bearer <access token>`",
        )
    })?;
    let token = token.as_str();
    if is_token_of(TokenKind::ApiKey, token) {
        return Err(ApiError::Forbidden(
            "organization API keys only work for POST /api/v1/deployments; sign in for the rest"
                .to_owned(),
        ));
    }
    let caller = if is_token_of(TokenKind::Device, token) {
        if !device {
            return Err(ApiError::Forbidden(
                "device tokens only work for the session endpoints; sign in for the rest"
                    .to_owned(),
            ));
        }
        let (device, owner) = tokens::authenticate_device(&state.db, token)
            .await?
            .ok_or_else(|| {
                ApiError::unauthorized("invalid_token", "this device token is unknown or revoked")
            })?;
        Caller {
            user: owner.user,
            org: owner.org,
            role: owner.role,
            device: Some(device),
        }
    } else {
        state.jwt.verify(token).map_err(|problem| match problem {
            TokenProblem::Expired => ApiError::unauthorized(
                "token_expired",
                "the access token has expired; refresh it at /api/v1/auth/refresh",
            ),
            TokenProblem::Invalid => {
                ApiError::unauthorized("invalid_token", "the access token is not valid")
            }
        })?
    };
    if !roles.contains(&caller.role) {
        return Err(ApiError::Forbidden(format!(
            "a {} may not do this",
            caller.role
        )));
    }
    request.extensions_mut().insert(caller);
    Ok(request)
}

/// The API-key rule: a live `dpk_…` key; the handler gets an [`ApiClient`].
async fn authorize_api_key(state: &AppState, mut request: Request) -> Result<Request, ApiError> {
    let token = bearer(&request).ok_or_else(|| {
        ApiError::unauthorized(
            "unauthorized",
            "send `Authorization: Bearer <organization API key>` (admins make keys at /api/v1/admin/api-keys)",
        )
    })?;
    if !is_token_of(TokenKind::ApiKey, &token) {
        return Err(ApiError::Forbidden(
            "this endpoint takes an organization API key (dpk_…), not a person's or device's token"
                .to_owned(),
        ));
    }
    let (key, org) = jobs::people::api_keys::authenticate(&state.db, &token)
        .await?
        .ok_or_else(|| {
            ApiError::unauthorized("invalid_token", "this API key is unknown or revoked")
        })?;
    request
        .extensions_mut()
        .insert(crate::auth::ApiClient { key, org });
    Ok(request)
}

fn bearer(request: &Request) -> Option<String> {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

/// Gives a successful read an `ETag` (unless its handler did) and answers 304 Not Modified when
/// the client already holds that version (`If-None-Match`). Reads stay private to the caller
/// and are revalidated before reuse.
async fn conditional(response: Response, if_none_match: Option<&HeaderValue>) -> Response {
    let (mut parts, body) = response.into_parts();
    let (etag, body) = match parts.headers.get(header::ETAG).cloned() {
        Some(etag) => (etag, body),
        None => match axum::body::to_bytes(body, MAX_TAGGED_BODY).await {
            Ok(bytes) => match HeaderValue::from_str(&crate::read_cache::etag_of(&bytes)) {
                Ok(etag) => (etag, axum::body::Body::from(bytes)),
                Err(_) => (HeaderValue::from_static(""), axum::body::Body::from(bytes)),
            },
            Err(e) => {
                return ApiError::Internal(format!("reading a response body: {e}")).into_response();
            }
        },
    };
    parts.headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    if etag.is_empty() {
        return Response::from_parts(parts, body);
    }
    let matches = if_none_match
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').map(str::trim).any(|candidate| {
                candidate == "*" || candidate.trim_start_matches("W/").as_bytes() == etag.as_bytes()
            })
        });
    parts.headers.insert(header::ETAG, etag);
    if matches {
        parts.status = StatusCode::NOT_MODIFIED;
        parts.headers.remove(header::CONTENT_TYPE);
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, axum::body::Body::empty());
    }
    Response::from_parts(parts, body)
}

/// Larger read answers are sent without an `ETag` rather than buffered.
const MAX_TAGGED_BODY: usize = 8 * 1024 * 1024;

/// JSON body whose rejections are [`ApiError`]s. Its strings may not hold NUL (`\u0000`):
/// PostgreSQL's text cannot, and the answer is a 422 rather than a failed query.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .is_some_and(|v| {
                v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
            });
        if !json {
            return Err(ApiError::BadRequest {
                code: "unsupported_content_type",
                message: "send the body as JSON with `Content-Type: application/json`".to_owned(),
            });
        }
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError::BadRequest {
                code: "invalid_json",
                message: e.body_text(),
            })?;
        if has_escaped_nul(&bytes) {
            return Err(ApiError::unprocessable(
                "invalid_body",
                "text may not contain the NUL character (\\u0000)",
            ));
        }
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        Ok(Self(value))
    }
}

/// Whether a JSON text escapes a NUL character (`\u0000` whose backslash is not itself escaped).
fn has_escaped_nul(json: &[u8]) -> bool {
    json.windows(6).enumerate().any(|(at, w)| {
        w.eq_ignore_ascii_case(b"\\u0000")
            && json[..at].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 0
    })
}

/// Query string whose rejections are [`ApiError`]s.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// Path parameters whose rejections are [`ApiError`]s.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// Distinguishes a field left out (`None`) from one set to `null` (`Some(None)`).
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::has_escaped_nul;

    #[test]
    fn an_escaped_nul_is_found_and_an_escaped_backslash_is_not_one() {
        assert!(has_escaped_nul(br#"{"name": "a\u0000b"}"#));
        assert!(has_escaped_nul(br#"{"name": "\\\u0000"}"#));
        assert!(!has_escaped_nul(br#"{"name": "a\\u0000b"}"#));
        assert!(!has_escaped_nul(br#"{"name": "u0000"}"#));
    }
}
