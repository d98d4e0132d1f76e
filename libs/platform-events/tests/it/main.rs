//! Integration tests of the outbox relay and the consumer, against real databases
//! (SQLite and PostgreSQL) and a throwaway NATS server per test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking, with the line that failed"
)]

mod consumer;
mod relay;
