//! A burst far larger than apalis-redis can hold (100,000 deliveries by default) is accepted,
//! kept in PostgreSQL, and handed to Redis only as fast as a worker drains it: the Redis backlog
//! never passes its bound and the consumer never dies.

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::StreamExt;
use jobs::{WebhookJob, consumer};
use tokio_util::sync::CancellationToken;

use crate::helpers::{AppOptions, Delivery, RedisServer, eventually, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_kept_and_handed_over_within_the_backlog_bound() {
    let total: usize = std::env::var("BURST_DELIVERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let max_backlog = 500;
    let redis = RedisServer::start().await;
    let app = spawn_app_with(AppOptions {
        redis_url: redis.url(),
        max_backlog,
        ..AppOptions::default()
    })
    .await;

    // A real apalis worker drains the queue, recording each delivery id it sees.
    let seen = Arc::new(Mutex::new(HashSet::<String>::new()));
    let stop = CancellationToken::new();
    let worker = tokio::spawn(consumer::run(
        app.queue.clone(),
        "burst-test",
        16,
        {
            let seen = seen.clone();
            move |job: WebhookJob| {
                let seen = seen.clone();
                async move {
                    seen.lock()
                        .expect("lock")
                        .insert(job.delivery_id().to_string());
                    Ok::<(), consumer::JobFailure>(())
                }
            }
        },
        stop.clone(),
    ));
    // Watch the Redis backlog throughout.
    let max_depth = Arc::new(AtomicU64::new(0));
    let sampler = tokio::spawn({
        let queue = app.queue.clone();
        let max_depth = max_depth.clone();
        let stop = stop.clone();
        async move {
            while !stop.is_cancelled() {
                if let Ok(depth) = queue.depth().await {
                    max_depth.fetch_max(depth, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });

    let body = r#"{"action":"synchronize","installation":{"id":1},"repository":{"id":2}}"#;
    let statuses: Vec<u16> = futures::stream::iter(0..total)
        .map(|i| {
            let app = &app;
            async move {
                let d = Delivery::json("pull_request", body).with_id(&format!("burst-{i}"));
                app.post(&d).await.status().as_u16()
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;

    assert!(
        statuses.iter().all(|&s| s == 202),
        "every delivery accepted"
    );
    assert_eq!(app.row_count().await, total as u64);
    eventually(
        Duration::from_secs(300),
        "every delivery reaches the worker",
        || async { seen.lock().expect("lock").len() == total },
    )
    .await;
    let pending = jobs::deliveries::count_pending(&app.db)
        .await
        .expect("count");
    assert_eq!(pending, 0);
    let observed = max_depth.load(Ordering::Relaxed);
    // The relay fills to the bound; concurrent request batches may each add one batch on top.
    let slack = (api::ingest::MAX_IN_FLIGHT * api::ingest::MAX_BATCH) as u64;
    assert!(
        observed <= max_backlog + slack,
        "redis backlog reached {observed}"
    );
    assert!(observed > 0, "the sampler saw the queue");
    assert!(!worker.is_finished(), "the consumer is still running");

    stop.cancel();
    let _ = tokio::join!(worker, sampler);
    app.stop().await;
    drop(redis);
}
