//! `worker demo`: a realistic history for a new user's dashboards, sent the way real data
//! arrives — GitHub-shaped deliveries, signed, to `POST /webhooks/github`, and the desktop
//! tracker's calls to the session API. Deterministic for a seed.
//!
//! The organization (already connected to the demo GitHub account, see `scripts/demo`) gets
//! developers invited through the API, teams, and for each working day of the period: pull
//! requests with their pushes, reviews and comments, squash merges to main, production
//! deployments (some failing), reverts, incidents, Dependabot PRs, and work sessions with idle
//! time.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc, Weekday};
use jobs::github::payloads::{self as gh, Actor, Commit, Deploy, Issue, Pr, Repo};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};
use tokio::{sync::Semaphore, task::JoinSet};

/// What to generate and where to send it.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub api: String,
    pub webhook_secret: String,
    pub owner_email: String,
    pub owner_password: String,
    pub days: i64,
    pub developers: usize,
    pub repositories: usize,
    pub seed: u64,
    pub account_id: i64,
    pub account_login: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Api(String),
    #[error("request to the API failed: {0}")]
    Http(#[from] reqwest::Error),
}

/// What was sent.
#[derive(Debug, Default, serde::Serialize)]
pub struct DemoReport {
    pub developers: usize,
    pub repositories: usize,
    pub deliveries: usize,
    pub pull_requests: usize,
    pub deployments: usize,
    pub sessions: usize,
}

/// Days of work sessions: the session API refuses times more than 60 days old.
const SESSION_DAYS: i64 = 59;

const NAMES: [&str; 36] = [
    "ada",
    "alan",
    "barbara",
    "brian",
    "claude",
    "dennis",
    "donald",
    "edsger",
    "frances",
    "grace",
    "guido",
    "hedy",
    "ivan",
    "james",
    "jean",
    "ken",
    "leslie",
    "linus",
    "margaret",
    "marvin",
    "niklaus",
    "radia",
    "rich",
    "robin",
    "ross",
    "shafi",
    "sophie",
    "tim",
    "tony",
    "vint",
    "whitfield",
    "yukihiro",
    "anita",
    "bjarne",
    "carol",
    "dorothy",
];
const REPOSITORIES: [&str; 8] = [
    "api", "web", "mobile", "billing", "infra", "search", "auth", "docs",
];

/// The per-repository number of an item: ids are unique across the demo, so their low digits are.
fn number(id: i64) -> i32 {
    i32::try_from(id % 1_000_000).unwrap_or(1)
}

/// A merged pull request waiting for a deployment: (merge commit, merged at, number, title).
type Merged = (String, DateTime<Utc>, i32, String);

fn at(day: NaiveDate, hour: f64) -> DateTime<Utc> {
    let base = day.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    base + TimeDelta::seconds((hour * 3600.0) as i64)
}

/// Deliveries in time order, and who does what.
struct World {
    rng: StdRng,
    devs: Vec<Actor>,
    repos: Vec<Repo>,
    events: Vec<(DateTime<Utc>, &'static str, Value)>,
    next_id: i64,
    prs: usize,
    deployments: usize,
}

impl World {
    fn id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    fn send(&mut self, when: DateTime<Utc>, event: &'static str, body: Value) {
        self.events.push((when, event, body));
    }

    fn push(
        &mut self,
        repo: usize,
        branch: &str,
        commits: Vec<Commit>,
        when: DateTime<Utc>,
        who: &Actor,
    ) {
        let body = gh::push(&self.repos[repo], branch, &commits, when, who);
        self.send(when, "push", body);
    }

