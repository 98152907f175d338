//! `commits`: commits pushed to a repository, with the branches they reached and their place in
//! the default branch's history (the earliest push that put them there).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};
use serde::Serialize;

use super::stmt;

#[derive(Debug, Clone, Serialize)]
pub struct PushedCommit {
    pub sha: String,
    pub author_name: Option<String>,
    pub author_email: Option<String>,
    pub author_login: Option<String>,
    pub committer_login: Option<String>,
    pub message_headline: String,
    pub authored_at: Option<DateTime<Utc>>,
    /// 0 = the oldest commit of the push.
    pub position: i32,
}

/// One push of `commits` to `branch` (`refs/heads/` stripped) at GitHub's `pushed_at`.
#[derive(Debug, Clone)]
pub struct Push {
    pub repository_id: i64,
    pub branch: String,
    pub to_default_branch: bool,
    pub pushed_at: Option<DateTime<Utc>>,
    pub commits: Vec<PushedCommit>,
}

pub async fn record_push<C: ConnectionTrait>(
    db: &C,
    organization_id: i64,
    push: &Push,
) -> Result<(), DbErr> {
    if push.commits.is_empty() {
        return Ok(());
    }
    let json = serde_json::to_value(&push.commits).map_err(|e| DbErr::Custom(e.to_string()))?;
    // The earliest (pushed_at, position) on the default branch wins; refs are a sorted union.
    db.execute_raw(stmt(
        "INSERT INTO commits AS c (repository_id, sha, organization_id, author_name, author_email, \
            author_login, committer_login, message_headline, authored_at, refs, on_default_branch, \
            default_branch_pushed_at, push_position) \
         SELECT $1, x.sha, $2, x.author_name, x.author_email, x.author_login, x.committer_login, \
            x.message_headline, x.authored_at, ARRAY[$3::text], $4, \
            CASE WHEN $4 THEN $5::timestamptz END, CASE WHEN $4 THEN x.position END \
         FROM jsonb_to_recordset($6::jsonb) AS x(sha text, author_name text, author_email text, \
            author_login text, committer_login text, message_headline text, authored_at timestamptz, position int4) \
         ORDER BY x.sha \
         ON CONFLICT (repository_id, sha) DO UPDATE SET \
            refs = ARRAY(SELECT DISTINCT r FROM unnest(c.refs || EXCLUDED.refs) AS r ORDER BY r), \
            on_default_branch = c.on_default_branch OR EXCLUDED.on_default_branch, \
            default_branch_pushed_at = CASE WHEN EXCLUDED.on_default_branch AND (NOT c.on_default_branch \
                OR (EXCLUDED.default_branch_pushed_at, EXCLUDED.push_position) < (c.default_branch_pushed_at, c.push_position)) \
                THEN EXCLUDED.default_branch_pushed_at ELSE c.default_branch_pushed_at END, \
            push_position = CASE WHEN EXCLUDED.on_default_branch AND (NOT c.on_default_branch \
                OR (EXCLUDED.default_branch_pushed_at, EXCLUDED.push_position) < (c.default_branch_pushed_at, c.push_position)) \
                THEN EXCLUDED.push_position ELSE c.push_position END, \
            synced_at = now() \
         WHERE NOT (EXCLUDED.refs <@ c.refs) \
            OR (EXCLUDED.on_default_branch AND (NOT c.on_default_branch \
                OR (EXCLUDED.default_branch_pushed_at, EXCLUDED.push_position) < (c.default_branch_pushed_at, c.push_position)))",
        [
            push.repository_id.into(),
            organization_id.into(),
            push.branch.clone().into(),
            push.to_default_branch.into(),
            push.pushed_at.into(),
            json.into(),
        ],
    ))
    .await?;
    // New commits on a branch may be the earliest of the pull requests it is the head of.
    let prs = db
        .query_all_raw(stmt(
            "SELECT github_id FROM pull_requests WHERE repository_id = $1 AND head_ref = $2",
            [push.repository_id.into(), push.branch.clone().into()],
        ))
        .await?
        .iter()
        .map(|r| r.try_get::<i64>("", "github_id"))
        .collect::<Result<Vec<_>, _>>()?;
    super::pull_requests::refresh_first_commit_many(db, &prs).await
}
