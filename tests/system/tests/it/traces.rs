//! One request, one trace: the three components as real processes exporting to a real
//! OTLP/gRPC receiver, and what an SRE gets from them (the trace tree, error status
//! where it belongs, logs that carry trace ids and no secrets, metrics pages that
//! parse), plus the promise that a collector that is down costs nothing.
//!
//! The binaries must be built first; `cargo test --workspace` does it (see
//! `system_tests::processes`). Run with `--nocapture` to see the trace trees.

#![allow(
    clippy::print_stdout,
    reason = "the trace trees are printed to be read"
)]

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use system_tests::edge::{Edge, answered, two_books};
use system_tests::otlp::{KIND_CLIENT, KIND_SERVER, ReceivedSpan, Receiver, render_tree};
use system_tests::processes::{Config, Export, Process, Processes};
use system_tests::{PASSWORD, prometheus};

/// These tests run three processes each (six for the second one) on a two-core
/// machine and compare timings: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A client's trace context: trace id, span id, and the `traceparent` header.
fn client_context() -> (String, String, String) {
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let span = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    let header = format!("00-{trace}-{span}-01");
    (trace, span, header)
}

/// The one span of `spans` that `matches`, or a failure showing the tree.
fn one<'a>(
    spans: &'a [ReceivedSpan],
    what: &str,
    matches: impl Fn(&ReceivedSpan) -> bool,
) -> &'a ReceivedSpan {
    let found: Vec<&ReceivedSpan> = spans.iter().filter(|s| matches(s)).collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {what} in:\n{}",
        render_tree(spans)
    );
    found[0]
}

fn is(span: &ReceivedSpan, service: &str, kind: i32) -> bool {
    span.service == service && span.span.kind == kind
}

fn rpc(span: &ReceivedSpan, service: &str, kind: i32, method: &str) -> bool {
    is(span, service, kind) && span.attr("rpc.method").as_deref() == Some(method)
}

/// The one span of `spans` that `matches`: a child of span `parent`, with each
/// `(key, value)` of `attrs` among its attributes.
fn hop<'a>(
    spans: &'a [ReceivedSpan],
    what: &str,
    matches: impl Fn(&ReceivedSpan) -> bool,
    parent: &str,
    attrs: &[(&str, &str)],
) -> &'a ReceivedSpan {
    let span = one(spans, what, matches);
    let tree = render_tree(spans);
    assert_eq!(span.parent_id(), parent, "the parent of the {what}\n{tree}");
    assert_attrs(span, attrs);
    span
}

/// Asserts each `(key, value)` attribute of `span`.
fn assert_attrs(span: &ReceivedSpan, expected: &[(&str, &str)]) {
    for (key, value) in expected {
        let name = &span.span.name;
        assert_eq!(span.attr(key).as_deref(), Some(*value), "{key} of {name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_is_one_trace_across_the_three_services() {
    let _serial = SERIAL.lock().await;
    let receiver = Receiver::start().await;
    let mut config = Config::new(Export::To(receiver.endpoint()));
    // Debug logs too: the secrets audit below then covers more than the defaults.
    config.log_filter = "debug".to_owned();
    let mut system = Processes::start(config).await;
    let (ada, ada_token) = system.user("ada@example.com").await;
    let (_bob, bob_token) = system.user("bob@example.com").await;

    // A request that succeeds, continuing the client's trace.
    let (ok_trace, ok_parent, traceparent) = client_context();
    let created = order_in_trace(&system, &ada_token, &traceparent).await;
    assert_eq!(created.status(), StatusCode::OK);

    check_metrics_pages(&system).await;

    // A request that fails on the server side: users is gone, and bob's account was
    // never confirmed (ada's is cached), so orders must ask users and cannot.
    let users_exit = system.users.terminate().await;
    assert_eq!(users_exit.code(), Some(0), "users exits 0 on SIGTERM");
    let (err_trace, err_parent, traceparent) = client_context();
    let refused = order_in_trace(&system, &bob_token, &traceparent).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);

    // SIGTERM flushes each process's spans before it exits 0.
    let logs = system.stop().await;
    check_no_secrets(&logs, &[&ada_token, &bob_token]);
    let gateway_line = logs
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["message"] == "request finished" && line["trace_id"] == ok_trace.as_str())
        .expect("the gateway's access log line carries the client's trace id");
    assert_eq!(gateway_line["route"], "/v1/orders");

    let spans = receiver.spans();
    let ok: Vec<ReceivedSpan> = spans
        .iter()
        .filter(|s| s.trace_id() == ok_trace)
        .cloned()
        .collect();
    let failed: Vec<ReceivedSpan> = spans
        .iter()
        .filter(|s| s.trace_id() == err_trace)
        .cloned()
        .collect();
    println!(
        "trace {ok_trace} (POST /v1/orders, 200):\n{}",
        render_tree(&ok)
    );
    println!(
        "trace {err_trace} (POST /v1/orders with users down, 503):\n{}",
        render_tree(&failed)
    );

    check_successful_trace(&ok, &ok_parent, &ada);
    check_failed_trace(&failed, &err_parent);
    check_only_traffic_is_traced(&spans);
}

