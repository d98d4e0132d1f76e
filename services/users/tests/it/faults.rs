//! Faults on demand: off unless enabled; rules from the settings and replaced at run
//! time through the admin port; each injected fault counted.

use std::time::{Duration, Instant};

use platform_proto::users::v1 as pb;
use platform_server::faults::FaultRule;
use platform_testing::{TestDatabase, refused};
use serde_json::{Value, json};
use tonic::Code;

use crate::common::TestApp;

async fn jwks(app: &TestApp) -> Result<pb::GetJwksResponse, tonic::Status> {
    let request = pb::GetJwksRequest::default();
    app.api
        .client()
        .get_jwks(request)
        .await
        .map(tonic::Response::into_inner)
}

async fn put_faults(app: &TestApp, rules: Value) -> (u16, String) {
    let response = reqwest::Client::new()
        .put(format!("http://{}/faults", app.admin_addr))
        .json(&json!({ "rules": rules }))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn metrics(app: &TestApp) -> String {
    reqwest::get(format!("http://{}/metrics", app.admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn disabled_by_default_and_inert() {
    let app = TestApp::spawn(TestDatabase::sqlite()).await;
    let (status, body) = put_faults(
        &app,
        json!([{ "method": "*", "error_code": "UNAVAILABLE" }]),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("disabled"), "{body}");
    jwks(&app).await.expect("calls are untouched");
    app.stop().await;
}

#[tokio::test]
async fn errors_delays_and_aborts_are_injected_and_counted() {
    let app = TestApp::spawn_with(TestDatabase::sqlite(), |s| {
        s.faults.enabled = true;
        s.faults.rules = vec![FaultRule {
            method: "users.v1.UserService/GetJwks".to_owned(),
            error_code: Some("UNAVAILABLE".to_owned()),
            ..FaultRule::default()
        }];
    })
    .await;

    // From the settings: every GetJwks fails, other methods are served.
    let status = refused(jwks(&app)).await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.message(), "injected fault");
    app.api.sign_up("ada@example.com").await;
    let scrape = metrics(&app).await;
    assert!(
        scrape.contains(r#"faults_injected_total{kind="error",rpc_method="GetJwks"} 1"#),
        "{scrape}"
    );

    // Replaced at run time: a delay instead.
    let (status, body) = put_faults(
        &app,
        json!([{ "method": "users.v1.UserService/*", "delay_ms": 300 }]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let shown: Value = reqwest::get(format!("http://{}/faults", app.admin_addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["rules"][0]["delay_ms"], 300, "{shown}");
    let started = Instant::now();
    jwks(&app).await.expect("delayed, not failed");
    assert!(started.elapsed() >= Duration::from_millis(300));

    // An invalid rule changes nothing.
    let (status, body) = put_faults(&app, json!([{ "method": "*", "abort_rate": 2.0 }])).await;
    assert_eq!(status, 400);
    assert!(body.contains("abort_rate"), "{body}");
    let (status, _) = put_faults(&app, json!([{ "method": "*", "nope": 1 }])).await;
    assert_eq!(status, 400, "unknown fields are refused");

    // An abort: the call is cut without a status of the service's.
    let (status, _) = put_faults(&app, json!([{ "method": "*", "abort_rate": 1.0 }])).await;
    assert_eq!(status, 200);
    let aborted = refused(jwks(&app)).await;
    assert_ne!(aborted.code(), Code::Ok);
    assert_ne!(aborted.message(), "injected fault", "{aborted:?}");
    let scrape = metrics(&app).await;
    assert!(scrape.contains(r#"faults_injected_total{kind="abort",rpc_method="GetJwks"} 1"#));
    assert!(scrape.contains(r#"faults_injected_total{kind="delay",rpc_method="GetJwks"} 1"#));

    // Cleared: served again.
    let (status, _) = put_faults(&app, json!([])).await;
    assert_eq!(status, 200);
    jwks(&app).await.expect("no rule, no fault");
    app.stop().await;
}
