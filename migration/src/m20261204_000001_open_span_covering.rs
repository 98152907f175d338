//! The open-span index of `pr_metrics` carries the columns a week's WIP hygiene reads, so the
//! pull requests open at a week's end (tens of thousands in a large organization) come from an
//! index-only scan instead of one heap page each.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

// The expression must stay identical to `OPEN_SPAN` in jobs/src/analytics/compute.rs, or the
// planner does not use the index.
const UP: &str = r#"
DROP INDEX pr_metrics_open_span_idx;
CREATE INDEX pr_metrics_open_span_idx ON pr_metrics USING gist (tstzrange(created_at,
    CASE WHEN COALESCE(merged_at, closed_at) < created_at THEN created_at
         ELSE COALESCE(merged_at, closed_at) END, '[]'))
    INCLUDE (org_id, author_is_bot, author_login, created_at, ready_at, merged_at, closed_at,
        pull_request_id);
"#;

const DOWN: &str = r#"
DROP INDEX pr_metrics_open_span_idx;
CREATE INDEX pr_metrics_open_span_idx ON pr_metrics USING gist (tstzrange(created_at,
    CASE WHEN COALESCE(merged_at, closed_at) < created_at THEN created_at
         ELSE COALESCE(merged_at, closed_at) END, '[]'));
"#;

sql_migration!();
