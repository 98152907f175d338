//! Test harness for the worker: a fresh database and queue namespace per test, deliveries
//! stored as the API stores them, the worker in-process or as a real process, fixtures.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use entities::DeliveryStatus;
use jobs::{
    DeliveryId, JobKind, Queue, WebhookJob,
    deliveries::{self, NewDelivery},
    runner::{Outcome, RetryPolicy, Runner},
    runtime::{config::Vars, connect},
    testing::{TestDb, delete_namespace, redis_url},
};
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DbBackend, Iterable, Statement, Value,
};
use tokio_util::sync::CancellationToken;
use worker::{config::WorkerConfig, run::Worker};

pub use jobs::testing::eventually;

/// A fixture's text: `webhooks/<event>/<file>` (GitHub's examples, kept by the api crate) or
/// `lifecycle/<file>` (edited copies, this crate).
pub fn fixture(path: &str) -> String {
    let file = fixture_path(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("fixture {}: {e}", file.display()))
}

/// The JSON fixtures in a folder named like [`fixture`]'s paths (`webhooks/<event>`,
/// `lifecycle`), sorted, as paths for [`fixture`].
pub fn fixture_files(dir: &str) -> Vec<String> {
    let folder = fixture_path(dir);
    let mut files: Vec<String> = std::fs::read_dir(&folder)
        .unwrap_or_else(|e| panic!("fixture folder {}: {e}", folder.display()))
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .filter(|name| name.ends_with(".json"))
        .map(|name| format!("{dir}/{name}"))
        .collect();
    files.sort();
    files
}

fn fixture_path(path: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    match path.strip_prefix("webhooks/") {
        Some(rest) => root.join("../api/tests/fixtures/webhooks").join(rest),
        None => root.join("tests/fixtures").join(path),
    }
}

pub fn fixture_json(path: &str) -> serde_json::Value {
    serde_json::from_str(&fixture(path)).expect("fixture is JSON")
}

pub struct Env {
    pub db: DatabaseConnection,
    ingest: deadpool_postgres::Pool,
    pub test_db: TestDb,
    pub namespace: String,
    pub redis_url: String,
    pub queue: Queue,
}

impl Env {
    pub async fn new() -> Self {
        Self::with_redis(redis_url()).await
    }

    pub async fn with_redis(redis_url: String) -> Self {
        let test_db = TestDb::create().await;
        let db = Database::connect(test_db.url.as_str())
            .await
            .expect("test db");
        Migrator::up(&db, None).await.expect("migrate");
        let namespace = format!("test-{}", uuid::Uuid::new_v4().simple());
        let common = jobs::runtime::config::CommonConfig::from_vars(&Vars::from_pairs([
            ("DATABASE_URL", test_db.url.as_str()),
            ("REDIS_URL", redis_url.as_str()),
        ]))
        .expect("config");
        let env = Self {
            db,
            ingest: connect::tokio_pool(&common, 4).await.expect("ingest pool"),
            test_db,
            queue: Queue::new(
                connect::redis_at(&redis_url).expect("redis url"),
                &namespace,
                2_000,
            ),
            namespace,
            redis_url,
        };
        // An established Redis: without its epoch mark the relay would (rightly) assume Redis
        // lost its jobs and hand every queued delivery over again.
        env.queue.claim_epoch("established").await.expect("epoch");
        env
    }