/// `POST /v1/orders` as the holder of `token`, continuing the client's trace.
async fn order_in_trace(edge: &Edge, token: &str, traceparent: &str) -> reqwest::Response {
    let traced = [("traceparent", traceparent)];
    let create = edge.request(Method::POST, "/v1/orders", token, &traced);
    answered(create.json(&two_books())).await
}

/// The tree of the successful order, hop by hop.
fn check_successful_trace(spans: &[ReceivedSpan], client_span: &str, user_id: &str) {
    let tree = render_tree(spans);
    let gw_server = one(spans, "gateway server span", |s| {
        is(s, "gateway", KIND_SERVER)
    });
    assert_eq!(
        gw_server.parent_id(),
        client_span,
        "continues the client's span\n{tree}"
    );
    assert_eq!(gw_server.span.name, "POST /v1/orders");
    assert_attrs(
        gw_server,
        &[
            ("http.route", "/v1/orders"),
            ("http.request.method", "POST"),
            ("http.response.status_code", "200"),
        ],
    );

    let gw_client = hop(
        spans,
        "gateway client span to orders",
        |s| rpc(s, "gateway", KIND_CLIENT, "CreateOrder"),
        &gw_server.span_id(),
        &[("rpc.service", "orders.v1.OrderService")],
    );
    let orders_server = hop(
        spans,
        "orders server span",
        |s| rpc(s, "orders", KIND_SERVER, "CreateOrder"),
        &gw_client.span_id(),
        &[
            ("rpc.system", "grpc"),
            ("rpc.service", "orders.v1.OrderService"),
            ("rpc.grpc.status_code", "0"),
        ],
    );
    assert_eq!(
        orders_server.span.name,
        "orders.v1.OrderService/CreateOrder"
    );
    let orders_client = hop(
        spans,
        "orders client span to users",
        |s| rpc(s, "orders", KIND_CLIENT, "GetUser"),
        &orders_server.span_id(),
        &[],
    );
    let users_server = hop(
        spans,
        "users server span",
        |s| rpc(s, "users", KIND_SERVER, "GetUser"),
        &orders_client.span_id(),
        &[("rpc.grpc.status_code", "0")],
    );

    let orders_insert = hop(
        spans,
        "orders INSERT span",
        |s| is(s, "orders", KIND_CLIENT) && s.span.name == "INSERT orders",
        &orders_server.span_id(),
        &[("db.system", "sqlite"), ("db.operation", "INSERT")],
    );
    let text = orders_insert.attr("db.query.text").unwrap_or_default();
    assert!(
        text.starts_with("INSERT INTO orders") && text.contains("?1"),
        "{text}"
    );
    hop(
        spans,
        "users SELECT span",
        |s| is(s, "users", KIND_CLIENT) && s.span.name == "SELECT users",
        &users_server.span_id(),
        &[("db.system", "sqlite"), ("db.operation", "SELECT")],
    );

    for span in spans {
        assert!(
            !span.is_error(),
            "nothing failed: {}\n{tree}",
            span.span.name
        );
        assert_eq!(span.version, VERSION, "service.version of {}", span.service);
        if span.span_id() != gw_server.span_id() {
            assert!(
                spans.iter().any(|p| p.span_id() == span.parent_id()),
                "{} hangs off the tree\n{tree}",
                span.span.name
            );
        }
        // Statements carry placeholders, never the values bound to them.
        let text = span.attr("db.query.text").unwrap_or_default();
        assert!(
            !text.contains(user_id) && !text.contains("BOOK-1"),
            "{text}"
        );
    }
    let mut services: Vec<&str> = spans.iter().map(|s| s.service.as_str()).collect();
    services.sort_unstable();
    services.dedup();
    assert_eq!(services, ["gateway", "orders", "users"]);
}

