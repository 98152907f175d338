//! `POST /api/v1/deployments`: deployments made outside GitHub, pushed by a pipeline with an
//! organization API key, written through the same deployment writer as GitHub's; and the admin
//! routes that make and revoke those keys.
// utoipa's `path` macro spells the parameter types out in full.
#![allow(unused_qualifications)]

use axum::{Extension, Json, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use jobs::{
    domain::external::{self, ExternalDeployment, ExternalError, STATES},
    people::{
        api_keys::{self, ApiKey},
        tenant,
    },
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ApiJson, ApiPath};
use crate::{
    auth::{ApiClient, Caller},
    error::ApiError,
    startup::AppState,
};

/// A deployment report. Sending the same `id` again records its new status (or nothing new).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The pipeline's own id of this deployment, e.g. `build-1234` (1–200 of `A-Za-z0-9._:/-`).
    id: String,
    /// `owner/name` of one of the organization's repositories.
    repository: String,
    environment: String,
    /// The deployed commit (40 or 64 hexadecimal characters).
    sha: String,
    /// `queued`, `pending`, `in_progress`, `success`, `failure`, `error` or `inactive`.
    status: String,
    /// Whether this is a production deployment; default: the environment name decides.
    production: Option<bool>,
    /// Branch or tag (default: the sha).
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    /// When the deployment started (default: now).
    created_at: Option<DateTime<Utc>>,
    /// When it reached `status` (default: now).
    finished_at: Option<DateTime<Utc>>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::unprocessable("invalid_deployment", message)
}

fn parse(report: Report, now: DateTime<Utc>) -> Result<ExternalDeployment, ApiError> {
    let id_ok = (1..=200).contains(&report.id.len())
        && report
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-'));
    if !id_ok {
        return Err(invalid("`id` must be 1–200 characters of A-Za-z0-9._:/-"));
    }
    let repo_ok = report
        .repository
        .split_once('/')
        .is_some_and(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains('/'))
        && report.repository.len() <= 200;
    if !repo_ok {
        return Err(invalid("`repository` must be owner/name"));
    }
    let environment = report.environment.trim();
    if environment.is_empty() || environment.len() > 255 {
        return Err(invalid("`environment` must be 1–255 characters"));
    }
    if !matches!(report.sha.len(), 40 | 64) || !report.sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(
            "`sha` must be a full commit sha (40 or 64 hexadecimal characters)",
        ));
    }
    if !STATES.contains(&report.status.as_str()) {
        return Err(invalid(format!(
            "`status` must be one of {}",
            STATES.join(", ")
        )));
    }
    let created_at = report.created_at.unwrap_or(now);
    let status_at = report.finished_at.unwrap_or(now);
    let skew = chrono::Duration::minutes(5);
    if created_at > now + skew || status_at > now + skew {
        return Err(invalid(
            "`created_at` and `finished_at` may not be in the future",
        ));
    }
    if status_at < created_at {
        return Err(invalid("`finished_at` is before `created_at`"));
    }
    let sha = report.sha.to_ascii_lowercase();
    Ok(ExternalDeployment {
        external_id: report.id,
        repository: report.repository,
        environment: environment.to_owned(),
        production: report.production,
        git_ref: report
            .git_ref
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_else(|| sha.clone()),
        sha,
        status: report.status,
        created_at,
        status_at,
    })
}

#[derive(Debug, Serialize)]
pub struct Recorded {
    deployment_id: i64,
    id: String,
    status: String,
    /// False when this deployment had been reported before.
    created: bool,
}

#[tracing::instrument(skip_all, fields(org = %client.org, key = client.key))]
pub async fn report(
    State(state): State<AppState>,
    Extension(client): Extension<ApiClient>,
    ApiJson(body): ApiJson<Report>,
) -> Result<(StatusCode, Json<Recorded>), ApiError> {
    let report = parse(body, Utc::now())?;
    let txn = tenant::begin(&state.db, client.org).await?;
    let recorded = external::record(&txn, client.org.0, &report)
        .await
        .map_err(|e| match e {
            ExternalError::UnknownRepository(_) => {
                ApiError::unprocessable("unknown_repository", e.to_string())
            }
            ExternalError::Database(e) => e.into(),
        })?;
    txn.commit().await?;
    let status = if recorded.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(Recorded {
            deployment_id: recorded.deployment_id,
            id: report.external_id,
            status: report.status,
            created: recorded.created,
        }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// What the key is for, e.g. "deploy pipeline".
    name: String,
}

#[tracing::instrument(skip_all, fields(org = %caller.org))]
pub async fn create_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<CreateKey>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::unprocessable(
            "invalid_name",
            "`name` must be 1–100 characters",
        ));
    }
    let txn = tenant::begin(&state.db, caller.org).await?;
    let (key, token) = api_keys::create(&txn, caller.org, name).await?;
    txn.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "key": key, "token": token.text.expose_secret() })),
    ))
}

/// Your organization's API keys (never their hashes).
#[utoipa::path(get, path = "/api/v1/admin/api-keys", tag = "admin", 
    security(("bearer" = [])),
    responses((status = 200, body = Vec<jobs::people::api_keys::ApiKey>), crate::error::ReadErrors))]
#[tracing::instrument(skip_all, fields(org = %caller.org))]
pub async fn list_keys(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<ApiKey>>, ApiError> {
    let txn = tenant::begin(&state.db, caller.org).await?;
    let keys = api_keys::list(&txn, caller.org).await?;
    txn.commit().await?;
    Ok(Json(keys))
}

#[tracing::instrument(skip_all, fields(org = %caller.org, key = id))]
pub async fn revoke_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<ApiKey>, ApiError> {
    let txn = tenant::begin(&state.db, caller.org).await?;
    let key = api_keys::revoke(&txn, caller.org, id).await?;
    txn.commit().await?;
    key.map(Json)
        .ok_or_else(|| ApiError::Missing("no such API key".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            id: "build-1".to_owned(),
            repository: "acme/api".to_owned(),
            environment: "production".to_owned(),
            sha: "a".repeat(40),
            status: "success".to_owned(),
            production: None,
            git_ref: None,
            created_at: None,
            finished_at: None,
        }
    }

    #[test]
    fn reports_are_checked_at_the_edge() {
        let now = Utc::now();
        let ok = parse(report(), now).expect("valid");
        assert_eq!(ok.git_ref, "a".repeat(40), "the ref defaults to the sha");
        assert_eq!(ok.status_at, now);
        for bad in [
            Report {
                id: "has space".into(),
                ..report()
            },
            Report {
                repository: "no-slash".into(),
                ..report()
            },
            Report {
                sha: "abc123".into(),
                ..report()
            },
            Report {
                status: "done".into(),
                ..report()
            },
            Report {
                environment: " ".into(),
                ..report()
            },
            Report {
                finished_at: Some(now + chrono::Duration::hours(1)),
                ..report()
            },
            Report {
                created_at: Some(now - chrono::Duration::hours(1)),
                finished_at: Some(now - chrono::Duration::hours(2)),
                ..report()
            },
        ] {
            assert!(parse(bad, now).is_err());
        }
    }
}
