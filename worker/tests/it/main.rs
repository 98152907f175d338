//! Integration tests of the worker process against real PostgreSQL and Redis.

mod run;
