//! The worker's schedules (tokio-cron-scheduler). Every replica's scheduler fires on each tick;
//! the tick is claimed in PostgreSQL (`jobs::schedule`), so exactly one replica runs it.
//!
//! - `nightlyAttendance` and `nightlyAnalytics`: by default every hour on the hour; each
//!   recomputes, for every organization where it is then 02:xx local time, yesterday's
//!   attendance summaries, and yesterday's and today's metrics (so the rolling DORA windows and
//!   this week's scores move on even on a day without events) — a safety net behind the
//!   incremental recomputes.
//! - `hourlyAlerts`: health alerts of every organization.
//! - `reconcile` (every 30 minutes) and `redeliverFailed` (every 15): record sync jobs in the
//!   ledger (`worker::sync` runs them); off when no GitHub App credentials are configured.

use chrono::{DateTime, DurationRound, NaiveDate, SubsecRound, TimeDelta, Utc};
use croner::{Cron, parser::CronParser};
use jobs::{analytics, attendance::summaries, people::OrgId, schedule};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use tokio_util::sync::CancellationToken;

/// The nightly attendance recompute.
pub const NIGHTLY_ATTENDANCE: &str = "nightlyAttendance";
/// The nightly metrics, DORA and scores recompute.
pub const NIGHTLY_ANALYTICS: &str = "nightlyAnalytics";
/// Health alerts.
pub const HOURLY_ALERTS: &str = "hourlyAlerts";

/// Sync jobs: open and recently updated pull requests compared with GitHub.
pub const RECONCILE: &str = "reconcile";
/// Sync jobs: failed webhook deliveries asked for again.
pub const REDELIVER_FAILED: &str = "redeliverFailed";

/// Every schedule: name, variable, default expression.
pub const SCHEDULES: [(&str, &str, &str); 5] = [
    (
        NIGHTLY_ATTENDANCE,
        "SCHEDULE_NIGHTLY_ATTENDANCE",
        DEFAULT_NIGHTLY,
    ),
    (
        NIGHTLY_ANALYTICS,
        "SCHEDULE_NIGHTLY_ANALYTICS",
        DEFAULT_NIGHTLY,
    ),
    (HOURLY_ALERTS, "SCHEDULE_HOURLY_ALERTS", "0 30 * * * *"),
    (RECONCILE, "SCHEDULE_RECONCILE", "0 */30 * * * *"),
    (
        REDELIVER_FAILED,
        "SCHEDULE_REDELIVER_FAILED",
        "0 */15 * * * *",
    ),
];

/// The schedules that need the GitHub App's credentials.
pub const NEEDS_GITHUB_APP: [&str; 2] = [RECONCILE, REDELIVER_FAILED];

/// The schedules of this process: each name with its expression, `None` when `off`.
pub type Schedules = Vec<(&'static str, Option<String>)>;
/// The organization's local hour in which the nightly work runs.
pub const NIGHTLY_LOCAL_HOUR: u32 = 2;
/// Default: on the hour, so that every time zone (whole or half hour offsets) meets its 02:xx.
pub const DEFAULT_NIGHTLY: &str = "0 0 * * * *";

/// Parses a cron expression as the scheduler does (seconds first). Ticks are claimed per
/// minute, so the seconds field must be a single value.
pub fn parse(expr: &str) -> Result<Cron, String> {
    let seconds = expr.split_whitespace().next().unwrap_or_default();
    if seconds.parse::<u8>().is_err() {
        return Err(format!(
            "{expr:?}: the first (seconds) field must be one number, e.g. \"0 0 * * * *\""
        ));
    }
    CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expr)
        .map_err(|e| format!("{expr:?} is not a cron expression (seconds first): {e}"))
}

/// Reads `SCHEDULE_*`: each a cron expression, the default when unset, `off` to disable.
pub fn from_vars(
    vars: &jobs::runtime::config::Vars,
) -> Result<Schedules, jobs::runtime::config::ConfigError> {
    SCHEDULES
        .iter()
        .map(|(name, var, default)| {
            let expr = match vars.get(var).map(str::trim) {
                Some("off") => None,
                _ if NEEDS_GITHUB_APP.contains(name) && vars.get("GITHUB_APP_ID").is_none() => None,
                None => Some((*default).to_owned()),
                Some(expr) => {
                    parse(expr).map_err(|e| jobs::runtime::config::ConfigError::new(var, e))?;
                    Some(expr.to_owned())
                }
            };
            Ok((*name, expr))
        })
        .collect()
}

/// When `expr` fires next after `after`.
pub fn next_run(expr: &str, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let after = after.trunc_subsecs(0);
    parse(expr).ok()?.find_next_occurrence(&after, false).ok()
}

