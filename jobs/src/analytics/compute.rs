//! The recompute: for one organization and a set of local days, in one transaction,
//! 1. `pr_metrics` of the pull requests created, first reviewed, merged or closed on those days
//!    (with the first successful production deployment that contains each);
//! 2. `deployment_outcomes` of the deployments those days can reach (a revert or incident today
//!    can make a deployment of yesterday failed, and a failure moves the recovery time of the
//!    failures before it; the days whose outcomes changed join the run);
//! 3. `daily_metrics` of the days; 4. `dora_metrics` of every window that includes one of them;
//! 5. `reliability_scores` of their ISO weeks.
//!
//! Each table's rows for the days are replaced inside the transaction: readers see the old rows
//! until it commits. One run per organization at a time (an advisory lock), so replicas can
//! share the work.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};
use serde::Serialize;

use super::Org;
use crate::domain::stmt;

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub days: usize,
    /// Pull requests whose `pr_metrics` row was written (new or changed).
    pub pull_requests: u64,
    /// Deployments whose `deployment_outcomes` row was written (new or changed).
    pub deployments: u64,
    /// `daily_metrics` rows written (new or changed).
    pub daily_rows: u64,
    pub dora_rows: u64,
    pub score_rows: u64,
}

impl std::ops::AddAssign for Report {
    fn add_assign(&mut self, other: Self) {
        self.days += other.days;
        self.pull_requests += other.pull_requests;
        self.deployments += other.deployments;
        self.daily_rows += other.daily_rows;
        self.dora_rows += other.dora_rows;
        self.score_rows += other.score_rows;
    }
}

/// DORA windows, in days.
pub const WINDOWS: [i64; 2] = [7, 28];

/// Whole seconds from `a` to `b`, never negative; NULL when either is unknown (GREATEST alone
/// would turn NULL into 0).
fn secs(a: &str, b: &str) -> String {
    format!(
        "CASE WHEN ({a}) IS NOT NULL AND ({b}) IS NOT NULL \
        THEN GREATEST(0, round(EXTRACT(EPOCH FROM ({b}) - ({a}))))::bigint END"
    )
}

fn day(ts: &str) -> String {
    format!("(({ts}) AT TIME ZONE $2)::date")
}

/// Days per statement: bounds each statement's memory, and is the step of progress reports.
const CHUNK: usize = 31;

/// Recomputes `days` of `org`; `today` (the organization's) bounds the DORA windows that move
/// forward from them. Days are deduplicated and sorted here; days after `today` are skipped.
pub async fn recompute(
    db: &DatabaseConnection,
    org: &Org,
    days: &[NaiveDate],
    today: NaiveDate,
) -> Result<Report, DbErr> {
    let txn = db.begin().await?;
    let report = recompute_in(&txn, org, days, today, &mut |_| {}).await?;
    txn.commit().await?;
    vacuum_written(db, &report).await;
    Ok(report)
}

/// Where a recompute is, for progress bars: `done` of `total` steps.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub phase: &'static str,
    pub done: usize,
    pub total: usize,
}

