//! Sign-in, token rotation, sign-out, throttling, invites and device tokens, over HTTP.

use jobs::people::Role;
use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::helpers::{Call, PASSWORD, spawn_app};

#[tokio::test]
async fn sign_in_returns_a_15_minute_bearer_token_and_wrong_credentials_are_refused_alike() {
    // Arrange
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    app.create_user(org, "ana@acme.test", Role::Owner).await;

    // Act
    let (status, tokens) = app.login("Ana@Acme.test", PASSWORD).await;
    let (wrong_status, wrong) = app.login("ana@acme.test", "not the password at all").await;
    let (unknown_status, unknown) = app.login("nobody@acme.test", PASSWORD).await;
    let (anonymous, anonymous_body) = app
        .call(Call {
            method: reqwest::Method::GET,
            path: "/api/v1/me",
            token: None,
            body: None,
        })
        .await;

    // Assert
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["expires_in"], 900);
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["role"], "owner");
    let access = tokens["access_token"].as_str().expect("access token");
    let (me_status, me) = app.get_as(access, "/api/v1/me").await;
    assert_eq!(me_status, 200, "{me}");
    assert_eq!(me["user"]["email"], "ana@acme.test");
    assert!(me["user"].get("password_hash").is_none(), "{me}");
    assert_eq!((wrong_status, unknown_status), (401, 401));
    assert_eq!(wrong["code"], "invalid_credentials");
    assert_eq!(
        wrong, unknown,
        "an unknown email must look like a wrong password"
    );
    assert_eq!(anonymous, 401);
    assert_eq!(anonymous_body["code"], "unauthorized");
    let (bad, bad_body) = app.get_as("not-a-jwt", "/api/v1/me").await;
    assert_eq!(
        (bad, bad_body["code"].as_str()),
        (401, Some("invalid_token"))
    );
    app.stop().await;
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_refresh_token_revokes_its_whole_family() {
    // Arrange
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let ana = app.person(org, "ana@acme.test", Role::Developer).await;
    let (_, other_sign_in) = app.login("ana@acme.test", PASSWORD).await;
    let refresh = |token: String| {
        let app = &app;
        async move {
            app.call(Call {
                method: reqwest::Method::POST,
                path: "/api/v1/auth/refresh",
                token: None,
                body: Some(json!({ "refresh_token": token })),
            })
            .await
        }
    };

    // Act
    let (first, rotated) = refresh(ana.refresh.clone()).await;
    let second_refresh = rotated["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_owned();
    let (replayed, replay_body) = refresh(ana.refresh.clone()).await;
    let (after_replay, after_body) = refresh(second_refresh).await;
    let (other, _) = refresh(
        other_sign_in["refresh_token"]
            .as_str()
            .expect("other")
            .to_owned(),
    )
    .await;

    // Assert
    assert_eq!(first, 200, "{rotated}");
    assert_ne!(rotated["refresh_token"], json!(ana.refresh));
    let (me, _) = app
        .get_as(
            rotated["access_token"].as_str().expect("access"),
            "/api/v1/me",
        )
        .await;
    assert_eq!(me, 200);
    assert_eq!(replayed, 401);
    assert_eq!(replay_body["code"], "refresh_token_reused");
    assert_eq!(
        after_replay, 401,
        "the family must be revoked: {after_body}"
    );
    assert_eq!(after_body["code"], "invalid_refresh_token");
    assert_eq!(other, 200, "another sign-in is another family");
    let stored: Vec<Vec<u8>> = <entities::refresh_token::Entity as sea_orm::EntityTrait>::find()
        .all(&app.db)
        .await
        .expect("tokens")
        .into_iter()
        .map(|t| t.token_hash)
        .collect();
    assert!(
        stored
            .iter()
            .all(|h| h.len() == 32 && h.as_slice() != ana.refresh.as_bytes()),
        "refresh tokens are stored hashed"
    );
    app.stop().await;
}

#[tokio::test]
async fn logout_ends_the_sign_in() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let ana = app.person(org, "ana@acme.test", Role::Developer).await;
    let body = Some(json!({ "refresh_token": ana.refresh }));

    let (logout, _) = app
        .call(Call {
            method: reqwest::Method::POST,
            path: "/api/v1/auth/logout",
            token: None,
            body: body.clone(),
        })
        .await;
    let (refresh, refused) = app
        .call(Call {
            method: reqwest::Method::POST,
            path: "/api/v1/auth/refresh",
            token: None,
            body,
        })
        .await;

    assert_eq!(logout, 204);
    assert_eq!(
        (refresh, refused["code"].as_str()),
        (401, Some("invalid_refresh_token"))
    );
    app.stop().await;
}

