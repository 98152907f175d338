//! Precomputed analytics against a hand-computed history: every number asserted here was worked
//! out by hand from the events in [`history`] (the arithmetic is in the comments), through the
//! real processors, dirty-day marking and incremental runs.

use chrono::{DateTime, NaiveDate, Utc};
use jobs::analytics;
use jobs::github::payloads::{self as gh, Actor, Commit, Deploy, Issue, Pr, Repo};
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

use crate::helpers::Env;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&format!("{s}:00Z"))
        .expect("time")
        .with_timezone(&Utc)
}

fn day(s: &str) -> NaiveDate {
    s.parse().expect("date")
}

fn alice() -> Actor {
    Actor::user(1, "alice")
}
fn bob() -> Actor {
    Actor::user(2, "bob")
}
fn dependabot() -> Actor {
    Actor::bot(3, "dependabot[bot]")
}

fn repo(id: i64, name: &str) -> Repo {
    Repo {
        id,
        owner: Actor::user(50, "acme"),
        name: name.to_owned(),
        default_branch: "main".to_owned(),
        installation_id: 77,
    }
}

fn pr(id: i64, number: i32, author: Actor, title: &str, head: &str, created: &str) -> Pr {
    Pr {
        id,
        number,
        title: title.to_owned(),
        body: None,
        author,
        head_ref: head.to_owned(),
        head_sha: format!("head{id}"),
        draft: false,
        created_at: t(created),
        updated_at: t(created),
        merged_at: None,
        closed_at: None,
        merge_commit_sha: None,
        additions: 10,
        deletions: 2,
    }
}

fn merged(mut pr: Pr, at: &str, sha: &str) -> Pr {
    pr.merged_at = Some(t(at));
    pr.closed_at = Some(t(at));
    pr.updated_at = t(at);
    pr.merge_commit_sha = Some(sha.to_owned());
    pr
}

fn commit(sha: &str, author: Actor, at: &str) -> Commit {
    Commit {
        sha: sha.to_owned(),
        message: format!("commit {sha}"),
        author,
        authored_at: t(at),
    }
}

fn deploy(id: i64, sha: &str, environment: &str, production: Option<bool>, at: &str) -> Deploy {
    Deploy {
        id,
        sha: sha.to_owned(),
        environment: environment.to_owned(),
        production,
        creator: alice(),
        created_at: t(at),
    }
}

