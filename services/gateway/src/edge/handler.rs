//! The one handler behind the layers: transcode the request to a gRPC message, check
//! it against the `buf.validate` rules its descriptor declares, call the upstream,
//! render its answer as JSON (or raw bytes, for `google.api.HttpBody`).
//! Routing, authentication, rate limiting and observation have happened above; the
//! handler reads their results from the request's extensions. Which headers travel
//! either way is `forward`'s; how JSON is written, the upstream's policy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;
use platform_auth::BearerToken;
use prost_reflect::{DynamicMessage, FieldDescriptor, Value};
use tonic::Code;
use tonic::metadata::MetadataMap;

use super::{Edge, Identity, request_id, route, stream};
use crate::errors::{
    edge_error, not_found, payload_too_large, request_timeout, transcode_error, upstream_error,
};
use crate::forward::{self, METADATA_PREFIX, TRAILER_PREFIX};
use crate::routing::Route;
use crate::transcode::{Body, build_request_with, httpbody, render_response_with};
use crate::upstream::{self, Policy, Reply, Upstream};

/// What travels with a call besides its message.
#[derive(Debug)]
struct Outgoing {
    /// `Bearer` and the caller's verified token, for the service to verify again
    /// (marked sensitive: its `Debug` is redacted, and HTTP/2 never indexes it).
    authorization: Option<HeaderValue>,
    /// The request's id, so the service's logs carry it too.
    request_id: Option<HeaderValue>,
    /// The deadline, sent as `grpc-timeout`.
    timeout: Duration,
    /// The client's headers the upstream asked for, and `x-forwarded-*`.
    forwarded: MetadataMap,
    /// Whether the call may be sent twice: a GET route, or a message carrying an
    /// idempotency key (`request_id`).
    safe_to_repeat: bool,
}

/// Route → transcode → call → render.
pub(super) async fn serve(edge: &Edge, request: Request) -> Response {
    let Some((route, bindings)) = route::found(request.extensions())
        .map(|(route, bindings)| (Arc::clone(route), bindings.to_vec()))
    else {
        return not_found();
    };
    let service = route.method().parent_service();
    let service = service.full_name();
    let Some(upstream) = edge.upstreams.get(service) else {
        tracing::error!(%service, "no upstream configured for service");
        return edge_error(
            Code::Unavailable,
            "the service is unavailable, retry later",
            &[],
        );
    };
    let policy = upstream.policy();
    let mut outgoing = outgoing(edge, &route, policy, &request);
    let query = request.uri().query().map(str::to_owned);
    // The headers are taken rather than copied: reading the body needs only the rest.
    let (mut parts, body) = request.into_parts();
    let headers = std::mem::take(&mut parts.headers);
    drop(parts);
    let bytes = match read_body(body, &headers, edge.http.max_body_bytes).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let body = Body {
        bytes: &bytes,
        content_type: header_text(&headers, &header::CONTENT_TYPE),
    };
    let built = build_request_with(&route, &bindings, query.as_deref(), &body, &policy.json);
    let mut message = match built {
        Ok(message) => message,
        Err(error) => return transcode_error(&error),
    };
    let key_field = route.idempotency_key();
    if let (Some(field), Some(key)) = (key_field, header_text(&headers, &IDEMPOTENCY_KEY)) {
        apply_idempotency_key(&mut message, field, key);
    }
    // The rules of any team's descriptors, checked before a call is spent on a
    // request the service would refuse: 400, each field named, as the services
    // themselves would answer.
    let violations = edge.rules.violations(&message);
    if !violations.is_empty() {
        let message = format!("invalid request: {}", platform_api::describe(&violations));
        let pairs: Vec<(String, String)> = violations
            .into_iter()
            .map(|v| (v.field, v.description))
            .collect();
        return edge_error(Code::InvalidArgument, &message, &pairs);
    }
    outgoing.safe_to_repeat |= key_field.is_some_and(|field| carries_key(&message, field));
    // The calls' futures are boxed: inline, their kilobytes would make the request's
    // whole future as large, and it is copied whole into its box before it starts.
    if route.method().is_server_streaming() {
        Box::pin(call_stream(
            edge, upstream, route, message, outgoing, &headers,
        ))
        .await
    } else {
        Box::pin(call_unary(edge, upstream, &route, message, outgoing)).await
    }
}

