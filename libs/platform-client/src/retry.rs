//! Transparent retries of outgoing calls, under [`ClientLayer`](crate::ClientLayer):
//! one client span per call, an event in it per retry.
//!
//! Two kinds of failure are retried:
//!
//! - a call that never reached a server's handler, whatever the method: the
//!   connection could not be made ([`tonic::ConnectError`]: refused, reset or timed
//!   out while connecting), the server refused the stream (HTTP/2 `REFUSED_STREAM`),
//!   the server was draining and its `GOAWAY` left the stream unprocessed, or the
//!   request was dropped before it was sent (hyper's "canceled");
//! - UNAVAILABLE, as a transport error or in a trailers-only answer, for a call that
//!   is safe to repeat: marked with [`SafeToRepeat`] (an idempotent read, a create
//!   carrying an idempotency key), or of a method the client was told is safe
//!   ([`RetryOptions::safe_methods`]).
//!
//! Anything else (a status from a handler, an error after the request was sent, an
//! UNAVAILABLE in the trailers of a started answer) goes back to the caller as it came.
//!
//! Retries are bounded three ways: [`RetryOptions::max_attempts`]; a budget shared by
//! every call to the upstream (`tower::retry::budget::TpsBudget`: a share of recent
//! calls plus a small floor per second), so a failing upstream does not get a retry
//! storm; and the call's deadline: a retry is only made while at least
//! [`MIN_RETRY_BUDGET`] is left, and carries the remaining time as its `grpc-timeout`.
//!
//! To be sent again a request body must be kept: the body of a unary or
//! server-streaming call (one message, ready at once) is collected, up to
//! [`RetryOptions::max_replay_bytes`]; a body that is larger or still streaming is
//! sent as it comes, and that call is not retried.

use std::collections::{HashSet, VecDeque};
use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use http::HeaderValue;
use http_body::{Body as _, Frame};
use http_body_util::{BodyStream, StreamBody};
use tonic::body::Body;
use tonic::{Code, Status};
use tower::ServiceExt;
use tower::retry::budget::{Budget, TpsBudget};
use tower::util::rng::{HasherRng, Rng};
use tower_service::Service;

use crate::Transport;
use crate::body::{split_path, status_in};
use crate::layer::{encode_timeout, is_infrastructure, names};
use crate::pool::BoxError;

/// Below this much time left, a failed call is not retried.
pub const MIN_RETRY_BUDGET: Duration = Duration::from_millis(20);

/// Marks a call as safe to send twice: an idempotent read, or a create carrying an
/// idempotency key. Insert it in the request's extensions
/// (`request.extensions_mut().insert(SafeToRepeat)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SafeToRepeat;

/// How outgoing calls are retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryOptions {
    /// Tries per call, the first included; 1 turns retries off.
    pub max_attempts: u32,
    /// Retries allowed as a share of calls (0.2: one retry per five calls)...
    pub budget_ratio: f32,
    /// ...plus this many per second, so a quiet client can still retry.
    pub budget_min_per_sec: u32,
    /// Largest request body kept to be sent again.
    pub max_replay_bytes: usize,
    /// Methods safe to repeat whatever the request says, as `/package.Service/Method`.
    pub safe_methods: HashSet<String>,
}

impl Default for RetryOptions {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            budget_ratio: 0.2,
            budget_min_per_sec: 10,
            max_replay_bytes: 64 * 1024,
            safe_methods: HashSet::new(),
        }
    }
}

/// Why a call was retried: the `reason` label of [`names::RETRIES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No connection could be made.
    Connect,
    /// The server refused the stream (`REFUSED_STREAM`).
    RefusedStream,
    /// The server was going away and did not process the stream (`GOAWAY`).
    GoAway,
    /// The request was dropped before it was sent.
    NotSent,
    /// UNAVAILABLE, for a call safe to repeat.
    Unavailable,
}

impl Reason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::RefusedStream => "refused_stream",
            Self::GoAway => "goaway",
            Self::NotSent => "not_sent",
            Self::Unavailable => "unavailable",
        }
    }
}

