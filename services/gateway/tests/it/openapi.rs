//! The OpenAPI document: over the real APIs (`users.v1`, `orders.v1`) as a client sees
//! them, and over the test `routing.v1.LibraryService` for the template features the
//! real APIs do not use, and over the `edge.v1` test protos for well-known types,
//! recursion and validation rules. The documents are also written to `CARGO_TARGET_TMPDIR` so
//! that an external validator can check them:
//! `openapi-spec-validator target/tmp/openapi.json` (pip package
//! `openapi-spec-validator`, in a virtualenv).

use crate::common;

use gateway::openapi::{self, ApiInfo};
use gateway::routing::{Route, RouteTable};
use prost_reflect::MethodDescriptor;
use serde_json::{Value, json};

const PUBLIC: [&str; 5] = [
    "users.v1.UserService.CreateUser",
    "users.v1.UserService.CreateToken",
    "users.v1.UserService.RefreshToken",
    "users.v1.UserService.RevokeToken",
    "users.v1.UserService.GetJwks",
];

fn info() -> ApiInfo {
    ApiInfo {
        title: "Platform API".to_owned(),
        version: "1.0.0".to_owned(),
        description: Some("The HTTP/JSON edge.".to_owned()),
    }
}

fn is_public(method: &MethodDescriptor) -> bool {
    PUBLIC.contains(&method.full_name())
}

fn platform() -> (RouteTable, Value) {
    let table = common::platform();
    let doc = openapi::document(&table, &info(), &is_public);
    (table, doc)
}

fn library() -> (RouteTable, Value) {
    let table = common::library();
    let doc = openapi::document(&table, &info(), &|_| false);
    (table, doc)
}

/// The document's path for a template, written independently of the generator:
/// `{name=shelves/*}` → `{name}`.
fn expected_path(template: &str) -> String {
    let mut out = String::new();
    let mut in_variable = false;
    let mut skipping = false;
    for c in template.chars() {
        match c {
            '{' => in_variable = true,
            '}' => {
                in_variable = false;
                skipping = false;
            }
            '=' if in_variable => skipping = true,
            _ => {}
        }
        if !skipping || c == '}' {
            out.push(c);
        }
    }
    out
}

fn operation<'a>(doc: &'a Value, path: &str, method: &str) -> &'a Value {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "no {method} {path} in {:#}", doc["paths"]);
    op
}

fn parameter<'a>(op: &'a Value, name: &str) -> &'a Value {
    op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no parameter {name} in {:#}", op["parameters"]))
}

fn parameter_names(op: &Value, location: &str) -> Vec<String> {
    op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == location)
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The `description` of an object of the document, which must have one.
fn description(object: &Value) -> &str {
    object["description"]
        .as_str()
        .unwrap_or_else(|| panic!("no description in {object:#}"))
}

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let schema = &doc["components"]["schemas"][name];
    assert!(schema.is_object(), "no schema {name}");
    schema
}

fn body_schema(op: &Value) -> &Value {
    &op["requestBody"]["content"]["application/json"]["schema"]
}

/// `requestBody.required`, which OpenAPI reads as `false` when it is left out (and
/// the typed model leaves out).
fn body_required(op: &Value) -> bool {
    let body = &op["requestBody"];
    assert!(body.is_object(), "no requestBody in {op:#}");
    match &body["required"] {
        Value::Null => false,
        required => required
            .as_bool()
            .expect("requestBody.required is a boolean"),
    }
}

fn ok_schema(op: &Value) -> &Value {
    &op["responses"]["200"]["content"]["application/json"]["schema"]
}

fn operation_id(route: &Route) -> String {
    let method = route.method();
    let base = format!("{}_{}", method.parent_service().name(), method.name());
    match route.binding_index() {
        0 => base,
        n => format!("{base}_{n}"),
    }
}

/// Every operation of the document: the standard slots and `x-additionalOperations`.
fn operations(doc: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for (key, value) in item.as_object().unwrap() {
            if key == "x-additionalOperations" {
                all.extend(value.as_object().unwrap().values());
            } else {
                all.push(value);
            }
        }
    }
    all
}

fn collect_refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(target)) => out.push(target),
                    _ => collect_refs(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

fn assert_refs_resolve(doc: &Value) {
    let mut refs = Vec::new();
    collect_refs(doc, &mut refs);
    assert!(!refs.is_empty());
    for target in refs {
        let name = target
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{target} does not point into components.schemas"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{target} does not resolve"
        );
    }
}

