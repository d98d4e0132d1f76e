//! Operations: one per route, with its id, path and query parameters, request body
//! and responses, placed in its path item.

use std::collections::HashSet;

use openapiv3::{
    Content, MediaType, Operation, Parameter, ParameterData, ParameterSchemaOrContent, PathItem,
    PathStyle, Paths, QueryStyle, ReferenceOr, RequestBody, Response, Responses, SchemaKind,
    StatusCode, Type,
};
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value};

use super::comments::summary;
use super::constraints;
use super::schemas::{
    STATUS, SchemaOrRef, Schemas, array_of, component_ref, is_deprecated, is_required,
    required_by_rules, string, typed,
};
use super::security;
use super::template::{
    PathPart, path_parts, render_path, variable_pattern, variable_shape, wildcard_name,
};
use crate::fields::{self, Naming};
use crate::routing::{BodyRule, PathTemplate, Route, Variable};
use crate::transcode::httpbody;

/// Where routes that have no slot of their own in a path item go.
const ADDITIONAL_OPERATIONS: &str = "x-additionalOperations";
const JSON: &str = "application/json";
/// Bodies whose media type the service decides (`google.api.HttpBody`).
const ANY_MEDIA: &str = "*/*";

/// `Service_Method`, plus `_N` for the method's `N`-th additional binding. Two services
/// of one short name in different packages would collide: the later one then uses its
/// full name (`users_v2_UserService_GetUser`), and a number as the last resort, since
/// operation ids must be unique in a document.
pub(super) fn operation_id(route: &Route, used: &mut HashSet<String>) -> String {
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

/// Puts `operation` into its path item; see "What OpenAPI 3.0 cannot say" in the
/// module documentation of [`super`].
pub(super) fn insert_operation(paths: &mut Paths, route: &Route, operation: Operation) {
    let entry = paths
        .paths
        .entry(render_path(route.template()))
        .or_insert_with(|| ReferenceOr::Item(PathItem::default()));
    let ReferenceOr::Item(item) = entry else {
        // Every path item is created inline just above.
        return;
    };
    let token = route.http_method().as_str();
    let slot = match token.to_ascii_lowercase().as_str() {
        "get" => Some(&mut item.get),
        "put" => Some(&mut item.put),
        "post" => Some(&mut item.post),
        "delete" => Some(&mut item.delete),
        "options" => Some(&mut item.options),
        "head" => Some(&mut item.head),
        "patch" => Some(&mut item.patch),
        "trace" => Some(&mut item.trace),
        _ => None,
    };
    let standard = slot.is_some();
    if let Some(slot @ None) = slot {
        *slot = Some(operation);
        return;
    }
    let extra = item
        .extensions
        .entry(ADDITIONAL_OPERATIONS.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(extra) = extra {
        let key = if standard || extra.contains_key(token) {
            format!("{token} {}", route.template())
        } else {
            token.to_owned()
        };
        // An extension holds plain JSON. An `Operation` always serializes: its maps
        // are keyed by strings and it holds no floats that JSON cannot write.
        let operation = serde_json::to_value(operation).expect("an Operation is JSON");
        extra.insert(key, operation);
    }
}

/// The operation of `route`. `public` ones may be called without an access token.
pub(super) fn operation(
    schemas: &mut Schemas,
    route: &Route,
    operation_id: String,
    public: bool,
) -> Operation {
    let method = route.method();
    let mut operation = Operation {
        operation_id: Some(operation_id),
        tags: vec![method.parent_service().name().to_owned()],
        ..Operation::default()
    };
    if let Some(text) = schemas.comments().of(&method.parent_file(), method.path()) {
        let summary = summary(&text);
        if summary != text {
            operation.description = Some(text);
        }
        operation.summary = Some(summary);
    }
    let mut parameters = path_parameters(schemas, route);
    parameters.extend(query_parameters(schemas, route));
    operation.parameters = parameters.into_iter().map(ReferenceOr::Item).collect();
    operation.request_body = request_body(schemas, route).map(ReferenceOr::Item);
    operation.responses = responses(schemas, route);
    if !public {
        security::require_bearer(&mut operation);
    }
    operation.deprecated = method
        .method_descriptor_proto()
        .options
        .as_ref()
        .and_then(|o| o.deprecated)
        .unwrap_or(false);
    operation
}

/// A response whose body is the error, `google.rpc.Status`.
pub(super) fn error_response(description: &str) -> Response {
    Response {
        description: description.to_owned(),
        content: json_content(component_ref(STATUS)),
        ..Response::default()
    }
}

/// A server-streaming method's answer: one record per message, as NDJSON or as
/// Server-Sent Events.
fn streaming_response(schema: SchemaOrRef) -> Response {
    let media = MediaType {
        schema: Some(schema),
        ..MediaType::default()
    };
    Response {
        description: "A stream of messages, each written as it arrives: one JSON object \
            per line (`application/x-ndjson`, the default), or one `data:` event per message \
            with `Accept: text/event-stream` (comment heartbeats keep it open). A stream that \
            fails after it began ends with an error record: `{\"error\": <google.rpc.Status>}` \
            as NDJSON, `event: error` as SSE."
            .to_owned(),
        content: ["application/x-ndjson", "text/event-stream"]
            .into_iter()
            .map(|kind| (kind.to_owned(), media.clone()))
            .collect(),
        ..Response::default()
    }
}

/// Raw bytes of any media type (a `google.api.HttpBody`): `format: binary`.
fn binary_content() -> Content {
    let media = MediaType {
        schema: Some(ReferenceOr::Item(typed(string(Some("binary"))))),
        ..MediaType::default()
    };
    [(ANY_MEDIA.to_owned(), media)].into_iter().collect()
}

fn json_content(schema: SchemaOrRef) -> Content {
    let media = MediaType {
        schema: Some(schema),
        ..MediaType::default()
    };
    [(JSON.to_owned(), media)].into_iter().collect()
}

/// A parameter's name, words and schema; required or not is up to its location.
fn parameter_data(name: String, description: Option<String>, schema: SchemaOrRef) -> ParameterData {
    ParameterData {
        name,
        description,
        required: false,
        deprecated: None,
        format: ParameterSchemaOrContent::Schema(schema),
        example: None,
        examples: Default::default(),
        explode: None,
        extensions: Default::default(),
    }
}

fn path_parameter(data: ParameterData) -> Parameter {
    Parameter::Path {
        // OpenAPI requires every path parameter to be required.
        parameter_data: ParameterData {
            required: true,
            ..data
        },
        style: PathStyle::Simple,
    }
}

fn path_parameters(schemas: &mut Schemas, route: &Route) -> Vec<Parameter> {
    let template = route.template();
    let input = route.method().input();
    let mut parameters = Vec::new();
    for part in path_parts(template) {
        match part {
            PathPart::Literal(_) => {}
            PathPart::Variable(variable) => {
                parameters.push(variable_parameter(schemas, template, variable, &input));
            }
            PathPart::Wildcard { number, multi } => {
                let description = if multi {
                    "Any rest of the path (`**` in the route's template); it fills no \
                     field. Its `/` separators are sent as they are."
                } else {
                    "Any one path segment (`*` in the route's template); it fills no field."
                };
                parameters.push(path_parameter(parameter_data(
                    wildcard_name(number),
                    Some(description.to_owned()),
                    ReferenceOr::Item(typed(string(None))),
                )));
            }
        }
    }
    parameters
}

fn variable_parameter(
    schemas: &mut Schemas,
    template: &PathTemplate,
    variable: &Variable,
    input: &MessageDescriptor,
) -> Parameter {
    // The table checked every variable against the input when it was built, so
    // the leaf exists and is a text-valued field; a plain string is the fallback.
    let leaf = fields::resolve(input, variable.field_path(), Naming::Proto)
        .ok()
        .and_then(|path| path.last().cloned());
    let (mut schema, mut description) = match &leaf {
        Some(field) => (
            constraints::constrain_element(schemas.kind_schema(&field.kind()), field),
            schemas.comments().of_field(field),
        ),
        None => (ReferenceOr::Item(typed(string(None))), None),
    };
    if !template.is_single_segment(variable) {
        let segments = template.variable_segments(variable);
        // `pattern` constrains strings only; a variable of another type spanning
        // segments is described in words alone.
        if let ReferenceOr::Item(schema) = &mut schema
            && let SchemaKind::Type(Type::String(string)) = &mut schema.schema_kind
        {
            string.pattern = Some(variable_pattern(segments));
        }
        let note = format!(
            "Spans path segments (`{}`): send its `/` separators as they are, not \
             percent-encoded.",
            variable_shape(segments)
        );
        description = Some(match description {
            Some(text) => format!("{text}\n\n{note}"),
            None => note,
        });
    }
    path_parameter(parameter_data(
        variable.field_path().to_owned(),
        description,
        schema,
    ))
}

/// State of one walk over a request message for its query parameters.
struct QueryWalk<'a> {
    /// Field paths bound by the path template.
    bound: &'a [&'a str],
    /// The `body: "field"` field, if any.
    body_field: Option<&'a FieldDescriptor>,
    /// Full names of the messages on the way down, to stop at recursion.
    stack: Vec<String>,
    out: Vec<Parameter>,
}