/// Whether `error` says the request never reached a server's handler, and how.
pub fn never_sent(error: &(dyn StdError + 'static)) -> Option<Reason> {
    let mut source = Some(error);
    while let Some(error) = source {
        if error.is::<tonic::ConnectError>() {
            return Some(Reason::Connect);
        }
        if let Some(h2) = error.downcast_ref::<h2::Error>() {
            // A stream the server refuses, or one above the last stream id of its
            // GOAWAY, was not processed (RFC 9113, 8.7). A reset of any other kind
            // may come after the handler ran.
            if h2.is_remote() && h2.is_reset() && h2.reason() == Some(h2::Reason::REFUSED_STREAM) {
                return Some(Reason::RefusedStream);
            }
            if h2.is_remote() && h2.is_go_away() {
                return Some(Reason::GoAway);
            }
            return None;
        }
        if let Some(hyper) = error.downcast_ref::<hyper::Error>()
            && hyper.is_canceled()
        {
            return Some(Reason::NotSent);
        }
        source = error.source();
    }
    None
}

/// Adds [`Retrying`] around a transport.
#[derive(Debug, Clone)]
pub struct RetryLayer {
    policy: Arc<Policy>,
}

impl RetryLayer {
    /// Retries as `options` say, within a budget of its own. Share the layer (clone
    /// it) to share the budget among the clients of one upstream.
    pub fn new(options: RetryOptions) -> Self {
        // TpsBudget asserts on values outside these bounds.
        let ratio = if options.budget_ratio.is_finite() {
            options.budget_ratio.clamp(0.0, 1000.0)
        } else {
            0.0
        };
        let budget = TpsBudget::new(
            Duration::from_secs(10),
            options.budget_min_per_sec.min(i32::MAX as u32 - 1),
            ratio,
        );
        Self {
            policy: Arc::new(Policy { options, budget }),
        }
    }
}

impl<S> tower_layer::Layer<S> for RetryLayer {
    type Service = Retrying<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Retrying {
            inner,
            policy: Arc::clone(&self.policy),
        }
    }
}

#[derive(Debug)]
struct Policy {
    options: RetryOptions,
    budget: TpsBudget,
}

impl Policy {
    fn is_safe(&self, request: &http::Request<Body>) -> bool {
        request.extensions().get::<SafeToRepeat>().is_some()
            || self.options.safe_methods.contains(request.uri().path())
    }
}

/// See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Retrying<S> {
    inner: S,
    policy: Arc<Policy>,
}

impl<S> Retrying<S> {
    /// The wrapped transport.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Transport> Service<http::Request<Body>> for Retrying<S> {
    type Response = http::Response<Body>;
    type Error = Status;
    type Future = BoxFuture<'static, Result<http::Response<Body>, Status>>;

    /// Always ready: each attempt waits for the transport on its own (bounded by the
    /// deadline the client layer enforces).
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        let policy = Arc::clone(&self.policy);
        Box::pin(retrying(inner, policy, request))
    }
}

/// One attempt through `inner`.
async fn attempt<S: Transport>(
    inner: S,
    request: http::Request<Body>,
) -> Result<http::Response<Body>, BoxError> {
    inner.oneshot(request).await.map_err(Into::into)
}

async fn retrying<S: Transport>(
    inner: S,
    policy: Arc<Policy>,
    request: http::Request<Body>,
) -> Result<http::Response<Body>, Status> {
    let started = Instant::now();
    if is_infrastructure(request.uri().path()) || policy.options.max_attempts <= 1 {
        return attempt(inner, request).await.map_err(Status::from_error);
    }
    let safe = policy.is_safe(&request);
    let budget = crate::grpc_timeout(request.headers());
    policy.budget.deposit();

    let (parts, body) = request.into_parts();
    let body = match collect(body, policy.options.max_replay_bytes).await {
        Ok(Collected::Whole(body)) => body,
        Ok(Collected::Streaming(body)) => {
            let request = http::Request::from_parts(parts, body);
            return attempt(inner, request).await.map_err(Status::from_error);
        }
        Err(status) => return Err(status),
    };

    let mut tries = 1;
    loop {
        let mut request = replay(&parts, &body);
        let remaining = budget.map(|b| b.saturating_sub(started.elapsed()));
        if tries > 1
            && let Some(remaining) = remaining
            && let Some(value) = encode_timeout(remaining)
        {
            request.headers_mut().insert("grpc-timeout", value);
        }
        let result = attempt(inner.clone(), request).await;
        let (reason, result) = match result {
            Ok(response) => {
                let retry = safe && status_in(response.headers()) == Some(Code::Unavailable);
                (retry.then_some(Reason::Unavailable), Ok(response))
            }
            Err(error) => {
                let reason = never_sent(error.as_ref());
                let status = Status::from_error(error);
                let reason = reason.or_else(|| {
                    (safe && status.code() == Code::Unavailable).then_some(Reason::Unavailable)
                });
                (reason, Err(status))
            }
        };
        let Some(reason) = reason else {
            return result;
        };
        if tries >= policy.options.max_attempts {
            return result;
        }
        let left = budget.map(|b| b.saturating_sub(started.elapsed()));
        if left.is_some_and(|left| left < MIN_RETRY_BUDGET) {
            return result;
        }
        if !policy.budget.withdraw() {
            tracing::debug!(reason = reason.as_str(), "retry budget spent, not retrying");
            return result;
        }
        let (service, method) = split_path(parts.uri.path());
        metrics::counter!(
            names::RETRIES,
            "rpc_service" => service.to_owned(),
            "rpc_method" => method.to_owned(),
            "reason" => reason.as_str()
        )
        .increment(1);
        tracing::info!(
            attempt = tries + 1,
            reason = reason.as_str(),
            "retrying call"
        );
        if reason == Reason::Unavailable {
            // The server answered: give it a moment, never past the deadline.
            let pause = backoff(tries);
            let pause = left.map_or(pause, |left| pause.min(left - MIN_RETRY_BUDGET));
            tokio::time::sleep(pause).await;
        }
        tries += 1;
    }
}

