//! Buckets in this process: `governor`'s keyed GCRA.
//!
//! Buckets of callers that have gone quiet are dropped periodically, so memory follows
//! the number of active callers, not of callers ever seen.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::Decision;
use crate::settings::RateLimitSettings;

/// Per-caller buckets held by this process.
#[derive(Debug, Clone)]
pub struct LocalLimiter {
    inner: Arc<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

impl LocalLimiter {
    /// A limiter with the configured rate and burst.
    pub fn new(settings: &RateLimitSettings) -> Self {
        let rate = NonZeroU32::new(settings.per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(settings.burst).unwrap_or(NonZeroU32::MIN);
        let limiter = Arc::new(RateLimiter::keyed(
            Quota::per_second(rate).allow_burst(burst),
        ));
        let sweeper = Arc::downgrade(&limiter);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let Some(limiter) = sweeper.upgrade() else {
                    return;
                };
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        });
        Self {
            inner: limiter,
            clock: DefaultClock::default(),
        }
    }

    /// Spends one request of `caller`'s budget, if there is one left.
    pub fn check(&self, caller: &str) -> Decision {
        match self.inner.check_key(&caller.to_owned()) {
            Ok(()) => Decision::Allow,
            Err(not_until) => Decision::Deny(not_until.wait_time_from(self.clock.now())),
        }
    }
}
