//! Test support shared by the crates' integration tests (feature `test-support`): a database of
//! the test's own on the real server, and removal of a test's Redis keys.

use sea_orm::{ConnectionTrait, Database};

use crate::queue::Queue;

/// The maintenance database tests create theirs from (`TEST_DATABASE_URL`).
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The Redis tests share, each under its own namespace (`TEST_REDIS_URL`).
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A fresh, empty database; call [`TestDb::drop_db`] when done (`scripts/test` also removes
/// ones left by killed runs).
#[derive(Debug)]
pub struct TestDb {
    pub url: String,
    pub name: String,
}

impl TestDb {
    pub async fn create() -> Self {
        let name = format!("devpulse_test_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(admin_url())
            .await
            .expect("connect as admin");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        admin.close().await.ok();
        let mut url = url::Url::parse(&admin_url()).expect("admin url");
        url.set_path(&name);
        Self {
            url: url.to_string(),
            name,
        }
    }

    pub async fn drop_db(&self) {
        if let Ok(admin) = Database::connect(admin_url()).await {
            let _ = admin
                .execute_unprepared(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .await;
            admin.close().await.ok();
        }
    }
}

/// Deletes every Redis key of the queue's namespace.
pub async fn delete_namespace(queue: &Queue) {
    let mut conn = queue.connection();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", queue.namespace()))
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _ = redis::cmd("DEL")
            .arg(&keys)
            .query_async::<()>(&mut conn)
            .await;
    }
}
