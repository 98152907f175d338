//! People, access and attendance: users, teams, sign-in tokens, device tokens, work sessions,
//! attendance summaries — and row-level security on every tenant table.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

// Child rows reference `(organization_id, id)` of their parent, so a row can never point at a
// user or team of another organization, whatever the application does.
const UP: &str = r#"
ALTER TABLE organizations
    ADD COLUMN session_limit_seconds INTEGER NOT NULL DEFAULT 43200,
    ADD COLUMN daily_target_seconds  INTEGER NOT NULL DEFAULT 28800,
    ADD CONSTRAINT organizations_session_limit_check
        CHECK (session_limit_seconds BETWEEN 3600 AND 172800),
    ADD CONSTRAINT organizations_daily_target_check
        CHECK (daily_target_seconds BETWEEN 0 AND 86400);

-- Dead letters belong to the organization of their delivery's installation (when known), so an
-- organization's admins see their own and nobody else's.
ALTER TABLE dead_letters ADD COLUMN organization_id BIGINT REFERENCES organizations (id) ON DELETE CASCADE;
CREATE INDEX dead_letters_organization_idx ON dead_letters (organization_id) WHERE retried_at IS NULL;

CREATE TABLE users (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id BIGINT      NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email           TEXT        NOT NULL,
    display_name    TEXT        NOT NULL,
    role            TEXT        NOT NULL,
    -- argon2id PHC string; NULL until an invite is accepted.
    password_hash   TEXT,
    github_id       BIGINT,
    github_login    TEXT,
    active          BOOLEAN     NOT NULL DEFAULT true,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT users_role_check CHECK (role IN ('owner', 'admin', 'manager', 'developer')),
    CONSTRAINT users_email_check CHECK (email = lower(email) AND position('@' in email) > 1),
    CONSTRAINT users_organization_id_key UNIQUE (organization_id, id)
);
-- One account per email address across the deployment: sign-in takes only email and password.
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE UNIQUE INDEX users_github_key ON users (organization_id, github_id) WHERE github_id IS NOT NULL;

CREATE TABLE teams (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id BIGINT      NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            TEXT        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT teams_organization_id_key UNIQUE (organization_id, id)
);
CREATE UNIQUE INDEX teams_name_key ON teams (organization_id, lower(name));

CREATE TABLE team_members (
    organization_id BIGINT  NOT NULL,
    team_id         BIGINT  NOT NULL,
    user_id         BIGINT  NOT NULL,
    -- A manager of the team reads its members' data.
    is_manager      BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (team_id, user_id),
    FOREIGN KEY (organization_id, team_id) REFERENCES teams (organization_id, id) ON DELETE CASCADE,
    FOREIGN KEY (organization_id, user_id) REFERENCES users (organization_id, id) ON DELETE CASCADE
);
CREATE INDEX team_members_user_idx ON team_members (user_id);

CREATE TABLE invites (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id BIGINT      NOT NULL,
    user_id         BIGINT      NOT NULL,
    token_hash      BYTEA       NOT NULL UNIQUE,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at      TIMESTAMPTZ NOT NULL,
    used_at         TIMESTAMPTZ,
    FOREIGN KEY (organization_id, user_id) REFERENCES users (organization_id, id) ON DELETE CASCADE
);

