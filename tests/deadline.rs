//! A caller that stops waiting does not stop the node halfway.
//!
//! tonic drops a handler's future when the caller's deadline
//! (`grpc-timeout`) passes, and hyper when the caller resets the stream or
//! closes the connection. A handler dropped there left no access record
//! (or one for a write that was then never applied), and no request id to
//! look for. Every request the edge admits now runs to its end in a task
//! of its own: it is recorded (and a write applied) whatever the caller
//! does; a caller whose deadline passed gets `DEADLINE_EXCEEDED` with the
//! request id its record carries; the node holds at most
//! `max_requests_in_flight` such requests and waits for them at shutdown.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::by_hand::*;
use common::*;
use prost::Message;
use sluis::rpc::proto::v1 as pb;
use sluis::tlog::{AccessRecord, Decision};
use tonic::{Code, Request};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;

const OFFICER: &str = "fg-utrecht";
const MONITOR: &str = "monitor-jenv";

/// A request whose caller waits a second.
fn patience<T>(mut r: Request<T>) -> Request<T> {
    r.set_timeout(Duration::from_secs(1));
    r
}

/// How many consents the owner has recorded for a case.
async fn consents_of(owner: &mut sluis::rpc::Clients, case_id: &str) -> usize {
    owner
        .consents
        .list_consents(with_actor(pb::ListConsentsRequest {
            case_id: case_id.into(),
        }))
        .await
        .expect("list consents")
        .into_inner()
        .consents
        .len()
}

/// Sends `message` to `path` as `who` by hand, with a deadline no request
/// meets. (A gRPC client gives up at its own deadline and never sees the
/// node's answer; by hand the test can.)
async fn with_tight_deadline(
    node: &TestNode,
    who: &str,
    path: &str,
    message: impl Message,
) -> Answer {
    raw(
        node,
        Some(node.identity(who)),
        path,
        &[("grpc-timeout", "1u"), ("x-sluis-actor", ACTOR)],
        Some(grpc_frame(0, &message.encode_to_vec())),
    )
    .await
}

/// [`with_tight_deadline`], whose answer must be DEADLINE_EXCEEDED with a
/// request id, which is returned.
async fn late(node: &TestNode, who: &str, path: &str, message: impl Message) -> String {
    let a = with_tight_deadline(node, who, path, message).await;
    assert_eq!(
        a.grpc_status,
        Some(Code::DeadlineExceeded as i32),
        "{path}: {a:?}"
    );
    assert!(
        a.message.contains("recorded under this x-request-id"),
        "{path}: {}",
        a.message
    );
    assert_eq!(a.reason.as_deref(), Some("DEADLINE_PASSED"), "{path}");
    a.request_id()
}

