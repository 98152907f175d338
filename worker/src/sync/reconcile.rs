//! `reconcile`: per repository of an installation, the pull requests GitHub shows as updated
//! since the last reconcile, and the open ones, compared with the stored rows; each that differs
//! (missing, older, another state — a stored "open" pull request GitHub no longer lists as
//! open is the classic missed `closed` webhook) is fetched in full and written through the
//! pull-request writer. Both listings' first pages are asked with their ETags: unchanged costs
//! no rate limit.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt, stream};
use jobs::{
    github,
    sync::{self as ledger, Claimed, SyncKind},
};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use tokio::time::Instant;

use super::{
    Repo, Step, SyncContext, SyncError, backfill::pull_request_record, client::Scope, load_repos,
    write_page,
};

const STREAM: &str = "reconcile";
/// Overlap with the previous reconcile, for clock skew and updates made while it ran.
const OVERLAP: chrono::Duration = chrono::Duration::minutes(5);
/// Without a previous reconcile or backfill, how far back "updated since" looks.
const FIRST_LOOKBACK: chrono::Duration = chrono::Duration::days(3);

pub async fn slice(ctx: &SyncContext, job: &Claimed, deadline: Instant) -> Result<Step, SyncError> {
    let installation = job
        .installation_id
        .ok_or_else(|| SyncError::Permanent("reconcile without an installation".into()))?;
    let scope = Scope::Installation(installation);
    ctx.github
        .renew_token(installation, std::time::Duration::from_secs(300))
        .await?;
    let since = match job.since {
        Some(since) => since,
        None => since_for(ctx, installation).await?,
    } - OVERLAP;
    let repo_ids = installed_repositories(&ctx.db, installation).await?;
    ledger::plan(&ctx.db, job.id, &repo_ids, &[STREAM]).await?;
    let pending: Vec<i64> = ledger::checkpoints(&ctx.db, job.id)
        .await?
        .into_iter()
        .filter(|c| !c.done)
        .map(|c| c.repository_id)
        .collect();
    let repos = load_repos(&ctx.db, installation, &pending).await?;
    for (done, repo) in repos.iter().enumerate() {
        // Every slice reconciles at least one repository, however long its start took.
        if done > 0 && Instant::now() >= deadline {
            return Ok(Step::More);
        }
        match reconcile_repository(ctx, job.id, scope, repo, since).await {
            Ok(()) => {}
            Err(SyncError::Github(e)) if e.is_gone() => {
                tracing::warn!(repository = repo.full_name(), error = %e, "not found on GitHub; skipped");
                write_page(ctx, job.id, repo.snapshot.github_id, STREAM, &[], None, 0).await?;
            }
            Err(e) => return Err(e),
        }
    }
    // Repositories whose organization is not recorded have nothing to compare with.
    for id in pending {
        if !repos.iter().any(|r| r.snapshot.github_id == id) {
            write_page(ctx, job.id, id, STREAM, &[], None, 0).await?;
        }
    }
    Ok(Step::Done)
}

/// "Updated since": the start of the last finished reconcile, else of the last finished
/// backfill, else a few days back.
async fn since_for(ctx: &SyncContext, installation: i64) -> Result<DateTime<Utc>, DbErr> {
    if let Some(at) =
        ledger::last_finished_start(&ctx.db, SyncKind::Reconcile, installation).await?
    {
        return Ok(at);
    }
    let backfill =
        ledger::last_finished_start(&ctx.db, SyncKind::SyncInstallation, installation).await?;
    Ok(backfill.unwrap_or_else(|| Utc::now() - FIRST_LOOKBACK))
}

/// The installation's repositories that are installed now.
async fn installed_repositories<C: ConnectionTrait>(
    db: &C,
    installation: i64,
) -> Result<Vec<i64>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT r.github_id FROM repositories r JOIN organizations o ON o.id = r.organization_id \
             WHERE o.installation_id = $1 AND o.status = 'active' AND NOT r.archived \
               AND (r.removed_at IS NULL OR r.installed_at > r.removed_at) ORDER BY 1",
            [installation.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| r.try_get::<i64>("", "github_id"))
        .collect()
}

/// A stored pull request's state and GitHub time.
#[derive(Debug, Clone)]
struct Stored {
    state: String,
    updated_at: DateTime<Utc>,
}

fn state_of(pr: &github::PullRequest) -> &'static str {
    if pr.merged_at.is_some() || pr.merged == Some(true) {
        "merged"
    } else if pr.state == "open" {
        "open"
    } else {
        "closed"
    }
}

/// GitHub's listing says something the stored row does not.
fn differs(stored: Option<&Stored>, listed: &github::PullRequest) -> bool {
    match stored {
        None => true,
        Some(s) => s.updated_at < listed.updated_at || s.state != state_of(listed),
    }
}

