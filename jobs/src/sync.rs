//! The sync side's PostgreSQL bookkeeping: the ledger of sync jobs (`sync_jobs`) with their
//! leases, attempts and progress; backfill checkpoints; GitHub rate-limit pauses and ETags shared
//! by every replica; and the redeliveries already asked for. No HTTP here: the GitHub client and
//! the jobs themselves live in `worker::sync`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};
use serde::Serialize;

use crate::domain::stmt;

/// What a sync job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum SyncKind {
    /// History of an installation for a period: repositories, pull requests with reviews and
    /// commits, deployments with statuses, incident issues.
    #[serde(rename = "syncInstallation")]
    SyncInstallation,
    /// Open pull requests and those updated since the last reconcile, compared with stored rows.
    #[serde(rename = "reconcile")]
    Reconcile,
    /// Failed webhook deliveries of the last days that never reached DevPulse, sent again.
    #[serde(rename = "redeliverFailed")]
    RedeliverFailed,
}

impl SyncKind {
    pub const ALL: [Self; 3] = [
        Self::SyncInstallation,
        Self::Reconcile,
        Self::RedeliverFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SyncInstallation => "syncInstallation",
            Self::Reconcile => "reconcile",
            Self::RedeliverFailed => "redeliverFailed",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// The rate-limit scope of a job: the installation's token, or the App's JWT.
pub fn scope_of(installation_id: Option<i64>) -> String {
    installation_id.map_or_else(|| "app".to_owned(), |id| format!("installation:{id}"))
}

/// The answer to [`enqueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    pub id: i64,
    /// False when an unfinished job of the same kind and installation took the request.
    pub created: bool,
}

/// A request for a sync job.
#[derive(Debug, Clone)]
pub struct Request {
    pub kind: SyncKind,
    pub installation_id: Option<i64>,
    pub since: Option<DateTime<Utc>>,
    /// Only these repositories (a backfill after `installation_repositories` added); `None`: all.
    pub repository_ids: Option<Vec<i64>>,
    /// `webhook`, `schedule`, `cli`…: who asked, for the ledger.
    pub requested_by: String,
}

/// Records a sync job, or joins the unfinished one of the same kind and installation: its period
/// widens to the earlier `since` and its repositories to the union (all when either is all).
/// Repositories whose backfill already finished are not gone through again.
pub async fn enqueue<C: ConnectionTrait>(db: &C, request: &Request) -> Result<Enqueued, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "INSERT INTO sync_jobs AS j (kind, installation_id, organization_id, since, \
                repository_ids, requested_by) \
             VALUES ($1, $2, (SELECT id FROM organizations WHERE installation_id = $2 \
                ORDER BY id LIMIT 1), $3, $4, $5) \
             ON CONFLICT (kind, COALESCE(installation_id, 0)) WHERE status IN ('queued', 'running') \
             DO UPDATE SET since = LEAST(j.since, EXCLUDED.since), \
                repository_ids = CASE WHEN j.repository_ids IS NULL OR EXCLUDED.repository_ids IS NULL \
                    THEN NULL ELSE ARRAY(SELECT DISTINCT unnest(j.repository_ids || EXCLUDED.repository_ids) \
                    ORDER BY 1) END, \
                organization_id = COALESCE(j.organization_id, EXCLUDED.organization_id) \
             RETURNING id, (xmax = 0) AS created",
            [
                request.kind.as_str().into(),
                request.installation_id.into(),
                request.since.into(),
                request.repository_ids.clone().into(),
                request.requested_by.clone().into(),
            ],
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("enqueue returned no row".to_owned()))?;
    Ok(Enqueued {
        id: row.try_get("", "id")?,
        created: row.try_get("", "created")?,
    })
}

/// A job leased to this worker for one slice of work.
#[derive(Debug, Clone, FromQueryResult)]
pub struct Claimed {
    pub id: i64,
    pub kind: String,
    pub installation_id: Option<i64>,
    pub organization_id: Option<i64>,
    pub since: Option<DateTime<Utc>>,
    pub repository_ids: Option<Vec<i64>>,
    /// Counting this slice: slices that did not finish cleanly since the last one that did.
    pub attempts: i32,
    pub started_at: Option<DateTime<Utc>>,
}