    /// One pull request's life; returns its merge commit and time when merged.
    fn pull_request(
        &mut self,
        repo: usize,
        author: usize,
        day: NaiveDate,
        now: DateTime<Utc>,
    ) -> Option<Merged> {
        let id = self.id();
        let number = number(id);
        let dev = self.devs[author].clone();
        let branch = format!("{}/change-{id}", dev.login);
        let opened = at(day, self.rng.random_range(9.0..17.0));
        let commits: Vec<Commit> = (0..self.rng.random_range(1..4))
            .map(|k| Commit {
                sha: format!("{id:x}c{k}"),
                message: format!("Work on change {id}"),
                author: dev.clone(),
                authored_at: opened - TimeDelta::minutes(self.rng.random_range(20..2000)),
            })
            .collect();
        let pushed = commits
            .iter()
            .map(|c| c.authored_at)
            .max()
            .unwrap_or(opened);
        self.push(repo, &branch, commits, pushed, &dev);
        let title = format!(
            "Change {id}: {} {}",
            ["Improve", "Fix", "Add", "Refactor"][self.rng.random_range(0..4)],
            REPOSITORIES[repo % REPOSITORIES.len()]
        );
        let mut pr = Pr {
            id,
            number,
            title: title.clone(),
            body: Some("Part of the roadmap.".to_owned()),
            author: dev.clone(),
            head_ref: branch,
            head_sha: format!("{id:x}head"),
            draft: self.rng.random_bool(0.2),
            created_at: opened,
            updated_at: opened,
            merged_at: None,
            closed_at: None,
            merge_commit_sha: None,
            additions: self.rng.random_range(5..600),
            deletions: self.rng.random_range(0..200),
        };
        self.prs += 1;
        let body = gh::pull_request(&self.repos[repo], &pr, "opened");
        self.send(opened, "pull_request", body);
        let mut ready = opened;
        if pr.draft {
            ready = opened + TimeDelta::minutes(self.rng.random_range(30..600));
            pr.draft = false;
            pr.updated_at = ready;
            let body = gh::pull_request(&self.repos[repo], &pr, "ready_for_review");
            self.send(ready, "pull_request", body);
        }
        // Someone else picks it up after a while (a few never).
        let reviewer_index =
            (author + 1 + self.rng.random_range(0..self.devs.len() - 1)) % self.devs.len();
        let reviewer = self.devs[reviewer_index].clone();
        let slow = self.rng.random_bool(0.15);
        let pickup = TimeDelta::minutes(self.rng.random_range(20..if slow { 4000 } else { 900 }));
        let reviewed = ready + pickup;
        if reviewed > now {
            return None;
        }
        let review_id = self.id();
        let state = if self.rng.random_bool(0.3) {
            "changes_requested"
        } else {
            "approved"
        };
        let body = gh::review(&self.repos[repo], id, review_id, &reviewer, state, reviewed);
        self.send(reviewed, "pull_request_review", body);
        if self.rng.random_bool(0.6) {
            let comment_id = self.id();
            let body = gh::review_comment(
                &self.repos[repo],
                id,
                review_id,
                comment_id,
                &reviewer,
                reviewed + TimeDelta::minutes(2),
            );
            self.send(reviewed, "pull_request_review_comment", body);
        }
        let merged = reviewed + TimeDelta::minutes(self.rng.random_range(10..2500));
        if merged > now || self.rng.random_bool(0.04) {
            return None; // still open
        }
        pr.updated_at = merged;
        if self.rng.random_bool(0.05) {
            pr.closed_at = Some(merged);
            let body = gh::pull_request(&self.repos[repo], &pr, "closed");
            self.send(merged, "pull_request", body);
            return None;
        }
        let sha = format!("{id:x}squash");
        pr.merged_at = Some(merged);
        pr.merge_commit_sha = Some(sha.clone());
        let body = gh::pull_request(&self.repos[repo], &pr, "closed");
        self.send(merged, "pull_request", body);
        let squash = Commit {
            sha: sha.clone(),
            message: title.clone(),
            author: dev.clone(),
            authored_at: merged,
        };
        self.push(
            repo,
            "main",
            vec![squash],
            merged + TimeDelta::seconds(20),
            &dev,
        );
        Some((sha, merged, number, title))
    }

