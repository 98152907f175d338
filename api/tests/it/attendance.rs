//! The tracker's sessions and the attendance summaries computed from them.

use chrono::{DateTime, Duration, SubsecRound, TimeZone, Utc};
use jobs::{
    attendance::{sessions, summaries},
    people::Role,
};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Call, Person, TestApp, spawn_app};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("time")
        .with_timezone(&Utc)
}

async fn clock_in(app: &TestApp, who: &Person, id: Uuid, started: DateTime<Utc>) -> (u16, Value) {
    app.post_as(
        &who.access,
        "/api/v1/sessions/clock-in",
        json!({ "session_id": id, "started_at": started }),
    )
    .await
}

async fn clock_out(
    app: &TestApp,
    who: &Person,
    id: Uuid,
    ended: Option<DateTime<Utc>>,
) -> (u16, Value) {
    let mut body = json!({ "session_id": id });
    if let Some(ended) = ended {
        body["ended_at"] = json!(ended);
    }
    app.post_as(&who.access, "/api/v1/sessions/clock-out", body)
        .await
}

async fn idle(app: &TestApp, who: &Person, id: Uuid, body: Value) -> (u16, Value) {
    app.post_as(&who.access, &format!("/api/v1/sessions/{id}/idle"), body)
        .await
}

/// Runs `computeAttendanceSummary` for every requested day, as the worker does.
async fn drain(app: &TestApp) {
    while summaries::drain_dirty(&app.db, 100).await.expect("drain") > 0 {}
    // The per-session idle total the summaries read must match the intervals it stands for.
    let mismatched = app
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT count(*) AS n FROM work_sessions s WHERE s.idle_micros <> (SELECT \
                COALESCE(sum((EXTRACT(EPOCH FROM i.ended_at - i.started_at) * 1000000)::bigint), 0) \
                FROM idle_intervals i WHERE i.session_id = s.id)",
        ))
        .await
        .expect("check")
        .expect("row")
        .try_get::<i64>("", "n")
        .expect("n");
    assert_eq!(
        mismatched, 0,
        "work_sessions.idle_micros out of step with idle_intervals"
    );
}

async fn summary(app: &TestApp, who: &Person, day: &str) -> Value {
    let (status, rows) = app
        .get_as(
            &who.access,
            &format!("/api/v1/attendance?from={day}&to={day}"),
        )
        .await;
    assert_eq!(status, 200, "{rows}");
    rows.get(0).cloned().unwrap_or(Value::Null)
}

async fn setup(zone: &str) -> (TestApp, Person) {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let owner = app.person(org, "owner@acme.test", Role::Owner).await;
    let (status, body) = app
        .call(Call {
            method: reqwest::Method::PATCH,
            path: "/api/v1/organization",
            token: Some(&owner.access),
            body: Some(json!({ "time_zone": zone })),
        })
        .await;
    assert_eq!(status, 200, "{body}");
    (app, owner)
}

#[tokio::test]
async fn one_open_session_per_person_and_resending_gives_the_same_result() {
    // Arrange
    let (app, ana) = setup("UTC").await;
    let first = Uuid::new_v4();
    let started = Utc::now() - Duration::hours(1);

    // Act
    let (created, session) = clock_in(&app, &ana, first, started).await;
    let (resent, again) = clock_in(&app, &ana, first, started).await;
    let (second, conflict) = clock_in(&app, &ana, Uuid::new_v4(), Utc::now()).await;
    let (future, future_body) =
        clock_out(&app, &ana, first, Some(Utc::now() + Duration::minutes(10))).await;
    let (out, closed) = clock_out(&app, &ana, first, None).await;
    let (out_again, closed_again) = clock_out(&app, &ana, first, None).await;

    // Assert
    assert_eq!(created, 201, "{session}");
    assert_eq!(
        (resent, &again),
        (200, &session),
        "a resend answers the same session"
    );
    assert_eq!(second, 409);
    assert_eq!(conflict["code"], "session_open");
    assert_eq!(conflict["details"]["session"]["id"], json!(first));
    assert_eq!(
        (future, future_body["code"].as_str()),
        (422, Some("timestamp_in_future"))
    );
    assert_eq!(out, 200, "{closed}");
    assert!(closed["ended_at"].is_string());
    assert_eq!(
        (out_again, &closed_again),
        (200, &closed),
        "a resent clock-out changes nothing"
    );
    app.stop().await;
}