/// The 503 is an error on every span that saw the failure.
fn check_failed_trace(spans: &[ReceivedSpan], client_span: &str) {
    let tree = render_tree(spans);
    let gw_server = one(spans, "gateway server span", |s| {
        is(s, "gateway", KIND_SERVER)
    });
    assert_eq!(gw_server.parent_id(), client_span, "{tree}");
    assert_attrs(gw_server, &[("http.response.status_code", "503")]);
    let gw_client = one(spans, "gateway client span", |s| {
        rpc(s, "gateway", KIND_CLIENT, "CreateOrder")
    });
    let orders_server = one(spans, "orders server span", |s| {
        rpc(s, "orders", KIND_SERVER, "CreateOrder")
    });
    let orders_client = one(spans, "orders client span", |s| {
        rpc(s, "orders", KIND_CLIENT, "GetUser")
    });
    for span in [gw_server, gw_client, orders_server, orders_client] {
        assert!(
            span.is_error(),
            "{} has ERROR status\n{tree}",
            span.span.name
        );
    }
    for span in [gw_client, orders_server, orders_client] {
        assert_eq!(
            span.attr("rpc.grpc.status_code").as_deref(),
            Some("14"),
            "{tree}"
        );
    }
    assert!(
        spans.iter().all(|s| s.service != "users"),
        "users was down\n{tree}"
    );
}

/// Probes, scrapes and background work make no spans: every trace starts at the
/// gateway's server span.
fn check_only_traffic_is_traced(spans: &[ReceivedSpan]) {
    for span in spans {
        let name = &span.span.name;
        assert!(
            !name.contains("grpc.health")
                && !name.contains("Health/")
                && !name.contains("metrics")
                && !name.contains("readyz")
                && !name.contains("healthz"),
            "{} made a span for {name}",
            span.service
        );
        let parent_known = spans.iter().any(|p| p.span_id() == span.parent_id());
        assert!(
            parent_known || is(span, "gateway", KIND_SERVER),
            "{}'s {name} starts a trace of its own",
            span.service
        );
    }
}

/// No token, password, password hash or key anywhere in the logs.
fn check_no_secrets(logs: &[String], tokens: &[&str]) {
    assert!(!logs.is_empty());
    for line in logs {
        for token in tokens {
            assert!(!line.contains(token), "a token in the logs: {line}");
        }
        for secret in [PASSWORD, "$argon2", "PRIVATE KEY", "Bearer "] {
            assert!(!line.contains(secret), "{secret:?} in the logs: {line}");
        }
    }
}

/// Each component's `/metrics` is valid Prometheus text with the expected series.
async fn check_metrics_pages(system: &Processes) {
    let mut pages = Vec::new();
    for (index, service) in ["users", "orders", "gateway"].into_iter().enumerate() {
        let text = system.metrics(index).await;
        let page = prometheus::parse(&text).unwrap_or_else(|e| panic!("{service}: {e}\n{text}"));
        assert_eq!(
            page.value("build_info", &[("service", service), ("version", VERSION)]),
            Some(1.0),
            "{service}"
        );
        for name in prometheus::EVERY_COMPONENT {
            assert!(!page.find(name, &[]).is_empty(), "{service} has {name}");
        }
        assert!(
            page.value("process_resident_memory_bytes", &[])
                .unwrap_or(0.0)
                > 1e6,
            "{service}: a real process uses more than a megabyte"
        );
        assert!(
            page.samples.iter().all(|s| !s
                .labels
                .get("rpc_service")
                .is_some_and(|v| v.starts_with("grpc."))),
            "{service}: health checks and reflection are not counted"
        );
        pages.push(page);
    }
    let [users, orders, gateway] = pages.try_into().unwrap();

    let ok = [("rpc_grpc_status_code", "0")];
    let get_user = [
        ("rpc_service", "users.v1.UserService"),
        ("rpc_method", "GetUser"),
    ];
    assert!(
        users
            .value(
                "rpc_server_requests_total",
                &[get_user[0], get_user[1], ok[0]]
            )
            .is_some_and(|n| n >= 1.0)
    );
    for (page, pool) in [(&users, "users"), (&orders, "orders")] {
        let labels = [("db_system", "sqlite"), ("pool_name", pool)];
        assert_eq!(page.value("db_client_connections_max", &labels), Some(10.0));
        for state in ["idle", "used"] {
            assert!(
                page.value(
                    "db_client_connections_usage",
                    &[labels[0], labels[1], ("state", state)]
                )
                .is_some(),
                "{pool} pool {state}"
            );
        }
    }
    assert!(
        orders
            .value(
                "rpc_client_call_duration_seconds_count",
                &[get_user[0], get_user[1], ok[0]]
            )
            .is_some_and(|n| n >= 1.0),
        "orders times its calls to users"
    );
    assert!(
        orders
            .value(
                "rpc_server_requests_total",
                &[("rpc_method", "CreateOrder"), ok[0]]
            )
            .is_some_and(|n| n >= 1.0)
    );
    let route = [
        ("http_request_method", "POST"),
        ("http_route", "/v1/orders"),
        ("http_response_status_code", "200"),
    ];
    assert_eq!(
        gateway.value("http_server_requests_total", &route),
        Some(1.0)
    );
    assert_eq!(
        gateway.value("http_server_request_duration_seconds_count", &route),
        Some(1.0)
    );
    assert!(
        gateway
            .value(
                "rpc_client_call_duration_seconds_count",
                &[("rpc_method", "CreateOrder"), ok[0]]
            )
            .is_some_and(|n| n >= 1.0)
    );
}

