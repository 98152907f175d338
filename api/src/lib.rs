//! DevPulse's HTTP API: GitHub webhook ingest, health and metrics.
//!
//! `main.rs` reads [`config::ApiConfig`], then [`startup::build`] → [`startup::Application::run`].

pub mod config;
pub mod error;
pub mod ingest;
pub mod metrics;
pub mod routes;
pub mod signature;
pub mod startup;
pub mod webhook;
