//! The `buf.validate` rules of a field as JSON Schema keywords, so that a client (or a
//! fuzzer) generated from the document knows what the edge will refuse:
//!
//! - strings: `min_len`/`max_len`/`len` → `minLength`/`maxLength` (both count code
//!   points, as the rules do), `pattern` → `pattern`, `email` → `format: email`,
//!   `uuid` → `format: uuid`, `const`/`in` → `enum`;
//! - 32-bit integers and floats: `gt`/`gte`/`lt`/`lte` → `minimum`/`maximum` (with
//!   `exclusiveMinimum`/`exclusiveMaximum`), `const`/`in` → `enum`;
//! - 64-bit integers, strings in the JSON mapping: a `pattern` matching exactly the
//!   decimal numbers in range (the type's own range when no rule narrows it), since
//!   `minimum` does not apply to strings; the bounds are also said in words;
//! - enums: `defined_only` is what the `enum` list says already; `in`, `not_in`,
//!   `const` shorten that list;
//! - repeated fields: `min_items`/`max_items`/`unique` → `minItems`/`maxItems`/
//!   `uniqueItems`, and the element rules on `items`; maps: `min_pairs`/`max_pairs` →
//!   `minProperties`/`maxProperties`, value rules on `additionalProperties`.
//!
//! A field whose absence breaks a rule is `required` (see `Schemas::message_schema`).
//! A rule JSON Schema cannot say (byte lengths, crossed ranges, prefixes) is left to
//! the `400` the edge answers; a schema never promises more than the edge accepts.

use openapiv3::{
    AdditionalProperties, ReferenceOr, Schema, SchemaKind, StringType, Type,
    VariantOrUnknownOrEmpty,
};
use platform_api::rules::plan::{
    self, Bound, EnumRules, FieldRules, Format, KindRules, LengthRules, Range, StringRules,
};
use prost_reflect::{FieldDescriptor, Kind};

use super::schemas::SchemaOrRef;

/// `schema`, the schema of `field`'s whole value, with the field's rules applied.
pub(super) fn constrain(schema: SchemaOrRef, field: &FieldDescriptor) -> SchemaOrRef {
    let rules = plan::declared(field);
    apply(schema, field, &rules)
}

/// `schema`, the schema of one value of `field` (a path or query parameter's element),
/// with the rules of the field's elements: the field's own for a singular field, its
/// `repeated.items` rules for a list.
pub(super) fn constrain_element(schema: SchemaOrRef, field: &FieldDescriptor) -> SchemaOrRef {
    let rules = plan::declared(field);
    if !field.is_list() {
        return apply(schema, field, &rules);
    }
    match &rules.kind {
        Some(KindRules::Repeated(repeated)) => match &repeated.each {
            Some(each) => apply(schema, field, each),
            None => schema,
        },
        _ => schema,
    }
}

