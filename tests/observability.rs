//! What an operator sees of a running node, checked on the real `sluis`
//! binary: its log lines on a piped stderr, and the spans and metrics it
//! exports over OTLP to a collector running in this test (a tonic server
//! implementing the OTLP trace and metrics services).
//!
//! Neither may carry a known test identity (name, V-number, BSN) or a
//! pseudonym the node issued.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
use sluis::rpc::Clients;
use sluis::rpc::proto::v1 as pb;

const NAME: &str = "Zebulon Quaxwell";
const V_NUMBER: &str = "8675309012";
const BSN: &str = "246813532";

/// The caller's trace, as a back-end would send it (W3C Trace Context).
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";

/// A node folder made by `sluis init`, served by the `sluis` binary with
/// stderr piped (not a terminal), on the suite's database: its SQLite file,
/// or a fresh PostgreSQL database in the PostgreSQL pass (where sqlx's
/// query logging once cost every other request its span; see
/// `telemetry::init`).
struct Served {
    dir: tempfile::TempDir,
    child: Child,
    addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    reader: std::thread::JoinHandle<()>,
}

impl Served {
    /// `edit` adjusts the configuration file's text before the node starts.
    async fn start(edit: impl FnOnce(String) -> String) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let path = sluis::dev::init::init(dir.path(), "127.0.0.1:0".parse().unwrap())
            .await
            .expect("init a node folder");
        use_test_database(dir.path()).await;
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, edit(text)).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluis"))
            .args(["serve", "--config"])
            .arg(&path)
            .env_remove("SLUIS_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run sluis serve");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let seen = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = serving_addr(&line) {
                    let _ = addr_tx.send(addr);
                }
                seen.lock().unwrap().push(line);
            }
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the node did not say where it serves: {:?}", lines));
        Served {
            dir,
            child,
            addr,
            lines,
            reader,
        }
    }

    async fn client(&self, who: &str) -> Clients {
        Clients::new(channel_as(self.addr, self.dir.path(), who).await.unwrap())
    }

    /// SIGTERM, as systemd stops it; waits for the exit and every line.
    fn stop(self) -> Vec<String> {
        self.stop_keeping_folder().0
    }

    /// Stops the node and hands back its log lines and its folder (to
    /// read its access log after it stopped).
    fn stop_keeping_folder(mut self) -> (Vec<String>, tempfile::TempDir) {
        let term = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success());
        let status = self.child.wait().unwrap();
        self.reader.join().unwrap();
        let lines = self.lines.lock().unwrap().clone();
        assert!(status.success(), "sluis serve exited {status}: {lines:#?}");
        (lines, self.dir)
    }
}

/// The address in the start-up line (`local_addr`), if this is it.
fn serving_addr(line: &str) -> Option<SocketAddr> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    v["fields"]["local_addr"].as_str()?.parse().ok()
}

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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
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
    let node = Served::start(|t| {
        t.replace(
            "# otlp_endpoint = \"http://127.0.0.1:4317\"",
            &format!("otlp_endpoint = \"http://{at}\""),
        )
        .replace("export_interval_ms = 10000", "export_interval_ms = 200")
    })
    .await;
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
