//! `webhook_deliveries`: every GitHub delivery we answered 2xx, verbatim, with its hand-off state.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

// Plain SQL: the constraints and partial indexes below are the point of this table, and
// they read better as the SQL PostgreSQL will run than as builder calls.
const UP: &str = r#"
CREATE TABLE webhook_deliveries (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id     TEXT        NOT NULL,
    event           TEXT        NOT NULL,
    action          TEXT,
    installation_id BIGINT,
    repository_id   BIGINT,
    hook_id         BIGINT,
    payload         JSONB       COMPRESSION lz4 NOT NULL,
    received_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    status          TEXT        NOT NULL DEFAULT 'pending',
    queued_at       TIMESTAMPTZ,
    attempts        INTEGER     NOT NULL DEFAULT 0,
    last_attempt_at TIMESTAMPTZ,
    next_attempt_at TIMESTAMPTZ,
    last_error      TEXT,
    processed_at    TIMESTAMPTZ,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT webhook_deliveries_delivery_id_key UNIQUE (delivery_id),
    CONSTRAINT webhook_deliveries_status_check
        CHECK (status IN ('pending', 'queued', 'processed', 'ignored', 'failed', 'dead')),
    CONSTRAINT webhook_deliveries_attempts_check CHECK (attempts >= 0)
);

-- The relay scans only what still has to be handed to Redis, oldest first.
CREATE INDEX webhook_deliveries_pending_idx ON webhook_deliveries (id) WHERE status = 'pending';
-- Operators and the worker pool look deliveries up by installation and recency.
CREATE INDEX webhook_deliveries_installation_idx ON webhook_deliveries (installation_id, received_at);
CREATE INDEX webhook_deliveries_status_idx ON webhook_deliveries (status, received_at)
    WHERE status IN ('queued', 'failed', 'dead');
"#;

const DOWN: &str = "DROP TABLE webhook_deliveries;";

sql_migration!();
