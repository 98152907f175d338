//! HTTP routes: one module per surface.

pub mod health;
pub mod webhooks;
