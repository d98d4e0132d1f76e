//! The `buf.validate` rules of one message type, read from its descriptor's options
//! into plain values once, so checking a message never decodes options again; and
//! the same values for one field ([`declared`]), for documents that publish them.
//!
//! Understood (the standard rules a request contract needs):
//!
//! - every field: `required`, `ignore` (`IGNORE_IF_ZERO_VALUE`, `IGNORE_ALWAYS`);
//! - `string`: `const`, `len`, `min_len`, `max_len`, `len_bytes`, `min_bytes`,
//!   `max_bytes`, `pattern`, `prefix`, `suffix`, `contains`, `not_contains`, `in`,
//!   `not_in`, `email`, `uuid`;
//! - `bytes`: `len`, `min_len`, `max_len`;
//! - every integer and floating-point type: `const`, `lt`, `lte`, `gt`, `gte` (a
//!   range whose bounds are crossed excludes the span between them, as in
//!   protovalidate), `in`, `not_in`, and `finite` for floats;
//! - `bool`: `const`; `enum`: `const`, `defined_only`, `in`, `not_in`;
//! - `repeated`: `min_items`, `max_items`, `unique`, `items`; `map`: `min_pairs`,
//!   `max_pairs`, `keys`, `values`;
//! - `(buf.validate.oneof).required`, `(buf.validate.message).disabled`.
//!
//! Anything else that is set (CEL, the other well-known string formats, rules of
//! `Any`, `Duration`, `Timestamp`, `FieldMask`, message-level `oneof` rules, a rule of
//! the wrong type for its field, a pattern that does not compile) is recorded as
//! [`Unsupported`] and not checked. `example` values are documentation and ignored.

use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, OneofDescriptor, Value,
};
use regex::Regex;

use super::Unsupported;

const FIELD: &str = "buf.validate.field";
const MESSAGE: &str = "buf.validate.message";
const ONEOF: &str = "buf.validate.oneof";

/// The rules of one message type.
#[derive(Debug)]
pub(super) struct Plan {
    /// The type, to tell it from a namesake in another pool.
    pub(super) desc: MessageDescriptor,
    /// `(buf.validate.message).disabled`: nothing in it is checked.
    pub(super) disabled: bool,
    /// The fields with rules, or holding messages that may have some.
    pub(super) fields: Vec<(FieldDescriptor, FieldRules)>,
    /// Oneofs that must have a member set.
    pub(super) required_oneofs: Vec<OneofDescriptor>,
    /// Message types of fields, for [`super::Validator::unsupported`].
    pub(super) nested: Vec<MessageDescriptor>,
    /// Rules declared but not checked.
    pub(super) unsupported: Vec<Unsupported>,
}

/// What `ignore` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ignore {
    /// Rules apply per the field's presence.
    #[default]
    Unspecified,
    /// An unpopulated field (zero, empty, unset) is not checked.
    IfZeroValue,
    /// Never checked.
    Always,
}

/// The rules of one field (or of the elements, keys or values of one).
#[derive(Debug, Default)]
pub struct FieldRules {
    /// `required`: the field must be set (non-zero, non-empty).
    pub required: bool,
    /// `ignore`.
    pub ignore: Ignore,
    /// The rules of the field's type, when declared and understood.
    pub kind: Option<KindRules>,
}

/// The rules of the field's type.
#[derive(Debug)]
pub enum KindRules {
    /// `string`.
    String(Box<StringRules>),
    /// `bytes`: lengths in bytes.
    Bytes(LengthRules),
    /// Every integer type, widened to `i128`.
    Integer(Range<i128>),
    /// `float` and `double`.
    Float(Range<f64>),
    /// `bool.const`.
    Bool(Option<bool>),
    /// `enum`.
    Enum(EnumRules),
    /// `repeated`.
    Repeated(Box<RepeatedRules>),
    /// `map`.
    Map(Box<MapRules>),
}

/// Lengths in characters or bytes, or counts of items or pairs.
#[derive(Debug, Default)]
pub struct LengthRules {
    /// Exactly this many (`len`).
    pub exact: Option<u64>,
    /// At least (`min_len`, `min_items`...).
    pub min: Option<u64>,
    /// At most (`max_len`, `max_items`...).
    pub max: Option<u64>,
}

