//! Every GitHub example payload of the events DevPulse processes (`tests/fixtures/webhooks`,
//! from `@octokit/webhooks-examples`) is accepted, stored verbatim and queued.

use std::path::Path;

use entities::DeliveryStatus;
use jobs::{EventName, JobKind};

use crate::helpers::{Delivery, spawn_app};

#[tokio::test]
async fn every_example_payload_is_stored_verbatim_and_routed() {
    let app = spawn_app().await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/webhooks");
    let mut seen_events = Vec::new();
    let mut count = 0;
    for event in JobKind::PROCESSED_EVENTS.iter().chain(&["ping"]) {
        let dir = root.join(event);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no fixtures for {event}");
        for file in files {
            let body = std::fs::read(&file).expect("fixture");
            let expected: serde_json::Value = serde_json::from_slice(&body).expect("fixture json");
            let delivery = Delivery::json(event, body);

            let response = app.post(&delivery).await;

            let name = file.display();
            let want = if *event == "ping" { 200 } else { 202 };
            assert_eq!(response.status(), want, "{name}");
            let row = app
                .row(&delivery.id)
                .await
                .unwrap_or_else(|| panic!("{name} not stored"));
            assert_eq!(row.payload, expected, "{name}");
            assert_eq!(row.action.as_deref(), expected["action"].as_str(), "{name}");
            assert_eq!(
                row.installation_id,
                expected["installation"]["id"].as_i64(),
                "{name}"
            );
            assert_eq!(
                row.repository_id,
                expected["repository"]["id"].as_i64(),
                "{name}"
            );
            let routed = JobKind::for_event(&EventName::parse(event).expect("event"));
            let status = if routed.is_some() {
                DeliveryStatus::Queued
            } else {
                DeliveryStatus::Ignored
            };
            assert_eq!(row.status, status, "{name}");
            count += 1;
        }
        seen_events.push(*event);
    }
    assert_eq!(seen_events.len(), JobKind::PROCESSED_EVENTS.len() + 1);
    let jobs = app.jobs_in_redis().await;
    assert_eq!(
        jobs.len(),
        count - 4,
        "one job per processed example (pings are not queued)"
    );
    app.stop().await;
}
