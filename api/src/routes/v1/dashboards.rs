//! The dashboards' reads: organization overview, teams, developers, repositories, DORA series,
//! daily metrics, and the metric definitions. Only precomputed tables are read (`jobs::reads`);
//! organization-wide answers, and person pages per viewer, are served from the replica's
//! [`ReadCache`](crate::read_cache::ReadCache).
// utoipa's `path` macro spells the parameter types out in full.
#![allow(unused_qualifications)]

use axum::{
    Extension, Json,
    body::Bytes,
    extract::State,
    http::{HeaderValue, Uri, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::NaiveDate;
use jobs::{
    attendance::summaries::Summary,
    people::{OrgId, UserId, accounts, teams, tenant},
    reads::{
        self, Alert, DailyCursor, DailyMetrics, DayRange, DoraMetrics, Person, ReliabilityScore,
        RepositoryTotals,
    },
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiPath, ApiQuery};
use crate::{
    auth::Caller,
    error::{ApiError, ReadErrors},
    startup::AppState,
};

/// Days shown when a request names no range.
const DEFAULT_DAYS: i64 = 28;

/// A date range (organization time zone, inclusive; default: the 28 days ending today; at most
/// 366 days).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    /// First day, `YYYY-MM-DD`.
    from: Option<NaiveDate>,
    /// Last day, `YYYY-MM-DD`.
    to: Option<NaiveDate>,
}

async fn range<C: sea_orm::ConnectionTrait>(
    db: &C,
    org: OrgId,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Result<DayRange, ApiError> {
    let today = reads::today(db, org).await?;
    Ok(DayRange::resolve(from, to, today, DEFAULT_DAYS)?)
}

/// The cache key of an answer everyone in the organization gets: the request's path and query.
fn shared_key(uri: &Uri) -> String {
    uri.path_and_query()
        .map_or(uri.path(), |pq| pq.as_str())
        .to_owned()
}

/// The cache key of an answer that depends on who asks: theirs alone.
fn viewer_key(uri: &Uri, caller: &Caller) -> String {
    format!("{} as {}", shared_key(uri), caller.user.0)
}

/// Serves an answer from the organization's cache under `key`, or computes and caches it (errors
/// are not kept).
async fn cached<T, F>(
    state: &AppState,
    org: OrgId,
    key: &str,
    compute: F,
) -> Result<Response, ApiError>
where
    T: Serialize,
    F: Future<Output = Result<T, ApiError>>,
{
    let entry = match state.reads.get(org, key) {
        Some(hit) => hit,
        None => {
            let generation = state.reads.generation(org);
            let value = compute.await?;
            let body = serde_json::to_vec(&value)
                .map_err(|e| ApiError::Internal(format!("serializing an answer: {e}")))?;
            state.reads.insert(org, key, generation, Bytes::from(body))
        }
    };
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        entry.body.clone(),
    )
        .into_response();
    if let Ok(etag) = HeaderValue::from_str(&entry.etag) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

/// The organization as the dashboards name it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationSummary {
    pub id: i64,
    pub name: String,
    pub time_zone: String,
}

/// Sums over a range of daily rows.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Totals {
    pub prs_opened: i64,
    pub prs_merged: i64,
    pub prs_closed_unmerged: i64,
    pub reviews_given: i64,
    pub review_comments: i64,
    pub commits: i64,
    pub deployments: i64,
    pub failed_deployments: i64,
}

impl Totals {
    fn of(days: &[DailyMetrics]) -> Self {
        days.iter().fold(Self::default(), |t, d| Self {
            prs_opened: t.prs_opened + i64::from(d.prs_opened),
            prs_merged: t.prs_merged + i64::from(d.prs_merged),
            prs_closed_unmerged: t.prs_closed_unmerged + i64::from(d.prs_closed_unmerged),
            reviews_given: t.reviews_given + i64::from(d.reviews_given),
            review_comments: t.review_comments + i64::from(d.review_comments),
            commits: t.commits + i64::from(d.commits),
            deployments: t.deployments + i64::from(d.deployments),
            failed_deployments: t.failed_deployments + i64::from(d.failed_deployments),
        })
    }
}

