//! What dashboards read: the precomputed tables (`daily_metrics`, `dora_metrics`,
//! `reliability_scores`, `attendance_summaries`, `health_alerts`), never the raw PR or session
//! tables. Every query is bounded by an index range of one organization.
//!
//! On sea-orm, rows come back from PostgreSQL as `to_jsonb(row)` and are read into the types
//! below (`deny_unknown_fields`), so a column and its field cannot drift apart silently. The
//! person page's hot path, [`person_data`], is on tokio-postgres with typed rows instead (see
//! `tenant::begin_read` and docs/BENCHMARKS.md, "Dashboard reads").

use chrono::{NaiveDate, TimeDelta};
use sea_orm::{ConnectionTrait, DbErr};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{
    domain::stmt,
    people::{
        OrgId, PeopleError, UserId,
        accounts::{self, Viewer},
    },
};

/// The longest date range one request may ask for.
pub const MAX_SPAN_DAYS: i64 = 366;

/// A validated, inclusive range of days (organization time zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DayRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl DayRange {
    /// `from`..=`to`, defaulting to the `default_days` days ending `today`; `from` after `to` or
    /// more than [`MAX_SPAN_DAYS`] days are refused with a message saying so.
    pub fn resolve(
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        today: NaiveDate,
        default_days: i64,
    ) -> Result<Self, PeopleError> {
        let earliest = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or(NaiveDate::MIN);
        let latest = NaiveDate::from_ymd_opt(9999, 12, 31).unwrap_or(NaiveDate::MAX);
        for day in [from, to].into_iter().flatten() {
            if day < earliest || day > latest {
                return Err(PeopleError::invalid(
                    "invalid_range",
                    format!("{day} is outside the days DevPulse keeps (1970-01-01 to 9999-12-31)"),
                ));
            }
        }
        let to = to.unwrap_or(today);
        let from = from.unwrap_or_else(|| {
            to.checked_sub_signed(TimeDelta::days(default_days - 1))
                .unwrap_or(earliest)
                .max(earliest)
        });
        if from > to {
            return Err(PeopleError::invalid(
                "invalid_range",
                format!("`from` ({from}) is after `to` ({to})"),
            ));
        }
        if (to - from).num_days() >= MAX_SPAN_DAYS {
            return Err(PeopleError::invalid(
                "invalid_range",
                format!("at most {MAX_SPAN_DAYS} days from `from` to `to`"),
            ));
        }
        Ok(Self { from, to })
    }
}

/// Today in the organization's time zone.
pub async fn today<C: ConnectionTrait>(db: &C, org: OrgId) -> Result<NaiveDate, PeopleError> {
    let row = db
        .query_one_raw(stmt(
            "SELECT (now() AT TIME ZONE time_zone)::date AS today FROM organizations WHERE id = $1",
            [org.0.into()],
        ))
        .await?
        .ok_or(PeopleError::NotFound("no such organization"))?;
    Ok(row.try_get("", "today")?)
}

/// One day of `daily_metrics` for one scope (docs/METRICS.md, `daily_metrics`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DailyMetrics {
    pub day: NaiveDate,
    pub scope: String,
    pub scope_key: String,
    pub prs_opened: i32,
    pub prs_merged: i32,
    pub prs_closed_unmerged: i32,
    pub reviews_given: i32,
    pub review_comments: i32,
    pub commits: i32,
    pub additions: i64,
    pub deletions: i64,
    pub cycle_time_p50_s: Option<i64>,
    pub cycle_time_p75_s: Option<i64>,
    pub cycle_time_p90_s: Option<i64>,
    pub coding_time_p50_s: Option<i64>,
    pub pickup_time_p50_s: Option<i64>,
    pub review_time_p50_s: Option<i64>,
    pub deploy_time_p50_s: Option<i64>,
    pub deployments: i32,
    pub failed_deployments: i32,
}

