//! The real APIs: routes and transcoding over `platform_proto::descriptor_pool()` for
//! `users.v1.UserService` and `orders.v1.OrderService`, as a client of the edge sees them.

use gateway::{TranscodeError, render_response};
use platform_proto::users::v1 as users;
use prost_reflect::prost_types::Timestamp;
use prost_reflect::{DynamicMessage, ReflectMessage, Value};
use serde_json::{Value as Json, json};

use crate::common;

#[test]
fn every_annotated_rpc_is_routed() {
    let table = common::platform();
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
    let table = common::platform();
    let (grpc, message) = common::built(&table, "GET /v1/users/abc", "");
    assert_eq!(grpc, "/users.v1.UserService/GetUser");
    assert_eq!(message.descriptor().full_name(), "users.v1.GetUserRequest");
    assert_eq!(
        message.get_field_by_name("id").unwrap().as_str(),
        Some("abc")
    );
}

#[test]
fn cancel_order() {
    let table = common::platform();
    let (grpc, message) = common::built(&table, "POST /v1/orders/o1:cancel", "");
    assert_eq!(grpc, "/orders.v1.OrderService/CancelOrder");
    assert_eq!(
        message.get_field_by_name("id").unwrap().as_str(),
        Some("o1")
    );
    // Without the verb, the same id is GetOrder.
    let (grpc, _) = common::request(&table, "GET /v1/orders/o1", "");
    assert_eq!(grpc, "/orders.v1.OrderService/GetOrder");
}

#[test]
fn list_orders_from_query() {
    let table = common::platform();
    let query = "page_size=10&status=ORDER_STATUS_PENDING";
    let (grpc, message) = common::built(&table, &format!("GET /v1/orders?{query}"), "");
    assert_eq!(grpc, "/orders.v1.OrderService/ListOrders");
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
    let table = common::platform();
    common::assert_routes(
        &table,
        &[
            "DELETE /v1/orders -> 405 GET, POST",
            "GET /v2/nothing -> 404",
        ],
    );
}

#[test]
fn create_user_in_either_naming() {
    let table = common::platform();
    for body in [
        r#"{"email":"a@b.c","displayName":"A","password":"x"}"#,
        r#"{"email":"a@b.c","display_name":"A","password":"x"}"#,
    ] {
        let (grpc, message) = common::built(&table, "POST /v1/users", body);
        assert_eq!(grpc, "/users.v1.UserService/CreateUser");
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
    let table = common::platform();
    let misspelt = r#"{"emial":"a@b.c","displayName":"A","password":"x"}"#;
    let e = common::refused(&table, "POST /v1/users", misspelt);
    assert_eq!(e.to_string(), "unknown field \"emial\" in request body");
    assert_eq!(e.field(), Some("emial"));
    assert!(e.is_client_error());

    let e = common::refused(&table, "POST /v1/users", r#"{"email": "#);
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
    let table = common::platform();
    let route = common::route(&table, "/users.v1.UserService/GetUser");
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
    let table = common::platform();
    let route = common::route(&table, "/users.v1.UserService/DeleteUser");
    let message = DynamicMessage::new(route.method().output());
    assert_eq!(render_response(route, &message).unwrap(), b"{}");
}