impl Claimed {
    pub fn kind(&self) -> Option<SyncKind> {
        SyncKind::parse(&self.kind)
    }
}

/// Leases the due job whose installation waited longest for a turn, counting the attempt before
/// any work (a slice that kills its worker still counts). Jobs of a rate-limited scope wait.
/// `only`: lease that job or nothing (the command line's foreground backfill).
pub async fn claim<C: ConnectionTrait>(
    db: &C,
    worker: &str,
    lease: Duration,
    only: Option<i64>,
) -> Result<Option<Claimed>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "UPDATE sync_jobs j SET status = 'running', leased_by = $1, \
                lease_until = now() + make_interval(secs => $2), attempts = j.attempts + 1, \
                started_at = COALESCE(j.started_at, now()), last_slice_at = now() \
             WHERE j.id = (SELECT s.id FROM sync_jobs s \
                WHERE s.status IN ('queued', 'running') AND s.run_after <= now() \
                  AND (s.lease_until IS NULL OR s.lease_until < now()) \
                  AND ($3::bigint IS NULL OR s.id = $3) \
                  AND NOT EXISTS (SELECT 1 FROM github_rate_limits r \
                      WHERE r.scope = CASE WHEN s.installation_id IS NULL THEN 'app' \
                                      ELSE 'installation:' || s.installation_id END \
                        AND r.paused_until > now()) \
                ORDER BY s.last_slice_at NULLS FIRST, s.id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING j.id, j.kind, j.installation_id, j.organization_id, j.since, \
                j.repository_ids, j.attempts, j.started_at",
            [
                worker.to_owned().into(),
                lease.as_secs_f64().into(),
                only.into(),
            ],
        ))
        .await?;
    row.map(|r| Claimed::from_query_result(&r, "")).transpose()
}

/// Extends this worker's lease, in the transaction that writes a page: false when the lease was
/// lost (it ran out and another worker took the job), and the page must not be written.
pub async fn renew<C: ConnectionTrait>(
    db: &C,
    id: i64,
    worker: &str,
    lease: Duration,
) -> Result<bool, DbErr> {
    let result = db
        .execute_raw(stmt(
            "UPDATE sync_jobs SET lease_until = now() + make_interval(secs => $3) \
             WHERE id = $1 AND leased_by = $2 AND status = 'running'",
            [
                id.into(),
                worker.to_owned().into(),
                lease.as_secs_f64().into(),
            ],
        ))
        .await?;
    Ok(result.rows_affected() == 1)
}

/// How a slice ended.
#[derive(Debug, Clone)]
pub enum SliceEnd {
    /// More to do; the slice went well (the attempt count starts again).
    More { run_after: DateTime<Utc> },
    /// A rate limit: wait, without counting it against the job.
    Paused { until: DateTime<Utc> },
    /// Finished.
    Done,
    /// Failed; try again at `retry_at`.
    Failed {
        error: String,
        retry_at: DateTime<Utc>,
    },
    /// Failed for good (a permanent error, out of attempts, or crash-looping).
    Dead {
        reason: crate::dead_letters::Reason,
        error: String,
    },
}