#[tokio::test]
async fn overlapping_idle_intervals_are_clipped_merged_and_never_counted_twice() {
    // Arrange
    let (app, ana) = setup("UTC").await;
    let id = Uuid::new_v4();
    let day = Utc::now().date_naive() - Duration::days(2);
    let t = |h: u32, m: u32| Utc.from_utc_datetime(&day.and_hms_opt(h, m, 0).expect("time"));
    assert_eq!(clock_in(&app, &ana, id, t(9, 0)).await.0, 201);
    let upload = json!({ "intervals": [
        { "start": t(10, 0), "end": t(10, 30) },
        { "start": t(10, 15), "end": t(10, 45) },
        { "start": t(8, 0), "end": t(9, 10) },
        { "start": t(12, 0), "end": t(12, 10) },
    ]});

    // Act
    let (status, session) = idle(&app, &ana, id, upload.clone()).await;
    let (_, resent) = idle(&app, &ana, id, upload).await;
    let (bad, bad_body) = idle(
        &app,
        &ana,
        id,
        json!({ "intervals": [{ "start": t(11, 0), "end": t(10, 0) }] }),
    )
    .await;
    let (_, closed) = clock_out(&app, &ana, id, Some(t(17, 0))).await;
    let (late, _) = idle(
        &app,
        &ana,
        id,
        json!({ "intervals": [{ "start": t(16, 50), "end": t(18, 0) }] }),
    )
    .await;
    drain(&app).await;

    // Assert: 10 (9:00–9:10) + 45 (10:00–10:45) + 10 (12:00–12:10) minutes.
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["idle_seconds"], 65 * 60);
    assert_eq!(session["idle"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        resent["idle_seconds"],
        65 * 60,
        "the same upload twice counts once"
    );
    assert_eq!(
        (bad, bad_body["code"].as_str()),
        (422, Some("invalid_interval"))
    );
    assert_eq!(closed["idle_seconds"], 65 * 60);
    assert_eq!(late, 200, "a late upload for a closed session is accepted");
    let row = summary(&app, &ana, &day.to_string()).await;
    assert_eq!(row["worked_seconds"], 8 * 3600);
    assert_eq!(
        row["idle_seconds"],
        75 * 60,
        "the late interval is clipped at clock-out"
    );
    assert_eq!(row["active_seconds"], 8 * 3600 - 75 * 60);
    assert_eq!(row["overtime_seconds"], 0);
    assert_eq!(row["sessions"], 1);
    app.stop().await;
}

#[tokio::test]
async fn sessions_across_midnight_split_by_the_organizations_days_including_a_dst_change() {
    // Arrange: Berlin leaves summer time on 2026-10-25 (03:00 CEST → 02:00 CET), a 25-hour day.
    let (app, ana) = setup("Europe/Berlin").await;
    let id = Uuid::new_v4();
    // 22:00 CEST on the 24th → 06:00 CET on the 25th: 9 real hours.
    let start = at("2026-10-24T20:00:00Z");
    let end = at("2026-10-25T05:00:00Z");

    // Act
    assert_eq!(clock_in(&app, &ana, id, start).await.0, 201);
    assert_eq!(clock_out(&app, &ana, id, Some(end)).await.0, 200);
    drain(&app).await;
    let before = summary(&app, &ana, "2026-10-24").await;
    let after = summary(&app, &ana, "2026-10-25").await;

    // Assert: 2 h before local midnight, 7 h after it (the clock went back an hour).
    assert_eq!(before["worked_seconds"], 2 * 3600, "{before}");
    assert_eq!(after["worked_seconds"], 7 * 3600, "{after}");
    assert_eq!(
        after["first_in"],
        json!("2026-10-24T22:00:00Z"),
        "local midnight of the 25th"
    );
    assert_eq!(before["sessions"], 1);
    assert_eq!(after["sessions"], 1);
    app.stop().await;
}

