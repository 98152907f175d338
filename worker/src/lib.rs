//! The worker: job consumption ([`run`], in batches: [`batch`]), its metrics port ([`metrics`]), operator commands
//! ([`dlq`]) and configuration ([`config`]).

pub mod batch;
pub mod config;
pub mod dlq;
pub mod metrics;
pub mod run;