/// The organization overview: DORA tiles with bands, the Delivery Reliability Score and its
/// components, and their trends over the range.
#[derive(Debug, Serialize, ToSchema)]
pub struct Overview {
    pub organization: OrganizationSummary,
    pub range: DayRange,
    /// The 28-day DORA metrics as of the range's last day (absent before any deployment data).
    pub dora: Option<DoraMetrics>,
    /// The latest week's score in the range.
    pub reliability: Option<ReliabilityScore>,
    pub totals: Totals,
    /// Organization-scope daily metrics; a missing day means zeros.
    pub trend: Vec<DailyMetrics>,
    /// The 28-day DORA window ending on each day of the range.
    pub dora_trend: Vec<DoraMetrics>,
    /// One score per ISO week of the range.
    pub reliability_trend: Vec<ReliabilityScore>,
    /// Open alerts about the organization's work: stale and unreviewed pull requests, failing
    /// deployments, dead letters (not those about a person's time).
    pub open_alerts: i64,
}

/// Organization overview.
#[utoipa::path(get, path = "/api/v1/overview", tag = "dashboards", params(RangeQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Overview), ReadErrors))]
#[tracing::instrument(skip_all, fields(org = %caller.org))]
pub async fn overview(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    ApiQuery(query): ApiQuery<RangeQuery>,
) -> Result<Response, ApiError> {
    let org = caller.org;
    cached(&state, org, &shared_key(&uri), async {
        let txn = tenant::begin(&state.db, org).await?;
        let organization = accounts::organization_by_id(&txn, org).await?;
        let range = range(&txn, org, query.from, query.to).await?;
        let trend = reads::daily(&txn, org, "org", "org", range).await?;
        let dora_trend = reads::dora_series(&txn, org, None, 28, range).await?;
        let dora = reads::dora_latest(&txn, org, range.to)
            .await?
            .into_iter()
            .find(|d| d.repository.is_none());
        let reliability_trend = reads::scores(&txn, org, "org", "org", range).await?;
        let open_alerts = reads::open_work_alerts(&txn, org).await?;
        txn.commit().await?;
        Ok(Overview {
            organization: OrganizationSummary {
                id: organization.id,
                name: organization.name,
                time_zone: organization.time_zone,
            },
            range,
            dora,
            reliability: reliability_trend.last().cloned(),
            totals: Totals::of(&trend),
            trend,
            dora_trend,
            reliability_trend,
            open_alerts,
        })
    })
    .await
}

/// A team's page.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamMetrics {
    pub team: teams::Team,
    pub range: DayRange,
    pub totals: Totals,
    /// Team-scope daily metrics (its members' work); a missing day means zeros.
    pub daily: Vec<DailyMetrics>,
    /// The team's Delivery Reliability Score per ISO week.
    pub reliability: Vec<ReliabilityScore>,
}

/// A team's metrics (its members and the organization's admins).
#[utoipa::path(get, path = "/api/v1/teams/{team_id}/metrics", tag = "dashboards",
    params(("team_id" = i64, Path, description = "The team"), RangeQuery),
    security(("bearer" = [])),
    responses((status = 200, body = TeamMetrics), ReadErrors))]
#[tracing::instrument(skip_all, fields(org = %caller.org, team = team_id))]
pub async fn team(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(team_id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<RangeQuery>,
) -> Result<Json<TeamMetrics>, ApiError> {
    let org = caller.org;
    let txn = tenant::begin(&state.db, org).await?;
    let team = teams::get(&txn, &caller.viewer(), team_id).await?;
    let range = range(&txn, org, query.from, query.to).await?;
    let key = team.id.to_string();
    let daily = reads::daily(&txn, org, "team", &key, range).await?;
    let reliability = reads::scores(&txn, org, "team", &key, range).await?;
    txn.commit().await?;
    Ok(Json(TeamMetrics {
        team,
        range,
        totals: Totals::of(&daily),
        daily,
        reliability,
    }))
}

/// A developer's page: everything the dashboards keep about them over the range.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeveloperPage {
    pub user: Person,
    pub range: DayRange,
    pub totals: Totals,
    /// Their user-scope daily metrics (by their GitHub login; empty without one).
    pub daily: Vec<DailyMetrics>,
    /// Their attendance per day, from their work sessions.
    pub attendance: Vec<Summary>,
    /// Alerts about them (open and resolved, newest first, at most 50).
    pub alerts: Vec<Alert>,
}

