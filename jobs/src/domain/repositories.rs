//! `repositories`: the newest GitHub snapshot of each repository, and its installation membership.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};
use serde::Serialize;

use super::stmt;

#[derive(Debug, Clone)]
pub struct RepositorySnapshot {
    pub github_id: i64,
    pub name: String,
    pub full_name: String,
    pub private: bool,
    pub archived: bool,
    pub default_branch: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Creates the repository, or refreshes it from a snapshot newer than the stored one.
pub async fn upsert<C: ConnectionTrait>(
    db: &C,
    organization_id: i64,
    repo: &RepositorySnapshot,
) -> Result<(), DbErr> {
    let values = [
        repo.github_id.into(),
        organization_id.into(),
        repo.name.clone().into(),
        repo.full_name.clone().into(),
        repo.private.into(),
        repo.archived.into(),
        repo.default_branch.clone().into(),
        repo.updated_at.into(),
    ];
    let inserted = db
        .execute_raw(stmt(
            "INSERT INTO repositories \
                (github_id, organization_id, name, full_name, private, archived, default_branch, github_updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (github_id) DO NOTHING",
            values.clone(),
        ))
        .await?
        .rows_affected();
    if inserted == 0 {
        // Older or equal snapshots change nothing; a snapshot without a time only fills gaps.
        db.execute_raw(stmt(
            "UPDATE repositories SET name = $3, full_name = $4, private = $5, archived = $6, \
                default_branch = COALESCE($7, default_branch), github_updated_at = $8, synced_at = now() \
             WHERE github_id = $1 AND organization_id = $2 \
               AND (($8 IS NOT NULL AND (github_updated_at IS NULL OR $8 > github_updated_at)) \
                 OR (default_branch IS NULL AND $7 IS NOT NULL))",
            values,
        ))
        .await?;
    }
    Ok(())
}

/// A repository listed by an installation event (name only).
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    pub id: i64,
    pub name: String,
    pub full_name: String,
    pub private: bool,
}

/// Whether an installation event added repositories to it or removed them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    Added,
    Removed,
}

/// Records installation membership at GitHub's time `at`. Each side keeps its newest time; a
/// repository counts as removed when `removed_at >= installed_at`, whatever the arrival order.
pub async fn set_membership<C: ConnectionTrait>(
    db: &C,
    organization_id: i64,
    members: &[Member],
    membership: Membership,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    if members.is_empty() {
        return Ok(());
    }
    let (installed, removed): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = match membership {
        Membership::Added => (Some(at), None),
        Membership::Removed => (None, Some(at)),
    };
    let json = serde_json::to_value(members).map_err(|e| DbErr::Custom(e.to_string()))?;
    db.execute_raw(stmt(
        "INSERT INTO repositories AS r (github_id, organization_id, name, full_name, private, installed_at, removed_at) \
         SELECT x.id, $1, x.name, x.full_name, x.private, $3, $4 \
         FROM jsonb_to_recordset($2::jsonb) AS x(id int8, name text, full_name text, private bool) \
         ORDER BY x.id \
         ON CONFLICT (github_id) DO UPDATE SET \
            installed_at = GREATEST(r.installed_at, EXCLUDED.installed_at), \
            removed_at = GREATEST(r.removed_at, EXCLUDED.removed_at), \
            organization_id = EXCLUDED.organization_id, synced_at = now() \
         WHERE r.installed_at IS DISTINCT FROM GREATEST(r.installed_at, EXCLUDED.installed_at) \
            OR r.removed_at IS DISTINCT FROM GREATEST(r.removed_at, EXCLUDED.removed_at) \
            OR r.organization_id <> EXCLUDED.organization_id",
        [
            organization_id.into(),
            json.into(),
            installed.into(),
            removed.into(),
        ],
    ))
    .await?;
    Ok(())
}