/// Waits (bounded: lines arrive through a pipe) for `process` to log `message` (of
/// `method`, for access lines) with `trace` as its `trace_id`.
async fn logged_in_trace(
    process: &Process,
    message: &str,
    method: Option<&str>,
    trace: &str,
) -> Value {
    for _ in 0..100 {
        let found = process.json_logs().into_iter().find(|line| {
            line["message"] == message
                && line["trace_id"] == trace
                && method.is_none_or(|m| line["method"] == m)
        });
        if let Some(line) = found {
            return line;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{} never logged {message:?} in trace {trace}:\n{}",
        process.name,
        process.logs().join("\n")
    );
}

/// Times `rounds` × `per_round` GET requests on each system, alternating, so both
/// see the same machine load.
async fn time_alternately(
    systems: [(&Processes, &str, &str); 2],
    rounds: usize,
    per_round: usize,
) -> [Duration; 2] {
    let mut totals = [Duration::ZERO; 2];
    for _ in 0..rounds {
        for (index, (system, id, token)) in systems.iter().enumerate() {
            let started = Instant::now();
            for _ in 0..per_round {
                let response = system.get(&format!("/v1/users/{id}"), token).await;
                assert_eq!(response.status(), StatusCode::OK);
            }
            totals[index] += started.elapsed();
        }
    }
    totals
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_collector_neither_fails_nor_slows_requests_and_export_off_still_propagates() {
    let _serial = SERIAL.lock().await;
    // A port where nothing listens.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let exporting = Processes::start(Config::new(Export::To(dead))).await;
    let off = Processes::start(Config::new(Export::Off)).await;
    let (exporting_id, exporting_token) = exporting.user("dead@example.com").await;
    let (off_id, off_token) = off.user("off@example.com").await;

    // An order on each (through all three components), the one with export off
    // continuing a client's trace: it still runs through all three processes.
    let (trace, client_span, traceparent) = client_context();
    let placed = exporting
        .post("/v1/orders", &exporting_token, &two_books())
        .await;
    assert_eq!(placed.status(), StatusCode::OK);
    let placed = order_in_trace(&off, &off_token, &traceparent).await;
    assert_eq!(placed.status(), StatusCode::OK);
    let gateway_line = logged_in_trace(&off.gateway, "request finished", None, &trace).await;
    assert_ne!(
        gateway_line["span_id"],
        client_span.as_str(),
        "its own span"
    );
    logged_in_trace(&off.orders, "rpc finished", Some("CreateOrder"), &trace).await;
    logged_in_trace(&off.users, "rpc finished", Some("GetUser"), &trace).await;

    // Warm both up, then compare.
    let systems = [
        (&exporting, exporting_id.as_str(), exporting_token.as_str()),
        (&off, off_id.as_str(), off_token.as_str()),
    ];
    time_alternately(systems, 1, 5).await;
    let [with_dead_collector, without_export] = time_alternately(systems, 8, 5).await;
    let ratio = with_dead_collector.as_secs_f64() / without_export.as_secs_f64();
    println!(
        "40 requests: {with_dead_collector:?} exporting to a dead collector, {without_export:?} with export off (ratio {ratio:.2})"
    );
    assert!(
        ratio < 3.0,
        "a dead collector slows requests: ratio {ratio:.2}"
    );

    // The spans that could not be delivered are counted, in every component.
    for (index, service) in ["users", "orders", "gateway"].into_iter().enumerate() {
        let mut dropped = 0.0;
        for _ in 0..100 {
            let text = exporting.metrics(index).await;
            let page = prometheus::parse(&text).unwrap_or_else(|e| panic!("{service}: {e}"));
            dropped = page
                .value("otel_exporter_spans_dropped_total", &[])
                .unwrap_or(0.0);
            assert_eq!(
                page.value("otel_exporter_spans_exported_total", &[]),
                Some(0.0)
            );
            if dropped > 0.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            dropped > 0.0,
            "{service} counts the spans it could not deliver"
        );
    }

    let stopping = Instant::now();
    let logs = exporting.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(15),
        "a dead collector does not hold up shutdown: {:?}",
        stopping.elapsed()
    );
    check_no_secrets(&logs, &[&exporting_token]);
    let logs = off.stop().await;
    check_no_secrets(&logs, &[&off_token]);
}
