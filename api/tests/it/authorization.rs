//! The authorization matrix: every `/api/v1` route × every role, a device token, no token and
//! a user of a second organization, against the expectations written here (not derived from
//! the rule table, so a rule changed by mistake fails).

use std::collections::BTreeSet;

use jobs::people::Role;
use reqwest::Method;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Call, Person, TestApp, spawn_app};

/// Who calls, in the order of the expectation strings.
const CALLERS: [&str; 7] = [
    "owner",
    "admin",
    "manager",
    "developer",
    "outsider",
    "device",
    "anonymous",
];

/// A: 2xx, F: 403, N: 404, U: 401 — per caller in [`CALLERS`] order.
const MATRIX: &[(&str, &str, &str)] = &[
    ("GET", "/api/v1/me", "AAAAAFU"),
    ("GET", "/api/v1/me/data", "AAAAAFU"),
    ("GET", "/api/v1/organization", "AAAAAFU"),
    ("PATCH", "/api/v1/organization", "AAFFAFU"),
    ("GET", "/api/v1/users", "AAAAAFU"),
    ("POST", "/api/v1/users", "AAFFAFU"),
    ("GET", "/api/v1/users/{user_id}", "AAAFNFU"),
    ("PATCH", "/api/v1/users/{user_id}", "AAFFNFU"),
    ("POST", "/api/v1/users/{user_id}/invite", "AAFFNFU"),
    ("GET", "/api/v1/teams", "AAAAAFU"),
    ("POST", "/api/v1/teams", "AAFFAFU"),
    ("GET", "/api/v1/teams/{team_id}", "AAAFNFU"),
    ("DELETE", "/api/v1/teams/{team_id}", "AAFFNFU"),
    (
        "PUT",
        "/api/v1/teams/{team_id}/members/{user_id}",
        "AAFFNFU",
    ),
    (
        "DELETE",
        "/api/v1/teams/{team_id}/members/{user_id}",
        "AAFFNFU",
    ),
    ("POST", "/api/v1/devices", "AAAAAFU"),
    ("GET", "/api/v1/devices", "AAAAAFU"),
    ("DELETE", "/api/v1/devices/{device_id}", "AANNNFU"),
    ("POST", "/api/v1/sessions/clock-in", "AAAAAAU"),
    ("POST", "/api/v1/sessions/clock-out", "AAAAAAU"),
    ("POST", "/api/v1/sessions/{session_id}/idle", "AAAAAAU"),
    ("GET", "/api/v1/sessions", "AAAFNAU"),
    ("GET", "/api/v1/attendance", "AAAFNFU"),
    ("GET", "/api/v1/admin/dead-letters", "AAFFAFU"),
    ("GET", "/api/v1/admin/dead-letters/{letter_id}", "AAFFNFU"),
    (
        "POST",
        "/api/v1/admin/dead-letters/{letter_id}/retry",
        "AAFFNFU",
    ),
    ("POST", "/api/v1/admin/dead-letters/retry", "AAFFAFU"),
    ("DELETE", "/api/v1/admin/dead-letters", "AAFFAFU"),
    ("GET", "/api/v1/admin/sync-jobs", "AAFFAFU"),
    ("POST", "/api/v1/admin/api-keys", "AAFFAFU"),
    ("GET", "/api/v1/admin/api-keys", "AAFFAFU"),
    ("DELETE", "/api/v1/admin/api-keys/{key_id}", "AAFFNFU"),
    // Only an organization API key will do (its own test: `deployments.rs`).
    ("POST", "/api/v1/deployments", "FFFFFFU"),
    // The dashboards' reads: organization-wide for everyone in it; a team's to its members and
    // admins; a person's to them, their managers and admins.
    ("GET", "/api/v1/overview", "AAAAAFU"),
    ("GET", "/api/v1/teams/{team_id}/metrics", "AAAFNFU"),
    ("GET", "/api/v1/developers/{user_id}", "AAAFNFU"),
    ("GET", "/api/v1/repositories", "AAAAAFU"),
    ("GET", "/api/v1/dora", "AAAAAFU"),
    ("GET", "/api/v1/metrics/daily", "AAAAAFU"),
    ("GET", "/api/v1/metrics/definitions", "AAAAAFU"),
    ("GET", "/api/v1/alerts", "AAAAAFU"),
    // An alert about the target: invisible (404) to a peer and to another organization.
    ("POST", "/api/v1/alerts/{alert_id}/acknowledge", "AAANNFU"),
    ("GET", "/api/v1/admin/cron-runs", "AAFFAFU"),
];

