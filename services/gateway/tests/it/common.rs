//! Shared by the integration tests: route tables of the test protos and of the
//! platform's APIs, and checks of what a request reaches and turns into.

use std::path::PathBuf;

use gateway::routing::{Route, RouteError, RouteMatch, RouteTable};
use gateway::{TranscodeError, build_request};
use http::Method;
use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::Value;

/// Compiles `files` (relative to `tests/protos`) with their imports, keeping options,
/// with `/proto/vendor` as an include dir for `google/api/*.proto`.
fn pool(files: &[&str]) -> DescriptorPool {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut compiler = protox::Compiler::new([
        manifest.join("tests/protos"),
        manifest.join("../../proto/vendor"),
    ])
    .expect("include dirs exist");
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(files).expect("test protos compile");
    // `encode_file_descriptor_set` keeps the google.api.http option bytes.
    DescriptorPool::decode(compiler.encode_file_descriptor_set().as_slice())
        .expect("descriptor set decodes")
}

/// The route table of the service `service` (its full name) in the test proto `file`.
pub(crate) fn table_of(file: &str, service: &str) -> Result<RouteTable, RouteError> {
    let pool = pool(&[file]);
    let service = pool
        .get_service_by_name(service)
        .unwrap_or_else(|| panic!("{service} is in {file}"));
    RouteTable::build(&pool, [service])
}

/// The route table of `routing.v1.LibraryService`.
pub(crate) fn library() -> RouteTable {
    table_of("routing/v1/routing.proto", "routing.v1.LibraryService").expect("routes build")
}

/// Builds the table of one service of `conflict/v1/conflict.proto`.
pub(crate) fn conflict_service(name: &str) -> Result<RouteTable, RouteError> {
    table_of("conflict/v1/conflict.proto", &format!("conflict.v1.{name}"))
}

/// The route table of the platform's own APIs, `users.v1` and `orders.v1`.
pub(crate) fn platform() -> RouteTable {
    let pool = platform_proto::descriptor_pool();
    let services = ["users.v1.UserService", "orders.v1.OrderService"]
        .map(|name| pool.get_service_by_name(name).expect("service in pool"));
    RouteTable::build(pool, services).expect("the platform's annotations are valid")
}

/// The first route of the gRPC method `method`, named as `Rpc` or `/package.Service/Rpc`.
pub(crate) fn route<'a>(table: &'a RouteTable, method: &str) -> &'a Route {
    table
        .routes()
        .find(|r| r.method().name() == method || r.grpc_path() == method)
        .unwrap_or_else(|| panic!("no route to {method}"))
}

/// `METHOD /path` as on an HTTP request line: the method and the rest.
fn request_line(request: &str) -> (Method, &str) {
    let (method, target) = request.split_once(' ').expect("METHOD /path");
    let method = Method::from_bytes(method.as_bytes()).expect("an HTTP method");
    (method, target)
}

/// Checks each case `METHOD /path -> OUTCOME` (the request as on an HTTP request
/// line) against `table`. The outcome is `Rpc name=value, name=value`: the gRPC
/// method reached, with exactly these bindings; `404`: no route at all; or
/// `405 GET, PUT`: a template matches, and its routes take exactly these methods.
#[track_caller]
pub(crate) fn assert_routes(table: &RouteTable, cases: &[&str]) {
    for case in cases {
        let (request, outcome) = case.split_once(" -> ").expect("REQUEST -> OUTCOME");
        let (method, path) = request_line(request);
        let (head, rest) = outcome.split_once(' ').unwrap_or((outcome, ""));
        let list = rest.split(", ").filter(|item| !item.is_empty());
        match (head, table.find(&method, path)) {
            ("404", RouteMatch::NotFound) => {}
            ("405", RouteMatch::MethodNotAllowed { allowed }) => {
                let want: Vec<Method> = list.map(|m| m.parse().expect("a method")).collect();
                assert_eq!(allowed, want, "{case}");
            }
            (rpc, RouteMatch::Found { route, bindings }) => {
                let want: Vec<(String, String)> = list
                    .map(|binding| binding.split_once('=').expect("name=value"))
                    .map(|(name, value)| (name.to_owned(), value.to_owned()))
                    .collect();
                let got = (route.method().name(), bindings);
                assert_eq!(got, (rpc, want), "{case}");
            }
            (_, other) => panic!("{case}: got {other:?}"),
        }
    }
}

/// Routes `request` (`METHOD /path?query`, as on an HTTP request line) and builds the
/// gRPC request from it and `body`: the gRPC path it reached, and the message or why
/// none could be built. Panics when no route matches.
pub(crate) fn request(
    table: &RouteTable,
    request: &str,
    body: &str,
) -> (String, Result<DynamicMessage, TranscodeError>) {
    let (method, target) = request_line(request);
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    match table.find(&method, path) {
        RouteMatch::Found { route, bindings } => (
            route.grpc_path().to_owned(),
            build_request(&route, &bindings, query, body.as_bytes()),
        ),
        other => panic!("{request}: expected a route, got {other:?}"),
    }
}

/// The gRPC path `request` (`METHOD /path?query`) with `body` reaches, and the message
/// it builds.
#[track_caller]
pub(crate) fn built(table: &RouteTable, request: &str, body: &str) -> (String, DynamicMessage) {
    match self::request(table, request, body) {
        (grpc, Ok(message)) => (grpc, message),
        (_, Err(e)) => panic!("{request} {body}: {e}"),
    }
}

/// Why `request` (`METHOD /path?query`) with `body` builds no message.
#[track_caller]
pub(crate) fn refused(table: &RouteTable, request: &str, body: &str) -> TranscodeError {
    match self::request(table, request, body) {
        (_, Ok(message)) => panic!("{request}: expected an error, got {message:?}"),
        (_, Err(e)) => e,
    }
}

/// The string `key` of each element of the JSON array `array`.
pub(crate) fn each<'a>(array: &'a Value, key: &str) -> Vec<&'a str> {
    let items = array
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {array}"));
    items
        .iter()
        .map(|item| {
            item[key]
                .as_str()
                .unwrap_or_else(|| panic!("no {key} in {item}"))
        })
        .collect()
}