const DAILY_COLUMNS: &str = "day, scope, scope_key, prs_opened, prs_merged, prs_closed_unmerged, \
    reviews_given, review_comments, commits, additions, deletions, cycle_time_p50_s, \
    cycle_time_p75_s, cycle_time_p90_s, coding_time_p50_s, pickup_time_p50_s, review_time_p50_s, \
    deploy_time_p50_s, deployments, failed_deployments";

/// One day of `dora_metrics` (docs/METRICS.md, `dora_metrics`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DoraMetrics {
    pub day: NaiveDate,
    /// `owner/name`; absent for the whole organization.
    pub repository: Option<String>,
    pub window_days: i32,
    pub deployments: i32,
    pub deploy_days: i32,
    pub deploy_days_per_week: f64,
    /// `elite`, `high`, `medium` or `low`.
    pub band: String,
    pub lead_time_p50_s: Option<i64>,
    pub lead_time_count: i32,
    pub change_failure_rate: Option<f64>,
    pub failed_deployments: i32,
    pub recovery_time_p50_s: Option<i64>,
    pub recovery_count: i32,
    pub unrecovered_count: i32,
}

const DORA_COLUMNS: &str = "day, repository, window_days, deployments, deploy_days, \
    deploy_days_per_week, band, lead_time_p50_s, lead_time_count, change_failure_rate, \
    failed_deployments, recovery_time_p50_s, recovery_count, unrecovered_count";

/// One ISO week's Delivery Reliability Score (docs/METRICS.md, `reliability_scores`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReliabilityScore {
    /// The Monday of the week.
    pub week: NaiveDate,
    pub iso_week: String,
    pub scope: String,
    pub scope_key: String,
    /// 0–100; absent when no component could be measured.
    pub score: Option<f64>,
    pub flow_predictability: Option<f64>,
    pub review_responsiveness: Option<f64>,
    pub change_stability: Option<f64>,
    pub wip_hygiene: Option<f64>,
    pub prs_merged: i32,
    pub prs_merged_on_target: i32,
    pub prs_first_reviewed: i32,
    pub prs_picked_up_in_sla: i32,
    pub deployments: i32,
    pub failed_deployments: i32,
    pub open_prs: i32,
    pub idle_open_prs: i32,
    /// The weight of each component used for `score`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub weights: serde_json::Value,
}

const SCORE_COLUMNS: &str = "week, iso_week, scope, scope_key, score, flow_predictability, \
    review_responsiveness, change_stability, wip_hygiene, prs_merged, prs_merged_on_target, \
    prs_first_reviewed, prs_picked_up_in_sla, deployments, failed_deployments, open_prs, \
    idle_open_prs, weights";

/// A health alert (docs/METRICS.md, `health_alerts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Alert {
    pub id: i64,
    pub kind: String,
    pub subject: String,
    /// The person it concerns, if any.
    pub user_id: Option<i64>,
    pub message: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: serde_json::Value,
    pub opened_at: chrono::DateTime<chrono::Utc>,
    pub last_seen_at: chrono::DateTime<chrono::Utc>,
    pub resolved_at: Option<chrono::DateTime<chrono::Utc>>,
    pub acknowledged_at: Option<chrono::DateTime<chrono::Utc>>,
    pub acknowledged_by: Option<i64>,
}

const ALERT_COLUMNS: &str = "a.id, a.kind, a.subject, a.user_id, a.message, a.details, \
    a.opened_at, a.last_seen_at, a.resolved_at, a.acknowledged_at, a.acknowledged_by";

/// Runs `sql` and reads each row, as `to_jsonb`, into `T`.
async fn rows<T: DeserializeOwned, C: ConnectionTrait>(
    db: &C,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> Result<Vec<T>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            &format!("SELECT to_jsonb(r) AS j FROM ({sql}) r"),
            values,
        ))
        .await?;
    rows.iter()
        .map(|row| {
            let json: serde_json::Value = row.try_get("", "j")?;
            serde_json::from_value(json).map_err(|e| DbErr::Type(format!("reading a row: {e}")))
        })
        .collect()
}

