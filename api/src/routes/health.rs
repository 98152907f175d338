//! Liveness, readiness and metrics for operators and orchestrators.

use std::time::Duration;

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use jobs::{deliveries, runtime::connect};
use serde_json::json;

use crate::startup::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /health`: the process is up and serving.
pub async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /health/ready`: PostgreSQL and Redis both answer; 503 names the one that does not.
/// `details.github_app` says whether the platform also syncs from GitHub's API or runs on
/// webhooks alone (not a readiness condition).
pub async fn ready(State(state): State<AppState>) -> Response {
    let redis = state.queue.connection();
    let (postgres, redis) = tokio::join!(
        tokio::time::timeout(CHECK_TIMEOUT, connect::database_ready(&state.db)),
        tokio::time::timeout(CHECK_TIMEOUT, connect::redis_ready(&redis)),
    );
    let postgres = postgres.unwrap_or(false);
    let redis = redis.unwrap_or(false);
    let word = |ok: bool| if ok { "ok" } else { "unreachable" };
    let checks = json!({ "postgres": word(postgres), "redis": word(redis) });
    let details = json!({ "github_app": if state.github_app {
        "configured: webhooks, plus backfill, reconcile and redelivery from GitHub's API"
    } else {
        "not configured (GITHUB_APP_ID, GITHUB_APP_PRIVATE_KEY): running on webhooks alone"
    } });
    if postgres && redis {
        return Json(json!({ "status": "ready", "checks": checks, "details": details }))
            .into_response();
    }
    let down: Vec<&str> = [("postgres", postgres), ("redis", redis)]
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(name, _)| name)
        .collect();
    let message = format!("{} not reachable", down.join(" and "));
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "code": "not_ready", "message": message, "status": "not_ready", "checks": checks, "details": details })),
    )
        .into_response()
}

/// `GET /metrics`: Prometheus text. Backlog gauges are read at scrape time.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let (pending, depth) = tokio::join!(
        tokio::time::timeout(CHECK_TIMEOUT, deliveries::count_pending(&state.db)),
        tokio::time::timeout(CHECK_TIMEOUT, state.queue.depth()),
    );
    if let Ok(Ok(pending)) = pending {
        state.metrics.pending.set(pending as i64);
    }
    if let Ok(Ok(depth)) = depth {
        state.metrics.queue_depth.set(depth as i64);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}
