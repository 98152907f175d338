//! The worker's Prometheus metrics and the small HTTP server that exposes them (`/metrics`,
//! `/health`) on `WORKER_METRICS_ADDR`.

use std::{sync::Arc, time::Duration};

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use jobs::{Queue, dead_letters, deliveries};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub kind: String,
    /// `processed`, `skipped`, `retried`, `dead`, `not_visible`, `error`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabel {
    pub queue: String,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub jobs: Family<JobLabels, Counter>,
    pub enqueue_to_done: Family<KindLabel, Histogram>,
    pub queue_depth: Gauge,
    pub pending: Gauge,
    pub dead_letters: Family<QueueLabel, Gauge>,
    pub sync: Arc<SyncMetrics>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `app` or `installation`.
    pub scope: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScopeLabel {
    pub scope: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ItemLabel {
    /// `pull_requests`, `reviews`, `commits`, `deployments`, `issues`, `repositories`.
    pub item: String,
}

/// The sync side's counters (GitHub requests, rate limits, rows synced, reconcile differences).
#[derive(Debug, Default)]
pub struct SyncMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub rate_limited: Family<ScopeLabel, Counter>,
    pub slices: Family<JobLabels, Counter>,
    pub items: Family<ItemLabel, Counter>,
    pub differences: Counter,
    pub redelivered: Counter,
}

impl SyncMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "github_requests",
            "GitHub API answers, by credential scope and HTTP status",
            self.requests.clone(),
        );
        registry.register(
            "github_rate_limited",
            "Rate-limit pauses, by credential scope",
            self.rate_limited.clone(),
        );
        registry.register(
            "sync_slices",
            "Slices of sync jobs run, by job kind and outcome",
            self.slices.clone(),
        );
        registry.register(
            "sync_items",
            "Rows written by sync jobs, by kind of row",
            self.items.clone(),
        );
        registry.register(
            "sync_reconcile_differences",
            "Pull requests the reconcile found different from the stored row (and rewrote)",
            self.differences.clone(),
        );
        registry.register(
            "sync_redelivered",
            "Failed webhook deliveries GitHub was asked to send again",
            self.redelivered.clone(),
        );
    }

    pub fn request(&self, scope: crate::sync::client::Scope, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                scope: scope_name(scope).to_owned(),
                status: status.to_string(),
            })
            .inc();
    }

    pub fn rate_limited(&self, scope: crate::sync::client::Scope) {
        self.rate_limited
            .get_or_create(&ScopeLabel {
                scope: scope_name(scope).to_owned(),
            })
            .inc();
    }

    pub fn slice(&self, kind: &str, outcome: &str) {
        self.slices
            .get_or_create(&JobLabels {
                kind: kind.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn items(&self, item: &str, n: usize) {
        self.items
            .get_or_create(&ItemLabel {
                item: item.to_owned(),
            })
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }
}

fn scope_name(scope: crate::sync::client::Scope) -> &'static str {
    match scope {
        crate::sync::client::Scope::App => "app",
        crate::sync::client::Scope::Installation(_) => "installation",
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("devpulse_worker");
        let jobs = Family::<JobLabels, Counter>::default();
        registry.register("jobs", "Jobs run, by type and outcome", jobs.clone());
        let enqueue_to_done = Family::<KindLabel, Histogram>::new_with_constructor(|| {
            // 1 ms .. ~9 min
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.001, 2.0, 20,
            ))
        });
        registry.register(
            "enqueue_to_done_seconds",
            "Time from a job's hand-off to Redis to its delivery being processed",
            enqueue_to_done.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register("queue_depth", "Jobs waiting in Redis", queue_depth.clone());
        let pending = Gauge::default();
        registry.register(
            "pending_deliveries",
            "Deliveries waiting in PostgreSQL for a hand-off to Redis",
            pending.clone(),
        );
        let dead_letters = Family::<QueueLabel, Gauge>::default();
        registry.register(
            "dead_letters",
            "Open dead letters per queue (job type)",
            dead_letters.clone(),
        );
        let sync = Arc::new(SyncMetrics::default());
        sync.register(&mut registry);
        Self {
            registry,
            jobs,
            enqueue_to_done,
            queue_depth,
            pending,
            dead_letters,
            sync,
        }
    }

    pub fn count(&self, kind: &str, outcome: &str) {
        self.jobs
            .get_or_create(&JobLabels {
                kind: kind.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn observe_latency(&self, kind: &str, latency: Duration) {
        self.enqueue_to_done
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .observe(latency.as_secs_f64());
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// Refreshes the gauges read from Redis and PostgreSQL.
    async fn refresh(&self, db: &DatabaseConnection, queue: &Queue) {
        if let Ok(depth) = queue.depth().await {
            self.queue_depth
                .set(i64::try_from(depth).unwrap_or(i64::MAX));
        }
        if let Ok(pending) = deliveries::count_pending(db).await {
            self.pending.set(i64::try_from(pending).unwrap_or(i64::MAX));
        }
        if let Ok(depths) = dead_letters::depth_by_queue(db).await {
            self.dead_letters.clear();
            for (queue, n) in depths {
                self.dead_letters
                    .get_or_create(&QueueLabel { queue })
                    .set(n);
            }
        }
    }
}

/// Keeps the gauges fresh every few seconds until shutdown.
pub async fn refresh_loop(
    metrics: Arc<Metrics>,
    db: DatabaseConnection,
    queue: Queue,
    shutdown: CancellationToken,
) {
    loop {
        metrics.refresh(&db, &queue).await;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(render))
        .route("/health", get(|| async { "ok" }))
        .with_state(metrics);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

async fn render(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    )
}
