//! The client library against real tonic servers on port 0: spans, trace context,
//! deadlines, metrics, balancing over resolved addresses, and the health probe.
//!
//! Each test runs on a current-thread runtime, so the thread-local tracing subscriber
//! and metrics recorder it installs see everything the client does.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use platform_client::{ChannelOptions, Channels, Client, Resolve, is_serving};
use platform_proto::users::v1 as pb;
use platform_proto::users::v1::user_service_client::UserServiceClient;
use platform_proto::users::v1::user_service_server::{UserService, UserServiceServer};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Code, Request, Response, Status};
use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

// ---- a users service that reports what it received ----

/// Headers of one received call.
#[derive(Debug, Clone)]
struct Seen {
    traceparent: Option<String>,
    grpc_timeout: Option<String>,
}

/// Answers `GetUser` with its own address as the id, after sleeping the number of
/// milliseconds in the requested id (if it is one).
#[derive(Debug, Clone)]
struct Echo {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not in this test"))
}

#[tonic::async_trait]
impl UserService for Echo {
    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let header = |name: &str| {
            request
                .metadata()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        self.seen.lock().unwrap().push(Seen {
            traceparent: header("traceparent"),
            grpc_timeout: header("grpc-timeout"),
        });
        if let Ok(millis) = request.get_ref().id.parse::<u64>() {
            tokio::time::sleep(Duration::from_millis(millis)).await;
        }
        if request.get_ref().id == "missing" {
            return Err(Status::not_found("no such user"));
        }
        Ok(Response::new(pb::User {
            id: self.addr.to_string(),
            ..pb::User::default()
        }))
    }