/// The history, oldest first: (event, payload).
fn history() -> Vec<(&'static str, serde_json::Value)> {
    let api = repo(100, "api");
    let web = repo(200, "web");
    let mut ev: Vec<(&'static str, serde_json::Value)> = vec![(
        "installation",
        gh::installation(
            77,
            &Actor::user(50, "acme"),
            &[api.clone(), web.clone()],
            t("2026-03-01T00:00"),
        ),
    )];
    let push = |repo: &Repo, branch: &str, c: Commit, at: &str| {
        ("push", gh::push(repo, branch, &[c], t(at), &alice()))
    };
    let status = |repo: &Repo, d: &Deploy, id: i64, state: &str, at: &str| {
        (
            "deployment_status",
            gh::deployment_status(repo, d, id, state, t(at)),
        )
    };

    // acme/api, Monday 2026-03-02.
    ev.push(push(
        &api,
        "feat-a",
        commit("a1", alice(), "2026-03-01T10:00"),
        "2026-03-01T10:05",
    ));
    let pr1 = pr(
        1001,
        1,
        alice(),
        "Add feature A",
        "feat-a",
        "2026-03-02T09:00",
    );
    ev.push(("pull_request", gh::pull_request(&api, &pr1, "opened")));
    // A bot's PR, merged with a commit DevPulse never saw pushed.
    let pr3 = merged(
        pr(
            1003,
            3,
            dependabot(),
            "Bump x",
            "dependabot/x",
            "2026-03-02T08:00",
        ),
        "2026-03-02T09:00",
        "b1",
    );
    ev.push(("pull_request", gh::pull_request(&api, &pr3, "closed")));
    // Opened as a draft, ready at 12:00.
    let mut pr2 = pr(
        1002,
        2,
        bob(),
        "Add feature B",
        "feat-b",
        "2026-03-02T10:00",
    );
    pr2.draft = true;
    ev.push(("pull_request", gh::pull_request(&api, &pr2, "opened")));
    pr2.draft = false;
    pr2.updated_at = t("2026-03-02T12:00");
    ev.push((
        "pull_request",
        gh::pull_request(&api, &pr2, "ready_for_review"),
    ));
    // The author's own review does not count.
    ev.push((
        "pull_request_review",
        gh::review(&api, 1002, 2001, &bob(), "commented", t("2026-03-02T12:30")),
    ));
    ev.push((
        "pull_request_review",
        gh::review(&api, 1001, 2002, &bob(), "approved", t("2026-03-02T13:00")),
    ));
    ev.push((
        "pull_request_review",
        gh::review(
            &api,
            1002,
            2003,
            &alice(),
            "commented",
            t("2026-03-02T14:00"),
        ),
    ));
    ev.push((
        "pull_request_review_comment",
        gh::review_comment(&api, 1002, 2003, 2103, &alice(), t("2026-03-02T14:05")),
    ));
    // Squash merge: m1 is the squash commit on main.
    ev.push((
        "pull_request",
        gh::pull_request(&api, &merged(pr1, "2026-03-02T15:00", "m1"), "closed"),
    ));
    ev.push(push(
        &api,
        "main",
        commit("m1", alice(), "2026-03-02T15:00"),
        "2026-03-02T15:01",
    ));
    let d1 = deploy(3001, "m1", "production", Some(true), "2026-03-02T16:00");
    ev.push(("deployment", gh::deployment(&api, &d1)));
    ev.push(status(&api, &d1, 4001, "success", "2026-03-02T16:30"));
    ev.push((
        "pull_request",
        gh::pull_request(&api, &merged(pr2, "2026-03-02T16:45", "m2"), "closed"),
    ));
    ev.push(push(
        &api,
        "main",
        commit("m2", bob(), "2026-03-02T16:45"),
        "2026-03-02T16:46",
    ));
    let d2 = deploy(3002, "m2", "production", Some(true), "2026-03-02T17:30");
    ev.push(status(&api, &d2, 4002, "success", "2026-03-02T18:00"));
    // A revert of PR 1 merged inside D2's window: PR 1 was deployed by D1, so D2 did not fail.
    let mut pr4 = pr(
        1004,
        4,
        alice(),
        "Revert \"Add feature A\"",
        "revert-1-feat-a",
        "2026-03-02T19:00",
    );
    pr4.body = Some("Reverts acme/api#1".to_owned());
    ev.push((
        "pull_request",
        gh::pull_request(&api, &merged(pr4, "2026-03-02T20:00", "m4"), "closed"),
    ));
    ev.push(push(
        &api,
        "main",
        commit("m4", alice(), "2026-03-02T20:00"),
        "2026-03-02T20:01",
    ));

    // acme/web, Tuesday: a revert fails W1; W2 recovers it.
    let pr10 = merged(
        pr(
            1010,
            10,
            alice(),
            "Add banner",
            "banner",
            "2026-03-03T09:00",
        ),
        "2026-03-03T10:00",
        "w1",
    );
    ev.push(("pull_request", gh::pull_request(&web, &pr10, "closed")));
    ev.push(push(
        &web,
        "main",
        commit("w1", alice(), "2026-03-03T10:00"),
        "2026-03-03T10:01",
    ));
    let w1 = deploy(3010, "w1", "Production", None, "2026-03-03T10:30");
    ev.push(status(&web, &w1, 4010, "success", "2026-03-03T11:00"));
    let mut pr11 = pr(
        1011,
        11,
        bob(),
        "Revert \"Add banner\"",
        "revert-10-banner",
        "2026-03-03T12:00",
    );
    pr11.body = Some("Reverts acme/web#10\n\nBroke the header.".to_owned());
    ev.push((
        "pull_request",
        gh::pull_request(&web, &merged(pr11, "2026-03-03T12:30", "w2"), "closed"),
    ));
    ev.push(push(
        &web,
        "main",
        commit("w2", bob(), "2026-03-03T12:30"),
        "2026-03-03T12:31",
    ));
    let w2 = deploy(3011, "w2", "Production", None, "2026-03-03T12:45");
    ev.push(status(&web, &w2, 4011, "success", "2026-03-03T13:00"));
    let staging = deploy(3012, "w2", "staging", None, "2026-03-03T13:10");
    ev.push(status(&web, &staging, 4012, "success", "2026-03-03T13:30"));

    // acme/api, Wednesday: D4 rolls back to m2, so D3 failed; D5–D7 fail outright.
    let pr5 = merged(
        pr(1005, 5, alice(), "Feature C", "feat-c", "2026-03-04T08:00"),
        "2026-03-04T09:00",
        "m3",
    );
    ev.push(("pull_request", gh::pull_request(&api, &pr5, "closed")));
    ev.push(push(
        &api,
        "main",
        commit("m3", alice(), "2026-03-04T09:00"),
        "2026-03-04T09:01",
    ));
    let d3 = deploy(3003, "m3", "production", Some(true), "2026-03-04T09:30");
    ev.push(status(&api, &d3, 4003, "success", "2026-03-04T10:00"));
    let d4 = deploy(3004, "m2", "production", Some(true), "2026-03-04T10:30");
    ev.push(status(&api, &d4, 4004, "success", "2026-03-04T11:00"));
    for (id, state, at) in [
        (3005, "failure", "2026-03-04T11:30"),
        (3006, "failure", "2026-03-04T12:00"),
        (3007, "error", "2026-03-04T12:30"),
    ] {
        let d = deploy(id, "m3", "production", Some(true), "2026-03-04T11:15");
        ev.push(status(&api, &d, id + 1000, state, at));
    }
    // Still open, never reviewed.
    ev.push((
        "pull_request",
        gh::pull_request(
            &api,
            &pr(1006, 6, bob(), "Open work", "feat-d", "2026-03-04T12:00"),
            "opened",
        ),
    ));

    // acme/web, Thursday: W3's commit position is unknown (no push); an incident fails it.
    let pr12 = merged(
        pr(1012, 12, bob(), "Feature D", "feat-w", "2026-03-05T08:00"),
        "2026-03-05T09:00",
        "w3",
    );
    ev.push(("pull_request", gh::pull_request(&web, &pr12, "closed")));
    let w3 = deploy(3013, "w3", "Production", None, "2026-03-05T09:30");
    ev.push(status(&web, &w3, 4013, "success", "2026-03-05T10:00"));
    let mut incident = Issue {
        id: 5001,
        number: 7,
        title: "Header broken".to_owned(),
        labels: vec!["Incident".to_owned()],
        author: bob(),
        created_at: t("2026-03-05T15:00"),
        closed_at: None,
    };
    ev.push(("issues", gh::issue(&web, &incident, "opened")));
    incident.closed_at = Some(t("2026-03-05T16:00"));
    ev.push(("issues", gh::issue(&web, &incident, "closed")));
    let bug = Issue {
        id: 5003,
        number: 8,
        title: "Typo".to_owned(),
        labels: vec!["bug".to_owned()],
        author: bob(),
        created_at: t("2026-03-05T12:00"),
        closed_at: None,
    };
    ev.push(("issues", gh::issue(&web, &bug, "opened")));
    // An incident after D4's 24-hour window: not D4's failure.
    let late = Issue {
        id: 5002,
        number: 9,
        title: "Slow".to_owned(),
        labels: vec!["incident".to_owned()],
        author: bob(),
        created_at: t("2026-03-06T12:00"),
        closed_at: None,
    };
    ev.push(("issues", gh::issue(&api, &late, "opened")));
    ev
}

async fn apply_all(env: &Env, prefix: &str, events: &[(&'static str, serde_json::Value)]) {
    for (i, (event, payload)) in events.iter().enumerate() {
        env.apply(&format!("{prefix}-{i}"), event, &payload.to_string())
            .await;
    }
}

async fn drain(env: &Env) {
    for _ in 0..1000 {
        if analytics::drain_dirty(&env.db, 62, std::time::Duration::ZERO)
            .await
            .expect("drain")
            .is_none()
        {
            return;
        }
    }
    panic!("dirty days never drained");
}

async fn org_id(env: &Env) -> i64 {
    env.number(
        "SELECT id AS n FROM organizations WHERE github_login = 'acme'",
        vec![],
    )
    .await
}

/// `worker recompute` of the organization's days `from`..=`to`, which must succeed; its output.
fn recompute(env: &Env, org: i64, from: &str, to: &str) -> String {
    let (code, stdout, stderr) = env.worker_command(&[
        "recompute",
        "--org",
        &org.to_string(),
        "--from",
        from,
        "--to",
        to,
    ]);
    assert_eq!(code, 0, "{stdout} {stderr}");
    stdout
}

/// One row of a table as JSON (NULLs included), for comparing and asserting.
async fn row(env: &Env, sql: &str, values: Vec<Value>) -> serde_json::Value {
    let rows = env
        .db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!("SELECT to_jsonb(x) AS j FROM ({sql}) x"),
            values,
        ))
        .await
        .expect("query");
    assert_eq!(rows.len(), 1, "{sql}: {} rows", rows.len());
    let mut j: serde_json::Value = rows[0].try_get("", "j").expect("j");
    if let Some(o) = j.as_object_mut() {
        o.remove("computed_at");
    }
    j
}

