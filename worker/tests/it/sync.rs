//! The sync side against a fake GitHub (`fake_github`): backfills resume from their checkpoints
//! and write each row once, reconcile heals missed webhooks, failed deliveries are redelivered
//! exactly once, rate limits pause only the installation that hit them.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use jobs::{
    domain::cache::Cache,
    github::payloads::{self, Actor},
    runner::RetryPolicy,
    runtime::config::GithubApp,
    sync::{self as ledger, Request, SliceEnd, SyncKind},
};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use secrecy::SecretString;
use worker::{
    metrics::SyncMetrics,
    sync::{
        SyncContext, SyncSettings,
        client::{ClientOptions, Github},
        run_one,
    },
};

use crate::{
    fake_github::{self, APP_ID, FakeGithub, World},
    helpers::Env,
};

fn context(env: &Env, fake: &FakeGithub, worker: &str) -> SyncContext {
    let app = GithubApp {
        app_id: APP_ID,
        private_key: SecretString::from(fake_github::private_key()),
    };
    let url = url::Url::parse(&fake.url()).expect("fake url");
    let github = Github::new(
        &url,
        &app,
        env.db.clone(),
        ClientOptions {
            // Three tries per request, 10–20 ms apart.
            retry: RetryPolicy {
                base: Duration::from_millis(10),
                cap: Duration::from_millis(20),
                max_attempts: 3,
                max_attempts_by_kind: Default::default(),
            },
            timeout: Duration::from_secs(5),
        },
        Arc::new(SyncMetrics::default()),
    )
    .expect("client");
    let mut settings = SyncSettings::new(RetryPolicy {
        base: Duration::from_millis(10),
        cap: Duration::from_millis(50),
        max_attempts: 5,
        max_attempts_by_kind: Default::default(),
    });
    settings.fetch_concurrency = 4;
    SyncContext {
        db: env.db.clone(),
        github: Arc::new(github),
        cache: Cache::default(),
        settings,
        worker: worker.to_owned(),
    }
}

fn request(kind: SyncKind, installation: Option<i64>, since: Option<DateTime<Utc>>) -> Request {
    Request {
        kind,
        installation_id: installation,
        since,
        repository_ids: None,
        requested_by: "test".to_owned(),
    }
}

