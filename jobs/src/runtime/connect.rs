//! Connections to PostgreSQL and Redis, with the timeouts every process uses.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr};

use super::config::CommonConfig;

/// A PostgreSQL pool. Connection failures surface at once rather than after a long wait, so
/// `/health/ready` and start-up report a missing database quickly.
pub async fn database(config: &CommonConfig) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(config.database_url.expose().to_owned());
    options
        .max_connections(config.database_max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .idle_timeout(Duration::from_secs(300))
        .sqlx_logging(false);
    Database::connect(options).await
}

/// A self-healing Redis connection: after a Redis restart it reconnects with backoff on its
/// own; while Redis is away, commands fail within about a second instead of hanging. It
/// connects lazily, so a process starts (and keeps deliveries in PostgreSQL) without Redis.
pub fn redis(config: &CommonConfig) -> Result<ConnectionManager, redis::RedisError> {
    let client = redis::Client::open(config.redis_url.expose())?;
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(2));
    ConnectionManager::new_lazy_with_config(client, manager_config)
}

/// `true` when PostgreSQL answers `SELECT 1`.
pub async fn database_ready(db: &DatabaseConnection) -> bool {
    db.execute_unprepared("SELECT 1").await.is_ok()
}

/// `true` when Redis answers `PING`.
pub async fn redis_ready(conn: &ConnectionManager) -> bool {
    let mut conn = conn.clone();
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .is_ok()
}
