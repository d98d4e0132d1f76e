//! The users service's `GetJwks` as a [`KeySource`], for every service (and the
//! gateway) that verifies tokens it did not issue.

use std::time::{Duration, Instant};

use platform_proto::users::v1 as pb;
use platform_proto::users::v1::user_service_client::UserServiceClient;
use platform_telemetry::client::{grpc_client_span, record_client_duration, record_grpc_outcome};
use platform_telemetry::propagation::inject_current_into_metadata;
use tonic::Code;
use tonic::transport::Channel;
use tracing::Instrument;

use crate::{Jwk, KeySource, KeySourceError};

const SERVICE: &str = "users.v1.UserService";
const METHOD: &str = "GetJwks";

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
        let span = grpc_client_span(SERVICE, METHOD);
        let started = Instant::now();
        let outcome = async {
            let mut request = tonic::Request::new(pb::GetJwksRequest {});
            request.set_timeout(self.timeout);
            inject_current_into_metadata(request.metadata_mut());
            let mut client = UserServiceClient::new(self.channel.clone());
            let outcome = match tokio::time::timeout(self.timeout, client.get_jwks(request)).await {
                Ok(Ok(response)) => Ok(response.into_inner()),
                Ok(Err(status)) => Err(status.code()),
                Err(_) => Err(Code::DeadlineExceeded),
            };
            let code = outcome.as_ref().err().copied().unwrap_or(Code::Ok);
            record_grpc_outcome(&tracing::Span::current(), code);
            outcome
        }
        .instrument(span)
        .await;
        let code = outcome.as_ref().err().copied().unwrap_or(Code::Ok);
        record_client_duration(SERVICE, METHOD, code, started.elapsed());
        let response = outcome.map_err(|code| match code {
            Code::DeadlineExceeded => KeySourceError("GetJwks timed out".to_owned()),
            code => KeySourceError(format!("GetJwks failed: {code:?}")),
        })?;
        Ok(response
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
}