/// Every precomputed row of the organization in March 2026 (DORA) and its first two weeks
/// (scores), for comparing two ways of computing them.
async fn snapshot(env: &Env, org: i64) -> String {
    let mut out = String::new();
    for (table, filter, order) in [
        ("pr_metrics", "true", "pull_request_id"),
        ("deployment_outcomes", "true", "deployment_id"),
        ("daily_metrics", "true", "day, scope, scope_key"),
        (
            "dora_metrics",
            "day BETWEEN '2026-03-01' AND '2026-03-31'",
            "day, repository NULLS FIRST, window_days",
        ),
        (
            "reliability_scores",
            "week IN ('2026-02-23', '2026-03-02')",
            "week, scope, scope_key",
        ),
    ] {
        let rows = env
            .db
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                format!(
                    "SELECT (to_jsonb(t) - 'computed_at')::text AS j FROM {table} t \
                     WHERE org_id = $1 AND {filter} ORDER BY {order}"
                ),
                [org.into()],
            ))
            .await
            .expect("snapshot");
        out.push_str(&format!("{table}: {}\n", rows.len()));
        for r in rows {
            out.push_str(&r.try_get::<String>("", "j").expect("j"));
            out.push('\n');
        }
    }
    out
}

async fn assert_hand_computed(env: &Env, org: i64) {
    let daily = |scope: &str, key: &str, d: &str| {
        row(
            env,
            "SELECT prs_opened, prs_merged, prs_closed_unmerged, reviews_given, review_comments, \
                commits, additions, deletions, cycle_time_p50_s, cycle_time_p75_s, cycle_time_p90_s, \
                coding_time_p50_s, pickup_time_p50_s, review_time_p50_s, deploy_time_p50_s, \
                deployments, failed_deployments \
             FROM daily_metrics WHERE org_id = $1 AND scope = $2 AND scope_key = $3 AND day = $4",
            vec![org.into(), scope.into(), key.into(), day(d).into()],
        )
    };
    // Monday, whole organization. Opened and merged: PRs 1, 2, 4 (the bot's PR 3 is left out).
    // Cycle: PR 1 from its first commit 03-01 10:00 to 15:00 = 104400; PR 2 10:00→16:45 =
    // 24300; PR 4 19:00→20:00 = 3600. p50 24300, p75 24300 + 0.5 × 80100 = 64350,
    // p90 24300 + 0.8 × 80100 = 88380. Coding: PR 1 only, 03-01 10:00→03-02 09:00 = 82800.
    // Pickup: PR 1 09:00→13:00 = 14400; PR 2 ready 12:00 → alice 14:00 = 7200 (bob's own
    // review at 12:30 does not count): p50 10800. Review: 13:00→15:00 = 7200, 14:00→16:45 =
    // 9900: 8550. Deploy: PR 1 → D1 16:30 = 5400; PR 2 → D2 18:00 = 4500; PR 4 → D3
    // (03-04 10:00, the first that contains m4) = 136800: p50 5400. Commits on main: m1, m2, m4.
    assert_eq!(
        daily("org", "org", "2026-03-02").await,
        serde_json::json!({
            "prs_opened": 3, "prs_merged": 3, "prs_closed_unmerged": 0, "reviews_given": 2,
            "review_comments": 1, "commits": 3, "additions": 30, "deletions": 6,
            "cycle_time_p50_s": 24300, "cycle_time_p75_s": 64350, "cycle_time_p90_s": 88380,
            "coding_time_p50_s": 82800, "pickup_time_p50_s": 10800, "review_time_p50_s": 8550,
            "deploy_time_p50_s": 5400, "deployments": 2, "failed_deployments": 0,
        })
    );
    // alice on Monday: PRs 1 and 4; her review of PR 2 and its comment; commits m1 and m4.
    let alice_monday = daily("user", "alice", "2026-03-02").await;
    assert_eq!(alice_monday["prs_opened"], 2);
    assert_eq!(alice_monday["reviews_given"], 1);
    assert_eq!(alice_monday["review_comments"], 1);
    assert_eq!(alice_monday["commits"], 2);
    assert_eq!(alice_monday["cycle_time_p50_s"], 54000); // (104400 + 3600) / 2
    assert_eq!(alice_monday["deployments"], 0);
    let core = env
        .number("SELECT id AS n FROM teams WHERE name = 'Core'", vec![])
        .await;
    let mut team = daily("team", &core.to_string(), "2026-03-02").await;
    assert_eq!(team, alice_monday, "the team is alice alone");
    team = daily("repository", "acme/web", "2026-03-03").await;
    // W1 failed (PR 11 reverts PR 10, which W1 deployed, before W2); staging does not count.
    assert_eq!(team["deployments"], 2);
    assert_eq!(team["failed_deployments"], 1);
    assert_eq!(team["deploy_time_p50_s"], 2700); // PR 10 3600, PR 11 1800

    let outcome = |id: i64| {
        row(
            env,
            "SELECT outcome, change_failed, failure_cause, recovery_s FROM deployment_outcomes \
             WHERE deployment_id = $1",
            vec![id.into()],
        )
    };
    let ok = serde_json::json!({"outcome": "success", "change_failed": false, "failure_cause": null, "recovery_s": null});
    assert_eq!(outcome(3001).await, ok, "D1");
    assert_eq!(
        outcome(3002).await,
        ok,
        "D2: the reverted PR was not its own"
    );
    assert_eq!(
        outcome(3010).await,
        serde_json::json!({"outcome": "success", "change_failed": true, "failure_cause": "revert", "recovery_s": 7200})
    );
    assert_eq!(
        outcome(3003).await,
        serde_json::json!({"outcome": "success", "change_failed": true, "failure_cause": "rollback", "recovery_s": 3600})
    );
    assert_eq!(
        outcome(3004).await,
        ok,
        "D4: the incident came after its window"
    );
    assert_eq!(
        outcome(3013).await,
        serde_json::json!({"outcome": "success", "change_failed": true, "failure_cause": "incident", "recovery_s": 21600}),
        "W3 recovers when the incident closes"
    );
    assert_eq!(outcome(3005).await["outcome"], "failure");
    assert_eq!(
        env.number(
            "SELECT count(*) AS n FROM deployment_outcomes WHERE deployment_id = 3012",
            vec![]
        )
        .await,
        0,
        "staging is not production"
    );
    // PR 12's merge commit was never pushed: it falls back to W3, the first after its merge.
    let pr12 = row(
        env,
        "SELECT deployment_id, deploy_s FROM pr_metrics WHERE pull_request_id = 1012",
        vec![],
    )
    .await;
    assert_eq!(
        pr12,
        serde_json::json!({"deployment_id": 3013, "deploy_s": 3600})
    );

    let dora = |repository: Option<&str>, window: i32| {
        row(
            env,
            "SELECT deployments, deploy_days, deploy_days_per_week, band, lead_time_p50_s, \
                lead_time_count, change_failure_rate, failed_deployments, recovery_time_p50_s, \
                recovery_count, unrecovered_count FROM dora_metrics \
             WHERE org_id = $1 AND repository IS NOT DISTINCT FROM $2 AND day = $3 AND window_days = $4",
            vec![
                org.into(),
                repository.map(str::to_owned).into(),
                day("2026-03-05").into(),
                window.into(),
            ],
        )
    };
    // Seven successful production deployments on four days; W1, D3, W3 failed; recoveries
    // 7200, 3600, 21600. Lead times: PR 1 109800, PR 2 28800, PR 4 140400, PR 5 7200, PR 10
    // 7200, PR 11 3600, PR 12 7200: median 7200.
    let week = dora(None, 7).await;
    assert_eq!(
        week,
        serde_json::json!({
            "deployments": 7, "deploy_days": 4, "deploy_days_per_week": 4, "band": "high",
            "lead_time_p50_s": 7200, "lead_time_count": 7, "change_failure_rate": 3.0 / 7.0,
            "failed_deployments": 3, "recovery_time_p50_s": 7200, "recovery_count": 3,
            "unrecovered_count": 0,
        })
    );
    // Over 28 days the weeks had 4, 0, 0, 0 deployment days: median 0, but some deployment.
    let month = dora(None, 28).await;
    assert_eq!(month["deploy_days_per_week"], 0);
    assert_eq!(month["band"], "medium");
    let web = dora(Some("acme/web"), 7).await;
    assert_eq!(web["deployments"], 3);
    assert_eq!(web["change_failure_rate"], 2.0 / 3.0);
    assert_eq!(web["recovery_time_p50_s"], 14400);

    // Week of 03-02: flow 7/7, review 2/2, stability 1 − 3/7, WIP: PR 6 open and active on
    // 03-04 (not idle at week end): 1. Score 100 × (1 + 1 + 4/7 + 1) / 4.
    let score = row(
        env,
        "SELECT iso_week, score, flow_predictability, review_responsiveness, change_stability, \
            wip_hygiene, open_prs, weights FROM reliability_scores \
         WHERE org_id = $1 AND scope = 'org' AND week = $2",
        vec![org.into(), day("2026-03-02").into()],
    )
    .await;
    assert_eq!(score["iso_week"], "2026-W10");
    let got = score["score"].as_f64().expect("score");
    assert!(
        (got - 100.0 * (3.0 + 4.0 / 7.0) / 4.0).abs() < 1e-9,
        "{score}"
    );
    assert_eq!(score["flow_predictability"], 1);
    assert_eq!(score["review_responsiveness"], 1);
    assert_eq!(score["open_prs"], 1);
    assert_eq!(score["weights"]["change_stability"], 1.0);
}

