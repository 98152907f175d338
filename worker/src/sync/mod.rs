//! The sync side: jobs that fetch from GitHub's REST API what webhooks cannot bring (history,
//! missed updates, failed deliveries) and write it through the same writers as webhook jobs.
//!
//! Jobs live in the PostgreSQL ledger `sync_jobs` (`jobs::sync`), not in Redis: they run for
//! minutes, must resume from a checkpoint, and share rate limits across replicas. Every worker
//! runs [`run`]: lease a due job for one *slice* (a few pages, bounded in time), do it, record how
//! it ended. Installations take turns slice by slice (the least recently served goes first), so
//! one large backfill cannot starve the others; a rate-limited installation's jobs wait for its
//! reset without holding a worker.
//!
//! - [`client`]: the GitHub client (App auth, token cache, rate limits, ETags, pagination).
//! - [`backfill`]: `syncInstallation`. [`reconcile`]: `reconcile`. [`redeliver`]: `redeliverFailed`.

pub mod backfill;
pub mod client;
pub mod command;
pub mod reconcile;
pub mod redeliver;

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use jobs::{
    dead_letters::Reason,
    domain::cache::{Cache, Session},
    process::{self, Parsed},
    runner::RetryPolicy,
    sync::{self as ledger, Claimed, SliceEnd, SyncKind},
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, TransactionTrait};
use tokio_util::sync::CancellationToken;

use self::client::{Github, GithubError};

/// How sync jobs run in this process.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// `SYNC_CONCURRENCY` (2): slices run at once by this process.
    pub concurrency: usize,
    /// `SYNC_SLICE` (20s): a slice stops taking new pages after this long.
    pub slice: Duration,
    /// `SYNC_LEASE` (5m): how long a slice may run before another worker may take the job over.
    pub lease: Duration,
    /// `SYNC_FETCH_CONCURRENCY` (8): GitHub requests in flight at once within a slice.
    pub fetch_concurrency: usize,
    /// Attempts and backoff of failed slices (the worker's `WORKER_MAX_ATTEMPTS`, `WORKER_RETRY_*`).
    pub retry: RetryPolicy,
    /// How often an idle runner looks for due jobs.
    pub poll: Duration,
}

impl SyncSettings {
    pub fn new(retry: RetryPolicy) -> Self {
        Self {
            concurrency: 2,
            slice: Duration::from_secs(20),
            lease: Duration::from_secs(300),
            fetch_concurrency: 8,
            retry,
            poll: Duration::from_secs(1),
        }
    }
}

/// What a sync job needs: the database, the GitHub client, the writers' cache, the settings.
#[derive(Debug, Clone)]
pub struct SyncContext {
    pub db: DatabaseConnection,
    pub github: Arc<Github>,
    pub cache: Cache,
    pub settings: SyncSettings,
    /// This process's unique worker name (the lease holder).
    pub worker: String,
}

/// Why a slice stopped early.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Github(#[from] GithubError),
    #[error("database: {0}")]
    Database(#[from] DbErr),
    /// GitHub's data does not fit the writers (an unknown state): it will not get better.
    #[error("{0}")]
    Permanent(String),
}

impl From<process::ProcessError> for SyncError {
    fn from(e: process::ProcessError) -> Self {
        match e {
            process::ProcessError::Permanent(m) => Self::Permanent(m),
            process::ProcessError::Database(e) => Self::Database(e),
        }
    }
}

/// A slice's result: finished, or more to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Done,
    More,
}

/// Runs `concurrency` slice loops until `shutdown`; a slice in progress finishes first (or its
/// lease runs out and another worker resumes from the checkpoint).
pub async fn run(ctx: SyncContext, shutdown: CancellationToken) {
    let mut loops = tokio::task::JoinSet::new();
    for _ in 0..ctx.settings.concurrency.max(1) {
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        loops.spawn(async move {
            while !shutdown.is_cancelled() {
                let ran = match run_one(&ctx, None).await {
                    Ok(ran) => ran.is_some(),
                    Err(e) => {
                        tracing::warn!(error = %e, "sync: cannot lease a job");
                        false
                    }
                };
                if !ran {
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = tokio::time::sleep(ctx.settings.poll) => {}
                    }
                }
            }
        });
    }
    while loops.join_next().await.is_some() {}
}

