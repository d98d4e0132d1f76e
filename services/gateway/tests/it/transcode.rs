//! Request building and response rendering over the test-only `routing.v1` proto:
//! the gRPC message a client's HTTP request turns into, and the JSON it gets back.

use crate::common;

use gateway::routing::{RouteMatch, RouteTable};
use gateway::{TranscodeError, build_request, render_response};
use http::Method;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use serde_json::{Value as Json, json};

/// Routes `target` (path and optional query) and builds the request message.
fn request(
    table: &RouteTable,
    method: Method,
    target: &str,
    body: &str,
) -> Result<DynamicMessage, TranscodeError> {
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    match table.find(&method, path) {
        RouteMatch::Found { route, bindings } => {
            build_request(&route, &bindings, query, body.as_bytes())
        }
        other => panic!("{method} {path}: expected a route, got {other:?}"),
    }
}

/// The message as canonical JSON, for comparing whole messages at once.
fn as_json(message: &DynamicMessage) -> Json {
    serde_json::to_value(message).unwrap()
}

fn ok(table: &RouteTable, method: Method, target: &str, body: &str) -> Json {
    as_json(
        &request(table, method.clone(), target, body).unwrap_or_else(|e| {
            panic!("{method} {target}: {e}");
        }),
    )
}

fn err(table: &RouteTable, method: Method, target: &str, body: &str) -> TranscodeError {
    match request(table, method.clone(), target, body) {
        Ok(message) => panic!("{method} {target}: expected an error, got {message:?}"),
        Err(e) => e,
    }
}

#[test]
fn whole_body_in_either_naming() {
    let table = common::library();
    let camel = ok(
        &table,
        Method::POST,
        "/v1/books",
        r#"{"book": {"name": "n", "title": "T", "pageCount": "12", "genre": "GENRE_FICTION",
            "publishTime": "2024-01-02T03:04:05Z", "author": {"displayName": "Ann"}},
            "requestId": "r1"}"#,
    );
    let snake = ok(
        &table,
        Method::POST,
        "/v1/books",
        r#"{"book": {"name": "n", "title": "T", "page_count": 12, "genre": 1,
            "publish_time": "2024-01-02T03:04:05Z", "author": {"display_name": "Ann"}},
            "request_id": "r1"}"#,
    );
    let expected = json!({
        "book": {
            "name": "n", "title": "T", "pageCount": "12", "genre": "GENRE_FICTION",
            "publishTime": "2024-01-02T03:04:05Z", "author": {"displayName": "Ann"}
        },
        "requestId": "r1"
    });
    assert_eq!(camel, expected);
    assert_eq!(snake, expected);
}

#[test]
fn empty_body_is_an_empty_message() {
    let table = common::library();
    assert_eq!(ok(&table, Method::POST, "/v1/books", ""), json!({}));
    assert_eq!(ok(&table, Method::POST, "/v1/books", " \n"), json!({}));
    assert_eq!(
        ok(&table, Method::POST, "/v1/shelves/s1/books", ""),
        json!({"shelf": "s1"})
    );
}

#[test]
fn path_wins_over_body() {
    let table = common::library();
    assert_eq!(
        ok(
            &table,
            Method::PUT,
            "/v1/shelves/s1",
            r#"{"id": "other", "theme": "sea", "bookCount": 3}"#
        ),
        json!({"id": "s1", "theme": "sea", "bookCount": "3"})
    );
    // A path variable inside the body field.
    assert_eq!(
        ok(
            &table,
            Method::PATCH,
            "/v1/shelves/s1/books/b1?update_mask=title",
            r#"{"name": "ignored", "title": "New"}"#
        ),
        json!({"book": {"name": "shelves/s1/books/b1", "title": "New"}, "updateMask": "title"})
    );
}

#[test]
fn field_body() {
    let table = common::library();
    assert_eq!(
        ok(
            &table,
            Method::POST,
            "/v1/shelves/s1/books?requestId=r9",
            r#"{"title": "T", "inStock": true}"#
        ),
        json!({"shelf": "s1", "book": {"title": "T", "inStock": true}, "requestId": "r9"})
    );
    // The body is the book itself, so its fields are not top-level request fields.
    assert_eq!(
        err(
            &table,
            Method::POST,
            "/v1/shelves/s1/books",
            r#"{"book": {}}"#
        ),
        TranscodeError::UnknownBodyField {
            name: "book".to_owned()
        }
    );
    // The query string may not reach into the body field.
    assert_eq!(
        err(
            &table,
            Method::POST,
            "/v1/shelves/s1/books?book.title=x",
            "{}"
        )
        .to_string(),
        "query parameter \"book.title\" is not allowed: that field is set by the request body"
    );
}

