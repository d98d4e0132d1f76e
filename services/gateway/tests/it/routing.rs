//! Route table behaviour over the test-only `routing.v1` and `conflict.v1` protos:
//! what a client reaches for a given method and path, and which annotations are refused.

use crate::common;

use gateway::routing::{BodyRule, RouteError, RouteTable};
use http::Method;

#[test]
fn simple_variable() {
    common::assert_routes(
        &common::library(),
        &["GET /v1/shelves/s1 -> GetShelf id=s1"],
    );
}

#[test]
fn literal_wins_over_variable() {
    common::assert_routes(
        &common::library(),
        &[
            "GET /v1/shelves/me -> GetMyShelf",
            // ...but only for its own method: PUT /v1/shelves/me is ReplaceShelf(id=me).
            "PUT /v1/shelves/me -> ReplaceShelf id=me",
            "GET /v1/shelves/mine -> GetShelf id=mine",
        ],
    );
}

#[test]
fn variable_with_segments() {
    common::assert_routes(
        &common::library(),
        &[
            "GET /v1/shelves/s1/books/b2 -> GetBook name=shelves/s1/books/b2",
            "PATCH /v1/shelves/s1/books/b2 -> UpdateBook book.name=shelves/s1/books/b2",
            // One segment short of the variable's own template: another route.
            "GET /v1/shelves/s1/books -> ListBooks shelf=s1",
            "GET /v1/shelves/s1/books/b2/x -> 404",
        ],
    );
}

#[test]
fn percent_decoding_after_splitting() {
    common::assert_routes(
        &common::library(),
        &[
            // `%2F` inside a single-segment variable is data, not a separator.
            "GET /v1/shelves/a%2Fb%20c -> GetShelf id=a/b c",
            // Literals compare with the decoded segment.
            "GET /v1/shelves/m%65 -> GetMyShelf",
            // A multi-segment variable keeps `%2F` encoded so its slashes stay meaningful.
            "GET /v1/shelves/a%2Fb/books/c%20d -> GetBook name=shelves/a%2Fb/books/c d",
            // Not UTF-8 once decoded: no variable can hold it.
            "GET /v1/shelves/%FF -> 404",
        ],
    );
}

#[test]
fn empty_segments_do_not_bind() {
    common::assert_routes(
        &common::library(),
        &["GET /v1/shelves/ -> 404", "GET v1/shelves/x -> 404"],
    );
}

#[test]
fn single_and_double_wildcards() {
    common::assert_routes(
        &common::library(),
        &[
            "GET /v1/authors/anyone/latest -> GetAnyLatest",
            "GET /v1/authors/a/b/latest -> 404",
            "GET /v1/files/a/b/c.txt -> GetFile path=a/b/c.txt",
            "GET /v1/files/one -> GetFile path=one",
            // `**` matches zero segments too.
            "GET /v1/files -> GetFile path=",
        ],
    );
}

#[test]
fn custom_verb() {
    common::assert_routes(
        &common::library(),
        &[
            "POST /v1/loans/l1:cancel -> CancelLoan id=l1",
            // Without the verb it is the plain route, and the verb route is not reachable.
            "GET /v1/loans/l1 -> GetLoan id=l1",
            "POST /v1/loans/l1 -> 405 GET",
            // A different verb is not `cancel`.
            "POST /v1/loans/l1:renew -> 405 GET",
            // A verb on a literal.
            "GET /v1/books:search -> SearchBooks",
        ],
    );
}

#[test]
fn colon_in_a_plain_segment() {
    common::assert_routes(
        &common::library(),
        &[
            // No GET route has a verb here, so the colon is part of the id.
            "GET /v1/loans/a:b -> GetLoan id=a:b",
            // An encoded colon is never a verb separator.
            "GET /v1/loans/l1%3Acancel -> GetLoan id=l1:cancel",
            "POST /v1/loans/l1%3Acancel -> 405 GET",
        ],
    );
}

#[test]
fn all_verbs_and_custom_methods() {
    common::assert_routes(
        &common::library(),
        &[
            "GET /v1/shelves/s -> GetShelf id=s",
            "PUT /v1/shelves/s -> ReplaceShelf id=s",
            "DELETE /v1/shelves/s -> DeleteShelf id=s",
            "PATCH /v1/shelves/s/books/b -> UpdateBook book.name=shelves/s/books/b",
            "POST /v1/shelves/s/books -> CreateBook shelf=s",
            "LOCK /v1/shelves/s -> LockShelf id=s",
            "POST /v1/shelves/s -> 405 GET, PUT, DELETE, LOCK",
        ],
    );
}

#[test]
fn additional_bindings_route_to_the_same_method() {
    let table = common::library();
    common::assert_routes(
        &table,
        &[
            "POST /v1/shelves/s1/books -> CreateBook shelf=s1",
            "POST /v1/books -> CreateBook",
            "PUT /v1/shelves/s1/books/b1 -> CreateBook shelf=s1, book.name=b1",
        ],
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
    let route = common::route(&table, "ListBooks");
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
    common::assert_routes(
        &common::library(),
        &[
            "DELETE /v1/shelves/s1/books -> 405 GET, POST",
            "GET /v2/shelves/s1 -> 404",
            "GET / -> 404",
            "GET  -> 404",
        ],
    );
}

/// The error building `service` of `conflict.v1` fails with, as text, after checking it
/// mentions each of `needles`.
#[track_caller]
fn assert_build_fails(service: &str, needles: &[&str]) -> RouteError {
    let err = common::conflict_service(service).expect_err(service);
    let message = err.to_string();
    for needle in needles {
        assert!(message.contains(needle), "{service}: {needle}: {message}");
    }
    err
}

#[test]
fn conflicting_routes_fail_naming_both_methods() {
    let err = assert_build_fails(
        "ConflictService",
        &[
            "conflict.v1.ConflictService.GetA",
            "conflict.v1.ConflictService.GetB",
            "/v1/{a}",
            "/v1/{b}",
        ],
    );
    assert!(matches!(err, RouteError::Conflict { .. }), "{err}");
    assert_build_fails(
        "BindingConflictService",
        &[
            "BindingConflictService.List",
            "BindingConflictService.Search",
        ],
    );
}

#[test]
fn different_methods_or_verbs_do_not_conflict() {
    let table = common::conflict_service("NoConflictService").unwrap();
    common::assert_routes(
        &table,
        &[
            "GET /v1/x -> GetA a=x",
            "DELETE /v1/x -> DeleteB b=x",
            "GET /v1/x:run -> Run a=x",
        ],
    );
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
        // The error names the method, and what is wrong with its rule.
        assert_build_fails(service, &[&format!("conflict.v1.{service}"), needle]);
    }
}

#[test]
fn client_and_bidi_streaming_methods_are_skipped_server_streaming_is_routed() {
    let table = common::conflict_service("StreamingService").expect("the table builds");
    let names: Vec<&str> = table.routes().map(|r| r.method().name()).collect();
    assert_eq!(names, ["Watch"]);
    common::assert_routes(&table, &["GET /v1/watch -> Watch"]);
}

#[test]
fn pool_without_annotations_is_an_error() {
    let pool = prost_reflect::DescriptorPool::new();
    assert!(matches!(
        RouteTable::build(&pool, []),
        Err(RouteError::MissingHttpExtension)
    ));
}
