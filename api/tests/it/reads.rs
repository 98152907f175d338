//! The dashboards' read API: answers drawn from the precomputed tables, who sees what, date
//! ranges, cursor pages, ETags, the read cache following the tables, the definitions, the
//! OpenAPI document and the dashboard's files.

use std::time::Duration;

use jobs::people::Role;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::helpers::{AppOptions, Person, TestApp, eventually, spawn_app, spawn_app_with};

async fn exec(app: &TestApp, sql: &str) {
    app.db.execute_unprepared(sql).await.expect(sql);
}

/// What the analytics jobs would have written for `org`: organization and repository rows for
/// three days ending 2026-11-20, a 28-day DORA row per day, two weeks of scores.
async fn seed_metrics(app: &TestApp, org: i64) {
    exec(
        app,
        &format!(
            "INSERT INTO daily_metrics (org_id, day, scope, scope_key, prs_opened, prs_merged, \
                reviews_given, commits, cycle_time_p50_s, deployments, failed_deployments) VALUES \
             ({org}, '2026-11-18', 'org', 'org', 3, 2, 4, 9, 7200, 1, 0), \
             ({org}, '2026-11-19', 'org', 'org', 1, 1, 2, 5, 3600, 2, 1), \
             ({org}, '2026-11-20', 'org', 'org', 2, 0, 1, 4, NULL, 0, 0), \
             ({org}, '2026-10-01', 'org', 'org', 50, 50, 50, 50, 1, 0, 0); \
             INSERT INTO dora_metrics (org_id, repository, day, window_days, deployments, deploy_days, \
                deploy_days_per_week, band, lead_time_p50_s, lead_time_count, change_failure_rate, \
                failed_deployments, recovery_time_p50_s, recovery_count, unrecovered_count) VALUES \
             ({org}, NULL, '2026-11-19', 28, 10, 8, 2.5, 'high', 86400, 7, 0.1, 1, 3600, 1, 0), \
             ({org}, NULL, '2026-11-20', 28, 12, 9, 3, 'high', 43200, 8, 0.25, 3, 1800, 2, 1), \
             ({org}, 'acme/api', '2026-11-20', 28, 6, 5, 1.5, 'high', 40000, 4, 0.5, 3, NULL, 0, 3); \
             INSERT INTO reliability_scores (org_id, scope, scope_key, week, iso_week, score, \
                flow_predictability, review_responsiveness, change_stability, wip_hygiene, prs_merged, \
                prs_merged_on_target, prs_first_reviewed, prs_picked_up_in_sla, deployments, \
                failed_deployments, open_prs, idle_open_prs, weights) VALUES \
             ({org}, 'org', 'org', '2026-11-09', '2026-W46', 80, 0.8, 0.9, 0.7, 0.8, 10, 8, 10, 9, 10, 3, 5, 1, '{{}}'), \
             ({org}, 'org', 'org', '2026-11-16', '2026-W47', 75.5, 0.7, 0.8, 0.75, 0.77, 3, 2, 4, 3, 4, 1, 6, 2, '{{}}');"
        ),
    )
    .await;
}

struct World {
    app: TestApp,
    org: i64,
    owner: Person,
    manager: Person,
    dev: Person,
    other_dev: Person,
    team: i64,
}

/// An organization with an owner, a manager of a team holding `dev`, and `other_dev` outside it;
/// `dev` is linked to GitHub login `dev-login`.
async fn world() -> World {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let owner = app.person(org, "owner@acme.test", Role::Owner).await;
    let manager = app.person(org, "manager@acme.test", Role::Manager).await;
    let dev = app.person(org, "dev@acme.test", Role::Developer).await;
    let other_dev = app.person(org, "other@acme.test", Role::Developer).await;
    exec(
        &app,
        &format!(
            "UPDATE users SET github_login = 'dev-login' WHERE id = {}; \
             UPDATE users SET github_login = 'other-login' WHERE id = {}",
            dev.id, other_dev.id
        ),
    )
    .await;
    let (status, team) = app
        .post_as(&owner.access, "/api/v1/teams", json!({ "name": "Core" }))
        .await;
    assert_eq!(status, 201, "{team}");
    let team = team["id"].as_i64().expect("team id");
    for (user, manager_flag) in [(manager.id, true), (dev.id, false)] {
        let (status, body) = app
            .call(crate::helpers::Call {
                method: reqwest::Method::PUT,
                path: &format!("/api/v1/teams/{team}/members/{user}"),
                token: Some(&owner.access),
                body: Some(json!({ "manager": manager_flag })),
            })
            .await;
        assert!(status < 300, "{status} {body}");
    }
    World {
        app,
        org,
        owner,
        manager,
        dev,
        other_dev,
        team,
    }
}

