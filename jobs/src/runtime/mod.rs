//! Start-up code shared by `api` and `worker`: configuration, telemetry, connections.

pub mod config;
pub mod connect;
pub mod pg_tls;
pub mod signal;
pub mod telemetry;
