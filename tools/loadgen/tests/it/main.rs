//! loadgen tests: its journeys against the whole system in this process, and its
//! open model against a stand-in server that is slow or failing on purpose.
//!
//! One test binary for the crate; each module below is one concern.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking, with the line that failed"
)]

mod journeys;
mod open_model;
