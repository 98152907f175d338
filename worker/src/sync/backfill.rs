//! `syncInstallation`: an installation's history for a period — its repositories, then per
//! repository the pull requests (each with its reviews and commits), the default branch's
//! commits, deployments (with their statuses) and issues (incidents are issues with a matching
//! label) — written through the webhook jobs' writers. Checkpointed per repository, stream and
//! page (`sync_checkpoints`).

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::{StreamExt, TryStreamExt, stream};
use jobs::{
    github::{self, rest},
    process::{self, Item, Parsed},
    sync::{self as ledger, Checkpoint, Claimed},
};
use tokio::time::Instant;

use super::{
    Repo, Step, SyncContext, SyncError,
    client::{GithubError, Scope},
    fetch_all, load_repos, within, write_page,
};

/// The streams of each repository, in the order they are fetched.
pub const STREAMS: [&str; 4] = ["pulls", "commits", "deployments", "issues"];
const LISTING: &str = "repositories";

/// One slice of a backfill: pages until the slice's time is up, then `More`.
pub async fn slice(ctx: &SyncContext, job: &Claimed, deadline: Instant) -> Result<Step, SyncError> {
    let installation = job
        .installation_id
        .ok_or_else(|| SyncError::Permanent("syncInstallation without an installation".into()))?;
    let scope = Scope::Installation(installation);
    ctx.github
        .renew_token(installation, std::time::Duration::from_secs(300))
        .await?;
    let checkpoints = ledger::checkpoints(&ctx.db, job.id).await?;
    let listing = checkpoints
        .iter()
        .find(|c| c.repository_id == 0 && c.stream == LISTING);
    if listing.is_none_or(|c| !c.done) {
        let mut next = listing
            .and_then(|c| c.next_page.clone())
            .unwrap_or_else(|| "/installation/repositories?per_page=100".to_owned());
        loop {
            let answer = ctx.github.get(scope, &next, None).await?;
            let page: rest::InstallationRepositories = answer.json()?;
            let wanted: Vec<&github::Repository> = page
                .repositories
                .iter()
                .filter(|r| {
                    job.repository_ids
                        .as_ref()
                        .is_none_or(|ids| ids.contains(&r.id))
                })
                .collect();
            let mut records = Vec::with_capacity(wanted.len());
            for repo in &wanted {
                let owner = repo.owner.as_ref().ok_or_else(|| {
                    SyncError::Permanent(format!("repository {} has no owner", repo.full_name))
                })?;
                records.push(Parsed::Repository {
                    account: process::account_ref(owner, Some(installation)),
                    repository: process::repository_snapshot(repo),
                    people: vec![process::user(owner)],
                    item: Box::new(Item::Nothing),
                });
            }
            let ids: Vec<i64> = wanted.iter().map(|r| r.id).collect();
            ledger::plan(&ctx.db, job.id, &ids, &STREAMS).await?;
            write_page(
                ctx,
                job.id,
                0,
                LISTING,
                &records,
                answer.next.as_deref(),
                records.len(),
            )
            .await?;
            ctx.github.metrics().items("repositories", records.len());
            match answer.next {
                Some(page) if Instant::now() < deadline => next = page,
                Some(_) => return Ok(Step::More),
                None => break,
            }
        }
    }

    let checkpoints: Vec<Checkpoint> = ledger::checkpoints(&ctx.db, job.id)
        .await?
        .into_iter()
        .filter(|c| c.repository_id != 0 && !c.done)
        .collect();
    let ids: Vec<i64> = checkpoints.iter().map(|c| c.repository_id).collect();
    let repos: HashMap<i64, Repo> = load_repos(&ctx.db, installation, &ids)
        .await?
        .into_iter()
        .map(|r| (r.snapshot.github_id, r))
        .collect();
    let mut written = 0usize;
    for checkpoint in checkpoints {
        let Some(repo) = repos.get(&checkpoint.repository_id) else {
            // Listed, but its organization could not be recorded: nothing to attach rows to.
            write_page(
                ctx,
                job.id,
                checkpoint.repository_id,
                &checkpoint.stream,
                &[],
                None,
                0,
            )
            .await?;
            continue;
        };
        let Some(first) = first_page(&checkpoint.stream, repo, job.since) else {
            // No default branch known: no history to place commits in.
            write_page(
                ctx,
                job.id,
                checkpoint.repository_id,
                &checkpoint.stream,
                &[],
                None,
                0,
            )
            .await?;
            continue;
        };
        let mut path = checkpoint.next_page.clone().unwrap_or(first);
        loop {
            // Every slice writes at least one page, however long its start took.
            if written > 0 && Instant::now() >= deadline {
                return Ok(Step::More);
            }
            written += 1;
            let page = match fetch_page(ctx, scope, repo, &checkpoint.stream, &path, job.since)
                .await
            {
                Ok(page) => page,
                Err(SyncError::Github(e)) if e.is_gone() => {
                    tracing::warn!(repository = repo.full_name(), stream = %checkpoint.stream, error = %e, "not found on GitHub; skipped");
                    Page::default()
                }
                Err(e) => return Err(e),
            };
            write_page(
                ctx,
                job.id,
                repo.snapshot.github_id,
                &checkpoint.stream,
                &page.records,
                page.next.as_deref(),
                page.items,
            )
            .await?;
            ctx.github.metrics().items(&checkpoint.stream, page.items);
            match page.next {
                Some(next) => path = next,
                None => break,
            }
        }
    }
    Ok(Step::Done)
}