fn sorted(days: impl IntoIterator<Item = NaiveDate>, today: NaiveDate) -> Vec<NaiveDate> {
    days.into_iter()
        .filter(|d| *d <= today)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// [`recompute`] inside the caller's transaction (the dirty-day drain claims its days in it),
/// reporting progress after each step.
pub async fn recompute_in(
    txn: &DatabaseTransaction,
    org: &Org,
    days: &[NaiveDate],
    today: NaiveDate,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Report, DbErr> {
    let days = sorted(days.iter().copied(), today);
    let mut report = Report {
        days: days.len(),
        ..Report::default()
    };
    // Steps: PR chunks, outcomes, then daily, DORA and score chunks (estimated until known).
    let chunks = days.len().div_ceil(CHUNK);
    let mut steps = Progress {
        phase: "",
        done: 0,
        total: chunks + 1 + chunks + (chunks + 1) + chunks.div_ceil(2).max(1),
    };
    let mut phase_started = std::time::Instant::now();
    let mut step = |phase: &'static str, steps: &mut Progress| {
        tracing::debug!(
            organization_id = org.id,
            phase,
            ms = phase_started.elapsed().as_millis() as u64,
            "recompute step"
        );
        phase_started = std::time::Instant::now();
        steps.phase = phase;
        steps.done += 1;
        steps.total = steps.total.max(steps.done);
        progress(*steps);
    };
    // Large statements gain less from JIT than its compile time costs.
    // Sorts and hashes over a year of an organization's events stay in memory.
    // Statements are planned for their values every time: the driver keeps them prepared per
    // connection, and after five runs PostgreSQL may switch to a generic plan built from default
    // selectivities — for the range bounds here a few rows where there are tens of thousands.
    // Planning costs milliseconds; these statements run for tens or hundreds.
    txn.execute_unprepared(
        "SET LOCAL jit = off; SET LOCAL work_mem = '64MB'; \
         SET LOCAL plan_cache_mode = force_custom_plan",
    )
    .await?;
    txn.execute_raw(stmt(
        "SELECT pg_advisory_xact_lock(hashtextextended('devpulse.analytics', $1))",
        [org.id.into()],
    ))
    .await?;
    let mut changed: BTreeSet<NaiveDate> = BTreeSet::new();
    for chunk in days.chunks(CHUNK) {
        let (n, lead_days) =
            refresh_pr_metrics(txn, org, chunk, chunk[0], chunk[chunk.len() - 1]).await?;
        report.pull_requests += n;
        changed.extend(lead_days);
        step("pull requests", &mut steps);
    }
    analyze_if_large(txn, "pr_metrics", report.pull_requests).await?;
    let reach = days.iter().chain(&changed);
    let (first, last) = (reach.clone().min(), reach.max());
    let (deployments, outcome_days) = match (first, last) {
        (Some(first), Some(last)) => refresh_outcomes(txn, org, *first, *last).await?,
        _ => (0, Vec::new()),
    };
    report.deployments = deployments;
    step("deployments", &mut steps);
    let daily_days = sorted(days.iter().copied().chain(outcome_days), today);
    let dora_days = sorted(
        changed
            .iter()
            .chain(&daily_days)
            .flat_map(|d| (0..WINDOWS[1]).map(move |k| *d + Duration::days(k))),
        today,
    );
    let dora_spans = spans(&dora_days, DORA_SPAN);
    let weeks: Vec<NaiveDate> = changed
        .iter()
        .chain(&daily_days)
        .map(|d| monday(*d))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    steps.total = steps.done
        + daily_days.len().div_ceil(CHUNK)
        + dora_spans.len()
        + weeks.len().div_ceil(WEEKS);
    for chunk in daily_days.chunks(CHUNK) {
        report.daily_rows += daily_metrics(txn, org, chunk).await?;
        step("daily metrics", &mut steps);
    }
    for span in &dora_spans {
        report.dora_rows += super::dora::dora_metrics(txn, &org.id, span).await?;
        step("DORA", &mut steps);
    }
    for chunk in weeks.chunks(WEEKS) {
        report.score_rows += reliability_scores(txn, org, chunk).await?;
        step("reliability scores", &mut steps);
    }
    Ok(report)
}

/// ISO weeks per progress step of the reliability scores (a quarter; one statement per week).
const WEEKS: usize = 13;

/// Most days one DORA statement covers: it reads its days and the 27 before them, so runs of
/// nearby days go together and far-apart days (a dirty day in January and one in June) do not
/// read the months between them.
const DORA_SPAN: i64 = 92;

/// `days` (sorted) cut where a gap exceeds a window or a piece would span more than `max`.
fn spans(days: &[NaiveDate], max: i64) -> Vec<Vec<NaiveDate>> {
    let mut out: Vec<Vec<NaiveDate>> = Vec::new();
    for &d in days {
        match out.last_mut() {
            Some(s)
                if (d - s[s.len() - 1]).num_days() <= WINDOWS[1] && (d - s[0]).num_days() < max =>
            {
                s.push(d)
            }
            _ => out.push(vec![d]),
        }
    }
    out
}

/// Refreshes the planner's statistics of `table` after `changed` rows were written in this
/// transaction, when that is more than autovacuum would tolerate (500 rows + 10 % of the table
/// as last analyzed; a never-analyzed table counts as empty). Without it, a recompute right
/// after a table filled up is planned for an empty table: nested loops over a million rows
/// (the week-score statement ran > 15 min), or over 10,000 (7 s instead of 0.3 s, found by
/// `scripts/bench-worker`, whose events start the first recompute while the tables fill).
/// `ANALYZE` inside the transaction counts its own rows; others see the statistics on commit.
async fn analyze_if_large(
    txn: &DatabaseTransaction,
    table: &str,
    changed: u64,
) -> Result<(), DbErr> {
    if is_large(txn, table, changed).await? {
        txn.execute_unprepared(&format!("ANALYZE {table}")).await?;
    }
    Ok(())
}

/// Whether `changed` rows are more of `table` than autovacuum would tolerate before analyzing
/// it again (see [`analyze_if_large`]).
async fn is_large(conn: &impl ConnectionTrait, table: &str, changed: u64) -> Result<bool, DbErr> {
    if changed < ANALYZE_BASE {
        return Ok(false);
    }
    let analyzed_rows: f64 = conn
        .query_one_raw(stmt(
            "SELECT greatest(reltuples, 0)::float8 AS n FROM pg_class WHERE oid = $1::regclass",
            [table.into()],
        ))
        .await?
        .map(|row| row.try_get("", "n"))
        .transpose()?
        .unwrap_or(0.0);
    Ok(changed as f64 >= ANALYZE_BASE as f64 + ANALYZE_SCALE * analyzed_rows)
}

/// After a committed run: vacuums (and analyzes) each table the run rewrote a large share of
/// (the threshold of [`analyze_if_large`]), so that the next incremental run finds its pages
/// marked all-visible. Week scores read the pull requests open at a week's end by an index-only
/// scan, which falls back to reading the table's pages while they are not; on 1,000,000 pull
/// requests right after a full recompute, one day took 1.3–1.8 s instead of 0.9 s. Autovacuum
/// would get there too, but at a time of its choosing, and not at all where it is turned off.
///
/// Best effort: the run is committed whatever happens here, so a failure is logged, not
/// returned (a role that does not own a table gets a warning from PostgreSQL and nothing done).
pub async fn vacuum_written(db: &DatabaseConnection, report: &Report) {
    let written = [
        ("pr_metrics", report.pull_requests),
        ("deployment_outcomes", report.deployments),
        ("daily_metrics", report.daily_rows),
        ("dora_metrics", report.dora_rows),
        ("reliability_scores", report.score_rows),
    ];
    let mut tables = Vec::new();
    for (table, changed) in written {
        match is_large(db, table, changed).await {
            Ok(true) => tables.push(table),
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, table, "could not size a table to vacuum"),
        }
    }
    if tables.is_empty() {
        return;
    }
    let started = std::time::Instant::now();
    match db
        .execute_unprepared(&format!("VACUUM (ANALYZE) {}", tables.join(", ")))
        .await
    {
        Ok(_) => tracing::info!(
            tables = tables.join(","),
            ms = started.elapsed().as_millis() as u64,
            "vacuumed the analytics tables a recompute rewrote"
        ),
        Err(error) => {
            tracing::warn!(%error, tables = tables.join(","), "vacuum after a recompute failed")
        }
    }
}

/// PostgreSQL's defaults for autovacuum's analyze threshold (`autovacuum_analyze_threshold`,
/// `autovacuum_analyze_scale_factor`): an incremental day of a large organization writes far
/// fewer rows, a first or full recompute far more.
const ANALYZE_BASE: u64 = 500;
const ANALYZE_SCALE: f64 = 0.1;

pub fn monday(day: NaiveDate) -> NaiveDate {
    day - Duration::days(i64::from(day.weekday().num_days_from_monday()))
}

/// Where a deployment counts as production: `production_environment`, or an environment
/// matching the organization's pattern (the parameter `$n`).
fn production(d: &str, n: u8) -> String {
    format!("({d}.production_environment IS TRUE OR {d}.environment ~* ${n})")
}

/// The place of deployment `d`'s commit in the default branch's history, when known: a
/// `LATERAL` subquery giving `key_at` and `key_pos` (an index probe).
fn commit_place(d: &str) -> String {
    format!(
        "LATERAL (SELECT c.default_branch_pushed_at AS key_at, c.push_position AS key_pos \
         FROM commits c WHERE c.repository_id = {d}.repository_id AND c.sha = {d}.sha \
           AND c.on_default_branch LIMIT 1)"
    )
}

