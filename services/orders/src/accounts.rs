//! What the orders service asks of the users service: whether the caller's account
//! still exists, the keys that verify access tokens, and whether users is healthy.
//!
//! Every call carries the incoming call's remaining deadline (capped by the configured
//! timeout), the trace context and, for account checks, the caller's own token, so
//! users applies its own authorization. Positive answers are cached for a few seconds
//! in a bounded cache, so a burst of orders costs one lookup; negative answers are not
//! cached, so a new account can order at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use platform_auth::users_jwks::UsersJwks;
use platform_auth::{BearerToken, Caller, KeySource};
use platform_proto::users::v1 as pb;
use platform_proto::users::v1::user_service_client::UserServiceClient;
use platform_telemetry::client::{grpc_client_span, record_client_duration, record_grpc_outcome};
use platform_telemetry::propagation::inject_current_into_metadata;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};
use tonic_health::pb::health_client::HealthClient;
use tracing::Instrument;

use crate::settings::UsersSettings;

/// Why the caller's account could not be confirmed.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum AccountError {
    /// The account no longer exists.
    #[error("the caller's account no longer exists")]
    Gone,
    /// The users service refused the caller's token.
    #[error("the caller's token was refused")]
    Refused,
    /// The users service did not answer within the deadline.
    #[error("the users service did not answer in time")]
    Timeout,
    /// The users service could not be reached or failed.
    #[error("the users service is unavailable")]
    Unavailable,
}

/// A client of the users service.
#[derive(Debug, Clone)]
pub struct Accounts {
    channel: Channel,
    timeout: Duration,
    known: Cache<String, ()>,
}

impl Accounts {
    /// A client of the users service at `settings.url`. Connects lazily: the orders
    /// service starts (not ready) while users is down, and recovers by itself.
    pub fn new(settings: &UsersSettings) -> Result<Self, tonic::transport::Error> {
        let channel = Endpoint::from_shared(settings.url.clone())?
            .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
            .tcp_nodelay(true)
            .connect_lazy();
        let known = Cache::builder()
            .max_capacity(settings.cache_capacity)
            .time_to_live(Duration::from_millis(settings.cache_ttl_ms))
            .build();
        Ok(Self {
            channel,
            timeout: Duration::from_millis(settings.timeout_ms),
            known,
        })
    }

    fn budget(&self, remaining: Option<Duration>) -> Duration {
        remaining.map_or(self.timeout, |left| left.min(self.timeout))
    }

    /// Confirms that the caller's account exists, asking users with the caller's token
    /// unless a recent answer is cached. Concurrent checks of one account share a
    /// single call to users, so a burst of orders costs one lookup.
    pub async fn ensure_exists(
        &self,
        caller: &Caller,
        token: &BearerToken,
        remaining: Option<Duration>,
    ) -> Result<(), AccountError> {
        let budget = self.budget(remaining);
        self.known
            .try_get_with(caller.subject.clone(), self.lookup(caller, token, budget))
            .await
            .map_err(|shared| *shared)
    }

    /// Asks users for the caller's account.
    async fn lookup(
        &self,
        caller: &Caller,
        token: &BearerToken,
        budget: Duration,
    ) -> Result<(), AccountError> {
        if budget.is_zero() {
            return Err(AccountError::Timeout);
        }
        let span = grpc_client_span("users.v1.UserService", "GetUser");
        let started = Instant::now();
        let call = async {
            let mut request = Request::new(pb::GetUserRequest {
                id: caller.subject.clone(),
            });
            request.set_timeout(budget);
            if let Ok(value) = format!("Bearer {}", token.as_str()).parse() {
                request.metadata_mut().insert("authorization", value);
            }
            inject_current_into_metadata(request.metadata_mut());
            let result = tokio::time::timeout(
                budget,
                UserServiceClient::new(self.channel.clone()).get_user(request),
            )
            .await;
            let outcome = match result {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(status)) => Err(status),
                Err(_) => Err(Status::deadline_exceeded("users did not answer in time")),
            };
            let code = outcome.as_ref().map_or_else(Status::code, |()| Code::Ok);
            record_grpc_outcome(&tracing::Span::current(), code);
            record_client_duration("users.v1.UserService", "GetUser", code, started.elapsed());
            outcome
        };
        call.instrument(span)
            .await
            .map_err(|status| match status.code() {
                Code::NotFound => AccountError::Gone,
                Code::Unauthenticated | Code::PermissionDenied => AccountError::Refused,
                Code::DeadlineExceeded | Code::Cancelled => AccountError::Timeout,
                code => {
                    tracing::warn!(?code, message = status.message(), "account check failed");
                    AccountError::Unavailable
                }
            })
    }

    /// Whether users reports SERVING on the health protocol. A probe, not traffic: it
    /// opens no span and sends no trace context, so it starts no trace in users.
    pub async fn is_healthy(&self) -> bool {
        let mut request = Request::new(tonic_health::pb::HealthCheckRequest {
            service: "users.v1.UserService".to_owned(),
        });
        request.set_timeout(self.timeout);
        let mut client = HealthClient::new(self.channel.clone());
        match tokio::time::timeout(self.timeout, client.check(request)).await {
            Ok(Ok(response)) => {
                response.into_inner().status
                    == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
            }
            Ok(Err(status)) => {
                tracing::warn!(code = ?status.code(), "users is not healthy");
                false
            }
            Err(_) => {
                tracing::warn!("users health check timed out");
                false
            }
        }
    }

    /// The users service's token keys as a [`KeySource`].
    pub fn key_source(&self) -> Arc<dyn KeySource> {
        Arc::new(UsersJwks::new(self.channel.clone(), self.timeout))
    }
}
