//! The users service as one value: built from settings, bound to its ports, run until
//! a shutdown signal.
//!
//! [`Application::build`] does everything that can fail on bad configuration (keys,
//! database URL, listening sockets) before serving anything. [`Application::run_until_stopped`]
//! serves gRPC and the admin port, and keeps watching the database: migrations are
//! applied as soon as it answers, health turns SERVING only then, and readiness
//! follows the database while it comes and goes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use platform_auth::AuthLayer;
use platform_db::{Database, DbError, redact_url};
use platform_proto::users::v1::user_service_server::{SERVICE_NAME, UserServiceServer};
use platform_server::grpc::ServiceRoutes;
use platform_server::{Readiness, ServerError};
use platform_shutdown::Shutdown;
use tokio::net::TcpListener;
use tonic::service::Routes;

use crate::api::UsersApi;
use crate::keys::Keys;
use crate::password::{HashError, Hasher};
use crate::settings::Settings;
use crate::store::{self, MIGRATIONS};

/// How often the database is checked while it answers, and while it does not.
const DB_CHECK_HEALTHY: Duration = Duration::from_secs(2);
const DB_CHECK_UNHEALTHY: Duration = Duration::from_millis(500);

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A signing key could not be loaded or generated.
    #[error("signing keys: {0}")]
    Keys(#[from] platform_auth::KeyError),
    /// The database settings are unusable.
    #[error("database: {0}")]
    Database(#[from] DbError),
    /// The password hasher could not start.
    #[error("password hashing: {0}")]
    Hash(#[from] HashError),
    /// A listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address from the settings.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A server failed.
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// The users service, bound and ready to run.
#[derive(Debug)]
pub struct Application {
    settings: Settings,
    grpc_listener: TcpListener,
    admin_listener: TcpListener,
    grpc_addr: SocketAddr,
    admin_addr: SocketAddr,
    database: Database,
    readiness: Readiness,
    api: UsersApi,
    auth: AuthLayer,
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), AppError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| AppError::Bind { addr, source })?;
    Ok((listener, bound))
}

impl Application {
    /// Loads keys, prepares the database pool and binds both ports (port 0 picks a
    /// free one; see [`Application::grpc_addr`]).
    pub async fn build(settings: Settings) -> Result<Self, AppError> {
        let keys = Keys::load(&settings.auth)?;
        let params = crate::password::params(&settings)
            .map_err(|e| AppError::Hash(HashError::Argon2(e.to_string())))?;
        let hasher = Hasher::new(params, settings.password.max_concurrent).await?;
        let database = Database::connect_lazy(&settings.database)?;
        let store = store::open(&database);
        let readiness = Readiness::new(&[SERVICE_NAME]).await;
        let auth = AuthLayer::new(Arc::clone(&keys.verifier));
        let api = UsersApi::new(store, hasher, keys);

        let (grpc_listener, grpc_addr) = bind(settings.grpc.addr).await?;
        let (admin_listener, admin_addr) = bind(settings.admin.addr).await?;
        tracing::info!(
            grpc.addr = %grpc_addr,
            admin.addr = %admin_addr,
            database = %redact_url(&settings.database.url),
            "users service bound"
        );
        Ok(Self {
            settings,
            grpc_listener,
            admin_listener,
            grpc_addr,
            admin_addr,
            database,
            readiness,
            api,
            auth,
        })
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The bound admin HTTP address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Serves until `shutdown` fires, then drains and returns.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> Result<(), AppError> {
        let watcher = tokio::spawn(watch_database(
            self.database.clone(),
            self.settings.database.run_migrations,
            self.readiness.clone(),
            shutdown.clone(),
        ));

        let routes = ServiceRoutes {
            routes: Routes::new(UserServiceServer::new(self.api)),
            names: vec![SERVICE_NAME],
        };
        let grpc = platform_server::grpc::serve(
            self.grpc_listener,
            routes,
            self.auth,
            &self.settings.grpc,
            self.readiness.clone(),
            shutdown.clone(),
        );
        let admin = platform_server::admin::serve(self.admin_listener, self.readiness, shutdown);
        let result = tokio::try_join!(grpc, admin);

        watcher.abort();
        self.database.close().await;
        result?;
        tracing::info!("users service stopped");
        Ok(())
    }
}

/// Applies migrations once the database answers, then follows its health.
async fn watch_database(
    database: Database,
    run_migrations: bool,
    readiness: Readiness,
    shutdown: Shutdown,
) {
    let mut migrated = !run_migrations;
    loop {
        let healthy = if migrated {
            match database.ping().await {
                Ok(()) => true,
                Err(error) => {
                    tracing::warn!(%error, "database check failed");
                    false
                }
            }
        } else {
            match database.migrate(MIGRATIONS).await {
                Ok(()) => {
                    tracing::info!(db.system = database.system(), "migrations applied");
                    migrated = true;
                    true
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot apply migrations yet");
                    false
                }
            }
        };
        readiness.set_ready(healthy).await;
        let pause = if healthy {
            DB_CHECK_HEALTHY
        } else {
            DB_CHECK_UNHEALTHY
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = shutdown.wait() => return,
        }
    }
}

/// Creates an admin account directly in the database: the operator path, since the
/// API never grants the admin role to a new account.
pub async fn create_admin(
    settings: &Settings,
    email: &str,
    display_name: &str,
    password: &str,
) -> Result<crate::domain::User, AdminCommandError> {
    let keys = Keys::load(&settings.auth).map_err(AppError::from)?;
    let params = crate::password::params(settings)
        .map_err(|e| AppError::Hash(HashError::Argon2(e.to_string())))?;
    let hasher = Hasher::new(params, 1).await.map_err(AppError::from)?;
    let database = Database::connect_lazy(&settings.database).map_err(AppError::from)?;
    if settings.database.run_migrations {
        database.migrate(MIGRATIONS).await.map_err(AppError::from)?;
    }
    let api = UsersApi::new(store::open(&database), hasher, keys);
    let created = api
        .create_account(email, display_name, password, platform_auth::Role::Admin)
        .await;
    database.close().await;
    Ok(created?)
}

/// Why the admin command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminCommandError {
    /// The service's resources could not be opened.
    #[error(transparent)]
    App(#[from] AppError),
    /// The account was refused.
    #[error("{}", describe(.0))]
    Refused(#[from] crate::error::ApiError),
}

fn describe(error: &crate::error::ApiError) -> String {
    match error {
        crate::error::ApiError::Invalid(violations) => violations
            .iter()
            .map(|v| format!("{}: {}", v.field, v.description))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}
