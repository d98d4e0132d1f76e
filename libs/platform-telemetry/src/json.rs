//! JSON log lines that carry the trace they belong to.
//!
//! One object per line: `timestamp` (RFC 3339, UTC), `level`, `target`, `message`, the
//! event's own fields under their own names (`grpc.addr`, `user.id`, ...), and, when the
//! event happens inside a span, the W3C `trace_id` and `span_id` (lower-case hex) of
//! that span's trace context (the OpenTelemetry SDK's, or the id-only layer's), so a log line leads straight to its trace.
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
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::ids::Ids;

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
            if let Some(ids) = otel_ids(&span, &dispatch) {
                return Some(ids);
            }
            // A span the tracer does not see (a library's debug span, say): the
            // nearest traced ancestor is the right context.
            span = span.parent()?;
        }
    }
}

/// The ids of one span, from whichever layer gave it some.
fn otel_ids(span: &SpanRef<'_, Registry>, dispatch: &Dispatch) -> Option<(TraceId, SpanId)> {
    if let Some(Ids(context)) = span.extensions().get::<Ids>() {
        return Some((context.trace_id(), context.span_id()));
    }
    let cx = tracing_opentelemetry::get_otel_context(&span.id(), dispatch)?;
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
        let ids = self.trace_ids(event);
        let write = |line: &[u8]| {
            // One write per line, so lines of concurrent events never interleave. A
            // log line that cannot be written has nowhere else to go.
            let _ = self
                .make_writer
                .make_writer_for(event.metadata())
                .write_all(line);
        };
        // The thread's buffers, grown once, serve every line it writes; an event
        // recorded while a line is being rendered (by a field's `Debug`) gets its own.
        BUFFERS.with(|buffers| match buffers.try_borrow_mut() {
            Ok(mut buffers) => {
                let Buffers { line, fields } = &mut *buffers;
                render(line, fields, event, ids);
                write(line);
                // A rare huge line does not stay allocated for the thread's lifetime.
                if line.capacity() > MAX_KEPT {
                    *buffers = Buffers::default();
                }
            }
            Err(_) => {
                let (mut line, mut fields) = (Vec::new(), Fields::default());
                render(&mut line, &mut fields, event, ids);
                write(&line);
            }
        });
    }
}

/// What rendering a line needs, kept per thread.
#[derive(Default)]
struct Buffers {
    line: Vec<u8>,
    fields: Fields,
}

/// The most a thread's buffers keep between lines.
const MAX_KEPT: usize = 64 * 1024;

thread_local! {
    static BUFFERS: std::cell::RefCell<Buffers> = std::cell::RefCell::default();
}

/// Renders the JSON line of `event`, newline included, into `line` (cleared first),
/// with `fields` as scratch space. Written straight into the buffer, without `fmt`
/// where a number or a string can be copied: this runs for every request's access
/// line.
fn render(
    line: &mut Vec<u8>,
    fields: &mut Fields,
    event: &Event<'_>,
    ids: Option<(TraceId, SpanId)>,
) {
    let metadata = event.metadata();
    fields.message.clear();
    fields.rest.clear();
    event.record(fields);

    line.clear();
    line.extend_from_slice(b"{\"timestamp\":\"");
    push_timestamp(line, chrono::Utc::now());
    line.extend_from_slice(b"\",\"level\":\"");
    line.extend_from_slice(metadata.level().as_str().as_bytes());
    line.extend_from_slice(b"\",\"target\":");
    push_str(line, metadata.target());
    line.extend_from_slice(b",\"message\":\"");
    line.extend_from_slice(&fields.message);
    line.push(b'"');
    line.extend_from_slice(&fields.rest);
    if let Some((trace_id, span_id)) = ids {
        line.extend_from_slice(b",\"trace_id\":\"");
        push_hex(line, &trace_id.to_bytes());
        line.extend_from_slice(b"\",\"span_id\":\"");
        push_hex(line, &span_id.to_bytes());
        line.push(b'"');
    }
    line.extend_from_slice(b"}\n");
}

/// `now` as RFC 3339 with microseconds, `2026-01-02T03:04:05.678901Z`, as chrono's
/// `to_rfc3339_opts(Micros, true)` writes it, without a `String` of its own.
fn push_timestamp(line: &mut Vec<u8>, now: chrono::DateTime<chrono::Utc>) {
    use chrono::{Datelike as _, Timelike as _};
    // The clock gives years 0 to 9999 and no leap seconds; anything else is clamped.
    push_padded(
        line,
        u32::try_from(now.year().clamp(0, 9999)).unwrap_or(0),
        4,
    );
    let date = [(b'-', now.month()), (b'-', now.day())];
    let time = [
        (b'T', now.hour()),
        (b':', now.minute()),
        (b':', now.second()),
    ];
    for (separator, value) in date.into_iter().chain(time) {
        line.push(separator);
        push_padded(line, value, 2);
    }
    line.push(b'.');
    push_padded(line, now.timestamp_subsec_micros().min(999_999), 6);
    line.push(b'Z');
}

