//! Integration tests of the orders service: the gRPC contract in front of a fake users service, and the store.
//!
//! One test binary for the crate (one link, one process start); each module below is
//! one concern.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking, with the line that failed"
)]

mod common;
mod events;
mod grpc;
mod store;
mod watch;
