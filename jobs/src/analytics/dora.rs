//! `dora_metrics`: windows of 7 and 28 days ending on each target day, for the organization and
//! for each repository from the day of its first successful production deployment.
//!
//! Three set-based reads bring per-day aggregates (deployments, failures, recovery and lead-time
//! values grouped by repository and day); the windows are then slid over the days in memory —
//! each day enters and leaves a window once — and every row is written by one `INSERT`. Sorting
//! the values of each window in SQL read every value 35 times and dominated a full recompute.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};

use super::compute::{WINDOWS, replace};
use super::median::{Window, percentile_cont_sorted, rolling};
use crate::domain::stmt;

/// One scope's per-day inputs: `(day, value)` samples sorted by day.
#[derive(Default)]
struct Scope {
    /// First day with a successful production deployment (`None`: the organization, every day).
    since: Option<i32>,
    /// Per day: successful production deployments and those that failed.
    deployments: BTreeMap<i32, (i64, i64)>,
    unrecovered: BTreeMap<i32, i64>,
    recovery: Vec<(i32, i64)>,
    lead: Vec<(i32, i64)>,
}

fn day_number(d: NaiveDate) -> i32 {
    d.num_days_from_ce()
}

/// Rows of `dora_metrics` as parallel arrays, the shape `INSERT … SELECT FROM unnest` takes.
#[derive(Default)]
struct Rows {
    repository: Vec<String>,
    day: Vec<NaiveDate>,
    window_days: Vec<i32>,
    deployments: Vec<i64>,
    deploy_days: Vec<i64>,
    per_week: Vec<f64>,
    band: Vec<String>,
    lead_p50: Vec<i64>,
    lead_count: Vec<i64>,
    failed: Vec<i64>,
    recovery_p50: Vec<i64>,
    recovery_count: Vec<i64>,
    unrecovered: Vec<i64>,
}

/// Replaces the `dora_metrics` rows of `days` (sorted, distinct).
pub(super) async fn dora_metrics(
    txn: &DatabaseTransaction,
    org: &i64,
    days: &[NaiveDate],
) -> Result<u64, DbErr> {
    let (Some(&last), Some(&first)) = (days.last(), days.first()) else {
        return Ok(0);
    };
    let from = first - chrono::Duration::days(WINDOWS[1] - 1);
    let mut scopes: BTreeMap<String, Scope> = BTreeMap::new();
    scopes.insert(String::new(), Scope::default());
    for row in txn
        .query_all_raw(stmt(
            "SELECT repository, min(day) AS since FROM deployment_outcomes \
             WHERE org_id = $1 AND outcome = 'success' GROUP BY repository",
            [(*org).into()],
        ))
        .await?
    {
        let since: NaiveDate = row.try_get("", "since")?;
        scopes
            .entry(row.try_get("", "repository")?)
            .or_default()
            .since = Some(day_number(since));
    }
    for row in txn
        .query_all_raw(stmt(
            "SELECT repository, day, count(*) AS n, count(*) FILTER (WHERE change_failed) AS failed, \
                count(*) FILTER (WHERE change_failed AND recovery_s IS NULL) AS unrecovered, \
                COALESCE(array_agg(recovery_s) FILTER (WHERE change_failed \
                    AND recovery_s IS NOT NULL), '{}') AS recovery \
             FROM deployment_outcomes \
             WHERE org_id = $1 AND outcome = 'success' AND day BETWEEN $2 AND $3 \
             GROUP BY repository, day ORDER BY day",
            [(*org).into(), from.into(), last.into()],
        ))
        .await?
    {
        let day = day_number(row.try_get("", "day")?);
        let counts: (i64, i64) = (row.try_get("", "n")?, row.try_get("", "failed")?);
        let unrecovered: i64 = row.try_get("", "unrecovered")?;
        let recovery: Vec<i64> = row.try_get("", "recovery")?;
        let repository: String = row.try_get("", "repository")?;
        for key in [repository, String::new()] {
            let s = scopes.entry(key).or_default();
            let c = s.deployments.entry(day).or_default();
            c.0 += counts.0;
            c.1 += counts.1;
            *s.unrecovered.entry(day).or_default() += unrecovered;
            s.recovery.extend(recovery.iter().map(|v| (day, *v)));
        }
    }
    for row in txn
        .query_all_raw(stmt(
            "SELECT repository, deployed_day AS day, array_agg(lead_s) AS lead FROM pr_metrics \
             WHERE org_id = $1 AND deployed_day BETWEEN $2 AND $3 AND NOT author_is_bot \
               AND lead_s IS NOT NULL \
             GROUP BY repository, deployed_day ORDER BY deployed_day",
            [(*org).into(), from.into(), last.into()],
        ))
        .await?
    {
        let day = day_number(row.try_get("", "day")?);
        let lead: Vec<i64> = row.try_get("", "lead")?;
        let repository: String = row.try_get("", "repository")?;
        for key in [repository, String::new()] {
            scopes
                .entry(key)
                .or_default()
                .lead
                .extend(lead.iter().map(|v| (day, *v)));
        }
    }

    let targets: Vec<i32> = days.iter().map(|d| day_number(*d)).collect();
    let mut rows = Rows::default();
    for (key, scope) in &scopes {
        // A repository seen only through PRs has no successful deployment, hence no rows.
        if !key.is_empty() && scope.since.is_none() {
            continue;
        }
        let first = targets.partition_point(|t| scope.since.is_some_and(|s| *t < s));
        let targets = &targets[first..];
        for window in WINDOWS {
            let w = i32::try_from(window).unwrap_or(i32::MAX);
            let lead = rolling(&scope.lead, w, targets);
            let recovery = rolling(&scope.recovery, w, targets);
            for (i, &t) in targets.iter().enumerate() {
                push_row(&mut rows, key, scope, t, w, lead[i], recovery[i]);
            }
        }
    }

    replace(txn, "dora_metrics", "day", org, days).await?;
    Ok(txn
        .execute_raw(stmt(
            "INSERT INTO dora_metrics (org_id, repository, day, window_days, deployments, \
                deploy_days, deploy_days_per_week, band, lead_time_p50_s, lead_time_count, \
                change_failure_rate, failed_deployments, recovery_time_p50_s, recovery_count, \
                unrecovered_count) \
             SELECT $1, NULLIF(repository, ''), day, window_days, deployments, deploy_days, \
                per_week, band, NULLIF(lead_p50, -1), lead_count, \
                failed::float8 / NULLIF(deployments, 0), failed, NULLIF(recovery_p50, -1), \
                recovery_count, unrecovered \
             FROM unnest($2::text[], $3::date[], $4::int[], $5::int8[], $6::int8[], \
                $7::float8[], $8::text[], $9::int8[], $10::int8[], $11::int8[], $12::int8[], \
                $13::int8[], $14::int8[]) \
                AS r (repository, day, window_days, deployments, deploy_days, per_week, band, \
                    lead_p50, lead_count, failed, recovery_p50, recovery_count, unrecovered)",
            [
                (*org).into(),
                rows.repository.into(),
                rows.day.into(),
                rows.window_days.into(),
                rows.deployments.into(),
                rows.deploy_days.into(),
                rows.per_week.into(),
                rows.band.into(),
                rows.lead_p50.into(),
                rows.lead_count.into(),
                rows.failed.into(),
                rows.recovery_p50.into(),
                rows.recovery_count.into(),
                rows.unrecovered.into(),
            ],
        ))
        .await?
        .rows_affected())
}

