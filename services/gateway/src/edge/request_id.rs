//! The request id rule, as the outermost layer ([`RequestIdLayer`]): a client's
//! `X-Request-Id` is kept when it is sane (1 to 128 visible ASCII characters), so
//! callers can correlate with their own logs; otherwise a fresh UUID (v4) replaces it.
//! The id travels in the request's headers to every layer below, and comes back on
//! every response, the edge's own answers and CORS preflights included.
//!
//! An id ends up in log lines and trace attributes, so an unusable one must not
//! smuggle spaces, control characters or megabytes into them.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use tower::{Layer, Service};

/// The header, lowercase as `http` stores it.
pub(super) const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client id kept.
const MAX_LEN: usize = 128;

/// Adds [`RequestId`] around a service.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestId<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestId(inner)
    }
}

/// See the [module docs](self).
#[derive(Debug, Clone)]
pub(super) struct RequestId<S>(S);

impl<S, B, R> Service<Request<B>> for RequestId<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = WithRequestId<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let id = settle(request.headers_mut());
        WithRequestId {
            inner: self.0.call(request),
            id: Some(id),
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's answer, with the request's id put on it.
    pub(super) struct WithRequestId<F> {
        #[pin]
        inner: F,
        id: Option<HeaderValue>,
    }
}

impl<F, R, E> Future for WithRequestId<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut answer = ready!(this.inner.poll(cx));
        if let (Ok(response), Some(id)) = (&mut answer, this.id.take()) {
            response.headers_mut().insert(HEADER, id);
        }
        Poll::Ready(answer)
    }
}

/// The request's id: the client's when [`usable`], else a fresh one written into
/// `headers` in its place.
fn settle(headers: &mut HeaderMap) -> HeaderValue {
    if let Some(id) = headers.get(HEADER)
        && id.to_str().is_ok_and(usable)
    {
        return id.clone();
    }
    let id = fresh();
    headers.insert(HEADER, id.clone());
    id
}

/// A random (v4) UUID, hyphenated, written without `fmt`.
fn fresh() -> HeaderValue {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// Whether a client's id may be used as it is.
fn usable(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

/// The id the outer layer settled on; empty only when the API stack runs without it.
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
    fn unusable_ids_are_replaced_by_a_uuid() {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, HeaderValue::from_static("has space"));
        let id = settle(&mut headers);
        assert_eq!(headers[HEADER], id);
        let id = id.to_str().expect("ascii");
        assert_eq!(
            uuid::Uuid::parse_str(id).map(|u| u.get_version_num()),
            Ok(4)
        );

        headers.insert(HEADER, HeaderValue::from_static("abc-123"));
        assert_eq!(settle(&mut headers), "abc-123");
        assert_eq!(headers[HEADER], "abc-123");
    }
}
