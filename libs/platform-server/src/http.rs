//! A public HTTP server (the edge's service) with the same drain as the gRPC server,
//! and with limits against slow and abusive clients.
//!
//! The [`HttpService`] is the caller's (an axum `Router` is one, boxed); this adds the
//! peer address as a `ConnectInfo` extension (for per-client rate limits), and stops
//! it like every other public port:
//! not-ready first, then no new connections, then requests in flight finish within
//! the grace period.
//!
//! hyper is driven directly rather than through `axum::serve`, which has no timer and
//! so no header-read timeout: a client sending half a request line would hold a
//! connection (and a task) forever. Here the headers must arrive within
//! [`HttpLimits::header_read_timeout`], a body within
//! [`HttpLimits::body_read_timeout`], and connections beyond
//! [`HttpLimits::max_connections`] are closed as soon as they are accepted.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use platform_shutdown::Shutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;
use tower::util::BoxCloneSyncService;

mod read_timeout;

pub use read_timeout::{BodyReadTimeout, ReadTimeout};

use crate::{Readiness, ServerError};

/// What a public HTTP port serves: requests to responses, never failing (an error is
/// an answer). `BoxCloneSyncService::new(router)` makes one of an axum `Router`.
pub type HttpService = BoxCloneSyncService<http::Request<Body>, Response, Infallible>;

/// Limits on what one client may hold.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// How long a client may take to send a request's headers (HTTP/1).
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body.
    pub body_read_timeout: Duration,
    /// Connections served at once; more are closed on accept.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(5),
            body_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
        }
    }
}

/// Serves `service` on `listener` until `shutdown` fires and the drain completes or
/// `grace` runs out.
pub async fn serve(
    listener: TcpListener,
    service: HttpService,
    limits: HttpLimits,
    grace: Duration,
    readiness: Readiness,
    shutdown: Shutdown,
) -> Result<(), ServerError> {
    let body_timeout = limits.body_read_timeout;
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();

    let server = async {
        let stop = crate::drain::started(shutdown.clone(), readiness);
        tokio::pin!(stop);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors, say: back off rather than spin.
                        tracing::warn!(%error, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut stop => break,
            };
            let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
                metrics::counter!("http_server_connections_refused_total").increment(1);
                tracing::warn!(%peer, "connection limit reached; closing a new connection");
                drop(stream);
                continue;
            };
            let service = service
                .clone()
                .map_request(move |request: http::Request<Incoming>| {
                    let mut request =
                        request.map(|body| Body::new(ReadTimeout::new(body, body_timeout)));
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                });
            let connection = builder
                .serve_connection_with_upgrades(
                    TokioIo::new(stream),
                    TowerToHyperService::new(service),
                )
                .into_owned();
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%peer, error = %error, "connection ended with an error");
                }
                drop(permit);
            });
        }
        drop(listener);
        graceful.shutdown().await;
        Ok(())
    };
    crate::drain::bounded("HTTP", server, &shutdown, grace).await
}
