//! Schemas of messages, enums and well-known types, per the canonical proto3 JSON
//! mapping, and the `components.schemas` they are collected into.
//!
//! A message is a component referred to by `$ref`, written once however often it is
//! used (which is also what lets a type contain itself). The well-known types with a
//! JSON form of their own are inlined, `google.protobuf.Any` aside. Field behaviors
//! and comments become `required`, `readOnly`, `writeOnly` and `description`; the
//! `buf.validate` rules become the keywords listed in `constraints`, and a field whose
//! absence breaks a rule (an empty `email` that must be an address) is `required`.

use std::collections::HashSet;

use openapiv3::{
    AdditionalProperties, AnySchema, ArrayType, BooleanType, Components, IntegerFormat,
    IntegerType, NumberFormat, NumberType, ObjectType, ReferenceOr, Schema, SchemaData, SchemaKind,
    StringType, Type, VariantOrUnknownOrEmpty,
};
use prost_reflect::{DescriptorPool, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};

use platform_api::rules::Validator;

use super::comments::Comments;
use super::constraints;
use crate::fields::WellKnown;

/// Full name of the error body message.
pub(super) const STATUS: &str = "google.rpc.Status";
/// Full name of the message that carries error details.
const ANY: &str = "google.protobuf.Any";
/// The field option that says which fields are required, output-only, input-only.
const FIELD_BEHAVIOR_EXTENSION: &str = "google.api.field_behavior";

/// A schema where OpenAPI takes either one inline or a `$ref`.
pub(super) type SchemaOrRef = ReferenceOr<Schema>;

/// Resolves proto types to schemas and collects the components they refer to.
#[derive(Debug, Default)]
pub(super) struct Schemas {
    /// Descriptions of schemas, and (through [`Self::comments`]) of operations and
    /// parameters.
    comments: Comments,
    /// Finished component schemas, by message full name.
    components: Components,
    /// Every message that has been referred to (finished or pending).
    referenced: HashSet<String>,
    /// Referred to, schema not yet written.
    pending: Vec<MessageDescriptor>,
}

impl Schemas {
    /// The comments the schemas are described with, for the rest of the document.
    pub(super) fn comments(&mut self) -> &mut Comments {
        &mut self.comments
    }

    /// Writes the schema of every message referred to so far (and of the ones those
    /// refer to), and returns them all, ordered by name so that the document does not
    /// change with the order routes are listed in.
    pub(super) fn finish(mut self) -> Components {
        while let Some(desc) = self.pending.pop() {
            let schema = self.message_schema(&desc);
            self.components
                .schemas
                .insert(desc.full_name().to_owned(), ReferenceOr::Item(schema));
        }
        self.components.schemas.sort_keys();
        self.components
    }

    /// `google.rpc.Status` from the pool (with its comments) when the pool has it;
    /// otherwise the same shape written out, since every error body is one.
    pub(super) fn require_status(&mut self, pool: Option<&DescriptorPool>) {
        match pool.and_then(|p| p.get_message_by_name(STATUS)) {
            Some(desc) => {
                self.message_ref(&desc);
            }
            None => {
                self.require_any();
                self.components
                    .schemas
                    .insert(STATUS.to_owned(), ReferenceOr::Item(status_schema()));
            }
        }
        self.require_any();
    }

    fn require_any(&mut self) {
        if self.referenced.insert(ANY.to_owned()) {
            self.components
                .schemas
                .insert(ANY.to_owned(), ReferenceOr::Item(any_schema()));
        }
    }

    /// A property: the field's type with its description and field behaviors.
    fn field_schema(&mut self, field: &FieldDescriptor, behaviors: &[Behavior]) -> SchemaOrRef {
        let description = self.comments.of_field(field);
        let base = match field.kind() {
            // The field's comment says what the enum's own comment would, more
            // precisely; the list of values still follows it.
            Kind::Enum(desc) if description.is_some() && !field.is_list() && !field.is_map() => {
                ReferenceOr::Item(self.enum_schema(&desc, false))
            }
            _ => self.field_type_schema(field),
        };
        let base = constraints::constrain(base, field);
        let output_only = behaviors.contains(&Behavior::OutputOnly);
        let input_only = behaviors.contains(&Behavior::InputOnly);
        let notes = SchemaData {
            description,
            // Both at once would make the property unusable either way: say neither.
            read_only: output_only && !input_only,
            write_only: input_only && !output_only,
            deprecated: is_deprecated(field),
            ..SchemaData::default()
        };
        annotate(base, notes)
    }

