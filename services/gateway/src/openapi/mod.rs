//! The OpenAPI 3.0.3 document of the HTTP edge (`GET /openapi.json`), generated from
//! the same [`RouteTable`] and descriptors that route and transcode requests, so that
//! it describes what the edge accepts and returns rather than what someone remembered
//! to write down.
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
//!   `(google.api.field_behavior) = REQUIRED` field, or the body field itself is
//!   `REQUIRED`.
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
//! `readOnly` (`OUTPUT_ONLY`), `writeOnly` (`INPUT_ONLY`) and `required` (`REQUIRED`).
//! Descriptions come from the proto comments.
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

use std::collections::{HashMap, HashSet};

use prost_reflect::{
    DescriptorPool, EnumDescriptor, FieldDescriptor, FileDescriptor, Kind, MessageDescriptor,
    MethodDescriptor,
};
use serde_json::{Map, Value, json};

use crate::fields::{self, Naming};
use crate::routing::{BodyRule, PathTemplate, Route, RouteTable, Segment, Variable};

/// The OpenAPI version the document follows.
pub const OPENAPI_VERSION: &str = "3.0.3";

/// The name of the bearer security scheme in `components.securitySchemes`.
pub const BEARER_SCHEME: &str = "bearer";

/// Full name of the error body message.
const STATUS: &str = "google.rpc.Status";
/// Full name of the message that carries error details.
const ANY: &str = "google.protobuf.Any";
/// The field option that says which fields are required, output-only, input-only.
const FIELD_BEHAVIOR_EXTENSION: &str = "google.api.field_behavior";
/// Where routes that have no slot of their own in a path item go.
const ADDITIONAL_OPERATIONS: &str = "x-additionalOperations";
/// The Path Item fields of OpenAPI 3.0 that hold an operation.
const OPERATION_FIELDS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
const JSON: &str = "application/json";

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
pub fn document(
    table: &RouteTable,
    info: &ApiInfo,
    is_public: &dyn Fn(&MethodDescriptor) -> bool,
) -> Value {
    let mut generator = Generator::default();
    let mut paths = Map::new();
    let mut tags: Vec<Value> = Vec::new();
    let mut tag_names: HashSet<String> = HashSet::new();
    let mut operation_ids: HashSet<String> = HashSet::new();

    for route in table.routes() {
        let service = route.method().parent_service();
        if tag_names.insert(service.name().to_owned()) {
            let mut tag = Map::new();
            tag.insert("name".into(), service.name().into());
            if let Some(text) = generator.comment(&service.parent_file(), service.path()) {
                tag.insert("description".into(), text.into());
            }
            tags.push(Value::Object(tag));
        }
        let operation_id = operation_id(route, &mut operation_ids);
        let operation = generator.operation(route, operation_id, is_public(route.method()));
        insert_operation(&mut paths, route, operation);
    }

    let pool = table
        .routes()
        .next()
        .map(|r| r.method().parent_pool().clone());
    generator.require_status(pool.as_ref());
    let schemas = generator.finish();

    let mut info_object = Map::new();
    info_object.insert("title".into(), info.title.clone().into());
    if let Some(description) = &info.description {
        info_object.insert("description".into(), description.clone().into());
    }
    info_object.insert("version".into(), info.version.clone().into());

    json!({
        "openapi": OPENAPI_VERSION,
        "info": info_object,
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                BEARER_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An access token from `POST /v1/auth/token`, sent as \
                        `Authorization: Bearer <token>`.",
                },
            },
        },
    })
}

/// `Service_Method`, plus `_N` for the method's `N`-th additional binding. Two services
/// of one short name in different packages would collide: the later one then uses its
/// full name (`users_v2_UserService_GetUser`), and a number as the last resort, since
/// operation ids must be unique in a document.
fn operation_id(route: &Route, used: &mut HashSet<String>) -> String {
    let method = route.method();
    let suffix = match route.binding_index() {
        0 => String::new(),
        n => format!("_{n}"),
    };
    let short = format!(
        "{}_{}{suffix}",
        method.parent_service().name(),
        method.name()
    );
    if used.insert(short.clone()) {
        return short;
    }
    let full = format!(
        "{}_{}{suffix}",
        method.parent_service().full_name().replace('.', "_"),
        method.name()
    );
    let mut candidate = full.clone();
    let mut n = 2;
    while !used.insert(candidate.clone()) {
        candidate = format!("{full}_{n}");
        n += 1;
    }
    candidate
}

