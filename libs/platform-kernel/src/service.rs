//! What a service contributes to the kernel: the [`Service`] trait, its [`Package`], the
//! [`Sections`] of its settings the kernel reads ([`KernelSettings`]), and [`Parts`].

use std::any::Any;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::future::BoxFuture;
use platform_auth::AuthLayer;
use platform_config::Layered;
use platform_db::{Database, DatabaseCheck, DatabaseSettings, Migrations};
use platform_server::faults::FaultSettings;
use platform_server::grpc::ServiceRoutes;
use platform_server::http::{HttpLimits, HttpService};
use platform_server::{AdminSettings, GrpcSettings};
use platform_telemetry::{Component, LogSettings};
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::Routes;

use crate::healthcheck::Probe;

/// Who a service's process is, from the manifest of its crate; declared with the
/// service's unit type by [`service!`](crate::service).
pub trait Package {
    /// For telemetry and `build_info`: the crate's package name and version.
    const COMPONENT: Component;
    /// One line for `--help`: the crate's description.
    const ABOUT: &'static str;
}

/// One service of the platform, as the kernel runs it.
///
/// Implemented on a unit type declared by [`service!`](crate::service) (`struct
/// Users;`): the trait only names things and builds the service's own parts;
/// everything around them is the kernel's.
pub trait Service: Package + Sized + Send + 'static {
    /// The service's settings, loaded in layers (defaults, `--config FILE`,
    /// `PREFIX__…` environment variables), with the sections the kernel reads.
    type Settings: KernelSettings;
    /// The service's own subcommands ([`NoCommand`](crate::NoCommand) for none).
    type Command: clap::Subcommand + std::fmt::Debug + Send;

    /// Everything that can fail on bad configuration (keys, database URL, upstream
    /// URLs), before the kernel binds the ports. The error says what was being built
    /// (`database: …`); the kernel logs it and exits 1.
    fn build(settings: &Self::Settings) -> impl Future<Output = anyhow::Result<Parts>> + Send;

    /// Runs one of the service's own subcommands.
    fn command(
        settings: Self::Settings,
        command: Self::Command,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        let _ = settings;
        async move { anyhow::bail!("unsupported command {command:?}") }
    }
}

/// A service's settings as the kernel takes them: loaded in layers, and holding the
/// sections the kernel itself reads.
pub trait KernelSettings: Layered + Clone + Send + Sync + 'static {
    /// The sections of these settings the kernel itself uses.
    fn sections(&self) -> Sections<'_>;
}

/// The sections of a service's settings that the kernel reads: where to log, the
/// admin port, what `healthcheck` asks, and the database `migrate` applies to.
#[derive(Debug)]
pub struct Sections<'a> {
    pub(crate) log: &'a LogSettings,
    pub(crate) admin: &'a AdminSettings,
    pub(crate) probe: Probe,
    pub(crate) database: Option<(&'a DatabaseSettings, Migrations)>,
    pub(crate) faults: Option<&'a FaultSettings>,
}

impl<'a> Sections<'a> {
    /// A gRPC service: `healthcheck` asks the health of `service` at `grpc.addr`.
    pub fn grpc(
        log: &'a LogSettings,
        admin: &'a AdminSettings,
        grpc: &GrpcSettings,
        service: &str,
    ) -> Self {
        let probe = Probe::Grpc {
            addr: grpc.addr,
            service: service.to_owned(),
        };
        Self::new(log, admin, probe)
    }

    /// An HTTP service: `healthcheck` asks `/readyz` on the admin port.
    pub fn http(log: &'a LogSettings, admin: &'a AdminSettings) -> Self {
        let probe = Probe::Ready { addr: admin.addr };
        Self::new(log, admin, probe)
    }

    fn new(log: &'a LogSettings, admin: &'a AdminSettings, probe: Probe) -> Self {
        Self {
            log,
            admin,
            probe,
            database: None,
            faults: None,
        }
    }

    /// Faults can be injected into the service's calls as `faults` says (nothing
    /// happens unless `faults.enabled`).
    #[must_use]
    pub fn with_faults(mut self, faults: &'a FaultSettings) -> Self {
        self.faults = Some(faults);
        self
    }

