//! JSON options of one upstream's methods, beyond the canonical mapping: what
//! grpc-gateway calls `EmitUnpopulated`, `UseProtoNames`, `UseEnumNumbers` and
//! `DiscardUnknown` (for query parameters).

use prost_reflect::{
    DynamicMessage, Kind, MessageDescriptor, ReflectMessage, SerializeOptions, Value,
};

/// How messages are written as JSON and query strings read; the default is the
/// canonical proto3 JSON mapping with unknown query parameters refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsonOptions {
    /// Fields at their default value are written too (`0`, `""`, `[]`, `{}`), and an
    /// unset message field as `null`. Oneof members and proto3 `optional` fields are
    /// written only when set, since their absence is information.
    pub emit_unpopulated: bool,
    /// Proto field names (`in_stock`) instead of lowerCamelCase (`inStock`).
    pub proto_field_names: bool,
    /// Enum values as numbers instead of names.
    pub enums_as_numbers: bool,
    /// A query parameter that names no field is left out instead of refused.
    pub ignore_unknown_query_parameters: bool,
}

impl JsonOptions {
    /// prost-reflect's options for writing.
    pub(crate) fn serialize_options(&self) -> SerializeOptions {
        SerializeOptions::new()
            .skip_default_fields(!self.emit_unpopulated)
            .use_proto_field_name(self.proto_field_names)
            .use_enum_numbers(self.enums_as_numbers)
    }
}

/// Adds `null` for every unset singular message field of `message` (and of the
/// messages inside it) to `json`, its JSON form written with `skip_default_fields`
/// off. prost-reflect writes scalars, lists and maps at their defaults but leaves out
/// any field with presence that is unset; a client asking for every field expects
/// message fields too, as `null` (protojson's `EmitUnpopulated`).
pub(crate) fn emit_unset_messages(
    message: &DynamicMessage,
    json: &mut serde_json::Value,
    options: &JsonOptions,
) {
    let serde_json::Value::Object(object) = json else {
        return;
    };
    for field in message.descriptor().fields() {
        // Oneof members (real or a proto3 `optional`) are written only when set.
        if field.containing_oneof().is_some() {
            continue;
        }
        let Kind::Message(nested) = field.kind() else {
            continue;
        };
        if has_special_json(&nested) && !field.is_list() && !field.is_map() {
            if !message.has_field(&field) {
                object
                    .entry(key(&field, options))
                    .or_insert(serde_json::Value::Null);
            }
            continue;
        }
        let name = key(&field, options);
        let value = message.get_field(&field);
        match value.as_ref() {
            Value::Message(inner) if message.has_field(&field) => {
                if let Some(slot) = object.get_mut(&name) {
                    emit_unset_messages(inner, slot, options);
                }
            }
            Value::Message(_) => {
                object.entry(name).or_insert(serde_json::Value::Null);
            }
            Value::List(items) if !has_special_json(&nested) => {
                if let Some(serde_json::Value::Array(slots)) = object.get_mut(&name) {
                    for (item, slot) in items.iter().zip(slots.iter_mut()) {
                        if let Value::Message(inner) = item {
                            emit_unset_messages(inner, slot, options);
                        }
                    }
                }
            }
            Value::Map(entries) => {
                let value_kind = nested.map_entry_value_field().kind();
                let Kind::Message(value_type) = value_kind else {
                    continue;
                };
                if has_special_json(&value_type) {
                    continue;
                }
                if let Some(serde_json::Value::Object(slots)) = object.get_mut(&name) {
                    for (map_key, item) in entries {
                        if let (Value::Message(inner), Some(slot)) =
                            (item, slots.get_mut(&map_key_text(map_key)))
                        {
                            emit_unset_messages(inner, slot, options);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

fn key(field: &prost_reflect::FieldDescriptor, options: &JsonOptions) -> String {
    if options.proto_field_names {
        field.name().to_owned()
    } else {
        field.json_name().to_owned()
    }
}

/// Well-known types whose JSON is not an object of their fields (timestamps, wrappers,
/// `Struct`, `Any`, ...): written whole, never walked into.
fn has_special_json(message: &MessageDescriptor) -> bool {
    message.full_name().starts_with("google.protobuf.")
}

/// A map key as JSON writes it: the key's text.
fn map_key_text(key: &prost_reflect::MapKey) -> String {
    use prost_reflect::MapKey;
    match key {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
        MapKey::String(s) => s.clone(),
    }
}
