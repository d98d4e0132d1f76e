//! The users service's `GetJwks` as a [`KeySource`], for every service (and the
//! gateway) that verifies tokens it did not issue.

use std::time::Duration;

use platform_proto::users::v1 as pb;
use platform_proto::users::v1::user_service_client::UserServiceClient;
use platform_telemetry::client::{grpc_client_span, record_grpc_outcome};
use platform_telemetry::propagation::inject_current_into_metadata;
use tonic::Code;
use tonic::transport::Channel;
use tracing::Instrument;

use crate::{Jwk, KeySource, KeySourceError};

/// Fetches the JWK set from `users.v1.UserService/GetJwks`, each fetch bounded by a
/// timeout.
#[derive(Debug, Clone)]
pub struct UsersJwks {
    channel: Channel,
    timeout: Duration,
}

impl UsersJwks {
    /// A source calling users over `channel`.
    pub fn new(channel: Channel, timeout: Duration) -> Self {
        Self { channel, timeout }
    }
}

#[async_trait::async_trait]
impl KeySource for UsersJwks {
    async fn fetch(&self) -> Result<Vec<Jwk>, KeySourceError> {
        let span = grpc_client_span("users.v1.UserService", "GetJwks");
        async {
            let mut request = tonic::Request::new(pb::GetJwksRequest {});
            request.set_timeout(self.timeout);
            inject_current_into_metadata(request.metadata_mut());
            let mut client = UserServiceClient::new(self.channel.clone());
            let response = tokio::time::timeout(self.timeout, client.get_jwks(request))
                .await
                .map_err(|_| {
                    record_grpc_outcome(&tracing::Span::current(), Code::DeadlineExceeded);
                    KeySourceError("GetJwks timed out".to_owned())
                })?
                .map_err(|status| {
                    record_grpc_outcome(&tracing::Span::current(), status.code());
                    KeySourceError(format!("GetJwks failed: {:?}", status.code()))
                })?;
            record_grpc_outcome(&tracing::Span::current(), Code::Ok);
            Ok(response
                .into_inner()
                .keys
                .into_iter()
                .map(|k| Jwk {
                    kty: k.kty,
                    crv: k.crv,
                    x: k.x,
                    kid: k.kid,
                    alg: k.alg,
                    use_: k.r#use,
                })
                .collect())
        }
        .instrument(span)
        .await
    }
}
