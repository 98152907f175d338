//! Precomputed analytics: per-PR and per-deployment facts, daily metrics, DORA, reliability
//! scores, health alerts and their notifications; incidents and review comments as inputs.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
-- Thresholds, patterns and weights of one organization's metrics (keys and defaults in
-- jobs::analytics::Settings, documented in docs/METRICS.md); the notification webhook.
ALTER TABLE organizations
    ADD COLUMN analytics_settings  JSONB NOT NULL DEFAULT '{}',
    ADD COLUMN notification_url    TEXT,
    ADD COLUMN notification_secret TEXT,
    ADD CONSTRAINT organizations_analytics_settings_check
        CHECK (jsonb_typeof(analytics_settings) = 'object');

-- Kept by the writers: the earliest author time of the PR's head-branch commits, and what a
-- revert PR says it reverts (head branch `revert-<n>-…`, body `Reverts owner/repo#N`, title
-- `Revert "…"`).
ALTER TABLE pull_requests
    ADD COLUMN first_commit_at    TIMESTAMPTZ,
    ADD COLUMN reverts_repository TEXT,
    ADD COLUMN reverts_number     INTEGER,
    ADD COLUMN reverts_title      TEXT;
CREATE INDEX pull_requests_head_ref_idx ON pull_requests (repository_id, head_ref);
CREATE INDEX pull_requests_created_idx ON pull_requests (organization_id, created_at);
CREATE INDEX pull_requests_closed_idx ON pull_requests (organization_id, closed_at);
CREATE INDEX pull_requests_first_review_idx ON pull_requests (organization_id, first_review_at);
CREATE INDEX commits_refs_idx ON commits USING gin (refs);
CREATE INDEX commits_authored_idx ON commits (organization_id, authored_at) WHERE on_default_branch;
CREATE INDEX reviews_submitted_idx ON reviews (organization_id, submitted_at);
CREATE INDEX pull_requests_reverts_idx ON pull_requests (organization_id, merged_at)
    WHERE reverts_number IS NOT NULL OR reverts_title IS NOT NULL;

