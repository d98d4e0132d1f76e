//! The OpenAPI 3.0.3 document of the HTTP edge (`GET /openapi.json`), generated from
//! the same [`RouteTable`] and descriptors that route and transcode requests, so that
//! it describes what the edge accepts and returns rather than what someone remembered
//! to write down. It is built on the typed model of [`openapiv3`], so that what the
//! document can hold is checked by the compiler rather than by a validator later.
//!
//! # Layout
//!
//! - this module: the document, its tags, and the entry points [`spec`] (typed) and
//!   [`document`] (JSON);
//! - `paths`: operations, their parameters, request bodies and responses;
//! - `template`: a route's path template as an OpenAPI path;
//! - `schemas`: message, enum and well-known-type schemas, and the components;
//! - `constraints`: the `buf.validate` rules of a field as schema keywords;
//! - `security`: the bearer scheme and what it adds to an operation;
//! - `comments`: proto comments as descriptions.
//!
//! # Paths and parameters
//!
//! - A route's path is its template with each variable written as `{field.path}`, in
//!   proto field names: `{id}`, `{book.name}`. A variable that spans several segments
//!   (`{name=shelves/*/books/*}`) is `{name}` too; its schema carries a `pattern`
//!   (`^shelves/[^/]+/books/[^/]+$`) and its description says that the value's `/`
//!   separators are sent as they are, since the gateway splits the path on raw `/`
//!   before decoding. The custom verb stays on the end: `/v1/orders/{id}:cancel`.
//! - `*` and `**` outside any variable match a segment (or the rest of the path) that
//!   fills no field. OpenAPI still needs a named parameter for them: they are
//!   `{wildcard-1}`, `{wildcard-2}`, ... in template order. `-` cannot occur in a proto
//!   field path, so these names never collide with a variable's.
//! - Query parameters are every field the transcoder takes from the query string for
//!   that route: fields whose value is one piece of text (scalars, enums, the
//!   wrappers, Timestamp, Duration, FieldMask), repeated ones included, reached through
//!   singular message fields by dotted names; minus the fields bound by the path and
//!   everything the body covers (all of it for `body: "*"`). They are named by proto
//!   field names (`page_size`, `filter.language_code`), as grpc-gateway documents them;
//!   the transcoder also takes the lowerCamelCase names, which are not listed twice.
//!   A message type that contains itself is not followed into a second time, so the
//!   list stays finite (the transcoder would take `a.a.a.x` too).
//!
//! # Bodies
//!
//! - `body: "*"`: the input message. When the path binds top-level fields, the body
//!   schema is that message inline without those fields (as grpc-gateway does), since
//!   the path sets them.
//! - `body: "field"`: the schema of that field's value.
//! - The transcoder reads an empty body as an empty message, so `requestBody.required`
//!   is true only when an empty body cannot be a valid request: the body schema has a
//!   `(google.api.field_behavior) = REQUIRED` field or one whose absence breaks a
//!   `buf.validate` rule, or the body field itself is `REQUIRED`. Otherwise it is left out, which OpenAPI reads as `false`.
//! - The `200` response is the output message, or its `response_body` field.
//!   Every operation has a `default` response: the error body, `google.rpc.Status`.
//!
//! # Schemas
//!
//! `components.schemas` holds every message reachable from the routes, named by full
//! name (`users.v1.User`) and referenced with `$ref`, which also handles recursive
//! types. Properties follow the canonical proto3 JSON mapping: lowerCamelCase names,
//! 64-bit integers as strings (`format: int64` / `uint64`), bytes as base64
//! (`format: byte`), enums as their value names (inline), maps as objects with
//! `additionalProperties`. The well-known types are inlined in their JSON forms
//! (Timestamp a `date-time` string, Duration and FieldMask strings, wrappers their
//! scalar with `nullable`, Struct an object, Value anything, Empty an empty object),
//! except `google.protobuf.Any`, a component holding `@type`. `google.rpc.Status` and
//! `google.protobuf.Any` are always present. `google.api.field_behavior` gives
//! `readOnly` (`OUTPUT_ONLY`) and `writeOnly` (`INPUT_ONLY`). A message schema has
//! `additionalProperties: false`: the edge refuses a key the message does not have.
//! Descriptions come from the proto comments.
//!
//! The `buf.validate` rules, which the edge checks, are published as schema keywords
//! (`minLength`, `pattern`, `format: email`, `minimum`, `minItems`, a shorter `enum`,
//! a `pattern` of the numbers in range for 64-bit integers...; see `constraints`). A
//! key is `required` when leaving it out is refused: its zero value breaks a rule, or
//! it is a message or `optional` field marked `REQUIRED`. A `REQUIRED` scalar whose
//! zero value is valid is not a required key, since the JSON mapping leaves out zero
//! values (an answer with a price of 0 has no price key) and the edge reads a missing
//! key as zero.
//!
//! # Security
//!
//! `components.securitySchemes.bearer` is an HTTP bearer (JWT) scheme. Every operation
//! whose method is not public has `security: [{bearer: []}]` and a `401` response;
//! public ones have neither.
//!
//! # What OpenAPI 3.0 cannot say
//!
//! A path item has one slot per standard HTTP method. A route with a custom method
//! (`custom {kind: "LOCK"}`) goes into the path item's `x-additionalOperations` map
//! under the method's name, as OpenAPI 3.2's `additionalOperations` does. Two routes of
//! one method whose templates render to the same path (`/v1/{name=shelves/*}` and
//! `/v1/{name=authors/*}`) cannot share the slot: the later one goes into
//! `x-additionalOperations` under `"METHOD template"` (`"GET /v1/{name=authors/*}"`),
//! so no route is lost from the document.