/// Leases one due job (only job `only`, when given) and runs one slice of it. Returns the job
/// and how the slice ended, or `None` when nothing was due.
pub async fn run_one(
    ctx: &SyncContext,
    only: Option<i64>,
) -> Result<Option<(Claimed, SliceEnd)>, DbErr> {
    let Some(job) = ledger::claim(&ctx.db, &ctx.worker, ctx.settings.lease, only).await? else {
        return Ok(None);
    };
    let end = slice(ctx, &job).await;
    let progress = progress(&ctx.db, &job).await.unwrap_or_default();
    let txn = ctx.db.begin().await?;
    let kept = ledger::release(&txn, job.id, &ctx.worker, &end, &progress).await?;
    let outcome = match &end {
        SliceEnd::More { .. } => "more",
        SliceEnd::Paused { .. } => "paused",
        SliceEnd::Done => "done",
        SliceEnd::Failed { .. } => "failed",
        SliceEnd::Dead { .. } => "dead",
    };
    if let (true, SliceEnd::Dead { reason, error }) = (kept, &end) {
        ledger::bury(&txn, job.id, *reason, error, job.attempts).await?;
    }
    txn.commit().await?;
    ctx.github.metrics().slice(&job.kind, outcome);
    match &end {
        SliceEnd::Failed { error, retry_at } => {
            tracing::warn!(job = job.id, kind = %job.kind, attempt = job.attempts, error, %retry_at, "sync slice failed; retrying later");
        }
        SliceEnd::Dead { error, .. } => {
            tracing::error!(job = job.id, kind = %job.kind, error, "sync job dead-lettered");
        }
        SliceEnd::Done => {
            tracing::info!(job = job.id, kind = %job.kind, %progress, "sync job finished")
        }
        _ => {}
    }
    if !kept {
        tracing::warn!(
            job = job.id,
            "sync: the lease ran out before the slice ended; another worker has the job"
        );
    }
    Ok(Some((job, end)))
}

#[tracing::instrument(skip(ctx, job), fields(job = job.id, kind = %job.kind, installation = ?job.installation_id))]
async fn slice(ctx: &SyncContext, job: &Claimed) -> SliceEnd {
    // Sync jobs share the workers' default attempt budget (`WORKER_MAX_ATTEMPTS`).
    let max = i32::try_from(ctx.settings.retry.max_attempts).unwrap_or(i32::MAX);
    if job.attempts > max {
        return SliceEnd::Dead {
            reason: Reason::Interrupted,
            error: format!(
                "interrupted: {} slices in a row did not finish (a worker crashed or lost its lease each time)",
                job.attempts - 1
            ),
        };
    }
    let deadline = tokio::time::Instant::now() + ctx.settings.slice;
    let result = match job.kind() {
        Some(SyncKind::SyncInstallation) => backfill::slice(ctx, job, deadline).await,
        Some(SyncKind::Reconcile) => reconcile::slice(ctx, job, deadline).await,
        Some(SyncKind::RedeliverFailed) => redeliver::run(ctx).await,
        None => Err(SyncError::Permanent(format!(
            "unknown sync job kind {:?}",
            job.kind
        ))),
    };
    match result {
        Ok(Step::Done) => SliceEnd::Done,
        Ok(Step::More) => SliceEnd::More {
            run_after: Utc::now(),
        },
        Err(SyncError::Github(GithubError::RateLimited { until, .. })) => {
            SliceEnd::Paused { until }
        }
        Err(SyncError::Github(e)) if e.is_permanent() => SliceEnd::Dead {
            reason: Reason::Permanent,
            error: e.to_string(),
        },
        Err(SyncError::Permanent(e)) => SliceEnd::Dead {
            reason: Reason::Permanent,
            error: e,
        },
        Err(e) if job.attempts >= max => SliceEnd::Dead {
            reason: Reason::Exhausted,
            error: format!("after {} attempts: {e}", job.attempts),
        },
        Err(e) => SliceEnd::Failed {
            error: e.to_string(),
            retry_at: Utc::now()
                + chrono::Duration::from_std(ctx.settings.retry.delay(job.attempts))
                    .unwrap_or_default(),
        },
    }
}

/// Writes one page of records and moves its checkpoint past it, in one transaction, under this
/// worker's lease: a page is written exactly once however the job is interrupted.
pub async fn write_page(
    ctx: &SyncContext,
    job: i64,
    repository_id: i64,
    stream: &str,
    records: &[Parsed],
    next: Option<&str>,
    items: usize,
) -> Result<(), DbErr> {
    let mut refs: Vec<&Parsed> = records.iter().collect();
    refs.sort_by_key(|p| process::lock_order(p));
    let txn = ctx.db.begin().await?;
    let mut session = Session::new(&txn, ctx.cache.clone());
    let written = async {
        // Fencing: a worker whose lease ran out writes nothing more; the page's commit also
        // extends the lease of the worker that holds it.
        if !ledger::renew(&txn, job, &ctx.worker, ctx.settings.lease).await? {
            return Err(DbErr::Custom(format!(
                "the lease on sync job {job} was lost; another worker has it"
            )));
        }
        process::write_all(&mut session, &refs).await?;
        ledger::advance(&txn, job, repository_id, stream, next, items).await
    }
    .await;
    let staged = session.finish();
    match written {
        Ok(()) => {
            txn.commit().await?;
            ctx.cache.absorb(staged);
            Ok(())
        }
        Err(e) => {
            ctx.cache.clear();
            Err(e)
        }
    }
}

