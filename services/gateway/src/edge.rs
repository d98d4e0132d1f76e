//! The public HTTP port as a stack of tower layers over one handler.
//!
//! [`router`] assembles it; a request meets the layers in this order (each in its own
//! module under `edge/`):
//!
//! 1. `request_id`: a sane client `X-Request-Id` is kept, anything else replaced by a
//!    fresh UUID (tower-http's set layer); the id is returned on every response.
//! 2. `cors`: browsers' preflights and CORS headers, when origins are configured.
//! 3. Compression: a response of at least `http.compression_min_bytes` is compressed
//!    as `Accept-Encoding` allows (gzip, br, zstd), streams excepted; a request body
//!    sent with `Content-Encoding` is decompressed (before the body limit counts it).
//! 4. `GET /openapi.json` is answered here; every other path goes down the API stack:
//! 5. `observe` (one layer): the request is matched to a route once (`route`), and
//!    the [`RouteMatch`](crate::routing::RouteMatch) put in the request's extensions
//!    for everything below; then the HTTP server span (continuing `traceparent`), the
//!    request metrics and the access log line; `404`/`405` for requests that matched
//!    no route, observed like any other answer.
//! 6. `auth` (one layer, `admit`): the bearer token is verified and the outcome, an
//!    [`Identity`], put in the extensions; then [`crate::ratelimit`]: `429` for a
//!    caller over its rate, keyed by that identity (or by the client address on public
//!    methods); then `401` for a refused or missing token, after the rate limit, so
//!    guessing tokens spends the guesser's budget.
//! 7. The body limit (axum's `DefaultBodyLimit`): `413`, as the handler reads the body.
//! 8. `handler`: transcode, check the message against the `buf.validate` rules of
//!    its descriptor (`400` naming each field, the upstream never called), call the
//!    upstream, render the answer.
//!
//! Nothing here knows any particular RPC: routes come from the descriptors.

mod auth;
mod cors;
mod handler;
mod observe;
mod request_id;
mod route;
mod stream;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::handler::Handler;
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, Version, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use platform_api::rules::Validator;
use platform_auth::Verifier;
use prost_reflect::DescriptorPool;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower::util::MapRequestLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;

pub use auth::{Identity, Refusal};
pub use cors::cors;
pub(crate) use observe::RouteMetrics;
pub use observe::{describe_metrics, names};

use crate::client_address::ClientAddresses;
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
    pub upstreams: HashMap<String, Upstream>,
    /// Verifies bearer tokens against the users service's keys.
    pub verifier: Arc<Verifier>,
    /// Methods callable without a token, `package.Service/Method`.
    pub public_methods: HashSet<String>,
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
pub fn router(edge: Arc<Edge>, settings: &Settings) -> Router {
    let api = ServiceBuilder::new()
        // API answers carry tokens and account data: no cache, shared or private, may
        // keep them (RFC 9111; OAuth 2.0 requires it of token responses).
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(from_fn_with_state(Arc::clone(&edge), observe::observe))
        .layer(from_fn_with_state(Arc::clone(&edge), auth::admit))
        .layer(DefaultBodyLimit::max(edge.http.max_body_bytes))
        .service(handler::serve.with_state(Arc::clone(&edge)));

    Router::new()
        .route("/openapi.json", get(openapi))
        .with_state(edge)
        .fallback_service(api)
        .layer(
            ServiceBuilder::new()
                .layer(MapRequestLayer::new(request_id::drop_unusable))
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(PropagateRequestIdLayer::x_request_id())
                .option_layer(cors(&settings.cors))
                .layer(compression(settings.http.compression_min_bytes))
                .layer(RequestDecompressionLayer::new()),
        )
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
