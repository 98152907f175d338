//! Scheduled runs: one row per schedule and tick, claimed by the worker that runs it, so that
//! with several worker replicas each tick runs exactly once.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
CREATE TABLE schedule_ticks (
    schedule    TEXT        NOT NULL,
    tick        TIMESTAMPTZ NOT NULL,
    claimed_by  TEXT        NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ,
    outcome     TEXT,
    detail      TEXT,
    PRIMARY KEY (schedule, tick),
    CONSTRAINT schedule_ticks_outcome_check CHECK (outcome IN ('ok', 'failed'))
);
-- Platform bookkeeping, not tenant data.
REVOKE ALL ON schedule_ticks FROM devpulse_app;
"#;

const DOWN: &str = "DROP TABLE schedule_ticks;";

sql_migration!();
