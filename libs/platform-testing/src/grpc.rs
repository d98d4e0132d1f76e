//! gRPC plumbing every service's tests need: a channel to a server on port 0, a
//! request carrying an access token, the message or the code a call ended with, and waiting on the
//! health protocol.

use std::net::SocketAddr;
use std::time::Duration;

use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// How long a service may take to change its health status.
const HEALTH_WITHIN: Duration = Duration::from_secs(10);

/// A connected channel to the plaintext gRPC server at `addr`.
pub async fn connect(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap_or_else(|e| panic!("{addr} makes no URI: {e}"))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"))
}

/// `message` with `authorization: Bearer <token>`, as a signed-in caller sends it.
pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = format!("Bearer {token}")
        .parse()
        .unwrap_or_else(|e| panic!("a token is ASCII metadata: {e}"));
    request.metadata_mut().insert("authorization", value);
    request
}

/// The message a unary call answered with, or the status it failed with.
pub async fn answer<T>(
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, tonic::Status> {
    call.await.map(tonic::Response::into_inner)
}

/// The status a call that must fail failed with; panics, naming the answer, if it
/// succeeded.
pub async fn refused<T: std::fmt::Debug>(
    call: impl Future<Output = Result<T, tonic::Status>>,
) -> tonic::Status {
    match call.await {
        Ok(answer) => panic!("expected a refusal, got {answer:?}"),
        Err(status) => status,
    }
}

/// The status code a call ended with: `Ok` when it succeeded.
pub fn code<T>(result: Result<T, tonic::Status>) -> tonic::Code {
    result.map_or_else(|status| status.code(), |_| tonic::Code::Ok)
}

/// The health status `service` reports over `channel`, `None` when the call fails.
pub async fn health(channel: Channel, service: &str) -> Option<ServingStatus> {
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .ok()?;
    ServingStatus::try_from(response.into_inner().status).ok()
}

/// Waits (bounded) until `service` reports `want` over `channel`.
pub async fn wait_status(channel: Channel, service: &str, want: ServingStatus) {
    crate::wait::until(
        &format!("{service} reports {want:?}"),
        HEALTH_WITHIN,
        async || health(channel.clone(), service).await == Some(want),
    )
    .await;
}

/// Waits (bounded) until `service` reports SERVING over `channel`.
pub async fn wait_serving(channel: Channel, service: &str) {
    wait_status(channel, service, ServingStatus::Serving).await;
}
