//! Test harness: a fresh database and Redis namespace per test, the API on port 0, typed
//! request helpers, and private `redis-server`s for fault tests.

use std::{net::SocketAddr, time::Duration};

use api::{config::ApiConfig, signature::sign, startup};
use entities::{DeliveryStatus, webhook_delivery};
use jobs::{Queue, WebhookJob, runtime::config::Vars};
use sea_orm::{
    ColumnTrait, ConnectionTrait, Database, DatabaseConnection, EntityTrait, QueryFilter,
};
use tokio::sync::oneshot;

pub const SECRET: &str = "test-webhook-secret";
pub const JWT_SECRET: &str = "test-jwt-secret-test-jwt-secret-0123";

pub use jobs::testing::TestDb;
pub use jobs::testing::{RedisServer, eventually, free_port};
use jobs::testing::{delete_namespace, redis_url as shared_redis_url};

/// How to configure a spawned app.
pub struct AppOptions {
    /// Appended to the test database's URL, e.g. `sslmode=require`.
    pub database_url_query: Option<&'static str>,
    pub secrets: String,
    pub redis_url: String,
    pub max_backlog: u64,
    /// More variables, e.g. `("WEBHOOK_BODY_TIMEOUT", "1s")`.
    pub extra_vars: Vec<(&'static str, &'static str)>,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            database_url_query: None,
            secrets: SECRET.to_owned(),
            redis_url: shared_redis_url(),
            max_backlog: 2_000,
            extra_vars: Vec::new(),
        }
    }
}

/// A running API with its own database and queue namespace.
pub struct TestApp {
    pub addr: SocketAddr,
    /// The Redis this app's queue lives in.
    pub redis_url: String,
    pub client: reqwest::Client,
    pub db: DatabaseConnection,
    pub queue: Queue,
    test_db: TestDb,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

pub async fn spawn_app_with(options: AppOptions) -> TestApp {
    let test_db = TestDb::create().await;
    let namespace = format!("test-{}", uuid::Uuid::new_v4().simple());
    let database_url = match options.database_url_query {
        Some(query) => format!("{}?{query}", test_db.url),
        None => test_db.url.clone(),
    };
    let mut vars = Vars::from_pairs([
        ("DATABASE_URL", database_url),
        ("REDIS_URL", options.redis_url.clone()),
        ("GITHUB_WEBHOOK_SECRET", options.secrets),
        ("JWT_SECRET", JWT_SECRET.to_owned()),
        ("QUEUE_NAMESPACE", namespace.clone()),
        ("QUEUE_MAX_BACKLOG", options.max_backlog.to_string()),
        ("SHUTDOWN_GRACE", "5s".to_owned()),
    ]);
    for (key, value) in options.extra_vars {
        vars.set(key, value);
    }
    let config = ApiConfig::from_vars(&vars).expect("test config");
    let common = config.common.clone();
    let app = startup::build(config).await.expect("build app");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(app.run(listener, async move {
        let _ = rx.await;
    }));
    let db = Database::connect(test_db.url.clone())
        .await
        .expect("test db");
    let queue = Queue::new(
        jobs::runtime::connect::redis(&common).expect("redis url"),
        &namespace,
        options.max_backlog,
    );
    TestApp {
        addr,
        redis_url: options.redis_url.clone(),
        client: reqwest::Client::new(),
        db,
        queue,
        test_db,
        shutdown: Some(tx),
        task: Some(task),
    }
}

/// A signed request as GitHub sends it.
pub struct Delivery<'a> {
    pub event: &'a str,
    pub id: String,
    pub body: Vec<u8>,
    pub content_type: &'a str,
    pub secret: &'a str,
}

