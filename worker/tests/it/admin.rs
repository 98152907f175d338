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

#[tokio::test]
async fn the_running_worker_summarizes_a_day_right_after_clock_out() {
    // Arrange
    let env = Env::new().await;
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