/// `string` rules.
#[derive(Debug, Default)]
pub struct StringRules {
    /// `const`.
    pub constant: Option<String>,
    /// Lengths in characters (Unicode code points).
    pub chars: LengthRules,
    /// Lengths in bytes of UTF-8.
    pub bytes: LengthRules,
    /// `pattern`, compiled.
    pub pattern: Option<Regex>,
    /// `prefix`.
    pub prefix: Option<String>,
    /// `suffix`.
    pub suffix: Option<String>,
    /// `contains`.
    pub contains: Option<String>,
    /// `not_contains`.
    pub not_contains: Option<String>,
    /// `in`: one of these.
    pub one_of: Vec<String>,
    /// `not_in`: none of these.
    pub none_of: Vec<String>,
    /// A well-known format.
    pub format: Option<Format>,
}

/// The well-known string formats understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `email`: an address as HTML forms take it.
    Email,
    /// `uuid`: hyphenated, any version.
    Uuid,
}

/// A bound of a range.
#[derive(Debug, Clone, Copy)]
pub struct Bound<T> {
    /// The bound.
    pub value: T,
    /// `gte`/`lte` rather than `gt`/`lt`.
    pub inclusive: bool,
}

/// Numeric rules.
#[derive(Debug)]
pub struct Range<T> {
    /// `const`.
    pub constant: Option<T>,
    /// `gt` or `gte`.
    pub lower: Option<Bound<T>>,
    /// `lt` or `lte`. Below `lower`, the two exclude the span between them.
    pub upper: Option<Bound<T>>,
    /// `in`.
    pub one_of: Vec<T>,
    /// `not_in`.
    pub none_of: Vec<T>,
    /// `finite` (floats).
    pub finite: bool,
}

impl<T> Default for Range<T> {
    fn default() -> Self {
        Self {
            constant: None,
            lower: None,
            upper: None,
            one_of: Vec::new(),
            none_of: Vec::new(),
            finite: false,
        }
    }
}

/// `enum` rules, by number.
#[derive(Debug, Default)]
pub struct EnumRules {
    /// `const`.
    pub constant: Option<i32>,
    /// `defined_only`: one of the enum's values.
    pub defined_only: bool,
    /// `in`.
    pub one_of: Vec<i32>,
    /// `not_in`.
    pub none_of: Vec<i32>,
}

/// `repeated` rules.
#[derive(Debug, Default)]
pub struct RepeatedRules {
    /// `min_items`, `max_items`.
    pub items: LengthRules,
    /// `unique`.
    pub unique: bool,
    /// `items`: the rules of each element.
    pub each: Option<FieldRules>,
}

/// `map` rules.
#[derive(Debug, Default)]
pub struct MapRules {
    /// `min_pairs`, `max_pairs`.
    pub pairs: LengthRules,
    /// The rules of each key.
    pub keys: Option<FieldRules>,
    /// The rules of each value.
    pub values: Option<FieldRules>,
}

/// The understood rules declared on `field` (none when its pool lacks
/// `buf/validate/validate.proto`), for documents that publish them; what is not
/// understood is left out, as it is by the checks.
pub fn declared(field: &FieldDescriptor) -> FieldRules {
    let Some(extension) = field.parent_pool().get_extension_by_name(FIELD) else {
        return FieldRules::default();
    };
    let options = field.options();
    if !options.has_extension(&extension) {
        return FieldRules::default();
    }
    let Some(rules) = options.get_extension(&extension).as_message().cloned() else {
        return FieldRules::default();
    };
    let mut ignored = Vec::new();
    let mut notes = Notes {
        element: field.full_name(),
        out: &mut ignored,
    };
    field_rules(field, Target::Whole, &rules, &mut notes, "")
}

/// What a set of rules applies to: a field's whole value, or one element of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Whole,
    Element,
}

/// Records rules that are declared but not checked, naming where.
struct Notes<'a> {
    element: &'a str,
    out: &'a mut Vec<Unsupported>,
}

impl Notes<'_> {
    fn add(&mut self, rule: impl Into<String>) {
        self.out.push(Unsupported {
            element: self.element.to_owned(),
            rule: rule.into(),
        });
    }
}

