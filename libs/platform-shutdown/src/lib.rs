//! One shutdown signal for a whole process.
//!
//! A [`Shutdown`] is a cheap, cloneable handle that every server, background task and
//! drain timer waits on. It fires once, from SIGTERM or SIGINT ([`from_os_signals`]) or
//! from a [`Trigger`] (tests stop an `Application` this way instead of signalling the
//! test process).
//!
//! Both are thin names over one `tokio_util` [`CancellationToken`]: the token does the
//! waking and the fire-once bookkeeping; the names keep the intent (a trigger is held
//! by whoever may stop the process, a shutdown by whoever must react) visible in
//! signatures.

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

/// Fires the paired [`Shutdown`]. Dropping it does not fire it.
#[derive(Debug)]
pub struct Trigger {
    token: CancellationToken,
}

impl Trigger {
    /// Starts the shutdown; idempotent.
    pub fn fire(&self) {
        self.token.cancel();
    }
}

/// Waits for shutdown to start. Cloning shares the same signal.
#[derive(Debug, Clone)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    /// A handle and the trigger that fires it.
    pub fn new() -> (Trigger, Self) {
        let token = CancellationToken::new();
        (
            Trigger {
                token: token.clone(),
            },
            Self { token },
        )
    }

    /// A handle that never fires: no trigger exists for it.
    pub fn never() -> Self {
        Self {
            token: CancellationToken::new(),
        }
    }

    /// Whether shutdown has started.
    pub fn is_started(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes once shutdown has started (at once if it already has).
    pub fn wait(&self) -> WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }

    /// Completes once shutdown has started, owning its handle, for futures that must
    /// be `'static` (a server's graceful-shutdown signal).
    pub async fn wait_owned(self) {
        self.token.cancelled_owned().await;
    }

    /// The underlying token, for code that speaks `tokio_util` directly (a child
    /// token per task, `run_until_cancelled`).
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }
}

/// A [`Shutdown`] that fires on the first SIGTERM or SIGINT (Ctrl-C).
///
/// Must be called inside a Tokio runtime.
pub fn from_os_signals() -> Shutdown {
    let (trigger, shutdown) = Shutdown::new();
    tokio::spawn(async move {
        os_signal().await;
        trigger.fire();
    });
    shutdown
}

/// Completes on the first SIGTERM or SIGINT.
pub async fn os_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };

    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => tracing::info!(signal = "SIGINT", "shutdown requested"),
        () = terminate => tracing::info!(signal = "SIGTERM", "shutdown requested"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn fires_every_clone() {
        let (trigger, shutdown) = Shutdown::new();
        let other = shutdown.clone();
        assert!(!shutdown.is_started());
        let waiter = tokio::spawn(async move { other.wait().await });
        trigger.fire();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("waiter woke")
            .expect("waiter ran");
        assert!(shutdown.is_started());
        // Waiting after the fact completes at once.
        tokio::time::timeout(Duration::from_secs(5), shutdown.wait())
            .await
            .expect("already started");
    }

    #[tokio::test]
    async fn dropped_trigger_does_not_fire() {
        let (trigger, shutdown) = Shutdown::new();
        drop(trigger);
        let waited = tokio::time::timeout(Duration::from_millis(50), shutdown.wait()).await;
        assert!(waited.is_err(), "must stay pending");
        assert!(!shutdown.is_started());
    }
}
