//! Integration tests of platform-db against real PostgreSQL servers.
//!
//! One test binary for the crate (one link, one process start); each module below is
//! one concern.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking, with the line that failed"
)]

mod pg_server;
mod pool;
mod tls;