/// The unary call, rendered as JSON (or raw bytes for `google.api.HttpBody`).
async fn call_unary(
    edge: &Edge,
    upstream: &Upstream,
    route: &Route,
    message: DynamicMessage,
    outgoing: Outgoing,
) -> Response {
    let policy = upstream.policy();
    match upstream.unary(outgoing.call(route, message)).await {
        Ok(reply) => render(route, &reply, policy),
        Err(status) => failed(&status, edge, policy),
    }
}

/// The server-streaming call, as NDJSON or Server-Sent Events (or a chunked download
/// for `google.api.HttpBody`).
async fn call_stream(
    edge: &Edge,
    upstream: &Upstream,
    route: Arc<Route>,
    message: DynamicMessage,
    outgoing: Outgoing,
    headers: &HeaderMap,
) -> Response {
    let policy = upstream.policy();
    let opened = upstream
        .server_streaming(outgoing.call(&route, message))
        .await;
    let (metadata, replies) = match opened {
        Ok(opened) => opened,
        Err(status) => return failed(&status, edge, policy),
    };
    let mut response = if httpbody::raw_response(&route) {
        stream::download(replies, &edge.pool).await
    } else {
        let heartbeat = Duration::from_millis(edge.http.sse_heartbeat_ms);
        let (pool, json) = (edge.pool.clone(), policy.json);
        let draining = edge.draining.clone();
        stream::respond(headers, route, pool, json, replies, heartbeat, draining)
    };
    policy
        .headers
        .returned(&metadata, METADATA_PREFIX, response.headers_mut());
    response
}

/// What travels with the call of `route` besides its message: the caller's token, the
/// request id, the deadline (a stream's own maximum for streams), the forwarded
/// headers, and whether a GET makes it safe to repeat.
fn outgoing(edge: &Edge, route: &Route, policy: &Policy, request: &Request) -> Outgoing {
    let headers = request.headers();
    let limit = if route.method().is_server_streaming() {
        edge.http.max_stream_duration_ms
    } else {
        edge.http.default_timeout_ms
    };
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    let mut forwarded = policy.headers.outgoing(headers);
    forward::forwarded(&edge.client_addresses, peer, headers, &mut forwarded);
    Outgoing {
        authorization: match request.extensions().get::<Identity>() {
            Some(Identity::Caller { token, .. }) => authorization(headers, token),
            _ => None,
        },
        request_id: headers.get(request_id::HEADER).map(|id| {
            let mut id = id.clone();
            // One per request: kept out of HTTP/2's header table, where it would only
            // push out the headers that do repeat.
            id.set_sensitive(true);
            id
        }),
        timeout: deadline(headers, Duration::from_millis(limit)),
        forwarded,
        safe_to_repeat: request.method() == axum::http::Method::GET,
    }
}

/// The answer for an upstream's error status, with the metadata it carried that the
/// upstream's rules let through (as trailers: an error is all trailers in gRPC).
fn failed(status: &tonic::Status, edge: &Edge, policy: &Policy) -> Response {
    let mut response = upstream_error(status, &edge.pool);
    policy
        .headers
        .returned(status.metadata(), TRAILER_PREFIX, response.headers_mut());
    response
}

impl Outgoing {
    /// The call of `route` with `message`, carrying what travels with it.
    fn call<'a>(self, route: &'a Route, message: DynamicMessage) -> upstream::Call<'a> {
        let (timeout, safe_to_repeat) = (self.timeout, self.safe_to_repeat);
        upstream::Call {
            path: route.grpc_path(),
            message,
            output: route.method().output(),
            metadata: self.metadata(),
            timeout,
            safe_to_repeat,
        }
    }

    /// The forwarded headers, the token and the request id as gRPC metadata.
    fn metadata(self) -> MetadataMap {
        let mut headers = self.forwarded.into_headers();
        if let Some(authorization) = self.authorization {
            headers.insert(header::AUTHORIZATION, authorization);
        }
        if let Some(id) = self.request_id {
            headers.insert(request_id::HEADER, id);
        }
        MetadataMap::from_headers(headers)
    }
}

/// The `Authorization` the service gets: the client's own header, shared rather than
/// copied, when it reads exactly `Bearer <token>`; else written anew.
fn authorization(headers: &HeaderMap, token: &BearerToken) -> Option<HeaderValue> {
    let mut value = match headers.get(header::AUTHORIZATION) {
        Some(value)
            if value.as_bytes().strip_prefix(b"Bearer ") == Some(token.as_str().as_bytes()) =>
        {
            value.clone()
        }
        _ => HeaderValue::try_from(format!("Bearer {}", token.as_str())).ok()?,
    };
    value.set_sensitive(true);
    Some(value)
}