/// Routes anyone may call; checked to answer without asking for credentials.
const PUBLIC: &[(&str, &str)] = &[
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/invites/accept"),
];

struct World {
    app: TestApp,
    org_a: i64,
    /// A developer of org A in the team the manager manages: the target of "someone's data".
    target: i64,
    team: i64,
    callers: Vec<Option<String>>,
    /// Each caller's own work session id.
    sessions: Vec<Uuid>,
}

async fn world() -> World {
    let app = spawn_app().await;
    let org_a = app.create_org("Alpha Org").await;
    let org_b = app.create_org("Beta Org").await;
    let owner = app.person(org_a, "owner@a.test", Role::Owner).await;
    let admin = app.person(org_a, "admin@a.test", Role::Admin).await;
    let manager = app.person(org_a, "manager@a.test", Role::Manager).await;
    let developer = app.person(org_a, "other-dev@a.test", Role::Developer).await;
    let target: Person = app.person(org_a, "dev@a.test", Role::Developer).await;
    let outsider = app.person(org_b, "owner@b.test", Role::Owner).await;
    let team = exec_id(
        &app,
        &format!(
            "INSERT INTO teams (organization_id, name) VALUES ({org_a}, 'Alpha') RETURNING id"
        ),
    )
    .await;
    exec_id(
        &app,
        &format!(
            "INSERT INTO team_members (organization_id, team_id, user_id, is_manager) VALUES \
         ({org_a}, {team}, {}, true), ({org_a}, {team}, {}, false) RETURNING 1 AS id",
            manager.id, target.id
        ),
    )
    .await;
    let (status, device) = app
        .post_as(
            &target.access,
            "/api/v1/devices",
            json!({ "name": "laptop" }),
        )
        .await;
    assert_eq!(status, 201);
    let callers = vec![
        Some(owner.access),
        Some(admin.access),
        Some(manager.access),
        Some(developer.access),
        Some(outsider.access),
        Some(device["token"].as_str().expect("token").to_owned()),
        None,
    ];
    World {
        app,
        org_a,
        target: target.id,
        team,
        callers,
        sessions: (0..CALLERS.len()).map(|_| Uuid::new_v4()).collect(),
    }
}

async fn exec_id(app: &TestApp, sql: &str) -> i64 {
    let row = app
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            sql,
        ))
        .await
        .expect(sql)
        .expect("a row");
    row.try_get::<i64>("", "id")
        .or_else(|_| row.try_get::<i32>("", "id").map(i64::from))
        .expect("id")
}

