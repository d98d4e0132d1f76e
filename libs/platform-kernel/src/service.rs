//! What a service contributes to the kernel: the [`Service`] trait and [`Parts`].

use std::any::Any;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::future::BoxFuture;
use platform_auth::AuthLayer;
use platform_config::Layered;
use platform_server::grpc::ServiceRoutes;
use platform_server::{AdminSettings, GrpcSettings, ServerError};
use platform_telemetry::{Component, LogSettings};

use crate::healthcheck::Probe;

/// One service of the platform, as the kernel runs it.
///
/// Implemented on a unit type (`struct Users;`): the trait only names things and
/// builds the service's own parts; everything around them is the kernel's.
pub trait Service: Sized + Send + 'static {
    /// The service's settings, loaded in layers (defaults, `--config FILE`,
    /// `PREFIX__…` environment variables).
    type Settings: Layered + Clone + Send + Sync + 'static;
    /// Why the service could not start or stopped with an error.
    type Error: std::error::Error + From<ServerError> + Send + Sync + 'static;
    /// The service's own subcommands ([`NoCommand`](crate::NoCommand) for none).
    type Command: clap::Subcommand + std::fmt::Debug + Send;

    /// Who the process is, for telemetry and `build_info`.
    const COMPONENT: Component;
    /// One line for `--help`.
    const ABOUT: &'static str;
    /// Whether the service owns a database, and so has a `migrate` subcommand.
    const DATABASE: bool = false;

    /// The `[log]` section.
    fn log(settings: &Self::Settings) -> &LogSettings;

    /// The `[admin]` section.
    fn admin(settings: &Self::Settings) -> &AdminSettings;

    /// What `healthcheck` asks, and where, with the configured addresses.
    fn probe(settings: &Self::Settings) -> Probe;

    /// Everything that can fail on bad configuration (keys, database URL, upstream
    /// URLs), before the kernel binds the ports.
    fn build(settings: &Self::Settings) -> impl Future<Output = Result<Parts, Self::Error>> + Send;

    /// Applies the database migrations (only called when [`Self::DATABASE`]).
    fn migrate(settings: &Self::Settings) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = settings;
        async { Ok(()) }
    }

    /// Runs one of the service's own subcommands.
    fn command(
        settings: Self::Settings,
        command: Self::Command,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        let _ = settings;
        async move { anyhow::bail!("unsupported command {command:?}") }
    }
}

/// The readiness check of a service's dependencies; it logs its own reasons for
/// answering no.
pub(crate) type Check = Box<dyn FnMut() -> BoxFuture<'static, bool> + Send>;

/// What serves the public port.
pub(crate) enum Public {
    /// The platform's gRPC server around the service's routes.
    Grpc {
        settings: GrpcSettings,
        routes: ServiceRoutes,
        auth: AuthLayer,
    },
    /// An HTTP router (the edge).
    Http {
        addr: SocketAddr,
        grace: Duration,
        router: axum::Router,
    },
}

/// A service, built from its settings and not yet bound.
pub struct Parts {
    pub(crate) public: Public,
    pub(crate) check: Check,
    pub(crate) on_stop: Vec<BoxFuture<'static, ()>>,
    pub(crate) keep: Vec<Box<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let public = match &self.public {
            Public::Grpc { routes, .. } => format!("gRPC {:?}", routes.names),
            Public::Http { addr, .. } => format!("HTTP {addr}"),
        };
        f.debug_struct("Parts")
            .field("public", &public)
            .field("on_stop", &self.on_stop.len())
            .field("keep", &self.keep.len())
            .finish_non_exhaustive()
    }
}

impl Parts {
    /// A gRPC service: `routes` served with health, reflection and the standard
    /// layers on `settings.addr`, `auth` attaching the verified caller.
    pub fn grpc(settings: &GrpcSettings, routes: ServiceRoutes, auth: AuthLayer) -> Self {
        Self::new(Public::Grpc {
            settings: settings.clone(),
            routes,
            auth,
        })
    }

    /// An HTTP service: `router` on `addr`, given `grace` to finish requests in
    /// flight after SIGTERM.
    pub fn http(addr: SocketAddr, grace: Duration, router: axum::Router) -> Self {
        Self::new(Public::Http {
            addr,
            grace,
            router,
        })
    }

    fn new(public: Public) -> Self {
        Self {
            public,
            check: Box::new(|| Box::pin(async { true })),
            on_stop: Vec::new(),
            keep: Vec::new(),
        }
    }

    /// Ready while `check` answers true; it runs every few seconds until shutdown
    /// (faster while it answers false). Without one the service is ready once
    /// serving.
    #[must_use]
    pub fn ready_when<F, Fut>(mut self, mut check: F) -> Self
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        self.check = Box::new(move || Box::pin(check()));
        self
    }

    /// Runs `stop` once both servers have drained (closing a pool, say).
    #[must_use]
    pub fn on_stop(mut self, stop: impl Future<Output = ()> + Send + 'static) -> Self {
        self.on_stop.push(Box::pin(stop));
        self
    }

    /// Keeps `value` alive until the service has stopped (a metrics collector's
    /// guard, say).
    #[must_use]
    pub fn keep(mut self, value: impl Any + Send + Sync) -> Self {
        self.keep.push(Box::new(value));
        self
    }

    /// The public listen address.
    pub(crate) fn addr(&self) -> SocketAddr {
        match &self.public {
            Public::Grpc { settings, .. } => settings.addr,
            Public::Http { addr, .. } => *addr,
        }
    }

    /// The gRPC services whose health is reported.
    pub(crate) fn health_names(&self) -> Vec<&'static str> {
        match &self.public {
            Public::Grpc { routes, .. } => routes.names.clone(),
            Public::Http { .. } => Vec::new(),
        }
    }
}
