//! Integration tests of the API against real PostgreSQL and Redis (one binary, many modules).

mod accounts;
mod attendance;
mod authorization;
mod burst;
mod deployments;
mod end_to_end;
mod fixtures;
mod helpers;
mod ingest;
mod limits;
mod operations;
mod reads;
mod relay;
mod resilience;
mod signatures;
mod tenancy;