async fn make_team(env: &Env, org: i64) {
    env.db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "WITH u AS (INSERT INTO users (organization_id, email, display_name, role, github_login) \
                VALUES ($1, 'alice@acme.test', 'Alice', 'developer', 'alice') RETURNING id), \
             t AS (INSERT INTO teams (organization_id, name) VALUES ($1, 'Core') RETURNING id) \
             INSERT INTO team_members (organization_id, team_id, user_id) SELECT $1, t.id, u.id FROM t, u",
            [org.into()],
        ))
        .await
        .expect("team");
}

#[tokio::test]
async fn hand_computed_metrics_from_incremental_runs_match_a_full_recompute() {
    // Arrange: the organization and its team exist before the history arrives.
    let env = Env::new().await;
    let events = history();
    apply_all(&env, "install", &events[..1]).await;
    let org = org_id(&env).await;
    make_team(&env, org).await;

    // Act: every event, each followed by the incremental run the worker would make.
    for (i, (event, payload)) in events.iter().enumerate().skip(1) {
        env.apply(&format!("h-{i}"), event, &payload.to_string())
            .await;
        drain(&env).await;
    }

    // Assert: the hand-computed numbers; and a full recompute changes nothing.
    assert_hand_computed(&env, org).await;
    let incremental = snapshot(&env, org).await;
    let stdout = recompute(&env, org, "2026-02-20", "2026-04-10");
    assert!(
        stdout.contains("recomputed 2026-02-20 to 2026-04-10"),
        "{stdout}"
    );
    assert_same_snapshots(&incremental, &snapshot(&env, org).await);
    env.teardown().await;
}

#[tokio::test]
async fn the_same_history_delivered_backwards_gives_the_same_metrics() {
    let env = Env::new().await;
    let events = history();
    apply_all(&env, "install", &events[..1]).await;
    let org = org_id(&env).await;
    make_team(&env, org).await;
    let mut backwards: Vec<_> = events[1..].to_vec();
    backwards.reverse();

    apply_all(&env, "backwards", &backwards).await;
    drain(&env).await;

    assert_hand_computed(&env, org).await;
    env.teardown().await;
}

#[tokio::test]
async fn recompute_refuses_bad_ranges_and_unknown_organizations_in_one_line() {
    let env = Env::new().await;

    let (code, _, stderr) = env.worker_command(&[
        "recompute",
        "--org",
        "42",
        "--from",
        "2026-03-02",
        "--to",
        "2026-03-01",
    ]);
    assert_ne!(code, 0);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--from must not be after --to"), "{stderr}");

    let (code, _, stderr) = env.worker_command(&[
        "recompute",
        "--org",
        "42",
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-02",
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("no organization 42"), "{stderr}");
    env.teardown().await;
}

/// A webhook receiver on a free port: records each request's headers and body and answers
/// with the next status from `statuses` (200 once they run out).
struct Receiver {
    url: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl Receiver {
    async fn start(statuses: Vec<u16>) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        let statuses = std::sync::Arc::new(std::sync::Mutex::new(statuses.into_iter()));
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut data = Vec::new();
                let mut buf = [0u8; 4096];
                // Read the head, then as much body as Content-Length says.
                let (head, body) = loop {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        break (String::new(), String::new());
                    }
                    data.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&data).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let head = text[..end].to_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if data.len() >= end + 4 + length {
                            break (head, text[end + 4..end + 4 + length].to_owned());
                        }
                    }
                };
                seen.lock().expect("lock").push((head, body));
                let status = statuses.lock().expect("lock").next().unwrap_or(200);
                let _ = socket
                    .write_all(
                        format!(
                            "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    )
                    .await;
            }
        });
        Self { url, requests }
    }

    fn bodies(&self) -> Vec<serde_json::Value> {
        self.requests
            .lock()
            .expect("lock")
            .iter()
            .map(|(_, b)| serde_json::from_str(b).expect("JSON body"))
            .collect()
    }
}