-- Rotating refresh tokens: each use marks the row used and issues the next one of its family;
-- a used token presented again revokes the family.
CREATE TABLE refresh_tokens (
    id              UUID        PRIMARY KEY,
    family_id       UUID        NOT NULL,
    organization_id BIGINT      NOT NULL,
    user_id         BIGINT      NOT NULL,
    token_hash      BYTEA       NOT NULL UNIQUE,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at      TIMESTAMPTZ NOT NULL,
    used_at         TIMESTAMPTZ,
    revoked_at      TIMESTAMPTZ,
    FOREIGN KEY (organization_id, user_id) REFERENCES users (organization_id, id) ON DELETE CASCADE
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

CREATE TABLE devices (
    id              UUID        PRIMARY KEY,
    organization_id BIGINT      NOT NULL,
    user_id         BIGINT      NOT NULL,
    name            TEXT        NOT NULL,
    token_hash      BYTEA       NOT NULL UNIQUE,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at    TIMESTAMPTZ,
    revoked_at      TIMESTAMPTZ,
    FOREIGN KEY (organization_id, user_id) REFERENCES users (organization_id, id) ON DELETE CASCADE,
    CONSTRAINT devices_organization_id_key UNIQUE (organization_id, id)
);
CREATE INDEX devices_user_idx ON devices (user_id);

-- Failed sign-ins per account and per client address, shared by every api replica.
CREATE TABLE login_failures (
    scope             TEXT        NOT NULL,
    key               TEXT        NOT NULL,
    window_started_at TIMESTAMPTZ NOT NULL,
    failures          INTEGER     NOT NULL,
    PRIMARY KEY (scope, key)
);

-- A work session from the desktop tracker; its id is made by the client, so resending is safe.
CREATE TABLE work_sessions (
    id               UUID        PRIMARY KEY,
    organization_id  BIGINT      NOT NULL,
    user_id          BIGINT      NOT NULL,
    device_id        UUID,
    started_at       TIMESTAMPTZ NOT NULL,
    ended_at         TIMESTAMPTZ,
    -- The latest moment the tracker saw the person active: where a forgotten timer is closed.
    last_activity_at TIMESTAMPTZ NOT NULL,
    auto_closed      BOOLEAN     NOT NULL DEFAULT false,
    -- The total of its idle intervals, kept with them, so that summaries of sessions within
    -- one day need not read the intervals.
    idle_micros      BIGINT      NOT NULL DEFAULT 0,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    FOREIGN KEY (organization_id, user_id) REFERENCES users (organization_id, id) ON DELETE CASCADE,
    CONSTRAINT work_sessions_order_check CHECK (ended_at IS NULL OR ended_at >= started_at)
);
-- One open session per person.
CREATE UNIQUE INDEX work_sessions_open_key ON work_sessions (user_id) WHERE ended_at IS NULL;
CREATE INDEX work_sessions_user_time_idx ON work_sessions (user_id, started_at);
CREATE INDEX work_sessions_organization_time_idx ON work_sessions (organization_id, started_at);
CREATE INDEX work_sessions_open_idx ON work_sessions (started_at) WHERE ended_at IS NULL;

-- Idle as measured on the device, [started_at, ended_at), clipped to the session and merged:
-- intervals of one session never overlap or touch.
CREATE TABLE idle_intervals (
    session_id      UUID        NOT NULL REFERENCES work_sessions (id) ON DELETE CASCADE,
    organization_id BIGINT      NOT NULL,
    started_at      TIMESTAMPTZ NOT NULL,
    ended_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (session_id, started_at),
    CONSTRAINT idle_intervals_order_check CHECK (ended_at > started_at)
);

CREATE TABLE attendance_summaries (
    organization_id  BIGINT      NOT NULL,
    user_id          BIGINT      NOT NULL,
    day              DATE        NOT NULL,
    first_in         TIMESTAMPTZ NOT NULL,
    last_out         TIMESTAMPTZ NOT NULL,
    worked_seconds   BIGINT      NOT NULL,
    idle_seconds     BIGINT      NOT NULL,
    active_seconds   BIGINT      NOT NULL,
    sessions         INTEGER     NOT NULL,
    overtime_seconds BIGINT      NOT NULL,
    auto_closed      BOOLEAN     NOT NULL,
    computed_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, day),
    FOREIGN KEY (organization_id, user_id) REFERENCES users (organization_id, id) ON DELETE CASCADE
);
CREATE INDEX attendance_summaries_organization_idx ON attendance_summaries (organization_id, day);

