//! Server-streaming methods through the gateway: NDJSON and Server-Sent Events, each
//! message as it arrives, errors after the start as a final record, cancellation when
//! the client goes away; client-streaming methods left out.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use system_tests::System;
use system_tests::edge::remaining_chunks;

/// Every chunk of the body as it arrives, as text.
async fn chunks(mut response: reqwest::Response) -> Vec<String> {
    let chunks = remaining_chunks(&mut response).await;
    let chunks = chunks.expect("the body streams").into_iter();
    chunks
        .map(|chunk| String::from_utf8(chunk).expect("UTF-8"))
        .collect()
}

fn records(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect()
}

#[tokio::test]
async fn a_stream_is_ndjson_one_record_per_message_then_its_error() {
    let system = System::start().await;
    let (_, token) = system.user("ada@example.com").await;

    let response = system
        .get("/v1/inventory/BOOK-1:watch?count=3", &token)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let text = chunks(response).await.concat();
    assert_eq!(
        records(&text),
        [42, 41, 40].map(|n| json!({ "sku": "BOOK-1", "inStock": n.to_string() }))
    );

    // Failing after it began: the records so far, then the status, never a silent cut.
    let failing = system
        .get("/v1/inventory/BOOK-1:watch?count=2&failWith=9", &token)
        .await;
    assert_eq!(
        failing.status(),
        StatusCode::OK,
        "the status line went out first"
    );
    let lines = records(&chunks(failing).await.concat());
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(
        lines[2],
        json!({ "error": { "code": 9, "message": "the watch ended", "details": [] } })
    );

    // A server-side failure keeps its text to itself, as unary answers do.
    let internal = system
        .get("/v1/inventory/BOOK-1:watch?count=0&failWith=13", &token)
        .await;
    let lines = records(&chunks(internal).await.concat());
    assert_eq!(
        lines,
        [json!({ "error": { "code": 13, "message": "internal error", "details": [] } })]
    );
    system.stop().await;
}

#[tokio::test]
async fn each_message_is_flushed_as_it_arrives_and_streams_outlive_the_call_deadline() {
    let system = System::start_with_gateway(|g| g.http.default_timeout_ms = 300).await;
    let (_, token) = system.user("ada@example.com").await;
    // Three updates 250 ms apart: longer than the unary deadline in all.
    let mut response = system
        .get("/v1/inventory/SKU-F:watch?count=3&intervalMs=250", &token)
        .await;
    let first = response.chunk().await.unwrap().expect("a first chunk");
    let first = String::from_utf8(first.to_vec()).unwrap();
    assert_eq!(
        records(&first),
        [json!({ "sku": "SKU-F", "inStock": "42" })],
        "the first message alone, before the others exist"
    );
    let rest = chunks(response).await.concat();
    assert_eq!(records(&rest).len(), 2, "no deadline error: {rest}");
    system.stop().await;
}

#[tokio::test]
async fn server_sent_events_with_heartbeats_and_an_error_event() {
    let system = System::start_with_gateway(|g| g.http.sse_heartbeat_ms = 100).await;
    let (_, token) = system.user("ada@example.com").await;
    let response = system
        .get_with(
            "/v1/inventory/SKU-S:watch?count=1&failWith=5&intervalMs=450",
            &token,
            &[("Accept", "text/event-stream")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = chunks(response).await.concat();
    let heartbeat = text
        .find(": heartbeat\n\n")
        .unwrap_or_else(|| panic!("a heartbeat while idle: {text:?}"));
    let data = text
        .find("data: {\"sku\":\"SKU-S\",\"inStock\":\"42\"}\n\n")
        .expect("the message as a data event");
    assert!(heartbeat < data, "{text}");
    assert!(
        text.ends_with(
            "event: error\ndata: {\"code\":5,\"details\":[],\"message\":\"the watch ended\"}\n\n"
        ),
        "{text}"
    );
    system.stop().await;
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_the_upstream_stream() {
    let system = System::start().await;
    let (_, token) = system.user("ada@example.com").await;
    let mut response = system
        .get("/v1/inventory/SKU-C:watch?count=1000&intervalMs=50", &token)
        .await;
    response.chunk().await.unwrap().expect("the stream started");
    assert_eq!(system_tests::open_watches("SKU-C"), 1);
    drop(response);
    platform_testing::wait::until(
        "the upstream call is cancelled",
        Duration::from_secs(5),
        async || system_tests::open_watches("SKU-C") == 0,
    )
    .await;
    system.stop().await;
}

#[tokio::test]
async fn client_streaming_methods_are_left_out_and_the_rest_is_served() {
    let system = System::start().await;
    let (_, token) = system.user("ada@example.com").await;
    let count = system.post("/v1/inventory:count", &token, &json!({})).await;
    assert_eq!(count.status(), StatusCode::NOT_FOUND);

    let document = system.openapi().await;
    let paths = document["paths"].as_object().unwrap();
    assert!(!paths.contains_key("/v1/inventory:count"));
    let watch = &paths["/v1/inventory/{sku}:watch"]["get"]["responses"]["200"]["content"];
    assert!(watch["application/x-ndjson"].is_object(), "{watch}");
    assert!(watch["text/event-stream"].is_object(), "{watch}");
    system.stop().await;
}
