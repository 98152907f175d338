//! GitHub-shaped webhook payloads built from a few facts: the demo history (`scripts/demo`) and
//! the metric fixtures send these through the same endpoint and processors as real deliveries.
//! Only the fields DevPulse reads (and a few GitHub always sends) are filled in.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// A GitHub account.
#[derive(Debug, Clone)]
pub struct Actor {
    pub id: i64,
    pub login: String,
    pub bot: bool,
}

impl Actor {
    pub fn user(id: i64, login: &str) -> Self {
        Self {
            id,
            login: login.to_owned(),
            bot: false,
        }
    }

    pub fn bot(id: i64, login: &str) -> Self {
        Self {
            id,
            login: login.to_owned(),
            bot: true,
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "id": self.id,
            "login": self.login,
            "type": if self.bot { "Bot" } else { "User" },
        })
    }
}

/// A repository of an installation's account.
#[derive(Debug, Clone)]
pub struct Repo {
    pub id: i64,
    pub owner: Actor,
    pub name: String,
    pub default_branch: String,
    pub installation_id: i64,
}

impl Repo {
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner.login, self.name)
    }

    /// The repository object GitHub sends in events and the REST API returns.
    pub fn json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "full_name": self.full_name(),
            "private": true,
            "archived": false,
            "default_branch": self.default_branch,
            "owner": {"id": self.owner.id, "login": self.owner.login, "type": "Organization"},
        })
    }

    /// The envelope every repository event carries.
    fn envelope(&self, sender: &Actor, mut body: Value) -> Value {
        body["repository"] = self.json();
        body["installation"] = json!({"id": self.installation_id});
        body["organization"] = json!({"id": self.owner.id, "login": self.owner.login});
        body["sender"] = sender.json();
        body
    }
}

/// A pull request at one moment of its life.
#[derive(Debug, Clone)]
pub struct Pr {
    pub id: i64,
    pub number: i32,
    pub title: String,
    pub body: Option<String>,
    pub author: Actor,
    pub head_ref: String,
    pub head_sha: String,
    pub draft: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub merged_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub merge_commit_sha: Option<String>,
    pub additions: i32,
    pub deletions: i32,
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn opt_time(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| Value::String(time(t)))
}

/// A `pull_request` delivery (`opened`, `ready_for_review`, `closed`…).
pub fn pull_request(repo: &Repo, pr: &Pr, action: &str) -> Value {
    let state = if pr.closed_at.is_some() || pr.merged_at.is_some() {
        "closed"
    } else {
        "open"
    };
    repo.envelope(
        &pr.author,
        json!({
            "action": action,
            "number": pr.number,
            "pull_request": {
                "id": pr.id,
                "number": pr.number,
                "title": pr.title,
                "body": pr.body,
                "state": state,
                "draft": pr.draft,
                "merged": pr.merged_at.is_some(),
                "user": pr.author.json(),
                "created_at": time(pr.created_at),
                "updated_at": time(pr.updated_at),
                "closed_at": opt_time(pr.closed_at.or(pr.merged_at)),
                "merged_at": opt_time(pr.merged_at),
                "merge_commit_sha": pr.merge_commit_sha,
                "head": {"ref": pr.head_ref, "sha": pr.head_sha},
                "base": {"ref": repo.default_branch, "sha": "0000000000000000000000000000000000000000"},
                "additions": pr.additions,
                "deletions": pr.deletions,
                "changed_files": 1,
                "commits": 1,
            },
        }),
    )
}

/// A `pull_request_review` delivery.
pub fn review(
    repo: &Repo,
    pr_id: i64,
    review_id: i64,
    reviewer: &Actor,
    state: &str,
    at: DateTime<Utc>,
) -> Value {
    repo.envelope(
        reviewer,
        json!({
            "action": "submitted",
            "review": {
                "id": review_id,
                "user": reviewer.json(),
                "state": state,
                "submitted_at": time(at),
                "commit_id": "0000000000000000000000000000000000000001",
            },
            "pull_request": {"id": pr_id},
        }),
    )
}

/// A `pull_request_review_comment` delivery.
pub fn review_comment(
    repo: &Repo,
    pr_id: i64,
    review_id: i64,
    comment_id: i64,
    author: &Actor,
    at: DateTime<Utc>,
) -> Value {
    repo.envelope(
        author,
        json!({
            "action": "created",
            "comment": {
                "id": comment_id,
                "pull_request_review_id": review_id,
                "user": author.json(),
                "created_at": time(at),
                "commit_id": "0000000000000000000000000000000000000001",
            },
            "pull_request": {"id": pr_id},
        }),
    )
}

