//! Buckets in Redis, shared by every gateway replica.
//!
//! A caller's bucket is one key holding its GCRA "theoretical arrival time" in
//! microseconds of Redis's own clock (so replicas need not agree on the time). A
//! request is one script call (`EVALSHA`, loaded again by `redis::Script` after a
//! Redis restart): read the time, decide, move the time on, and let the key expire
//! once the bucket is full again. The arithmetic is `governor`'s, so a shared limit
//! behaves exactly as the in-process one.
//!
//! Redis being slow or gone must not take the edge down with it. Each call is bounded
//! by `rate_limit.redis_timeout_ms`; a failure starts an outage: it is logged once,
//! counted on every failed call, and while it lasts requests are decided without
//! Redis (allowed, or 503 with `fail_open = false`) instead of each waiting for the
//! timeout. One request per [`PROBE_INTERVAL`] tries Redis again; the connection
//! manager reconnects by itself, and the first answer ends the outage.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};

use super::Decision;
use crate::edge::names;
use crate::settings::RateLimitSettings;

/// GCRA over one key. KEYS[1]: the caller's bucket. ARGV[1]: microseconds between two
/// requests at the sustained rate (T). ARGV[2]: how far ahead of now the arrival time
/// may run, T × (burst − 1). Returns 0 when the request is allowed, else how many
/// microseconds until it would be.
const GCRA: &str = r"
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
local allowed_at = tat - tolerance
if now < allowed_at then
  return allowed_at - now
end
tat = math.max(tat, now) + interval
-- '%.0f': Lua would print a number this large in exponent form and lose digits.
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000))
return 0
";

/// Prefix of every key the limiter writes, so its keys are recognisable in a shared
/// Redis.
const KEY_PREFIX: &str = "gateway:ratelimit:";

/// During an outage, how often one request tries Redis again.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// Bound of one connection attempt; retries back off between these.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a shared limiter could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LimiterError {
    /// `rate_limit.redis_url` is not a usable Redis URL (not repeated: it may hold a
    /// password).
    #[error("`rate_limit.redis_url` is not a valid Redis URL")]
    InvalidUrl,
}

/// Per-caller buckets kept in Redis.
#[derive(Clone)]
pub struct SharedLimiter {
    connection: ConnectionManager,
    script: Arc<Script>,
    interval_us: u64,
    tolerance_us: u64,
    timeout: Duration,
    fail_open: bool,
    outage: Arc<Outage>,
}

impl std::fmt::Debug for SharedLimiter {
    // The connection's own `Debug` shows its URL, password included.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLimiter")
            .field("interval_us", &self.interval_us)
            .field("tolerance_us", &self.tolerance_us)
            .field("timeout", &self.timeout)
            .field("fail_open", &self.fail_open)
            .finish_non_exhaustive()
    }
}

impl SharedLimiter {
    /// A limiter on the Redis of `settings.redis_url`; it connects on first use and
    /// reconnects by itself.
    pub fn new(settings: &RateLimitSettings) -> Result<Self, LimiterError> {
        let client =
            Client::open(settings.redis_url.as_str()).map_err(|_| LimiterError::InvalidUrl)?;
        let timeout = Duration::from_millis(settings.redis_timeout_ms);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(timeout))
            // Few, quick retries: a failed reconnection is retried anyway by the next
            // probe, and a long series would keep the outage going after Redis is back.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(200));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|_| LimiterError::InvalidUrl)?;
        let interval_us = (1_000_000 / u64::from(settings.per_second.max(1))).max(1);
        Ok(Self {
            connection,
            script: Arc::new(Script::new(GCRA)),
            interval_us,
            tolerance_us: interval_us * u64::from(settings.burst.max(1) - 1),
            timeout,
            fail_open: settings.fail_open,
            outage: Arc::new(Outage::new(settings.fail_open)),
        })
    }

    /// Connects (bounded by the connection timeout) so the first requests do not wait
    /// for it. Redis being unreachable starts an outage, not a failure: the gateway
    /// starts anyway and keeps trying.
    pub async fn connect(&self) {
        let mut connection = self.connection.clone();
        let ping = redis::cmd("PING");
        let ping = ping.query_async::<()>(&mut connection);
        match tokio::time::timeout(CONNECT_TIMEOUT, ping).await {
            Ok(Ok(())) => tracing::info!("rate limits shared through redis"),
            Ok(Err(error)) => self.outage.failed(&error),
            Err(_) => self
                .outage
                .failed(&"no answer within the connection timeout"),
        }
    }

    /// Spends one request of `caller`'s budget in Redis, if there is one left.
    pub async fn check(&self, caller: &str) -> Decision {
        if self.outage.skip_redis() {
            return self.without_redis();
        }
        let mut connection = self.connection.clone();
        let mut invocation = self.script.key(format!("{KEY_PREFIX}{caller}"));
        invocation.arg(self.interval_us).arg(self.tolerance_us);
        let call = invocation.invoke_async::<u64>(&mut connection);
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(wait_us)) => {
                self.outage.end();
                if wait_us == 0 {
                    Decision::Allow
                } else {
                    Decision::Deny(Duration::from_micros(wait_us))
                }
            }
            Ok(Err(error)) => {
                self.outage.failed(&error);
                self.without_redis()
            }
            Err(_) => {
                self.outage
                    .failed(&"no answer within rate_limit.redis_timeout_ms");
                self.without_redis()
            }
        }
    }

    fn without_redis(&self) -> Decision {
        if self.fail_open {
            Decision::Allow
        } else {
            Decision::Unavailable
        }
    }
}

/// Whether Redis is known to be unreachable, and when to try it next.
#[derive(Debug)]
struct Outage {
    down: AtomicBool,
    /// Milliseconds after `epoch` from which the next probe may go.
    next_probe_ms: AtomicU64,
    epoch: Instant,
    fail_open: bool,
}

impl Outage {
    fn new(fail_open: bool) -> Self {
        Self {
            down: AtomicBool::new(false),
            next_probe_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            fail_open,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// During an outage, true for every request but one per probe interval.
    fn skip_redis(&self) -> bool {
        if !self.down.load(Ordering::Acquire) {
            return false;
        }
        let now = self.now_ms();
        let due = self.next_probe_ms.load(Ordering::Acquire);
        let probe_interval = u64::try_from(PROBE_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        // Of the requests that find the probe due, the one that moves it on probes.
        now < due
            || self
                .next_probe_ms
                .compare_exchange(
                    due,
                    now + probe_interval,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_err()
    }

    /// A call failed: counted every time, logged when it starts an outage.
    fn failed(&self, error: &dyn std::fmt::Display) {
        metrics::counter!(names::RATE_LIMIT_BACKEND_ERRORS).increment(1);
        let probe_interval = u64::try_from(PROBE_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        self.next_probe_ms
            .store(self.now_ms() + probe_interval, Ordering::Release);
        if !self.down.swap(true, Ordering::AcqRel) {
            let then = if self.fail_open {
                "served without rate limits"
            } else {
                "refused with 503"
            };
            tracing::warn!(%error, "rate limit backend unreachable; requests are {then} until it is back");
        }
    }

    /// A call succeeded: logged when it ends an outage.
    fn end(&self) {
        if self.down.swap(false, Ordering::AcqRel) {
            tracing::info!("rate limit backend reachable again; limits apply");
        }
    }
}