/// Starts the schedules; they stop when `shutdown` is cancelled.
pub async fn start(
    db: DatabaseConnection,
    schedules: Schedules,
    worker_name: String,
    shutdown: CancellationToken,
) -> Result<(), JobSchedulerError> {
    let mut scheduler = JobScheduler::new().await?;
    for (name, expr) in schedules {
        let Some(expr) = expr else { continue };
        let db = db.clone();
        let worker_name = worker_name.clone();
        scheduler
            .add(Job::new_async(expr.as_str(), move |_, _| {
                let db = db.clone();
                let by = worker_name.clone();
                Box::pin(async move {
                    let tick = Utc::now()
                        .duration_trunc(TimeDelta::minutes(1))
                        .unwrap_or_else(|_| Utc::now());
                    run_tick(&db, name, tick, &by).await;
                })
            })?)
            .await?;
    }
    scheduler.start().await?;
    tokio::spawn(async move {
        shutdown.cancelled().await;
        let _ = scheduler.shutdown().await;
    });
    Ok(())
}

/// Runs schedule `name` once now, as its tick of this minute (so a replica's own tick this
/// minute does not run it twice; both are recorded in `schedule_ticks`): its detail, or why it
/// did not run or failed.
pub async fn run_now(db: &DatabaseConnection, name: &str, by: &str) -> Result<String, String> {
    if !SCHEDULES.iter().any(|(known, _, _)| *known == name) {
        let names: Vec<&str> = SCHEDULES.iter().map(|(n, _, _)| *n).collect();
        return Err(format!(
            "unknown schedule {name:?} (one of: {})",
            names.join(", ")
        ));
    }
    let tick = Utc::now()
        .duration_trunc(TimeDelta::minutes(1))
        .unwrap_or_else(|_| Utc::now());
    if !run_tick(db, name, tick, by).await {
        return Err(format!(
            "{name}'s run for {tick} was already claimed (see `worker cron list`); try again next minute"
        ));
    }
    match schedule::last_run(db, name).await {
        Ok(Some(run)) if run.outcome.as_deref() == Some("ok") => Ok(run.detail.unwrap_or_default()),
        Ok(Some(run)) => Err(run.detail.unwrap_or_else(|| "failed".to_owned())),
        Ok(None) => Err("the run was not recorded".to_owned()),
        Err(e) => Err(format!("cannot read the run's outcome: {e}")),
    }
}

/// Runs `schedule`'s tick here if this worker claims it; returns whether it ran.
pub async fn run_tick(db: &DatabaseConnection, name: &str, tick: DateTime<Utc>, by: &str) -> bool {
    match schedule::claim(db, name, tick, by).await {
        Ok(true) => {}
        Ok(false) => return false,
        Err(e) => {
            tracing::warn!(schedule = name, error = %e, "cannot claim the tick");
            return false;
        }
    }
    let result = match name {
        NIGHTLY_ATTENDANCE => nightly_attendance(db, tick)
            .await
            .map_err(|e| e.to_string()),
        NIGHTLY_ANALYTICS => nightly_analytics(db, tick).await.map_err(|e| e.to_string()),
        HOURLY_ALERTS => crate::analytics::alerts_for_all(db, tick)
            .await
            .map_err(|e| e.to_string()),
        RECONCILE => enqueue_reconciles(db).await.map_err(|e| e.to_string()),
        REDELIVER_FAILED => jobs::sync::enqueue(
            db,
            &jobs::sync::Request {
                kind: jobs::sync::SyncKind::RedeliverFailed,
                installation_id: None,
                since: None,
                repository_ids: None,
                requested_by: "schedule".to_owned(),
            },
        )
        .await
        .map(|e| format!("sync job {}", e.id))
        .map_err(|e| e.to_string()),
        other => Err(format!("unknown schedule {other}")),
    };
    match &result {
        Ok(detail) => tracing::info!(schedule = name, %tick, detail, "scheduled run finished"),
        Err(error) => tracing::error!(schedule = name, %tick, error, "scheduled run failed"),
    }
    if let Err(e) = schedule::finish(db, name, tick, &result).await {
        tracing::warn!(schedule = name, error = %e, "cannot record the run");
    }
    true
}

/// A reconcile job per active installation (joining one still queued or running).
async fn enqueue_reconciles(db: &DatabaseConnection) -> Result<String, DbErr> {
    let installations = jobs::sync::active_installations(db).await?;
    for installation in &installations {
        jobs::sync::enqueue(
            db,
            &jobs::sync::Request {
                kind: jobs::sync::SyncKind::Reconcile,
                installation_id: Some(*installation),
                since: None,
                repository_ids: None,
                requested_by: "schedule".to_owned(),
            },
        )
        .await?;
    }
    Ok(format!(
        "{} installation(s) to reconcile",
        installations.len()
    ))
}