fn write(doc: &Value, file: &str) {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(file);
    std::fs::write(&path, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
}

#[test]
fn header_and_security_scheme() {
    let (_, doc) = platform();
    write(&doc, "openapi.json");
    assert_eq!(doc["openapi"], "3.0.3");
    assert_eq!(
        doc["info"],
        json!({"title": "Platform API", "version": "1.0.0", "description": "The HTTP/JSON edge."})
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["type"],
        "http"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["bearerFormat"],
        "JWT"
    );
    assert_eq!(
        common::each(&doc["tags"], "name"),
        ["UserService", "OrderService"]
    );
    assert!(description(&doc["tags"][1]).starts_with("The orders of signed-in users."));
}

#[test]
fn json_is_the_typed_model() {
    let table = common::platform();
    let typed = openapi::spec(&table, &info(), &is_public);
    let (_, doc) = platform();
    // The JSON reads back as an OpenAPI 3.0 document, and as the same one.
    let parsed: openapiv3::OpenAPI = serde_json::from_value(doc).unwrap();
    assert_eq!(parsed, typed);
    assert_eq!(parsed.operations().count(), table.routes().count());
}

#[test]
fn every_route_is_an_operation() {
    let (table, doc) = platform();
    let mut count = 0;
    for route in table.routes() {
        let path = expected_path(route.template().as_str());
        let method = route.http_method().as_str().to_ascii_lowercase();
        let op = operation(&doc, &path, &method);
        assert_eq!(op["operationId"], operation_id(route), "{method} {path}");
        assert_eq!(op["tags"], json!([route.method().parent_service().name()]));
        count += 1;
    }
    assert_eq!(count, 14);
    assert_eq!(
        operations(&doc).len(),
        count,
        "no operation without a route"
    );
}

#[test]
fn cancel_has_a_required_path_parameter() {
    let (_, doc) = platform();
    let op = operation(&doc, "/v1/orders/{id}:cancel", "post");
    let id = parameter(op, "id");
    assert_eq!(id["in"], "path");
    assert_eq!(id["required"], true);
    assert_eq!(id["schema"]["type"], "string");
    assert_eq!(id["description"], "The order's id.");
    // `body: "*"` with `id` from the path: the body is what is left, all optional.
    assert!(!body_required(op));
    assert_eq!(body_schema(op)["type"], "object");
    assert!(body_schema(op).get("properties").is_none());
    assert_eq!(parameter_names(op, "query"), Vec::<String>::new());
}

#[test]
fn list_orders_query_parameters() {
    let (_, doc) = platform();
    let op = operation(&doc, "/v1/orders", "get");
    // Proto field names, as grpc-gateway documents them (the transcoder takes both).
    assert_eq!(
        parameter_names(op, "query"),
        ["page_size", "page_token", "status", "user_id"]
    );
    assert_eq!(parameter_names(op, "path"), Vec::<String>::new());
    let page_size = parameter(op, "page_size");
    assert_eq!(
        page_size["schema"],
        json!({"type": "integer", "format": "int32", "minimum": 0})
    );
    assert!(description(page_size).contains("50 when unset"));
    assert!(page_size.get("required").is_none());
    let status = parameter(op, "status");
    assert_eq!(status["schema"]["type"], "string");
    let values = status["schema"]["enum"].as_array().unwrap();
    assert!(values.contains(&json!("ORDER_STATUS_PENDING")));
    assert!(values.contains(&json!("ORDER_STATUS_CANCELLED")));
    assert_eq!(parameter(op, "user_id")["schema"]["type"], "string");
    assert_eq!(parameter(op, "page_token")["in"], "query");
    assert!(op.get("requestBody").is_none());
    assert_eq!(
        ok_schema(op)["$ref"],
        "#/components/schemas/orders.v1.ListOrdersResponse"
    );
}

#[test]
fn bodies() {
    let (_, doc) = platform();
    let create = operation(&doc, "/v1/users", "post");
    assert_eq!(
        body_schema(create)["$ref"],
        "#/components/schemas/users.v1.CreateUserRequest"
    );
    assert!(body_required(create));
    assert!(create.get("parameters").is_none(), "body * leaves no query");
    let request = schema(&doc, "users.v1.CreateUserRequest");
    assert_eq!(
        request["required"],
        json!(["email", "displayName", "password"])
    );
    assert_eq!(request["properties"]["password"]["writeOnly"], true);

    // PATCH with `{id}` in the path: the body has the rest, `id` is not in it.
    let update = operation(&doc, "/v1/users/{id}", "patch");
    let body = body_schema(update);
    let properties = body["properties"].as_object().unwrap();
    let mut names: Vec<&str> = properties.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["currentPassword", "displayName", "password", "role"]
    );
    assert!(!body_required(update));

    let delete = operation(&doc, "/v1/users/{id}", "delete");
    assert_eq!(ok_schema(delete), &json!({"type": "object"}));
    assert!(delete.get("requestBody").is_none());
}

