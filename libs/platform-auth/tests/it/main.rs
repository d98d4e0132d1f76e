//! Integration tests of platform-auth: keys, tokens, the verified-token cache and the tower layer.
//!
//! One test binary for the crate (one link, one process start); each module below is
//! one concern.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking, with the line that failed"
)]

mod cache;
mod keys;
mod layer;
mod tokens;