#[tokio::test]
async fn failed_sign_ins_are_limited_per_account_and_per_address_with_a_clear_429() {
    // Arrange
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    app.create_user(org, "ana@acme.test", Role::Developer).await;
    app.create_user(org, "bob@acme.test", Role::Developer).await;

    // Act: five wrong passwords for Ana.
    for _ in 0..5 {
        let (status, _) = app.login("ana@acme.test", "wrong password here").await;
        assert_eq!(status, 401);
    }
    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({ "email": "ana@acme.test", "password": PASSWORD }))
        .send()
        .await
        .expect("login");

    // Assert: even the right password waits now; Bob is not affected.
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["code"], "too_many_requests");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("this account")
    );
    assert_eq!(app.login("bob@acme.test", PASSWORD).await.0, 200);

    // Act: failures spread over many accounts from one address.
    for n in 0..15 {
        let (status, _) = app
            .login(&format!("guess{n}@acme.test"), "wrong password here")
            .await;
        assert_eq!(status, 401);
    }
    let (status, body) = app.login("bob@acme.test", PASSWORD).await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("your address")
    );
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(r#"devpulse_sign_ins_total{outcome="throttled"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"devpulse_sign_ins_total{outcome="invalid_credentials"} 20"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"devpulse_api_requests_total{method="POST",route="/api/v1/auth/login",status="429"} 2"#),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_invited_user_sets_a_password_once_and_then_signs_in() {
    // Arrange
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let owner = app.person(org, "owner@acme.test", Role::Owner).await;

    // Act
    let (created, invite) = app
        .post_as(
            &owner.access,
            "/api/v1/users",
            json!({ "email": "dev@acme.test", "display_name": "Dev", "role": "developer" }),
        )
        .await;
    let token = invite["invite_token"].as_str().expect("token").to_owned();
    let before = app.login("dev@acme.test", PASSWORD).await.0;
    let accept = |password: &'static str| {
        let app = &app;
        let token = token.clone();
        async move {
            app.call(Call {
                method: reqwest::Method::POST,
                path: "/api/v1/invites/accept",
                token: None,
                body: Some(json!({ "token": token, "password": password })),
            })
            .await
        }
    };
    let (weak, weak_body) = accept("short").await;
    let (accepted, user) = accept(PASSWORD).await;
    let (again, _) = accept(PASSWORD).await;

    // Assert
    assert_eq!(created, 201, "{invite}");
    assert!(invite["invite_url"].as_str().expect("url").contains(&token));
    assert_eq!(before, 401);
    assert_eq!(
        (weak, weak_body["code"].as_str()),
        (422, Some("weak_password"))
    );
    assert_eq!(accepted, 200, "{user}");
    assert_eq!(user["has_password"], true);
    assert_eq!(again, 404, "an invite works once");
    assert_eq!(app.login("dev@acme.test", PASSWORD).await.0, 200);
    let (duplicate, body) = app
        .post_as(
            &owner.access,
            "/api/v1/users",
            json!({ "email": "DEV@acme.test", "display_name": "Dev", "role": "developer" }),
        )
        .await;
    assert_eq!(
        (duplicate, body["code"].as_str()),
        (409, Some("email_taken"))
    );
    app.stop().await;
}

#[tokio::test]
async fn device_tokens_work_for_the_tracker_only_and_stop_when_revoked() {
    // Arrange
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let dev = app.person(org, "dev@acme.test", Role::Developer).await;
    let (created, device) = app
        .post_as(
            &dev.access,
            "/api/v1/devices",
            json!({ "name": "work laptop" }),
        )
        .await;
    assert_eq!(created, 201, "{device}");
    let token = device["token"].as_str().expect("token").to_owned();
    let id = device["device"]["id"].as_str().expect("id").to_owned();
    let session = uuid::Uuid::new_v4();

    // Act
    let (clock_in, clocked) = app
        .post_as(
            &token,
            "/api/v1/sessions/clock-in",
            json!({ "session_id": session }),
        )
        .await;
    let (elsewhere, _) = app.get_as(&token, "/api/v1/devices").await;
    let (listed, devices) = app.get_as(&dev.access, "/api/v1/devices").await;
    let (revoked, _) = app
        .call(Call {
            method: reqwest::Method::DELETE,
            path: &format!("/api/v1/devices/{id}"),
            token: Some(&dev.access),
            body: None,
        })
        .await;
    let (after, after_body) = app
        .post_as(
            &token,
            "/api/v1/sessions/clock-out",
            json!({ "session_id": session }),
        )
        .await;

    // Assert
    assert_eq!(clock_in, 201, "{clocked}");
    assert_eq!(clocked["device_id"].as_str(), Some(id.as_str()));
    assert_eq!(
        elsewhere, 403,
        "device tokens are for the session endpoints"
    );
    assert_eq!(listed, 200);
    assert!(devices[0].get("token").is_none() && devices[0].get("token_hash").is_none());
    assert_eq!(revoked, 204);
    assert_eq!(
        (after, after_body["code"].as_str()),
        (401, Some("invalid_token"))
    );
    app.stop().await;
}

