//! Request building and response rendering over the test-only `routing.v1` proto:
//! the gRPC message a client's HTTP request turns into, and the JSON it gets back.

use crate::common::{self, refused};

use gateway::routing::RouteTable;
use gateway::{TranscodeError, render_response};
use prost_reflect::DynamicMessage;
use serde_json::{Value as Json, json};

/// The message as canonical JSON, for comparing whole messages at once.
fn as_json(message: &DynamicMessage) -> Json {
    serde_json::to_value(message).unwrap()
}

/// Each `(request, body, message)`: over `routing.v1.LibraryService`, the request
/// (`METHOD /path?query`) with the body builds the message (as canonical JSON).
#[track_caller]
fn assert_builds(cases: &[(&str, &str, Json)]) {
    let table = common::library();
    for (request, body, message) in cases {
        assert_eq!(&ok(&table, request, body), message, "{request} {body}");
    }
}

/// Each `(request, body, error)`: over `routing.v1.LibraryService`, the request
/// (`METHOD /path?query`) with the body builds no message, for exactly that reason.
#[track_caller]
fn assert_refuses(cases: &[(&str, &str, TranscodeError)]) {
    let table = common::library();
    for (request, body, error) in cases {
        assert_eq!(&refused(&table, request, body), error, "{request} {body}");
    }
}

/// The message `request` (`METHOD /path?query`) with `body` builds, as JSON.
#[track_caller]
fn ok(table: &RouteTable, request: &str, body: &str) -> Json {
    as_json(&common::built(table, request, body).1)
}

#[test]
fn whole_body_in_either_naming() {
    let camel = r#"{"book": {"name": "n", "title": "T", "pageCount": "12", "genre": "GENRE_FICTION",
        "publishTime": "2024-01-02T03:04:05Z", "author": {"displayName": "Ann"}},
        "requestId": "r1"}"#;
    let snake = r#"{"book": {"name": "n", "title": "T", "page_count": 12, "genre": 1,
        "publish_time": "2024-01-02T03:04:05Z", "author": {"display_name": "Ann"}},
        "request_id": "r1"}"#;
    let expected = json!({
        "book": {
            "name": "n", "title": "T", "pageCount": "12", "genre": "GENRE_FICTION",
            "publishTime": "2024-01-02T03:04:05Z", "author": {"displayName": "Ann"}
        },
        "requestId": "r1"
    });
    assert_builds(&[
        ("POST /v1/books", camel, expected.clone()),
        ("POST /v1/books", snake, expected),
    ]);
}

#[test]
fn empty_body_is_an_empty_message() {
    assert_builds(&[
        ("POST /v1/books", "", json!({})),
        ("POST /v1/books", " \n", json!({})),
        ("POST /v1/shelves/s1/books", "", json!({"shelf": "s1"})),
    ]);
}

#[test]
fn path_wins_over_body() {
    assert_builds(&[
        (
            "PUT /v1/shelves/s1",
            r#"{"id": "other", "theme": "sea", "bookCount": 3}"#,
            json!({"id": "s1", "theme": "sea", "bookCount": "3"}),
        ),
        // A path variable inside the body field.
        (
            "PATCH /v1/shelves/s1/books/b1?update_mask=title",
            r#"{"name": "ignored", "title": "New"}"#,
            json!({"book": {"name": "shelves/s1/books/b1", "title": "New"}, "updateMask": "title"}),
        ),
    ]);
}

