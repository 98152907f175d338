//! The ingest contract: what is stored, what is queued, and what each answer says.

use std::collections::HashSet;

use entities::DeliveryStatus;
use futures::future::join_all;
use jobs::JobKind;

use crate::helpers::{Delivery, expect_json, spawn_app};

#[tokio::test]
async fn a_processed_event_is_stored_then_queued_with_its_id_only() {
    let app = spawn_app().await;
    let body = r#"{"action":"opened","installation":{"id":11},"repository":{"id":22},"number":3}"#;
    let delivery = Delivery::json("pull_request", body);

    let response = app.post(&delivery).await;

    let answer = expect_json(response, 202).await;
    assert_eq!(answer["status"], "queued");
    assert_eq!(answer["code"], "queued");
    assert_eq!(answer["delivery_id"], delivery.id.as_str());
    let row = app.row(&delivery.id).await.expect("stored");
    assert_eq!(row.event, "pull_request");
    assert_eq!(row.action.as_deref(), Some("opened"));
    assert_eq!(row.installation_id, Some(11));
    assert_eq!(row.repository_id, Some(22));
    assert_eq!(row.hook_id, Some(4242));
    assert_eq!(row.status, DeliveryStatus::Queued);
    assert_eq!(
        row.payload,
        serde_json::from_str::<serde_json::Value>(body).expect("json")
    );
    // Beside it, what the worker's parsers will read of it (members outside the tree dropped).
    let projection: serde_json::Value =
        serde_json::from_str(row.projection.as_deref().expect("a projection")).expect("json");
    assert_eq!(
        projection,
        serde_json::json!({"action": "opened", "installation": {"id": 11}, "repository": {"id": 22}, "number": 3})
    );
    assert_eq!(
        row.projection_version,
        Some(jobs::github::projection::version())
    );
    let jobs = app.jobs_in_redis().await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].delivery_id().as_str(), delivery.id);
    assert_eq!(jobs[0].kind(), JobKind::ProcessPullRequest);
    app.stop().await;
}