#[tokio::test]
async fn owners_are_protected_from_admins_and_disabling_ends_every_sign_in() {
    // Arrange
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let owner = app.person(org, "owner@acme.test", Role::Owner).await;
    let admin = app.person(org, "admin@acme.test", Role::Admin).await;
    let dev = app.person(org, "dev@acme.test", Role::Developer).await;
    let patch = |token: String, user: i64, body: serde_json::Value| {
        let app = &app;
        async move {
            app.call(Call {
                method: reqwest::Method::PATCH,
                path: &format!("/api/v1/users/{user}"),
                token: Some(&token),
                body: Some(body),
            })
            .await
        }
    };

    // Act / Assert
    let (promote, _) = patch(admin.access.clone(), admin.id, json!({ "role": "owner" })).await;
    assert_eq!(promote, 403, "an admin cannot make themselves owner");
    let (demote, _) = patch(
        admin.access.clone(),
        owner.id,
        json!({ "role": "developer" }),
    )
    .await;
    assert_eq!(demote, 403, "an admin cannot change an owner");
    let (last, last_body) = patch(owner.access.clone(), owner.id, json!({ "role": "admin" })).await;
    assert_eq!(
        (last, last_body["code"].as_str()),
        (409, Some("last_owner"))
    );
    let (unknown, unknown_body) = patch(
        admin.access.clone(),
        dev.id,
        json!({ "github": { "login": "ghost" } }),
    )
    .await;
    assert_eq!(
        (unknown, unknown_body["code"].as_str()),
        (422, Some("unknown_github_login"))
    );
    let (linked, linked_body) = patch(
        admin.access.clone(),
        dev.id,
        json!({ "github": { "id": 583231 } }),
    )
    .await;
    assert_eq!(
        (linked, linked_body["github_id"].as_i64()),
        (200, Some(583231))
    );
    let (disabled, _) = patch(admin.access.clone(), dev.id, json!({ "active": false })).await;
    assert_eq!(disabled, 200);
    let (refresh, _) = app
        .call(Call {
            method: reqwest::Method::POST,
            path: "/api/v1/auth/refresh",
            token: None,
            body: Some(json!({ "refresh_token": dev.refresh })),
        })
        .await;
    assert_eq!(refresh, 401, "a disabled user's refresh tokens are revoked");
    let (login, login_body) = app.login("dev@acme.test", PASSWORD).await;
    assert_eq!(
        (login, login_body["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (typo, typo_body) = patch(admin.access.clone(), dev.id, json!({ "rol": "admin" })).await;
    assert_eq!(
        (typo, typo_body["code"].as_str()),
        (422, Some("invalid_body"))
    );
    // PostgreSQL text cannot hold NUL: a clear 422, not a failed query.
    let (nul, nul_body) = patch(
        admin.access.clone(),
        dev.id,
        json!({ "display_name": "De\u{0}e" }),
    )
    .await;
    assert_eq!(
        (nul, nul_body["code"].as_str()),
        (422, Some("invalid_body"))
    );
    app.stop().await;
}

#[tokio::test]
async fn a_developer_sees_everything_stored_about_them_and_no_secret_hashes() {
    // Arrange: a developer with a device, a session with idle time, a GitHub link.
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let admin = app.person(org, "admin@acme.test", Role::Admin).await;
    let dev = app.person(org, "dev@acme.test", Role::Developer).await;
    app.post_as(&dev.access, "/api/v1/devices", json!({ "name": "laptop" }))
        .await;
    let session = uuid::Uuid::new_v4();
    let start = chrono::Utc::now() - chrono::Duration::hours(2);
    app.post_as(
        &dev.access,
        "/api/v1/sessions/clock-in",
        json!({ "session_id": session, "started_at": start }),
    )
    .await;
    app.post_as(
        &dev.access,
        &format!("/api/v1/sessions/{session}/idle"),
        json!({ "intervals": [{ "start": start, "end": start + chrono::Duration::minutes(5) }] }),
    )
    .await;
    app.call(Call {
        method: reqwest::Method::PATCH,
        path: &format!("/api/v1/users/{}", dev.id),
        token: Some(&admin.access),
        body: Some(json!({ "github": { "id": 583231 } })),
    })
    .await;

    // Act
    let (status, data) = app.get_as(&dev.access, "/api/v1/me/data").await;

    // Assert
    assert_eq!(status, 200, "{data}");
    assert_eq!(data["user"]["email"], "dev@acme.test");
    assert_eq!(data["user"]["github_id"], 583231);
    assert_eq!(data["devices"].as_array().map(Vec::len), Some(1));
    assert_eq!(data["sign_ins"].as_array().map(Vec::len), Some(1));
    assert_eq!(data["work_sessions"][0]["id"], json!(session));
    assert_eq!(
        data["work_sessions"][0]["idle"].as_array().map(Vec::len),
        Some(1)
    );
    let text = data.to_string();
    for secret in ["password_hash", "token_hash", "$argon2"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert!(
        !text.contains("admin@acme.test"),
        "only the caller's own data"
    );
    app.stop().await;
}

#[tokio::test]
async fn admins_set_analytics_and_notification_settings_with_clear_errors() {
    // Arrange
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let owner = app.person(org, "owner@acme.test", Role::Owner).await;
    let patch = |body: serde_json::Value| Call {
        method: reqwest::Method::PATCH,
        path: "/api/v1/organization",
        token: Some(&owner.access),
        body: Some(body),
    };

    // Act: valid settings, then each kind of mistake.
    let (status, body) = app
        .call(patch(json!({
            "analytics": {"cycle_time_target_hours": 48, "score_weights": {"wip_hygiene": 0}},
            "notification_url": "https://hooks.example.test/devpulse",
            "notification_secret": "a-long-enough-secret",
        })))
        .await;
    let refused = [
        (
            json!({"analytics": {"cycle_target": 1}}),
            "invalid_analytics_settings",
        ),
        (
            json!({"analytics": {"incident_label_pattern": "(unclosed"}}),
            "invalid_analytics_settings",
        ),
        (
            json!({"analytics": {"score_weights": {"flow_predictability": 0, "review_responsiveness": 0, "change_stability": 0, "wip_hygiene": 0}}}),
            "invalid_analytics_settings",
        ),
        (
            json!({"notification_url": "ftp://example.test/x"}),
            "invalid_notification_url",
        ),
        (
            json!({"notification_secret": "short"}),
            "invalid_notification_secret",
        ),
    ];

    // Assert: the settings in effect, defaults filled in; the secret is never shown.
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["analytics"]["cycle_time_target_hours"], 48);
    assert_eq!(body["analytics"]["pickup_sla_hours"], 24);
    assert_eq!(body["analytics"]["score_weights"]["wip_hygiene"], 0.0);
    assert_eq!(
        body["analytics"]["score_weights"]["flow_predictability"],
        1.0
    );
    assert_eq!(
        body["notification_url"],
        "https://hooks.example.test/devpulse"
    );
    assert_eq!(body["notification_secret_set"], true);
    assert!(!body.to_string().contains("a-long-enough-secret"));
    let marked = app
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("SELECT count(*) AS n FROM analytics_dirty WHERE organization_id = {org}"),
        ))
        .await
        .expect("query")
        .expect("row")
        .try_get::<i64>("", "n")
        .expect("n");
    assert_eq!(
        marked, 90,
        "recent history is recomputed under the new settings"
    );
    for (request, code) in refused {
        let (status, body) = app.call(patch(request.clone())).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (422, Some(code)),
            "{request}: {body}"
        );
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
    let (_, body) = app.call(patch(json!({"notification_url": null}))).await;
    assert_eq!(body["notification_url"], serde_json::Value::Null);
    assert_eq!(
        body["analytics"]["cycle_time_target_hours"], 48,
        "unchanged"
    );
    app.stop().await;
}