/// `daily_metrics` of one scope and key over `range`, oldest first (a missing day means zeros).
pub async fn daily<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    scope: &str,
    key: &str,
    range: DayRange,
) -> Result<Vec<DailyMetrics>, DbErr> {
    rows(
        db,
        &format!(
            "SELECT {DAILY_COLUMNS} FROM daily_metrics WHERE org_id = $1 AND scope = $2 \
             AND scope_key = $3 AND day BETWEEN $4 AND $5 ORDER BY day"
        ),
        vec![
            org.0.into(),
            scope.into(),
            key.into(),
            range.from.into(),
            range.to.into(),
        ],
    )
    .await
}

/// Where a page of [`daily_page`] starts: after this day and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyCursor {
    pub day: NaiveDate,
    pub scope_key: String,
}

/// A page of `daily_metrics` of one scope over `range`, by day then key; `key` narrows it to one
/// key; `visible_logins` (for the `user` scope) to the people the caller may see.
#[allow(clippy::too_many_arguments)]
pub async fn daily_page<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    scope: &str,
    key: Option<&str>,
    visible_logins: Option<&[String]>,
    range: DayRange,
    after: Option<&DailyCursor>,
    limit: u64,
) -> Result<Vec<DailyMetrics>, DbErr> {
    let (after_day, after_key) =
        after.map_or((None, None), |c| (Some(c.day), Some(c.scope_key.clone())));
    rows(
        db,
        &format!(
            "SELECT {DAILY_COLUMNS} FROM daily_metrics WHERE org_id = $1 AND scope = $2 \
             AND day BETWEEN $3 AND $4 AND ($5::text IS NULL OR scope_key = $5) \
             AND ($6::text[] IS NULL OR lower(scope_key) = ANY ($6)) \
             AND ($7::date IS NULL OR (day, scope_key) > ($7, $8::text)) \
             ORDER BY day, scope_key LIMIT $9"
        ),
        vec![
            org.0.into(),
            scope.into(),
            range.from.into(),
            range.to.into(),
            key.map(str::to_owned).into(),
            visible_logins
                .map(|l| l.iter().map(|s| s.to_lowercase()).collect::<Vec<_>>())
                .into(),
            after_day.into(),
            after_key.into(),
            (limit as i64).into(),
        ],
    )
    .await
}

/// The organization's (`repository` None) or a repository's DORA rows of one window over
/// `range`, oldest first.
pub async fn dora_series<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    repository: Option<&str>,
    window_days: i32,
    range: DayRange,
) -> Result<Vec<DoraMetrics>, DbErr> {
    rows(
        db,
        &format!(
            "SELECT {DORA_COLUMNS} FROM dora_metrics WHERE org_id = $1 \
             AND COALESCE(repository, '') = COALESCE($2, '') AND window_days = $3 \
             AND day BETWEEN $4 AND $5 ORDER BY day"
        ),
        vec![
            org.0.into(),
            repository.map(str::to_owned).into(),
            window_days.into(),
            range.from.into(),
            range.to.into(),
        ],
    )
    .await
}

/// The latest 28-day DORA row on or before `day`, for the organization and each repository.
pub async fn dora_latest<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    day: NaiveDate,
) -> Result<Vec<DoraMetrics>, DbErr> {
    rows(
        db,
        &format!(
            "SELECT DISTINCT ON (COALESCE(repository, '')) {DORA_COLUMNS} FROM dora_metrics \
             WHERE org_id = $1 AND window_days = 28 AND day <= $2 \
             ORDER BY COALESCE(repository, ''), day DESC"
        ),
        vec![org.0.into(), day.into()],
    )
    .await
}