/// A developer's page (themselves; their managers; the organization's admins).
#[utoipa::path(get, path = "/api/v1/developers/{user_id}", tag = "dashboards",
    params(("user_id" = i64, Path, description = "The person"), RangeQuery),
    security(("bearer" = [])),
    responses((status = 200, body = DeveloperPage), ReadErrors))]
#[tracing::instrument(skip_all, fields(org = %caller.org, user = %caller.user))]
pub async fn developer(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    ApiPath(user_id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<RangeQuery>,
) -> Result<Response, ApiError> {
    // Per viewer: who may see whom is decided while computing; any change to people, teams,
    // metrics or attendance of the organization drops the answer.
    cached(&state, caller.org, &viewer_key(&uri, &caller), async {
        let mut client = state.read_pool.get().await?;
        let txn = tenant::begin_read(&mut client, caller.org).await?;
        let data = reads::person_data(
            &txn,
            &caller.viewer(),
            UserId(user_id),
            query.from,
            query.to,
            DEFAULT_DAYS,
        )
        .await?;
        txn.commit().await?;
        Ok(DeveloperPage {
            totals: Totals::of(&data.daily),
            user: data.person,
            range: data.range,
            daily: data.daily,
            attendance: data.attendance,
            alerts: data.alerts,
        })
    })
    .await
}

/// A repository with its totals and its latest 28-day DORA metrics.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepositoryOverview {
    pub totals: RepositoryTotals,
    pub dora: Option<DoraMetrics>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Repositories {
    pub range: DayRange,
    pub repositories: Vec<RepositoryOverview>,
}

/// The organization's repositories.
#[utoipa::path(get, path = "/api/v1/repositories", tag = "dashboards", params(RangeQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Repositories), ReadErrors))]
#[tracing::instrument(skip_all, fields(org = %caller.org))]
pub async fn repositories(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    ApiQuery(query): ApiQuery<RangeQuery>,
) -> Result<Response, ApiError> {
    let org = caller.org;
    cached(&state, org, &shared_key(&uri), async {
        let txn = tenant::begin(&state.db, org).await?;
        let range = range(&txn, org, query.from, query.to).await?;
        let totals = reads::repository_totals(&txn, org, range).await?;
        let mut dora = reads::dora_latest(&txn, org, range.to).await?;
        txn.commit().await?;
        let repositories = totals
            .into_iter()
            .map(|totals| {
                let at = dora
                    .iter()
                    .position(|d| d.repository.as_deref() == Some(totals.repository.as_str()));
                RepositoryOverview {
                    dora: at.map(|i| dora.swap_remove(i)),
                    totals,
                }
            })
            .collect();
        Ok(Repositories {
            range,
            repositories,
        })
    })
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DoraQuery {
    /// First day, `YYYY-MM-DD` (default: 28 days before `to`).
    from: Option<NaiveDate>,
    /// Last day, `YYYY-MM-DD` (default: today).
    to: Option<NaiveDate>,
    /// `owner/name`; the whole organization when absent.
    repository: Option<String>,
    /// 7 or 28 (default 28).
    window: Option<i32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DoraSeries {
    pub range: DayRange,
    pub repository: Option<String>,
    pub window_days: i32,
    pub series: Vec<DoraMetrics>,
}

/// DORA metrics per day over a range (rolling window of 7 or 28 days).
#[utoipa::path(get, path = "/api/v1/dora", tag = "dashboards", params(DoraQuery),
    security(("bearer" = [])),
    responses((status = 200, body = DoraSeries), ReadErrors))]
#[tracing::instrument(skip_all, fields(org = %caller.org))]
pub async fn dora(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    ApiQuery(query): ApiQuery<DoraQuery>,
) -> Result<Response, ApiError> {
    let window_days = query.window.unwrap_or(28);
    if !matches!(window_days, 7 | 28) {
        return Err(ApiError::unprocessable(
            "invalid_window",
            "`window` is 7 or 28 (days)",
        ));
    }
    let org = caller.org;
    cached(&state, org, &shared_key(&uri), async {
        let txn = tenant::begin(&state.db, org).await?;
        let range = range(&txn, org, query.from, query.to).await?;
        let series =
            reads::dora_series(&txn, org, query.repository.as_deref(), window_days, range).await?;
        txn.commit().await?;
        Ok(DoraSeries {
            range,
            repository: query.repository,
            window_days,
            series,
        })
    })
    .await
}

/// The scope of a daily-metrics row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Org,
    Team,
    Repository,
    User,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Self::Org => "org",
            Self::Team => "team",
            Self::Repository => "repository",
            Self::User => "user",
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DailyQuery {
    #[param(inline)]
    scope: Scope,
    /// One key of the scope: `org`, a team id, `owner/name`, a GitHub login.
    key: Option<String>,
    /// First day, `YYYY-MM-DD`.
    from: Option<NaiveDate>,
    /// Last day, `YYYY-MM-DD`.
    to: Option<NaiveDate>,
    /// Rows per page, 1–500 (default 100).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A page of rows; `next_cursor` fetches the next one (absent on the last page).
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

pub(super) fn limit(requested: Option<u32>) -> Result<u64, ApiError> {
    match requested.unwrap_or(100) {
        n @ 1..=500 => Ok(u64::from(n)),
        _ => Err(ApiError::unprocessable(
            "invalid_limit",
            "`limit` is between 1 and 500",
        )),
    }
}

impl<T> Page<T> {
    /// A page of at most `limit` items; a full page gets a cursor made of `key(last item)`.
    pub(super) fn new(items: Vec<T>, limit: u64, key: impl Fn(&T) -> Vec<String>) -> Self {
        let next_cursor = (items.len() as u64 == limit)
            .then(|| items.last())
            .flatten()
            .map(|last| URL_SAFE_NO_PAD.encode(key(last).join("\n")));
        Self { items, next_cursor }
    }
}

fn invalid_cursor() -> ApiError {
    ApiError::BadRequest {
        code: "invalid_cursor",
        message: "`cursor` is not one this API gave out; start again without it".to_owned(),
    }
}

/// The `N` fields of a cursor [`Page::new`] gave out.
pub(super) fn decode_cursor<const N: usize>(cursor: &str) -> Result<[String; N], ApiError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| invalid_cursor())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid_cursor())?;
    if text.contains('\0') {
        return Err(invalid_cursor());
    }
    let fields: Vec<String> = text.split('\n').map(str::to_owned).collect();
    fields.try_into().map_err(|_| invalid_cursor())
}

