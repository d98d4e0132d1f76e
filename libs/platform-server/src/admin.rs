//! The admin HTTP port: liveness, readiness and Prometheus metrics.
//!
//! Kept off the public port so that probes and scrapes never compete with traffic and
//! are never exposed at the edge. Nothing here opens a span: a probe every few seconds
//! is not something anyone wants to find among the traces.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use platform_shutdown::Shutdown;
use tokio::net::TcpListener;

use crate::{Readiness, ServerError};

/// The admin routes, apart from the listener so tests can drive them directly.
pub fn router(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(readiness)
}

/// Serves the admin routes on `listener` until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    readiness: Readiness,
    shutdown: Shutdown,
) -> Result<(), ServerError> {
    // Install the recorder before the first scrape so /metrics never 500s.
    let _ = crate::metrics::handle();
    axum::serve(listener, router(readiness))
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await
        .map_err(ServerError::Admin)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(readiness): State<Readiness>) -> impl IntoResponse {
    if readiness.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
}
