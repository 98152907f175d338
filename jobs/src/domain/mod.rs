//! The idempotent, order-independent writers of the domain model: one code path per entity,
//! whichever source (webhook, sync) the data came from.
//!
//! Rules every writer follows, so that the same facts applied in any order, any number of
//! times, give the same rows:
//! - mutable columns come from the snapshot with the newest GitHub timestamp (ties broken by a
//!   fixed rank, never by arrival order); an older snapshot never overwrites a newer one;
//! - first-X timestamps take the minimum, flags that only ever turn on take the OR;
//! - derived columns (first review, latest deployment status) are recomputed from their
//!   source rows, not accumulated;
//! - a write that changes nothing takes no row lock where it can avoid one (concurrent jobs
//!   of one organization share its organization, repository and user rows).

pub mod cache;
pub mod commits;
pub mod deployments;
pub mod external;
pub mod incidents;
pub mod organizations;
pub mod pull_requests;
pub mod repositories;
pub mod reviews;
pub mod users;
pub mod workflow_runs;

use sea_orm::{DbBackend, Statement, Value};

pub(crate) fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}
