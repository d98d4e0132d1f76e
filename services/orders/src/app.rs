//! The orders service as one value: built from settings, bound to its ports, run until
//! a shutdown signal.
//!
//! It is ready while its database is reachable and migrated and the users service
//! reports SERVING: without users it cannot confirm accounts, so it asks load
//! balancers to send traffic elsewhere, and comes back by itself when users does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use platform_auth::{AuthLayer, Verifier};
use platform_db::{Database, DatabaseCheck, DbError, redact_url};
use platform_proto::orders::v1::order_service_server::{OrderServiceServer, SERVICE_NAME};
use platform_server::grpc::ServiceRoutes;
use platform_server::metrics::CollectorGuard;
use platform_server::{ServerError, ServiceRuntime};
use platform_shutdown::Shutdown;
use platform_telemetry::Component;
use tonic::service::Routes;

use crate::accounts::Accounts;
use crate::api::OrdersApi;
use crate::settings::Settings;
use crate::store::{self, MIGRATIONS};

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The database settings are unusable.
    #[error("database: {0}")]
    Database(#[from] DbError),
    /// The users endpoint is unusable.
    #[error("users endpoint: {0}")]
    Users(#[from] platform_client::ClientError),
    /// A server failed.
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// The orders service, bound and ready to run.
#[derive(Debug)]
pub struct Application {
    settings: Settings,
    runtime: ServiceRuntime,
    database: Database,
    accounts: Accounts,
    api: OrdersApi,
    auth: AuthLayer,
    _pool_metrics: CollectorGuard,
}

impl Application {
    /// Prepares the database pool and the users client and binds both ports (port 0
    /// picks a free one).
    pub async fn build(settings: Settings) -> Result<Self, AppError> {
        let database = Database::connect_lazy(&settings.database)?;
        platform_server::metrics::install(Component {
            name: "orders",
            version: env!("CARGO_PKG_VERSION"),
        });
        let pool_metrics = platform_server::metrics::register_collector({
            let database = database.clone();
            move || database.record_pool_metrics("orders")
        });
        let accounts = Accounts::new(&settings.users)?;
        let verifier = Verifier::with_source(
            accounts.key_source(),
            Duration::from_secs(settings.auth.key_refresh_interval_secs),
            &settings.auth.issuer,
            &settings.auth.audience,
        )
        .with_leeway(Duration::from_secs(settings.auth.clock_skew_secs))
        .with_cache(platform_auth::VERIFIED_TOKENS_CACHED);
        let auth = AuthLayer::new(Arc::new(verifier));
        let api = OrdersApi::new(store::open(&database), accounts.clone());
        let runtime =
            ServiceRuntime::bind(&settings.grpc, &settings.admin, &[SERVICE_NAME]).await?;
        tracing::info!(
            grpc.addr = %runtime.grpc_addr(),
            admin.addr = %runtime.admin_addr(),
            database = %redact_url(&settings.database.url),
            users.url = %settings.users.url,
            "orders service bound"
        );
        Ok(Self {
            settings,
            runtime,
            database,
            accounts,
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
        let database = DatabaseCheck::new(
            self.database.clone(),
            MIGRATIONS,
            self.settings.database.run_migrations,
        );
        let accounts = self.accounts.clone();
        let routes = ServiceRoutes {
            routes: Routes::new(OrderServiceServer::new(self.api)),
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
                    let database = database.clone();
                    let accounts = accounts.clone();
                    async move {
                        // Both are checked every round so each logs its own state.
                        let (db, users) = tokio::join!(database.run(), accounts.is_healthy());
                        db && users
                    }
                },
            )
            .await;
        self.database.close().await;
        result?;
        tracing::info!("orders service stopped");
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