/// Ends this worker's lease on a job. Returns false when the lease was lost (another worker
/// took the job after it ran out): this worker's outcome is then not recorded.
pub async fn release<C: ConnectionTrait>(
    db: &C,
    id: i64,
    worker: &str,
    end: &SliceEnd,
    progress: &serde_json::Value,
) -> Result<bool, DbErr> {
    let (status, run_after, reset, error): (&str, Option<DateTime<Utc>>, bool, Option<&str>) =
        match end {
            SliceEnd::More { run_after } => ("running", Some(*run_after), true, None),
            SliceEnd::Paused { until } => ("running", Some(*until), true, None),
            SliceEnd::Done => ("done", None, true, None),
            SliceEnd::Failed { error, retry_at } => {
                ("running", Some(*retry_at), false, Some(error))
            }
            SliceEnd::Dead { error, .. } => ("dead", None, false, Some(error)),
        };
    let done = matches!(end, SliceEnd::Done | SliceEnd::Dead { .. });
    let result = db
        .execute_raw(stmt(
            "UPDATE sync_jobs SET status = $3, run_after = COALESCE($4, run_after), \
                attempts = CASE WHEN $5 THEN 0 ELSE attempts END, \
                last_error = CASE WHEN $6::text IS NOT NULL THEN $6 WHEN $5 THEN NULL ELSE last_error END, \
                leased_by = NULL, lease_until = NULL, progress = $7, \
                finished_at = CASE WHEN $8 THEN now() END \
             WHERE id = $1 AND leased_by = $2 AND status = 'running'",
            [
                id.into(),
                worker.to_owned().into(),
                status.into(),
                run_after.into(),
                reset.into(),
                error.map(str::to_owned).into(),
                progress.clone().into(),
                done.into(),
            ],
        ))
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Buries a job out of attempts (or failing for good) in the dead-letter queue of its kind, in
/// the transaction that marks it `dead`.
pub async fn bury<C: ConnectionTrait>(
    db: &C,
    id: i64,
    reason: crate::dead_letters::Reason,
    error: &str,
    attempts: i32,
) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "INSERT INTO dead_letters (queue, job, reason, error, attempts, organization_id, sync_job_id) \
         SELECT kind, jsonb_build_object('v', '1', 'kind', kind, 'sync_job_id', id, \
                'installation_id', installation_id), $2, $3, $4, organization_id, id \
         FROM sync_jobs WHERE id = $1 \
         ON CONFLICT (sync_job_id) WHERE retried_at IS NULL DO NOTHING",
        [
            id.into(),
            reason.as_str().into(),
            error.to_owned().into(),
            attempts.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Re-drives dead sync jobs with a fresh attempt budget, from where their checkpoints stand.
/// A job whose kind and installation has another unfinished job is left dead: that one does
/// the work.
pub async fn redrive<C: ConnectionTrait>(db: &C, ids: &[i64]) -> Result<u64, DbErr> {
    Ok(db
        .execute_raw(stmt(
            "UPDATE sync_jobs j SET status = 'running', attempts = 0, run_after = now(), \
                last_error = NULL, finished_at = NULL \
             WHERE j.id = ANY($1) AND j.status = 'dead' \
               AND NOT EXISTS (SELECT 1 FROM sync_jobs o WHERE o.kind = j.kind \
                   AND COALESCE(o.installation_id, 0) = COALESCE(j.installation_id, 0) \
                   AND o.status IN ('queued', 'running'))",
            [ids.to_vec().into()],
        ))
        .await?
        .rows_affected())
}

/// One row of the ledger, as `worker sync list` and the API show it.
#[derive(Debug, Clone, Serialize, FromQueryResult)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobRow {
    pub id: i64,
    pub kind: String,
    pub installation_id: Option<i64>,
    pub organization_id: Option<i64>,
    pub since: Option<DateTime<Utc>>,
    pub status: String,
    pub attempts: i32,
    pub run_after: DateTime<Utc>,
    pub leased_by: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub progress: serde_json::Value,
    pub last_error: Option<String>,
    pub requested_by: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

const JOB_COLUMNS: &str = "id, kind, installation_id, organization_id, since, status, attempts, \
    run_after, leased_by, progress, last_error, requested_by, created_at, started_at, finished_at";

/// The newest jobs, newest first; `organization`: only that organization's.
pub async fn list<C: ConnectionTrait>(
    db: &C,
    organization: Option<i64>,
    limit: u64,
) -> Result<Vec<JobRow>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            &format!(
                "SELECT {JOB_COLUMNS} FROM sync_jobs \
                 WHERE $1::bigint IS NULL OR organization_id = $1 ORDER BY id DESC LIMIT $2"
            ),
            [
                organization.into(),
                i64::try_from(limit).unwrap_or(i64::MAX).into(),
            ],
        ))
        .await?;
    rows.iter()
        .map(|r| JobRow::from_query_result(r, ""))
        .collect()
}

pub async fn get<C: ConnectionTrait>(db: &C, id: i64) -> Result<Option<JobRow>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            &format!("SELECT {JOB_COLUMNS} FROM sync_jobs WHERE id = $1"),
            [id.into()],
        ))
        .await?;
    row.map(|r| JobRow::from_query_result(&r, "")).transpose()
}

