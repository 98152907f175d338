//! `POST /api/v1/deployments`: deployments made outside GitHub, pushed with an organization API
//! key, land in `deployments` through the deployment writer — once per report, never across
//! organizations — and mark their day for the analytics.

use jobs::people::Role;
use reqwest::Method;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::helpers::{Call, TestApp, spawn_app};

async fn number(app: &TestApp, sql: &str) -> i64 {
    app.db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            sql,
        ))
        .await
        .expect(sql)
        .expect("row")
        .try_get::<i64>("", "n")
        .expect("n")
}

async fn push(app: &TestApp, key: Option<&str>, body: Value) -> (u16, Value) {
    app.call(Call {
        method: Method::POST,
        path: "/api/v1/deployments",
        token: key,
        body: Some(body),
    })
    .await
}

fn report(id: &str, repository: &str, status: &str) -> Value {
    json!({
        "id": id,
        "repository": repository,
        "environment": "production",
        "sha": "0123456789abcdef0123456789abcdef01234567",
        "status": status,
        "created_at": (chrono::Utc::now() - chrono::Duration::minutes(10)).to_rfc3339(),
    })
}

#[tokio::test]
async fn a_pipeline_reports_deployments_with_an_organization_api_key() {
    // Arrange: two organizations, each with a repository; A's admin makes a key.
    let app = spawn_app().await;
    let org_a = app.create_org("Alpha").await;
    let org_b = app.create_org("Beta").await;
    app.db
        .execute_unprepared(&format!(
            "INSERT INTO repositories (github_id, organization_id, name, full_name) VALUES \
             (501, {org_a}, 'api', 'acme/api'), (502, {org_b}, 'web', 'beta/web')"
        ))
        .await
        .expect("repositories");
    let admin = app.person(org_a, "admin@a.test", Role::Admin).await;
    let (status, created) = app
        .post_as(
            &admin.access,
            "/api/v1/admin/api-keys",
            json!({ "name": "deploy pipeline" }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let key = created["token"].as_str().expect("token").to_owned();
    assert!(key.starts_with("dpk_"));
    let admin_b = app.person(org_b, "admin@b.test", Role::Admin).await;
    let (_, created_b) = app
        .post_as(
            &admin_b.access,
            "/api/v1/admin/api-keys",
            json!({ "name": "b" }),
        )
        .await;
    let key_b = created_b["token"].as_str().expect("token").to_owned();

    // Act: started, then the same report again, then its success.
    let (first, body) = push(
        &app,
        Some(&key),
        report("build-7", "acme/api", "in_progress"),
    )
    .await;
    let (again, body_again) = push(
        &app,
        Some(&key),
        report("build-7", "acme/api", "in_progress"),
    )
    .await;
    let (done, body_done) = push(&app, Some(&key), report("build-7", "ACME/api", "success")).await;

    // Assert
    assert_eq!(first, 201, "{body}");
    assert_eq!(again, 200, "{body_again}");
    assert_eq!(body_again["created"], false);
    assert_eq!(done, 200, "{body_done}");
    let id = body["deployment_id"].as_i64().expect("id");
    assert!(id < 0, "outside GitHub's id space");
    assert_eq!(body_done["deployment_id"], id);
    assert_eq!(
        number(&app, "SELECT count(*) AS n FROM deployments").await,
        1
    );
    assert_eq!(
        number(&app, "SELECT count(*) AS n FROM deployment_statuses").await,
        2
    );
    assert_eq!(
        number(&app, &format!(
            "SELECT count(*) AS n FROM deployments WHERE github_id = {id} AND latest_state = 'success' \
             AND repository_id = 501 AND organization_id = {org_a}"
        ))
        .await,
        1
    );
    assert!(
        number(
            &app,
            &format!("SELECT count(*) AS n FROM analytics_dirty WHERE organization_id = {org_a}")
        )
        .await
            >= 1,
        "the deployment's day is marked for the analytics"
    );

    // Another organization's key cannot reach A's repository; bad input and bad keys are refused.
    let (cross, cross_body) =
        push(&app, Some(&key_b), report("build-8", "acme/api", "success")).await;
    assert_eq!(
        (cross, cross_body["code"].as_str()),
        (422, Some("unknown_repository"))
    );
    let (bad, bad_body) = push(
        &app,
        Some(&key),
        json!({ "id": "x", "repository": "acme/api" }),
    )
    .await;
    assert_eq!(bad, 422, "{bad_body}");
    assert!(bad_body["message"].is_string());
    let (jwt, _) = push(
        &app,
        Some(&admin.access),
        report("build-9", "acme/api", "success"),
    )
    .await;
    assert_eq!(jwt, 403);
    let (none, _) = push(&app, None, report("build-9", "acme/api", "success")).await;
    assert_eq!(none, 401);
    let key_id = created["key"]["id"].as_i64().expect("key id");
    let (revoked, _) = app
        .call(Call {
            method: Method::DELETE,
            path: &format!("/api/v1/admin/api-keys/{key_id}"),
            token: Some(&admin.access),
            body: None,
        })
        .await;
    assert_eq!(revoked, 200);
    let (after, after_body) =
        push(&app, Some(&key), report("build-9", "acme/api", "success")).await;
    assert_eq!(
        (after, after_body["code"].as_str()),
        (401, Some("invalid_token"))
    );
    let (_, keys) = app.get_as(&admin.access, "/api/v1/admin/api-keys").await;
    assert!(keys.to_string().contains("revoked_at"));
    assert!(
        !keys.to_string().contains("hash"),
        "no hash leaves the server"
    );
    app.stop().await;
}

#[tokio::test]
async fn admins_see_their_organizations_sync_jobs_and_progress() {
    let app = spawn_app().await;
    let org_a = app.create_org("Alpha").await;
    let org_b = app.create_org("Beta").await;
    app.db
        .execute_unprepared(&format!(
            "INSERT INTO sync_jobs (kind, installation_id, organization_id, requested_by, progress) VALUES \
             ('syncInstallation', 5, {org_a}, 'webhook', '{{\"pull_requests\": 3}}'), \
             ('syncInstallation', 6, {org_b}, 'webhook', '{{}}')"
        ))
        .await
        .expect("jobs");
    let admin = app.person(org_a, "admin@a.test", Role::Admin).await;

    let (status, jobs) = app.get_as(&admin.access, "/api/v1/admin/sync-jobs").await;
    let (letters, _) = app
        .get_as(
            &admin.access,
            "/api/v1/admin/dead-letters?queue=syncInstallation",
        )
        .await;

    assert_eq!(status, 200, "{jobs}");
    let jobs = jobs.as_array().expect("list");
    assert_eq!(jobs.len(), 1, "only the caller's organization: {jobs:?}");
    assert_eq!(jobs[0]["installation_id"], 5);
    assert_eq!(jobs[0]["progress"]["pull_requests"], 3);
    assert_eq!(letters, 200, "sync queues are dead-letter queues too");
    app.stop().await;
}