    /// The schema of a field's whole value: its element type, as an array for a
    /// repeated field or an object for a map.
    pub(super) fn field_type_schema(&mut self, field: &FieldDescriptor) -> SchemaOrRef {
        let schema = if field.is_map() {
            let value = match field.kind() {
                Kind::Message(entry) => self.kind_schema(&entry.map_entry_value_field().kind()),
                _ => ReferenceOr::Item(any_value()),
            };
            map_of(value)
        } else if field.is_list() {
            array_of(self.kind_schema(&field.kind()))
        } else {
            return self.kind_schema(&field.kind());
        };
        ReferenceOr::Item(schema)
    }

    /// The schema of one value of a proto type, per the canonical JSON mapping.
    pub(super) fn kind_schema(&mut self, kind: &Kind) -> SchemaOrRef {
        let ty = match kind {
            Kind::Double => number(NumberFormat::Double),
            Kind::Float => number(NumberFormat::Float),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => integer(IntegerFormat::Int32),
            // Beyond int32: OpenAPI's int64 format holds it, the bounds say the rest.
            Kind::Uint32 | Kind::Fixed32 => Type::Integer(IntegerType {
                format: known(IntegerFormat::Int64),
                minimum: Some(0),
                maximum: Some(i64::from(u32::MAX)),
                ..IntegerType::default()
            }),
            // The JSON mapping writes 64-bit integers as strings (JavaScript numbers
            // lose precision past 2^53); it reads numbers too.
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => string(Some("int64")),
            Kind::Uint64 | Kind::Fixed64 => string(Some("uint64")),
            Kind::Bool => Type::Boolean(BooleanType::default()),
            Kind::String => string(None),
            Kind::Bytes => string(Some("byte")),
            Kind::Enum(desc) => return ReferenceOr::Item(self.enum_schema(desc, true)),
            Kind::Message(desc) => return self.message_ref(desc),
        };
        ReferenceOr::Item(typed(ty))
    }

    /// An enum as its value names; the description lists the values' comments, after
    /// the enum's own comment with `type_comment`.
    fn enum_schema(&mut self, desc: &EnumDescriptor, type_comment: bool) -> Schema {
        if desc.full_name() == "google.protobuf.NullValue" {
            // Its one value is written as JSON `null`.
            let mut schema = typed(Type::String(StringType {
                enumeration: vec![None],
                ..StringType::default()
            }));
            schema.schema_data.nullable = true;
            return schema;
        }
        let mut lines = Vec::new();
        if type_comment && let Some(text) = self.comments.of(&desc.parent_file(), desc.path()) {
            lines.push(text);
        }
        let mut values = Vec::new();
        for value in desc.values() {
            if let Some(text) = self.comments.of(&value.parent_file(), value.path()) {
                values.push(format!("- `{}`: {}", value.name(), text.replace('\n', " ")));
            }
        }
        if !values.is_empty() {
            lines.push(values.join("\n"));
        }
        let mut schema = typed(Type::String(StringType {
            enumeration: desc.values().map(|v| Some(v.name().to_owned())).collect(),
            ..StringType::default()
        }));
        if !lines.is_empty() {
            schema.schema_data.description = Some(lines.join("\n\n"));
        }
        schema
    }

    /// A message type where a schema is expected: a well-known type in its JSON form,
    /// or a `$ref` to the message's component (queued to be written).
    pub(super) fn message_ref(&mut self, desc: &MessageDescriptor) -> SchemaOrRef {
        let name = desc.full_name();
        if let Some(inline) = self.well_known(desc) {
            return ReferenceOr::Item(inline);
        }
        if name == ANY {
            self.require_any();
        } else if self.referenced.insert(name.to_owned()) {
            self.pending.push(desc.clone());
        }
        component_ref(name)
    }

    /// The JSON form of the well-known types that have one of their own (Any aside,
    /// which is a component).
    fn well_known(&mut self, desc: &MessageDescriptor) -> Option<Schema> {
        let schema = match WellKnown::of(desc)? {
            WellKnown::Timestamp => typed(string(Some("date-time"))),
            WellKnown::Duration => described(
                typed(string(None)),
                "Seconds with up to nine fractional digits, ending in `s`: `1.5s`.",
            ),
            WellKnown::FieldMask => described(
                typed(string(None)),
                "Comma-separated field paths in lowerCamelCase: `displayName,email`.",
            ),
            WellKnown::Empty => typed(Type::Object(ObjectType::default())),
            WellKnown::Struct => map_of(ReferenceOr::Item(any_value())),
            WellKnown::Value => any_value(),
            WellKnown::ListValue => array_of(ReferenceOr::Item(any_value())),
            WellKnown::Wrapper => {
                let inner = desc.get_field_by_name("value")?;
                // The inner value is a scalar, so never a `$ref`.
                let ReferenceOr::Item(mut schema) = self.kind_schema(&inner.kind()) else {
                    return None;
                };
                schema.schema_data.nullable = true;
                schema
            }
            WellKnown::Any => return None,
        };
        Some(schema)
    }

