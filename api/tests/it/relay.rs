//! The relay's safety net: a `queued` delivery whose job vanished without Redis losing its data
//! (e.g. a process died between push and commit on a Redis that was then flushed of it) is handed
//! over again once no worker has tried it for long enough; and a draining backlog is topped up
//! in a few large pushes.

use std::time::Duration;

use entities::DeliveryStatus;
use sea_orm::ConnectionTrait;

use crate::helpers::{AppOptions, Delivery, eventually, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_queued_delivery_never_tried_for_ten_minutes_is_handed_over_again() {
    let app = spawn_app().await;
    let delivery = Delivery::json("push", r#"{"ref":"refs/heads/main"}"#);
    assert_eq!(app.post(&delivery).await.status(), 202);
    // Arrange: the job disappears from Redis (Redis itself keeps its data), and the row looks
    // as if it had been queued 20 minutes ago.
    let mut conn = app.queue.connection();
    let _: () = redis::cmd("DEL")
        .arg(format!("{}:data", app.queue.name()))
        .arg(format!("{}:scheduled", app.queue.name()))
        .query_async(&mut conn)
        .await
        .expect("del");
    assert!(app.jobs_in_redis().await.is_empty());
    app.db
        .execute_unprepared(
            "UPDATE webhook_deliveries SET queued_at = now() - interval '20 minutes'",
        )
        .await
        .expect("age the row");

    // Act: a fresh relay (its first tick includes the stale sweep).
    let relay = jobs::relay::Relay::new(
        app.db.clone(),
        app.queue.clone(),
        jobs::relay::RelaySettings::default(),
    );
    eventually(
        Duration::from_secs(10),
        "the relay re-hands the delivery",
        || async {
            let _ = relay.tick().await;
            app.jobs_in_redis()
                .await
                .iter()
                .any(|j| j.delivery_id().as_str() == delivery.id)
        },
    )
    .await;

    // Assert
    let row = app.row(&delivery.id).await.expect("kept");
    assert_eq!(row.status, DeliveryStatus::Queued);
    assert!(row.queued_at.expect("queued_at") > chrono::Utc::now() - chrono::Duration::minutes(1));
    app.stop().await;
}

#[tokio::test]
async fn a_delivery_tried_recently_stays_queued_and_one_untouched_too_long_is_handed_over_again() {
    let app = spawn_app().await;
    let recent = Delivery::json("push", r#"{"ref":"refs/heads/main"}"#);
    let forgotten = Delivery::json("push", r#"{"ref":"refs/heads/main"}"#);
    assert_eq!(app.post(&recent).await.status(), 202);
    assert_eq!(app.post(&forgotten).await.status(), 202);
    // Both were queued 20 minutes ago; a worker tried one a minute ago, the other 15 minutes
    // ago (its job was then lost: apalis gives up on a job after 25 failed runs).
    for (id, tried) in [(&recent.id, "1 minute"), (&forgotten.id, "15 minutes")] {
        app.db
            .execute_unprepared(&format!(
                "UPDATE webhook_deliveries SET queued_at = now() - interval '20 minutes', \
                 attempts = 1, last_attempt_at = now() - interval '{tried}' WHERE delivery_id = '{id}'"
            ))
            .await
            .expect("age the row");
    }
    let jobs_before = app.jobs_in_redis().await.len();

    let relay = jobs::relay::Relay::new(
        app.db.clone(),
        app.queue.clone(),
        jobs::relay::RelaySettings::default(),
    );
    // Only the lock holder sweeps; the app's own relay may hold the lock for a moment.
    eventually(Duration::from_secs(10), "a tick as leader", || async {
        relay.tick().await.expect("tick").leader
    })
    .await;

    let jobs = app.jobs_in_redis().await;
    assert_eq!(jobs.len(), jobs_before + 1);
    let count = |id: &str| {
        jobs.iter()
            .filter(|j| j.delivery_id().as_str() == id)
            .count()
    };
    assert_eq!(count(&forgotten.id), 2, "handed over a second time");
    assert_eq!(count(&recent.id), 1);
    let recent_row = app.row(&recent.id).await.expect("kept");
    assert_eq!(recent_row.status, DeliveryStatus::Queued);
    assert_eq!(recent_row.attempts, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_draining_backlog_is_topped_up_once_a_quarter_of_the_queue_is_free() {
    // Arrange: a queue of 8; 20 deliveries: 8 handed over at once, 12 left pending.
    let app = spawn_app_with(AppOptions {
        max_backlog: 8,
        ..AppOptions::default()
    })
    .await;
    for _ in 0..20 {
        let delivery = Delivery::json("push", r#"{"ref":"refs/heads/main"}"#);
        assert_eq!(app.post(&delivery).await.status(), 202);
    }
    assert_eq!(app.jobs_in_redis().await.len(), 8);
    assert_eq!(app.rows_with_status(DeliveryStatus::Pending).await, 12);
    let relay = jobs::relay::Relay::new(
        app.db.clone(),
        app.queue.clone(),
        jobs::relay::RelaySettings::default(),
    );
    let report = relay.tick().await.expect("tick");
    assert!(report.busy, "a full queue is looked at again soon");
    assert_eq!(report.pushed, 0);

    // Act 1: a worker takes one job; one free slot (under a quarter of 8) is not worth a
    // transaction, for this relay or the app's own.
    take_jobs(&app, 1).await;
    let report = relay.tick().await.expect("tick");
    assert!(report.busy);
    assert_eq!(report.pushed, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.rows_with_status(DeliveryStatus::Pending).await,
        12,
        "nothing handed over for one slot"
    );

    // Act 2: two more taken: three free slots are filled (by whichever relay ticks first).
    take_jobs(&app, 2).await;
    eventually(Duration::from_secs(5), "the queue topped up", || async {
        let _ = relay.tick().await;
        app.rows_with_status(DeliveryStatus::Pending).await == 9
    })
    .await;

    // Assert: the queue is full again.
    assert_eq!(app.queue.depth().await.expect("depth"), 8);
    app.stop().await;
}

/// What a worker's fetch does to the queue's depth: jobs leave the scheduled set.
async fn take_jobs(app: &crate::helpers::TestApp, n: usize) {
    let mut conn = app.queue.connection();
    let _: Vec<String> = redis::cmd("ZPOPMIN")
        .arg(format!("{}:scheduled", app.queue.name()))
        .arg(n)
        .query_async(&mut conn)
        .await
        .expect("zpopmin");
}
