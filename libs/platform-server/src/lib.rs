//! The standard server runtime every gRPC service of the platform runs on.
//!
//! # Layout
//!
//! - [`grpc`]: assembles a tonic server around a service's routes: health
//!   (`grpc.health.v1`), reflection (`v1` and `v1alpha`), authentication, a per-call
//!   span and metrics ([`rpc_layer`]), a global concurrency limit, a request timeout,
//!   and a drain on shutdown bounded by a grace period.
//! - [`http`]: a public HTTP router (the edge) served with the same drain.
//! - [`drain`]: not-ready, stop accepting, finish in flight, bounded by a grace
//!   period; shared by both public servers.
//! - [`readiness`]: one switch that drives both the gRPC health status and `/readyz`.
//! - [`admin`]: the admin HTTP port with `/healthz`, `/readyz` and `/metrics`.
//! - [`metrics`]: the process-wide Prometheus recorder.
//! - [`deadline`]: the deadline of the call being served, for calls made downstream.
//! - [`faults`]: latency, errors and aborts injected on demand (off unless enabled).
//!
//! Assembling these into a process (command line, settings, telemetry, signals) is
//! `platform-kernel`'s job.

pub mod admin;
pub mod deadline;
pub mod drain;
pub mod faults;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod readiness;
pub mod rpc_layer;

use std::net::SocketAddr;

use tokio::net::TcpListener;

use serde::{Deserialize, Serialize};

pub use readiness::Readiness;

/// The `[grpc]` section of a service's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcSettings {
    /// Listen address.
    pub addr: SocketAddr,
    /// Upper bound of one call's run time; a shorter client deadline (`grpc-timeout`)
    /// wins.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Calls served at once across all connections; further calls wait their turn
    /// (bounded by their deadline), which protects the database pool from a burst.
    #[serde(default = "default_concurrency_limit")]
    pub concurrency_limit: usize,
    /// After SIGTERM, how long calls in flight may take to finish before the process
    /// exits anyway. Keep it below Kubernetes' `terminationGracePeriodSeconds`.
    #[serde(default = "default_grace_period_ms")]
    pub grace_period_ms: u64,
}

fn default_request_timeout_ms() -> u64 {
    10_000
}
fn default_concurrency_limit() -> usize {
    512
}
fn default_grace_period_ms() -> u64 {
    20_000
}

impl GrpcSettings {
    /// Settings listening on `addr`, everything else at its default.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            request_timeout_ms: default_request_timeout_ms(),
            concurrency_limit: default_concurrency_limit(),
            grace_period_ms: default_grace_period_ms(),
        }
    }
}

/// The `[admin]` section of a component's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// Listen address of `/healthz`, `/readyz` and `/metrics`.
    pub addr: SocketAddr,
}

/// Binds `addr` (port 0 picks a free port) and returns the listener with the address
/// it really got.
pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServerError> {
    let bind_error = |source| ServerError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    Ok((listener, bound))
}

/// Why a server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The descriptor set for reflection does not decode.
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The gRPC transport failed.
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The admin HTTP server failed.
    #[error("admin server failed: {0}")]
    Admin(#[source] std::io::Error),
    /// The public HTTP server failed.
    #[error("HTTP server failed: {0}")]
    Http(#[source] std::io::Error),
    /// A fault-injection rule in the settings is invalid.
    #[error("faults: {0}")]
    Faults(#[from] faults::FaultError),
}
