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

use platform_auth::AuthLayer;
use platform_db::{Database, DatabaseCheck, DbError, redact_url};
use platform_proto::users::v1::user_service_server::{SERVICE_NAME, UserServiceServer};
use platform_server::grpc::ServiceRoutes;
use platform_server::metrics::CollectorGuard;
use platform_server::{ServerError, ServiceRuntime};
use platform_shutdown::Shutdown;
use platform_telemetry::Component;
use tonic::service::Routes;

use crate::api::UsersApi;
use crate::keys::Keys;
use crate::password::{HashError, Hasher};
use crate::settings::Settings;
use crate::store::{self, MIGRATIONS};

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
    /// A server failed.
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// The users service, bound and ready to run.
#[derive(Debug)]
pub struct Application {
    settings: Settings,
    runtime: ServiceRuntime,
    database: Database,
    api: UsersApi,
    auth: AuthLayer,
    _pool_metrics: CollectorGuard,
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
        platform_server::metrics::install(Component {
            name: "users",
            version: env!("CARGO_PKG_VERSION"),
        });
        let pool_metrics = platform_server::metrics::register_collector({
            let database = database.clone();
            move || database.record_pool_metrics("users")
        });
        let auth = AuthLayer::new(Arc::clone(&keys.verifier));
        let api = UsersApi::new(store::open(&database), hasher, keys);
        let runtime =
            ServiceRuntime::bind(&settings.grpc, &settings.admin, &[SERVICE_NAME]).await?;
        tracing::info!(
            grpc.addr = %runtime.grpc_addr(),
            admin.addr = %runtime.admin_addr(),
            database = %redact_url(&settings.database.url),
            "users service bound"
        );
        Ok(Self {
            settings,
            runtime,
            database,
            api,
            auth,
            _pool_metrics: pool_metrics,
        })
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.runtime.grpc_addr()
    }

    /// The bound admin HTTP address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.runtime.admin_addr()
    }

    /// Serves until `shutdown` fires, then drains and returns.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> Result<(), AppError> {
        let check = DatabaseCheck::new(
            self.database.clone(),
            MIGRATIONS,
            self.settings.database.run_migrations,
        );
        let routes = ServiceRoutes {
            routes: Routes::new(UserServiceServer::new(self.api)),
            names: vec![SERVICE_NAME],
        };
        let result = self
            .runtime
            .run(
                routes,
                self.auth,
                &self.settings.grpc,
                shutdown,
                move || {
                    let check = check.clone();
                    async move { check.run().await }
                },
            )
            .await;
        self.database.close().await;
        result?;
        tracing::info!("users service stopped");
        Ok(())
    }
}

/// Applies the migrations to the configured database and returns.
pub async fn migrate(settings: &Settings) -> Result<(), AppError> {
    let database = Database::connect_lazy(&settings.database)?;
    let result = database.migrate(MIGRATIONS).await;
    database.close().await;
    Ok(result?)
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
        crate::error::ApiError::Invalid(violations) => platform_api::describe(violations),
        other => other.to_string(),
    }
}