CREATE TABLE review_comments (
    github_id       BIGINT PRIMARY KEY,
    organization_id BIGINT      NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    repository_id   BIGINT      NOT NULL,
    pull_request_id BIGINT      NOT NULL,
    review_id       BIGINT,
    author_id       BIGINT,
    created_at      TIMESTAMPTZ NOT NULL,
    synced_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX review_comments_created_idx ON review_comments (organization_id, created_at);

-- Every issue seen in `issues` events (the newest snapshot); an issue is an incident when one
-- of its labels matches the organization's incident pattern, so changing the pattern needs no
-- re-import.
CREATE TABLE incidents (
    github_id       BIGINT PRIMARY KEY,
    organization_id BIGINT      NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    repository_id   BIGINT      NOT NULL REFERENCES repositories (github_id) ON DELETE CASCADE,
    number          INTEGER     NOT NULL,
    title           TEXT        NOT NULL,
    labels          TEXT[]      NOT NULL DEFAULT '{}',
    state           TEXT        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    closed_at       TIMESTAMPTZ,
    updated_at      TIMESTAMPTZ NOT NULL,
    deleted         BOOLEAN     NOT NULL DEFAULT false,
    synced_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT incidents_state_check CHECK (state IN ('open', 'closed'))
);
CREATE INDEX incidents_repository_idx ON incidents (repository_id, created_at);

-- (organization, local day) pairs whose metrics are out of date. Append-only marks (repeats
-- allowed): a unique key would make every writer wait for a drain holding the same key.
CREATE TABLE analytics_dirty (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id BIGINT      NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    day             DATE        NOT NULL,
    requested_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX analytics_dirty_organization_idx ON analytics_dirty (organization_id, id);

-- Per pull request: the times and durations every PR metric is built from (seconds).
CREATE TABLE pr_metrics (
    pull_request_id BIGINT PRIMARY KEY,
    org_id          BIGINT      NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    repository_id   BIGINT      NOT NULL,
    repository      TEXT        NOT NULL,
    author_login    TEXT,
    author_is_bot   BOOLEAN     NOT NULL,
    state           TEXT        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    ready_at        TIMESTAMPTZ,
    first_commit_at TIMESTAMPTZ,
    first_review_at TIMESTAMPTZ,
    merged_at       TIMESTAMPTZ,
    closed_at       TIMESTAMPTZ,
    deployment_id   BIGINT,
    deployed_at     TIMESTAMPTZ,
    additions       INTEGER,
    deletions       INTEGER,
    coding_s        BIGINT,
    pickup_s        BIGINT,
    review_s        BIGINT,
    cycle_s         BIGINT,
    deploy_s        BIGINT,
    lead_s          BIGINT,
    created_day     DATE        NOT NULL,
    merged_day      DATE,
    closed_day      DATE,
    first_review_day DATE,
    deployed_day    DATE
);
CREATE INDEX pr_metrics_created_idx ON pr_metrics (org_id, created_day);
CREATE INDEX pr_metrics_merged_idx ON pr_metrics (org_id, merged_day);
CREATE INDEX pr_metrics_closed_idx ON pr_metrics (org_id, closed_day);
CREATE INDEX pr_metrics_reviewed_idx ON pr_metrics (org_id, first_review_day);
CREATE INDEX pr_metrics_deployed_idx ON pr_metrics (org_id, deployed_day);
CREATE INDEX pr_metrics_deployment_idx ON pr_metrics (deployment_id);
CREATE INDEX pr_metrics_undeployed_idx ON pr_metrics (repository_id, merged_at)
    WHERE deployed_at IS NULL AND merged_at IS NOT NULL;
CREATE INDEX pr_metrics_open_idx ON pr_metrics (org_id) WHERE state = 'open';
CREATE INDEX pr_metrics_repository_deployed_idx ON pr_metrics (repository_id, deployed_at);

-- Per finished production deployment: its outcome and, for a successful one, whether it
-- failed as a change and when it recovered.
CREATE TABLE deployment_outcomes (
    deployment_id   BIGINT PRIMARY KEY,
    org_id          BIGINT      NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    repository_id   BIGINT      NOT NULL,
    repository      TEXT        NOT NULL,
    environment     TEXT        NOT NULL,
    sha             TEXT        NOT NULL,
    outcome         TEXT        NOT NULL,
    finished_at     TIMESTAMPTZ NOT NULL,
    day             DATE        NOT NULL,
    change_failed   BOOLEAN     NOT NULL DEFAULT false,
    failure_cause   TEXT,
    recovered_at    TIMESTAMPTZ,
    recovery_s      BIGINT,
    CONSTRAINT deployment_outcomes_outcome_check CHECK (outcome IN ('success', 'failure', 'error')),
    CONSTRAINT deployment_outcomes_cause_check
        CHECK (failure_cause IN ('revert', 'incident', 'rollback'))
);
CREATE INDEX deployment_outcomes_day_idx ON deployment_outcomes (org_id, day);
CREATE INDEX deployment_outcomes_repository_idx ON deployment_outcomes (repository_id, finished_at);

CREATE TABLE daily_metrics (
    org_id              BIGINT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    day                 DATE   NOT NULL,
    scope               TEXT   NOT NULL,
    scope_key           TEXT   NOT NULL,
    prs_opened          INTEGER NOT NULL DEFAULT 0,
    prs_merged          INTEGER NOT NULL DEFAULT 0,
    prs_closed_unmerged INTEGER NOT NULL DEFAULT 0,
    reviews_given       INTEGER NOT NULL DEFAULT 0,
    review_comments     INTEGER NOT NULL DEFAULT 0,
    commits             INTEGER NOT NULL DEFAULT 0,
    additions           BIGINT  NOT NULL DEFAULT 0,
    deletions           BIGINT  NOT NULL DEFAULT 0,
    cycle_time_p50_s    BIGINT,
    cycle_time_p75_s    BIGINT,
    cycle_time_p90_s    BIGINT,
    coding_time_p50_s   BIGINT,
    pickup_time_p50_s   BIGINT,
    review_time_p50_s   BIGINT,
    deploy_time_p50_s   BIGINT,
    deployments         INTEGER NOT NULL DEFAULT 0,
    failed_deployments  INTEGER NOT NULL DEFAULT 0,
    computed_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, scope, scope_key, day),
    CONSTRAINT daily_metrics_scope_check CHECK (scope IN ('org', 'team', 'repository', 'user'))
);
CREATE INDEX daily_metrics_day_idx ON daily_metrics (org_id, day);

CREATE TABLE dora_metrics (
    org_id               BIGINT  NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    repository           TEXT,
    day                  DATE    NOT NULL,
    window_days          INTEGER NOT NULL,
    deployments          INTEGER NOT NULL,
    deploy_days          INTEGER NOT NULL,
    deploy_days_per_week DOUBLE PRECISION NOT NULL,
    band                 TEXT    NOT NULL,
    lead_time_p50_s      BIGINT,
    lead_time_count      INTEGER NOT NULL,
    change_failure_rate  DOUBLE PRECISION,
    failed_deployments   INTEGER NOT NULL,
    recovery_time_p50_s  BIGINT,
    recovery_count       INTEGER NOT NULL,
    unrecovered_count    INTEGER NOT NULL,
    computed_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT dora_metrics_window_check CHECK (window_days IN (7, 28)),
    CONSTRAINT dora_metrics_band_check CHECK (band IN ('elite', 'high', 'medium', 'low'))
);
CREATE UNIQUE INDEX dora_metrics_key ON dora_metrics (org_id, COALESCE(repository, ''), window_days, day);
CREATE INDEX dora_metrics_day_idx ON dora_metrics (org_id, day);

CREATE TABLE reliability_scores (
    org_id                 BIGINT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    scope                  TEXT   NOT NULL,
    scope_key              TEXT   NOT NULL,
    -- The Monday of the ISO week, and its name (2026-W47).
    week                   DATE   NOT NULL,
    iso_week               TEXT   NOT NULL,
    score                  DOUBLE PRECISION,
    flow_predictability    DOUBLE PRECISION,
    review_responsiveness  DOUBLE PRECISION,
    change_stability       DOUBLE PRECISION,
    wip_hygiene            DOUBLE PRECISION,
    prs_merged             INTEGER NOT NULL,
    prs_merged_on_target   INTEGER NOT NULL,
    prs_first_reviewed     INTEGER NOT NULL,
    prs_picked_up_in_sla   INTEGER NOT NULL,
    deployments            INTEGER NOT NULL,
    failed_deployments     INTEGER NOT NULL,
    open_prs               INTEGER NOT NULL,
    idle_open_prs          INTEGER NOT NULL,
    weights                JSONB  NOT NULL,
    computed_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, scope, scope_key, week),
    CONSTRAINT reliability_scores_scope_check CHECK (scope IN ('org', 'team'))
);

