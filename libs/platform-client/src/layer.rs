//! The tower layer every outgoing gRPC call passes through.
//!
//! Per call it opens a client span `package.Service/Method` with the OpenTelemetry
//! RPC attributes (`rpc.system`, `rpc.service`, `rpc.method`, `rpc.grpc.status_code`)
//! as a child of the caller's current span, and writes that span's W3C `traceparent`
//! into the request, so the callee's server span hangs under it. When spans only
//! carry ids (nothing is exported) there is no client span: the caller's own span is
//! the parent the callee sees. It sends the
//! deadline as `grpc-timeout`: what the caller asked for (its remaining budget, set
//! with [`tonic::Request::set_timeout`]) bounded by the client's default timeout, and
//! fails the call with DEADLINE_EXCEEDED when it passes, including the time spent
//! waiting for a connection or for an endpoint to appear. It records the outcome on
//! the span and in [`names::CLIENT_DURATION`].
//!
//! The status arrives in the response headers (trailers-only answers, usually
//! errors) or in the trailers after the body, so the body is wrapped and the call is
//! recorded when the trailers arrive or when the body is dropped unfinished. Health
//! checks and reflection pass through untouched: probes make no spans and start no
//! traces.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use http::{HeaderMap, HeaderName, HeaderValue};
use metrics::Histogram;
use tonic::body::Body;
use tonic::{Code, Status};
use tower_layer::Layer;
use tower_service::Service;
use tracing::{Instrument, Span};

use crate::body::{Outcome, StatusBody, split_path, status_in};
use crate::handles::{ByCode, ByPath};

/// Metric names, in the Prometheus form of the OpenTelemetry RPC conventions.
pub mod names {
    /// Histogram of outgoing call durations in seconds, by `rpc_service`, `rpc_method`
    /// and `rpc_grpc_status_code`, labelled like the server side.
    pub const CLIENT_DURATION: &str = "rpc_client_call_duration_seconds";
    /// Counter of retried attempts, by `rpc_service`, `rpc_method` and `reason`
    /// (`connect`, `refused_stream`, `goaway`, `not_sent`, `unavailable`).
    pub const RETRIES: &str = "rpc_client_retries_total";
    /// Counter of endpoints taken out of an upstream's balancer, by `upstream`.
    pub const EJECTIONS: &str = "rpc_client_ejections_total";
}

const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// The answer of one call through [`ClientService`].
pub type ResponseFuture = BoxFuture<'static, Result<http::Response<Body>, Status>>;

/// Adds [`ClientService`] around a channel.
#[derive(Debug, Clone)]
pub struct ClientLayer {
    default_timeout: Duration,
    methods: Arc<ByPath<Method>>,
}

impl ClientLayer {
    /// `default_timeout` bounds every call, and is the deadline of calls that set none.
    pub fn new(default_timeout: Duration) -> Self {
        Self {
            default_timeout,
            methods: Arc::default(),
        }
    }
}

/// A method as the client's spans and metrics name it, with its duration histograms.
#[derive(Debug)]
pub struct Method {
    service: String,
    method: String,
    durations: ByCode<Histogram>,
}

impl Method {
    fn of(path: &str) -> Self {
        let (service, method) = split_path(path);
        Self {
            service: service.to_owned(),
            method: method.to_owned(),
            durations: ByCode::default(),
        }
    }
}

impl<S> Layer<S> for ClientLayer {
    type Service = ClientService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientService {
            inner,
            default_timeout: self.default_timeout,
            methods: Arc::clone(&self.methods),
            not_ready: None,
        }
    }
}

/// See the [module docs](self).
#[derive(Debug, Clone)]
pub struct ClientService<S> {
    inner: S,
    default_timeout: Duration,
    methods: Arc<ByPath<Method>>,
    /// Why the channel could not take the next call (no endpoint can be reached, say).
    /// Kept for [`Service::call`] rather than returned from `poll_ready`, so that a
    /// call refused before it left still gets its span and its metric.
    not_ready: Option<Status>,
}