#[tokio::test]
async fn the_overview_is_drawn_from_the_precomputed_tables_of_the_callers_organization() {
    // Arrange
    let w = world().await;
    seed_metrics(&w.app, w.org).await;
    let other_org = w.app.create_org("Other").await;
    seed_metrics(&w.app, other_org).await;
    exec(
        &w.app,
        &format!(
            "UPDATE daily_metrics SET prs_opened = 1000 WHERE org_id = {other_org}; \
             INSERT INTO health_alerts (org_id, kind, subject, user_id, message) VALUES \
             ({org}, 'stale_pr', 'acme/api#1', {dev}, 'stale'), \
             ({org}, 'inactivity', '{dev}', {dev}, 'quiet'), \
             ({other_org}, 'stale_pr', 'x/y#1', NULL, 'stale')",
            org = w.org,
            dev = w.dev.id
        ),
    )
    .await;

    // Act
    let (status, body) = w
        .app
        .get_as(
            &w.dev.access,
            "/api/v1/overview?from=2026-11-01&to=2026-11-20",
        )
        .await;

    // Assert
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["organization"]["name"], "Acme");
    assert_eq!(
        body["range"],
        json!({ "from": "2026-11-01", "to": "2026-11-20" })
    );
    let trend = body["trend"].as_array().expect("trend");
    assert_eq!(trend.len(), 3, "only the days in the range: {trend:?}");
    assert_eq!(body["totals"]["prs_opened"], 6);
    assert_eq!(body["totals"]["prs_merged"], 3);
    assert_eq!(body["totals"]["deployments"], 3);
    assert_eq!(body["dora"]["day"], "2026-11-20");
    assert_eq!(body["dora"]["band"], "high");
    assert_eq!(body["dora"]["change_failure_rate"], 0.25);
    assert_eq!(body["dora"]["repository"], Value::Null);
    assert_eq!(body["dora_trend"].as_array().expect("dora").len(), 2);
    assert_eq!(body["reliability"]["iso_week"], "2026-W47");
    assert_eq!(body["reliability"]["score"], 75.5);
    assert_eq!(
        body["reliability_trend"].as_array().expect("weeks").len(),
        2
    );
    assert_eq!(body["open_alerts"], 1);
    w.app.stop().await;
}