    /// The worker's environment for this test, fast retries, metrics on a free port.
    pub fn vars(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut vars: Vec<(String, String)> = [
            ("DATABASE_URL", self.test_db.url.as_str()),
            ("REDIS_URL", self.redis_url.as_str()),
            ("QUEUE_NAMESPACE", self.namespace.as_str()),
            ("WORKER_METRICS_ADDR", "127.0.0.1:0"),
            ("WORKER_RETRY_BASE", "200ms"),
            ("WORKER_RETRY_CAP", "1s"),
            ("SHUTDOWN_GRACE", "5s"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        for (k, v) in extra {
            vars.retain(|(key, _)| key != k);
            vars.push(((*k).to_owned(), (*v).to_owned()));
        }
        vars
    }

    pub fn config(&self, extra: &[(&str, &str)]) -> WorkerConfig {
        WorkerConfig::from_vars(&Vars::from_pairs(self.vars(extra))).expect("worker config")
    }

    /// Starts a worker in this process; stop it with [`RunningWorker::stop`].
    pub async fn start_worker(&self, extra: &[(&str, &str)]) -> RunningWorker {
        let worker = Worker::build(self.config(extra))
            .await
            .expect("worker builds");
        let metrics_addr = worker.metrics_addr();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(worker.run(shutdown.clone()));
        RunningWorker {
            task,
            shutdown,
            metrics_addr,
        }
    }

    /// Starts the real `worker` binary with this test's environment.
    pub fn worker_process(&self, extra: &[(&str, &str)]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_worker"))
            .arg("run")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.vars(extra))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("worker binary starts")
    }

    /// Runs `worker <args>` to completion: (exit code, stdout, stderr).
    pub fn worker_command(&self, args: &[&str]) -> (i32, String, String) {
        self.worker_command_with_input(args, "")
    }

    /// Runs `worker <args>` with `input` on its standard input.
    pub fn worker_command_with_input(&self, args: &[&str], input: &str) -> (i32, String, String) {
        self.worker_command_with(args, input, &[])
    }

    /// Runs `worker <args>` with `input` on its standard input and `env` set as well.
    pub fn worker_command_with(
        &self,
        args: &[&str],
        input: &str,
        env: &[(&str, &str)],
    ) -> (i32, String, String) {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_worker"))
            .args(args)
            .env_clear()
            .env("DATABASE_URL", &self.test_db.url)
            .env("PUBLIC_URL", "https://devpulse.example.com")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("worker binary runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
        let output = child.wait_with_output().expect("worker binary ends");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Stores a delivery as the API does (same statement, same driver: sqlx would stall ~40 ms
    /// on every large payload, see ARCHITECTURE.md).
    pub async fn insert(&self, id: &str, event: &str, payload: &str, status: &str) {
        let status = DeliveryStatus::iter()
            .find(|s| s.as_str() == status)
            .unwrap_or_else(|| panic!("no delivery status {status}"));
        let delivery = NewDelivery {
            delivery_id: DeliveryId::parse(id).expect("delivery id"),
            event: jobs::EventName::parse(event).expect("event"),
            action: None,
            installation_id: None,
            repository_id: None,
            hook_id: None,
            payload_json: payload.to_owned(),
            projection: jobs::github::projection::project(event, payload),
        };
        let client = self.ingest.get().await.expect("ingest connection");
        let stored = deliveries::insert_many(&client, &[delivery], &[status])
            .await
            .expect("insert delivery");
        assert_eq!(stored, vec![true], "{id} stored");
    }

    /// Runs the job of a stored delivery once, in this process, as a worker would.
    pub async fn run_job(&self, id: &str, event: &str) -> Outcome {
        let mut outcomes = self.run_batch(&[(id, event)]).await;
        outcomes.pop().expect("one outcome")
    }

    /// Runs the jobs of stored deliveries together, as one batch.
    pub async fn run_batch(&self, deliveries: &[(&str, &str)]) -> Vec<Outcome> {
        let jobs: Vec<WebhookJob> = deliveries
            .iter()
            .map(|(id, event)| {
                let kind = JobKind::for_event(&jobs::EventName::parse(event).expect("event"))
                    .expect("a processed event");
                job(kind, id)
            })
            .collect();
        Runner::new(self.db.clone(), RetryPolicy::default())
            .run_batch(&jobs)
            .await
            .into_iter()
            .map(|o| o.expect("runner records the outcome"))
            .collect()
    }

    /// Stores and processes a delivery, expecting it to be applied.
    pub async fn apply(&self, id: &str, event: &str, payload: &str) {
        self.insert(id, event, payload, "queued").await;
        let outcome = self.run_job(id, event).await;
        if !matches!(outcome, Outcome::Processed { .. }) {
            let error = self.delivery(id).await.last_error;
            panic!("{id} ({event}): {outcome:?}: {error:?}");
        }
    }

    /// [`Env::apply`] of a fixture file as it is.
    pub async fn apply_fixture(&self, id: &str, event: &str, name: &str) {
        self.apply(id, event, &fixture(name)).await;
    }

    pub async fn delivery(&self, id: &str) -> entities::webhook_delivery::Model {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        entities::webhook_delivery::Entity::find()
            .filter(entities::webhook_delivery::Column::DeliveryId.eq(id))
            .one(&self.db)
            .await
            .expect("query")
            .unwrap_or_else(|| panic!("no delivery {id}"))
    }

    pub async fn status(&self, id: &str) -> String {
        self.delivery(id).await.status.as_str().to_owned()
    }

    /// One number from a query such as `SELECT count(*) AS n …`.
    pub async fn number(&self, sql: &str, values: Vec<Value>) -> i64 {
        self.db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                values,
            ))
            .await
            .expect("query")
            .expect("a row")
            .try_get("", "n")
            .expect("column n")
    }

    pub async fn count_status(&self, status: &str) -> i64 {
        self.number(
            "SELECT count(*) AS n FROM webhook_deliveries WHERE status = $1",
            vec![status.into()],
        )
        .await
    }

    pub async fn teardown(self) {
        self.db.close().await.ok();
        self.test_db.drop_db().await;
        delete_namespace(&self.queue).await;
    }
}

/// The job of delivery `id`.
pub fn job(kind: JobKind, id: &str) -> WebhookJob {
    WebhookJob::new(kind, DeliveryId::parse(id).expect("delivery id"))
}

/// A worker running inside the test process.
pub struct RunningWorker {
    pub task: tokio::task::JoinHandle<Result<(), worker::run::RunError>>,
    pub shutdown: CancellationToken,
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl RunningWorker {
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("worker stops after shutdown")
            .expect("join")
            .expect("clean exit");
    }
}

/// Sends SIGTERM to a child process.
pub fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}
