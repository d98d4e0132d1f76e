//! Every failure of the orders API, and the one place it becomes a gRPC status.
//!
//! Client mistakes carry a message meant for the client (field violations as
//! `google.rpc.BadRequest`); server faults go through `platform_api`'s
//! `database_unavailable` and `internal`, which log them inside the call's span and
//! give the client only an opaque UNAVAILABLE or INTERNAL, as every service does.

use platform_api::rules::CheckError;
use platform_api::{InvalidRequest, database_unavailable, internal};
use tonic::Status;

use crate::accounts::AccountError;
use crate::store::StoreError;
use crate::watch::WatchError;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request breaks its rules or has invalid fields, or could not be checked
    /// against its rules (a defect of the service).
    #[error(transparent)]
    Check(#[from] CheckError),
    /// The caller may not do this.
    #[error("{0}")]
    PermissionDenied(&'static str),
    /// No such order, or not one the caller may see.
    #[error("order not found")]
    NotFound,
    /// The idempotency key was used before for a different order.
    #[error("request_id was already used for a different order")]
    KeyReused,
    /// Only pending orders can be cancelled.
    #[error("only a pending order can be cancelled")]
    NotPending,
    /// The caller's account could not be confirmed.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A watch could not start.
    #[error(transparent)]
    Watch(#[from] WatchError),
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Check(check) => check.into(),
            ApiError::PermissionDenied(msg) => Status::permission_denied(msg),
            ApiError::NotFound => Status::not_found("order not found"),
            ApiError::KeyReused => Status::already_exists(
                "request_id was already used for a different order; use a new key",
            ),
            ApiError::NotPending => {
                Status::failed_precondition("only a pending order can be cancelled")
            }
            ApiError::Account(AccountError::Gone) => {
                Status::unauthenticated("the account of this token no longer exists")
            }
            ApiError::Account(AccountError::Refused) => {
                Status::unauthenticated("the access token was refused")
            }
            ApiError::Account(AccountError::Timeout) => {
                Status::deadline_exceeded("the account could not be confirmed in time")
            }
            ApiError::Account(AccountError::Unavailable) => {
                Status::unavailable("the account could not be confirmed, retry later")
            }
            ApiError::Store(StoreError::Unavailable(source)) => database_unavailable(&source),
            ApiError::Store(other) => internal(&other),
            ApiError::Watch(WatchError::Unknown) => {
                platform_api::invalid_argument(&[platform_api::FieldViolation::new(
                    "after_event_id",
                    "names no change: list the orders and watch from now",
                )])
            }
            ApiError::Watch(WatchError::Expired) => Status::failed_precondition(
                "the change after_event_id names is no longer kept (changes are kept 7 days): \
                 list the orders and watch from now",
            ),
            ApiError::Watch(WatchError::NotStarted) => {
                Status::unavailable("order changes cannot be watched right now, retry later")
            }
            ApiError::Watch(WatchError::Draining) => {
                Status::unavailable("the server is shutting down, watch again")
            }
            ApiError::Watch(WatchError::Unavailable(source)) => {
                tracing::error!(error = %source, "past order changes could not be read");
                Status::unavailable("past changes could not be read, retry later")
            }
        }
    }
}

impl From<InvalidRequest> for ApiError {
    fn from(invalid: InvalidRequest) -> Self {
        Self::Check(invalid.into())
    }
}