    fn deploy(&mut self, repo: usize, sha: &str, when: DateTime<Utc>, success: bool) -> i64 {
        let id = self.id();
        let d = Deploy {
            id,
            sha: sha.to_owned(),
            environment: "production".to_owned(),
            production: Some(true),
            creator: self.devs[0].clone(),
            created_at: when,
        };
        let body = gh::deployment(&self.repos[repo], &d);
        self.send(when, "deployment", body);
        let status = self.id();
        let finished = when + TimeDelta::minutes(self.rng.random_range(3..15));
        let body = gh::deployment_status(
            &self.repos[repo],
            &d,
            status,
            if success { "success" } else { "failure" },
            finished,
        );
        self.send(finished, "deployment_status", body);
        self.deployments += 1;
        id
    }
}

/// Generates the history and sends it; returns what was sent.
pub async fn run(config: &DemoConfig) -> Result<DemoReport, DemoError> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let api = Api {
        http: http.clone(),
        base: config.api.trim_end_matches('/').to_owned(),
    };
    let owner = api
        .call(
            reqwest::Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": config.owner_email, "password": config.owner_password})),
        )
        .await?;
    let owner = owner["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let now = Utc::now();
    let today = now.date_naive();
    let account = Actor::user(config.account_id, &config.account_login);
    let devs: Vec<Actor> = (0..config.developers)
        .map(|i| {
            let name = NAMES[i % NAMES.len()];
            let login = if i < NAMES.len() {
                format!("{name}-dev")
            } else {
                format!("{name}-dev{i}")
            };
            Actor::user(config.account_id * 1000 + i as i64 + 1, &login)
        })
        .collect();
    let repos: Vec<Repo> = (0..config.repositories)
        .map(|i| Repo {
            id: config.account_id * 100 + i as i64 + 1,
            owner: account.clone(),
            name: REPOSITORIES[i % REPOSITORIES.len()].to_owned(),
            default_branch: "main".to_owned(),
            installation_id: config.account_id + 7,
        })
        .collect();
    let mut world = World {
        rng: StdRng::seed_from_u64(config.seed),
        devs: devs.clone(),
        repos: repos.clone(),
        events: Vec::new(),
        next_id: config.account_id * 1_000_000,
        prs: 0,
        deployments: 0,
    };
    let first = today - TimeDelta::days(config.days);
    world.send(
        at(first, 0.0),
        "installation",
        gh::installation(config.account_id + 7, &account, &repos, at(first, 0.0)),
    );
    let bot = Actor::bot(49_699_333, "dependabot[bot]");
    // Main-branch commits waiting for a deployment, per repository: (sha, merged, number, title).
    let mut undeployed: Vec<Vec<Merged>> = vec![Vec::new(); repos.len()];
    for offset in 0..config.days {
        let day = first + TimeDelta::days(offset);
        if matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            continue;
        }
        for dev in 0..devs.len() {
            if world.rng.random_bool(0.35) {
                let repo = (dev + world.rng.random_range(0..2)) % repos.len();
                if let Some(merged) = world.pull_request(repo, dev, day, now) {
                    undeployed[repo].push(merged);
                }
            }
        }
        for repo in 0..repos.len() {
            if day.weekday() == Weekday::Mon && world.rng.random_bool(0.5) {
                // Dependabot: opened and merged within the hour, no review.
                let id = world.id();
                let opened = at(day, 6.0);
                let sha = format!("{id:x}bump");
                let pr = Pr {
                    id,
                    number: number(id),
                    title: "Bump dependencies".to_owned(),
                    body: None,
                    author: bot.clone(),
                    head_ref: format!("dependabot/cargo/bump-{id}"),
                    head_sha: format!("{id:x}head"),
                    draft: false,
                    created_at: opened,
                    updated_at: opened + TimeDelta::minutes(40),
                    merged_at: Some(opened + TimeDelta::minutes(40)),
                    closed_at: None,
                    merge_commit_sha: Some(sha.clone()),
                    additions: 12,
                    deletions: 12,
                };
                world.prs += 1;
                let body = gh::pull_request(&repos[repo], &pr, "closed");
                world.send(opened, "pull_request", body);
                let squash = Commit {
                    sha: sha.clone(),
                    message: "Bump dependencies".to_owned(),
                    author: bot.clone(),
                    authored_at: opened + TimeDelta::minutes(40),
                };
                world.push(
                    repo,
                    "main",
                    vec![squash],
                    opened + TimeDelta::minutes(41),
                    &bot,
                );
            }
            // Deploy what was merged by 15:00, at 16:00.
            let cutoff = at(day, 15.0);
            let ready: Vec<_> = undeployed[repo]
                .iter()
                .filter(|m| m.1 <= cutoff)
                .cloned()
                .collect();
            let Some(latest) = ready.iter().max_by_key(|m| m.1).cloned() else {
                continue;
            };
            if at(day, 16.5) > now {
                continue;
            }
            undeployed[repo].retain(|m| m.1 > cutoff);
            let when = at(day, 16.0);
            let failed_outright = world.rng.random_bool(0.06);
            world.deploy(repo, &latest.0, when, !failed_outright);
            if failed_outright {
                world.deploy(repo, &latest.0, when + TimeDelta::minutes(50), true);
            }
            if world.rng.random_bool(0.04) {
                // A bad change: reverted the same evening, the revert deployed right after.
                let id = world.id();
                let dev = world.devs[world.rng.random_range(0..devs.len())].clone();
                let opened = when + TimeDelta::minutes(90);
                let merged = opened + TimeDelta::minutes(30);
                let sha = format!("{id:x}revert");
                let pr = Pr {
                    id,
                    number: number(id),
                    title: format!("Revert \"{}\"", latest.3),
                    body: Some(format!("Reverts {}#{}", repos[repo].full_name(), latest.2)),
                    author: dev.clone(),
                    head_ref: format!("revert-{}-change", latest.2),
                    head_sha: format!("{id:x}head"),
                    draft: false,
                    created_at: opened,
                    updated_at: merged,
                    merged_at: Some(merged),
                    closed_at: None,
                    merge_commit_sha: Some(sha.clone()),
                    additions: 3,
                    deletions: 40,
                };
                world.prs += 1;
                let body = gh::pull_request(&repos[repo], &pr, "closed");
                world.send(merged, "pull_request", body);
                let commit = Commit {
                    sha: sha.clone(),
                    message: pr.title.clone(),
                    author: dev.clone(),
                    authored_at: merged,
                };
                world.push(
                    repo,
                    "main",
                    vec![commit],
                    merged + TimeDelta::seconds(20),
                    &dev,
                );
                world.deploy(repo, &sha, merged + TimeDelta::minutes(15), true);
            } else if world.rng.random_bool(0.03) {
                // An incident a few hours after the deployment, closed after a while.
                let id = world.id();
                let opened = when + TimeDelta::minutes(world.rng.random_range(60..600));
                let mut issue = Issue {
                    id,
                    number: number(id),
                    title: "Errors spiking after release".to_owned(),
                    labels: vec!["incident".to_owned(), "sev2".to_owned()],
                    author: devs[0].clone(),
                    created_at: opened,
                    closed_at: None,
                };
                let body = gh::issue(&repos[repo], &issue, "opened");
                world.send(opened, "issues", body);
                let closed = opened + TimeDelta::minutes(world.rng.random_range(30..400));
                if closed < now {
                    issue.closed_at = Some(closed);
                    let body = gh::issue(&repos[repo], &issue, "closed");
                    world.send(closed, "issues", body);
                }
            }
        }
    }
    let mut report = DemoReport {
        developers: devs.len(),
        repositories: repos.len(),
        pull_requests: world.prs,
        deployments: world.deployments,
        ..DemoReport::default()
    };
    let mut events = std::mem::take(&mut world.events);
    events.sort_by_key(|e| e.0);
    report.deliveries = events.len();
    send_deliveries(&http, &api.base, &config.webhook_secret, events).await?;

