//! End to end: signed deliveries posted to `POST /webhooks/github` become domain rows once a
//! worker shares the database and the queue.

use std::time::Duration;

use entities::pull_request;
use jobs::runtime::config::Vars;
use sea_orm::EntityTrait;
use tokio_util::sync::CancellationToken;

use crate::helpers::{Delivery, eventually, spawn_app};

fn lifecycle(file: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../worker/tests/fixtures/lifecycle")
        .join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn a_pull_request_life_cycle_posted_to_the_api_ends_as_one_merged_pull_request() {
    let app = spawn_app().await;
    let config = worker::config::WorkerConfig::from_vars(&Vars::from_pairs(app.worker_vars()))
        .expect("worker config");
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(worker::run::run(config, shutdown.clone()));

    // Newest first: arrival order must not matter.
    let deliveries = [
        ("pull_request", "05-closed_merged.json"),
        ("pull_request", "04-synchronize.json"),
        ("pull_request_review", "03-review_submitted.json"),
        ("pull_request", "02-review_requested.json"),
        ("pull_request", "01-opened.json"),
    ];
    let mut ids = Vec::new();
    for (event, file) in deliveries {
        let delivery = Delivery::json(event, lifecycle(file));
        assert_eq!(app.post(&delivery).await.status(), 202);
        // GitHub redelivers now and then: the same delivery id again is a duplicate.
        assert_eq!(app.post(&delivery).await.status(), 200);
        ids.push(delivery.id);
    }

    eventually(
        Duration::from_secs(30),
        "every delivery processed",
        || async {
            let mut all = true;
            for id in &ids {
                all &=
                    app.row(id).await.expect("row").status == entities::DeliveryStatus::Processed;
            }
            all
        },
    )
    .await;
    let pr = pull_request::Entity::find_by_id(279147437)
        .one(&app.db)
        .await
        .expect("query")
        .expect("the pull request");
    assert_eq!(pr.state, "merged");
    assert_eq!(pr.commits_count, Some(2));
    assert!(pr.first_review_at.is_some() && pr.first_approved_at.is_some());
    for id in &ids {
        assert_eq!(app.row(id).await.expect("row").attempts, 1, "{id}");
    }

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), worker)
        .await
        .expect("worker stops")
        .expect("join")
        .expect("clean exit");
    app.stop().await;
}