/// `reach` and `prod`: the finished production deployments (latest status success, failure or
/// error) whose outcome a change between `lo` and `hi` can move, and those after them that
/// their outcome reads, with the place of the deployed commit in the default branch's history
/// when known.
///
/// Per repository and environment, from stored outcomes (those outside the range cannot have
/// changed, see `refresh_outcomes`): from the last successful deployment that did not fail
/// before `lo` (the failures before it recovered by it at the latest, and nothing depends on
/// earlier deployments) to the second such deployment from `hi` on (the first one's own
/// outcome reads its successor). A place never seen before counts from the beginning.
///
/// The commit's place is looked up per deployment (an index probe each): a join would read
/// every default-branch commit of the organization, which outnumber deployments by far.
async fn production_deployments(
    txn: &DatabaseTransaction,
    org: &Org,
    lo: DateTime<Utc>,
    hi: DateTime<Utc>,
) -> Result<(), DbErr> {
    let stored_success = |cmp: &str| {
        format!(
            "FROM deployment_outcomes o WHERE o.org_id = $1 \
               AND o.repository_id = p.repository_id AND o.environment = p.environment \
               AND o.outcome = 'success' AND NOT o.change_failed AND o.finished_at {cmp}"
        )
    };
    txn.execute_raw(stmt(
        &format!(
            "CREATE TEMP TABLE reach ON COMMIT DROP AS \
             WITH p AS (SELECT DISTINCT repository_id, environment FROM deployment_outcomes \
                WHERE org_id = $1) \
             SELECT p.repository_id, p.environment, \
                COALESCE((SELECT max(o.finished_at) {before}), '-infinity') AS lo, \
                COALESCE((SELECT o.finished_at {after} ORDER BY o.finished_at \
                    OFFSET 1 LIMIT 1), 'infinity') AS ub \
             FROM p",
            before = stored_success("< $2"),
            after = stored_success(">= $3"),
        ),
        [org.id.into(), lo.into(), hi.into()],
    ))
    .await?;
    txn.execute_raw(stmt(
        &format!(
            "CREATE TEMP TABLE prod ON COMMIT DROP AS \
             SELECT d.github_id AS deployment_id, d.repository_id, r.full_name AS repository, \
                d.environment, d.sha, d.latest_state AS outcome, d.latest_status_at AS finished_at, \
                c.key_at, c.key_pos \
             FROM deployments d JOIN repositories r ON r.github_id = d.repository_id \
             LEFT JOIN reach b ON b.repository_id = d.repository_id \
                AND b.environment = d.environment \
             LEFT JOIN {place} c ON true \
             WHERE d.organization_id = $1 AND d.latest_state IN ('success', 'failure', 'error') \
               AND d.latest_status_at >= COALESCE(b.lo, '-infinity') \
               AND d.latest_status_at <= COALESCE(b.ub, 'infinity') AND {production}",
            production = production("d", 2),
            place = commit_place("d"),
        ),
        [
            org.id.into(),
            org.settings.production_environment_pattern.clone().into(),
        ],
    ))
    .await?;
    // A coarse sample is enough for the planner here; the default one (30,000 rows) is nearly
    // the whole table.
    txn.execute_unprepared(
        "CREATE INDEX ON prod (repository_id, finished_at) WHERE outcome = 'success'; \
         SET LOCAL default_statistics_target = 10; ANALYZE prod; \
         SET LOCAL default_statistics_target TO DEFAULT",
    )
    .await?;
    Ok(())
}

/// The columns of `pr_metrics` a refresh writes. A row whose values are all unchanged is not
/// rewritten: a recompute over unchanged history writes nothing (every version of a row costs
/// its twelve index entries).
const PR_METRICS_COLUMNS: [&str; 27] = [
    "repository_id",
    "repository",
    "author_login",
    "author_is_bot",
    "state",
    "created_at",
    "ready_at",
    "first_commit_at",
    "first_review_at",
    "merged_at",
    "closed_at",
    "deployment_id",
    "deployed_at",
    "additions",
    "deletions",
    "coding_s",
    "pickup_s",
    "review_s",
    "cycle_s",
    "deploy_s",
    "lead_s",
    "created_day",
    "merged_day",
    "closed_day",
    "first_review_day",
    "deployed_day",
    "org_id",
];

