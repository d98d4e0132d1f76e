//! The gateway as one value: built from settings (descriptors, routes, upstreams,
//! keys, limits), bound to its ports, run until a shutdown signal.
//!
//! The routing table is built once, at start, from the descriptors compiled into the
//! binary plus any descriptor sets named in the settings; a conflict or an invalid
//! annotation stops the gateway before it binds. It is ready while users and orders
//! both report SERVING on the health protocol.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use platform_auth::Verifier;
use platform_auth::users_jwks::UsersJwks;
use platform_client::{ChannelOptions, Channels};
use platform_server::{Readiness, ServerError};
use platform_shutdown::Shutdown;
use platform_telemetry::Component;
use prost_reflect::{DescriptorPool, ServiceDescriptor};
use tokio::net::TcpListener;

use crate::edge::{self, Edge};
use crate::openapi::{self, ApiInfo};
use crate::ratelimit::Limiter;
use crate::routing::{RouteError, RouteTable};
use crate::settings::Settings;
use crate::upstream::{Upstream, UpstreamError};

/// The services the gateway is built with, and which setting names their upstream.
const BUILT_IN: [&str; 2] = ["users.v1.UserService", "orders.v1.OrderService"];

/// Why the gateway could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A configured descriptor set could not be read or decoded.
    #[error("descriptor set {path}: {reason}")]
    Descriptors {
        /// The file from the settings.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A configured service or package is not in its descriptor set.
    #[error("service `{0}` is not in its descriptor set")]
    UnknownService(String),
    /// The annotations do not make a valid routing table.
    #[error("routes: {0}")]
    Routes(#[from] RouteError),
    /// An upstream URL is unusable.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// A server failed.
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// The gateway, bound and ready to run.
#[derive(Debug)]
pub struct Application {
    settings: Settings,
    edge: Arc<Edge>,
    health_targets: Vec<(String, Upstream)>,
    http_listener: TcpListener,
    http_addr: SocketAddr,
    admin_listener: TcpListener,
    admin_addr: SocketAddr,
}

/// The descriptor pool and the services to expose, from the built-in descriptors and
/// the configured descriptor sets; each service paired with its upstream URL.
pub fn services(
    settings: &Settings,
) -> Result<(DescriptorPool, Vec<(ServiceDescriptor, String)>), AppError> {
    let mut pool = platform_proto::descriptor_pool().clone();
    for extra in &settings.upstreams {
        let path = extra.descriptor_set.display().to_string();
        let bytes = std::fs::read(&extra.descriptor_set).map_err(|e| AppError::Descriptors {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        // Files the pool already has (google/api/...) are skipped.
        pool.decode_file_descriptor_set(bytes.as_slice())
            .map_err(|e| AppError::Descriptors {
                path,
                reason: e.to_string(),
            })?;
    }

    let mut services = Vec::new();
    for (name, url) in BUILT_IN
        .iter()
        .zip([&settings.users.url, &settings.orders.url])
    {
        let service = pool
            .get_service_by_name(name)
            .ok_or_else(|| AppError::UnknownService((*name).to_owned()))?;
        services.push((service, url.clone()));
    }
    for extra in &settings.upstreams {
        for wanted in &extra.services {
            let found: Vec<ServiceDescriptor> = pool
                .services()
                .filter(|s| s.full_name() == wanted || s.package_name() == wanted)
                .collect();
            if found.is_empty() {
                return Err(AppError::UnknownService(wanted.clone()));
            }
            services.extend(found.into_iter().map(|s| (s, extra.url.clone())));
        }
    }
    Ok((pool, services))
}

/// The OpenAPI document of `table`.
pub fn openapi_document(table: &RouteTable, settings: &Settings) -> serde_json::Value {
    let public = settings.public_methods();
    openapi::document(
        table,
        &ApiInfo {
            title: "Platform API".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: Some(
                "Every route is derived from the google.api.http annotations of the services behind the gateway."
                    .to_owned(),
            ),
        },
        &|method| {
            let key = format!("{}/{}", method.parent_service().full_name(), method.name());
            public.contains(&key)
        },
    )
}

impl Application {
    /// Builds routes, upstream channels and the token verifier, then binds both ports
    /// (port 0 picks a free one).
    pub async fn build(settings: Settings) -> Result<Self, AppError> {
        platform_server::metrics::install(Component {
            name: "gateway",
            version: env!("CARGO_PKG_VERSION"),
        });
        edge::describe_metrics();
        let (pool, services) = services(&settings)?;
        let table = RouteTable::build(&pool, services.iter().map(|(s, _)| s.clone()))?;

        // One channel per upstream URL, shared by every service it serves, the key
        // fetch and the health probes.
        let channels = Channels::new(ChannelOptions {
            connect_timeout: Duration::from_millis(settings.http.connect_timeout_ms),
            ..ChannelOptions::default()
        });
        let call_timeout = Duration::from_millis(settings.http.default_timeout_ms);
        let upstream = |url: &str| channels.client(url, call_timeout).map(Upstream::new);
        let mut upstreams = HashMap::new();
        for (service, url) in &services {
            upstreams.insert(service.full_name().to_owned(), upstream(url)?);
        }
        let users = upstream(&settings.users.url)?;
        let orders = upstream(&settings.orders.url)?;

        let verifier = Verifier::with_source(
            Arc::new(UsersJwks::new(
                users.client().clone(),
                Duration::from_secs(2),
            )),
            Duration::from_secs(settings.auth.key_refresh_interval_secs),
            &settings.auth.issuer,
            &settings.auth.audience,
        )
        .with_leeway(Duration::from_secs(settings.auth.clock_skew_secs))
        .with_cache(platform_auth::VERIFIED_TOKENS_CACHED);

        let openapi = Bytes::from(openapi_document(&table, &settings).to_string());
        let edge = Arc::new(Edge {
            table,
            pool,
            upstreams,
            verifier: Arc::new(verifier),
            public_methods: settings.public_methods(),
            limiter: Limiter::new(&settings.rate_limit),
            http: settings.http.clone(),
            trust_forwarded_for: settings.rate_limit.trust_forwarded_for,
            openapi,
        });

        let (http_listener, http_addr) = platform_server::bind(settings.http.addr).await?;
        let (admin_listener, admin_addr) = platform_server::bind(settings.admin.addr).await?;
        tracing::info!(
            http.addr = %http_addr,
            admin.addr = %admin_addr,
            routes = edge.table.routes().count(),
            "gateway bound"
        );
        Ok(Self {
            health_targets: vec![
                ("users.v1.UserService".to_owned(), users),
                ("orders.v1.OrderService".to_owned(), orders),
            ],
            settings,
            edge,
            http_listener,
            http_addr,
            admin_listener,
            admin_addr,
        })
    }

    /// The bound public address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Serves until `shutdown` fires, then drains and returns.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> Result<(), AppError> {
        let readiness = Readiness::new(&[]).await;
        let targets = Arc::new(self.health_targets);
        let watcher = tokio::spawn(platform_server::readiness::watch(
            readiness.clone(),
            shutdown.clone(),
            move || {
                let targets = Arc::clone(&targets);
                async move {
                    let checks = targets
                        .iter()
                        .map(|(name, upstream)| serving(name, upstream));
                    futures_util::future::join_all(checks)
                        .await
                        .into_iter()
                        .all(|ok| ok)
                }
            },
        ));

        let app = edge::router(self.edge, &self.settings);
        let grace = Duration::from_millis(self.settings.http.grace_period_ms);
        let drain_started = {
            let shutdown = shutdown.clone();
            let readiness = readiness.clone();
            async move {
                shutdown.wait().await;
                readiness.start_draining().await;
            }
        };
        let public = axum::serve(
            self.http_listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(drain_started);
        let public = async {
            tokio::select! {
                result = public => result.map_err(ServerError::Admin),
                () = async { shutdown.wait().await; tokio::time::sleep(grace).await } => {
                    tracing::warn!("grace period over; abandoning requests in flight");
                    Ok(())
                }
            }
        };
        let admin = platform_server::admin::serve(self.admin_listener, readiness, shutdown.clone());
        let result = tokio::try_join!(public, admin);
        watcher.abort();
        result?;
        tracing::info!("gateway stopped");
        Ok(())
    }
}

/// Whether the upstream reports `service` SERVING within a second (a probe: no span,
/// no trace context).
async fn serving(service: &str, upstream: &Upstream) -> bool {
    platform_client::is_serving(upstream.client(), service, Duration::from_secs(1)).await
}