fn apply(schema: SchemaOrRef, field: &FieldDescriptor, rules: &FieldRules) -> SchemaOrRef {
    let ReferenceOr::Item(mut schema) = schema else {
        // A message type: its own schema carries its rules.
        return schema;
    };
    let SchemaKind::Type(ty) = &mut schema.schema_kind else {
        return ReferenceOr::Item(schema);
    };
    let mut notes = Vec::new();
    match (ty, &rules.kind) {
        (Type::String(string), kind) if is_64_bit(field) => {
            let range = match kind {
                Some(KindRules::Integer(range)) => Some(range),
                _ => None,
            };
            int64_string(string, &field.kind(), range, &mut notes);
        }
        (Type::String(string), Some(KindRules::String(rules))) => string_rules(string, rules),
        (Type::String(string), Some(KindRules::Enum(rules))) => {
            enum_rules(string, field, rules);
        }
        (Type::Integer(integer), Some(KindRules::Integer(range))) => {
            let as_i64 = |b: &Bound<i128>| i64::try_from(b.value).ok();
            if let Some(lower) = &range.lower
                && range.upper.as_ref().is_none_or(|u| lower.value <= u.value)
                && let Some(value) = as_i64(lower)
            {
                integer.minimum = Some(value);
                integer.exclusive_minimum = !lower.inclusive;
            }
            if let Some(upper) = &range.upper
                && range.lower.as_ref().is_none_or(|l| l.value <= upper.value)
                && let Some(value) = as_i64(upper)
            {
                integer.maximum = Some(value);
                integer.exclusive_maximum = !upper.inclusive;
            }
            let listed = listed(range);
            if !listed.is_empty() {
                integer.enumeration = listed
                    .into_iter()
                    .filter_map(|n| i64::try_from(n).ok())
                    .map(Some)
                    .collect();
            }
        }
        (Type::Number(number), Some(KindRules::Float(range))) => {
            if let Some(lower) = &range.lower
                && range.upper.as_ref().is_none_or(|u| lower.value <= u.value)
            {
                number.minimum = Some(lower.value);
                number.exclusive_minimum = !lower.inclusive;
            }
            if let Some(upper) = &range.upper
                && range.lower.as_ref().is_none_or(|l| l.value <= upper.value)
            {
                number.maximum = Some(upper.value);
                number.exclusive_maximum = !upper.inclusive;
            }
            let listed = listed(range);
            if !listed.is_empty() {
                number.enumeration = listed.into_iter().map(Some).collect();
            }
        }
        (Type::Array(array), Some(KindRules::Repeated(rules))) => {
            lengths(&rules.items, &mut array.min_items, &mut array.max_items);
            array.unique_items = rules.unique;
            if let Some(each) = &rules.each
                && let Some(items) = array.items.take()
            {
                array.items = Some(boxed(apply(unboxed(items), field, each)));
            }
        }
        (Type::Object(object), Some(KindRules::Map(rules))) => {
            lengths(
                &rules.pairs,
                &mut object.min_properties,
                &mut object.max_properties,
            );
            if let Some(values) = &rules.values
                && let Kind::Message(entry) = field.kind()
                && let Some(AdditionalProperties::Schema(schema)) =
                    &mut object.additional_properties
            {
                let value_field = entry.map_entry_value_field();
                let taken = std::mem::replace(
                    schema.as_mut(),
                    ReferenceOr::Item(Schema {
                        schema_data: Default::default(),
                        schema_kind: SchemaKind::Any(Default::default()),
                    }),
                );
                **schema = apply(taken, &value_field, values);
            }
        }
        _ => {}
    }
    if !notes.is_empty() {
        let said = notes.join(" ");
        schema.schema_data.description = Some(match schema.schema_data.description.take() {
            Some(text) => format!("{text}\n\n{said}"),
            None => said,
        });
    }
    ReferenceOr::Item(schema)
}

fn boxed(schema: SchemaOrRef) -> ReferenceOr<Box<Schema>> {
    match schema {
        ReferenceOr::Reference { reference } => ReferenceOr::Reference { reference },
        ReferenceOr::Item(schema) => ReferenceOr::Item(Box::new(schema)),
    }
}

fn unboxed(schema: ReferenceOr<Box<Schema>>) -> SchemaOrRef {
    match schema {
        ReferenceOr::Reference { reference } => ReferenceOr::Reference { reference },
        ReferenceOr::Item(schema) => ReferenceOr::Item(*schema),
    }
}

fn lengths(rules: &LengthRules, min: &mut Option<usize>, max: &mut Option<usize>) {
    let size = |n: u64| usize::try_from(n).ok();
    if let Some(exact) = rules.exact {
        *min = size(exact);
        *max = size(exact);
    }
    if let Some(n) = rules.min {
        *min = size(n);
    }
    if let Some(n) = rules.max {
        *max = size(n);
    }
}

/// `const` as the one value, else `in` minus `not_in`; empty when neither is set.
fn listed<T: PartialEq + Copy>(range: &Range<T>) -> Vec<T> {
    if let Some(constant) = range.constant {
        return vec![constant];
    }
    range
        .one_of
        .iter()
        .copied()
        .filter(|n| !range.none_of.contains(n))
        .collect()
}