impl World {
    /// The concrete request for one route and caller; destructive routes get a fresh target.
    async fn request(&self, method: &str, path: &str, caller: usize) -> (String, Option<Value>) {
        let (org, target, team) = (self.org_a, self.target, self.team);
        let unique = Uuid::new_v4().simple().to_string();
        let letter = || async {
            exec_id(&self.app, &format!(
                "INSERT INTO dead_letters (queue, job, reason, error, attempts, organization_id) \
                 VALUES ('processPush', '{{}}', 'permanent', 'bad payload', 1, {org}) RETURNING id"
            ))
            .await
        };
        match (method, path) {
            ("PATCH", "/api/v1/organization") => {
                (path.into(), Some(json!({ "daily_target_seconds": 28800 })))
            }
            ("POST", "/api/v1/users") => (
                path.into(),
                Some(json!({
                "email": format!("{unique}@new.test"), "display_name": "New", "role": "developer" })),
            ),
            ("GET", "/api/v1/users/{user_id}") | ("POST", "/api/v1/users/{user_id}/invite") => {
                (path.replace("{user_id}", &target.to_string()), None)
            }
            ("PATCH", "/api/v1/users/{user_id}") => (
                path.replace("{user_id}", &target.to_string()),
                Some(json!({ "display_name": "Dee" })),
            ),
            ("POST", "/api/v1/teams") => (path.into(), Some(json!({ "name": unique }))),
            ("GET", "/api/v1/teams/{team_id}") | ("GET", "/api/v1/teams/{team_id}/metrics") => {
                (path.replace("{team_id}", &team.to_string()), None)
            }
            ("GET", "/api/v1/developers/{user_id}") => {
                (path.replace("{user_id}", &target.to_string()), None)
            }
            ("GET", "/api/v1/metrics/daily") => (format!("{path}?scope=org"), None),
            ("POST", "/api/v1/alerts/{alert_id}/acknowledge") => {
                let alert = exec_id(&self.app, &format!(
                    "INSERT INTO health_alerts (org_id, kind, subject, user_id, message) \
                     VALUES ({org}, 'forgotten_clock_out', '{unique}', {target}, 'closed') RETURNING id"
                ))
                .await;
                (
                    path.replace("{alert_id}", &alert.to_string()),
                    Some(json!({})),
                )
            }
            ("DELETE", "/api/v1/teams/{team_id}") => {
                let fresh = exec_id(&self.app, &format!(
                    "INSERT INTO teams (organization_id, name) VALUES ({org}, '{unique}') RETURNING id")).await;
                (path.replace("{team_id}", &fresh.to_string()), None)
            }
            ("PUT", "/api/v1/teams/{team_id}/members/{user_id}") => (
                path.replace("{team_id}", &team.to_string())
                    .replace("{user_id}", &target.to_string()),
                Some(json!({ "manager": false })),
            ),
            ("DELETE", "/api/v1/teams/{team_id}/members/{user_id}") => {
                let fresh = exec_id(&self.app, &format!(
                    "INSERT INTO teams (organization_id, name) VALUES ({org}, '{unique}') RETURNING id")).await;
                exec_id(&self.app, &format!(
                    "INSERT INTO team_members (organization_id, team_id, user_id) VALUES ({org}, {fresh}, {target}) RETURNING 1 AS id")).await;
                (
                    path.replace("{team_id}", &fresh.to_string())
                        .replace("{user_id}", &target.to_string()),
                    None,
                )
            }
            ("POST", "/api/v1/devices") => (path.into(), Some(json!({ "name": "phone" }))),
            ("DELETE", "/api/v1/devices/{device_id}") => {
                let device = Uuid::new_v4();
                self.app
                    .db
                    .execute_unprepared(&format!(
                        "INSERT INTO devices (id, organization_id, user_id, name, token_hash) \
                     VALUES ('{device}', {org}, {target}, 'spare', decode(md5('{unique}'), 'hex'))"
                    ))
                    .await
                    .expect("device");
                (path.replace("{device_id}", &device.to_string()), None)
            }
            ("POST", "/api/v1/sessions/clock-in") => (
                path.into(),
                Some(json!({
                "session_id": self.sessions[caller],
                "started_at": (chrono::Utc::now() - chrono::Duration::hours(2)).to_rfc3339() })),
            ),
            ("POST", "/api/v1/sessions/clock-out") => (
                path.into(),
                Some(json!({ "session_id": self.sessions[caller] })),
            ),
            ("POST", "/api/v1/sessions/{session_id}/idle") => (
                path.replace("{session_id}", &self.sessions[caller].to_string()),
                Some(json!({ "intervals": [] })),
            ),
            ("GET", "/api/v1/sessions") | ("GET", "/api/v1/attendance") => {
                (format!("{path}?user_id={target}"), None)
            }
            ("GET", "/api/v1/admin/dead-letters/{letter_id}")
            | ("POST", "/api/v1/admin/dead-letters/{letter_id}/retry") => (
                path.replace("{letter_id}", &letter().await.to_string()),
                None,
            ),
            ("DELETE", "/api/v1/admin/dead-letters") => (format!("{path}?older_than=30d"), None),
            ("POST", "/api/v1/admin/api-keys") => (path.into(), Some(json!({ "name": "ci" }))),
            ("DELETE", "/api/v1/admin/api-keys/{key_id}") => {
                let key = exec_id(
                    &self.app,
                    &format!(
                        "INSERT INTO api_keys (organization_id, name, token_hash) \
                     VALUES ({org}, 'spare', decode(md5('{unique}'), 'hex')) RETURNING id"
                    ),
                )
                .await;
                (path.replace("{key_id}", &key.to_string()), None)
            }
            ("POST", "/api/v1/deployments") => (
                path.into(),
                Some(
                    json!({ "id": unique, "repository": "a/b", "environment": "production",
                    "sha": "a".repeat(40), "status": "success" }),
                ),
            ),
            _ => (path.into(), None),
        }
    }
}

