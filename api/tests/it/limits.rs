//! Slow and heavy clients: a body that stalls gets 408; bodies share a memory budget, beyond
//! which requests wait (and are then served) rather than growing the heap.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use crate::helpers::{AppOptions, SECRET, TestApp, expect_json, spawn_app_with};

/// A request whose body sends `first`, then waits for `rest` until the sender fires.
fn stalled_post(
    app: &TestApp,
    id: &str,
    body: Vec<u8>,
    split: usize,
) -> (
    tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
    tokio::sync::oneshot::Sender<()>,
) {
    let signature = api::signature::sign(SECRET, &body);
    let length = body.len();
    let (go, ready) = tokio::sync::oneshot::channel::<()>();
    let first = Bytes::copy_from_slice(&body[..split]);
    let rest = Bytes::copy_from_slice(&body[split..]);
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(
        futures::stream::once(async move {
            let _ = ready.await;
            Ok(rest)
        }),
    );
    let request = app
        .client
        .post(app.url("/webhooks/github"))
        .header("content-type", "application/json")
        .header("content-length", length)
        .header("x-github-event", "push")
        .header("x-github-delivery", id)
        .header("x-hub-signature-256", signature)
        .body(reqwest::Body::wrap_stream(stream))
        .send();
    (tokio::spawn(request), go)
}

fn padded(bytes: usize) -> Vec<u8> {
    let mut body = br#"{"ref":"refs/heads/main","pad":""#.to_vec();
    body.resize(bytes - 2, b'a');
    body.extend_from_slice(br#""}"#);
    body
}

#[tokio::test]
async fn a_body_that_stalls_gets_408_and_is_not_stored() {
    let app = spawn_app_with(AppOptions {
        extra_vars: vec![("WEBHOOK_BODY_TIMEOUT", "1s")],
        ..AppOptions::default()
    })
    .await;
    let (request, go) = stalled_post(&app, "stalled-1", padded(4096), 100);

    let response = tokio::time::timeout(Duration::from_secs(10), request)
        .await
        .expect("answered before the client finished")
        .expect("join")
        .expect("response");

    let body = expect_json(response, 408).await;
    assert_eq!(body["code"], "body_timeout");
    assert!(app.row("stalled-1").await.is_none());
    drop(go);
    app.stop().await;
}

#[tokio::test]
async fn bodies_beyond_the_memory_budget_wait_their_turn() {
    let app = spawn_app_with(AppOptions {
        extra_vars: vec![("WEBHOOK_BODY_BUDGET", "1048576")],
        ..AppOptions::default()
    })
    .await;
    // A holds 800 KB of the 1 MiB budget while its body is stalled.
    let (first, release_first) = stalled_post(&app, "budget-a", padded(800_000), 1000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // B needs 800 KB too: it must wait for A.
    let (second, release_second) = stalled_post(&app, "budget-b", padded(800_000), 1000);
    let _ = release_second.send(());
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!second.is_finished(), "B was served beyond the budget");
    assert!(app.row("budget-b").await.is_none());

    let _ = release_first.send(());

    for (name, request) in [("A", first), ("B", second)] {
        let response = tokio::time::timeout(Duration::from_secs(10), request)
            .await
            .unwrap_or_else(|_| panic!("{name} never answered"))
            .expect("join")
            .expect("response");
        assert_eq!(response.status(), 202, "{name}");
    }
    assert!(app.row("budget-a").await.is_some());
    assert!(app.row("budget-b").await.is_some());
    app.stop().await;
}
