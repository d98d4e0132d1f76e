//! The drain every public server goes through on shutdown: report not-ready, stop
//! accepting, let requests in flight finish, give up on them after the grace period.
//!
//! The gRPC server and an HTTP edge both drain this way, so the two pieces live here
//! once: [`started`] is the graceful-shutdown signal handed to the server, [`bounded`]
//! races the server's own drain against the grace period.

use std::future::Future;
use std::time::Duration;

use platform_shutdown::Shutdown;

use crate::Readiness;

/// Completes when shutdown starts, after readiness has turned NOT_SERVING for good,
/// so that load balancers stop sending before the listener closes.
pub async fn started(shutdown: Shutdown, readiness: Readiness) {
    shutdown.wait().await;
    readiness.start_draining().await;
}

/// Runs `server` until it has drained by itself, or until `grace` has passed since
/// shutdown started, whichever comes first; abandoning calls in flight is not an
/// error.
pub async fn bounded<E>(
    what: &str,
    server: impl Future<Output = Result<(), E>>,
    shutdown: &Shutdown,
    grace: Duration,
) -> Result<(), E> {
    let grace_over = async {
        shutdown.wait().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => {
            tracing::info!("{what} server drained");
            result
        }
        () = grace_over => {
            tracing::warn!(
                grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
                "{what} server: grace period over; abandoning requests in flight"
            );
            Ok(())
        }
    }
}