    // People: invited, signed in, given a tracker device; linked to their GitHub login.
    let mut trackers = Vec::new();
    let mut user_ids = Vec::new();
    for dev in &devs {
        let email = format!("{}@demo.devpulse.test", dev.login);
        let display = {
            let name = dev
                .login
                .trim_end_matches(char::is_numeric)
                .trim_end_matches("-dev");
            let mut c = name.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        };
        let password = format!("demo-{}-{}", dev.login, config.seed);
        let invited = api
            .call(
                reqwest::Method::POST,
                "/api/v1/users",
                Some(&owner),
                Some(json!({"email": email, "display_name": display, "role": "developer"})),
            )
            .await;
        let user_id = match invited {
            Ok(invited) => {
                let token = invited["invite_token"].as_str().unwrap_or_default();
                api.call(
                    reqwest::Method::POST,
                    "/api/v1/invites/accept",
                    None,
                    Some(json!({"token": token, "password": password})),
                )
                .await?;
                invited["user"]["id"].as_i64().unwrap_or_default()
            }
            Err(DemoError::Api(e)) if e.contains("409") => {
                return Err(DemoError::Api(format!(
                    "{email} already exists: the demo was loaded before"
                )));
            }
            Err(e) => return Err(e),
        };
        user_ids.push(user_id);
        link_github(&api, &owner, user_id, &dev.login).await?;
        let signed_in = api
            .call(
                reqwest::Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await?;
        let access = signed_in["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let device = api
            .call(
                reqwest::Method::POST,
                "/api/v1/devices",
                Some(&access),
                Some(json!({"name": "Demo laptop"})),
            )
            .await?;
        trackers.push(device["token"].as_str().unwrap_or_default().to_owned());
    }
    for (t, name) in ["Platform", "Product", "Mobile"].iter().enumerate() {
        let team = api
            .call(
                reqwest::Method::POST,
                "/api/v1/teams",
                Some(&owner),
                Some(json!({"name": name})),
            )
            .await?;
        let team_id = team["id"].as_i64().unwrap_or_default();
        for (i, user) in user_ids.iter().enumerate().filter(|(i, _)| i % 3 == t) {
            let manager = i < 3;
            api.call(
                reqwest::Method::PUT,
                &format!("/api/v1/teams/{team_id}/members/{user}"),
                Some(&owner),
                Some(json!({"manager": manager})),
            )
            .await?;
        }
    }

    // Work sessions: each working day the tracker may still upload (the session API takes
    // nothing older than 60 days), with a lunch break as idle time.
    let mut rng = StdRng::seed_from_u64(config.seed + 1);
    let permits = Arc::new(Semaphore::new(8));
    let mut tasks = JoinSet::new();
    for (dev, token) in trackers.iter().enumerate() {
        let mut days = Vec::new();
        for offset in 0..config.days.min(SESSION_DAYS) {
            let day = today - TimeDelta::days(config.days.min(SESSION_DAYS) - offset);
            if matches!(day.weekday(), Weekday::Sat | Weekday::Sun) || rng.random_bool(0.07) {
                continue;
            }
            let start = at(day, rng.random_range(7.5..10.0));
            let end = at(day, rng.random_range(16.0..19.0));
            let lunch = at(day, rng.random_range(12.0..13.0));
            let lunch_end = lunch + TimeDelta::minutes(rng.random_range(20..60));
            if end < now {
                days.push((
                    uuid::Uuid::from_u128(rng.random()),
                    start,
                    end,
                    lunch,
                    lunch_end,
                ));
            }
        }
        report.sessions += days.len();
        let (api, token, permits) = (api.clone(), token.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            for (id, start, end, lunch, lunch_end) in days {
                api.call(
                    reqwest::Method::POST,
                    "/api/v1/sessions/clock-in",
                    Some(&token),
                    Some(json!({"session_id": id, "started_at": start})),
                )
                .await?;
                api.call(
                    reqwest::Method::POST,
                    &format!("/api/v1/sessions/{id}/idle"),
                    Some(&token),
                    Some(json!({"intervals": [{"start": lunch, "end": lunch_end}]})),
                )
                .await?;
                api.call(
                    reqwest::Method::POST,
                    "/api/v1/sessions/clock-out",
                    Some(&token),
                    Some(json!({"session_id": id, "ended_at": end})),
                )
                .await?;
            }
            let _ = dev;
            Ok::<(), DemoError>(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.map_err(|e| DemoError::Api(format!("a session task failed: {e}")))??;
    }
    Ok(report)
}

/// Links a user to their GitHub login; the login is known once the deliveries naming it are
/// processed, so this waits for the worker (up to two minutes).
async fn link_github(api: &Api, owner: &str, user: i64, login: &str) -> Result<(), DemoError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        match api
            .call(
                reqwest::Method::PATCH,
                &format!("/api/v1/users/{user}"),
                Some(owner),
                Some(json!({"github": {"login": login}})),
            )
            .await
        {
            Ok(_) => return Ok(()),
            Err(DemoError::Api(e))
                if e.contains("unknown_github_login") && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn send_deliveries(
    http: &reqwest::Client,
    base: &str,
    secret: &str,
    events: Vec<(DateTime<Utc>, &'static str, Value)>,
) -> Result<(), DemoError> {
    let permits = Arc::new(Semaphore::new(16));
    let mut tasks = JoinSet::new();
    for (n, (_, event, body)) in events.into_iter().enumerate() {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| DemoError::Api(e.to_string()))?;
        let body = body.to_string();
        let signature = jobs::analytics::notify::signature(secret.as_bytes(), body.as_bytes());
        let request = http
            .post(format!("{base}/webhooks/github"))
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header(
                "x-github-delivery",
                format!("demo-{}", uuid::Uuid::new_v4()),
            )
            .header("x-hub-signature-256", signature)
            .body(body);
        tasks.spawn(async move {
            let _permit = permit;
            let response = request.send().await?;
            let status = response.status();
            if !status.is_success() {
                let text = response.text().await.unwrap_or_default();
                return Err(DemoError::Api(format!(
                    "delivery {n} ({event}): {status} {text}"
                )));
            }
            Ok(())
        });
        while tasks.len() > 64 {
            if let Some(result) = tasks.join_next().await {
                result.map_err(|e| DemoError::Api(e.to_string()))??;
            }
        }
    }
    while let Some(result) = tasks.join_next().await {
        result.map_err(|e| DemoError::Api(e.to_string()))??;
    }
    Ok(())
}

/// The API, with errors as one readable line.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<Value, DemoError> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            return Err(DemoError::Api(format!("{method} {path}: {status} {text}")));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}
