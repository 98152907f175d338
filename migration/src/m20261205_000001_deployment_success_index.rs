//! Successful deployments of a repository in order of finish: a pull request's shipping
//! deployment is looked up there directly (the first one after its merge), so a recompute of a
//! few days no longer gathers every production deployment of the organization first.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
CREATE INDEX deployments_success_idx ON deployments (repository_id, latest_status_at, github_id)
    WHERE latest_state = 'success';
"#;

const DOWN: &str = r#"
DROP INDEX deployments_success_idx;
"#;

sql_migration!();
