//! Job payloads, the PostgreSQL → Redis hand-off, and the start-up code shared by `api` and `worker`.
//!
//! - [`runtime`]: configuration, telemetry and connections — the one home of start-up code.
//! - [`ids`]: validated identifiers parsed at the edge ([`DeliveryId`], [`EventName`]).
//! - [`job`]: the job payloads that travel through Redis (ids only, versioned).
//! - [`deliveries`]: every SQL statement on `webhook_deliveries`.
//! - [`queue`]: the bounded Redis queue on top of apalis-redis.
//! - [`relay`]: moves `pending` deliveries into Redis as the queue drains.
//! - [`consumer`]: a supervised apalis worker loop with fresh names on every restart.
//! - [`github`]: the webhook payload shapes DevPulse reads; [`process`]: delivery → domain rows;
//!   [`domain`]: the idempotent, order-independent writers (shared with sync).
//! - [`analytics`]: the precomputed metrics, health alerts and notifications.
//! - [`sync`]: the sync side's ledger, checkpoints, rate-limit pauses and ETags (no HTTP).
//! - [`statistics`]: planner statistics refreshed where autovacuum lags or is off.
//! - [`runner`]: attempts, retries with backoff, dead letters; [`dead_letters`]: the DLQ.

pub mod analytics;
pub mod attendance;
pub mod consumer;
pub mod dead_letters;
pub mod deliveries;
pub mod domain;
pub mod github;
pub mod ids;
pub mod job;
pub mod people;
pub mod process;
pub mod queue;
pub mod reads;
pub mod relay;
pub mod runner;
pub mod runtime;
pub mod schedule;
pub mod statistics;
pub mod sync;
#[cfg(feature = "test-support")]
pub mod testing;

pub use ids::{DeliveryId, EventName};
pub use job::{JobKind, WebhookJob};
pub use queue::Queue;
