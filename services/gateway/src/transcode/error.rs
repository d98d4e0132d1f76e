//! Everything that can go wrong between an HTTP request and a gRPC message, and back.
//!
//! The client-facing variants carry messages written for the caller of the HTTP API:
//! they become the `message` of a `400` `google.rpc.Status`, and [`field`] gives the
//! field or parameter for a `google.rpc.BadRequest` violation. The few variants that
//! mean a defect in the gateway itself say so through [`is_client_error`].
//!
//! [`field`]: TranscodeError::field
//! [`is_client_error`]: TranscodeError::is_client_error

/// A request that cannot be turned into a gRPC message, or a response that cannot be
/// rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranscodeError {
    /// The body is not JSON.
    #[error("malformed JSON at line {line} column {column}: {message}")]
    MalformedJson {
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// What the JSON parser expected.
        message: String,
    },
    /// The body names a field the message does not have.
    #[error("unknown field {name:?} in request body")]
    UnknownBodyField {
        /// The field name as written in the body.
        name: String,
    },
    /// The body is JSON but does not fit the message (wrong type, bad enum name,
    /// out-of-range number, ...).
    #[error("invalid request body: {message}")]
    InvalidBody {
        /// The problem, with its line and column when known.
        message: String,
    },
    /// A body was sent to a route that takes none.
    #[error("this method does not take a request body")]
    UnexpectedBody,
    /// A path variable or query parameter value does not convert to its field's type.
    #[error("invalid value {value:?} for field {field:?}: expected {expected}")]
    InvalidFieldValue {
        /// Dotted proto path of the field.
        field: String,
        /// The value as received.
        value: String,
        /// What the field takes.
        expected: String,
    },
    /// A query parameter names no field of the request.
    #[error("unknown query parameter {name:?}")]
    UnknownQueryParameter {
        /// The parameter name as received.
        name: String,
    },
    /// A query parameter names a field that the body carries.
    #[error("query parameter {name:?} is not allowed: that field is set by the request body")]
    QueryParameterInBody {
        /// The parameter name as received.
        name: String,
    },
    /// A query parameter names a field that the URL path sets.
    #[error("query parameter {name:?} is not allowed: that field is set by the URL path")]
    QueryParameterInPath {
        /// The parameter name as received.
        name: String,
    },
    /// A query parameter names a field that a query string cannot express (a message,
    /// a map, or a field inside a repeated message).
    #[error("query parameter {name:?} names a field that cannot be set from the query string")]
    QueryParameterNotSettable {
        /// The parameter name as received.
        name: String,
    },
    /// A non-repeated field given more than once in the query string.
    #[error("query parameter {name:?} is given more than once, but the field is not repeated")]
    RepeatedQueryParameter {
        /// The parameter name as received.
        name: String,
    },
    /// A query parameter whose percent-decoding is not UTF-8.
    #[error("query parameter {pair:?} is not valid UTF-8 once percent-decoded")]
    InvalidQueryEncoding {
        /// The `key=value` text as received.
        pair: String,
    },
    /// Gateway defect: a path binding names no settable field (the route table checks
    /// this, so the bindings did not come from this route).
    #[error("path binding {field:?} names no settable field of the request")]
    UnknownPathField {
        /// The binding's field path.
        field: String,
    },
    /// Gateway defect: the response message is not the route's output type.
    #[error("response is a {found}, but the route returns {expected}")]
    WrongResponseType {
        /// The route's output message.
        expected: String,
        /// The message given.
        found: String,
    },
    /// Gateway defect: a message that cannot be built or written as JSON.
    #[error("internal transcoding error: {message}")]
    Internal {
        /// What failed.
        message: String,
    },
}

impl TranscodeError {
    /// `true` for problems with the client's request (`400`), `false` for defects of
    /// the gateway or the backend (`500`).
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self,
            Self::UnknownPathField { .. } | Self::WrongResponseType { .. } | Self::Internal { .. }
        )
    }

    /// The field or query parameter the error is about, for a
    /// `google.rpc.BadRequest.FieldViolation`.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::UnknownBodyField { name }
            | Self::UnknownQueryParameter { name }
            | Self::QueryParameterInBody { name }
            | Self::QueryParameterInPath { name }
            | Self::QueryParameterNotSettable { name }
            | Self::RepeatedQueryParameter { name } => Some(name),
            Self::InvalidFieldValue { field, .. } => Some(field),
            _ => None,
        }
    }

    /// Classifies a `serde_json` error from reading a body.
    pub(crate) fn from_json(err: &serde_json::Error) -> Self {
        use serde_json::error::Category;

        let (line, column) = (err.line(), err.column());
        let text = err.to_string();
        // serde_json appends the position to its message; it is reported separately.
        let message = if line == 0 {
            text.clone()
        } else {
            text.strip_suffix(&format!(" at line {line} column {column}"))
                .unwrap_or(&text)
                .to_owned()
        };
        match err.classify() {
            Category::Syntax | Category::Eof | Category::Io => Self::MalformedJson {
                line,
                column,
                message,
            },
            Category::Data => {
                // prost-reflect's wording for an unknown key (prost-reflect 0.16, de/kind.rs).
                match message
                    .strip_prefix("unrecognized field name '")
                    .and_then(|rest| rest.strip_suffix('\''))
                {
                    Some(name) => Self::UnknownBodyField {
                        name: name.to_owned(),
                    },
                    None => Self::InvalidBody { message: text },
                }
            }
        }
    }
}
