//! `google.api.HttpBody`: a body that is not JSON. A method whose request type is
//! `HttpBody` (with `body: "*"`), or whose `body` names an `HttpBody` field, gets the
//! raw request bytes in `data` and the `Content-Type` in `content_type`; a method
//! whose response type is `HttpBody` answers its `data` with its `content_type`.

use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};

use super::{Body, TranscodeError, internal};
use crate::routing::{BodyRule, Route};

/// The full name of the message.
pub const HTTP_BODY: &str = "google.api.HttpBody";

/// Content type of raw data that did not say what it is.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// Whether `message` is `google.api.HttpBody`.
pub fn is_http_body(message: &MessageDescriptor) -> bool {
    message.full_name() == HTTP_BODY
}

/// Where the raw body of a request goes, if the route takes one.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// The request message is an `HttpBody`.
    Whole,
    /// This `HttpBody` field of the request.
    Field(&'a FieldDescriptor),
}

/// Where `route` puts a raw body; `None` for a JSON body (or none).
pub fn request_target(route: &Route) -> Option<Target<'_>> {
    match route.body() {
        BodyRule::Whole if is_http_body(&route.method().input()) => Some(Target::Whole),
        BodyRule::Field(field) if !field.is_list() && !field.is_map() => match field.kind() {
            Kind::Message(message) if is_http_body(&message) => Some(Target::Field(field)),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `route` answers raw bytes: its response type is `HttpBody` and no
/// `response_body` picks a field of it.
pub fn raw_response(route: &Route) -> bool {
    route.response_body().is_none() && is_http_body(&route.method().output())
}

/// The request message with the raw body in place.
pub(super) fn read(
    route: &Route,
    target: Target<'_>,
    body: &Body<'_>,
) -> Result<DynamicMessage, TranscodeError> {
    let input = route.method().input();
    match target {
        Target::Whole => {
            let mut message = DynamicMessage::new(input);
            fill(&mut message, body)?;
            Ok(message)
        }
        Target::Field(field) => {
            let Kind::Message(kind) = field.kind() else {
                return Err(internal("an HttpBody field that holds no message"));
            };
            let mut inner = DynamicMessage::new(kind);
            fill(&mut inner, body)?;
            let mut message = DynamicMessage::new(input);
            message
                .try_set_field(field, Value::Message(inner))
                .map_err(internal)?;
            Ok(message)
        }
    }
}

fn fill(message: &mut DynamicMessage, body: &Body<'_>) -> Result<(), TranscodeError> {
    if let Some(content_type) = body.content_type {
        message
            .try_set_field_by_name("content_type", Value::String(content_type.to_owned()))
            .map_err(internal)?;
    }
    message
        .try_set_field_by_name(
            "data",
            Value::Bytes(bytes::Bytes::copy_from_slice(body.bytes)),
        )
        .map_err(internal)
}

/// The `content_type` and `data` of an `HttpBody` message; an empty content type is
/// `application/octet-stream`.
pub fn parts(message: &DynamicMessage) -> (String, bytes::Bytes) {
    let content_type = message
        .get_field_by_name("content_type")
        .and_then(|v| v.as_str().map(str::to_owned))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| OCTET_STREAM.to_owned());
    let data = message
        .get_field_by_name("data")
        .and_then(|v| v.as_bytes().cloned())
        .unwrap_or_default();
    (content_type, data)
}
