//! `google.api.HttpBody` through the gateway: raw answers with the service's content
//! type, chunked downloads, raw request bodies, and binary media in the OpenAPI
//! document.

use reqwest::{Method, StatusCode};
use serde_json::json;
use system_tests::System;
use system_tests::edge::{answered, expect_json, remaining_chunks};

#[tokio::test]
async fn an_http_body_answer_is_its_bytes_with_its_content_type() {
    let system = System::start().await;
    let (_, token) = system.user("ada@example.com").await;
    let response = system
        .get("/v1/inventory/BOOK-1:export?rows=2", &token)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/csv");
    assert_eq!(
        response.text().await.unwrap(),
        "sku,row,in_stock\nBOOK-1,0,42\nBOOK-1,1,41\n"
    );
    system.stop().await;
}

#[tokio::test]
async fn a_stream_of_http_bodies_is_a_download_written_as_it_arrives() {
    let system = System::start().await;
    let (_, token) = system.user("ada@example.com").await;

    let mut response = system
        .get("/v1/inventory/BOOK-1:download?count=3", &token)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv",
        "the first message's type"
    );
    let first = response.chunk().await.unwrap().expect("a first chunk");
    assert_eq!(&first[..], b"BOOK-1,0\n", "the first chunk alone");
    let rest = remaining_chunks(&mut response).await.unwrap().concat();
    assert_eq!(rest, b"BOOK-1,1\nBOOK-1,2\n");

    // Failing before the first chunk: an ordinary error answer.
    let refused = system
        .get(
            "/v1/inventory/BOOK-1:download?failFirst=true&failWith=7",
            &token,
        )
        .await;
    let body = expect_json(refused, StatusCode::FORBIDDEN).await;
    assert_eq!(body["message"], "the download failed");

    // Failing after it began: the download is cut off, never passed off as complete.
    let mut cut = system
        .get("/v1/inventory/BOOK-1:download?count=1&failWith=14", &token)
        .await;
    assert_eq!(cut.status(), StatusCode::OK);
    let outcome = remaining_chunks(&mut cut).await;
    assert!(outcome.is_err(), "the client sees an incomplete body");
    system.stop().await;
}

#[tokio::test]
async fn a_raw_request_body_reaches_the_service_with_its_content_type() {
    let system = System::start().await;
    let (_, token) = system.user("ada@example.com").await;
    let png = [0x89, b'P', b'N', b'G', 0, 1, 2, 3, 0xff];

    let picture = system.request(
        Method::PUT,
        "/v1/inventory/BOOK-1/picture",
        &token,
        &[("Content-Type", "image/png")],
    );
    let stored = answered(picture.body(png.to_vec())).await;
    let stored = expect_json(stored, StatusCode::OK).await;
    assert_eq!(
        stored,
        json!({ "sku": "BOOK-1", "contentType": "image/png", "size": "9" })
    );

    // The request itself an HttpBody (`body: "*"`), and the answer too.
    let xml = [("Content-Type", "application/xml")];
    let echo = system.request(Method::POST, "/v1/inventory:echo", &token, &xml);
    let echoed = answered(echo.body("<stock sku=\"BOOK-1\"/>")).await;
    assert_eq!(echoed.status(), StatusCode::OK);
    assert_eq!(echoed.headers()["content-type"], "application/xml");
    assert_eq!(echoed.text().await.unwrap(), "<stock sku=\"BOOK-1\"/>");
    system.stop().await;
}

#[tokio::test]
async fn the_openapi_document_shows_http_bodies_as_binary() {
    let system = System::start().await;
    let document = system.openapi().await;
    let paths = &document["paths"];
    let binary = json!({ "type": "string", "format": "binary" });
    let export = &paths["/v1/inventory/{sku}:export"]["get"]["responses"]["200"]["content"];
    assert_eq!(export["*/*"]["schema"], binary, "{export}");
    let download = &paths["/v1/inventory/{sku}:download"]["get"]["responses"]["200"]["content"];
    assert_eq!(download["*/*"]["schema"], binary, "{download}");
    let upload = &paths["/v1/inventory/{sku}/picture"]["put"]["requestBody"]["content"];
    assert_eq!(upload["*/*"]["schema"], binary, "{upload}");
    assert!(upload.get("application/json").is_none(), "{upload}");
    let echo = &paths["/v1/inventory:echo"]["post"];
    assert_eq!(echo["requestBody"]["content"]["*/*"]["schema"], binary);
    system.stop().await;
}