async fn alert_kinds(env: &Env, org: i64) -> Vec<String> {
    env.db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT kind || ' ' || subject AS k FROM health_alerts \
             WHERE org_id = $1 AND resolved_at IS NULL ORDER BY 1",
            [org.into()],
        ))
        .await
        .expect("alerts")
        .iter()
        .map(|r| r.try_get::<String>("", "k").expect("k"))
        .collect()
}

#[tokio::test]
async fn alerts_open_once_resolve_when_the_condition_clears_and_notify_signed() {
    // Arrange: the history, a receiver, and carol, who has done nothing since January.
    let env = Env::new().await;
    let events = history();
    apply_all(&env, "h", &events).await;
    drain(&env).await;
    let org = org_id(&env).await;
    let receiver = Receiver::start(vec![]).await;
    env.db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE organizations SET notification_url = $2, notification_secret = 's3cret' WHERE id = $1",
            [org.into(), receiver.url.clone().into()],
        ))
        .await
        .expect("settings");
    let carol: i64 = env
        .number(
            &format!(
                "INSERT INTO users (organization_id, email, display_name, role, github_login, created_at) \
                 VALUES ({org}, 'carol@acme.test', 'Carol', 'developer', 'carol', '2026-01-01') RETURNING id AS n"
            ),
            vec![],
        )
        .await;
    let settings = analytics::load_org(&env.db, org)
        .await
        .expect("org")
        .expect("exists");

    // Act: Tuesday 2026-03-10, noon.
    let report =
        analytics::alerts::evaluate(&env.db, &settings, t("2026-03-10T12:00"), day("2026-03-10"))
            .await
            .expect("alerts");

    // Assert: PR 6 has waited 6 days for a review (not yet 7 without activity); the last three
    // production deployments of acme/api failed; carol did nothing in 5 working days.
    assert_eq!(report.opened, 3);
    assert_eq!(
        alert_kinds(&env, org).await,
        vec![
            "failing_deployments acme/api:production".to_owned(),
            format!("inactivity {carol}"),
            "unreviewed_pr acme/api#6".to_owned(),
        ]
    );
    let sent =
        worker::analytics::send_due(&env.db, &reqwest::Client::new(), &Default::default(), 10)
            .await
            .expect("send");
    assert_eq!(sent.sent, 3);
    let requests = receiver.requests.lock().expect("lock").clone();
    for (head, body) in &requests {
        let expected = analytics::notify::signature(b"s3cret", body.as_bytes());
        assert!(
            head.contains(&format!("x-devpulse-signature-256: {expected}")),
            "{head}"
        );
    }
    assert!(
        receiver
            .bodies()
            .iter()
            .all(|b| b["event"] == "alert.opened" && b["text"].is_string())
    );

    // The same conditions an hour later: nothing new is opened or sent.
    let again =
        analytics::alerts::evaluate(&env.db, &settings, t("2026-03-10T13:00"), day("2026-03-10"))
            .await
            .expect("alerts");
    assert_eq!((again.open, again.opened, again.resolved), (3, 0, 0));

    // Two days later PR 6 is also stale; a successful deployment ends the failing streak.
    let api = repo(100, "api");
    let d8 = deploy(3008, "m3", "production", Some(true), "2026-03-12T12:30");
    env.apply(
        "fix",
        "deployment_status",
        &gh::deployment_status(&api, &d8, 4108, "success", t("2026-03-12T13:00")).to_string(),
    )
    .await;
    drain(&env).await;
    let later =
        analytics::alerts::evaluate(&env.db, &settings, t("2026-03-12T14:00"), day("2026-03-12"))
            .await
            .expect("alerts");
    assert_eq!((later.opened, later.resolved), (1, 1));
    assert!(
        alert_kinds(&env, org)
            .await
            .contains(&"stale_pr acme/api#6".to_owned())
    );
    worker::analytics::send_due(&env.db, &reqwest::Client::new(), &Default::default(), 10)
        .await
        .expect("send");
    let resolved: Vec<_> = receiver
        .bodies()
        .into_iter()
        .filter(|b| b["event"] == "alert.resolved")
        .collect();
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0]["alert"]["kind"], "failing_deployments");
    env.teardown().await;
}

#[tokio::test]
async fn a_notification_the_receiver_keeps_refusing_ends_in_the_dead_letter_queue_and_can_be_re_driven()
 {
    // Arrange: an alert to announce, and a receiver that fails twice, then accepts.
    let env = Env::new().await;
    apply_all(&env, "h", &history()).await;
    drain(&env).await;
    let org = org_id(&env).await;
    let receiver = Receiver::start(vec![500, 503]).await;
    env.db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE organizations SET notification_url = $2 WHERE id = $1",
            [org.into(), receiver.url.clone().into()],
        ))
        .await
        .expect("settings");
    let settings = analytics::load_org(&env.db, org)
        .await
        .expect("org")
        .expect("exists");
    analytics::alerts::evaluate(&env.db, &settings, t("2026-03-10T12:00"), day("2026-03-10"))
        .await
        .expect("alerts");
    env.db
        .execute_unprepared(
            "DELETE FROM notifications WHERE id NOT IN (SELECT min(id) FROM notifications)",
        )
        .await
        .expect("keep one");
    let policy = analytics::notify::Policy {
        retry: jobs::runner::RetryPolicy {
            base: std::time::Duration::from_millis(1),
            cap: std::time::Duration::from_millis(2),
            max_attempts: 2,
            ..Default::default()
        },
        ..Default::default()
    };
    let http = reqwest::Client::new();

    // Act: two attempts, both refused.
    let first = worker::analytics::send_due(&env.db, &http, &policy, 10)
        .await
        .expect("send");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let second = worker::analytics::send_due(&env.db, &http, &policy, 10)
        .await
        .expect("send");

    // Assert: retried once, then a dead letter in the sendNotification queue.
    assert_eq!((first.failed, second.dead), (1, 1));
    let letters = jobs::dead_letters::list(
        &env.db,
        jobs::dead_letters::Scope::Platform,
        Some("sendNotification"),
        10,
    )
    .await
    .expect("letters");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].attempts, 2);
    assert!(letters[0].error.contains("503"), "{}", letters[0].error);

    // Re-driven, it goes out with a fresh budget and lands.
    let (code, stdout, stderr) = env.worker_command(&["dlq", "retry", &letters[0].id.to_string()]);
    assert_eq!(code, 0, "{stdout} {stderr}");
    let third = worker::analytics::send_due(&env.db, &http, &policy, 10)
        .await
        .expect("send");
    assert_eq!(third.sent, 1);
    assert_eq!(receiver.requests.lock().expect("lock").len(), 3);
    env.teardown().await;
}

