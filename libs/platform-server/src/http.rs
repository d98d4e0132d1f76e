//! A public HTTP server (the edge's router) with the same drain as the gRPC server.
//!
//! The router is the caller's; this adds the peer address as a `ConnectInfo`
//! extension (for per-client rate limits), and stops it like every other public port:
//! not-ready first, then no new connections, then requests in flight finish within
//! the grace period.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use platform_shutdown::Shutdown;
use tokio::net::TcpListener;

use crate::{Readiness, ServerError};

/// Serves `router` on `listener` until `shutdown` fires and the drain completes or
/// `grace` runs out.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    grace: Duration,
    readiness: Readiness,
    shutdown: Shutdown,
) -> Result<(), ServerError> {
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(crate::drain::started(shutdown.clone(), readiness));
    let server = async move { server.await.map_err(ServerError::Http) };
    crate::drain::bounded("HTTP", server, &shutdown, grace).await
}
