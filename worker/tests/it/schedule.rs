//! Schedules: each tick runs once across replicas; the nightly attendance run recomputes
//! yesterday for organizations where it is 02:xx.

use chrono::{DateTime, Utc};
use jobs::people::{
    Email, OrgId, Role, UserId,
    accounts::{self, NewUser},
    tenant,
};
use serde_json::Value;
use worker::schedule::{NIGHTLY_ATTENDANCE, run_tick};

use crate::helpers::Env;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("time")
        .with_timezone(&Utc)
}

async fn person_with_a_day(env: &Env, zone: &str, email: &str) -> (i64, i64) {
    let org = accounts::create_org(&env.db, zone, zone)
        .await
        .expect("org");
    let new = NewUser {
        email: Email::parse(email).expect("email"),
        display_name: "Dev".into(),
        role: Role::Developer,
    };
    let user = accounts::create_user(&env.db, OrgId(org.id), &new, Some("x".into()))
        .await
        .expect("user")
        .user;
    let txn = tenant::begin(&env.db, OrgId(org.id)).await.expect("tenant");
    let session = uuid::Uuid::new_v4();
    // 10:00 UTC two days ago, whatever the time of the run: the test's ticks (21:00 UTC of the
    // session's Kolkata day, 21:00 and 02:00 UTC of the next day) must be distinct, and an
    // hour-long session must stay within one day everywhere (a run after 18:30 UTC made the
    // first two ticks the same one).
    let started = (Utc::now() - chrono::Duration::days(2))
        .date_naive()
        .and_hms_opt(10, 0, 0)
        .expect("time")
        .and_utc();
    jobs::attendance::sessions::clock_in(
        &txn,
        OrgId(org.id),
        UserId(user.id),
        None,
        session,
        started,
    )
    .await
    .expect("in");
    jobs::attendance::sessions::clock_out(
        &txn,
        OrgId(org.id),
        UserId(user.id),
        session,
        started + chrono::Duration::hours(1),
    )
    .await
    .expect("out");
    txn.commit().await.expect("commit");
    (org.id, user.id)
}

