//! Matching a request to its route, once: [`find`] stores the [`RouteMatch`] in the
//! request's extensions, where the metrics label, the public-or-not decision and the
//! handler all read it. [`refuse_unmatched`] answers `404`/`405` below the metrics
//! layer, so those answers are counted too.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::Extensions;
use axum::middleware::Next;
use axum::response::Response;

use super::Edge;
use crate::errors::{method_not_allowed, not_found};
use crate::routing::{Route, RouteMatch};

/// The route label of requests that match no route, to bound label cardinality.
pub(super) const UNMATCHED: &str = "unmatched";

/// Layer: matches the request and stores the outcome.
pub(super) async fn find(
    State(edge): State<Arc<Edge>>,
    mut request: Request,
    next: Next,
) -> Response {
    let matched = edge.table.find(request.method(), request.uri().path());
    request.extensions_mut().insert(matched);
    next.run(request).await
}

/// Layer: answers requests that matched no route (`404`) or not with their method
/// (`405` with `Allow`).
pub(super) async fn refuse_unmatched(request: Request, next: Next) -> Response {
    match request.extensions().get::<RouteMatch>() {
        Some(RouteMatch::Found { .. }) => next.run(request).await,
        Some(RouteMatch::MethodNotAllowed { allowed }) => method_not_allowed(allowed),
        Some(RouteMatch::NotFound) | None => not_found(),
    }
}

/// `(dotted proto field path, decoded value)` of each path variable of a route.
pub(super) type Bindings = [(String, String)];

/// The matched route and its path bindings, if the request matched one.
pub(super) fn found(extensions: &Extensions) -> Option<(&Arc<Route>, &Bindings)> {
    match extensions.get::<RouteMatch>()? {
        RouteMatch::Found { route, bindings } => Some((route, bindings)),
        _ => None,
    }
}

/// `package.Service/Method` of a route, as the public-methods setting names it.
pub(super) fn full_method(route: &Route) -> &str {
    route.grpc_path().trim_start_matches('/')
}
