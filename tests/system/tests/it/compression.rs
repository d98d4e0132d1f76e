//! Compression at the edge: large answers compressed as the client accepts, small ones
//! and streams left alone; compressed request bodies accepted; gRPC compression to an
//! upstream configured for it.

use std::io::{Read, Write};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use system_tests::System;
use system_tests::edge::answered;

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .expect("a gzip body");
    text
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

async fn get(system: &System, path: &str, token: &str, encoding: &str) -> reqwest::Response {
    let accepted = [("Accept-Encoding", encoding)];
    system.get_with(path, token, &accepted).await
}

/// `POST /v1/inventory/BOOK-1:reserve` with `body` gzipped and these `headers` too.
async fn reserve_gzipped(
    system: &System,
    token: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> reqwest::Response {
    let request = system.request(Method::POST, "/v1/inventory/BOOK-1:reserve", token, headers);
    answered(request.header("Content-Encoding", "gzip").body(gzip(body))).await
}

#[tokio::test]
async fn answers_over_the_threshold_are_compressed_as_the_client_accepts() {
    let system = System::start().await;
    let (_, token) = system.user("ada@example.com").await;

    let large = get(
        &system,
        "/v1/inventory/BOOK-1:export?rows=200",
        &token,
        "gzip",
    )
    .await;
    assert_eq!(large.status(), StatusCode::OK);
    assert_eq!(large.headers()["content-encoding"], "gzip");
    assert_eq!(large.headers()["content-type"], "text/csv");
    let bytes = large.bytes().await.unwrap();
    let expected = system_tests::csv("BOOK-1", 200);
    assert!(bytes.len() < expected.len() / 2, "{} bytes", bytes.len());
    assert_eq!(gunzip(&bytes), expected);

    for encoding in ["br", "zstd"] {
        let other = get(&system, "/openapi.json", &token, encoding).await;
        assert_eq!(other.headers()["content-encoding"], encoding);
    }
    let plain = get(&system, "/openapi.json", &token, "identity").await;
    assert!(!plain.headers().contains_key("content-encoding"));
    plain.json::<Value>().await.expect("plain JSON");

    // Under 1 KiB: not worth compressing.
    let small = get(&system, "/v1/inventory/BOOK-1", &token, "gzip").await;
    assert!(!small.headers().contains_key("content-encoding"));
    assert_eq!(small.json::<Value>().await.unwrap()["inStock"], "42");
    system.stop().await;
}

#[tokio::test]
async fn streams_are_not_compressed_and_still_flush_each_message() {
    let system = System::start().await;
    let (_, token) = system.user("ada@example.com").await;
    for accept in ["application/x-ndjson", "text/event-stream"] {
        let mut response = system
            .get_with(
                "/v1/inventory/SKU-Z:watch?count=3&intervalMs=200",
                &token,
                &[("Accept-Encoding", "gzip"), ("Accept", accept)],
            )
            .await;
        assert!(
            !response.headers().contains_key("content-encoding"),
            "{accept}"
        );
        let first = response.chunk().await.unwrap().expect("a first chunk");
        let first = String::from_utf8(first.to_vec()).unwrap();
        assert!(first.contains("\"inStock\":\"42\""), "{accept}: {first}");
        assert!(
            !first.contains("\"41\""),
            "only the first message yet: {first}"
        );
    }
    let mut download = get(
        &system,
        "/v1/inventory/SKU-Z:download?count=2",
        &token,
        "gzip",
    )
    .await;
    assert!(!download.headers().contains_key("content-encoding"));
    let first = download.chunk().await.unwrap().expect("a first chunk");
    assert_eq!(&first[..], b"SKU-Z,0\n");
    system.stop().await;
}

#[tokio::test]
async fn compressed_request_bodies_are_accepted_within_the_body_limit() {
    let system = System::start_with_gateway(|g| g.http.max_body_bytes = 4096).await;
    let (_, token) = system.user("ada@example.com").await;
    let body = serde_json::to_vec(&json!({ "quantity": 2 })).unwrap();
    let json = [("Content-Type", "application/json")];
    let reserved = reserve_gzipped(&system, &token, &json, &body).await;
    assert_eq!(reserved.status(), StatusCode::OK);
    assert_eq!(reserved.json::<Value>().await.unwrap()["inStock"], "40");

    // The limit counts the decompressed bytes: a small bomb is still 413.
    let bomb = format!("{{\"quantity\": 2{}}}", " ".repeat(100_000));
    let refused = reserve_gzipped(&system, &token, &[], bomb.as_bytes()).await;
    assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE);
    system.stop().await;
}

#[tokio::test]
async fn grpc_compression_to_an_upstream_is_a_setting() {
    let system = System::start_with_gateway(|g| {
        g.upstreams[0].options.compression = gateway::settings::GrpcCompression::Gzip
    })
    .await;
    let (_, token) = system.user("ada@example.com").await;
    let response = system.get("/v1/inventory:inspect", &token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["metadata"]["grpc-encoding"], "gzip", "{body}");
    // Answers come back compressed too, and still decode.
    let item = system.get("/v1/inventory/BOOK-1", &token).await;
    assert_eq!(item.json::<Value>().await.unwrap()["inStock"], "42");
    system.stop().await;
}