/// The example and its kind: on every kind of method — a read, a
/// listing, a write, a consent, statistics, the officer's log queries,
/// health — a deadline that passes before the answer gets
/// `DEADLINE_EXCEEDED` with a request id, and the request still ends as it
/// would have: one record under that id saying how, and the write applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_that_passes_leaves_every_request_carried_out_and_recorded() {
    let node = TestNode::start().await;
    let mut owner = node.client(GEMEENTE).await;
    let mut case_ids = Vec::new();
    for _ in 0..30 {
        let (id, _) = register(&mut owner).await;
        grant_to_role(&mut owner, &id, "dtv").await;
        case_ids.push(id);
    }
    let statistics = pb::GetStatisticsRequest {
        table: pb::StatisticsTable::Inflow as i32,
        year: 2025,
        quarter: 1,
        by_municipality: false,
        purpose: "monitoring".into(),
        network: false,
    };
    let report = pb::SubjectAccessReportRequest {
        subject: Some(pb::subject_access_report_request::Subject::CaseId(
            case_ids[0].clone(),
        )),
    };
    // The log held locked, no request can be answered before its deadline
    // (each waits for its record), so every answer below is the deadline's.
    let lock = LogLock::take(&node).await;
    let asked = [
        (
            "GetCase",
            late(
                &node,
                "dtv",
                "/sluis.v1.CaseService/GetCase",
                by_id(&case_ids[0], "return"),
            )
            .await,
        ),
        (
            "FindCases",
            late(
                &node,
                "dtv",
                "/sluis.v1.CaseService/FindCases",
                pb::FindCasesRequest {
                    scope: pb::find_cases_request::Scope::Visible as i32,
                    purpose: "return".into(),
                    page_size: 500,
                    page_token: String::new(),
                },
            )
            .await,
        ),
        (
            "RegisterCase",
            late(
                &node,
                GEMEENTE,
                "/sluis.v1.CaseService/RegisterCase",
                pb::RegisterCaseRequest {
                    data: Some(full_case("Laat Persoon", "3234567890", "")),
                    request_id: String::new(),
                },
            )
            .await,
        ),
        (
            "GrantConsent",
            late(
                &node,
                GEMEENTE,
                "/sluis.v1.ConsentService/GrantConsent",
                consent_request(&case_ids[1]),
            )
            .await,
        ),
        (
            "GetStatistics",
            late(
                &node,
                MONITOR,
                "/sluis.v1.StatisticsService/GetStatistics",
                statistics.clone(),
            )
            .await,
        ),
        (
            "QueryAccess",
            late(
                &node,
                OFFICER,
                "/sluis.v1.AuditService/QueryAccess",
                pb::QueryAccessRequest {
                    limit: 10_000,
                    ..Default::default()
                },
            )
            .await,
        ),
        (
            "SubjectAccessReport",
            late(
                &node,
                OFFICER,
                "/sluis.v1.AuditService/SubjectAccessReport",
                report.clone(),
            )
            .await,
        ),
    ];
    // A refusal is carried out to its record too, and waits for it.
    let refused = late(
        &node,
        "dtv",
        "/sluis.v1.CaseService/GetCase",
        by_id(&case_ids[0], ""),
    )
    .await;
    lock.release().await;
    // Health answers at once, before its record (so that it can say
    // NOT_SERVING while the log cannot be written): in time or late, its
    // request id has a record.
    let check = with_tight_deadline(
        &node,
        GEMEENTE,
        "/grpc.health.v1.Health/Check",
        HealthCheckRequest::default(),
    )
    .await;
    assert!(
        matches!(check.grpc_status, Some(0 | 4)),
        "health: {check:?}"
    );
    let check = record_of(&node, &check.request_id()).await;
    assert_eq!(record_of(&node, &refused).await.status, "INVALID_ARGUMENT");
    assert_eq!(check.method, "grpc.health.v1.Health/Check");
    let mut records: Vec<AccessRecord> = Vec::new();
    for (method, id) in &asked {
        let rec = record_of(&node, id).await;
        assert_eq!(&rec.method, method);
        assert_eq!(rec.status, "OK", "{method} ran to its end: {rec:?}");
        records.push(rec);
    }
    assert!(
        records[0].decision == Decision::Partial && !records[0].released.is_empty(),
        "the read's record says what was released: {:?}",
        records[0]
    );
    // The write whose caller stopped waiting was applied, as its record says.
    let own = own_cases(&mut owner).await;
    assert_eq!(
        own.len(),
        case_ids.len() + 1,
        "the late registration is applied"
    );
    let registered = records[2]
        .case_id
        .clone()
        .expect("the record names the case");
    assert!(own.contains(&registered));

    // A gRPC client gives up at its own deadline (tonic answers itself
    // CANCELLED, with no request id). Its requests reach the node and wait
    // for their records behind a lock until the client has given up: each
    // still ends with one record, and the consent it grants is applied.
    let mut dtv = node.client("dtv").await;
    let mut officer = node.client(OFFICER).await;
    let mut monitor = node.client(MONITOR).await;
    let mut health = HealthClient::new(node.client(GEMEENTE).await.channel());
    let consents_before = consents_of(&mut owner, &case_ids[3]).await;
    let before = node.log_len().await;
    let lock = LogLock::take(&node).await;
    // All at once, so that the lock is held about a second (the SQLite
    // writer waits up to 5 s for it).
    let (get, stats, report, grant, check) = tokio::join!(
        dtv.cases
            .get_case(patience(Request::new(by_id(&case_ids[2], "return")))),
        monitor
            .stats
            .get_statistics(patience(Request::new(statistics))),
        officer
            .audit
            .subject_access_report(patience(Request::new(report))),
        owner
            .consents
            .grant_consent(patience(with_actor(consent_request(&case_ids[3])))),
        health.check(patience(Request::new(HealthCheckRequest::default()))),
    );
    let gave_up = [
        get.map(drop),
        stats.map(drop),
        report.map(drop),
        grant.map(drop),
    ];
    // Health answers before its record; it is the only one in time.
    check.expect("health answers at once");
    lock.release().await;
    for a in &gave_up {
        let s = a.as_ref().expect_err("the client gave up");
        assert!(
            matches!(s.code(), Code::Cancelled | Code::DeadlineExceeded),
            "{s:?}"
        );
    }
    let expected = before + gave_up.len() as i64 + 1;
    for _ in 0..100 {
        if node.log_len().await >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut methods: Vec<String> = node
        .log()
        .await
        .into_iter()
        .skip(before as usize)
        .map(|r| r.method)
        .collect();
    methods.sort();
    assert_eq!(
        methods,
        [
            "GetCase",
            "GetStatistics",
            "GrantConsent",
            "SubjectAccessReport",
            "grpc.health.v1.Health/Check"
        ],
        "one record per request"
    );
    assert_eq!(
        consents_of(&mut owner, &case_ids[3]).await,
        consents_before + 1,
        "the consent whose client gave up is applied, as its record says"
    );
    node.node.shutdown().await.unwrap();
}