fn string_rules(string: &mut StringType, rules: &StringRules) {
    let mut min = None;
    let mut max = None;
    lengths(&rules.chars, &mut min, &mut max);
    string.min_length = min.or(string.min_length);
    string.max_length = max.or(string.max_length);
    if let Some(pattern) = &rules.pattern {
        string.pattern = Some(pattern.as_str().to_owned());
    }
    match rules.format {
        Some(Format::Email) => string.format = VariantOrUnknownOrEmpty::Unknown("email".into()),
        Some(Format::Uuid) => string.format = VariantOrUnknownOrEmpty::Unknown("uuid".into()),
        None => {}
    }
    if let Some(constant) = &rules.constant {
        string.enumeration = vec![Some(constant.clone())];
    } else if !rules.one_of.is_empty() {
        string.enumeration = rules
            .one_of
            .iter()
            .filter(|v| !rules.none_of.contains(v))
            .map(|v| Some(v.clone()))
            .collect();
    }
}

/// Shortens the list of value names to what `in`, `not_in` and `const` allow.
fn enum_rules(string: &mut StringType, field: &FieldDescriptor, rules: &EnumRules) {
    let Kind::Enum(desc) = field.kind() else {
        return;
    };
    let allowed = |number: i32| {
        rules.constant.is_none_or(|c| c == number)
            && (rules.one_of.is_empty() || rules.one_of.contains(&number))
            && !rules.none_of.contains(&number)
    };
    string.enumeration = desc
        .values()
        .filter(|v| allowed(v.number()))
        .map(|v| Some(v.name().to_owned()))
        .collect();
}

fn is_64_bit(field: &FieldDescriptor) -> bool {
    matches!(
        field.kind(),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64
    )
}

/// A 64-bit integer written as a string: a pattern of exactly the decimal numbers
/// between its bounds (the rules', else its type's), and the bounds in words.
fn int64_string(
    string: &mut StringType,
    kind: &Kind,
    range: Option<&Range<i128>>,
    notes: &mut Vec<String>,
) {
    let (type_min, type_max) = match kind {
        Kind::Uint64 | Kind::Fixed64 => (0, i128::from(u64::MAX)),
        _ => (i128::from(i64::MIN), i128::from(i64::MAX)),
    };
    let mut lo = type_min;
    let mut hi = type_max;
    if let Some(range) = range {
        let crossed =
            matches!((&range.lower, &range.upper), (Some(l), Some(u)) if l.value > u.value);
        if !crossed {
            if let Some(lower) = &range.lower {
                lo = lo.max(lower.value + i128::from(!lower.inclusive));
            }
            if let Some(upper) = &range.upper {
                hi = hi.min(upper.value - i128::from(!upper.inclusive));
            }
        }
        let listed = listed(range);
        if !listed.is_empty() {
            string.enumeration = listed.iter().map(|n| Some(n.to_string())).collect();
        }
        if (lo, hi) != (type_min, type_max) && lo <= hi {
            notes.push(format!("A decimal integer from {lo} to {hi}."));
        }
    }
    if lo <= hi {
        string.pattern = Some(integer_pattern(lo, hi));
    }
}

/// `^(...)$` matching exactly the decimal integers from `lo` to `hi` (`lo <= hi`),
/// without leading zeros, `-` before negative ones.
pub(super) fn integer_pattern(lo: i128, hi: i128) -> String {
    let mut alternatives = Vec::new();
    if lo < 0 {
        // Magnitudes of the negative part, `-0` aside.
        let from = if hi < 0 { hi.unsigned_abs() } else { 1 };
        let to = lo.unsigned_abs();
        alternatives.push(format!("-(?:{})", unsigned_range(from, to).join("|")));
    }
    if hi >= 0 {
        let from = u128::try_from(lo.max(0)).unwrap_or(0);
        let to = hi.unsigned_abs();
        alternatives.extend(unsigned_range(from, to));
    }
    format!("^(?:{})$", alternatives.join("|"))
}

