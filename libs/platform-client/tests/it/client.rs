//! The client library against real tonic servers on port 0: spans, trace context,
//! deadlines, metrics, balancing over resolved addresses, and the health probe.
//!
//! Each test runs on a current-thread runtime, so the thread-local tracing subscriber
//! and metrics recorder it installs see everything the client does.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::trace::TraceContextExt;
use platform_client::{ChannelOptions, Channels, is_serving};
use platform_proto::users::v1::user_service_server::UserServiceServer;
use platform_testing::fake_users::FakeUsers;
use tokio::net::TcpListener;
use tonic::Code;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::support::{
    Echo, FakeDns, answered_by, client_calls, client_of, get_user, observe, serve, serve_on, trace,
};

// ---- the tests ----

#[tokio::test]
async fn with_spans_that_only_carry_ids_a_call_is_the_child_of_its_caller() {
    // The platform's own subscriber with nothing to export: the id-only layer.
    let (subscriber, _guard) = platform_telemetry::subscriber(
        platform_telemetry::Component::new("client-test", "0"),
        &platform_telemetry::LogSettings::default(),
        &|_| None,
        std::io::sink,
    )
    .unwrap();
    let _tracing = tracing::subscriber::set_default(subscriber);
    let recorder = Box::leak(Box::new(
        metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder(),
    ));
    let metrics = recorder.handle();
    let _metrics = metrics::set_default_local_recorder(recorder);
    let server = serve().await;
    let client = server.client(Duration::from_secs(5));

    let caller = tracing::info_span!("caller");
    let caller_cx = platform_telemetry::propagation::span_context(&caller);
    assert!(caller_cx.is_valid());
    let answered = {
        let _entered = caller.enter();
        get_user(&client, "1", None).await
    };
    assert_eq!(answered.unwrap(), server.addr.to_string());

    // No client span that nothing records: the callee's parent is the caller itself.
    let seen = server.seen();
    let traceparent = seen[0].traceparent.as_deref().expect("trace context sent");
    assert_eq!(
        traceparent,
        format!("00-{}-{}-01", caller_cx.trace_id(), caller_cx.span_id())
    );
    // The call is still measured.
    assert_eq!(
        client_calls(&metrics.render(), "GetUser", Code::Ok),
        Some(1.0)
    );
}

#[tokio::test]
async fn every_call_gets_a_client_span_trace_context_and_a_metric() {
    let (spans, metrics, _observing) = observe();
    let server = serve().await;
    let client = server.client(Duration::from_secs(5));

    let caller = tracing::info_span!("caller");
    let caller_cx = caller.context().span().span_context().clone();
    let answered = {
        let _entered = caller.enter();
        get_user(&client, "1", None).await
    };
    assert_eq!(answered.unwrap(), server.addr.to_string());
    let refused = {
        let _entered = caller.enter();
        get_user(&client, "missing", None).await
    };
    assert_eq!(refused.unwrap_err().code(), Code::NotFound);
    drop(caller);

    // The callee continues the caller's trace, under a new span.
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    for call in &seen {
        let traceparent = call.traceparent.as_deref().expect("trace context sent");
        let parts: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(parts[1], caller_cx.trace_id().to_string(), "{traceparent}");
        assert_ne!(parts[2], caller_cx.span_id().to_string(), "{traceparent}");
    }
    assert_ne!(seen[0].traceparent, seen[1].traceparent, "a span per call");

    let clients = spans.closed("grpc.client", 2).await;
    assert_eq!(clients.len(), 2, "{clients:?}");
    for span in &clients {
        assert_eq!(span.parent.as_deref(), Some("caller"));
        assert_eq!(span.fields["otel.name"], "users.v1.UserService/GetUser");
        assert_eq!(span.fields["otel.kind"], "client");
        assert_eq!(span.fields["rpc.system"], "grpc");
        assert_eq!(span.fields["rpc.service"], "users.v1.UserService");
        assert_eq!(span.fields["rpc.method"], "GetUser");
    }
    assert_eq!(clients[0].fields["rpc.grpc.status_code"], "0");
    assert!(!clients[0].fields.contains_key("otel.status_code"));
    assert_eq!(clients[1].fields["rpc.grpc.status_code"], "5");
    assert_eq!(clients[1].fields["otel.status_code"], "ERROR");

    let rendered = metrics.render();
    assert_eq!(
        client_calls(&rendered, "GetUser", Code::Ok),
        Some(1.0),
        "{rendered}"
    );
    assert_eq!(
        client_calls(&rendered, "GetUser", Code::NotFound),
        Some(1.0),
        "{rendered}"
    );
}

