//! Bounded waiting for something another task or process brings about: a server
//! that becomes ready, a probe that turns, a log line that appears, a server task
//! that ends once told to stop.
//!
//! Tests wait on a condition rather than for a fixed time, so they are as quick as
//! the machine allows and still fail, naming what never happened, when it does not.

use std::time::Duration;

/// How long a server told to stop may take to end.
const STOP_WITHIN: Duration = Duration::from_secs(10);

/// How often a condition is checked again.
const INTERVAL: Duration = Duration::from_millis(50);

/// Checks `condition` every 50 ms until it holds; panics naming `what` once `within`
/// has passed without it holding.
pub async fn until(what: &str, within: Duration, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if condition().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("{what}: not within {within:?}");
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

/// Waits (bounded) for the task of a server `what` that was told to stop; panics unless
/// it ended, in time, with `Ok`.
pub async fn stopped<E: std::fmt::Debug>(what: &str, task: tokio::task::JoinHandle<Result<(), E>>) {
    match tokio::time::timeout(STOP_WITHIN, task).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => panic!("{what} did not stop cleanly: {e:?}"),
        Ok(Err(e)) => panic!("{what}'s task failed: {e}"),
        Err(_) => panic!("{what}: not stopped within {STOP_WITHIN:?}"),
    }
}
