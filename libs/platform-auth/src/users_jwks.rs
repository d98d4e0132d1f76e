//! The users service's `GetJwks` as a [`KeySource`], for every service (and the
//! gateway) that verifies tokens it did not issue.
//!
//! The call goes through a [`platform_client::Client`], which gives it its client
//! span, trace context and latency metric.

use std::time::Duration;

use platform_client::{Client, SafeToRepeat};
use platform_proto::users::v1 as pb;
use platform_proto::users::v1::user_service_client::UserServiceClient;
use tonic::Code;

use crate::keys::jwk_from_proto;
use crate::{Jwk, KeySource, KeySourceError};

/// Fetches the JWK set from `users.v1.UserService/GetJwks`, each fetch bounded by a
/// timeout.
#[derive(Debug, Clone)]
pub struct UsersJwks {
    client: Client,
    timeout: Duration,
}

impl UsersJwks {
    /// A source calling users through `client`, each fetch given `timeout`.
    pub fn new(client: Client, timeout: Duration) -> Self {
        Self { client, timeout }
    }
}

#[async_trait::async_trait]
impl KeySource for UsersJwks {
    async fn fetch(&self) -> Result<Vec<Jwk>, KeySourceError> {
        let mut request = tonic::Request::new(pb::GetJwksRequest {});
        request.set_timeout(self.timeout);
        // A read: retried on UNAVAILABLE like any call that never reached users.
        request.extensions_mut().insert(SafeToRepeat);
        let response = UserServiceClient::new(self.client.clone())
            .get_jwks(request)
            .await
            .map_err(|status| match status.code() {
                Code::DeadlineExceeded => KeySourceError("GetJwks timed out".to_owned()),
                code => KeySourceError(format!("GetJwks failed: {code:?}")),
            })?;
        // A member that is not a JWK at all is skipped here; one that is not a key
        // the platform verifies with is skipped, with a warning, by the verifier.
        Ok(response
            .into_inner()
            .keys
            .into_iter()
            .filter_map(|key| jwk_from_proto(key).ok())
            .collect())
    }
}