#[tokio::test]
async fn a_forgotten_timer_is_closed_at_its_last_activity_and_flagged() {
    // Arrange
    let (app, ana) = setup("UTC").await;
    let swept = Uuid::new_v4();
    let started = (Utc::now() - Duration::hours(11)).trunc_subsecs(0);
    assert_eq!(clock_in(&app, &ana, swept, started).await.0, 201);
    let seen = started + Duration::hours(3);
    assert_eq!(
        idle(
            &app,
            &ana,
            swept,
            json!({
                "intervals": [{ "start": started + Duration::hours(1), "end": started + Duration::minutes(90) }],
                "last_active_at": seen,
            })
        )
        .await
        .0,
        200
    );
    // The organization's limit is now 5 hours, and the tracker has been silent for an hour.
    let (status, _) = app
        .call(Call {
            method: reqwest::Method::PATCH,
            path: "/api/v1/organization",
            token: Some(&ana.access),
            body: Some(json!({ "session_limit_seconds": 5 * 3600 })),
        })
        .await;
    assert_eq!(status, 200);
    let untouched = sessions::close_forgotten(&app.db, None)
        .await
        .expect("sweep");
    assert_eq!(
        untouched, 0,
        "a session written to in the last 10 minutes waits"
    );
    app.db
        .execute_unprepared("UPDATE work_sessions SET updated_at = now() - interval '1 hour'")
        .await
        .expect("age");

    // Act: the worker's sweep.
    let closed = sessions::close_forgotten(&app.db, None)
        .await
        .expect("sweep");
    drain(&app).await;

    // Assert
    assert_eq!(closed, 1);
    let (_, list) = app
        .get_as(
            &ana.access,
            &format!(
                "/api/v1/sessions?from={}",
                (started - Duration::hours(1))
                    .to_rfc3339()
                    .replace('+', "%2B")
            ),
        )
        .await;
    let session = &list[0];
    assert_eq!(session["auto_closed"], true, "{list}");
    assert_eq!(
        DateTime::parse_from_rfc3339(session["ended_at"].as_str().expect("ended")).expect("time"),
        seen
    );
    let (_, days) = app
        .get_as(
            &ana.access,
            &format!("/api/v1/attendance?from={}", started.date_naive()),
        )
        .await;
    let worked: i64 = days
        .as_array()
        .expect("days")
        .iter()
        .map(|d| d["worked_seconds"].as_i64().expect("n"))
        .sum();
    assert_eq!(
        worked,
        3 * 3600,
        "a forgotten timer counts up to its last activity only"
    );
    let idle: i64 = days
        .as_array()
        .expect("days")
        .iter()
        .map(|d| d["idle_seconds"].as_i64().expect("n"))
        .sum();
    assert_eq!(idle, 1800);
    assert!(
        days.as_array()
            .expect("days")
            .iter()
            .all(|d| d["auto_closed"] == true)
    );

    // A clock-out far past the limit gets the same treatment, without waiting for the sweep.
    let late = Uuid::new_v4();
    let begun = Utc::now() - Duration::hours(6);
    assert_eq!(
        clock_in(&app, &ana, late, begun).await.0,
        201,
        "the old timer no longer blocks"
    );
    let (status, out) = clock_out(&app, &ana, late, None).await;
    assert_eq!(status, 200);
    assert_eq!(out["auto_closed"], true);
    assert_eq!(out["ended_at"], out["started_at"]);
    app.stop().await;
}