/// The upstream's answer: canonical proto3 JSON (or the raw bytes of an `HttpBody`),
/// with its allowed metadata and trailers as headers.
fn render(route: &Route, reply: &Reply, policy: &Policy) -> Response {
    let mut response = if httpbody::raw_response(route) {
        let (content_type, data) = httpbody::parts(&reply.message);
        let mut response = (StatusCode::OK, data).into_response();
        if let Ok(value) = HeaderValue::from_str(&content_type) {
            response.headers_mut().insert(header::CONTENT_TYPE, value);
        }
        response
    } else {
        match render_response_with(route, &reply.message, &policy.json) {
            Ok(json) => {
                let mut response = (StatusCode::OK, json).into_response();
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                response
            }
            Err(error) => {
                tracing::error!(%error, "cannot render the upstream response");
                return edge_error(Code::Internal, "internal error", &[]);
            }
        }
    };
    let headers = response.headers_mut();
    policy
        .headers
        .returned(&reply.headers, METADATA_PREFIX, headers);
    policy
        .headers
        .returned(&reply.trailers, TRAILER_PREFIX, headers);
    response
}

/// Reads the body within `limit`; over it is 413. A `Content-Length` in `headers` (the
/// request's) over `limit` is refused before anything is read.
async fn read_body(
    body: axum::body::Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, Response> {
    let declared =
        header_text(headers, &header::CONTENT_LENGTH).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(payload_too_large(limit));
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            Err(payload_too_large(limit))
        }
        Err(error) if is_timeout(&*error) => Err(request_timeout()),
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

/// Whether reading the body failed because the client took too long to send it.
fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<platform_server::http::BodyReadTimeout>() {
            return true;
        }
        cause = error.source();
    }
    false
}

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const REQUEST_TIMEOUT: HeaderName = HeaderName::from_static("request-timeout");

fn header_text<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The client's deadline: `grpc-timeout` or `Request-Timeout` (seconds), never more
/// than the configured default.
fn deadline(headers: &HeaderMap, default: Duration) -> Duration {
    let grpc = platform_server::deadline::client_timeout(headers);
    let seconds = header_text(headers, &REQUEST_TIMEOUT)
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(|s| Duration::from_secs_f64(s.min(default.as_secs_f64())));
    [grpc, seconds]
        .into_iter()
        .flatten()
        .fold(default, Duration::min)
}

/// Whether the message's idempotency key `field` is set: the service then answers a
/// repeat with the first result, so the call is safe to send twice.
fn carries_key(message: &DynamicMessage, field: &FieldDescriptor) -> bool {
    matches!(&*message.get_field(field), Value::String(key) if !key.is_empty())
}

/// `Idempotency-Key` fills the idempotency key `field` when the body left it empty.
fn apply_idempotency_key(message: &mut DynamicMessage, field: &FieldDescriptor, key: &str) {
    if !message.has_field(field) {
        message.set_field(field, Value::String(key.to_owned()));
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
    fn only_a_create_with_an_idempotency_key_is_safe_to_repeat() {
        let pool = platform_proto::descriptor_pool();
        let orders = pool
            .get_service_by_name("orders.v1.OrderService")
            .expect("in the pool");
        let table = crate::routing::RouteTable::build(pool, [orders]).expect("routes");
        let route = |method: &str, path: &str| {
            let found = table.find(
                &axum::http::Method::from_bytes(method.as_bytes()).unwrap(),
                path,
            );
            match found {
                crate::routing::RouteMatch::Found { route, .. } => route,
                _ => panic!("{method} {path} is routed"),
            }
        };
        let create = route("POST", "/v1/orders");
        let field = create
            .idempotency_key()
            .expect("CreateOrder has a request_id");
        let mut message = DynamicMessage::new(create.method().input());
        assert!(!carries_key(&message, field));
        apply_idempotency_key(&mut message, field, "checkout-1");
        assert!(carries_key(&message, field));
        // A key in the body wins over the header.
        apply_idempotency_key(&mut message, field, "checkout-2");
        assert!(matches!(&*message.get_field(field), Value::String(key) if key == "checkout-1"));
        let cancel = route("POST", "/v1/orders/o-1:cancel");
        assert!(
            cancel.idempotency_key().is_none(),
            "no request_id to carry it"
        );
    }
}
