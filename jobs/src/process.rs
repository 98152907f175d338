//! Turns one stored delivery into domain rows, in two steps: [`parse`] the payload into the
//! writers' records (the edge: a payload that does not fit is a permanent error, before anything
//! is written), then [`write`] them in the caller's transaction.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};
use serde::de::DeserializeOwned;

use crate::{
    domain::{
        cache::Session,
        commits::{self, Push, PushedCommit},
        deployments::{self, DeploymentSnapshot, StatusFact},
        incidents::{self, IssueSnapshot},
        organizations::{self, AccountRef, InstallationState},
        pull_requests::{self, PrState, PullRequestSnapshot},
        repositories::{self, Member, Membership, RepositorySnapshot},
        reviews::{self, CommentFact, ReviewFact},
        users::GithubUser,
        workflow_runs::{self, RunKind, RunSnapshot},
    },
    github::{self, Account, Envelope},
};

/// Why a delivery could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The payload will never apply (malformed, unknown shape): dead-letter it at once.
    #[error("{0}")]
    Permanent(String),
    /// Worth another attempt later.
    #[error("database: {0}")]
    Database(#[from] DbErr),
}

/// A stored delivery, as the processor sees it.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryInput<'a> {
    pub event: &'a str,
    pub payload: &'a str,
    /// When DevPulse received it: the fallback time of installation events that carry none.
    pub received_at: DateTime<Utc>,
}

/// A delivery parsed into the records the writers take.
#[derive(Debug, Clone)]
pub enum Parsed {
    /// An event about one repository.
    Repository {
        account: AccountRef,
        repository: RepositorySnapshot,
        /// Everyone the event names (sender, author, reviewer…), written before `item`.
        people: Vec<GithubUser>,
        item: Box<Item>,
    },
    /// `installation` / `installation_repositories`.
    Installation {
        account: AccountRef,
        installation_id: i64,
        state: Option<InstallationState>,
        at: DateTime<Utc>,
        membership: Vec<(Vec<Member>, Membership)>,
        people: Vec<GithubUser>,
        /// History to fetch: `Some(None)` all repositories (a new installation), `Some(ids)`
        /// the repositories just added.
        backfill: Option<Option<Vec<i64>>>,
    },
}

/// How far back the backfill a new installation or repository triggers goes.
pub const BACKFILL_DAYS: i64 = 90;

#[derive(Debug, Clone)]
pub enum Item {
    PullRequest(PullRequestSnapshot),
    Review(ReviewFact),
    /// A review comment, and the review it belongs to when it names one.
    Comment(Option<ReviewFact>, CommentFact),
    Push(Push),
    Issue(IssueSnapshot),
    Deployment(DeploymentSnapshot, Option<StatusFact>),
    Run(RunSnapshot),
    /// A shape the platform has nothing to record for (a tag push, a deleted branch…).
    Nothing,
}

fn from_json<T: DeserializeOwned>(event: &str, payload: &str) -> Result<T, ProcessError> {
    serde_json::from_str(payload)
        .map_err(|e| ProcessError::Permanent(format!("{event} payload does not parse: {e}")))
}

/// The person (or bot) a GitHub account is.
pub fn user(account: &Account) -> GithubUser {
    GithubUser {
        id: account.id,
        login: account.login.clone(),
        user_type: account
            .account_type
            .clone()
            .unwrap_or_else(|| "User".to_owned()),
        is_bot: account.is_bot(),
    }
}

/// Parses a delivery of a processed event. Only `Permanent` errors come out of here.
pub fn parse(input: DeliveryInput<'_>) -> Result<Parsed, ProcessError> {
    match input.event {
        "installation" => installation(input),
        "installation_repositories" => installation_repositories(input),
        _ => repository_event(input),
    }
}

