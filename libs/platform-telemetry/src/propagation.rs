//! W3C trace-context propagation across process boundaries.
//!
//! The platform always speaks W3C `traceparent`/`tracestate`, so the propagator is a
//! fixed [`TraceContextPropagator`] rather than a process-global one: propagation works
//! the same in tests that never install a global tracer.
//!
//! The functions taking a [`tracing::Span`] work whichever layer gives spans their
//! ids: the OpenTelemetry SDK's when spans are exported, or the id-only layer when
//! they are not. Code outside this crate goes through them rather
//! than through `tracing_opentelemetry::OpenTelemetrySpanExt`, which only knows the
//! first.

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::ids;

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The remote parent carried by incoming HTTP/2 or HTTP/1 headers (an empty context
/// when there is none or it does not parse).
pub fn extract(headers: &HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Writes `cx` into outgoing HTTP headers (gRPC metadata travels as headers).
pub fn inject(cx: &Context, headers: &mut HeaderMap) {
    TraceContextPropagator::new().inject_context(cx, &mut HeaderInjector(headers));
}

/// The trace context of `span`: its trace id, its own span id and the trace's flags
/// (invalid when the span is disabled).
pub fn span_context(span: &tracing::Span) -> SpanContext {
    ids::of(span).unwrap_or_else(|| span.context().span().span_context().clone())
}

/// Writes the trace context of `span` into outgoing headers, so the callee's spans
/// hang under it.
pub fn inject_span(span: &tracing::Span, headers: &mut HeaderMap) {
    let Some(context) = ids::of(span) else {
        inject(&span.context(), headers);
        if let Some(value) = headers.get_mut(TRACEPARENT) {
            value.set_sensitive(true);
        }
        return;
    };
    // What `TraceContextPropagator` writes (`00-{trace id}-{span id}-{flags}`), without
    // building an OpenTelemetry context.
    let mut traceparent = *b"00-00000000000000000000000000000000-0000000000000000-00";
    // Each slice is exactly twice the length of what is encoded into it.
    let _ = hex::encode_to_slice(context.trace_id().to_bytes(), &mut traceparent[3..35]);
    let _ = hex::encode_to_slice(context.span_id().to_bytes(), &mut traceparent[36..52]);
    let _ = hex::encode_to_slice([context.trace_flags().to_u8()], &mut traceparent[53..55]);
    if let Ok(mut value) = HeaderValue::from_bytes(&traceparent) {
        // Never the same twice: in HTTP/2's header table it would only push out the
        // headers that do repeat, and cost a search of every earlier one to get in.
        value.set_sensitive(true);
        headers.insert(TRACEPARENT, value);
    }
    let state = context.trace_state().header();
    if !state.is_empty()
        && let Ok(value) = HeaderValue::from_str(&state)
    {
        headers.insert(TRACESTATE, value);
    }
}

/// Whether `span`'s ids come from the id-only layer: nothing is exported, so a child
/// span would only repeat its ids at a cost (a caller can propagate `span` itself).
pub fn is_id_only(span: &tracing::Span) -> bool {
    ids::of(span).is_some()
}

/// The W3C headers of the current `tracing` span, for a message that leaves the
/// process later than the request that caused it (an event in an outbox).
pub fn current() -> HeaderMap {
    let mut headers = HeaderMap::new();
    inject_span(&tracing::Span::current(), &mut headers);
    headers
}

/// Makes the remote parent carried by `headers` the parent of `span`: a server span
/// continues its caller's trace, a consumer's processing span the trace of the request
/// that caused the event. With a missing or malformed `traceparent` there is nothing
/// to continue, and a root span starts a trace of its own. Call it before the span
/// has children.
pub fn continue_trace(span: &tracing::Span, headers: &HeaderMap) {
    let parent = extract(headers);
    let remote = parent.span().span_context().clone();
    if remote.is_valid() && ids::adopt(span, &remote) {
        return;
    }
    // Only fails when the span is disabled, when there is nothing to parent.
    let _ = span.set_parent(parent);
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TraceContextExt;

    use super::*;

    #[test]
    fn extract_then_inject_round_trips_a_traceparent() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut incoming = HeaderMap::new();
        incoming.insert("traceparent", http::HeaderValue::from_static(parent));
        let cx = extract(&incoming);
        assert_eq!(
            cx.span().span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let mut outgoing = HeaderMap::new();
        inject(&cx, &mut outgoing);
        assert_eq!(
            outgoing.get("traceparent").and_then(|v| v.to_str().ok()),
            Some(parent)
        );
    }

    #[test]
    fn garbage_traceparent_gives_an_empty_context() {
        let mut incoming = HeaderMap::new();
        incoming.insert("traceparent", http::HeaderValue::from_static("nonsense"));
        assert!(!extract(&incoming).span().span_context().is_valid());
    }
}
