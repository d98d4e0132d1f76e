//! Telemetry for every component: logs, traces, and trace-context propagation.
//!
//! # Layout
//!
//! - [`init`] installs the process-wide `tracing` subscriber (JSON or pretty logs, an
//!   `EnvFilter`) and a layer that gives every span W3C ids; when the standard
//!   `OTEL_*` variables ask for it, that is an OpenTelemetry tracer exporting spans
//!   over OTLP/gRPC in batches. With no endpoint configured nothing is exported and
//!   nothing fails, but traces still propagate and log lines still carry their
//!   `trace_id`, and the SDK is not involved at all (the `ids` module: trace context
//!   without the SDK's spans).
//! - [`json`]: the JSON log line, with `trace_id` and `span_id` inside spans.
//! - [`export`]: counts of exported and lost spans, for Prometheus.
//! - [`TelemetryGuard::shutdown`] flushes the spans still queued; call it last.
//! - [`writer`]: stdout behind a buffer flushed every 100 ms, the writer of [`init`].
//! - [`propagation`] carries W3C `traceparent`/`tracestate` in and out of HTTP headers
//!   and gRPC metadata.

pub mod export;
mod ids;
pub mod json;
mod log_filter;
pub mod propagation;
pub mod writer;

use std::io::IsTerminal;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::{Deserialize, Serialize};
use tracing::Subscriber;
use tracing_subscriber::filter::{FilterFn, LevelFilter};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::export::CountingExporter;
use crate::json::JsonLayer;
use crate::log_filter::{Gated, LogFilter};
use crate::writer::BufferedStdout;

/// How log lines are written to stdout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `pretty` on a terminal, `json` otherwise (containers, CI, files).
    #[default]
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable, coloured lines.
    Pretty,
}

/// The `[log]` section of every component's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// Output format.
    pub format: LogFormat,
    /// An `EnvFilter` directive such as `info` or `info,sqlx=warn`; `RUST_LOG` wins
    /// when set.
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Auto,
            filter: "info".to_owned(),
        }
    }
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The log filter does not parse.
    #[error("invalid log filter `{filter}`: {source}")]
    Filter {
        /// The directive as configured.
        filter: String,
        /// The parse error.
        source: tracing_subscriber::filter::ParseError,
    },
    /// The OTLP exporter could not be built from the `OTEL_*` variables.
    #[error("cannot build the OTLP span exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// A global subscriber was already installed.
    #[error("a tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Who is emitting telemetry: becomes the `service.name` and `service.version` resource
/// (`OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` override it).
#[derive(Debug, Clone, Copy)]
pub struct Component {
    /// For example `users`.
    pub name: &'static str,
    /// The crate version.
    pub version: &'static str,
}

impl Component {
    /// `name` at `version` (usually `env!("CARGO_PKG_VERSION")`).
    pub const fn new(name: &'static str, version: &'static str) -> Self {
        Self { name, version }
    }
}

/// Keeps the tracer alive; [`TelemetryGuard::shutdown`] flushes it.
#[derive(Debug)]
#[must_use = "dropping the guard without shutdown loses queued spans"]
pub struct TelemetryGuard {
    /// The SDK's tracer, when spans are exported (or sampled by a configured sampler).
    provider: Option<SdkTracerProvider>,
    exporting: bool,
    /// The buffered log writer of [`init`], flushed last.
    logs: Option<BufferedStdout>,
}

impl TelemetryGuard {
    /// Whether spans are being exported.
    pub fn is_exporting(&self) -> bool {
        self.exporting
    }

    /// Flushes queued spans and stops the exporter, then flushes the log lines still
    /// buffered.
    pub async fn shutdown(self) {
        let logs = self.logs;
        if let Some(provider) = self.provider.filter(|_| self.exporting) {
            shutdown_provider(provider).await;
        }
        if let Some(logs) = logs {
            logs.flush();
        }
    }
}

async fn shutdown_provider(provider: SdkTracerProvider) {
    // The SDK's shutdown blocks the calling thread until the exporter is done; keep it
    // off the async workers.
    let result = tokio::task::spawn_blocking(move || provider.shutdown()).await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "span exporter shutdown failed"),
        Err(error) => tracing::warn!(%error, "span exporter shutdown panicked"),
    }
}

/// Reads a variable of the process environment; `init` takes the lookup as a function
/// so tests can describe an environment without mutating the real one.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Installs logging and tracing for the process from `settings` and the process
/// environment. Call once, early in `main`, inside a Tokio runtime.
pub fn init(
    component: Component,
    settings: &LogSettings,
) -> Result<TelemetryGuard, TelemetryError> {
    init_with_env(component, settings, &|key| std::env::var(key).ok())
}