/// Recomputes `pr_metrics` of the pull requests with a created, first-review, merged or closed
/// day among `days`. Returns how many rows changed, and the deployment days whose lead times changed.
async fn refresh_pr_metrics(
    txn: &DatabaseTransaction,
    org: &Org,
    days: &[NaiveDate],
    first: NaiveDate,
    last: NaiveDate,
) -> Result<(u64, Vec<NaiveDate>), DbErr> {
    let pick = |col: &str| {
        format!(
            "SELECT github_id FROM pull_requests WHERE organization_id = $1 \
               AND {col} >= $4::date::timestamp AT TIME ZONE $2 \
               AND {col} < ($5::date + 1)::timestamp AT TIME ZONE $2 \
               AND {} = ANY($3::date[])",
            day(col)
        )
    };
    let sql = format!(
        "WITH ids AS ({} UNION {} UNION {} UNION {}), \
         src AS ( \
            SELECT p.github_id, p.repository_id, r.full_name, u.login, \
                COALESCE(u.is_bot, false) AS is_bot, p.state, p.created_at, \
                CASE WHEN p.ready_for_review_at IS NOT NULL THEN p.ready_for_review_at \
                     WHEN p.draft THEN NULL ELSE p.created_at END AS ready_at, \
                p.first_commit_at, p.first_review_at, p.merged_at, p.closed_at, p.additions, \
                p.deletions, mc.default_branch_pushed_at AS mc_at, mc.push_position AS mc_pos \
            FROM ids JOIN pull_requests p ON p.github_id = ids.github_id \
            JOIN repositories r ON r.github_id = p.repository_id \
            LEFT JOIN github_users u ON u.organization_id = p.organization_id \
                AND u.github_id = p.author_id \
            LEFT JOIN commits mc ON p.merged_at IS NOT NULL AND mc.repository_id = p.repository_id \
                AND mc.sha = p.merge_commit_sha AND mc.on_default_branch), \
         new AS ( \
            SELECT s.*, l.deployment_id, l.finished_at AS deployed_at FROM src s \
            LEFT JOIN LATERAL ( \
                SELECT d.github_id AS deployment_id, d.latest_status_at AS finished_at \
                FROM deployments d LEFT JOIN {place} k ON true \
                WHERE d.repository_id = s.repository_id AND d.latest_state = 'success' \
                  AND d.latest_status_at >= s.merged_at AND d.organization_id = $1 \
                  AND {production} \
                  AND (s.mc_at IS NULL OR k.key_at IS NULL \
                       OR (k.key_at, k.key_pos) >= (s.mc_at, s.mc_pos)) \
                ORDER BY d.latest_status_at, d.github_id LIMIT 1) l ON s.merged_at IS NOT NULL), \
         old AS ( \
            SELECT m.pull_request_id, m.deployed_day, m.lead_s FROM pr_metrics m \
            JOIN ids ON ids.github_id = m.pull_request_id), \
         up AS ( \
            INSERT INTO pr_metrics (pull_request_id, org_id, repository_id, repository, \
                author_login, author_is_bot, state, created_at, ready_at, first_commit_at, \
                first_review_at, merged_at, closed_at, deployment_id, deployed_at, additions, \
                deletions, coding_s, pickup_s, review_s, cycle_s, deploy_s, lead_s, created_day, \
                merged_day, closed_day, first_review_day, deployed_day) \
            SELECT n.github_id, $1, n.repository_id, n.full_name, n.login, n.is_bot, n.state, \
                n.created_at, n.ready_at, n.first_commit_at, n.first_review_at, n.merged_at, \
                n.closed_at, n.deployment_id, n.deployed_at, n.additions, n.deletions, \
                {coding}, {pickup}, CASE WHEN n.merged_at IS NOT NULL THEN {review} END, \
                {cycle}, {deploy}, {lead}, {cday}, {mday}, {clday}, {rday}, {dday} \
            FROM new n \
            ON CONFLICT (pull_request_id) DO UPDATE SET repository_id = EXCLUDED.repository_id, \
                repository = EXCLUDED.repository, author_login = EXCLUDED.author_login, \
                author_is_bot = EXCLUDED.author_is_bot, state = EXCLUDED.state, \
                created_at = EXCLUDED.created_at, ready_at = EXCLUDED.ready_at, \
                first_commit_at = EXCLUDED.first_commit_at, \
                first_review_at = EXCLUDED.first_review_at, merged_at = EXCLUDED.merged_at, \
                closed_at = EXCLUDED.closed_at, deployment_id = EXCLUDED.deployment_id, \
                deployed_at = EXCLUDED.deployed_at, additions = EXCLUDED.additions, \
                deletions = EXCLUDED.deletions, coding_s = EXCLUDED.coding_s, \
                pickup_s = EXCLUDED.pickup_s, review_s = EXCLUDED.review_s, \
                cycle_s = EXCLUDED.cycle_s, deploy_s = EXCLUDED.deploy_s, lead_s = EXCLUDED.lead_s, \
                created_day = EXCLUDED.created_day, merged_day = EXCLUDED.merged_day, \
                closed_day = EXCLUDED.closed_day, first_review_day = EXCLUDED.first_review_day, \
                deployed_day = EXCLUDED.deployed_day \
            WHERE ({cols}) IS DISTINCT FROM ({excluded}) \
            RETURNING pull_request_id, deployed_day, lead_s) \
         SELECT (SELECT count(*) FROM up) AS n, \
            ARRAY(SELECT DISTINCT d FROM ( \
                SELECT u.deployed_day AS d FROM up u LEFT JOIN old o USING (pull_request_id) \
                WHERE (u.deployed_day, u.lead_s) IS DISTINCT FROM (o.deployed_day, o.lead_s) \
                UNION ALL \
                SELECT o.deployed_day FROM old o JOIN up u USING (pull_request_id) \
                WHERE (u.deployed_day, u.lead_s) IS DISTINCT FROM (o.deployed_day, o.lead_s)) x \
                WHERE d IS NOT NULL) AS days",
        pick("created_at"),
        pick("merged_at"),
        pick("closed_at"),
        pick("first_review_at"),
        cols = PR_METRICS_COLUMNS
            .map(|c| format!("pr_metrics.{c}"))
            .join(", "),
        excluded = PR_METRICS_COLUMNS
            .map(|c| format!("EXCLUDED.{c}"))
            .join(", "),
        coding = secs("n.first_commit_at", "n.created_at"),
        pickup = secs("n.ready_at", "n.first_review_at"),
        review = secs("n.first_review_at", "n.merged_at"),
        cycle = secs("COALESCE(n.first_commit_at, n.created_at)", "n.merged_at"),
        deploy = secs("n.merged_at", "n.deployed_at"),
        lead = secs("COALESCE(n.first_commit_at, n.created_at)", "n.deployed_at"),
        cday = day("n.created_at"),
        mday = day("n.merged_at"),
        clday = day("n.closed_at"),
        rday = day("n.first_review_at"),
        dday = day("n.deployed_at"),
        production = production("d", 6),
        place = commit_place("d"),
    );
    let row = txn
        .query_one_raw(stmt(
            &sql,
            [
                org.id.into(),
                org.time_zone.clone().into(),
                days.to_vec().into(),
                first.into(),
                last.into(),
                org.settings.production_environment_pattern.clone().into(),
            ],
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("pr_metrics refresh returned no row".to_owned()))?;
    let n: i64 = row.try_get("", "n")?;
    let changed: Vec<NaiveDate> = row.try_get("", "days")?;
    Ok((u64::try_from(n).unwrap_or(0), changed))
}

/// Recomputes the `deployment_outcomes` that changes on the days `first` to `last` can move.
/// Returns how many rows it wrote (new or changed), and the days whose outcomes changed.
///
/// What an outcome reads lies at or after its deployment's finish: its successor, the reverts
/// and incidents of its window, and (recovery) the next success that did not fail. So a change
/// at time t can move the outcomes of deployments that finished from t − window on (their window
/// reaches t), and the recovery times of the failures just before those; nothing after the
/// last changed day. Every change to those inputs marks the days it touches
/// (`super::dirty`: a deployment's days, a revert's and an incident's, the deployments of a
/// pushed commit; the run adds the days of deployments whose shipped pull requests changed).
async fn refresh_outcomes(
    txn: &DatabaseTransaction,
    org: &Org,
    first: NaiveDate,
    last: NaiveDate,
) -> Result<(u64, Vec<NaiveDate>), DbErr> {
    let s = &org.settings;
    let window_hours = i32::try_from(s.change_failure_window_hours).unwrap_or(i32::MAX);
    let range = txn
        .query_one_raw(stmt(
            "SELECT $1::date::timestamp AT TIME ZONE $3 - make_interval(hours => $4) AS lo, \
                ($2::date + 1)::timestamp AT TIME ZONE $3 AS hi",
            [
                first.into(),
                last.into(),
                org.time_zone.clone().into(),
                window_hours.into(),
            ],
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("outcome range returned no row".to_owned()))?;
    let hi: DateTime<Utc> = range.try_get("", "hi")?;
    production_deployments(txn, org, range.try_get("", "lo")?, hi).await?;
    // Reverts and incidents are few: each is matched to the deployments whose window it falls
    // in (a join), rather than every deployment probing for them. An incident's candidates come
    // from `prod`'s index: a window ends at most `change_failure_window_hours` after its
    // deployment finished.
    txn.execute_raw(stmt(
        "CREATE TEMP TABLE oc ON COMMIT DROP AS \
         WITH s AS ( \
            SELECT p.*, lead(p.finished_at) OVER w AS next_at, \
                lead(p.key_at) OVER w AS next_key_at, lead(p.key_pos) OVER w AS next_key_pos \
            FROM prod p WHERE p.outcome = 'success' \
            WINDOW w AS (PARTITION BY p.repository_id, p.environment \
                ORDER BY p.finished_at, p.deployment_id)), \
         b AS ( \
            SELECT s.*, LEAST(COALESCE(s.next_at, 'infinity'), \
                s.finished_at + make_interval(hours => $2)) AS until FROM s), \
         reverts AS ( \
            SELECT rv.github_id, rv.merged_at, rv.reverts_number, rv.reverts_title, \
                CASE WHEN rv.reverts_repository IS NULL THEN rv.repository_id \
                     ELSE (SELECT x.github_id FROM repositories x WHERE x.organization_id = $1 \
                           AND lower(x.full_name) = lower(rv.reverts_repository) LIMIT 1) \
                END AS target_repository_id, rv.repository_id \
            FROM pull_requests rv \
            WHERE rv.organization_id = $1 AND rv.merged_at IS NOT NULL \
              AND (rv.reverts_number IS NOT NULL OR rv.reverts_title IS NOT NULL)), \
         reverted AS ( \
            SELECT pm.deployment_id, rv.merged_at FROM reverts rv \
            JOIN pull_requests p ON p.repository_id = rv.target_repository_id \
                AND p.number = rv.reverts_number \
            JOIN pr_metrics pm ON pm.pull_request_id = p.github_id \
            WHERE p.github_id <> rv.github_id AND p.merged_at IS NOT NULL \
              AND pm.deployment_id IS NOT NULL \
            UNION ALL \
            SELECT pm.deployment_id, rv.merged_at FROM reverts rv \
            JOIN pull_requests p ON p.repository_id = rv.repository_id \
                AND p.title = rv.reverts_title \
            JOIN pr_metrics pm ON pm.pull_request_id = p.github_id \
            WHERE rv.reverts_number IS NULL AND p.github_id <> rv.github_id \
              AND p.merged_at IS NOT NULL AND pm.deployment_id IS NOT NULL), \
         by_revert AS ( \
            SELECT DISTINCT b.deployment_id FROM b JOIN reverted r \
                ON r.deployment_id = b.deployment_id \
               AND r.merged_at >= b.finished_at AND r.merged_at < b.until), \
         by_incident AS ( \
            SELECT b.deployment_id, min(i.closed_at) AS closed_at \
            FROM incidents i JOIN prod p ON p.outcome = 'success' \
                AND p.repository_id = i.repository_id AND p.finished_at <= i.created_at \
                AND p.finished_at > i.created_at - make_interval(hours => $2) \
            JOIN b ON b.deployment_id = p.deployment_id AND i.created_at < b.until \
            WHERE i.organization_id = $1 AND NOT i.deleted \
              AND EXISTS (SELECT 1 FROM unnest(i.labels) l WHERE l ~* $3) \
            GROUP BY b.deployment_id) \
         SELECT b.deployment_id, b.repository_id, b.repository, b.environment, b.sha, \
            b.outcome, b.finished_at, \
            CASE WHEN r.deployment_id IS NOT NULL THEN 'revert' \
                 WHEN i.deployment_id IS NOT NULL THEN 'incident' \
                 WHEN b.next_at IS NOT NULL \
                  AND b.next_at <= b.finished_at + make_interval(hours => $2) \
                  AND b.key_at IS NOT NULL AND b.next_key_at IS NOT NULL \
                  AND (b.next_key_at, b.next_key_pos) < (b.key_at, b.key_pos) \
                 THEN 'rollback' END AS failure_cause, \
            i.closed_at AS incident_closed_at \
         FROM b LEFT JOIN by_revert r USING (deployment_id) \
         LEFT JOIN by_incident i USING (deployment_id) \
         UNION ALL \
         SELECT deployment_id, repository_id, repository, environment, sha, outcome, \
            finished_at, NULL, NULL FROM prod WHERE outcome <> 'success'",
        [
            org.id.into(),
            window_hours.into(),
            s.incident_label_pattern.clone().into(),
        ],
    ))
    .await?;
    // Recovery: the next successful deployment to the same place that did not fail itself, or
    // the incident's close if that came first. The window runs backwards so that its frame only
    // grows (a frame that starts after the current row is recomputed for every row).
    txn.execute_raw(stmt(
        &format!(
            "CREATE TEMP TABLE nout ON COMMIT DROP AS \
         WITH n AS ( \
            SELECT o.*, CASE WHEN o.failure_cause IS NOT NULL THEN LEAST(o.incident_closed_at, \
                min(o.finished_at) FILTER (WHERE o.outcome = 'success' AND o.failure_cause IS NULL) \
                    OVER (PARTITION BY o.repository_id, o.environment \
                          ORDER BY o.finished_at DESC, o.deployment_id DESC \
                          ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)) END AS at \
            FROM oc o) \
         SELECT o.deployment_id, $1::int8 AS org_id, o.repository_id, o.repository, o.environment, \
            o.sha, o.outcome, o.finished_at, (o.finished_at AT TIME ZONE $2)::date AS day, \
            o.failure_cause IS NOT NULL AS change_failed, o.failure_cause, o.at AS recovered_at, \
            {recovery} AS recovery_s \
         FROM n o",
            recovery = secs("o.finished_at", "o.at")
        ),
        [org.id.into(), org.time_zone.clone().into()],
    ))
    .await?;
    // Rows after `hi` were only context: theirs cannot have changed.
    txn.execute_raw(stmt(
        "DELETE FROM nout WHERE finished_at >= $1",
        [hi.into()],
    ))
    .await?;
    // The stored rows of the same deployments and places, to compare and replace.
    txn.execute_raw(stmt(
        "CREATE TEMP TABLE oldo ON COMMIT DROP AS \
         SELECT o.* FROM reach b JOIN deployment_outcomes o \
            ON o.repository_id = b.repository_id AND o.environment = b.environment \
           AND o.finished_at >= b.lo AND o.finished_at < $2 \
         WHERE o.org_id = $1 \
         UNION \
         SELECT o.* FROM nout n JOIN deployment_outcomes o USING (deployment_id)",
        [org.id.into(), hi.into()],
    ))
    .await?;
    let cols = |t: &str| {
        [
            "repository_id",
            "repository",
            "environment",
            "sha",
            "outcome",
            "finished_at",
            "day",
            "change_failed",
            "failure_cause",
            "recovered_at",
            "recovery_s",
        ]
        .map(|c| format!("{t}.{c}"))
        .join(", ")
    };
    let differs = format!("({}) IS DISTINCT FROM ({})", cols("n"), cols("o"));
    // Computed rows that are new or differ from the stored ones: the ones to write.
    let fresh = format!(
        "FROM nout n LEFT JOIN oldo o USING (deployment_id) \
         WHERE o.deployment_id IS NULL OR {differs}"
    );
    let row = txn
        .query_one_raw(stmt(
            &format!(
                "WITH gone AS ( \
                    DELETE FROM deployment_outcomes d USING oldo o \
                    LEFT JOIN nout n USING (deployment_id) \
                    WHERE d.deployment_id = o.deployment_id \
                      AND (n.deployment_id IS NULL OR {differs}) \
                    RETURNING o.day), \
                 fresh AS (SELECT n.* {fresh}) \
                 SELECT (SELECT count(*) FROM fresh) AS n, \
                    ARRAY(SELECT day FROM gone UNION SELECT day FROM fresh) AS days"
            ),
            [],
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("outcome diff returned no row".to_owned()))?;
    let n: i64 = row.try_get("", "n")?;
    let changed: Vec<NaiveDate> = row.try_get("", "days")?;
    if n > 0 {
        // A separate statement: an INSERT does not see the DELETE of the same statement.
        txn.execute_unprepared(&format!(
            "INSERT INTO deployment_outcomes (deployment_id, org_id, repository_id, repository, \
                environment, sha, outcome, finished_at, day, change_failed, failure_cause, \
                recovered_at, recovery_s) \
             SELECT n.deployment_id, n.org_id, n.repository_id, n.repository, n.environment, \
                n.sha, n.outcome, n.finished_at, n.day, n.change_failed, n.failure_cause, \
                n.recovered_at, n.recovery_s {fresh}"
        ))
        .await?;
        analyze_if_large(txn, "deployment_outcomes", u64::try_from(n).unwrap_or(0)).await?;
    }
    Ok((u64::try_from(n).unwrap_or(0), changed))
}

/// Deletes the rows about to be written again (in the caller's transaction: readers keep
/// seeing them until it commits). A separate statement: an INSERT does not see the effects of
/// a DELETE in the same statement, so their keys would collide.
pub(super) async fn replace(
    txn: &DatabaseTransaction,
    table: &str,
    column: &str,
    org: &i64,
    days: &[NaiveDate],
) -> Result<(), DbErr> {
    txn.execute_raw(stmt(
        &format!("DELETE FROM {table} WHERE org_id = $1 AND {column} = ANY($2::date[])"),
        [(*org).into(), days.to_vec().into()],
    ))
    .await?;
    Ok(())
}

/// Each event of `ev` once per scope it counts in (organization, repository, user, and each
/// team of its author), optionally only the events matching `filter`. The counts and the
/// percentiles are aggregated separately: only merged pull requests have durations, and the
/// percentiles' sort is the expensive part.
fn scoped(filter: &str) -> String {
    let and = if filter.is_empty() {
        String::new()
    } else {
        format!(" AND {filter}")
    };
    format!(
        "SELECT ev.*, s.scope, s.key FROM ev CROSS JOIN LATERAL (VALUES ('org', 'org'), \
            ('repository', ev.repository), ('user', ev.login)) s (scope, key) \
         WHERE s.key IS NOT NULL{and} \
         UNION ALL \
         SELECT ev.*, 'team', t.key FROM ev JOIN teams t ON t.login = lower(ev.login) \
         WHERE true{and}"
    )
}

/// Teams as sets of GitHub logins (active members whose account names their login).
const TEAM_LOGINS: &str = "SELECT tm.team_id::text AS key, lower(u.github_login) AS login \
    FROM team_members tm JOIN users u ON u.id = tm.user_id AND u.organization_id = tm.organization_id \
    WHERE tm.organization_id = $1 AND u.github_login IS NOT NULL AND u.active";

async fn daily_metrics(
    txn: &DatabaseTransaction,
    org: &Org,
    days: &[NaiveDate],
) -> Result<u64, DbErr> {
    let (Some(first), Some(last)) = (days.first(), days.last()) else {
        return Ok(0);
    };
    let range = |col: &str| {
        format!(
            "{col} >= $4::date::timestamp AT TIME ZONE $2 \
             AND {col} < ($5::date + 1)::timestamp AT TIME ZONE $2 AND {} = ANY($3::date[])",
            day(col)
        )
    };
    // additions, deletions, the five durations, deployments, failed: for rows that are not a
    // merged pull request or a deployment.
    let rest = "0::bigint, 0::bigint, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, \
        NULL::bigint, 0, 0";
    let sql = format!(
        "WITH ev (day, repository, login, opened, merged, closed_unmerged, reviews, comments, \
            commits, additions, deletions, cycle_s, coding_s, pickup_s, review_s, deploy_s, \
            deployments, failed) AS ( \
            SELECT m.created_day, m.repository, m.author_login, 1, 0, 0, 0, 0, 0, {rest} \
            FROM pr_metrics m WHERE m.org_id = $1 AND m.created_day = ANY($3::date[]) \
              AND NOT m.author_is_bot \
            UNION ALL \
            SELECT m.merged_day, m.repository, m.author_login, 0, 1, 0, 0, 0, 0, \
                COALESCE(m.additions, 0)::bigint, COALESCE(m.deletions, 0)::bigint, m.cycle_s, \
                m.coding_s, m.pickup_s, m.review_s, m.deploy_s, 0, 0 \
            FROM pr_metrics m WHERE m.org_id = $1 AND m.merged_day = ANY($3::date[]) \
              AND NOT m.author_is_bot \
            UNION ALL \
            SELECT m.closed_day, m.repository, m.author_login, 0, 0, 1, 0, 0, 0, {rest} \
            FROM pr_metrics m WHERE m.org_id = $1 AND m.closed_day = ANY($3::date[]) \
              AND m.state = 'closed' AND NOT m.author_is_bot \
            UNION ALL \
            SELECT {rday}, rp.full_name, u.login, 0, 0, 0, 1, 0, 0, {rest} \
            FROM reviews r JOIN pull_requests p ON p.github_id = r.pull_request_id \
            JOIN repositories rp ON rp.github_id = r.repository_id \
            JOIN github_users u ON u.organization_id = r.organization_id AND u.github_id = r.reviewer_id \
            WHERE r.organization_id = $1 AND r.state <> 'pending' AND NOT u.is_bot \
              AND r.reviewer_id IS DISTINCT FROM p.author_id AND {rrange} \
            UNION ALL \
            SELECT {cday}, rp.full_name, u.login, 0, 0, 0, 0, 1, 0, {rest} \
            FROM review_comments c JOIN pull_requests p ON p.github_id = c.pull_request_id \
            JOIN repositories rp ON rp.github_id = c.repository_id \
            JOIN github_users u ON u.organization_id = c.organization_id AND u.github_id = c.author_id \
            WHERE c.organization_id = $1 AND NOT u.is_bot \
              AND c.author_id IS DISTINCT FROM p.author_id AND {crange} \
            UNION ALL \
            SELECT {kday}, rp.full_name, k.author_login, 0, 0, 0, 0, 0, 1, {rest} \
            FROM commits k JOIN repositories rp ON rp.github_id = k.repository_id \
            WHERE k.organization_id = $1 AND k.on_default_branch AND {krange} \
              AND NOT COALESCE(k.author_login LIKE '%[bot]', false) \
              AND NOT EXISTS (SELECT 1 FROM github_users b WHERE b.organization_id = $1 \
                  AND lower(b.login) = lower(k.author_login) AND b.is_bot) \
            UNION ALL \
            SELECT o.day, o.repository, NULL, 0, 0, 0, 0, 0, 0, 0::bigint, 0::bigint, NULL::bigint, \
                NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, 1, o.change_failed::int \
            FROM deployment_outcomes o WHERE o.org_id = $1 AND o.outcome = 'success' \
              AND o.day = ANY($3::date[])), \
         teams AS ({TEAM_LOGINS}), \
         counts AS ( \
            SELECT day, scope, key, sum(opened) AS opened, sum(merged) AS merged, \
                sum(closed_unmerged) AS closed_unmerged, sum(reviews) AS reviews, \
                sum(comments) AS comments, sum(commits) AS commits, \
                sum(additions) AS additions, sum(deletions) AS deletions, \
                sum(deployments) AS deployments, sum(failed) AS failed \
            FROM ({all}) x GROUP BY day, scope, key), \
         pct AS ( \
            SELECT day, scope, key, \
                round(percentile_cont(0.5) WITHIN GROUP (ORDER BY cycle_s))::bigint AS c50, \
                round(percentile_cont(0.75) WITHIN GROUP (ORDER BY cycle_s))::bigint AS c75, \
                round(percentile_cont(0.9) WITHIN GROUP (ORDER BY cycle_s))::bigint AS c90, \
                round(percentile_cont(0.5) WITHIN GROUP (ORDER BY coding_s))::bigint AS coding, \
                round(percentile_cont(0.5) WITHIN GROUP (ORDER BY pickup_s))::bigint AS pickup, \
                round(percentile_cont(0.5) WITHIN GROUP (ORDER BY review_s))::bigint AS review, \
                round(percentile_cont(0.5) WITHIN GROUP (ORDER BY deploy_s))::bigint AS deploy \
            FROM ({merged}) x GROUP BY day, scope, key) \
         SELECT c.day, c.scope, c.key AS scope_key, c.opened AS prs_opened, \
            c.merged AS prs_merged, c.closed_unmerged AS prs_closed_unmerged, \
            c.reviews AS reviews_given, c.comments AS review_comments, c.commits, c.additions, \
            c.deletions, p.c50 AS cycle_time_p50_s, p.c75 AS cycle_time_p75_s, \
            p.c90 AS cycle_time_p90_s, p.coding AS coding_time_p50_s, \
            p.pickup AS pickup_time_p50_s, p.review AS review_time_p50_s, \
            p.deploy AS deploy_time_p50_s, c.deployments, c.failed AS failed_deployments \
         FROM counts c LEFT JOIN pct p USING (day, scope, key)",
        all = scoped(""),
        merged = scoped("ev.merged = 1"),
        rday = day("r.submitted_at"),
        rrange = range("r.submitted_at"),
        cday = day("c.created_at"),
        crange = range("c.created_at"),
        kday = day("k.authored_at"),
        krange = range("k.authored_at"),
    );
    // Computed into a temporary table, then only the rows that differ are replaced: a day
    // recomputed without news (most of an incremental run's days, all of a repeated full
    // recompute) writes nothing, where deleting and inserting its ~6,000 rows with their index
    // entries cost more than computing them.
    txn.execute_unprepared("DROP TABLE IF EXISTS daily_new")
        .await?;
    txn.execute_raw(stmt(
        &format!("CREATE TEMP TABLE daily_new ON COMMIT DROP AS {sql}"),
        [
            org.id.into(),
            org.time_zone.clone().into(),
            days.to_vec().into(),
            (*first).into(),
            (*last).into(),
        ],
    ))
    .await?;
    let values = |t: &str| DAILY_COLUMNS.map(|c| format!("{t}.{c}")).join(", ");
    txn.execute_raw(stmt(
        &format!(
            "DELETE FROM daily_metrics d WHERE d.org_id = $1 AND d.day = ANY($2::date[]) \
             AND NOT EXISTS (SELECT 1 FROM daily_new n WHERE n.day = d.day \
                AND n.scope = d.scope AND n.scope_key = d.scope_key \
                AND ({n}) IS NOT DISTINCT FROM ({d}))",
            n = values("n"),
            d = values("d"),
        ),
        [org.id.into(), days.to_vec().into()],
    ))
    .await?;
    Ok(txn
        .execute_raw(stmt(
            &format!(
                "INSERT INTO daily_metrics (org_id, day, scope, scope_key, {cols}) \
                 SELECT $1, n.day, n.scope, n.scope_key, {n} FROM daily_new n \
                 WHERE NOT EXISTS (SELECT 1 FROM daily_metrics d WHERE d.org_id = $1 \
                    AND d.day = ANY($2::date[]) AND d.scope = n.scope \
                    AND d.scope_key = n.scope_key AND d.day = n.day)",
                cols = DAILY_COLUMNS.join(", "),
                n = values("n"),
            ),
            [org.id.into(), days.to_vec().into()],
        ))
        .await?
        .rows_affected())
}

/// The value columns of `daily_metrics`, in the order the recompute selects them.
const DAILY_COLUMNS: [&str; 17] = [
    "prs_opened",
    "prs_merged",
    "prs_closed_unmerged",
    "reviews_given",
    "review_comments",
    "commits",
    "additions",
    "deletions",
    "cycle_time_p50_s",
    "cycle_time_p75_s",
    "cycle_time_p90_s",
    "coding_time_p50_s",
    "pickup_time_p50_s",
    "review_time_p50_s",
    "deploy_time_p50_s",
    "deployments",
    "failed_deployments",
];

/// The time a pull request was open, as indexed by `pr_metrics_open_span_idx` (a PR that ended
/// before it began, from inconsistent data, is an empty moment).
const OPEN_SPAN: &str = "tstzrange(m.created_at, CASE WHEN COALESCE(m.merged_at, m.closed_at) \
    < m.created_at THEN m.created_at ELSE COALESCE(m.merged_at, m.closed_at) END, '[]')";

/// `reliability_scores` of the ISO weeks starting on `weeks` (Mondays), for the organization
/// and each team.
///
/// Each component is counted per author login first, then summed into the organization and
/// each team: at a week's end tens of thousands of pull requests can be open (WIP hygiene reads
/// every one), and a login stands for all of its pull requests in the fan-out to teams. The
/// open ones come from an index-only scan of `pr_metrics_open_span_idx` (it carries the columns
/// read here); activity by others (updates, reviews, comments) is the set of pull requests
/// touched in the idle window.
///
/// One statement per week, its bounds passed as values: the planner then sees them (custom
/// plans, see `recompute_in`) and estimates both sides of the open-to-touched join from the
/// tables' statistics. Bounds read from a CTE of several weeks are opaque to it; while the
/// tables grew it guessed a handful of rows on each side and chose a nested loop that rescanned
/// the touched set per open pull request (7 s for 25,000 of each).
async fn reliability_scores(
    txn: &DatabaseTransaction,
    org: &Org,
    weeks: &[NaiveDate],
) -> Result<u64, DbErr> {
    let s = &org.settings;
    let weights =
        serde_json::to_value(s.score_weights).map_err(|e| DbErr::Custom(e.to_string()))?;
    let w = s.score_weights;
    let sql = format!(
        "WITH teams AS ({TEAM_LOGINS}), \
         scopes AS (SELECT 'org'::text AS scope, 'org'::text AS key UNION ALL \
            SELECT DISTINCT 'team', key FROM teams), \
         touched AS ( \
            SELECT pr.github_id AS id FROM pull_requests pr \
            WHERE pr.organization_id = $1 AND pr.updated_at >= $4 AND pr.updated_at < $3 \
            UNION \
            SELECT r.pull_request_id FROM reviews r \
            WHERE r.organization_id = $1 AND r.submitted_at >= $4 AND r.submitted_at < $3 \
            UNION \
            SELECT c.pull_request_id FROM review_comments c \
            WHERE c.organization_id = $1 AND c.created_at >= $4 AND c.created_at < $3), \
         per_login AS ( \
            SELECT login, sum(merged) AS merged, sum(on_target) AS on_target, \
                sum(reviewed) AS reviewed, sum(in_sla) AS in_sla, sum(open) AS open, \
                sum(idle) AS idle \
            FROM ( \
                SELECT lower(m.author_login) COLLATE \"C\" AS login, 1 AS merged, \
                    CASE WHEN m.cycle_s <= $5 THEN 1 ELSE 0 END AS on_target, 0 AS reviewed, \
                    0 AS in_sla, 0 AS open, 0 AS idle \
                FROM pr_metrics m WHERE m.org_id = $1 \
                    AND m.merged_day BETWEEN $2::date AND $2::date + 6 AND NOT m.author_is_bot \
                UNION ALL \
                SELECT lower(m.author_login) COLLATE \"C\", 0, 0, \
                    CASE WHEN m.pickup_s IS NOT NULL THEN 1 ELSE 0 END, \
                    CASE WHEN m.pickup_s <= $6 THEN 1 ELSE 0 END, 0, 0 \
                FROM pr_metrics m WHERE m.org_id = $1 \
                    AND m.first_review_day BETWEEN $2::date AND $2::date + 6 \
                    AND NOT m.author_is_bot \
                UNION ALL \
                SELECT lower(m.author_login) COLLATE \"C\", 0, 0, 0, 0, 1, \
                    CASE WHEN t.id IS NULL AND NOT (m.created_at >= $4 \
                        OR COALESCE(m.ready_at >= $4 AND m.ready_at < $3, false)) \
                    THEN 1 ELSE 0 END \
                FROM pr_metrics m LEFT JOIN touched t ON t.id = m.pull_request_id \
                WHERE {open_span} @> $3::timestamptz AND m.org_id = $1 AND NOT m.author_is_bot \
                  AND m.created_at < $3 \
                  AND COALESCE(m.merged_at, m.closed_at, 'infinity') >= $3) x \
            GROUP BY login), \
         rolled AS ( \
            SELECT 'org'::text AS scope, 'org'::text AS key, sum(merged) AS merged, \
                sum(on_target) AS on_target, sum(reviewed) AS reviewed, sum(in_sla) AS in_sla, \
                sum(open) AS open, sum(idle) AS idle \
            FROM per_login HAVING count(*) > 0 \
            UNION ALL \
            SELECT 'team', t.key, sum(p.merged), sum(p.on_target), sum(p.reviewed), \
                sum(p.in_sla), sum(p.open), sum(p.idle) \
            FROM per_login p JOIN teams t ON t.login = p.login GROUP BY t.key), \
         outcomes AS ( \
            SELECT o.deployment_id, o.change_failed FROM deployment_outcomes o \
            WHERE o.org_id = $1 AND o.outcome = 'success' \
              AND o.day BETWEEN $2::date AND $2::date + 6), \
         stab AS ( \
            SELECT 'org'::text AS scope, 'org'::text AS key, count(*) AS n, \
                count(*) FILTER (WHERE o.change_failed) AS failed \
            FROM outcomes o HAVING count(*) > 0 \
            UNION ALL \
            SELECT 'team', t.key, count(*), count(*) FILTER (WHERE o.change_failed) \
            FROM outcomes o \
            JOIN (SELECT DISTINCT t.key, m.deployment_id FROM pr_metrics m \
                  JOIN teams t ON t.login = lower(m.author_login) \
                  WHERE m.org_id = $1 AND m.deployed_day BETWEEN $2::date AND $2::date + 6 \
                    AND NOT m.author_is_bot AND m.deployment_id IS NOT NULL) t \
                ON t.deployment_id = o.deployment_id \
            GROUP BY 1, 2), \
         parts AS ( \
            SELECT sc.scope, sc.key, \
                COALESCE(r.merged, 0) AS merged, COALESCE(r.on_target, 0) AS on_target, \
                COALESCE(r.reviewed, 0) AS reviewed, COALESCE(r.in_sla, 0) AS in_sla, \
                COALESCE(d.n, 0) AS deployments, COALESCE(d.failed, 0) AS failed, \
                COALESCE(r.open, 0) AS open, COALESCE(r.idle, 0) AS idle, \
                r.on_target::float8 / NULLIF(r.merged, 0) AS flow, \
                r.in_sla::float8 / NULLIF(r.reviewed, 0) AS review, \
                1 - d.failed::float8 / NULLIF(d.n, 0) AS stability, \
                1 - r.idle::float8 / NULLIF(r.open, 0) AS wip \
            FROM scopes sc \
            LEFT JOIN rolled r ON r.scope = sc.scope AND r.key = sc.key \
            LEFT JOIN stab d ON d.scope = sc.scope AND d.key = sc.key) \
         INSERT INTO reliability_scores (org_id, scope, scope_key, week, iso_week, score, \
            flow_predictability, review_responsiveness, change_stability, wip_hygiene, prs_merged, \
            prs_merged_on_target, prs_first_reviewed, prs_picked_up_in_sla, deployments, \
            failed_deployments, open_prs, idle_open_prs, weights) \
         SELECT $1, scope, key, $2::date, to_char($2::date, 'IYYY-\"W\"IW'), \
            100 * (COALESCE({wf} * flow, 0) + COALESCE({wr} * review, 0) \
                 + COALESCE({ws} * stability, 0) + COALESCE({ww} * wip, 0)) \
              / NULLIF((CASE WHEN flow IS NULL THEN 0 ELSE {wf} END) \
                 + (CASE WHEN review IS NULL THEN 0 ELSE {wr} END) \
                 + (CASE WHEN stability IS NULL THEN 0 ELSE {ws} END) \
                 + (CASE WHEN wip IS NULL THEN 0 ELSE {ww} END), 0), \
            flow, review, stability, wip, merged, on_target, reviewed, in_sla, deployments, \
            failed, open, idle, $7::jsonb \
         FROM parts",
        open_span = OPEN_SPAN,
        wf = w.flow_predictability,
        wr = w.review_responsiveness,
        ws = w.change_stability,
        ww = w.wip_hygiene,
    );
    replace(txn, "reliability_scores", "week", &org.id, weeks).await?;
    // A week ends at the next Monday's midnight in the organization's time zone, or now for
    // the current week. All the weeks' bounds in one query.
    let bounds = txn
        .query_all_raw(stmt(
            "SELECT week, week_end, week_end - make_interval(days => $3) AS idle_from \
             FROM unnest($1::date[]) week, \
                LATERAL (SELECT LEAST((week + 7)::timestamp AT TIME ZONE $2, now()) AS week_end) e",
            [
                weeks.to_vec().into(),
                org.time_zone.clone().into(),
                i32::try_from(s.wip_idle_days).unwrap_or(i32::MAX).into(),
            ],
        ))
        .await?;
    let mut rows = 0;
    for bound in bounds {
        let week: NaiveDate = bound.try_get("", "week")?;
        let week_end: DateTime<Utc> = bound.try_get("", "week_end")?;
        let idle_from: DateTime<Utc> = bound.try_get("", "idle_from")?;
        rows += txn
            .execute_raw(stmt(
                &sql,
                [
                    org.id.into(),
                    week.into(),
                    week_end.into(),
                    idle_from.into(),
                    (i64::from(s.cycle_time_target_hours) * 3600).into(),
                    (i64::from(s.pickup_sla_hours) * 3600).into(),
                    weights.clone().into(),
                ],
            ))
            .await?
            .rows_affected();
    }
    Ok(rows)
}
