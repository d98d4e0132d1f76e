//! The public HTTP port as a few tower layers over one service.
//!
//! [`service`] assembles it; a request meets the layers in this order:
//!
//! 1. `request_id`: a sane client `X-Request-Id` is kept, anything else replaced by a
//!    fresh UUID; the id is returned on every response.
//! 2. `cors`: browsers' preflights and CORS headers, when origins are configured.
//! 3. Compression: a response of at least `http.compression_min_bytes` is compressed
//!    as `Accept-Encoding` allows (gzip, br, zstd), streams excepted; a request body
//!    sent with `Content-Encoding` is decompressed (before the body limit counts it).
//!    A request that sends neither `Content-Encoding` nor an `Accept-Encoding` other
//!    than `identity` skips both (`Codings`).
//! 4. `Api`: `GET /openapi.json` is answered here; every other request is one async
//!    call through these steps, each in its own module under `edge/`:
//! 5. `observe`: the request is matched to a route once (`route`), and the
//!    [`RouteMatch`](crate::routing::RouteMatch) put in the request's extensions for
//!    everything below; then the HTTP server span (continuing `traceparent`), the
//!    request metrics and the access log line; `404`/`405` for requests that matched
//!    no route, observed like any other answer.
//! 6. `auth` (`admit`): the bearer token is verified and the outcome, an
//!    [`Identity`], put in the extensions; then [`crate::ratelimit`]: `429` for a
//!    caller over its rate, keyed by that identity (or by the client address on public
//!    methods); then `401` for a refused or missing token, after the rate limit, so
//!    guessing tokens spends the guesser's budget.
//! 7. `handler`: read the body within `http.max_body_bytes` (`413` past it),
//!    transcode, check the message against the `buf.validate` rules of its descriptor
//!    (`400` naming each field, the upstream never called), call the upstream, render
//!    the answer.
//!
//! The steps are plain async functions rather than layers of their own: a request
//! then moves through one future, boxed once, instead of a box, a copy of the request
//! and a copy of the answer per layer.
//!
//! Nothing here knows any particular RPC: routes come from the descriptors.

mod auth;
mod cors;
mod handler;
mod observe;
mod request_id;
mod route;
mod stream;

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{Extensions, HeaderMap, HeaderValue, Method, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use platform_api::rules::Validator;
use platform_auth::Verifier;
use platform_server::http::HttpService;
use prost_reflect::DescriptorPool;
use tokio_util::sync::CancellationToken;
use tower::{Service, ServiceBuilder};
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::decompression::RequestDecompressionLayer;

pub use auth::{Identity, Refusal};
pub use cors::cors;
pub(crate) use observe::RouteMetrics;
pub use observe::{describe_metrics, names};

use crate::client_address::ClientAddresses;
use crate::errors::method_not_allowed;
use crate::ratelimit::Limiter;
use crate::routing::RouteTable;
use crate::settings::{HttpSettings, Settings};
use crate::upstream::Upstream;

/// Everything a request needs, built once at start.
#[derive(Debug)]
pub struct Edge {
    /// Routes from every exposed service's annotations.
    pub table: RouteTable,
    /// Descriptors of every exposed service (for error details).
    pub pool: DescriptorPool,
    /// The `buf.validate` rules of the request messages, checked before any call.
    pub rules: Validator,
    /// Upstream of each fully qualified service name.
    pub upstreams: foldhash::HashMap<String, Upstream>,
    /// Verifies bearer tokens against the users service's keys.
    pub verifier: Arc<Verifier>,
    /// Methods callable without a token, `package.Service/Method`.
    pub public_methods: foldhash::HashSet<String>,
    /// Per-caller rate limits.
    pub limiter: Limiter,
    /// Limits and deadlines.
    pub http: HttpSettings,
    /// Client addresses, from the peer or the `X-Forwarded-For` of trusted proxies.
    pub client_addresses: ClientAddresses,
    /// The pre-rendered OpenAPI document.
    pub openapi: Bytes,
    /// Cancelled when the drain starts: NDJSON and SSE streams then end with an
    /// UNAVAILABLE error record instead of holding the drain for its grace period.
    pub draining: CancellationToken,
}

/// The public port, every layer included, apart from the listener so tests can drive
/// it directly.
pub fn service(edge: Arc<Edge>, settings: &Settings) -> HttpService {
    let api = Api(edge);
    let coded = ServiceBuilder::new()
        .map_response(|response: axum::http::Response<_>| response.map(Body::new))
        .layer(compression(settings.http.compression_min_bytes))
        .layer(RequestDecompressionLayer::new())
        .map_request(|request: axum::http::Request<_>| request.map(Body::new))
        .service(api.clone());
    let stack = ServiceBuilder::new()
        .layer(request_id::RequestIdLayer)
        .option_layer(cors(&settings.cors))
        .service(Codings {
            plain: api,
            coded: HttpService::new(coded),
        });
    HttpService::new(stack)
}

/// Compression and decompression, for the requests that ask for either: a body sent
/// with `Content-Encoding`, or an `Accept-Encoding` other than `identity`. The others
/// skip both layers, whose bodies (every codec's state, inline) would be copied at
/// each step of every answer.
#[derive(Debug, Clone)]
struct Codings {
    plain: Api,
    coded: HttpService,
}

impl Service<Request> for Codings {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.coded.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if asks_for_coding(request.headers()) {
            self.coded.call(request)
        } else {
            self.plain.call(request)
        }
    }
}

fn asks_for_coding(headers: &HeaderMap) -> bool {
    headers.contains_key(header::CONTENT_ENCODING)
        || headers
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .any(|value| {
                !value
                    .as_bytes()
                    .trim_ascii()
                    .eq_ignore_ascii_case(b"identity")
            })
}

/// The edge below the generic layers: see the [module docs](self).
#[derive(Debug, Clone)]
struct Api(Arc<Edge>);

impl Service<Request> for Api {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let edge = Arc::clone(&self.0);
        Box::pin(async move { Ok(api(edge, request).await) })
    }
}

async fn api(edge: Arc<Edge>, request: Request) -> Response {
    if request.uri().path() == "/openapi.json" {
        return openapi(&edge, request.method());
    }
    let mut response = observe::observe(edge, request).await;
    // API answers carry tokens and account data: no cache, shared or private, may
    // keep them (RFC 9111; OAuth 2.0 requires it of token responses).
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Responses compressed as the client accepts (gzip, br, zstd), from
/// `http.compression_min_bytes` up; never images (compressed already) nor streams.
fn compression(min_bytes: u64) -> CompressionLayer<impl Predicate> {
    let not_streamed = |_: StatusCode, _: Version, _: &HeaderMap, extensions: &Extensions| {
        extensions.get::<stream::Streamed>().is_none()
    };
    CompressionLayer::new().compress_when(
        SizeAbove::new(min_bytes)
            .and(NotForContentType::IMAGES)
            .and(not_streamed),
    )
}

/// Whether the request's route is a public method (callable without a token).
pub(crate) fn is_public(edge: &Edge, extensions: &Extensions) -> bool {
    route::found(extensions)
        .is_some_and(|(route, _)| edge.public_methods.contains(route::full_method(route)))
}

/// The OpenAPI document, to `GET` (and `HEAD`).
fn openapi(edge: &Edge, method: &Method) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return method_not_allowed(&[Method::GET, Method::HEAD]);
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        edge.openapi.clone(),
    )
        .into_response()
}
