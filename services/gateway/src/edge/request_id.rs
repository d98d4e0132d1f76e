//! The request id rule: a client's `X-Request-Id` is kept when it is sane (1 to 128
//! visible ASCII characters), so callers can correlate with their own logs; otherwise
//! tower-http's set layer makes a UUID.
//!
//! The set layer keeps whatever header it finds, so an unusable one is removed first:
//! an id ends up in log lines and trace attributes and must not smuggle spaces,
//! control characters or megabytes into them.

use axum::http::{HeaderMap, Request};

/// The header, lowercase as `http` stores it.
pub(super) const HEADER: &str = "x-request-id";

/// Longest client id kept.
const MAX_LEN: usize = 128;

/// Removes an `X-Request-Id` that is not [`usable`], so a fresh one is made.
pub(super) fn drop_unusable<B>(mut request: Request<B>) -> Request<B> {
    let keep = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(usable);
    if !keep {
        request.headers_mut().remove(HEADER);
    }
    request
}

/// Whether a client's id may be used as it is.
fn usable(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

/// The id the outer layers settled on; empty only when the API stack runs without them.
pub(super) fn of(headers: &HeaderMap) -> &str {
    headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_kept_when_sane() {
        assert!(usable("abc-123"));
        assert!(usable(&"a".repeat(MAX_LEN)));
        assert!(!usable(&"a".repeat(MAX_LEN + 1)));
        assert!(!usable("has space"));
        assert!(!usable(""));
    }

    #[test]
    fn unusable_ids_are_removed() {
        let request = Request::builder()
            .header(HEADER, "has space")
            .body(())
            .expect("a request");
        assert!(drop_unusable(request).headers().get(HEADER).is_none());
        let request = Request::builder()
            .header(HEADER, "abc-123")
            .body(())
            .expect("a request");
        assert_eq!(drop_unusable(request).headers()[HEADER], "abc-123");
    }
}
