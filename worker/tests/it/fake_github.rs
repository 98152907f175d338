//! A fake GitHub REST API for the sync tests and `scripts/bench-sync` (there is no internet
//! here): a wiremock server with one responder that serves a generated world — installations,
//! repositories, pull requests with reviews and commits, the default branch, deployments with
//! statuses, issues, the App's webhook deliveries — with GitHub's pagination (`Link`), App JWT
//! and installation-token auth, ETags, and faults injected on demand (5xx, rate-limit answers
//! with reset times, secondary limits with `Retry-After`). Every request is logged with its time.

// Shared with examples/bench_sync.rs (`#[path]`), which uses only part of it.
#![allow(dead_code)]

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use chrono::{DateTime, Duration, Utc};
use jobs::github::payloads::{self, Actor, Deploy, Issue, Pr, Repo};
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::any};

pub const APP_ID: u64 = 4242;

pub fn private_key() -> String {
    include_str!("../fixtures/github/app-key.pem").to_owned()
}

fn public_key() -> &'static str {
    include_str!("../fixtures/github/app-key.pub.pem")
}

/// A pull request with what hangs off it.
#[derive(Debug, Clone)]
pub struct FakePr {
    pub pr: Pr,
    pub reviews: Vec<Value>,
    pub commits: Vec<Value>,
}

#[derive(Debug, Clone)]
pub struct FakeRepo {
    pub repo: Repo,
    pub prs: Vec<FakePr>,
    pub deployments: Vec<(Deploy, Vec<Value>)>,
    pub issues: Vec<Issue>,
}

/// One request the fake answered.
#[derive(Debug, Clone)]
pub struct Logged {
    pub at: DateTime<Utc>,
    pub method: String,
    /// Path and query.
    pub path: String,
    pub status: u16,
    /// The installation whose token was used, if any.
    pub installation: Option<i64>,
}

/// An answer given instead of the real one to the next `times` requests whose path and query
/// contain `needle`.
#[derive(Debug, Clone)]
pub struct Fault {
    pub needle: String,
    pub times: usize,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

#[derive(Debug, Default)]
pub struct World {
    pub base: String,
    pub installations: BTreeMap<i64, Vec<FakeRepo>>,
    pub hook_deliveries: Vec<Value>,
    pub redeliveries: Vec<i64>,
    pub faults: Vec<Fault>,
    pub log: Vec<Logged>,
    pub tokens_issued: HashMap<i64, usize>,
    /// How long issued tokens last.
    pub token_lifetime: Option<Duration>,
    tokens: HashMap<String, i64>,
}

/// The fake server; clones share the world.
#[derive(Clone)]
pub struct FakeGithub {
    pub world: Arc<Mutex<World>>,
    pub server: Arc<MockServer>,
}

impl FakeGithub {
    pub async fn start(world: World) -> Self {
        let server = MockServer::start().await;
        let world = Arc::new(Mutex::new(world));
        world.lock().expect("world").base = server.uri();
        Mock::given(any())
            .respond_with(Responder(world.clone()))
            .mount(&server)
            .await;
        Self {
            world,
            server: Arc::new(server),
        }
    }

    pub fn url(&self) -> String {
        self.server.uri()
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        f(&mut self.world.lock().expect("world"))
    }

