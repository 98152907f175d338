//! The worker's attendance loops: `computeAttendanceSummary` for the days clock-outs and late
//! uploads asked for, and the sweep that closes forgotten timers. Both are driven by
//! PostgreSQL (a table of requested days, one UPDATE for the sweep), so any number of worker
//! replicas can run them side by side.

use std::time::Duration;

use jobs::{
    attendance::{sessions, summaries},
    people::throttle::LoginThrottle,
};
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

/// Requested days recomputed per transaction.
const DRAIN_BATCH: u64 = 500;
/// How often requested days are looked for: a summary is at most this late after a clock-out.
const DRAIN_EVERY: Duration = Duration::from_secs(2);
/// How often forgotten timers are closed.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Runs until `shutdown`.
pub async fn run(db: DatabaseConnection, shutdown: CancellationToken) {
    let mut last_sweep: Option<tokio::time::Instant> = None;
    loop {
        if last_sweep.is_none_or(|at| at.elapsed() >= SWEEP_EVERY) {
            last_sweep = Some(tokio::time::Instant::now());
            match sessions::close_forgotten(&db, None).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(sessions = n, "closed forgotten work sessions"),
                Err(e) => tracing::warn!(error = %e, "closing forgotten sessions failed"),
            }
            if let Err(e) = LoginThrottle::default().forget_expired(&db).await {
                tracing::debug!(error = %e, "forgetting expired sign-in failures failed");
            }
        }
        loop {
            match summaries::drain_dirty(&db, DRAIN_BATCH).await {
                Ok(n) if n as u64 == DRAIN_BATCH => continue,
                Ok(0) => {}
                Ok(n) => tracing::debug!(days = n, "attendance summaries recomputed"),
                Err(e) => tracing::warn!(error = %e, "computeAttendanceSummary failed; retrying"),
            }
            break;
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(DRAIN_EVERY) => {}
        }
    }
}
