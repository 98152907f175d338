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

/// What a revert pull request says it reverts: GitHub's "Revert" button names the branch
/// `revert-<n>-<branch>`, the title `Revert "<title>"` and the body `Reverts owner/repo#<n>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reverts {
    /// `owner/name` from the body; `None` means the pull request's own repository.
    pub repository: Option<String>,
    pub number: Option<i32>,
    pub title: Option<String>,
}

impl Reverts {
    pub fn parse(head_ref: &str, title: &str, body: Option<&str>) -> Self {
        let mut reverts = Self::default();
        if let Some(rest) = head_ref.strip_prefix("revert-")
            && let Some((n, _)) = rest.split_once('-')
        {
            reverts.number = n.parse().ok();
        }
        if let Some(body) = body
            && let Some(at) = body.find("Reverts ")
        {
            let target = body[at + "Reverts ".len()..]
                .split_whitespace()
                .next()
                .unwrap_or("");
            if let Some((repo, n)) = target.split_once('#')
                && let Ok(n) = n.trim_end_matches(|c: char| !c.is_ascii_digit()).parse()
                && repo.split('/').count() == 2
            {
                reverts.repository = Some(repo.to_owned());
                reverts.number = Some(n);
            }
        }
        if let Some(quoted) = title.strip_prefix("Revert \"")
            && let Some(inner) = quoted.strip_suffix('"')
        {
            reverts.title = Some(inner.to_owned());
        }
        reverts
    }

    pub fn is_revert(&self) -> bool {
        self.number.is_some() || self.title.is_some()
    }
}

