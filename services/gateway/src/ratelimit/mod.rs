//! Per-caller rate limiting: a token bucket (GCRA) for each caller, with the same
//! rate and burst wherever the buckets live.
//!
//! - [`local`]: in this process (`governor`), the embedded default. Each replica
//!   counts on its own, so N replicas let a caller through N times over.
//! - [`shared`]: in Redis, one budget per caller for every replica, one script call
//!   per request; when Redis cannot be reached, requests are served unlimited (or
//!   refused with 503, by setting) until it is back.
//!
//! [`caller_key`] and [`spend`] are the edge's step, taken after authentication (whose
//! [`Identity`] names the caller); it answers `429` with `Retry-After`. Public methods
//! (sign-up, sign-in, ...) are keyed by client address even when a token comes with
//! them: otherwise every self-made account would bring its own budget of password
//! guesses. Every other method is keyed by the token's subject, or by the client
//! address when there is no valid token.

mod local;
mod shared;

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::response::Response;

pub use self::local::LocalLimiter;
pub use self::shared::{LimiterError, SharedLimiter};
use crate::client_address::ClientAddresses;
use crate::edge::{Edge, Identity, names};
use crate::errors::{rate_limit_unavailable, too_many_requests};
use crate::settings::RateLimitSettings;

/// What the limiter says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Within the caller's budget (or no budget could be checked and the limiter
    /// fails open).
    Allow,
    /// Over it: the caller may try again after this long.
    Deny(Duration),
    /// The shared budget could not be checked and the limiter fails closed.
    Unavailable,
}

/// The limiter shared by every request: buckets in this process or in Redis.
#[derive(Debug, Clone)]
pub enum Limiter {
    /// Buckets in this process.
    Local(LocalLimiter),
    /// Buckets in Redis, shared by every replica.
    Shared(SharedLimiter),
}

impl Limiter {
    /// The limiter the settings ask for: shared when `redis_url` is set. Nothing is
    /// connected yet; the first request does (so a Redis that is down does not stop
    /// the gateway from starting).
    pub fn new(settings: &RateLimitSettings) -> Result<Self, LimiterError> {
        if settings.redis_url.is_empty() {
            Ok(Self::Local(LocalLimiter::new(settings)))
        } else {
            SharedLimiter::new(settings).map(Self::Shared)
        }
    }

    /// Connects to Redis, when shared, so that the first requests do not wait for it;
    /// never fails (an unreachable Redis is an outage the limiter lives with).
    pub async fn connect(&self) {
        if let Self::Shared(shared) = self {
            shared.connect().await;
        }
    }

    /// Spends one request of `caller`'s budget, if there is one left.
    pub async fn check(&self, caller: &str) -> Decision {
        match self {
            Self::Local(local) => local.check(caller),
            Self::Shared(shared) => shared.check(caller).await,
        }
    }
}

/// The rate-limit key of a request: `ip:` and the client's address bucket on public
/// methods and for callers without a valid token, else `sub:` and the token's subject.
pub fn key(
    identity: Option<&Identity>,
    public: bool,
    peer: Option<SocketAddr>,
    addresses: &ClientAddresses,
    headers: &axum::http::HeaderMap,
) -> String {
    match identity {
        Some(Identity::Caller { caller, .. }) if !public => {
            // Built by hand: this runs on every request, and `format!` costs several times more.
            let mut key = String::with_capacity(4 + caller.subject.len());
            key.push_str("sub:");
            key.push_str(&caller.subject);
            key
        }
        _ => match peer {
            Some(peer) => format!(
                "ip:{}",
                ClientAddresses::bucket(addresses.resolve(peer.ip(), headers))
            ),
            // Only a server started without connect info (a test's router) gets here.
            None => "ip:unknown".to_owned(),
        },
    }
}

/// The rate-limit key of `request`: see [`key`].
pub(crate) fn caller_key(edge: &Edge, request: &Request) -> String {
    let public = crate::edge::is_public(edge, request.extensions());
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    key(
        request.extensions().get::<Identity>(),
        public,
        peer,
        &edge.client_addresses,
        request.headers(),
    )
}

/// Spends one request of `key`'s budget: `Err` with the `429` (or, failing closed
/// without Redis, `503`) to answer when there is none left.
pub(crate) async fn spend(edge: &Edge, key: &str) -> Result<(), Response> {
    match edge.limiter.check(key).await {
        Decision::Allow => Ok(()),
        Decision::Deny(wait) => {
            metrics::counter!(names::RATE_LIMITED).increment(1);
            Err(too_many_requests(wait))
        }
        Decision::Unavailable => Err(rate_limit_unavailable()),
    }
}
