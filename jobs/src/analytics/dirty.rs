//! Marks the (organization, local day) pairs a processed event touches, in the event's own
//! transaction, so that the incremental run recomputes exactly those days (and the windows
//! that include them).
//!
//! What a change can move, and so what it marks:
//! - a pull request: its created, ready, first-review, merged and closed days, old and new
//!   (the old ones from `pr_metrics`), and the day it was deployed;
//! - a review or review comment: its own day, and everything of its pull request;
//! - a push: the author days of its commits; the pull requests whose head branch it is; on the
//!   default branch, the pull requests merged by its commits and the deployments of its commits
//!   (their place in history is now known);
//! - a deployment or status: its days, and the merged days of the repository's pull requests it
//!   may now contain (merged before it finished and not deployed earlier);
//! - an issue: its created and closed days.
//!
//! A run recomputes the deployment outcomes (change failure, recovery) these days can reach,
//! which begin up to a failure window before the first of them: so everything an outcome reads
//! must mark its own day here. Days whose outcomes changed are added by the run, not here.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use crate::{domain::stmt, process::Item};

const INSERT: &str = "INSERT INTO analytics_dirty (organization_id, day) ";

/// Marks the days of `times` in the organization's time zone.
pub async fn mark_times<C: ConnectionTrait>(
    db: &C,
    org: i64,
    times: &[DateTime<Utc>],
) -> Result<(), DbErr> {
    if times.is_empty() {
        return Ok(());
    }
    db.execute_raw(stmt(
        &format!(
            "{INSERT} SELECT DISTINCT o.id, (t AT TIME ZONE o.time_zone)::date \
             FROM organizations o, unnest($2::timestamptz[]) t WHERE o.id = $1 \
            "
        ),
        [org.into(), times.to_vec().into()],
    ))
    .await?;
    Ok(())
}

/// Runs a marking statement over `ids` ($1 the organization, $2 the ids), unless there are none.
async fn mark_ids<C: ConnectionTrait>(
    db: &C,
    org: i64,
    ids: &[i64],
    sql: &str,
) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    db.execute_raw(stmt(sql, [org.into(), ids.to_vec().into()]))
        .await?;
    Ok(())
}

/// Marks every day the metrics of these pull requests depend on, before and after the change.
pub async fn mark_pull_requests<C: ConnectionTrait>(
    db: &C,
    org: i64,
    ids: &[i64],
) -> Result<(), DbErr> {
    mark_ids(
        db,
        org,
        ids,
        &format!(
            "{INSERT} SELECT DISTINCT $1::int8, d FROM ( \
                SELECT (t AT TIME ZONE o.time_zone)::date AS d \
                FROM organizations o JOIN pull_requests p ON p.organization_id = o.id \
                CROSS JOIN LATERAL unnest(ARRAY[p.created_at, p.ready_for_review_at, \
                    p.first_review_at, p.merged_at, p.closed_at]) t \
                WHERE o.id = $1 AND p.github_id = ANY($2::int8[]) \
                UNION ALL \
                SELECT d FROM pr_metrics m CROSS JOIN LATERAL unnest(ARRAY[m.created_day, \
                    m.merged_day, m.closed_day, m.first_review_day, m.deployed_day]) d \
                WHERE m.pull_request_id = ANY($2::int8[])) x \
             WHERE d IS NOT NULL"
        ),
    )
    .await
}

/// Marks a deployment's days and the merged days of the pull requests its outcome may link.
pub async fn mark_deployments<C: ConnectionTrait>(
    db: &C,
    org: i64,
    ids: &[i64],
) -> Result<(), DbErr> {
    mark_ids(
        db,
        org,
        ids,
        &format!(
            "{INSERT} SELECT DISTINCT $1::int8, d FROM ( \
                SELECT (t AT TIME ZONE o.time_zone)::date AS d \
                FROM organizations o JOIN deployments x ON x.organization_id = o.id \
                CROSS JOIN LATERAL unnest(ARRAY[x.created_at, x.latest_status_at]) t \
                WHERE o.id = $1 AND x.github_id = ANY($2::int8[]) \
                UNION ALL \
                SELECT m.merged_day FROM deployments x JOIN pr_metrics m \
                    ON m.repository_id = x.repository_id AND m.deployed_at IS NULL \
                   AND m.merged_at IS NOT NULL \
                   AND m.merged_at <= COALESCE(x.latest_status_at, x.created_at) \
                WHERE x.github_id = ANY($2::int8[]) \
                UNION ALL \
                SELECT m.merged_day FROM deployments x JOIN pr_metrics m \
                    ON m.repository_id = x.repository_id \
                   AND m.deployed_at >= LEAST(x.created_at, COALESCE(x.latest_status_at, x.created_at)) \
                WHERE x.github_id = ANY($2::int8[])) y \
             WHERE d IS NOT NULL"
        ),
    )
    .await
}

