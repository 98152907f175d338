//! `scripts/bench-sync`: backfill throughput (repositories × pull requests per second) against the
//! fake GitHub of the tests, next to a baseline measured in the same run — the same requests
//! through the same client with nothing written — so the ratio shows what writing costs.

#[path = "../tests/it/fake_github.rs"]
mod fake_github;

use std::{sync::Arc, time::Instant};

use chrono::Utc;
use futures::{StreamExt, TryStreamExt, stream};
use jobs::{
    domain::cache::Cache,
    github,
    runtime::config::GithubApp,
    sync::{self as ledger, Request, SyncKind},
    testing::TestDb,
};
use migration::{Migrator, MigratorTrait};
use secrecy::SecretString;
use worker::{
    metrics::SyncMetrics,
    sync::{
        Repo, SyncContext, SyncSettings,
        backfill::pull_request_records,
        client::{ClientOptions, Github, Scope},
        fetch_all, load_repos, run_one,
    },
};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
#[allow(clippy::print_stdout)] // the result lines are this tool's output
async fn main() -> anyhow::Result<()> {
    let repos = env_usize("REPOS", 10);
    let prs = env_usize("PRS", 200);
    let fetch = env_usize("FETCH_CONCURRENCY", 8);
    let installation = 1;
    let owner = github::payloads::Actor::user(1_000, "bench");
    let mut world = fake_github::World::default();
    world.installations.insert(
        installation,
        fake_github::world(installation, &owner, repos, prs, 5, Utc::now()),
    );
    let fake = fake_github::FakeGithub::start(world).await;
    let test_db = TestDb::create().await;
    let db = sea_orm::Database::connect(test_db.url.as_str()).await?;
    Migrator::up(&db, None).await?;
    let app = GithubApp {
        app_id: fake_github::APP_ID,
        private_key: SecretString::from(fake_github::private_key()),
    };
    let client = Arc::new(Github::new(
        &url::Url::parse(&fake.url())?,
        &app,
        db.clone(),
        ClientOptions::default(),
        Arc::new(SyncMetrics::default()),
    )?);
    let mut settings = SyncSettings::new(jobs::runner::RetryPolicy::default());
    settings.fetch_concurrency = fetch;
    settings.slice = std::time::Duration::from_secs(3_600);
    let ctx = SyncContext {
        db: db.clone(),
        github: client.clone(),
        cache: Cache::default(),
        settings,
        worker: "bench".to_owned(),
    };

    // The system: a whole backfill, written through the writers with checkpoints.
    let started = Instant::now();
    let job = ledger::enqueue(
        &db,
        &Request {
            kind: SyncKind::SyncInstallation,
            installation_id: Some(installation),
            since: None,
            repository_ids: None,
            requested_by: "bench".to_owned(),
        },
    )
    .await?
    .id;
    loop {
        run_one(&ctx, Some(job)).await?;
        let row = ledger::get(&db, job)
            .await?
            .ok_or_else(|| anyhow::anyhow!("job gone"))?;
        match row.status.as_str() {
            "done" => break,
            "dead" => anyhow::bail!("backfill died: {:?}", row.last_error),
            _ => {}
        }
    }
    let system = started.elapsed().as_secs_f64();
    let requests_system = fake.log().len();

    // The baseline: the same pull-request requests and parsing, nothing written.
    let ids: Vec<i64> = (1..=repos)
        .map(|r| installation * 1_000 + r as i64)
        .collect();
    let loaded: Vec<Repo> = load_repos(&db, installation, &ids).await?;
    let started = Instant::now();
    let mut fetched = 0usize;
    for repo in &loaded {
        let first = format!(
            "/repos/{}/pulls?state=all&sort=updated&direction=desc&per_page=100",
            repo.full_name()
        );
        let listed: Vec<github::PullRequest> =
            fetch_all(&client, Scope::Installation(installation), &first).await?;
        let records: Vec<_> = stream::iter(listed)
            .map(|pr| {
                pull_request_records(&ctx, Scope::Installation(installation), repo, pr.number)
            })
            .buffered(fetch)
            .try_collect()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        fetched += records.len();
    }
    let baseline = started.elapsed().as_secs_f64();
    let total = repos * prs;
    anyhow::ensure!(fetched == total, "fetched {fetched} of {total}");
    println!(
        "backfill: {repos} repositories x {prs} pull requests (+ reviews, commits, the default branch, \
         5 deployments and 1 issue per repository) in {system:.2} s = {:.0} pull requests/s, {requests_system} requests",
        total as f64 / system
    );
    println!(
        "baseline (same pull-request requests, nothing written): {baseline:.2} s = {:.0} pull requests/s",
        total as f64 / baseline
    );
    println!(
        "ratio (backfill / baseline throughput): {:.2}",
        baseline / system
    );
    drop(db);
    test_db.drop_db().await;
    Ok(())
}
