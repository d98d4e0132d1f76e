//! Trace context without the OpenTelemetry SDK, for a process that exports no spans.
//!
//! A span that is never exported still needs its W3C ids: log lines carry them, and
//! outgoing calls propagate them so the services behind keep the trace. The SDK's
//! layer would build a full span for that (a builder with every field as an attribute,
//! then an SDK span, then its end), all of it dropped. [`IdsLayer`] keeps only what is
//! used: each span's [`SpanContext`] (the trace id and flags of its parent, a span id
//! of its own), stored in the registry's extensions of the span.
//!
//! [`init`](crate::init) installs it instead of the SDK's layer when nothing is
//! exported and no sampler is configured; [`crate::propagation`] and the JSON log read
//! whichever of the two is there.

use opentelemetry::trace::{SpanContext, TraceFlags, TraceState};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use tracing::span::{Attributes, Id};
use tracing::{Level, Span, Subscriber};
use tracing_subscriber::Registry;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

/// The trace context of one span, in its extensions.
#[derive(Debug, Clone)]
pub(crate) struct Ids(pub(crate) SpanContext);

/// Gives every `info` span and above an [`Ids`]: a child of its nearest ancestor that
/// has one, or the root of a new, sampled trace. See the [module docs](self).
///
/// A plain layer, not a filtered one: it turns nothing down (that would hide the
/// callsite from the log too) and skips more verbose spans itself.
#[derive(Debug, Default)]
pub(crate) struct IdsLayer {
    generator: RandomIdGenerator,
}

impl<S> Layer<S> for IdsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::INFO)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if *attrs.metadata().level() > Level::INFO {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        let parent = if attrs.is_root() {
            None
        } else {
            span.parent().and_then(|parent| nearest(&parent))
        };
        let context = match parent {
            Some(parent) => SpanContext::new(
                parent.trace_id(),
                self.generator.new_span_id(),
                parent.trace_flags(),
                false,
                parent.trace_state().clone(),
            ),
            None => SpanContext::new(
                self.generator.new_trace_id(),
                self.generator.new_span_id(),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
        };
        span.extensions_mut().insert(Ids(context));
    }
}

/// The context of `span` or of its nearest ancestor that has one.
pub(crate) fn nearest<'a, R: LookupSpan<'a>>(span: &SpanRef<'a, R>) -> Option<SpanContext> {
    span.scope()
        .find_map(|span| span.extensions().get::<Ids>().map(|ids| ids.0.clone()))
}

/// The context [`IdsLayer`] gave `span`; `None` when that layer is not installed (or
/// the span is disabled).
pub(crate) fn of(span: &Span) -> Option<SpanContext> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<Registry>()?;
        nearest(&registry.span(id)?)
    })
    .flatten()
}

/// Makes `span` part of the trace `remote` belongs to, keeping its own span id: what
/// setting a remote parent means when nothing is exported. False when [`IdsLayer`] is
/// not installed.
pub(crate) fn adopt(span: &Span, remote: &SpanContext) -> bool {
    span.with_subscriber(|(id, dispatch)| {
        let Some(span) = dispatch
            .downcast_ref::<Registry>()
            .and_then(|registry| registry.span(id))
        else {
            return false;
        };
        let mut extensions = span.extensions_mut();
        let Some(ids) = extensions.get_mut::<Ids>() else {
            return false;
        };
        ids.0 = SpanContext::new(
            remote.trace_id(),
            ids.0.span_id(),
            remote.trace_flags(),
            false,
            remote.trace_state().clone(),
        );
        true
    })
    .unwrap_or(false)
}
