//! The parts of GitHub's REST API answers the sync side reads, where they differ from webhook
//! payloads (pull requests, reviews, deployments, statuses and issues have the same shape in both
//! and use the types of [`super`]).

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{Account, Issue, Repository, deserialize_opt_time, deserialize_time};

/// `GET /installation/repositories`.
#[derive(Debug, Clone, Deserialize)]
pub struct InstallationRepositories {
    pub total_count: i64,
    pub repositories: Vec<Repository>,
}

/// An item of `GET /repos/{owner}/{repo}/pulls/{number}/commits` or `GET /repos/{owner}/{repo}/commits`.
#[derive(Debug, Clone, Deserialize)]
pub struct PullCommit {
    pub sha: String,
    pub commit: GitCommit,
    /// The GitHub account of the git author, when GitHub could match the email.
    #[serde(default)]
    pub author: Option<Account>,
    #[serde(default)]
    pub committer: Option<Account>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GitCommit {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub author: Option<GitPerson>,
    /// When the commit was made on its branch (for a squash or merge commit: the merge).
    #[serde(default)]
    pub committer: Option<GitPerson>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GitPerson {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "deserialize_opt_time")]
    pub date: Option<DateTime<Utc>>,
}

/// An item of `GET /repos/{owner}/{repo}/issues`: pull requests are listed too, marked by a
/// `pull_request` key.
#[derive(Debug, Clone, Deserialize)]
pub struct ListedIssue {
    #[serde(flatten)]
    pub issue: Issue,
    #[serde(default)]
    pub pull_request: Option<serde_json::Value>,
}

/// An item of `GET /app/hook/deliveries`: one attempt to deliver a webhook.
#[derive(Debug, Clone, Deserialize)]
pub struct HookDelivery {
    /// This attempt's id (what `POST /app/hook/deliveries/{id}/attempts` takes).
    pub id: i64,
    /// The delivery's GUID, shared by all its attempts: GitHub's `X-GitHub-Delivery`.
    pub guid: String,
    #[serde(deserialize_with = "deserialize_time")]
    pub delivered_at: DateTime<Utc>,
    #[serde(default)]
    pub redelivery: bool,
    #[serde(default)]
    pub status: String,
    /// The HTTP status DevPulse answered (0 when it could not be reached).
    #[serde(default)]
    pub status_code: i32,
    #[serde(default)]
    pub event: String,
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub installation_id: Option<i64>,
}

impl HookDelivery {
    /// GitHub counts a delivery as delivered when DevPulse answered 2xx.
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status_code)
    }
}
