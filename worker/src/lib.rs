//! The worker: job consumption ([`run`], in batches: [`batch`]), attendance summaries and the
//! forgotten-timer sweep ([`attendance`]), incremental metrics, alerts and notifications
//! ([`analytics`]), schedules ([`schedule`]), its metrics port ([`metrics`]), operator commands
//! ([`dlq`], [`admin`], [`demo`]) and configuration ([`config`]).

pub mod admin;
pub mod analytics;
pub mod attendance;
pub mod batch;
pub mod config;
pub mod demo;
pub mod dlq;
pub mod metrics;
pub mod run;
pub mod schedule;
pub mod sync;
