//! The gateway as the kernel runs it ([`Gateway`]): built from settings (descriptors,
//! routes, upstreams, keys, limits) into an HTTP router; binding, readiness, signals
//! and the drain are `platform-kernel`'s.
//!
//! The routing table is built once, at start, from the descriptors compiled into the
//! binary plus any descriptor sets named in the settings; a conflict or an invalid
//! annotation stops the gateway before it binds. It is ready once its routes are
//! loaded and until it drains: an upstream that is down answers 503 on its own routes
//! (and shows in metrics and alerts), never by taking every gateway out of rotation.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use platform_api::rules::Validator;
use platform_auth::users_jwks::UsersJwks;
use platform_kernel::{Parts, Service};
use prost_reflect::{DescriptorPool, ServiceDescriptor};
use tokio_util::sync::CancellationToken;

use crate::Gateway;
use crate::client_address::ClientAddresses;
use crate::edge::{self, Edge};
use crate::openapi::{self, ApiInfo};
use crate::ratelimit::{Limiter, LimiterError};
use crate::routing::{RouteError, RouteTable};
use crate::settings::{Settings, UpstreamSettings};
use crate::upstream::{Policy, Upstream, UpstreamError};

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
    /// The rate limiter could not be set up.
    #[error(transparent)]
    RateLimit(#[from] LimiterError),
}

/// The gateway's own subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print the OpenAPI document of the configured routes and exit.
    Openapi,
}

/// The descriptor pool and the services to expose, from the built-in descriptors and
/// the configured descriptor sets; each service paired with its upstream (URL and
/// options).
pub fn services(
    settings: &Settings,
) -> Result<(DescriptorPool, Vec<(ServiceDescriptor, UpstreamSettings)>), AppError> {
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
    for (name, upstream) in BUILT_IN.iter().zip([&settings.users, &settings.orders]) {
        let service = pool
            .get_service_by_name(name)
            .ok_or_else(|| AppError::UnknownService((*name).to_owned()))?;
        services.push((service, upstream.clone()));
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
            let upstream = UpstreamSettings {
                url: extra.url.clone(),
                options: extra.options.clone(),
            };
            services.extend(found.into_iter().map(|s| (s, upstream.clone())));
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
    type Command = Command;

    /// Builds routes, upstream channels and the token verifier.
    async fn build(settings: &Settings) -> anyhow::Result<Parts> {
        edge::describe_metrics();
        let (pool, services) = services(settings)?;
        let table = RouteTable::build(&pool, services.iter().map(|(s, _)| s.clone()))?;

        // One channel per upstream URL, shared by every service it serves, the key
        // fetch and the health probes.
        // Which calls are safe to repeat is decided per request (GET routes, an
        // Idempotency-Key), so no method is safe by name.
        let options = settings.client.options(
            Duration::from_millis(settings.http.connect_timeout_ms),
            std::iter::empty(),
        );
        let channels = settings.client.channels(options)?;
        let call_timeout = Duration::from_millis(settings.http.default_timeout_ms);
        let stream_timeout = Duration::from_millis(settings.http.max_stream_duration_ms);
        let upstream = |url: &str| {
            let client = channels.client(url, call_timeout)?;
            Ok::<_, UpstreamError>(Upstream::new(client, channels.client(url, stream_timeout)?))
        };
        let mut upstreams = foldhash::HashMap::default();
        for (service, settings) in &services {
            let policy = Policy::new(&settings.options);
            upstreams.insert(
                service.full_name().to_owned(),
                upstream(&settings.url)?.with_policy(policy),
            );
        }
        let users = upstream(&settings.users.url)?;

        let verifier = settings.auth.verification.verifier(Arc::new(UsersJwks::new(
            users.client().clone(),
            Duration::from_secs(2),
        )));

        let limiter = Limiter::new(&settings.rate_limit)?;
        limiter.connect().await;

        let openapi = Bytes::from(openapi_document(&table, settings).to_string());
        let rules = Validator::new(pool.clone());
        warn_unchecked_rules(&rules, &table);
        let edge = Arc::new(Edge {
            table,
            rules,
            pool,
            upstreams,
            verifier: Arc::new(verifier),
            public_methods: settings.public_methods(),
            limiter,
            http: settings.http.clone(),
            client_addresses: ClientAddresses::new(&settings.rate_limit),
            openapi,
            draining: CancellationToken::new(),
        });

        tracing::info!(routes = edge.table.routes().count(), "gateway built");
        let draining = edge.draining.clone();
        let app = edge::service(edge, settings);
        let grace = Duration::from_millis(settings.http.grace_period_ms);
        let limits = settings.http.limits();
        Ok(Parts::http(settings.http.addr, grace, app, limits).on_drain(move || draining.cancel()))
    }

    async fn command(settings: Settings, command: Command) -> anyhow::Result<()> {
        match command {
            Command::Openapi => print_openapi(&settings),
        }
    }
}

/// Says, once per rule at start, which declared request rules the edge does not check
/// (CEL expressions, formats it does not know): the service behind the route still
/// does, so they are not refused here, but the operator should know.
fn warn_unchecked_rules(rules: &Validator, table: &RouteTable) {
    let mut said = HashSet::new();
    for route in table.routes() {
        for unchecked in rules.unsupported(&route.method().input()) {
            let text = unchecked.to_string();
            if said.insert(text.clone()) {
                tracing::warn!(
                    rule = %text,
                    "a request rule is not checked at the edge; the service behind it must check it"
                );
            }
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