/// The query parameters the transcoder accepts for `route`; see the module docs of
/// [`super`].
fn query_parameters(schemas: &mut Schemas, route: &Route) -> Vec<Parameter> {
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
    walk_query(schemas, &mut walk, &input, "", true);
    walk.out
}

fn walk_query(
    schemas: &mut Schemas,
    walk: &mut QueryWalk<'_>,
    desc: &MessageDescriptor,
    prefix: &str,
    required_so_far: bool,
) {
    let by_rules = required_by_rules(desc);
    for field in desc.fields() {
        // The body field covers its whole subtree; maps have no text form.
        if (prefix.is_empty() && walk.body_field == Some(&field)) || field.is_map() {
            continue;
        }
        let name = format!("{prefix}{}", field.name());
        // Required as a parameter only if every field on the way is required:
        // an optional parent may be left out altogether.
        let required =
            required_so_far && (is_required(&field) || by_rules.iter().any(|n| n == field.name()));
        if fields::is_text_kind(&field) {
            if !walk.bound.contains(&name.as_str()) {
                let parameter = query_parameter(schemas, &field, name, required);
                walk.out.push(parameter);
            }
        } else if let Kind::Message(child) = field.kind()
            && !field.is_list()
            && !walk.stack.iter().any(|seen| seen == child.full_name())
        {
            walk.stack.push(child.full_name().to_owned());
            walk_query(schemas, walk, &child, &format!("{name}."), required);
            walk.stack.pop();
        }
    }
}

