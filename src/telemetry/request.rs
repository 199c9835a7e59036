//! One request as telemetry sees it: its span (when exporting), its
//! decision, its log line and its metrics.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::model::Caller;
use crate::telemetry::metrics;

/// The target of request spans and of the line per request.
pub(crate) const TARGET: &str = "sluis::request";

/// The decision a request's work reports, if any yet.
type Slot = Arc<Mutex<Option<&'static str>>>;

tokio::task_local! {
    static DECISION: Slot;
}

/// A request in progress (see [`begin`]).
pub(crate) struct Request {
    span: tracing::Span,
    start: Instant,
    request_id: String,
    method: String,
    organisation: String,
    role: String,
    decision: Slot,
}

/// Starts the telemetry of one request: `headers` are the request's
/// (only `traceparent` and `tracestate` are read), `method` the label its
/// record names it by, `caller` the registered participant (none for an
/// unregistered certificate). A span is made only while exporting; it
/// continues the caller's trace when `traceparent` is valid (W3C Trace
/// Context, level 1).
pub(crate) fn begin(
    headers: &http::HeaderMap,
    request_id: &str,
    method: &str,
    caller: Option<&Caller>,
) -> Request {
    let (organisation, role) = match caller {
        Some(c) => (c.participant.clone(), c.role.to_string()),
        None => ("unregistered".to_string(), "none".to_string()),
    };
    let span = if metrics::exporting() {
        let span = tracing::info_span!(
            target: TARGET,
            "request",
            otel.name = %method,
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.method = %method,
            request_id = %request_id,
            caller.organisation = %organisation,
            caller.role = %role,
            decision = tracing::field::Empty,
            rpc.grpc.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let parent =
            opentelemetry::global::get_text_map_propagator(|p| p.extract(&TraceHeaders(headers)));
        if parent.span().span_context().is_valid() {
            // Only fails if the span is disabled or already started; it is
            // neither (made just above).
            let _ = span.set_parent(parent);
        }
        span
    } else {
        tracing::Span::none()
    };
    Request {
        span,
        start: Instant::now(),
        request_id: request_id.to_string(),
        method: method.to_string(),
        organisation,
        role,
        decision: Slot::default(),
    }
}

impl Request {
    /// `work`, able to report its decision ([`decided`]). The work does
    /// not run inside the span: what it starts in the background (a
    /// database driver's connection task) would hold the span open past
    /// the request's end, and it would never be exported. The span is held
    /// here alone and ends with [`Request::end`].
    pub(crate) fn run<F: Future>(&self, work: F) -> impl Future<Output = F::Output> + use<F> {
        DECISION.scope(self.decision.clone(), work)
    }

    /// The request's trace id and span id, as its exported span has them
    /// (the trace id is the caller's when it sent a valid `traceparent`):
    /// `None` when no span is exported. What the access record's trace and
    /// span ids are to be taken from, so that record and span name the same
    /// operation.
    pub(crate) fn ids(&self) -> Option<([u8; 16], [u8; 8])> {
        if self.span.is_none() {
            return None;
        }
        let cx = self.span.context();
        let otel = cx.span();
        let sc = otel.span_context();
        sc.is_valid()
            .then(|| (sc.trace_id().to_bytes(), sc.span_id().to_bytes()))
    }

    /// Ends the request with its gRPC status code (0 for OK): the span's
    /// last attributes, the metrics, and the request's log line (with the
    /// span's trace and span id when exporting, to find its trace).
    pub(crate) fn end(self, code: i32) {
        let ids = self.ids().map(|(t, s)| (hex::encode(t), hex::encode(s)));
        let latency = self.start.elapsed();
        let latency_ms = latency.as_secs_f64() * 1000.0;
        let decision = self
            .decision
            .lock()
            .map(|d| d.unwrap_or("none"))
            .unwrap_or("none");
        let status = status_name(code);
        if !self.span.is_none() {
            self.span.record("decision", decision);
            self.span.record("rpc.grpc.status_code", code);
            if server_error(code) {
                self.span.record("otel.status_code", "ERROR");
            }
        }
        metrics::request(&self.method, decision, &self.role, status, latency);
        tracing::info!(
            target: TARGET,
            request_id = %self.request_id,
            method = %self.method,
            status,
            code,
            latency_ms = (latency_ms * 1000.0).round() / 1000.0,
            organisation = %self.organisation,
            role = %self.role,
            decision,
            trace_id = ids.as_ref().map(|i| i.0.as_str()),
            span_id = ids.as_ref().map(|i| i.1.as_str()),
            "request"
        );
    }
}

/// Tells the request being worked on (if any) its decision, as the access
/// record names it; a later call (a write that failed after its record)
/// replaces an earlier one.
pub(crate) fn decided(decision: &'static str) {
    let _ = DECISION.try_with(|slot| {
        if let Ok(mut d) = slot.lock() {
            *d = Some(decision);
        }
    });
}

/// The canonical name of a gRPC status code (gRPC's `statuscodes.md`).
fn status_name(code: i32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("UNKNOWN")
}

/// The trace context headers of a request, for the propagator.
/// The request's headers as the W3C Trace Context propagator sees them:
/// `traceparent` alone. `tracestate` is the caller's free text (vendor
/// key-value pairs, W3C Trace Context §3.3) that the exported span would
/// carry as it came, so a caller could put a name or a BSN there and have
/// it leave in every span; the trace continues without it.
struct TraceHeaders<'a>(&'a http::HeaderMap);

const TRACEPARENT: &str = "traceparent";

impl Extractor for TraceHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == TRACEPARENT)
            .then(|| self.0.get(TRACEPARENT))
            .flatten()
            .and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .contains_key(TRACEPARENT)
            .then_some(TRACEPARENT)
            .into_iter()
            .collect()
    }
}

/// Whether a gRPC status code marks a server span as an error: UNKNOWN,
/// DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE and DATA_LOSS,
/// the codes that say the server failed (OpenTelemetry semantic
/// conventions for gRPC, "gRPC Status", server spans). A refusal the
/// caller caused (INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, ...) is
/// the node working as it should: its span status stays unset, and its
/// code is in `rpc.grpc.status_code`.
pub(crate) fn server_error(code: i32) -> bool {
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the codes that say the server failed mark a span as an error
    /// (OpenTelemetry semantic conventions for gRPC server spans).
    #[test]
    fn only_server_failures_are_span_errors() {
        let errors: Vec<i32> = (0..=16).filter(|c| server_error(*c)).collect();
        assert_eq!(errors, [2, 4, 12, 13, 14, 15]);
    }

    #[test]
    fn the_callers_tracestate_is_not_taken() {
        use opentelemetry::propagation::TextMapPropagator;
        use opentelemetry::trace::TraceContextExt;
        let mut h = http::HeaderMap::new();
        h.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        h.insert("tracestate", "bsn=111222333,name=Zwaantje".parse().unwrap());
        let cx = opentelemetry_sdk::propagation::TraceContextPropagator::new()
            .extract(&TraceHeaders(&h));
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid(), "the trace continues");
        assert_eq!(sc.trace_state().header(), "");
    }

    #[test]
    fn status_names_are_grpcs() {
        assert_eq!(status_name(0), "OK");
        assert_eq!(status_name(3), "INVALID_ARGUMENT");
        assert_eq!(status_name(16), "UNAUTHENTICATED");
        assert_eq!(status_name(17), "UNKNOWN");
        assert_eq!(status_name(-1), "UNKNOWN");
    }
}