/// [`init`] with an explicit environment lookup.
pub fn init_with_env(
    component: Component,
    settings: &LogSettings,
    env: EnvLookup<'_>,
) -> Result<TelemetryGuard, TelemetryError> {
    let logs = BufferedStdout::start();
    let (subscriber, mut guard) = subscriber(component, settings, env, logs.clone())?;
    subscriber
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
    guard.logs = Some(logs);
    Ok(guard)
}

/// The subscriber [`init`] installs, writing log lines to `writer`, without installing
/// it: tests set it as their thread's default and read what was written.
///
/// Two layers sit on one registry, each with its own filter:
///
/// - the log layer (JSON or pretty) under the configured `EnvFilter`;
/// - the OpenTelemetry layer for every `info` span and event or above, always, with a
///   tracer that exports only when the `OTEL_*` variables ask for it. Spans therefore
///   always have trace and span ids: log lines carry them and outgoing calls propagate
///   them (W3C `traceparent`) whether or not anything is exported, and a quieter log
///   filter never breaks a trace. Libraries' `debug` spans are not exported even when
///   their logs are turned on.
pub fn subscriber<W>(
    component: Component,
    settings: &LogSettings,
    env: EnvLookup<'_>,
    writer: W,
) -> Result<(impl Subscriber + Send + Sync + 'static, TelemetryGuard), TelemetryError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = match env("RUST_LOG") {
        Some(directive) if !directive.is_empty() => directive,
        _ => settings.filter.clone(),
    };
    let env_filter = match EnvFilter::builder().parse(&filter) {
        Ok(parsed) => LogFilter::new(parsed, &filter),
        Err(source) => return Err(TelemetryError::Filter { filter, source }),
    };

    let json = match settings.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    // The JSON log, the one services run with, applies its filter itself (see
    // `Gated`); the terminal's pretty log keeps the plain per-layer filter.
    let log_layer = if json {
        Gated::new(JsonLayer::new(writer), env_filter).boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_filter(env_filter)
            .boxed()
    };

    let (provider, exporting) = tracer_provider(component, env)?;
    // No thread attributes (a task moves between threads; the name would be noise, and
    // each one an allocation per span), no source location (three attributes on every
    // span, naming a line of the platform's code rather than what the request did) and
    // no OpenTelemetry context activated on every poll: propagation reads the span's
    // own context (`propagation::inject_span`).
    let otel_layer = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(component.name))
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_location(false)
            .with_context_activation(false)
            .with_filter(spans_and_warnings())
    });
    // Without the SDK's tracer, spans still need their ids. The layer picks its spans
    // itself: a per-layer filter would cost a span lookup on every entry and exit.
    let ids_layer = provider.is_none().then(ids::IdsLayer::default);

    let subscriber = tracing_subscriber::registry()
        .with(log_layer)
        .with(otel_layer)
        .with(ids_layer);
    Ok((
        subscriber,
        TelemetryGuard {
            provider,
            exporting,
            logs: None,
        },
    ))
}

/// What the OpenTelemetry layer sees: `info` spans and above, and only the events that
/// matter in a trace (`warn` and `error`, recorded as span events and exceptions). An
/// `info` event (an access log line, say) is the log's business: as a span event it would
/// double the work of every request for nothing a trace viewer needs.
fn spans_and_warnings() -> FilterFn<impl Fn(&tracing::Metadata<'_>) -> bool> {
    tracing_subscriber::filter::filter_fn(log_filter::wanted_by_traces)
        .with_max_level_hint(LevelFilter::INFO)
}

