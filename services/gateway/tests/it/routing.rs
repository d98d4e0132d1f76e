//! Route table behaviour over the test-only `routing.v1` and `conflict.v1` protos:
//! what a client reaches for a given method and path, and which annotations are refused.

use crate::common::{self, assert_not_allowed, assert_not_found};

use gateway::routing::{BodyRule, RouteError, RouteMatch, RouteTable};
use http::Method;

/// The gRPC method name and bindings for a request that must find a route.
fn found(table: &RouteTable, method: Method, path: &str) -> (String, Vec<(String, String)>) {
    match table.find(&method, path) {
        RouteMatch::Found { route, bindings } => (route.method().name().to_owned(), bindings),
        other => panic!("{method} {path}: expected a route, got {other:?}"),
    }
}

fn binds(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// `request` (`METHOD /path`, as on an HTTP request line) reaches the gRPC method
/// `rpc` with exactly `bindings`.
#[track_caller]
fn assert_routes(table: &RouteTable, request: &str, rpc: &str, bindings: &[(&str, &str)]) {
    let (method, path) = request.split_once(' ').expect("METHOD /path");
    let method = Method::from_bytes(method.as_bytes()).expect("an HTTP method");
    assert_eq!(
        found(table, method, path),
        (rpc.to_owned(), binds(bindings)),
        "{request}"
    );
}

#[test]
fn simple_variable() {
    let table = common::library();
    assert_routes(&table, "GET /v1/shelves/s1", "GetShelf", &[("id", "s1")]);
}

#[test]
fn literal_wins_over_variable() {
    let table = common::library();
    assert_routes(&table, "GET /v1/shelves/me", "GetMyShelf", &[]);
    // ...but only for its own method: PUT /v1/shelves/me is ReplaceShelf(id=me).
    assert_routes(
        &table,
        "PUT /v1/shelves/me",
        "ReplaceShelf",
        &[("id", "me")],
    );
    assert_routes(
        &table,
        "GET /v1/shelves/mine",
        "GetShelf",
        &[("id", "mine")],
    );
}

#[test]
fn variable_with_segments() {
    let table = common::library();
    assert_routes(
        &table,
        "GET /v1/shelves/s1/books/b2",
        "GetBook",
        &[("name", "shelves/s1/books/b2")],
    );
    assert_routes(
        &table,
        "PATCH /v1/shelves/s1/books/b2",
        "UpdateBook",
        &[("book.name", "shelves/s1/books/b2")],
    );
    // One segment short of the variable's own template: another route.
    assert_routes(
        &table,
        "GET /v1/shelves/s1/books",
        "ListBooks",
        &[("shelf", "s1")],
    );
    assert_not_found(&table, Method::GET, "/v1/shelves/s1/books/b2/x");
}

#[test]
fn percent_decoding_after_splitting() {
    let table = common::library();
    // `%2F` inside a single-segment variable is data, not a separator.
    assert_routes(
        &table,
        "GET /v1/shelves/a%2Fb%20c",
        "GetShelf",
        &[("id", "a/b c")],
    );
    // Literals compare with the decoded segment.
    assert_routes(&table, "GET /v1/shelves/m%65", "GetMyShelf", &[]);
    // A multi-segment variable keeps `%2F` encoded so its slashes stay meaningful.
    assert_routes(
        &table,
        "GET /v1/shelves/a%2Fb/books/c%20d",
        "GetBook",
        &[("name", "shelves/a%2Fb/books/c d")],
    );
    // Not UTF-8 once decoded: no variable can hold it.
    assert_not_found(&table, Method::GET, "/v1/shelves/%FF");
}

#[test]
fn empty_segments_do_not_bind() {
    let table = common::library();
    assert_not_found(&table, Method::GET, "/v1/shelves/");
    assert_not_found(&table, Method::GET, "v1/shelves/x");
}

#[test]
fn single_and_double_wildcards() {
    let table = common::library();
    assert_routes(&table, "GET /v1/authors/anyone/latest", "GetAnyLatest", &[]);
    assert_not_found(&table, Method::GET, "/v1/authors/a/b/latest");
    assert_routes(
        &table,
        "GET /v1/files/a/b/c.txt",
        "GetFile",
        &[("path", "a/b/c.txt")],
    );
    assert_routes(&table, "GET /v1/files/one", "GetFile", &[("path", "one")]);
    // `**` matches zero segments too.
    assert_routes(&table, "GET /v1/files", "GetFile", &[("path", "")]);
}

#[test]
fn custom_verb() {
    let table = common::library();
    assert_routes(
        &table,
        "POST /v1/loans/l1:cancel",
        "CancelLoan",
        &[("id", "l1")],
    );
    // Without the verb it is the plain route, and the verb route is not reachable.
    assert_routes(&table, "GET /v1/loans/l1", "GetLoan", &[("id", "l1")]);
    assert_not_allowed(&table, Method::POST, "/v1/loans/l1", &[Method::GET]);
    // A different verb is not `cancel`.
    assert!(matches!(
        table.find(&Method::POST, "/v1/loans/l1:renew"),
        RouteMatch::MethodNotAllowed { .. }
    ));
    // A verb on a literal.
    assert_routes(&table, "GET /v1/books:search", "SearchBooks", &[]);
}

#[test]
fn colon_in_a_plain_segment() {
    let table = common::library();
    // No GET route has a verb here, so the colon is part of the id.
    assert_routes(&table, "GET /v1/loans/a:b", "GetLoan", &[("id", "a:b")]);
    // An encoded colon is never a verb separator.
    assert_routes(
        &table,
        "GET /v1/loans/l1%3Acancel",
        "GetLoan",
        &[("id", "l1:cancel")],
    );
    assert!(matches!(
        table.find(&Method::POST, "/v1/loans/l1%3Acancel"),
        RouteMatch::MethodNotAllowed { .. }
    ));
}

#[test]
fn all_verbs_and_custom_methods() {
    let table = common::library();
    assert_eq!(found(&table, Method::GET, "/v1/shelves/s").0, "GetShelf");
    assert_eq!(
        found(&table, Method::PUT, "/v1/shelves/s").0,
        "ReplaceShelf"
    );
    assert_eq!(
        found(&table, Method::DELETE, "/v1/shelves/s").0,
        "DeleteShelf"
    );
    assert_eq!(
        found(&table, Method::PATCH, "/v1/shelves/s/books/b").0,
        "UpdateBook"
    );
    assert_eq!(
        found(&table, Method::POST, "/v1/shelves/s/books").0,
        "CreateBook"
    );
    let lock = Method::from_bytes(b"LOCK").unwrap();
    assert_eq!(found(&table, lock.clone(), "/v1/shelves/s").0, "LockShelf");

    let allowed = [Method::GET, Method::PUT, Method::DELETE, lock];
    assert_not_allowed(&table, Method::POST, "/v1/shelves/s", &allowed);
}

#[test]
fn additional_bindings_route_to_the_same_method() {
    let table = common::library();
    assert_routes(
        &table,
        "POST /v1/shelves/s1/books",
        "CreateBook",
        &[("shelf", "s1")],
    );
    assert_routes(&table, "POST /v1/books", "CreateBook", &[]);
    assert_routes(
        &table,
        "PUT /v1/shelves/s1/books/b1",
        "CreateBook",
        &[("shelf", "s1"), ("book.name", "b1")],
    );

    let create: Vec<_> = table
        .routes()
        .filter(|r| r.method().name() == "CreateBook")
        .collect();
    assert_eq!(create.len(), 3);
    assert_eq!(
        create.iter().map(|r| r.binding_index()).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert!(matches!(create[0].body(), BodyRule::Field(f) if f.name() == "book"));
    assert_eq!(create[1].body(), &BodyRule::Whole);
    assert_eq!(create[2].body(), &BodyRule::None);
}

#[test]
fn route_details() {
    let table = common::library();
    let route = table
        .routes()
        .find(|r| r.method().name() == "ListBooks")
        .unwrap();
    assert_eq!(route.grpc_path(), "/routing.v1.LibraryService/ListBooks");
    assert_eq!(route.http_method(), &Method::GET);
    assert_eq!(route.template().as_str(), "/v1/shelves/{shelf}/books");
    assert_eq!(route.body(), &BodyRule::None);
    assert_eq!(route.response_body().map(|f| f.name()), Some("books"));

    // Every annotated method and binding is routed; the unannotated one is not.
    assert!(table.routes().all(|r| r.method().name() != "Internal"));
    assert_eq!(table.routes().count(), 21);
}

#[test]
fn method_not_allowed_and_not_found() {
    let table = common::library();
    let allowed = [Method::GET, Method::POST];
    assert_not_allowed(&table, Method::DELETE, "/v1/shelves/s1/books", &allowed);
    assert_not_found(&table, Method::GET, "/v2/shelves/s1");
    assert_not_found(&table, Method::GET, "/");
    assert_not_found(&table, Method::GET, "");
}

#[test]
fn conflicting_routes_fail_naming_both_methods() {
    let err = common::conflict_service("ConflictService").unwrap_err();
    assert!(matches!(err, RouteError::Conflict { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("conflict.v1.ConflictService.GetA"),
        "{message}"
    );
    assert!(
        message.contains("conflict.v1.ConflictService.GetB"),
        "{message}"
    );
    assert!(
        message.contains("/v1/{a}") && message.contains("/v1/{b}"),
        "{message}"
    );

    let err = common::conflict_service("BindingConflictService").unwrap_err();
    let message = err.to_string();
    assert!(message.contains("BindingConflictService.List"), "{message}");
    assert!(
        message.contains("BindingConflictService.Search"),
        "{message}"
    );
}

#[test]
fn different_methods_or_verbs_do_not_conflict() {
    let table = common::conflict_service("NoConflictService").unwrap();
    assert_eq!(found(&table, Method::GET, "/v1/x").0, "GetA");
    assert_eq!(found(&table, Method::DELETE, "/v1/x").0, "DeleteB");
    assert_eq!(found(&table, Method::GET, "/v1/x:run").0, "Run");
}

#[test]
fn invalid_rules_fail_at_build_time() {
    let cases = [
        ("UnknownVariableService", "\"nope\""),
        ("RepeatedVariableService", "repeated"),
        ("MessageVariableService", "message field"),
        ("ScalarParentVariableService", "not a singular message"),
        ("BadBodyService", "\"missing\""),
        ("BadResponseBodyService", "\"missing\""),
        ("BadTemplateService", "/v1/**/x"),
    ];
    for (service, needle) in cases {
        let err = common::conflict_service(service).expect_err(service);
        let message = err.to_string();
        assert!(
            message.contains(&format!("conflict.v1.{service}")),
            "{service}: error names the method: {message}"
        );
        assert!(message.contains(needle), "{service}: {message}");
    }
}

#[test]
fn client_and_bidi_streaming_methods_are_skipped_server_streaming_is_routed() {
    let table = common::conflict_service("StreamingService").expect("the table builds");
    let names: Vec<&str> = table.routes().map(|r| r.method().name()).collect();
    assert_eq!(names, ["Watch"]);
    assert_eq!(found(&table, Method::GET, "/v1/watch").0, "Watch");
}

#[test]
fn pool_without_annotations_is_an_error() {
    let pool = prost_reflect::DescriptorPool::new();
    assert!(matches!(
        RouteTable::build(&pool, []),
        Err(RouteError::MissingHttpExtension)
    ));
}