#[tokio::test]
async fn date_ranges_are_validated_with_json_errors() {
    let w = world().await;
    for (query, status, code) in [
        ("from=2026-11-20&to=2026-11-01", 422, "invalid_range"),
        ("from=1900-01-01&to=1900-01-31", 422, "invalid_range"),
        ("from=2025-01-01&to=2026-11-01", 422, "invalid_range"),
        ("from=yesterday", 400, "invalid_query"),
        ("since=2026-01-01", 400, "invalid_query"),
    ] {
        for path in ["/api/v1/overview", "/api/v1/repositories", "/api/v1/dora"] {
            let (got, body) = w
                .app
                .get_as(&w.owner.access, &format!("{path}?{query}"))
                .await;
            assert_eq!(got, status, "{path}?{query}: {body}");
            assert_eq!(body["code"], code, "{path}?{query}: {body}");
            assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
    }
    // The longest range allowed: 366 days.
    let (status, body) = w
        .app
        .get_as(
            &w.owner.access,
            "/api/v1/overview?from=2025-11-21&to=2026-11-21",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = w
        .app
        .get_as(&w.owner.access, "/api/v1/dora?window=14")
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid_window"))
    );
    w.app.stop().await;
}

#[tokio::test]
async fn a_changed_table_is_seen_at_once_and_an_unchanged_answer_is_not_sent_twice() {
    // Arrange
    let w = world().await;
    seed_metrics(&w.app, w.org).await;
    let path = "/api/v1/overview?from=2026-11-01&to=2026-11-20";
    let first = w
        .app
        .client
        .get(w.app.url(path))
        .bearer_auth(&w.owner.access)
        .send()
        .await
        .expect("get");
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().expect("etag").to_owned();
    assert_eq!(first.headers()["cache-control"], "private, no-cache");

    // Act: the same question with the tag, then a job's change to the table.
    let again = w
        .app
        .client
        .get(w.app.url(path))
        .bearer_auth(&w.owner.access)
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("get");
    let again_status = again.status().as_u16();
    let again_body = again.bytes().await.expect("body");
    exec(
        &w.app,
        &format!(
            "UPDATE daily_metrics SET prs_opened = 30 WHERE org_id = {} AND day = '2026-11-20'",
            w.org
        ),
    )
    .await;

    // Assert
    assert_eq!(again_status, 304);
    assert!(again_body.is_empty());
    let app = &w.app;
    let token = w.owner.access.clone();
    eventually(
        Duration::from_secs(5),
        "the overview shows the change",
        || {
            let token = token.clone();
            async move {
                let (_, body) = app.get_as(&token, path).await;
                body["totals"]["prs_opened"] == 34
            }
        },
    )
    .await;
    let changed = w
        .app
        .client
        .get(w.app.url(path))
        .bearer_auth(&w.owner.access)
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("get");
    assert_eq!(changed.status(), 200, "a new version is sent in full");
    assert_ne!(changed.headers()["etag"].to_str().expect("etag"), etag);
    w.app.stop().await;
}

#[tokio::test]
async fn daily_metrics_come_a_page_at_a_time_and_people_rows_follow_visibility() {
    // Arrange: 4 days × 3 repositories, and user rows for both developers.
    let w = world().await;
    let mut values = Vec::new();
    for day in 17..=20 {
        for repo in ["acme/api", "acme/web", "acme/zeta"] {
            values.push(format!(
                "({}, '2026-11-{day}', 'repository', '{repo}', {day})",
                w.org
            ));
        }
        for login in ["dev-login", "other-login"] {
            values.push(format!(
                "({}, '2026-11-{day}', 'user', '{login}', 1)",
                w.org
            ));
        }
    }
    exec(
        &w.app,
        &format!(
            "INSERT INTO daily_metrics (org_id, day, scope, scope_key, prs_opened) VALUES {}",
            values.join(", ")
        ),
    )
    .await;

    // Act: follow the cursor through pages of 5.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path =
            "/api/v1/metrics/daily?scope=repository&from=2026-11-17&to=2026-11-20&limit=5"
                .to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, body) = w.app.get_as(&w.owner.access, &path).await;
        assert_eq!(status, 200, "{body}");
        pages += 1;
        for item in body["items"].as_array().expect("items") {
            seen.push(format!(
                "{} {}",
                item["day"].as_str().expect("day"),
                item["scope_key"].as_str().expect("key")
            ));
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(pages < 10, "the cursor does not end");
    }

    // Assert
    let mut expected = Vec::new();
    for day in 17..=20 {
        for repo in ["acme/api", "acme/web", "acme/zeta"] {
            expected.push(format!("2026-11-{day} {repo}"));
        }
    }
    assert_eq!(seen, expected, "every row once, in order");
    assert_eq!(pages, 3);
    let logins = |body: &Value| {
        let mut l: Vec<String> = body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["scope_key"].as_str().expect("key").to_owned())
            .collect();
        l.dedup();
        l
    };
    let user_rows = "/api/v1/metrics/daily?scope=user&from=2026-11-17&to=2026-11-20";
    let (_, mine) = w.app.get_as(&w.dev.access, user_rows).await;
    assert_eq!(logins(&mine), ["dev-login"]);
    let (_, managed) = w.app.get_as(&w.manager.access, user_rows).await;
    assert_eq!(logins(&managed), ["dev-login"]);
    let (_, all) = w.app.get_as(&w.owner.access, user_rows).await;
    assert_eq!(all["items"].as_array().expect("items").len(), 8);
    let (status, body) = w
        .app
        .get_as(
            &w.owner.access,
            "/api/v1/metrics/daily?scope=user&cursor=%%%",
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_cursor"))
    );
    let far_future = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        "+20000-01-01\nacme/api",
    );
    let (status, body) = w
        .app
        .get_as(
            &w.owner.access,
            &format!("/api/v1/metrics/daily?scope=repository&cursor={far_future}"),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_cursor"))
    );
    let (status, body) = w
        .app
        .get_as(&w.owner.access, "/api/v1/metrics/daily?scope=org&limit=0")
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid_limit"))
    );
    let (status, _) = w
        .app
        .get_as(&w.owner.access, "/api/v1/metrics/daily?scope=planet")
        .await;
    assert_eq!(status, 400);
    w.app.stop().await;
}

