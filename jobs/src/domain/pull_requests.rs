//! `pull_requests`: the newest snapshot of each pull request plus first-X times.
//!
//! A snapshot's version is (GitHub `updated_at`, state rank open < closed < merged, commits,
//! head sha), compared as a tuple: GitHub's `updated_at` has one-second resolution, so two
//! deliveries can share it, and the tie must be broken by the data, not by arrival order.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use super::stmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrState {
    Open,
    Closed,
    Merged,
}

impl PrState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
            Self::Merged => "merged",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PullRequestSnapshot {
    pub github_id: i64,
    pub repository_id: i64,
    pub number: i32,
    pub author_id: Option<i64>,
    pub title: String,
    pub state: PrState,
    pub draft: bool,
    pub created_at: DateTime<Utc>,
    /// Set when this delivery *is* the pull request becoming ready for review.
    pub ready_for_review_at: Option<DateTime<Utc>>,
    pub merged_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub merged_by_id: Option<i64>,
    pub merge_commit_sha: Option<String>,
    pub head_sha: String,
    pub head_ref: String,
    pub base_ref: String,
    pub additions: Option<i32>,
    pub deletions: Option<i32>,
    pub changed_files: Option<i32>,
    pub commits_count: Option<i32>,
    pub updated_at: DateTime<Utc>,
}

const RANK: &str = "array_position(ARRAY['open','closed','merged'], {}.state)";

fn version(table: &str) -> String {
    format!(
        "({t}.updated_at, {rank}, COALESCE({t}.commits_count, -1), {t}.head_sha)",
        t = table,
        rank = RANK.replace("{}", table)
    )
}

fn upsert_sql() -> String {
    let newer = format!("{} > {}", version("EXCLUDED"), version("p"));
    let snapshot = [
        "title",
        "state",
        "draft",
        "merged_at",
        "closed_at",
        "merged_by_id",
        "merge_commit_sha",
        "head_sha",
        "head_ref",
        "base_ref",
        "updated_at",
    ]
    .iter()
    .map(|c| format!("{c} = CASE WHEN {newer} THEN EXCLUDED.{c} ELSE p.{c} END"))
    .chain(
        ["additions", "deletions", "changed_files", "commits_count"]
            .iter()
            .map(|c| {
                format!("{c} = CASE WHEN {newer} THEN COALESCE(EXCLUDED.{c}, p.{c}) ELSE p.{c} END")
            }),
    )
    .collect::<Vec<_>>()
    .join(", ");
    format!(
        "INSERT INTO pull_requests AS p (github_id, organization_id, repository_id, number, author_id, \
            title, state, draft, created_at, ready_for_review_at, merged_at, closed_at, merged_by_id, \
            merge_commit_sha, head_sha, head_ref, base_ref, additions, deletions, changed_files, \
            commits_count, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22) \
         ON CONFLICT (github_id) DO UPDATE SET {snapshot}, \
            created_at = LEAST(p.created_at, EXCLUDED.created_at), \
            ready_for_review_at = LEAST(p.ready_for_review_at, EXCLUDED.ready_for_review_at), \
            author_id = COALESCE(p.author_id, EXCLUDED.author_id), \
            synced_at = now() \
         WHERE {newer} \
            OR EXCLUDED.created_at < p.created_at \
            OR p.ready_for_review_at IS DISTINCT FROM LEAST(p.ready_for_review_at, EXCLUDED.ready_for_review_at) \
            OR (p.author_id IS NULL AND EXCLUDED.author_id IS NOT NULL)"
    )
}

/// Applies a snapshot, then, if it changed the row, brings the review times up to date
/// (reviews may have arrived first; a new author changes which reviews count).
pub async fn upsert<C: ConnectionTrait>(
    db: &C,
    organization_id: i64,
    pr: &PullRequestSnapshot,
) -> Result<(), DbErr> {
    let changed = db.execute_raw(stmt(
        &upsert_sql(),
        [
            pr.github_id.into(),
            organization_id.into(),
            pr.repository_id.into(),
            pr.number.into(),
            pr.author_id.into(),
            pr.title.clone().into(),
            pr.state.as_str().into(),
            pr.draft.into(),
            pr.created_at.into(),
            pr.ready_for_review_at.into(),
            pr.merged_at.into(),
            pr.closed_at.into(),
            pr.merged_by_id.into(),
            pr.merge_commit_sha.clone().into(),
            pr.head_sha.clone().into(),
            pr.head_ref.clone().into(),
            pr.base_ref.clone().into(),
            pr.additions.into(),
            pr.deletions.into(),
            pr.changed_files.into(),
            pr.commits_count.into(),
            pr.updated_at.into(),
        ],
    ))
    .await?
    .rows_affected();
    if changed == 0 {
        return Ok(());
    }
    refresh_review_times(db, pr.github_id).await
}

/// `first_review_at`: the earliest review (any state but pending) or review comment by someone
/// other than the author and not a bot; `first_approved_at`: the earliest approval. Recomputed
/// from `reviews`, so it does not matter whether the reviews or the pull request came first.
pub async fn refresh_review_times<C: ConnectionTrait>(
    db: &C,
    pull_request_id: i64,
) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "WITH t AS ( \
            SELECT p.github_id, \
                min(r.submitted_at) FILTER (WHERE r.state <> 'pending' \
                    AND r.reviewer_id IS DISTINCT FROM p.author_id \
                    AND NOT EXISTS (SELECT 1 FROM github_users u \
                        WHERE u.organization_id = p.organization_id \
                          AND u.github_id = r.reviewer_id AND u.is_bot)) AS first_review, \
                min(r.submitted_at) FILTER (WHERE r.approved) AS first_approved \
            FROM pull_requests p LEFT JOIN reviews r ON r.pull_request_id = p.github_id \
            WHERE p.github_id = $1 GROUP BY p.github_id) \
         UPDATE pull_requests p SET first_review_at = t.first_review, \
            first_approved_at = t.first_approved, synced_at = now() \
         FROM t WHERE p.github_id = t.github_id \
           AND (p.first_review_at, p.first_approved_at) IS DISTINCT FROM (t.first_review, t.first_approved)",
        [pull_request_id.into()],
    ))
    .await?;
    Ok(())
}