    pub fn fault(&self, needle: &str, times: usize, status: u16, headers: &[(&str, String)]) {
        self.with(|w| {
            w.faults.push(Fault {
                needle: needle.to_owned(),
                times,
                status,
                headers: headers
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.clone()))
                    .collect(),
                body: json!({"message": format!("injected {status}")}),
            })
        });
    }

    pub fn log(&self) -> Vec<Logged> {
        self.with(|w| w.log.clone())
    }

    /// How many logged requests had a path containing `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.with(|w| w.log.iter().filter(|l| l.path.contains(needle)).count())
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A generated history: `repos` repositories of one installation, `prs` pull requests each (every
/// other one merged, with a review and two commits), `deployments` deployments each with a
/// success status, and one incident issue per repository. Times end at `end`.
pub fn world(
    installation: i64,
    account: &Actor,
    repos: usize,
    prs: usize,
    deployments: usize,
    end: DateTime<Utc>,
) -> Vec<FakeRepo> {
    let reviewer = Actor::user(account.id + 1_000_000, "reviewer");
    (0..repos)
        .map(|r| {
            let repo_id = installation * 1_000 + i64::try_from(r).unwrap_or_default() + 1;
            let repo = Repo {
                id: repo_id,
                owner: account.clone(),
                name: format!("service-{r}"),
                default_branch: "main".to_owned(),
                installation_id: installation,
            };
            let prs = (0..prs)
                .map(|i| {
                    let n = i32::try_from(i).unwrap_or_default() + 1;
                    let id = repo_id * 100_000 + i64::from(n);
                    let created = end - Duration::hours(i64::from(n) * 2 + 10);
                    let merged = (n % 2 == 0).then(|| created + Duration::hours(6));
                    let author = Actor::user(account.id + 2_000_000 + i64::from(n % 7), &format!("dev{}", n % 7));
                    let pr = Pr {
                        id,
                        number: n,
                        title: format!("Change {n}"),
                        body: None,
                        author: author.clone(),
                        head_ref: format!("feature-{n}"),
                        head_sha: format!("{:040x}", id),
                        draft: false,
                        created_at: created,
                        updated_at: merged.unwrap_or(created + Duration::hours(1)),
                        merged_at: merged,
                        closed_at: merged,
                        merge_commit_sha: merged.map(|_| format!("{:040x}", id + 1)),
                        additions: n * 3,
                        deletions: n,
                    };
                    let review = payloads::review(&repo, id, id * 10, &reviewer, "approved", created + Duration::hours(2))["review"].clone();
                    let commits = (0..2)
                        .map(|c| {
                            json!({
                                "sha": format!("{:040x}", id * 10 + c),
                                "commit": {
                                    "message": format!("work {c} on {n}\n\ndetails"),
                                    "author": {"name": author.login, "email": format!("{}@example.com", author.login), "date": time(created - Duration::hours(3 - c))},
                                },
                                "author": author.json(),
                                "committer": author.json(),
                            })
                        })
                        .collect();
                    FakePr {
                        pr,
                        reviews: vec![review],
                        commits,
                    }
                })
                .collect();
            let deployments = (0..deployments)
                .map(|d| {
                    let id = repo_id * 1_000 + i64::try_from(d).unwrap_or_default() + 1;
                    let at = end - Duration::hours(i64::try_from(d).unwrap_or_default() * 5 + 1);
                    let deploy = Deploy {
                        id,
                        sha: format!("{:040x}", id),
                        environment: "production".to_owned(),
                        production: Some(true),
                        creator: account.clone(),
                        created_at: at,
                    };
                    let status = payloads::deployment_status(&repo, &deploy, id * 10, "success", at + Duration::minutes(5))["deployment_status"].clone();
                    (deploy, vec![status])
                })
                .collect();
            let issues = vec![Issue {
                id: repo_id * 10 + 7,
                number: 9_000,
                title: "Checkout down".to_owned(),
                labels: vec!["incident".to_owned()],
                author: account.clone(),
                created_at: end - Duration::hours(30),
                closed_at: Some(end - Duration::hours(29)),
            }];
            FakeRepo {
                repo,
                prs,
                deployments,
                issues,
            }
        })
        .collect()
}

/// The REST shape of a pull request (the webhook payload's `pull_request`).
pub fn pr_json(repo: &Repo, pr: &Pr) -> Value {
    payloads::pull_request(repo, pr, "synchronize")["pull_request"].clone()
}

struct Responder(Arc<Mutex<World>>);

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut world = self.0.lock().expect("world");
        let path = match request.url.query() {
            Some(q) => format!("{}?{q}", request.url.path()),
            None => request.url.path().to_owned(),
        };
        let (installation, response) = answer(&mut world, request, &path);
        let status = response.0;
        world.log.push(Logged {
            at: Utc::now(),
            method: request.method.to_string(),
            path,
            status,
            installation,
        });
        let mut template = ResponseTemplate::new(status);
        for (k, v) in response.2 {
            template = template.insert_header(k.as_str(), v.as_str());
        }
        match response.1 {
            Some(body) => template.set_body_json(body),
            None => template,
        }
    }
}

