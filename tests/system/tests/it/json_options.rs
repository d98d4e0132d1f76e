//! JSON options of one upstream: every field written (message fields as `null`),
//! proto field names, enums as numbers, and unknown query parameters ignored.

use reqwest::StatusCode;
use serde_json::{Value, json};
use system_tests::System;
use system_tests::edge::expect_json;

#[tokio::test]
async fn an_upstream_can_have_its_own_json() {
    let system = System::start_with_gateway(|g| {
        let json = &mut g.upstreams[0].options.json;
        json.emit_unpopulated = true;
        json.proto_field_names = true;
        json.enums_as_numbers = true;
        json.unknown_query_parameters = gateway::settings::UnknownQueryParameters::Ignore;
    })
    .await;
    let (_, token) = system.user("ada@example.com").await;

    // The unknown parameter is ignored.
    let item = system
        .get("/v1/inventory/BOOK-1?utm_source=mail", &token)
        .await;
    let item = expect_json(item, StatusCode::OK).await;
    assert_eq!(
        item,
        json!({
            "sku": "BOOK-1",
            "in_stock": "42",
            "availability": 1,
            "location": null,
            "tags": [],
        })
    );

    // Other upstreams keep the canonical mapping.
    let orders = system.get("/v1/orders", &token).await;
    let orders: Value = orders.json().await.unwrap();
    assert!(orders.get("next_page_token").is_none(), "{orders}");
    let refused = system.get("/v1/orders?utm_source=mail", &token).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    system.stop().await;
}

#[tokio::test]
async fn by_default_json_is_canonical_and_unknown_parameters_are_refused() {
    let system = System::start().await;
    let (_, token) = system.user("ada@example.com").await;
    let item: Value = system
        .get("/v1/inventory/BOOK-1", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        item,
        json!({ "sku": "BOOK-1", "inStock": "42", "availability": "AVAILABILITY_IN_STOCK" })
    );
    let refused = system
        .get("/v1/inventory/BOOK-1?utm_source=mail", &token)
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("utm_source"),
        "{body}"
    );
    system.stop().await;
}
