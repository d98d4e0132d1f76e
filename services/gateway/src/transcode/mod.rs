//! Transcoding between HTTP/JSON and gRPC messages, per `google.api.http` and the
//! canonical proto3 JSON mapping.
//!
//! [`build_request`] fills the request message in three steps, later ones winning:
//!
//! 1. the body, per the route's rule: `*` is the whole message, `"field"` is that
//!    field's value, no rule means no body. JSON is read with prost-reflect's
//!    canonical mapping (lowerCamelCase or proto names, 64-bit integers as numbers or
//!    strings, enums by name or number, well-known types in their JSON forms), unknown
//!    fields rejected. A blank body (empty or only whitespace) is an empty message;
//! 2. the path bindings, which override the body for the same field (as grpc-gateway
//!    does: `PATCH /v1/{book.name=...}` with a body holding another `name` routes by
//!    the URL);
//! 3. the query string, which may only fill fields that neither the path nor the body
//!    covers: `a=1&b.c=x&r=1&r=2`, proto or lowerCamelCase names, `+` and
//!    percent-decoding, a repeated field by repeating its key.
//!
//! [`render_response`] writes the response (or its `response_body` field) with the
//! canonical mapping: lowerCamelCase names, 64-bit integers as strings, enums by name,
//! fields at their default value omitted. [`JsonOptions`] (per upstream) change that:
//! defaults written too, proto names, enums as numbers, unknown query parameters
//! ignored.
//!
//! A body bound to a `google.api.HttpBody` (the request type itself with `body: "*"`,
//! or the field `body` names) is not JSON: its bytes and `Content-Type` are that
//! message's `data` and `content_type` ([`httpbody`]).

mod error;
pub mod httpbody;
mod json;
mod text;

use prost_reflect::{
    DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage,
    Value,
};

pub use error::TranscodeError;
pub use json::JsonOptions;

use crate::fields::{self, Naming, PathError};
use crate::routing::{BodyRule, Route};

/// Builds the gRPC request message of `route` from the path `bindings` (as returned by
/// [`RouteTable::find`](crate::RouteTable::find)), the raw query string (without
/// `?`), and the request body.
pub fn build_request(
    route: &Route,
    bindings: &[(String, String)],
    query: Option<&str>,
    body: &[u8],
) -> Result<DynamicMessage, TranscodeError> {
    let body = Body {
        bytes: body,
        content_type: None,
    };
    build_request_with(route, bindings, query, &body, &JsonOptions::default())
}

/// An HTTP request body: its bytes, and its `Content-Type` for an `HttpBody`.
#[derive(Debug, Clone, Copy)]
pub struct Body<'a> {
    /// The bytes as received (decompressed).
    pub bytes: &'a [u8],
    /// The `Content-Type` header, when sent.
    pub content_type: Option<&'a str>,
}

/// [`build_request`] with the body's content type and an upstream's JSON options.
pub fn build_request_with(
    route: &Route,
    bindings: &[(String, String)],
    query: Option<&str>,
    body: &Body<'_>,
    options: &JsonOptions,
) -> Result<DynamicMessage, TranscodeError> {
    let raw = httpbody::request_target(route).is_some();
    let mut message = match httpbody::request_target(route) {
        Some(target) => httpbody::read(route, target, body)?,
        None => read_body(route, body.bytes)?,
    };
    let input = route.method().input();

    let mut bound: Vec<String> = Vec::with_capacity(bindings.len());
    for (path, value) in bindings {
        let resolved = fields::resolve(&input, path, Naming::ProtoOrJson).map_err(|_| {
            TranscodeError::UnknownPathField {
                field: path.clone(),
            }
        })?;
        let Some(leaf) = resolved.last() else {
            return Err(TranscodeError::UnknownPathField {
                field: path.clone(),
            });
        };
        if leaf.is_list() || leaf.is_map() || !fields::is_text_kind(leaf) {
            return Err(TranscodeError::UnknownPathField {
                field: path.clone(),
            });
        }
        let canonical = fields::proto_path(&resolved);
        let parsed =
            text::parse(leaf, value).map_err(|expected| TranscodeError::InvalidFieldValue {
                field: canonical.clone(),
                value: value.clone(),
                expected,
            })?;
        set(&mut message, &resolved, parsed, false)?;
        bound.push(canonical);
    }

    if let Some(query) = query {
        apply_query(&mut message, route, &bound, query, options)?;
    }
    if !raw {
        fill_update_mask(&mut message, route, body.bytes)?;
    }
    Ok(message)
}