async fn ids<C: ConnectionTrait>(
    db: &C,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> Result<Vec<i64>, DbErr> {
    db.query_all_raw(stmt(sql, values))
        .await?
        .iter()
        .map(|r| r.try_get::<i64>("", "id"))
        .collect()
}

/// Marks what a written item touches (see the module documentation).
pub async fn mark<C: ConnectionTrait>(db: &C, org: i64, item: &Item) -> Result<(), DbErr> {
    match item {
        Item::PullRequest(pr) => mark_pull_requests(db, org, &[pr.github_id]).await,
        Item::Review(review) => mark_reviews(db, org, std::slice::from_ref(review)).await,
        Item::Comment(_, comment) => {
            mark_times(db, org, &[comment.created_at]).await?;
            mark_pull_requests(db, org, &[comment.pull_request_id]).await
        }
        Item::Push(push) => mark_pushes(db, org, std::slice::from_ref(push)).await,
        Item::Deployment(deployment, _) => mark_deployments(db, org, &[deployment.github_id]).await,
        Item::Issue(issue) => {
            let times: Vec<DateTime<Utc>> = std::iter::once(issue.created_at)
                .chain(issue.closed_at)
                .collect();
            mark_times(db, org, &times).await
        }
        Item::Run(_) | Item::Nothing => Ok(()),
    }
}

/// Marks what reviews touch: their days, and everything of their pull requests.
pub async fn mark_reviews<C: ConnectionTrait>(
    db: &C,
    org: i64,
    reviews: &[crate::domain::reviews::ReviewFact],
) -> Result<(), DbErr> {
    let times: Vec<DateTime<Utc>> = reviews.iter().filter_map(|r| r.submitted_at).collect();
    mark_times(db, org, &times).await?;
    let mut prs: Vec<i64> = reviews.iter().map(|r| r.pull_request_id).collect();
    prs.sort_unstable();
    prs.dedup();
    mark_pull_requests(db, org, &prs).await
}

/// Marks what pushes touch: their commits' author days, the pull requests whose head branch
/// they reached and, on the default branch, the pull requests their commits merged and the
/// deployments of their commits — for all of them in four statements.
pub async fn mark_pushes<C: ConnectionTrait>(
    db: &C,
    org: i64,
    pushes: &[crate::domain::commits::Push],
) -> Result<(), DbErr> {
    #[derive(serde::Serialize)]
    struct Branch<'a> {
        repository_id: i64,
        branch: &'a str,
        to_default: bool,
        shas: Vec<&'a str>,
    }
    if pushes.is_empty() {
        return Ok(());
    }
    let authored: Vec<DateTime<Utc>> = pushes
        .iter()
        .flat_map(|p| p.commits.iter().filter_map(|c| c.authored_at))
        .collect();
    mark_times(db, org, &authored).await?;
    let branches: Vec<Branch<'_>> = pushes
        .iter()
        .map(|p| Branch {
            repository_id: p.repository_id,
            branch: &p.branch,
            to_default: p.to_default_branch,
            shas: p.commits.iter().map(|c| c.sha.as_str()).collect(),
        })
        .collect();
    let json = serde_json::to_value(&branches).map_err(|e| DbErr::Custom(e.to_string()))?;
    let prs = ids(
        db,
        "SELECT DISTINCT p.github_id AS id FROM pull_requests p \
         JOIN jsonb_to_recordset($1::jsonb) AS b(repository_id int8, branch text, to_default bool, shas text[]) \
           ON p.repository_id = b.repository_id \
          AND (p.head_ref = b.branch OR (b.to_default AND p.merge_commit_sha = ANY(b.shas)))",
        vec![json.clone().into()],
    )
    .await?;
    mark_pull_requests(db, org, &prs).await?;
    if pushes.iter().any(|p| p.to_default_branch) {
        let deployments = ids(
            db,
            "SELECT DISTINCT d.github_id AS id FROM deployments d \
             JOIN jsonb_to_recordset($1::jsonb) AS b(repository_id int8, to_default bool, shas text[]) \
               ON d.repository_id = b.repository_id AND b.to_default AND d.sha = ANY(b.shas)",
            vec![json.into()],
        )
        .await?;
        mark_deployments(db, org, &deployments).await?;
    }
    Ok(())
}
