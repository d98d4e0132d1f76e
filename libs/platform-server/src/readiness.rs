//! One switch for "ready to take traffic", read by both health surfaces.
//!
//! Kubernetes may probe either the gRPC health protocol or the admin `/readyz`; both
//! must agree, so both read this. A service flips it as what it owns comes and goes
//! (its database reachable and migrated; never another service, so that one service's
//! outage does not take every caller out of rotation); the server flips it off for
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
    /// Held across a state change and its publication, so a check that finishes
    /// while draining starts cannot publish SERVING after the drain's NOT_SERVING.
    publishing: tokio::sync::Mutex<()>,
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
                publishing: tokio::sync::Mutex::new(()),
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

    /// Records whether the dependencies are available. Ignored once draining:
    /// draining is final.
    pub async fn set_ready(&self, ready: bool) {
        let _publishing = self.inner.publishing.lock().await;
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
        let _publishing = self.inner.publishing.lock().await;
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

#[cfg(test)]
mod tests {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_server::Health;

    use super::*;

    async fn published(readiness: &Readiness, service: &str) -> i32 {
        let health = HealthService::from_health_reporter(readiness.inner.reporter.clone());
        let request = tonic::Request::new(HealthCheckRequest {
            service: service.to_owned(),
        });
        health.check(request).await.unwrap().into_inner().status
    }

    #[tokio::test]
    async fn readiness_is_published_for_every_service() {
        let readiness = Readiness::new(&["a.v1.A"]).await;
        assert_eq!(
            published(&readiness, "a.v1.A").await,
            ServingStatus::NotServing as i32
        );
        readiness.set_ready(true).await;
        assert!(readiness.is_ready());
        assert_eq!(
            published(&readiness, "a.v1.A").await,
            ServingStatus::Serving as i32
        );
        assert_eq!(
            published(&readiness, "").await,
            ServingStatus::Serving as i32
        );
    }

    /// A dependency check that answers while the drain starts must not win: whatever
    /// the interleaving, the last word published is NOT_SERVING.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn draining_is_final() {
        for _ in 0..200 {
            let readiness = Readiness::new(&["a.v1.A"]).await;
            let checks: Vec<_> = (0..4)
                .map(|_| {
                    let readiness = readiness.clone();
                    tokio::spawn(async move { readiness.set_ready(true).await })
                })
                .collect();
            readiness.start_draining().await;
            for check in checks {
                check.await.unwrap();
            }
            readiness.set_ready(true).await;
            assert!(!readiness.is_ready());
            assert_eq!(
                published(&readiness, "a.v1.A").await,
                ServingStatus::NotServing as i32
            );
        }
    }
}