#[test]
fn an_absent_update_mask_is_filled_from_the_body_keys() {
    let table = common::library();
    let body = r#"{"title": "T", "author": {"displayName": "Ann"}, "publish_time": "2024-01-02T03:04:05Z"}"#;
    let resource = ok(&table, Method::PATCH, "/v1/authored/b1", body);
    assert_eq!(
        resource["updateMask"], "author.displayName,publishTime,title",
        "nested keys as dotted paths; well-known types whole: {resource}"
    );

    // `body: "*"`: relative to the request, without the mask itself.
    let whole = ok(
        &table,
        Method::PATCH,
        "/v1/authored/b1:whole",
        r#"{"book": {"pageCount": 3}, "allowMissing": true}"#,
    );
    assert_eq!(
        whole["updateMask"], "allowMissing,book.pageCount",
        "{whole}"
    );

    // A mask the client sends, in the body or the query, is left as it is.
    let sent = ok(
        &table,
        Method::PATCH,
        "/v1/authored/b1?update_mask=title",
        r#"{"title": "T", "inStock": true}"#,
    );
    assert_eq!(sent["updateMask"], "title");
    let sent = ok(
        &table,
        Method::PATCH,
        "/v1/authored/b1:whole",
        r#"{"book": {"title": "T"}, "updateMask": "book.title,book.genre"}"#,
    );
    assert_eq!(sent["updateMask"], "book.title,book.genre");

    // No body, no mask.
    let empty = ok(&table, Method::PATCH, "/v1/authored/b1", "");
    assert!(empty.get("updateMask").is_none(), "{empty}");
}

