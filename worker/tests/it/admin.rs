//! `worker admin …`: bootstrapping organizations and users from the command line, and the
//! attendance loop of `worker run`.

use std::time::Duration;

use chrono::Utc;
use jobs::people::{
    Email, OrgId, Role, UserId,
    accounts::{self, NewUser},
    secrets::{Password, verify_password},
    tenant,
};
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::Value;

use crate::helpers::{Env, eventually};

#[tokio::test]
async fn create_org_and_create_user_with_a_password_from_stdin_print_ids_for_scripts() {
    // Arrange
    let env = Env::new().await;

    // Act
    let (code, out, err) = env.worker_command(&[
        "admin",
        "create-org",
        "Acme Corp",
        "--time-zone",
        "Europe/Berlin",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let org: Value = serde_json::from_str(&out).expect("json");
    let org_id = org["organization_id"].as_i64().expect("id");
    let (code, out, err) = env.worker_command_with_input(
        &[
            "admin",
            "create-user",
            "--org",
            "Acme Corp",
            "--email",
            "Ana@Acme.test",
            "--role",
            "owner",
            "--password-stdin",
            "--json",
        ],
        "correct horse battery staple\n",
    );

    // Assert
    assert_eq!(code, 0, "{err}");
    let created: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(created["organization_id"], org_id);
    assert!(created.get("invite_url").is_none(), "{created}");
    let login = accounts::find_for_login(&env.db, &Email::parse("ana@acme.test").expect("email"))
        .await
        .expect("query")
        .expect("user exists");
    assert_eq!(
        login.user_id,
        UserId(created["user_id"].as_i64().expect("user id"))
    );
    assert_eq!(login.role, Role::Owner);
    assert!(verify_password(
        "correct horse battery staple",
        login.password_hash.as_deref()
    ));
    let stored = accounts::organization_by_id(&env.db, OrgId(org_id))
        .await
        .expect("org");
    assert_eq!(stored.time_zone, "Europe/Berlin");
    env.teardown().await;
}

#[tokio::test]
async fn create_user_without_a_password_prints_a_one_time_invite_link() {
    let env = Env::new().await;
    let (_, out, _) = env.worker_command(&["admin", "create-org", "Acme", "--json"]);
    let org: Value = serde_json::from_str(&out).expect("json");
    let org_id = org["organization_id"].as_i64().expect("id").to_string();

    let (code, out, err) = env.worker_command(&[
        "admin",
        "create-user",
        "--org",
        &org_id,
        "--email",
        "dev@acme.test",
        "--role",
        "developer",
    ]);

    assert_eq!(code, 0, "{err}");
    let link = out
        .split_whitespace()
        .find(|w| w.starts_with("https://devpulse.example.com/invite#dpi_"))
        .unwrap_or_else(|| panic!("no invite link in {out}"));
    let token = link.split('#').nth(1).expect("token");
    let hash = Password::parse("a brand new password")
        .expect("valid")
        .hash();
    let user = accounts::accept_invite(&env.db, token, hash)
        .await
        .expect("invite works");
    assert_eq!(user.email, "dev@acme.test");
    assert!(
        accounts::accept_invite(&env.db, token, "x".into())
            .await
            .is_err(),
        "only once"
    );
    env.teardown().await;
}

#[tokio::test]
async fn bad_input_gets_one_readable_line() {
    let env = Env::new().await;
    env.worker_command(&["admin", "create-org", "Acme"]);
    let cases: [(&[&str], &str, i32, &str); 6] = [
        (
            &["admin", "create-org", "X", "--time-zone", "Mars/Olympus"],
            "",
            1,
            "is not a time zone name",
        ),
        (
            &[
                "admin",
                "create-user",
                "--org",
                "Nope",
                "--email",
                "a@b.c",
                "--role",
                "owner",
            ],
            "",
            1,
            "no organization \"Nope\"",
        ),
        (
            &[
                "admin",
                "create-user",
                "--org",
                "Acme",
                "--email",
                "not-an-email",
                "--role",
                "owner",
            ],
            "",
            2,
            "is not an email address",
        ),
        (
            &[
                "admin",
                "create-user",
                "--org",
                "Acme",
                "--email",
                "a@b.c",
                "--role",
                "root",
            ],
            "",
            2,
            "unknown role",
        ),
        (
            &[
                "admin",
                "create-user",
                "--org",
                "Acme",
                "--email",
                "a@b.c",
                "--role",
                "owner",
                "--password-stdin",
            ],
            "short\n",
            1,
            "at least 12 characters",
        ),
        (
            &[
                "admin",
                "create-user",
                "--org",
                "Acme",
                "--email",
                "a@b.c",
                "--role",
                "owner",
                "--password-stdin",
            ],
            "",
            1,
            "at least 12 characters",
        ),
    ];
    for (args, input, want_code, want) in cases {
        let (code, _, err) = env.worker_command_with_input(args, input);
        assert_eq!(code, want_code, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(
            err.lines()
                .filter(|l| l.starts_with("error") || l.starts_with("worker"))
                .count()
                == 1,
            "{err}"
        );
    }
    let args = [
        "admin",
        "create-user",
        "--org",
        "Acme",
        "--email",
        "dup@b.c",
        "--role",
        "owner",
        "--password-stdin",
    ];
    assert_eq!(
        env.worker_command_with_input(&args, "correct horse battery staple\n")
            .0,
        0
    );
    let (code, _, err) = env.worker_command_with_input(&args, "correct horse battery staple\n");
    assert_eq!(code, 1);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("already exists"), "{err}");
    env.teardown().await;
}

/// Organization Acme (UTC) and its developer dev@acme.test.
async fn org_with_developer(env: &Env) -> (accounts::Organization, accounts::User) {
    let org = accounts::create_org(&env.db, "Acme", "UTC")
        .await
        .expect("org");
    let new = NewUser {
        email: Email::parse("dev@acme.test").expect("email"),
        display_name: "Dev".into(),
        role: Role::Developer,
    };
    let user = accounts::create_user(&env.db, OrgId(org.id), &new, Some("unused".into()))
        .await
        .expect("user")
        .user;
    (org, user)
}

#[tokio::test]
async fn the_running_worker_summarizes_a_day_right_after_clock_out() {
    // Arrange
    let env = Env::new().await;
    let (org, user) = org_with_developer(&env).await;
    let worker = env.start_worker(&[]).await;
    let day = Utc::now().date_naive() - chrono::Duration::days(1);
    let at = |h: u32| day.and_hms_opt(h, 0, 0).expect("time").and_utc();

    // Act: what the API does for a clock-in and a clock-out.
    let session = uuid::Uuid::new_v4();
    for step in 0..2 {
        let txn = tenant::begin(&env.db, OrgId(org.id)).await.expect("tenant");
        if step == 0 {
            jobs::attendance::sessions::clock_in(
                &txn,
                OrgId(org.id),
                UserId(user.id),
                None,
                session,
                at(9),
            )
            .await
            .expect("clock in");
        } else {
            jobs::attendance::sessions::clock_out(
                &txn,
                OrgId(org.id),
                UserId(user.id),
                session,
                at(17),
            )
            .await
            .expect("clock out");
        }
        txn.commit().await.expect("commit");
    }

    // Assert
    eventually(Duration::from_secs(20), "the day's summary", || async {
        env.number(
            "SELECT COALESCE(sum(worked_seconds), 0)::bigint AS n FROM attendance_summaries WHERE user_id = $1",
            vec![user.id.into()],
        )
        .await
            == 8 * 3600
    })
    .await;
    assert_eq!(
        env.number("SELECT count(*) AS n FROM attendance_dirty", vec![])
            .await,
        0
    );
    worker.stop().await;
    env.teardown().await;
}

#[tokio::test]
async fn set_password_resets_a_forgotten_password_and_ends_every_sign_in() {
    // Arrange
    let env = Env::new().await;
    env.worker_command(&["admin", "create-org", "Acme"]);
    let create = [
        "admin",
        "create-user",
        "--org",
        "Acme",
        "--email",
        "ana@acme.test",
        "--role",
        "owner",
        "--password-stdin",
    ];
    assert_eq!(
        env.worker_command_with_input(&create, "first password here\n")
            .0,
        0
    );
    let login = accounts::find_for_login(&env.db, &Email::parse("ana@acme.test").expect("email"))
        .await
        .expect("query")
        .expect("user");
    let refresh = jobs::people::tokens::issue_refresh(&env.db, login.org, login.user_id, None)
        .await
        .expect("refresh");

    // Act
    let reset = ["admin", "set-password", "--email", "ana@acme.test"];
    let (code, out, err) = env.worker_command_with_input(&reset, "second password here\n");
    let (unknown, _, unknown_err) = env.worker_command_with_input(
        &["admin", "set-password", "--email", "bob@acme.test"],
        "second password here\n",
    );

    // Assert
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("password of ana@acme.test set"), "{out}");
    let login = accounts::find_for_login(&env.db, &Email::parse("ana@acme.test").expect("email"))
        .await
        .expect("query")
        .expect("user");
    assert!(verify_password(
        "second password here",
        login.password_hash.as_deref()
    ));
    assert!(!verify_password(
        "first password here",
        login.password_hash.as_deref()
    ));
    let rotated =
        jobs::people::tokens::rotate(&env.db, secrecy::ExposeSecret::expose_secret(&refresh.text))
            .await;
    assert!(rotated.is_err(), "earlier sign-ins end");
    assert_eq!(unknown, 1);
    assert!(
        unknown_err.contains("no user with that email"),
        "{unknown_err}"
    );
    env.teardown().await;
}

#[tokio::test]
async fn a_range_recompute_and_a_clock_out_drain_of_the_same_day_at_once_both_succeed() {
    // Arrange: a closed session yesterday and its day waiting in attendance_dirty. A trigger
    // holds every transaction that inserts summaries (after its insert, before its commit)
    // until the test lets go, so the two recomputes overlap every time.
    let env = Env::new().await;
    let (org, user) = org_with_developer(&env).await;
    let day = Utc::now().date_naive() - chrono::Duration::days(1);
    env.db
        .execute_unprepared(&format!(
            "INSERT INTO work_sessions (id, organization_id, user_id, started_at, ended_at, \
                last_activity_at) \
             VALUES (gen_random_uuid(), {org}, {user}, '{day} 09:00+00', '{day} 17:00+00', \
                '{day} 17:00+00'); \
             INSERT INTO attendance_dirty (organization_id, user_id, day) \
             VALUES ({org}, {user}, '{day}'); \
             CREATE FUNCTION hold_summaries() RETURNS trigger LANGUAGE plpgsql AS \
                $$ BEGIN PERFORM pg_advisory_xact_lock_shared(4242); RETURN NULL; END $$; \
             CREATE TRIGGER hold AFTER INSERT ON attendance_summaries \
                FOR EACH STATEMENT EXECUTE FUNCTION hold_summaries();",
            org = org.id,
            user = user.id,
        ))
        .await
        .expect("arrange");
    let gate = env.db.begin().await.expect("gate");
    gate.execute_unprepared("SELECT pg_advisory_xact_lock(4242)")
        .await
        .expect("hold");
    let waiting = |n: i64| {
        let env = &env;
        async move {
            eventually(Duration::from_secs(10), "recomputes waiting", || async {
                env.number(
                    "SELECT count(*) AS n FROM pg_stat_activity \
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    vec![],
                )
                .await
                    >= n
            })
            .await
        }
    };

    // Act: the nightly range recompute inserts and waits; the clock-out drain of the same day
    // starts meanwhile; then both go on.
    let db = env.db.clone();
    let nightly = tokio::spawn(async move {
        jobs::attendance::summaries::recompute_range(&db, OrgId(org.id), day, day).await
    });
    waiting(1).await;
    let db = env.db.clone();
    let drain =
        tokio::spawn(async move { jobs::attendance::summaries::drain_dirty(&db, 10).await });
    waiting(2).await;
    gate.commit().await.expect("release");

    // Assert: neither failed; one summary of the 8 hours; the request is gone.
    assert_eq!(nightly.await.expect("join").expect("nightly run"), 1);
    assert_eq!(drain.await.expect("join").expect("drain"), 1);
    assert_eq!(
        env.number(
            "SELECT count(*) AS n FROM attendance_summaries WHERE user_id = $1 AND worked_seconds = 28800",
            vec![user.id.into()],
        )
        .await,
        1
    );
    assert_eq!(
        env.number("SELECT count(*) AS n FROM attendance_dirty", vec![])
            .await,
        0
    );
    env.teardown().await;
}
