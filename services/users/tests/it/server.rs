//! The runtime around the users API: health, reflection, the admin port, metrics, and
//! readiness that follows the database.

use std::time::Duration;

use platform_testing::TestDatabase;
use tokio_stream::StreamExt;
use tonic_health::pb::health_check_response::ServingStatus;
use users::Application;

use crate::common::{SERVICE, TestApp};

async fn http_get(url: String) -> (u16, String) {
    let response = reqwest::get(url).await.expect("admin port answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn health_status(addr: std::net::SocketAddr, service: &str) -> i32 {
    let channel = platform_testing::connect(addr).await;
    platform_testing::grpc::health(channel, service)
        .await
        .expect("health answers") as i32
}

#[tokio::test]
async fn health_and_reflection_answer_without_a_proto_file() {
    let app = TestApp::spawn(TestDatabase::sqlite()).await;
    assert_eq!(
        health_status(app.grpc_addr, "").await,
        ServingStatus::Serving as i32
    );
    assert_eq!(
        health_status(app.grpc_addr, SERVICE).await,
        ServingStatus::Serving as i32
    );

    let channel = platform_testing::connect(app.grpc_addr).await;
    // v1
    {
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = ServerReflectionClient::new(channel.clone())
            .server_reflection_info(tokio_stream::once(request))
            .await
            .unwrap()
            .into_inner();
        let response = stream.next().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
            panic!("unexpected reflection answer");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        assert!(
            names.contains(&"users.v1.UserService".to_owned()),
            "{names:?}"
        );
        assert!(
            !names.contains(&"orders.v1.OrderService".to_owned()),
            "only this service: {names:?}"
        );
    }
    // v1alpha, which older grpcurl releases speak.
    {
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "users.v1.UserService".into(),
            )),
        };
        let mut stream = ServerReflectionClient::new(channel)
            .server_reflection_info(tokio_stream::once(request))
            .await
            .unwrap()
            .into_inner();
        let response = stream.next().await.unwrap().unwrap();
        assert!(
            matches!(response.message_response, Some(MessageResponse::FileDescriptorResponse(ref f)) if !f.file_descriptor_proto.is_empty()),
            "{response:?}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn admin_port_serves_probes_and_metrics() {
    let app = TestApp::spawn(TestDatabase::sqlite()).await;
    let admin = app.admin_addr;
    assert_eq!(http_get(format!("http://{admin}/healthz")).await.0, 200);
    assert_eq!(http_get(format!("http://{admin}/readyz")).await.0, 200);

    app.api.sign_up("ada@example.com").await;
    let _ = app.api.sign_in("ada@example.com", "wrong password!").await;
    let (status, body) = http_get(format!("http://{admin}/metrics")).await;
    assert_eq!(status, 200);
    let has = |needle: &str| {
        body.lines()
            .any(|l| l.starts_with(needle) || l.contains(needle))
    };
    assert!(
        has(
            r#"rpc_server_requests_total{rpc_system="grpc",rpc_service="users.v1.UserService",rpc_method="CreateUser",rpc_grpc_status_code="0"}"#
        ),
        "{body}"
    );
    assert!(
        has(r#"rpc_method="CreateToken",rpc_grpc_status_code="16""#),
        "failed calls are counted by code: {body}"
    );
    assert!(has("rpc_server_call_duration_seconds_bucket"), "{body}");
    assert!(!body.contains("grpc.health"), "probes are not traffic");
    app.stop().await;
}

/// Waits (bounded) for the admin port's readiness to become `want`.
async fn wait_ready(admin: std::net::SocketAddr, want: u16) {
    platform_testing::wait::until(
        &format!("/readyz answers {want}"),
        Duration::from_secs(10),
        async || http_get(format!("http://{admin}/readyz")).await.0 == want,
    )
    .await;
}

async fn set_connections(admin_url: &str, name: &str, allow: bool) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin_url).await.unwrap();
    // `name` comes from TestDatabase (a UUID), not from outside input.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS {allow}"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    if !allow {
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(name)
            .execute(&mut conn)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn readiness_follows_the_database() {
    let db = TestDatabase::postgres().await;
    let name = db.postgres_name().unwrap().to_owned();
    let admin_url = platform_testing::postgres_admin_url();
    let app = TestApp::spawn(db).await;
    wait_ready(app.admin_addr, 200).await;

    set_connections(&admin_url, &name, false).await;
    wait_ready(app.admin_addr, 503).await;
    assert_eq!(
        health_status(app.grpc_addr, SERVICE).await,
        ServingStatus::NotServing as i32
    );
    let status = app
        .api
        .sign_in("ada@example.com", "whatever it is")
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        !status.message().contains(&name),
        "no internals leak: {}",
        status.message()
    );

    set_connections(&admin_url, &name, true).await;
    wait_ready(app.admin_addr, 200).await;
    app.api.sign_up("ada@example.com").await;
    app.stop().await;
}

#[tokio::test]
async fn serving_only_once_the_database_exists_and_is_migrated() {
    // Point the service at a database that is not there yet.
    let db = TestDatabase::postgres().await;
    let name = db.postgres_name().unwrap().to_owned();
    let admin_url = platform_testing::postgres_admin_url();
    set_connections(&admin_url, &name, false).await;

    let dir = tempfile::tempdir().unwrap();
    let settings = crate::common::settings(&db, dir.path());
    let app = Application::build(settings)
        .await
        .expect("starts without its database");
    let (grpc, admin) = (app.public_addr(), app.admin_addr());
    let (trigger, shutdown) = platform_shutdown::Shutdown::new();
    let handle = tokio::spawn(app.run_until_stopped(shutdown));

    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        health_status(grpc, SERVICE).await,
        ServingStatus::NotServing as i32
    );
    assert_eq!(http_get(format!("http://{admin}/readyz")).await.0, 503);

    set_connections(&admin_url, &name, true).await;
    wait_ready(admin, 200).await;
    assert_eq!(
        health_status(grpc, SERVICE).await,
        ServingStatus::Serving as i32
    );

    trigger.fire();
    handle.await.unwrap().unwrap();
    drop(db);
}