impl<S> ClientService<S> {
    /// The bound put on every call.
    pub fn default_timeout(&self) -> Duration {
        self.default_timeout
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S> Service<http::Request<Body>> for ClientService<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Error: Into<tonic::codegen::StdError>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Status;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self.inner.poll_ready(cx) {
            Poll::Ready(Err(error)) => {
                self.not_ready = Some(Status::from_error(error.into()));
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Ok(())) => {
                self.not_ready = None;
                Poll::Ready(Ok(()))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let path = request.uri().path();
        if is_infrastructure(path) {
            if let Some(status) = self.not_ready.take() {
                return Box::pin(std::future::ready(Err(status)));
            }
            let future = self.inner.call(request);
            return Box::pin(async move {
                future
                    .await
                    .map_err(|error| Status::from_error(error.into()))
            });
        }
        let method = self.methods.get(path, || Method::of(path));
        // Under the id-only layer no span is recorded anywhere: the call goes out as a
        // child of the caller's span rather than of a client span nobody sees.
        let caller = Span::current();
        let span = if platform_telemetry::propagation::is_id_only(&caller) {
            Span::none()
        } else {
            client_span(&method.service, &method.method)
        };
        let asked = grpc_timeout(request.headers());
        let budget = asked.map_or(self.default_timeout, |asked| {
            asked.min(self.default_timeout)
        });
        let headers = request.headers_mut();
        // A deadline the caller sent within the bound is already written as it should be.
        if asked != Some(budget) {
            match encode_timeout(budget) {
                Some(value) => headers.insert(GRPC_TIMEOUT, value),
                None => headers.remove(GRPC_TIMEOUT),
            };
        }
        let parent = if span.is_none() { &caller } else { &span };
        platform_telemetry::propagation::inject_span(parent, headers);

        let call = Call {
            span: span.clone(),
            method,
            started: Instant::now(),
            budget,
            code: None,
        };
        if budget.is_zero() {
            call.finish(Code::DeadlineExceeded);
            return Box::pin(std::future::ready(Err(deadline_exceeded())));
        }
        if let Some(status) = self.not_ready.take() {
            call.finish(status.code());
            return Box::pin(std::future::ready(Err(status)));
        }
        let future = span.in_scope(|| self.inner.call(request));
        Box::pin(
            async move {
                match tokio::time::timeout(budget, future).await {
                    Err(_) => {
                        call.finish(Code::DeadlineExceeded);
                        Err(deadline_exceeded())
                    }
                    Ok(Err(error)) => {
                        let status = Status::from_error(error.into());
                        let status = if call.is_expired(status.code()) {
                            deadline_exceeded()
                        } else {
                            status
                        };
                        call.finish(status.code());
                        Err(status)
                    }
                    Ok(Ok(response)) => {
                        let mut call = call;
                        let (mut parts, body) = response.into_parts();
                        if let Some(code) = status_in(&parts.headers) {
                            call.code = Some(call.settle(code, &mut parts.headers));
                        }
                        let body = Body::new(StatusBody::new(body, move |outcome| {
                            let code = match outcome {
                                Outcome::Trailers(trailers) => {
                                    let code = status_in(trailers).unwrap_or(Code::Unknown);
                                    call.settle(code, trailers)
                                }
                                Outcome::Failed(code) => code,
                                // Fine after a trailers-only answer, a protocol error
                                // otherwise.
                                Outcome::Ended => call.code.unwrap_or(Code::Unknown),
                            };
                            call.finish(code);
                        }));
                        Ok(http::Response::from_parts(parts, body))
                    }
                }
            }
            .instrument(span),
        )
    }
}

/// Paths that are infrastructure, not traffic.
pub(crate) fn is_infrastructure(path: &str) -> bool {
    path.starts_with("/grpc.health.") || path.starts_with("/grpc.reflection.")
}

/// A client span for `service/method` (OpenTelemetry RPC conventions).
fn client_span(service: &str, method: &str) -> Span {
    crate::rpc_span!("grpc.client", "client", service, method)
}

fn deadline_exceeded() -> Status {
    Status::deadline_exceeded("deadline exceeded")
}

/// The `grpc-timeout` header: an integer of at most 8 digits and a unit.
pub fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(GRPC_TIMEOUT)?.to_str().ok()?;
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// `budget` as a `grpc-timeout` value, as tonic encodes it: the finest unit that
/// keeps the number within 8 digits. `None` past 99,999,999 hours.
pub fn encode_timeout(budget: Duration) -> Option<HeaderValue> {
    const UNITS: [(u128, u8); 6] = [
        (1, b'n'),
        (1_000, b'u'),
        (1_000_000, b'm'),
        (1_000_000_000, b'S'),
        (60_000_000_000, b'M'),
        (3_600_000_000_000, b'H'),
    ];
    let nanos = budget.as_nanos();
    let (value, unit) = UNITS
        .iter()
        .map(|&(per, unit)| (nanos / per, unit))
        .find(|&(value, _)| value <= 99_999_999)?;
    // At most 8 digits and the unit, written without `fmt`: this runs for every call.
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(u32::try_from(value).ok()?).as_bytes();
    let mut text = [0u8; 9];
    text[..digits.len()].copy_from_slice(digits);
    text[digits.len()] = unit;
    HeaderValue::from_bytes(&text[..=digits.len()]).ok()
}

/// One call in flight; records itself on its span and in the histogram when dropped.
struct Call {
    span: Span,
    method: Arc<Method>,
    started: Instant,
    budget: Duration,
    code: Option<Code>,
}

impl Call {
    /// Records the call now, with `code`.
    fn finish(mut self, code: Code) {
        self.code = Some(code);
        drop(self);
    }

    /// A CANCELLED answer once the budget is spent is the deadline passing: it is what
    /// a tonic server sends when its `grpc-timeout` fires, and what tonic's own client
    /// timer reports.
    fn is_expired(&self, code: Code) -> bool {
        code == Code::Cancelled && self.started.elapsed() >= self.budget
    }

    /// The code of a status found in `headers`, rewriting it there when the deadline
    /// passed, so the caller sees the same code as the span and the metric.
    fn settle(&self, code: Code, headers: &mut HeaderMap) -> Code {
        if !self.is_expired(code) {
            return code;
        }
        headers.remove("grpc-status-details-bin");
        // Only fails for details that cannot be encoded; this status has none.
        let _ = deadline_exceeded().add_header(headers);
        Code::DeadlineExceeded
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        let code = self.code.unwrap_or(if elapsed >= self.budget {
            Code::DeadlineExceeded
        } else {
            // The caller stopped waiting before an answer came.
            Code::Cancelled
        });
        self.span.record("rpc.grpc.status_code", code as i32);
        // From the caller's side any failure is an error, whoever caused it.
        if code != Code::Ok {
            self.span.record("otel.status_code", "ERROR");
        }
        let method = &self.method;
        let duration = method.durations.get(code, || {
            metrics::histogram!(
                names::CLIENT_DURATION,
                "rpc_service" => method.service.clone(),
                "rpc_method" => method.method.clone(),
                "rpc_grpc_status_code" => (code as i32).to_string()
            )
        });
        duration.record(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tonic_encoding(budget: Duration) -> Option<HeaderValue> {
        let mut request = tonic::Request::new(());
        request.set_timeout(budget);
        request.into_parts().0.into_headers().remove(GRPC_TIMEOUT)
    }

    #[test]
    fn timeouts_are_encoded_as_tonic_encodes_them_and_read_back() {
        for budget in [
            Duration::from_nanos(1),
            Duration::from_nanos(99_999_999),
            Duration::from_millis(250),
            Duration::from_secs(3),
            Duration::from_secs(7200),
            Duration::from_secs(3_600_000_000),
        ] {
            let value = encode_timeout(budget).unwrap();
            assert_eq!(Some(&value), tonic_encoding(budget).as_ref(), "{budget:?}");
            let mut headers = HeaderMap::new();
            headers.insert(GRPC_TIMEOUT, value);
            assert_eq!(grpc_timeout(&headers), Some(budget));
        }
        // More than 8 digits of nanoseconds: whole microseconds, as tonic sends it.
        let budget = Duration::from_nanos(100_000_001);
        assert_eq!(encode_timeout(budget), tonic_encoding(budget));
        let mut headers = HeaderMap::new();
        headers.insert(GRPC_TIMEOUT, HeaderValue::from_static("123456789S"));
        assert_eq!(grpc_timeout(&headers), None, "more than 8 digits");
        headers.insert(GRPC_TIMEOUT, HeaderValue::from_static("5x"));
        assert_eq!(grpc_timeout(&headers), None);
    }

    #[test]
    fn only_traffic_is_observed() {
        assert!(is_infrastructure("/grpc.health.v1.Health/Check"));
        assert!(is_infrastructure(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        ));
        assert!(!is_infrastructure("/users.v1.UserService/GetUser"));
    }
}
