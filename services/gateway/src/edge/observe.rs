//! What an SRE sees of each request: the HTTP server span (continuing the client's
//! `traceparent`, named `METHOD /route/template`), the request counter, latency
//! histogram and in-flight gauge by method and route, and one access log line.
//!
//! Everything is recorded by an [`InFlight`] guard when it is dropped, not after the
//! inner layers return: a client that disconnects mid-request drops the request's
//! future, and the guard still takes the request out of the in-flight gauge and
//! records it, with status `499` (client closed request) as nginx does.

use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Instant;

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use metrics::{Counter, Gauge, Histogram};
use platform_telemetry::propagation::continue_trace;
use tracing::Instrument;
use tracing::field::Empty;

use super::{Edge, request_id, route};
use crate::routing::Route;

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

/// Matches the request's route, then admits and serves it ([`super::auth::admit`])
/// inside the request's span, observed by an [`InFlight`] guard; answers `404`/`405`
/// itself for a request that matched no route.
pub(super) async fn observe(edge: Arc<Edge>, mut request: Request) -> Response {
    route::find(&edge, &mut request);
    let method = request.method().clone();
    let route = route::found(request.extensions()).map(|(route, _)| Arc::clone(route));
    let label = route
        .as_deref()
        .map_or(route::UNMATCHED, |r| r.template().as_str());
    let request_id = request_id::of(request.headers()).to_owned();
    let span = tracing::info_span!(
        "http.server",
        otel.name = %format_args!("{method} {label}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = %label,
        url.path = %request.uri().path(),
        http.response.status_code = Empty,
        http.request_id = %request_id,
    );
    // A missing or malformed traceparent simply starts a new trace.
    continue_trace(&span, request.headers());

    let mut in_flight = InFlight::start(span.clone(), method, route, request_id);
    let refusal = route::refusal(request.extensions());
    let response = match refusal {
        Some(refusal) => refusal,
        None => super::auth::admit(&edge, request).instrument(span).await,
    };
    in_flight.status = Some(response.status());
    response
}

/// The metric handles of one route, made on its first request: recording a request
/// then takes no registry lookup and allocates no label.
#[derive(Debug, Default)]
pub(crate) struct RouteMetrics(OnceLock<Handles>);

#[derive(Debug)]
struct Handles {
    active: Gauge,
    /// Counter and histogram by status; a route answers with a handful of them.
    answered: RwLock<Vec<(u16, Counter, Histogram)>>,
}

impl Clone for RouteMetrics {
    /// A copy makes its handles anew, on first use; they record into the same series.
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl RouteMetrics {
    fn handles(&self, method: &Method, route: &str) -> &Handles {
        self.0.get_or_init(|| Handles {
            active: metrics::gauge!(names::ACTIVE, &labels(method, route)),
            answered: RwLock::default(),
        })
    }
}

impl Handles {
    /// Records one answered request.
    fn answered(&self, method: &Method, route: &str, status: u16, elapsed: f64) {
        let read = |answered: &[(u16, Counter, Histogram)]| {
            answered
                .iter()
                .find(|(s, ..)| *s == status)
                .map(|(_, requests, duration)| {
                    requests.increment(1);
                    duration.record(elapsed);
                })
        };
        // Plain handles: a panic while holding the lock leaves them usable.
        let answered = self.answered.read().unwrap_or_else(PoisonError::into_inner);
        if read(&answered).is_some() {
            return;
        }
        drop(answered);
        let mut answered = self
            .answered
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if read(&answered).is_none() {
            let labels = answered_labels(method, route, status);
            let (requests, duration) = (
                metrics::counter!(names::REQUESTS, &labels),
                metrics::histogram!(names::DURATION, &labels),
            );
            requests.increment(1);
            duration.record(elapsed);
            answered.push((status, requests, duration));
        }
    }
}

fn labels(method: &Method, route: &str) -> [(&'static str, String); 2] {
    [
        ("http_request_method", method.to_string()),
        ("http_route", route.to_owned()),
    ]
}

fn answered_labels(method: &Method, route: &str, status: u16) -> [(&'static str, String); 3] {
    let [method, route] = labels(method, route);
    [
        method,
        route,
        ("http_response_status_code", status.to_string()),
    ]
}

/// One request in flight: counted in the gauge from [`InFlight::start`] until it is
/// dropped, when the request is recorded.
struct InFlight {
    span: tracing::Span,
    method: Method,
    /// The matched route; `None` for requests that matched none.
    route: Option<Arc<Route>>,
    request_id: String,
    started: Instant,
    /// The answer's status; `None` while (and if) the request was never answered.
    status: Option<StatusCode>,
}

impl InFlight {
    fn start(
        span: tracing::Span,
        method: Method,
        route: Option<Arc<Route>>,
        request_id: String,
    ) -> Self {
        let in_flight = Self {
            span,
            method,
            route,
            request_id,
            started: Instant::now(),
            status: None,
        };
        match in_flight.handles() {
            Some(handles) => handles.active.increment(1.0),
            None => metrics::gauge!(names::ACTIVE, &labels(&in_flight.method, in_flight.label()))
                .increment(1.0),
        }
        in_flight
    }

    fn label(&self) -> &str {
        self.route
            .as_deref()
            .map_or(route::UNMATCHED, |r| r.template().as_str())
    }

    /// The route's cached handles, when the request matched a route (with its own
    /// method: a `HEAD` answered by a `GET` route keeps its own label).
    fn handles(&self) -> Option<&Handles> {
        let route = self.route.as_deref()?;
        (*route.http_method() == self.method).then(|| {
            route
                .metrics()
                .handles(&self.method, route.template().as_str())
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        let status = self.status.map_or(CLIENT_CLOSED, |s| s.as_u16());
        let seconds = elapsed.as_secs_f64();
        match self.handles() {
            Some(handles) => {
                handles.active.decrement(1.0);
                handles.answered(&self.method, self.label(), status, seconds);
            }
            None => {
                let labels = answered_labels(&self.method, self.label(), status);
                let [method, route, _] = &labels;
                metrics::gauge!(names::ACTIVE, &[method.clone(), route.clone()]).decrement(1.0);
                metrics::counter!(names::REQUESTS, &labels).increment(1);
                metrics::histogram!(names::DURATION, &labels).record(seconds);
            }
        }
        self.span.record("http.response.status_code", status);
        if self.status.is_some_and(|s| s.is_server_error()) {
            self.span.record("otel.status_code", "ERROR");
        }
        let _entered = self.span.enter();
        // Plain strings rather than `%` values: the line takes them without `fmt`.
        tracing::info!(
            target: "access",
            method = self.method.as_str(),
            route = self.label(),
            status,
            duration_ms = seconds * 1000.0,
            request_id = self.request_id.as_str(),
            "request finished"
        );
    }
}