CREATE TABLE health_alerts (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id          BIGINT      NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    kind            TEXT        NOT NULL,
    -- What it is about: `repo#number`, `repo:environment`, a user id, `dead_letters`.
    subject         TEXT        NOT NULL,
    -- The person it concerns, when there is one (inactivity: only they and their managers see it).
    user_id         BIGINT,
    message         TEXT        NOT NULL,
    details         JSONB       NOT NULL DEFAULT '{}',
    opened_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at     TIMESTAMPTZ,
    acknowledged_at TIMESTAMPTZ,
    acknowledged_by BIGINT,
    CONSTRAINT health_alerts_kind_check CHECK (kind IN ('stale_pr', 'unreviewed_pr',
        'failing_deployments', 'forgotten_clock_out', 'inactivity', 'dead_letters'))
);
CREATE UNIQUE INDEX health_alerts_open_key ON health_alerts (org_id, kind, subject)
    WHERE resolved_at IS NULL;
CREATE INDEX health_alerts_org_idx ON health_alerts (org_id, opened_at);

-- Outgoing notifications: written with the alert change that causes them, sent by workers
-- with the platform's retries; out of attempts they become dead letters.
CREATE TABLE notifications (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id          BIGINT      NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    alert_id        BIGINT      REFERENCES health_alerts (id) ON DELETE CASCADE,
    body            JSONB       NOT NULL,
    status          TEXT        NOT NULL DEFAULT 'pending',
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at         TIMESTAMPTZ,
    CONSTRAINT notifications_status_check CHECK (status IN ('pending', 'sent', 'dead'))
);
CREATE INDEX notifications_due_idx ON notifications (next_attempt_at) WHERE status = 'pending';

ALTER TABLE dead_letters ADD COLUMN notification_id BIGINT REFERENCES notifications (id) ON DELETE CASCADE;
CREATE UNIQUE INDEX dead_letters_open_notification_key ON dead_letters (notification_id)
    WHERE retried_at IS NULL;

DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['review_comments', 'incidents', 'analytics_dirty'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY tenant ON %I
            USING (organization_id = NULLIF(current_setting('devpulse.organization_id', true), '')::bigint)
            WITH CHECK (organization_id = NULLIF(current_setting('devpulse.organization_id', true), '')::bigint)$p$, t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['pr_metrics', 'deployment_outcomes', 'daily_metrics', 'dora_metrics',
        'reliability_scores', 'health_alerts', 'notifications'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY tenant ON %I
            USING (org_id = NULLIF(current_setting('devpulse.organization_id', true), '')::bigint)
            WITH CHECK (org_id = NULLIF(current_setting('devpulse.organization_id', true), '')::bigint)$p$, t);
    END LOOP;
END $$;
"#;

const DOWN: &str = r#"
DROP INDEX dead_letters_open_notification_key;
ALTER TABLE dead_letters DROP COLUMN notification_id;
DROP TABLE notifications, health_alerts, reliability_scores, dora_metrics, daily_metrics,
    deployment_outcomes, pr_metrics, analytics_dirty, incidents, review_comments;
DROP INDEX pull_requests_first_review_idx, pull_requests_reverts_idx, reviews_submitted_idx, commits_authored_idx, commits_refs_idx, pull_requests_closed_idx,
    pull_requests_created_idx, pull_requests_head_ref_idx;
ALTER TABLE pull_requests DROP COLUMN first_commit_at, DROP COLUMN reverts_repository,
    DROP COLUMN reverts_number, DROP COLUMN reverts_title;
ALTER TABLE organizations DROP CONSTRAINT organizations_analytics_settings_check,
    DROP COLUMN analytics_settings, DROP COLUMN notification_url, DROP COLUMN notification_secret;
"#;

sql_migration!();