#[tokio::test]
async fn the_caller_s_deadline_travels_and_is_enforced() {
    let (spans, metrics, _observing) = observe();
    let server = serve().await;
    let client = server.client(Duration::from_secs(3));

    // No deadline of its own: the client's default.
    get_user(&client, "0", None).await.unwrap();
    // A shorter one wins; a longer one is capped.
    get_user(&client, "0", Some(Duration::from_millis(800)))
        .await
        .unwrap();
    get_user(&client, "0", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let timeouts: Vec<Duration> = server
        .seen()
        .iter()
        .map(|s| parse_timeout(s.grpc_timeout.as_deref().expect("grpc-timeout sent")))
        .collect();
    assert_eq!(timeouts[0], Duration::from_secs(3));
    assert_eq!(timeouts[1], Duration::from_millis(800));
    assert_eq!(timeouts[2], Duration::from_secs(3));

    // A callee slower than the deadline: DEADLINE_EXCEEDED once it passes.
    let started = Instant::now();
    let late = get_user(&client, "2000", Some(Duration::from_millis(150))).await;
    assert_eq!(late.unwrap_err().code(), Code::DeadlineExceeded);
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
    let last = spans.closed("grpc.client", 3).await.pop().unwrap();
    assert_eq!(last.fields["rpc.grpc.status_code"], "4");
    assert_eq!(last.fields["otel.status_code"], "ERROR");
    assert_eq!(
        client_calls(&metrics.render(), "GetUser", Code::DeadlineExceeded),
        Some(1.0)
    );

    // A budget already spent never leaves the process.
    let before = server.seen().len();
    let spent = get_user(&client, "0", Some(Duration::ZERO)).await;
    assert_eq!(spent.unwrap_err().code(), Code::DeadlineExceeded);
    assert_eq!(server.seen().len(), before);
}

/// `250m` → 250 ms (only the units these tests produce).
pub(crate) fn parse_timeout(value: &str) -> Duration {
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().unwrap();
    match unit {
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        other => panic!("unexpected unit {other}"),
    }
}

#[tokio::test]
async fn a_name_with_several_addresses_gets_calls_on_each_as_they_appear() {
    // Every test installs its subscriber first: see `trace`.
    let (_spans, _tracing) = trace();
    let first = serve().await;
    let port = first.addr.port();
    let second = serve_on(
        TcpListener::bind((Ipv4Addr::new(127, 0, 0, 2), port))
            .await
            .unwrap(),
    )
    .await;
    let dns = Arc::new(FakeDns::default());
    dns.0.lock().unwrap().push(first.addr.ip());
    let options = ChannelOptions {
        resolve_every: Duration::from_millis(50),
        ..ChannelOptions::default()
    };
    let channels = Channels::with_resolver(options, dns.clone());
    let client = channels
        .client(&format!("http://users.test:{port}"), Duration::from_secs(5))
        .unwrap();

    let only = HashSet::from([first.addr.to_string()]);
    assert_eq!(answered_by(&client, 10).await, only);

    // The name now resolves to both: the new endpoint joins the pool.
    dns.0.lock().unwrap().push(second.addr.ip());
    let both = HashSet::from([first.addr.to_string(), second.addr.to_string()]);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if answered_by(&client, 40).await == both {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second address never got a call"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // And leaves it when the name stops resolving to it.
    dns.0.lock().unwrap().retain(|ip| *ip != first.addr.ip());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let only_second = HashSet::from([second.addr.to_string()]);
    assert_eq!(answered_by(&client, 20).await, only_second);
}

#[tokio::test]
async fn a_real_dns_name_resolves() {
    // Every test installs its subscriber first: see `trace`.
    let (_spans, _tracing) = trace();
    let server = serve().await;
    let client = client_of(
        &format!("http://localhost:{}", server.addr.port()),
        Duration::from_secs(5),
    );
    assert_eq!(
        get_user(&client, "0", None).await.unwrap(),
        server.addr.to_string()
    );
}

#[tokio::test]
async fn the_health_probe_says_whether_a_service_is_serving() {
    let (spans, _tracing) = trace();
    let server = serve().await;
    let client = server.client(Duration::from_secs(5));
    let probe = Duration::from_secs(1);
    assert!(is_serving(&client, "users.v1.UserService", probe).await);
    assert!(
        !is_serving(&client, "orders.v1.OrderService", probe).await,
        "unknown to this server"
    );
    server
        .health
        .set_not_serving::<UserServiceServer<FakeUsers<Echo>>>()
        .await;
    assert!(!is_serving(&client, "users.v1.UserService", probe).await);
    assert!(
        spans.named("grpc.client").is_empty(),
        "probes are not traced"
    );

    // Nothing listening: false, promptly.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let down = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let started = Instant::now();
    assert!(!is_serving(&client_of(&down, probe), "users.v1.UserService", probe).await);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_backend_that_is_down_is_unavailable_and_recorded() {
    let (spans, _tracing) = trace();
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let client = client_of(&url, Duration::from_secs(5));
    let started = Instant::now();
    let error = get_user(&client, "0", None).await.unwrap_err();
    assert_eq!(error.code(), Code::Unavailable);
    assert!(started.elapsed() < Duration::from_secs(2));
    // The channel's buffer task may still hold the call (and a handle on its span)
    // while it waits for the dead endpoint; dropping the last handle on the channel
    // ends that task.
    drop(client);
    let span = spans.closed("grpc.client", 1).await.pop().unwrap();
    assert_eq!(span.fields["rpc.grpc.status_code"], "14");
    assert_eq!(span.fields["otel.status_code"], "ERROR");
}