impl Plan {
    /// Reads the rules of `desc`; a pool without `buf/validate/validate.proto` has
    /// none.
    pub(super) fn compile(desc: &MessageDescriptor) -> Self {
        let pool = desc.parent_pool();
        let mut plan = Self {
            desc: desc.clone(),
            disabled: false,
            fields: Vec::new(),
            required_oneofs: Vec::new(),
            nested: Vec::new(),
            unsupported: Vec::new(),
        };
        if let Some(extension) = pool.get_extension_by_name(MESSAGE) {
            let options = desc.options();
            if options.has_extension(&extension)
                && let Some(rules) = options.get_extension(&extension).as_message()
            {
                let mut notes = Notes {
                    element: desc.full_name(),
                    out: &mut plan.unsupported,
                };
                for (field, value) in rules.fields() {
                    match field.name() {
                        "disabled" => plan.disabled = value.as_bool().unwrap_or(false),
                        other => notes.add(format!("(buf.validate.message).{other}")),
                    }
                }
            }
        }
        if let Some(extension) = pool.get_extension_by_name(ONEOF) {
            for oneof in desc.oneofs().filter(|o| !o.is_synthetic()) {
                let options = oneof.options();
                if !options.has_extension(&extension) {
                    continue;
                }
                let Some(rules) = options.get_extension(&extension).as_message().cloned() else {
                    continue;
                };
                let mut notes = Notes {
                    element: oneof.full_name(),
                    out: &mut plan.unsupported,
                };
                for (field, value) in rules.fields() {
                    match field.name() {
                        "required" if value.as_bool() == Some(true) => {
                            plan.required_oneofs.push(oneof.clone());
                        }
                        "required" => {}
                        other => notes.add(format!("(buf.validate.oneof).{other}")),
                    }
                }
            }
        }
        let extension = pool.get_extension_by_name(FIELD);
        for field in desc.fields() {
            let message_inside = message_inside(&field);
            if let Some(nested) = &message_inside
                && !plan.nested.contains(nested)
            {
                plan.nested.push(nested.clone());
            }
            let declared = extension.as_ref().and_then(|extension| {
                let options = field.options();
                options
                    .has_extension(extension)
                    .then(|| options.get_extension(extension).as_message().cloned())
                    .flatten()
            });
            let rules = match declared {
                Some(declared) => {
                    let mut notes = Notes {
                        element: field.full_name(),
                        out: &mut plan.unsupported,
                    };
                    field_rules(&field, Target::Whole, &declared, &mut notes, "")
                }
                None => FieldRules::default(),
            };
            if rules.required
                || rules.kind.is_some()
                || rules.ignore != Ignore::Unspecified
                || message_inside.is_some()
            {
                plan.fields.push((field, rules));
            }
        }
        plan
    }
}

/// The message type held by a field (its type, its elements', or its map values').
fn message_inside(field: &FieldDescriptor) -> Option<MessageDescriptor> {
    let Kind::Message(desc) = field.kind() else {
        return None;
    };
    if field.is_map() {
        match desc.map_entry_value_field().kind() {
            Kind::Message(value) => Some(value),
            _ => None,
        }
    } else {
        Some(desc)
    }
}

/// Reads a `FieldRules` message declared for `field` (or, with [`Target::Element`],
/// for one of its elements, keys or values). `prefix` names the rules' place in
/// messages about them (`repeated.items.`).
fn field_rules(
    field: &FieldDescriptor,
    target: Target,
    declared: &DynamicMessage,
    notes: &mut Notes<'_>,
    prefix: &str,
) -> FieldRules {
    let mut rules = FieldRules::default();
    for (rule, value) in declared.fields() {
        let name = rule.name();
        match name {
            "required" => rules.required = value.as_bool().unwrap_or(false),
            "ignore" => {
                rules.ignore = match value.as_enum_number() {
                    Some(1) => Ignore::IfZeroValue,
                    Some(3) => Ignore::Always,
                    _ => Ignore::Unspecified,
                };
            }
            "cel" | "cel_expression" => notes.add(format!("{prefix}{name} (CEL)")),
            _ => {
                let Some(kind_rules) = value.as_message() else {
                    notes.add(format!("{prefix}{name}"));
                    continue;
                };
                let prefix = format!("{prefix}{name}.");
                rules.kind = kind(field, target, name, kind_rules, notes, &prefix);
            }
        }
    }
    rules
}

/// The rules of `FieldRules` named after a scalar type.
const SCALARS: [&str; 15] = [
    "string", "bytes", "bool", "float", "double", "int32", "int64", "uint32", "uint64", "sint32",
    "sint64", "fixed32", "fixed64", "sfixed32", "sfixed64",
];