/// `value` in decimal, zero-padded to `width` digits.
fn push_padded(line: &mut Vec<u8>, value: u32, width: usize) {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(value).as_bytes();
    line.extend(std::iter::repeat_n(
        b'0',
        width.saturating_sub(digits.len()),
    ));
    line.extend_from_slice(digits);
}

/// `bytes` as lower-case hex.
fn push_hex(line: &mut Vec<u8>, bytes: &[u8]) {
    let start = line.len();
    line.resize(start + 2 * bytes.len(), 0);
    // The slice is exactly twice as long as `bytes`, as the encoding needs.
    let _ = hex::encode_to_slice(bytes, &mut line[start..]);
}

/// `text` as a JSON string, quotes included.
fn push_str(line: &mut Vec<u8>, text: &str) {
    line.push(b'"');
    push_escaped(line, text);
    line.push(b'"');
}

/// The bytes a JSON string cannot hold as they are: control characters, `"` and `\`.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// `text` escaped for the inside of a JSON string: quotes, backslashes and control
/// characters; everything else, UTF-8 included, is copied as it is.
fn push_escaped(line: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    let mut copied = 0;
    // Runs of plain text are copied whole; most fields are one run.
    while let Some(offset) = bytes[copied..]
        .iter()
        .position(|&b| NEEDS_ESCAPE[usize::from(b)])
    {
        let at = copied + offset;
        line.extend_from_slice(&bytes[copied..at]);
        copied = at + 1;
        match bytes[at] {
            b'"' => line.extend_from_slice(b"\\\""),
            b'\\' => line.extend_from_slice(b"\\\\"),
            b'\n' => line.extend_from_slice(b"\\n"),
            b'\r' => line.extend_from_slice(b"\\r"),
            b'\t' => line.extend_from_slice(b"\\t"),
            control => {
                line.extend_from_slice(b"\\u00");
                push_hex(line, &[control]);
            }
        }
    }
    line.extend_from_slice(&bytes[copied..]);
}

/// Writes what it is given into a JSON string as it comes, escaped: a `Debug` or
/// `Display` field goes into the line with no `String` of its own.
struct Escaped<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Escaped<'_> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        push_escaped(self.0, text);
        Ok(())
    }
}

/// The event's message, escaped, and its other fields already written as
/// `,"name":value`, in the order they were recorded.
#[derive(Default)]
struct Fields {
    message: Vec<u8>,
    rest: Vec<u8>,
}

impl Fields {
    /// Where the value of `field` goes: the message, or a new `,"name":` pair.
    fn key(&mut self, field: &Field) -> Option<&mut Vec<u8>> {
        let name = field.name();
        if name == "message" {
            self.message.clear();
            return None;
        }
        self.rest.extend_from_slice(b",\"");
        // Keys the line itself uses: an event field with one of these names is written
        // as `field.<name>` so it cannot overwrite them.
        if matches!(
            name,
            "timestamp" | "level" | "target" | "message" | "trace_id" | "span_id"
        ) {
            self.rest.extend_from_slice(b"field.");
        }
        push_escaped(&mut self.rest, name);
        self.rest.extend_from_slice(b"\":");
        Some(&mut self.rest)
    }

    fn text(&mut self, field: &Field, text: &str) {
        match self.key(field) {
            Some(rest) => push_str(rest, text),
            None => push_escaped(&mut self.message, text),
        }
    }

    /// A number, or `true`/`false`: bare in a pair, as text in the message.
    fn bare(&mut self, field: &Field, text: &str) {
        match self.key(field) {
            Some(rest) => rest.extend_from_slice(text.as_bytes()),
            None => self.message.extend_from_slice(text.as_bytes()),
        }
    }

    fn integer(&mut self, field: &Field, number: impl itoa::Integer) {
        self.bare(field, itoa::Buffer::new().format(number));
    }
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        // NaN and infinities are not JSON numbers.
        if value.is_finite() {
            self.bare(field, ryu::Buffer::new().format_finite(value));
        } else {
            self.text(field, &value.to_string());
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.integer(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.integer(field, value);
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.integer(field, value);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.integer(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.bare(field, if value { "true" } else { "false" });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record_debug(field, &format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        // Writing into a Vec cannot fail; a `Debug` impl that errs leaves what it wrote.
        match self.key(field) {
            Some(rest) => {
                rest.push(b'"');
                let _ = write!(Escaped(rest), "{value:?}");
                rest.push(b'"');
            }
            None => {
                let _ = write!(Escaped(&mut self.message), "{value:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, SecondsFormat, Utc};

    use super::push_timestamp;

    #[test]
    fn timestamps_read_as_chrono_writes_them() {
        for text in [
            "2026-12-02T09:01:04.000000Z",
            "1999-01-31T23:59:59.999999Z",
            "0042-07-04T00:00:00.000001Z",
        ] {
            let now: DateTime<Utc> = text.parse().expect("a timestamp");
            let mut line = Vec::new();
            push_timestamp(&mut line, now);
            assert_eq!(String::from_utf8(line).expect("ascii"), text);
            assert_eq!(now.to_rfc3339_opts(SecondsFormat::Micros, true), text);
        }
    }
}
