//! W3C trace-context propagation across process boundaries.
//!
//! The platform always speaks W3C `traceparent`/`tracestate`, so the propagator is a
//! fixed [`TraceContextPropagator`] rather than a process-global one: propagation works
//! the same in tests that never install a global tracer.

use http::HeaderMap;
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;

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

/// The W3C headers of the current `tracing` span, for a message that leaves the
/// process later than the request that caused it (an event in an outbox).
pub fn current() -> HeaderMap {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let mut headers = HeaderMap::new();
    inject(&tracing::Span::current().context(), &mut headers);
    headers
}

/// Makes the remote parent carried by `headers` the parent of `span` (a consumer's
/// processing span continues the trace of the request that caused the event).
pub fn continue_trace(span: &tracing::Span, headers: &HeaderMap) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    // Only fails when the span is disabled, when there is nothing to parent.
    let _ = span.set_parent(extract(headers));
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
