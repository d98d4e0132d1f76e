//! The `grpc.health.v1` probe behind every readiness check of an upstream.
//!
//! A probe, not traffic: it passes through [`ClientLayer`](crate::ClientLayer)
//! untouched, so it opens no span, sends no trace context and starts no trace in the
//! upstream.

use std::time::Duration;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::Client;

/// Whether the upstream behind `client` reports `service` SERVING within `timeout`;
/// logs why not otherwise.
pub async fn is_serving(client: &Client, service: &str, timeout: Duration) -> bool {
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: service.to_owned(),
    });
    request.set_timeout(timeout);
    let mut health = HealthClient::new(client.clone());
    match tokio::time::timeout(timeout, health.check(request)).await {
        Ok(Ok(response)) if response.get_ref().status == ServingStatus::Serving as i32 => true,
        Ok(Ok(response)) => {
            let status = ServingStatus::try_from(response.get_ref().status)
                .map_or("UNKNOWN_STATUS", |s| s.as_str_name());
            tracing::warn!(upstream = client.url(), %service, status, "upstream not serving");
            false
        }
        Ok(Err(status)) => {
            tracing::warn!(
                upstream = client.url(),
                %service,
                code = ?status.code(),
                message = status.message(),
                "upstream health check failed"
            );
            false
        }
        Err(_) => {
            tracing::warn!(upstream = client.url(), %service, ?timeout, "upstream health check timed out");
            false
        }
    }
}
