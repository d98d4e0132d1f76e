//! The public HTTP port: every request is matched to a route, authenticated, rate
//! limited, transcoded to a gRPC call, and answered as JSON.
//!
//! One handler serves every route; nothing here knows any particular RPC. Per request
//! it opens the HTTP server span (continuing the client's `traceparent`), takes or
//! makes the `X-Request-Id`, and records the request in Prometheus and the access log.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body_util::{BodyExt, Limited};
use platform_auth::{Verifier, VerifyError};
use platform_telemetry::propagation::extract;
use prost_reflect::{DescriptorPool, DynamicMessage, ReflectMessage, Value};
use tonic::Code;
use tonic::metadata::{MetadataMap, MetadataValue};
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::errors::{edge_error, upstream_error};
use crate::ratelimit::Limiter;
use crate::routing::{Route, RouteMatch, RouteTable};
use crate::settings::HttpSettings;
use crate::transcode::{build_request, render_response};
use crate::upstream::Upstream;

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
}

/// The route label of requests that match no route, to bound label cardinality.
const UNMATCHED: &str = "unmatched";

/// Everything a request needs, built once at start.
#[derive(Debug)]
pub struct Edge {
    /// Routes from every exposed service's annotations.
    pub table: RouteTable,
    /// Descriptors of every exposed service (for error details).
    pub pool: DescriptorPool,
    /// Upstream of each fully qualified service name.
    pub upstreams: HashMap<String, Upstream>,
    /// Verifies bearer tokens against the users service's keys.
    pub verifier: Arc<Verifier>,
    /// Methods callable without a token, `package.Service/Method`.
    pub public_methods: HashSet<String>,
    /// Per-caller rate limits.
    pub limiter: Limiter,
    /// Limits and deadlines.
    pub http: HttpSettings,
    /// Take the client address from `X-Forwarded-For`.
    pub trust_forwarded_for: bool,
    /// The pre-rendered OpenAPI document.
    pub openapi: Bytes,
}

/// The public routes, apart from the listener so tests can drive them directly.
pub fn router(edge: Arc<Edge>) -> Router {
    Router::new()
        .route("/openapi.json", get(openapi))
        .fallback(handle)
        .with_state(edge)
}

async fn openapi(State(edge): State<Arc<Edge>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        edge.openapi.clone(),
    )
        .into_response()
}

/// A client-supplied request id if it is sane, else a fresh one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