/// The rules of the `type` oneof of `FieldRules`, if they fit the field.
fn kind(
    field: &FieldDescriptor,
    target: Target,
    name: &str,
    declared: &DynamicMessage,
    notes: &mut Notes<'_>,
    prefix: &str,
) -> Option<KindRules> {
    let whole_list = target == Target::Whole && field.is_list();
    let whole_map = target == Target::Whole && field.is_map();
    // A list's elements have the field's kind; for a map's keys and values the
    // caller passes the entry's key or value field.
    let element_kind = field.kind();
    let fits = match name {
        "repeated" => whole_list,
        "map" => whole_map,
        _ if whole_list || whole_map => false,
        "enum" => matches!(element_kind, Kind::Enum(_)),
        // Scalar rules are named after the field's type: `sint64` for TYPE_SINT64.
        scalar if SCALARS.contains(&scalar) => field
            .field_descriptor_proto()
            .r#type()
            .as_str_name()
            .strip_prefix("TYPE_")
            .is_some_and(|kind| kind.eq_ignore_ascii_case(scalar)),
        // any, duration, timestamp, field_mask
        _ => {
            notes.add(prefix.trim_end_matches('.'));
            return None;
        }
    };
    if !fits {
        notes.add(format!(
            "{} (rules of another type than the field's)",
            prefix.trim_end_matches('.')
        ));
        return None;
    }
    let declared = Declared {
        message: declared,
        prefix,
    };
    Some(match name {
        "string" => KindRules::String(Box::new(string_rules(declared, notes))),
        "bytes" => KindRules::Bytes(bytes_rules(declared, notes)),
        "bool" => KindRules::Bool(bool_rules(declared, notes)),
        "enum" => KindRules::Enum(enum_rules(declared, notes)),
        "float" | "double" => KindRules::Float(range(declared, notes, as_float)),
        "repeated" => KindRules::Repeated(Box::new(repeated_rules(field, declared, notes))),
        "map" => KindRules::Map(Box::new(map_rules(field, declared, notes))),
        _ => KindRules::Integer(range(declared, notes, as_integer)),
    })
}

fn as_u64(value: &Value) -> Option<u64> {
    value.as_u64()
}

/// A protobuf integer of any width, widened; `None` for other kinds. Shared by the
/// rules' bounds (read from options) and the evaluation of field values.
pub(super) fn as_integer(value: &Value) -> Option<i128> {
    match value {
        Value::I32(v) => Some(i128::from(*v)),
        Value::I64(v) => Some(i128::from(*v)),
        Value::U32(v) => Some(i128::from(*v)),
        Value::U64(v) => Some(i128::from(*v)),
        _ => None,
    }
}

