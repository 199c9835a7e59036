//! What an operator sees of a running node, checked on the real `sluis`
//! binary: its log lines on a piped stderr, and the spans and metrics it
//! exports over OTLP to a collector running in this test (a tonic server
//! implementing the OTLP trace and metrics services).
//!
//! Neither may carry a known test identity (name, V-number, BSN) or a
//! pseudonym the node issued.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};

use common::served::Served;
use common::*;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use sluis::rpc::proto::v1 as pb;

const NAME: &str = "Zebulon Quaxwell";
const V_NUMBER: &str = "8675309012";
const BSN: &str = "246813532";

/// The caller's trace, as a back-end would send it (W3C Trace Context).
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";

/// Traffic with known identities: a case registered with a name, V-number
/// and BSN, a consent, reads by id and by pseudonym, refusals, bad input
/// that carries a BSN. Returns the request ids the callers got and the
/// pseudonyms the node issued.
async fn traffic(node: &Served, traceparent: Option<&str>) -> (Vec<String>, Vec<String>) {
    let mut ids = Vec::new();
    let mut pseudonyms = Vec::new();
    let mut gemeente = node.client(GEMEENTE).await;
    let reg = gemeente
        .cases
        .register_case(with_traceparent(
            with_actor(pb::RegisterCaseRequest {
                request_id: String::new(),
                data: Some(full_case(NAME, V_NUMBER, BSN)),
            }),
            traceparent,
        ))
        .await
        .expect("register");
    ids.push(request_id(&reg));
    let reg = reg.into_inner();
    pseudonyms.push(reg.subject_pseudonym.clone());
    let consent = gemeente
        .consents
        .grant_consent(with_traceparent(
            with_actor(pb::GrantConsentRequest {
                request_id: String::new(),
                case_id: reg.case_id.clone(),
                recipients: vec![participant(NGO)],
                categories: vec![pb::Category::Shelter as i32],
                purposes: vec!["shelter".into()],
                valid_from: None,
                valid_until: None,
                evidence_ref: "DMS-1".into(),
            }),
            traceparent,
        ))
        .await
        .expect("grant");
    ids.push(request_id(&consent));
    let mut ngo = node.client(NGO).await;
    let read = ngo
        .cases
        .get_case(with_traceparent(
            tonic::Request::new(by_id(&reg.case_id, "shelter")),
            traceparent,
        ))
        .await
        .expect("the consented NGO reads");
    ids.push(request_id(&read));
    let read = read.into_inner();
    pseudonyms.push(read.subject_pseudonym.clone());
    let again = ngo
        .cases
        .get_case(with_traceparent(
            tonic::Request::new(by_pseudonym(&read.subject_pseudonym, "shelter")),
            traceparent,
        ))
        .await
        .expect("by pseudonym");
    ids.push(request_id(&again));
    // Refused: no consent for DT&V; bad input with a BSN for a purpose.
    let mut dtv = node.client("dtv").await;
    let denied = dtv
        .cases
        .get_case(with_traceparent(
            tonic::Request::new(by_id(&reg.case_id, "return")),
            traceparent,
        ))
        .await;
    ids.push(match denied {
        Ok(r) => request_id(&r),
        Err(s) => request_id_of(s.metadata()),
    });
    let bad = ngo
        .cases
        .get_case(with_traceparent(
            tonic::Request::new(by_id(&reg.case_id, BSN)),
            traceparent,
        ))
        .await
        .expect_err("a BSN is no purpose");
    ids.push(request_id_of(bad.metadata()));
    (ids, pseudonyms)
}

/// `r` with the caller's trace context, if any.
fn with_traceparent<T>(mut r: tonic::Request<T>, traceparent: Option<&str>) -> tonic::Request<T> {
    if let Some(tp) = traceparent {
        r.metadata_mut().insert("traceparent", tp.parse().unwrap());
    }
    r
}

fn assert_no_identity(text: &str, pseudonyms: &[String], what: &str) {
    for secret in [NAME, V_NUMBER, BSN]
        .iter()
        .copied()
        .chain(pseudonyms.iter().map(String::as_str))
    {
        assert!(!secret.is_empty());
        assert!(!text.contains(secret), "{what} holds {secret:?}");
    }
}

