//! `deployments` and `deployment_statuses`; a deployment's latest state is recomputed from its
//! statuses (newest GitHub `created_at`, then id), so statuses may arrive in any order.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use super::stmt;

#[derive(Debug, Clone)]
pub struct DeploymentSnapshot {
    pub github_id: i64,
    pub repository_id: i64,
    pub sha: String,
    pub git_ref: String,
    pub task: String,
    pub environment: String,
    pub production_environment: Option<bool>,
    pub creator_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct StatusFact {
    pub github_id: i64,
    pub deployment_id: i64,
    pub state: String,
    pub environment: Option<String>,
    pub creator_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub async fn upsert<C: ConnectionTrait>(
    db: &C,
    organization_id: i64,
    deployment: &DeploymentSnapshot,
) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "INSERT INTO deployments AS d (github_id, organization_id, repository_id, sha, ref, task, \
            environment, production_environment, creator_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (github_id) DO UPDATE SET environment = EXCLUDED.environment, \
            production_environment = COALESCE(EXCLUDED.production_environment, d.production_environment), \
            updated_at = EXCLUDED.updated_at, synced_at = now() \
         WHERE EXCLUDED.updated_at > d.updated_at \
            OR (d.production_environment IS NULL AND EXCLUDED.production_environment IS NOT NULL)",
        [
            deployment.github_id.into(),
            organization_id.into(),
            deployment.repository_id.into(),
            deployment.sha.clone().into(),
            deployment.git_ref.clone().into(),
            deployment.task.clone().into(),
            deployment.environment.clone().into(),
            deployment.production_environment.into(),
            deployment.creator_id.into(),
            deployment.created_at.into(),
            deployment.updated_at.into(),
        ],
    ))
    .await?;
    refresh_latest(db, deployment.github_id).await
}

/// Records a status of a deployment already written by [`upsert`].
pub async fn record_status<C: ConnectionTrait>(
    db: &C,
    organization_id: i64,
    status: &StatusFact,
) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "INSERT INTO deployment_statuses AS s (github_id, organization_id, deployment_id, state, \
            environment, creator_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (github_id) DO UPDATE SET state = EXCLUDED.state, \
            environment = EXCLUDED.environment, updated_at = EXCLUDED.updated_at, synced_at = now() \
         WHERE EXCLUDED.updated_at > s.updated_at",
        [
            status.github_id.into(),
            organization_id.into(),
            status.deployment_id.into(),
            status.state.clone().into(),
            status.environment.clone().into(),
            status.creator_id.into(),
            status.created_at.into(),
            status.updated_at.into(),
        ],
    ))
    .await?;
    refresh_latest(db, status.deployment_id).await
}

async fn refresh_latest<C: ConnectionTrait>(db: &C, deployment_id: i64) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "UPDATE deployments d SET latest_state = s.state, latest_status_at = s.created_at, synced_at = now() \
         FROM (SELECT state, created_at FROM deployment_statuses WHERE deployment_id = $1 \
               ORDER BY created_at DESC, github_id DESC LIMIT 1) s \
         WHERE d.github_id = $1 \
           AND (d.latest_state, d.latest_status_at) IS DISTINCT FROM (s.state, s.created_at)",
        [deployment_id.into()],
    ))
    .await?;
    Ok(())
}