/// Writes several parsed deliveries in one transaction: pull-request snapshots, reviews and
/// pushes in a few statements per organization, the rest one by one — by table, in the order of
/// [`lock_order`], so concurrent batches take their row locks in one order.
pub async fn write_all<C: ConnectionTrait>(
    session: &mut Session<'_, C>,
    parsed: &[&Parsed],
) -> Result<(), DbErr> {
    use std::collections::BTreeMap;
    let mut prs: BTreeMap<i64, Vec<PullRequestSnapshot>> = BTreeMap::new();
    let mut reviews: BTreeMap<i64, Vec<ReviewFact>> = BTreeMap::new();
    let mut pushes: BTreeMap<i64, Vec<Push>> = BTreeMap::new();
    let (mut installations, mut comments, mut rest) = (Vec::new(), Vec::new(), Vec::new());
    for p in parsed {
        let Parsed::Repository {
            account,
            repository,
            people,
            item,
        } = p
        else {
            installations.push(*p);
            continue;
        };
        let batch = match item.as_ref() {
            Item::PullRequest(_) | Item::Review(_) | Item::Push(_) => true,
            Item::Comment(..) => {
                comments.push(*p);
                false
            }
            _ => {
                rest.push(*p);
                false
            }
        };
        if !batch {
            continue;
        }
        let org = session.organization(account).await?;
        session.repository(org, repository).await?;
        session.users(org, people).await?;
        match item.as_ref() {
            Item::PullRequest(pr) => prs.entry(org).or_default().push(pr.clone()),
            Item::Review(review) => reviews.entry(org).or_default().push(review.clone()),
            Item::Push(push) => pushes.entry(org).or_default().push(push.clone()),
            _ => {}
        }
    }
    for (org, prs) in prs {
        pull_requests::upsert_many(session.db(), org, &prs).await?;
        let ids: Vec<i64> = prs.iter().map(|pr| pr.github_id).collect();
        crate::analytics::dirty::mark_pull_requests(session.db(), org, &ids).await?;
    }
    for p in installations {
        write(session, p).await?;
    }
    for (org, reviews) in reviews {
        reviews::upsert_many(session.db(), org, &reviews).await?;
        crate::analytics::dirty::mark_reviews(session.db(), org, &reviews).await?;
    }
    for p in comments {
        write(session, p).await?;
    }
    for (org, pushes) in pushes {
        commits::record_pushes(session.db(), org, &pushes).await?;
        crate::analytics::dirty::mark_pushes(session.db(), org, &pushes).await?;
    }
    for p in rest {
        write(session, p).await?;
    }
    Ok(())
}