/// Runs slices of due jobs until `job` is finished; returns how each slice ended.
async fn drive(ctx: &SyncContext, job: i64) -> Vec<SliceEnd> {
    let mut ends = Vec::new();
    for _ in 0..2_000 {
        if let Some((claimed, end)) = run_one(ctx, None).await.expect("slice")
            && claimed.id == job
        {
            ends.push(end);
        }
        let row = ledger::get(&ctx.db, job).await.expect("job").expect("row");
        if row.status == "done" || row.status == "dead" {
            return ends;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("sync job {job} did not finish: {ends:?}");
}

async fn rows(env: &Env, sql: &str) -> Vec<(i64, String)> {
    env.db
        .query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .expect("query")
        .iter()
        .map(|r| {
            (
                r.try_get::<i64>("", "id").expect("id"),
                r.try_get::<String>("", "v").expect("v"),
            )
        })
        .collect()
}

fn account(id: i64, login: &str) -> Actor {
    Actor {
        id,
        login: login.to_owned(),
        bot: false,
    }
}

#[tokio::test]
async fn a_backfill_interrupted_half_way_and_restarted_writes_each_row_once() {
    // Arrange: 2 repositories × 250 pull requests (3 pages each), and the second repository's
    // second page failing with 500s for longer than the client retries.
    let env = Env::new().await;
    let end = Utc::now();
    let mut world = World::default();
    world.installations.insert(
        77,
        fake_github::world(77, &account(7_700, "acme"), 2, 250, 3, end),
    );
    let fake = FakeGithub::start(world).await;
    let page_two = "service-1/pulls?state=all&sort=updated&direction=desc&per_page=100&page=2";
    fake.fault(page_two, 3, 500, &[]);
    let ctx = context(&env, &fake, "worker-a");
    let job = ledger::enqueue(
        &env.db,
        &request(
            SyncKind::SyncInstallation,
            Some(77),
            Some(end - chrono::Duration::days(60)),
        ),
    )
    .await
    .expect("enqueue")
    .id;

    // Act 1: slices until one fails on the broken page.
    let mut failed = false;
    for _ in 0..50 {
        if let Some((_, end)) = run_one(&ctx, Some(job)).await.expect("slice")
            && matches!(end, SliceEnd::Failed { .. })
        {
            failed = true;
            break;
        }
    }
    assert!(failed, "the 500s end a slice with a retry");
    let before = rows(
        &env,
        "SELECT github_id AS id, xmin::text AS v FROM pull_requests",
    )
    .await;
    assert_eq!(
        before.len(),
        350,
        "repository 0 whole, repository 1's first page"
    );
    let checkpoint: String = env
        .db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT next_page FROM sync_checkpoints WHERE job_id = $1 AND stream = 'pulls' \
             AND repository_id = 77002",
            [job.into()],
        ))
        .await
        .expect("query")
        .expect("checkpoint")
        .try_get("", "next_page")
        .expect("next page");
    assert!(checkpoint.ends_with("page=2"), "{checkpoint}");

    // Act 2: the job resumes (another worker) and finishes.
    let other = context(&env, &fake, "worker-b");
    let ends = drive(&other, job).await;
    assert!(matches!(ends.last(), Some(SliceEnd::Done)), "{ends:?}");

    // Assert: every row once; rows written before the interruption were not written again.
    let after = rows(
        &env,
        "SELECT github_id AS id, xmin::text AS v FROM pull_requests",
    )
    .await;
    assert_eq!(after.len(), 500);
    let after: std::collections::HashMap<i64, String> = after.into_iter().collect();
    for (id, xmin) in &before {
        assert_eq!(after.get(id), Some(xmin), "pull request {id} was rewritten");
    }
    assert_eq!(
        env.number("SELECT count(*) AS n FROM reviews", vec![])
            .await,
        500
    );
    assert_eq!(
        env.number(
            "SELECT count(*) AS n FROM commits WHERE NOT on_default_branch",
            vec![]
        )
        .await,
        1_000,
        "two commits of each pull request, on its head branch"
    );
    assert_eq!(
        env.number(
            "SELECT count(*) AS n FROM commits c JOIN pull_requests p \
             ON p.merge_commit_sha = c.sha AND c.on_default_branch \
             AND c.default_branch_pushed_at = p.merged_at",
            vec![]
        )
        .await,
        250,
        "the default branch's history: each merged pull request's commit, placed at its merge"
    );
    assert_eq!(
        env.number("SELECT count(*) AS n FROM deployments", vec![])
            .await,
        6
    );
    assert_eq!(
        env.number("SELECT count(*) AS n FROM deployment_statuses", vec![])
            .await,
        6
    );
    assert_eq!(
        env.number("SELECT count(*) AS n FROM incidents", vec![])
            .await,
        2
    );
    assert_eq!(
        env.number(
            "SELECT count(*) AS n FROM pull_requests WHERE first_commit_at IS NOT NULL \
             AND additions IS NOT NULL",
            vec![]
        )
        .await,
        500,
        "the full snapshot and the commits of each pull request were written"
    );
    let log = fake.log();
    let mut details = std::collections::HashMap::<String, usize>::new();
    for l in &log {
        let is_detail = l.path.contains("/pulls/")
            && !l.path.contains("/reviews")
            && !l.path.contains("/commits");
        if is_detail {
            *details.entry(l.path.clone()).or_default() += 1;
        }
    }
    assert_eq!(details.len(), 500);
    assert!(
        details.values().all(|n| *n == 1),
        "each pull request fetched once"
    );
    let page_one = log
        .iter()
        .filter(|l| {
            l.path
                .ends_with("service-1/pulls?state=all&sort=updated&direction=desc&per_page=100")
        })
        .count();
    assert_eq!(
        page_one, 1,
        "the page before the checkpoint is not fetched again"
    );
    assert_eq!(fake.count(page_two), 4, "three 500s, then the page");
    assert_eq!(
        fake.with(|w| w.tokens_issued.get(&77).copied()),
        Some(2),
        "one installation token per worker process, however many requests and slices it made"
    );
    let row = ledger::get(&env.db, job).await.expect("job").expect("row");
    assert_eq!(row.progress["pull_requests"], 500);
    assert_eq!(row.progress["repositories_done"], 2);
    env.teardown().await;
}