#[tokio::test]
async fn every_route_answers_each_role_as_the_matrix_says() {
    // Arrange
    let world = world().await;
    let declared: BTreeSet<(String, String)> = api::routes::v1::specs()
        .iter()
        .map(|s| (s.method.to_string(), s.path.to_owned()))
        .collect();
    let covered: BTreeSet<(String, String)> = MATRIX
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .chain(
            PUBLIC
                .iter()
                .map(|(m, p)| ((*m).to_owned(), (*p).to_owned())),
        )
        .collect();
    assert_eq!(
        declared, covered,
        "every /api/v1 route needs a row in the matrix"
    );

    // Act
    let mut failures = Vec::new();
    for (method, path, expected) in MATRIX {
        for (caller, want) in expected.chars().enumerate() {
            let (concrete, body) = world.request(method, path, caller).await;
            let (status, response) = world
                .app
                .call(Call {
                    method: Method::from_bytes(method.as_bytes()).expect("method"),
                    path: &concrete,
                    token: world.callers[caller].as_deref(),
                    body,
                })
                .await;
            let ok = match want {
                'A' => (200..300).contains(&status),
                'F' => status == 403,
                'N' => status == 404,
                'U' => status == 401,
                other => panic!("unknown expectation {other}"),
            };
            if !ok {
                failures.push(format!(
                    "{method} {concrete} as {}: want {want}, got {status} {response}",
                    CALLERS[caller]
                ));
            }
            if status >= 400 && !(response["code"].is_string() && response["message"].is_string()) {
                failures.push(format!(
                    "{method} {concrete} as {}: error without code/message: {response}",
                    CALLERS[caller]
                ));
            }
            let text = response.to_string();
            if CALLERS[caller] == "outsider" && (text.contains("@a.test") || text.contains("Alpha"))
            {
                failures.push(format!(
                    "{method} {concrete}: the outsider saw organization A: {text}"
                ));
            }
        }
    }
    for (method, path) in PUBLIC {
        let (status, response) = world
            .app
            .call(Call {
                method: Method::from_bytes(method.as_bytes()).expect("method"),
                path,
                token: None,
                body: Some(json!({ "email": "x@y.z", "password": "p", "refresh_token": "r", "token": "t" })),
            })
            .await;
        if response["code"] == "unauthorized" || status >= 500 {
            failures.push(format!("public {method} {path}: {status} {response}"));
        }
    }

    // Assert
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    world.app.stop().await;
}
