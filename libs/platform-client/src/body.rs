//! A gRPC response body that reports its call's status exactly once, when the status
//! is known: both the client layer (what the callee answered) and the server layer
//! (what this process answered) watch response bodies this way.
//!
//! A gRPC status travels in the trailers, after the last message, or in the headers
//! of a trailers-only answer; a stream can also fail on its way. The body passes
//! every frame through untouched.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderName};
use http_body::Frame;
use tonic::body::Body;
use tonic::{Code, Status};

/// How the response ended, as far as the body saw.
#[derive(Debug)]
pub enum Outcome<'a> {
    /// The trailers arrived (the status is in them, unless it was in the headers).
    Trailers(&'a mut HeaderMap),
    /// The stream failed with this code before its end.
    Failed(Code),
    /// The stream ended without trailers (after a trailers-only answer).
    Ended,
}

/// `inner`, with `report` called once with its [`Outcome`].
pub struct StatusBody<F> {
    inner: Body,
    report: Option<F>,
}

impl<F> std::fmt::Debug for StatusBody<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusBody")
            .field("reported", &self.report.is_none())
            .finish_non_exhaustive()
    }
}

impl<F> StatusBody<F>
where
    F: FnOnce(Outcome<'_>) + Send + Unpin + 'static,
{
    /// Watches `inner`; a body dropped before its end never reports (the caller's own
    /// guard, if any, records the abandoned call).
    pub fn new(inner: Body, report: F) -> Self {
        Self {
            inner,
            report: Some(report),
        }
    }
}

impl<F> http_body::Body for StatusBody<F>
where
    F: FnOnce(Outcome<'_>) + Send + Unpin + 'static,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let mut polled = Pin::new(&mut this.inner).poll_frame(cx);
        let outcome = match &mut polled {
            Poll::Ready(Some(Ok(frame))) => frame.trailers_mut().map(Outcome::Trailers),
            Poll::Ready(Some(Err(status))) => Some(Outcome::Failed(status.code())),
            Poll::Ready(None) => Some(Outcome::Ended),
            Poll::Pending => None,
        };
        if let Some(outcome) = outcome
            && let Some(report) = this.report.take()
        {
            report(outcome);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The span of one gRPC call, client or server side, with the OpenTelemetry RPC
/// attributes (`rpc.grpc.status_code` and `otel.status_code` are recorded when the
/// call ends). `name` and `kind` must be literals: `"grpc.client"`, `"client"`.
#[macro_export]
macro_rules! rpc_span {
    ($name:literal, $kind:literal, $service:expr, $method:expr) => {{
        let (service, method): (&str, &str) = ($service, $method);
        ::tracing::info_span!(
            $name,
            otel.name = %format_args!("{service}/{method}"),
            otel.kind = $kind,
            otel.status_code = ::tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = ::tracing::field::Empty,
        )
    }};
}

/// `/pkg.Service/Method` → (`pkg.Service`, `Method`).
pub fn split_path(path: &str) -> (&str, &str) {
    let trimmed = path.trim_start_matches('/');
    trimmed.split_once('/').unwrap_or((trimmed, ""))
}

/// The status code carried in `headers` (a trailers-only answer) or trailers.
pub fn status_in(headers: &HeaderMap) -> Option<Code> {
    // Only the code: `Status::from_header_map` would also decode the message and the
    // details, for every call.
    const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
    let value = headers.get(GRPC_STATUS)?;
    let code = std::str::from_utf8(value.as_bytes())
        .ok()
        .and_then(|text| text.trim().parse::<i32>().ok())
        .map_or(Code::Unknown, Code::from);
    Some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_grpc_paths() {
        assert_eq!(
            split_path("/users.v1.UserService/GetUser"),
            ("users.v1.UserService", "GetUser")
        );
        assert_eq!(split_path("/junk"), ("junk", ""));
    }
}
