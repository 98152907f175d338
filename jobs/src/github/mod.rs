//! The parts of GitHub's webhook payloads DevPulse reads, as typed structs.
//!
//! Parsing is the edge: a payload that does not fit these shapes is a permanent error (the
//! job goes to the dead-letter queue with serde's message), never a half-applied write.
//! Unknown fields are ignored, so GitHub adding fields never breaks processing.

pub mod payloads;
pub mod projection;
pub mod rest;
mod time;

use chrono::{DateTime, Utc};
use serde::Deserialize;

pub use time::{deserialize_opt_time, deserialize_time};

#[derive(Debug, Clone, Deserialize)]
pub struct Account {
    pub id: i64,
    pub login: String,
    #[serde(rename = "type", default)]
    pub account_type: Option<String>,
}

impl Account {
    /// GitHub marks Apps' accounts `type: "Bot"`; their logins end in `[bot]`.
    pub fn is_bot(&self) -> bool {
        self.account_type.as_deref() == Some("Bot") || self.login.ends_with("[bot]")
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct InstallationRef {
    pub id: i64,
    #[serde(default)]
    pub account: Option<Account>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Repository {
    pub id: i64,
    pub name: String,
    pub full_name: String,
    #[serde(default)]
    pub private: bool,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub default_branch: Option<String>,
    #[serde(default)]
    pub owner: Option<Account>,
    #[serde(default, deserialize_with = "deserialize_opt_time")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// Fields every event DevPulse processes may carry.
#[derive(Debug, Clone, Deserialize)]
pub struct Envelope {
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub installation: Option<InstallationRef>,
    #[serde(default)]
    pub repository: Option<Repository>,
    #[serde(default)]
    pub organization: Option<Account>,
    #[serde(default)]
    pub sender: Option<Account>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GitRef {
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub sha: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PullRequest {
    pub id: i64,
    pub number: i32,
    pub title: String,
    pub state: String,
    #[serde(default)]
    pub draft: bool,
    #[serde(default)]
    pub merged: Option<bool>,
    pub user: Option<Account>,
    #[serde(deserialize_with = "deserialize_time")]
    pub created_at: DateTime<Utc>,
    #[serde(deserialize_with = "deserialize_time")]
    pub updated_at: DateTime<Utc>,
    #[serde(default, deserialize_with = "deserialize_opt_time")]
    pub closed_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "deserialize_opt_time")]
    pub merged_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub merge_commit_sha: Option<String>,
    #[serde(default)]
    pub merged_by: Option<Account>,
    #[serde(default)]
    pub body: Option<String>,
    pub head: GitRef,
    pub base: GitRef,
    #[serde(default)]
    pub additions: Option<i32>,
    #[serde(default)]
    pub deletions: Option<i32>,
    #[serde(default)]
    pub changed_files: Option<i32>,
    #[serde(default)]
    pub commits: Option<i32>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PullRequestEvent {
    pub action: String,
    pub pull_request: PullRequest,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Review {
    pub id: i64,
    pub user: Option<Account>,
    pub state: String,
    #[serde(default, deserialize_with = "deserialize_opt_time")]
    pub submitted_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub commit_id: Option<String>,
}

/// `pull_request_review` and `pull_request_review_comment` carry a pull request without the
/// size fields; only its id is used (the PR row comes from `pull_request` events).
#[derive(Debug, Clone, Deserialize)]
pub struct PullRequestRef {
    pub id: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReviewEvent {
    pub action: String,
    pub review: Review,
    pub pull_request: PullRequestRef,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReviewComment {
    pub id: i64,
    pub pull_request_review_id: Option<i64>,
    pub user: Option<Account>,
    #[serde(deserialize_with = "deserialize_time")]
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub commit_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReviewCommentEvent {
    pub action: String,
    pub comment: ReviewComment,
    pub pull_request: PullRequestRef,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CommitPerson {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PushCommit {
    pub id: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, deserialize_with = "deserialize_opt_time")]
    pub timestamp: Option<DateTime<Utc>>,
    #[serde(default)]
    pub author: Option<CommitPerson>,
    #[serde(default)]
    pub committer: Option<CommitPerson>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PushEvent {
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub after: String,
    #[serde(default)]
    pub deleted: bool,
    #[serde(default)]
    pub commits: Vec<PushCommit>,
    #[serde(default)]
    pub head_commit: Option<PushCommit>,
    pub repository: PushRepository,
}

/// `push` payloads give the repository's times as Unix seconds; `pushed_at` is the push.
#[derive(Debug, Clone, Deserialize)]
pub struct PushRepository {
    #[serde(default, deserialize_with = "deserialize_opt_time")]
    pub pushed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub default_branch: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Deployment {
    pub id: i64,
    pub sha: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    #[serde(default)]
    pub task: Option<String>,
    pub environment: String,
    #[serde(default)]
    pub production_environment: Option<bool>,
    #[serde(default)]
    pub creator: Option<Account>,
    #[serde(deserialize_with = "deserialize_time")]
    pub created_at: DateTime<Utc>,
    #[serde(deserialize_with = "deserialize_time")]
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeploymentStatus {
    pub id: i64,
    pub state: String,
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub creator: Option<Account>,
    #[serde(deserialize_with = "deserialize_time")]
    pub created_at: DateTime<Utc>,
    #[serde(deserialize_with = "deserialize_time")]
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeploymentEvent {
    pub deployment: Deployment,
    #[serde(default)]
    pub deployment_status: Option<DeploymentStatus>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WorkflowRun {
    pub id: i64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub workflow_id: Option<i64>,
    pub head_sha: String,
    #[serde(default)]
    pub head_branch: Option<String>,
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub conclusion: Option<String>,
    #[serde(default)]
    pub run_number: Option<i32>,
    #[serde(default)]
    pub run_attempt: Option<i32>,
    #[serde(deserialize_with = "deserialize_time")]
    pub created_at: DateTime<Utc>,
    #[serde(deserialize_with = "deserialize_time")]
    pub updated_at: DateTime<Utc>,
    #[serde(default, deserialize_with = "deserialize_opt_time")]
    pub run_started_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WorkflowRunEvent {
    pub workflow_run: WorkflowRun,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CheckSuiteApp {
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CheckSuite {
    pub id: i64,
    pub head_sha: String,
    #[serde(default)]
    pub head_branch: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub conclusion: Option<String>,
    #[serde(default)]
    pub app: Option<CheckSuiteApp>,
    #[serde(deserialize_with = "deserialize_time")]
    pub created_at: DateTime<Utc>,
    #[serde(deserialize_with = "deserialize_time")]
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CheckSuiteEvent {
    pub check_suite: CheckSuite,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Installation {
    pub id: i64,
    pub account: Account,
    #[serde(default, deserialize_with = "deserialize_opt_time")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "deserialize_opt_time")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "deserialize_opt_time")]
    pub suspended_at: Option<DateTime<Utc>>,
}

/// A repository as listed in installation events (no owner, no times).
#[derive(Debug, Clone, Deserialize)]
pub struct InstallationRepository {
    pub id: i64,
    pub name: String,
    pub full_name: String,
    #[serde(default)]
    pub private: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InstallationEvent {
    pub action: String,
    pub installation: Installation,
    #[serde(default)]
    pub repositories: Vec<InstallationRepository>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InstallationRepositoriesEvent {
    pub action: String,
    pub installation: Installation,
    #[serde(default)]
    pub repositories_added: Vec<InstallationRepository>,
    #[serde(default)]
    pub repositories_removed: Vec<InstallationRepository>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Label {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Issue {
    pub id: i64,
    pub number: i32,
    pub title: String,
    /// Missing in some `pinned` payloads: then `closed_at` tells.
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub labels: Option<Vec<Label>>,
    #[serde(deserialize_with = "deserialize_time")]
    pub created_at: DateTime<Utc>,
    #[serde(deserialize_with = "deserialize_time")]
    pub updated_at: DateTime<Utc>,
    #[serde(default, deserialize_with = "deserialize_opt_time")]
    pub closed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub user: Option<Account>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IssuesEvent {
    pub action: String,
    pub issue: Issue,
}