    async fn create_user(
        &self,
        _: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        unimplemented()
    }
    async fn list_users(
        &self,
        _: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        unimplemented()
    }
    async fn update_user(
        &self,
        _: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        unimplemented()
    }
    async fn delete_user(&self, _: Request<pb::DeleteUserRequest>) -> Result<Response<()>, Status> {
        unimplemented()
    }
    async fn create_token(
        &self,
        _: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        unimplemented()
    }
    async fn refresh_token(
        &self,
        _: Request<pb::RefreshTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        unimplemented()
    }
    async fn revoke_token(
        &self,
        _: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<()>, Status> {
        unimplemented()
    }
    async fn get_jwks(
        &self,
        _: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::GetJwksResponse>, Status> {
        unimplemented()
    }
}

/// A running server: the echo users service and the health service.
struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    health: tonic_health::server::HealthReporter,
}

impl Server {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve_on(listener: TcpListener) -> Server {
    let addr = listener.local_addr().unwrap();
    let seen = Arc::default();
    let echo = Echo {
        addr,
        seen: Arc::clone(&seen),
    };
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<UserServiceServer<Echo>>().await;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(UserServiceServer::new(echo))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    Server { addr, seen, health }
}

async fn serve() -> Server {
    serve_on(TcpListener::bind("127.0.0.1:0").await.unwrap()).await
}

fn client_of(url: &str, default_timeout: Duration) -> Client {
    Channels::new(ChannelOptions::default())
        .client(url, default_timeout)
        .unwrap()
}

async fn get_user(client: &Client, id: &str, timeout: Option<Duration>) -> Result<String, Status> {
    let mut request = Request::new(pb::GetUserRequest { id: id.to_owned() });
    if let Some(timeout) = timeout {
        request.set_timeout(timeout);
    }
    UserServiceClient::new(client.clone())
        .get_user(request)
        .await
        .map(|r| r.into_inner().id)
}

// ---- what the tracing subscriber saw ----

/// A span as it closed: its name, its parent's name, and its fields.
#[derive(Debug, Clone)]
struct Closed {
    name: String,
    parent: Option<String>,
    fields: HashMap<String, String>,
}

#[derive(Debug, Clone, Default)]
struct Fields(HashMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

/// Collects closed spans.
#[derive(Debug, Clone, Default)]
struct Spans(Arc<Mutex<Vec<Closed>>>);

impl Spans {
    fn named(&self, name: &str) -> Vec<Closed> {
        let closed = self.0.lock().unwrap();
        closed.iter().filter(|s| s.name == name).cloned().collect()
    }

    /// The closed spans called `name`, once there are at least `count`. A span closes
    /// when its last handle is dropped, and the channel's buffer task may still hold
    /// one for a moment after the call has returned.
    async fn closed(&self, name: &str, count: usize) -> Vec<Closed> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let found = self.named(name);
            if found.len() >= count || Instant::now() > deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<Fields>()
        {
            values.record(fields);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let fields = span
            .extensions()
            .get::<Fields>()
            .cloned()
            .unwrap_or_default();
        self.0.lock().unwrap().push(Closed {
            name: span.name().to_owned(),
            parent: span.parent().map(|p| p.name().to_owned()),
            fields: fields.0,
        });
    }
}

/// Installs, for this thread, a subscriber that gives spans OpenTelemetry ids and
/// collects them.
///
/// Every test in this binary calls it before anything else: a span site first reached
/// on a thread with no subscriber, while another thread installs the process's first
/// scoped subscriber, can have its interest cached as "never" (tracing-core consults
/// only the global dispatcher until a scoped one exists), which would silently drop
/// the next test's client span.
fn trace() -> (Spans, tracing::subscriber::DefaultGuard) {
    let spans = Spans::default();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(spans.clone())
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    (spans, tracing::subscriber::set_default(subscriber))
}

/// The `rpc_client_call_duration_seconds_count` sample with these label values.
fn client_calls(rendered: &str, method: &str, code: Code) -> Option<f64> {
    let method = format!("rpc_method=\"{method}\"");
    let code = format!("rpc_grpc_status_code=\"{}\"", code as i32);
    rendered
        .lines()
        .filter(|l| l.starts_with("rpc_client_call_duration_seconds_count{"))
        .find(|l| {
            l.contains(&method)
                && l.contains(&code)
                && l.contains("rpc_service=\"users.v1.UserService\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
}

// ---- the tests ----

#[tokio::test]
async fn every_call_gets_a_client_span_trace_context_and_a_metric() {
    let (spans, _tracing) = trace();
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    let _metrics = metrics::set_default_local_recorder(&recorder);
    let server = serve().await;
    let client = client_of(&format!("http://{}", server.addr), Duration::from_secs(5));

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
    let (spans, _tracing) = trace();
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    let _metrics = metrics::set_default_local_recorder(&recorder);
    let server = serve().await;
    let client = client_of(&format!("http://{}", server.addr), Duration::from_secs(3));

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
fn parse_timeout(value: &str) -> Duration {
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

/// Resolves every name to the addresses it currently holds.
#[derive(Debug, Default)]
struct FakeDns(Mutex<Vec<IpAddr>>);

impl Resolve for FakeDns {
    fn resolve(
        &self,
        _host: &str,
        port: u16,
    ) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> {
        let addrs = self
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|ip| SocketAddr::new(*ip, port))
            .collect();
        Box::pin(std::future::ready(Ok(addrs)))
    }
}

/// Who answered each of `n` calls.
async fn answered_by(client: &Client, n: usize) -> HashSet<String> {
    let mut seen = HashSet::new();
    for _ in 0..n {
        seen.insert(get_user(client, "0", None).await.unwrap());
    }
    seen
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
    let client = client_of(&format!("http://{}", server.addr), Duration::from_secs(5));
    let probe = Duration::from_secs(1);
    assert!(is_serving(&client, "users.v1.UserService", probe).await);
    assert!(
        !is_serving(&client, "orders.v1.OrderService", probe).await,
        "unknown to this server"
    );
    server
        .health
        .set_not_serving::<UserServiceServer<Echo>>()
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