#[test]
fn security_follows_is_public() {
    let (_, doc) = platform();
    for (path, method) in [
        ("/v1/users", "post"),
        ("/v1/auth/token", "post"),
        ("/v1/auth/jwks", "get"),
    ] {
        let op = operation(&doc, path, method);
        assert!(op.get("security").is_none(), "{method} {path} is public");
        assert!(op["responses"].get("401").is_none());
    }
    for (path, method) in [
        ("/v1/users/{id}", "get"),
        ("/v1/users", "get"),
        ("/v1/orders", "post"),
        ("/v1/orders/{id}:cancel", "post"),
    ] {
        let op = operation(&doc, path, method);
        assert_eq!(op["security"], json!([{"bearer": []}]), "{method} {path}");
        assert_eq!(
            op["responses"]["401"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/google.rpc.Status"
        );
    }
    for op in operations(&doc) {
        assert_eq!(
            op["responses"]["default"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/google.rpc.Status"
        );
    }
}

#[test]
fn message_schemas_follow_the_json_mapping() {
    let (_, doc) = platform();
    let user = schema(&doc, "users.v1.User");
    assert_eq!(user["type"], "object");
    let properties = &user["properties"];
    assert_eq!(properties["displayName"]["type"], "string");
    assert!(properties.get("display_name").is_none());
    assert_eq!(properties["createTime"]["type"], "string");
    assert_eq!(properties["createTime"]["format"], "date-time");
    assert_eq!(properties["createTime"]["readOnly"], true);
    assert_eq!(properties["id"]["readOnly"], true);
    assert_eq!(properties["id"]["description"], "The account's id, a UUID.");
    assert!(properties["email"].get("readOnly").is_none());
    let roles = properties["role"]["enum"].as_array().unwrap();
    assert_eq!(
        roles,
        &[
            json!("ROLE_UNSPECIFIED"),
            json!("ROLE_USER"),
            json!("ROLE_ADMIN")
        ]
    );
    // The field's comment, then the values' comments; enums are by name.
    let role = description(&properties["role"]);
    assert!(
        role.starts_with("What the account may do.\n\n- `ROLE_UNSPECIFIED`: "),
        "{role}"
    );
    assert!(role.contains("- `ROLE_ADMIN`: An operator account"));
    assert_eq!(properties["role"]["type"], "string");
    assert!(description(user).starts_with("An account."));

    let order = schema(&doc, "orders.v1.Order");
    assert_eq!(
        order["properties"]["totalCents"]["type"], "string",
        "int64 is a string in JSON"
    );
    assert_eq!(order["properties"]["totalCents"]["format"], "int64");
    assert_eq!(order["properties"]["items"]["type"], "array");
    assert_eq!(
        order["properties"]["items"]["items"]["$ref"],
        "#/components/schemas/orders.v1.OrderItem"
    );
    let item = schema(&doc, "orders.v1.OrderItem");
    assert_eq!(item["properties"]["quantity"]["format"], "int32");
    assert_eq!(item["properties"]["unitPriceCents"]["type"], "string");
    // A price of 0 is valid, and written without its key: not a required key.
    assert_eq!(item["required"], json!(["sku", "quantity"]));
    assert_eq!(
        item["additionalProperties"], false,
        "unknown keys are refused"
    );
    // Prices have bounds: exactly the numbers from 0 to 10^10 in the string.
    let price = &item["properties"]["unitPriceCents"];
    assert_eq!(price["pattern"], "^(?:[0-9]|[1-9][0-9]{1,9}|10000000000)$");
    let token = schema(&doc, "users.v1.CreateTokenResponse");
    let expires = &token["properties"]["expiresIn"];
    assert_eq!(
        (
            &expires["type"],
            &expires["format"],
            &expires["description"]
        ),
        (
            &json!("string"),
            &json!("int64"),
            &json!("Seconds until the access token expires.")
        )
    );
    // Any int64: the decimal numbers of its range, and nothing else.
    let any = regex::Regex::new(expires["pattern"].as_str().unwrap()).unwrap();
    for ok in [
        "0",
        "-1",
        "300",
        "9223372036854775807",
        "-9223372036854775808",
    ] {
        assert!(any.is_match(ok), "{ok}");
    }
    for bad in [
        "",
        "01",
        "1e3",
        " 1",
        "9223372036854775808",
        "-9223372036854775809",
    ] {
        assert!(!any.is_match(bad), "{bad}");
    }
}

#[test]
fn comments_become_descriptions() {
    let (_, doc) = platform();
    let op = operation(&doc, "/v1/orders", "post");
    assert_eq!(op["summary"], "Places an order for the caller.");
    assert!(
        description(op).contains("Places an order for the caller"),
        "{op:#}"
    );
    let get = operation(&doc, "/v1/users/{id}", "get");
    assert_eq!(
        get["summary"],
        "Returns one account: the caller's own, or any account for an admin."
    );
}

#[test]
fn status_and_references() {
    let (_, doc) = platform();
    let status = schema(&doc, "google.rpc.Status");
    assert_eq!(status["properties"]["code"]["format"], "int32");
    assert_eq!(status["properties"]["message"]["type"], "string");
    assert_eq!(
        status["properties"]["details"]["items"]["$ref"],
        "#/components/schemas/google.protobuf.Any"
    );
    assert_eq!(
        schema(&doc, "google.protobuf.Any")["properties"]["@type"]["type"],
        "string"
    );
    // Well-known types are inlined, not components.
    assert!(doc["components"]["schemas"]["google.protobuf.Timestamp"].is_null());
    assert!(doc["components"]["schemas"]["google.protobuf.Empty"].is_null());
    assert_refs_resolve(&doc);
}

#[test]
fn library_template_features() {
    let (table, doc) = library();
    write(&doc, "openapi-library.json");
    assert_refs_resolve(&doc);
    assert_eq!(operations(&doc).len(), table.routes().count());

    // A variable with its own segments: `{name}`, with a pattern.
    let get_book = operation(&doc, "/v1/{name}", "get");
    let name = parameter(get_book, "name");
    assert_eq!(name["schema"]["pattern"], "^shelves/[^/]+/books/[^/]+$");
    assert!(description(name).contains("not percent-encoded"));
    let get_file = operation(&doc, "/v1/files/{path}", "get");
    assert_eq!(parameter(get_file, "path")["schema"]["pattern"], "^.*$");

    // `*` outside a variable.
    let latest = operation(&doc, "/v1/authors/{wildcard-1}/latest", "get");
    assert_eq!(parameter(latest, "wildcard-1")["required"], true);
    assert_eq!(parameter_names(latest, "query"), Vec::<String>::new());

    // A nested variable with `body: "book"`: the body is a Book, the query the rest.
    let update = operation(&doc, "/v1/{book.name}", "patch");
    assert_eq!(
        body_schema(update)["$ref"],
        "#/components/schemas/routing.v1.Book"
    );
    assert_eq!(parameter_names(update, "query"), ["update_mask"]);

    // Additional bindings get `_N`; without a body, the nested fields are queries.
    let put = operation(&doc, "/v1/shelves/{shelf}/books/{book.name}", "put");
    assert_eq!(put["operationId"], "LibraryService_CreateBook_2");
    assert_eq!(
        parameter_names(put, "query"),
        [
            "book.title",
            "book.genre",
            "book.page_count",
            "book.publish_time",
            "book.author.display_name",
            "book.in_stock",
            "request_id"
        ]
    );
    assert_eq!(
        operation(&doc, "/v1/books", "post")["operationId"],
        "LibraryService_CreateBook_1"
    );

    // Everything from the query: repeated as exploded arrays, no maps, no repeated
    // messages, nested singular messages by dotted names.
    let search = operation(&doc, "/v1/books:search", "get");
    assert_eq!(
        parameter_names(search, "query"),
        [
            "query",
            "page_size",
            "min_pages",
            "in_stock",
            "max_price",
            "tags",
            "genres",
            "genre",
            "filter.author.display_name",
            "filter.published_after",
            "filter.language_code",
            "filter.max_age",
            "min_rating",
            "cursor",
            "ids"
        ]
    );
    let genres = parameter(search, "genres");
    assert_eq!(genres["explode"], true);
    assert_eq!(genres["schema"]["type"], "array");
    assert_eq!(genres["schema"]["items"]["enum"][1], "GENRE_FICTION");
    assert_eq!(
        parameter(search, "ids")["schema"]["items"],
        json!({"type": "string", "format": "int64"})
    );
    assert_eq!(
        parameter(search, "filter.published_after")["schema"]["format"],
        "date-time"
    );
    assert_eq!(
        parameter(search, "min_rating")["schema"],
        json!({"type": "integer", "format": "int32", "nullable": true})
    );
    assert_eq!(parameter(search, "cursor")["schema"]["format"], "byte");

    // Typed path variables.
    let typed = operation(
        &doc,
        "/v1/typed/{count}/{big}/{flag}/{genre}/{ratio}/{rating}/{blob}",
        "get",
    );
    assert_eq!(parameter(typed, "big")["schema"]["format"], "int64");
    assert_eq!(parameter(typed, "flag")["schema"]["type"], "boolean");
    assert_eq!(parameter(typed, "ratio")["schema"]["type"], "number");
    assert_eq!(parameter(typed, "rating")["schema"]["nullable"], true);

    // `response_body` and `body: "tags"`.
    let list = operation(&doc, "/v1/shelves/{shelf}/books", "get");
    assert_eq!(ok_schema(list)["type"], "array");
    assert_eq!(
        ok_schema(list)["items"]["$ref"],
        "#/components/schemas/routing.v1.Book"
    );
    assert_eq!(
        ok_schema(operation(&doc, "/v1/shelves/{id}/summary", "get"))["$ref"],
        "#/components/schemas/routing.v1.Shelf"
    );
    let tag = operation(&doc, "/v1/shelves/{id}:tag", "post");
    assert_eq!(
        body_schema(tag),
        &json!({"type": "array", "items": {"type": "string"}})
    );

    // A custom HTTP method has no slot in OpenAPI 3.0.
    let lock = &doc["paths"]["/v1/shelves/{id}"]["x-additionalOperations"]["LOCK"];
    assert_eq!(lock["operationId"], "LibraryService_LockShelf");
    assert_eq!(
        operation(&doc, "/v1/shelves/{id}", "get")["operationId"],
        "LibraryService_GetShelf"
    );

    // Not public: every operation is secured.
    for op in operations(&doc) {
        assert_eq!(op["security"], json!([{"bearer": []}]));
    }
    // The pool has no google.rpc.Status: the error schema is still there.
    assert_eq!(
        schema(&doc, "google.rpc.Status")["properties"]["details"]["items"]["$ref"],
        "#/components/schemas/google.protobuf.Any"
    );
}

/// The document of `edge.v1.Edge` in the test proto `edge/v1/{file}.proto`, every
/// method public, written to `out`; its every `$ref` resolves.
fn edge_document(file: &str, out: &str) -> (RouteTable, Value) {
    let table = common::table_of(&format!("edge/v1/{file}.proto"), "edge.v1.Edge").unwrap();
    let doc = openapi::document(&table, &info(), &|_| true);
    write(&doc, out);
    assert_refs_resolve(&doc);
    (table, doc)
}

#[test]
fn collisions_recursion_and_well_known_types() {
    let (table, doc) = edge_document("types", "openapi-edge.json");

    // The later binding cannot share `GET /v1/{name}`: it is kept aside, not lost.
    let item = &doc["paths"]["/v1/{name}"];
    assert_eq!(item["get"]["operationId"], "Edge_GetThing");
    assert_eq!(
        item["x-additionalOperations"]["GET /v1/{name=authors/*}"]["operationId"],
        "Edge_GetThing_1"
    );
    assert_eq!(operations(&doc).len(), table.routes().count());
    assert!(item["get"].get("security").is_none(), "all public here");

    // Recursion: by `$ref` in schemas; not followed in query parameters.
    let node = schema(&doc, "edge.v1.Node");
    assert_eq!(
        node["properties"]["child"]["$ref"],
        "#/components/schemas/edge.v1.Node"
    );
    assert_eq!(
        node["properties"]["children"]["items"]["$ref"],
        "#/components/schemas/edge.v1.Node"
    );
    assert_eq!(
        parameter_names(operation(&doc, "/v1/nodes", "get"), "query"),
        ["id"]
    );

    let thing = &schema(&doc, "edge.v1.Thing")["properties"];
    assert_eq!(thing["attributes"]["type"], "object");
    assert_eq!(thing["extra"], json!({}));
    assert_eq!(
        thing["payload"]["$ref"],
        "#/components/schemas/google.protobuf.Any"
    );
    assert_eq!(thing["ttl"]["type"], "string");
    assert_eq!(thing["mask"]["type"], "string");
    assert_eq!(
        thing["big"],
        json!({"type": "string", "format": "uint64", "nullable": true})
    );
    assert_eq!(
        thing["nodes"],
        json!({"type": "object", "additionalProperties": {"$ref": "#/components/schemas/edge.v1.Node"}})
    );
    assert_eq!(thing["small"]["maximum"], u32::MAX);
    assert_eq!(thing["hash"]["format"], "uint64");
    assert_eq!(
        thing["hash"]["pattern"]
            .as_str()
            .map(|p| p.starts_with("^(?:")),
        Some(true),
        "64-bit integers are decimal strings of their range"
    );
    assert_eq!(thing["blob"], json!({"type": "string", "format": "byte"}));
    assert_eq!(thing["list"]["type"], "array");
    assert_eq!(thing["old"]["deprecated"], true);
    // Maps and `Struct`/`Value`/`Any` have no text form: no such query parameters.
    let get = operation(&doc, "/v1/{name}", "get");
    assert_eq!(
        parameter_names(get, "query"),
        [
            "extra.null_value",
            "extra.number_value",
            "extra.string_value",
            "extra.bool_value",
            "payload.type_url",
            "payload.value",
            "ttl",
            "mask",
            "big",
            "small",
            "hash",
            "blob",
            "old"
        ]
    );
}

#[test]
fn validation_rules_become_schema_keywords() {
    let (_, doc) = edge_document("rules", "openapi-rules.json");

    let thing = schema(&doc, "edge.v1.Thing");
    let property = |name: &str| thing["properties"][name].clone();
    assert_eq!(property("id")["format"], "uuid");
    assert_eq!(property("email")["format"], "email");
    assert_eq!(property("email")["maxLength"], 254);
    assert_eq!(property("code")["minLength"], 2);
    assert_eq!(property("code")["maxLength"], 8);
    assert_eq!(property("code")["pattern"], "^[A-Z]+$");
    assert_eq!(property("count")["minimum"], 0);
    assert_eq!(property("count")["exclusiveMinimum"], true);
    assert_eq!(property("count")["maximum"], 10);
    assert_eq!(property("cents")["type"], "string");
    assert_eq!(property("cents")["pattern"], "^(?:[0-9]|[1-9][0-9]{1,2})$");
    assert_eq!(property("kind")["enum"], json!(["KIND_BIG", "KIND_SMALL"]));
    let tags = property("tags");
    assert_eq!(
        (&tags["minItems"], &tags["maxItems"], &tags["uniqueItems"]),
        (&json!(1), &json!(3), &json!(true))
    );
    assert_eq!(tags["items"]["maxLength"], 5);
    assert_eq!(property("note")["maxLength"], 20);
    assert_eq!(property("ratio")["minimum"], 0.0);
    assert_eq!(property("ratio")["maximum"], 1.0);
    assert_eq!(property("ratio")["exclusiveMaximum"], true);
    assert_eq!(property("color")["enum"], json!(["red", "blue"]));
    // Required: what an absent key (the zero value) would break. The optional note and
    // the ratio, whose zero is valid, are not.
    assert_eq!(
        thing["required"],
        json!([
            "id", "email", "code", "count", "kind", "tags", "part", "color"
        ])
    );

    // The path parameter and the query parameters carry their rules too; the body
    // without the path's `id` still requires the rest.
    let put = operation(&doc, "/v1/things/{id}", "post");
    assert_eq!(parameter(put, "id")["schema"]["format"], "uuid");
    assert!(body_required(put));
    let list = operation(&doc, "/v1/things", "get");
    let page_size = &parameter(list, "page_size")["schema"];
    assert_eq!(
        (&page_size["minimum"], &page_size["maximum"]),
        (&json!(0), &json!(100))
    );
    assert_eq!(
        parameter(list, "kind")["schema"]["enum"],
        json!(["KIND_BIG"])
    );
    assert_eq!(parameter(list, "kind")["required"], true);
    assert_eq!(parameter(list, "owner")["schema"]["format"], "uuid");
    assert!(parameter(list, "owner").get("required").is_none());
}
