//! Headers across the edge for a team's service: allow-listed request headers and
//! `Grpc-Metadata-*` go upstream, `x-forwarded-*` tell it where the request came
//! from, only allow-listed response metadata comes back, and its UNAUTHENTICATED is a
//! 401 with a challenge.

use reqwest::StatusCode;
use serde_json::Value;
use system_tests::System;

/// Answers with the metadata it received, or fails with `?failWith=<code>`.
const INSPECT: &str = "/v1/inventory:inspect";

/// Inventory forwards `X-Tenant` and returns `x-stock-source` and `x-checksum`;
/// loopback is a trusted proxy.
fn allow_lists(settings: &mut gateway::Settings) {
    let inventory = &mut settings.upstreams[0].options;
    inventory.forward_request_headers = vec!["X-Tenant".to_owned()];
    inventory.forward_response_metadata =
        vec!["x-stock-source".to_owned(), "X-Checksum".to_owned()];
    settings.rate_limit.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
}

/// The metadata the inventory backend received, from its answer.
async fn received(response: reqwest::Response) -> serde_json::Map<String, Value> {
    let body: Value = response.json().await.unwrap();
    body["metadata"].as_object().cloned().unwrap_or_default()
}

#[tokio::test]
async fn allow_listed_headers_travel_both_ways_and_nothing_else() {
    let system = System::start_with_gateway(allow_lists).await;
    let (_, token) = system.user("ada@example.com").await;

    let sent = [
        ("X-Tenant", "acme"),
        ("X-Not-Listed", "secret"),
        ("Grpc-Metadata-X-Trace-Tag", "checkout"),
        ("Grpc-Metadata-Authorization", "Bearer forged"),
        ("Grpc-Metadata-X-Forwarded-For", "6.6.6.6"),
    ];
    let response = system.get_with(INSPECT, &token, &sent).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["grpc-metadata-x-stock-source"], "warehouse-7");
    assert!(
        !headers.contains_key("grpc-metadata-x-internal"),
        "metadata not allow-listed stays inside: {headers:?}"
    );
    let metadata = received(response).await;
    assert_eq!(metadata["x-tenant"], "acme");
    assert_eq!(
        metadata["x-trace-tag"], "checkout",
        "by the Grpc-Metadata- prefix"
    );
    assert!(!metadata.contains_key("x-not-listed"), "{metadata:?}");
    assert_eq!(
        metadata["authorization"],
        format!("Bearer {token}"),
        "the verified token, never the client's metadata"
    );
    assert_eq!(metadata["x-forwarded-for"], "127.0.0.1");
    assert_eq!(
        metadata["x-forwarded-host"],
        system.gateway_addr().to_string()
    );
    assert_eq!(metadata["x-forwarded-proto"], "http");

    // Through a trusted proxy: the client it names, the host and scheme it saw.
    let through_proxy = [
        ("X-Forwarded-For", "6.6.6.6, 198.51.100.7"),
        ("X-Forwarded-Host", "api.example.com"),
        ("X-Forwarded-Proto", "https"),
    ];
    let proxied = system.get_with(INSPECT, &token, &through_proxy).await;
    let metadata = received(proxied).await;
    assert_eq!(metadata["x-forwarded-for"], "198.51.100.7");
    assert_eq!(metadata["x-forwarded-host"], "api.example.com");
    assert_eq!(metadata["x-forwarded-proto"], "https");

    // An error's trailers come back as Grpc-Trailer-*, allow-listed too.
    let failed = system.get(&format!("{INSPECT}?failWith=9"), &token).await;
    assert_eq!(failed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(failed.headers()["grpc-trailer-x-checksum"], "abc123");
    assert!(!failed.headers().contains_key("grpc-trailer-x-internal"));
    system.stop().await;
}

#[tokio::test]
async fn by_default_no_response_metadata_comes_back() {
    let system = System::start().await;
    let (_, token) = system.user("ada@example.com").await;
    let response = system
        .get_with(INSPECT, &token, &[("X-Tenant", "acme")])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let leaked: Vec<_> = response
        .headers()
        .keys()
        .filter(|k| k.as_str().starts_with("grpc-"))
        .collect();
    assert!(leaked.is_empty(), "{leaked:?}");
    let metadata = received(response).await;
    assert!(!metadata.contains_key("x-tenant"), "{metadata:?}");
    system.stop().await;
}

#[tokio::test]
async fn an_upstream_unauthenticated_is_a_401_with_a_bearer_challenge() {
    let system = System::start().await;
    let (_, token) = system.user("ada@example.com").await;
    let response = system.get(&format!("{INSPECT}?failWith=16"), &token).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"platform\""
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], 16);
    assert_eq!(body["message"], "inspection refused");
    system.stop().await;
}
