//! Indexes for a reliability score's WIP hygiene: the time each pull request was open, so the
//! pull requests open at a week's end are found without reading every one merged since; and
//! pull requests by last update, so only that week's activity is read.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

// The expression must stay identical to `OPEN_SPAN` in jobs/src/analytics/compute.rs, or the
// planner does not use the index.
const UP: &str = r#"
CREATE INDEX pr_metrics_open_span_idx ON pr_metrics USING gist (tstzrange(created_at,
    CASE WHEN COALESCE(merged_at, closed_at) < created_at THEN created_at
         ELSE COALESCE(merged_at, closed_at) END, '[]'));
CREATE INDEX pull_requests_updated_idx ON pull_requests (organization_id, updated_at);
"#;

const DOWN: &str = "DROP INDEX pr_metrics_open_span_idx, pull_requests_updated_idx;";

sql_migration!();