/// A protobuf float or double, widened; `None` for other kinds.
pub(super) fn as_float(value: &Value) -> Option<f64> {
    match value {
        Value::F32(v) => Some(f64::from(*v)),
        Value::F64(v) => Some(*v),
        _ => None,
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_list()
        .map(|list| {
            list.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The rules declared for a field or element, and the path their notes are under.
#[derive(Clone, Copy)]
struct Declared<'a> {
    message: &'a DynamicMessage,
    prefix: &'a str,
}

impl Declared<'_> {
    /// Reads the rules into a default `R`: `apply` takes each rule it knows and answers
    /// whether it did. `example` documents and asks for nothing; any other rule is
    /// noted as unsupported.
    fn read<'n, R: Default>(
        self,
        notes: &mut Notes<'n>,
        mut apply: impl FnMut(&mut R, &str, &Value, &mut Notes<'n>) -> bool,
    ) -> R {
        let mut rules = R::default();
        for (field, value) in self.message.fields() {
            let name = field.name();
            if !apply(&mut rules, name, value, notes) && name != "example" {
                notes.add(format!("{}{name}", self.prefix));
            }
        }
        rules
    }
}

fn string_rules(declared: Declared<'_>, notes: &mut Notes<'_>) -> StringRules {
    let prefix = declared.prefix;
    declared.read(notes, |rules: &mut StringRules, name, value, notes| {
        let text = || value.as_str().map(str::to_owned);
        match name {
            "const" => rules.constant = text(),
            "len" => rules.chars.exact = as_u64(value),
            "min_len" => rules.chars.min = as_u64(value),
            "max_len" => rules.chars.max = as_u64(value),
            "len_bytes" => rules.bytes.exact = as_u64(value),
            "min_bytes" => rules.bytes.min = as_u64(value),
            "max_bytes" => rules.bytes.max = as_u64(value),
            "pattern" => match value.as_str().map(Regex::new) {
                Some(Ok(regex)) => rules.pattern = Some(regex),
                Some(Err(error)) => notes.add(format!("{prefix}pattern ({error})")),
                None => notes.add(format!("{prefix}pattern")),
            },
            "prefix" => rules.prefix = text(),
            "suffix" => rules.suffix = text(),
            "contains" => rules.contains = text(),
            "not_contains" => rules.not_contains = text(),
            "in" => rules.one_of = strings(value),
            "not_in" => rules.none_of = strings(value),
            "email" if value.as_bool() == Some(true) => rules.format = Some(Format::Email),
            "uuid" if value.as_bool() == Some(true) => rules.format = Some(Format::Uuid),
            // `false` asks for nothing.
            _ if value.as_bool() == Some(false) => {}
            _ => return false,
        }
        true
    })
}

fn bool_rules(declared: Declared<'_>, notes: &mut Notes<'_>) -> Option<bool> {
    declared.read(notes, |constant: &mut Option<bool>, name, value, _| {
        if name != "const" {
            return false;
        }
        *constant = value.as_bool();
        true
    })
}

fn bytes_rules(declared: Declared<'_>, notes: &mut Notes<'_>) -> LengthRules {
    declared.read(notes, |rules: &mut LengthRules, name, value, _| {
        match name {
            "len" => rules.exact = as_u64(value),
            "min_len" => rules.min = as_u64(value),
            "max_len" => rules.max = as_u64(value),
            _ => return false,
        }
        true
    })
}

fn range<T: Copy>(
    declared: Declared<'_>,
    notes: &mut Notes<'_>,
    number: fn(&Value) -> Option<T>,
) -> Range<T> {
    let bound = |value: &Value, inclusive| number(value).map(|value| Bound { value, inclusive });
    let list = |value: &Value| {
        value
            .as_list()
            .map(|l| l.iter().filter_map(number).collect())
            .unwrap_or_default()
    };
    declared.read(notes, |rules: &mut Range<T>, name, value, _| {
        match name {
            "const" => rules.constant = number(value),
            "lt" => rules.upper = bound(value, false),
            "lte" => rules.upper = bound(value, true),
            "gt" => rules.lower = bound(value, false),
            "gte" => rules.lower = bound(value, true),
            "in" => rules.one_of = list(value),
            "not_in" => rules.none_of = list(value),
            "finite" => rules.finite = value.as_bool().unwrap_or(false),
            _ => return false,
        }
        true
    })
}

fn enum_rules(declared: Declared<'_>, notes: &mut Notes<'_>) -> EnumRules {
    let list = |value: &Value| -> Vec<i32> {
        value
            .as_list()
            .map(|l| l.iter().filter_map(Value::as_i32).collect())
            .unwrap_or_default()
    };
    declared.read(notes, |rules: &mut EnumRules, name, value, _| {
        match name {
            "const" => rules.constant = value.as_i32(),
            "defined_only" => rules.defined_only = value.as_bool().unwrap_or(false),
            "in" => rules.one_of = list(value),
            "not_in" => rules.none_of = list(value),
            _ => return false,
        }
        true
    })
}

fn repeated_rules(
    field: &FieldDescriptor,
    declared: Declared<'_>,
    notes: &mut Notes<'_>,
) -> RepeatedRules {
    let prefix = declared.prefix;
    declared.read(notes, |rules: &mut RepeatedRules, name, value, notes| {
        match (name, value.as_message()) {
            ("min_items", _) => rules.items.min = as_u64(value),
            ("max_items", _) => rules.items.max = as_u64(value),
            ("unique", _) => rules.unique = value.as_bool().unwrap_or(false),
            ("items", Some(items)) => {
                let prefix = format!("{prefix}items.");
                rules.each = Some(field_rules(field, Target::Element, items, notes, &prefix));
            }
            _ => return false,
        }
        true
    })
}

fn map_rules(field: &FieldDescriptor, declared: Declared<'_>, notes: &mut Notes<'_>) -> MapRules {
    let prefix = declared.prefix;
    let entry = match field.kind() {
        Kind::Message(entry) => Some(entry),
        _ => None,
    };
    declared.read(notes, |rules: &mut MapRules, name, value, notes| {
        match (name, value.as_message(), &entry) {
            ("min_pairs", ..) => rules.pairs.min = as_u64(value),
            ("max_pairs", ..) => rules.pairs.max = as_u64(value),
            ("keys", Some(keys), Some(entry)) => {
                let prefix = format!("{prefix}keys.");
                let key = entry.map_entry_key_field();
                rules.keys = Some(field_rules(&key, Target::Element, keys, notes, &prefix));
            }
            ("values", Some(values), Some(entry)) => {
                let prefix = format!("{prefix}values.");
                let value = entry.map_entry_value_field();
                rules.values = Some(field_rules(&value, Target::Element, values, notes, &prefix));
            }
            _ => return false,
        }
        true
    })
}