#[tokio::test]
async fn a_worker_that_dies_mid_slice_is_replaced_when_its_lease_runs_out() {
    let env = Env::new().await;
    let mut world = World::default();
    world.installations.insert(
        5,
        fake_github::world(5, &account(500, "five"), 1, 20, 1, Utc::now()),
    );
    let fake = FakeGithub::start(world).await;
    let job = ledger::enqueue(&env.db, &request(SyncKind::SyncInstallation, Some(5), None))
        .await
        .expect("enqueue")
        .id;
    // A worker leases the job and dies (never releases).
    let taken = ledger::claim(&env.db, "worker-dead", Duration::from_secs(1), None)
        .await
        .expect("claim");
    assert_eq!(taken.map(|c| c.id), Some(job));
    let ctx = context(&env, &fake, "worker-alive");
    assert!(
        run_one(&ctx, None).await.expect("slice").is_none(),
        "leased"
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let ends = drive(&ctx, job).await;
    assert!(matches!(ends.last(), Some(SliceEnd::Done)), "{ends:?}");
    assert_eq!(
        env.number("SELECT count(*) AS n FROM pull_requests", vec![])
            .await,
        20
    );
    let row = ledger::get(&env.db, job).await.expect("job").expect("row");
    assert_eq!(row.attempts, 0, "a finished job's attempts start over");
    env.teardown().await;
}

#[tokio::test]
async fn a_missed_closed_webhook_is_healed_by_reconcile() {
    // Arrange: two pull requests stored open from their `opened` webhooks; on GitHub one was
    // merged four days ago (outside "updated since", found by the open listing), one closed an
    // hour ago (found by "updated since"). A third is open on both sides.
    let env = Env::new().await;
    let now = Utc::now();
    let owner = account(900, "heal");
    let mut repos = fake_github::world(9, &owner, 1, 3, 0, now);
    let repo = repos[0].repo.clone();
    let installation = payloads::installation(
        9,
        &owner,
        std::slice::from_ref(&repo),
        now - chrono::Duration::days(10),
    );
    env.apply("install-9", "installation", &installation.to_string())
        .await;
    for (i, fake_pr) in repos[0].prs.iter_mut().enumerate() {
        fake_pr.pr.merged_at = None;
        fake_pr.pr.closed_at = None;
        fake_pr.pr.merge_commit_sha = None;
        fake_pr.pr.created_at = now - chrono::Duration::days(6);
        fake_pr.pr.updated_at = now - chrono::Duration::days(6);
        let opened = payloads::pull_request(&repo, &fake_pr.pr, "opened");
        env.apply(&format!("opened-{i}"), "pull_request", &opened.to_string())
            .await;
    }
    // The installation's backfill ran two days ago: "updated since" starts there.
    env.db
        .execute_unprepared(
            "UPDATE sync_jobs SET status = 'done', started_at = now() - interval '2 days', \
             finished_at = now() - interval '2 days'",
        )
        .await
        .expect("backfill done");
    let merged_long_ago = now - chrono::Duration::days(4);
    let closed_lately = now - chrono::Duration::hours(1);
    {
        let prs = &mut repos[0].prs;
        prs[0].pr.merged_at = Some(merged_long_ago);
        prs[0].pr.closed_at = Some(merged_long_ago);
        prs[0].pr.merge_commit_sha = Some(format!("{:040x}", 1));
        prs[0].pr.updated_at = merged_long_ago;
        prs[1].pr.closed_at = Some(closed_lately);
        prs[1].pr.updated_at = closed_lately;
    }
    let ids: Vec<i64> = repos[0].prs.iter().map(|p| p.pr.id).collect();
    let mut world = World::default();
    world.installations.insert(9, repos);
    let fake = FakeGithub::start(world).await;
    let ctx = context(&env, &fake, "worker-a");

    // Act
    let job = ledger::enqueue(&env.db, &request(SyncKind::Reconcile, Some(9), None))
        .await
        .expect("enqueue")
        .id;
    let ends = drive(&ctx, job).await;

    // Assert
    assert!(matches!(ends.last(), Some(SliceEnd::Done)), "{ends:?}");
    let state = |id: i64| {
        let db = env.db.clone();
        async move {
            db.query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT state FROM pull_requests WHERE github_id = $1",
                [id.into()],
            ))
            .await
            .expect("query")
            .expect("row")
            .try_get::<String>("", "state")
            .expect("state")
        }
    };
    assert_eq!(state(ids[0]).await, "merged");
    assert_eq!(state(ids[1]).await, "closed");
    assert_eq!(state(ids[2]).await, "open");
    assert_eq!(ctx.github.metrics().differences.get(), 2);
    assert_eq!(
        fake.count(&format!("/pulls/{}", 3)),
        0,
        "the unchanged pull request is not fetched"
    );
    let row = ledger::get(&env.db, job).await.expect("job").expect("row");
    assert_eq!(row.progress["reconciled"], 2);

    // A second reconcile: both listings are unchanged (ETag → 304), nothing differs.
    let again = ledger::enqueue(&env.db, &request(SyncKind::Reconcile, Some(9), None))
        .await
        .expect("enqueue")
        .id;
    assert_ne!(again, job);
    drive(&ctx, again).await;
    assert_eq!(ctx.github.metrics().differences.get(), 2, "nothing new");
    let open_listings: Vec<u16> = fake
        .log()
        .iter()
        .filter(|l| l.path.contains("pulls?state=open"))
        .map(|l| l.status)
        .collect();
    assert_eq!(open_listings, vec![200, 304]);
    let updated_listings: Vec<u16> = fake
        .log()
        .iter()
        .filter(|l| l.path.contains("pulls?state=all"))
        .map(|l| l.status)
        .collect();
    assert_eq!(updated_listings, vec![200, 304]);
    env.teardown().await;
}

