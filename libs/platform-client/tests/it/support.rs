//! What the tests share: a users service on port 0 that reports what it received, a
//! tracing subscriber that collects closed spans, and metric lookups.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use metrics_exporter_prometheus::PrometheusHandle;
use opentelemetry::trace::TracerProvider as _;
use platform_client::{ChannelOptions, Channels, Client, Resolve};
use platform_proto::users::v1 as pb;
use platform_proto::users::v1::user_service_client::UserServiceClient;
use platform_proto::users::v1::user_service_server::UserServiceServer;
use platform_testing::fake_users::{self, FakeUsers, Reply, UsersFake};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Code, Request, Response, Status};
use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

// ---- a users service that reports what it received ----

/// One received call: its method and headers.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: &'static str,
    pub(crate) traceparent: Option<String>,
    pub(crate) grpc_timeout: Option<String>,
}

/// Answers `GetUser` with its own address as the id, after sleeping the number of
/// milliseconds in the requested id (if it is one); `missing` is NOT_FOUND and
/// `unavailable` is UNAVAILABLE. `CreateUser` is always UNAVAILABLE, from the handler.
#[derive(Debug, Clone)]
pub(crate) struct Echo {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Echo {
    fn record<T>(&self, method: &'static str, request: &Request<T>) {
        let header = |name: &str| {
            request
                .metadata()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        self.seen.lock().unwrap().push(Seen {
            method,
            traceparent: header("traceparent"),
            grpc_timeout: header("grpc-timeout"),
        });
    }
}

#[tonic::async_trait]
impl UsersFake for Echo {
    async fn get_user(&self, request: Request<pb::GetUserRequest>) -> Reply<pb::User> {
        self.record("GetUser", &request);
        let id = request.get_ref().id.as_str();
        if let Ok(millis) = id.parse::<u64>() {
            tokio::time::sleep(Duration::from_millis(millis)).await;
        }
        if let Some(millis) = id.strip_prefix("unavailable-after-") {
            let millis = millis.parse().unwrap();
            tokio::time::sleep(Duration::from_millis(millis)).await;
            return Err(Status::unavailable("not now"));
        }
        match id {
            "missing" => Err(Status::not_found("no such user")),
            "unavailable" => Err(Status::unavailable("not now")),
            _ => Ok(Response::new(pb::User {
                id: self.addr.to_string(),
                ..pb::User::default()
            })),
        }
    }

    async fn create_user(&self, request: Request<pb::CreateUserRequest>) -> Reply<pb::User> {
        self.record("CreateUser", &request);
        Err(Status::unavailable("not now"))
    }
}

/// A running server: the echo users service and the health service.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    pub(crate) health: tonic_health::server::HealthReporter,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// A client of this server alone, by its address.
    pub(crate) fn client(&self, default_timeout: Duration) -> Client {
        client_of(&format!("http://{}", self.addr), default_timeout)
    }

    /// Calls received of `method`.
    pub(crate) fn calls(&self, method: &str) -> usize {
        self.seen().iter().filter(|s| s.method == method).count()
    }

    /// Starts a graceful shutdown (GOAWAY to every client, calls in flight finish);
    /// the returned task ends when the server has stopped.
    pub(crate) fn shut_down(mut self) -> JoinHandle<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task
    }
}

pub(crate) async fn serve_on(listener: TcpListener) -> Server {
    let addr = listener.local_addr().unwrap();
    let seen = Arc::default();
    let echo = Echo {
        addr,
        seen: Arc::clone(&seen),
    };
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<UserServiceServer<FakeUsers<Echo>>>()
        .await;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(fake_users::serve(echo))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Server {
        addr,
        seen,
        health,
        stop: Some(stop),
        task,
    }
}

pub(crate) async fn serve() -> Server {
    serve_on(TcpListener::bind("127.0.0.1:0").await.unwrap()).await
}

pub(crate) fn client_of(url: &str, default_timeout: Duration) -> Client {
    Channels::new(ChannelOptions::default())
        .client(url, default_timeout)
        .unwrap()
}

pub(crate) async fn get_user(
    client: &Client,
    id: &str,
    timeout: Option<Duration>,
) -> Result<String, Status> {
    send_get_user(client, get_user_request(id, timeout)).await
}

