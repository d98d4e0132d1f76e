//! The gRPC server assembly shared by every service.
//!
//! A service hands over its own routes; [`serve`] adds health and reflection and wraps
//! everything in the standard layers, outermost first: the per-call span and metrics
//! ([`RpcLayer`]), a global concurrency limit, and authentication (which only
//! attaches the verified caller; each RPC decides what it requires), then injected
//! faults when they are enabled (so they are traced, counted and authenticated like
//! any call). tonic's own
//! timeout bounds each call. On shutdown the server reports NOT_SERVING, stops
//! accepting connections, lets calls in flight finish, and gives up on them after the
//! grace period.

use std::time::Duration;

use platform_auth::AuthLayer;
use platform_shutdown::Shutdown;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tower::limit::GlobalConcurrencyLimitLayer;

use crate::faults::{FaultLayer, Faults};
use crate::rpc_layer::{KnownMethods, RpcLayer};
use crate::{GrpcSettings, Readiness, ServerError};

/// What a service contributes to its server.
#[derive(Debug)]
pub struct ServiceRoutes {
    /// The service's own gRPC services.
    pub routes: Routes,
    /// Their fully qualified names, advertised by reflection.
    pub names: Vec<&'static str>,
}

/// Serves `service` on `listener` until `shutdown` fires and the drain completes.
pub async fn serve(
    listener: TcpListener,
    service: ServiceRoutes,
    auth: AuthLayer,
    settings: &GrpcSettings,
    faults: Option<Faults>,
    readiness: Readiness,
    shutdown: Shutdown,
) -> Result<(), ServerError> {
    let mut reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(platform_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("grpc.health.v1.Health");
    for name in &service.names {
        reflection = reflection.with_service_name(*name);
    }
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(platform_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("grpc.health.v1.Health");
    let reflection_v1alpha = service
        .names
        .iter()
        .fold(reflection_v1alpha, |b, name| b.with_service_name(*name));

    let routes = service
        .routes
        .add_service(readiness.health_service())
        .add_service(reflection.build_v1()?)
        .add_service(reflection_v1alpha.build_v1alpha()?);

    let known = KnownMethods::of_services(&service.names);
    let timeout = Duration::from_millis(settings.request_timeout_ms);
    let grace = Duration::from_millis(settings.grace_period_ms);
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));

    let faults = faults.map(|faults| FaultLayer::new(faults, known.clone()));
    let server = Server::builder()
        .timeout(timeout)
        .layer(RpcLayer::new(Some(timeout), known))
        .layer(GlobalConcurrencyLimitLayer::new(settings.concurrency_limit))
        .layer(auth)
        .layer(tower::util::option_layer(faults))
        .serve_with_incoming_shutdown(
            routes.prepare(),
            incoming,
            crate::drain::started(shutdown.clone(), readiness),
        );
    crate::drain::bounded("gRPC", server, &shutdown, grace)
        .await
        .map_err(ServerError::from)
}