/// AIP-134: an update request with a `google.protobuf.FieldMask update_mask` that the
/// client left unset gets the paths of the body's keys (nested objects as dotted
/// paths, proto field names), relative to the resource (`body: "resource"`) or to the
/// request (`body: "*"`, the mask itself left out). So a PATCH changes what it names
/// and nothing else, as a client writing JSON expects.
fn fill_update_mask(
    message: &mut DynamicMessage,
    route: &Route,
    body: &[u8],
) -> Result<(), TranscodeError> {
    let Some(mask_field) = message.descriptor().get_field_by_name("update_mask") else {
        return Ok(());
    };
    let Kind::Message(mask_type) = mask_field.kind() else {
        return Ok(());
    };
    if mask_type.full_name() != "google.protobuf.FieldMask"
        || mask_field.is_list()
        || message.has_field(&mask_field)
        || is_blank(body)
    {
        return Ok(());
    }
    let resource = match route.body() {
        BodyRule::Field(field) => match field.kind() {
            Kind::Message(resource) if !field.is_list() && !field.is_map() => resource,
            _ => return Ok(()),
        },
        BodyRule::Whole => message.descriptor(),
        BodyRule::None => return Ok(()),
    };
    // The body already parsed as the message, so it is a JSON object of known keys.
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| TranscodeError::from_json(&e))?;
    let mut paths = Vec::new();
    if let serde_json::Value::Object(object) = &json {
        mask_paths(&resource, object, "", &mut paths);
    }
    paths.retain(|path| path != mask_field.name());
    let mut mask = DynamicMessage::new(mask_type);
    mask.set_field_by_name(
        "paths",
        Value::List(paths.into_iter().map(Value::String).collect()),
    );
    message
        .try_set_field(&mask_field, Value::Message(mask))
        .map_err(internal)
}

/// The dotted proto paths of the keys of `object`, a JSON form of `desc`: into nested
/// messages, but not into well-known types, maps or lists, which are set whole.
fn mask_paths(
    desc: &MessageDescriptor,
    object: &serde_json::Map<String, serde_json::Value>,
    prefix: &str,
    paths: &mut Vec<String>,
) {
    for (key, value) in object {
        let Some(field) = desc
            .get_field_by_json_name(key)
            .or_else(|| desc.get_field_by_name(key))
        else {
            continue;
        };
        let path = format!("{prefix}{}", field.name());
        match (field.kind(), value) {
            (Kind::Message(nested), serde_json::Value::Object(inner))
                if !field.is_list()
                    && !field.is_map()
                    && !nested.full_name().starts_with("google.protobuf.") =>
            {
                mask_paths(&nested, inner, &format!("{path}."), paths);
            }
            _ => paths.push(path),
        }
    }
}

/// Renders the response `message` of `route` as JSON: the whole message, or the value
/// of the route's `response_body` field.
pub fn render_response(route: &Route, message: &DynamicMessage) -> Result<Vec<u8>, TranscodeError> {
    render_response_with(route, message, &JsonOptions::default())
}

/// [`render_response`] with an upstream's JSON options.
pub fn render_response_with(
    route: &Route,
    message: &DynamicMessage,
    json: &JsonOptions,
) -> Result<Vec<u8>, TranscodeError> {
    let output = route.method().output();
    if message.descriptor() != output {
        return Err(TranscodeError::WrongResponseType {
            expected: output.full_name().to_owned(),
            found: message.descriptor().full_name().to_owned(),
        });
    }
    let options = json.serialize_options();
    let Some(field) = route.response_body() else {
        return to_json(message, json);
    };
    if let Kind::Message(_) = field.kind()
        && !field.is_list()
        && !field.is_map()
    {
        let value = message.get_field(field);
        let inner = value.as_message().ok_or_else(|| TranscodeError::Internal {
            message: format!("field {} does not hold a message", field.full_name()),
        })?;
        return to_json(inner, json);
    }
    // A scalar, list or map field: write a message holding only that field and take the
    // field's JSON out of it. An unset field is written with its default (`[]`, `{}`,
    // `0`, `""`) rather than left out: the body has to be some JSON value.
    let mut only = DynamicMessage::new(output);
    let options = if message.has_field(field) {
        only.try_set_field(field, message.get_field(field).into_owned())
            .map_err(internal)?;
        options
    } else {
        options.skip_default_fields(false)
    };
    let mut written = only
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(internal)?;
    if json.emit_unpopulated {
        json::emit_unset_messages(&only, &mut written, json);
    }
    let key = if json.proto_field_names {
        field.name()
    } else {
        field.json_name()
    };
    let value = written.get(key).ok_or_else(|| TranscodeError::Internal {
        message: format!("field {} missing from its own JSON", field.full_name()),
    })?;
    serde_json::to_vec(value).map_err(internal)
}