/// Puts `operation` into its path item; see "What OpenAPI 3.0 cannot say".
fn insert_operation(paths: &mut Map<String, Value>, route: &Route, operation: Value) {
    let path = render_path(route.template());
    let item = paths
        .entry(path)
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(item) = item else {
        // Every path item is created as an object just above.
        return;
    };
    let token = route.http_method().as_str();
    let field = token.to_ascii_lowercase();
    let standard = OPERATION_FIELDS.contains(&field.as_str());
    if standard && !item.contains_key(&field) {
        item.insert(field, operation);
        return;
    }
    let extra = item
        .entry(ADDITIONAL_OPERATIONS)
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(extra) = extra {
        let key = if standard || extra.contains_key(token) {
            format!("{token} {}", route.template())
        } else {
            token.to_owned()
        };
        extra.insert(key, operation);
    }
}

/// One piece of a template as the document shows it.
enum PathPart<'a> {
    Literal(&'a str),
    Variable(&'a Variable),
    /// A `*` (or, with `multi`, `**`) outside any variable: `{wildcard-N}`.
    Wildcard {
        number: usize,
        multi: bool,
    },
}

/// The template's segments with each variable's own segments folded into it.
fn path_parts(template: &PathTemplate) -> Vec<PathPart<'_>> {
    let segments = template.segments();
    let mut parts = Vec::new();
    let mut wildcards = 0;
    let mut index = 0;
    while let Some(segment) = segments.get(index) {
        if let Some(variable) = template
            .variables()
            .iter()
            .find(|v| v.segments().start == index)
        {
            parts.push(PathPart::Variable(variable));
            // A variable covers at least one segment; `max` guards the loop anyway.
            index = variable.segments().end.max(index + 1);
            continue;
        }
        parts.push(match segment {
            Segment::Literal(text) => PathPart::Literal(text),
            Segment::Single | Segment::Multi => {
                wildcards += 1;
                PathPart::Wildcard {
                    number: wildcards,
                    multi: *segment == Segment::Multi,
                }
            }
        });
        index += 1;
    }
    parts
}

fn wildcard_name(number: usize) -> String {
    format!("wildcard-{number}")
}

/// The OpenAPI path of a template: `/v1/{name}`, `/v1/orders/{id}:cancel`.
fn render_path(template: &PathTemplate) -> String {
    let mut path = String::new();
    for part in path_parts(template) {
        path.push('/');
        match part {
            PathPart::Literal(text) => path.push_str(text),
            PathPart::Variable(variable) => {
                path.push('{');
                path.push_str(variable.field_path());
                path.push('}');
            }
            PathPart::Wildcard { number, .. } => {
                path.push('{');
                path.push_str(&wildcard_name(number));
                path.push('}');
            }
        }
    }
    if let Some(verb) = template.verb() {
        path.push(':');
        path.push_str(verb);
    }
    path
}

/// A regular expression for the values a multi-segment variable takes.
fn variable_pattern(segments: &[Segment]) -> String {
    let parts: Vec<String> = segments
        .iter()
        .map(|segment| match segment {
            Segment::Literal(text) => regex_escape(text),
            Segment::Single => "[^/]+".to_owned(),
            Segment::Multi => ".*".to_owned(),
        })
        .collect();
    format!("^{}$", parts.join("/"))
}

/// Escapes the characters that are special in an ECMA-262 pattern (OpenAPI's regex
/// dialect) outside a class. Only those: with the `u` flag, escaping others is an error.
fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { JSON: { "schema": schema_ref(STATUS) } },
    })
}

/// Builds operations and collects the schemas they refer to.
#[derive(Debug, Default)]
struct Generator {
    /// Comments by file name, then by source-code-info path.
    comments: HashMap<String, HashMap<Vec<i32>, String>>,
    /// Finished component schemas, by message full name.
    schemas: Map<String, Value>,
    /// Every message that has been referred to (finished or pending).
    referenced: HashSet<String>,
    /// Referred to, schema not yet written.
    pending: Vec<MessageDescriptor>,
}

