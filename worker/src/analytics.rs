//! The worker's analytics loops: the incremental recompute of dirty days, and the sender of
//! notifications. Both are driven by PostgreSQL rows claimed with SKIP LOCKED, so any number of
//! worker replicas share them; and the hourly alert evaluation the scheduler calls.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jobs::analytics::{self, notify};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use tokio_util::sync::CancellationToken;

/// Day marks claimed per transaction (marks repeat: every batch of events marks the days it
/// touches, and an organization's marks wait `ANALYTICS_SETTLE` to be taken together).
const DRAIN_MARKS: i64 = 20_000;
/// How often dirty days and due notifications are looked for.
const EVERY: Duration = Duration::from_secs(2);

/// Runs until `shutdown`.
pub async fn run(db: DatabaseConnection, settle: Duration, shutdown: CancellationToken) {
    let http = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
    {
        Ok(http) => Some(http),
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client: notifications are not sent by this worker");
            None
        }
    };
    let policy = notify::Policy::default();
    loop {
        for _ in 0..100 {
            match analytics::drain_dirty(&db, DRAIN_MARKS, settle).await {
                Ok(Some((org, report))) => {
                    tracing::info!(
                        organization_id = org,
                        days = report.days,
                        pull_requests = report.pull_requests,
                        daily_rows = report.daily_rows,
                        dora_rows = report.dora_rows,
                        "metrics recomputed"
                    );
                    if shutdown.is_cancelled() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recompute failed; the days stay marked");
                    break;
                }
            }
        }
        if let Some(http) = &http {
            match send_due(&db, http, &policy, 50).await {
                Ok(r) if r == SendReport::default() => {}
                Ok(r) => tracing::info!(
                    sent = r.sent,
                    failed = r.failed,
                    dead = r.dead,
                    "notifications"
                ),
                Err(e) => tracing::warn!(error = %e, "sending notifications failed"),
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}

/// `hourlyAlerts`: evaluates every active organization's health alerts at `at`.
pub async fn alerts_for_all(db: &DatabaseConnection, at: DateTime<Utc>) -> Result<String, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT id FROM organizations WHERE status = 'active' ORDER BY id",
            [],
        ))
        .await?;
    let (mut open, mut opened, mut resolved) = (0, 0, 0);
    for row in &rows {
        let Some(org) = analytics::load_org(db, row.try_get("", "id")?).await? else {
            continue;
        };
        let today = org.today;
        let report = analytics::alerts::evaluate(db, &org, at, today).await?;
        open += report.open;
        opened += report.opened;
        resolved += report.resolved;
    }
    Ok(format!(
        "{} organization(s): {open} open alerts, {opened} opened, {resolved} resolved",
        rows.len()
    ))
}

/// The most days one `worker recompute` covers.
pub const MAX_RECOMPUTE_DAYS: i64 = 800;

#[derive(Debug, thiserror::Error)]
pub enum RecomputeError {
    #[error(transparent)]
    Admin(#[from] crate::admin::AdminError),
    #[error("database: {0}")]
    Database(#[from] DbErr),
    #[error("--from must not be after --to, and the range at most {MAX_RECOMPUTE_DAYS} days")]
    Range,
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

/// `worker recompute --org --from --to`: one transaction, so dashboards see the old numbers
/// until the new ones are all there; a progress bar on standard error when it is a terminal.
pub async fn recompute_command(
    db: &DatabaseConnection,
    org: &crate::admin::OrgRef,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
    json: bool,
    out: &mut impl std::io::Write,
) -> Result<(), RecomputeError> {
    use sea_orm::TransactionTrait;
    if from > to || (to - from).num_days() >= MAX_RECOMPUTE_DAYS {
        return Err(RecomputeError::Range);
    }
    let id = crate::admin::resolve(db, org).await?;
    let Some(org) = analytics::load_org(db, id.0).await? else {
        return Err(crate::admin::AdminError::NoSuchOrg(id.0.to_string()).into());
    };
    let days: Vec<chrono::NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
    let bar = indicatif::ProgressBar::new(1);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    let txn = db.begin().await?;
    let report = analytics::compute::recompute_in(&txn, &org, &days, org.today, &mut |p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        bar.set_message(p.phase);
    })
    .await?;
    bar.set_message("committing");
    txn.commit().await?;
    bar.set_message("vacuuming");
    analytics::compute::vacuum_written(db, &report).await;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    if json {
        let mut value = serde_json::to_value(&report).map_err(std::io::Error::other)?;
        value["organization_id"] = org.id.into();
        value["seconds"] = seconds.into();
        writeln!(out, "{value}")?;
    } else {
        writeln!(
            out,
            "recomputed {from} to {to} of organization {} in {seconds:.1} s: {} pull requests changed, \
             {} deployment outcomes changed, {} daily rows, {} DORA rows, {} scores",
            org.id,
            report.pull_requests,
            report.deployments,
            report.daily_rows,
            report.dora_rows,
            report.score_rows
        )?;
    }
    Ok(())
}

/// Notifications sent, retried and dead-lettered by one [`send_due`] round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendReport {
    pub sent: u64,
    pub failed: u64,
    pub dead: u64,
}

/// Sends up to `batch` due notifications (claimed, and their attempts counted, first).
pub async fn send_due(
    db: &DatabaseConnection,
    http: &reqwest::Client,
    policy: &notify::Policy,
    batch: i64,
) -> Result<SendReport, DbErr> {
    let mut report = SendReport::default();
    for n in notify::claim_due(db, policy, batch).await? {
        let result = match &n.url {
            None => Err(notify::Failure {
                permanent: true,
                error: "the organization has no notification URL".to_owned(),
            }),
            Some(url) => post(http, policy, url, n.secret.as_deref(), n.id, &n.body).await,
        };
        match notify::record(db, policy, &n, result).await? {
            notify::Outcome::Sent => report.sent += 1,
            notify::Outcome::Retrying => report.failed += 1,
            notify::Outcome::Dead => report.dead += 1,
        }
    }
    Ok(report)
}

/// One POST of a notification body.
async fn post(
    http: &reqwest::Client,
    policy: &notify::Policy,
    url: &str,
    secret: Option<&str>,
    id: i64,
    body: &str,
) -> Result<(), notify::Failure> {
    let mut request = http
        .post(url)
        .timeout(policy.timeout)
        .header("content-type", "application/json")
        .header("user-agent", "DevPulse-Notifications")
        .header("x-devpulse-event", "health_alert")
        .header("x-devpulse-delivery", id.to_string());
    if let Some(secret) = secret {
        request = request.header(
            "x-devpulse-signature-256",
            notify::signature(secret.as_bytes(), body.as_bytes()),
        );
    }
    let response = request
        .body(body.to_owned())
        .send()
        .await
        .map_err(|e| notify::Failure {
            permanent: false,
            error: format!("request failed: {e}"),
        })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    Err(notify::Failure {
        permanent: status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429,
        error: format!("the receiver answered {status}"),
    })
}
