//! Client-side spans for outgoing gRPC calls, so a trace shows each hop from the
//! caller's side (the callee records its own server span under it).

use tracing::Span;
use tracing::field::Empty;

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
