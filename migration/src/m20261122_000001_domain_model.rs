//! The domain model the worker pool writes (organizations, repositories, people, pull requests,
//! reviews, commits, deployments, workflow runs) and the dead-letter queue.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

// Plain SQL: keys, checks and partial indexes are what this migration is about.
// Every table carries `organization_id` (tenant isolation builds on it) and is keyed by GitHub's
// id where GitHub has one. `synced_at` is our clock; every other timestamp is GitHub's.
const UP: &str = r#"
CREATE TABLE organizations (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name              TEXT        NOT NULL,
    github_account_id BIGINT,
    github_login      TEXT,
    account_type      TEXT,
    installation_id   BIGINT,
    status            TEXT        NOT NULL DEFAULT 'active',
    -- GitHub's time of the installation event that set `status` (newest event wins).
    status_changed_at TIMESTAMPTZ,
    time_zone         TEXT        NOT NULL DEFAULT 'UTC',
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    synced_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT organizations_status_check CHECK (status IN ('active', 'suspended', 'removed'))
);
CREATE UNIQUE INDEX organizations_github_account_key ON organizations (github_account_id)
    WHERE github_account_id IS NOT NULL;
CREATE INDEX organizations_installation_idx ON organizations (installation_id);

CREATE TABLE repositories (
    github_id         BIGINT PRIMARY KEY,
    organization_id   BIGINT      NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name              TEXT        NOT NULL,
    full_name         TEXT        NOT NULL,
    private           BOOLEAN     NOT NULL DEFAULT false,
    archived          BOOLEAN     NOT NULL DEFAULT false,
    default_branch    TEXT,
    -- GitHub's `updated_at` of the snapshot the columns above come from.
    github_updated_at TIMESTAMPTZ,
    -- Installation membership: the newest `added` and `removed` times; removed when
    -- removed_at >= installed_at.
    installed_at      TIMESTAMPTZ,
    removed_at        TIMESTAMPTZ,
    synced_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX repositories_organization_idx ON repositories (organization_id);

CREATE TABLE github_users (
    organization_id BIGINT      NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    github_id       BIGINT      NOT NULL,
    login           TEXT        NOT NULL,
    user_type       TEXT        NOT NULL DEFAULT 'User',
    is_bot          BOOLEAN     NOT NULL DEFAULT false,
    first_seen_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, github_id)
);
CREATE INDEX github_users_login_idx ON github_users (organization_id, lower(login));

CREATE TABLE pull_requests (
    github_id           BIGINT PRIMARY KEY,
    organization_id     BIGINT      NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    repository_id       BIGINT      NOT NULL REFERENCES repositories (github_id) ON DELETE CASCADE,
    number              INTEGER     NOT NULL,
    author_id           BIGINT,
    title               TEXT        NOT NULL,
    state               TEXT        NOT NULL,
    draft               BOOLEAN     NOT NULL DEFAULT false,
    created_at          TIMESTAMPTZ NOT NULL,
    ready_for_review_at TIMESTAMPTZ,
    first_review_at     TIMESTAMPTZ,
    first_approved_at   TIMESTAMPTZ,
    merged_at           TIMESTAMPTZ,
    closed_at           TIMESTAMPTZ,
    merged_by_id        BIGINT,
    merge_commit_sha    TEXT,
    head_sha            TEXT        NOT NULL,
    head_ref            TEXT        NOT NULL,
    base_ref            TEXT        NOT NULL,
    additions           INTEGER,
    deletions           INTEGER,
    changed_files       INTEGER,
    commits_count       INTEGER,
    -- GitHub's `updated_at` of the snapshot the mutable columns come from.
    updated_at          TIMESTAMPTZ NOT NULL,
    synced_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pull_requests_state_check CHECK (state IN ('open', 'closed', 'merged')),
    CONSTRAINT pull_requests_number_key UNIQUE (repository_id, number)
);
CREATE INDEX pull_requests_organization_idx ON pull_requests (organization_id, merged_at);
CREATE INDEX pull_requests_open_idx ON pull_requests (organization_id) WHERE state = 'open';

CREATE TABLE reviews (
    github_id       BIGINT PRIMARY KEY,
    organization_id BIGINT      NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    repository_id   BIGINT      NOT NULL,
    pull_request_id BIGINT      NOT NULL,
    reviewer_id     BIGINT,
    state           TEXT        NOT NULL,
    -- True once any delivery showed this review approved (a later dismissal does not undo
    -- that the approval happened).
    approved        BOOLEAN     NOT NULL DEFAULT false,
    submitted_at    TIMESTAMPTZ,
    commit_id       TEXT,
    synced_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT reviews_state_check
        CHECK (state IN ('pending', 'commented', 'changes_requested', 'approved', 'dismissed'))
);
CREATE INDEX reviews_pull_request_idx ON reviews (pull_request_id);

