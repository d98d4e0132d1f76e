//! System tests: the gateway, users and orders together, in-process (journeys, metrics) and as processes (traces).
//!
//! One test binary for the crate (one link, one process start); each module below is
//! one concern.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking, with the line that failed"
)]

mod abuse;
mod compression;
mod gateway;
mod headers;
mod httpbody;
mod json_options;
mod metrics;
mod replicas;
mod streaming;
mod traces;
mod watch;