impl Generator {
    /// Writes the schema of every message referred to so far (and of the ones those
    /// refer to), and returns them all.
    fn finish(mut self) -> Map<String, Value> {
        while let Some(desc) = self.pending.pop() {
            let schema = self.message_schema(&desc);
            self.schemas
                .insert(desc.full_name().to_owned(), Value::Object(schema));
        }
        self.schemas
    }

    /// `google.rpc.Status` from the pool (with its comments) when the pool has it;
    /// otherwise the same shape written out, since every error body is one.
    fn require_status(&mut self, pool: Option<&DescriptorPool>) {
        match pool.and_then(|p| p.get_message_by_name(STATUS)) {
            Some(desc) => {
                self.message_ref(&desc);
            }
            None => {
                self.require_any();
                self.schemas.insert(
                    STATUS.to_owned(),
                    json!({
                        "type": "object",
                        "description": "The error body: a gRPC status code, a developer-facing message, and details.",
                        "properties": {
                            "code": {
                                "type": "integer",
                                "format": "int32",
                                "description": "The gRPC status code (google.rpc.Code).",
                            },
                            "message": {
                                "type": "string",
                                "description": "A developer-facing error message, in English.",
                            },
                            "details": {
                                "type": "array",
                                "items": schema_ref(ANY),
                                "description": "Messages that carry the error details.",
                            },
                        },
                    }),
                );
            }
        }
        self.require_any();
    }

    fn require_any(&mut self) {
        if self.referenced.insert(ANY.to_owned()) {
            self.schemas.insert(ANY.to_owned(), any_schema());
        }
    }

    /// The cleaned leading (else trailing) comment of the element at `path` of `file`.
    fn comment(&mut self, file: &FileDescriptor, path: &[i32]) -> Option<String> {
        self.comments
            .entry(file.name().to_owned())
            .or_insert_with(|| index_comments(file))
            .get(path)
            .cloned()
    }

    fn field_comment(&mut self, field: &FieldDescriptor) -> Option<String> {
        self.comment(&field.parent_file(), field.path())
    }

    fn operation(&mut self, route: &Route, operation_id: String, public: bool) -> Value {
        let method = route.method();
        let mut operation = Map::new();
        operation.insert("operationId".into(), operation_id.into());
        operation.insert("tags".into(), json!([method.parent_service().name()]));
        if let Some(text) = self.comment(&method.parent_file(), method.path()) {
            let summary = summary(&text);
            if summary != text {
                operation.insert("description".into(), text.into());
            }
            operation.insert("summary".into(), summary.into());
        }
        let mut parameters = self.path_parameters(route);
        parameters.extend(self.query_parameters(route));
        if !parameters.is_empty() {
            operation.insert("parameters".into(), Value::Array(parameters));
        }
        if let Some(body) = self.request_body(route) {
            operation.insert("requestBody".into(), body);
        }
        operation.insert("responses".into(), self.responses(route, public));
        if !public {
            operation.insert("security".into(), json!([{ BEARER_SCHEME: [] }]));
        }
        let deprecated = method
            .method_descriptor_proto()
            .options
            .as_ref()
            .and_then(|o| o.deprecated)
            .unwrap_or(false);
        if deprecated {
            operation.insert("deprecated".into(), true.into());
        }
        Value::Object(operation)
    }

    fn path_parameters(&mut self, route: &Route) -> Vec<Value> {
        let template = route.template();
        let input = route.method().input();
        let mut parameters = Vec::new();
        for part in path_parts(template) {
            match part {
                PathPart::Literal(_) => {}
                PathPart::Variable(variable) => {
                    parameters.push(self.variable_parameter(template, variable, &input));
                }
                PathPart::Wildcard { number, multi } => {
                    let description = if multi {
                        "Any rest of the path (`**` in the route's template); it fills no \
                         field. Its `/` separators are sent as they are."
                    } else {
                        "Any one path segment (`*` in the route's template); it fills no field."
                    };
                    parameters.push(json!({
                        "name": wildcard_name(number),
                        "in": "path",
                        "required": true,
                        "description": description,
                        "schema": { "type": "string" },
                    }));
                }
            }
        }
        parameters
    }