    /// The service owns `database`, with these migrations: `migrate` applies them.
    #[must_use]
    pub fn with_database(mut self, database: &'a DatabaseSettings, migrations: Migrations) -> Self {
        self.database = Some((database, migrations));
        self
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
    /// An HTTP service (the edge).
    Http {
        addr: SocketAddr,
        grace: Duration,
        service: HttpService,
        limits: HttpLimits,
    },
}

/// A service, built from its settings and not yet bound.
pub struct Parts {
    pub(crate) public: Public,
    pub(crate) checks: Vec<Check>,
    pub(crate) database: Option<Database>,
    pub(crate) on_stop: Vec<BoxFuture<'static, ()>>,
    pub(crate) on_drain: Vec<Box<dyn FnOnce() + Send>>,
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
            .field("checks", &self.checks.len())
            .field("database", &self.database.is_some())
            .field("on_stop", &self.on_stop.len())
            .field("on_drain", &self.on_drain.len())
            .field("keep", &self.keep.len())
            .finish_non_exhaustive()
    }
}

impl Parts {
    /// A gRPC service: the generated server `service` with health, reflection and
    /// the standard layers on `settings.addr`, `auth` attaching the verified caller.
    pub fn grpc<T>(settings: &GrpcSettings, service: T, auth: AuthLayer) -> Self
    where
        T: tower_service::Service<http::Request<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        T::Response: axum::response::IntoResponse,
        T::Future: Send + 'static,
    {
        let routes = ServiceRoutes {
            routes: Routes::new(service),
            names: vec![T::NAME],
        };
        Self::new(Public::Grpc {
            settings: settings.clone(),
            routes,
            auth,
        })
    }

    /// An HTTP service: `service` on `addr`, given `grace` to finish requests in
    /// flight after SIGTERM, its clients held to `limits`.
    pub fn http(
        addr: SocketAddr,
        grace: Duration,
        service: HttpService,
        limits: HttpLimits,
    ) -> Self {
        Self::new(Public::Http {
            addr,
            grace,
            service,
            limits,
        })
    }

    fn new(public: Public) -> Self {
        Self {
            public,
            checks: Vec::new(),
            database: None,
            on_stop: Vec::new(),
            on_drain: Vec::new(),
            keep: Vec::new(),
        }
    }

    /// Ready only while `check` answers true (and every other check does); they run
    /// every few seconds until shutdown (faster while one answers false). Without any
    /// the service is ready once serving.
    #[must_use]
    pub fn ready_when<F, Fut>(mut self, mut check: F) -> Self
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        self.checks.push(Box::new(move || Box::pin(check())));
        self
    }

    /// The service stores its data in `database`: ready only while it answers and its
    /// migrations are applied (applying them first when `settings.run_migrations`),
    /// its pool gauges exported, and closed after the drain.
    #[must_use]
    pub fn with_database(
        self,
        database: Database,
        settings: &DatabaseSettings,
        migrations: Migrations,
    ) -> Self {
        let check = DatabaseCheck::new(database.clone(), migrations, settings.run_migrations);
        let closing = database.clone();
        let mut parts = self
            .ready_when(move || {
                let check = check.clone();
                async move { check.run().await }
            })
            .on_stop(async move { closing.close().await });
        parts.database = Some(database);
        parts
    }

    /// The readiness of every check, all run each round so each logs its own state.
    pub(crate) fn check_all(mut checks: Vec<Check>) -> Check {
        Box::new(move || {
            let round = futures_util::future::join_all(checks.iter_mut().map(|check| check()));
            Box::pin(async move { round.await.into_iter().all(|ready| ready) })
        })
    }

    /// Runs `stop` once both servers have drained (closing a pool, say).
    #[must_use]
    pub fn on_stop(mut self, stop: impl Future<Output = ()> + Send + 'static) -> Self {
        self.on_stop.push(Box::pin(stop));
        self
    }

    /// Runs `drain` when the drain starts, once health reports NOT_SERVING: the place
    /// to end calls that would otherwise run on (server streams), so that the drain
    /// completes as soon as the short calls have, instead of after the grace period.
    #[must_use]
    pub fn on_drain(mut self, drain: impl FnOnce() + Send + 'static) -> Self {
        self.on_drain.push(Box::new(drain));
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
