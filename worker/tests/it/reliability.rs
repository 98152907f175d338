//! Reliability the platform owns: retries with backoff, dead letters and their re-drive, a
//! worker killed mid-job, SIGTERM, Redis restarted under load, a large backlog.

use std::time::Duration;

use jobs::{JobKind, testing::RedisServer};
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};

use crate::helpers::{Env, eventually, fixture, fixture_json, job, terminate};

/// Makes every write to `pull_requests` fail until [`heal`] — a transient database fault.
async fn break_pull_requests(env: &Env) {
    env.db
        .execute_unprepared(
            "CREATE TABLE fault_switch (on_ boolean); INSERT INTO fault_switch VALUES (true); \
             CREATE FUNCTION injected_fault() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                IF EXISTS (SELECT 1 FROM fault_switch) THEN RAISE EXCEPTION 'injected fault'; END IF; \
                RETURN NEW; END $$; \
             CREATE TRIGGER injected_fault BEFORE INSERT OR UPDATE ON pull_requests \
                FOR EACH ROW EXECUTE FUNCTION injected_fault();",
        )
        .await
        .expect("install fault");
}

async fn heal(env: &Env) {
    env.db
        .execute_unprepared("DELETE FROM fault_switch")
        .await
        .expect("heal");
}

#[tokio::test]
async fn transient_failures_are_retried_with_backoff_until_they_succeed() {
    let env = Env::new().await;
    break_pull_requests(&env).await;
    env.insert(
        "flaky",
        "pull_request",
        &fixture("lifecycle/01-opened.json"),
        "pending",
    )
    .await;
    let worker = env
        .start_worker(&[("WORKER_RETRY_BASE", "300ms"), ("WORKER_RETRY_CAP", "2s")])
        .await;

    eventually(Duration::from_secs(30), "three failed attempts", || async {
        let row = env.delivery("flaky").await;
        row.attempts >= 3 && row.status.as_str() == "failed"
    })
    .await;
    let row = env.delivery("flaky").await;
    assert!(
        row.last_error
            .as_deref()
            .unwrap_or("")
            .contains("injected fault"),
        "{row:?}"
    );
    let waits = env
        .number(
            "SELECT (extract(epoch FROM next_attempt_at - last_attempt_at) * 1000)::int8 AS n \
             FROM webhook_deliveries WHERE delivery_id = 'flaky' AND status = 'failed'",
            vec![],
        )
        .await;
    // After attempt n ≥ 3 the wait is between half and all of min(300 ms × 2^(n-1), 2 s).
    assert!((550..=2_050).contains(&waits), "waited {waits} ms");

    heal(&env).await;
    eventually(Duration::from_secs(30), "processed once healed", || async {
        env.status("flaky").await == "processed"
    })
    .await;
    let row = env.delivery("flaky").await;
    assert!(row.attempts >= 4 && row.last_error.is_none(), "{row:?}");
    worker.stop().await;
    env.teardown().await;
}