/// Writes parsed records: organization, repository and people first (review times exclude
/// bots, so reviewers must be known), then the event's own rows.
pub async fn write<C: ConnectionTrait>(
    session: &mut Session<'_, C>,
    parsed: &Parsed,
) -> Result<(), DbErr> {
    match parsed {
        Parsed::Repository {
            account,
            repository,
            people,
            item,
        } => {
            let org = session.organization(account).await?;
            session.repository(org, repository).await?;
            session.users(org, people).await?;
            let db = session.db();
            match item.as_ref() {
                Item::PullRequest(pr) => pull_requests::upsert(db, org, pr).await?,
                Item::Review(review) => reviews::upsert(db, org, review).await?,
                Item::Comment(review, comment) => {
                    if let Some(review) = review {
                        reviews::upsert(db, org, review).await?;
                    }
                    reviews::record_comment(db, org, comment).await?;
                }
                Item::Issue(issue) => incidents::upsert(db, org, issue).await?,
                Item::Push(push) => commits::record_push(db, org, push).await?,
                Item::Deployment(deployment, status) => {
                    deployments::upsert(db, org, deployment).await?;
                    if let Some(status) = status {
                        deployments::record_status(db, org, status).await?;
                    }
                }
                Item::Run(run) => workflow_runs::upsert(db, org, run).await?,
                Item::Nothing => {}
            }
            crate::analytics::dirty::mark(db, org, item).await?;
        }
        Parsed::Installation {
            account,
            installation_id,
            state,
            at,
            membership,
            people,
            backfill,
        } => {
            let org = session.organization(account).await?;
            let db = session.db();
            if let Some(state) = state {
                organizations::set_installation_state(db, org, *installation_id, *state, *at)
                    .await?;
            }
            for (members, side) in membership {
                repositories::set_membership(db, org, members, *side, *at).await?;
            }
            session.users(org, people).await?;
            if let Some(repository_ids) = backfill {
                // In the same transaction: the backfill is recorded exactly when the
                // installation is.
                crate::sync::enqueue(
                    session.db(),
                    &crate::sync::Request {
                        kind: crate::sync::SyncKind::SyncInstallation,
                        installation_id: Some(*installation_id),
                        since: Some(*at - chrono::Duration::days(BACKFILL_DAYS)),
                        repository_ids: repository_ids.clone(),
                        requested_by: "webhook".to_owned(),
                    },
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// The order batches write in: by table, then by row key, so two batches touching the same rows
/// take their locks in the same order (no deadlocks between concurrent batches).
pub fn lock_order(parsed: &Parsed) -> (u8, i64) {
    match parsed {
        Parsed::Installation { account, .. } => (0, account.account_id),
        Parsed::Repository {
            item, repository, ..
        } => match item.as_ref() {
            Item::PullRequest(pr) => (1, pr.github_id),
            Item::Review(review) => (2, review.pull_request_id),
            Item::Comment(_, comment) => (2, comment.pull_request_id),
            Item::Issue(issue) => (6, issue.github_id),
            Item::Push(_) | Item::Nothing => (3, repository.github_id),
            Item::Deployment(deployment, _) => (4, deployment.github_id),
            Item::Run(run) => (5, run.github_id),
        },
    }
}

fn repository_event(input: DeliveryInput<'_>) -> Result<Parsed, ProcessError> {
    let envelope: Envelope = from_json(input.event, input.payload)?;
    let repo = envelope.repository.as_ref().ok_or_else(|| {
        ProcessError::Permanent(format!("{} payload has no repository", input.event))
    })?;
    let owner = repo
        .owner
        .as_ref()
        .or(envelope.organization.as_ref())
        .ok_or_else(|| ProcessError::Permanent("repository has no owner".to_owned()))?;
    let mut people: Vec<GithubUser> = envelope.sender.iter().map(user).collect();
    let item = match input.event {
        "pull_request" => pull_request(input, repo.id, &mut people)?,
        "pull_request_review" => review(input, repo.id, &mut people)?,
        "pull_request_review_comment" => review_comment(input, repo.id, &mut people)?,
        "push" => push(input, repo)?,
        "deployment" | "deployment_status" => deployment(input, repo.id, &mut people)?,
        "workflow_run" => workflow_run(input, repo.id)?,
        "check_suite" => check_suite(input, repo.id)?,
        "issues" => issue(input, repo.id, &mut people)?,
        other => {
            return Err(ProcessError::Permanent(format!(
                "no processor for event {other:?}"
            )));
        }
    };
    Ok(Parsed::Repository {
        account: account_ref(owner, envelope.installation.as_ref().map(|i| i.id)),
        repository: repository_snapshot(repo),
        people,
        item: Box::new(item),
    })
}

/// The organization a repository owner's account stands for.
pub fn account_ref(owner: &Account, installation_id: Option<i64>) -> AccountRef {
    AccountRef {
        account_id: owner.id,
        login: owner.login.clone(),
        account_type: owner.account_type.clone(),
        installation_id,
    }
}

pub fn repository_snapshot(repo: &github::Repository) -> RepositorySnapshot {
    RepositorySnapshot {
        github_id: repo.id,
        name: repo.name.clone(),
        full_name: repo.full_name.clone(),
        private: repo.private,
        archived: repo.archived,
        default_branch: repo.default_branch.clone(),
        updated_at: repo.updated_at,
    }
}

fn pull_request(
    input: DeliveryInput<'_>,
    repository_id: i64,
    people: &mut Vec<GithubUser>,
) -> Result<Item, ProcessError> {
    let event: github::PullRequestEvent = from_json(input.event, input.payload)?;
    let ready_for_review_at =
        (event.action == "ready_for_review").then_some(event.pull_request.updated_at);
    pull_request_item(
        event.pull_request,
        ready_for_review_at,
        repository_id,
        people,
    )
}

/// A pull request as GitHub shows it (webhook or REST API) → the writer's snapshot.
/// `ready_for_review_at` is known only from a `ready_for_review` event.
pub fn pull_request_item(
    pr: github::PullRequest,
    ready_for_review_at: Option<DateTime<Utc>>,
    repository_id: i64,
    people: &mut Vec<GithubUser>,
) -> Result<Item, ProcessError> {
    let state = if pr.merged_at.is_some() || pr.merged == Some(true) {
        PrState::Merged
    } else {
        match pr.state.as_str() {
            "open" => PrState::Open,
            "closed" => PrState::Closed,
            other => {
                return Err(ProcessError::Permanent(format!(
                    "unknown pull request state {other:?}"
                )));
            }
        }
    };
    people.extend(pr.user.iter().map(user));
    people.extend(pr.merged_by.iter().map(user));
    let reverts = pull_requests::Reverts::parse(&pr.head.git_ref, &pr.title, pr.body.as_deref());
    Ok(Item::PullRequest(PullRequestSnapshot {
        reverts,
        github_id: pr.id,
        repository_id,
        number: pr.number,
        author_id: pr.user.as_ref().map(|u| u.id),
        title: pr.title,
        state,
        draft: pr.draft,
        created_at: pr.created_at,
        ready_for_review_at,
        merged_at: pr.merged_at,
        closed_at: pr.closed_at,
        merged_by_id: pr.merged_by.as_ref().map(|u| u.id),
        merge_commit_sha: pr.merge_commit_sha,
        head_sha: pr.head.sha,
        head_ref: pr.head.git_ref,
        base_ref: pr.base.git_ref,
        additions: pr.additions,
        deletions: pr.deletions,
        changed_files: pr.changed_files,
        commits_count: pr.commits,
        updated_at: pr.updated_at,
    }))
}

fn review(
    input: DeliveryInput<'_>,
    repository_id: i64,
    people: &mut Vec<GithubUser>,
) -> Result<Item, ProcessError> {
    let event: github::ReviewEvent = from_json(input.event, input.payload)?;
    review_item(event.review, event.pull_request.id, repository_id, people)
}

/// A review of the pull request `pull_request_id` (webhook or REST API) → the writer's fact.
pub fn review_item(
    review: github::Review,
    pull_request_id: i64,
    repository_id: i64,
    people: &mut Vec<GithubUser>,
) -> Result<Item, ProcessError> {
    let state = review.state.to_ascii_lowercase();
    if !reviews::STATES.contains(&state.as_str()) {
        return Err(ProcessError::Permanent(format!(
            "unknown review state {:?}",
            review.state
        )));
    }
    people.extend(review.user.iter().map(user));
    Ok(Item::Review(ReviewFact {
        github_id: review.id,
        repository_id,
        pull_request_id,
        reviewer_id: review.user.as_ref().map(|u| u.id),
        state,
        submitted_at: review.submitted_at,
        commit_id: review.commit_id,
    }))
}

/// A review comment belongs to a review: it tells that the review happened (and when, at the
/// latest). Editing or deleting the comment does not undo that.
fn review_comment(
    input: DeliveryInput<'_>,
    repository_id: i64,
    people: &mut Vec<GithubUser>,
) -> Result<Item, ProcessError> {
    let event: github::ReviewCommentEvent = from_json(input.event, input.payload)?;
    people.extend(event.comment.user.iter().map(user));
    let author_id = event.comment.user.as_ref().map(|u| u.id);
    let comment = CommentFact {
        github_id: event.comment.id,
        repository_id,
        pull_request_id: event.pull_request.id,
        review_id: event.comment.pull_request_review_id,
        author_id,
        created_at: event.comment.created_at,
    };
    // A comment outside any review (very old payloads) has no review to attach to.
    let review = event
        .comment
        .pull_request_review_id
        .map(|review_id| ReviewFact {
            github_id: review_id,
            repository_id,
            pull_request_id: event.pull_request.id,
            reviewer_id: author_id,
            state: "commented".to_owned(),
            submitted_at: Some(event.comment.created_at),
            commit_id: event.comment.commit_id,
        });
    Ok(Item::Comment(review, comment))
}

fn issue(
    input: DeliveryInput<'_>,
    repository_id: i64,
    people: &mut Vec<GithubUser>,
) -> Result<Item, ProcessError> {
    let event: github::IssuesEvent = from_json(input.event, input.payload)?;
    let gone = matches!(event.action.as_str(), "deleted" | "transferred");
    issue_item(event.issue, gone, repository_id, people)
}

/// An issue (webhook or REST API) → the incidents writer's snapshot; `gone`: deleted or moved.
pub fn issue_item(
    issue: github::Issue,
    gone: bool,
    repository_id: i64,
    people: &mut Vec<GithubUser>,
) -> Result<Item, ProcessError> {
    people.extend(issue.user.iter().map(user));
    let closed = match issue.state.as_deref() {
        Some("closed") => true,
        Some("open") => false,
        None => issue.closed_at.is_some(),
        Some(other) => {
            return Err(ProcessError::Permanent(format!(
                "unknown issue state {other:?}"
            )));
        }
    };
    Ok(Item::Issue(IssueSnapshot {
        github_id: issue.id,
        repository_id,
        number: issue.number,
        title: issue.title,
        labels: issue
            .labels
            .unwrap_or_default()
            .into_iter()
            .map(|l| l.name)
            .collect(),
        closed,
        created_at: issue.created_at,
        closed_at: issue.closed_at,
        updated_at: issue.updated_at,
        gone,
    }))
}

fn push(input: DeliveryInput<'_>, repo: &github::Repository) -> Result<Item, ProcessError> {
    let event: github::PushEvent = from_json(input.event, input.payload)?;
    let Some(branch) = event.git_ref.strip_prefix("refs/heads/") else {
        return Ok(Item::Nothing); // tags
    };
    if event.deleted || event.commits.is_empty() {
        return Ok(Item::Nothing);
    }
    let default_branch = event
        .repository
        .default_branch
        .as_deref()
        .or(repo.default_branch.as_deref());
    let pushed_at = event
        .repository
        .pushed_at
        .or(event.head_commit.as_ref().and_then(|c| c.timestamp));
    let commits = event
        .commits
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let author = c.author.unwrap_or(github::CommitPerson {
                name: None,
                email: None,
                username: None,
            });
            PushedCommit {
                sha: c.id,
                author_name: author.name,
                author_email: author.email,
                author_login: author.username,
                committer_login: c.committer.and_then(|p| p.username),
                message_headline: c
                    .message
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(300)
                    .collect(),
                authored_at: c.timestamp,
                position: i32::try_from(i).unwrap_or(i32::MAX),
            }
        })
        .collect();
    Ok(Item::Push(Push {
        repository_id: repo.id,
        branch: branch.to_owned(),
        to_default_branch: default_branch == Some(branch),
        pushed_at,
        commits,
    }))
}

fn deployment(
    input: DeliveryInput<'_>,
    repository_id: i64,
    people: &mut Vec<GithubUser>,
) -> Result<Item, ProcessError> {
    let event: github::DeploymentEvent = from_json(input.event, input.payload)?;
    let status = if input.event == "deployment_status" {
        Some(event.deployment_status.ok_or_else(|| {
            ProcessError::Permanent("deployment_status payload has no deployment_status".to_owned())
        })?)
    } else {
        None
    };
    Ok(deployment_item(
        event.deployment,
        status,
        repository_id,
        people,
    ))
}

/// A deployment and maybe one of its statuses (webhook or REST API) → the writer's records.
pub fn deployment_item(
    d: github::Deployment,
    status: Option<github::DeploymentStatus>,
    repository_id: i64,
    people: &mut Vec<GithubUser>,
) -> Item {
    people.extend(d.creator.iter().map(user));
    let status = status.map(|status| {
        people.extend(status.creator.iter().map(user));
        StatusFact {
            github_id: status.id,
            deployment_id: d.id,
            state: status.state,
            environment: status.environment,
            creator_id: status.creator.as_ref().map(|u| u.id),
            created_at: status.created_at,
            updated_at: status.updated_at,
        }
    });
    Item::Deployment(
        DeploymentSnapshot {
            github_id: d.id,
            repository_id,
            sha: d.sha,
            git_ref: d.git_ref,
            task: d.task.unwrap_or_else(|| "deploy".to_owned()),
            environment: d.environment,
            production_environment: d.production_environment,
            creator_id: d.creator.as_ref().map(|u| u.id),
            created_at: d.created_at,
            updated_at: d.updated_at,
        },
        status,
    )
}

fn workflow_run(input: DeliveryInput<'_>, repository_id: i64) -> Result<Item, ProcessError> {
    let run = from_json::<github::WorkflowRunEvent>(input.event, input.payload)?.workflow_run;
    Ok(Item::Run(RunSnapshot {
        kind: RunKind::WorkflowRun,
        github_id: run.id,
        repository_id,
        name: run.name,
        workflow_id: run.workflow_id,
        head_sha: run.head_sha,
        head_branch: run.head_branch,
        event: run.event,
        status: run.status,
        conclusion: run.conclusion,
        run_number: run.run_number,
        run_attempt: run.run_attempt,
        created_at: run.created_at,
        updated_at: run.updated_at,
        run_started_at: run.run_started_at,
    }))
}

fn check_suite(input: DeliveryInput<'_>, repository_id: i64) -> Result<Item, ProcessError> {
    let suite = from_json::<github::CheckSuiteEvent>(input.event, input.payload)?.check_suite;
    Ok(Item::Run(RunSnapshot {
        kind: RunKind::CheckSuite,
        github_id: suite.id,
        repository_id,
        name: suite.app.and_then(|a| a.name),
        workflow_id: None,
        head_sha: suite.head_sha,
        head_branch: suite.head_branch,
        event: None,
        status: suite.status,
        conclusion: suite.conclusion,
        run_number: None,
        run_attempt: None,
        created_at: suite.created_at,
        updated_at: suite.updated_at,
        run_started_at: None,
    }))
}

fn installation_account(installation: &github::Installation) -> AccountRef {
    AccountRef {
        account_id: installation.account.id,
        login: installation.account.login.clone(),
        account_type: installation.account.account_type.clone(),
        installation_id: Some(installation.id),
    }
}

fn members(repos: &[github::InstallationRepository]) -> Vec<Member> {
    repos
        .iter()
        .map(|r| Member {
            id: r.id,
            name: r.name.clone(),
            full_name: r.full_name.clone(),
            private: r.private,
        })
        .collect()
}

/// GitHub's time of an installation event: the installation's `updated_at` (its suspension
/// time for `suspend`), else when DevPulse received it.
fn installation_time(
    installation: &github::Installation,
    action: &str,
    received_at: DateTime<Utc>,
) -> DateTime<Utc> {
    let suspended = (action == "suspend")
        .then_some(installation.suspended_at)
        .flatten();
    suspended
        .or(installation.updated_at)
        .or(installation.created_at)
        .unwrap_or(received_at)
}

fn installation(input: DeliveryInput<'_>) -> Result<Parsed, ProcessError> {
    let event: github::InstallationEvent = from_json(input.event, input.payload)?;
    let state = match event.action.as_str() {
        "created" | "new_permissions_accepted" | "unsuspend" => Some(InstallationState::Active),
        "suspend" => Some(InstallationState::Suspended),
        "deleted" => Some(InstallationState::Removed),
        _ => None,
    };
    let membership = match event.action.as_str() {
        "created" | "new_permissions_accepted" => {
            vec![(members(&event.repositories), Membership::Added)]
        }
        "deleted" => vec![(members(&event.repositories), Membership::Removed)],
        _ => Vec::new(),
    };
    Ok(Parsed::Installation {
        account: installation_account(&event.installation),
        installation_id: event.installation.id,
        state,
        at: installation_time(&event.installation, &event.action, input.received_at),
        membership,
        people: vec![user(&event.installation.account)],
        backfill: (event.action == "created").then_some(None),
    })
}

fn installation_repositories(input: DeliveryInput<'_>) -> Result<Parsed, ProcessError> {
    let event: github::InstallationRepositoriesEvent = from_json(input.event, input.payload)?;
    let added: Vec<i64> = event.repositories_added.iter().map(|r| r.id).collect();
    Ok(Parsed::Installation {
        backfill: (event.action == "added" && !added.is_empty()).then_some(Some(added)),
        account: installation_account(&event.installation),
        installation_id: event.installation.id,
        state: None,
        at: installation_time(&event.installation, &event.action, input.received_at),
        membership: vec![
            (members(&event.repositories_added), Membership::Added),
            (members(&event.repositories_removed), Membership::Removed),
        ],
        people: Vec::new(),
    })
}
