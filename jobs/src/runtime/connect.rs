//! Connections to PostgreSQL and Redis, with the timeouts every process uses.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr};

use super::config::{CommonConfig, SecretUrl};

/// A PostgreSQL pool. Connection failures surface at once rather than after a long wait, so
/// `/health/ready` and start-up report a missing database quickly.
pub async fn database(config: &CommonConfig) -> Result<DatabaseConnection, DatabaseConnectError> {
    database_at(&config.database_url, config.database_max_connections).await
}

/// A PostgreSQL pool of at most `max_connections` at `url` (for tools that need no Redis).
pub async fn database_at(
    url: &SecretUrl,
    max_connections: u32,
) -> Result<DatabaseConnection, DatabaseConnectError> {
    let mut options = ConnectOptions::new(url.expose().to_owned());
    options
        .max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .idle_timeout(Duration::from_secs(300))
        .sqlx_logging(false);
    Database::connect(options)
        .await
        .map_err(|source| DatabaseConnectError {
            url: url.redacted(),
            source,
        })
}

/// PostgreSQL did not answer at start-up.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to PostgreSQL at {url}")]
pub struct DatabaseConnectError {
    /// `DATABASE_URL` without credentials.
    pub url: String,
    pub source: DbErr,
}

/// A small tokio-postgres pool, for the hot paths: webhook ingest and the API's per-person reads.
///
/// tokio-postgres pipelines requests polled together (ingest sends `BEGIN` and its `INSERT` in
/// one round trip; the person page its three reads) and keeps typed, prepared statements per
/// connection. It was chosen when sqlx 0.9.0 (under sea-orm) did not set `TCP_NODELAY` and a
/// 25 KB statement waited ~40 ms for PostgreSQL's delayed ACK (sqlx #4335, fixed in 0.9.1, which
/// the workspace now uses). TLS follows `sslmode` as libpq reads it ([`super::pg_tls`]).
pub async fn tokio_pool(
    config: &CommonConfig,
    size: usize,
) -> Result<deadpool_postgres::Pool, TokioPoolError> {
    let (pg_config, tls, _) =
        super::pg_tls::target(config.database_url.expose()).map_err(TokioPoolError)?;
    let manager = deadpool_postgres::Manager::from_config(
        pg_config,
        tls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    let pool = deadpool_postgres::Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| TokioPoolError(e.to_string()))?;
    // Fail at start-up, not on the first delivery.
    drop(
        pool.get()
            .await
            .map_err(|e| TokioPoolError(e.to_string()))?,
    );
    Ok(pool)
}

/// The ingest pool could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TokioPoolError(String);

/// A self-healing Redis connection: after a Redis restart it reconnects with backoff on its
/// own; while Redis is away, commands fail within about a second instead of hanging. It
/// connects lazily, so a process starts (and keeps deliveries in PostgreSQL) without Redis.
pub fn redis(config: &CommonConfig) -> Result<ConnectionManager, redis::RedisError> {
    redis_at(config.redis_url.expose())
}

/// A Redis connection manager for `url` (connects lazily, reconnects by itself).
pub fn redis_at(url: &str) -> Result<ConnectionManager, redis::RedisError> {
    let client = redis::Client::open(url)?;
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
