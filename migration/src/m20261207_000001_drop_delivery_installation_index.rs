//! Drops `webhook_deliveries_installation_idx`: no statement reads deliveries by installation,
//! and every row version of a delivery (stored, queued, attempted, processed) paid an insert
//! into it — ~2–3 % of the worker's PostgreSQL time (docs/BENCHMARKS.md, 2026-12-04).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
DROP INDEX webhook_deliveries_installation_idx;
"#;

const DOWN: &str = r#"
CREATE INDEX webhook_deliveries_installation_idx ON webhook_deliveries (installation_id, received_at);
"#;

sql_migration!();