/// When the last finished job of `kind` for the installation started: the reconcile's "updated
/// since" (what changed after that start may not have been seen).
pub async fn last_finished_start<C: ConnectionTrait>(
    db: &C,
    kind: SyncKind,
    installation_id: i64,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "SELECT max(started_at) AS at FROM sync_jobs \
             WHERE kind = $1 AND installation_id = $2 AND status = 'done'",
            [kind.as_str().into(), installation_id.into()],
        ))
        .await?;
    Ok(row.and_then(|r| r.try_get("", "at").ok()).flatten())
}

/// The installations the platform serves (active organizations with an installation).
pub async fn active_installations<C: ConnectionTrait>(db: &C) -> Result<Vec<i64>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            "SELECT DISTINCT installation_id FROM organizations \
             WHERE installation_id IS NOT NULL AND status = 'active' ORDER BY 1",
            [],
        ))
        .await?;
    rows.iter()
        .map(|r| r.try_get::<i64>("", "installation_id"))
        .collect()
}

/// Where one stream of one repository stands in a backfill.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct Checkpoint {
    pub repository_id: i64,
    pub stream: String,
    pub next_page: Option<String>,
    pub done: bool,
    pub items: i32,
    pub pages: i32,
}

/// The checkpoint rows of a job, by repository and stream.
pub async fn checkpoints<C: ConnectionTrait>(db: &C, job: i64) -> Result<Vec<Checkpoint>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            "SELECT repository_id, stream, next_page, done, items, pages FROM sync_checkpoints \
             WHERE job_id = $1 ORDER BY repository_id, stream",
            [job.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| Checkpoint::from_query_result(r, ""))
        .collect()
}

/// Adds the streams of `repositories` to a job (rows already there are kept as they stand).
pub async fn plan<C: ConnectionTrait>(
    db: &C,
    job: i64,
    repositories: &[i64],
    streams: &[&str],
) -> Result<(), DbErr> {
    let (mut repos, mut names) = (Vec::new(), Vec::new());
    for repo in repositories {
        for stream in streams {
            repos.push(*repo);
            names.push((*stream).to_owned());
        }
    }
    db.execute_raw(stmt(
        "INSERT INTO sync_checkpoints (job_id, repository_id, stream) \
         SELECT $1, r, s FROM unnest($2::bigint[], $3::text[]) AS x(r, s) \
         ON CONFLICT DO NOTHING",
        [job.into(), repos.into(), names.into()],
    ))
    .await?;
    Ok(())
}

/// Moves a stream past the page just written (in the transaction that wrote its rows):
/// `next_page` `None` means the stream is finished.
pub async fn advance<C: ConnectionTrait>(
    db: &C,
    job: i64,
    repository_id: i64,
    stream: &str,
    next_page: Option<&str>,
    items: usize,
) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "INSERT INTO sync_checkpoints AS c (job_id, repository_id, stream, next_page, done, items, pages) \
         VALUES ($1, $2, $3, $4, $4 IS NULL, $5, 1) \
         ON CONFLICT (job_id, repository_id, stream) DO UPDATE SET next_page = EXCLUDED.next_page, \
            done = EXCLUDED.done, items = c.items + EXCLUDED.items, pages = c.pages + 1, \
            updated_at = now()",
        [
            job.into(),
            repository_id.into(),
            stream.to_owned().into(),
            next_page.map(str::to_owned).into(),
            i32::try_from(items).unwrap_or(i32::MAX).into(),
        ],
    ))
    .await?;
    Ok(())
}

/// A pause of a rate-limit scope, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pause {
    pub until: DateTime<Utc>,
    pub reason: String,
}

