//! A real OTLP/gRPC trace receiver on loopback: what a collector would see of the
//! spans the components export, for tests to assert on.

#![allow(
    clippy::expect_used,
    reason = "a test harness: failing to start is a test failure"
)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use platform_shutdown::{Shutdown, Trigger};

/// `Span.kind` of a server span.
pub const KIND_SERVER: i32 = 2;
/// `Span.kind` of a client span.
pub const KIND_CLIENT: i32 = 3;
/// `Status.code` of a failed span.
pub const STATUS_ERROR: i32 = 2;

/// One span as received, with the resource it came with.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// The resource's `service.name`.
    pub service: String,
    /// The resource's `service.version`.
    pub version: String,
    /// The span.
    pub span: Span,
}

fn text(value: Option<&AnyValue>) -> Option<String> {
    match value?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        any_value::Value::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| text(kv.value.as_ref()))
}

impl ReceivedSpan {
    /// The span attribute `key` as text (numbers and booleans formatted).
    pub fn attr(&self, key: &str) -> Option<String> {
        attribute(&self.span.attributes, key)
    }

    /// The trace id in hex.
    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    /// The span id in hex.
    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    /// The parent span id in hex (empty for a root).
    pub fn parent_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }

    /// Whether the span's status is ERROR.
    pub fn is_error(&self) -> bool {
        self.span
            .status
            .as_ref()
            .is_some_and(|s| s.code == STATUS_ERROR)
    }

    fn kind_name(&self) -> &'static str {
        match self.span.kind {
            1 => "internal",
            KIND_SERVER => "server",
            KIND_CLIENT => "client",
            4 => "producer",
            5 => "consumer",
            _ => "unspecified",
        }
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[derive(Debug, Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap_or_else(PoisonError::into_inner);
        for resource_spans in request.into_inner().resource_spans {
            let resource = resource_spans.resource.unwrap_or_default();
            let service = attribute(&resource.attributes, "service.name").unwrap_or_default();
            let version = attribute(&resource.attributes, "service.version").unwrap_or_default();
            for scope in resource_spans.scope_spans {
                spans.extend(scope.spans.into_iter().map(|span| ReceivedSpan {
                    service: service.clone(),
                    version: version.clone(),
                    span,
                }));
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// The receiver, serving until dropped.
#[derive(Debug)]
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    collector: Collector,
    _trigger: Trigger,
}

impl Receiver {
    /// Starts a receiver on a free loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let addr = listener.local_addr().expect("has an address");
        let collector = Collector::default();
        let (trigger, shutdown): (Trigger, Shutdown) = Shutdown::new();
        let service = TraceServiceServer::new(collector.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    async move { shutdown.wait().await },
                )
                .await
        });
        Self {
            addr,
            collector,
            _trigger: trigger,
        }
    }

    /// The `OTEL_EXPORTER_OTLP_ENDPOINT` of this receiver.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.collector
            .spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The spans of one trace as an indented tree, one span a line:
/// `service  name  [kind]` plus `ERROR` on failed spans. Spans whose parent is not in
/// the trace (the root, continuing a remote caller) start the tree.
pub fn render_tree(spans: &[ReceivedSpan]) -> String {
    let ids: Vec<String> = spans.iter().map(ReceivedSpan::span_id).collect();
    let mut children: HashMap<String, Vec<&ReceivedSpan>> = HashMap::new();
    let mut roots = Vec::new();
    for span in spans {
        if ids.contains(&span.parent_id()) {
            children.entry(span.parent_id()).or_default().push(span);
        } else {
            roots.push(span);
        }
    }
    for list in children.values_mut() {
        list.sort_by_key(|s| s.span.start_time_unix_nano);
    }
    roots.sort_by_key(|s| s.span.start_time_unix_nano);
    let mut out = String::new();
    fn walk(
        out: &mut String,
        span: &ReceivedSpan,
        depth: usize,
        children: &HashMap<String, Vec<&ReceivedSpan>>,
    ) {
        let _ = writeln!(
            out,
            "{:indent$}{:<8} {} [{}]{}",
            "",
            span.service,
            span.span.name,
            span.kind_name(),
            if span.is_error() { " ERROR" } else { "" },
            indent = depth * 2
        );
        for child in children.get(&span.span_id()).into_iter().flatten() {
            walk(out, child, depth + 1, children);
        }
    }
    for root in roots {
        walk(&mut out, root, 0, &children);
    }
    out
}
