//! `/metrics` after real traffic: the whole page is valid Prometheus text and has the
//! series an SRE builds dashboards on. In-process, the three components share one
//! recorder, so one page shows all of them.

use serde_json::json;
use system_tests::System;
use system_tests::prometheus;

#[tokio::test]
async fn the_metrics_page_parses_strictly_and_has_the_expected_series() {
    let system = System::start().await;
    let (_, token) = system.user("metrics@example.com").await;
    for _ in 0..3 {
        let order =
            json!({ "items": [{ "sku": "BOOK-1", "quantity": 1, "unitPriceCents": "100" }] });
        let response = system.post("/v1/orders", &token, &order).await;
        assert!(response.status().is_success());
    }
    let missing = system
        .get("/v1/orders/0190a0a0-0000-7000-8000-000000000000", &token)
        .await;
    assert_eq!(missing.status().as_u16(), 404);

    let text = system.metrics().await;
    let page = prometheus::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));

    let create = [
        ("rpc_service", "orders.v1.OrderService"),
        ("rpc_method", "CreateOrder"),
        ("rpc_grpc_status_code", "0"),
    ];
    assert_eq!(page.types["rpc_server_requests_total"], "counter");
    assert_eq!(page.types["rpc_server_call_duration_seconds"], "histogram");
    assert!(
        page.value("rpc_server_requests_total", &create)
            .is_some_and(|n| n >= 3.0)
    );
    assert!(
        page.value("rpc_server_call_duration_seconds_count", &create)
            .is_some_and(|n| n >= 3.0)
    );
    assert!(
        page.value(
            "rpc_server_requests_total",
            &[("rpc_method", "GetOrder"), ("rpc_grpc_status_code", "5")]
        )
        .is_some_and(|n| n >= 1.0),
        "NOT_FOUND counted under its own code"
    );
    assert!(
        !page
            .find(
                "rpc_server_active_requests",
                &[("rpc_method", "CreateOrder")]
            )
            .is_empty()
    );

    let route = [
        ("http_request_method", "POST"),
        ("http_route", "/v1/orders"),
        ("http_response_status_code", "200"),
    ];
    assert!(
        page.value("http_server_requests_total", &route)
            .is_some_and(|n| n >= 3.0)
    );
    assert_eq!(
        page.types["http_server_request_duration_seconds"],
        "histogram"
    );
    assert!(
        page.value(
            "http_server_requests_total",
            &[
                ("http_route", "/v1/orders/{id}"),
                ("http_response_status_code", "404")
            ]
        )
        .is_some_and(|n| n >= 1.0)
    );
    assert!(!page.find("http_server_active_requests", &[]).is_empty());

    // Outgoing calls: the gateway's to orders, and orders' to users.
    assert!(
        !page
            .find(
                "rpc_client_call_duration_seconds_count",
                &[("rpc_method", "CreateOrder")]
            )
            .is_empty()
    );
    assert!(
        !page
            .find(
                "rpc_client_call_duration_seconds_count",
                &[
                    ("rpc_service", "users.v1.UserService"),
                    ("rpc_method", "GetUser")
                ]
            )
            .is_empty()
    );

    for pool in ["users", "orders"] {
        assert_eq!(
            page.value("db_client_connections_max", &[("pool_name", pool)]),
            Some(10.0)
        );
        // One recorder serves every system of this test binary, and a system of
        // another test may just be closing its pool: read again until this one's shows.
        platform_testing::wait::until(
            &format!("{pool} has opened a connection"),
            std::time::Duration::from_secs(10),
            async || {
                let text = system.metrics().await;
                let Ok(page) = prometheus::parse(&text) else {
                    return false;
                };
                let state = |state| {
                    page.value(
                        "db_client_connections_usage",
                        &[("pool_name", pool), ("state", state)],
                    )
                };
                state("used").unwrap_or(0.0) + state("idle").unwrap_or(0.0) >= 1.0
            },
        )
        .await;
    }
    for service in ["users", "orders", "gateway"] {
        assert!(
            !page.find("build_info", &[("service", service)]).is_empty(),
            "build_info of {service}"
        );
    }
    for name in prometheus::EVERY_COMPONENT {
        assert!(!page.find(name, &[]).is_empty(), "{name}");
    }
    assert!(
        page.help.contains_key("rpc_server_requests_total"),
        "described"
    );
    system.stop().await;
}
