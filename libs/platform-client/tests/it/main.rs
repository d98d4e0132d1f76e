//! Integration tests of platform-client against real tonic servers on port 0.
//!
//! One test binary for the crate (one link, one process start); each module below is
//! one concern.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking, with the line that failed"
)]

mod client;
mod connection;
mod dns;
mod resilience;
mod support;
