//! The admin HTTP port: liveness, readiness, Prometheus metrics, and the fault
//! injection rules (`GET`/`PUT /faults`) where fault injection is enabled.
//!
//! Kept off the public port so that probes and scrapes never compete with traffic and
//! are never exposed at the edge. Nothing here opens a span: a probe every few seconds
//! is not something anyone wants to find among the traces.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use platform_shutdown::Shutdown;
use tokio::net::TcpListener;

use crate::faults::{FaultRule, FaultSettings, Faults};
use crate::{Readiness, ServerError};

/// The admin routes, apart from the listener so tests can drive them directly.
pub fn router(readiness: Readiness, faults: Option<Faults>) -> Router {
    let faults = match faults {
        Some(faults) => get(get_faults).put(put_faults).with_state(faults),
        None => any(faults_disabled),
    };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz).with_state(readiness))
        .route("/metrics", get(metrics))
        .route("/faults", faults)
}

/// Serves the admin routes on `listener` until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    readiness: Readiness,
    faults: Option<Faults>,
    shutdown: Shutdown,
) -> Result<(), ServerError> {
    // Install the recorder before the first scrape so /metrics never 500s.
    let _ = crate::metrics::handle();
    axum::serve(listener, router(readiness, faults))
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

/// The body of `PUT /faults`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRules {
    rules: Vec<FaultRule>,
}

async fn get_faults(State(faults): State<Faults>) -> impl IntoResponse {
    Json(FaultSettings {
        enabled: true,
        rules: faults.rules(),
    })
}

async fn put_faults(
    State(faults): State<Faults>,
    body: Result<Json<FaultRules>, JsonRejection>,
) -> Response {
    let rules = match body {
        Ok(Json(body)) => body.rules,
        Err(rejection) => return (StatusCode::BAD_REQUEST, rejection.body_text()).into_response(),
    };
    match faults.replace(rules) {
        Ok(()) => get_faults(State(faults)).await.into_response(),
        Err(error) => (StatusCode::BAD_REQUEST, format!("{error}\n")).into_response(),
    }
}

async fn faults_disabled() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        "fault injection is disabled (faults.enabled = false)\n",
    )
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
