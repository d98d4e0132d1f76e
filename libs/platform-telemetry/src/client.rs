//! Client-side spans and latency for outgoing gRPC calls, so a trace shows each hop
//! from the caller's side (the callee records its own server span under it) and
//! Prometheus shows how slow each dependency is as seen by its callers.

use std::time::Duration;

use tracing::Span;
use tracing::field::Empty;

/// Metric names, in the Prometheus form of the OpenTelemetry RPC conventions.
pub mod names {
    /// Histogram of outgoing call durations in seconds, by service, method and code.
    pub const CLIENT_DURATION: &str = "rpc_client_call_duration_seconds";
}

/// A client span for `service/method` (OpenTelemetry RPC conventions). Instrument the
/// call's future with it and inject the trace context inside it, so the callee's
/// server span becomes its child.
pub fn grpc_client_span(service: &str, method: &str) -> Span {
    tracing::info_span!(
        "grpc.client",
        otel.name = %format_args!("{service}/{method}"),
        otel.kind = "client",
        otel.status_code = Empty,
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        rpc.grpc.status_code = Empty,
    )
}

/// Records the outcome of the call on its client span; any failure is an error from
/// the caller's point of view.
pub fn record_grpc_outcome(span: &Span, code: tonic::Code) {
    span.record("rpc.grpc.status_code", code as i32);
    if code != tonic::Code::Ok {
        span.record("otel.status_code", "ERROR");
    }
}

/// Records one outgoing call's duration in [`names::CLIENT_DURATION`], labelled like
/// the server side (`rpc_service`, `rpc_method`, `rpc_grpc_status_code`).
pub fn record_client_duration(service: &str, method: &str, code: tonic::Code, elapsed: Duration) {
    metrics::histogram!(
        names::CLIENT_DURATION,
        "rpc_service" => service.to_owned(),
        "rpc_method" => method.to_owned(),
        "rpc_grpc_status_code" => (code as i32).to_string()
    )
    .record(elapsed.as_secs_f64());
}
