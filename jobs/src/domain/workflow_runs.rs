//! `workflow_runs`: GitHub Actions runs and check suites, newest snapshot wins (by GitHub's
//! `updated_at`, then status progress, then run attempt).

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use super::stmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    WorkflowRun,
    CheckSuite,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WorkflowRun => "workflow_run",
            Self::CheckSuite => "check_suite",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunSnapshot {
    pub kind: RunKind,
    pub github_id: i64,
    pub repository_id: i64,
    pub name: Option<String>,
    pub workflow_id: Option<i64>,
    pub head_sha: String,
    pub head_branch: Option<String>,
    pub event: Option<String>,
    pub status: Option<String>,
    pub conclusion: Option<String>,
    pub run_number: Option<i32>,
    pub run_attempt: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub run_started_at: Option<DateTime<Utc>>,
}

fn version(t: &str) -> String {
    format!(
        "({t}.updated_at, COALESCE(array_position(ARRAY['requested','waiting','pending','queued','in_progress','completed'], {t}.status), 0), \
          COALESCE({t}.run_attempt, 0), COALESCE({t}.conclusion, ''))"
    )
}

pub async fn upsert<C: ConnectionTrait>(
    db: &C,
    organization_id: i64,
    run: &RunSnapshot,
) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        &UPSERT,
        [
            run.kind.as_str().into(),
            run.github_id.into(),
            organization_id.into(),
            run.repository_id.into(),
            run.name.clone().into(),
            run.workflow_id.into(),
            run.head_sha.clone().into(),
            run.head_branch.clone().into(),
            run.event.clone().into(),
            run.status.clone().into(),
            run.conclusion.clone().into(),
            run.run_number.into(),
            run.run_attempt.into(),
            run.created_at.into(),
            run.updated_at.into(),
            run.run_started_at.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Assembled once: writers run on every job.
static UPSERT: LazyLock<String> = LazyLock::new(|| {
    let newer = format!("{} > {}", version("EXCLUDED"), version("w"));
    format!(
        "INSERT INTO workflow_runs AS w (kind, github_id, organization_id, repository_id, name, workflow_id, \
            head_sha, head_branch, event, status, conclusion, run_number, run_attempt, created_at, \
            updated_at, run_started_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
         ON CONFLICT (kind, github_id) DO UPDATE SET name = EXCLUDED.name, head_branch = EXCLUDED.head_branch, \
            status = EXCLUDED.status, conclusion = EXCLUDED.conclusion, run_attempt = EXCLUDED.run_attempt, \
            updated_at = EXCLUDED.updated_at, run_started_at = EXCLUDED.run_started_at, synced_at = now() \
         WHERE {newer}"
    )
});
