//! Error answers at the edge: one body shape, `google.rpc.Status` as JSON, and the
//! standard gRPC → HTTP status table.
//!
//! Details sent by a service (field violations, ...) are passed on as JSON. A 5xx
//! answer never carries the upstream's or the gateway's internal text: its message is
//! the code's canonical description, and the cause is logged inside the request span.

use std::time::Duration;

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use serde_json::{Value, json};
use tonic::Code;

use crate::transcode::TranscodeError;

/// The HTTP status for a gRPC code (the table of the contract, as grpc-gateway has it).
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        // 499 Client Closed Request has no constant.
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// What a client sees instead of the text of a server-side failure.
fn canonical_message(code: Code) -> &'static str {
    match code {
        Code::Unavailable => "the service is unavailable, retry later",
        Code::DeadlineExceeded => "the deadline was exceeded",
        Code::Unimplemented => "not implemented",
        _ => "internal error",
    }
}

/// A `google.rpc.Status` body with `status` as HTTP status.
fn json_response(http: StatusCode, body: &Value) -> Response {
    let mut response = (http, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An error made at the edge, with optional field violations.
pub fn edge_error(code: Code, message: &str, violations: &[(String, String)]) -> Response {
    let mut body = json!({ "code": code as i32, "message": message, "details": [] });
    if !violations.is_empty() {
        let violations: Vec<Value> = violations
            .iter()
            .map(|(field, description)| json!({ "field": field, "description": description }))
            .collect();
        body["details"] = json!([{
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": violations,
        }]);
    }
    json_response(http_status(code), &body)
}

/// 404: no route matches the path.
pub fn not_found() -> Response {
    edge_error(Code::NotFound, "no route matches this path", &[])
}

/// 405 with the methods that would match in `Allow`.
pub fn method_not_allowed(allowed: &[Method]) -> Response {
    let mut response = edge_error(Code::Unimplemented, "method not allowed for this path", &[]);
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    let allow = allowed
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if let Ok(value) = HeaderValue::from_str(&allow) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

/// 401 with the RFC 6750 challenge; `invalid_token` when a token was sent and refused.
pub fn unauthorized(message: &str, invalid_token: bool) -> Response {
    let mut response = edge_error(Code::Unauthenticated, message, &[]);
    let challenge = if invalid_token {
        format!(
            "Bearer realm=\"platform\", error=\"invalid_token\", error_description=\"{message}\""
        )
    } else {
        BEARER_CHALLENGE.to_owned()
    };
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// 429 with `Retry-After` in whole seconds (at least 1).
pub fn too_many_requests(wait: Duration) -> Response {
    let mut response = edge_error(
        Code::ResourceExhausted,
        "rate limit exceeded, slow down",
        &[],
    );
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}

/// 503 with `Retry-After: 1`: the shared rate limit cannot be checked and the gateway
/// is set to refuse rather than serve unlimited.
pub fn rate_limit_unavailable() -> Response {
    let mut response = edge_error(
        Code::Unavailable,
        "the service is unavailable, retry later",
        &[],
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(1));
    response
}

/// 413: the body is over `limit` bytes.
pub fn payload_too_large(limit: usize) -> Response {
    let mut response = edge_error(
        Code::InvalidArgument,
        &format!("request body larger than {limit} bytes"),
        &[],
    );
    *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    response
}

/// 408: the body did not arrive within the body-read timeout.
pub fn request_timeout() -> Response {
    let mut response = edge_error(
        Code::DeadlineExceeded,
        "the request body did not arrive in time",
        &[],
    );
    *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
    response
}

/// The answer when the gRPC request cannot be built: the client's mistake is a 400
/// naming the field; anything else is the gateway's own fault, logged and opaque.
pub fn transcode_error(error: &TranscodeError) -> Response {
    if !error.is_client_error() {
        tracing::error!(%error, "cannot build the upstream request");
        return edge_error(Code::Internal, "internal error", &[]);
    }
    let violations: Vec<(String, String)> = error
        .field()
        .map(|field| vec![(field.to_owned(), error.to_string())])
        .unwrap_or_default();
    edge_error(Code::InvalidArgument, &error.to_string(), &violations)
}

/// The answer for a status returned by an upstream (or by calling it). A service's
/// UNAUTHENTICATED is a 401 with the same `WWW-Authenticate` challenge as the edge's.
pub fn upstream_error(status: &tonic::Status, pool: &DescriptorPool) -> Response {
    let body = upstream_status(status, pool);
    let mut response = json_response(http_status(status.code()), &body);
    // RFC 9110 §10.2.3: the wait a service asked for (google.rpc.RetryInfo), in whole
    // seconds rounded up, so that a client honouring it is not refused again.
    let retry_after = (status.code() == Code::ResourceExhausted)
        .then(|| retry_delay(&body["details"]))
        .flatten();
    if let Some(wait) = retry_after {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    }
    if status.code() == Code::Unauthenticated {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(BEARER_CHALLENGE),
        );
    }
    response
}

/// The RFC 6750 challenge of a request that needs a token.
const BEARER_CHALLENGE: &str = "Bearer realm=\"platform\"";

/// The `google.rpc.Status` JSON of a status returned by an upstream: code, message
/// and details, except that a server-side failure carries only its canonical message
/// (its own text is logged).
pub fn upstream_status(status: &tonic::Status, pool: &DescriptorPool) -> Value {
    let code = status.code();
    if http_status(code).is_server_error() {
        tracing::warn!(grpc.code = ?code, error = status.message(), "upstream call failed");
        return json!({ "code": code as i32, "message": canonical_message(code), "details": [] });
    }
    let details = decode_details(status.details(), pool).unwrap_or_else(|| json!([]));
    json!({ "code": code as i32, "message": status.message(), "details": details })
}

/// The `retryDelay` of a `google.rpc.RetryInfo` among decoded `details` (a JSON
/// Duration such as `"30s"` or `"1.5s"`).
fn retry_delay(details: &Value) -> Option<Duration> {
    details
        .as_array()?
        .iter()
        .find(|detail| detail["@type"] == "type.googleapis.com/google.rpc.RetryInfo")?
        .get("retryDelay")?
        .as_str()?
        .strip_suffix('s')?
        .parse::<f64>()
        .ok()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
}

/// The `details` of an encoded `google.rpc.Status`, as JSON; `None` when absent or
/// not decodable (an unknown detail type, say), so the client still gets code and
/// message.
fn decode_details(bytes: &[u8], pool: &DescriptorPool) -> Option<Value> {
    if bytes.is_empty() {
        return None;
    }
    let descriptor = pool.get_message_by_name("google.rpc.Status")?;
    let message = DynamicMessage::decode(descriptor, bytes).ok()?;
    let options = SerializeOptions::new().skip_default_fields(true);
    let value = message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .ok()?;
    value.get("details").cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_table() {
        let table = [
            (Code::Ok, 200),
            (Code::InvalidArgument, 400),
            (Code::FailedPrecondition, 400),
            (Code::OutOfRange, 400),
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::Aborted, 409),
            (Code::ResourceExhausted, 429),
            (Code::Cancelled, 499),
            (Code::Unimplemented, 501),
            (Code::Unavailable, 503),
            (Code::DeadlineExceeded, 504),
            (Code::Unknown, 500),
            (Code::Internal, 500),
            (Code::DataLoss, 500),
        ];
        for (code, http) in table {
            assert_eq!(http_status(code).as_u16(), http, "{code:?}");
        }
    }

    #[test]
    fn retry_info_becomes_retry_after() {
        use tonic_types::{ErrorDetails, StatusExt as _};
        let pool = platform_proto::descriptor_pool();
        let status = tonic::Status::with_error_details(
            Code::ResourceExhausted,
            "too many failed sign-ins",
            ErrorDetails::with_retry_info(Some(Duration::from_millis(29_500))),
        );
        let response = upstream_error(&status, pool);
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "30");

        let without = upstream_error(&tonic::Status::resource_exhausted("quota"), pool);
        assert_eq!(without.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(without.headers().get(header::RETRY_AFTER).is_none());
    }

    #[test]
    fn server_errors_hide_their_text() {
        let status = tonic::Status::unavailable("tcp connect error: 10.0.0.7:50051 refused");
        let response = upstream_error(&status, platform_proto::descriptor_pool());
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
