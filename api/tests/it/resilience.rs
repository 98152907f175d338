//! Redis going away: deliveries are still accepted (202 `pending`), and every one of them —
//! including jobs Redis lost when it restarted empty — is handed over again once it is back.

use std::{collections::HashSet, time::Duration};

use entities::DeliveryStatus;

use crate::helpers::{AppOptions, Delivery, RedisServer, eventually, expect_json, spawn_app_with};

#[tokio::test]
async fn redis_stopped_then_restarted_loses_nothing() {
    let mut redis = RedisServer::start().await;
    let app = spawn_app_with(AppOptions {
        redis_url: redis.url(),
        ..AppOptions::default()
    })
    .await;
    let body = r#"{"action":"opened","installation":{"id":1}}"#;
    let mut ids = Vec::new();

    // Arrange: five deliveries queued while Redis is up.
    for _ in 0..5 {
        let d = Delivery::json("pull_request", body);
        let response = app.post(&d).await;
        let answer = expect_json(response, 202).await;
        assert_eq!(answer["status"], "queued");
        ids.push(d.id);
    }

    // Act: Redis dies (and with it those five jobs); five more arrive meanwhile.
    redis.stop();
    for _ in 0..5 {
        let d = Delivery::json("push", r#"{"ref":"refs/heads/main"}"#);
        let response = app.post(&d).await;
        assert_eq!(response.status(), 202, "accepted while redis is down");
        let answer: serde_json::Value = response.json().await.expect("json");
        assert_eq!(answer["status"], "pending");
        assert_eq!(
            app.row(&d.id).await.expect("stored").status,
            DeliveryStatus::Pending
        );
        ids.push(d.id);
    }
    let (status, ready) = app.get_json("/health/ready").await;
    assert_eq!(status, 503);
    assert_eq!(ready["checks"]["redis"], "unreachable");
    assert!(
        ready["message"]
            .as_str()
            .expect("message")
            .contains("redis")
    );

    redis.restart().await;

    // Assert: all ten are in the new Redis within seconds, none pending.
    let expected: HashSet<String> = ids.iter().cloned().collect();
    eventually(
        Duration::from_secs(20),
        "every delivery handed to the restarted redis",
        || async {
            let in_redis: HashSet<String> = app
                .jobs_in_redis()
                .await
                .iter()
                .map(|j| j.delivery_id().to_string())
                .collect();
            in_redis == expected
        },
    )
    .await;
    for id in &ids {
        assert_eq!(
            app.row(id).await.expect("kept").status,
            DeliveryStatus::Queued,
            "{id}"
        );
    }
    assert_eq!(app.get_json("/health/ready").await.0, 200);
    app.stop().await;
}

#[tokio::test]
async fn the_api_starts_and_accepts_deliveries_without_redis() {
    let mut redis = RedisServer::start().await;
    redis.stop();
    let app = spawn_app_with(AppOptions {
        redis_url: redis.url(),
        ..AppOptions::default()
    })
    .await;

    let d = Delivery::json("push", r#"{"ref":"refs/heads/main"}"#);
    let response = app.post(&d).await;

    assert_eq!(response.status(), 202);
    assert_eq!(
        app.row(&d.id).await.expect("stored").status,
        DeliveryStatus::Pending
    );
    redis.restart().await;
    eventually(
        Duration::from_secs(20),
        "the delivery reaches redis",
        || async { app.jobs_in_redis().await.len() == 1 },
    )
    .await;
    app.stop().await;
}