/// 25 ms, 50 ms, 100 ms... (at most 1 s), each with up to as much again of jitter,
/// so the retries of many callers do not arrive together.
fn backoff(tries: u32) -> Duration {
    let base = Duration::from_millis(25)
        .saturating_mul(1 << tries.saturating_sub(1).min(6))
        .min(Duration::from_secs(1));
    let jitter = HasherRng::default().next_f64();
    base.mul_f64(1.0 + jitter)
}

/// The request again, with the same head and the kept body.
fn replay(parts: &http::request::Parts, body: &Bytes) -> http::Request<Body> {
    let mut request = http::Request::new(Body::new(http_body_util::Full::new(body.clone())));
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    *request.extensions_mut() = parts.extensions.clone();
    if let Some(length) = request.headers().get(http::header::CONTENT_LENGTH)
        && length.to_str().ok() != Some(body.len().to_string().as_str())
    {
        // Never the case for gRPC (no Content-Length); kept right all the same.
        let value = HeaderValue::from(body.len());
        request
            .headers_mut()
            .insert(http::header::CONTENT_LENGTH, value);
    }
    request
}

/// A request body as far as it could be kept.
enum Collected {
    /// All of it.
    Whole(Bytes),
    /// What was read so far and the rest, to be sent once.
    Streaming(Body),
}

/// Reads what `body` has ready now, up to `limit` bytes.
async fn collect(mut body: Body, limit: usize) -> Result<Collected, Status> {
    let mut frames: VecDeque<Frame<Bytes>> = VecDeque::new();
    let mut size = 0usize;
    let whole = std::future::poll_fn(|cx| {
        loop {
            match Pin::new(&mut body).poll_frame(cx) {
                Poll::Ready(None) => return Poll::Ready(Ok(true)),
                Poll::Ready(Some(Ok(frame))) => {
                    let is_data = frame.is_data();
                    size = size.saturating_add(frame.data_ref().map_or(0, Bytes::len));
                    frames.push_back(frame);
                    if !is_data || size > limit {
                        return Poll::Ready(Ok(false));
                    }
                }
                Poll::Ready(Some(Err(status))) => return Poll::Ready(Err(status)),
                // A message still to come: a client stream. Send it as it comes.
                Poll::Pending => return Poll::Ready(Ok(false)),
            }
        }
    })
    .await?;
    if whole {
        // A unary call's message is one frame: kept as it is, not copied.
        if frames.len() == 1
            && let Some(Ok(data)) = frames.pop_front().map(Frame::into_data)
        {
            return Ok(Collected::Whole(data));
        }
        let mut bytes = BytesMut::with_capacity(size);
        for frame in frames {
            if let Ok(data) = frame.into_data() {
                bytes.extend_from_slice(&data);
            }
        }
        return Ok(Collected::Whole(bytes.freeze()));
    }
    // The frames already read, then the rest of the body.
    let read = futures_util::stream::iter(frames.into_iter().map(Ok));
    let rest = read.chain(BodyStream::new(body));
    Ok(Collected::Streaming(Body::new(StreamBody::new(rest))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_ready_body_is_kept_whole_and_a_large_one_is_not() {
        let body = Body::new(http_body_util::Full::new(Bytes::from_static(b"hello")));
        assert!(matches!(
            collect(body, 1024).await,
            Ok(Collected::Whole(bytes)) if bytes == "hello"
        ));
        let body = Body::new(http_body_util::Full::new(Bytes::from(vec![0u8; 2048])));
        let Ok(Collected::Streaming(body)) = collect(body, 1024).await else {
            panic!("over the limit is sent as it comes");
        };
        let sent = http_body_util::BodyExt::collect(body)
            .await
            .map(|c| c.to_bytes());
        assert_eq!(sent.ok().map(|b| b.len()), Some(2048), "nothing lost");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) >= Duration::from_millis(25) && backoff(1) <= Duration::from_millis(50));
        assert!(backoff(2) >= Duration::from_millis(50));
        assert!(backoff(30) <= Duration::from_secs(2));
    }
}