/// Recomputes yesterday for every organization where `at` is in its nightly hour.
async fn nightly_attendance(db: &DatabaseConnection, at: DateTime<Utc>) -> Result<String, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT id, (($1::timestamptz AT TIME ZONE time_zone)::date - 1) AS yesterday \
             FROM organizations WHERE status <> 'removed' \
               AND EXTRACT(HOUR FROM $1::timestamptz AT TIME ZONE time_zone) = $2 ORDER BY id",
            [
                at.into(),
                i32::try_from(NIGHTLY_LOCAL_HOUR).unwrap_or(2).into(),
            ],
        ))
        .await?;
    let mut written = 0;
    for row in &rows {
        let org: i64 = row.try_get("", "id")?;
        let day: NaiveDate = row.try_get("", "yesterday")?;
        written += summaries::recompute_range(db, OrgId(org), day, day).await?;
    }
    Ok(format!(
        "{} organization(s), {written} summaries",
        rows.len()
    ))
}

/// Recomputes yesterday and today for every organization where `at` is in its nightly hour.
async fn nightly_analytics(db: &DatabaseConnection, at: DateTime<Utc>) -> Result<String, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT id, ($1::timestamptz AT TIME ZONE time_zone)::date AS today \
             FROM organizations WHERE status <> 'removed' \
               AND EXTRACT(HOUR FROM $1::timestamptz AT TIME ZONE time_zone) = $2 ORDER BY id",
            [
                at.into(),
                i32::try_from(NIGHTLY_LOCAL_HOUR).unwrap_or(2).into(),
            ],
        ))
        .await?;
    let mut report = analytics::compute::Report::default();
    for row in &rows {
        let id: i64 = row.try_get("", "id")?;
        let today: NaiveDate = row.try_get("", "today")?;
        let Some(org) = analytics::load_org(db, id).await? else {
            continue;
        };
        let days = [today - chrono::Duration::days(1), today];
        report += analytics::compute::recompute(db, &org, &days, today).await?;
    }
    Ok(format!(
        "{} organization(s), {} daily rows, {} DORA rows, {} scores",
        rows.len(),
        report.daily_rows,
        report.dora_rows,
        report.score_rows
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_are_checked_and_next_runs_computed() {
        assert!(parse(DEFAULT_NIGHTLY).is_ok());
        assert!(
            parse("*/5 * * * * *").is_err(),
            "sub-minute ticks cannot be claimed per minute"
        );
        assert!(parse("0 0 25 * * *").is_err());
        let after = DateTime::parse_from_rfc3339("2026-11-22T05:30:00.25Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(
            next_run(DEFAULT_NIGHTLY, after).map(|t| t.to_rfc3339()),
            Some("2026-11-22T06:00:00+00:00".to_owned())
        );
    }
}

/// One schedule as `worker cron list` shows it.
#[derive(Debug, serde::Serialize)]
pub struct Status {
    pub schedule: &'static str,
    /// The cron expression, or `off`.
    pub cron: String,
    pub next_run: Option<DateTime<Utc>>,
    pub last_run: Option<schedule::LastRun>,
}

/// `worker cron list`: each schedule with its expression, last and next run.
pub async fn list(
    db: &DatabaseConnection,
    schedules: &Schedules,
    json: bool,
    out: &mut impl std::io::Write,
) -> Result<(), ListError> {
    let now = Utc::now();
    let mut statuses = Vec::new();
    for (name, expr) in schedules {
        let expr = expr.as_deref();
        statuses.push(Status {
            schedule: name,
            cron: expr.unwrap_or("off").to_owned(),
            next_run: expr.and_then(|e| next_run(e, now)),
            last_run: schedule::last_run(db, name).await?,
        });
    }
    if json {
        let text =
            serde_json::to_string(&statuses).map_err(|e| std::io::Error::other(e.to_string()))?;
        writeln!(out, "{text}")?;
        return Ok(());
    }
    for status in statuses {
        let last = match &status.last_run {
            None => "never".to_owned(),
            Some(run) => format!(
                "{} by {}: {} ({})",
                run.tick.to_rfc3339(),
                run.claimed_by,
                run.outcome.as_deref().unwrap_or("running"),
                run.detail.as_deref().unwrap_or("")
            ),
        };
        let next = status
            .next_run
            .map_or_else(|| "-".to_owned(), |t| t.to_rfc3339());
        writeln!(
            out,
            "{}  cron {:?}  next {next}  last {last}",
            status.schedule, status.cron
        )?;
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("database: {0}")]
    Database(#[from] DbErr),
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}
