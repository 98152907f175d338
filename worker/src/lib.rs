//! The worker: job consumption ([`run`]), its metrics port ([`metrics`]), operator commands
//! ([`dlq`]) and configuration ([`config`]).

pub mod config;
pub mod dlq;
pub mod metrics;
pub mod run;
