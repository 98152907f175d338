//! sea-orm entities: the typed shape of DevPulse's tables, and nothing else.
//!
//! This crate knows nothing of HTTP or queues (checked by `scripts/test`); it is the
//! vocabulary every other crate shares when it reads or writes PostgreSQL.

pub mod attendance_dirty;
pub mod attendance_summary;
pub mod commit;
pub mod daily_metric;
pub mod dead_letter;
pub mod deployment;
pub mod deployment_outcome;
pub mod deployment_status;
pub mod device;
pub mod dora_metric;
pub mod github_user;
pub mod health_alert;
pub mod idle_interval;
pub mod incident;
pub mod invite;
pub mod login_failure;
pub mod organization;
pub mod pr_metric;
pub mod pull_request;
pub mod refresh_token;
pub mod reliability_score;
pub mod repository;
pub mod review;
pub mod schedule_tick;
pub mod team;
pub mod team_member;
pub mod user;
pub mod webhook_delivery;
pub mod work_session;
pub mod workflow_run;

pub use webhook_delivery::DeliveryStatus;
