//! The gateway as the kernel runs it ([`Gateway`]): built from settings (descriptors,
//! routes, upstreams, keys, limits) into an HTTP router; binding, readiness, signals
//! and the drain are `platform-kernel`'s.
//!
//! The routing table is built once, at start, from the descriptors compiled into the
//! binary plus any descriptor sets named in the settings; a conflict or an invalid
//! annotation stops the gateway before it binds. It is ready while users and orders
//! both report SERVING on the health protocol.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use platform_auth::users_jwks::UsersJwks;
use platform_kernel::{Parts, Probe, Service};
use platform_server::{AdminSettings, ServerError};
use platform_telemetry::{Component, LogSettings};
use prost_reflect::{DescriptorPool, ServiceDescriptor};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tower_http::cors::{AllowOrigin, CorsLayer};

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

/// The gateway, as the kernel runs it.
#[derive(Debug, Clone, Copy)]
pub struct Gateway;

/// The gateway, built and bound to its ports.
pub type Application = platform_kernel::Application<Gateway>;

/// The gateway's own subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print the OpenAPI document of the configured routes and exit.
    Openapi,
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

impl Service for Gateway {
    type Settings = Settings;
    type Error = AppError;
    type Command = Command;

    const COMPONENT: Component = Component {
        name: "gateway",
        version: env!("CARGO_PKG_VERSION"),
    };
    const ABOUT: &'static str = "The HTTP/JSON edge of the platform.";

    fn log(settings: &Settings) -> &LogSettings {
        &settings.log
    }

    fn admin(settings: &Settings) -> &AdminSettings {
        &settings.admin
    }

    fn probe(settings: &Settings) -> Probe {
        Probe::Ready {
            addr: settings.admin.addr,
        }
    }

    /// Builds routes, upstream channels and the token verifier; ready while every
    /// built-in upstream reports SERVING.
    async fn build(settings: &Settings) -> Result<Parts, AppError> {
        edge::describe_metrics();
        let (pool, services) = services(settings)?;
        let table = RouteTable::build(&pool, services.iter().map(|(s, _)| s.clone()))?;

        let connect_timeout = Duration::from_millis(settings.http.connect_timeout_ms);
        let mut by_url: HashMap<String, Upstream> = HashMap::new();
        let mut upstreams = HashMap::new();
        for (service, url) in &services {
            let upstream = match by_url.get(url) {
                Some(existing) => existing.clone(),
                None => {
                    let created = Upstream::connect(url, connect_timeout)?;
                    by_url.insert(url.clone(), created.clone());
                    created
                }
            };
            upstreams.insert(service.full_name().to_owned(), upstream);
        }
        let users = Upstream::connect(&settings.users.url, connect_timeout)?;
        let orders = Upstream::connect(&settings.orders.url, connect_timeout)?;

        let verifier = settings.auth.verification.verifier(Arc::new(UsersJwks::new(
            users.channel(),
            Duration::from_secs(2),
        )));

        let openapi = Bytes::from(openapi_document(&table, settings).to_string());
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

        tracing::info!(routes = edge.table.routes().count(), "gateway built");
        let targets = Arc::new(vec![
            ("users.v1.UserService".to_owned(), users),
            ("orders.v1.OrderService".to_owned(), orders),
        ]);
        let mut app = edge::router(edge);
        if let Some(cors) = cors(settings) {
            app = app.layer(cors);
        }
        let grace = Duration::from_millis(settings.http.grace_period_ms);
        Ok(
            Parts::http(settings.http.addr, grace, app).ready_when(move || {
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
            }),
        )
    }

    async fn command(settings: Settings, command: Command) -> anyhow::Result<()> {
        match command {
            Command::Openapi => print_openapi(&settings),
        }
    }
}

fn print_openapi(settings: &Settings) -> anyhow::Result<()> {
    let (pool, services) = services(settings)?;
    let table = RouteTable::build(&pool, services.into_iter().map(|(s, _)| s))?;
    let document = openapi_document(&table, settings);
    #[allow(clippy::print_stdout, reason = "the command's output")]
    {
        println!("{}", serde_json::to_string_pretty(&document)?);
    }
    Ok(())
}

/// Whether the upstream reports `service` SERVING within a second. A probe, not
/// traffic: it runs outside any span and sends no trace context, so it makes no span
/// here and starts no trace upstream (whose servers skip the health service anyway).
async fn serving(service: &str, upstream: &Upstream) -> bool {
    let mut client = HealthClient::new(upstream.channel());
    let mut request = tonic::Request::new(tonic_health::pb::HealthCheckRequest {
        service: service.to_owned(),
    });
    request.set_timeout(Duration::from_secs(1));
    match tokio::time::timeout(Duration::from_secs(1), client.check(request)).await {
        Ok(Ok(response)) if response.get_ref().status == ServingStatus::Serving as i32 => true,
        Ok(Ok(_)) => {
            tracing::warn!(upstream = upstream.url(), %service, "upstream not serving");
            false
        }
        Ok(Err(status)) => {
            tracing::warn!(upstream = upstream.url(), %service, code = ?status.code(), "upstream health check failed");
            false
        }
        Err(_) => {
            tracing::warn!(upstream = upstream.url(), %service, "upstream health check timed out");
            false
        }
    }
}

/// The CORS layer the settings ask for, if any.
fn cors(settings: &Settings) -> Option<CorsLayer> {
    let origins = &settings.cors.allowed_origins;
    if origins.is_empty() {
        return None;
    }
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| o.parse().ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([
                http::Method::GET,
                http::Method::POST,
                http::Method::PUT,
                http::Method::PATCH,
                http::Method::DELETE,
            ])
            .allow_headers([
                http::header::AUTHORIZATION,
                http::header::CONTENT_TYPE,
                http::HeaderName::from_static("idempotency-key"),
                http::HeaderName::from_static("x-request-id"),
                http::HeaderName::from_static("request-timeout"),
                http::HeaderName::from_static("traceparent"),
                http::HeaderName::from_static("tracestate"),
            ])
            .expose_headers([
                http::HeaderName::from_static("x-request-id"),
                http::header::RETRY_AFTER,
                http::header::WWW_AUTHENTICATE,
            ])
            .max_age(Duration::from_secs(settings.cors.max_age_secs)),
    )
}
