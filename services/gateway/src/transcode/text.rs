//! Field values written as text, as path variables and query parameters carry them:
//! `123` for an int32, `true`, `ROLE_ADMIN` or `2` for an enum, base64 for bytes,
//! RFC 3339 for a Timestamp, the inner value for a wrapper type.
//!
//! The error side is what the field expects, phrased for the client
//! ("an integer", "one of ROLE_USER, ROLE_ADMIN").

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use prost_reflect::bytes::Bytes;
use prost_reflect::{
    DynamicMessage, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor, Value,
};

/// Clients pad or do not pad, and use either alphabet (the JSON mapping accepts both).
const PADDING_EITHER: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const BASE64_STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, PADDING_EITHER);
const BASE64_URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, PADDING_EITHER);

/// Parses one element of `field` (the element type for a repeated field).
pub(crate) fn parse(field: &FieldDescriptor, text: &str) -> Result<Value, String> {
    parse_kind(&field.kind(), text)
}

fn parse_kind(kind: &Kind, text: &str) -> Result<Value, String> {
    match kind {
        Kind::Double => parse_f64(text).map(Value::F64),
        Kind::Float => parse_f32(text).map(Value::F32),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            parse_int(text, i32::MIN.into(), i32::MAX.into()).map(|v| Value::I32(v as i32))
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            parse_int(text, i64::MIN.into(), i64::MAX.into()).map(|v| Value::I64(v as i64))
        }
        Kind::Uint32 | Kind::Fixed32 => {
            parse_int(text, 0, u32::MAX.into()).map(|v| Value::U32(v as u32))
        }
        Kind::Uint64 | Kind::Fixed64 => {
            parse_int(text, 0, u64::MAX.into()).map(|v| Value::U64(v as u64))
        }
        Kind::Bool => match text {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err("true or false".to_owned()),
        },
        Kind::String => Ok(Value::String(text.to_owned())),
        Kind::Bytes => BASE64_STANDARD
            .decode(text)
            .or_else(|_| BASE64_URL_SAFE.decode(text))
            .map(|bytes| Value::Bytes(Bytes::from(bytes)))
            .map_err(|_| "base64-encoded bytes".to_owned()),
        Kind::Enum(desc) => parse_enum(desc, text).map(Value::EnumNumber),
        Kind::Message(desc) => parse_message(desc, text).map(Value::Message),
    }
}

fn parse_f64(text: &str) -> Result<f64, String> {
    // The JSON mapping's spellings of the special values, then ordinary numbers. Rust
    // would also take "inf" and "nan"; harmless, and not worth refusing.
    match text {
        "Infinity" => Ok(f64::INFINITY),
        "-Infinity" => Ok(f64::NEG_INFINITY),
        _ => text.parse::<f64>().map_err(|_| "a number".to_owned()),
    }
}

fn parse_f32(text: &str) -> Result<f32, String> {
    let value = parse_f64(text)?;
    if value.is_finite() && value.abs() > f64::from(f32::MAX) {
        return Err("a number within the range of a 32-bit float".to_owned());
    }
    Ok(value as f32)
}

/// Parses an integer within `[min, max]`; i128 holds every proto integer type.
fn parse_int(text: &str, min: i128, max: i128) -> Result<i128, String> {
    let value = text.parse::<i128>().map_err(|_| {
        if min == 0 {
            "a non-negative integer".to_owned()
        } else {
            "an integer".to_owned()
        }
    })?;
    if value < min || value > max {
        return Err(format!("an integer between {min} and {max}"));
    }
    Ok(value)
}

fn parse_enum(desc: &EnumDescriptor, text: &str) -> Result<i32, String> {
    if let Some(value) = desc.get_value_by_name(text) {
        return Ok(value.number());
    }
    // By number too, as the JSON mapping allows; proto3 enums are open, so any i32.
    text.parse::<i32>().map_err(|_| {
        let names: Vec<String> = desc.values().map(|v| v.name().to_owned()).collect();
        format!("one of {}", names.join(", "))
    })
}

fn parse_message(desc: &MessageDescriptor, text: &str) -> Result<DynamicMessage, String> {
    match desc.full_name() {
        "google.protobuf.Timestamp" | "google.protobuf.Duration" | "google.protobuf.FieldMask" => {
            // Their JSON form is one string: let the JSON mapping's own parser read it.
            DynamicMessage::deserialize(desc.clone(), serde_json::Value::String(text.to_owned()))
                .map_err(|_| match desc.full_name() {
                    "google.protobuf.Timestamp" => {
                        "an RFC 3339 timestamp such as 2024-01-31T12:00:00Z".to_owned()
                    }
                    "google.protobuf.Duration" => "a duration such as 1.5s".to_owned(),
                    _ => "a comma-separated list of field paths".to_owned(),
                })
        }
        _ => {
            // A wrapper type (`google.protobuf.Int32Value`, ...): the inner `value`.
            let field = desc
                .get_field_by_name("value")
                .filter(|_| crate::fields::is_scalar_message(desc))
                .ok_or_else(|| format!("a {} (which has no text form)", desc.full_name()))?;
            let value = parse_kind(&field.kind(), text)?;
            let mut message = DynamicMessage::new(desc.clone());
            message
                .try_set_field(&field, value)
                .map_err(|e| format!("a {} ({e})", desc.full_name()))?;
            Ok(message)
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    /// Each text parsed as its kind, with the value or the expectation it failed.
    fn assert_parses(cases: &[(Kind, &str, Result<Value, &str>)]) {
        for (kind, text, expected) in cases {
            let expected = expected.clone().map_err(str::to_owned);
            assert_eq!(parse_kind(kind, text), expected, "{kind:?} {text:?}");
        }
    }

    #[test]
    fn integers() {
        assert_parses(&[
            (Kind::Int32, "-7", Ok(Value::I32(-7))),
            (Kind::Int32, "abc", Err("an integer")),
            (
                Kind::Int32,
                "2147483648",
                Err("an integer between -2147483648 and 2147483647"),
            ),
            (
                Kind::Int64,
                "9007199254740993",
                Ok(Value::I64(9_007_199_254_740_993)),
            ),
            (
                Kind::Uint32,
                "-1",
                Err("an integer between 0 and 4294967295"),
            ),
            (Kind::Uint64, "x", Err("a non-negative integer")),
            (
                Kind::Uint64,
                "18446744073709551615",
                Ok(Value::U64(u64::MAX)),
            ),
        ]);
    }

    #[test]
    fn floats_bools_bytes() {
        let hello = Value::Bytes(Bytes::from_static(b"hello?"));
        assert_parses(&[
            (Kind::Double, "1.5", Ok(Value::F64(1.5))),
            (Kind::Double, "-Infinity", Ok(Value::F64(f64::NEG_INFINITY))),
            (Kind::Double, "one", Err("a number")),
            (Kind::Bool, "true", Ok(Value::Bool(true))),
            (Kind::Bool, "yes", Err("true or false")),
            (Kind::Bytes, "aGVsbG8/", Ok(hello.clone())),
            (Kind::Bytes, "aGVsbG8_", Ok(hello)),
            (
                Kind::Bytes,
                "aGk",
                Ok(Value::Bytes(Bytes::from_static(b"hi"))),
            ),
        ]);
        assert!(parse_kind(&Kind::Float, "1e39").is_err());
        assert!(parse_kind(&Kind::Bytes, "!!").is_err());
    }
}
