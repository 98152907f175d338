//! DevPulse's HTTP API: GitHub webhook ingest, `/api/v1` (sign-in, people, the tracker's
//! sessions, attendance, dead letters), health and metrics.
//!
//! `main.rs` reads [`config::ApiConfig`], then [`startup::build`] → [`startup::Application::run`].

pub mod auth;
pub mod config;
pub mod error;
pub mod ingest;
pub mod metrics;
pub mod openapi;
pub mod read_cache;
pub mod routes;
pub mod signature;
pub mod startup;
pub mod webhook;