#[tokio::test]
async fn a_developer_page_shows_their_data_to_them_and_their_managers_only() {
    // Arrange
    let w = world().await;
    let today = chrono::Utc::now().date_naive();
    exec(
        &w.app,
        &format!(
            "INSERT INTO daily_metrics (org_id, day, scope, scope_key, prs_opened, prs_merged) VALUES \
             ({org}, '{today}', 'user', 'dev-login', 2, 1), ({org}, '{today}', 'user', 'other-login', 7, 7); \
             INSERT INTO attendance_summaries (organization_id, user_id, day, first_in, last_out, \
                worked_seconds, idle_seconds, active_seconds, sessions, overtime_seconds, auto_closed) \
             VALUES ({org}, {dev}, '{today}', now() - interval '8 hours', now(), 28800, 1800, 27000, 1, 0, false); \
             INSERT INTO health_alerts (org_id, kind, subject, user_id, message) VALUES \
             ({org}, 'forgotten_clock_out', '{dev}', {dev}, 'closed automatically')",
            org = w.org,
            dev = w.dev.id
        ),
    )
    .await;
    let path = format!("/api/v1/developers/{}", w.dev.id);

    // Act
    let (own, own_body) = w.app.get_as(&w.dev.access, &path).await;
    let (managed, managed_body) = w.app.get_as(&w.manager.access, &path).await;
    let (peer, peer_body) = w.app.get_as(&w.other_dev.access, &path).await;
    let (team_page, team_body) = w
        .app
        .get_as(
            &w.other_dev.access,
            &format!("/api/v1/teams/{}/metrics", w.team),
        )
        .await;

    // Assert
    assert_eq!(own, 200, "{own_body}");
    assert_eq!(own_body["user"]["github_login"], "dev-login");
    assert_eq!(own_body["totals"]["prs_opened"], 2, "{own_body}");
    assert_eq!(own_body["attendance"][0]["active_seconds"], 27000);
    assert_eq!(own_body["alerts"][0]["kind"], "forgotten_clock_out");
    assert_eq!(managed, 200, "{managed_body}");
    assert_eq!(managed_body, own_body);
    assert_eq!(peer, 403, "{peer_body}");
    assert_eq!(peer_body["code"], "forbidden");
    assert_eq!(team_page, 403, "{team_body}");
    let (status, _) = w
        .app
        .get_as(&w.dev.access, "/api/v1/developers/999999")
        .await;
    assert_eq!(status, 404);
    w.app.stop().await;
}

#[tokio::test]
async fn alerts_follow_visibility_and_are_acknowledged_once() {
    // Arrange
    let w = world().await;
    let ids: Vec<i64> = {
        let rows = w
            .app
            .db
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!(
                    "INSERT INTO health_alerts (org_id, kind, subject, user_id, message, resolved_at) VALUES \
                     ({org}, 'stale_pr', 'acme/api#1', NULL, 'stale', NULL), \
                     ({org}, 'inactivity', '{dev}', {dev}, 'quiet', NULL), \
                     ({org}, 'forgotten_clock_out', '{dev}', {dev}, 'closed', NULL), \
                     ({org}, 'unreviewed_pr', 'acme/api#2', NULL, 'waiting', now()) RETURNING id",
                    org = w.org,
                    dev = w.dev.id
                ),
            ))
            .await
            .expect("alerts");
        rows.iter()
            .map(|r| r.try_get::<i64>("", "id").expect("id"))
            .collect()
    };
    let kinds = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|a| a["kind"].as_str().expect("kind").to_owned())
            .collect()
    };

    // Act
    let (_, own) = w.app.get_as(&w.dev.access, "/api/v1/alerts").await;
    let (_, manager) = w.app.get_as(&w.manager.access, "/api/v1/alerts").await;
    let (_, owner) = w.app.get_as(&w.owner.access, "/api/v1/alerts").await;
    let (_, peer) = w.app.get_as(&w.other_dev.access, "/api/v1/alerts").await;
    let (_, resolved) = w
        .app
        .get_as(&w.owner.access, "/api/v1/alerts?status=resolved")
        .await;
    let ack = format!("/api/v1/alerts/{}/acknowledge", ids[2]);
    let (first, first_body) = w.app.post_as(&w.manager.access, &ack, json!({})).await;
    let (second, second_body) = w.app.post_as(&w.dev.access, &ack, json!({})).await;
    let (hidden, _) = w
        .app
        .post_as(
            &w.other_dev.access,
            &format!("/api/v1/alerts/{}/acknowledge", ids[1]),
            json!({}),
        )
        .await;
    let (closed, closed_body) = w
        .app
        .post_as(
            &w.owner.access,
            &format!("/api/v1/alerts/{}/acknowledge", ids[3]),
            json!({}),
        )
        .await;

    // Assert: newest first; inactivity only to the person and their manager.
    assert_eq!(
        kinds(&own),
        ["forgotten_clock_out", "inactivity", "stale_pr"]
    );
    assert_eq!(
        kinds(&manager),
        ["forgotten_clock_out", "inactivity", "stale_pr"]
    );
    assert_eq!(kinds(&owner), ["forgotten_clock_out", "stale_pr"]);
    assert_eq!(kinds(&peer), ["stale_pr"]);
    assert_eq!(kinds(&resolved), ["unreviewed_pr"]);
    assert_eq!(first, 200, "{first_body}");
    assert_eq!(first_body["acknowledged_by"], w.manager.id);
    assert_eq!(second, 200, "{second_body}");
    assert_eq!(
        second_body["acknowledged_by"], w.manager.id,
        "the first one is kept"
    );
    assert_eq!(
        second_body["acknowledged_at"],
        first_body["acknowledged_at"]
    );
    assert_eq!(hidden, 404);
    let (huge, _) = w
        .app
        .post_as(
            &w.owner.access,
            &format!("/api/v1/alerts/{}/acknowledge", i64::MAX),
            json!({}),
        )
        .await;
    assert_eq!(huge, 404);
    assert_eq!(
        (closed, closed_body["code"].as_str()),
        (409, Some("alert_resolved"))
    );
    w.app.stop().await;
}

