//! Integration tests of the users service: the gRPC contract, the runtime around it, the binary and the store.
//!
//! One test binary for the crate (one link, one process start); each module below is
//! one concern.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking, with the line that failed"
)]

mod common;
mod faults;
mod grpc;
mod process;
mod server;
mod sessions;
mod store;
