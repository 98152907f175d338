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
    record_pushes(db, organization_id, std::slice::from_ref(push)).await
}

/// Several pushes (a batch of jobs, a page of a backfill): their commits one statement per push,
/// then the first-commit times of every pull request whose head branch they reached, at once.
pub async fn record_pushes<C: ConnectionTrait>(
    db: &C,
    organization_id: i64,
    pushes: &[Push],
) -> Result<(), DbErr> {
    let pushes: Vec<&Push> = pushes.iter().filter(|p| !p.commits.is_empty()).collect();
    if pushes.is_empty() {
        return Ok(());
    }
    // One statement per group of pushes that share no commit (a statement cannot write a row
    // twice); usually that is one statement for all of them.
    let mut group: Vec<&Push> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for push in &pushes {
        let clash = push
            .commits
            .iter()
            .any(|c| seen.contains(&(push.repository_id, c.sha.as_str())));
        if clash {
            insert_commits(db, organization_id, &group).await?;
            group.clear();
            seen.clear();
        }
        seen.extend(
            push.commits
                .iter()
                .map(|c| (push.repository_id, c.sha.as_str())),
        );
        group.push(push);
    }
    insert_commits(db, organization_id, &group).await?;
    // New commits on a branch may be the earliest of the pull requests it is the head of.
    let repos: Vec<i64> = pushes.iter().map(|p| p.repository_id).collect();
    let branches: Vec<String> = pushes.iter().map(|p| p.branch.clone()).collect();
    let prs = db
        .query_all_raw(stmt(
            "SELECT DISTINCT p.github_id FROM pull_requests p \
             JOIN unnest($1::int8[], $2::text[]) AS b(repository_id, branch) \
               ON p.repository_id = b.repository_id AND p.head_ref = b.branch \
             ORDER BY 1",
            [repos.into(), branches.into()],
        ))
        .await?
        .iter()
        .map(|r| r.try_get::<i64>("", "github_id"))
        .collect::<Result<Vec<_>, _>>()?;
    super::pull_requests::refresh_first_commit_many(db, &prs).await
}

/// The commits of pushes that share no commit, in one statement.
async fn insert_commits<C: ConnectionTrait>(
    db: &C,
    organization_id: i64,
    pushes: &[&Push],
) -> Result<(), DbErr> {
    #[derive(Serialize)]
    struct Row<'a> {
        repository_id: i64,
        branch: &'a str,
        to_default: bool,
        pushed_at: Option<DateTime<Utc>>,
        #[serde(flatten)]
        commit: &'a PushedCommit,
    }
    let rows: Vec<Row<'_>> = pushes
        .iter()
        .flat_map(|p| {
            p.commits.iter().map(|commit| Row {
                repository_id: p.repository_id,
                branch: &p.branch,
                to_default: p.to_default_branch,
                pushed_at: p.pushed_at,
                commit,
            })
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let json = serde_json::to_value(&rows).map_err(|e| DbErr::Custom(e.to_string()))?;
    // The earliest (pushed_at, position) on the default branch wins; refs are a sorted union.
    db.execute_raw(stmt(
        "INSERT INTO commits AS c (repository_id, sha, organization_id, author_name, author_email, \
            author_login, committer_login, message_headline, authored_at, refs, on_default_branch, \
            default_branch_pushed_at, push_position) \
         SELECT x.repository_id, x.sha, $1, x.author_name, x.author_email, x.author_login, \
            x.committer_login, x.message_headline, x.authored_at, ARRAY[x.branch], x.to_default, \
            CASE WHEN x.to_default THEN x.pushed_at END, CASE WHEN x.to_default THEN x.position END \
         FROM jsonb_to_recordset($2::jsonb) AS x(repository_id int8, branch text, to_default bool, \
            pushed_at timestamptz, sha text, author_name text, author_email text, \
            author_login text, committer_login text, message_headline text, authored_at timestamptz, position int4) \
         ORDER BY x.repository_id, x.sha \
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
        [organization_id.into(), json.into()],
    ))
    .await?;
    Ok(())
}