/// One field of a cursor, parsed.
pub(super) fn cursor_field<T: std::str::FromStr>(field: &str) -> Result<T, ApiError> {
    field.parse().map_err(|_| invalid_cursor())
}

/// A date or time field of a cursor: parsed, and within the years PostgreSQL and DevPulse keep.
pub(super) fn cursor_time<T: std::str::FromStr + chrono::Datelike>(
    field: &str,
) -> Result<T, ApiError> {
    let value: T = cursor_field(field)?;
    if (1970..=9999).contains(&value.year()) {
        Ok(value)
    } else {
        Err(invalid_cursor())
    }
}

/// Daily metrics of one scope over a range, by day then key, a page at a time. In the `user`
/// scope a manager sees their teams' people and a developer themselves.
#[utoipa::path(get, path = "/api/v1/metrics/daily", tag = "dashboards", params(DailyQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<DailyMetrics>), ReadErrors))]
#[tracing::instrument(skip_all, fields(org = %caller.org))]
pub async fn daily(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(query): ApiQuery<DailyQuery>,
) -> Result<Json<Page<DailyMetrics>>, ApiError> {
    let limit = limit(query.limit)?;
    let after = match query
        .cursor
        .as_deref()
        .map(decode_cursor::<2>)
        .transpose()?
    {
        Some([day, scope_key]) => Some(DailyCursor {
            day: cursor_time(&day)?,
            scope_key,
        }),
        None => None,
    };
    let org = caller.org;
    let viewer = caller.viewer();
    let txn = tenant::begin(&state.db, org).await?;
    let range = range(&txn, org, query.from, query.to).await?;
    // People's rows follow who may see whom; owners and admins see everyone's, and GitHub
    // accounts with no DevPulse user (bots, outside contributors) only they see.
    let visible = if query.scope == Scope::User && !caller.role.administers() {
        Some(
            accounts::list_users(&txn, &viewer)
                .await?
                .into_iter()
                .filter_map(|u| u.github_login)
                .collect::<Vec<_>>(),
        )
    } else {
        None
    };
    let items = reads::daily_page(
        &txn,
        org,
        query.scope.as_str(),
        query.key.as_deref(),
        visible.as_deref(),
        range,
        after.as_ref(),
        limit,
    )
    .await?;
    txn.commit().await?;
    Ok(Json(Page::new(items, limit, |last| {
        vec![last.day.to_string(), last.scope_key.clone()]
    })))
}