/// A write whose caller resets its stream while the write waits for its
/// record: the record is written and the write applied — both, not the
/// record alone (a dropped handler stopped between the two). A node told
/// to stop waits for such requests before it closes its log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_caller_resets_the_stream_is_recorded_and_applied_and_shutdown_waits() {
    let node = TestNode::start().await;
    let mut owner = node.client(GEMEENTE).await;
    register(&mut owner).await;
    let lock = LogLock::take(&node).await;

    let mut client = connection(&node, Some(node.identity(GEMEENTE))).await;
    let req = http::Request::builder()
        .method("POST")
        .uri("https://localhost/sluis.v1.CaseService/RegisterCase")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("x-sluis-actor", ACTOR)
        .body(())
        .unwrap();
    let frame = grpc_frame(
        0,
        &pb::RegisterCaseRequest {
            data: Some(full_case("Afgebroken Persoon", "4234567890", "")),
            request_id: String::new(),
        }
        .encode_to_vec(),
    );
    let (_response, mut send) = client.send_request(req, false).unwrap();
    send.send_data(Bytes::from(frame), true).unwrap();
    // In progress (waiting for its record behind the lock): the caller
    // gives up on it and goes away.
    wait_in_flight(&node, 1).await;
    send.send_reset(h2::Reason::CANCEL);
    drop((client, send));

    let TestNode { dir, config, node } = node;
    let stopping = tokio::spawn(node.shutdown());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !stopping.is_finished(),
        "the node stopped while a request was still at work"
    );
    lock.release().await;
    stopping
        .await
        .unwrap()
        .expect("a clean stop once the request ended");

    let report = verify_log_of(&config).await;
    assert!(report.intact(), "{:?}", report.first_problem());
    let mut db = connect_database(&config.database_url().unwrap()).await;
    let rows = db
        .query(
            "SELECT request_id, record FROM access_log WHERE method = 'RegisterCase' ORDER BY seq",
            &[],
        )
        .await;
    assert_eq!(rows.len(), 2, "both registrations recorded");
    let rec = AccessRecord::decode(&rows[1][1].blob()).unwrap();
    assert_eq!(rec.status, "OK");
    let case_id = rec.case_id.expect("the record names the case");
    let applied = db
        .query_one(
            "SELECT count(*) FROM cases WHERE id = ?",
            &[Val::Text(case_id)],
        )
        .await;
    assert_eq!(applied[0].int(), 1, "the recorded registration is applied");
    db.close().await;
    drop(dir);
}

/// Beyond `max_requests_in_flight` a request is refused at once with
/// UNAVAILABLE, a request id and its record; the one in progress ends as
/// it would have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_requests_in_flight_a_request_is_refused_and_recorded() {
    let node = TestNode::start_with(|c| c.limits.max_requests_in_flight = 1).await;
    let mut owner = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut owner).await;
    grant_to_role(&mut owner, &case_id, "dtv").await;
    let dtv = node.client("dtv").await;

    let lock = LogLock::take(&node).await;
    let mut first = dtv.clone();
    let first_id = case_id.clone();
    let first = tokio::spawn(async move { first.cases.get_case(by_id(&first_id, "return")).await });
    wait_in_flight(&node, 1).await;
    let mut second = dtv.clone();
    let second =
        tokio::spawn(async move { second.cases.get_case(by_id(&case_id, "return")).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    lock.release().await;

    let first = first.await.unwrap().expect("the request in progress ends");
    assert!(!first.get_ref().released.is_empty());
    let busy = second.await.unwrap().expect_err("over the limit");
    assert_eq!(busy.code(), Code::Unavailable, "{busy:?}");
    assert!(
        busy.message().contains("1 requests in progress") && busy.message().contains("retry in"),
        "{}",
        busy.message()
    );
    let d = busy.get_error_details();
    let info = d.error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "NODE_BUSY");
    assert_eq!(
        info.metadata
            .get("max_requests_in_flight")
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(
        d.retry_info().and_then(|r| r.retry_delay),
        Some(Duration::from_secs(1)),
        "RetryInfo says when to try again"
    );
    let rec = record_of(&node, &request_id_of(busy.metadata())).await;
    assert_eq!(
        (rec.method.as_str(), rec.status.as_str()),
        ("GetCase", "UNAVAILABLE")
    );
    assert!(rec.released.is_empty());
    assert_eq!(node.node.in_flight.now(), 0);
}

/// A GetCase whose message arrives but whose stream never ends (tonic
/// waits for the end before it calls the handler), held open by hand.
/// Returns the open stream's parts, to keep (dropping them resets it).
async fn stalled(
    node: &TestNode,
    who: &str,
    case_id: &str,
) -> (
    h2::client::ResponseFuture,
    h2::SendStream<Bytes>,
    h2::client::SendRequest<Bytes>,
) {
    let mut client = connection(node, Some(node.identity(who))).await;
    let req = http::Request::builder()
        .method("POST")
        .uri("https://localhost/sluis.v1.CaseService/GetCase")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut send) = client.send_request(req, false).unwrap();
    send.send_data(
        Bytes::from(grpc_frame(0, &by_id(case_id, "return").encode_to_vec())),
        false,
    )
    .unwrap();
    (response, send, client)
}

