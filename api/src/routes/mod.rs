//! HTTP routes: one module per surface.

pub mod health;
pub mod v1;
pub mod webhooks;
