//! A service bound to its ports: [`Application::build`] does everything that can fail
//! on bad configuration and binds (port 0 picks a free port, read back with
//! [`Application::public_addr`]); [`Application::run_until_stopped`] serves until a
//! shutdown fires, then drains.

use std::marker::PhantomData;
use std::net::SocketAddr;

use platform_server::faults::Faults;
use platform_server::{Readiness, ServerError};
use platform_shutdown::Shutdown;
use tokio::net::TcpListener;

use crate::service::{KernelSettings, Parts, Public, Service};

/// A service, built and bound, ready to run.
pub struct Application<S: Service> {
    parts: Parts,
    public: TcpListener,
    public_addr: SocketAddr,
    admin: TcpListener,
    admin_addr: SocketAddr,
    readiness: Readiness,
    faults: Option<Faults>,
    service: PhantomData<fn() -> S>,
}

impl<S: Service> std::fmt::Debug for Application<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("component", &S::COMPONENT.name)
            .field("public_addr", &self.public_addr)
            .field("admin_addr", &self.admin_addr)
            .field("parts", &self.parts)
            .finish_non_exhaustive()
    }
}

impl<S: Service> Application<S> {
    /// Builds the service from `settings` and binds its public and admin ports.
    pub async fn build(settings: S::Settings) -> anyhow::Result<Self> {
        platform_server::metrics::install(S::COMPONENT);
        let mut parts = S::build(&settings).await?;
        if let Some(database) = parts.database.take() {
            let name = S::COMPONENT.name;
            let gauges = platform_server::metrics::register_collector(move || {
                database.record_pool_metrics(name);
            });
            parts = parts.keep(gauges);
        }
        let sections = settings.sections();
        let faults = match sections.faults {
            Some(faults) => Faults::from_settings(faults).map_err(ServerError::from)?,
            None => None,
        };
        if faults.is_some() {
            tracing::warn!("fault injection is enabled: PUT /faults on the admin port");
        }
        let (public, public_addr) = platform_server::bind(parts.addr()).await?;
        let admin_addr = sections.admin.addr;
        let (admin, admin_addr) = platform_server::bind(admin_addr).await?;
        let readiness = Readiness::new(&parts.health_names()).await;
        // Harnesses that start the binary on port 0 read the addresses from this line.
        let name = S::COMPONENT.name;
        match parts.public {
            Public::Grpc { .. } => {
                tracing::info!(grpc.addr = %public_addr, admin.addr = %admin_addr, "{name} bound");
            }
            Public::Http { .. } => {
                tracing::info!(http.addr = %public_addr, admin.addr = %admin_addr, "{name} bound");
            }
        }
        Ok(Self {
            parts,
            public,
            public_addr,
            admin,
            admin_addr,
            readiness,
            faults,
            service: PhantomData,
        })
    }

    /// The bound public address (gRPC, or HTTP for the edge).
    pub fn public_addr(&self) -> SocketAddr {
        self.public_addr
    }

    /// The bound admin address (`/healthz`, `/readyz`, `/metrics`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The readiness both health surfaces report.
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// Serves both ports and watches the dependencies until `shutdown` fires, then
    /// reports not-ready, drains within the grace period, and runs the service's
    /// stop hooks.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let Parts {
            public,
            checks,
            on_stop,
            on_drain,
            keep,
            ..
        } = self.parts;
        let check = Parts::check_all(checks);
        let readiness = self.readiness;
        let watcher = tokio::spawn(platform_server::readiness::watch(
            readiness.clone(),
            shutdown.clone(),
            check,
        ));
        // Long-lived calls are ended once the drain has begun (health NOT_SERVING, the
        // listener told to close), so their clients reconnect elsewhere.
        let drainer = {
            let (readiness, shutdown) = (readiness.clone(), shutdown.clone());
            tokio::spawn(async move {
                shutdown.wait().await;
                readiness.start_draining().await;
                for drain in on_drain {
                    drain();
                }
            })
        };
        let faults = self.faults;
        let admin_faults = faults.clone();
        let public = {
            let readiness = readiness.clone();
            let shutdown = shutdown.clone();
            let listener = self.public;
            async move {
                match public {
                    Public::Grpc {
                        settings,
                        routes,
                        auth,
                    } => {
                        platform_server::grpc::serve(
                            listener, routes, auth, &settings, faults, readiness, shutdown,
                        )
                        .await
                    }
                    Public::Http {
                        grace,
                        service,
                        limits,
                        ..
                    } => {
                        platform_server::http::serve(
                            listener, service, limits, grace, readiness, shutdown,
                        )
                        .await
                    }
                }
            }
        };
        let admin =
            platform_server::admin::serve(self.admin, readiness, admin_faults, shutdown.clone());
        let result = tokio::try_join!(public, admin);
        watcher.abort();
        drainer.abort();
        for stop in on_stop {
            stop.await;
        }
        drop(keep);
        result?;
        tracing::info!(component = S::COMPONENT.name, "stopped");
        Ok(())
    }
}
