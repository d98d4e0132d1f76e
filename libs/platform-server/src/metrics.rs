//! The process-wide Prometheus recorder behind every `/metrics` endpoint.
//!
//! `metrics` has one global recorder per process, so it is installed once, on first
//! use, and every server of the process (several in tests) renders the same registry.
//!
//! Besides what the code counts as it goes, a scrape shows figures read at scrape
//! time: the process's own (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_open_fds`, `process_start_time_seconds`, ... from `metrics-process`, which
//! reads `/proc` on Linux) and whatever a service registers with
//! [`register_collector`] (its database pool's gauges). [`install`] adds
//! `build_info{service, version} 1`, so dashboards can tell which version answers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use platform_telemetry::Component;

/// Latency buckets in seconds: fine below 10 ms where healthy calls sit, coarse up to
/// the 10 s default deadline.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Metric names owned by this module.
pub mod names {
    /// Gauge, always 1, labelled with the component's `service` and `version`.
    pub const BUILD_INFO: &str = "build_info";
}

/// The recorder's handle and the process collector, made together.
struct Installed {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
}

fn installed() -> &'static Installed {
    static INSTALLED: OnceLock<Installed> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(LATENCY_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
        }
        spawn_upkeep(handle.clone());
        describe();
        let process = metrics_process::Collector::default();
        process.describe();
        Installed { handle, process }
    })
}

/// The handle that renders the process's metrics, installing the recorder on first
/// call.
pub fn handle() -> &'static PrometheusHandle {
    &installed().handle
}

/// Installs the recorder (if no one has yet) and records who this process is:
/// `build_info`, and the exporter's span counters at zero so they exist before the
/// first batch. Call once from each component's `Application::build`.
pub fn install(component: Component) {
    let _ = installed();
    metrics::gauge!(
        names::BUILD_INFO,
        "service" => component.name,
        "version" => component.version
    )
    .set(1.0);
    metrics::counter!(platform_telemetry::export::names::SPANS_EXPORTED).increment(0);
    metrics::counter!(platform_telemetry::export::names::SPANS_DROPPED).increment(0);
}

/// The Prometheus text of every metric of the process, with the figures read at
/// scrape time brought up to date first.
pub fn render() -> String {
    let installed = installed();
    installed.process.collect();
    let collectors: Vec<Collector> = lock_collectors()
        .iter()
        .map(|(_, collector)| Arc::clone(collector))
        .collect();
    for collect in collectors {
        collect();
    }
    installed.handle.render()
}

type Collector = Arc<dyn Fn() + Send + Sync>;

fn collectors() -> &'static Mutex<Vec<(u64, Collector)>> {
    static COLLECTORS: OnceLock<Mutex<Vec<(u64, Collector)>>> = OnceLock::new();
    COLLECTORS.get_or_init(|| Mutex::new(Vec::new()))
}

fn lock_collectors() -> std::sync::MutexGuard<'static, Vec<(u64, Collector)>> {
    // A collector that panicked left the list itself intact.
    collectors()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `collect` before every scrape (it sets gauges of something only readable on
/// demand, like a connection pool) until the returned guard is dropped.
pub fn register_collector(collect: impl Fn() + Send + Sync + 'static) -> CollectorGuard {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    lock_collectors().push((id, Arc::new(collect)));
    CollectorGuard { id }
}

/// Unregisters its collector when dropped, so a stopped service (tests start many in
/// one process) stops reporting.
#[derive(Debug)]
#[must_use = "the collector is unregistered when the guard is dropped"]
pub struct CollectorGuard {
    id: u64,
}

impl Drop for CollectorGuard {
    fn drop(&mut self) {
        lock_collectors().retain(|(id, _)| *id != self.id);
    }
}

/// `# HELP` lines of the platform's own metrics, so a scrape explains itself.
fn describe() {
    use crate::rpc_layer::names as rpc;
    use platform_client::names as client;
    use platform_telemetry::export::names as export;

    metrics::describe_counter!(
        rpc::REQUESTS,
        "gRPC calls answered, by method and status code."
    );
    metrics::describe_histogram!(
        rpc::DURATION,
        metrics::Unit::Seconds,
        "Duration of answered gRPC calls, by method and status code."
    );
    metrics::describe_gauge!(rpc::ACTIVE, "gRPC calls in flight, by method.");
    metrics::describe_histogram!(
        client::CLIENT_DURATION,
        metrics::Unit::Seconds,
        "Duration of outgoing gRPC calls as the caller saw them, by method and status code."
    );
    metrics::describe_counter!(
        client::RETRIES,
        "Outgoing gRPC calls sent again, by method and reason (connect, refused_stream, goaway, not_sent, unavailable)."
    );
    metrics::describe_counter!(
        client::EJECTIONS,
        "Endpoints taken out of an upstream's balancer after failing repeatedly, by upstream."
    );
    metrics::describe_counter!(
        export::SPANS_EXPORTED,
        "Spans delivered to the OTLP collector."
    );
    metrics::describe_counter!(
        export::SPANS_DROPPED,
        "Spans lost because the OTLP exporter failed to deliver their batch."
    );
    metrics::describe_gauge!(
        names::BUILD_INFO,
        "Always 1; the labels name the component and its version."
    );
}

/// Histograms keep raw samples until rendered; upkeep folds them in even when nobody
/// scrapes, so memory stays bounded.
fn spawn_upkeep(handle: PrometheusHandle) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        });
    }
}