#[tokio::test]
async fn the_precomputed_tables_read_through_their_entities() {
    use entities::{
        daily_metric, deployment_outcome, dora_metric, health_alert, incident, pr_metric,
        reliability_score,
    };
    use sea_orm::EntityTrait;
    let env = Env::new().await;
    let events = history();
    apply_all(&env, "h", &events).await;
    drain(&env).await;
    let settings = analytics::load_org(&env.db, org_id(&env).await)
        .await
        .expect("org")
        .expect("exists");
    analytics::alerts::evaluate(&env.db, &settings, t("2026-03-10T12:00"), day("2026-03-10"))
        .await
        .expect("alerts");

    // Every column decodes into the entity's type (a renamed or retyped column fails here).
    assert!(rows::<pr_metric::Entity>(&env).await > 0);
    assert!(rows::<deployment_outcome::Entity>(&env).await > 0);
    assert!(rows::<daily_metric::Entity>(&env).await > 0);
    assert!(rows::<dora_metric::Entity>(&env).await > 0);
    assert!(rows::<reliability_score::Entity>(&env).await > 0);
    assert!(rows::<health_alert::Entity>(&env).await > 0);
    let incidents = incident::Entity::find()
        .all(&env.db)
        .await
        .expect("incidents");
    assert_eq!(incidents.len(), 3);
    assert!(
        incidents
            .iter()
            .any(|i| i.labels == vec!["Incident".to_owned()])
    );
    env.teardown().await;
}

/// How many rows of `E`'s table decode into its model.
async fn rows<E: sea_orm::EntityTrait>(env: &Env) -> usize {
    E::find().all(&env.db).await.expect("rows decode").len()
}

/// 3 repositories in an organization in Berlin, 3,000 PRs over 60 days with varied lead times
/// (odd seconds too, so some medians fall on a half and must round to even), a production
/// deployment per repository every 6 hours (one in seven failing), incidents now and then.
/// Returns the organization's id.
async fn generated_history(env: &Env) -> i64 {
    env.db
        .execute_unprepared(
            "INSERT INTO organizations (name, time_zone, github_login) \
                VALUES ('Gen', 'Europe/Berlin', 'gen'); \
             INSERT INTO repositories (github_id, organization_id, name, full_name, default_branch) \
             SELECT g, o.id, 'r' || g, 'gen/r' || g, 'main' \
                FROM generate_series(1, 3) g, organizations o WHERE o.github_login = 'gen'; \
             INSERT INTO pull_requests (github_id, organization_id, repository_id, number, \
                title, state, draft, created_at, merged_at, closed_at, merge_commit_sha, \
                head_sha, head_ref, base_ref, updated_at) \
             SELECT g, o.id, 1 + g % 3, g, 'PR ' || g, 'merged', false, c, \
                c + make_interval(mins => (g * 7919) % 9000), \
                c + make_interval(mins => (g * 7919) % 9000), 'm' || g, 'h' || g, 'b' || g, \
                'main', c FROM organizations o, \
                (SELECT g, timestamptz '2026-03-01' + make_interval(secs => g * 1727.0) AS c \
                 FROM generate_series(1, 3000) g) x WHERE o.github_login = 'gen'; \
             INSERT INTO deployments (github_id, organization_id, repository_id, sha, ref, \
                environment, production_environment, created_at, updated_at, latest_state, \
                latest_status_at) \
             SELECT row_number() OVER (), o.id, r, 'none', 'main', 'production', true, t, t, \
                CASE WHEN (r + extract(epoch FROM t)::bigint / 21600) % 7 = 0 \
                    THEN 'failure' ELSE 'success' END, t + interval '5 minutes' \
             FROM organizations o, generate_series(1, 3) r, generate_series( \
                timestamptz '2026-03-01', timestamptz '2026-05-10', interval '6 hours') t \
             WHERE o.github_login = 'gen'; \
             INSERT INTO incidents (github_id, organization_id, repository_id, number, title, \
                labels, state, created_at, closed_at, updated_at) \
             SELECT row_number() OVER (), o.id, r, row_number() OVER (), 'Down', '{incident}', \
                'closed', t + interval '1 hour', t + make_interval(hours => 2 + r), t \
             FROM organizations o, generate_series(1, 3) r, generate_series( \
                timestamptz '2026-03-01', timestamptz '2026-05-10', interval '50 hours') t \
             WHERE o.github_login = 'gen'",
        )
        .await
        .expect("generate history");
    env.number(
        "SELECT id AS n FROM organizations WHERE github_login = 'gen'",
        vec![],
    )
    .await
}

/// A generated history with many PRs, repositories and failed deployments: the rolling DORA
/// medians, slid in memory by the recompute, equal PostgreSQL's `percentile_cont` over each
/// window's rows.
#[tokio::test]
async fn rolling_dora_medians_equal_percentile_cont_over_each_window() {
    // Arrange
    let env = Env::new().await;
    let org = generated_history(&env).await;

    // Act
    recompute(&env, org, "2026-03-01", "2026-05-10");

    // Assert: every window's medians and counts, recomputed here by sorting in SQL.
    let oracle = "FROM dora_metrics d WHERE d.org_id = $1";
    let window = |table: &str, day: &str| {
        format!(
            "{table}.org_id = d.org_id AND {table}.{day} > d.day - d.window_days \
             AND {table}.{day} <= d.day AND (d.repository IS NULL OR {table}.repository = d.repository)"
        )
    };
    let lead = format!(
        "(SELECT ROW(round(percentile_cont(0.5) WITHIN GROUP (ORDER BY m.lead_s))::bigint, \
            count(*)::int) FROM pr_metrics m WHERE {} AND m.lead_s IS NOT NULL \
            AND NOT m.author_is_bot)",
        window("m", "deployed_day")
    );
    let recovery = format!(
        "(SELECT ROW(round(percentile_cont(0.5) WITHIN GROUP (ORDER BY o.recovery_s))::bigint, \
            count(o.recovery_s)::int) FROM deployment_outcomes o WHERE {} AND o.change_failed)",
        window("o", "day")
    );
    let rows = env
        .number(&format!("SELECT count(*) AS n {oracle}"), vec![org.into()])
        .await;
    let with_medians = env
        .number(
            &format!(
                "SELECT count(*) AS n {oracle} AND d.lead_time_count > 1 \
                 AND d.recovery_count > 1"
            ),
            vec![org.into()],
        )
        .await;
    let wrong = env
        .number(
            &format!(
                "SELECT count(*) AS n {oracle} AND (ROW(d.lead_time_p50_s, d.lead_time_count) \
                    IS DISTINCT FROM {lead} \
                 OR ROW(d.recovery_time_p50_s, d.recovery_count) IS DISTINCT FROM {recovery})"
            ),
            vec![org.into()],
        )
        .await;
    // 71 days and the 27 after them whose 28-day windows include one (through 6 June), × 2
    // windows × (organization + 3 repositories).
    assert_eq!(rows, 98 * 2 * 4);
    assert!(
        with_medians > 400,
        "only {with_medians} windows with medians"
    );
    assert_eq!(
        wrong, 0,
        "windows whose medians differ from percentile_cont"
    );
    env.teardown().await;
}