    fn variable_parameter(
        &mut self,
        template: &PathTemplate,
        variable: &Variable,
        input: &MessageDescriptor,
    ) -> Value {
        // The table checked every variable against the input when it was built, so
        // the leaf exists and is a text-valued field; a plain string is the fallback.
        let leaf = fields::resolve(input, variable.field_path(), Naming::Proto)
            .ok()
            .and_then(|path| path.last().cloned());
        let (mut schema, mut description) = match &leaf {
            Some(field) => (self.kind_schema(&field.kind()), self.field_comment(field)),
            None => (json!({ "type": "string" }), None),
        };
        if !template.is_single_segment(variable) {
            let segments = template.variable_segments(variable);
            if let Value::Object(schema) = &mut schema {
                schema.insert("pattern".into(), variable_pattern(segments).into());
            }
            let shape: Vec<&str> = segments
                .iter()
                .map(|s| match s {
                    Segment::Literal(text) => text.as_str(),
                    Segment::Single => "*",
                    Segment::Multi => "**",
                })
                .collect();
            let note = format!(
                "Spans path segments (`{}`): send its `/` separators as they are, not \
                 percent-encoded.",
                shape.join("/")
            );
            description = Some(match description {
                Some(text) => format!("{text}\n\n{note}"),
                None => note,
            });
        }
        let mut parameter = Map::new();
        parameter.insert("name".into(), variable.field_path().into());
        parameter.insert("in".into(), "path".into());
        parameter.insert("required".into(), true.into());
        if let Some(description) = description {
            parameter.insert("description".into(), description.into());
        }
        parameter.insert("schema".into(), schema);
        Value::Object(parameter)
    }

    /// The query parameters the transcoder accepts for `route`; see the module docs.
    fn query_parameters(&mut self, route: &Route) -> Vec<Value> {
        let body_field = match route.body() {
            BodyRule::Whole => return Vec::new(),
            BodyRule::Field(field) => Some(field.clone()),
            BodyRule::None => None,
        };
        let bound: Vec<&str> = route
            .template()
            .variables()
            .iter()
            .map(Variable::field_path)
            .collect();
        let input = route.method().input();
        let mut walk = QueryWalk {
            bound: &bound,
            body_field: body_field.as_ref(),
            stack: vec![input.full_name().to_owned()],
            out: Vec::new(),
        };
        self.walk_query(&mut walk, &input, "", true);
        walk.out
    }

    fn walk_query(
        &mut self,
        walk: &mut QueryWalk<'_>,
        desc: &MessageDescriptor,
        prefix: &str,
        required_so_far: bool,
    ) {
        for field in desc.fields() {
            // The body field covers its whole subtree; maps have no text form.
            if (prefix.is_empty() && walk.body_field == Some(&field)) || field.is_map() {
                continue;
            }
            let name = format!("{prefix}{}", field.name());
            // Required as a parameter only if every field on the way is required:
            // an optional parent may be left out altogether.
            let required = required_so_far && field_behaviors(&field).contains(&REQUIRED);
            if fields::is_text_kind(&field) {
                if !walk.bound.contains(&name.as_str()) {
                    let parameter = self.query_parameter(&field, name, required);
                    walk.out.push(parameter);
                }
            } else if let Kind::Message(child) = field.kind()
                && !field.is_list()
                && !walk.stack.iter().any(|seen| seen == child.full_name())
            {
                walk.stack.push(child.full_name().to_owned());
                self.walk_query(walk, &child, &format!("{name}."), required);
                walk.stack.pop();
            }
        }
    }

