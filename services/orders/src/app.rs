//! The orders service as the kernel runs it ([`Orders`]).
//!
//! It is ready while its database is reachable and migrated and the users service
//! reports SERVING: without users it cannot confirm accounts, so it asks load
//! balancers to send traffic elsewhere, and comes back by itself when users does.

use std::sync::Arc;

use platform_auth::AuthLayer;
use platform_db::{Database, DatabaseCheck, DbError, redact_url};
use platform_kernel::{NoCommand, Parts, Probe, Service};
use platform_proto::orders::v1::order_service_server::{OrderServiceServer, SERVICE_NAME};
use platform_server::grpc::ServiceRoutes;
use platform_server::{AdminSettings, ServerError};
use platform_telemetry::{Component, LogSettings};
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

/// The orders service, as the kernel runs it.
#[derive(Debug, Clone, Copy)]
pub struct Orders;

/// The orders service, built and bound to its ports.
pub type Application = platform_kernel::Application<Orders>;

impl Service for Orders {
    type Settings = Settings;
    type Error = AppError;
    type Command = NoCommand;

    const COMPONENT: Component = Component {
        name: "orders",
        version: env!("CARGO_PKG_VERSION"),
    };
    const ABOUT: &'static str = "The orders service of the platform.";
    const DATABASE: bool = true;

    fn log(settings: &Settings) -> &LogSettings {
        &settings.log
    }

    fn admin(settings: &Settings) -> &AdminSettings {
        &settings.admin
    }

    fn probe(settings: &Settings) -> Probe {
        Probe::Grpc {
            addr: settings.grpc.addr,
            service: SERVICE_NAME.to_owned(),
        }
    }

    /// Prepares the database pool and the users client.
    async fn build(settings: &Settings) -> Result<Parts, AppError> {
        let database = Database::connect_lazy(&settings.database)?;
        let pool_metrics = platform_server::metrics::register_collector({
            let database = database.clone();
            move || database.record_pool_metrics("orders")
        });
        let accounts = Accounts::new(&settings.users)?;
        let verifier = settings.auth.verification.verifier(accounts.key_source());
        let auth = AuthLayer::new(Arc::new(verifier));
        let api = OrdersApi::new(store::open(&database), accounts.clone());
        tracing::info!(
            database = %redact_url(&settings.database.url),
            users.url = %settings.users.url,
            "orders service built"
        );
        let check = DatabaseCheck::new(
            database.clone(),
            MIGRATIONS,
            settings.database.run_migrations,
        );
        let routes = ServiceRoutes {
            routes: Routes::new(OrderServiceServer::new(api)),
            names: vec![SERVICE_NAME],
        };
        Ok(Parts::grpc(&settings.grpc, routes, auth)
            .ready_when(move || {
                let check = check.clone();
                let accounts = accounts.clone();
                async move {
                    // Both are checked every round so each logs its own state.
                    let (db, users) = tokio::join!(check.run(), accounts.is_healthy());
                    db && users
                }
            })
            .on_stop(async move { database.close().await })
            .keep(pool_metrics))
    }

    async fn migrate(settings: &Settings) -> Result<(), AppError> {
        migrate(settings).await
    }
}

/// Applies the migrations to the configured database and returns.
pub async fn migrate(settings: &Settings) -> Result<(), AppError> {
    let database = Database::connect_lazy(&settings.database)?;
    let result = database.migrate(MIGRATIONS).await;
    database.close().await;
    Ok(result?)
}
