//! Every failure of the users API, and the one place it becomes a gRPC status.
//!
//! Client mistakes carry a message meant for the client (and field violations as
//! `google.rpc.BadRequest`); server faults are logged here, inside the call's span,
//! and reach the client only as an opaque INTERNAL or UNAVAILABLE.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::FieldViolation;
use crate::password::HashError;
use crate::store::StoreError;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// One or more request fields are invalid.
    #[error("invalid request")]
    Invalid(Vec<FieldViolation>),
    /// No, or no valid, credentials.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The caller is known but may not do this.
    #[error("{0}")]
    PermissionDenied(&'static str),
    /// No such account, or not one the caller may see.
    #[error("user not found")]
    NotFound,
    /// The email belongs to another account.
    #[error("a user with this email already exists")]
    EmailTaken,
    /// Storage failed.
    #[error(transparent)]
    Store(StoreError),
    /// Password hashing failed.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// Signing a token failed.
    #[error("cannot sign token: {0}")]
    Token(#[from] platform_auth::KeyError),
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::EmailTaken => Self::EmailTaken,
            other => Self::Store(other),
        }
    }
}

impl From<FieldViolation> for ApiError {
    fn from(violation: FieldViolation) -> Self {
        Self::Invalid(vec![violation])
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Invalid(violations) => invalid_argument(&violations),
            ApiError::Unauthenticated(msg) => Status::unauthenticated(msg),
            ApiError::PermissionDenied(msg) => Status::permission_denied(msg),
            ApiError::NotFound => Status::not_found("user not found"),
            ApiError::EmailTaken => Status::already_exists("a user with this email already exists"),
            ApiError::Store(StoreError::Unavailable(source)) => {
                tracing::error!(error = %source, "database unavailable");
                Status::unavailable("database unavailable, retry later")
            }
            other => {
                tracing::error!(error = %other, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

/// INVALID_ARGUMENT with a `google.rpc.BadRequest` listing every violation; the
/// message repeats them for clients that do not read details.
pub fn invalid_argument(violations: &[FieldViolation]) -> Status {
    let message = violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ");
    let mut details = ErrorDetails::new();
    for v in violations {
        details.add_bad_request_violation(v.field, v.description.clone());
    }
    Status::with_error_details(
        Code::InvalidArgument,
        format!("invalid request: {message}"),
        details,
    )
}

/// Collects every violation of a request before failing, so a client fixes them all
/// in one round trip.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// Keeps the value, or records why it is invalid.
    pub fn check<T>(&mut self, result: Result<T, FieldViolation>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(violation) => {
                self.0.push(violation);
                None
            }
        }
    }

    /// Fails if anything was recorded.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Invalid(self.0))
        }
    }
}