fn query_parameter(
    schemas: &mut Schemas,
    field: &FieldDescriptor,
    name: String,
    required: bool,
) -> Parameter {
    let element = schemas.kind_schema(&field.kind());
    let (schema, explode) = if field.is_list() {
        // `?tags=a&tags=b`: the transcoder appends one element per occurrence.
        (ReferenceOr::Item(array_of(element)), Some(true))
    } else {
        (element, None)
    };
    let schema = constraints::constrain(schema, field);
    let description = schemas.comments().of_field(field);
    let data = ParameterData {
        required,
        explode,
        deprecated: is_deprecated(field).then_some(true),
        ..parameter_data(name, description, schema)
    };
    Parameter::Query {
        parameter_data: data,
        allow_reserved: false,
        style: QueryStyle::Form,
        allow_empty_value: None,
    }
}

/// The body: the input message, less what the path sets, or one field of it.
fn request_body(schemas: &mut Schemas, route: &Route) -> Option<RequestBody> {
    if httpbody::request_target(route).is_some() {
        return Some(RequestBody {
            description: Some(
                "Raw bytes of any media type: the body and its `Content-Type` reach the \
                 service as they are (`google.api.HttpBody`)."
                    .to_owned(),
            ),
            content: binary_content(),
            required: false,
            extensions: Default::default(),
        });
    }
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
            let reference = schemas.message_ref(&input);
            if bound.is_empty() || matches!(reference, ReferenceOr::Item(_)) {
                let required = input.fields().any(|f| is_required(&f))
                    || !required_by_rules(&input).is_empty();
                (reference, required, None)
            } else {
                // The path sets these fields: the body need not, and is not
                // documented to. (The transcoder takes them, and the path wins.)
                let mut schema = schemas.message_schema(&input);
                let mut required = false;
                if let SchemaKind::Type(Type::Object(object)) = &mut schema.schema_kind {
                    for field in &bound {
                        object.properties.shift_remove(field.json_name());
                    }
                    object
                        .required
                        .retain(|name| !bound.iter().any(|f| f.json_name() == name));
                    required = !object.required.is_empty();
                }
                (ReferenceOr::Item(schema), required, None)
            }
        }
        BodyRule::Field(field) => (
            schemas.field_type_schema(field),
            is_required(field),
            schemas.comments().of_field(field),
        ),
    };
    Some(RequestBody {
        description,
        content: json_content(schema),
        required,
        extensions: Default::default(),
    })
}

/// `200` with the output message (or its `response_body` field), and the error body
/// for every other status.
fn responses(schemas: &mut Schemas, route: &Route) -> Responses {
    let schema = match route.response_body() {
        Some(field) => schemas.field_type_schema(field),
        None => schemas.message_ref(&route.method().output()),
    };
    let ok = if httpbody::raw_response(route) {
        let description = if route.method().is_server_streaming() {
            "Raw bytes, in the media type the service names (`google.api.HttpBody`), \
             written as they arrive: a download. A failure after the start cuts the \
             response off."
        } else {
            "Raw bytes, in the media type the service names (`google.api.HttpBody`)."
        };
        Response {
            description: description.to_owned(),
            content: binary_content(),
            ..Response::default()
        }
    } else if route.method().is_server_streaming() {
        streaming_response(schema)
    } else {
        Response {
            description: "A successful response.".to_owned(),
            content: json_content(schema),
            ..Response::default()
        }
    };
    Responses {
        default: Some(ReferenceOr::Item(error_response(
            "An error: the gRPC status as `google.rpc.Status` (code, message, details), \
             with the HTTP status of the standard gRPC-to-HTTP mapping.",
        ))),
        responses: [(StatusCode::Code(200), ReferenceOr::Item(ok))]
            .into_iter()
            .collect(),
        extensions: Default::default(),
    }
}