/// Reliability scores of one scope and key for the weeks that start in `range` or contain its
/// first day, oldest first.
pub async fn scores<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    scope: &str,
    key: &str,
    range: DayRange,
) -> Result<Vec<ReliabilityScore>, DbErr> {
    rows(
        db,
        &format!(
            "SELECT {SCORE_COLUMNS} FROM reliability_scores WHERE org_id = $1 AND scope = $2 \
             AND scope_key = $3 AND week BETWEEN $4::date - 6 AND $5 ORDER BY week"
        ),
        vec![
            org.0.into(),
            scope.into(),
            key.into(),
            range.from.into(),
            range.to.into(),
        ],
    )
    .await
}

/// Sums of a repository's daily metrics over a range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RepositoryTotals {
    /// `owner/name`.
    pub repository: String,
    pub prs_opened: i64,
    pub prs_merged: i64,
    pub reviews_given: i64,
    pub commits: i64,
    pub deployments: i64,
    pub failed_deployments: i64,
    /// The median of the days' `cycle_time_p50_s` (days with merges).
    pub cycle_time_p50_s: Option<i64>,
}

/// The organization's repositories with their totals over `range` (those with no activity
/// too), by name.
pub async fn repository_totals<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    range: DayRange,
) -> Result<Vec<RepositoryTotals>, DbErr> {
    rows(
        db,
        "SELECT r.full_name AS repository, \
            COALESCE(sum(d.prs_opened), 0)::bigint AS prs_opened, \
            COALESCE(sum(d.prs_merged), 0)::bigint AS prs_merged, \
            COALESCE(sum(d.reviews_given), 0)::bigint AS reviews_given, \
            COALESCE(sum(d.commits), 0)::bigint AS commits, \
            COALESCE(sum(d.deployments), 0)::bigint AS deployments, \
            COALESCE(sum(d.failed_deployments), 0)::bigint AS failed_deployments, \
            round(percentile_cont(0.5) WITHIN GROUP (ORDER BY d.cycle_time_p50_s))::bigint \
                AS cycle_time_p50_s \
         FROM repositories r \
         LEFT JOIN daily_metrics d ON d.org_id = r.organization_id AND d.scope = 'repository' \
            AND d.scope_key = r.full_name AND d.day BETWEEN $2 AND $3 \
         WHERE r.organization_id = $1 AND (r.removed_at IS NULL OR r.removed_at < r.installed_at) \
         GROUP BY r.full_name ORDER BY r.full_name",
        vec![org.0.into(), range.from.into(), range.to.into()],
    )
    .await
}

/// Which alerts: still open, resolved, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    #[default]
    Open,
    Resolved,
    All,
}