#[tokio::test]
async fn the_definitions_are_the_published_document() {
    let w = world().await;
    let (status, body) = w
        .app
        .get_as(&w.dev.access, "/api/v1/metrics/definitions")
        .await;
    assert_eq!(status, 200);
    let published =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/METRICS.md"))
            .expect("docs/METRICS.md");
    assert_eq!(body["text"].as_str(), Some(published.as_str()));
    let fields = body["fields"].as_array().expect("fields");
    let find = |name: &str| {
        fields
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("{name} is not defined: {fields:?}"))
    };
    assert!(
        find("cycle_time_p75_s")["text"]
            .as_str()
            .expect("text")
            .contains("cycle_s")
    );
    assert!(
        find("change_failure_rate")["text"]
            .as_str()
            .expect("text")
            .contains("failed_deployments / deployments")
    );
    assert_eq!(find("band")["section"], "`dora_metrics`");
    assert!(
        find("health_alerts")["text"]
            .as_str()
            .expect("text")
            .contains("every hour")
    );
    w.app.stop().await;
}

#[tokio::test]
async fn admins_see_when_the_schedules_ran() {
    let w = world().await;
    exec(
        &w.app,
        "INSERT INTO schedule_ticks (schedule, tick, claimed_by, finished_at, outcome) VALUES \
         ('nightlyMetrics', '2026-11-20 02:00Z', 'worker-a', '2026-11-20 02:03Z', 'ok'), \
         ('hourlyAlerts', '2026-11-20 03:00Z', 'worker-b', NULL, NULL), \
         ('hourlyAlerts', '2026-11-20 04:00Z', 'worker-a', '2026-11-20 04:00Z', 'failed')",
    )
    .await;
    let (status, first) = w
        .app
        .get_as(&w.owner.access, "/api/v1/admin/cron-runs?limit=2")
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["items"][0]["outcome"], "failed");
    assert_eq!(first["items"][1]["claimed_by"], "worker-b");
    let cursor = first["next_cursor"].as_str().expect("more");
    let (_, second) = w
        .app
        .get_as(
            &w.owner.access,
            &format!("/api/v1/admin/cron-runs?limit=2&cursor={cursor}"),
        )
        .await;
    assert_eq!(second["items"][0]["schedule"], "nightlyMetrics");
    assert_eq!(second["next_cursor"], Value::Null);
    let (status, _) = w.app.get_as(&w.dev.access, "/api/v1/admin/cron-runs").await;
    assert_eq!(status, 403);
    w.app.stop().await;
}