/// The first page of a stream: newest first, so the period's end is where the pages stop.
/// `None`: the stream has nothing to fetch (commits of a repository without a default branch).
pub fn first_page(stream: &str, repo: &Repo, since: Option<DateTime<Utc>>) -> Option<String> {
    let full_name = repo.full_name();
    let since = since
        .map(|s| format!("&since={}", s.to_rfc3339_opts(SecondsFormat::Secs, true)))
        .unwrap_or_default();
    Some(match stream {
        "pulls" => {
            format!("/repos/{full_name}/pulls?state=all&sort=updated&direction=desc&per_page=100")
        }
        "commits" => {
            let branch = repo.snapshot.default_branch.as_deref()?;
            format!("/repos/{full_name}/commits?sha={branch}&per_page=100{since}")
        }
        "deployments" => format!("/repos/{full_name}/deployments?per_page=100"),
        _ => format!(
            "/repos/{full_name}/issues?state=all&sort=updated&direction=desc&per_page=100{since}"
        ),
    })
}

/// One page's records, where the stream goes next, and how many GitHub items it held.
#[derive(Debug, Default)]
struct Page {
    records: Vec<Parsed>,
    next: Option<String>,
    items: usize,
}

async fn fetch_page(
    ctx: &SyncContext,
    scope: Scope,
    repo: &Repo,
    stream: &str,
    path: &str,
    since: Option<DateTime<Utc>>,
) -> Result<Page, SyncError> {
    let answer = ctx.github.get(scope, path, None).await?;
    let mut next = answer.next.clone();
    let concurrency = ctx.settings.fetch_concurrency.max(1);
    match stream {
        "pulls" => {
            let wanted = in_period(answer.json()?, &mut next, |p: &github::PullRequest| {
                within(since, p.updated_at)
            });
            let items = wanted.len();
            let records = expand(wanted, concurrency, |pr| {
                pull_request_records(ctx, scope, repo, pr.number)
            })
            .await?;
            Ok(Page {
                records,
                next,
                items,
            })
        }
        "deployments" => {
            let wanted = in_period(answer.json()?, &mut next, |d: &github::Deployment| {
                within(since, d.created_at)
            });
            let items = wanted.len();
            let records = expand(wanted, concurrency, |d| {
                deployment_records(ctx, scope, repo, d)
            })
            .await?;
            Ok(Page {
                records,
                next,
                items,
            })
        }
        "commits" => {
            let listed: Vec<rest::PullCommit> = answer.json()?;
            let items = listed.len();
            let branch = repo.snapshot.default_branch.clone().unwrap_or_default();
            Ok(Page {
                records: default_branch_records(repo, &branch, listed),
                next,
                items,
            })
        }
        _ => {
            let listed: Vec<rest::ListedIssue> = answer.json()?;
            let mut records = Vec::new();
            for listed in listed.into_iter().filter(|i| i.pull_request.is_none()) {
                let mut people = Vec::new();
                let item =
                    process::issue_item(listed.issue, false, repo.snapshot.github_id, &mut people)?;
                records.push(repo.record(people, item));
            }
            let items = records.len();
            Ok(Page {
                records,
                next,
                items,
            })
        }
    }
}

/// The items of a newest-first listing that are inside the period; once it reaches older ones,
/// the listing has no next page to fetch.
fn in_period<T>(listed: Vec<T>, next: &mut Option<String>, keep: impl Fn(&T) -> bool) -> Vec<T> {
    let total = listed.len();
    let wanted: Vec<T> = listed.into_iter().filter(|item| keep(item)).collect();
    if wanted.len() < total {
        *next = None;
    }
    wanted
}

/// Each item's records (fetched `concurrency` at a time), in the items' order.
async fn expand<T, F, Fut>(
    items: Vec<T>,
    concurrency: usize,
    records: F,
) -> Result<Vec<Parsed>, SyncError>
where
    F: FnMut(T) -> Fut,
    Fut: Future<Output = Result<Vec<Parsed>, SyncError>>,
{
    let per_item: Vec<Vec<Parsed>> = stream::iter(items)
        .map(records)
        .buffered(concurrency)
        .try_collect()
        .await?;
    Ok(per_item.into_iter().flatten().collect())
}

