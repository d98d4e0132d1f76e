//! The gRPC statuses every service answers alike, so that each service's one
//! conversion of its own error type only adds what is its own.
//!
//! A client's mistakes come back with what to fix ([`InvalidRequest`]); faults of the
//! server are logged here, inside the span of the call, and reach the client only as an
//! opaque UNAVAILABLE ([`database_unavailable`]) or INTERNAL ([`internal`]).

use std::ops::Deref;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{FieldViolation, describe};

/// A request with one or more invalid fields: INVALID_ARGUMENT, with a
/// `google.rpc.BadRequest` listing every one.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
#[error("invalid request: {}", describe(.0))]
pub struct InvalidRequest(Vec<FieldViolation>);

impl InvalidRequest {
    /// The violations, in the order they were found.
    pub fn violations(&self) -> &[FieldViolation] {
        &self.0
    }
}

impl Deref for InvalidRequest {
    type Target = [FieldViolation];

    fn deref(&self) -> &[FieldViolation] {
        &self.0
    }
}

impl From<FieldViolation> for InvalidRequest {
    fn from(violation: FieldViolation) -> Self {
        Self(vec![violation])
    }
}

impl From<Vec<FieldViolation>> for InvalidRequest {
    fn from(violations: Vec<FieldViolation>) -> Self {
        Self(violations)
    }
}

impl From<InvalidRequest> for Status {
    fn from(invalid: InvalidRequest) -> Self {
        invalid_argument(&invalid.0)
    }
}

/// INVALID_ARGUMENT with a `google.rpc.BadRequest` listing every violation; the message
/// repeats them for clients that do not read details.
pub fn invalid_argument(violations: &[FieldViolation]) -> Status {
    let message = describe(violations);
    let mut details = ErrorDetails::new();
    for v in violations {
        details.add_bad_request_violation(v.field.clone(), v.description.clone());
    }
    Status::with_error_details(
        Code::InvalidArgument,
        format!("invalid request: {message}"),
        details,
    )
}

/// UNAVAILABLE for a database that is down, restarting or overloaded, so the client
/// may retry; `cause` is logged, never sent.
pub fn database_unavailable(cause: &dyn std::error::Error) -> Status {
    tracing::error!(error = %cause, "database unavailable");
    Status::unavailable("database unavailable, retry later")
}

/// INTERNAL for a fault of the server; `cause` is logged, never sent, since it may name
/// tables, files or values the client has no business seeing.
pub fn internal(cause: &dyn std::error::Error) -> Status {
    tracing::error!(error = %cause, "internal error");
    Status::internal("internal error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_become_bad_request_details() {
        let status = Status::from(InvalidRequest::from(vec![
            FieldViolation::new("email", "must not be empty"),
            FieldViolation::new("password", "too short"),
        ]));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("email: must not be empty"));
        let details = status.get_error_details();
        let fields: Vec<_> = details
            .bad_request()
            .unwrap()
            .field_violations
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(fields, ["email", "password"]);
    }

    #[test]
    fn server_faults_are_opaque() {
        let cause = std::io::Error::other("relation \"users\" does not exist");
        let status = internal(&cause);
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
        let status = database_unavailable(&cause);
        assert_eq!(status.code(), Code::Unavailable);
        assert!(!status.message().contains("relation"));
    }
}
