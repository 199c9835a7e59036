//! What an operator sees of a running node: the log lines on stderr and,
//! when `[telemetry] otlp_endpoint` is set, OpenTelemetry spans and metrics
//! exported over OTLP/gRPC.
//!
//! What it promises:
//!
//! - **One log line per request** (`sluis::request`): request id, method,
//!   gRPC status, latency in ms, the calling organisation (participant id)
//!   and its role — never a personal identifier or a pseudonym. Start-up,
//!   shutdown and errors go through the same subscriber, in the same
//!   format: human-readable on a terminal, JSON lines otherwise (or as
//!   `[log] format` says), and never ANSI escape codes unless stderr is a
//!   terminal ([`LogFormat`]).
//! - **Errors name their cause once** ([`chain`]): a cause whose text its
//!   error already carries is not repeated.
//! - **A flood is a line and a count** ([`fold`]): a line identical to one
//!   written within the last ten seconds (a listener's accept failing, a
//!   driver's reconnect noise) is counted, not written, and a summary "N
//!   more like this in the last M s" follows; the request lines are never
//!   folded. A collector that is down is one warning, then at most one a
//!   minute, and a line when exports go through again.
//! - **A span per request** (`otel.kind = server`, named by its method)
//!   with the request id, method, caller organisation and role, decision
//!   and gRPC status code; a W3C `traceparent` the caller sent is continued
//!   (TraceContextPropagator), so the span's trace id is the caller's. The
//!   request's (trace id, span id) are read back from the span
//!   (`Request::ids`) for the access record and the request's log line.
//! - **Metrics** ([`metrics`]): requests by method, decision and role; a
//!   latency histogram; the log writer's append latency and batch size;
//!   refused handshakes by reason; the log's size and the age of its newest
//!   checkpoint; database pool use.
//! - **Nothing when off.** Without an endpoint no exporter, provider or
//!   OpenTelemetry layer is built: no span is made, and every metric call
//!   is one relaxed load that finds no instruments.
//! - **No identity in telemetry.** What a span or metric carries is built
//!   here, from [`Caller`](crate::model::Caller)'s participant id and role,
//!   the method label, the decision and status names: the request path
//!   hands this module no request content. `tests/telemetry.rs` and
//!   `tests/logs.rs` check every exported attribute and every log line
//!   against the known test identities and the pseudonyms issued.
//!
//! The rpc edge calls [`request::begin`] for each request and runs the
//! request's work under it; the gateway tells the outcome's decision
//! ([`decided`]), the log writer and the node their figures ([`metrics`]).

mod export;
pub mod fold;
mod json;
pub mod metrics;
mod request;

use std::io::IsTerminal;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub(crate) use request::{begin, decided};

/// How log lines are written to stderr (`[log] format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable when stderr is a terminal, JSON lines otherwise
    /// (journald, a container runtime, a file).
    #[default]
    Auto,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields`
    /// (with `message`), `span` when inside one.
    Json,
    /// Human-readable lines; colours only on a terminal.
    Human,
}

impl LogFormat {
    /// Whether lines are JSON: `auto` resolved against stderr now.
    pub fn json(self) -> bool {
        match self {
            LogFormat::Auto => !std::io::stderr().is_terminal(),
            LogFormat::Json => true,
            LogFormat::Human => false,
        }
    }
}

/// Where and how spans and metrics are exported (`[telemetry]`).
#[derive(Clone, Debug)]
pub struct Otlp {
    /// The collector's OTLP/gRPC address, e.g. `http://127.0.0.1:4317`.
    pub endpoint: String,
    /// `service.name` of the resource.
    pub service_name: String,
    /// How often metrics are exported.
    pub export_interval: Duration,
}

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("telemetry.otlp_endpoint '{endpoint}': {message}")]
    Exporter { endpoint: String, message: String },
    #[error("the process's log output was already set up")]
    AlreadySet,
}

/// The installed subscriber and, with an endpoint, the providers. Call
/// [`Telemetry::shutdown`] before the process ends: it exports what is
/// still buffered.
pub struct Telemetry {
    providers: Option<(SdkTracerProvider, SdkMeterProvider)>,
}

