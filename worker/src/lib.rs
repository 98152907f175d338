//! DevPulse's worker process: supervised apalis workers on the Redis queue, the relay that
//! feeds them from PostgreSQL, and the janitor that keeps Redis small.

pub mod config;
pub mod run;
