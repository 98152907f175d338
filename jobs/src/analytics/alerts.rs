//! Health alerts: evaluated hourly per organization from live tables. One open alert per kind
//! and subject; an alert whose condition no longer holds is resolved. Opening and resolving
//! write the notification in the same transaction, so each change is announced once.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc, Weekday};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};
use serde::Serialize;

use super::Org;
use crate::domain::stmt;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AlertReport {
    pub open: u64,
    pub opened: u64,
    pub resolved: u64,
}

/// The start of the `n`-th working day (Monday to Friday) before `today`: someone with no
/// activity since then has been inactive for `n` whole working days.
pub fn working_days_back(today: NaiveDate, n: u32) -> NaiveDate {
    let mut day = today;
    let mut left = n;
    while left > 0 {
        day -= Duration::days(1);
        if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            left -= 1;
        }
    }
    day
}

/// Evaluates every alert kind of `org` at `now`.
pub async fn evaluate(
    db: &DatabaseConnection,
    org: &Org,
    now: DateTime<Utc>,
    today: NaiveDate,
) -> Result<AlertReport, DbErr> {
    let s = &org.settings;
    let txn = db.begin().await?;
    txn.execute_raw(stmt(
        "SELECT pg_advisory_xact_lock(hashtextextended('devpulse.alerts', $1))",
        [org.id.into()],
    ))
    .await?;
    let inactive_since = working_days_back(today, s.inactivity_working_days);
    // Each branch yields (kind, subject, user_id, message, details) of a condition that holds.
    let current = "\
        WITH prs AS ( \
            SELECT p.github_id, r.full_name || '#' || p.number AS subject, p.title, u.login, \
                p.draft, COALESCE(p.ready_for_review_at, p.created_at) AS ready_at, p.first_review_at, \
                GREATEST(p.updated_at, p.created_at, \
                    (SELECT max(v.submitted_at) FROM reviews v WHERE v.pull_request_id = p.github_id), \
                    (SELECT max(c.created_at) FROM review_comments c WHERE c.pull_request_id = p.github_id)) \
                    AS active_at \
            FROM pull_requests p JOIN repositories r ON r.github_id = p.repository_id \
            LEFT JOIN github_users u ON u.organization_id = p.organization_id AND u.github_id = p.author_id \
            WHERE p.organization_id = $1 AND p.state = 'open' AND NOT COALESCE(u.is_bot, false) \
              AND (r.removed_at IS NULL OR r.removed_at < r.installed_at)), \
        people AS ( \
            SELECT id, lower(github_login) AS login FROM users WHERE organization_id = $1 AND active) \
        SELECT 'stale_pr' AS kind, subject, \
            (SELECT id FROM people WHERE people.login = lower(prs.login) LIMIT 1) AS user_id, \
            subject || ' has had no activity for ' || $2 || ' days' AS message, \
            jsonb_build_object('title', title, 'author', login, 'last_activity_at', active_at) AS details \
        FROM prs WHERE active_at < $7 - make_interval(days => $2) \
        UNION ALL \
        SELECT 'unreviewed_pr', subject, \
            (SELECT id FROM people WHERE people.login = lower(prs.login) LIMIT 1), \
            subject || ' has waited over ' || $3 || ' hours for a first review', \
            jsonb_build_object('title', title, 'author', login, 'ready_at', ready_at) \
        FROM prs WHERE NOT draft AND first_review_at IS NULL \
          AND ready_at < $7 - make_interval(hours => $3) \
        UNION ALL \
        SELECT 'failing_deployments', repository || ':' || environment, NULL, \
            'The last ' || $4 || ' production deployments of ' || repository || ' to ' || environment \
                || ' failed', \
            jsonb_build_object('repository', repository, 'environment', environment, \
                'last_failure_at', max(finished_at)) \
        FROM (SELECT o.*, row_number() OVER (PARTITION BY repository_id, environment \
                ORDER BY finished_at DESC, deployment_id DESC) AS n \
              FROM deployment_outcomes o WHERE o.org_id = $1) o \
        WHERE n <= $4 GROUP BY repository, environment \
        HAVING count(*) = $4 AND bool_and(outcome <> 'success') \
        UNION ALL \
        SELECT 'forgotten_clock_out', s.user_id::text, s.user_id, \
            'A work session was closed automatically: clock-out was forgotten', \
            jsonb_build_object('session_id', s.id, 'ended_at', s.ended_at) \
        FROM (SELECT DISTINCT ON (user_id) * FROM work_sessions \
              WHERE organization_id = $1 AND auto_closed AND ended_at >= $7 - interval '24 hours' \
              ORDER BY user_id, ended_at DESC) s \
        UNION ALL \
        SELECT 'inactivity', u.id::text, u.id, \
            'No commit, pull request, review or work session for ' || $5 || ' working days', \
            jsonb_build_object('since', $6::date) \
        FROM users u, organizations o \
        WHERE o.id = $1 AND u.organization_id = $1 AND u.active AND u.github_login IS NOT NULL \
          AND u.created_at < $6::date::timestamp AT TIME ZONE o.time_zone \
          AND NOT EXISTS (SELECT 1 FROM work_sessions w WHERE w.user_id = u.id \
              AND COALESCE(w.ended_at, w.last_activity_at, w.started_at) >= $6::date::timestamp AT TIME ZONE o.time_zone) \
          AND NOT EXISTS (SELECT 1 FROM commits k WHERE k.organization_id = $1 \
              AND lower(k.author_login) = lower(u.github_login) \
              AND k.authored_at >= $6::date::timestamp AT TIME ZONE o.time_zone) \
          AND NOT EXISTS (SELECT 1 FROM github_users g JOIN pull_requests p \
              ON p.organization_id = g.organization_id AND p.author_id = g.github_id \
              WHERE g.organization_id = $1 AND lower(g.login) = lower(u.github_login) \
                AND p.created_at >= $6::date::timestamp AT TIME ZONE o.time_zone) \
          AND NOT EXISTS (SELECT 1 FROM github_users g JOIN reviews v \
              ON v.organization_id = g.organization_id AND v.reviewer_id = g.github_id \
              WHERE g.organization_id = $1 AND lower(g.login) = lower(u.github_login) \
                AND v.submitted_at >= $6::date::timestamp AT TIME ZONE o.time_zone) \
        UNION ALL \
        SELECT 'dead_letters', 'dead_letters', NULL, \
            count(*) || ' jobs are in the dead-letter queue', \
            jsonb_build_object('depth', count(*), 'threshold', $8) \
        FROM dead_letters WHERE organization_id = $1 AND retried_at IS NULL \
        HAVING count(*) > $8";
    txn.execute_raw(stmt(
        &format!("CREATE TEMP TABLE current_alerts ON COMMIT DROP AS {current}"),
        [
            org.id.into(),
            i32::try_from(s.stale_pr_days).unwrap_or(i32::MAX).into(),
            i32::try_from(s.unreviewed_pr_hours)
                .unwrap_or(i32::MAX)
                .into(),
            i64::from(s.failing_deployments_in_a_row).into(),
            i32::try_from(s.inactivity_working_days)
                .unwrap_or(i32::MAX)
                .into(),
            inactive_since.into(),
            now.into(),
            i64::from(s.dead_letters_threshold).into(),
        ],
    ))
    .await?;
    let notify = "INSERT INTO notifications (org_id, alert_id, body) \
        SELECT a.org_id, a.id, jsonb_build_object( \
            'text', CASE WHEN a.resolved_at IS NULL THEN ':warning: ' ELSE ':white_check_mark: Resolved: ' END \
                || a.message, \
            'event', CASE WHEN a.resolved_at IS NULL THEN 'alert.opened' ELSE 'alert.resolved' END, \
            'alert', jsonb_build_object('id', a.id, 'kind', a.kind, 'subject', a.subject, \
                'message', a.message, 'details', a.details, 'opened_at', a.opened_at, \
                'resolved_at', a.resolved_at)) \
        FROM changed a JOIN organizations o ON o.id = a.org_id WHERE o.notification_url IS NOT NULL";
    let counts = txn
        .query_one_raw(stmt(
            &format!(
                "WITH changed AS ( \
                    INSERT INTO health_alerts AS h (org_id, kind, subject, user_id, message, details, \
                        opened_at, last_seen_at) \
                    SELECT $1, kind, subject, user_id, message, details, $2, $2 FROM current_alerts \
                    ORDER BY kind, subject \
                    ON CONFLICT (org_id, kind, subject) WHERE resolved_at IS NULL DO UPDATE \
                        SET last_seen_at = $2, message = EXCLUDED.message, details = EXCLUDED.details \
                    RETURNING h.*, (xmax = 0) AS inserted), \
                 n AS ({}) \
                 SELECT count(*) FILTER (WHERE inserted) AS opened, count(*) AS open FROM changed",
                notify.replace("FROM changed a", "FROM (SELECT * FROM changed WHERE inserted) a")
            ),
            [org.id.into(), now.into()],
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("alert upsert returned no row".to_owned()))?;
    let resolved: i64 = txn
        .query_one_raw(stmt(
            &format!(
                "WITH changed AS ( \
                    UPDATE health_alerts h SET resolved_at = $2 \
                    WHERE h.org_id = $1 AND h.resolved_at IS NULL \
                      AND NOT EXISTS (SELECT 1 FROM current_alerts c \
                          WHERE c.kind = h.kind AND c.subject = h.subject) \
                    RETURNING h.*), \
                 n AS ({notify}) \
                 SELECT count(*) AS n FROM changed"
            ),
            [org.id.into(), now.into()],
        ))
        .await?
        .map(|r| r.try_get("", "n"))
        .transpose()?
        .unwrap_or(0);
    txn.commit().await?;
    Ok(AlertReport {
        open: u64::try_from(counts.try_get::<i64>("", "open")?).unwrap_or(0),
        opened: u64::try_from(counts.try_get::<i64>("", "opened")?).unwrap_or(0),
        resolved: u64::try_from(resolved).unwrap_or(0),
    })
}