/// A caller that sends a request and never finishes it held its place —
/// and tonic's handler never started — for as long as it liked. Until a
/// handler starts a request only waits for its message, and that wait is
/// bounded: past `message_timeout_ms` it ends with DEADLINE_EXCEEDED, a
/// request id and its record, and its place is free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_message_never_ends_is_ended_and_recorded() {
    let node = TestNode::start_with(|c| c.limits.message_timeout_ms = 300).await;
    let mut owner = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut owner).await;
    grant_to_role(&mut owner, &case_id, "dtv").await;
    let (response, _send, _client) = stalled(&node, "dtv", &case_id).await;
    let response = tokio::time::timeout(Duration::from_secs(30), response)
        .await
        .expect("the node ends the request by itself")
        .expect("an HTTP/2 response");
    let header = |k: &str| {
        response
            .headers()
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(
        header("grpc-status").as_deref(),
        Some("4"),
        "{:?}",
        response.headers()
    );
    assert_eq!(
        reason_in(response.headers()).as_deref(),
        Some("MESSAGE_TIMEOUT")
    );
    let id = header("x-request-id").expect("x-request-id");
    let rec = record_of(&node, &id).await;
    assert_eq!(
        (rec.method.as_str(), rec.status.as_str()),
        ("GetCase", "DEADLINE_EXCEEDED")
    );
    assert!(
        rec.detail.contains("did not arrive in full"),
        "{}",
        rec.detail
    );
    assert!(rec.released.is_empty() && rec.case_id.is_none());
    for _ in 0..100 {
        if node.node.in_flight.now() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(node.node.in_flight.now(), 0, "its place is free again");
}

/// One caller cannot take every place: requests it never finishes fill
/// its own share (`max_requests_in_flight_per_caller`), beyond which its
/// requests are refused — UNAVAILABLE, saying so, recorded — while another
/// participant is served as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_caller_cannot_take_every_place() {
    let node = TestNode::start_with(|c| {
        c.limits.max_requests_in_flight = 10;
        c.limits.max_requests_in_flight_per_caller = 3;
        c.limits.message_timeout_ms = 600_000;
    })
    .await;
    let mut owner = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut owner).await;
    grant_to_role(&mut owner, &case_id, "dtv").await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(stalled(&node, "dtv", &case_id).await);
    }
    wait_in_flight(&node, 3).await;
    let mut dtv = node.client("dtv").await;
    let refused = dtv
        .cases
        .get_case(by_id(&case_id, "return"))
        .await
        .expect_err("beyond its share");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("your organisation has 3 requests in progress"),
        "{}",
        refused.message()
    );
    let d = refused.get_error_details();
    assert_eq!(
        d.error_info().map(|i| i.reason.as_str()),
        Some("CALLER_BUSY")
    );
    assert_eq!(
        d.retry_info().and_then(|r| r.retry_delay),
        Some(Duration::from_secs(1))
    );
    let rec = record_of(&node, &request_id_of(refused.metadata())).await;
    assert_eq!(
        (rec.caller.as_str(), rec.status.as_str()),
        ("dtv", "UNAVAILABLE")
    );
    // Another participant is served while DT&V's share is held.
    assert_eq!(own_cases(&mut owner).await, vec![case_id]);
    drop(held);
}
