//! Every failure of the users API, and the one place it becomes a gRPC status.
//!
//! Client mistakes carry a message meant for the client (field violations as
//! `google.rpc.BadRequest`); server faults go through `platform_api`'s
//! `database_unavailable` and `internal`, which log them inside the call's span and
//! give the client only an opaque UNAVAILABLE or INTERNAL, as every service does.

use std::time::Duration;

use platform_api::rules::CheckError;
use platform_api::{InvalidRequest, database_unavailable, internal};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::password::HashError;
use crate::store;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No, or no valid, credentials.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The caller is known but may not do this.
    #[error("{0}")]
    PermissionDenied(&'static str),
    /// No such account, or not one the caller may see.
    #[error("user not found")]
    NotFound,
    /// The request breaks its rules or has invalid fields, or could not be checked
    /// against its rules (a defect of the service).
    #[error(transparent)]
    Check(#[from] CheckError),
    /// The email belongs to another account.
    #[error("a user with this email already exists")]
    EmailTaken,
    /// Storage failed.
    #[error(transparent)]
    Store(platform_db::StoreError),
    /// Password hashing failed.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// Signing a token failed.
    #[error("cannot sign token: {0}")]
    Token(#[from] platform_auth::KeyError),
    /// Too many failed sign-ins for this email lately.
    #[error("too many failed sign-ins for this account; retry in {} s", .retry_after.as_secs())]
    SignInLocked {
        /// How long until the next attempt is allowed.
        retry_after: Duration,
    },
    /// The system's random source failed.
    #[error("no randomness for a refresh token: {0}")]
    Random(#[from] getrandom::Error),
}

impl From<store::StoreError> for ApiError {
    fn from(error: store::StoreError) -> Self {
        match error {
            store::StoreError::EmailTaken => Self::EmailTaken,
            store::StoreError::Db(error) => Self::Store(error),
        }
    }
}

impl From<InvalidRequest> for ApiError {
    fn from(invalid: InvalidRequest) -> Self {
        Self::Check(invalid.into())
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Unauthenticated(msg) => Status::unauthenticated(msg),
            ApiError::PermissionDenied(msg) => Status::permission_denied(msg),
            ApiError::NotFound => Status::not_found("user not found"),
            ApiError::Check(check) => check.into(),
            ApiError::EmailTaken => Status::already_exists("a user with this email already exists"),
            // The delay also travels as google.rpc.RetryInfo, which the gateway turns
            // into `Retry-After`; rounded up so a client that waits it is let in.
            ApiError::SignInLocked { retry_after } => {
                let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                Status::with_error_details(
                    Code::ResourceExhausted,
                    "too many failed sign-ins for this account, retry later",
                    ErrorDetails::with_retry_info(Some(Duration::from_secs(secs.max(1)))),
                )
            }
            ApiError::Store(platform_db::StoreError::Unavailable(source)) => {
                database_unavailable(&source)
            }
            other => internal(&other),
        }
    }
}
