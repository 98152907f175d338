//! `worker run`: jobs are consumed, every attempt is counted in PostgreSQL before the handler
//! runs, finished deliveries are left alone, and shutdown returns promptly.

use std::time::Duration;

use jobs::{
    DeliveryId, JobKind, Queue, WebhookJob,
    runtime::{config::Vars, connect},
    testing::{TestDb, delete_namespace, redis_url},
};
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use tokio_util::sync::CancellationToken;
use worker::config::WorkerConfig;

struct Env {
    db: DatabaseConnection,
    test_db: TestDb,
    config: WorkerConfig,
    queue: Queue,
}

async fn setup() -> Env {
    let test_db = TestDb::create().await;
    let db = Database::connect(test_db.url.as_str())
        .await
        .expect("test db");
    Migrator::up(&db, None).await.expect("migrate");
    let namespace = format!("test-{}", uuid::Uuid::new_v4().simple());
    let config = WorkerConfig::from_vars(&Vars::from_pairs([
        ("DATABASE_URL", test_db.url.clone()),
        ("REDIS_URL", redis_url()),
        ("QUEUE_NAMESPACE", namespace.clone()),
    ]))
    .expect("config");
    let queue = Queue::new(
        connect::redis(&config.common).expect("redis"),
        &namespace,
        config.common.queue_max_backlog,
    );
    // An established Redis: without its epoch mark the relay would (rightly) assume Redis lost
    // its jobs and hand every queued delivery over again.
    queue.claim_epoch("established").await.expect("epoch");
    Env {
        db,
        test_db,
        config,
        queue,
    }
}

impl Env {
    async fn insert(&self, id: &str, status: &str) {
        self.db
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO webhook_deliveries (delivery_id, event, payload, status) \
                 VALUES ($1, 'push', '{}'::jsonb, $2)",
                [id.into(), status.into()],
            ))
            .await
            .expect("insert");
    }

    async fn attempts(&self, id: &str) -> i32 {
        self.db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT attempts FROM webhook_deliveries WHERE delivery_id = $1",
                [id.into()],
            ))
            .await
            .expect("select")
            .expect("row")
            .try_get("", "attempts")
            .expect("attempts")
    }

    async fn teardown(self) {
        self.db.close().await.ok();
        self.test_db.drop_db().await;
        delete_namespace(&self.queue).await;
    }
}

fn job(id: &str) -> WebhookJob {
    WebhookJob::new(JobKind::ProcessPush, DeliveryId::parse(id).expect("id"))
}

#[tokio::test]
async fn jobs_are_consumed_with_attempts_counted_and_finished_deliveries_left_alone() {
    let env = setup().await;
    env.insert("queued-1", "queued").await;
    env.insert("done-1", "processed").await;
    env.queue
        .push(vec![job("queued-1"), job("done-1")])
        .await
        .expect("push");

    let shutdown = CancellationToken::new();
    let running = tokio::spawn(worker::run::run(env.config.clone(), shutdown.clone()));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while env.attempts("queued-1").await < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job was not run"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Give the second job the same chance before checking it was left alone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while env.queue.depth().await.expect("depth") > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the queue did not drain"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(env.attempts("queued-1").await, 1);
    assert_eq!(env.attempts("done-1").await, 0);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .expect("worker stops after shutdown")
        .expect("join")
        .expect("clean exit");
    env.teardown().await;
}

#[tokio::test]
async fn a_job_that_arrives_before_its_row_is_committed_runs_once_the_row_exists() {
    let env = setup().await;
    env.queue.push(vec![job("late-1")]).await.expect("push");
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(worker::run::run(env.config.clone(), shutdown.clone()));

    // The worker finds no row and retries; the row appears a moment later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.insert("late-1", "queued").await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while env.attempts("late-1").await < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job was never run"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), running).await;
    env.teardown().await;
}