#[tokio::test]
async fn a_job_out_of_attempts_is_dead_lettered_and_dlq_retry_gives_it_a_fresh_budget() {
    let env = Env::new().await;
    break_pull_requests(&env).await;
    env.insert(
        "doomed",
        "pull_request",
        &fixture("lifecycle/01-opened.json"),
        "pending",
    )
    .await;
    let worker = env
        .start_worker(&[("WORKER_TYPE_MAX_ATTEMPTS", "processPullRequest=3")])
        .await;
    eventually(Duration::from_secs(30), "dead after 3 attempts", || async {
        env.status("doomed").await == "dead"
    })
    .await;
    assert_eq!(env.delivery("doomed").await.attempts, 3);

    let (code, out, err) = env.worker_command(&["dlq", "list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let letters: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(letters.as_array().map(Vec::len), Some(1), "{out}");
    assert_eq!(letters[0]["reason"], "exhausted");
    assert_eq!(letters[0]["attempts"], 3);
    assert_eq!(letters[0]["queue"], "processPullRequest");

    heal(&env).await;
    let (code, out, err) =
        env.worker_command(&["dlq", "retry", "--all", "--queue", "processPullRequest"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("re-driven 1"), "{out}");
    eventually(
        Duration::from_secs(30),
        "processed after the re-drive",
        || async { env.status("doomed").await == "processed" },
    )
    .await;
    assert_eq!(
        env.delivery("doomed").await.attempts,
        1,
        "a fresh attempt budget"
    );
    worker.stop().await;
    env.teardown().await;
}

#[tokio::test]
async fn a_poison_delivery_is_dead_lettered_at_once_and_processed_after_a_fix_and_retry() {
    let env = Env::new().await;
    let mut poison: serde_json::Value =
        serde_json::from_str(&fixture("lifecycle/01-opened.json")).expect("json");
    poison["pull_request"]["id"] = "not-a-number".into();
    env.insert("poison", "pull_request", &poison.to_string(), "pending")
        .await;
    let worker = env.start_worker(&[]).await;
    eventually(Duration::from_secs(20), "dead-lettered", || async {
        env.status("poison").await == "dead"
    })
    .await;
    assert_eq!(
        env.delivery("poison").await.attempts,
        1,
        "no retries for a permanent error"
    );

    // Listing: text, JSON, filtered by queue, and a clear one-line error for a bad queue.
    let (code, out, _) = env.worker_command(&["dlq", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("poison") && out.contains("permanent"), "{out}");
    let (_, out, _) = env.worker_command(&["dlq", "list", "--queue", "processPush", "--json"]);
    assert_eq!(out.trim(), "[]");
    let (code, _, err) = env.worker_command(&["dlq", "list", "--queue", "processPsh"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown queue") && err.contains("processPush"),
        "{err}"
    );
    let (_, out, _) = env.worker_command(&["dlq", "list", "--json"]);
    let letters: serde_json::Value = serde_json::from_str(&out).expect("json");
    let id = letters[0]["id"].as_i64().expect("id").to_string();

    let (code, out, _) = env.worker_command(&["dlq", "show", &id]);
    assert_eq!(code, 0);
    assert!(out.contains("pull_request payload does not parse"), "{out}");
    assert!(out.contains("processPullRequest"), "{out}");
    let (code, _, err) = env.worker_command(&["dlq", "show", "999999"]);
    assert_eq!(code, 1);
    assert!(err.contains("no dead letter with id 999999"), "{err}");

    // The operator fixes the stored payload, then re-drives the letter.
    env.db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE webhook_deliveries SET payload = $1::jsonb WHERE delivery_id = 'poison'",
            [fixture("lifecycle/01-opened.json").into()],
        ))
        .await
        .expect("fix");
    let (code, _, err) = env.worker_command(&["dlq", "retry", &id]);
    assert_eq!(code, 0, "{err}");
    eventually(
        Duration::from_secs(20),
        "processed after the fix",
        || async { env.status("poison").await == "processed" },
    )
    .await;
    let (code, _, err) = env.worker_command(&["dlq", "retry", &id]);
    assert_eq!(code, 1);
    assert!(err.contains("not open"), "{err}");
    let (_, out, _) = env.worker_command(&["dlq", "list", "--json"]);
    assert_eq!(out.trim(), "[]");

    // Purge keeps young letters and removes old ones.
    let (_, out, _) = env.worker_command(&["dlq", "purge", "--older-than", "30d", "--json"]);
    assert_eq!(out.trim(), r#"{"purged":0}"#);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, out, _) = env.worker_command(&["dlq", "purge", "--older-than", "1s", "--json"]);
    assert_eq!(out.trim(), r#"{"purged":1}"#);
    let (code, _, err) = env.worker_command(&["dlq", "purge", "--older-than", "a while"]);
    assert_eq!(code, 2);
    assert!(err.contains("not an age"), "{err}");
    worker.stop().await;
    env.teardown().await;
}

/// Holds a lock that lets a worker count its attempt but stops it mid-job, at the start of its
/// processing transaction: a trigger makes claiming the delivery (status → `processed`) wait for
/// an advisory lock on the delivery's row id, which the returned transaction holds.
async fn hold_mid_job(env: &Env, id: &str) -> sea_orm::DatabaseTransaction {
    env.db
        .execute_unprepared(
            "CREATE OR REPLACE FUNCTION wait_for_test() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                IF NEW.status = 'processed' THEN PERFORM pg_advisory_xact_lock(NEW.id); END IF; \
                RETURN NEW; END $$; \
             CREATE OR REPLACE TRIGGER wait_for_test BEFORE UPDATE ON webhook_deliveries \
                FOR EACH ROW EXECUTE FUNCTION wait_for_test();",
        )
        .await
        .expect("install the wait");
    let txn = env.db.begin().await.expect("begin");
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock(id) FROM webhook_deliveries WHERE delivery_id = $1",
        [id.into()],
    ))
    .await
    .expect("lock");
    txn
}

async fn enqueue(env: &Env, id: &str) {
    env.insert(
        id,
        "pull_request",
        &fixture("lifecycle/01-opened.json"),
        "queued",
    )
    .await;
    env.queue
        .push(vec![job(JobKind::ProcessPullRequest, id)])
        .await
        .expect("push");
}

#[tokio::test]
async fn a_worker_killed_mid_job_has_the_job_run_again_within_a_minute() {
    let env = Env::new().await;
    enqueue(&env, "killed").await;
    let lock = hold_mid_job(&env, "killed").await;
    let mut first = env.worker_process(&[]);
    eventually(
        Duration::from_secs(20),
        "the first worker starts the job",
        || async { env.delivery("killed").await.attempts == 1 },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    let killed_at = tokio::time::Instant::now();
    lock.rollback().await.expect("release");

    let mut second = env.worker_process(&[]);
    eventually(
        Duration::from_secs(60),
        "another worker finishes the job",
        || async { env.status("killed").await == "processed" },
    )
    .await;
    assert!(killed_at.elapsed() < Duration::from_secs(60));
    assert_eq!(
        env.delivery("killed").await.attempts,
        2,
        "the crashed run counted"
    );
    terminate(&second);
    let status = second.wait().expect("exit");
    assert!(status.success(), "{status:?}");
    env.teardown().await;
}

#[tokio::test]
async fn sigterm_lets_the_job_in_flight_finish_and_exits_zero() {
    let env = Env::new().await;
    enqueue(&env, "in-flight").await;
    let lock = hold_mid_job(&env, "in-flight").await;
    let mut worker = env.worker_process(&[("SHUTDOWN_GRACE", "10s")]);
    eventually(
        Duration::from_secs(20),
        "the worker starts the job",
        || async { env.delivery("in-flight").await.attempts == 1 },
    )
    .await;
    terminate(&worker);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        worker.try_wait().expect("wait").is_none(),
        "still finishing its job"
    );
    lock.rollback().await.expect("release");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = worker.try_wait().expect("wait") {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "worker did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    assert_eq!(env.status("in-flight").await, "processed");
    env.teardown().await;
}

#[tokio::test]
async fn a_job_type_at_its_concurrency_limit_waits_while_other_types_run() {
    let env = Env::new().await;
    let worker = env
        .start_worker(&[("WORKER_TYPE_CONCURRENCY", "processPullRequest=1")])
        .await;
    // One pull-request job is held mid-job…
    env.insert(
        "pr-a",
        "pull_request",
        &fixture("lifecycle/01-opened.json"),
        "queued",
    )
    .await;
    let lock = hold_mid_job(&env, "pr-a").await;
    env.queue
        .push(vec![job(JobKind::ProcessPullRequest, "pr-a")])
        .await
        .expect("push");
    eventually(
        Duration::from_secs(20),
        "the first PR job started",
        || async { env.delivery("pr-a").await.attempts == 1 },
    )
    .await;
    // …so a second one waits for its type's only slot, while a push job runs.
    let mut other_pr = fixture_json("lifecycle/10-squash_merged.json");
    other_pr["pull_request"]["id"] = 42.into();
    env.insert("pr-b", "pull_request", &other_pr.to_string(), "queued")
        .await;
    env.insert(
        "push",
        "push",
        &fixture("lifecycle/11-push_squash.json"),
        "queued",
    )
    .await;
    env.queue
        .push(vec![
            job(JobKind::ProcessPullRequest, "pr-b"),
            job(JobKind::ProcessPush, "push"),
        ])
        .await
        .expect("push");
    eventually(Duration::from_secs(20), "the push job ran", || async {
        env.status("push").await == "processed"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        env.delivery("pr-b").await.attempts,
        0,
        "waited for the PR slot"
    );

    lock.rollback().await.expect("release");
    eventually(
        Duration::from_secs(20),
        "both PR jobs processed",
        || async {
            env.status("pr-a").await == "processed" && env.status("pr-b").await == "processed"
        },
    )
    .await;
    worker.stop().await;
    env.teardown().await;
}

/// Stores `count` pull-request deliveries (four life-cycle events for each of count/4 pull
/// requests) as `pending`, server-side.
async fn pending_backlog(env: &Env, count: i64) {
    let files = [
        "lifecycle/01-opened.json",
        "lifecycle/02-review_requested.json",
        "lifecycle/04-synchronize.json",
        "lifecycle/05-closed_merged.json",
    ];
    for (i, file) in files.iter().enumerate() {
        env.db
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO webhook_deliveries (delivery_id, event, payload, status) \
                 SELECT 'backlog-' || $2 || '-' || g, 'pull_request', \
                    jsonb_set(jsonb_set($1::jsonb, '{pull_request,id}', to_jsonb(5000000 + g)), \
                              '{pull_request,number}', to_jsonb(g)), 'pending' \
                 FROM generate_series(1, $3) AS g",
                [fixture(file).into(), (i as i64).into(), (count / 4).into()],
            ))
            .await
            .expect("backlog");
    }
}

#[tokio::test]
async fn redis_restarted_under_load_loses_nothing_and_needs_no_restart() {
    let mut redis = RedisServer::start().await;
    let env = Env::with_redis(redis.url()).await;
    pending_backlog(&env, 4_000).await;
    let worker = env.start_worker(&[("WORKER_CONCURRENCY", "16")]).await;
    eventually(Duration::from_secs(60), "work under way", || async {
        env.count_status("processed").await >= 400
    })
    .await;
    redis.restart().await;
    let done_at_restart = env.count_status("processed").await;
    assert!(
        done_at_restart < 4_000,
        "the restart came too late to matter"
    );
    eventually(Duration::from_secs(180), "everything processed", || async {
        env.count_status("processed").await == 4_000
    })
    .await;
    assert!(worker.is_running(), "the worker carried on by itself");
    assert_eq!(
        env.number(
            "SELECT count(*) AS n FROM pull_requests WHERE state = 'merged'",
            vec![]
        )
        .await,
        1_000
    );
    worker.stop().await;
    env.teardown().await;
}

#[tokio::test]
async fn a_backlog_of_20000_deliveries_drains_with_no_exit_and_redis_is_left_clean() {
    let env = Env::new().await;
    pending_backlog(&env, 20_000).await;
    let worker = env.start_worker(&[("WORKER_CONCURRENCY", "16")]).await;
    eventually(Duration::from_secs(400), "the backlog drains", || async {
        env.count_status("processed").await == 20_000
    })
    .await;
    assert!(worker.is_running());
    assert_eq!(
        env.number(
            "SELECT count(*) AS n FROM pull_requests WHERE state = 'merged'",
            vec![]
        )
        .await,
        5_000
    );

    // What apalis leaves behind for finished jobs is removed: Redis does not grow with jobs done.
    let conn = env.queue.connection();
    let data_key = format!("{}:webhooks:data", env.namespace);
    let meta_keys = format!("{}:webhooks:meta:*", env.namespace);
    eventually(
        Duration::from_secs(30),
        "finished jobs' data and meta trimmed from redis",
        || {
            let mut conn = conn.clone();
            let data_key = data_key.clone();
            let meta_keys = meta_keys.clone();
            async move {
                let left: i64 = redis::cmd("HLEN")
                    .arg(&data_key)
                    .query_async(&mut conn)
                    .await
                    .expect("hlen");
                let meta: Vec<String> = redis::cmd("KEYS")
                    .arg(&meta_keys)
                    .query_async(&mut conn)
                    .await
                    .expect("keys");
                left == 0 && meta.is_empty()
            }
        },
    )
    .await;

    // The metrics port reports what happened.
    let addr = worker.metrics_addr.expect("metrics port");
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    assert!(
        text.contains(
            "devpulse_worker_jobs_total{kind=\"processPullRequest\",outcome=\"processed\"} 20000"
        ),
        "{text}"
    );
    assert!(
        text.contains("devpulse_worker_enqueue_to_done_seconds_bucket"),
        "{text}"
    );
    worker.stop().await;
    env.teardown().await;
}

/// A delivery whose API transaction commits while a worker is counting attempts — after the
/// counting UPDATE took its snapshot, before the look-up of the rows it missed — must be tried
/// again, not taken for finished (that dropped its job and left the row `queued`).
#[tokio::test]
async fn a_delivery_committed_while_its_attempt_is_counted_is_tried_again() {
    use jobs::deliveries::{Attempt, record_attempts};

    // Arrange: delivery "a" is stored; counting its attempt waits on an advisory lock the test
    // holds, so the test can commit delivery "b" at that exact moment.
    let env = Env::new().await;
    env.insert("race-a", "ping", "{}", "queued").await;
    env.db
        .execute_unprepared(
            "CREATE FUNCTION hold_count() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                PERFORM pg_advisory_xact_lock(4242); RETURN NEW; END $$; \
             CREATE TRIGGER hold_count BEFORE UPDATE ON webhook_deliveries FOR EACH ROW \
                WHEN (OLD.delivery_id = 'race-a') EXECUTE FUNCTION hold_count();",
        )
        .await
        .expect("trigger");
    let gate = env.db.begin().await.expect("gate");
    gate.execute_unprepared("SELECT pg_advisory_xact_lock(4242)")
        .await
        .expect("lock");
    let api = env.db.begin().await.expect("api transaction");
    api.execute_unprepared(
        "INSERT INTO webhook_deliveries (delivery_id, event, payload, status) \
         VALUES ('race-b', 'ping', '{}', 'queued')",
    )
    .await
    .expect("insert b");

    // Act: the count starts (b is not committed: its UPDATE does not see it) and blocks on "a";
    // then b commits, and the count goes on to look up what it missed.
    let db = env.db.clone();
    let counting = tokio::spawn(async move {
        let a = jobs::DeliveryId::parse("race-a").expect("id");
        let b = jobs::DeliveryId::parse("race-b").expect("id");
        record_attempts(&db, &[&a, &b]).await.expect("count")
    });
    eventually(
        Duration::from_secs(10),
        "the count waits on the gate",
        || async {
            env.number(
                "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                vec![],
            )
            .await
                == 1
        },
    )
    .await;
    api.commit().await.expect("commit b");
    gate.commit().await.expect("open the gate");
    let found = counting.await.expect("count task");

    // Assert: "a" was counted; "b" is to be tried again shortly, and its row is untouched.
    assert!(
        matches!(found.get("race-a"), Some(Attempt::Run(..))),
        "{found:?}"
    );
    assert_eq!(found.get("race-b"), Some(&Attempt::NotVisible), "{found:?}");
    assert_eq!(env.delivery("race-b").await.attempts, 0);
    assert_eq!(env.status("race-b").await, "queued");
    env.teardown().await;
}
