//! One shutdown signal for a whole process.
//!
//! A [`Shutdown`] is a cheap, cloneable handle that every server, background task and
//! drain timer waits on. It fires once, from SIGTERM or SIGINT ([`from_os_signals`]) or
//! from a [`Trigger`] (tests stop an `Application` this way instead of signalling the
//! test process).

use tokio::sync::watch;

/// Fires the paired [`Shutdown`]. Dropping it does not fire it.
#[derive(Debug)]
pub struct Trigger {
    tx: watch::Sender<bool>,
}

impl Trigger {
    /// Starts the shutdown; idempotent.
    pub fn fire(&self) {
        self.tx.send_replace(true);
    }
}

/// Waits for shutdown to start. Cloning shares the same signal.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// A handle and the trigger that fires it.
    pub fn new() -> (Trigger, Self) {
        let (tx, rx) = watch::channel(false);
        (Trigger { tx }, Self { rx })
    }

    /// A handle that never fires.
    pub fn never() -> Self {
        let (trigger, shutdown) = Self::new();
        // Keep the sender alive forever so `wait` stays pending instead of returning
        // on a closed channel.
        std::mem::forget(trigger);
        shutdown
    }

    /// Whether shutdown has started.
    pub fn is_started(&self) -> bool {
        *self.rx.borrow()
    }

    /// Completes once shutdown has started (at once if it already has).
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        // An error means every trigger is gone without firing: nothing can start the
        // shutdown any more, so stay pending rather than shutting down by accident.
        if rx.wait_for(|started| *started).await.is_err() {
            std::future::pending::<()>().await;
        }
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
