//! The deadline of the call being served, so that calls it makes downstream inherit
//! what is left of it instead of starting a fresh budget.
//!
//! The server layer records the deadline when a call arrives (the client's
//! `grpc-timeout`, bounded by the server's own timeout) as a [`Deadline`] request
//! extension; handlers read what remains with [`remaining`].

use std::time::{Duration, Instant};

use http::HeaderMap;

/// When the call being served must be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(pub Instant);

impl Deadline {
    /// The deadline `budget` from now.
    pub fn after(budget: Duration) -> Self {
        Self(Instant::now() + budget)
    }

    /// Time left; zero once passed.
    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }
}

/// Time left for the call behind `request`, when it has a deadline.
pub fn remaining<T>(request: &tonic::Request<T>) -> Option<Duration> {
    request
        .extensions()
        .get::<Deadline>()
        .map(Deadline::remaining)
}

/// The `grpc-timeout` header: an integer of at most 8 digits and a unit.
pub fn client_timeout(headers: &HeaderMap) -> Option<Duration> {
    platform_client::grpc_timeout(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_grpc_timeouts() {
        let mut h = HeaderMap::new();
        h.insert("grpc-timeout", http::HeaderValue::from_static("250m"));
        assert_eq!(client_timeout(&h), Some(Duration::from_millis(250)));
        h.insert("grpc-timeout", http::HeaderValue::from_static("3S"));
        assert_eq!(client_timeout(&h), Some(Duration::from_secs(3)));
        h.insert("grpc-timeout", http::HeaderValue::from_static("123456789S"));
        assert_eq!(client_timeout(&h), None, "more than 8 digits");
        h.insert("grpc-timeout", http::HeaderValue::from_static("5x"));
        assert_eq!(client_timeout(&h), None);
    }

    #[test]
    fn remaining_time_shrinks_to_zero() {
        let d = Deadline::after(Duration::from_millis(50));
        assert!(d.remaining() <= Duration::from_millis(50));
        assert_eq!(
            Deadline(Instant::now() - Duration::from_secs(1)).remaining(),
            Duration::ZERO
        );
    }
}