/// A pull request in full (the listing lacks its size), its reviews and its commits.
pub async fn pull_request_records(
    ctx: &SyncContext,
    scope: Scope,
    repo: &Repo,
    number: i32,
) -> Result<Vec<Parsed>, SyncError> {
    let full = repo.full_name();
    let github_api = &ctx.github;
    let detail_path = format!("/repos/{full}/pulls/{number}");
    let reviews_path = format!("/repos/{full}/pulls/{number}/reviews?per_page=100");
    let commits_path = format!("/repos/{full}/pulls/{number}/commits?per_page=100");
    let (detail, reviews, commits) = tokio::try_join!(
        github_api.get(scope, &detail_path, None),
        fetch_all::<github::Review>(github_api, scope, &reviews_path),
        fetch_all::<rest::PullCommit>(github_api, scope, &commits_path),
    )?;
    let pr: github::PullRequest = detail.json()?;
    let mut records = Vec::with_capacity(2 + reviews.len());
    records.push(pull_request_record(repo, pr.clone())?);
    for review in reviews {
        let mut people = Vec::new();
        let item = process::review_item(review, pr.id, repo.snapshot.github_id, &mut people)?;
        records.push(repo.record(people, item));
    }
    if !commits.is_empty() {
        records.push(commits_record(repo, &pr.head.git_ref, commits));
    }
    Ok(records)
}

/// A pull request snapshot from the REST API as a record.
pub fn pull_request_record(repo: &Repo, pr: github::PullRequest) -> Result<Parsed, SyncError> {
    let mut people = Vec::new();
    let item = process::pull_request_item(pr, None, repo.snapshot.github_id, &mut people)?;
    Ok(repo.record(people, item))
}

/// The default branch's history, as pushes of one commit each at the commit's committer time:
/// that orders the history (`default_branch_pushed_at`) the way "contains the PR" needs it, and a
/// real push seen later by webhook does not move a commit back in it (the earliest time wins).
fn default_branch_records(
    repo: &Repo,
    branch: &str,
    commits: Vec<rest::PullCommit>,
) -> Vec<Parsed> {
    commits
        .into_iter()
        .map(|c| {
            let pushed_at = c
                .commit
                .committer
                .as_ref()
                .and_then(|p| p.date)
                .or_else(|| c.commit.author.as_ref().and_then(|p| p.date));
            let mut record = commits_record(repo, branch, vec![c]);
            if let Parsed::Repository { item, .. } = &mut record
                && let Item::Push(push) = item.as_mut()
            {
                push.to_default_branch = true;
                push.pushed_at = pushed_at;
            }
            record
        })
        .collect()
}

/// A pull request's commits, recorded like a push to its head branch (which is what they were).
fn commits_record(repo: &Repo, head_ref: &str, commits: Vec<rest::PullCommit>) -> Parsed {
    let mut people = Vec::new();
    let commits = commits
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            people.extend(c.author.iter().map(process::user));
            let author = c.commit.author.unwrap_or(rest::GitPerson {
                name: None,
                email: None,
                date: None,
            });
            jobs::domain::commits::PushedCommit {
                sha: c.sha,
                author_name: author.name,
                author_email: author.email,
                author_login: c.author.map(|a| a.login),
                committer_login: c.committer.map(|a| a.login),
                message_headline: c
                    .commit
                    .message
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(300)
                    .collect(),
                authored_at: author.date,
                position: i32::try_from(i).unwrap_or(i32::MAX),
            }
        })
        .collect();
    repo.record(
        people,
        Item::Push(jobs::domain::commits::Push {
            repository_id: repo.snapshot.github_id,
            branch: head_ref.to_owned(),
            to_default_branch: false,
            pushed_at: None,
            commits,
        }),
    )
}

async fn deployment_records(
    ctx: &SyncContext,
    scope: Scope,
    repo: &Repo,
    deployment: github::Deployment,
) -> Result<Vec<Parsed>, SyncError> {
    let path = format!(
        "/repos/{}/deployments/{}/statuses?per_page=100",
        repo.full_name(),
        deployment.id
    );
    let statuses: Vec<github::DeploymentStatus> = fetch_all(&ctx.github, scope, &path)
        .await
        .or_else(|e: GithubError| if e.is_gone() { Ok(Vec::new()) } else { Err(e) })?;
    let repo_id = repo.snapshot.github_id;
    if statuses.is_empty() {
        let mut people = Vec::new();
        let item = process::deployment_item(deployment, None, repo_id, &mut people);
        return Ok(vec![repo.record(people, item)]);
    }
    Ok(statuses
        .into_iter()
        .map(|status| {
            let mut people = Vec::new();
            let item =
                process::deployment_item(deployment.clone(), Some(status), repo_id, &mut people);
            repo.record(people, item)
        })
        .collect())
}
