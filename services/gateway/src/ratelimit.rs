//! Per-caller rate limiting: a token bucket (GCRA, `governor`) for each caller, keyed
//! by the verified token's subject, or by the client address for anonymous calls.
//!
//! Buckets of callers that have gone quiet are dropped periodically, so memory follows
//! the number of active callers, not of callers ever seen.
//!
//! `enforce` is the layer of the edge's stack: it sits below authentication, whose
//! [`Identity`] names the caller, and answers `429` with `Retry-After`.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::edge::{Edge, Identity, names};
use crate::errors::too_many_requests;
use crate::settings::RateLimitSettings;

/// The limiter shared by every request.
#[derive(Debug, Clone)]
pub struct Limiter {
    inner: Arc<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

impl Limiter {
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

    /// `Ok` if `caller` may make a request now, else how long until it may.
    pub fn check(&self, caller: &str) -> Result<(), Duration> {
        self.inner
            .check_key(&caller.to_owned())
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// Layer: `429` when the caller (the token's subject, else the client address) is
/// over its rate.
pub(crate) async fn enforce(
    State(edge): State<Arc<Edge>>,
    request: Request,
    next: Next,
) -> Response {
    let key = match request.extensions().get::<Identity>() {
        Some(Identity::Caller { caller, .. }) => format!("sub:{}", caller.subject),
        _ => format!("ip:{}", client_address(&request, edge.trust_forwarded_for)),
    };
    match edge.limiter.check(&key) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            metrics::counter!(names::RATE_LIMITED).increment(1);
            too_many_requests(wait)
        }
    }
}

/// The client's address: the first `X-Forwarded-For` entry when trusted, else the
/// peer's IP (`unknown` when the server was started without connect info).
fn client_address(request: &Request, trust_forwarded_for: bool) -> String {
    if trust_forwarded_for && let Some(first) = forwarded_for(request.headers()) {
        return first.to_owned();
    }
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |peer| peer.ip().to_string())
}

/// The first entry of `X-Forwarded-For`: the client as the outermost proxy saw it.
fn forwarded_for(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}