/// A job's progress for the ledger: repositories and pages done, rows per stream.
async fn progress(db: &DatabaseConnection, job: &Claimed) -> Result<serde_json::Value, DbErr> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT jsonb_build_object( \
                'repositories', count(DISTINCT repository_id) FILTER (WHERE repository_id <> 0), \
                'repositories_done', (SELECT count(*) FROM (SELECT repository_id FROM sync_checkpoints \
                    WHERE job_id = $1 AND repository_id <> 0 GROUP BY repository_id HAVING bool_and(done)) d), \
                'pages', COALESCE(sum(pages), 0), \
                'pull_requests', COALESCE(sum(items) FILTER (WHERE stream = 'pulls'), 0), \
                'commits', COALESCE(sum(items) FILTER (WHERE stream = 'commits'), 0), \
                'deployments', COALESCE(sum(items) FILTER (WHERE stream = 'deployments'), 0), \
                'issues', COALESCE(sum(items) FILTER (WHERE stream = 'issues'), 0), \
                'reconciled', COALESCE(sum(items) FILTER (WHERE stream = 'reconcile'), 0)) AS p \
             FROM sync_checkpoints WHERE job_id = $1",
            [job.id.into()],
        ))
        .await?;
    Ok(row
        .and_then(|r| r.try_get::<serde_json::Value>("", "p").ok())
        .unwrap_or_default())
}

/// A repository as the sync jobs need it: where to fetch, and the records the writers take.
#[derive(Debug, Clone)]
pub struct Repo {
    pub account: jobs::domain::organizations::AccountRef,
    pub snapshot: jobs::domain::repositories::RepositorySnapshot,
}

impl Repo {
    pub fn full_name(&self) -> &str {
        &self.snapshot.full_name
    }

    /// One record about this repository.
    pub fn record(
        &self,
        people: Vec<jobs::domain::users::GithubUser>,
        item: process::Item,
    ) -> Parsed {
        Parsed::Repository {
            account: self.account.clone(),
            repository: self.snapshot.clone(),
            people,
            item: Box::new(item),
        }
    }
}

/// The stored repositories `ids` with their organization's account.
pub async fn load_repos<C: ConnectionTrait>(
    db: &C,
    installation_id: i64,
    ids: &[i64],
) -> Result<Vec<Repo>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT r.github_id, r.name, r.full_name, r.private, r.archived, r.default_branch, \
                r.github_updated_at, o.github_account_id, o.github_login, o.account_type \
             FROM repositories r JOIN organizations o ON o.id = r.organization_id \
             WHERE r.github_id = ANY($1) AND o.github_account_id IS NOT NULL ORDER BY r.github_id",
            [ids.to_vec().into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Repo {
                account: jobs::domain::organizations::AccountRef {
                    account_id: r.try_get("", "github_account_id")?,
                    login: r
                        .try_get::<Option<String>>("", "github_login")?
                        .unwrap_or_default(),
                    account_type: r.try_get("", "account_type")?,
                    installation_id: Some(installation_id),
                },
                snapshot: jobs::domain::repositories::RepositorySnapshot {
                    github_id: r.try_get("", "github_id")?,
                    name: r.try_get("", "name")?,
                    full_name: r.try_get("", "full_name")?,
                    private: r.try_get("", "private")?,
                    archived: r.try_get("", "archived")?,
                    default_branch: r.try_get("", "default_branch")?,
                    updated_at: r.try_get("", "github_updated_at")?,
                },
            })
        })
        .collect()
}

/// Fetches every page from `first` on (a pull request's reviews or commits, a deployment's statuses).
pub async fn fetch_all<T: serde::de::DeserializeOwned>(
    github: &Github,
    scope: client::Scope,
    first: &str,
) -> Result<Vec<T>, GithubError> {
    let mut items = Vec::new();
    let mut next = Some(first.to_owned());
    while let Some(path) = next {
        let answer = github.get(scope, &path, None).await?;
        items.extend(answer.json::<Vec<T>>()?);
        next = answer.next;
    }
    Ok(items)
}

/// `time` is inside the period that starts at `since` (no `since`: everything is).
pub fn within(since: Option<DateTime<Utc>>, time: DateTime<Utc>) -> bool {
    since.is_none_or(|s| time >= s)
}