#[tokio::test]
async fn a_failed_delivery_is_redelivered_exactly_once() {
    // Arrange: 130 deliveries (two pages). Of the failed ones: "lost" never succeeded and never
    // reached DevPulse; "retried" succeeded on a redelivery; "stored" reached DevPulse although
    // GitHub saw a failure (a timeout); "old" is outside the 3 days.
    let env = Env::new().await;
    let now = Utc::now();
    let mut deliveries = Vec::new();
    for i in 0..120 {
        deliveries.push(fake_github::hook_delivery(
            1_000 + i,
            &format!("ok-{i}"),
            200,
            now - chrono::Duration::minutes(i),
            false,
        ));
    }
    deliveries.push(fake_github::hook_delivery(
        2_001,
        "retried",
        200,
        now - chrono::Duration::hours(2),
        true,
    ));
    deliveries.push(fake_github::hook_delivery(
        2_000,
        "retried",
        502,
        now - chrono::Duration::hours(3),
        false,
    ));
    deliveries.push(fake_github::hook_delivery(
        3_000,
        "stored",
        504,
        now - chrono::Duration::hours(4),
        false,
    ));
    deliveries.push(fake_github::hook_delivery(
        4_000,
        "lost",
        503,
        now - chrono::Duration::hours(5),
        false,
    ));
    deliveries.push(fake_github::hook_delivery(
        4_001,
        "lost",
        503,
        now - chrono::Duration::hours(5) + chrono::Duration::minutes(1),
        true,
    ));
    deliveries.push(fake_github::hook_delivery(
        5_000,
        "old",
        500,
        now - chrono::Duration::days(4),
        false,
    ));
    env.insert("stored", "ping", "{}", "processed").await;
    let mut world = World::default();
    world.hook_deliveries = deliveries;
    let fake = FakeGithub::start(world).await;

    // Act: the job runs, then runs again (the next 15-minute tick), and a second replica runs it.
    for worker in ["worker-a", "worker-a", "worker-b"] {
        let ctx = context(&env, &fake, worker);
        let job = ledger::enqueue(&env.db, &request(SyncKind::RedeliverFailed, None, None))
            .await
            .expect("enqueue")
            .id;
        let ends = drive(&ctx, job).await;
        assert!(matches!(ends.last(), Some(SliceEnd::Done)), "{ends:?}");
    }

    // Assert: the newest attempt of "lost" was asked for, once.
    assert_eq!(fake.with(|w| w.redeliveries.clone()), vec![4_001]);
    assert!(fake.count("cursor=100") >= 1, "the second page was read");
    assert_eq!(
        env.number(
            "SELECT count(*) AS n FROM github_redeliveries WHERE status = 'requested'",
            vec![]
        )
        .await,
        1
    );
    env.teardown().await;
}

