//! What every gRPC service's `Application` is made of: its two bound ports, its
//! readiness, and one `run` that serves both ports and watches the dependencies until
//! shutdown.
//!
//! Binding happens in [`ServiceRuntime::bind`], before anything is served, so a busy
//! port is an error at start and tests can bind port 0 and read the real address.

use std::future::Future;
use std::net::SocketAddr;

use platform_auth::AuthLayer;
use platform_shutdown::Shutdown;
use tokio::net::TcpListener;

use crate::grpc::ServiceRoutes;
use crate::{AdminSettings, GrpcSettings, Readiness, ServerError};

/// A service's bound ports and readiness.
#[derive(Debug)]
pub struct ServiceRuntime {
    grpc_listener: TcpListener,
    admin_listener: TcpListener,
    grpc_addr: SocketAddr,
    admin_addr: SocketAddr,
    readiness: Readiness,
}

impl ServiceRuntime {
    /// Binds the gRPC and admin ports; `services` are the gRPC service names whose
    /// health is reported (NOT_SERVING until the first successful check).
    pub async fn bind(
        grpc: &GrpcSettings,
        admin: &AdminSettings,
        services: &[&str],
    ) -> Result<Self, ServerError> {
        let (grpc_listener, grpc_addr) = crate::bind(grpc.addr).await?;
        let (admin_listener, admin_addr) = crate::bind(admin.addr).await?;
        Ok(Self {
            grpc_listener,
            admin_listener,
            grpc_addr,
            admin_addr,
            readiness: Readiness::new(services).await,
        })
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Serves `routes` and the admin port until `shutdown`, running `check` (the
    /// service's dependencies) periodically to drive readiness; returns once both
    /// servers have drained.
    pub async fn run<F, Fut>(
        self,
        routes: ServiceRoutes,
        auth: AuthLayer,
        settings: &GrpcSettings,
        shutdown: Shutdown,
        check: F,
    ) -> Result<(), ServerError>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        let watcher = tokio::spawn(crate::readiness::watch(
            self.readiness.clone(),
            shutdown.clone(),
            check,
        ));
        let grpc = crate::grpc::serve(
            self.grpc_listener,
            routes,
            auth,
            settings,
            self.readiness.clone(),
            shutdown.clone(),
        );
        let admin = crate::admin::serve(self.admin_listener, self.readiness, shutdown);
        let result = tokio::try_join!(grpc, admin);
        watcher.abort();
        result.map(|_| ())
    }
}
