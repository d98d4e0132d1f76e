//! The real APIs: routes and transcoding over `platform_proto::descriptor_pool()` for
//! `users.v1.UserService` and `orders.v1.OrderService`, as a client of the edge sees them.

use gateway::routing::{RouteMatch, RouteTable};
use gateway::{TranscodeError, build_request, render_response};
use http::Method;
use platform_proto::users::v1 as users;
use prost_reflect::prost_types::Timestamp;
use prost_reflect::{DynamicMessage, ReflectMessage, Value};
use serde_json::{Value as Json, json};

use crate::common::{assert_not_allowed, assert_not_found};

fn table() -> RouteTable {
    let pool = platform_proto::descriptor_pool();
    let services = ["users.v1.UserService", "orders.v1.OrderService"]
        .map(|name| pool.get_service_by_name(name).expect("service in pool"));
    RouteTable::build(pool, services).expect("the platform's annotations are valid")
}

fn request(
    table: &RouteTable,
    method: Method,
    target: &str,
    body: &str,
) -> (String, Result<DynamicMessage, TranscodeError>) {
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    match table.find(&method, path) {
        RouteMatch::Found { route, bindings } => (
            route.grpc_path().to_owned(),
            build_request(&route, &bindings, query, body.as_bytes()),
        ),
        other => panic!("{method} {path}: expected a route, got {other:?}"),
    }
}

#[test]
fn every_annotated_rpc_is_routed() {
    let table = table();
    let mut paths: Vec<String> = table
        .routes()
        .map(|r| format!("{} {} {}", r.http_method(), r.template(), r.grpc_path()))
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "DELETE /v1/users/{id} /users.v1.UserService/DeleteUser",
            "GET /v1/auth/jwks /users.v1.UserService/GetJwks",
            "GET /v1/orders /orders.v1.OrderService/ListOrders",
            "GET /v1/orders/{id} /orders.v1.OrderService/GetOrder",
            "GET /v1/orders:watch /orders.v1.OrderService/WatchOrders",
            "GET /v1/users /users.v1.UserService/ListUsers",
            "GET /v1/users/{id} /users.v1.UserService/GetUser",
            "PATCH /v1/users/{id} /users.v1.UserService/UpdateUser",
            "POST /v1/auth/refresh /users.v1.UserService/RefreshToken",
            "POST /v1/auth/revoke /users.v1.UserService/RevokeToken",
            "POST /v1/auth/token /users.v1.UserService/CreateToken",
            "POST /v1/orders /orders.v1.OrderService/CreateOrder",
            "POST /v1/orders/{id}:cancel /orders.v1.OrderService/CancelOrder",
            "POST /v1/users /users.v1.UserService/CreateUser",
        ]
    );
}

#[test]
fn get_user() {
    let table = table();
    let (grpc, message) = request(&table, Method::GET, "/v1/users/abc", "");
    assert_eq!(grpc, "/users.v1.UserService/GetUser");
    let message = message.unwrap();
    assert_eq!(message.descriptor().full_name(), "users.v1.GetUserRequest");
    assert_eq!(
        message.get_field_by_name("id").unwrap().as_str(),
        Some("abc")
    );
}

#[test]
fn cancel_order() {
    let table = table();
    let (grpc, message) = request(&table, Method::POST, "/v1/orders/o1:cancel", "");
    assert_eq!(grpc, "/orders.v1.OrderService/CancelOrder");
    assert_eq!(
        message.unwrap().get_field_by_name("id").unwrap().as_str(),
        Some("o1")
    );
    // Without the verb, the same id is GetOrder.
    let (grpc, _) = request(&table, Method::GET, "/v1/orders/o1", "");
    assert_eq!(grpc, "/orders.v1.OrderService/GetOrder");
}