/// Sets up the process's log output (`SLUIS_LOG` as an `EnvFilter`,
/// default `info`, to stderr in `format`) and, with `otlp`, the span and
/// metric export. Once per process; must run inside a tokio runtime when
/// `otlp` is given (the exporter's gRPC channel lives on it).
///
/// Errors: [`TelemetryError::Exporter`] for an endpoint that is no URI,
/// [`TelemetryError::AlreadySet`] on a second call.
pub fn init(format: LogFormat, otlp: Option<&Otlp>) -> Result<Telemetry, TelemetryError> {
    let filter = EnvFilter::try_from_env("SLUIS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let terminal = std::io::stderr().is_terminal();
    let json = format.json();
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(terminal && !json);
    // JSON lines written by hand (`json::JsonLines`): the generic JSON
    // format's shape at a fraction of its cost per line; span fields are
    // still stored as JSON objects by `JsonFields`.
    let fmt = if json {
        fmt.fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(json::JsonLines)
            .boxed()
    } else {
        fmt.boxed()
    };
    // Identical lines folded (`fold::FoldLayer`), inside the filter so
    // that the filter's per-event state is its own. The filter is the
    // log's only: it does not stop request spans.
    let fmt = fold::FoldLayer::new(fmt).with_filter(filter);
    let Some(otlp) = otlp else {
        tracing_subscriber::registry()
            .with(fmt)
            .try_init()
            .map_err(|_| TelemetryError::AlreadySet)?;
        return Ok(Telemetry { providers: None });
    };
    let exporter_error = |e: &dyn std::fmt::Display| TelemetryError::Exporter {
        endpoint: otlp.endpoint.clone(),
        message: e.to_string(),
    };
    let health = export::ExportHealth::new(&otlp.endpoint);
    let resource = Resource::builder()
        .with_service_name(otlp.service_name.clone())
        .build();
    let spans = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(otlp.endpoint.clone())
        .build()
        .map_err(|e| exporter_error(&e))?;
    let tracer_provider = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_batch_exporter(export::Watched {
            inner: spans,
            health: health.clone(),
        })
        .build();
    let metric_exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_endpoint(otlp.endpoint.clone())
        .build()
        .map_err(|e| exporter_error(&e))?;
    let metric_exporter = export::Watched {
        inner: metric_exporter,
        health,
    };
    let reader = opentelemetry_sdk::metrics::PeriodicReader::builder(metric_exporter)
        .with_interval(otlp.export_interval)
        .build();
    let meter_provider = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(reader)
        .build();
    let tracer = tracer_provider.tracer("sluis");
    // A dynamic filter, so that its interest in every callsite is
    // `sometimes` and every span and event asks both layers' filters
    // afresh. With a static one every filter's interest in a request span
    // is `always`, its macro skips the question, and the layer reads the
    // answer a per-layer filter left on the thread for whatever was asked
    // last (tokio-rs/tracing#2519): sqlx asks whether to log each query
    // and logs nothing, this filter says no, and the next request span on
    // that thread never reached OpenTelemetry — on PostgreSQL about half of
    // them. The cost, a filter call per span and event, is paid only while
    // exporting.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false)
        .with_filter(tracing_subscriber::filter::dynamic_filter_fn(|m, _| {
            m.is_span() && m.target() == request::TARGET
        }));
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|_| TelemetryError::AlreadySet)?;
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    metrics::install(&meter_provider);
    tracing::info!(
        endpoint = %otlp.endpoint,
        service_name = %otlp.service_name,
        metrics_every_s = otlp.export_interval.as_secs(),
        "telemetry: exporting request spans and metrics over OTLP/gRPC to {} (metrics every {} s); a failing export is logged",
        otlp.endpoint,
        otlp.export_interval.as_secs()
    );
    Ok(Telemetry {
        providers: Some((tracer_provider, meter_provider)),
    })
}

impl Telemetry {
    /// Whether spans and metrics are exported.
    pub fn exporting(&self) -> bool {
        self.providers.is_some()
    }

    /// Exports what is buffered (spans, a last collection of metrics) and
    /// stops the exporters. Blocks up to the exporters' timeouts; runs the
    /// blocking part off the async workers.
    pub async fn shutdown(mut self) {
        let Some((tracer, meter)) = self.providers.take() else {
            return;
        };
        metrics::uninstall();
        let done = tokio::task::spawn_blocking(move || {
            let spans = tracer.shutdown();
            let metrics = meter.shutdown();
            (spans, metrics)
        })
        .await;
        if let Ok((spans, metrics)) = done {
            if let Err(e) = spans {
                tracing::warn!(error = %e, "spans not exported at shutdown");
            }
            if let Err(e) = metrics {
                tracing::warn!(error = %e, "metrics not exported at shutdown");
            }
        }
    }
}

/// An error and its causes as one line, each cause said once: a cause
/// whose text the line already holds (an error that prints its source and
/// also returns it from `source()`) is skipped, so a missing file or a key
/// mismatch reads once, not two to four times.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        next = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("keys: {0}")]
    struct Outer(#[source] Middle);
    #[derive(Debug, thiserror::Error)]
    #[error("cannot read /k/data.key: {0}")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn a_cause_already_said_is_not_repeated() {
        let e = Outer(Middle(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "No such file or directory (os error 2)",
        )));
        assert_eq!(
            chain(&e),
            "keys: cannot read /k/data.key: No such file or directory (os error 2)"
        );
    }

    #[derive(Debug, thiserror::Error)]
    #[error("store")]
    struct Terse(#[source] std::io::Error);

    #[test]
    fn a_cause_not_yet_said_is_added() {
        let e = Terse(std::io::Error::other("disk full"));
        assert_eq!(chain(&e), "store: disk full");
    }
}
