//! Turns one stored delivery into domain rows: parse the payload into typed structs (the edge),
//! map it to the writers' records, apply them in the caller's transaction.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};
use serde::de::DeserializeOwned;

use crate::{
    domain::{
        commits::{self, Push, PushedCommit},
        deployments::{self, DeploymentSnapshot, StatusFact},
        organizations::{self, AccountRef, InstallationState},
        pull_requests::{self, PrState, PullRequestSnapshot},
        repositories::{self, Member, Membership, RepositorySnapshot},
        reviews::{self, ReviewFact},
        users::{self, GithubUser},
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

/// What the delivery changed, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Applied,
    /// A shape the platform has nothing to record for (a tag push, a deleted branch…).
    NothingToDo,
}

fn parse<T: DeserializeOwned>(event: &str, payload: &str) -> Result<T, ProcessError> {
    serde_json::from_str(payload)
        .map_err(|e| ProcessError::Permanent(format!("{event} payload does not parse: {e}")))
}

fn user(account: &Account) -> GithubUser {
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

/// Applies a delivery of a processed event inside `db` (a transaction).
pub async fn apply<C: ConnectionTrait>(
    db: &C,
    input: DeliveryInput<'_>,
) -> Result<Applied, ProcessError> {
    match input.event {
        "installation" => installation(db, input).await,
        "installation_repositories" => installation_repositories(db, input).await,
        _ => repository_event(db, input).await,
    }
}

/// Events about one repository: resolve organization and repository, then the event's rows.
async fn repository_event<C: ConnectionTrait>(
    db: &C,
    input: DeliveryInput<'_>,
) -> Result<Applied, ProcessError> {
    let envelope: Envelope = parse(input.event, input.payload)?;
    let repo = envelope.repository.as_ref().ok_or_else(|| {
        ProcessError::Permanent(format!("{} payload has no repository", input.event))
    })?;
    let owner = repo
        .owner
        .as_ref()
        .or(envelope.organization.as_ref())
        .ok_or_else(|| ProcessError::Permanent("repository has no owner".to_owned()))?;
    let organization_id = organizations::ensure(
        db,
        &AccountRef {
            account_id: owner.id,
            login: owner.login.clone(),
            account_type: owner.account_type.clone(),
            installation_id: envelope.installation.as_ref().map(|i| i.id),
        },
    )
    .await?;
    let repository_id = repo.id;
    repositories::upsert(
        db,
        organization_id,
        &RepositorySnapshot {
            github_id: repo.id,
            name: repo.name.clone(),
            full_name: repo.full_name.clone(),
            private: repo.private,
            archived: repo.archived,
            default_branch: repo.default_branch.clone(),
            updated_at: repo.updated_at,
        },
    )
    .await?;
    let mut people: Vec<GithubUser> = envelope.sender.iter().map(user).collect();
    let ctx = Ctx {
        organization_id,
        repository_id,
        default_branch: repo.default_branch.clone(),
    };
    let applied = match input.event {
        "pull_request" => pull_request(db, &ctx, input, &mut people).await?,
        "pull_request_review" => review(db, &ctx, input, &mut people).await?,
        "pull_request_review_comment" => review_comment(db, &ctx, input, &mut people).await?,
        "push" => push(db, &ctx, input).await?,
        "deployment" | "deployment_status" => deployment(db, &ctx, input, &mut people).await?,
        "workflow_run" => workflow_run(db, &ctx, input).await?,
        "check_suite" => check_suite(db, &ctx, input).await?,
        other => {
            return Err(ProcessError::Permanent(format!(
                "no processor for event {other:?}"
            )));
        }
    };
    users::upsert(db, organization_id, people).await?;
    Ok(applied)
}

struct Ctx {
    organization_id: i64,
    repository_id: i64,
    default_branch: Option<String>,
}

async fn pull_request<C: ConnectionTrait>(
    db: &C,
    ctx: &Ctx,
    input: DeliveryInput<'_>,
    people: &mut Vec<GithubUser>,
) -> Result<Applied, ProcessError> {
    let event: github::PullRequestEvent = parse(input.event, input.payload)?;
    let pr = event.pull_request;
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
    pull_requests::upsert(
        db,
        ctx.organization_id,
        &PullRequestSnapshot {
            github_id: pr.id,
            repository_id: ctx.repository_id,
            number: pr.number,
            author_id: pr.user.as_ref().map(|u| u.id),
            title: pr.title,
            state,
            draft: pr.draft,
            created_at: pr.created_at,
            ready_for_review_at: (event.action == "ready_for_review").then_some(pr.updated_at),
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
        },
    )
    .await?;
    Ok(Applied::Applied)
}

async fn review<C: ConnectionTrait>(
    db: &C,
    ctx: &Ctx,
    input: DeliveryInput<'_>,
    people: &mut Vec<GithubUser>,
) -> Result<Applied, ProcessError> {
    let event: github::ReviewEvent = parse(input.event, input.payload)?;
    let state = event.review.state.to_ascii_lowercase();
    if !reviews::STATES.contains(&state.as_str()) {
        return Err(ProcessError::Permanent(format!(
            "unknown review state {:?}",
            event.review.state
        )));
    }
    people.extend(event.review.user.iter().map(user));
    // Known before review times are computed: a bot's review is not a first review.
    users::upsert(db, ctx.organization_id, people.drain(..)).await?;
    reviews::upsert(
        db,
        ctx.organization_id,
        &ReviewFact {
            github_id: event.review.id,
            repository_id: ctx.repository_id,
            pull_request_id: event.pull_request.id,
            reviewer_id: event.review.user.as_ref().map(|u| u.id),
            state,
            submitted_at: event.review.submitted_at,
            commit_id: event.review.commit_id,
        },
    )
    .await?;
    Ok(Applied::Applied)
}

async fn review_comment<C: ConnectionTrait>(
    db: &C,
    ctx: &Ctx,
    input: DeliveryInput<'_>,
    people: &mut Vec<GithubUser>,
) -> Result<Applied, ProcessError> {
    let event: github::ReviewCommentEvent = parse(input.event, input.payload)?;
    people.extend(event.comment.user.iter().map(user));
    // A comment outside any review (very old payloads) has nothing to attach to.
    let Some(review_id) = event.comment.pull_request_review_id else {
        return Ok(Applied::NothingToDo);
    };
    // Deleting or editing a comment does not undo that the review happened.
    let _ = event.action;
    users::upsert(db, ctx.organization_id, people.drain(..)).await?;
    reviews::upsert(
        db,
        ctx.organization_id,
        &ReviewFact {
            github_id: review_id,
            repository_id: ctx.repository_id,
            pull_request_id: event.pull_request.id,
            reviewer_id: event.comment.user.as_ref().map(|u| u.id),
            state: "commented".to_owned(),
            submitted_at: Some(event.comment.created_at),
            commit_id: event.comment.commit_id,
        },
    )
    .await?;
    Ok(Applied::Applied)
}

async fn push<C: ConnectionTrait>(
    db: &C,
    ctx: &Ctx,
    input: DeliveryInput<'_>,
) -> Result<Applied, ProcessError> {
    let event: github::PushEvent = parse(input.event, input.payload)?;
    let Some(branch) = event.git_ref.strip_prefix("refs/heads/") else {
        return Ok(Applied::NothingToDo); // tags
    };
    if event.deleted || event.commits.is_empty() {
        return Ok(Applied::NothingToDo);
    }
    let default_branch = event
        .repository
        .default_branch
        .as_deref()
        .or(ctx.default_branch.as_deref());
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
    commits::record_push(
        db,
        ctx.organization_id,
        &Push {
            repository_id: ctx.repository_id,
            branch: branch.to_owned(),
            to_default_branch: default_branch == Some(branch),
            pushed_at,
            commits,
        },
    )
    .await?;
    let _ = event.after;
    Ok(Applied::Applied)
}

async fn deployment<C: ConnectionTrait>(
    db: &C,
    ctx: &Ctx,
    input: DeliveryInput<'_>,
    people: &mut Vec<GithubUser>,
) -> Result<Applied, ProcessError> {
    let event: github::DeploymentEvent = parse(input.event, input.payload)?;
    let d = event.deployment;
    people.extend(d.creator.iter().map(user));
    deployments::upsert(
        db,
        ctx.organization_id,
        &DeploymentSnapshot {
            github_id: d.id,
            repository_id: ctx.repository_id,
            sha: d.sha,
            git_ref: d.git_ref,
            task: d.task.unwrap_or_else(|| "deploy".to_owned()),
            environment: d.environment,
            production_environment: d.production_environment,
            creator_id: d.creator.as_ref().map(|u| u.id),
            created_at: d.created_at,
            updated_at: d.updated_at,
        },
    )
    .await?;
    if input.event == "deployment_status" {
        let status = event.deployment_status.ok_or_else(|| {
            ProcessError::Permanent("deployment_status payload has no deployment_status".to_owned())
        })?;
        people.extend(status.creator.iter().map(user));
        deployments::record_status(
            db,
            ctx.organization_id,
            &StatusFact {
                github_id: status.id,
                deployment_id: d.id,
                state: status.state,
                environment: status.environment,
                creator_id: status.creator.as_ref().map(|u| u.id),
                created_at: status.created_at,
                updated_at: status.updated_at,
            },
        )
        .await?;
    }
    Ok(Applied::Applied)
}

async fn workflow_run<C: ConnectionTrait>(
    db: &C,
    ctx: &Ctx,
    input: DeliveryInput<'_>,
) -> Result<Applied, ProcessError> {
    let run = parse::<github::WorkflowRunEvent>(input.event, input.payload)?.workflow_run;
    workflow_runs::upsert(
        db,
        ctx.organization_id,
        &RunSnapshot {
            kind: RunKind::WorkflowRun,
            github_id: run.id,
            repository_id: ctx.repository_id,
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
        },
    )
    .await?;
    Ok(Applied::Applied)
}

async fn check_suite<C: ConnectionTrait>(
    db: &C,
    ctx: &Ctx,
    input: DeliveryInput<'_>,
) -> Result<Applied, ProcessError> {
    let suite = parse::<github::CheckSuiteEvent>(input.event, input.payload)?.check_suite;
    workflow_runs::upsert(
        db,
        ctx.organization_id,
        &RunSnapshot {
            kind: RunKind::CheckSuite,
            github_id: suite.id,
            repository_id: ctx.repository_id,
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
        },
    )
    .await?;
    Ok(Applied::Applied)
}

fn installation_org(installation: &github::Installation) -> AccountRef {
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

async fn installation<C: ConnectionTrait>(
    db: &C,
    input: DeliveryInput<'_>,
) -> Result<Applied, ProcessError> {
    let event: github::InstallationEvent = parse(input.event, input.payload)?;
    let state = match event.action.as_str() {
        "created" | "new_permissions_accepted" | "unsuspend" => InstallationState::Active,
        "suspend" => InstallationState::Suspended,
        "deleted" => InstallationState::Removed,
        _ => return Ok(Applied::NothingToDo),
    };
    let at = installation_time(&event.installation, &event.action, input.received_at);
    let organization_id = organizations::ensure(db, &installation_org(&event.installation)).await?;
    organizations::set_installation_state(db, organization_id, event.installation.id, state, at)
        .await?;
    let membership = match state {
        InstallationState::Removed => Membership::Removed,
        _ => Membership::Added,
    };
    if event.action != "suspend" && event.action != "unsuspend" {
        repositories::set_membership(
            db,
            organization_id,
            &members(&event.repositories),
            membership,
            at,
        )
        .await?;
    }
    users::upsert(db, organization_id, [user(&event.installation.account)]).await?;
    Ok(Applied::Applied)
}

async fn installation_repositories<C: ConnectionTrait>(
    db: &C,
    input: DeliveryInput<'_>,
) -> Result<Applied, ProcessError> {
    let event: github::InstallationRepositoriesEvent = parse(input.event, input.payload)?;
    let at = installation_time(&event.installation, &event.action, input.received_at);
    let organization_id = organizations::ensure(db, &installation_org(&event.installation)).await?;
    repositories::set_membership(
        db,
        organization_id,
        &members(&event.repositories_added),
        Membership::Added,
        at,
    )
    .await?;
    repositories::set_membership(
        db,
        organization_id,
        &members(&event.repositories_removed),
        Membership::Removed,
        at,
    )
    .await?;
    Ok(Applied::Applied)
}