#[tokio::test]
async fn an_offline_day_submitted_later_counts_and_overlaps_are_refused() {
    // Arrange: the tracker was offline; it sends a whole past day, twice.
    let (app, ana) = setup("UTC").await;
    let day = Utc::now().date_naive() - Duration::days(3);
    let t = |h: u32| Utc.from_utc_datetime(&day.and_hms_opt(h, 0, 0).expect("time"));
    let id = Uuid::new_v4();

    // Act
    for _ in 0..2 {
        assert!(matches!(clock_in(&app, &ana, id, t(8)).await.0, 200 | 201));
        assert_eq!(clock_out(&app, &ana, id, Some(t(18))).await.0, 200);
        assert_eq!(
            idle(
                &app,
                &ana,
                id,
                json!({ "intervals": [{ "start": t(12), "end": t(13) }] })
            )
            .await
            .0,
            200
        );
    }
    let (overlap, overlap_body) = clock_in(&app, &ana, Uuid::new_v4(), t(17)).await;
    drain(&app).await;

    // Assert
    assert_eq!(
        (overlap, overlap_body["code"].as_str()),
        (409, Some("session_overlap"))
    );
    let row = summary(&app, &ana, &day.to_string()).await;
    assert_eq!(row["worked_seconds"], 10 * 3600);
    assert_eq!(row["idle_seconds"], 3600);
    assert_eq!(
        row["overtime_seconds"], 3600,
        "9 h active against the default 8 h target"
    );
    assert_eq!(row["first_in"], json!(t(8)));
    assert_eq!(row["last_out"], json!(t(18)));
    let other_org = app.create_org("Other").await;
    let bob = app
        .person(other_org, "bob@other.test", Role::Developer)
        .await;
    let (taken, taken_body) = clock_in(&app, &bob, id, t(8)).await;
    assert_eq!(
        (taken, taken_body["code"].as_str()),
        (409, Some("session_id_taken"))
    );
    app.stop().await;
}

#[tokio::test]
async fn recomputing_a_range_replaces_its_days() {
    let (app, ana) = setup("UTC").await;
    let day = Utc::now().date_naive() - Duration::days(5);
    let t = |h: u32| Utc.from_utc_datetime(&day.and_hms_opt(h, 0, 0).expect("time"));
    let id = Uuid::new_v4();
    clock_in(&app, &ana, id, t(9)).await;
    clock_out(&app, &ana, id, Some(t(12))).await;
    drain(&app).await;
    // A stale row for a day without sessions must go.
    app.db
        .execute_unprepared(&format!(
            "INSERT INTO attendance_summaries (organization_id, user_id, day, first_in, last_out, \
                worked_seconds, idle_seconds, active_seconds, sessions, overtime_seconds, auto_closed) \
             VALUES ({}, {}, '{}', now(), now(), 1, 0, 1, 1, 0, false)",
            ana.org, ana.id, day - Duration::days(1)
        ))
        .await
        .expect("stale row");

    let written = summaries::recompute_range(
        &app.db,
        jobs::people::OrgId(ana.org),
        day - Duration::days(1),
        day,
    )
    .await
    .expect("recompute");

    assert_eq!(written, 1);
    assert_eq!(
        summary(&app, &ana, &day.to_string()).await["worked_seconds"],
        3 * 3600
    );
    assert_eq!(
        summary(&app, &ana, &(day - Duration::days(1)).to_string()).await,
        Value::Null
    );
    app.stop().await;
}

#[tokio::test]
async fn concurrent_clock_ins_open_exactly_one_session() {
    // Arrange: two devices (or two api replicas) race to clock the same person in.
    let (app, ana) = setup("UTC").await;

    // Act
    let attempts = (0..8).map(|_| clock_in(&app, &ana, Uuid::new_v4(), Utc::now()));
    let results = futures::future::join_all(attempts).await;

    // Assert
    let statuses: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        7,
        "{statuses:?}"
    );
    app.stop().await;
}