    fn query_parameter(&mut self, field: &FieldDescriptor, name: String, required: bool) -> Value {
        let element = self.kind_schema(&field.kind());
        let mut parameter = Map::new();
        parameter.insert("name".into(), name.into());
        parameter.insert("in".into(), "query".into());
        if let Some(description) = self.field_comment(field) {
            parameter.insert("description".into(), description.into());
        }
        if required {
            parameter.insert("required".into(), true.into());
        }
        if field.is_list() {
            // `?tags=a&tags=b`: the transcoder appends one element per occurrence.
            parameter.insert("style".into(), "form".into());
            parameter.insert("explode".into(), true.into());
            parameter.insert(
                "schema".into(),
                json!({ "type": "array", "items": element }),
            );
        } else {
            parameter.insert("schema".into(), element);
        }
        if is_deprecated(field) {
            parameter.insert("deprecated".into(), true.into());
        }
        Value::Object(parameter)
    }

    fn request_body(&mut self, route: &Route) -> Option<Value> {
        let input = route.method().input();
        let (schema, required, description) = match route.body() {
            BodyRule::None => return None,
            BodyRule::Whole => {
                let bound: Vec<FieldDescriptor> = route
                    .template()
                    .variables()
                    .iter()
                    .filter_map(|v| input.get_field_by_name(v.field_path()))
                    .collect();
                let reference = self.message_ref(&input);
                if bound.is_empty() || reference.get("$ref").is_none() {
                    let required = !required_fields(&input).is_empty();
                    (reference, required, None)
                } else {
                    // The path sets these fields: the body need not, and is not
                    // documented to. (The transcoder takes them, and the path wins.)
                    let mut schema = self.message_schema(&input);
                    let mut has_properties = false;
                    if let Some(Value::Object(properties)) = schema.get_mut("properties") {
                        for field in &bound {
                            properties.remove(field.json_name());
                        }
                        has_properties = !properties.is_empty();
                    }
                    if !has_properties {
                        schema.remove("properties");
                    }
                    let mut required = false;
                    if let Some(Value::Array(names)) = schema.get_mut("required") {
                        names.retain(|name| {
                            !bound.iter().any(|f| name.as_str() == Some(f.json_name()))
                        });
                        required = !names.is_empty();
                    }
                    if !required {
                        schema.remove("required");
                    }
                    (Value::Object(schema), required, None)
                }
            }
            BodyRule::Field(field) => {
                let schema = self.field_type_schema(field);
                let required = field_behaviors(field).contains(&REQUIRED);
                (schema, required, self.field_comment(field))
            }
        };
        let mut body = Map::new();
        if let Some(description) = description {
            body.insert("description".into(), description.into());
        }
        body.insert("required".into(), required.into());
        body.insert("content".into(), json!({ JSON: { "schema": schema } }));
        Some(Value::Object(body))
    }

    fn responses(&mut self, route: &Route, public: bool) -> Value {
        let schema = match route.response_body() {
            Some(field) => self.field_type_schema(field),
            None => self.message_ref(&route.method().output()),
        };
        let mut responses = Map::new();
        responses.insert(
            "200".into(),
            json!({
                "description": "A successful response.",
                "content": { JSON: { "schema": schema } },
            }),
        );
        if !public {
            let mut unauthorized = error_response(
                "The access token is missing, malformed, expired, or not signed by a \
                 current key.",
            );
            if let Value::Object(response) = &mut unauthorized {
                response.insert(
                    "headers".into(),
                    json!({
                        "WWW-Authenticate": {
                            "description": "The scheme to authenticate with: `Bearer` (RFC 6750).",
                            "schema": { "type": "string" },
                        },
                    }),
                );
            }
            responses.insert("401".into(), unauthorized);
        }
        responses.insert(
            "default".into(),
            error_response(
                "An error: the gRPC status as `google.rpc.Status` (code, message, \
                 details), with the HTTP status of the standard gRPC-to-HTTP mapping.",
            ),
        );
        Value::Object(responses)
    }

