//! A background worker that runs until asked to stop: what the relay and the consumer
//! both are.

use std::future::Future;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A spawned worker and the token that stops it.
#[derive(Debug)]
pub(crate) struct Worker {
    what: &'static str,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Worker {
    /// Spawns `run`, handing it the token it must watch; `what` names it in logs.
    pub(crate) fn spawn<F, Fut>(what: &'static str, run: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run(cancel.clone()));
        Self { what, cancel, task }
    }

    /// Asks the worker to stop and waits until it has.
    pub(crate) async fn stop(self) {
        self.cancel.cancel();
        if let Err(error) = self.task.await {
            tracing::error!(%error, "{} task failed", self.what);
        }
    }
}
