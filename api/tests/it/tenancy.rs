//! Tenant isolation by PostgreSQL alone: row-level security stops a query that forgot to say
//! which organization it means.

use jobs::people::{OrgId, Role, tenant};
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use serde_json::json;

use crate::helpers::spawn_app;

fn sql(text: &str) -> Statement {
    Statement::from_string(DbBackend::Postgres, text)
}

#[tokio::test]
async fn row_level_security_alone_blocks_cross_organization_reads_and_writes() {
    // Arrange: two organizations with people, sessions and teams.
    let app = spawn_app().await;
    let org_a = app.create_org("A").await;
    let org_b = app.create_org("B").await;
    let ana = app.person(org_a, "ana@a.test", Role::Owner).await;
    let bob = app.person(org_b, "bob@b.test", Role::Owner).await;
    for person in [&ana, &bob] {
        let (status, _) = app
            .post_as(
                &person.access,
                "/api/v1/sessions/clock-in",
                json!({ "session_id": uuid::Uuid::new_v4() }),
            )
            .await;
        assert_eq!(status, 201);
    }

    // Act: queries with no organization filter at all, in A's tenant transaction.
    let txn = tenant::begin(&app.db, OrgId(org_a)).await.expect("tenant");
    let role: String = txn
        .query_one_raw(sql("SELECT current_user::text AS r"))
        .await
        .expect("role")
        .expect("row")
        .try_get("", "r")
        .expect("r");
    let emails: Vec<String> = txn
        .query_all_raw(sql("SELECT email FROM users ORDER BY email"))
        .await
        .expect("users")
        .iter()
        .map(|r| r.try_get("", "email").expect("email"))
        .collect();
    let sessions = txn
        .query_all_raw(sql("SELECT user_id FROM work_sessions"))
        .await
        .expect("sessions");
    let orgs = txn
        .query_all_raw(sql("SELECT id FROM organizations"))
        .await
        .expect("orgs");
    let renamed = txn
        .execute_raw(sql("UPDATE users SET display_name = 'pwned'"))
        .await
        .expect("update")
        .rows_affected();
    let sneaked = txn
        .execute_raw(sql(&format!(
            "INSERT INTO teams (organization_id, name) VALUES ({org_b}, 'sneaky')"
        )))
        .await;
    drop(txn);

    // Assert
    assert_eq!(
        role,
        tenant::APP_ROLE,
        "tenant queries must run under the role RLS binds"
    );
    assert_eq!(emails, vec!["ana@a.test".to_owned()]);
    assert_eq!(sessions.len(), 1);
    assert_eq!(orgs.len(), 1);
    assert_eq!(renamed, 1, "only A's own user is visible to update");
    let error = sneaked
        .expect_err("RLS refuses a row of another organization")
        .to_string();
    assert!(error.contains("row-level security"), "{error}");

    // Webhook payloads carry no organization: the tenant role cannot read them at all, nor the
    // projection stored beside them (titles, bodies, logins of any organization).
    for column in ["payload", "projection"] {
        let txn = tenant::begin(&app.db, OrgId(org_a)).await.expect("tenant");
        let error = txn
            .query_all_raw(sql(&format!("SELECT {column} FROM webhook_deliveries")))
            .await
            .expect_err("not readable by tenant queries")
            .to_string();
        assert!(error.contains("permission denied"), "{column}: {error}");
        drop(txn);
    }

    // Without an organization set, the role sees nothing at all.
    let txn = app.db.begin().await.expect("begin");
    txn.execute_unprepared("SET LOCAL ROLE devpulse_app")
        .await
        .expect("role");
    let none = txn
        .query_all_raw(sql("SELECT id FROM users"))
        .await
        .expect("users");
    assert!(none.is_empty());
    drop(txn);
    app.stop().await;
}

#[tokio::test]
async fn every_table_with_an_organization_has_row_level_security() {
    let app = spawn_app().await;

    let unprotected: Vec<String> = app
        .db
        .query_all_raw(sql(
            "SELECT c.relname::text AS t FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public' \
             WHERE c.relkind = 'r' AND NOT c.relrowsecurity \
               AND (c.relname = 'organizations' OR EXISTS (SELECT 1 FROM information_schema.columns k \
                   WHERE k.table_schema = 'public' AND k.table_name = c.relname \
                     AND k.column_name IN ('organization_id', 'org_id'))) \
             ORDER BY 1",
        ))
        .await
        .expect("catalog")
        .iter()
        .map(|r| r.try_get("", "t").expect("t"))
        .collect();

    assert!(
        unprotected.is_empty(),
        "tables without RLS: {unprotected:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_admin_re_drives_only_their_own_organizations_dead_letters() {
    // Arrange
    let app = spawn_app().await;
    let org_a = app.create_org("A").await;
    let org_b = app.create_org("B").await;
    let bob = app.person(org_b, "bob@b.test", Role::Admin).await;
    app.db
        .execute_unprepared(&format!(
            "INSERT INTO dead_letters (queue, job, reason, error, attempts, organization_id) VALUES \
             ('processPush', '{{}}', 'permanent', 'a', 1, {org_a}), \
             ('processPush', '{{}}', 'permanent', 'b', 1, {org_b}), \
             ('processPush', '{{}}', 'permanent', 'platform', 1, NULL)"
        ))
        .await
        .expect("letters");

    // Act
    let (listed, letters) = app.get_as(&bob.access, "/api/v1/admin/dead-letters").await;
    let (retried, result) = app
        .post_as(&bob.access, "/api/v1/admin/dead-letters/retry", json!({}))
        .await;

    // Assert
    assert_eq!(listed, 200);
    assert_eq!(letters.as_array().map(Vec::len), Some(1), "{letters}");
    assert_eq!(letters[0]["error"], "b");
    assert_eq!(retried, 200, "{result}");
    assert_eq!(result["retried"].as_array().map(Vec::len), Some(1));
    let open: i64 = app
        .db
        .query_one_raw(sql(
            "SELECT count(*) AS n FROM dead_letters WHERE retried_at IS NULL",
        ))
        .await
        .expect("count")
        .expect("row")
        .try_get("", "n")
        .expect("n");
    assert_eq!(open, 2, "A's and the platform's letters stay open");
    app.stop().await;
}