async fn handle(
    State(edge): State<Arc<Edge>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let request_id = request_id(request.headers());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let matched = edge.table.find(&method, &path);
    let route_label = match &matched {
        RouteMatch::Found { route, .. } => route.template().as_str().to_owned(),
        _ => UNMATCHED.to_owned(),
    };

    let span = tracing::info_span!(
        "http.server",
        otel.name = %format_args!("{method} {route_label}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = %route_label,
        url.path = %path,
        http.response.status_code = Empty,
        http.request_id = %request_id,
    );
    let _ = span.set_parent(extract(request.headers()));

    let labels = [
        ("http_request_method", method.to_string()),
        ("http_route", route_label.clone()),
    ];
    metrics::gauge!(names::ACTIVE, &labels).increment(1.0);
    let mut response = edge
        .serve(matched, request, peer, &request_id)
        .instrument(span.clone())
        .await;
    metrics::gauge!(names::ACTIVE, &labels).decrement(1.0);

    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let status = response.status();
    let elapsed = started.elapsed();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    let labels = [
        ("http_request_method", method.to_string()),
        ("http_route", route_label.clone()),
        ("http_response_status_code", status.as_u16().to_string()),
    ];
    metrics::counter!(names::REQUESTS, &labels).increment(1);
    metrics::histogram!(names::DURATION, &labels).record(elapsed.as_secs_f64());
    span.in_scope(|| {
        tracing::info!(
            target: "access",
            method = %method,
            route = %route_label,
            status = status.as_u16(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            request_id = %request_id,
            "request finished"
        );
    });
    response
}

/// The bearer token of an `Authorization` header; `Err` when the header is there but
/// is not a bearer token.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ()> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ())?;
    let (scheme, token) = value.split_once(' ').ok_or(())?;
    if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() {
        Ok(Some(token.trim()))
    } else {
        Err(())
    }
}

/// 401 with the RFC 6750 challenge.
fn unauthorized(message: &str, invalid_token: bool) -> Response {
    let mut response = edge_error(Code::Unauthenticated, message, &[]);
    let challenge = if invalid_token {
        format!(
            "Bearer realm=\"platform\", error=\"invalid_token\", error_description=\"{message}\""
        )
    } else {
        "Bearer realm=\"platform\"".to_owned()
    };
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// 429 with `Retry-After` in whole seconds (at least 1).
fn too_many_requests(wait: Duration) -> Response {
    metrics::counter!(names::RATE_LIMITED).increment(1);
    let mut response = edge_error(
        Code::ResourceExhausted,
        "rate limit exceeded, slow down",
        &[],
    );
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}

/// The client's deadline: `grpc-timeout` or `Request-Timeout` (seconds), never more
/// than the configured default.
fn deadline(headers: &HeaderMap, default: Duration) -> Duration {
    let grpc = platform_server::deadline::client_timeout(headers);
    let seconds = headers
        .get("request-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(|s| Duration::from_secs_f64(s.min(default.as_secs_f64())));
    [grpc, seconds]
        .into_iter()
        .flatten()
        .fold(default, Duration::min)
}

/// Response metadata a client may need, as grpc-gateway surfaces it.
fn metadata_headers(metadata: &MetadataMap, headers: &mut HeaderMap) {
    for (key, value) in metadata.clone().into_headers() {
        let Some(key) = key else { continue };
        let name = key.as_str();
        if name.starts_with("grpc-") || matches!(name, "content-type" | "date" | "te" | "trailer") {
            continue;
        }
        if let Ok(header) = HeaderName::from_bytes(format!("grpc-metadata-{name}").as_bytes()) {
            headers.append(header, value);
        }
    }
}

impl Edge {
    async fn serve(
        &self,
        matched: RouteMatch,
        request: Request,
        peer: SocketAddr,
        request_id: &str,
    ) -> Response {
        match matched {
            RouteMatch::NotFound => edge_error(Code::NotFound, "no route matches this path", &[]),
            RouteMatch::MethodNotAllowed { allowed } => {
                let mut response =
                    edge_error(Code::Unimplemented, "method not allowed for this path", &[]);
                *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
                let allow = allowed
                    .iter()
                    .map(Method::as_str)
                    .collect::<Vec<_>>()
                    .join(", ");
                if let Ok(value) = HeaderValue::from_str(&allow) {
                    response.headers_mut().insert(header::ALLOW, value);
                }
                response
            }
            RouteMatch::Found { route, bindings } => {
                self.call(&route, &bindings, request, peer, request_id)
                    .await
            }
        }
    }

    fn client_address(&self, headers: &HeaderMap, peer: SocketAddr) -> String {
        if self.trust_forwarded_for
            && let Some(first) = headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        {
            return first.to_owned();
        }
        peer.ip().to_string()
    }

    async fn call(
        &self,
        route: &Route,
        bindings: &[(String, String)],
        request: Request,
        peer: SocketAddr,
        request_id: &str,
    ) -> Response {
        let (parts, body) = request.into_parts();
        let headers = &parts.headers;
        let full_method = route.grpc_path().trim_start_matches('/');
        let client = format!("ip:{}", self.client_address(headers, peer));

        // Authentication: a token, when present, must be valid even on public routes.
        let token = match bearer(headers) {
            Ok(token) => token,
            Err(()) => {
                return self.limited(&client).unwrap_or_else(|| {
                    unauthorized("the Authorization header must be `Bearer <token>`", true)
                });
            }
        };
        let caller = match token {
            Some(token) => match self.verifier.verify(token).await {
                Ok(caller) => Some(caller),
                Err(VerifyError::KeysUnavailable) => {
                    return edge_error(
                        Code::Unavailable,
                        "cannot verify tokens right now, retry later",
                        &[],
                    );
                }
                Err(error) => {
                    return self
                        .limited(&client)
                        .unwrap_or_else(|| unauthorized(&error.to_string(), true));
                }
            },
            None if !self.public_methods.contains(full_method) => {
                return self
                    .limited(&client)
                    .unwrap_or_else(|| unauthorized("missing access token", false));
            }
            None => None,
        };

        let key = caller
            .as_ref()
            .map_or(client, |c| format!("sub:{}", c.subject));
        if let Some(refused) = self.limited(&key) {
            return refused;
        }

        let body = match read_body(&parts.headers, body, self.http.max_body_bytes).await {
            Ok(body) => body,
            Err(response) => return response,
        };
        let mut message = match build_request(route, bindings, parts.uri.query(), &body) {
            Ok(message) => message,
            Err(error) if error.is_client_error() => {
                let violations: Vec<(String, String)> = error
                    .field()
                    .map(|field| vec![(field.to_owned(), error.to_string())])
                    .unwrap_or_default();
                return edge_error(Code::InvalidArgument, &error.to_string(), &violations);
            }
            Err(error) => {
                tracing::error!(%error, "cannot build the upstream request");
                return edge_error(Code::Internal, "internal error", &[]);
            }
        };
        apply_idempotency_key(&mut message, headers);

        let service = route.method().parent_service().full_name().to_owned();
        let Some(upstream) = self.upstreams.get(&service) else {
            tracing::error!(%service, "no upstream configured for service");
            return edge_error(
                Code::Unavailable,
                "the service is unavailable, retry later",
                &[],
            );
        };
        let timeout = deadline(headers, Duration::from_millis(self.http.default_timeout_ms));

        let mut metadata = MetadataMap::new();
        if let Some(token) = token
            && let Ok(value) = MetadataValue::try_from(format!("Bearer {token}"))
        {
            metadata.insert("authorization", value);
        }
        if let Ok(value) = MetadataValue::try_from(request_id) {
            metadata.insert("x-request-id", value);
        }
        let outcome = upstream
            .unary(
                route.grpc_path(),
                message,
                route.method().output(),
                metadata,
                timeout,
            )
            .await;

        match outcome {
            Ok((reply, metadata)) => match render_response(route, &reply) {
                Ok(json) => {
                    let mut response = (StatusCode::OK, json).into_response();
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    metadata_headers(&metadata, response.headers_mut());
                    response
                }
                Err(error) => {
                    tracing::error!(%error, "cannot render the upstream response");
                    edge_error(Code::Internal, "internal error", &[])
                }
            },
            Err(status) => upstream_error(&status, &self.pool),
        }
    }

    /// The 429 answer if `key` is over its rate.
    fn limited(&self, key: &str) -> Option<Response> {
        self.limiter.check(key).err().map(too_many_requests)
    }
}

/// Reads the body up to `limit` bytes; over it is 413.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Response> {
    let too_large = || {
        let mut response = edge_error(
            Code::InvalidArgument,
            &format!("request body larger than {limit} bytes"),
            &[],
        );
        *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
        response
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(error) => {
            tracing::info!(%error, "request body could not be read");
            Err(edge_error(
                Code::InvalidArgument,
                "the request body could not be read",
                &[],
            ))
        }
    }
}

/// `Idempotency-Key` fills a string `request_id` field the body left empty.
fn apply_idempotency_key(message: &mut DynamicMessage, headers: &HeaderMap) {
    let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) else {
        return;
    };
    let Some(field) = message.descriptor().get_field_by_name("request_id") else {
        return;
    };
    if field.kind() != prost_reflect::Kind::String || field.is_list() {
        return;
    }
    if !message.has_field(&field) {
        message.set_field(&field, Value::String(key.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_deadlines_only_shorten() {
        let default = Duration::from_secs(10);
        let mut h = HeaderMap::new();
        assert_eq!(deadline(&h, default), default);
        h.insert("request-timeout", HeaderValue::from_static("2.5"));
        assert_eq!(deadline(&h, default), Duration::from_millis(2500));
        h.insert("grpc-timeout", HeaderValue::from_static("300m"));
        assert_eq!(deadline(&h, default), Duration::from_millis(300));
        let mut long = HeaderMap::new();
        long.insert("request-timeout", HeaderValue::from_static("3600"));
        assert_eq!(deadline(&long, default), default);
        long.insert("request-timeout", HeaderValue::from_static("-1"));
        assert_eq!(deadline(&long, default), default);
    }

    #[test]
    fn bearer_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), Ok(None));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc.def"),
        );
        assert_eq!(bearer(&h), Ok(Some("abc.def")));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  xyz "),
        );
        assert_eq!(bearer(&h), Ok(Some("xyz")));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcjpwdw=="),
        );
        assert_eq!(bearer(&h), Err(()));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), Err(()));
    }

    #[test]
    fn request_ids_are_taken_when_sane() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&h), "abc-123");
        h.insert("x-request-id", HeaderValue::from_static("has space"));
        assert_ne!(request_id(&h), "has space");
    }
}