/// Done-when 3: JSON lines when stderr is not a terminal, one per request
/// with the request id its caller got, no escape codes, no identity; the
/// start-up and shutdown messages in the same format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_json_lines_one_per_request_without_identities() {
    let node = Served::start(|t| t).await;
    let (ids, pseudonyms) = traffic(&node, None).await;
    let lines = node.stop();
    let all = lines.join("\n");
    assert!(!all.contains('\u{1b}'), "no ANSI escape codes: {all}");
    assert_no_identity(&all, &pseudonyms, "the log");
    let mut requests = Vec::new();
    let mut messages = Vec::new();
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
        messages.push(v["fields"]["message"].as_str().unwrap_or("").to_string());
        if v["target"] == "sluis::request" {
            requests.push(v["fields"].clone());
        }
    }
    for m in ["sluis node serving", "shutting down", "stopped"] {
        assert!(
            messages.iter().any(|x| x.starts_with(m)),
            "{m:?} is a JSON line: {messages:?}"
        );
    }
    for id in &ids {
        let mine: Vec<_> = requests
            .iter()
            .filter(|f| f["request_id"] == **id)
            .collect();
        assert_eq!(mine.len(), 1, "one line for request {id}: {requests:#?}");
        let f = mine[0];
        for field in ["method", "status", "organisation", "role", "decision"] {
            assert!(f[field].is_string(), "{field} in {f}");
        }
        assert!(f["code"].is_i64() && f["latency_ms"].is_f64(), "{f}");
    }
    let bad = requests
        .iter()
        .find(|f| f["request_id"] == *ids.last().unwrap())
        .unwrap();
    assert_eq!(bad["status"], "INVALID_ARGUMENT");
    assert_eq!(bad["code"], 3);
    assert_eq!(bad["method"], "GetCase");
    assert_eq!(bad["organisation"], NGO);
    assert_eq!(bad["role"], "ngo");
    let first = requests.iter().find(|f| f["request_id"] == ids[0]).unwrap();
    assert_eq!(first["status"], "OK");
    assert_eq!(first["method"], "RegisterCase");
    assert_eq!(first["decision"], "allowed");
}

/// What the collector received.
#[derive(Default)]
struct Received {
    spans: Vec<ExportTraceServiceRequest>,
    metrics: Vec<ExportMetricsServiceRequest>,
}

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Received>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().spans.push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().metrics.push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

async fn collector() -> (SocketAddr, Collector) {
    collector_at("127.0.0.1:0".parse().unwrap()).await
}

/// A node exporting to a collector at `at`, metrics every 200 ms.
async fn exporting_to(at: SocketAddr) -> Served {
    Served::start(|t| {
        t.replace(
            "# otlp_endpoint = \"http://127.0.0.1:4317\"",
            &format!("otlp_endpoint = \"http://{at}\""),
        )
        .replace("export_interval_ms = 10000", "export_interval_ms = 200")
    })
    .await
}

/// A collector listening at `at` (port 0: any free port).
async fn collector_at(at: SocketAddr) -> (SocketAddr, Collector) {
    let listener = tokio::net::TcpListener::bind(at).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let c = Collector::default();
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(c.clone()))
        .add_service(MetricsServiceServer::new(c.clone()))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    tokio::spawn(server);
    (addr, c)
}

fn text(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a KeyValue> {
    attrs.iter().find(|kv| kv.key == key)
}

/// Done-when 1: spans arrive carrying the request id and the incoming
/// `traceparent`'s trace id; metrics arrive; no attribute holds a known
/// identity or an issued pseudonym.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_reach_the_collector_without_identities() {
    let (at, received) = collector().await;
    let node = exporting_to(at).await;
    let traceparent = format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01");
    let (ids, pseudonyms) = traffic(&node, Some(&traceparent)).await;
    let (lines, folder) = node.stop_keeping_folder();
    let received = received.0.lock().unwrap();
    // The access records, in the processing log's shape.
    let export = folder.path().join("ldv.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_sluis"))
        .args(["audit", "export", "--format", "ldv", "--out"])
        .arg(&export)
        .arg("--config")
        .arg(folder.path().join(sluis::dev::init::CONFIG_FILE))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&export)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    let spans: Vec<_> = received
        .spans
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .collect();
    let exported: Vec<String> = spans
        .iter()
        .filter_map(|s| attr(&s.attributes, "request_id").map(|a| text(&a.value)))
        .collect();
    for (n, id) in ids.iter().enumerate() {
        let span = spans
            .iter()
            .find(|s| attr(&s.attributes, "request_id").is_some_and(|a| text(&a.value) == *id))
            .unwrap_or_else(|| panic!("a span for request {n} ({id}); exported: {exported:?}"));
        assert_eq!(hex::encode(&span.trace_id), TRACE_ID, "the caller's trace");
        assert_eq!(hex::encode(&span.parent_span_id), PARENT_SPAN_ID);
        for key in [
            "rpc.method",
            "caller.organisation",
            "caller.role",
            "decision",
        ] {
            assert!(attr(&span.attributes, key).is_some(), "{key} on {span:?}");
        }
        assert!(attr(&span.attributes, "rpc.grpc.status_code").is_some());
        // The ids the node reads back from its span (what the access
        // record takes) are the exported span's.
        let line = lines
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["target"] == "sluis::request" && v["fields"]["request_id"] == **id)
            .unwrap_or_else(|| panic!("a log line for request {id}"));
        assert_eq!(line["fields"]["trace_id"], TRACE_ID);
        assert_eq!(line["fields"]["span_id"], hex::encode(&span.span_id));
        // The access record names the same trace and span as the span
        // exported for its request.
        let record = records
            .iter()
            .find(|r| {
                r["attributes"].as_array().is_some_and(|a| {
                    a.iter()
                        .any(|kv| kv["key"] == "sluis.request_id" && kv["value"] == **id)
                })
            })
            .unwrap_or_else(|| panic!("an access record for request {id}"));
        assert_eq!(record["trace_id"], TRACE_ID, "{record}");
        assert_eq!(record["span_id"], hex::encode(&span.span_id), "{record}");
    }
    // Refusals the caller caused (bad input, no consent) are the node
    // working, not failing: their spans' status stays unset (OpenTelemetry
    // semantic conventions for gRPC server spans); only server failures
    // are errors.
    let refusals: Vec<_> = spans
        .iter()
        .filter(|s| {
            attr(&s.attributes, "rpc.grpc.status_code")
                .is_some_and(|a| ["3", "5", "7"].contains(&text(&a.value).as_str()))
        })
        .collect();
    assert!(!refusals.is_empty(), "the traffic has refusals");
    for s in refusals {
        assert_ne!(
            s.status.as_ref().map_or(0, |st| st.code),
            2,
            "a refusal marked as a server error: {s:?}"
        );
    }
    let names: Vec<&str> = received
        .metrics
        .iter()
        .flat_map(|r| &r.resource_metrics)
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| m.name.as_str())
        .collect();
    for name in [
        "sluis.requests",
        "sluis.request.duration",
        "sluis.audit.append.duration",
        "sluis.audit.batch.size",
        "sluis.audit.log.size",
    ] {
        assert!(names.contains(&name), "{name} exported: {names:?}");
    }
    // Everything the collector got, every attribute of every span, data
    // point and resource, as text.
    let all = format!("{:?}\n{:?}", received.spans, received.metrics);
    assert_no_identity(&all, &pseudonyms, "the exported telemetry");
}

