//! The endpoints of one upstream behind a power-of-two-choices balancer, with outlier
//! ejection.
//!
//! Every address of the upstream is an endpoint: a lazily connecting tonic channel
//! with its [`Health`], which counts the calls it has in flight and its consecutive
//! failures (a transport error, or UNAVAILABLE in a trailers-only answer). Each call
//! picks two endpoints at random and goes to the less loaded one, and an endpoint that
//! has just failed counts as more loaded than any healthy one, so the retry of a call
//! it refused goes elsewhere. The pick happens in the caller's task, on a list shared
//! by every handle: a call passes through no queue or task of the balancer's own.
//!
//! One task per upstream owns the membership: it applies what the resolver says, and
//! an endpoint that fails [`OutlierOptions::consecutive_failures`] times in a row is
//! taken out of the list for a growing interval (base, 2×, 4×... capped), then put
//! back with a fresh connection. Its backoff resets once it answers again. The last
//! endpoint in the list is never ejected: a pool of one failing endpoint still fails
//! fast rather than waiting for an endpoint to appear.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use tokio::sync::{Notify, mpsc, oneshot};
use tonic::Code;
use tonic::body::Body;
use tower_service::Service;

use crate::body::status_in;
use crate::connection::{ConnectOptions, Connection};
use crate::layer::names;

/// The error type of the balanced channel.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

type ResponseFuture = BoxFuture<'static, Result<http::Response<Body>, BoxError>>;

/// When an endpoint is taken out of the balancer, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierOptions {
    /// Failures in a row (connection errors, UNAVAILABLE) that eject an endpoint.
    pub consecutive_failures: u32,
    /// The first ejection's length; it doubles with each ejection in a row. An
    /// endpoint that has just failed is also avoided for this long.
    pub base_ejection: Duration,
    /// The longest ejection.
    pub max_ejection: Duration,
}

impl Default for OutlierOptions {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            base_ejection: Duration::from_secs(1),
            max_ejection: Duration::from_secs(30),
        }
    }
}

impl OutlierOptions {
    /// The length of the `nth` ejection in a row (1-based).
    fn ejection(&self, nth: u32) -> Duration {
        let factor = 1u32 << nth.saturating_sub(1).min(16);
        self.base_ejection
            .saturating_mul(factor)
            .min(self.max_ejection)
    }
}

/// What is known about one endpoint; shared by its successive services and the pool.
#[derive(Debug, Default)]
struct Health {
    in_flight: AtomicUsize,
    state: Mutex<HealthState>,
}

#[derive(Debug, Default)]
struct HealthState {
    consecutive_failures: u32,
    last_failure: Option<Instant>,
    /// Ejections since it last answered.
    ejections: u32,
}

impl Health {
    fn state(&self) -> std::sync::MutexGuard<'_, HealthState> {
        // Plain counters: a panic while holding the lock leaves them usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records an answer; true when this failure is the one that should eject it.
    fn record(&self, failed: bool, threshold: u32) -> bool {
        let mut state = self.state();
        if !failed {
            *state = HealthState::default();
            return false;
        }
        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
        state.last_failure = Some(Instant::now());
        // Every `threshold` failures in a row, not just the first time: an endpoint
        // that could not be ejected then (the last one) may be later.
        state.consecutive_failures.is_multiple_of(threshold.max(1))
    }

    fn recently_failed(&self, within: Duration) -> bool {
        let state = self.state();
        state.consecutive_failures > 0 && state.last_failure.is_some_and(|t| t.elapsed() < within)
    }
}

/// One endpoint in the list.
#[derive(Clone)]
struct Tracked {
    addr: SocketAddr,
    connection: Connection,
    health: Arc<Health>,
}

impl Tracked {
    /// A recent failure first (an endpoint that just refused a call loses to any that
    /// did not), then the calls in flight.
    fn load(&self, options: &OutlierOptions) -> (bool, usize) {
        (
            self.health.recently_failed(options.base_ejection),
            self.health.in_flight.load(Ordering::Relaxed),
        )
    }
}

/// Counts a call in flight on an endpoint until dropped (answered or abandoned).
struct InFlight(Arc<Health>);