-- Days whose summary must be recomputed (after a clock-out, a late upload, an automatic close).
-- Written in the same transaction as the change; the worker drains it.
CREATE TABLE attendance_dirty (
    organization_id BIGINT      NOT NULL,
    user_id         BIGINT      NOT NULL,
    day             DATE        NOT NULL,
    requested_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, day),
    FOREIGN KEY (organization_id, user_id) REFERENCES users (organization_id, id) ON DELETE CASCADE
);

-- The role tenant queries run under (`SET LOCAL ROLE`), with the organization in
-- `devpulse.organization_id` for the transaction. Row-level security binds it: it is neither a
-- superuser nor a table owner. Roles are per cluster; several databases may share it.
-- A DBA may create the role and grant it to the migration user beforehand; otherwise the
-- migration user needs CREATEROLE (or superuser) once.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'devpulse_app') THEN
        CREATE ROLE devpulse_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
DO $$
BEGIN
    IF NOT pg_has_role(current_user, 'devpulse_app', 'MEMBER') THEN
        EXECUTE format('GRANT devpulse_app TO %I', current_user);
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
GRANT USAGE ON SCHEMA public TO devpulse_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO devpulse_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO devpulse_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO devpulse_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO devpulse_app;
-- Tenant queries never need the migrations' bookkeeping, nor webhook payloads (deliveries carry
-- no organization, so RLS cannot guard them): only the columns the dead-letter views show and
-- the ones a re-drive resets.
REVOKE ALL ON seaql_migrations FROM devpulse_app;
REVOKE ALL ON webhook_deliveries FROM devpulse_app;
GRANT SELECT (id, delivery_id, event, action, installation_id, repository_id, received_at, status)
    ON webhook_deliveries TO devpulse_app;
GRANT UPDATE (status, attempts, next_attempt_at, queued_at, updated_at)
    ON webhook_deliveries TO devpulse_app;

DO $$
DECLARE
    t TEXT;
BEGIN
    EXECUTE 'ALTER TABLE organizations ENABLE ROW LEVEL SECURITY';
    EXECUTE $p$CREATE POLICY tenant ON organizations
        USING (id = NULLIF(current_setting('devpulse.organization_id', true), '')::bigint)
        WITH CHECK (id = NULLIF(current_setting('devpulse.organization_id', true), '')::bigint)$p$;
    FOREACH t IN ARRAY ARRAY['repositories', 'github_users', 'pull_requests', 'reviews', 'commits',
        'deployments', 'deployment_statuses', 'workflow_runs', 'dead_letters', 'users', 'teams',
        'team_members', 'invites', 'refresh_tokens', 'devices', 'work_sessions', 'idle_intervals',
        'attendance_summaries', 'attendance_dirty']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY tenant ON %I
            USING (organization_id = NULLIF(current_setting('devpulse.organization_id', true), '')::bigint)
            WITH CHECK (organization_id = NULLIF(current_setting('devpulse.organization_id', true), '')::bigint)$p$, t);
    END LOOP;
END $$;
"#;

const DOWN: &str = r#"
DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['organizations', 'repositories', 'github_users', 'pull_requests',
        'reviews', 'commits', 'deployments', 'deployment_statuses', 'workflow_runs', 'dead_letters']
    LOOP
        EXECUTE format('DROP POLICY IF EXISTS tenant ON %I', t);
        EXECUTE format('ALTER TABLE %I DISABLE ROW LEVEL SECURITY', t);
    END LOOP;
END $$;
DROP TABLE attendance_dirty, attendance_summaries, idle_intervals, work_sessions, login_failures,
    devices, refresh_tokens, invites, team_members, teams, users;
ALTER TABLE dead_letters DROP COLUMN organization_id;
ALTER TABLE organizations DROP CONSTRAINT organizations_session_limit_check,
    DROP CONSTRAINT organizations_daily_target_check,
    DROP COLUMN session_limit_seconds, DROP COLUMN daily_target_seconds;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM devpulse_app;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM devpulse_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM devpulse_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM devpulse_app;
REVOKE USAGE ON SCHEMA public FROM devpulse_app;
"#;

sql_migration!();
