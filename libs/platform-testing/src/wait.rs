//! Bounded waiting for something another task or process brings about: a server
//! that becomes ready, a probe that turns, a log line that appears.
//!
//! Tests wait on a condition rather than for a fixed time, so they are as quick as
//! the machine allows and still fail, naming what never happened, when it does not.

use std::time::Duration;

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