impl InFlight {
    fn start(health: Arc<Health>) -> Self {
        health.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(health)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What every handle of one upstream's channel shares with its membership task.
struct Endpoints {
    list: RwLock<Vec<Tracked>>,
    /// Woken when the list changes, for calls waiting for an endpoint.
    changed: Notify,
    options: OutlierOptions,
    /// Where calls report an endpoint that should be ejected.
    failing: mpsc::UnboundedSender<SocketAddr>,
    /// Dropped with the last handle, which ends the membership task.
    _alive: oneshot::Sender<()>,
}

impl Endpoints {
    fn list(&self) -> std::sync::RwLockReadGuard<'_, Vec<Tracked>> {
        // A plain list: a panic while holding the lock leaves it usable.
        self.list.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn edit(&self, edit: impl FnOnce(&mut Vec<Tracked>)) {
        edit(&mut self.list.write().unwrap_or_else(PoisonError::into_inner));
        self.changed.notify_waiters();
    }

    /// The less loaded of two endpoints drawn at random; `None` while there is none.
    fn pick(&self) -> Option<Tracked> {
        let list = self.list();
        let chosen = match list.len() {
            0 => return None,
            1 => &list[0],
            n => {
                let a = fastrand::usize(..n);
                let b = (a + fastrand::usize(1..n)) % n;
                let (a, b) = (&list[a], &list[b]);
                if b.load(&self.options) < a.load(&self.options) {
                    b
                } else {
                    a
                }
            }
        };
        Some(chosen.clone())
    }

    /// An endpoint for the next call, once there is one.
    async fn next(&self) -> Tracked {
        loop {
            // Made before looking, so that a change in between still wakes it.
            let changed = self.changed.notified();
            if let Some(endpoint) = self.pick() {
                return endpoint;
            }
            changed.await;
        }
    }

    /// Sends `request` to an endpoint, and records how it answered.
    async fn call(&self, request: http::Request<Body>) -> Result<http::Response<Body>, BoxError> {
        let Tracked {
            addr,
            connection,
            health,
        } = self.next().await;
        let in_flight = InFlight::start(health);
        let result = connection.send(request).await;
        let failed = match &result {
            Err(_) => true,
            Ok(response) => status_in(response.headers()) == Some(Code::Unavailable),
        };
        let threshold = self.options.consecutive_failures;
        if in_flight.0.record(failed, threshold) {
            // The membership task is gone with the last handle: nothing to tell.
            let _ = self.failing.send(addr);
        }
        drop(in_flight);
        result
    }
}

/// The balanced channel of one upstream: cheap to clone, every clone shares the
/// endpoints. Calls wait (within their deadline) while the upstream has no endpoint.
#[derive(Clone)]
pub struct Balanced {
    endpoints: Arc<Endpoints>,
}

impl fmt::Debug for Balanced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Balanced").finish_non_exhaustive()
    }
}

impl Service<http::Request<Body>> for Balanced {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = ResponseFuture;

    /// Always ready: the endpoint is chosen, and waited for, by the call.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let endpoints = Arc::clone(&self.endpoints);
        Box::pin(async move { endpoints.call(request).await })
    }
}

/// A balanced channel over the endpoints `members` keeps up to date, connecting to
/// each as `connect` says; `upstream` names it in logs and metrics. Must be called
/// inside a Tokio runtime.
pub(crate) fn balanced(
    upstream: String,
    connect: ConnectOptions,
    options: OutlierOptions,
    members: Membership,
) -> Balanced {
    let (failing, failures) = mpsc::unbounded_channel();
    let (alive, closed) = oneshot::channel();
    let endpoints = Arc::new(Endpoints {
        list: RwLock::default(),
        changed: Notify::new(),
        options,
        failing,
        _alive: alive,
    });
    let pool = Pool {
        upstream,
        connect,
        options,
        endpoints: Arc::downgrade(&endpoints),
        members: HashMap::new(),
    };
    tokio::spawn(pool.run(members, failures, closed));
    Balanced { endpoints }
}

/// Where the pool's addresses come from.
pub(crate) enum Membership {
    /// One fixed address (an IP literal URL).
    Fixed(SocketAddr),
    /// What a resolver says, asked every `every`.
    Resolved {
        resolve: Box<dyn Fn() -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> + Send>,
        every: Duration,
    },
}

struct Member {
    health: Arc<Health>,
    /// Until when it is out of the balancer.
    ejected_until: Option<Instant>,
}

/// The membership task's state.
struct Pool {
    upstream: String,
    connect: ConnectOptions,
    options: OutlierOptions,
    /// The list the handles share; gone with the last handle.
    endpoints: Weak<Endpoints>,
    members: HashMap<SocketAddr, Member>,
}

/// The balancer is gone: the task ends.
struct Closed;

impl Pool {
    /// Keeps the balancer's endpoints equal to the resolved addresses minus the
    /// ejected ones, until every handle of the channel is gone.
    async fn run(
        mut self,
        membership: Membership,
        mut failures: mpsc::UnboundedReceiver<SocketAddr>,
        mut closed: oneshot::Receiver<()>,
    ) {
        let (resolve, every) = match membership {
            Membership::Fixed(addr) => {
                if self.resolved(HashSet::from([addr])).is_err() {
                    return;
                }
                (None, Duration::ZERO)
            }
            Membership::Resolved { resolve, every } => (Some(resolve), every),
        };
        let mut next_resolve = Instant::now();
        loop {
            let readmit_at = self.members.values().filter_map(|m| m.ejected_until).min();
            let step = tokio::select! {
                _ = &mut closed => return,
                () = tokio::time::sleep_until(next_resolve.into()), if resolve.is_some() => {
                    let resolved = match &resolve {
                        Some(resolve) => resolve().await,
                        None => Ok(Vec::new()),
                    };
                    next_resolve = Instant::now().checked_add(every).unwrap_or(next_resolve);
                    match resolved {
                        Ok(addrs) => self.resolved(addrs.into_iter().collect()),
                        // Keep the last known endpoints: a DNS hiccup must not empty
                        // the pool.
                        Err(error) => {
                            tracing::warn!(upstream = %self.upstream, %error, "cannot resolve upstream");
                            Ok(())
                        }
                    }
                }
                Some(addr) = failures.recv() => self.eject(addr),
                () = sleep_until_some(readmit_at) => self.readmit_due(),
            };
            if step.is_err() {
                return;
            }
        }
    }