    /// The component schema of a message (not of a well-known type inlined by
    /// [`Self::message_ref`]).
    pub(super) fn message_schema(&mut self, desc: &MessageDescriptor) -> Schema {
        if desc.full_name() == ANY {
            return any_schema();
        }
        // The edge refuses a key the message does not have.
        let mut object = ObjectType {
            additional_properties: Some(AdditionalProperties::Any(false)),
            ..ObjectType::default()
        };
        let by_rules = required_by_rules(desc);
        for field in desc.fields() {
            let behaviors = field_behaviors(&field);
            if is_required_key(&field, &behaviors, &by_rules) {
                object.required.push(field.json_name().to_owned());
            }
            let property = self.field_schema(&field, &behaviors);
            object
                .properties
                .insert(field.json_name().to_owned(), boxed(property));
        }
        let mut schema = typed(Type::Object(object));
        schema.schema_data.description = self.comments.of(&desc.parent_file(), desc.path());
        schema
    }
}

/// Whether a message's JSON must have the key of `field`. The JSON mapping leaves out
/// a field at its zero value, and the edge reads a missing key as that value, so a
/// `REQUIRED` field without presence (a scalar, a list) is a required key only when
/// its zero value is refused (`by_rules`); a message or `optional` field is one when
/// `REQUIRED`. So an answer holding a price of 0, written without the key, still
/// matches its schema.
fn is_required_key(field: &FieldDescriptor, behaviors: &[Behavior], by_rules: &[String]) -> bool {
    by_rules.iter().any(|n| n == field.name())
        || (behaviors.contains(&Behavior::Required) && field.supports_presence())
}

/// `#/components/schemas/{name}`.
pub(super) fn component_ref(name: &str) -> SchemaOrRef {
    ReferenceOr::ref_(&format!("#/components/schemas/{name}"))
}

/// A schema of one type and nothing else.
pub(super) fn typed(ty: Type) -> Schema {
    Schema {
        schema_data: SchemaData::default(),
        schema_kind: SchemaKind::Type(ty),
    }
}

/// `schema` with a description.
pub(super) fn described(mut schema: Schema, description: &str) -> Schema {
    schema.schema_data.description = Some(description.to_owned());
    schema
}

/// A string, with a `format` when given (OpenAPI's own, or one it leaves open such as
/// `int64`).
pub(super) fn string(format: Option<&str>) -> Type {
    Type::String(StringType {
        format: format.map(str::to_owned).into(),
        ..StringType::default()
    })
}

fn integer(format: IntegerFormat) -> Type {
    Type::Integer(IntegerType {
        format: known(format),
        ..IntegerType::default()
    })
}

fn number(format: NumberFormat) -> Type {
    Type::Number(NumberType {
        format: known(format),
        ..NumberType::default()
    })
}

/// A format OpenAPI names for the type.
fn known<T>(format: T) -> VariantOrUnknownOrEmpty<T> {
    VariantOrUnknownOrEmpty::Item(format)
}

/// `{}`: any JSON value.
fn any_value() -> Schema {
    Schema {
        schema_data: SchemaData::default(),
        schema_kind: SchemaKind::Any(AnySchema::default()),
    }
}

/// An array of `items`.
pub(super) fn array_of(items: SchemaOrRef) -> Schema {
    typed(Type::Array(ArrayType {
        items: Some(boxed(items)),
        min_items: None,
        max_items: None,
        unique_items: false,
    }))
}

/// An object whose every property is a `values`: a proto map, or `Struct`.
fn map_of(values: SchemaOrRef) -> Schema {
    typed(Type::Object(ObjectType {
        additional_properties: Some(AdditionalProperties::Schema(Box::new(values))),
        ..ObjectType::default()
    }))
}

/// Object properties and array items hold boxed schemas.
fn boxed(schema: SchemaOrRef) -> ReferenceOr<Box<Schema>> {
    match schema {
        ReferenceOr::Reference { reference } => ReferenceOr::Reference { reference },
        ReferenceOr::Item(schema) => ReferenceOr::Item(Box::new(schema)),
    }
}

