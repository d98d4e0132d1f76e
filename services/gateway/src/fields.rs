//! Dotted field paths over message descriptors: resolving `book.name` to its fields,
//! and deciding which fields a path variable or a query parameter may set (those whose
//! value can be written as one piece of text).

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};

/// Which names a path segment may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Naming {
    /// Proto field names only: what `google.api.http` templates use.
    Proto,
    /// Proto names or their lowerCamelCase JSON names: what clients may send.
    ProtoOrJson,
}

/// Why a dotted path does not lead to a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathError {
    /// No field of that name (`at` indexes the path's parts).
    Unknown { at: usize },
    /// The path continues past a scalar field.
    NotAMessage { at: usize },
    /// The path continues past a repeated or map field.
    ThroughRepeated { at: usize },
}

/// Resolves `path` (`a.b.c`) from `desc`: every field on the way, the leaf last. Every
/// field but the leaf is a singular message field.
pub(crate) fn resolve(
    desc: &MessageDescriptor,
    path: &str,
    naming: Naming,
) -> Result<Vec<FieldDescriptor>, PathError> {
    let mut fields: Vec<FieldDescriptor> = Vec::new();
    let mut current = desc.clone();
    let parts: Vec<&str> = path.split('.').collect();
    for (at, part) in parts.iter().enumerate() {
        let field = current
            .get_field_by_name(part)
            .or_else(|| match naming {
                Naming::ProtoOrJson => current.get_field_by_json_name(part),
                Naming::Proto => None,
            })
            .ok_or(PathError::Unknown { at })?;
        if at + 1 < parts.len() {
            match field.kind() {
                _ if field.is_list() || field.is_map() => {
                    return Err(PathError::ThroughRepeated { at });
                }
                Kind::Message(next) => current = next,
                _ => return Err(PathError::NotAMessage { at }),
            }
        }
        fields.push(field);
    }
    Ok(fields)
}

/// The canonical dotted proto-name path of resolved fields.
pub(crate) fn proto_path(fields: &[FieldDescriptor]) -> String {
    fields
        .iter()
        .map(FieldDescriptor::name)
        .collect::<Vec<_>>()
        .join(".")
}

/// The well-known types whose canonical JSON form is not an object of their fields.
/// One list, so that what the transcoder takes as text and what the OpenAPI document
/// writes inline cannot drift apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WellKnown {
    /// `DoubleValue` … `BytesValue`: their `value` field's JSON, or `null`.
    Wrapper,
    /// An RFC 3339 string.
    Timestamp,
    /// Seconds with a fraction and an `s`: `1.5s`.
    Duration,
    /// Comma-separated lowerCamelCase field paths.
    FieldMask,
    /// `{}`.
    Empty,
    /// Any JSON object.
    Struct,
    /// Any JSON value.
    Value,
    /// Any JSON array.
    ListValue,
    /// A message of any type, named by `@type`.
    Any,
}

impl WellKnown {
    /// The message's kind, if it is one of these types.
    pub(crate) fn of(desc: &MessageDescriptor) -> Option<Self> {
        Some(match desc.full_name() {
            "google.protobuf.DoubleValue"
            | "google.protobuf.FloatValue"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.Int32Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.BoolValue"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue" => Self::Wrapper,
            "google.protobuf.Timestamp" => Self::Timestamp,
            "google.protobuf.Duration" => Self::Duration,
            "google.protobuf.FieldMask" => Self::FieldMask,
            "google.protobuf.Empty" => Self::Empty,
            "google.protobuf.Struct" => Self::Struct,
            "google.protobuf.Value" => Self::Value,
            "google.protobuf.ListValue" => Self::ListValue,
            "google.protobuf.Any" => Self::Any,
            _ => return None,
        })
    }

    /// Whether the JSON form is one scalar: the wrappers (written as their inner
    /// value) and the types written as one string.
    pub(crate) fn is_scalar(self) -> bool {
        matches!(
            self,
            Self::Wrapper | Self::Timestamp | Self::Duration | Self::FieldMask
        )
    }
}

/// Messages whose JSON form is one scalar; see [`WellKnown::is_scalar`].
pub(crate) fn is_scalar_message(desc: &MessageDescriptor) -> bool {
    WellKnown::of(desc).is_some_and(WellKnown::is_scalar)
}

/// Whether one element of `field` can be parsed from text: every scalar and enum, and
/// the [scalar messages](is_scalar_message). Says nothing about repetition.
pub(crate) fn is_text_kind(field: &FieldDescriptor) -> bool {
    match field.kind() {
        Kind::Message(desc) => is_scalar_message(&desc),
        _ => true,
    }
}