/// Alternatives matching exactly the numbers from `lo` to `hi` (`lo <= hi`), each
/// without leading zeros.
fn unsigned_range(lo: u128, hi: u128) -> Vec<String> {
    let mut out = Vec::new();
    // Runs of every number of some digit counts (`10`-`99999`) are one alternative:
    // `[1-9][0-9]{1,4}`.
    let mut whole: Option<(usize, usize, usize)> = None;
    let mut start = lo;
    // Split into runs of one digit count: 0-9, 10-99, 100-999...
    while start <= hi {
        let digits = start.to_string().len();
        let top = 10u128
            .checked_pow(u32::try_from(digits).unwrap_or(u32::MAX))
            .map_or(u128::MAX, |p| p - 1);
        let end = top.min(hi);
        let floor = 10u128.pow(u32::try_from(digits - 1).unwrap_or(0));
        if digits > 1 && start == floor && end == top {
            // Where it goes among the others, and the digit counts it covers.
            whole = Some(whole.map_or((out.len(), digits, digits), |(at, from, _)| {
                (at, from, digits)
            }));
        } else {
            out.extend(same_width(&start.to_string(), &end.to_string()));
        }
        match end.checked_add(1) {
            Some(next) => start = next,
            None => break,
        }
    }
    if let Some((at, from, to)) = whole {
        let (from, to) = (from - 1, to - 1);
        let count = if from == to {
            format!("{{{from}}}")
        } else {
            format!("{{{from},{to}}}")
        };
        out.insert(at, format!("[1-9][0-9]{count}"));
    }
    out
}

/// Alternatives for the numbers from `a` to `b`, both of the same number of digits.
fn same_width(a: &str, b: &str) -> Vec<String> {
    if a == b {
        return vec![a.to_owned()];
    }
    let (a0, a_rest) = a.split_at(1);
    let (b0, b_rest) = b.split_at(1);
    if a_rest.is_empty() {
        return vec![class(digit(a0), digit(b0))];
    }
    let width = a_rest.len();
    // Whole blocks: `300`-`599` is `[3-5][0-9]{2}`. Without this the alternatives
    // would double with every digit.
    if a_rest.bytes().all(|c| c == b'0') && b_rest.bytes().all(|c| c == b'9') {
        return vec![format!("{}[0-9]{{{width}}}", class(digit(a0), digit(b0)))];
    }
    if a0 == b0 {
        let inner = same_width(a_rest, b_rest);
        return vec![format!("{a0}(?:{})", inner.join("|"))];
    }
    let nines = "9".repeat(width);
    let zeros = "0".repeat(width);
    let mut out = Vec::new();
    // From a up to the end of its first digit, whole first digits between, then up
    // to b.
    let low = same_width(a_rest, &nines);
    out.push(format!("{a0}(?:{})", low.join("|")));
    let (d_a, d_b) = (digit(a0) + 1, digit(b0).saturating_sub(1));
    if d_a <= d_b {
        out.push(format!("{}[0-9]{{{width}}}", class(d_a, d_b)));
    }
    let high = same_width(&zeros, b_rest);
    out.push(format!("{b0}(?:{})", high.join("|")));
    out
}

/// One digit from `a` to `b`: `7`, or `[3-5]`.
fn class(a: u8, b: u8) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("[{a}-{b}]")
    }
}

fn digit(text: &str) -> u8 {
    text.bytes().next().map_or(0, |b| b.saturating_sub(b'0'))
}

#[cfg(test)]
mod tests {
    use regex::Regex;

    use super::*;

    fn matches(lo: i128, hi: i128, probe: i128) -> bool {
        let pattern = integer_pattern(lo, hi);
        Regex::new(&pattern).unwrap().is_match(&probe.to_string())
    }

    #[test]
    fn integer_patterns_match_exactly_their_range() {
        for (lo, hi) in [
            (0, 10_000_000_000),
            (1, 1000),
            (-40, 7),
            (-1000, -13),
            (5, 5),
            (0, 0),
            (37, 4321),
        ] {
            for probe in (lo - 150)..=(lo + 150) {
                assert_eq!(
                    matches(lo, hi, probe),
                    (lo..=hi).contains(&probe),
                    "{lo}..={hi}: {probe}"
                );
            }
            for probe in (hi - 150)..=(hi + 150) {
                assert_eq!(
                    matches(lo, hi, probe),
                    (lo..=hi).contains(&probe),
                    "{lo}..={hi}: {probe}"
                );
            }
        }
        let full = integer_pattern(i128::from(i64::MIN), i128::from(i64::MAX));
        let full = Regex::new(&full).unwrap();
        assert!(full.is_match("9223372036854775807"));
        assert!(!full.is_match("9223372036854775808"));
        assert!(full.is_match("-9223372036854775808"));
        assert!(!full.is_match("-9223372036854775809"));
        assert!(!full.is_match("007"));
        assert!(!full.is_match("1.5"));
    }
}