    /// The component schema of a message (not of a well-known type inlined by
    /// [`Self::message_ref`]).
    fn message_schema(&mut self, desc: &MessageDescriptor) -> Map<String, Value> {
        if desc.full_name() == ANY
            && let Value::Object(schema) = any_schema()
        {
            return schema;
        }
        let mut schema = Map::new();
        schema.insert("type".into(), "object".into());
        if let Some(description) = self.comment(&desc.parent_file(), desc.path()) {
            schema.insert("description".into(), description.into());
        }
        let mut properties = Map::new();
        let mut required = Vec::new();
        for field in desc.fields() {
            let behaviors = field_behaviors(&field);
            if behaviors.contains(&REQUIRED) {
                required.push(Value::from(field.json_name()));
            }
            let property = self.field_schema(&field, &behaviors);
            properties.insert(field.json_name().to_owned(), property);
        }
        if !properties.is_empty() {
            schema.insert("properties".into(), Value::Object(properties));
        }
        if !required.is_empty() {
            schema.insert("required".into(), Value::Array(required));
        }
        schema
    }

    /// A property: the field's type with its description and field behaviors.
    fn field_schema(&mut self, field: &FieldDescriptor, behaviors: &[Behavior]) -> Value {
        let description = self.field_comment(field);
        let base = match field.kind() {
            // The field's comment says what the enum's own comment would, more
            // precisely; the list of values still follows it.
            Kind::Enum(desc) if description.is_some() && !field.is_list() && !field.is_map() => {
                self.enum_schema(&desc, false)
            }
            _ => self.field_type_schema(field),
        };
        let mut notes = Map::new();
        if let Some(description) = description {
            notes.insert("description".into(), description.into());
        }
        let output_only = behaviors.contains(&OUTPUT_ONLY);
        let input_only = behaviors.contains(&INPUT_ONLY);
        // Both at once would make the property unusable either way: say neither.
        if output_only && !input_only {
            notes.insert("readOnly".into(), true.into());
        }
        if input_only && !output_only {
            notes.insert("writeOnly".into(), true.into());
        }
        if is_deprecated(field) {
            notes.insert("deprecated".into(), true.into());
        }
        annotate(base, notes)
    }

    /// The schema of a field's whole value: its element type, as an array for a
    /// repeated field or an object for a map.
    fn field_type_schema(&mut self, field: &FieldDescriptor) -> Value {
        if field.is_map() {
            let value = match field.kind() {
                Kind::Message(entry) => self.kind_schema(&entry.map_entry_value_field().kind()),
                _ => json!({}),
            };
            json!({ "type": "object", "additionalProperties": value })
        } else if field.is_list() {
            json!({ "type": "array", "items": self.kind_schema(&field.kind()) })
        } else {
            self.kind_schema(&field.kind())
        }
    }