#[test]
fn field_body() {
    let table = common::library();
    assert_eq!(
        ok(
            &table,
            "POST /v1/shelves/s1/books?requestId=r9",
            r#"{"title": "T", "inStock": true}"#
        ),
        json!({"shelf": "s1", "book": {"title": "T", "inStock": true}, "requestId": "r9"})
    );
    // The body is the book itself, so its fields are not top-level request fields.
    assert_eq!(
        refused(&table, "POST /v1/shelves/s1/books", r#"{"book": {}}"#),
        TranscodeError::UnknownBodyField {
            name: "book".to_owned()
        }
    );
    // The query string may not reach into the body field.
    assert_eq!(
        refused(&table, "POST /v1/shelves/s1/books?book.title=x", "{}").to_string(),
        "query parameter \"book.title\" is not allowed: that field is set by the request body"
    );
}

#[test]
fn an_absent_update_mask_is_filled_from_the_body_keys() {
    let table = common::library();
    let cases = [
        // Nested keys as dotted paths; well-known types whole.
        (
            "PATCH /v1/authored/b1",
            r#"{"title": "T", "author": {"displayName": "Ann"}, "publish_time": "2024-01-02T03:04:05Z"}"#,
            Some("author.displayName,publishTime,title"),
        ),
        // `body: "*"`: relative to the request, without the mask itself.
        (
            "PATCH /v1/authored/b1:whole",
            r#"{"book": {"pageCount": 3}, "allowMissing": true}"#,
            Some("allowMissing,book.pageCount"),
        ),
        // A mask the client sends, in the body or the query, is left as it is.
        (
            "PATCH /v1/authored/b1?update_mask=title",
            r#"{"title": "T", "inStock": true}"#,
            Some("title"),
        ),
        (
            "PATCH /v1/authored/b1:whole",
            r#"{"book": {"title": "T"}, "updateMask": "book.title,book.genre"}"#,
            Some("book.title,book.genre"),
        ),
        // No body, no mask.
        ("PATCH /v1/authored/b1", "", None),
    ];
    for (request, body, mask) in cases {
        let message = ok(&table, request, body);
        assert_eq!(
            message.get("updateMask"),
            mask.map(Json::from).as_ref(),
            "{request} {body}: {message}"
        );
    }
}

#[test]
fn repeated_scalar_body_field() {
    let table = common::library();
    assert_eq!(
        ok(&table, "POST /v1/shelves/s1:tag", r#"["a", "b"]"#),
        json!({"id": "s1", "tags": ["a", "b"]})
    );
    assert!(matches!(
        refused(&table, "POST /v1/shelves/s1:tag", r#"["a", "#),
        TranscodeError::MalformedJson { line: 1, .. }
    ));
    assert!(matches!(
        refused(&table, "POST /v1/shelves/s1:tag", "[1]"),
        TranscodeError::InvalidBody { .. }
    ));
}

#[test]
fn no_body_rule_rejects_a_body() {
    let table = common::library();
    assert_eq!(
        refused(&table, "GET /v1/shelves/s1", "{}"),
        TranscodeError::UnexpectedBody
    );
    assert_eq!(
        ok(&table, "POST /v1/loans/l1:cancel", ""),
        json!({"id": "l1"})
    );
}

#[test]
fn json_errors_name_the_problem() {
    let table = common::library();
    let e = refused(&table, "POST /v1/books", r#"{"requestId": "#);
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

    let e = refused(
        &table,
        "POST /v1/books",
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

    let e = refused(&table, "POST /v1/books", r#"{"requestId": "r"} trailing"#);
    assert!(matches!(e, TranscodeError::MalformedJson { .. }), "{e:?}");

    assert_eq!(
        refused(&table, "POST /v1/books", r#"{"foo": 1}"#).to_string(),
        "unknown field \"foo\" in request body"
    );
    assert_eq!(
        refused(
            &table,
            "POST /v1/books",
            r#"{"book": {"author": {"nmae": "x"}}}"#
        ),
        TranscodeError::UnknownBodyField {
            name: "nmae".to_owned()
        }
    );
    let e = refused(
        &table,
        "POST /v1/books",
        r#"{"book": {"pageCount": "many"}}"#,
    );
    assert!(matches!(e, TranscodeError::InvalidBody { .. }), "{e:?}");
    let e = refused(
        &table,
        "POST /v1/books",
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
        ok(&table, &format!("GET {target}"), ""),
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
            refused(&table, &format!("GET {search}?{query}"), ""),
            expected,
            "{query}"
        );
    }

    assert_eq!(
        refused(&table, "GET /v1/books:search?page_size=abc", "").to_string(),
        "invalid value \"abc\" for field \"page_size\": expected an integer"
    );
    assert_eq!(
        refused(&table, "GET /v1/books:search?genre=POETRY", "").to_string(),
        "invalid value \"POETRY\" for field \"genre\": expected one of \
         GENRE_UNSPECIFIED, GENRE_FICTION, GENRE_HISTORY"
    );
    assert_eq!(
        refused(&table, "GET /v1/books:search?pagesize=10", "").field(),
        Some("pagesize")
    );
}

#[test]
fn query_may_not_override_path_or_whole_body() {
    assert_refuses(&[
        (
            "DELETE /v1/shelves/s1?id=s2",
            "",
            TranscodeError::QueryParameterInPath { name: "id".into() },
        ),
        (
            "PUT /v1/shelves/s1?theme=x",
            "{}",
            TranscodeError::QueryParameterInBody {
                name: "theme".into(),
            },
        ),
        // Unknown still reads as unknown, whatever the body rule.
        (
            "PUT /v1/shelves/s1?them=x",
            "{}",
            TranscodeError::UnknownQueryParameter {
                name: "them".into(),
            },
        ),
    ]);
    assert_builds(&[(
        "DELETE /v1/shelves/s1?force=true",
        "",
        json!({"id": "s1", "force": true}),
    )]);
}

#[test]
fn typed_path_variables() {
    let table = common::library();
    assert_eq!(
        ok(
            &table,
            "GET /v1/typed/-5/9007199254740993/true/GENRE_FICTION/0.25/7/aGk",
            ""
        ),
        json!({
            "count": -5, "big": "9007199254740993", "flag": true, "genre": "GENRE_FICTION",
            "ratio": 0.25, "rating": 7, "blob": "aGk="
        })
    );
    // Enum by number.
    assert_eq!(
        ok(&table, "GET /v1/typed/1/2/false/2/1/0/aGk", "")["genre"],
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
        match refused(&table, &format!("GET {path}"), "") {
            TranscodeError::InvalidFieldValue {
                field: f, value: v, ..
            } => assert_eq!((f.as_str(), v.as_str()), (field, value), "{path}"),
            other => panic!("{path}: {other:?}"),
        }
    }
}

/// Each `(rpc, message, rendered)`: the answer of `rpc` (its output message, given as
/// JSON in any form proto3 reads) renders as exactly `rendered`.
#[track_caller]
fn assert_renders(cases: &[(&str, Json, Json)]) {
    let table = common::library();
    for (rpc, message, rendered) in cases {
        let route = common::route(&table, rpc);
        let message = DynamicMessage::deserialize(route.method().output(), message).unwrap();
        let got: Json = serde_json::from_slice(&render_response(route, &message).unwrap()).unwrap();
        assert_eq!(&got, rendered, "{rpc}: {message:?}");
    }
}

#[test]
fn render_whole_message_canonically() {
    assert_renders(&[(
        "GetBook",
        json!({
            "name": "shelves/s/books/b", "title": "", "genre": "GENRE_FICTION",
            "page_count": 12, "publish_time": "2024-01-02T03:04:05.500Z", "in_stock": false
        }),
        // Default values (title "", in_stock false) are omitted; int64 is a string.
        json!({
            "name": "shelves/s/books/b", "genre": "GENRE_FICTION", "pageCount": "12",
            "publishTime": "2024-01-02T03:04:05.500Z"
        }),
    )]);
}

#[test]
fn render_response_body_fields() {
    assert_renders(&[
        (
            "ListBooks",
            json!({"books": [{"name": "a"}, {"pageCount": 3}], "nextPageToken": "t"}),
            json!([{"name": "a"}, {"pageCount": "3"}]),
        ),
        ("ListBooks", json!({}), json!([])),
        (
            "GetShelfSummary",
            json!({"summary": {"id": "s1", "bookCount": 2}, "unused": 5}),
            json!({"id": "s1", "bookCount": "2"}),
        ),
        ("GetShelfSummary", json!({}), json!({})),
    ]);
}

#[test]
fn render_empty_and_wrong_type() {
    assert_renders(&[("DeleteShelf", json!({}), json!({}))]);

    let table = common::library();
    let empty = DynamicMessage::new(common::route(&table, "DeleteShelf").method().output());
    let e = render_response(common::route(&table, "GetShelf"), &empty).unwrap_err();
    assert!(
        matches!(e, TranscodeError::WrongResponseType { .. }),
        "{e:?}"
    );
    assert!(!e.is_client_error());
}