/// Adds a field's notes to its type's schema. A `$ref` cannot carry siblings in
/// OpenAPI 3.0 (they are ignored), so a referenced type is wrapped in `allOf`.
fn annotate(base: SchemaOrRef, notes: SchemaData) -> SchemaOrRef {
    if notes == SchemaData::default() {
        return base;
    }
    match base {
        ReferenceOr::Item(mut schema) => {
            let data = &mut schema.schema_data;
            data.description = match (notes.description, data.description.take()) {
                // The field's own words first, then what the type says (enum values).
                (Some(field), Some(own)) => Some(format!("{field}\n\n{own}")),
                (field, own) => field.or(own),
            };
            data.read_only |= notes.read_only;
            data.write_only |= notes.write_only;
            data.deprecated |= notes.deprecated;
            ReferenceOr::Item(schema)
        }
        reference @ ReferenceOr::Reference { .. } => ReferenceOr::Item(Schema {
            schema_data: notes,
            schema_kind: SchemaKind::AllOf {
                all_of: vec![reference],
            },
        }),
    }
}

/// `google.protobuf.Any` in JSON: `@type` and the message's fields beside it.
fn any_schema() -> Schema {
    let type_url = described(
        typed(string(None)),
        "A URL whose last segment is the message's full name.",
    );
    described(
        typed(Type::Object(ObjectType {
            properties: [("@type".to_owned(), boxed(ReferenceOr::Item(type_url)))]
                .into_iter()
                .collect(),
            required: vec!["@type".to_owned()],
            additional_properties: Some(AdditionalProperties::Schema(Box::new(ReferenceOr::Item(
                any_value(),
            )))),
            ..ObjectType::default()
        })),
        "A message of any type: `@type` names it \
         (`type.googleapis.com/google.rpc.BadRequest`), the other properties are its \
         fields in JSON; a type with a JSON form of its own is under `value`.",
    )
}

/// `google.rpc.Status` written out, for a pool that does not have it.
fn status_schema() -> Schema {
    let property = |schema: Schema, description: &str| {
        boxed(ReferenceOr::Item(described(schema, description)))
    };
    described(
        typed(Type::Object(ObjectType {
            properties: [
                (
                    "code".to_owned(),
                    property(
                        typed(integer(IntegerFormat::Int32)),
                        "The gRPC status code (google.rpc.Code).",
                    ),
                ),
                (
                    "message".to_owned(),
                    property(
                        typed(string(None)),
                        "A developer-facing error message, in English.",
                    ),
                ),
                (
                    "details".to_owned(),
                    property(
                        array_of(component_ref(ANY)),
                        "Messages that carry the error details.",
                    ),
                ),
            ]
            .into_iter()
            .collect(),
            ..ObjectType::default()
        })),
        "The error body: a gRPC status code, a developer-facing message, and details.",
    )
}

/// The `google.api.FieldBehavior` values the document uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behavior {
    Required,
    OutputOnly,
    InputOnly,
}

/// The field's `(google.api.field_behavior)` values among those the document uses.
/// Read by name through the pool, so a pool without field_behavior.proto just has none.
fn field_behaviors(field: &FieldDescriptor) -> Vec<Behavior> {
    let Some(extension) = field
        .parent_pool()
        .get_extension_by_name(FIELD_BEHAVIOR_EXTENSION)
    else {
        return Vec::new();
    };
    let options = field.options();
    if !options.has_extension(&extension) {
        return Vec::new();
    }
    let Some(kind) = extension.kind().as_enum().cloned() else {
        return Vec::new();
    };
    let value = options.get_extension(&extension);
    let numbers: Vec<i32> = match value.as_list() {
        Some(list) => list.iter().filter_map(|v| v.as_enum_number()).collect(),
        None => value.as_enum_number().into_iter().collect(),
    };
    numbers
        .into_iter()
        .filter_map(|n| kind.get_value(n))
        .filter_map(|v| match v.name() {
            "REQUIRED" => Some(Behavior::Required),
            "OUTPUT_ONLY" => Some(Behavior::OutputOnly),
            "INPUT_ONLY" => Some(Behavior::InputOnly),
            _ => None,
        })
        .collect()
}

/// The fields of `desc` whose absence breaks one of its `buf.validate` rules (an unset
/// `required` field, an empty string that must be an email, an empty list with
/// `min_items`), by proto name: a request without them is refused, so the document
/// says they are required.
pub(super) fn required_by_rules(desc: &MessageDescriptor) -> Vec<String> {
    Validator::new(desc.parent_pool().clone()).required_fields(desc)
}

/// Whether the field is `(google.api.field_behavior) = REQUIRED`.
pub(super) fn is_required(field: &FieldDescriptor) -> bool {
    field_behaviors(field).contains(&Behavior::Required)
}

pub(super) fn is_deprecated(field: &FieldDescriptor) -> bool {
    field
        .field_descriptor_proto()
        .options
        .as_ref()
        .and_then(|o| o.deprecated)
        .unwrap_or(false)
}