#[tokio::test]
async fn a_rate_limit_answer_pauses_that_installation_until_its_reset() {
    // Arrange: two installations; the first is told its limit is spent (403, reset in 2 s), the
    // second hits a secondary limit (429, Retry-After: 1).
    let env = Env::new().await;
    let end = Utc::now();
    let mut world = World::default();
    world.installations.insert(
        1,
        fake_github::world(1, &account(100, "one"), 1, 30, 0, end),
    );
    world.installations.insert(
        2,
        fake_github::world(2, &account(200, "two"), 1, 30, 0, end),
    );
    let fake = FakeGithub::start(world).await;
    // GitHub's reset header has whole seconds.
    let reset = DateTime::<Utc>::from_timestamp(Utc::now().timestamp() + 3, 0).expect("reset");
    fake.fault(
        "one/service-0/pulls?state=all",
        1,
        403,
        &[
            ("x-ratelimit-remaining", "0".to_owned()),
            ("x-ratelimit-reset", reset.timestamp().to_string()),
        ],
    );
    fake.fault(
        "two/service-0/pulls/3/reviews",
        1,
        429,
        &[("retry-after", "1".to_owned())],
    );
    let ctx = context(&env, &fake, "worker-a");
    let one = ledger::enqueue(&env.db, &request(SyncKind::SyncInstallation, Some(1), None))
        .await
        .expect("enqueue")
        .id;
    let two = ledger::enqueue(&env.db, &request(SyncKind::SyncInstallation, Some(2), None))
        .await
        .expect("enqueue")
        .id;

    // Act
    let ends_one = drive(&ctx, one).await;
    drive(&ctx, two).await;

    // Assert: each installation was quiet from its limit answer until its reset; the second
    // went on while the first waited.
    assert!(
        ends_one
            .iter()
            .any(|e| matches!(e, SliceEnd::Paused { .. })),
        "{ends_one:?}"
    );
    let log = fake.log();
    for (installation, status, wait) in [
        (1, 403, chrono::Duration::seconds(2)),
        (2, 429, chrono::Duration::seconds(1)),
    ] {
        let limited = log
            .iter()
            .find(|l| l.installation == Some(installation) && l.status == status)
            .unwrap_or_else(|| panic!("installation {installation} got its {status}"));
        let until = if installation == 1 {
            reset
        } else {
            limited.at + wait
        };
        // Requests already on the wire when the answer came (fetches run concurrently) may
        // land just after it; nothing may be sent once the client has seen it.
        let seen = limited.at + chrono::Duration::milliseconds(200);
        let early: Vec<_> = log
            .iter()
            .filter(|l| l.installation == Some(installation) && l.at > seen && l.at < until)
            .collect();
        assert!(
            early.is_empty(),
            "installation {installation} called during its pause: {early:?}"
        );
        if installation == 1 {
            assert!(
                log.iter()
                    .any(|l| l.installation == Some(2) && l.at > limited.at && l.at < until),
                "installation 2 went on while 1 waited"
            );
        }
    }
    assert_eq!(
        env.number("SELECT count(*) AS n FROM pull_requests", vec![])
            .await,
        60
    );
    assert_eq!(
        env.number(
            "SELECT count(*) AS n FROM github_rate_limits WHERE scope = 'installation:1' AND paused_until >= $1",
            vec![reset.into()]
        )
        .await,
        1
    );
    env.teardown().await;
}

