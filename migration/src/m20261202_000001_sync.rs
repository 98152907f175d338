//! The sync side's bookkeeping: the sync job ledger with per-repository checkpoints, GitHub rate
//! limits and ETags shared by every worker replica, requested redeliveries, and organization API
//! keys with the deployments pushed through them.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
-- The sync ledger: one row per syncInstallation, reconcile or redeliverFailed run. Workers lease a
-- row for one slice of work at a time (`lease_until`), so a crashed worker's job is taken up again
-- when its lease runs out, and installations take turns (`last_slice_at`).
CREATE TABLE sync_jobs (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            TEXT        NOT NULL,
    installation_id BIGINT,
    organization_id BIGINT      REFERENCES organizations (id) ON DELETE CASCADE,
    -- The start of the period a backfill covers; the reconcile's "updated since".
    since           TIMESTAMPTZ,
    -- The repositories a backfill covers; NULL: all of the installation's.
    repository_ids  BIGINT[],
    status          TEXT        NOT NULL DEFAULT 'queued',
    attempts        INTEGER     NOT NULL DEFAULT 0,
    run_after       TIMESTAMPTZ NOT NULL DEFAULT now(),
    leased_by       TEXT,
    lease_until     TIMESTAMPTZ,
    last_slice_at   TIMESTAMPTZ,
    progress        JSONB       NOT NULL DEFAULT '{}',
    last_error      TEXT,
    requested_by    TEXT        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at      TIMESTAMPTZ,
    finished_at     TIMESTAMPTZ,
    CONSTRAINT sync_jobs_kind_check CHECK (kind IN ('syncInstallation', 'reconcile', 'redeliverFailed')),
    CONSTRAINT sync_jobs_status_check CHECK (status IN ('queued', 'running', 'done', 'dead')),
    CONSTRAINT sync_jobs_installation_check
        CHECK ((kind = 'redeliverFailed') = (installation_id IS NULL))
);
-- At most one unfinished job per kind and installation: asking again joins the one under way.
CREATE UNIQUE INDEX sync_jobs_active_key ON sync_jobs (kind, COALESCE(installation_id, 0))
    WHERE status IN ('queued', 'running');
CREATE INDEX sync_jobs_due_idx ON sync_jobs (run_after) WHERE status IN ('queued', 'running');
CREATE INDEX sync_jobs_installation_idx ON sync_jobs (installation_id, kind, finished_at);

-- Where a backfill stands, per repository and stream (`pulls`, `deployments`, `issues`; the
-- installation's repository list is repository 0, stream `repositories`). A page's rows and the
-- step past it commit together, so a restarted job neither skips nor rewrites a page.
CREATE TABLE sync_checkpoints (
    job_id        BIGINT      NOT NULL REFERENCES sync_jobs (id) ON DELETE CASCADE,
    repository_id BIGINT      NOT NULL,
    stream        TEXT        NOT NULL,
    -- Path and query of the next page to fetch; NULL before the first.
    next_page     TEXT,
    done          BOOLEAN     NOT NULL DEFAULT false,
    items         INTEGER     NOT NULL DEFAULT 0,
    pages         INTEGER     NOT NULL DEFAULT 0,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, repository_id, stream)
);

-- GitHub's rate limits, per installation token (`installation:<id>`) and for the App's own JWT
-- (`app`): every replica stops calling until `paused_until`. Platform bookkeeping, not tenant data.
CREATE TABLE github_rate_limits (
    scope        TEXT PRIMARY KEY,
    remaining    INTEGER,
    reset_at     TIMESTAMPTZ,
    paused_until TIMESTAMPTZ,
    reason       TEXT,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- ETags of listings the reconcile asks for again and again: a 304 costs no rate limit.
CREATE TABLE github_etags (
    scope      TEXT        NOT NULL,
    path       TEXT        NOT NULL,
    etag       TEXT        NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, path)
);

-- Failed webhook deliveries DevPulse asked GitHub to send again, by GUID (= X-GitHub-Delivery):
-- claimed before the request, so each is asked for once, whichever replica runs the job.
CREATE TABLE github_redeliveries (
    guid             TEXT PRIMARY KEY,
    hook_delivery_id BIGINT      NOT NULL,
    event            TEXT,
    status           TEXT        NOT NULL,
    error            TEXT,
    requested_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT github_redeliveries_status_check CHECK (status IN ('requesting', 'requested'))
);

-- Organization API keys (`dpk_…`) for machine clients such as a deploy pipeline; only hashes.
CREATE TABLE api_keys (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id BIGINT      NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            TEXT        NOT NULL,
    token_hash      BYTEA       NOT NULL UNIQUE,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at    TIMESTAMPTZ,
    revoked_at      TIMESTAMPTZ
);
CREATE INDEX api_keys_organization_idx ON api_keys (organization_id);

-- Deployments made outside GitHub, by the caller's own id. They live in `deployments` like any
-- other, under negative ids (GitHub's are positive) drawn from `external_deployment_seq`.
CREATE SEQUENCE external_deployment_seq;
CREATE TABLE external_deployments (
    organization_id BIGINT      NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    external_id     TEXT        NOT NULL,
    deployment_id   BIGINT      NOT NULL UNIQUE,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, external_id)
);

-- A sync job out of attempts is a dead letter too (queue = its kind), re-driven like the others.
ALTER TABLE dead_letters ADD COLUMN sync_job_id BIGINT REFERENCES sync_jobs (id) ON DELETE CASCADE;
CREATE UNIQUE INDEX dead_letters_open_sync_job_key ON dead_letters (sync_job_id)
    WHERE retried_at IS NULL;

DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['sync_jobs', 'api_keys', 'external_deployments']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY tenant ON %I
            USING (organization_id = NULLIF(current_setting('devpulse.organization_id', true), '')::bigint)
            WITH CHECK (organization_id = NULLIF(current_setting('devpulse.organization_id', true), '')::bigint)$p$, t);
    END LOOP;
END $$;
-- Tenant transactions never touch the platform's GitHub bookkeeping.
REVOKE ALL ON github_rate_limits, github_etags, github_redeliveries, sync_checkpoints FROM devpulse_app;
"#;

const DOWN: &str = r#"
ALTER TABLE dead_letters DROP COLUMN sync_job_id;
DROP TABLE external_deployments, api_keys, github_redeliveries, github_etags, github_rate_limits,
    sync_checkpoints, sync_jobs;
DROP SEQUENCE external_deployment_seq;
"#;

sql_migration!();