#[tokio::test]
async fn a_large_recompute_leaves_the_tables_it_rewrote_vacuumed_and_a_quiet_day_vacuums_nothing() {
    // Arrange
    let env = Env::new().await;
    let org = generated_history(&env).await;
    let vacuums = |table: &'static str| {
        let env = &env;
        async move {
            env.number(
                "SELECT vacuum_count AS n FROM pg_stat_user_tables WHERE relname = $1",
                vec![table.into()],
            )
            .await
        }
    };
    let pages_not_all_visible = |table: &'static str| {
        let env = &env;
        async move {
            env.number(
                "SELECT (relpages - relallvisible)::int8 AS n FROM pg_class \
                 WHERE oid = $1::regclass AND relpages > 0",
                vec![table.into()],
            )
            .await
        }
    };

    // Act: the first recompute writes every table's rows.
    recompute(&env, org, "2026-03-01", "2026-05-10");

    // Assert: the tables it wrote many rows of (3,000 PRs, ~840 deployments, 784 DORA windows)
    // are vacuumed, their pages all-visible (what lets the next run read the open pull
    // requests by an index-only scan); 284 daily rows and 11 weekly scores are too few.
    for table in ["pr_metrics", "deployment_outcomes", "dora_metrics"] {
        assert_eq!(vacuums(table).await, 1, "{table} vacuumed once");
        assert_eq!(pages_not_all_visible(table).await, 0, "{table}");
    }
    for table in ["daily_metrics", "reliability_scores"] {
        assert_eq!(vacuums(table).await, 0, "{table} not vacuumed");
    }

    // Act: one day again, with nothing new.
    recompute(&env, org, "2026-04-01", "2026-04-01");

    // Assert: a small run leaves vacuuming to autovacuum.
    assert_eq!(vacuums("pr_metrics").await, 1);
    assert_eq!(vacuums("dora_metrics").await, 1);
    env.teardown().await;
}

#[tokio::test]
async fn dirty_days_wait_to_settle_then_are_recomputed_together() {
    use std::time::Duration;
    // Arrange: an organization with two events' marks, both just made.
    let env = Env::new().await;
    let events = history();
    apply_all(&env, "settle", &events[..3]).await;
    let marks = |env: &Env| {
        let db = env.db.clone();
        async move {
            db.query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT count(*) AS n FROM analytics_dirty",
            ))
            .await
            .expect("count")
            .expect("row")
            .try_get::<i64>("", "n")
            .expect("n")
        }
    };
    let before = marks(&env).await;
    assert!(before >= 2, "{before} marks");

    // Act + Assert: younger than the settle time, nothing is taken.
    let hour = Duration::from_secs(3600);
    let drained = analytics::drain_dirty(&env.db, 1_000, hour)
        .await
        .expect("drain");
    assert!(drained.is_none());
    assert_eq!(marks(&env).await, before);

    // Once the oldest mark is old enough, every mark of the organization goes in one run.
    env.db
        .execute_unprepared(
            "UPDATE analytics_dirty SET requested_at = requested_at - interval '2 hours' \
             WHERE id = (SELECT min(id) FROM analytics_dirty)",
        )
        .await
        .expect("age the first mark");
    let (org, report) = analytics::drain_dirty(&env.db, 1_000, hour)
        .await
        .expect("drain")
        .expect("the organization is taken");
    assert_eq!(org, org_id(&env).await);
    assert!(report.days >= 1);
    assert_eq!(marks(&env).await, 0);
    env.teardown().await;
}

#[tokio::test]
async fn wip_hygiene_counts_the_pull_requests_open_at_week_end_and_those_idle_for_a_week() {
    // Arrange: week of Monday 2026-03-09 (UTC), its end 03-16 00:00, idle window 03-09..03-16.
    // Alice (team Core) and Bob (no team) each have open pull requests; one of each kind of
    // activity, and activity just outside the window.
    let env = Env::new().await;
    env.db
        .execute_unprepared(
            "INSERT INTO organizations (name, time_zone, github_login) VALUES ('Acme', 'UTC', 'acme'); \
             INSERT INTO repositories (github_id, organization_id, name, full_name, default_branch) \
             SELECT 100, id, 'api', 'acme/api', 'main' FROM organizations; \
             INSERT INTO github_users (organization_id, github_id, login, user_type, is_bot) \
             SELECT id, u.gid, u.login, u.kind, u.kind = 'Bot' FROM organizations, (VALUES \
                (1, 'alice', 'User'), (2, 'bob', 'User'), (3, 'dependabot[bot]', 'Bot')) \
                u (gid, login, kind); \
             INSERT INTO pull_requests (github_id, organization_id, repository_id, number, \
                author_id, title, state, draft, created_at, ready_for_review_at, closed_at, \
                head_sha, head_ref, base_ref, updated_at) \
             SELECT p.id, o.id, 100, p.id, p.author, 'PR', p.state, p.draft, p.created::timestamptz, \
                p.ready::timestamptz, p.closed::timestamptz, 'h', 'b' || p.id, 'main', \
                p.updated::timestamptz \
             FROM organizations o, (VALUES \
                (1, 1, 'open', false, '2026-03-01', NULL, NULL, '2026-03-02'), \
                (2, 1, 'open', false, '2026-03-01', NULL, NULL, '2026-03-02'), \
                (3, 1, 'open', false, '2026-03-01', NULL, NULL, '2026-03-02'), \
                (4, 1, 'open', true, '2026-03-01', '2026-03-11', NULL, '2026-03-02'), \
                (5, 1, 'open', false, '2026-03-01', NULL, NULL, '2026-03-13'), \
                (6, 1, 'open', false, '2026-03-14', NULL, NULL, '2026-03-14'), \
                (7, 1, 'closed', false, '2026-03-01', NULL, '2026-03-20', '2026-03-20'), \
                (8, 1, 'open', false, '2026-03-01', NULL, NULL, '2026-03-02'), \
                (9, 1, 'closed', false, '2026-03-01', NULL, '2026-03-05', '2026-03-05'), \
                (10, 3, 'open', false, '2026-03-01', NULL, NULL, '2026-03-02'), \
                (11, 2, 'open', false, '2026-03-01', NULL, NULL, '2026-03-02'), \
                (12, 1, 'open', false, '2026-03-01', NULL, NULL, '2026-03-02') \
             ) p (id, author, state, draft, created, ready, closed, updated); \
             INSERT INTO reviews (github_id, organization_id, repository_id, pull_request_id, \
                reviewer_id, state, submitted_at) \
             SELECT r.id, o.id, 100, r.pr, 2, 'commented', r.at::timestamptz \
             FROM organizations o, (VALUES (1, 2, '2026-03-10'), (2, 8, '2026-03-16 00:00'), \
                (3, 12, '2026-03-08 23:59')) r (id, pr, at); \
             INSERT INTO review_comments (github_id, organization_id, repository_id, \
                pull_request_id, author_id, created_at) \
             SELECT 1, id, 100, 3, 2, '2026-03-12' FROM organizations",
        )
        .await
        .expect("history");
    let org = org_id(&env).await;
    make_team(&env, org).await;

    // Act
    recompute(&env, org, "2026-03-01", "2026-03-20");

    // Assert. Open at week end: 1–8, 11, 12 (9 closed before, 10 is a bot's). Active in the
    // window: 2 (review), 3 (review comment), 4 (ready for review), 5 (updated), 6 (created).
    // Idle: 1, 7 (closed only after the week), 8 (reviewed at the window's end, not in it),
    // 11 (Bob's), 12 (reviewed a minute before the window).
    let wip = |scope: &'static str| {
        let env = &env;
        async move {
            row(
                env,
                "SELECT open_prs, idle_open_prs, wip_hygiene FROM reliability_scores \
                 WHERE org_id = $1 AND scope = $2 AND week = $3",
                vec![org.into(), scope.into(), day("2026-03-09").into()],
            )
            .await
        }
    };
    assert_eq!(
        wip("org").await,
        serde_json::json!({"open_prs": 10, "idle_open_prs": 5, "wip_hygiene": 0.5})
    );
    let team = wip("team").await;
    assert_eq!(team["open_prs"], 9, "{team}");
    assert_eq!(team["idle_open_prs"], 4, "{team}");
    env.teardown().await;
}