/// One row: counts over the window's days, the median of days with a deployment per week, the
/// band from it, and the medians slid in [`rolling`].
fn push_row(rows: &mut Rows, key: &str, scope: &Scope, t: i32, w: i32, lead: Window, rec: Window) {
    let in_window = scope.deployments.range(t - w + 1..=t);
    let (mut deployments, mut failed, mut deploy_days) = (0, 0, 0);
    let mut active = vec![0.0_f64; usize::try_from(w / 7).unwrap_or(0)];
    for (&d, &(n, f)) in in_window {
        deployments += n;
        failed += f;
        deploy_days += 1;
        // Week k of the window holds days t - 7k - 6 ..= t - 7k.
        if let Some(a) = usize::try_from((t - d) / 7)
            .ok()
            .and_then(|k| active.get_mut(k))
        {
            *a += 1.0;
        }
    }
    active.sort_by(f64::total_cmp);
    let per_week = percentile_cont_sorted(&active).unwrap_or(0.0);
    let band = if per_week >= 5.0 {
        "elite"
    } else if per_week >= 1.0 {
        "high"
    } else if deployments >= 1 {
        "medium"
    } else {
        "low"
    };
    let unrecovered: i64 = scope.unrecovered.range(t - w + 1..=t).map(|(_, n)| n).sum();
    rows.repository.push(key.to_owned());
    rows.day
        .push(NaiveDate::from_num_days_from_ce_opt(t).unwrap_or_default());
    rows.window_days.push(w);
    rows.deployments.push(deployments);
    rows.deploy_days.push(deploy_days);
    rows.per_week.push(per_week);
    rows.band.push(band.to_owned());
    rows.lead_p50.push(lead.median.unwrap_or(-1));
    rows.lead_count.push(count(lead));
    rows.failed.push(failed);
    rows.recovery_p50.push(rec.median.unwrap_or(-1));
    rows.recovery_count.push(count(rec));
    rows.unrecovered.push(unrecovered);
}

fn count(w: Window) -> i64 {
    i64::try_from(w.count).unwrap_or(i64::MAX)
}