async fn reconcile_repository(
    ctx: &SyncContext,
    job: i64,
    scope: Scope,
    repo: &Repo,
    since: DateTime<Utc>,
) -> Result<(), SyncError> {
    let full = repo.full_name();
    let stored = stored_pull_requests(&ctx.db, repo.snapshot.github_id, since).await?;
    let mut suspects: BTreeSet<i32> = BTreeSet::new();

    // Updated since the last reconcile, newest first. The first page is asked with its ETag: a
    // 304 means nothing was updated since the last reconcile read it.
    let key = scope.key();
    let updated_path =
        format!("/repos/{full}/pulls?state=all&sort=updated&direction=desc&per_page=100");
    let updated_etag = ledger::etag(&ctx.db, &key, &updated_path).await?;
    let mut new_updated_etag = None;
    let mut next = Some(updated_path.clone());
    while let Some(path) = next {
        let etag = (path == updated_path)
            .then_some(updated_etag.as_deref())
            .flatten();
        let answer = ctx.github.get(scope, &path, etag).await?;
        if answer.not_modified() {
            break;
        }
        if path == updated_path {
            new_updated_etag = answer.etag.clone();
        }
        let listed: Vec<github::PullRequest> = answer.json()?;
        next = answer.next;
        for pr in &listed {
            if pr.updated_at < since {
                next = None;
                break;
            }
            if differs(stored.get(&pr.id).map(|(_, s)| s), pr) {
                suspects.insert(pr.number);
            }
        }
    }

    // The open ones: stored open but not open on GitHub means an update was missed.
    let open_path = format!("/repos/{full}/pulls?state=open&per_page=100");
    let etag = ledger::etag(&ctx.db, &key, &open_path).await?;
    let first = ctx.github.get(scope, &open_path, etag.as_deref()).await?;
    let new_etag = first.etag.clone().filter(|_| !first.not_modified());
    if !first.not_modified() {
        let mut open: Vec<github::PullRequest> = first.json()?;
        let mut next = first.next.clone();
        while let Some(path) = next {
            let answer = ctx.github.get(scope, &path, None).await?;
            open.extend(answer.json::<Vec<github::PullRequest>>()?);
            next = answer.next;
        }
        let open_ids: BTreeSet<i64> = open.iter().map(|p| p.id).collect();
        for pr in &open {
            if differs(stored.get(&pr.id).map(|(_, s)| s), pr) {
                suspects.insert(pr.number);
            }
        }
        for (id, (number, s)) in &stored {
            if s.state == "open" && !open_ids.contains(id) {
                suspects.insert(*number);
            }
        }
    }

    let concurrency = ctx.settings.fetch_concurrency.max(1);
    let fetched: Vec<Option<github::PullRequest>> = stream::iter(suspects.iter().copied())
        .map(|number| {
            let path = format!("/repos/{full}/pulls/{number}");
            async move {
                match ctx.github.get(scope, &path, None).await {
                    Ok(answer) => answer.json::<github::PullRequest>().map(Some),
                    // Deleted with its repository's history, or transferred: nothing to write.
                    Err(e) if e.is_gone() => Ok(None),
                    Err(e) => Err(e),
                }
            }
        })
        .buffered(concurrency)
        .try_collect()
        .await?;
    let mut records = Vec::new();
    let mut changed = 0;
    for pr in fetched.into_iter().flatten() {
        if differs(stored.get(&pr.id).map(|(_, s)| s), &pr) {
            changed += 1;
        }
        records.push(pull_request_record(repo, pr)?);
    }
    write_page(
        ctx,
        job,
        repo.snapshot.github_id,
        STREAM,
        &records,
        None,
        changed,
    )
    .await?;
    // Remembered only now that what they listed is written.
    if let Some(tag) = new_etag {
        ledger::set_etag(&ctx.db, &key, &open_path, &tag).await?;
    }
    if let Some(tag) = new_updated_etag {
        ledger::set_etag(&ctx.db, &key, &updated_path, &tag).await?;
    }
    if changed > 0 {
        ctx.github
            .metrics()
            .differences
            .inc_by(u64::try_from(changed).unwrap_or_default());
        tracing::info!(
            repository = full,
            changed,
            "reconcile rewrote pull requests that differed"
        );
    }
    Ok(())
}

/// The stored pull requests a reconcile compares: the open ones and those updated in the period
/// (one updated in it on GitHub but stored older is missing here, which counts as different).
async fn stored_pull_requests<C: ConnectionTrait>(
    db: &C,
    repository_id: i64,
    since: DateTime<Utc>,
) -> Result<HashMap<i64, (i32, Stored)>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT github_id, number, state, updated_at FROM pull_requests \
             WHERE repository_id = $1 AND (state = 'open' OR updated_at >= $2)",
            [repository_id.into(), since.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<i64>("", "github_id")?,
                (
                    r.try_get::<i32>("", "number")?,
                    Stored {
                        state: r.try_get("", "state")?,
                        updated_at: r.try_get("", "updated_at")?,
                    },
                ),
            ))
        })
        .collect()
}