/// The tracer provider for the `OTEL_*` variables, and whether it exports. With no
/// endpoint (or `OTEL_SDK_DISABLED=true`) nothing is exported, and unless
/// `OTEL_TRACES_SAMPLER` asks for the SDK's sampling decisions (to be propagated),
/// there is no provider: the id-only layer gives spans their ids.
fn tracer_provider(
    component: Component,
    env: EnvLookup<'_>,
) -> Result<(Option<SdkTracerProvider>, bool), TelemetryError> {
    let is_set = |key: &str| env(key).is_some_and(|v| !v.trim().is_empty());
    let disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let endpoint_set =
        is_set("OTEL_EXPORTER_OTLP_ENDPOINT") || is_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    let exporting = endpoint_set && !disabled;
    if !exporting && !is_set("OTEL_TRACES_SAMPLER") {
        return Ok((None, false));
    }

    // `Resource::builder` applies OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME; the
    // component's own name is only the fallback.
    let mut resource =
        Resource::builder().with_attribute(KeyValue::new("service.version", component.version));
    if !is_set("OTEL_SERVICE_NAME") {
        resource = resource.with_service_name(component.name);
    }

    // The sampler comes from OTEL_TRACES_SAMPLER(_ARG) through the SDK's defaults, and
    // the batch schedule and queue from OTEL_BSP_*.
    let mut builder = SdkTracerProvider::builder().with_resource(resource.build());
    if exporting {
        // The exporter reads the endpoint, headers, timeout and compression from the
        // standard variables itself.
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()?;
        builder = builder.with_batch_exporter(CountingExporter::new(exporter));
    }
    Ok((Some(builder.build()), exporting))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    const COMPONENT: Component = Component {
        name: "test",
        version: "0.0.0",
    };
    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    /// Log lines written by a subscriber, one JSON value each.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<serde_json::Value> {
            let bytes = self.0.lock().unwrap().clone();
            String::from_utf8(bytes)
                .unwrap()
                .lines()
                .map(|line| serde_json::from_str(line).expect("every line is one JSON object"))
                .collect()
        }
    }

    /// Runs `f` under the JSON subscriber with `filter` and no exporter configured.
    fn logged(filter: &str, f: impl FnOnce()) -> Vec<serde_json::Value> {
        logged_with(&|_| None, filter, f)
    }

    /// [`logged`] in environment `env`.
    fn logged_with(env: EnvLookup<'_>, filter: &str, f: impl FnOnce()) -> Vec<serde_json::Value> {
        let captured = Captured::default();
        let settings = LogSettings {
            format: LogFormat::Json,
            filter: filter.to_owned(),
        };
        let writer = captured.clone();
        let (subscriber, guard) =
            subscriber(COMPONENT, &settings, env, move || writer.clone()).unwrap();
        assert!(!guard.is_exporting(), "no endpoint, no export");
        tracing::subscriber::with_default(subscriber, f);
        captured.lines()
    }

    fn remote_parent_span() -> tracing::Span {
        let span = tracing::info_span!("request", otel.kind = "server");
        let mut headers = http::HeaderMap::new();
        headers.insert("traceparent", http::HeaderValue::from_static(PARENT));
        propagation::continue_trace(&span, &headers);
        span
    }

    #[test]
    fn json_lines_carry_level_target_message_and_fields() {
        let lines = logged("info", || {
            tracing::info!(user.id = "u-1", attempts = 3_u64, ok = true, "user created");
            tracing::debug!("filtered out");
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["target"], "platform_telemetry::tests");
        assert_eq!(line["message"], "user created");
        assert_eq!(line["user.id"], "u-1");
        assert_eq!(line["attempts"], 3);
        assert_eq!(line["ok"], true);
        let timestamp = line["timestamp"].as_str().unwrap();
        assert!(
            timestamp.len() >= 20 && timestamp.ends_with('Z'),
            "{timestamp}"
        );
        assert!(line.get("trace_id").is_none(), "not inside a span");
        assert!(line.get("span_id").is_none());
    }

    #[test]
    fn a_directive_naming_a_span_turns_on_debug_inside_that_span_only() {
        let lines = logged("info,[checkout]=debug", || {
            tracing::debug!("outside");
            tracing::info_span!("checkout").in_scope(|| tracing::debug!("inside"));
            tracing::info_span!("browse").in_scope(|| tracing::debug!("elsewhere"));
        });
        let messages: Vec<_> = lines.iter().map(|line| line["message"].clone()).collect();
        assert_eq!(messages, ["inside"], "{lines:?}");
    }

    /// No exporter, with the id-only layer and with the SDK's tracer (which a
    /// configured sampler keeps).
    const UNEXPORTED: [EnvLookup<'static>; 2] = [&|_| None, &|key| {
        (key == "OTEL_TRACES_SAMPLER").then(|| "parentbased_always_on".to_owned())
    }];

    #[test]
    fn lines_inside_a_span_carry_its_trace_and_span_id_without_an_exporter() {
        for env in UNEXPORTED {
            let mut propagated = http::HeaderMap::new();
            let lines = logged_with(env, "info", || {
                let span = remote_parent_span();
                let _entered = span.enter();
                tracing::info!("inside");
                let child = tracing::info_span!("child");
                child.in_scope(|| {
                    tracing::warn!(field.x = 1, "deeper");
                    propagated = propagation::current();
                });
            });
            assert_eq!(lines.len(), 2, "{lines:?}");
            let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
            assert_eq!(lines[0]["trace_id"], trace_id);
            assert_eq!(lines[1]["trace_id"], trace_id);
            let outer = lines[0]["span_id"].as_str().unwrap();
            let inner = lines[1]["span_id"].as_str().unwrap();
            assert_eq!(outer.len(), 16);
            assert!(outer.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_ne!(
                outer, "00f067aa0ba902b7",
                "a new span under the remote parent"
            );
            assert_ne!(outer, inner, "each span has its own id");

            // Export is off, yet the trace continues into outgoing calls.
            let traceparent = propagated.get("traceparent").unwrap().to_str().unwrap();
            assert_eq!(traceparent, format!("00-{trace_id}-{inner}-01"));
        }
    }

    #[test]
    fn a_new_trace_starts_at_a_root_and_an_unsampled_parent_stays_unsampled() {
        for env in UNEXPORTED {
            let mut headers = http::HeaderMap::new();
            let _lines = logged_with(env, "info", || {
                let root = tracing::info_span!("root");
                let mut garbage = http::HeaderMap::new();
                garbage.insert("traceparent", http::HeaderValue::from_static("nonsense"));
                propagation::continue_trace(&root, &garbage);
                let (root_cx, child_cx) = root.in_scope(|| {
                    let child = tracing::info_span!("child");
                    (
                        propagation::span_context(&root),
                        propagation::span_context(&child),
                    )
                });
                assert!(root_cx.is_valid() && root_cx.is_sampled());
                assert_eq!(root_cx.trace_id(), child_cx.trace_id());
                assert_ne!(root_cx.span_id(), child_cx.span_id());

                let unsampled = tracing::info_span!("request");
                let mut incoming = http::HeaderMap::new();
                incoming.insert(
                    "traceparent",
                    http::HeaderValue::from_static(
                        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                    ),
                );
                incoming.insert("tracestate", http::HeaderValue::from_static("vendor=a"));
                propagation::continue_trace(&unsampled, &incoming);
                propagation::inject_span(&unsampled, &mut headers);
            });
            let traceparent = headers.get("traceparent").unwrap().to_str().unwrap();
            assert!(
                traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
                    && traceparent.ends_with("-00"),
                "{traceparent}"
            );
            assert_eq!(headers.get("tracestate").unwrap(), "vendor=a");
        }
    }

    #[test]
    fn a_quiet_log_filter_keeps_trace_ids_on_what_it_lets_through() {
        let lines = logged("warn", || {
            let span = remote_parent_span();
            let _entered = span.enter();
            tracing::info!("hidden");
            tracing::warn!("shown");
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["message"], "shown");
        assert_eq!(lines[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn what_the_trace_layers_need_is_still_filtered_out_of_the_log() {
        let lines = logged("error", || {
            let span = remote_parent_span();
            let _entered = span.enter();
            tracing::info!("hidden");
            tracing::warn!("hidden too");
            tracing::error!("shown");
        });
        let messages: Vec<_> = lines.iter().map(|line| line["message"].clone()).collect();
        assert_eq!(messages, ["shown"], "{lines:?}");
        assert_eq!(lines[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn a_debug_span_has_no_ids_of_its_own_and_its_lines_carry_the_nearest_info_span_s() {
        let lines = logged("debug", || {
            let span = remote_parent_span();
            let _entered = span.enter();
            tracing::info!("outer");
            tracing::debug_span!("detail").in_scope(|| tracing::debug!("inner"));
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[1]["message"], "inner");
        assert_eq!(lines[1]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(lines[1]["span_id"], lines[0]["span_id"]);
    }

    #[test]
    fn values_are_escaped_and_typed_as_json() {
        #[derive(Debug)]
        struct Quoted;
        let lines = logged("info", || {
            tracing::info!(
                text = "a \"quoted\" \\ line\nwith\ttabs, \u{1}, and ünïcødé",
                shown = %"display \"value\"",
                debugged = ?Quoted,
                ratio = 0.25_f64,
                nan = f64::NAN,
                negative = -7_i64,
                big = u64::MAX,
                flag = false,
                "message with \"quotes\" and {}", 42
            );
        });
        let line = &lines[0];
        assert_eq!(
            line["text"],
            "a \"quoted\" \\ line\nwith\ttabs, \u{1}, and ünïcødé"
        );
        assert_eq!(line["shown"], "display \"value\"");
        assert_eq!(line["debugged"], "Quoted");
        assert_eq!(line["ratio"], 0.25);
        assert_eq!(line["nan"], "NaN");
        assert_eq!(line["negative"], -7);
        assert_eq!(line["big"], u64::MAX);
        assert_eq!(line["flag"], false);
        assert_eq!(line["message"], "message with \"quotes\" and 42");
    }

    #[test]
    fn event_fields_cannot_overwrite_the_line_s_own_keys() {
        let lines = logged("info", || {
            tracing::info!(level = "fake", trace_id = "fake", "spoof");
        });
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["field.level"], "fake");
        assert!(lines[0].get("trace_id").is_none());
        assert_eq!(lines[0]["field.trace_id"], "fake");
    }
}