CREATE TABLE commits (
    repository_id            BIGINT      NOT NULL REFERENCES repositories (github_id) ON DELETE CASCADE,
    sha                      TEXT        NOT NULL,
    organization_id          BIGINT      NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    author_name              TEXT,
    author_email             TEXT,
    author_login             TEXT,
    committer_login          TEXT,
    message_headline         TEXT        NOT NULL DEFAULT '',
    authored_at              TIMESTAMPTZ,
    -- Branches this commit was pushed to (sorted, without `refs/heads/`).
    refs                     TEXT[]      NOT NULL DEFAULT '{}',
    on_default_branch        BOOLEAN     NOT NULL DEFAULT false,
    -- The earliest push that put it on the default branch, and its place in that push
    -- (0 = oldest): the default-branch history as recorded from pushes.
    default_branch_pushed_at TIMESTAMPTZ,
    push_position            INTEGER,
    synced_at                TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (repository_id, sha)
);
CREATE INDEX commits_default_branch_idx ON commits (repository_id, default_branch_pushed_at, push_position)
    WHERE on_default_branch;

CREATE TABLE deployments (
    github_id              BIGINT PRIMARY KEY,
    organization_id        BIGINT      NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    repository_id          BIGINT      NOT NULL REFERENCES repositories (github_id) ON DELETE CASCADE,
    sha                    TEXT        NOT NULL,
    ref                    TEXT        NOT NULL,
    task                   TEXT        NOT NULL DEFAULT 'deploy',
    environment            TEXT        NOT NULL,
    production_environment BOOLEAN,
    creator_id             BIGINT,
    created_at             TIMESTAMPTZ NOT NULL,
    updated_at             TIMESTAMPTZ NOT NULL,
    -- The newest status (by GitHub's created_at, then id), kept in step with deployment_statuses.
    latest_state           TEXT,
    latest_status_at       TIMESTAMPTZ,
    synced_at              TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX deployments_repository_idx ON deployments (repository_id, environment, created_at);
CREATE INDEX deployments_organization_idx ON deployments (organization_id, created_at);

CREATE TABLE deployment_statuses (
    github_id       BIGINT PRIMARY KEY,
    organization_id BIGINT      NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    deployment_id   BIGINT      NOT NULL REFERENCES deployments (github_id) ON DELETE CASCADE,
    state           TEXT        NOT NULL,
    environment     TEXT,
    creator_id      BIGINT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    synced_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX deployment_statuses_deployment_idx ON deployment_statuses (deployment_id, created_at);

-- GitHub Actions workflow runs and check suites (kind), both keyed by GitHub's id.
CREATE TABLE workflow_runs (
    kind            TEXT        NOT NULL,
    github_id       BIGINT      NOT NULL,
    organization_id BIGINT      NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    repository_id   BIGINT      NOT NULL REFERENCES repositories (github_id) ON DELETE CASCADE,
    name            TEXT,
    workflow_id     BIGINT,
    head_sha        TEXT        NOT NULL,
    head_branch     TEXT,
    event           TEXT,
    status          TEXT,
    conclusion      TEXT,
    run_number      INTEGER,
    run_attempt     INTEGER,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    run_started_at  TIMESTAMPTZ,
    synced_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, github_id),
    CONSTRAINT workflow_runs_kind_check CHECK (kind IN ('workflow_run', 'check_suite'))
);
CREATE INDEX workflow_runs_repository_idx ON workflow_runs (repository_id, head_sha);

-- Jobs given up on: a permanent error, or out of attempts. One open letter per delivery;
-- `retried_at` closes it when an operator re-drives it.
CREATE TABLE dead_letters (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue       TEXT        NOT NULL,
    delivery_id TEXT        REFERENCES webhook_deliveries (delivery_id) ON DELETE CASCADE,
    job         JSONB       NOT NULL,
    reason      TEXT        NOT NULL,
    error       TEXT        NOT NULL,
    attempts    INTEGER     NOT NULL,
    dead_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    retried_at  TIMESTAMPTZ,
    CONSTRAINT dead_letters_reason_check CHECK (reason IN ('permanent', 'exhausted', 'interrupted'))
);
CREATE INDEX dead_letters_open_idx ON dead_letters (queue, dead_at) WHERE retried_at IS NULL;
CREATE UNIQUE INDEX dead_letters_open_delivery_key ON dead_letters (delivery_id)
    WHERE retried_at IS NULL;
CREATE INDEX dead_letters_dead_at_idx ON dead_letters (dead_at);

-- The relay picks failed deliveries up again once their backoff is over.
CREATE INDEX webhook_deliveries_retry_idx ON webhook_deliveries (next_attempt_at)
    WHERE status = 'failed';
"#;

const DOWN: &str = r#"
DROP INDEX webhook_deliveries_retry_idx;
DROP TABLE dead_letters, workflow_runs, deployment_statuses, deployments, commits, reviews,
    pull_requests, github_users, repositories, organizations;
"#;

sql_migration!();
