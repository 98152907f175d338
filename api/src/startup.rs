//! Start-up as `build(config)` → `run(listener, shutdown)`, so tests bind port 0 and stop cleanly.

use std::{future::Future, sync::Arc, time::Duration};

use axum::{
    Router,
    http::header,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use jobs::people::{OrgId, tenant, throttle::LoginThrottle};
use jobs::{
    Queue,
    relay::{Relay, RelaySettings},
    runtime::connect,
};
use migration::{Migrator, MigratorTrait};
use sea_orm::{DatabaseConnection, DbErr};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::sync::CancellationToken;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

use crate::{
    auth::JwtKeys,
    config::ApiConfig,
    error::ApiError,
    ingest::{self, Ingestor},
    metrics::Metrics,
    openapi,
    read_cache::{self, ReadCache},
    routes::{
        health, v1,
        webhooks::{self, BodyBudget},
    },
    signature::WebhookSecrets,
};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] connect::DatabaseConnectError),
    #[error("cannot apply migrations: {0}")]
    Migrations(DbErr),
    #[error("cannot open the ingest and read connections to PostgreSQL: {0}")]
    TokioPool(#[from] connect::TokioPoolError),
    #[error("invalid REDIS_URL: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(
        "the database user cannot switch to the role tenant queries run under ({0}); \
         run `GRANT devpulse_app TO <DATABASE_URL's user>` as a superuser"
    )]
    TenantRole(DbErr),
}

/// Shared by every handler; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub queue: Queue,
    pub secrets: Arc<WebhookSecrets>,
    pub ingestor: Ingestor,
    pub metrics: Arc<Metrics>,
    pub body_budget: BodyBudget,
    pub body_timeout: Duration,
    pub jwt: Arc<JwtKeys>,
    pub throttle: LoginThrottle,
    /// Bounds concurrent argon2 computations (each takes ~20 MiB and a core for tens of ms).
    pub hashing: Arc<Semaphore>,
    pub trust_forwarded_for: bool,
    pub public_url: Arc<str>,
    /// GitHub App credentials are configured: the workers sync from GitHub's API as well.
    pub github_app: bool,
    /// Dashboard answers (organization-wide, and person pages per viewer), dropped when what
    /// they show changes.
    pub reads: ReadCache,
    /// tokio-postgres connections for the per-person reads (see `tenant::begin_read`).
    pub read_pool: deadpool_postgres::Pool,
}

impl AppState {
    /// Runs password hashing or checking (argon2: ~20 MiB and tens of milliseconds each) on a
    /// blocking thread, at most `HASHING_CONCURRENCY` at once.
    pub async fn hash<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| ApiError::Internal(format!("password hashing: {e}")))
    }
}

/// A built application, not yet serving.
#[derive(Debug)]
pub struct Application {
    router: Router,
    reads: ReadCache,
    listener_url: String,
    relay: Relay,
    ingest_task: tokio::task::JoinHandle<()>,
    shutdown_grace: Duration,
}

/// Connects, migrates and wires the application.
pub async fn build(config: ApiConfig) -> Result<Application, StartupError> {
    let db = connect::database(&config.common).await?;
    Migrator::up(&db, None)
        .await
        .map_err(StartupError::Migrations)?;
    // Fail now, not on the first request, when tenant transactions cannot take their role.
    tenant::begin(&db, OrgId(0))
        .await
        .map_err(StartupError::TenantRole)?
        .rollback()
        .await
        .map_err(StartupError::TenantRole)?;
    if config.common.github.app.is_none() {
        tracing::warn!(
            "GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY are not set: running on webhooks alone \
             (see /health/ready)"
        );
    }
    let ingest_pool = connect::tokio_pool(&config.common, ingest::MAX_IN_FLIGHT).await?;
    let read_pool = connect::tokio_pool(&config.common, READ_POOL_SIZE).await?;
    let redis = connect::redis(&config.common)?;
    if !connect::redis_ready(&redis).await {
        tracing::warn!(
            url = %config.common.redis_url.redacted(),
            "redis is not reachable; deliveries will wait in postgres until it is"
        );
    }
    let queue = Queue::new(
        redis,
        &config.common.queue_namespace,
        config.common.queue_max_backlog,
    );
    let relay = Relay::new(db.clone(), queue.clone(), RelaySettings::default());
    // One round before serving: it marks a new Redis with its epoch, so deliveries queued from
    // now on are not mistaken for jobs of a Redis that lost its data.
    match tokio::time::timeout(Duration::from_secs(3), relay.tick()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "first relay round failed; retrying in the background")
        }
        Err(_) => tracing::warn!("first relay round timed out; retrying in the background"),
    }
    let metrics = Arc::new(Metrics::new());
    let (ingestor, ingest_task) =
        Ingestor::start(ingest_pool, queue.clone(), relay.clone(), metrics.clone());
    let state = AppState {
        db,
        queue,
        secrets: Arc::new(config.webhook_secrets),
        ingestor,
        metrics,
        body_budget: BodyBudget::new(config.body_budget),
        body_timeout: config.body_timeout,
        jwt: Arc::new(config.jwt),
        throttle: LoginThrottle::default(),
        hashing: Arc::new(Semaphore::new(HASHING_CONCURRENCY)),
        trust_forwarded_for: config.trust_forwarded_for,
        public_url: config.public_url.into(),
        github_app: config.common.github.app.is_some(),
        reads: ReadCache::new(READ_CACHE_ENTRIES, config.read_cache_ttl),
        read_pool,
    };
    let web = Web::at(config.web_dir);
    Ok(Application {
        listener_url: config.common.database_url.expose().to_owned(),
        reads: state.reads.clone(),
        router: router(state, web),
        relay,
        ingest_task,
        shutdown_grace: config.shutdown_grace,
    })
}