/// A page of the alerts `viewer` may see, newest first, after the alert `before` (an id).
///
/// An alert about nobody in particular (failing deployments, dead letters) is everyone's in the
/// organization; one about a person (a stale PR's author, a forgotten clock-out) follows the
/// person's visibility (`accounts::visible_sql`), except `inactivity`, which only the person and
/// the managers of their teams see (docs/METRICS.md).
pub async fn alerts<C: ConnectionTrait>(
    db: &C,
    viewer: &Viewer,
    status: AlertStatus,
    user: Option<UserId>,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<Alert>, DbErr> {
    let mut values = accounts::visibility_params(viewer).to_vec();
    values.extend([
        match status {
            AlertStatus::Open => "open",
            AlertStatus::Resolved => "resolved",
            AlertStatus::All => "all",
        }
        .into(),
        user.map(|u| u.0).into(),
        before.into(),
        (limit as i64).into(),
    ]);
    rows(
        db,
        &format!(
            "SELECT {ALERT_COLUMNS} FROM health_alerts a LEFT JOIN users u \
                ON u.id = a.user_id AND u.organization_id = a.org_id \
             WHERE a.org_id = $1 \
               AND (a.user_id IS NULL OR (u.id IS NOT NULL AND CASE WHEN a.kind = 'inactivity' \
                    THEN {} ELSE {} END)) \
               AND ($5 = 'all' OR ($5 = 'open') = (a.resolved_at IS NULL)) \
               AND ($6::bigint IS NULL OR a.user_id = $6) \
               AND ($7::bigint IS NULL OR a.id < $7) \
             ORDER BY a.id DESC LIMIT $8",
            accounts::visible_sql(false),
            accounts::visible_sql(true),
        ),
        values,
    )
    .await
}

/// Acknowledges an open alert `viewer` may see (once: a second call keeps the first time and
/// person); `NotFound` for one they may not see.
pub async fn acknowledge<C: ConnectionTrait>(
    db: &C,
    viewer: &Viewer,
    id: i64,
) -> Result<Alert, PeopleError> {
    let visible = visible_alert(db, viewer, id).await?;
    if visible.resolved_at.is_some() {
        return Err(PeopleError::conflict(
            "alert_resolved",
            "this alert is resolved; only open alerts are acknowledged",
        ));
    }
    db.execute_raw(stmt(
        "UPDATE health_alerts SET acknowledged_at = COALESCE(acknowledged_at, now()), \
            acknowledged_by = COALESCE(acknowledged_by, $2) WHERE org_id = $1 AND id = $3",
        [viewer.org.0.into(), viewer.user.0.into(), id.into()],
    ))
    .await?;
    visible_alert(db, viewer, id).await
}

async fn visible_alert<C: ConnectionTrait>(
    db: &C,
    viewer: &Viewer,
    id: i64,
) -> Result<Alert, PeopleError> {
    let Some(before) = id.checked_add(1) else {
        return Err(PeopleError::NotFound("no such alert"));
    };
    alerts(db, viewer, AlertStatus::All, None, Some(before), 1)
        .await?
        .into_iter()
        .find(|a| a.id == id)
        .ok_or(PeopleError::NotFound("no such alert"))
}

/// How many open alerts about the organization's work (stale and unreviewed pull requests,
/// failing deployments, dead letters) it has — not those about a person's time
/// (`forgotten_clock_out`, `inactivity`), which only some may see.
pub async fn open_work_alerts<C: ConnectionTrait>(db: &C, org: OrgId) -> Result<i64, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "SELECT count(*) AS n FROM health_alerts WHERE org_id = $1 AND resolved_at IS NULL \
               AND kind NOT IN ('forgotten_clock_out', 'inactivity')",
            [org.0.into()],
        ))
        .await?;
    Ok(row.map(|r| r.try_get("", "n")).transpose()?.unwrap_or(0))
}

/// The person a developer page is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub id: i64,
    pub display_name: String,
    pub role: crate::people::Role,
    pub github_login: Option<String>,
    pub active: bool,
}

/// Everything a developer page shows about one person over a range.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonData {
    pub person: Person,
    pub range: DayRange,
    /// Their user-scope daily metrics (by their GitHub login).
    pub daily: Vec<DailyMetrics>,
    pub attendance: Vec<crate::attendance::summaries::Summary>,
    /// Alerts about them, open and resolved, newest first (at most 50).
    pub alerts: Vec<Alert>,
}

fn pg(e: tokio_postgres::Error) -> PeopleError {
    PeopleError::Db(DbErr::Custom(format!("postgres: {e}")))
}