mod comments;
mod constraints;
mod paths;
mod schemas;
mod security;
mod template;

use std::collections::HashSet;

use openapiv3::{Info, OpenAPI, Paths, ReferenceOr, Tag};
use prost_reflect::MethodDescriptor;
use serde_json::Value;

use self::schemas::Schemas;
pub use self::security::BEARER_SCHEME;
use crate::routing::RouteTable;

/// The OpenAPI version the document follows.
pub const OPENAPI_VERSION: &str = "3.0.3";

/// The document's `info` object.
#[derive(Debug, Clone)]
pub struct ApiInfo {
    /// `info.title`.
    pub title: String,
    /// `info.version`: the version of the API, not of OpenAPI.
    pub version: String,
    /// `info.description`, if any (CommonMark).
    pub description: Option<String>,
}

/// The OpenAPI 3.0.3 document of every route in `table`. `is_public` tells the methods
/// that may be called without an access token; every other operation requires the
/// bearer scheme. See the module documentation for how routes and messages map.
pub fn spec(
    table: &RouteTable,
    info: &ApiInfo,
    is_public: &dyn Fn(&MethodDescriptor) -> bool,
) -> OpenAPI {
    let mut schemas = Schemas::default();
    let mut paths = Paths::default();
    let mut tags: Vec<Tag> = Vec::new();
    let mut operation_ids: HashSet<String> = HashSet::new();

    for route in table.routes() {
        let service = route.method().parent_service();
        if !tags.iter().any(|tag| tag.name == service.name()) {
            tags.push(Tag {
                name: service.name().to_owned(),
                description: schemas
                    .comments()
                    .of(&service.parent_file(), service.path()),
                ..Tag::default()
            });
        }
        let operation_id = paths::operation_id(route, &mut operation_ids);
        let operation =
            paths::operation(&mut schemas, route, operation_id, is_public(route.method()));
        paths::insert_operation(&mut paths, route, operation);
    }

    let pool = table
        .routes()
        .next()
        .map(|r| r.method().parent_pool().clone());
    schemas.require_status(pool.as_ref());
    let mut components = schemas.finish();
    components.security_schemes.insert(
        BEARER_SCHEME.to_owned(),
        ReferenceOr::Item(security::bearer_scheme()),
    );

    OpenAPI {
        openapi: OPENAPI_VERSION.to_owned(),
        info: Info {
            title: info.title.clone(),
            description: info.description.clone(),
            version: info.version.clone(),
            ..Info::default()
        },
        tags,
        paths,
        components: Some(components),
        ..OpenAPI::default()
    }
}

/// [`spec`] as JSON, the form it is served and printed in.
pub fn document(
    table: &RouteTable,
    info: &ApiInfo,
    is_public: &dyn Fn(&MethodDescriptor) -> bool,
) -> Value {
    // The model serializes to JSON by construction: its maps are keyed by strings and
    // it holds no floats that JSON cannot write.
    serde_json::to_value(spec(table, info, is_public)).expect("an OpenAPI document is JSON")
}