    fn in_balancer(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.ejected_until.is_none())
            .count()
    }

    fn edit(&self, edit: impl FnOnce(&mut Vec<Tracked>)) -> Result<(), Closed> {
        let endpoints = self.endpoints.upgrade().ok_or(Closed)?;
        endpoints.edit(edit);
        Ok(())
    }

    fn insert(&self, addr: SocketAddr, health: &Arc<Health>) -> Result<(), Closed> {
        let tracked = Tracked {
            addr,
            connection: Connection::lazy(addr, self.connect),
            health: Arc::clone(health),
        };
        self.edit(|list| list.push(tracked))
    }

    fn remove(&self, addr: SocketAddr) -> Result<(), Closed> {
        self.edit(|list| list.retain(|tracked| tracked.addr != addr))
    }

    /// The upstream now resolves to `resolved`.
    fn resolved(&mut self, resolved: HashSet<SocketAddr>) -> Result<(), Closed> {
        let current: HashSet<SocketAddr> = self.members.keys().copied().collect();
        if current == resolved {
            return Ok(());
        }
        for gone in current.difference(&resolved) {
            if let Some(member) = self.members.remove(gone)
                && member.ejected_until.is_none()
            {
                self.remove(*gone)?;
            }
        }
        for new in resolved.difference(&current) {
            let health = Arc::new(Health::default());
            self.insert(*new, &health)?;
            self.members.insert(
                *new,
                Member {
                    health,
                    ejected_until: None,
                },
            );
        }
        tracing::info!(upstream = %self.upstream, addresses = resolved.len(), "upstream endpoints updated");
        if self.in_balancer() == 0 && !self.members.is_empty() {
            // Only ejected endpoints are left: better to try them than to have none.
            self.readmit(|_| true)?;
        }
        Ok(())
    }

    /// `addr` failed too many times in a row.
    fn eject(&mut self, addr: SocketAddr) -> Result<(), Closed> {
        let in_balancer = self.in_balancer();
        let Some(member) = self.members.get_mut(&addr) else {
            return Ok(());
        };
        if member.ejected_until.is_some() || in_balancer <= 1 {
            return Ok(());
        }
        let nth = {
            let mut state = member.health.state();
            state.ejections = state.ejections.saturating_add(1);
            state.ejections
        };
        let interval = self.options.ejection(nth);
        member.ejected_until = Some(Instant::now() + interval);
        tracing::warn!(
            upstream = %self.upstream,
            endpoint = %addr,
            failures = self.options.consecutive_failures,
            ejection_ms = interval.as_millis() as u64,
            "upstream endpoint ejected"
        );
        metrics::counter!(names::EJECTIONS, "upstream" => self.upstream.clone()).increment(1);
        self.remove(addr)
    }

    fn readmit_due(&mut self) -> Result<(), Closed> {
        let now = Instant::now();
        self.readmit(|until| until <= now)
    }

    /// Puts back every ejected endpoint whose ejection ends at a time `due` accepts,
    /// with a fresh connection and a clean failure count.
    fn readmit(&mut self, due: impl Fn(Instant) -> bool) -> Result<(), Closed> {
        let back: Vec<(SocketAddr, Arc<Health>)> = self
            .members
            .iter_mut()
            .filter(|(_, m)| m.ejected_until.is_some_and(&due))
            .map(|(addr, m)| {
                m.ejected_until = None;
                (*addr, Arc::clone(&m.health))
            })
            .collect();
        for (addr, health) in back {
            {
                let mut state = health.state();
                state.consecutive_failures = 0;
                state.last_failure = None;
            }
            tracing::info!(upstream = %self.upstream, endpoint = %addr, "upstream endpoint readmitted");
            self.insert(addr, &health)?;
        }
        Ok(())
    }
}

/// Sleeps until `at`, or forever.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ejections_grow_and_are_capped() {
        let options = OutlierOptions::default();
        let lengths: Vec<u64> = (1..=7).map(|n| options.ejection(n).as_secs()).collect();
        assert_eq!(lengths, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(options.ejection(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn a_failure_counts_until_an_answer() {
        let health = Health::default();
        assert!(!health.record(true, 3));
        assert!(!health.record(true, 3));
        assert!(health.recently_failed(Duration::from_secs(1)));
        assert!(!health.record(false, 3), "an answer resets the count");
        assert!(!health.recently_failed(Duration::from_secs(1)));
        assert!(!health.record(true, 3));
        assert!(!health.record(true, 3));
        assert!(health.record(true, 3), "the third in a row ejects");
        assert!(!health.record(true, 3));
        assert!(!health.record(true, 3));
        assert!(health.record(true, 3), "and again three later");
    }
}