#[tokio::test]
async fn a_tick_fired_by_several_workers_runs_once() {
    let env = Env::new().await;
    let tick = at("2026-11-21T21:00:00Z");

    let runs = futures_like_join(&env, tick).await;

    assert_eq!(runs.iter().filter(|ran| **ran).count(), 1, "{runs:?}");
    let (code, out, err) = env.worker_command(&["cron", "list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let list: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(list[0]["schedule"], NIGHTLY_ATTENDANCE);
    assert_eq!(list[0]["last_run"]["outcome"], "ok", "{list}");
    assert!(list[0]["next_run"].is_string(), "{list}");
    env.teardown().await;
}

async fn futures_like_join(env: &Env, tick: DateTime<Utc>) -> Vec<bool> {
    let a = run_tick(&env.db, NIGHTLY_ATTENDANCE, tick, "worker-a");
    let b = run_tick(&env.db, NIGHTLY_ATTENDANCE, tick, "worker-b");
    let c = run_tick(&env.db, NIGHTLY_ATTENDANCE, tick, "worker-c");
    let (a, b, c) = tokio::join!(a, b, c);
    vec![a, b, c]
}

#[tokio::test]
async fn the_nightly_run_recomputes_yesterday_where_it_is_two_in_the_morning() {
    // Arrange: summaries lost (e.g. a request that never got drained), two organizations.
    let env = Env::new().await;
    let (kolkata, kolkata_user) = person_with_a_day(&env, "Asia/Kolkata", "a@in.test").await;
    let (_utc, utc_user) = person_with_a_day(&env, "UTC", "b@utc.test").await;
    env.number(
        "WITH d AS (DELETE FROM attendance_dirty RETURNING 1) SELECT count(*) AS n FROM d",
        vec![],
    )
    .await;
    let started = env
        .number(
            "SELECT EXTRACT(EPOCH FROM started_at)::bigint AS n FROM work_sessions WHERE user_id = $1",
            vec![kolkata_user.into()],
        )
        .await;
    let started = DateTime::from_timestamp(started, 0).expect("time");
    // 21:00 UTC on the session's local day is 02:30 of the next day in Kolkata (UTC+05:30).
    let local_day = (started + chrono::Duration::minutes(330)).date_naive();
    let tick = local_day.and_hms_opt(21, 0, 0).expect("time").and_utc();

    // Act
    assert!(run_tick(&env.db, NIGHTLY_ATTENDANCE, tick, "worker-a").await);

    // Assert
    let summaries = |user: i64| {
        env.number(
            "SELECT count(*) AS n FROM attendance_summaries WHERE user_id = $1",
            vec![user.into()],
        )
    };
    assert_eq!(
        summaries(kolkata_user).await,
        1,
        "Kolkata's yesterday was recomputed (org {kolkata})"
    );
    assert_eq!(summaries(utc_user).await, 0, "not yet recomputed");
    let utc_day = started.date_naive();
    let evening = (utc_day + chrono::Duration::days(1))
        .and_hms_opt(21, 0, 0)
        .expect("time")
        .and_utc();
    assert!(run_tick(&env.db, NIGHTLY_ATTENDANCE, evening, "worker-a").await);
    assert_eq!(
        summaries(utc_user).await,
        0,
        "21:00 in UTC is not its nightly hour"
    );
    let night = (utc_day + chrono::Duration::days(1))
        .and_hms_opt(2, 0, 0)
        .expect("time")
        .and_utc();
    assert!(run_tick(&env.db, NIGHTLY_ATTENDANCE, night, "worker-a").await);
    assert_eq!(
        summaries(utc_user).await,
        1,
        "02:00 in UTC recomputes its yesterday"
    );
    env.teardown().await;
}

#[tokio::test]
async fn two_worker_processes_run_each_alert_tick_exactly_once() {
    // Arrange: two real worker processes whose alert schedule fires every minute.
    let env = Env::new().await;
    let vars = [
        ("SCHEDULE_HOURLY_ALERTS", "0 * * * * *"),
        ("SCHEDULE_NIGHTLY_ATTENDANCE", "off"),
        ("SCHEDULE_NIGHTLY_ANALYTICS", "off"),
    ];
    let mut a = env.worker_process(&vars);
    let mut b = env.worker_process(&vars);

    // Act: wait for the first tick to be run.
    crate::helpers::eventually(std::time::Duration::from_secs(90), "an alert tick ran", || async {
        env.number(
            "SELECT count(*) AS n FROM schedule_ticks WHERE schedule = 'hourlyAlerts' AND outcome = 'ok'",
            vec![],
        )
        .await
            >= 1
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;

    // Assert: both processes are alive, and every tick has one claim, finished once.
    assert!(a.try_wait().expect("a").is_none() && b.try_wait().expect("b").is_none());
    let unfinished_or_doubled = env
        .number(
            "SELECT count(*) AS n FROM (SELECT tick FROM schedule_ticks WHERE schedule = 'hourlyAlerts' \
             GROUP BY tick HAVING count(*) <> 1 OR bool_or(finished_at IS NULL)) x",
            vec![],
        )
        .await;
    assert_eq!(unfinished_or_doubled, 0);
    crate::helpers::terminate(&a);
    crate::helpers::terminate(&b);
    let _ = (a.wait(), b.wait());
    env.teardown().await;
}

#[tokio::test]
async fn the_nightly_analytics_run_moves_the_dora_windows_on_without_new_events() {
    // Arrange: an organization without any event.
    let env = Env::new().await;
    let org = accounts::create_org(&env.db, "Quiet", "UTC")
        .await
        .expect("org");
    let today = Utc::now().date_naive();
    let tick = today.and_hms_opt(2, 0, 0).expect("02:00").and_utc();

    // Act
    assert!(
        run_tick(
            &env.db,
            worker::schedule::NIGHTLY_ANALYTICS,
            tick,
            "worker-a"
        )
        .await
    );

    // Assert: yesterday's and today's rows exist (zero deployments, band low).
    let rows = env
        .number(
            "SELECT count(*) AS n FROM dora_metrics WHERE org_id = $1 AND band = 'low' \
             AND day IN ($2, $3) AND repository IS NULL",
            vec![
                org.id.into(),
                (today - chrono::Duration::days(1)).into(),
                today.into(),
            ],
        )
        .await;
    assert_eq!(rows, 4, "two days × two windows");
    env.teardown().await;
}