#[tokio::test]
async fn new_installations_and_added_repositories_record_a_backfill() {
    let env = Env::new().await;
    let owner = account(300, "newco");
    let repos = fake_github::world(3, &owner, 2, 0, 0, Utc::now());
    let at = Utc::now() - chrono::Duration::hours(1);
    let created = payloads::installation(3, &owner, &[repos[0].repo.clone()], at);
    env.apply("install-3", "installation", &created.to_string())
        .await;
    let added = serde_json::json!({
        "action": "added",
        "installation": created["installation"].clone(),
        "repositories_added": [{"id": repos[1].repo.id, "name": repos[1].repo.name, "full_name": repos[1].repo.full_name(), "private": true}],
        "repositories_removed": [],
        "sender": owner.json(),
    });
    env.apply("added-3", "installation_repositories", &added.to_string())
        .await;
    let jobs = ledger::list(&env.db, None, 10).await.expect("list");
    assert_eq!(
        jobs.len(),
        1,
        "the second request joins the first: {jobs:?}"
    );
    assert_eq!(jobs[0].kind, "syncInstallation");
    assert_eq!(jobs[0].installation_id, Some(3));
    assert_eq!(jobs[0].requested_by, "webhook");
    let since = jobs[0].since.expect("since");
    assert!(
        (since - (at - chrono::Duration::days(90)))
            .num_seconds()
            .abs()
            < 2
    );
    env.teardown().await;
}

#[tokio::test]
async fn a_pause_recorded_by_one_replica_stops_the_others() {
    let env = Env::new().await;
    let mut world = World::default();
    world.installations.insert(
        4,
        fake_github::world(4, &account(400, "four"), 1, 5, 0, Utc::now()),
    );
    let fake = FakeGithub::start(world).await;
    let job = ledger::enqueue(&env.db, &request(SyncKind::SyncInstallation, Some(4), None))
        .await
        .expect("enqueue")
        .id;
    // Another replica hit the limit of installation 4.
    let until = Utc::now() + chrono::Duration::seconds(60);
    ledger::pause(
        &env.db,
        "installation:4",
        until,
        Some(0),
        "primary rate limit exhausted",
    )
    .await
    .expect("pause");
    let ctx = context(&env, &fake, "worker-b");

    let direct = ctx
        .github
        .get(
            worker::sync::client::Scope::Installation(4),
            "/installation/repositories",
            None,
        )
        .await;
    let leased = run_one(&ctx, Some(job)).await.expect("claim");

    assert!(
        matches!(
            direct,
            Err(worker::sync::client::GithubError::RateLimited { .. })
        ),
        "{direct:?}"
    );
    assert!(
        leased.is_none(),
        "the paused installation's job is not leased"
    );
    assert_eq!(
        fake.count("/installation/repositories"),
        0,
        "nothing was sent"
    );
    env.teardown().await;
}

