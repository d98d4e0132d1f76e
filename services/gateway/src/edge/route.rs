//! Matching a request to its route, once: [`find`] stores the [`RouteMatch`] in the
//! request's extensions, where the metrics label, the public-or-not decision and the
//! handler all read it. [`refusal`] is the `404`/`405` the observing layer answers
//! for the others, so those answers are counted too.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::Extensions;
use axum::response::Response;

use super::Edge;
use crate::errors::{method_not_allowed, not_found};
use crate::routing::{Route, RouteMatch};

/// The route label of requests that match no route, to bound label cardinality.
pub(super) const UNMATCHED: &str = "unmatched";

/// Matches the request and stores the outcome in its extensions.
pub(super) fn find(edge: &Edge, request: &mut Request) {
    let matched = edge.table.find(request.method(), request.uri().path());
    request.extensions_mut().insert(matched);
}

/// The answer to a request that matched no route (`404`) or not with its method
/// (`405` with `Allow`); `None` for a matched one.
pub(super) fn refusal(extensions: &Extensions) -> Option<Response> {
    match extensions.get::<RouteMatch>() {
        Some(RouteMatch::Found { .. }) => None,
        Some(RouteMatch::MethodNotAllowed { allowed }) => Some(method_not_allowed(allowed)),
        Some(RouteMatch::NotFound) | None => Some(not_found()),
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