fn internal(err: impl std::fmt::Display) -> TranscodeError {
    TranscodeError::Internal {
        message: err.to_string(),
    }
}

fn to_json(message: &DynamicMessage, json: &JsonOptions) -> Result<Vec<u8>, TranscodeError> {
    let options = json.serialize_options();
    if json.emit_unpopulated {
        // Unset message fields become `null` in a second pass over the JSON value.
        let mut value = message
            .serialize_with_options(serde_json::value::Serializer, &options)
            .map_err(internal)?;
        json::emit_unset_messages(message, &mut value, json);
        return serde_json::to_vec(&value).map_err(internal);
    }
    // Room for a small answer from the start, rather than growing to it.
    let mut serializer = serde_json::Serializer::new(Vec::with_capacity(256));
    message
        .serialize_with_options(&mut serializer, &options)
        .map_err(internal)?;
    Ok(serializer.into_inner())
}

/// Whether a body counts as absent: empty, or JSON whitespace only.
fn is_blank(body: &[u8]) -> bool {
    body.iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

fn read_body(route: &Route, body: &[u8]) -> Result<DynamicMessage, TranscodeError> {
    let input = route.method().input();
    match route.body() {
        BodyRule::None if is_blank(body) => Ok(DynamicMessage::new(input)),
        BodyRule::None => Err(TranscodeError::UnexpectedBody),
        BodyRule::Whole if is_blank(body) => Ok(DynamicMessage::new(input)),
        BodyRule::Whole => message_from_json(input, body),
        BodyRule::Field(field) => {
            let mut message = DynamicMessage::new(input);
            if !is_blank(body) {
                let value = field_from_json(field, body)?;
                message.try_set_field(field, value).map_err(internal)?;
            }
            Ok(message)
        }
    }
}

fn message_from_json(
    desc: MessageDescriptor,
    body: &[u8],
) -> Result<DynamicMessage, TranscodeError> {
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let message = DynamicMessage::deserialize_with_options(desc, &mut deserializer, &options)
        .map_err(|e| TranscodeError::from_json(&e))?;
    // Trailing garbage after the value is malformed JSON too.
    deserializer
        .end()
        .map_err(|e| TranscodeError::from_json(&e))?;
    Ok(message)
}

/// The value of `field` read from a body that holds just that value.
fn field_from_json(field: &FieldDescriptor, body: &[u8]) -> Result<Value, TranscodeError> {
    if let Kind::Message(desc) = field.kind()
        && !field.is_list()
        && !field.is_map()
    {
        return message_from_json(desc, body).map(Value::Message);
    }
    // Scalars, lists and maps have no deserializer of their own in prost-reflect: read
    // the JSON, then read `{"<field>": <json>}` as the containing message. Syntax errors
    // keep their position; type errors in the value lose it.
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| TranscodeError::from_json(&e))?;
    let mut object = serde_json::Map::new();
    object.insert(field.name().to_owned(), value);
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    let message = DynamicMessage::deserialize_with_options(
        field.parent_message().clone(),
        serde_json::Value::Object(object),
        &options,
    )
    .map_err(|e| TranscodeError::from_json(&e))?;
    Ok(message.get_field(field).into_owned())
}

/// Sets (or, with `append`, appends to) the field at the end of `path`, creating the
/// messages on the way.
fn set(
    message: &mut DynamicMessage,
    path: &[FieldDescriptor],
    value: Value,
    append: bool,
) -> Result<(), TranscodeError> {
    let Some((leaf, parents)) = path.split_last() else {
        return Err(internal("empty field path"));
    };
    let mut target = message;
    for parent in parents {
        target = target
            .get_field_mut(parent)
            .as_message_mut()
            .ok_or_else(|| internal(format!("{} is not a message", parent.full_name())))?;
    }
    if append {
        let list = target
            .get_field_mut(leaf)
            .as_list_mut()
            .ok_or_else(|| internal(format!("{} is not a list", leaf.full_name())))?;
        list.push(value);
        Ok(())
    } else {
        target.try_set_field(leaf, value).map_err(internal)
    }
}

