//! Deployments made outside GitHub (`POST /api/v1/deployments`): recorded through the same
//! deployment writer as GitHub's, under negative ids (GitHub's are positive) keyed by the
//! caller's own deployment id, so sending the same report twice changes nothing and a later
//! status of the same deployment is one more status.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use super::{
    deployments::{self, DeploymentSnapshot, StatusFact},
    stmt,
};
use crate::process::Item;

/// The states GitHub's deployment statuses take.
pub const STATES: [&str; 7] = [
    "queued",
    "pending",
    "in_progress",
    "success",
    "failure",
    "error",
    "inactive",
];

/// A deployment report, validated at the edge.
#[derive(Debug, Clone)]
pub struct ExternalDeployment {
    /// The caller's id of the deployment (idempotency key).
    pub external_id: String,
    /// `owner/name` of a repository of the organization.
    pub repository: String,
    pub environment: String,
    pub production: Option<bool>,
    pub sha: String,
    pub git_ref: String,
    /// One of [`STATES`].
    pub status: String,
    pub created_at: DateTime<Utc>,
    /// When the deployment reached `status`.
    pub status_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExternalError {
    #[error(
        "the organization has no repository {0:?} (DevPulse knows the repositories its GitHub App can see)"
    )]
    UnknownRepository(String),
    #[error("database: {0}")]
    Database(#[from] DbErr),
}

/// What was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub deployment_id: i64,
    pub repository_id: i64,
    /// The first report of this deployment.
    pub created: bool,
}

/// Records the deployment and its status, and marks the days they change for the analytics.
pub async fn record<C: ConnectionTrait>(
    db: &C,
    org: i64,
    report: &ExternalDeployment,
) -> Result<Recorded, ExternalError> {
    let repository_id: i64 = db
        .query_one_raw(stmt(
            "SELECT github_id FROM repositories WHERE organization_id = $1 AND lower(full_name) = lower($2)",
            [org.into(), report.repository.clone().into()],
        ))
        .await?
        .ok_or_else(|| ExternalError::UnknownRepository(report.repository.clone()))?
        .try_get("", "github_id")?;
    let inserted = db
        .query_one_raw(stmt(
            "INSERT INTO external_deployments (organization_id, external_id, deployment_id) \
             VALUES ($1, $2, -nextval('external_deployment_seq')) \
             ON CONFLICT (organization_id, external_id) DO NOTHING RETURNING deployment_id",
            [org.into(), report.external_id.clone().into()],
        ))
        .await?;
    let (deployment_id, created) = match inserted {
        Some(row) => (row.try_get::<i64>("", "deployment_id")?, true),
        None => (
            db.query_one_raw(stmt(
                "SELECT deployment_id FROM external_deployments \
                 WHERE organization_id = $1 AND external_id = $2",
                [org.into(), report.external_id.clone().into()],
            ))
            .await?
            .ok_or_else(|| DbErr::RecordNotFound("external deployment".to_owned()))?
            .try_get::<i64>("", "deployment_id")?,
            false,
        ),
    };
    let snapshot = DeploymentSnapshot {
        github_id: deployment_id,
        repository_id,
        sha: report.sha.clone(),
        git_ref: report.git_ref.clone(),
        task: "deploy".to_owned(),
        environment: report.environment.clone(),
        production_environment: report.production,
        creator_id: None,
        created_at: report.created_at,
        updated_at: report.status_at,
    };
    let state_index = STATES
        .iter()
        .position(|s| *s == report.status)
        .and_then(|i| i64::try_from(i).ok())
        .unwrap_or_default();
    let status = StatusFact {
        // One status per state of a deployment: a repeated report of it is the same status.
        github_id: deployment_id * 16 - state_index,
        deployment_id,
        state: report.status.clone(),
        environment: Some(report.environment.clone()),
        creator_id: None,
        created_at: report.status_at,
        updated_at: report.status_at,
    };
    deployments::upsert(db, org, &snapshot).await?;
    deployments::record_status(db, org, &status).await?;
    crate::analytics::dirty::mark(db, org, &Item::Deployment(snapshot, Some(status))).await?;
    Ok(Recorded {
        deployment_id,
        repository_id,
        created,
    })
}
