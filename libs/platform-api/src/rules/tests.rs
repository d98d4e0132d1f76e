//! The evaluator against a test proto compiled at run time with the vendored
//! `validate.proto`, and against the platform's own protos.

use std::path::PathBuf;

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};

use super::Validator;

const TEST_PROTO: &str = r#"
syntax = "proto3";
package rules.test;
import "buf/validate/validate.proto";

enum Color {
  COLOR_UNSPECIFIED = 0;
  COLOR_RED = 1;
  COLOR_BLUE = 2;
}

message Line {
  string sku = 1 [(buf.validate.field).string = {min_len: 1, max_len: 4, pattern: "^[A-Z]+$"}];
  int32 quantity = 2 [(buf.validate.field).int32 = {gte: 1, lte: 10}];
}

message Order {
  repeated Line lines = 1 [(buf.validate.field).repeated = {min_items: 1, max_items: 2}];
  string email = 2 [(buf.validate.field).string.email = true];
  string id = 3 [(buf.validate.field).string.uuid = true, (buf.validate.field).ignore = IGNORE_IF_ZERO_VALUE];
  optional string note = 4 [(buf.validate.field).string.max_len = 3];
  Color color = 5 [(buf.validate.field).enum = {defined_only: true, not_in: [0]}];
  int64 outside = 6 [(buf.validate.field).int64 = {gt: 10, lt: 5}];
  Line main = 7 [(buf.validate.field).required = true];
  map<string, Line> by_name = 8 [(buf.validate.field).map = {max_pairs: 1, keys: {string: {min_len: 2}}}];
  repeated string tags = 9 [(buf.validate.field).repeated = {unique: true, items: {string: {min_len: 1}}}];
  oneof contact {
    option (buf.validate.oneof).required = true;
    string phone = 10;
    string fax = 11;
  }
  double ratio = 12 [(buf.validate.field).double = {finite: true, gte: 0}];
}

message Exotic {
  string host = 1 [(buf.validate.field).string.hostname = true];
  int32 n = 2 [(buf.validate.field).cel = {id: "even", expression: "this % 2 == 0"}];
  string wrong = 3 [(buf.validate.field).int32.gte = 1];
  Order order = 4;
}
"#;

fn pool() -> DescriptorPool {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("test.proto"), TEST_PROTO).unwrap();
    let vendor = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto/vendor");
    let mut compiler = protox::Compiler::new([dir.path(), vendor.as_path()]).unwrap();
    compiler.include_imports(true);
    compiler.open_file("test.proto").unwrap();
    DescriptorPool::decode(compiler.encode_file_descriptor_set().as_slice()).unwrap()
}

fn message(pool: &DescriptorPool, name: &str, json: &str) -> DynamicMessage {
    let desc: MessageDescriptor = pool.get_message_by_name(name).unwrap();
    let mut de = serde_json::Deserializer::from_str(json);
    DynamicMessage::deserialize(desc, &mut de).unwrap()
}

fn violations(json: &str) -> Vec<(String, String)> {
    let pool = pool();
    let validator = Validator::new(pool.clone());
    validator
        .violations(&message(&pool, "rules.test.Order", json))
        .into_iter()
        .map(|v| (v.field, v.description))
        .collect()
}

const VALID: &str = r#"{
  "lines": [{"sku": "AB", "quantity": 2}],
  "email": "ada@example.com",
  "color": "COLOR_RED",
  "outside": "11",
  "main": {"sku": "C", "quantity": 1},
  "phone": "123",
  "ratio": 0.5
}"#;

#[test]
fn a_valid_message_passes() {
    assert_eq!(violations(VALID), []);
}

#[test]
fn every_violation_is_named_by_its_path() {
    let found = violations(
        r#"{
          "lines": [{"sku": "AB", "quantity": 2}, {"sku": "toolong", "quantity": 0}, {"sku": "A", "quantity": 1}],
          "email": "not an email",
          "id": "nope",
          "note": "four",
          "color": "COLOR_UNSPECIFIED",
          "outside": "7",
          "main": {"sku": "", "quantity": 11},
          "byName": {"a": {"sku": "A", "quantity": 1}, "bb": {"sku": "B", "quantity": 99}},
          "tags": ["x", "", "x"],
          "ratio": "NaN"
        }"#,
    );
    let expected: &[(&str, &str)] = &[
        ("lines", "must contain no more than 2 item(s)"),
        ("lines[1].sku", "must be at most 4 characters"),
        ("lines[1].sku", "does not match regex pattern `^[A-Z]+$`"),
        (
            "lines[1].quantity",
            "must be greater than or equal to 1 and less than or equal to 10",
        ),
        ("email", "must be a valid email address"),
        ("id", "must be a valid UUID"),
        ("note", "must be at most 3 characters"),
        ("color", "must not be in list [COLOR_UNSPECIFIED]"),
        ("outside", "must be greater than 10 or less than 5"),
        ("main.sku", "must be at least 1 characters"),
        ("main.sku", "does not match regex pattern `^[A-Z]+$`"),
        (
            "main.quantity",
            "must be greater than or equal to 1 and less than or equal to 10",
        ),
        ("by_name", "map must be at most 1 entries"),
        ("by_name[\"a\"]", "must be at least 2 characters"),
        (
            "by_name[\"bb\"].quantity",
            "must be greater than or equal to 1 and less than or equal to 10",
        ),
        ("tags", "repeated value must contain unique items"),
        ("tags[1]", "must be at least 1 characters"),
        ("ratio", "must be finite"),
        ("ratio", "must be greater than or equal to 0"),
        // Oneofs after the fields.
        ("contact", "exactly one field is required in oneof"),
    ];
    let found: Vec<(&str, &str)> = found.iter().map(|(f, d)| (&f[..], &d[..])).collect();
    assert_eq!(found, expected);
}

