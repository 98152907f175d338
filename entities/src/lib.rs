//! sea-orm entities: the typed shape of DevPulse's tables, and nothing else.
//!
//! This crate knows nothing of HTTP or queues (checked by `scripts/test`); it is the
//! vocabulary every other crate shares when it reads or writes PostgreSQL.

pub mod webhook_delivery;

pub use webhook_delivery::DeliveryStatus;