#[tokio::test]
async fn installations_take_turns_so_a_large_backfill_does_not_starve_a_small_one() {
    // Arrange: a large installation recorded first, a small one after; one page per slice.
    let env = Env::new().await;
    let now = Utc::now();
    let mut world = World::default();
    world.installations.insert(
        10,
        fake_github::world(10, &account(1_000, "large"), 4, 150, 0, now),
    );
    world.installations.insert(
        11,
        fake_github::world(11, &account(1_100, "small"), 1, 10, 0, now),
    );
    let fake = FakeGithub::start(world).await;
    let mut ctx = context(&env, &fake, "worker-a");
    ctx.settings.slice = Duration::from_millis(1);
    let large = ledger::enqueue(
        &env.db,
        &request(SyncKind::SyncInstallation, Some(10), None),
    )
    .await
    .expect("enqueue")
    .id;
    let small = ledger::enqueue(
        &env.db,
        &request(SyncKind::SyncInstallation, Some(11), None),
    )
    .await
    .expect("enqueue")
    .id;

    // Act: one worker, one slice at a time.
    let mut order = Vec::new();
    while let Some((job, _)) = run_one(&ctx, None).await.expect("slice") {
        order.push(job.id);
    }

    // Assert: the small backfill finished long before the large one, which still finished.
    let done = |id: i64| {
        let db = env.db.clone();
        async move { ledger::get(&db, id).await.expect("job").expect("row") }
    };
    assert_eq!(done(large).await.status, "done");
    assert_eq!(done(small).await.status, "done");
    let last_small = order
        .iter()
        .rposition(|id| *id == small)
        .expect("small ran");
    let large_slices = order.iter().filter(|id| **id == large).count();
    assert!(
        last_small < order.len() / 2,
        "the small installation waited behind the large one: {order:?}"
    );
    assert!(large_slices > 8, "{order:?}");
    env.teardown().await;
}

#[tokio::test]
async fn worker_sync_backfill_runs_a_backfill_from_the_command_line() {
    // Arrange
    let env = Env::new().await;
    let mut world = World::default();
    world.installations.insert(
        6,
        fake_github::world(6, &account(600, "cli"), 2, 30, 1, Utc::now()),
    );
    let fake = FakeGithub::start(world).await;
    let key = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/github/app-key.pem"
    );
    let app_id = APP_ID.to_string();
    let url = fake.url();
    let vars = [
        ("GITHUB_APP_ID", app_id.as_str()),
        ("GITHUB_APP_PRIVATE_KEY", key),
        ("GITHUB_API_URL", url.as_str()),
    ];

    // Act
    // (The fake server runs on its own threads: blocking here on the child process is fine.)
    let (code, out, err) = env.worker_command_with(
        &[
            "sync",
            "backfill",
            "--installation",
            "6",
            "--since",
            "30d",
            "--json",
        ],
        "",
        &vars,
    );
    let (no_app, _, no_app_err) = env.worker_command(&["sync", "reconcile", "--installation", "6"]);
    let (listed, list_out, _) = env.worker_command(&["sync", "list"]);

    // Assert
    assert_eq!(code, 0, "{err}");
    let row: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON line");
    assert_eq!(row["status"], "done");
    assert_eq!(row["progress"]["pull_requests"], 60);
    assert_eq!(
        env.number("SELECT count(*) AS n FROM pull_requests", vec![])
            .await,
        60
    );
    assert_eq!(no_app, 1);
    assert_eq!(
        no_app_err.trim().lines().count(),
        1,
        "one readable line: {no_app_err}"
    );
    assert!(no_app_err.contains("GITHUB_APP_ID"), "{no_app_err}");
    assert_eq!(listed, 0);
    assert!(list_out.contains("syncInstallation job"), "{list_out}");
    env.teardown().await;
}

