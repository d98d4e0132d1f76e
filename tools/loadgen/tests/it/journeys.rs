//! Journeys against users, orders and the gateway running together: every route is
//! exercised and answers as the journey expects.

use std::time::Duration;

use loadgen::Config;
use platform_shutdown::Shutdown;
use system_tests::System;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journeys_reach_every_route_without_errors_and_the_json_summary_counts_them() {
    let system = System::start().await;
    let mut config = Config::new(system.url(""));
    config.rate = 5.0;
    config.duration = Some(Duration::from_secs(2));

    let summary = loadgen::run(&config, Shutdown::never()).await.unwrap();
    let json = serde_json::to_value(&summary).unwrap();
    system.stop().await;

    // 5 journeys/s for 2 s: arrivals at 0, 0.2, ..., 1.8 s.
    assert_eq!(json["journeys"]["scheduled"], 10, "{json:#}");
    assert_eq!(json["journeys"]["started"], 10, "{json:#}");
    assert_eq!(json["journeys"]["completed"], 10, "{json:#}");
    for field in ["failed", "dropped", "unfinished"] {
        assert_eq!(json["journeys"][field], 0, "{field}: {json:#}");
    }
    assert_eq!(json["requests"]["errors"], 0, "{json:#}");
    assert_eq!(json["error_ratio"], 0.0);
    assert_eq!(json["passed"], true);

    // Sign-up, sign-in, refresh, watch, 2 orders, list, get, cancel; then the three
    // changes (2 placed, 1 cancelled) seen on the watch.
    let routes = json["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 9, "{json:#}");
    let mut total = 0;
    for route in routes {
        let name = route["route"].as_str().unwrap();
        let (expected, answer) = match name {
            "POST /v1/orders" => (20, "200"),
            "watched order changes" => (30, "watched"),
            _ => (10, "200"),
        };
        assert_eq!(route["requests"], expected, "{route:#}");
        assert_eq!(route["answers"][answer], expected, "{route:#}");
        assert_eq!(route["skipped"], 0, "{route:#}");
        total += expected;
        let latency = &route["latency_ms"];
        let (p50, p99, max) = (
            latency["p50"].as_f64().unwrap(),
            latency["p99"].as_f64().unwrap(),
            latency["max"].as_f64().unwrap(),
        );
        assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{name}: {latency}");
    }
    assert_eq!(json["requests"]["total"], total);
}