impl<'a> Delivery<'a> {
    pub fn json(event: &'a str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            event,
            id: uuid::Uuid::new_v4().to_string(),
            body: body.into(),
            content_type: "application/json",
            secret: SECRET,
        }
    }

    pub fn with_id(mut self, id: &str) -> Self {
        self.id = id.to_owned();
        self
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `GET path`: the status and the JSON body (`Null` when the body is not JSON).
    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self.client.get(self.url(path)).send().await.expect("sent");
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// Posts a delivery with every header GitHub sets, signed over the exact body.
    pub async fn post(&self, delivery: &Delivery<'_>) -> reqwest::Response {
        self.client
            .post(self.url("/webhooks/github"))
            .header("content-type", delivery.content_type)
            .header("x-github-event", delivery.event)
            .header("x-github-delivery", &delivery.id)
            .header("x-github-hook-id", "4242")
            .header("x-hub-signature-256", sign(delivery.secret, &delivery.body))
            .body(delivery.body.clone())
            .send()
            .await
            .expect("request sent")
    }

    pub async fn row(&self, delivery_id: &str) -> Option<webhook_delivery::Model> {
        webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::DeliveryId.eq(delivery_id))
            .one(&self.db)
            .await
            .expect("query")
    }

    pub async fn row_count(&self) -> u64 {
        self.count("SELECT count(*) AS n FROM webhook_deliveries")
            .await
    }

    /// Deliveries stored with `status`.
    pub async fn rows_with_status(&self, status: DeliveryStatus) -> u64 {
        self.count(&format!(
            "SELECT count(*) AS n FROM webhook_deliveries WHERE status = '{}'",
            status.as_str()
        ))
        .await
    }

    async fn count(&self, sql: &str) -> u64 {
        let row = self
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                sql,
            ))
            .await
            .expect("count")
            .expect("one row");
        row.try_get::<i64>("", "n").expect("n") as u64
    }

    /// Every job in this test's Redis queue (finished or not), as pushed.
    pub async fn jobs_in_redis(&self) -> Vec<WebhookJob> {
        let mut conn = self.queue.connection();
        let values: Vec<Vec<u8>> = redis::cmd("HVALS")
            .arg(format!("{}:data", self.queue.name()))
            .query_async(&mut conn)
            .await
            .expect("hvals");
        values
            .iter()
            .map(|v| serde_json::from_slice(v).expect("a WebhookJob"))
            .collect()
    }

    /// The name of the app's database.
    /// The environment of a worker sharing this app's database and queue.
    pub fn worker_vars(&self) -> Vec<(String, String)> {
        [
            ("DATABASE_URL", self.test_db.url.clone()),
            ("REDIS_URL", self.redis_url.clone()),
            ("QUEUE_NAMESPACE", self.queue.namespace().to_owned()),
            ("WORKER_METRICS_ADDR", "off".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    pub fn database_name(&self) -> &str {
        &self.test_db.name
    }

    /// Removes the app's database while it runs (connections are terminated).
    pub async fn drop_database(&self) {
        self.test_db.drop_db().await;
    }

    /// Stops the server the way SIGTERM does; returns what `run` returned.
    pub async fn shutdown(&mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("run returns after shutdown")
                .expect("run task"),
            None => Ok(()),
        }
    }

    /// Shuts down and removes the test's database and Redis keys.
    pub async fn stop(mut self) {
        let _ = self.shutdown().await;
        delete_namespace(&self.queue).await;
        self.db.clone().close().await.ok();
        self.test_db.drop_db().await;
    }
}

/// Asserts the answer's status and returns its JSON body.
pub async fn expect_json(response: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(response.status(), status);
    response.json().await.expect("a JSON body")
}

/// The password every test user signs in with.
pub const PASSWORD: &str = "correct horse battery staple";

/// One argon2 hash for every test user: hashing is slow on purpose.
fn password_hash() -> String {
    static HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        jobs::people::secrets::Password::parse(PASSWORD)
            .expect("valid")
            .hash()
    });
    HASH.clone()
}

/// A signed-in test user.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: i64,
    pub org: i64,
    pub access: String,
    pub refresh: String,
}

/// A JSON call: method, path, bearer token, body.
pub struct Call<'a> {
    pub method: reqwest::Method,
    pub path: &'a str,
    pub token: Option<&'a str>,
    pub body: Option<serde_json::Value>,
}

impl TestApp {
    /// An organization made the way `worker admin create-org` makes one.
    pub async fn create_org(&self, name: &str) -> i64 {
        jobs::people::accounts::create_org(&self.db, name, "UTC")
            .await
            .expect("create org")
            .id
    }

    /// A user with [`PASSWORD`].
    pub async fn create_user(&self, org: i64, email: &str, role: jobs::people::Role) -> i64 {
        let new = jobs::people::accounts::NewUser {
            email: jobs::people::Email::parse(email).expect("email"),
            display_name: email.split('@').next().unwrap_or("x").to_owned(),
            role,
        };
        jobs::people::accounts::create_user(
            &self.db,
            jobs::people::OrgId(org),
            &new,
            Some(password_hash()),
        )
        .await
        .expect("create user")
        .user
        .id
    }

    /// Creates a user and signs them in through the API.
    pub async fn person(&self, org: i64, email: &str, role: jobs::people::Role) -> Person {
        let id = self.create_user(org, email, role).await;
        let (status, body) = self.login(email, PASSWORD).await;
        assert_eq!(status, 200, "login {email}: {body}");
        Person {
            id,
            org,
            access: body["access_token"].as_str().expect("access").to_owned(),
            refresh: body["refresh_token"].as_str().expect("refresh").to_owned(),
        }
    }

    pub async fn login(&self, email: &str, password: &str) -> (u16, serde_json::Value) {
        self.call(Call {
            method: reqwest::Method::POST,
            path: "/api/v1/auth/login",
            token: None,
            body: Some(serde_json::json!({ "email": email, "password": password })),
        })
        .await
    }

    pub async fn call(&self, call: Call<'_>) -> (u16, serde_json::Value) {
        let mut request = self.client.request(call.method, self.url(call.path));
        if let Some(token) = call.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = call.body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let body = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
        };
        (status, body)
    }

    pub async fn get_as(&self, token: &str, path: &str) -> (u16, serde_json::Value) {
        self.call(Call {
            method: reqwest::Method::GET,
            path,
            token: Some(token),
            body: None,
        })
        .await
    }

    pub async fn post_as(
        &self,
        token: &str,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.call(Call {
            method: reqwest::Method::POST,
            path,
            token: Some(token),
            body: Some(body),
        })
        .await
    }
}
