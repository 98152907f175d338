//! Integration tests of the worker against real PostgreSQL and Redis.

mod admin;
mod analytics;
mod fake_github;
mod helpers;
mod processing;
mod reliability;
mod run;
mod schedule;
mod sync;
