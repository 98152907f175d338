//! `reviews`: pull-request reviews, also learnt from review comments (a comment belongs to a
//! review). A review's state only moves up pending < commented < changes_requested < approved
//! < dismissed; `submitted_at` keeps the earliest time seen.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use super::{pull_requests, stmt};

#[derive(Debug, Clone)]
pub struct ReviewFact {
    pub github_id: i64,
    pub repository_id: i64,
    pub pull_request_id: i64,
    pub reviewer_id: Option<i64>,
    /// GitHub's state, lower-cased (`approved`, `commented`, `changes_requested`, `dismissed`, `pending`).
    pub state: String,
    pub submitted_at: Option<DateTime<Utc>>,
    pub commit_id: Option<String>,
}

pub const STATES: [&str; 5] = [
    "pending",
    "commented",
    "changes_requested",
    "approved",
    "dismissed",
];

const RANK: &str =
    "array_position(ARRAY['pending','commented','changes_requested','approved','dismissed'], ";

pub async fn upsert<C: ConnectionTrait>(
    db: &C,
    organization_id: i64,
    review: &ReviewFact,
) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        &UPSERT,
        [
            review.github_id.into(),
            organization_id.into(),
            review.repository_id.into(),
            review.pull_request_id.into(),
            review.reviewer_id.into(),
            review.state.clone().into(),
            review.submitted_at.into(),
            review.commit_id.clone().into(),
        ],
    ))
    .await?;
    pull_requests::refresh_review_times(db, review.pull_request_id).await
}

/// Assembled once: writers run on every job.
static UPSERT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO reviews AS r (github_id, organization_id, repository_id, pull_request_id, reviewer_id, \
            state, approved, submitted_at, commit_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $6 = 'approved', $7, $8) \
         ON CONFLICT (github_id) DO UPDATE SET \
            state = CASE WHEN {RANK}EXCLUDED.state) > {RANK}r.state) THEN EXCLUDED.state ELSE r.state END, \
            approved = r.approved OR EXCLUDED.approved, \
            submitted_at = LEAST(r.submitted_at, EXCLUDED.submitted_at), \
            reviewer_id = COALESCE(r.reviewer_id, EXCLUDED.reviewer_id), \
            commit_id = COALESCE(r.commit_id, EXCLUDED.commit_id), \
            synced_at = now() \
         WHERE {RANK}EXCLUDED.state) > {RANK}r.state) \
            OR (EXCLUDED.approved AND NOT r.approved) \
            OR r.submitted_at IS DISTINCT FROM LEAST(r.submitted_at, EXCLUDED.submitted_at) \
            OR (r.reviewer_id IS NULL AND EXCLUDED.reviewer_id IS NOT NULL) \
            OR (r.commit_id IS NULL AND EXCLUDED.commit_id IS NOT NULL)"
    )
});

/// One review comment (its review is recorded by [`upsert`]); comments never change what they
/// count, so a second delivery of one changes nothing.
#[derive(Debug, Clone)]
pub struct CommentFact {
    pub github_id: i64,
    pub repository_id: i64,
    pub pull_request_id: i64,
    pub review_id: Option<i64>,
    pub author_id: Option<i64>,
    pub created_at: DateTime<Utc>,
}

pub async fn record_comment<C: ConnectionTrait>(
    db: &C,
    organization_id: i64,
    comment: &CommentFact,
) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "INSERT INTO review_comments (github_id, organization_id, repository_id, pull_request_id, \
            review_id, author_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (github_id) DO NOTHING",
        [
            comment.github_id.into(),
            organization_id.into(),
            comment.repository_id.into(),
            comment.pull_request_id.into(),
            comment.review_id.into(),
            comment.author_id.into(),
            comment.created_at.into(),
        ],
    ))
    .await?;
    Ok(())
}