#[tokio::test]
async fn form_encoded_deliveries_are_verified_over_the_raw_form_and_stored() {
    let app = spawn_app().await;
    let json = r#"{"action":"created","installation":{"id":5},"deployment":{"id":1}}"#;
    let form = format!(
        "payload={}",
        url::form_urlencoded::byte_serialize(json.as_bytes()).collect::<String>()
    );
    let mut delivery = Delivery::json("deployment", form);
    delivery.content_type = "application/x-www-form-urlencoded";

    let response = app.post(&delivery).await;

    assert_eq!(response.status(), 202);
    let row = app.row(&delivery.id).await.expect("stored");
    assert_eq!(
        row.payload,
        serde_json::from_str::<serde_json::Value>(json).expect("json")
    );
    assert_eq!(row.installation_id, Some(5));
    assert_eq!(
        row.projection.as_deref(),
        Some(r#"{"action":"created","installation":{"id":5},"deployment":{"id":1}}"#)
    );
    app.stop().await;
}

#[tokio::test]
async fn fifty_parallel_posts_of_one_delivery_store_one_row_and_push_one_job() {
    let app = spawn_app().await;
    let body = r#"{"action":"synchronize","installation":{"id":1}}"#;

    let responses = join_all((0..50).map(|_| {
        let delivery = Delivery::json("pull_request", body).with_id("same-delivery-id");
        let app = &app;
        async move { app.post(&delivery).await.status().as_u16() }
    }))
    .await;

    assert_eq!(
        responses.iter().filter(|&&s| s == 202).count(),
        1,
        "{responses:?}"
    );
    assert_eq!(
        responses.iter().filter(|&&s| s == 200).count(),
        49,
        "{responses:?}"
    );
    assert_eq!(app.row_count().await, 1);
    assert_eq!(app.jobs_in_redis().await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_duplicate_leaves_the_stored_row_unchanged() {
    let app = spawn_app().await;
    let first = Delivery::json("push", r#"{"ref":"refs/heads/main","n":1}"#).with_id("dup-1");
    assert_eq!(app.post(&first).await.status(), 202);
    let before = app.row("dup-1").await.expect("stored");

    let second = Delivery::json("push", r#"{"ref":"refs/heads/other","n":2}"#).with_id("dup-1");
    let response = app.post(&second).await;

    let answer = expect_json(response, 200).await;
    assert_eq!(answer["status"], "duplicate");
    assert_eq!(app.row("dup-1").await.expect("stored"), before);
    assert_eq!(app.jobs_in_redis().await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn unprocessed_events_are_kept_as_ignored_and_ping_gets_200() {
    let app = spawn_app().await;
    let star = Delivery::json("star", r#"{"action":"created"}"#);
    let response = app.post(&star).await;
    let answer = expect_json(response, 202).await;
    assert_eq!(answer["status"], "ignored");
    assert_eq!(
        app.row(&star.id).await.expect("kept").status,
        DeliveryStatus::Ignored
    );

    let ping = Delivery::json(
        "ping",
        r#"{"zen":"Keep it logically awesome.","hook_id":1}"#,
    );
    let response = app.post(&ping).await;
    let answer = expect_json(response, 200).await;
    assert_eq!(answer["code"], "pong");
    assert!(app.row(&ping.id).await.is_some());

    assert!(app.jobs_in_redis().await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_400_with_a_code_and_store_nothing() {
    let app = spawn_app().await;
    let cases: Vec<(&str, Delivery<'_>, &str)> = vec![
        (
            "not json",
            Delivery::json("push", "{not json"),
            "invalid_json",
        ),
        ("array", Delivery::json("push", "[1,2,3]"), "invalid_json"),
        (
            "bad event",
            Delivery::json("Push Event", "{}"),
            "invalid_header",
        ),
        (
            "bad id",
            Delivery::json("push", "{}").with_id("has spaces"),
            "invalid_header",
        ),
        (
            "text/plain",
            Delivery {
                content_type: "text/plain",
                ..Delivery::json("push", "{}")
            },
            "unsupported_content_type",
        ),
        (
            "form without payload",
            Delivery {
                content_type: "application/x-www-form-urlencoded",
                ..Delivery::json("push", "other=1")
            },
            "missing_form_payload",
        ),
    ];
    for (name, delivery, code) in cases {
        let response = app.post(&delivery).await;
        assert_eq!(response.status(), 400, "{name}");
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["code"], code, "{name}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}"
        );
    }

    for missing in ["x-github-event", "x-github-delivery"] {
        let mut request = app
            .client
            .post(app.url("/webhooks/github"))
            .header("content-type", "application/json")
            .header(
                "x-hub-signature-256",
                api::signature::sign(crate::helpers::SECRET, b"{}"),
            );
        if missing != "x-github-event" {
            request = request.header("x-github-event", "push");
        }
        if missing != "x-github-delivery" {
            request = request.header("x-github-delivery", "abc");
        }
        let response = request.body("{}").send().await.expect("sent");
        assert_eq!(response.status(), 400, "{missing}");
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["code"], "missing_header", "{missing}");
    }
    assert_eq!(app.row_count().await, 0);
    app.stop().await;
}

#[tokio::test]
async fn bodies_up_to_25_mib_are_kept_and_larger_ones_get_413() {
    let app = spawn_app().await;
    let limit = api::webhook::MAX_BODY_BYTES;
    let prefix = r#"{"action":"edited","pad":""#;
    let suffix = r#""}"#;
    let mut body = String::with_capacity(limit);
    body.push_str(prefix);
    body.push_str(&"a".repeat(limit - prefix.len() - suffix.len()));
    body.push_str(suffix);
    assert_eq!(body.len(), limit);

    let at_limit = Delivery::json("pull_request", body.clone());
    assert_eq!(app.post(&at_limit).await.status(), 202);

    body.insert(prefix.len(), 'b');
    let over = Delivery::json("pull_request", body);
    let response = app.post(&over).await;
    let answer = expect_json(response, 413).await;
    assert_eq!(answer["code"], "payload_too_large");

    assert_eq!(app.row_count().await, 1);
    let ids: HashSet<String> = app
        .jobs_in_redis()
        .await
        .iter()
        .map(|j| j.delivery_id().to_string())
        .collect();
    assert_eq!(ids, HashSet::from([at_limit.id.clone()]));
    app.stop().await;
}

#[tokio::test]
async fn a_body_without_content_length_is_cut_off_at_the_limit() {
    let app = spawn_app().await;
    let chunk = bytes::Bytes::from(vec![b' '; 1024 * 1024]);
    let chunks = (0..26).map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
    let response = app
        .client
        .post(app.url("/webhooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", "streamed")
        .header("x-hub-signature-256", "sha256=00")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 413);
    assert_eq!(app.row_count().await, 0);
    app.stop().await;
}
