//! JSON log lines that carry the trace they belong to.
//!
//! One object per line: `timestamp` (RFC 3339, UTC), `level`, `target`, `message`, the
//! event's own fields under their own names (`grpc.addr`, `user.id`, ...), and, when the
//! event happens inside a span, the W3C `trace_id` and `span_id` (lower-case hex) of
//! that span's OpenTelemetry context, so a log line leads straight to its trace.
//!
//! This is a [`Layer`] rather than a `fmt::FormatEvent`: a formatter runs inside the
//! dispatcher and cannot reach it again, while the OpenTelemetry context of a span is
//! only readable through the dispatcher (`get_otel_context`). A layer is handed the
//! dispatcher when it is installed, and keeps a weak reference to it.
//!
//! Span lookups go through the [`Registry`] itself rather than the layer's filtered
//! context, so the ids are there even when the log filter hides the span (say
//! `log.filter = warn` and an `info` server span).

use std::io::Write as _;
use std::sync::OnceLock;

use opentelemetry::trace::{SpanId, TraceContextExt, TraceId};
use tracing::dispatcher::{Dispatch, WeakDispatch};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Registry;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Keys the line itself uses; an event field with one of these names is written as
/// `field.<name>` so it cannot overwrite them.
const RESERVED: [&str; 6] = [
    "timestamp",
    "level",
    "target",
    "message",
    "trace_id",
    "span_id",
];

/// Writes every event it sees as one JSON line to `W`. See the [module docs](self).
pub struct JsonLayer<W> {
    make_writer: W,
    dispatch: OnceLock<WeakDispatch>,
}

impl<W> std::fmt::Debug for JsonLayer<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLayer").finish_non_exhaustive()
    }
}

impl<W> JsonLayer<W>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    /// A layer writing to `make_writer` (stdout in services, a buffer in tests).
    pub fn new(make_writer: W) -> Self {
        Self {
            make_writer,
            dispatch: OnceLock::new(),
        }
    }

    /// The trace and span id of the innermost span around `event` that has an
    /// OpenTelemetry context.
    fn trace_ids(&self, event: &Event<'_>) -> Option<(TraceId, SpanId)> {
        if event.is_root() {
            return None;
        }
        let dispatch = self.dispatch.get()?.upgrade()?;
        let registry = dispatch.downcast_ref::<Registry>()?;
        let id = match event.parent() {
            Some(parent) => parent.clone(),
            None => dispatch.current_span().id()?.clone(),
        };
        let mut span = registry.span(&id)?;
        loop {
            if let Some(ids) = otel_ids(&span.id(), &dispatch) {
                return Some(ids);
            }
            // A span the tracer does not see (a library's debug span, say): the
            // nearest traced ancestor is the right context.
            span = span.parent()?;
        }
    }
}

fn otel_ids(id: &tracing::span::Id, dispatch: &Dispatch) -> Option<(TraceId, SpanId)> {
    let cx = tracing_opentelemetry::get_otel_context(id, dispatch)?;
    let span = cx.span();
    let context = span.span_context();
    context
        .is_valid()
        .then(|| (context.trace_id(), context.span_id()))
}

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    fn on_register_dispatch(&self, dispatch: &Dispatch) {
        let _ = self.dispatch.set(dispatch.downgrade());
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let line = render(event, self.trace_ids(event));
        let metadata = event.metadata();
        // One write per line, so lines of concurrent events never interleave. A log
        // line that cannot be written has nowhere else to go.
        let _ = self.make_writer.make_writer_for(metadata).write_all(&line);
    }
}

/// The JSON line of `event`, newline included. Written straight into one buffer: this
/// runs for every request's access line.
fn render(event: &Event<'_>, ids: Option<(TraceId, SpanId)>) -> Vec<u8> {
    let metadata = event.metadata();
    let mut fields = Fields::default();
    event.record(&mut fields);

    let mut line = Vec::with_capacity(160 + fields.rest.len());
    line.extend_from_slice(b"{\"timestamp\":\"");
    let mut timestamp = String::new();
    if SystemTime
        .format_time(&mut Writer::new(&mut timestamp))
        .is_ok()
    {
        line.extend_from_slice(timestamp.as_bytes());
    }
    line.extend_from_slice(b"\",\"level\":\"");
    line.extend_from_slice(metadata.level().as_str().as_bytes());
    line.extend_from_slice(b"\",\"target\":");
    push_str(&mut line, metadata.target());
    line.extend_from_slice(b",\"message\":");
    push_str(&mut line, fields.message.as_deref().unwrap_or_default());
    line.extend_from_slice(&fields.rest);
    if let Some((trace_id, span_id)) = ids {
        // Hex digits only: nothing to escape.
        let _ = write!(
            line,
            ",\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\""
        );
    }
    line.extend_from_slice(b"}\n");
    line
}

/// `text` as a JSON string.
fn push_str(line: &mut Vec<u8>, text: &str) {
    // Serialising a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *line, text);
}

/// The event's message, and its other fields already written as `,"name":value`, in
/// the order they were recorded.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    rest: Vec<u8>,
}

impl Fields {
    /// Starts the pair of `field`; `None` for the message, which is kept apart.
    fn key(&mut self, field: &Field) -> bool {
        let name = field.name();
        if name == "message" {
            return false;
        }
        self.rest.push(b',');
        if RESERVED.contains(&name) {
            push_str(&mut self.rest, &format!("field.{name}"));
        } else {
            push_str(&mut self.rest, name);
        }
        self.rest.push(b':');
        true
    }

    fn text(&mut self, field: &Field, text: &str) {
        if self.key(field) {
            push_str(&mut self.rest, text);
        } else {
            self.message = Some(text.to_owned());
        }
    }

    fn number(&mut self, field: &Field, number: impl std::fmt::Display) {
        if self.key(field) {
            let _ = write!(self.rest, "{number}");
        } else {
            self.message = Some(number.to_string());
        }
    }
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        // NaN and infinities are not JSON numbers.
        if value.is_finite() {
            self.number(field, value);
        } else {
            self.text(field, &value.to_string());
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.number(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.number(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.number(field, value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.text(field, &value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.text(field, &format!("{value:?}"));
    }
}
