//! The log layer's filter: an `EnvFilter` that skips its per-span bookkeeping when no
//! directive can use it.
//!
//! As a per-layer filter, `EnvFilter` takes a lock and looks the span up on every
//! span entry and exit, and on every span's creation and close, to track directives
//! that name a span or a field (`target[span{field=value}]=level`). A filter without
//! such a directive (`info`, `orders=debug,h2=warn`) keeps that table empty, so the work
//! finds nothing; spans are entered on every poll of a traced future, many times per
//! request. Here that bookkeeping only runs when a directive has a span part.

use tracing::{Metadata, span};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Filter};

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