/// Records that `scope` may not call GitHub before `until` (keeps a later pause already there).
pub async fn pause<C: ConnectionTrait>(
    db: &C,
    scope: &str,
    until: DateTime<Utc>,
    remaining: Option<i64>,
    reason: &str,
) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "INSERT INTO github_rate_limits AS l (scope, remaining, reset_at, paused_until, reason) \
         VALUES ($1, $2, $3, $3, $4) \
         ON CONFLICT (scope) DO UPDATE SET remaining = EXCLUDED.remaining, \
            reset_at = EXCLUDED.reset_at, reason = EXCLUDED.reason, updated_at = now(), \
            paused_until = GREATEST(l.paused_until, EXCLUDED.paused_until)",
        [
            scope.to_owned().into(),
            remaining.and_then(|r| i32::try_from(r).ok()).into(),
            until.into(),
            reason.to_owned().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// The pause in force for `scope`, if any.
pub async fn paused<C: ConnectionTrait>(db: &C, scope: &str) -> Result<Option<Pause>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "SELECT paused_until, reason FROM github_rate_limits \
             WHERE scope = $1 AND paused_until > now()",
            [scope.to_owned().into()],
        ))
        .await?;
    row.map(|r| {
        Ok(Pause {
            until: r.try_get("", "paused_until")?,
            reason: r
                .try_get::<Option<String>>("", "reason")?
                .unwrap_or_default(),
        })
    })
    .transpose()
}

pub async fn etag<C: ConnectionTrait>(
    db: &C,
    scope: &str,
    path: &str,
) -> Result<Option<String>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "SELECT etag FROM github_etags WHERE scope = $1 AND path = $2",
            [scope.to_owned().into(), path.to_owned().into()],
        ))
        .await?;
    row.map(|r| r.try_get("", "etag")).transpose()
}

/// Remembers a listing's ETag once what it listed has been written.
pub async fn set_etag<C: ConnectionTrait>(
    db: &C,
    scope: &str,
    path: &str,
    etag: &str,
) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "INSERT INTO github_etags (scope, path, etag) VALUES ($1, $2, $3) \
         ON CONFLICT (scope, path) DO UPDATE SET etag = EXCLUDED.etag, updated_at = now()",
        [
            scope.to_owned().into(),
            path.to_owned().into(),
            etag.to_owned().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Of these GUIDs, those that are neither stored as deliveries nor already asked for again.
pub async fn unseen_guids<C: ConnectionTrait>(
    db: &C,
    guids: &[String],
) -> Result<Vec<String>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            "SELECT g FROM unnest($1::text[]) AS g \
             WHERE NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.delivery_id = g) \
               AND NOT EXISTS (SELECT 1 FROM github_redeliveries r WHERE r.guid = g)",
            [guids.to_vec().into()],
        ))
        .await?;
    rows.iter().map(|r| r.try_get::<String>("", "g")).collect()
}

/// Claims the redelivery of `guid` before asking GitHub: true when this caller may ask.
/// A claim left `requesting` by a crash is taken over after 10 minutes.
pub async fn claim_redelivery<C: ConnectionTrait>(
    db: &C,
    guid: &str,
    hook_delivery_id: i64,
    event: &str,
) -> Result<bool, DbErr> {
    let result = db
        .execute_raw(stmt(
            "INSERT INTO github_redeliveries AS r (guid, hook_delivery_id, event, status) \
             VALUES ($1, $2, $3, 'requesting') \
             ON CONFLICT (guid) DO UPDATE SET requested_at = now(), hook_delivery_id = EXCLUDED.hook_delivery_id \
             WHERE r.status = 'requesting' AND r.requested_at < now() - interval '10 minutes'",
            [
                guid.to_owned().into(),
                hook_delivery_id.into(),
                event.to_owned().into(),
            ],
        ))
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Records how the request went: GitHub `accepted` it; or it did not, and the claim is dropped
/// so a later run asks again.
pub async fn finish_redelivery<C: ConnectionTrait>(
    db: &C,
    guid: &str,
    accepted: bool,
) -> Result<(), DbErr> {
    let sql = if accepted {
        "UPDATE github_redeliveries SET status = 'requested' WHERE guid = $1"
    } else {
        "DELETE FROM github_redeliveries WHERE guid = $1 AND status = 'requesting'"
    };
    db.execute_raw(stmt(sql, [guid.to_owned().into()])).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_scopes_name_the_token() {
        for kind in SyncKind::ALL {
            assert_eq!(SyncKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(SyncKind::parse("sync"), None);
        assert_eq!(scope_of(Some(7)), "installation:7");
        assert_eq!(scope_of(None), "app");
    }
}
