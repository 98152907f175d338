//! `incidents`: every issue seen in `issues` events, newest snapshot by GitHub's `updated_at`.
//! Whether an issue is an incident is decided when metrics are computed (its labels against the
//! organization's pattern), so the pattern can change without re-importing. A deleted or
//! transferred issue stays deleted whatever arrives after it.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use super::stmt;

#[derive(Debug, Clone)]
pub struct IssueSnapshot {
    pub github_id: i64,
    pub repository_id: i64,
    pub number: i32,
    pub title: String,
    pub labels: Vec<String>,
    pub closed: bool,
    pub created_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// `deleted` or `transferred`: the issue left this repository.
    pub gone: bool,
}

pub async fn upsert<C: ConnectionTrait>(
    db: &C,
    organization_id: i64,
    issue: &IssueSnapshot,
) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        &UPSERT,
        [
            issue.github_id.into(),
            organization_id.into(),
            issue.repository_id.into(),
            issue.number.into(),
            issue.title.clone().into(),
            issue.labels.clone().into(),
            if issue.closed { "closed" } else { "open" }.into(),
            issue.created_at.into(),
            issue.closed_at.into(),
            issue.updated_at.into(),
            issue.gone.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Ties on updated_at (one-second resolution) go to the closed snapshot, then to more labels:
/// decided by the data, never by arrival order.
static UPSERT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let newer = "(EXCLUDED.updated_at, EXCLUDED.state = 'closed', cardinality(EXCLUDED.labels)) \
        > (i.updated_at, i.state = 'closed', cardinality(i.labels))";
    let snapshot = ["title", "labels", "state", "closed_at"]
        .iter()
        .map(|c| format!("{c} = CASE WHEN {newer} THEN EXCLUDED.{c} ELSE i.{c} END"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO incidents AS i (github_id, organization_id, repository_id, number, title, \
            labels, state, created_at, closed_at, updated_at, deleted) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (github_id) DO UPDATE SET {snapshot}, \
            updated_at = GREATEST(i.updated_at, EXCLUDED.updated_at), \
            created_at = LEAST(i.created_at, EXCLUDED.created_at), \
            deleted = i.deleted OR EXCLUDED.deleted, \
            synced_at = now() \
         WHERE {newer} OR (EXCLUDED.deleted AND NOT i.deleted) OR EXCLUDED.created_at < i.created_at"
    )
});
