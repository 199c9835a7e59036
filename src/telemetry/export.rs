//! The OTLP exporters, watched: a collector that is down or refuses the
//! export is said in the node's log — a warning when an export first
//! fails, then at most one a minute with the count ([`fold`](super::fold)),
//! and a line when exports go through again. Before, a node exporting to a
//! collector that was down said nothing until it stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use super::fold::Repeats;

/// Whether exports to one endpoint go through, shared by its span and
/// metric exporters.
#[derive(Debug)]
pub(super) struct ExportHealth {
    endpoint: String,
    failing: AtomicBool,
    failures: Repeats,
}

impl ExportHealth {
    pub(super) fn new(endpoint: &str) -> Arc<ExportHealth> {
        Arc::new(ExportHealth {
            endpoint: endpoint.to_string(),
            failing: AtomicBool::new(false),
            failures: Repeats::new(Duration::from_secs(60)),
        })
    }

    /// Notes an export's outcome; logs the first failure of a run, a
    /// summary a minute while it lasts, and the recovery.
    fn outcome(&self, what: &'static str, result: &OTelSdkResult) {
        match result {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    let failed = self.failures.end();
                    tracing::info!(
                        endpoint = %self.endpoint,
                        "telemetry export to {} works again ({what} exported; {failed} failed exports not said one by one)",
                        self.endpoint
                    );
                }
            }
            Err(e) => {
                self.failing.store(true, Ordering::Relaxed);
                if let Some(say) = self.failures.admit() {
                    tracing::warn!(
                        endpoint = %self.endpoint,
                        error = %e,
                        more = say.more(),
                        "telemetry export to {} failed ({what}): spans and metrics are lost until the collector takes them{say}",
                        self.endpoint
                    );
                }
            }
        }
    }
}

/// An exporter whose outcomes are told to an [`ExportHealth`].
#[derive(Debug)]
pub(super) struct Watched<E> {
    pub(super) inner: E,
    pub(super) health: Arc<ExportHealth>,
}

impl<E: SpanExporter> SpanExporter for Watched<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        self.health.outcome("spans", &result);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: PushMetricExporter> PushMetricExporter for Watched<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        self.health.outcome("metrics", &result);
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}