#[test]
fn repeated_scalar_body_field() {
    let table = common::library();
    assert_eq!(
        ok(&table, Method::POST, "/v1/shelves/s1:tag", r#"["a", "b"]"#),
        json!({"id": "s1", "tags": ["a", "b"]})
    );
    assert!(matches!(
        err(&table, Method::POST, "/v1/shelves/s1:tag", r#"["a", "#),
        TranscodeError::MalformedJson { line: 1, .. }
    ));
    assert!(matches!(
        err(&table, Method::POST, "/v1/shelves/s1:tag", "[1]"),
        TranscodeError::InvalidBody { .. }
    ));
}

#[test]
fn no_body_rule_rejects_a_body() {
    let table = common::library();
    assert_eq!(
        err(&table, Method::GET, "/v1/shelves/s1", "{}"),
        TranscodeError::UnexpectedBody
    );
    assert_eq!(
        ok(&table, Method::POST, "/v1/loans/l1:cancel", ""),
        json!({"id": "l1"})
    );
}

#[test]
fn json_errors_name_the_problem() {
    let table = common::library();
    let e = err(&table, Method::POST, "/v1/books", r#"{"requestId": "#);
    assert!(
        matches!(
            e,
            TranscodeError::MalformedJson {
                line: 1,
                column: 14,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with("malformed JSON at line 1 column 14: "),
        "{e}"
    );

    let e = err(
        &table,
        Method::POST,
        "/v1/books",
        "{\n  \"requestId\": \"r\",\n  x\n}",
    );
    assert!(
        matches!(
            e,
            TranscodeError::MalformedJson {
                line: 3,
                column: 3,
                ..
            }
        ),
        "{e:?}"
    );

    let e = err(
        &table,
        Method::POST,
        "/v1/books",
        r#"{"requestId": "r"} trailing"#,
    );
    assert!(matches!(e, TranscodeError::MalformedJson { .. }), "{e:?}");

    assert_eq!(
        err(&table, Method::POST, "/v1/books", r#"{"foo": 1}"#).to_string(),
        "unknown field \"foo\" in request body"
    );
    assert_eq!(
        err(
            &table,
            Method::POST,
            "/v1/books",
            r#"{"book": {"author": {"nmae": "x"}}}"#
        ),
        TranscodeError::UnknownBodyField {
            name: "nmae".to_owned()
        }
    );
    let e = err(
        &table,
        Method::POST,
        "/v1/books",
        r#"{"book": {"pageCount": "many"}}"#,
    );
    assert!(matches!(e, TranscodeError::InvalidBody { .. }), "{e:?}");
    let e = err(
        &table,
        Method::POST,
        "/v1/books",
        r#"{"book": {"genre": "GENRE_POETRY"}}"#,
    );
    assert!(e.to_string().contains("GENRE_POETRY"), "{e}");
    assert!(e.is_client_error());
}

#[test]
fn query_fills_scalars_repeated_enums_and_nested_fields() {
    let table = common::library();
    let target = "/v1/books:search?query=rust+lang%21&page_size=10&minPages=100\
        &in_stock=true&max_price=9.5&tags=a&tags=b&genres=GENRE_FICTION&genres=2\
        &genre=GENRE_HISTORY&filter.author.display_name=Ann&filter.publishedAfter=2024-01-01T00:00:00Z\
        &filter.languageCode=en&filter.max_age=1.5s&min_rating=4&cursor=aGk&ids=1&ids=-2";
    assert_eq!(
        ok(&table, Method::GET, target, ""),
        json!({
            "query": "rust lang!",
            "pageSize": 10,
            "minPages": "100",
            "inStock": true,
            "maxPrice": 9.5,
            "tags": ["a", "b"],
            "genres": ["GENRE_FICTION", "GENRE_HISTORY"],
            "genre": "GENRE_HISTORY",
            "filter": {
                "author": {"displayName": "Ann"},
                "publishedAfter": "2024-01-01T00:00:00Z",
                "languageCode": "en",
                "maxAge": "1.500s"
            },
            "minRating": 4,
            "cursor": "aGk=",
            "ids": ["1", "-2"]
        })
    );
}

#[test]
fn query_errors_name_the_parameter() {
    let table = common::library();
    let search = "/v1/books:search";
    let cases: [(&str, TranscodeError); 8] = [
        (
            "pagesize=10",
            TranscodeError::UnknownQueryParameter {
                name: "pagesize".to_owned(),
            },
        ),
        (
            "page_size.x=10",
            TranscodeError::UnknownQueryParameter {
                name: "page_size.x".to_owned(),
            },
        ),
        (
            "page_size=1&pageSize=2",
            TranscodeError::RepeatedQueryParameter {
                name: "page_size".to_owned(),
            },
        ),
        (
            "filter=x",
            TranscodeError::QueryParameterNotSettable {
                name: "filter".to_owned(),
            },
        ),
        (
            "filters.language_code=en",
            TranscodeError::QueryParameterNotSettable {
                name: "filters.language_code".to_owned(),
            },
        ),
        (
            "labels=x",
            TranscodeError::QueryParameterNotSettable {
                name: "labels".to_owned(),
            },
        ),
        (
            "query=%FF",
            TranscodeError::InvalidQueryEncoding {
                pair: "query=%FF".to_owned(),
            },
        ),
        (
            "filter.publishedAfter=yesterday",
            TranscodeError::InvalidFieldValue {
                field: "filter.published_after".to_owned(),
                value: "yesterday".to_owned(),
                expected: "an RFC 3339 timestamp such as 2024-01-31T12:00:00Z".to_owned(),
            },
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(
            err(&table, Method::GET, &format!("{search}?{query}"), ""),
            expected,
            "{query}"
        );
    }

    assert_eq!(
        err(&table, Method::GET, "/v1/books:search?page_size=abc", "").to_string(),
        "invalid value \"abc\" for field \"page_size\": expected an integer"
    );
    assert_eq!(
        err(&table, Method::GET, "/v1/books:search?genre=POETRY", "").to_string(),
        "invalid value \"POETRY\" for field \"genre\": expected one of \
         GENRE_UNSPECIFIED, GENRE_FICTION, GENRE_HISTORY"
    );
    assert_eq!(
        err(&table, Method::GET, "/v1/books:search?pagesize=10", "").field(),
        Some("pagesize")
    );
}

#[test]
fn query_may_not_override_path_or_whole_body() {
    let table = common::library();
    assert_eq!(
        err(&table, Method::DELETE, "/v1/shelves/s1?id=s2", ""),
        TranscodeError::QueryParameterInPath {
            name: "id".to_owned()
        }
    );
    assert_eq!(
        ok(&table, Method::DELETE, "/v1/shelves/s1?force=true", ""),
        json!({"id": "s1", "force": true})
    );
    assert_eq!(
        err(&table, Method::PUT, "/v1/shelves/s1?theme=x", "{}"),
        TranscodeError::QueryParameterInBody {
            name: "theme".to_owned()
        }
    );
    // Unknown still reads as unknown, whatever the body rule.
    assert_eq!(
        err(&table, Method::PUT, "/v1/shelves/s1?them=x", "{}"),
        TranscodeError::UnknownQueryParameter {
            name: "them".to_owned()
        }
    );
}

#[test]
fn typed_path_variables() {
    let table = common::library();
    assert_eq!(
        ok(
            &table,
            Method::GET,
            "/v1/typed/-5/9007199254740993/true/GENRE_FICTION/0.25/7/aGk",
            ""
        ),
        json!({
            "count": -5, "big": "9007199254740993", "flag": true, "genre": "GENRE_FICTION",
            "ratio": 0.25, "rating": 7, "blob": "aGk="
        })
    );
    // Enum by number.
    assert_eq!(
        ok(&table, Method::GET, "/v1/typed/1/2/false/2/1/0/aGk", "")["genre"],
        json!("GENRE_HISTORY")
    );
    let cases = [
        ("/v1/typed/abc/2/true/1/1/1/aGk", "count", "abc"),
        ("/v1/typed/1/2/yes/1/1/1/aGk", "flag", "yes"),
        ("/v1/typed/1/2/true/NOPE/1/1/aGk", "genre", "NOPE"),
        ("/v1/typed/1/2/true/1/x/1/aGk", "ratio", "x"),
        ("/v1/typed/1/2/true/1/1/-1/aGk", "rating", "-1"),
        ("/v1/typed/1/2/true/1/1/1/!!", "blob", "!!"),
    ];
    for (path, field, value) in cases {
        match err(&table, Method::GET, path, "") {
            TranscodeError::InvalidFieldValue {
                field: f, value: v, ..
            } => assert_eq!((f.as_str(), v.as_str()), (field, value), "{path}"),
            other => panic!("{path}: {other:?}"),
        }
    }
}

fn message(table: &RouteTable, name: &str, value: Json) -> DynamicMessage {
    let pool = table
        .routes()
        .next()
        .unwrap()
        .method()
        .parent_pool()
        .clone();
    let desc: MessageDescriptor = pool.get_message_by_name(name).unwrap();
    DynamicMessage::deserialize(desc, value).unwrap()
}

fn render(table: &RouteTable, method: &str, message: &DynamicMessage) -> Json {
    let route = table
        .routes()
        .find(|r| r.method().name() == method)
        .unwrap();
    serde_json::from_slice(&render_response(route, message).unwrap()).unwrap()
}

#[test]
fn render_whole_message_canonically() {
    let table = common::library();
    let book = message(
        &table,
        "routing.v1.Book",
        json!({
            "name": "shelves/s/books/b", "title": "", "genre": "GENRE_FICTION",
            "page_count": 12, "publish_time": "2024-01-02T03:04:05.500Z", "in_stock": false
        }),
    );
    // Default values (title "", in_stock false) are omitted; int64 is a string.
    assert_eq!(
        render(&table, "GetBook", &book),
        json!({
            "name": "shelves/s/books/b", "genre": "GENRE_FICTION", "pageCount": "12",
            "publishTime": "2024-01-02T03:04:05.500Z"
        })
    );
}

#[test]
fn render_response_body_fields() {
    let table = common::library();
    let list = message(
        &table,
        "routing.v1.ListBooksResponse",
        json!({"books": [{"name": "a"}, {"pageCount": 3}], "nextPageToken": "t"}),
    );
    assert_eq!(
        render(&table, "ListBooks", &list),
        json!([{"name": "a"}, {"pageCount": "3"}])
    );
    let empty = message(&table, "routing.v1.ListBooksResponse", json!({}));
    assert_eq!(render(&table, "ListBooks", &empty), json!([]));

    let summary = message(
        &table,
        "routing.v1.ShelfSummaryResponse",
        json!({"summary": {"id": "s1", "bookCount": 2}, "unused": 5}),
    );
    assert_eq!(
        render(&table, "GetShelfSummary", &summary),
        json!({"id": "s1", "bookCount": "2"})
    );
    let unset = message(&table, "routing.v1.ShelfSummaryResponse", json!({}));
    assert_eq!(render(&table, "GetShelfSummary", &unset), json!({}));
}

#[test]
fn render_empty_and_wrong_type() {
    let table = common::library();
    let empty = message(&table, "google.protobuf.Empty", json!({}));
    assert_eq!(render(&table, "DeleteShelf", &empty), json!({}));

    let route = table
        .routes()
        .find(|r| r.method().name() == "GetShelf")
        .unwrap();
    let e = render_response(route, &empty).unwrap_err();
    assert!(
        matches!(e, TranscodeError::WrongResponseType { .. }),
        "{e:?}"
    );
    assert!(!e.is_client_error());
}