    /// The schema of one value of a proto type, per the canonical JSON mapping.
    fn kind_schema(&mut self, kind: &Kind) -> Value {
        match kind {
            Kind::Double => json!({ "type": "number", "format": "double" }),
            Kind::Float => json!({ "type": "number", "format": "float" }),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                json!({ "type": "integer", "format": "int32" })
            }
            // Beyond int32: OpenAPI's int64 format holds it, the bounds say the rest.
            Kind::Uint32 | Kind::Fixed32 => json!({
                "type": "integer",
                "format": "int64",
                "minimum": 0,
                "maximum": u32::MAX,
            }),
            // The JSON mapping writes 64-bit integers as strings (JavaScript numbers
            // lose precision past 2^53); it reads numbers too.
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
                json!({ "type": "string", "format": "int64" })
            }
            Kind::Uint64 | Kind::Fixed64 => json!({ "type": "string", "format": "uint64" }),
            Kind::Bool => json!({ "type": "boolean" }),
            Kind::String => json!({ "type": "string" }),
            Kind::Bytes => json!({ "type": "string", "format": "byte" }),
            Kind::Enum(desc) => self.enum_schema(desc, true),
            Kind::Message(desc) => self.message_ref(desc),
        }
    }

    /// An enum as its value names; the description lists the values' comments, after
    /// the enum's own comment with `type_comment`.
    fn enum_schema(&mut self, desc: &EnumDescriptor, type_comment: bool) -> Value {
        if desc.full_name() == "google.protobuf.NullValue" {
            // Its one value is written as JSON `null`.
            return json!({ "type": "string", "nullable": true, "enum": [null] });
        }
        let names: Vec<Value> = desc.values().map(|v| v.name().into()).collect();
        let mut lines = Vec::new();
        if type_comment && let Some(text) = self.comment(&desc.parent_file(), desc.path()) {
            lines.push(text);
        }
        let mut values = Vec::new();
        for value in desc.values() {
            if let Some(text) = self.comment(&value.parent_file(), value.path()) {
                values.push(format!("- `{}`: {}", value.name(), text.replace('\n', " ")));
            }
        }
        if !values.is_empty() {
            lines.push(values.join("\n"));
        }
        let mut schema = Map::new();
        schema.insert("type".into(), "string".into());
        schema.insert("enum".into(), Value::Array(names));
        if !lines.is_empty() {
            schema.insert("description".into(), lines.join("\n\n").into());
        }
        Value::Object(schema)
    }

    /// A message type where a schema is expected: a well-known type in its JSON form,
    /// or a `$ref` to the message's component (queued to be written).
    fn message_ref(&mut self, desc: &MessageDescriptor) -> Value {
        let name = desc.full_name();
        if let Some(inline) = self.well_known(desc) {
            return inline;
        }
        if name == ANY {
            self.require_any();
        } else if self.referenced.insert(name.to_owned()) {
            self.pending.push(desc.clone());
        }
        schema_ref(name)
    }

    /// The JSON form of the well-known types that have one of their own (Any aside,
    /// which is a component).
    fn well_known(&mut self, desc: &MessageDescriptor) -> Option<Value> {
        let schema = match desc.full_name() {
            "google.protobuf.Timestamp" => json!({ "type": "string", "format": "date-time" }),
            "google.protobuf.Duration" => json!({
                "type": "string",
                "description": "Seconds with up to nine fractional digits, ending in `s`: `1.5s`.",
            }),
            "google.protobuf.FieldMask" => json!({
                "type": "string",
                "description": "Comma-separated field paths in lowerCamelCase: `displayName,email`.",
            }),
            "google.protobuf.Empty" => json!({ "type": "object" }),
            "google.protobuf.Struct" => json!({ "type": "object", "additionalProperties": {} }),
            // Any JSON value.
            "google.protobuf.Value" => json!({}),
            "google.protobuf.ListValue" => json!({ "type": "array", "items": {} }),
            "google.protobuf.DoubleValue"
            | "google.protobuf.FloatValue"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.Int32Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.BoolValue"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue" => {
                let inner = desc.get_field_by_name("value")?;
                let mut schema = self.kind_schema(&inner.kind());
                if let Value::Object(schema) = &mut schema {
                    schema.insert("nullable".into(), true.into());
                }
                schema
            }
            _ => return None,
        };
        Some(schema)
    }
}

/// State of one walk over a request message for its query parameters.
struct QueryWalk<'a> {
    /// Field paths bound by the path template.
    bound: &'a [&'a str],
    /// The `body: "field"` field, if any.
    body_field: Option<&'a FieldDescriptor>,
    /// Full names of the messages on the way down, to stop at recursion.
    stack: Vec<String>,
    out: Vec<Value>,
}

fn any_schema() -> Value {
    json!({
        "type": "object",
        "description": "A message of any type: `@type` names it \
            (`type.googleapis.com/google.rpc.BadRequest`), the other properties are its \
            fields in JSON; a type with a JSON form of its own is under `value`.",
        "properties": {
            "@type": {
                "type": "string",
                "description": "A URL whose last segment is the message's full name.",
            },
        },
        "required": ["@type"],
        "additionalProperties": {},
    })
}

/// Adds a field's notes to its type's schema. A `$ref` cannot carry siblings in
/// OpenAPI 3.0 (they are ignored), so a referenced type is wrapped in `allOf`.
fn annotate(base: Value, mut notes: Map<String, Value>) -> Value {
    if notes.is_empty() {
        return base;
    }
    match base {
        Value::Object(mut schema) if !schema.contains_key("$ref") => {
            // The field's own words first, then what the type says (enum values).
            if let (Some(Value::String(field)), Some(Value::String(own))) =
                (notes.get("description"), schema.get("description"))
            {
                let joined = format!("{field}\n\n{own}");
                notes.insert("description".into(), joined.into());
            }
            schema.extend(notes);
            Value::Object(schema)
        }
        other => {
            let mut wrapped = Map::new();
            wrapped.insert("allOf".into(), json!([other]));
            wrapped.extend(notes);
            Value::Object(wrapped)
        }
    }
}