/// A person's page on the read path (a tokio-postgres tenant transaction, `tenant::begin_read`),
/// if `viewer` may see them (`accounts::visible_sql`; `inactivity` alerts only for the person
/// and their managers): `NotFound` when `target` is not of the organization, `Forbidden` when out
/// of reach. The range resolves against the organization's today. Typed rows, not JSON, and the
/// three reads sent together: PostgreSQL's `to_jsonb` would cost more than the rest of the page.
pub async fn person_data(
    txn: &deadpool_postgres::Transaction<'_>,
    viewer: &Viewer,
    target: UserId,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    default_days: i64,
) -> Result<PersonData, PeopleError> {
    let who = txn
        .prepare_cached(&format!(
            "SELECT u.id, u.display_name, u.role, u.github_login, u.active, {} AS visible, \
                (SELECT (now() AT TIME ZONE o.time_zone)::date FROM organizations o \
                 WHERE o.id = $1) AS today \
             FROM users u WHERE u.organization_id = $1 AND u.id = $5",
            accounts::visible_sql(true)
        ))
        .await
        .map_err(pg)?;
    let manager = viewer.role == crate::people::Role::Manager;
    let row = txn
        .query_opt(
            &who,
            &[
                &viewer.org.0,
                &viewer.role.administers(),
                &viewer.user.0,
                &manager,
                &target.0,
            ],
        )
        .await
        .map_err(pg)?
        .ok_or(PeopleError::NotFound("no such user"))?;
    if !row.try_get::<_, bool>("visible").map_err(pg)? {
        return Err(PeopleError::Forbidden(
            "your role does not allow reading this person's data".to_owned(),
        ));
    }
    let role: String = row.try_get("role").map_err(pg)?;
    let person = Person {
        id: row.try_get("id").map_err(pg)?,
        display_name: row.try_get("display_name").map_err(pg)?,
        role: role
            .parse()
            .map_err(|e: String| PeopleError::Db(DbErr::Custom(e)))?,
        github_login: row.try_get("github_login").map_err(pg)?,
        active: row.try_get("active").map_err(pg)?,
    };
    let range = DayRange::resolve(from, to, row.try_get("today").map_err(pg)?, default_days)?;

    let (daily, attendance, alerts) = tokio::try_join!(
        async {
            let statement = txn
                .prepare_cached(&format!(
                    "SELECT {DAILY_COLUMNS} FROM daily_metrics WHERE org_id = $1 \
                     AND scope = 'user' AND scope_key = $2 AND day BETWEEN $3 AND $4 ORDER BY day"
                ))
                .await?;
            match &person.github_login {
                Some(login) => {
                    txn.query(&statement, &[&viewer.org.0, login, &range.from, &range.to])
                        .await
                }
                None => Ok(Vec::new()),
            }
        },
        async {
            let statement = txn
                .prepare_cached(&format!(
                    "SELECT {} FROM attendance_summaries WHERE organization_id = $1 \
                     AND user_id = $2 AND day BETWEEN $3 AND $4 ORDER BY day",
                    crate::attendance::summaries::COLUMNS
                ))
                .await?;
            txn.query(
                &statement,
                &[&viewer.org.0, &person.id, &range.from, &range.to],
            )
            .await
        },
        async {
            // $2 is unused but typed, so the parameters stay those of `visibility_params`.
            let statement = txn
                .prepare_cached(&format!(
                    "SELECT {ALERT_COLUMNS} FROM health_alerts a JOIN users u \
                        ON u.id = a.user_id AND u.organization_id = a.org_id \
                     WHERE a.org_id = $1 AND a.user_id = $5 AND $2::bool IS NOT NULL \
                       AND (a.kind <> 'inactivity' OR {}) \
                     ORDER BY a.id DESC LIMIT 50",
                    accounts::visible_sql(false)
                ))
                .await?;
            txn.query(
                &statement,
                &[
                    &viewer.org.0,
                    &viewer.role.administers(),
                    &viewer.user.0,
                    &manager,
                    &person.id,
                ],
            )
            .await
        },
    )
    .map_err(pg)?;
    Ok(PersonData {
        person,
        range,
        daily: daily
            .iter()
            .map(daily_row)
            .collect::<Result<_, _>>()
            .map_err(pg)?,
        attendance: attendance
            .iter()
            .map(summary_row)
            .collect::<Result<_, _>>()
            .map_err(pg)?,
        alerts: alerts
            .iter()
            .map(alert_row)
            .collect::<Result<_, _>>()
            .map_err(pg)?,
    })
}

