//! `worker run`: jobs are consumed from Redis, every attempt is counted in PostgreSQL before the
//! handler runs, finished deliveries are left alone, and shutdown returns promptly.

use std::time::Duration;

use jobs::{JobKind, WebhookJob};

use crate::helpers::{Env, eventually, fixture};

fn job(id: &str) -> WebhookJob {
    crate::helpers::job(JobKind::ProcessPush, id)
}

#[tokio::test]
async fn jobs_are_consumed_with_attempts_counted_and_finished_deliveries_left_alone() {
    let env = Env::new().await;
    let push = fixture("lifecycle/11-push_squash.json");
    env.insert("queued-1", "push", &push, "queued").await;
    env.insert("done-1", "push", &push, "processed").await;
    env.queue
        .push(vec![job("queued-1"), job("done-1")])
        .await
        .expect("push");

    let worker = env.start_worker(&[]).await;
    eventually(Duration::from_secs(20), "the job is processed", || async {
        env.status("queued-1").await == "processed"
    })
    .await;
    eventually(Duration::from_secs(10), "the queue drains", || async {
        env.queue.depth().await.expect("depth") == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(env.delivery("queued-1").await.attempts, 1);
    assert_eq!(env.delivery("done-1").await.attempts, 0);

    worker.stop().await;
    env.teardown().await;
}

#[tokio::test]
async fn a_job_that_arrives_before_its_row_is_committed_runs_once_the_row_exists() {
    let env = Env::new().await;
    env.queue.push(vec![job("late-1")]).await.expect("push");
    let worker = env.start_worker(&[]).await;

    // The worker finds no row and lets apalis retry; the row appears a moment later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.insert(
        "late-1",
        "push",
        &fixture("lifecycle/11-push_squash.json"),
        "queued",
    )
    .await;
    eventually(
        Duration::from_secs(20),
        "the late job is processed",
        || async { env.status("late-1").await == "processed" },
    )
    .await;
    worker.stop().await;
    env.teardown().await;
}

/// Rows PostgreSQL's planner believes `table` holds (-1: never analyzed).
async fn planner_rows(env: &Env, table: &str) -> i64 {
    env.number(
        "SELECT reltuples::int8 AS n FROM pg_class WHERE oid = $1::regclass",
        vec![table.into()],
    )
    .await
}

/// The machines this runs on may have autovacuum off (CI's does); the worker's statements are
/// planned from statistics all the same, so a running worker analyzes what grew, and only that.
#[tokio::test]
async fn a_running_worker_analyzes_the_tables_that_grew_past_autovacuums_threshold() {
    use sea_orm::ConnectionTrait;
    // Arrange: 2,000 stored deliveries, never analyzed; the statistics collector told at once.
    let env = Env::new().await;
    env.db
        .execute_unprepared(
            "INSERT INTO webhook_deliveries (delivery_id, event, payload, status) \
             SELECT 'stats-' || g, 'push', '{}'::jsonb, 'processed' FROM generate_series(1, 2000) g; \
             SELECT pg_stat_force_next_flush();",
        )
        .await
        .expect("insert");
    assert!(planner_rows(&env, "webhook_deliveries").await < 0);

    // Act
    let worker = env.start_worker(&[]).await;

    // Assert: analyzed (the planner now knows the rows); an untouched table is left alone.
    eventually(
        Duration::from_secs(30),
        "webhook_deliveries is analyzed",
        || async { planner_rows(&env, "webhook_deliveries").await >= 2_000 },
    )
    .await;
    assert!(
        planner_rows(&env, "teams").await < 0,
        "teams was analyzed without a change"
    );

    worker.stop().await;
    env.teardown().await;
}