/// A `google.api.FieldBehavior` value, by name.
type Behavior = &'static str;
const REQUIRED: Behavior = "REQUIRED";
const OUTPUT_ONLY: Behavior = "OUTPUT_ONLY";
const INPUT_ONLY: Behavior = "INPUT_ONLY";

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
        .filter_map(|v| {
            [REQUIRED, OUTPUT_ONLY, INPUT_ONLY]
                .into_iter()
                .find(|b| *b == v.name())
        })
        .collect()
}

/// JSON names of the message's `REQUIRED` fields.
fn required_fields(desc: &MessageDescriptor) -> Vec<String> {
    desc.fields()
        .filter(|f| field_behaviors(f).contains(&REQUIRED))
        .map(|f| f.json_name().to_owned())
        .collect()
}

fn is_deprecated(field: &FieldDescriptor) -> bool {
    field
        .field_descriptor_proto()
        .options
        .as_ref()
        .and_then(|o| o.deprecated)
        .unwrap_or(false)
}

/// Every commented element of `file`, by its source-code-info path.
fn index_comments(file: &FileDescriptor) -> HashMap<Vec<i32>, String> {
    let mut comments = HashMap::new();
    let Some(info) = &file.file_descriptor_proto().source_code_info else {
        return comments;
    };
    for location in &info.location {
        let text = [&location.leading_comments, &location.trailing_comments]
            .into_iter()
            .filter_map(|c| c.as_deref())
            .find_map(clean_comment);
        if let Some(text) = text {
            // The first location of a path is the element itself.
            comments.entry(location.path.clone()).or_insert(text);
        }
    }
    comments
}

/// A comment as protoc records it (`// Foo` → ` Foo\n`), without the common
/// indentation and the blank lines around it; `None` when nothing is left.
fn clean_comment(raw: &str) -> Option<String> {
    let lines: Vec<&str> = raw.lines().map(str::trim_end).collect();
    // Spaces and tabs only: one byte each, so the cut below is on a char boundary.
    let indent = |line: &str| line.len() - line.trim_start_matches([' ', '\t']).len();
    let common = lines
        .iter()
        .filter(|l| !l.is_empty())
        .map(|l| indent(l))
        .min()
        .unwrap_or(0);
    let text = lines
        .iter()
        .map(|l| l.get(common..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let text = text.trim_matches('\n');
    (!text.is_empty()).then(|| text.to_owned())
}

/// The first sentence of a comment's first paragraph, on one line.
fn summary(text: &str) -> String {
    let paragraph = text.split("\n\n").next().unwrap_or(text);
    let line = paragraph
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    match line.find(". ") {
        Some(end) => line[..=end].to_owned(),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn comments_are_unindented_and_trimmed() {
        assert_eq!(
            clean_comment(" Lists orders.\n\n   Indented.\n").as_deref(),
            Some("Lists orders.\n\n  Indented.")
        );
        assert_eq!(clean_comment("\n  \n"), None);
    }

    #[test]
    fn summary_is_first_sentence() {
        assert_eq!(
            summary("Places an order. Safe to\nretry.\n\nMore."),
            "Places an order."
        );
        assert_eq!(
            summary("Exchanges a\nkey for a token"),
            "Exchanges a key for a token"
        );
    }

    #[test]
    fn paths_and_patterns() {
        let t = PathTemplate::parse("/v1/{name=shelves/*/books/*}:x").unwrap();
        assert_eq!(render_path(&t), "/v1/{name}:x");
        let v = &t.variables()[0];
        assert_eq!(
            variable_pattern(t.variable_segments(v)),
            "^shelves/[^/]+/books/[^/]+$"
        );
        let t = PathTemplate::parse("/v1/*/x/{a.b}/**").unwrap();
        assert_eq!(render_path(&t), "/v1/{wildcard-1}/x/{a.b}/{wildcard-2}");
        assert_eq!(regex_escape("a.b-c(d)"), "a\\.b-c\\(d\\)");
    }
}