/// A collector that is down is said in the node's log: the start-up line
/// names the endpoint and what is exported; the first failed export is a
/// warning, and the failures after it (an export every 200 ms) are not a
/// line each; once the collector is up, a line says exports work again.
/// (Before, the node said nothing of it until it stopped.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_is_said_once_and_its_recovery_too() {
    let at: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let node = exporting_to(at).await;
    let started = node
        .wait_for_line("telemetry: exporting request spans and metrics", 1)
        .await;
    let message = started["fields"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("http://{at}")), "{started}");
    assert_eq!(started["level"], "INFO", "{started}");
    traffic(&node, None).await;
    let failed = format!("telemetry export to http://{at} failed");
    let warning = node.wait_for_line(&failed, 1).await;
    assert_eq!(warning["level"], "WARN", "{warning}");
    // Ten more metric exports fail meanwhile: still one line.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(node.lines_starting(&failed).len(), 1, "{:#?}", node.lines());

    let (_, received) = collector_at(at).await;
    node.wait_for_line(&format!("telemetry export to http://{at} works again"), 1)
        .await;
    assert!(!received.0.lock().unwrap().metrics.is_empty());
    node.stop();
}

/// A configuration `serve` refuses is said in the format the file sets,
/// like every other line of the node: under `[log] format = "json"` each
/// line on stderr is a JSON object (each finding with its file, problem
/// and fix), under "human" none is. (The findings were plain text under
/// "json", and the closing line JSON under "human" on a pipe.)
#[tokio::test]
async fn a_refused_configuration_is_said_in_the_configured_format() {
    for format in ["json", "human"] {
        let dir = tempfile::tempdir().unwrap();
        let config = sluis::dev::init::init(dir.path(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let text = std::fs::read_to_string(&config).unwrap();
        let text = text
            .replace(
                "# otlp_endpoint = \"http://127.0.0.1:4317\"",
                "otlp_endpoint = \"http://\"",
            )
            .replace("format = \"auto\"", &format!("format = \"{format}\""));
        std::fs::write(&config, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_sluis"))
            .args(["serve", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{format}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.is_empty()).collect();
        assert!(
            lines.iter().any(|l| l.contains("names no host")),
            "{format}: the finding is said: {stderr}"
        );
        assert!(
            !stderr.contains('\u{1b}'),
            "{format}: ANSI on a pipe: {stderr}"
        );
        for line in &lines {
            let json = serde_json::from_str::<serde_json::Value>(line).is_ok();
            assert_eq!(json, format == "json", "{format}: {line}");
        }
        if format == "json" {
            let finding = lines
                .iter()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| {
                    v["fields"]["problem"]
                        .as_str()
                        .is_some_and(|p| p.contains("names no host"))
                })
                .expect("the finding as a JSON line with its fields");
            assert_eq!(finding["level"], "ERROR", "{finding}");
            assert!(
                finding["fields"]["fix"]
                    .as_str()
                    .is_some_and(|f| !f.is_empty())
            );
        }
    }
}
