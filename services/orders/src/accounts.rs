//! What the orders service asks of the users service: whether the caller's account
//! still exists, the keys that verify access tokens, and whether users is healthy.
//!
//! Calls go through [`platform_client`], which gives each its client span, trace
//! context and latency metric, and sends the incoming call's remaining deadline
//! (capped by the configured timeout). Account checks carry the caller's own token, so
//! users applies its own authorization. Positive answers are cached for a few seconds
//! in a bounded cache, so a burst of orders costs one lookup; negative answers are not
//! cached, so a new account can order at once.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use platform_auth::users_jwks::UsersJwks;
use platform_auth::{BearerToken, Caller, KeySource};
use platform_client::{Client, ClientError, ClientSettings};
use platform_proto::users::v1 as pb;
use platform_proto::users::v1::user_service_client::UserServiceClient;
use tonic::{Code, Request};

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

/// The users methods orders calls: reads, safe to send twice.
const SAFE_TO_REPEAT: [&str; 2] = [
    "/users.v1.UserService/GetUser",
    "/users.v1.UserService/GetJwks",
];

/// A client of the users service.
#[derive(Debug, Clone)]
pub struct Accounts {
    client: Client,
    timeout: Duration,
    known: Cache<String, ()>,
}

impl Accounts {
    /// A client of the users service at `settings.url`. Connects lazily: the orders
    /// service starts while users is down, and recovers by itself. A DNS
    /// name is re-resolved (by the resolver `client` names) and calls are balanced over
    /// every address it yields. Every call made here is a read, so each is retried on
    /// UNAVAILABLE (within the retry budget and the deadline).
    pub fn new(settings: &UsersSettings, client: &ClientSettings) -> Result<Self, ClientError> {
        let timeout = Duration::from_millis(settings.timeout_ms);
        let options = client.options(
            Duration::from_millis(settings.connect_timeout_ms),
            SAFE_TO_REPEAT.iter().map(|m| (*m).to_owned()),
        );
        let channels = client.channels(options)?;
        let client = channels.client(&settings.url, timeout)?;
        let known = Cache::builder()
            .max_capacity(settings.cache_capacity)
            .time_to_live(Duration::from_millis(settings.cache_ttl_ms))
            .build();
        Ok(Self {
            client,
            timeout,
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

    /// Whether the caller's account has the admin role now (never cached).
    pub async fn is_admin_now(
        &self,
        caller: &Caller,
        token: &BearerToken,
        remaining: Option<Duration>,
    ) -> Result<bool, AccountError> {
        let account = self.fetch(caller, token, self.budget(remaining)).await?;
        Ok(account.role == pb::Role::Admin as i32)
    }

    /// Asks users for the caller's account.
    async fn lookup(
        &self,
        caller: &Caller,
        token: &BearerToken,
        budget: Duration,
    ) -> Result<(), AccountError> {
        self.fetch(caller, token, budget).await.map(drop)
    }

    /// The caller's account, as users has it.
    async fn fetch(
        &self,
        caller: &Caller,
        token: &BearerToken,
        budget: Duration,
    ) -> Result<pb::User, AccountError> {
        if budget.is_zero() {
            return Err(AccountError::Timeout);
        }
        let mut request = Request::new(pb::GetUserRequest {
            id: caller.subject.clone(),
        });
        request.set_timeout(budget);
        if let Ok(value) = format!("Bearer {}", token.as_str()).parse() {
            request.metadata_mut().insert("authorization", value);
        }
        UserServiceClient::new(self.client.clone())
            .get_user(request)
            .await
            .map(tonic::Response::into_inner)
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

    /// The users service's token keys as a [`KeySource`].
    pub fn key_source(&self) -> Arc<dyn KeySource> {
        Arc::new(UsersJwks::new(self.client.clone(), self.timeout))
    }
}