/// One commit of a push.
#[derive(Debug, Clone)]
pub struct Commit {
    pub sha: String,
    pub message: String,
    pub author: Actor,
    pub authored_at: DateTime<Utc>,
}

/// A `push` delivery of `commits` (oldest first) to `branch` at `pushed_at`.
pub fn push(
    repo: &Repo,
    branch: &str,
    commits: &[Commit],
    pushed_at: DateTime<Utc>,
    pusher: &Actor,
) -> Value {
    let list: Vec<Value> = commits
        .iter()
        .map(|c| {
            json!({
                "id": c.sha,
                "message": c.message,
                "timestamp": time(c.authored_at),
                "author": {"name": c.author.login, "email": format!("{}@users.noreply.github.com", c.author.login), "username": c.author.login},
                "committer": {"name": c.author.login, "username": c.author.login},
            })
        })
        .collect();
    let mut body = repo.envelope(
        pusher,
        json!({
            "ref": format!("refs/heads/{branch}"),
            "before": "0000000000000000000000000000000000000000",
            "after": commits.last().map_or("0000000000000000000000000000000000000000", |c| c.sha.as_str()),
            "created": false,
            "deleted": false,
            "forced": false,
            "commits": list,
            "head_commit": list.last(),
        }),
    );
    body["repository"]["pushed_at"] = json!(pushed_at.timestamp());
    body
}

/// A deployment.
#[derive(Debug, Clone)]
pub struct Deploy {
    pub id: i64,
    pub sha: String,
    pub environment: String,
    /// GitHub's flag; `None` leaves it out (the environment pattern decides).
    pub production: Option<bool>,
    pub creator: Actor,
    pub created_at: DateTime<Utc>,
}

fn deployment_json(d: &Deploy, updated_at: DateTime<Utc>) -> Value {
    let mut v = json!({
        "id": d.id,
        "sha": d.sha,
        "ref": d.sha,
        "task": "deploy",
        "environment": d.environment,
        "creator": d.creator.json(),
        "created_at": time(d.created_at),
        "updated_at": time(updated_at),
    });
    if let Some(p) = d.production {
        v["production_environment"] = json!(p);
    }
    v
}

/// A `deployment` (`created`) delivery.
pub fn deployment(repo: &Repo, d: &Deploy) -> Value {
    repo.envelope(
        &d.creator,
        json!({"action": "created", "deployment": deployment_json(d, d.created_at)}),
    )
}

/// A `deployment_status` delivery: `state` (`success`, `failure`, `error`, `in_progress`…) at `at`.
pub fn deployment_status(
    repo: &Repo,
    d: &Deploy,
    status_id: i64,
    state: &str,
    at: DateTime<Utc>,
) -> Value {
    repo.envelope(
        &d.creator,
        json!({
            "action": "created",
            "deployment": deployment_json(d, at),
            "deployment_status": {
                "id": status_id,
                "state": state,
                "environment": d.environment,
                "creator": d.creator.json(),
                "created_at": time(at),
                "updated_at": time(at),
            },
        }),
    )
}

/// An issue at one moment.
#[derive(Debug, Clone)]
pub struct Issue {
    pub id: i64,
    pub number: i32,
    pub title: String,
    pub labels: Vec<String>,
    pub author: Actor,
    pub created_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

/// An `issues` delivery (`opened`, `labeled`, `closed`…).
pub fn issue(repo: &Repo, issue: &Issue, action: &str) -> Value {
    let labels: Vec<Value> = issue.labels.iter().map(|l| json!({"name": l})).collect();
    repo.envelope(
        &issue.author,
        json!({
            "action": action,
            "issue": {
                "id": issue.id,
                "number": issue.number,
                "title": issue.title,
                "state": if issue.closed_at.is_some() { "closed" } else { "open" },
                "labels": labels,
                "user": issue.author.json(),
                "created_at": time(issue.created_at),
                "updated_at": time(issue.closed_at.unwrap_or(issue.created_at)),
                "closed_at": opt_time(issue.closed_at),
            },
        }),
    )
}

/// An `installation` (`created`) delivery for `account` with `repos`.
pub fn installation(
    installation_id: i64,
    account: &Actor,
    repos: &[Repo],
    at: DateTime<Utc>,
) -> Value {
    let repositories: Vec<Value> = repos
        .iter()
        .map(|r| json!({"id": r.id, "name": r.name, "full_name": r.full_name(), "private": true}))
        .collect();
    json!({
        "action": "created",
        "installation": {
            "id": installation_id,
            "account": {"id": account.id, "login": account.login, "type": "Organization"},
            "created_at": time(at),
            "updated_at": time(at),
        },
        "repositories": repositories,
        "sender": account.json(),
    })
}