type Answer = (u16, Option<Value>, Vec<(String, String)>);

fn error(status: u16, message: &str) -> Answer {
    (status, Some(json!({"message": message})), Vec::new())
}

fn query(request: &Request, name: &str) -> Option<String> {
    request
        .url
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn bearer(request: &Request) -> Option<String> {
    request
        .headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_owned)
}

/// The App's JWT checks out: RS256 with the App's key, issued by the App.
fn app_jwt_ok(request: &Request) -> bool {
    let Some(token) = bearer(request) else {
        return false;
    };
    let Ok(key) = jsonwebtoken::DecodingKey::from_rsa_pem(public_key().as_bytes()) else {
        return false;
    };
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    // GitHub's JWTs carry the App id as a number; jsonwebtoken only checks string issuers.
    validation.set_required_spec_claims(&["exp", "iat"]);
    let decoded = jsonwebtoken::decode::<Value>(&token, &key, &validation);
    decoded
        .map(|data| {
            data.claims["iss"] == json!(APP_ID) || data.claims["iss"] == json!(APP_ID.to_string())
        })
        .unwrap_or(false)
}

/// One page of `items` as GitHub pages them (`page`, `per_page`, `Link: rel="next"`).
fn paginate(
    world: &World,
    request: &Request,
    items: Vec<Value>,
) -> (Vec<Value>, Vec<(String, String)>) {
    let per_page: usize = query(request, "per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page: usize = query(request, "page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let start = (page - 1) * per_page;
    let slice: Vec<Value> = items.iter().skip(start).take(per_page).cloned().collect();
    let mut headers = Vec::new();
    if start + per_page < items.len() {
        let mut next = request.url.clone();
        let pairs: Vec<(String, String)> = request
            .url
            .query_pairs()
            .filter(|(k, _)| k != "page")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        next.query_pairs_mut()
            .clear()
            .extend_pairs(pairs)
            .append_pair("page", &(page + 1).to_string());
        let next = format!(
            "{}{}?{}",
            world.base,
            next.path(),
            next.query().unwrap_or("")
        );
        headers.push(("link".to_owned(), format!("<{next}>; rel=\"next\"")));
    }
    (slice, headers)
}

fn answer(world: &mut World, request: &Request, path: &str) -> (Option<i64>, Answer) {
    let installation = bearer(request).and_then(|t| world.tokens.get(&t).copied());
    if let Some(fault) = world
        .faults
        .iter_mut()
        .find(|f| f.times > 0 && path.contains(&f.needle))
    {
        fault.times -= 1;
        return (
            installation,
            (
                fault.status,
                Some(fault.body.clone()),
                fault.headers.clone(),
            ),
        );
    }
    let segments: Vec<&str> = request
        .url
        .path()
        .trim_start_matches('/')
        .split('/')
        .collect();
    let method = request.method.as_str();
    // The App's own endpoints, signed with its JWT.
    if segments.first() == Some(&"app") {
        if !app_jwt_ok(request) {
            return (None, error(401, "A JSON web token could not be decoded"));
        }
        return (None, app_endpoint(world, request, method, &segments));
    }
    let Some(installation) = installation else {
        return (None, error(401, "Bad credentials"));
    };
    let world: &World = world;
    let repos: &[FakeRepo] = world
        .installations
        .get(&installation)
        .map_or(&[], Vec::as_slice);
    let answer = match (method, segments.as_slice()) {
        ("GET", ["installation", "repositories"]) => {
            let all: Vec<Value> = repos.iter().map(|r| r.repo.json()).collect();
            let total = all.len();
            let (page, headers) = paginate(world, request, all);
            (
                200,
                Some(json!({"total_count": total, "repositories": page})),
                headers,
            )
        }
        ("GET", ["repos", owner, name, rest @ ..]) => {
            let full = format!("{owner}/{name}");
            match repos.iter().find(|r| r.repo.full_name() == full) {
                None => error(404, "Not Found"),
                Some(repo) => repo_endpoint(world, request, repo, rest),
            }
        }
        _ => error(404, "Not Found"),
    };
    (Some(installation), answer)
}

fn app_endpoint(world: &mut World, request: &Request, method: &str, segments: &[&str]) -> Answer {
    match (method, segments) {
        ("POST", ["app", "installations", id, "access_tokens"]) => {
            let Ok(id) = id.parse::<i64>() else {
                return error(404, "Not Found");
            };
            if !world.installations.contains_key(&id) {
                return error(404, "Not Found");
            }
            let n = world.tokens_issued.entry(id).or_default();
            *n += 1;
            let token = format!("ghs_fake_{id}_{n}");
            world.tokens.insert(token.clone(), id);
            let lifetime = world.token_lifetime.unwrap_or(Duration::hours(1));
            (
                201,
                Some(
                    json!({"token": token, "expires_at": time(Utc::now() + lifetime), "permissions": {}}),
                ),
                Vec::new(),
            )
        }
        ("GET", ["app", "hook", "deliveries"]) => {
            // Newest first, cursor pagination as GitHub does (here the cursor is an index).
            let per_page: usize = query(request, "per_page")
                .and_then(|p| p.parse().ok())
                .unwrap_or(30);
            let start: usize = query(request, "cursor")
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            let page: Vec<Value> = world
                .hook_deliveries
                .iter()
                .skip(start)
                .take(per_page)
                .cloned()
                .collect();
            let mut headers = Vec::new();
            if start + per_page < world.hook_deliveries.len() {
                headers.push((
                    "link".to_owned(),
                    format!(
                        "<{}/app/hook/deliveries?per_page={per_page}&cursor={}>; rel=\"next\"",
                        world.base,
                        start + per_page
                    ),
                ));
            }
            (200, Some(Value::Array(page)), headers)
        }
        ("POST", ["app", "hook", "deliveries", id, "attempts"]) => match id.parse::<i64>() {
            Ok(id) if world.hook_deliveries.iter().any(|d| d["id"] == json!(id)) => {
                world.redeliveries.push(id);
                (202, Some(json!({})), Vec::new())
            }
            _ => error(404, "Not Found"),
        },
        _ => error(404, "Not Found"),
    }
}

fn repo_endpoint(world: &World, request: &Request, repo: &FakeRepo, rest: &[&str]) -> Answer {
    let find_pr = |n: &str| {
        n.parse::<i32>()
            .ok()
            .and_then(|n| repo.prs.iter().find(|p| p.pr.number == n))
    };
    match rest {
        ["pulls"] => {
            let state = query(request, "state").unwrap_or_else(|| "open".to_owned());
            let mut prs: Vec<&FakePr> = repo
                .prs
                .iter()
                .filter(|p| {
                    let open = p.pr.closed_at.is_none() && p.pr.merged_at.is_none();
                    state == "all" || (state == "open") == open
                })
                .collect();
            prs.sort_by(|a, b| {
                b.pr.updated_at
                    .cmp(&a.pr.updated_at)
                    .then(b.pr.id.cmp(&a.pr.id))
            });
            // The listing leaves out the sizes, as GitHub's does.
            let items: Vec<Value> = prs
                .iter()
                .map(|p| {
                    let mut v = pr_json(&repo.repo, &p.pr);
                    for key in [
                        "additions",
                        "deletions",
                        "changed_files",
                        "commits",
                        "merged",
                    ] {
                        if let Some(o) = v.as_object_mut() {
                            o.remove(key);
                        }
                    }
                    v
                })
                .collect();
            let (page, mut headers) = paginate(world, request, items);
            let etag = format!(
                "\"{:x}\"",
                fxhash(&serde_json::to_string(&page).unwrap_or_default())
            );
            let sent = request
                .headers
                .get("if-none-match")
                .and_then(|v| v.to_str().ok());
            headers.push(("etag".to_owned(), etag.clone()));
            if sent == Some(etag.as_str()) {
                return (304, None, headers);
            }
            (200, Some(Value::Array(page)), headers)
        }
        ["pulls", n] => match find_pr(n) {
            Some(p) => (200, Some(pr_json(&repo.repo, &p.pr)), Vec::new()),
            None => error(404, "Not Found"),
        },
        ["pulls", n, "reviews"] => match find_pr(n) {
            Some(p) => {
                let (page, headers) = paginate(world, request, p.reviews.clone());
                (200, Some(Value::Array(page)), headers)
            }
            None => error(404, "Not Found"),
        },
        ["pulls", n, "commits"] => match find_pr(n) {
            Some(p) => {
                let (page, headers) = paginate(world, request, p.commits.clone());
                (200, Some(Value::Array(page)), headers)
            }
            None => error(404, "Not Found"),
        },
        ["commits"] => {
            // The default branch: one squash commit per merged pull request, newest first.
            let since = query(request, "since")
                .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
                .map(|s| s.with_timezone(&Utc));
            let mut merged: Vec<&FakePr> = repo
                .prs
                .iter()
                .filter(|p| p.pr.merged_at.is_some_and(|m| since.is_none_or(|s| m >= s)))
                .collect();
            merged.sort_by_key(|p| std::cmp::Reverse(p.pr.merged_at));
            let items: Vec<Value> = merged
                .iter()
                .map(|p| {
                    let at = time(p.pr.merged_at.unwrap_or(p.pr.created_at));
                    json!({
                        "sha": p.pr.merge_commit_sha,
                        "commit": {
                            "message": format!("{} (#{})", p.pr.title, p.pr.number),
                            "author": {"name": p.pr.author.login, "email": "dev@example.com", "date": at},
                            "committer": {"name": "GitHub", "email": "noreply@github.com", "date": at},
                        },
                        "author": p.pr.author.json(),
                        "committer": {"id": 19864447, "login": "web-flow", "type": "User"},
                    })
                })
                .collect();
            let (page, headers) = paginate(world, request, items);
            (200, Some(Value::Array(page)), headers)
        }
        ["deployments"] => {
            let mut list: Vec<&(Deploy, Vec<Value>)> = repo.deployments.iter().collect();
            list.sort_by_key(|d| std::cmp::Reverse(d.0.created_at));
            let items: Vec<Value> = list
                .iter()
                .map(|(d, _)| payloads::deployment(&repo.repo, d)["deployment"].clone())
                .collect();
            let (page, headers) = paginate(world, request, items);
            (200, Some(Value::Array(page)), headers)
        }
        ["deployments", id, "statuses"] => {
            match repo
                .deployments
                .iter()
                .find(|(d, _)| d.id.to_string() == *id)
            {
                Some((_, statuses)) => {
                    let (page, headers) = paginate(world, request, statuses.clone());
                    (200, Some(Value::Array(page)), headers)
                }
                None => error(404, "Not Found"),
            }
        }
        ["issues"] => {
            let since = query(request, "since")
                .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
                .map(|s| s.with_timezone(&Utc));
            let mut items: Vec<Value> = repo
                .issues
                .iter()
                .filter(|i| since.is_none_or(|s| i.closed_at.unwrap_or(i.created_at) >= s))
                .map(|i| payloads::issue(&repo.repo, i, "opened")["issue"].clone())
                .collect();
            // Pull requests are issues too in this listing.
            items.extend(
                repo.prs
                    .iter()
                    .take(1)
                    .map(|p| json!({"id": p.pr.id, "number": p.pr.number, "title": p.pr.title, "state": "open", "created_at": time(p.pr.created_at), "updated_at": time(p.pr.updated_at), "pull_request": {"url": "x"}})),
            );
            let (page, headers) = paginate(world, request, items);
            (200, Some(Value::Array(page)), headers)
        }
        _ => error(404, "Not Found"),
    }
}

fn fxhash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A webhook delivery attempt as `GET /app/hook/deliveries` lists it.
pub fn hook_delivery(
    id: i64,
    guid: &str,
    status_code: u16,
    at: DateTime<Utc>,
    redelivery: bool,
) -> Value {
    json!({
        "id": id,
        "guid": guid,
        "delivered_at": time(at),
        "redelivery": redelivery,
        "duration": 0.2,
        "status": if (200..300).contains(&status_code) { "OK" } else { "Invalid HTTP Response: 503" },
        "status_code": status_code,
        "event": "pull_request",
        "action": "opened",
        "installation_id": 1,
        "repository_id": 2,
    })
}
