//! sea-orm entities: the typed shape of DevPulse's tables, and nothing else.
//!
//! This crate knows nothing of HTTP or queues (checked by `scripts/test`); it is the
//! vocabulary every other crate shares when it reads or writes PostgreSQL.

pub mod commit;
pub mod dead_letter;
pub mod deployment;
pub mod deployment_status;
pub mod github_user;
pub mod organization;
pub mod pull_request;
pub mod repository;
pub mod review;
pub mod webhook_delivery;
pub mod workflow_run;

pub use webhook_delivery::DeliveryStatus;