fn daily_row(r: &tokio_postgres::Row) -> Result<DailyMetrics, tokio_postgres::Error> {
    Ok(DailyMetrics {
        day: r.try_get("day")?,
        scope: r.try_get("scope")?,
        scope_key: r.try_get("scope_key")?,
        prs_opened: r.try_get("prs_opened")?,
        prs_merged: r.try_get("prs_merged")?,
        prs_closed_unmerged: r.try_get("prs_closed_unmerged")?,
        reviews_given: r.try_get("reviews_given")?,
        review_comments: r.try_get("review_comments")?,
        commits: r.try_get("commits")?,
        additions: r.try_get("additions")?,
        deletions: r.try_get("deletions")?,
        cycle_time_p50_s: r.try_get("cycle_time_p50_s")?,
        cycle_time_p75_s: r.try_get("cycle_time_p75_s")?,
        cycle_time_p90_s: r.try_get("cycle_time_p90_s")?,
        coding_time_p50_s: r.try_get("coding_time_p50_s")?,
        pickup_time_p50_s: r.try_get("pickup_time_p50_s")?,
        review_time_p50_s: r.try_get("review_time_p50_s")?,
        deploy_time_p50_s: r.try_get("deploy_time_p50_s")?,
        deployments: r.try_get("deployments")?,
        failed_deployments: r.try_get("failed_deployments")?,
    })
}

fn summary_row(
    r: &tokio_postgres::Row,
) -> Result<crate::attendance::summaries::Summary, tokio_postgres::Error> {
    Ok(crate::attendance::summaries::Summary {
        user_id: r.try_get("user_id")?,
        day: r.try_get("day")?,
        first_in: r.try_get("first_in")?,
        last_out: r.try_get("last_out")?,
        worked_seconds: r.try_get("worked_seconds")?,
        idle_seconds: r.try_get("idle_seconds")?,
        active_seconds: r.try_get("active_seconds")?,
        sessions: r.try_get("sessions")?,
        overtime_seconds: r.try_get("overtime_seconds")?,
        auto_closed: r.try_get("auto_closed")?,
    })
}

fn alert_row(r: &tokio_postgres::Row) -> Result<Alert, tokio_postgres::Error> {
    Ok(Alert {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        subject: r.try_get("subject")?,
        user_id: r.try_get("user_id")?,
        message: r.try_get("message")?,
        details: r.try_get("details")?,
        opened_at: r.try_get("opened_at")?,
        last_seen_at: r.try_get("last_seen_at")?,
        resolved_at: r.try_get("resolved_at")?,
        acknowledged_at: r.try_get("acknowledged_at")?,
        acknowledged_by: r.try_get("acknowledged_by")?,
    })
}

/// One run of a cron schedule (`schedule_ticks`), as admins see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CronRun {
    pub schedule: String,
    /// The scheduled time the run is for.
    pub tick: chrono::DateTime<chrono::Utc>,
    /// The worker process that ran it.
    pub claimed_by: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    /// `ok`, `failed`, or absent while running (or when its worker died).
    pub outcome: Option<String>,
    pub detail: Option<String>,
}

/// Cron runs, newest first; `schedule` narrows to one; `before` is the `tick` a page ends at.
pub async fn cron_runs<C: ConnectionTrait>(
    db: &C,
    schedule: Option<&str>,
    before: Option<(chrono::DateTime<chrono::Utc>, String)>,
    limit: u64,
) -> Result<Vec<CronRun>, DbErr> {
    let (before_tick, before_schedule) = before.map_or((None, None), |(t, s)| (Some(t), Some(s)));
    rows(
        db,
        "SELECT schedule, tick, claimed_by, started_at, finished_at, outcome, detail \
         FROM schedule_ticks WHERE ($1::text IS NULL OR schedule = $1) \
           AND ($2::timestamptz IS NULL OR (tick, schedule) < ($2, $3::text)) \
         ORDER BY tick DESC, schedule DESC LIMIT $4",
        vec![
            schedule.map(str::to_owned).into(),
            before_tick.into(),
            before_schedule.into(),
            (limit as i64).into(),
        ],
    )
    .await
}