#[test]
fn presence_decides_what_is_checked() {
    // An empty email is still checked (no presence); an empty id is ignored (told
    // so); an unset optional note and an unset required message differ.
    let found = violations(r#"{"lines": [], "color": 7, "outside": "11", "fax": "1", "ratio": 1}"#);
    let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(fields, ["lines", "email", "color", "main"]);
    assert_eq!(found[0].1, "must contain at least 1 item(s)");
    assert_eq!(
        found[1].1,
        "value is empty, which is not a valid email address"
    );
    assert_eq!(found[2].1, "must be one of the defined enum values");
    assert_eq!(found[3].1, "value is required");
}

#[test]
fn typed_and_dynamic_messages_fail_alike() {
    let pool = pool();
    let validator = Validator::new(pool.clone());
    let mut order = message(&pool, "rules.test.Order", VALID);
    assert!(validator.check_dynamic(&order).is_ok());
    order.set_field_by_name("email", prost_reflect::Value::String("x".into()));
    let err = validator.check_dynamic(&order).unwrap_err();
    let status = tonic::Status::from(err);
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status
            .message()
            .contains("email: must be a valid email address")
    );
}

#[test]
fn rules_it_cannot_check_are_listed_not_passed_silently() {
    let pool = pool();
    let validator = Validator::new(pool.clone());
    let exotic = pool.get_message_by_name("rules.test.Exotic").unwrap();
    let listed: Vec<String> = validator
        .unsupported(&exotic)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        listed,
        [
            "rules.test.Exotic.host: string.hostname",
            "rules.test.Exotic.n: cel (CEL)",
            "rules.test.Exotic.wrong: int32 (rules of another type than the field's)",
        ]
    );
    // What it can check on the same message still applies.
    let order = pool.get_message_by_name("rules.test.Order").unwrap();
    assert!(validator.unsupported(&order).is_empty());
}

#[test]
fn every_rule_of_the_platform_protos_is_checked() {
    let pool = platform_proto::descriptor_pool();
    let validator = Validator::new(pool.clone());
    let mut with_rules = 0;
    for message in pool.all_messages() {
        let listed = validator.unsupported(&message);
        assert!(listed.is_empty(), "{}: {listed:?}", message.full_name());
        if !validator.plan(&message).fields.is_empty() {
            with_rules += 1;
        }
    }
    assert!(with_rules > 5, "the platform protos declare rules");
}

#[test]
fn the_platform_rules_read_as_declared() {
    use platform_proto::orders::v1 as orders;
    use platform_proto::users::v1 as users;

    let validator = Validator::new(platform_proto::descriptor_pool().clone());
    let fields = |result: Result<(), super::CheckError>| -> Vec<String> {
        match result {
            Ok(()) => Vec::new(),
            Err(super::CheckError::Invalid(invalid)) => {
                let mut fields: Vec<String> = invalid.iter().map(|v| v.field.clone()).collect();
                fields.dedup();
                fields
            }
            Err(other) => panic!("{other}"),
        }
    };
    let sign_up = users::CreateUserRequest {
        email: "ada@example.com".into(),
        display_name: "  Ada Lovelace ".into(),
        password: "correct horse battery".into(),
    };
    assert_eq!(fields(validator.check(&sign_up)), Vec::<String>::new());
    for bad_name in [
        "",
        "   ",
        "ad\u{200b}a",
        "\u{202e}nimda",
        "bell\u{7}",
        &"é".repeat(101),
    ] {
        let request = users::CreateUserRequest {
            display_name: bad_name.to_owned(),
            ..sign_up.clone()
        };
        assert_eq!(
            fields(validator.check(&request)),
            ["display_name"],
            "{bad_name:?}"
        );
    }
    let order = orders::CreateOrderRequest {
        items: vec![
            orders::OrderItem {
                sku: "BOOK-1".into(),
                quantity: 2,
                unit_price_cents: 1250,
            },
            orders::OrderItem {
                sku: "has space".into(),
                quantity: 0,
                unit_price_cents: -1,
            },
        ],
        request_id: "k".repeat(129),
    };
    assert_eq!(
        fields(validator.check(&order)),
        [
            "items[1].sku",
            "items[1].quantity",
            "items[1].unit_price_cents",
            "request_id"
        ]
    );
    let listing = orders::ListOrdersRequest {
        page_size: -1,
        page_token: "garbage".into(),
        status: 9,
        user_id: String::new(),
    };
    assert_eq!(
        fields(validator.check(&listing)),
        ["page_size", "page_token", "status"]
    );
    let token = crate::encode_page_token(uuid::Uuid::now_v7());
    let listing = orders::ListOrdersRequest {
        page_size: 0,
        page_token: token,
        status: 1,
        user_id: uuid::Uuid::now_v7().to_string(),
    };
    assert_eq!(fields(validator.check(&listing)), Vec::<String>::new());
}

#[test]
fn a_pattern_is_quoted_in_printable_ascii() {
    use platform_proto::users::v1 as users;

    let validator = Validator::new(platform_proto::descriptor_pool().clone());
    let request = users::CreateUserRequest {
        email: "ada@example.com".into(),
        display_name: "ad\u{202e}a".into(),
        password: "correct horse battery".into(),
    };
    let Err(super::CheckError::Invalid(invalid)) = validator.check(&request) else {
        panic!("a bidi override in a display name is refused");
    };
    let description = &invalid.violations()[0].description;
    assert!(
        description.starts_with("does not match regex pattern `^"),
        "{description}"
    );
    assert!(description.contains("\\u{202a}-\\u{202e}"), "{description}");
    assert!(
        description
            .chars()
            .all(|c| c == ' ' || c.is_ascii_graphic()),
        "{description}"
    );
}