#[tokio::test]
async fn a_failure_found_a_day_later_fails_yesterdays_deployment_and_moves_earlier_recoveries() {
    // Arrange: production deployments of acme/svc, each of a newer pushed commit; incidents
    // fail D0, D2 and D4 as they arrive. The last event, an incident on Wednesday 03-11
    // 08:00, fails D1 of Tuesday 22:00 (its window runs to D2 at 12:00): the run for 03-11
    // must reach back into Tuesday, and move the recovery of D0 (Monday), which D1 had
    // recovered, to D3 — while D3's own outcome depends on D4, after the changed day.
    let env = Env::new().await;
    let svc = repo(300, "svc");
    let mut events: Vec<(&'static str, serde_json::Value)> = vec![(
        "installation",
        gh::installation(
            77,
            &Actor::user(50, "acme"),
            std::slice::from_ref(&svc),
            t("2026-03-01T00:00"),
        ),
    )];
    let incident = |id: i64, opened: &str, closed: Option<&str>| {
        let issue = Issue {
            id,
            number: i32::try_from(id - 6000).expect("number"),
            title: format!("Outage {id}"),
            labels: vec!["incident".to_owned()],
            author: bob(),
            created_at: t(opened),
            closed_at: closed.map(t),
        };
        ("issues", gh::issue(&svc, &issue, "opened"))
    };
    for (id, at) in [
        (3100, "2026-03-09T10:00"),
        (3101, "2026-03-09T23:00"),
        (3102, "2026-03-10T22:00"),
        (3103, "2026-03-11T12:00"),
        (3104, "2026-03-12T10:00"),
        (3105, "2026-03-12T11:00"),
    ] {
        let sha = format!("c{id}");
        let pushed = (t(at) - chrono::Duration::minutes(30)).format("%Y-%m-%dT%H:%M");
        let pushed = pushed.to_string();
        events.push((
            "push",
            gh::push(
                &svc,
                "main",
                &[commit(&sha, alice(), &pushed)],
                t(&pushed),
                &alice(),
            ),
        ));
        let d = deploy(id, &sha, "production", Some(true), &pushed);
        events.push((
            "deployment_status",
            gh::deployment_status(&svc, &d, id + 1000, "success", t(at)),
        ));
        match id {
            3101 => events.push(incident(6001, "2026-03-10T01:00", Some("2026-03-13T00:00"))),
            3103 => events.push(incident(6002, "2026-03-11T13:00", None)),
            _ => {}
        }
    }
    events.push(incident(6003, "2026-03-12T12:00", None));
    events.push(incident(6004, "2026-03-11T08:00", None));

    // Act: each event followed by the incremental run, as the worker does.
    for (i, (event, payload)) in events.iter().enumerate() {
        env.apply(&format!("late-{i}"), event, &payload.to_string())
            .await;
        drain(&env).await;
    }

    // Assert: D0 recovers at D3 03-12 10:00 (59 h), not at D1 (23 h) as before the last
    // incident; D1 failed, recovered by D3 (36 h); D2 by D3 (22 h); D4 failed, not recovered.
    let org = org_id(&env).await;
    let outcomes = row(
        &env,
        "SELECT jsonb_agg(jsonb_build_array(deployment_id, failure_cause, recovery_s) \
            ORDER BY deployment_id) AS outcomes FROM deployment_outcomes WHERE org_id = $1",
        vec![org.into()],
    )
    .await;
    assert_eq!(
        outcomes["outcomes"],
        serde_json::json!([
            [3100, null, null],
            [3101, "incident", 212_400],
            [3102, "incident", 129_600],
            [3103, "incident", 79_200],
            [3104, null, null],
            [3105, "incident", null]
        ])
    );
    let failed = row(
        &env,
        "SELECT jsonb_object_agg(day, failed_deployments) AS failed FROM daily_metrics \
         WHERE org_id = $1 AND scope = 'org' AND deployments > 0",
        vec![org.into()],
    )
    .await;
    assert_eq!(
        failed["failed"],
        serde_json::json!({"2026-03-09": 1, "2026-03-10": 1, "2026-03-11": 1, "2026-03-12": 1})
    );
    let incremental = snapshot(&env, org).await;
    recompute(&env, org, "2026-03-09", "2026-03-20");
    assert_same_snapshots(&incremental, &snapshot(&env, org).await);
    env.teardown().await;
}

/// Fails with the first lines that differ between an incremental and a full recompute.
fn assert_same_snapshots(incremental: &str, full: &str) {
    let differing: Vec<(&str, &str)> = incremental
        .lines()
        .zip(full.lines())
        .filter(|(a, b)| a != b)
        .take(3)
        .collect();
    assert!(
        differing.is_empty() && incremental.lines().count() == full.lines().count(),
        "incremental and full recomputes differ (incremental, full): {differing:#?}"
    );
}
