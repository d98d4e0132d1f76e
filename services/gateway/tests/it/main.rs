//! Integration tests of the gateway: routing, transcoding, the OpenAPI document and the edge's layers.
//!
//! One test binary for the crate (one link, one process start); each module below is
//! one concern.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking, with the line that failed"
)]

mod common;
mod edge;
mod openapi;
mod platform;
mod ratelimit;
mod routing;
mod transcode;