/// A query parameter resolved to its field, with every value given for it.
struct QueryField {
    name: String,
    path: Vec<FieldDescriptor>,
    canonical: String,
    values: Vec<String>,
}

fn apply_query(
    message: &mut DynamicMessage,
    route: &Route,
    bound: &[String],
    query: &str,
    options: &JsonOptions,
) -> Result<(), TranscodeError> {
    let input = route.method().input();
    let mut params: Vec<QueryField> = Vec::new();
    for (name, value) in parse_query(query)? {
        let path = match fields::resolve(&input, &name, Naming::ProtoOrJson) {
            Ok(path) => path,
            Err(PathError::ThroughRepeated { .. }) => {
                return Err(TranscodeError::QueryParameterNotSettable { name });
            }
            Err(PathError::Unknown { .. } | PathError::NotAMessage { .. })
                if options.ignore_unknown_query_parameters =>
            {
                continue;
            }
            Err(PathError::Unknown { .. } | PathError::NotAMessage { .. }) => {
                return Err(TranscodeError::UnknownQueryParameter { name });
            }
        };
        let canonical = fields::proto_path(&path);
        if bound.contains(&canonical) {
            return Err(TranscodeError::QueryParameterInPath { name });
        }
        let in_body = match route.body() {
            BodyRule::None => false,
            BodyRule::Whole => true,
            BodyRule::Field(field) => path.first() == Some(field),
        };
        if in_body {
            return Err(TranscodeError::QueryParameterInBody { name });
        }
        match path.last() {
            Some(leaf) if !leaf.is_map() && fields::is_text_kind(leaf) => {}
            _ => return Err(TranscodeError::QueryParameterNotSettable { name }),
        }
        // `pageSize` and `page_size` are one parameter.
        match params.iter_mut().find(|p| p.canonical == canonical) {
            Some(existing) => existing.values.push(value),
            None => params.push(QueryField {
                name,
                path,
                canonical,
                values: vec![value],
            }),
        }
    }

    for param in params {
        let Some(leaf) = param.path.last() else {
            continue;
        };
        if !leaf.is_list() && param.values.len() > 1 {
            return Err(TranscodeError::RepeatedQueryParameter { name: param.name });
        }
        for value in &param.values {
            let parsed =
                text::parse(leaf, value).map_err(|expected| TranscodeError::InvalidFieldValue {
                    field: param.canonical.clone(),
                    value: value.clone(),
                    expected,
                })?;
            set(message, &param.path, parsed, leaf.is_list())?;
        }
    }
    Ok(())
}

/// Splits `a=1&b=x+y&c` into decoded `(key, value)` pairs, in order; `+` is a space and
/// `%2B` a plus; a key without `=` has the empty value; empty pairs are skipped.
fn parse_query(query: &str) -> Result<Vec<(String, String)>, TranscodeError> {
    let decode = |text: &str, pair: &str| {
        let spaced = text.replace('+', " ");
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| TranscodeError::InvalidQueryEncoding {
                pair: pair.to_owned(),
            })
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(key, pair)?, decode(value, pair)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn query_pairs() {
        let pairs = parse_query("a=1&&b.c=x+y%2Bz&flag&r=1&r=%E2%9C%93").unwrap();
        let expected = [
            ("a", "1"),
            ("b.c", "x y+z"),
            ("flag", ""),
            ("r", "1"),
            ("r", "\u{2713}"),
        ];
        assert_eq!(pairs.len(), expected.len());
        for ((k, v), (ek, ev)) in pairs.iter().zip(expected) {
            assert_eq!((k.as_str(), v.as_str()), (ek, ev));
        }
        assert!(matches!(
            parse_query("a=%FF"),
            Err(TranscodeError::InvalidQueryEncoding { .. })
        ));
    }

    #[test]
    fn json_errors_are_classified() {
        let err = serde_json::from_slice::<serde_json::Value>(b"{\"email\": ").unwrap_err();
        assert_eq!(
            TranscodeError::from_json(&err).to_string(),
            "malformed JSON at line 1 column 10: EOF while parsing a value"
        );
    }
}
