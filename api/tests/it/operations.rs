//! Operations: health, metrics, graceful shutdown, start-up errors, unknown routes.

use std::process::Command;

use crate::helpers::{Delivery, expect_json, spawn_app};

#[tokio::test]
async fn health_and_readiness_report_both_backends() {
    let app = spawn_app().await;
    let (live, _) = app.get_json("/health").await;
    assert_eq!(live, 200);
    let (status, ready) = app.get_json("/health/ready").await;
    assert_eq!(status, 200);
    assert_eq!(ready["checks"]["postgres"], "ok");
    assert_eq!(ready["checks"]["redis"], "ok");
    let github = ready["details"]["github_app"].as_str().unwrap_or_default();
    assert!(github.starts_with("not configured"), "{ready}");
    app.stop().await;

    let key = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../worker/tests/fixtures/github/app-key.pem"
    );
    let app = crate::helpers::spawn_app_with(crate::helpers::AppOptions {
        extra_vars: vec![("GITHUB_APP_ID", "4242"), ("GITHUB_APP_PRIVATE_KEY", key)],
        ..Default::default()
    })
    .await;
    let (_, ready) = app.get_json("/health/ready").await;
    let github = ready["details"]["github_app"].as_str().unwrap_or_default();
    assert!(github.starts_with("configured"), "{ready}");
    app.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_by_event_and_status_and_show_the_backlog() {
    let app = spawn_app().await;
    app.post(&Delivery::json("push", r#"{"ref":"x"}"#)).await;
    let mut unsigned = Delivery::json("push", "{}");
    unsigned.secret = "wrong";
    app.post(&unsigned).await;

    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");

    assert!(
        text.contains(
            r#"devpulse_webhook_requests_total{event="push",status="202",code="queued"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"devpulse_webhook_requests_total{event="unverified",status="401",code="invalid_signature"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("devpulse_webhook_ingest_seconds_count 2"),
        "{text}"
    );
    assert!(
        text.contains("devpulse_webhook_deliveries_pending 0"),
        "{text}"
    );
    assert!(text.contains("devpulse_queue_depth 1"), "{text}");
    app.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/nope")).send().await.expect("sent");
    let body = expect_json(response, 404).await;
    assert_eq!(body["code"], "not_found");
    let response = app
        .client
        .get(app.url("/webhooks/github"))
        .send()
        .await
        .expect("sent");
    let body = expect_json(response, 405).await;
    assert_eq!(body["code"], "method_not_allowed");
    app.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_then_stops_serving() {
    let mut app = spawn_app().await;
    // A request whose body is half sent when the shutdown starts: it is in flight for sure.
    let body = br#"{"action":"opened","installation":{"id":1}}"#.to_vec();
    let (first, rest) = body.split_at(10);
    let (first, rest) = (
        bytes::Bytes::copy_from_slice(first),
        bytes::Bytes::copy_from_slice(rest),
    );
    let (send_rest, rest_ready) = tokio::sync::oneshot::channel::<()>();
    let chunks = futures::stream::unfold(
        (Some(first), Some((rest, rest_ready))),
        |(first, rest)| async move {
            if let Some(first) = first {
                return Some((Ok::<_, std::io::Error>(first), (None, rest)));
            }
            let (rest, ready) = rest?;
            let _ = ready.await;
            Some((Ok(rest), (None, None)))
        },
    );
    let request = app
        .client
        .post(app.url("/webhooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", "pull_request")
        .header("x-github-delivery", "in-flight-1")
        .header(
            "x-hub-signature-256",
            api::signature::sign(crate::helpers::SECRET, &body),
        )
        .body(reqwest::Body::wrap_stream(chunks))
        .send();
    let in_flight = tokio::spawn(request);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let shutting_down = tokio::spawn(async move {
        let result = app.shutdown().await;
        (app, result)
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !shutting_down.is_finished(),
        "shutdown did not wait for the request in flight"
    );
    let _ = send_rest.send(());

    let response = in_flight.await.expect("join").expect("answered");
    assert_eq!(response.status(), 202);
    let (app, result) = shutting_down.await.expect("join");
    result.expect("clean exit");
    assert!(
        app.row("in-flight-1").await.is_some(),
        "answered 202 but not stored"
    );
    assert!(
        app.client.get(app.url("/health")).send().await.is_err(),
        "still serving after shutdown"
    );
    app.stop().await;
}

#[test]
fn a_missing_or_malformed_variable_stops_start_up_with_one_line() {
    let cases = [
        (vec![], "DATABASE_URL"),
        (
            vec![
                ("DATABASE_URL", "postgres://127.0.0.1/x"),
                ("REDIS_URL", "http://x"),
            ],
            "REDIS_URL",
        ),
        (
            vec![
                ("DATABASE_URL", "postgres://127.0.0.1/x"),
                ("REDIS_URL", "redis://x"),
            ],
            "GITHUB_WEBHOOK_SECRET",
        ),
        (
            vec![
                ("DATABASE_URL", "postgres://127.0.0.1/x"),
                ("REDIS_URL", "redis://x"),
                ("GITHUB_WEBHOOK_SECRET", "s"),
            ],
            "JWT_SECRET",
        ),
        (
            vec![
                ("DATABASE_URL", "postgres://127.0.0.1/x"),
                ("REDIS_URL", "redis://x"),
                ("GITHUB_WEBHOOK_SECRET", "s"),
                ("JWT_SECRET", "too-short"),
            ],
            "JWT_SECRET",
        ),
        (
            vec![
                ("DATABASE_URL", "postgres://127.0.0.1/x"),
                ("REDIS_URL", "redis://x"),
                ("GITHUB_WEBHOOK_SECRET", "s"),
                ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
                ("API_ADDR", "everywhere"),
            ],
            "API_ADDR",
        ),
    ];
    let scratch = std::env::temp_dir().join(format!("devpulse-env-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    for (vars, named) in cases {
        let output = Command::new(env!("CARGO_BIN_EXE_api"))
            .env_clear()
            .envs(vars)
            .current_dir(&scratch) // no .env here
            .output()
            .expect("api runs");
        assert_eq!(output.status.code(), Some(2), "{named}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(named), "{named}: {stderr}");
    }
}

#[tokio::test]
async fn a_delivery_postgres_cannot_take_gets_503_and_no_internal_detail() {
    let app = spawn_app().await;
    // The database disappears under the running API.
    app.drop_database().await;

    let response = app.post(&Delivery::json("push", r#"{"ref":"x"}"#)).await;

    let body = expect_json(response, 503).await;
    assert_eq!(body["code"], "storage_unavailable");
    let message = body["message"].as_str().expect("message");
    assert!(
        !message.contains("devpulse_test"),
        "leaks internals: {message}"
    );
    app.stop().await;
}

#[tokio::test]
async fn sigterm_stops_the_api_binary_with_exit_code_0() {
    let db = crate::helpers::TestDb::create().await;
    let port = crate::helpers::free_port();
    let redis_url = jobs::testing::redis_url();
    let namespace = format!("test-sigterm-{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_api"))
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .env("REDIS_URL", &redis_url)
        .env("GITHUB_WEBHOOK_SECRET", "s")
        .env("JWT_SECRET", "0123456789abcdef0123456789abcdef")
        .env("QUEUE_NAMESPACE", &namespace)
        .env("API_ADDR", format!("127.0.0.1:{port}"))
        .current_dir(std::env::temp_dir())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("api starts");
    let health = format!("http://127.0.0.1:{port}/health");
    crate::helpers::eventually(
        std::time::Duration::from_secs(30),
        "api answers",
        || async { reqwest::get(&health).await.is_ok_and(|r| r.status() == 200) },
    )
    .await;

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");

    assert_eq!(status.code(), Some(0));
    db.drop_db().await;
    jobs::testing::delete_namespace_at(&redis_url, &namespace).await;
}

#[tokio::test]
async fn sslmode_require_encrypts_every_connection_to_postgres() {
    let probe = sea_orm::Database::connect("postgres://postgres@127.0.0.1:5432/postgres")
        .await
        .expect("connect");
    let ssl: String = sea_orm::ConnectionTrait::query_one_raw(
        &probe,
        sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, "SHOW ssl"),
    )
    .await
    .expect("show ssl")
    .expect("a row")
    .try_get_by_index(0)
    .expect("text");
    if ssl != "on" {
        eprintln!("skipped: this PostgreSQL server has ssl = {ssl}");
        return;
    }
    let app = crate::helpers::spawn_app_with(crate::helpers::AppOptions {
        database_url_query: Some("sslmode=require"),
        ..crate::helpers::AppOptions::default()
    })
    .await;

    assert_eq!(
        app.post(&Delivery::json("push", r#"{"ref":"x"}"#))
            .await
            .status(),
        202
    );

    let plain: i64 = sea_orm::ConnectionTrait::query_one_raw(
        &probe,
        sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!(
                "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
                 WHERE a.datname = '{}' AND NOT s.ssl",
                app.database_name()
            ),
        ),
    )
    .await
    .expect("pg_stat_ssl")
    .expect("a row")
    .try_get_by_index(0)
    .expect("count");
    assert_eq!(plain, 0, "unencrypted connections to the app's database");
    app.stop().await;
}
