//! Telemetry for every component: logs, traces, and trace-context propagation.
//!
//! # Layout
//!
//! - [`init`] installs the process-wide `tracing` subscriber (JSON or pretty logs, an
//!   `EnvFilter`) and, when the standard `OTEL_*` variables ask for it, an OpenTelemetry
//!   tracer exporting spans over OTLP/gRPC in batches. With no endpoint configured
//!   nothing is exported and nothing fails.
//! - [`TelemetryGuard::shutdown`] flushes the spans still queued; call it last.
//! - [`propagation`] carries W3C `traceparent`/`tracestate` in and out of HTTP headers
//!   and gRPC metadata.

pub mod client;
pub mod propagation;

use std::io::IsTerminal;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::{Deserialize, Serialize};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

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

/// Keeps the tracer alive; [`TelemetryGuard::shutdown`] flushes it.
#[derive(Debug)]
#[must_use = "dropping the guard without shutdown loses queued spans"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Whether spans are being exported.
    pub fn is_exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Flushes queued spans and stops the exporter.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        // The SDK's shutdown blocks the calling thread until the exporter is done;
        // keep it off the async workers.
        let result = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "span exporter shutdown failed"),
            Err(error) => tracing::warn!(%error, "span exporter shutdown panicked"),
        }
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
    let filter = match env("RUST_LOG") {
        Some(directive) if !directive.is_empty() => directive,
        _ => settings.filter.clone(),
    };
    let env_filter = EnvFilter::builder()
        .parse(&filter)
        .map_err(|source| TelemetryError::Filter { filter, source })?;

    let json = match settings.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let fmt_layer = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer().boxed()
    };

    let provider = tracer_provider(component, env)?;
    let otel_layer = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer().with_tracer(provider.tracer(component.name))
    });

    tracing_subscriber::registry()
        .with(env_filter)
        .with(fmt_layer)
        .with(otel_layer)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;

    Ok(TelemetryGuard { provider })
}

/// The tracer provider the `OTEL_*` variables ask for, or `None` when they ask for none.
fn tracer_provider(
    component: Component,
    env: EnvLookup<'_>,
) -> Result<Option<SdkTracerProvider>, TelemetryError> {
    let is_set = |key: &str| env(key).is_some_and(|v| !v.trim().is_empty());
    let disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let endpoint_set =
        is_set("OTEL_EXPORTER_OTLP_ENDPOINT") || is_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    if disabled || !endpoint_set {
        return Ok(None);
    }

    // The exporter reads the endpoint, headers, timeout and compression from the
    // standard variables itself.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()?;

    // `Resource::builder` applies OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME; the
    // component's own name is only the fallback.
    let mut resource =
        Resource::builder().with_attribute(KeyValue::new("service.version", component.version));
    if !is_set("OTEL_SERVICE_NAME") {
        resource = resource.with_service_name(component.name);
    }

    // The sampler comes from OTEL_TRACES_SAMPLER(_ARG) through the SDK's defaults.
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    Ok(Some(provider))
}