/// One definition: a section of docs/METRICS.md, or one field of its tables.
#[derive(Debug, Serialize, ToSchema)]
pub struct Definition {
    /// The field (`cycle_time_p50_s`) or the section's heading.
    pub name: String,
    /// The heading of the section it belongs to.
    pub section: String,
    /// Markdown.
    pub text: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Definitions {
    /// Always `markdown`.
    pub format: String,
    /// docs/METRICS.md, verbatim.
    pub text: String,
    /// Each table row of it, by field name (what the dashboards show on hover).
    pub fields: Vec<Definition>,
}

/// The published definitions, compiled in from the repository's docs/METRICS.md.
pub const METRICS_MD: &str = include_str!("../../../../docs/METRICS.md");

/// Every section of `markdown` (named by the first `code` word of its heading, else the heading;
/// defined by its first paragraph) and every field named in the first cell of a table row, with
/// the rest of the row.
pub fn field_definitions(markdown: &str) -> Vec<Definition> {
    let mut section = String::new();
    let mut out = Vec::new();
    // The section whose first paragraph is being read.
    let mut intro: Option<Definition> = None;
    for line in markdown.lines() {
        if let Some(heading) = line.strip_prefix('#') {
            out.extend(intro.take());
            section = heading.trim_start_matches('#').trim().to_owned();
            let name = section
                .split('`')
                .nth(1)
                .filter(|code| !code.is_empty())
                .unwrap_or(&section);
            intro = Some(Definition {
                name: name.to_owned(),
                section: section.clone(),
                text: String::new(),
            });
            continue;
        }
        if let Some(def) = intro.as_mut() {
            let text = line.trim();
            if text.is_empty() || text.starts_with('|') {
                if !def.text.is_empty() || text.starts_with('|') {
                    out.extend(intro.take());
                }
            } else {
                if !def.text.is_empty() {
                    def.text.push(' ');
                }
                def.text.push_str(text);
            }
        }
        let Some(row) = line.strip_prefix('|') else {
            continue;
        };
        let mut cells = row.splitn(2, '|');
        let (Some(names), Some(rest)) = (cells.next(), cells.next()) else {
            continue;
        };
        let text = rest
            .trim()
            .trim_end_matches('|')
            .trim()
            .replace(" | ", ": ");
        for name in names.split('`').skip(1).step_by(2) {
            if name.is_empty() || text.starts_with("---") || text.is_empty() {
                continue;
            }
            let expanded = name
                .strip_prefix('_')
                .and_then(|suffix| {
                    // `cycle_time_p50_s`, `_p75_s`: a suffix of the previous name.
                    out.last().map(|prev: &Definition| {
                        let stem = prev.name.rsplitn(3, '_').last().unwrap_or(&prev.name);
                        format!("{stem}_{suffix}")
                    })
                })
                .unwrap_or_else(|| name.to_owned());
            out.push(Definition {
                name: expanded,
                section: section.clone(),
                text: text.clone(),
            });
        }
    }
    out.extend(intro);
    out.retain(|d| !d.text.is_empty());
    out
}

/// The metric definitions (docs/METRICS.md).
#[utoipa::path(get, path = "/api/v1/metrics/definitions", tag = "dashboards",
    security(("bearer" = [])),
    responses((status = 200, body = Definitions), ReadErrors))]
pub async fn definitions() -> Json<Definitions> {
    Json(Definitions {
        format: "markdown".to_owned(),
        text: METRICS_MD.to_owned(),
        fields: field_definitions(METRICS_MD),
    })
}