#[tokio::test]
async fn a_worker_that_lost_its_lease_writes_nothing_more() {
    let env = Env::new().await;
    let mut world = World::default();
    world.installations.insert(
        8,
        fake_github::world(8, &account(800, "eight"), 1, 5, 0, Utc::now()),
    );
    let fake = FakeGithub::start(world).await;
    let job = ledger::enqueue(&env.db, &request(SyncKind::SyncInstallation, Some(8), None))
        .await
        .expect("enqueue")
        .id;
    // worker-a's lease ran out and worker-b took the job over.
    ledger::claim(&env.db, "worker-a", Duration::from_secs(60), None)
        .await
        .expect("claim");
    env.db
        .execute_unprepared("UPDATE sync_jobs SET leased_by = 'worker-b'")
        .await
        .expect("taken over");
    let stale = context(&env, &fake, "worker-a");

    let written = worker::sync::write_page(&stale, job, 0, "repositories", &[], None, 0).await;

    assert!(written.is_err(), "a stale worker's page is refused");
    assert!(
        ledger::checkpoints(&env.db, job)
            .await
            .expect("checkpoints")
            .is_empty()
    );
    env.teardown().await;
}

#[tokio::test]
async fn a_sync_job_that_fails_for_good_is_dead_lettered_and_resumed_by_a_retry() {
    use jobs::dead_letters::{self, Scope, Selection};
    // Arrange: GitHub refuses the repository listing (the App lost access) — a permanent error.
    let env = Env::new().await;
    let mut world = World::default();
    world.installations.insert(
        12,
        fake_github::world(12, &account(1_200, "lost"), 1, 5, 0, Utc::now()),
    );
    let fake = FakeGithub::start(world).await;
    fake.fault("/installation/repositories", 1, 403, &[]);
    let ctx = context(&env, &fake, "worker-a");
    let job = ledger::enqueue(
        &env.db,
        &request(SyncKind::SyncInstallation, Some(12), None),
    )
    .await
    .expect("enqueue")
    .id;

    // Act 1
    let ends = drive(&ctx, job).await;

    // Assert 1: dead at once, in its kind's dead-letter queue, with the reason.
    assert!(
        matches!(ends.as_slice(), [SliceEnd::Dead { .. }]),
        "{ends:?}"
    );
    let letters = dead_letters::list(&env.db, Scope::Platform, Some("syncInstallation"), 10)
        .await
        .expect("letters");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].reason, "permanent");
    assert!(letters[0].error.contains("403"), "{}", letters[0].error);

    // Act 2: access restored, an operator re-drives the letter.
    let retried = dead_letters::retry(&env.db, Scope::Platform, &Selection::One(letters[0].id))
        .await
        .expect("retry");
    assert_eq!(retried, vec![letters[0].id]);
    let ends = drive(&ctx, job).await;

    // Assert 2
    assert!(matches!(ends.last(), Some(SliceEnd::Done)), "{ends:?}");
    assert_eq!(
        env.number("SELECT count(*) AS n FROM pull_requests", vec![])
            .await,
        5
    );
    env.teardown().await;
}

#[tokio::test]
async fn installation_tokens_are_renewed_before_they_expire() {
    // Arrange: GitHub's tokens last 4 minutes here, inside the 5-minute renewal margin.
    let env = Env::new().await;
    let mut world = World::default();
    world.token_lifetime = Some(chrono::Duration::minutes(4));
    world.installations.insert(
        13,
        fake_github::world(13, &account(1_300, "tok"), 1, 150, 0, Utc::now()),
    );
    let fake = FakeGithub::start(world).await;
    let mut ctx = context(&env, &fake, "worker-a");
    ctx.settings.slice = Duration::from_millis(1);
    let job = ledger::enqueue(
        &env.db,
        &request(SyncKind::SyncInstallation, Some(13), None),
    )
    .await
    .expect("enqueue")
    .id;

    // Act: slice after slice until done.
    let slices = drive(&ctx, job).await.len();

    // Assert: a fresh token at every slice (each found the cached one too close to expiry), and
    // every request carried a token the fake had issued (it answers 401 otherwise).
    let issued = fake
        .with(|w| w.tokens_issued.get(&13).copied())
        .unwrap_or_default();
    assert!(slices >= 3, "{slices}");
    assert!(issued >= slices, "{issued} tokens for {slices} slices");
    assert!(fake.log().iter().all(|l| l.status != 401));
    env.teardown().await;
}
