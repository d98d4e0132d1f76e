//! One switch for "ready to take traffic", read by both health surfaces.
//!
//! Kubernetes may probe either the gRPC health protocol or the admin `/readyz`; both
//! must agree, so both read this. A service flips it as its dependencies come and go
//! (database reachable and migrated, upstreams healthy); the server flips it off for
//! good when draining starts, so load balancers stop sending new calls.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use platform_shutdown::Shutdown;

use tonic_health::ServingStatus;
use tonic_health::server::{HealthReporter, HealthService};

/// Shared readiness of one process. Cloning shares the state.
#[derive(Clone)]
pub struct Readiness {
    inner: Arc<Inner>,
}

struct Inner {
    reporter: HealthReporter,
    /// The fully qualified gRPC service names reported, plus `""` for the server.
    services: Vec<String>,
    ready: AtomicBool,
    draining: AtomicBool,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("services", &self.inner.services)
            .field("ready", &self.is_ready())
            .field("draining", &self.is_draining())
            .finish()
    }
}

impl Readiness {
    /// Readiness for the given gRPC services, starting NOT_SERVING.
    pub async fn new(services: &[&str]) -> Self {
        let reporter = HealthReporter::new();
        let mut names: Vec<String> = services.iter().map(|s| (*s).to_owned()).collect();
        names.push(String::new());
        let readiness = Self {
            inner: Arc::new(Inner {
                reporter,
                services: names,
                ready: AtomicBool::new(false),
                draining: AtomicBool::new(false),
            }),
        };
        readiness.publish(ServingStatus::NotServing).await;
        readiness
    }

    /// The `grpc.health.v1.Health` service answering from this readiness.
    pub fn health_service(&self) -> tonic_health::pb::health_server::HealthServer<HealthService> {
        tonic_health::pb::health_server::HealthServer::new(HealthService::from_health_reporter(
            self.inner.reporter.clone(),
        ))
    }

    /// Whether the process takes traffic now.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::SeqCst) && !self.is_draining()
    }

    /// Whether the process is shutting down.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    /// Records whether the dependencies are available. Ignored once draining.
    pub async fn set_ready(&self, ready: bool) {
        if self.is_draining() {
            return;
        }
        let was = self.inner.ready.swap(ready, Ordering::SeqCst);
        if was != ready {
            if ready {
                tracing::info!("ready: serving");
            } else {
                tracing::warn!("not ready: a dependency is unavailable");
            }
            self.publish(status(ready)).await;
        }
    }

    /// Marks the process NOT_SERVING for good.
    pub async fn start_draining(&self) {
        if !self.inner.draining.swap(true, Ordering::SeqCst) {
            tracing::info!("draining: health set to NOT_SERVING");
            self.publish(ServingStatus::NotServing).await;
        }
    }

    async fn publish(&self, status: ServingStatus) {
        for name in &self.inner.services {
            self.inner.reporter.set_service_status(name, status).await;
        }
    }
}

fn status(ready: bool) -> ServingStatus {
    if ready {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

/// How often dependencies are checked while they are healthy, and while they are not
/// (faster, so recovery is noticed quickly).
const CHECK_HEALTHY: Duration = Duration::from_secs(2);
const CHECK_UNHEALTHY: Duration = Duration::from_millis(500);

/// Runs `check` periodically until `shutdown`, publishing its answer as readiness.
///
/// `check` is the whole of a service's dependencies (its database, its upstreams);
/// it logs its own reasons for answering no.
pub async fn watch<F, Fut>(readiness: Readiness, shutdown: Shutdown, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    loop {
        let healthy = check().await;
        readiness.set_ready(healthy).await;
        let pause = if healthy {
            CHECK_HEALTHY
        } else {
            CHECK_UNHEALTHY
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = shutdown.wait() => return,
        }
    }
}
