//! `reviews`: pull-request reviews, also learnt from review comments (a comment belongs to a
//! review). A review's state only moves up pending < commented < changes_requested < approved
//! < dismissed; `submitted_at` keeps the earliest time seen.

use std::{collections::BTreeMap, sync::LazyLock};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};
use serde::Serialize;

use super::{pull_requests, stmt};

#[derive(Debug, Clone, Serialize)]
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
    upsert_many(db, organization_id, std::slice::from_ref(review)).await
}

/// Several reviews in one statement (a batch of jobs, a page of a backfill), then their pull
/// requests' review times in one more. The same review twice is merged first, as the database
/// would merge it (one statement cannot update a row twice).
pub async fn upsert_many<C: ConnectionTrait>(
    db: &C,
    organization_id: i64,
    reviews: &[ReviewFact],
) -> Result<(), DbErr> {
    #[derive(Serialize)]
    struct Row<'a> {
        #[serde(flatten)]
        fact: &'a ReviewFact,
        approved: bool,
    }
    if reviews.is_empty() {
        return Ok(());
    }
    let mut merged: BTreeMap<i64, (ReviewFact, bool)> = BTreeMap::new();
    for review in reviews {
        let approved = review.state == "approved";
        merged
            .entry(review.github_id)
            .and_modify(|(seen, was_approved)| {
                *seen = merge(seen, review);
                *was_approved |= approved;
            })
            .or_insert_with(|| (review.clone(), approved));
    }
    let rows: Vec<Row<'_>> = merged
        .values()
        .map(|(fact, approved)| Row {
            fact,
            approved: *approved,
        })
        .collect();
    let json = serde_json::to_value(&rows).map_err(|e| DbErr::Custom(e.to_string()))?;
    db.execute_raw(stmt(&UPSERT_MANY, [organization_id.into(), json.into()]))
        .await?;
    let mut prs: Vec<i64> = merged.values().map(|(r, _)| r.pull_request_id).collect();
    prs.sort_unstable();
    prs.dedup();
    pull_requests::refresh_review_times_many(db, &prs).await
}

fn rank(state: &str) -> usize {
    STATES.iter().position(|s| *s == state).unwrap_or(0)
}

/// Two facts about the same review, combined as [`upsert`] combines them in the database.
fn merge(a: &ReviewFact, b: &ReviewFact) -> ReviewFact {
    ReviewFact {
        state: if rank(&b.state) > rank(&a.state) {
            b.state.clone()
        } else {
            a.state.clone()
        },
        submitted_at: match (a.submitted_at, b.submitted_at) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        },
        reviewer_id: a.reviewer_id.or(b.reviewer_id),
        commit_id: a.commit_id.clone().or_else(|| b.commit_id.clone()),
        ..a.clone()
    }
}

/// Assembled once: writers run on every job.
static UPSERT_MANY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO reviews AS r (github_id, organization_id, repository_id, pull_request_id, reviewer_id, \
            state, approved, submitted_at, commit_id) \
         SELECT x.github_id, $1, x.repository_id, x.pull_request_id, x.reviewer_id, x.state, \
            x.approved, x.submitted_at, x.commit_id \
         FROM jsonb_to_recordset($2::jsonb) AS x(github_id int8, repository_id int8, \
            pull_request_id int8, reviewer_id int8, state text, approved bool, \
            submitted_at timestamptz, commit_id text) \
         ORDER BY x.github_id \
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