#[tokio::test]
async fn the_committed_openapi_document_is_the_one_the_code_generates() {
    let w = world().await;
    let served = w
        .app
        .client
        .get(w.app.url("/api/openapi.json"))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json"))
            .unwrap_or_default();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(
            concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json"),
            &served,
        )
        .expect("write docs/openapi.json");
        return;
    }
    assert!(
        committed == served,
        "docs/openapi.json differs from what the code generates; review the change and run \
         `UPDATE_OPENAPI=1 cargo nextest run -p api openapi` to commit it"
    );
    let spec: Value = serde_json::from_str(&served).expect("json");
    assert_eq!(spec["openapi"], "3.1.0");
    let declared: Vec<(String, String)> = api::routes::v1::specs()
        .iter()
        .map(|s| (s.method.as_str().to_lowercase(), s.path.to_owned()))
        .collect();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            assert!(
                declared.contains(&(method.clone(), path.clone())),
                "the document describes {method} {path}, which is not routed"
            );
        }
    }
    w.app.stop().await;
}

#[tokio::test]
async fn the_dashboard_is_served_at_the_root_and_api_paths_stay_json() {
    // Arrange: a built dashboard of one page.
    let dir = std::env::temp_dir().join(format!("devpulse-web-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(dir.join("assets")).expect("dir");
    std::fs::write(
        dir.join("index.html"),
        "<!doctype html><title>DevPulse</title>",
    )
    .expect("index");
    std::fs::write(dir.join("assets/app.js"), "console.log(1)").expect("js");
    let dir_str: &'static str = dir.to_string_lossy().into_owned().leak();
    let app = spawn_app_with(AppOptions {
        extra_vars: vec![("WEB_DIR", dir_str)],
        ..AppOptions::default()
    })
    .await;

    // Act
    let get = |path: &str| {
        let request = app.client.get(app.url(path));
        async move {
            let response = request.send().await.expect("get");
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap_or_default().to_owned())
                .unwrap_or_default();
            (status, content_type, response.text().await.expect("text"))
        }
    };
    let root = get("/").await;
    let deep = get("/teams/7").await;
    let asset = get("/assets/app.js").await;
    let unknown_api = get("/api/v1/nothing-here").await;

    // Assert
    assert_eq!(root.0, 200);
    assert!(root.2.contains("<title>DevPulse</title>"));
    assert_eq!(deep.0, 200, "the dashboard's own paths load its page");
    assert!(deep.2.contains("<title>DevPulse</title>"));
    assert_eq!(asset.0, 200);
    assert!(asset.1.contains("javascript"), "{}", asset.1);
    assert_eq!(unknown_api.0, 404);
    assert!(unknown_api.1.contains("application/json"));
    assert!(unknown_api.2.contains("\"code\""));
    let _ = std::fs::remove_dir_all(&dir);
    app.stop().await;
}

#[tokio::test]
async fn a_cached_person_page_follows_changes_to_teams_and_attendance() {
    // Arrange: the manager has seen the developer's page (now cached for them).
    let w = world().await;
    let path = format!("/api/v1/developers/{}", w.dev.id);
    let (status, before) = w.app.get_as(&w.manager.access, &path).await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(before["attendance"].as_array().map(Vec::len), Some(0));

    // Act: a day of attendance is summarized, then the manager leaves the team.
    let today = chrono::Utc::now().date_naive();
    exec(
        &w.app,
        &format!(
            "INSERT INTO attendance_summaries (organization_id, user_id, day, first_in, last_out, \
                worked_seconds, idle_seconds, active_seconds, sessions, overtime_seconds, auto_closed) \
             VALUES ({}, {}, '{today}', now() - interval '1 hour', now(), 3600, 0, 3600, 1, 0, false)",
            w.org, w.dev.id
        ),
    )
    .await;
    let app = &w.app;
    let (token, page) = (w.manager.access.clone(), path.clone());
    eventually(Duration::from_secs(5), "the new attendance shows", || {
        let (token, page) = (token.clone(), page.clone());
        async move {
            let (_, body) = app.get_as(&token, &page).await;
            body["attendance"].as_array().map(Vec::len) == Some(1)
        }
    })
    .await;
    let (status, body) = w
        .app
        .call(crate::helpers::Call {
            method: reqwest::Method::DELETE,
            path: &format!("/api/v1/teams/{}/members/{}", w.team, w.manager.id),
            token: Some(&w.owner.access),
            body: None,
        })
        .await;
    assert!(status < 300, "{status} {body}");

    // Assert: no longer theirs to see.
    let (token, page) = (w.manager.access.clone(), path.clone());
    eventually(Duration::from_secs(5), "the page is refused", || {
        let (token, page) = (token.clone(), page.clone());
        async move { app.get_as(&token, &page).await.0 == 403 }
    })
    .await;
    w.app.stop().await;
}
