//! Checking one message against its [`Plan`](super::plan::Plan): every field in
//! order, then the oneofs; nested messages in turn, under the path of the field that
//! holds them (`items[0].quantity`, `labels["env"]`).

use std::collections::HashSet;
use std::fmt::Display;

use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MapKey, ReflectMessage, Value};

use super::Validator;
use super::plan::{
    Bound, EnumRules, FieldRules, Format, Ignore, KindRules, LengthRules, MapRules, Range,
    RepeatedRules, StringRules, as_float, as_integer,
};
use super::text;
use crate::FieldViolation;

/// Collects the violations of one message.
struct Out<'a>(&'a mut Vec<FieldViolation>);

impl Out<'_> {
    fn push(&mut self, path: &str, description: impl Into<String>) {
        self.0.push(FieldViolation::new(path, description));
    }
}

/// Checks `message`, its fields named under `path` (empty at the top).
pub(super) fn message(
    validator: &Validator,
    message: &DynamicMessage,
    path: &str,
    out: &mut Vec<FieldViolation>,
) {
    let plan = validator.plan(&message.descriptor());
    if plan.disabled {
        return;
    }
    for (field, rules) in &plan.fields {
        let path = join(path, field.name());
        check_field(validator, message, field, rules, &path, out);
    }
    for oneof in &plan.required_oneofs {
        if !oneof.fields().any(|f| message.has_field(&f)) {
            Out(out).push(
                &join(path, oneof.name()),
                "exactly one field is required in oneof",
            );
        }
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn check_field(
    validator: &Validator,
    message: &DynamicMessage,
    field: &FieldDescriptor,
    rules: &FieldRules,
    path: &str,
    out: &mut Vec<FieldViolation>,
) {
    if rules.ignore == Ignore::Always {
        return;
    }
    let populated = message.has_field(field);
    if rules.required && !populated {
        Out(out).push(path, "value is required");
        return;
    }
    // A field that can be absent is checked only when present; one that cannot (an
    // implicit-presence scalar, a list) is checked at its zero value too, unless told
    // otherwise.
    if !populated && (field.supports_presence() || rules.ignore == Ignore::IfZeroValue) {
        return;
    }
    let value = message.get_field(field);
    if let Some(kind) = &rules.kind {
        check_value(validator, field, kind, &value, path, out);
    }
    // Messages inside are validated by their own rules.
    match &*value {
        Value::Message(inner) if populated => self::message(validator, inner, path, out),
        Value::List(items) => {
            for (i, item) in items.iter().enumerate() {
                if let Value::Message(inner) = item {
                    self::message(validator, inner, &format!("{path}[{i}]"), out);
                }
            }
        }
        Value::Map(entries) => {
            for (key, item) in sorted(entries) {
                if let Value::Message(inner) = item {
                    self::message(validator, inner, &keyed(path, key), out);
                }
            }
        }
        _ => {}
    }
}

/// Map entries in key order, so violations come out the same every time.
fn sorted(entries: &std::collections::HashMap<MapKey, Value>) -> Vec<(&MapKey, &Value)> {
    let mut entries: Vec<_> = entries.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

/// `path["key"]` for a string key, `path[1]` for others.
fn keyed(path: &str, key: &MapKey) -> String {
    match key {
        MapKey::String(s) => format!("{path}[{s:?}]"),
        MapKey::Bool(b) => format!("{path}[{b}]"),
        MapKey::I32(n) => format!("{path}[{n}]"),
        MapKey::I64(n) => format!("{path}[{n}]"),
        MapKey::U32(n) => format!("{path}[{n}]"),
        MapKey::U64(n) => format!("{path}[{n}]"),
    }
}

/// Checks one value (a field's, or an element's) against the rules of its type.
fn check_value(
    validator: &Validator,
    field: &FieldDescriptor,
    rules: &KindRules,
    value: &Value,
    path: &str,
    out: &mut Vec<FieldViolation>,
) {
    let mut out = Out(out);
    match (rules, value) {
        (KindRules::String(rules), Value::String(s)) => check_string(rules, s, path, &mut out),
        (KindRules::Bytes(rules), Value::Bytes(b)) => {
            check_length(rules, b.len(), &BYTES, path, &mut out);
        }
        (KindRules::Integer(rules), value) => {
            if let Some(n) = as_integer(value) {
                check_range(rules, n, path, &mut out);
            }
        }
        (KindRules::Float(rules), value) => {
            if let Some(n) = as_float(value) {
                if rules.finite && !n.is_finite() {
                    out.push(path, "must be finite");
                }
                check_range(rules, n, path, &mut out);
            }
        }
        (KindRules::Bool(Some(constant)), Value::Bool(b)) if b != constant => {
            out.push(path, format!("must equal {constant}"));
        }
        (KindRules::Enum(rules), Value::EnumNumber(n)) => {
            check_enum(field, rules, *n, path, &mut out);
        }
        (KindRules::Repeated(rules), Value::List(items)) => {
            check_repeated(validator, field, rules, items, path, out.0);
        }
        (KindRules::Map(rules), Value::Map(entries)) => {
            check_map(validator, field, rules, entries, path, out.0);
        }
        _ => {}
    }
}

fn check_string(rules: &StringRules, s: &str, path: &str, out: &mut Out<'_>) {
    if let Some(constant) = &rules.constant
        && s != constant
    {
        out.push(path, format!("must equal `{constant}`"));
    }
    check_length(&rules.chars, s.chars().count(), &CHARACTERS, path, out);
    check_length(&rules.bytes, s.len(), &BYTES, path, out);
    if let Some(pattern) = &rules.pattern
        && !pattern.is_match(s)
    {
        out.push(
            path,
            format!(
                "does not match regex pattern `{}`",
                printable(pattern.as_str())
            ),
        );
    }
    if let Some(prefix) = &rules.prefix
        && !s.starts_with(prefix.as_str())
    {
        out.push(path, format!("does not have prefix `{prefix}`"));
    }
    if let Some(suffix) = &rules.suffix
        && !s.ends_with(suffix.as_str())
    {
        out.push(path, format!("does not have suffix `{suffix}`"));
    }
    if let Some(needle) = &rules.contains
        && !s.contains(needle.as_str())
    {
        out.push(path, format!("does not contain substring `{needle}`"));
    }
    if let Some(needle) = &rules.not_contains
        && s.contains(needle.as_str())
    {
        out.push(path, format!("contains substring `{needle}`"));
    }
    if !rules.one_of.is_empty() && !rules.one_of.iter().any(|v| v == s) {
        out.push(path, format!("must be in list {}", list(&rules.one_of)));
    }
    if rules.none_of.iter().any(|v| v == s) {
        out.push(
            path,
            format!("must not be in list {}", list(&rules.none_of)),
        );
    }
    match rules.format {
        Some(Format::Email) if s.is_empty() => {
            out.push(path, "value is empty, which is not a valid email address");
        }
        Some(Format::Email) if !text::is_email(s) => {
            out.push(path, "must be a valid email address");
        }
        Some(Format::Uuid) if s.is_empty() => {
            out.push(path, "value is empty, which is not a valid UUID");
        }
        Some(Format::Uuid) if !text::is_uuid(s) => out.push(path, "must be a valid UUID"),
        _ => {}
    }
}

/// How a length or count rule words its violations, as protovalidate does.
struct Wording {
    exactly: &'static str,
    at_least: &'static str,
    at_most: &'static str,
    unit: &'static str,
}

const CHARACTERS: Wording = Wording::length("characters");
const BYTES: Wording = Wording::length("bytes");
const ITEMS: Wording = Wording {
    exactly: "must contain exactly",
    at_least: "must contain at least",
    at_most: "must contain no more than",
    unit: "item(s)",
};
const PAIRS: Wording = Wording {
    exactly: "map must be exactly",
    at_least: "map must be at least",
    at_most: "map must be at most",
    unit: "entries",
};

impl Wording {
    const fn length(unit: &'static str) -> Self {
        Self {
            exactly: "must be",
            at_least: "must be at least",
            at_most: "must be at most",
            unit,
        }
    }
}

fn check_length(rules: &LengthRules, len: usize, words: &Wording, path: &str, out: &mut Out<'_>) {
    let len = u64::try_from(len).unwrap_or(u64::MAX);
    let Wording {
        exactly,
        at_least,
        at_most,
        unit,
    } = words;
    if let Some(exact) = rules.exact
        && len != exact
    {
        out.push(path, format!("{exactly} {exact} {unit}"));
    }
    if let Some(min) = rules.min
        && len < min
    {
        out.push(path, format!("{at_least} {min} {unit}"));
    }
    if let Some(max) = rules.max
        && len > max
    {
        out.push(path, format!("{at_most} {max} {unit}"));
    }
}

fn check_range<T: PartialOrd + Display + Copy>(
    rules: &Range<T>,
    n: T,
    path: &str,
    out: &mut Out<'_>,
) {
    if let Some(constant) = rules.constant
        && n != constant
    {
        out.push(path, format!("must equal {constant}"));
    }
    let above = |b: &Bound<T>| {
        if b.inclusive {
            n >= b.value
        } else {
            n > b.value
        }
    };
    let below = |b: &Bound<T>| {
        if b.inclusive {
            n <= b.value
        } else {
            n < b.value
        }
    };
    let says_lower = |b: &Bound<T>| {
        if b.inclusive {
            format!("greater than or equal to {}", b.value)
        } else {
            format!("greater than {}", b.value)
        }
    };
    let says_upper = |b: &Bound<T>| {
        if b.inclusive {
            format!("less than or equal to {}", b.value)
        } else {
            format!("less than {}", b.value)
        }
    };
    // What the value must be, when it is not.
    let broken = match (&rules.lower, &rules.upper) {
        (Some(lower), Some(upper)) if lower.value <= upper.value => {
            let within = above(lower) && below(upper);
            (!within).then(|| format!("{} and {}", says_lower(lower), says_upper(upper)))
        }
        // Crossed bounds exclude the span between them.
        (Some(lower), Some(upper)) => {
            let outside = above(lower) || below(upper);
            (!outside).then(|| format!("{} or {}", says_lower(lower), says_upper(upper)))
        }
        (Some(lower), None) => (!above(lower)).then(|| says_lower(lower)),
        (None, Some(upper)) => (!below(upper)).then(|| says_upper(upper)),
        (None, None) => None,
    };
    if let Some(must) = broken {
        out.push(path, format!("must be {must}"));
    }
    if !rules.one_of.is_empty() && !rules.one_of.contains(&n) {
        out.push(path, format!("must be in list {}", list(&rules.one_of)));
    }
    if rules.none_of.contains(&n) {
        out.push(
            path,
            format!("must not be in list {}", list(&rules.none_of)),
        );
    }
}

fn check_enum(field: &FieldDescriptor, rules: &EnumRules, n: i32, path: &str, out: &mut Out<'_>) {
    let Kind::Enum(desc) = field.kind() else {
        return;
    };
    // Values by name where the enum has them: `ROLE_UNSPECIFIED` says more than `0`.
    let name = |n: i32| {
        desc.get_value(n)
            .map_or_else(|| n.to_string(), |v| v.name().to_owned())
    };
    let names = |values: &[i32]| values.iter().map(|&v| name(v)).collect::<Vec<_>>();
    if let Some(constant) = rules.constant
        && n != constant
    {
        out.push(path, format!("must equal {}", name(constant)));
    }
    if rules.defined_only && desc.get_value(n).is_none() {
        out.push(path, "must be one of the defined enum values");
    }
    if !rules.one_of.is_empty() && !rules.one_of.contains(&n) {
        out.push(
            path,
            format!("must be in list {}", list(&names(&rules.one_of))),
        );
    }
    if rules.none_of.contains(&n) {
        out.push(
            path,
            format!("must not be in list {}", list(&names(&rules.none_of))),
        );
    }
}

fn check_repeated(
    validator: &Validator,
    field: &FieldDescriptor,
    rules: &RepeatedRules,
    items: &[Value],
    path: &str,
    out: &mut Vec<FieldViolation>,
) {
    let mut o = Out(out);
    check_length(&rules.items, items.len(), &ITEMS, path, &mut o);
    if rules.unique {
        let mut seen = HashSet::new();
        if !items.iter().all(|item| seen.insert(Unique::of(item))) {
            o.push(path, "repeated value must contain unique items");
        }
    }
    if let Some(each) = &rules.each {
        for (i, item) in items.iter().enumerate() {
            check_element(validator, field, each, item, &format!("{path}[{i}]"), out);
        }
    }
}

fn check_map(
    validator: &Validator,
    field: &FieldDescriptor,
    rules: &MapRules,
    entries: &std::collections::HashMap<MapKey, Value>,
    path: &str,
    out: &mut Vec<FieldViolation>,
) {
    check_length(&rules.pairs, entries.len(), &PAIRS, path, &mut Out(out));
    let Kind::Message(entry) = field.kind() else {
        return;
    };
    let (key_field, value_field) = (entry.map_entry_key_field(), entry.map_entry_value_field());
    for (key, value) in sorted(entries) {
        let at = keyed(path, key);
        if let Some(keys) = &rules.keys {
            let key = Value::from(key.clone());
            check_element(validator, &key_field, keys, &key, &at, out);
        }
        if let Some(values) = &rules.values {
            check_element(validator, &value_field, values, value, &at, out);
        }
    }
}

/// The rules of a list's elements or a map's keys or values on one of them.
fn check_element(
    validator: &Validator,
    field: &FieldDescriptor,
    rules: &FieldRules,
    value: &Value,
    path: &str,
    out: &mut Vec<FieldViolation>,
) {
    match rules.ignore {
        Ignore::Always => return,
        Ignore::IfZeroValue if value.is_default(&field.kind()) => return,
        _ => {}
    }
    if let Some(kind) = &rules.kind {
        check_value(validator, field, kind, value, path, out);
    }
}

/// `text` with every character outside printable ASCII written as `\u{...}`: a
/// pattern may list invisible characters (bidi overrides among them), which must not
/// reach a client's terminal as they are.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c.to_string()
            } else {
                format!("\\u{{{:x}}}", u32::from(c))
            }
        })
        .collect()
}

/// `[a, b, c]`.
fn list<T: Display>(values: &[T]) -> String {
    let items: Vec<String> = values.iter().map(ToString::to_string).collect();
    format!("[{}]", items.join(", "))
}

/// A scalar element as something hashable, for `unique`.
#[derive(PartialEq, Eq, Hash)]
enum Unique {
    Text(String),
    Bytes(Vec<u8>),
    Integer(i128),
    /// Floats by their bits: `unique` on floats is about identical values.
    Float(u64),
    Bool(bool),
    /// Messages are not compared.
    Other(usize),
}

impl Unique {
    fn of(value: &Value) -> Self {
        match value {
            Value::String(s) => Self::Text(s.clone()),
            Value::Bytes(b) => Self::Bytes(b.to_vec()),
            Value::Bool(b) => Self::Bool(*b),
            Value::EnumNumber(n) => Self::Integer(i128::from(*n)),
            Value::F32(f) => Self::Float(f64::from(*f).to_bits()),
            Value::F64(f) => Self::Float(f.to_bits()),
            other => as_integer(other).map_or_else(
                || Self::Other(std::ptr::from_ref(other) as usize),
                Self::Integer,
            ),
        }
    }
}
