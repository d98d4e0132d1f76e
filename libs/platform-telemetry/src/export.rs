//! Counting what the span exporter delivers and what it loses.
//!
//! The SDK's batch processor keeps a bounded queue (2048 spans by default,
//! `OTEL_BSP_MAX_QUEUE_SIZE`) and hands the exporter one batch at a time; a batch the
//! exporter fails to deliver (collector down, refused, timed out) is gone. Wrapping
//! the exporter counts those spans in Prometheus, so "are we losing traces?" is a
//! query rather than a hunch. Spans the processor drops because its queue is full
//! never reach the exporter and are not counted here: the SDK keeps that count to
//! itself and logs it once at shutdown.

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// Metric names of the exporter.
pub mod names {
    /// Counter of spans the exporter delivered.
    pub const SPANS_EXPORTED: &str = "otel_exporter_spans_exported_total";
    /// Counter of spans in batches the exporter failed to deliver.
    pub const SPANS_DROPPED: &str = "otel_exporter_spans_dropped_total";
}

/// A [`SpanExporter`] that counts delivered and lost spans, then defers to `E`.
#[derive(Debug)]
pub struct CountingExporter<E> {
    inner: E,
}

impl<E> CountingExporter<E> {
    /// Wraps `inner`.
    pub fn new(inner: E) -> Self {
        Self { inner }
    }
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = u64::try_from(batch.len()).unwrap_or(u64::MAX);
        let result = self.inner.export(batch).await;
        let name = if result.is_ok() {
            names::SPANS_EXPORTED
        } else {
            names::SPANS_DROPPED
        };
        metrics::counter!(name).increment(spans);
        result
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