/// Connections of the per-person read path (each request holds one for about a millisecond).
const READ_POOL_SIZE: usize = 8;

/// Dashboard answers kept per replica (each a few KiB).
const READ_CACHE_ENTRIES: u64 = 10_000;

/// argon2 checks run at once; more wait (each holds ~20 MiB while it runs).
const HASHING_CONCURRENCY: usize = 4;

fn router(state: AppState, web: Web) -> Router {
    let spec = axum::body::Bytes::from(openapi::json());
    Router::new()
        .merge(v1::router(state.clone()))
        .route("/webhooks/github", post(webhooks::receive))
        .route("/health", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route(
            "/api/openapi.json",
            get(move || {
                let spec = spec.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], spec) }
            }),
        )
        .fallback(move |request: axum::extract::Request| web.clone().serve(request))
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
                let request_id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!(
                    "request",
                    request_id = %request_id,
                    method = %request.method(),
                    path = %request.uri().path(),
                )
            }),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

impl Application {
    /// Serves on `listener` until `shutdown` resolves; then stops accepting, gives in-flight
    /// requests `SHUTDOWN_GRACE` to finish, commits what they submitted, and returns.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Application {
            router,
            reads,
            listener_url,
            relay,
            ingest_task,
            shutdown_grace,
        } = self;
        let stop = CancellationToken::new();
        let relay_task = tokio::spawn(relay.run(stop.child_token()));
        let cache_task = tokio::spawn(read_cache::listen(listener_url, reads, stop.child_token()));
        let server = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(stop.clone().cancelled_owned());
        let server = tokio::spawn(async move { server.await });

        tokio::pin!(shutdown);
        let mut server = server;
        let result = tokio::select! {
            result = &mut server => result,
            () = &mut shutdown => {
                tracing::info!(grace_secs = shutdown_grace.as_secs_f64(), "shutting down: no new connections");
                stop.cancel();
                match tokio::time::timeout(shutdown_grace, &mut server).await {
                    Ok(result) => result,
                    Err(_) => {
                        tracing::warn!("in-flight requests did not finish within the grace period");
                        server.abort();
                        Ok(Ok(()))
                    }
                }
            }
        };
        stop.cancel();
        // The router (and every Ingestor clone in it) is gone: the pipeline drains and ends.
        if tokio::time::timeout(ingest::DRAIN_TIMEOUT, ingest_task)
            .await
            .is_err()
        {
            tracing::warn!("ingest pipeline did not drain in time");
        }
        let _ = relay_task.await;
        let _ = cache_task.await;
        tracing::info!("stopped");
        result.unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

/// The built web dashboard (`WEB_DIR`): its files, and `index.html` for any other path that is
/// not the API's, so the dashboard's own routes load on refresh.
#[derive(Clone, Debug)]
struct Web {
    files: Option<tower_http::services::ServeDir<tower_http::services::ServeFile>>,
}

impl Web {
    fn at(dir: std::path::PathBuf) -> Self {
        let index = dir.join("index.html");
        if !index.is_file() {
            tracing::warn!(dir = %dir.display(),
                "the web dashboard is not built (no index.html): `/` answers 404; build it with \
                 `npm --prefix web ci && npm --prefix web run build` (scripts/up does)");
            return Self { files: None };
        }
        Self {
            files: Some(
                tower_http::services::ServeDir::new(dir)
                    .fallback(tower_http::services::ServeFile::new(index)),
            ),
        }
    }

    async fn serve(self, request: axum::extract::Request) -> Response {
        let path = request.uri().path();
        let api = ["/api/", "/webhooks/", "/health", "/metrics"]
            .iter()
            .any(|prefix| path.starts_with(prefix));
        match self.files {
            Some(files) if !api => {
                use tower::ServiceExt;
                match files.oneshot(request).await {
                    Ok(response) => response.map(axum::body::Body::new),
                    Err(never) => match never {},
                }
            }
            _ => ApiError::NotFound.into_response(),
        }
    }
}