/// `GetUser(id)`, with a deadline of its own when `timeout` is set.
pub(crate) fn get_user_request(id: &str, timeout: Option<Duration>) -> Request<pb::GetUserRequest> {
    let mut request = Request::new(pb::GetUserRequest { id: id.to_owned() });
    if let Some(timeout) = timeout {
        request.set_timeout(timeout);
    }
    request
}

/// Sends `request`: the id of the replica that answered.
pub(crate) async fn send_get_user(
    client: &Client,
    request: Request<pb::GetUserRequest>,
) -> Result<String, Status> {
    UserServiceClient::new(client.clone())
        .get_user(request)
        .await
        .map(|r| r.into_inner().id)
}

/// Resolves every name to the addresses it currently holds.
#[derive(Debug, Default)]
pub(crate) struct FakeDns(pub(crate) Mutex<Vec<IpAddr>>);

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

/// Spans and metrics, recorded for this thread (each test runs on one) while it lives.
pub(crate) struct Observing {
    _tracing: tracing::subscriber::DefaultGuard,
    _metrics: metrics::LocalRecorderGuard<'static>,
}

/// [`trace`], then a metrics recorder for this thread: the spans, the metrics, and
/// what keeps both recording.
pub(crate) fn observe() -> (Spans, PrometheusHandle, Observing) {
    let (spans, tracing) = trace();
    let recorder = Box::leak(Box::new(
        metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder(),
    ));
    let metrics = recorder.handle();
    let observing = Observing {
        _tracing: tracing,
        _metrics: metrics::set_default_local_recorder(recorder),
    };
    (spans, metrics, observing)
}

pub(crate) async fn answered_by(client: &Client, n: usize) -> HashSet<String> {
    let mut seen = HashSet::new();
    for _ in 0..n {
        seen.insert(get_user(client, "0", None).await.unwrap());
    }
    seen
}

// ---- what the tracing subscriber saw ----

/// A span as it closed: its name, its parent's name, and its fields.
#[derive(Debug, Clone)]
pub(crate) struct Closed {
    pub(crate) name: String,
    pub(crate) parent: Option<String>,
    pub(crate) fields: HashMap<String, String>,
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
pub(crate) struct Spans(Arc<Mutex<Vec<Closed>>>);

impl Spans {
    pub(crate) fn named(&self, name: &str) -> Vec<Closed> {
        let closed = self.0.lock().unwrap();
        closed.iter().filter(|s| s.name == name).cloned().collect()
    }

    /// The closed spans called `name`, once there are at least `count`. A span closes
    /// when its last handle is dropped, and the channel's buffer task may still hold
    /// one for a moment after the call has returned.
    pub(crate) async fn closed(&self, name: &str, count: usize) -> Vec<Closed> {
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
pub(crate) fn trace() -> (Spans, tracing::subscriber::DefaultGuard) {
    let spans = Spans::default();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(spans.clone())
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    (spans, tracing::subscriber::set_default(subscriber))
}

/// The `rpc_client_call_duration_seconds_count` sample with these label values.
pub(crate) fn client_calls(rendered: &str, method: &str, code: Code) -> Option<f64> {
    let code = (code as i32).to_string();
    let labels = [
        ("rpc_service", "users.v1.UserService"),
        ("rpc_method", method),
        ("rpc_grpc_status_code", &code),
    ];
    platform_testing::metrics::sample(rendered, "rpc_client_call_duration_seconds_count", &labels)
}

/// The `rpc_client_retries_total` samples of `method`, summed over reasons, or those of
/// `reason` only.
pub(crate) fn retries(rendered: &str, method: &str, reason: Option<&str>) -> f64 {
    let mut labels = vec![("rpc_method", method)];
    labels.extend(reason.map(|reason| ("reason", reason)));
    platform_testing::metrics::sum(rendered, "rpc_client_retries_total", &labels)
}

/// The `rpc_client_ejections_total` sample of `upstream`.
pub(crate) fn ejections(rendered: &str, upstream: &str) -> f64 {
    platform_testing::metrics::sum(
        rendered,
        "rpc_client_ejections_total",
        &[("upstream", upstream)],
    )
}