#[test]
fn list_orders_from_query() {
    let table = table();
    let (grpc, message) = request(
        &table,
        Method::GET,
        "/v1/orders?page_size=10&status=ORDER_STATUS_PENDING",
        "",
    );
    assert_eq!(grpc, "/orders.v1.OrderService/ListOrders");
    let message = message.unwrap();
    assert_eq!(
        message.descriptor().full_name(),
        "orders.v1.ListOrdersRequest"
    );
    assert_eq!(
        message.get_field_by_name("page_size").unwrap().as_ref(),
        &Value::I32(10)
    );
    let pending = message
        .descriptor()
        .get_field_by_name("status")
        .and_then(|f| f.kind().as_enum().cloned())
        .and_then(|e| e.get_value_by_name("ORDER_STATUS_PENDING"))
        .unwrap()
        .number();
    assert_eq!(
        message.get_field_by_name("status").unwrap().as_ref(),
        &Value::EnumNumber(pending)
    );
}

#[test]
fn wrong_method_and_unknown_path() {
    let table = table();
    let allowed = [Method::GET, Method::POST];
    assert_not_allowed(&table, Method::DELETE, "/v1/orders", &allowed);
    assert_not_found(&table, Method::GET, "/v2/nothing");
}

#[test]
fn create_user_in_either_naming() {
    let table = table();
    for body in [
        r#"{"email":"a@b.c","displayName":"A","password":"x"}"#,
        r#"{"email":"a@b.c","display_name":"A","password":"x"}"#,
    ] {
        let (grpc, message) = request(&table, Method::POST, "/v1/users", body);
        assert_eq!(grpc, "/users.v1.UserService/CreateUser");
        let message = message.unwrap_or_else(|e| panic!("{body}: {e}"));
        let request: users::CreateUserRequest = message.transcode_to().unwrap();
        assert_eq!(
            request,
            users::CreateUserRequest {
                email: "a@b.c".to_owned(),
                display_name: "A".to_owned(),
                password: "x".to_owned(),
            }
        );
    }
}

#[test]
fn create_user_body_errors() {
    let table = table();
    let (_, result) = request(
        &table,
        Method::POST,
        "/v1/users",
        r#"{"emial":"a@b.c","displayName":"A","password":"x"}"#,
    );
    let e = result.unwrap_err();
    assert_eq!(e.to_string(), "unknown field \"emial\" in request body");
    assert_eq!(e.field(), Some("emial"));
    assert!(e.is_client_error());

    let (_, result) = request(&table, Method::POST, "/v1/users", r#"{"email": "#);
    let e = result.unwrap_err();
    assert!(
        matches!(e, TranscodeError::MalformedJson { line: 1, .. }),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with("malformed JSON at line 1 column "),
        "{e}"
    );
}

#[test]
fn render_user() {
    let table = table();
    let route = table
        .routes()
        .find(|r| r.grpc_path() == "/users.v1.UserService/GetUser")
        .unwrap();
    let user = users::User {
        id: "0190c0de-0000-7000-8000-000000000001".to_owned(),
        email: "a@b.c".to_owned(),
        display_name: "A".to_owned(),
        role: users::Role::User as i32,
        create_time: Some(Timestamp {
            seconds: 1_704_164_645, // 2024-01-02T03:04:05Z
            nanos: 0,
        }),
        update_time: None,
    };
    // As the gateway gets it from the backend: protobuf bytes, decoded dynamically.
    let mut message = DynamicMessage::new(route.method().output());
    message.transcode_from(&user).unwrap();
    let json: Json = serde_json::from_slice(&render_response(route, &message).unwrap()).unwrap();
    assert_eq!(
        json,
        json!({
            "id": "0190c0de-0000-7000-8000-000000000001",
            "email": "a@b.c",
            "displayName": "A",
            "role": "ROLE_USER",
            "createTime": "2024-01-02T03:04:05Z"
        })
    );
}

#[test]
fn render_empty_for_delete() {
    let table = table();
    let route = table
        .routes()
        .find(|r| r.grpc_path() == "/users.v1.UserService/DeleteUser")
        .unwrap();
    let message = DynamicMessage::new(route.method().output());
    assert_eq!(render_response(route, &message).unwrap(), b"{}");
}
