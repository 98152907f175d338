//! Signature checks over HTTP: good, bad, missing and rotated secrets; nothing unsigned is stored.

use api::signature::sign;

use crate::helpers::{AppOptions, Delivery, expect_json, spawn_app, spawn_app_with};

#[tokio::test]
async fn githubs_documented_vector_is_accepted_over_http() {
    let app = spawn_app_with(AppOptions {
        secrets: "It's a Secret to Everybody".to_owned(),
        ..AppOptions::default()
    })
    .await;
    assert_eq!(
        sign("It's a Secret to Everybody", b"Hello, World!"),
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );

    // "Hello, World!" is not JSON: the signature passes, then the body is refused as such.
    let mut delivery = Delivery::json("push", "Hello, World!");
    delivery.secret = "It's a Secret to Everybody";
    let response = app.post(&delivery).await;
    let body = expect_json(response, 400).await;
    assert_eq!(body["code"], "invalid_json");

    let mut delivery = Delivery::json("push", r#"{"ref":"refs/heads/main"}"#);
    delivery.secret = "It's a Secret to Everybody";
    assert_eq!(app.post(&delivery).await.status(), 202);
    app.stop().await;
}

#[tokio::test]
async fn wrong_or_missing_signatures_get_401_and_store_nothing() {
    let app = spawn_app().await;

    let mut wrong = Delivery::json("push", r#"{"ref":"x"}"#);
    wrong.secret = "not-the-secret";
    let response = app.post(&wrong).await;
    let body = expect_json(response, 401).await;
    assert_eq!(body["code"], "invalid_signature");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));

    let response = app
        .client
        .post(app.url("/webhooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", "no-signature")
        .body(r#"{"ref":"x"}"#)
        .send()
        .await
        .expect("sent");
    let body = expect_json(response, 401).await;
    assert_eq!(body["code"], "missing_signature");

    // A signature over other bytes (the body re-serialized) does not verify.
    let response = app
        .client
        .post(app.url("/webhooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", "tampered")
        .header(
            "x-hub-signature-256",
            sign(crate::helpers::SECRET, br#"{"ref": "x"}"#),
        )
        .body(r#"{"ref":"x"}"#)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 401);

    assert_eq!(app.row_count().await, 0);
    app.stop().await;
}

#[tokio::test]
async fn every_configured_secret_is_accepted_during_rotation() {
    let app = spawn_app_with(AppOptions {
        secrets: "old-secret,new-secret".to_owned(),
        ..AppOptions::default()
    })
    .await;
    for secret in ["old-secret", "new-secret"] {
        let mut delivery = Delivery::json("push", r#"{"ref":"refs/heads/main"}"#);
        delivery.secret = secret;
        assert_eq!(app.post(&delivery).await.status(), 202, "{secret}");
    }
    let mut retired = Delivery::json("push", r#"{"ref":"refs/heads/main"}"#);
    retired.secret = "retired-secret";
    assert_eq!(app.post(&retired).await.status(), 401);
    assert_eq!(app.row_count().await, 2);
    app.stop().await;
}
