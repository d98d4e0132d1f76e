//! The log layer's filter: an `EnvFilter` that skips its per-span bookkeeping when no
//! directive can use it, and [`Gated`], which applies it inside the JSON log layer.
//!
//! As a per-layer filter, `EnvFilter` takes a lock and looks the span up on every
//! span entry and exit, and on every span's creation and close, to track directives
//! that name a span or a field (`target[span{field=value}]=level`). A filter without
//! such a directive (`info`, `orders=debug,h2=warn`) keeps that table empty, so the work
//! finds nothing; spans are entered on every poll of a traced future, many times per
//! request. Here that bookkeeping only runs when a directive has a span part.

use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Metadata, Subscriber, span};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct LogFilter {
    inner: EnvFilter,
    /// Whether a directive names a span (or a span's field), so the filter must follow
    /// spans as they are created, entered, exited and closed.
    follows_spans: bool,
}

impl LogFilter {
    /// `inner`, parsed from `directives`.
    pub(crate) fn new(inner: EnvFilter, directives: &str) -> Self {
        Self {
            inner,
            follows_spans: directives.contains('['),
        }
    }
}

impl<S> Filter<S> for LogFilter {
    fn enabled(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        Filter::enabled(&self.inner, meta, cx)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        Filter::<S>::callsite_enabled(&self.inner, meta)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Filter::<S>::max_level_hint(&self.inner)
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, cx: Context<'_, S>) {
        if self.follows_spans {
            Filter::on_new_span(&self.inner, attrs, id, cx);
        }
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, cx: Context<'_, S>) {
        if self.follows_spans {
            Filter::on_record(&self.inner, id, values, cx);
        }
    }

    fn on_enter(&self, id: &span::Id, cx: Context<'_, S>) {
        if self.follows_spans {
            Filter::on_enter(&self.inner, id, cx);
        }
    }

    fn on_exit(&self, id: &span::Id, cx: Context<'_, S>) {
        if self.follows_spans {
            Filter::on_exit(&self.inner, id, cx);
        }
    }

    fn on_close(&self, id: span::Id, cx: Context<'_, S>) {
        if self.follows_spans {
            Filter::on_close(&self.inner, id, cx);
        }
    }
}

/// What the trace layers (the id-only layer, the OpenTelemetry layer) may need whatever
/// the log filter says: `info` spans and above, `warn` events and above.
pub(crate) fn wanted_by_traces(meta: &Metadata<'_>) -> bool {
    let most_verbose = if meta.is_event() {
        tracing::Level::WARN
    } else {
        tracing::Level::INFO
    };
    *meta.level() <= most_verbose
}

/// A layer that writes only the events its [`LogFilter`] lets through, applied inside
/// the layer rather than as a per-layer filter.
///
/// With a per-layer filter anywhere in the stack, the registry keeps a map of which
/// filter enabled which span, and every filtered layer looks the span up on each entry
/// and exit: several lookups per poll of a traced future. A plain layer costs none of
/// that. But a plain layer that disables a callsite disables it for every layer, so
/// this one never turns down what the trace layers may need ([`wanted_by_traces`]),
/// and checks its filter again on each event.
#[derive(Debug)]
pub(crate) struct Gated<L> {
    layer: L,
    filter: LogFilter,
}

impl<L> Gated<L> {
    /// `layer`, seeing the events `filter` enables.
    pub(crate) fn new(layer: L, filter: LogFilter) -> Self {
        Self { layer, filter }
    }
}

impl<S, L> Layer<S> for Gated<L>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
{
    fn on_register_dispatch(&self, dispatch: &Dispatch) {
        self.layer.on_register_dispatch(dispatch);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.layer.on_layer(subscriber);
    }

    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        // Asked in any case: `EnvFilter` learns here which spans its directives name.
        let own = Filter::<S>::callsite_enabled(&self.filter, meta);
        if wanted_by_traces(meta) {
            Interest::always()
        } else {
            own
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, cx: Context<'_, S>) -> bool {
        wanted_by_traces(meta) || Filter::enabled(&self.filter, meta, &cx)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        let own = Filter::<S>::max_level_hint(&self.filter).unwrap_or(LevelFilter::TRACE);
        Some(own.max(LevelFilter::INFO))
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, cx: Context<'_, S>) {
        Filter::on_new_span(&self.filter, attrs, id, cx.clone());
        self.layer.on_new_span(attrs, id, cx);
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, cx: Context<'_, S>) {
        Filter::on_record(&self.filter, id, values, cx.clone());
        self.layer.on_record(id, values, cx);
    }

    fn on_enter(&self, id: &span::Id, cx: Context<'_, S>) {
        Filter::on_enter(&self.filter, id, cx.clone());
        self.layer.on_enter(id, cx);
    }

    fn on_exit(&self, id: &span::Id, cx: Context<'_, S>) {
        Filter::on_exit(&self.filter, id, cx.clone());
        self.layer.on_exit(id, cx);
    }

    fn on_close(&self, id: span::Id, cx: Context<'_, S>) {
        Filter::on_close(&self.filter, id.clone(), cx.clone());
        self.layer.on_close(id, cx);
    }

    fn on_event(&self, event: &Event<'_>, cx: Context<'_, S>) {
        let meta = event.metadata();
        if Filter::enabled(&self.filter, meta, &cx)
            && Filter::event_enabled(&self.filter, event, &cx)
        {
            self.layer.on_event(event, cx);
        }
    }
}