#[derive(Debug, Clone)]
pub struct PullRequestSnapshot {
    pub reverts: Reverts,
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

/// The version tuple of [`version`], in Rust, for merging snapshots of one batch.
fn version_key(pr: &PullRequestSnapshot) -> (DateTime<Utc>, u8, i32, &str) {
    let rank = match pr.state {
        PrState::Open => 1,
        PrState::Closed => 2,
        PrState::Merged => 3,
    };
    (
        pr.updated_at,
        rank,
        pr.commits_count.unwrap_or(-1),
        pr.head_sha.as_str(),
    )
}

fn min_opt(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Two snapshots of one pull request as one, exactly as the upsert would combine them in
/// either order (a statement may not touch a row twice, so a batch is merged first).
fn merge(a: PullRequestSnapshot, b: PullRequestSnapshot) -> PullRequestSnapshot {
    let (older, mut newer) = if version_key(&b) > version_key(&a) {
        (a, b)
    } else {
        (b, a)
    };
    newer.created_at = newer.created_at.min(older.created_at);
    newer.ready_for_review_at = min_opt(newer.ready_for_review_at, older.ready_for_review_at);
    newer.author_id = older.author_id.or(newer.author_id);
    newer.additions = newer.additions.or(older.additions);
    newer.deletions = newer.deletions.or(older.deletions);
    newer.changed_files = newer.changed_files.or(older.changed_files);
    newer.commits_count = newer.commits_count.or(older.commits_count);
    newer
}

/// Assembled once: writers run on every job.
static UPSERT: std::sync::LazyLock<String> = std::sync::LazyLock::new(build_upsert_sql);

/// `first_commit_at` of a pull request whose columns are `t.…` (see [`refresh_first_commit_many`]).
fn first_commit_sql(t: &str) -> String {
    format!(
        "(SELECT min(c.authored_at) FROM commits c \
            WHERE c.repository_id = {t}.repository_id AND c.refs @> ARRAY[{t}.head_ref] \
              AND c.authored_at <= COALESCE({t}.merged_at, {t}.closed_at, 'infinity'))"
    )
}

/// `first_review_at` (`approved` false) or `first_approved_at` (true) of the pull request
/// `id` written by `author` in `organization` (see [`refresh_review_times_many`]).
fn review_time_sql(approved: bool, id: &str, author: &str, organization: &str) -> String {
    let filter = if approved {
        "r.approved".to_owned()
    } else {
        format!(
            "r.state <> 'pending' AND r.reviewer_id IS DISTINCT FROM {author} \
             AND NOT EXISTS (SELECT 1 FROM github_users u WHERE u.organization_id = {organization} \
                AND u.github_id = r.reviewer_id AND u.is_bot)"
        )
    };
    format!(
        "(SELECT min(r.submitted_at) FROM reviews r WHERE r.pull_request_id = {id} AND {filter})"
    )
}

fn build_upsert_sql() -> String {
    let newer = format!("{} > {}", version("EXCLUDED"), version("p"));
    // The first-X times are computed with the snapshot that is written, in the same statement
    // (a second and third statement per batch cost ~7 % of a drain). EXCLUDED's are right
    // whenever the row takes the new head and ends and the author does not change; otherwise
    // they are computed again from the row. Recomputed on every change, so a commit or review
    // committed beside the pull request's first insert is caught up by its next delivery.
    let first_commit = format!(
        "first_commit_at = CASE WHEN {newer} THEN EXCLUDED.first_commit_at ELSE {} END",
        first_commit_sql("p")
    );
    let same_author =
        "(p.author_id IS NULL OR p.author_id IS NOT DISTINCT FROM EXCLUDED.author_id)";
    let review_times = [("first_review_at", false), ("first_approved_at", true)]
        .iter()
        .map(|(c, approved)| {
            format!(
                "{c} = CASE WHEN {same_author} THEN EXCLUDED.{c} ELSE {} END",
                review_time_sql(*approved, "p.github_id", "p.author_id", "p.organization_id")
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let inserted_times = format!(
        "{}, {}, {}",
        first_commit_sql("x"),
        review_time_sql(false, "x.github_id", "x.author_id", "$1"),
        review_time_sql(true, "x.github_id", "x.author_id", "$1"),
    );
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
        "reverts_repository",
        "reverts_number",
        "reverts_title",
        "updated_at",
    ]
    .iter()
    .map(|c| format!("{c} = CASE WHEN {newer} THEN EXCLUDED.{c} ELSE p.{c} END"))
    .chain(
        ["additions", "deletions", "changed_files", "commits_count"]
            .iter()
            .map(|c| {
                format!(
                    "{c} = CASE WHEN {newer} THEN COALESCE(EXCLUDED.{c}, p.{c}) ELSE COALESCE(p.{c}, EXCLUDED.{c}) END"
                )
            }),
    )
    .collect::<Vec<_>>()
    .join(", ");
    format!(
        "INSERT INTO pull_requests AS p (github_id, organization_id, repository_id, number, author_id, \
            title, state, draft, created_at, ready_for_review_at, merged_at, closed_at, merged_by_id, \
            merge_commit_sha, head_sha, head_ref, base_ref, additions, deletions, changed_files, \
            commits_count, reverts_repository, reverts_number, reverts_title, updated_at, \
            first_commit_at, first_review_at, first_approved_at) \
         SELECT x.github_id, $1, x.repository_id, x.number, x.author_id, x.title, x.state, x.draft, \
            x.created_at, x.ready_for_review_at, x.merged_at, x.closed_at, x.merged_by_id, \
            x.merge_commit_sha, x.head_sha, x.head_ref, x.base_ref, x.additions, x.deletions, \
            x.changed_files, x.commits_count, x.reverts_repository, x.reverts_number, \
            x.reverts_title, x.updated_at, {inserted_times} \
         FROM jsonb_to_recordset($2::jsonb) AS x(github_id int8, repository_id int8, number int4, \
            author_id int8, title text, state text, draft bool, created_at timestamptz, \
            ready_for_review_at timestamptz, merged_at timestamptz, closed_at timestamptz, \
            merged_by_id int8, merge_commit_sha text, head_sha text, head_ref text, base_ref text, \
            additions int4, deletions int4, changed_files int4, commits_count int4, \
            reverts_repository text, reverts_number int4, reverts_title text, updated_at timestamptz) \
         ORDER BY x.github_id \
         ON CONFLICT (github_id) DO UPDATE SET {snapshot}, {first_commit}, {review_times}, \
            created_at = LEAST(p.created_at, EXCLUDED.created_at), \
            ready_for_review_at = LEAST(p.ready_for_review_at, EXCLUDED.ready_for_review_at), \
            author_id = COALESCE(p.author_id, EXCLUDED.author_id), \
            synced_at = now() \
         WHERE {newer} \
            OR EXCLUDED.created_at < p.created_at \
            OR p.ready_for_review_at IS DISTINCT FROM LEAST(p.ready_for_review_at, EXCLUDED.ready_for_review_at) \
            OR (p.author_id IS NULL AND EXCLUDED.author_id IS NOT NULL) \
            OR (p.commits_count IS NULL AND EXCLUDED.commits_count IS NOT NULL) \
            OR (p.additions IS NULL AND EXCLUDED.additions IS NOT NULL)"
    )
}

/// Applies a snapshot; a change brings the first-X times up to date in the same statement
/// (reviews and commits may have arrived first; a new author changes which reviews count).
pub async fn upsert<C: ConnectionTrait>(
    db: &C,
    organization_id: i64,
    pr: &PullRequestSnapshot,
) -> Result<(), DbErr> {
    upsert_many(db, organization_id, std::slice::from_ref(pr)).await
}

/// [`upsert`] for many snapshots in one statement (several snapshots of one pull request are
/// merged first, by the same rules).
pub async fn upsert_many<C: ConnectionTrait>(
    db: &C,
    organization_id: i64,
    prs: &[PullRequestSnapshot],
) -> Result<(), DbErr> {
    let mut merged: std::collections::BTreeMap<i64, PullRequestSnapshot> = Default::default();
    for pr in prs {
        let pr = match merged.remove(&pr.github_id) {
            Some(seen) => merge(seen, pr.clone()),
            None => pr.clone(),
        };
        merged.insert(pr.github_id, pr);
    }
    if merged.is_empty() {
        return Ok(());
    }
    let rows: Vec<serde_json::Value> = merged
        .values()
        .map(|pr| {
            serde_json::json!({
                "github_id": pr.github_id,
                "repository_id": pr.repository_id,
                "number": pr.number,
                "author_id": pr.author_id,
                "title": pr.title,
                "state": pr.state.as_str(),
                "draft": pr.draft,
                "created_at": pr.created_at,
                "ready_for_review_at": pr.ready_for_review_at,
                "merged_at": pr.merged_at,
                "closed_at": pr.closed_at,
                "merged_by_id": pr.merged_by_id,
                "merge_commit_sha": pr.merge_commit_sha,
                "head_sha": pr.head_sha,
                "head_ref": pr.head_ref,
                "base_ref": pr.base_ref,
                "additions": pr.additions,
                "deletions": pr.deletions,
                "changed_files": pr.changed_files,
                "commits_count": pr.commits_count,
                "reverts_repository": pr.reverts.repository,
                "reverts_number": pr.reverts.number,
                "reverts_title": pr.reverts.title,
                "updated_at": pr.updated_at,
            })
        })
        .collect();
    db.execute_raw(stmt(
        &UPSERT,
        [organization_id.into(), serde_json::Value::from(rows).into()],
    ))
    .await?;
    Ok(())
}

/// `first_commit_at`: the earliest author time among the commits pushed to the pull request's
/// head branch, not authored after it was merged or closed (so a branch name used again later
/// does not reach back into an old pull request).
pub async fn refresh_first_commit_many<C: ConnectionTrait>(
    db: &C,
    pull_request_ids: &[i64],
) -> Result<(), DbErr> {
    if pull_request_ids.is_empty() {
        return Ok(());
    }
    static REFRESH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "UPDATE pull_requests p SET first_commit_at = t.first, synced_at = now() \
             FROM (SELECT p.github_id, {} AS first FROM pull_requests p \
                WHERE p.github_id = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)::int8))) t \
             WHERE p.github_id = t.github_id AND p.first_commit_at IS DISTINCT FROM t.first",
            first_commit_sql("p")
        )
    });
    db.execute_raw(stmt(&REFRESH, [serde_json::json!(pull_request_ids).into()]))
        .await?;
    Ok(())
}

/// `first_review_at`: the earliest review (any state but pending) or review comment by someone
/// other than the author and not a bot; `first_approved_at`: the earliest approval. Recomputed
/// from `reviews`, so it does not matter whether the reviews or the pull request came first.
/// Several pull requests in one statement.
pub async fn refresh_review_times_many<C: ConnectionTrait>(
    db: &C,
    pull_request_ids: &[i64],
) -> Result<(), DbErr> {
    if pull_request_ids.is_empty() {
        return Ok(());
    }
    static REFRESH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let time =
            |approved| review_time_sql(approved, "p.github_id", "p.author_id", "p.organization_id");
        format!(
            "UPDATE pull_requests p SET first_review_at = t.first_review, \
                first_approved_at = t.first_approved, synced_at = now() \
             FROM (SELECT p.github_id, {} AS first_review, {} AS first_approved \
                FROM pull_requests p \
                WHERE p.github_id = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)::int8))) t \
             WHERE p.github_id = t.github_id \
               AND (p.first_review_at, p.first_approved_at) IS DISTINCT FROM (t.first_review, t.first_approved)",
            time(false),
            time(true)
        )
    });
    db.execute_raw(stmt(&REFRESH, [serde_json::json!(pull_request_ids).into()]))
        .await?;
    Ok(())
}
