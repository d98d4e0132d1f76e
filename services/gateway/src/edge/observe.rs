//! What an SRE sees of each request: the HTTP server span (continuing the client's
//! `traceparent`, named `METHOD /route/template`), the request counter, latency
//! histogram and in-flight gauge by method and route, and one access log line.
//!
//! Everything is recorded by an [`InFlight`] guard when it is dropped, not after the
//! inner layers return: a client that disconnects mid-request drops the request's
//! future, and the guard still takes the request out of the in-flight gauge and
//! records it, with status `499` (client closed request) as nginx does.

use std::time::Instant;

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use platform_telemetry::propagation::extract;
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{request_id, route};

/// Metric names, in the Prometheus form of the OpenTelemetry conventions.
pub mod names {
    /// Counter of answered requests, by method, route and status.
    pub const REQUESTS: &str = "http_server_requests_total";
    /// Histogram of request durations in seconds, by method, route and status.
    pub const DURATION: &str = "http_server_request_duration_seconds";
    /// Gauge of requests in flight.
    pub const ACTIVE: &str = "http_server_active_requests";
    /// Counter of requests refused by the rate limiter.
    pub const RATE_LIMITED: &str = "gateway_rate_limited_requests_total";
    /// Counter of calls to the shared rate-limit store (Redis) that failed or timed out.
    pub const RATE_LIMIT_BACKEND_ERRORS: &str = "gateway_rate_limit_backend_errors_total";
    /// Histogram of upstream call durations in seconds, by service, method and code.
    pub const UPSTREAM: &str = platform_client::names::CLIENT_DURATION;
}

/// `# HELP` lines of the gateway's own metrics, so a scrape explains itself.
pub fn describe_metrics() {
    metrics::describe_counter!(
        names::REQUESTS,
        "HTTP requests answered, by method, route template and status."
    );
    metrics::describe_histogram!(
        names::DURATION,
        metrics::Unit::Seconds,
        "Duration of answered HTTP requests, by method, route template and status."
    );
    metrics::describe_gauge!(
        names::ACTIVE,
        "HTTP requests in flight, by method and route template."
    );
    metrics::describe_counter!(
        names::RATE_LIMITED,
        "Requests refused with 429 because their caller was over its rate."
    );
    metrics::describe_counter!(
        names::RATE_LIMIT_BACKEND_ERRORS,
        "Calls to the shared rate-limit store (Redis) that failed or timed out; the requests were decided without it."
    );
}

/// The status recorded for a request whose client went away before the answer.
const CLIENT_CLOSED: u16 = 499;

/// Layer: runs the rest of the stack inside the request's span, observed by an
/// [`InFlight`] guard.
pub(super) async fn observe(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = route::label(request.extensions()).to_owned();
    let request_id = request_id::of(request.headers()).to_owned();
    let span = tracing::info_span!(
        "http.server",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = %route,
        url.path = %request.uri().path(),
        http.response.status_code = Empty,
        http.request_id = %request_id,
    );
    // A missing or malformed traceparent simply starts a new trace.
    let _ = span.set_parent(extract(request.headers()));

    let mut in_flight = InFlight::start(span.clone(), method, route, request_id);
    let response = next.run(request).instrument(span).await;
    in_flight.status = Some(response.status());
    response
}

/// One request in flight: counted in the gauge from [`InFlight::start`] until it is
/// dropped, when the request is recorded.
struct InFlight {
    span: tracing::Span,
    method: Method,
    route: String,
    request_id: String,
    started: Instant,
    /// The answer's status; `None` while (and if) the request was never answered.
    status: Option<StatusCode>,
}

impl InFlight {
    fn start(span: tracing::Span, method: Method, route: String, request_id: String) -> Self {
        let in_flight = Self {
            span,
            method,
            route,
            request_id,
            started: Instant::now(),
            status: None,
        };
        metrics::gauge!(names::ACTIVE, &in_flight.labels()).increment(1.0);
        in_flight
    }

    fn labels(&self) -> [(&'static str, String); 2] {
        [
            ("http_request_method", self.method.to_string()),
            ("http_route", self.route.clone()),
        ]
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let [method, route] = self.labels();
        metrics::gauge!(names::ACTIVE, &[method.clone(), route.clone()]).decrement(1.0);

        let elapsed = self.started.elapsed();
        let status = self.status.map_or(CLIENT_CLOSED, |s| s.as_u16());
        self.span.record("http.response.status_code", status);
        if self.status.is_some_and(|s| s.is_server_error()) {
            self.span.record("otel.status_code", "ERROR");
        }
        let labels = [
            method,
            route,
            ("http_response_status_code", status.to_string()),
        ];
        metrics::counter!(names::REQUESTS, &labels).increment(1);
        metrics::histogram!(names::DURATION, &labels).record(elapsed.as_secs_f64());
        let _entered = self.span.enter();
        tracing::info!(
            target: "access",
            method = %self.method,
            route = %self.route,
            status,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            request_id = %self.request_id,
            "request finished"
        );
    }
}
