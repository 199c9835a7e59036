//! The edge of the mTLS listener: every service applies the identity rules
//! of the data services, and every answer — also the ones tonic gives by
//! itself before a handler runs — carries a request id and has exactly one
//! access record.
//!
//! The faults a gRPC client cannot produce are sent as HTTP/2 by hand.

mod common;

use common::by_hand::*;
use common::*;
use sluis::net::pki::{ClientCertSpec, IssuedCert};
use sluis::net::x509;
use sluis::tlog::Decision;
use tonic::Code;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
use tonic_reflection::pb::{v1, v1alpha};

/// An OIN that no participant is registered with.
const UNREGISTERED_OIN: &str = "00000009999999999999";

fn unregistered(node: &TestNode) -> IssuedCert {
    node.issue(&ClientCertSpec::new(
        "Stichting Onbekend",
        Some(UNREGISTERED_OIN),
    ))
}

/// A reflection request listing the services, in either version.
fn list_v1() -> v1::ServerReflectionRequest {
    v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    }
}

fn list_v1alpha() -> v1alpha::ServerReflectionRequest {
    v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    }
}

/// The issue's example: a certificate from the trusted CA with an
/// unregistered OIN got reflection's service list and health `SERVING`,
/// with no access record. Every service now refuses it as the data services
/// do: PERMISSION_DENIED, a request id, a record with its fingerprint.
#[tokio::test]
async fn health_and_reflection_refuse_an_unregistered_certificate_and_record_it() {
    let node = TestNode::start().await;
    let cert = unregistered(&node);
    let fp = x509::cert_sha256_hex(&cert.cert_der);
    let channel = node
        .client_with(Some((cert.cert_pem.clone(), cert.key_pem.clone())))
        .await
        .expect("TLS accepts the certificate")
        .channel();
    let before = node.log_len().await;

    let mut health = HealthClient::new(channel.clone());
    let mut answers = vec![
        (
            "grpc.health.v1.Health/Check",
            health.check(HealthCheckRequest::default()).await.map(drop),
        ),
        (
            "grpc.health.v1.Health/Watch",
            health.watch(HealthCheckRequest::default()).await.map(drop),
        ),
    ];
    answers.push((
        "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        v1::server_reflection_client::ServerReflectionClient::new(channel.clone())
            .server_reflection_info(tokio_stream::iter(vec![list_v1()]))
            .await
            .map(drop),
    ));
    answers.push((
        "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        v1alpha::server_reflection_client::ServerReflectionClient::new(channel.clone())
            .server_reflection_info(tokio_stream::iter(vec![list_v1alpha()]))
            .await
            .map(drop),
    ));
    for (method, answer) in answers {
        expect_unregistered(&node, method, answer, &fp).await;
    }
    // A path nobody serves: the same refusal, not a hint at what exists.
    let a = raw(
        &node,
        Some((cert.cert_pem.clone(), cert.key_pem.clone())),
        "/sluis.v1.NoSuchService/Anything",
        &[],
        Some(grpc_frame(0, b"")),
    )
    .await;
    assert_eq!(a.grpc_status, Some(Code::PermissionDenied as i32), "{a:?}");
    assert_eq!(record_of(&node, &a.request_id()).await.method, "unknown");
    assert_eq!(node.log_len().await, before + 5, "one record per request");
}

/// A registered participant gets health and reflection, each answer with a
/// request id and an access record, like any other request.
#[tokio::test]
async fn health_and_reflection_answer_a_participant_with_a_request_id_and_a_record() {
    let node = TestNode::start().await;
    let channel = node.client(GEMEENTE).await.channel();

    let ok = HealthClient::new(channel.clone())
        .check(HealthCheckRequest::default())
        .await
        .expect("health");
    let rec = record_of(&node, &request_id_of(ok.metadata())).await;
    assert_eq!(ok.into_inner().status, ServingStatus::Serving as i32);
    assert_eq!(rec.method, "grpc.health.v1.Health/Check");
    assert_eq!(
        (rec.decision, rec.status.as_str()),
        (Decision::Allowed, "OK")
    );
    assert_eq!(rec.caller, GEMEENTE);

    let unknown = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .expect_err("an unknown service has no health");
    assert_eq!(unknown.code(), Code::NotFound);
    let rec = record_of(&node, &request_id_of(unknown.metadata())).await;
    assert_eq!(rec.status, "NOT_FOUND");

    let listed = v1::server_reflection_client::ServerReflectionClient::new(channel.clone())
        .server_reflection_info(tokio_stream::iter(vec![list_v1()]))
        .await
        .expect("reflection v1");
    let rec = record_of(&node, &request_id_of(listed.metadata())).await;
    assert_eq!(
        rec.method,
        "grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
    );
    let mut stream = listed.into_inner();
    let first = stream.message().await.unwrap().expect("a response");
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        first.message_response
    else {
        panic!("a service list: {first:?}");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"sluis.v1.CaseService"), "{names:?}");

    let alpha = v1alpha::server_reflection_client::ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter(vec![list_v1alpha()]))
        .await
        .expect("reflection v1alpha");
    record_of(&node, &request_id_of(alpha.metadata())).await;
}

/// The issue's example and its kind: a registered participant's requests
/// that fail before any handler runs — bytes that do not decode, broken
/// gRPC framing, compression, an unknown service or method, a wrong
/// content-type, a message beyond the decoding cap — each get the right
/// status, an `x-request-id`, and exactly one access record. Before, the
/// first was `INTERNAL` "failed to decode Protobuf message…", without a
/// request id or a record.
#[tokio::test]
async fn refusals_before_the_handler_have_the_right_status_a_request_id_and_one_record() {
    let node = TestNode::start().await;
    let me = Some(node.identity(GEMEENTE));
    let before = node.log_len().await;
    let get_case = "/sluis.v1.CaseService/GetCase";
    // GetCaseRequest{purpose: "ret\xffurn"}: not UTF-8.
    let not_utf8: &[u8] = &[0x1a, 0x07, 0x72, 0x65, 0x74, 0xff, 0x75, 0x72, 0x6e];
    let huge = {
        let mut f = vec![0u8];
        f.extend_from_slice(&(100u32 << 20).to_be_bytes());
        f
    };
    // A message one byte over the limit (of zero bytes: a valid field-less
    // encoding would decode).
    let over_the_limit = grpc_frame(0, &vec![0u8; node.config.limits.max_message_bytes + 1]);
    // The prefix announces 100 bytes; 3 follow, then the stream ends.
    let truncated = vec![0, 0, 0, 0, 100, 0x1a, 0x01, b'x'];
    let get = |what, body| Fault {
        what,
        path: get_case,
        headers: &[],
        body,
        http: 200,
        code: Code::InvalidArgument,
        method: "GetCase",
    };
    let get_with = |what, headers, body| Fault {
        headers,
        ..get(what, body)
    };
    let unknown = |what, path| Fault {
        path,
        code: Code::Unimplemented,
        method: "unknown",
        ..get(what, Some(grpc_frame(0, b"")))
    };
    let faults = vec![
        get("purpose not UTF-8", Some(grpc_frame(0, not_utf8))),
        unknown("unknown service", "/sluis.v1.NoSuchService/Get"),
        unknown("unknown method", "/sluis.v1.CaseService/Get123456782"),
        // gzip is taken; bytes that do not decompress are not a message.
        get_with(
            "gzip that does not decompress",
            &[("grpc-encoding", "gzip")],
            Some(grpc_frame(1, b"\x1f\x8b")),
        ),
        Fault {
            headers: &[("grpc-encoding", "zstd")],
            code: Code::Unimplemented,
            ..get("zstd", Some(grpc_frame(1, b"\x28\xb5\x2f\xfd")))
        },
        get("compressed flag, no encoding", Some(grpc_frame(1, b""))),
        get("truncated frame", Some(truncated)),
        get("no message", None),
        Fault {
            headers: &[("content-type", "application/json")],
            http: 415,
            ..get("wrong content-type", Some(grpc_frame(0, b"")))
        },
        Fault {
            code: Code::ResourceExhausted,
            ..get("beyond the decoding cap", Some(huge))
        },
        Fault {
            path: "/grpc.health.v1.Health/Check",
            method: "grpc.health.v1.Health/Check",
            ..get("health, not decodable", Some(grpc_frame(0, b"\xff")))
        },
        // Every service decodes at most max_message_bytes (health took
        // tonic's own 4 MiB).
        Fault {
            path: "/grpc.health.v1.Health/Check",
            method: "grpc.health.v1.Health/Check",
            code: Code::ResourceExhausted,
            ..get(
                "health, beyond the message limit",
                Some(over_the_limit.clone()),
            )
        },
        Fault {
            code: Code::ResourceExhausted,
            ..get("just beyond the message limit", Some(over_the_limit))
        },
    ];
    let n = faults.len() as i64;
    for f in faults {
        let what = f.what;
        let a = raw(&node, me.clone(), f.path, f.headers, f.body).await;
        assert_eq!(a.http, f.http, "{what}: {a:?}");
        assert_eq!(a.grpc_status, Some(f.code as i32), "{what}: {a:?}");
        let rec = record_of(&node, &a.request_id()).await;
        assert_eq!(rec.method, f.method, "{what}");
        assert_eq!(rec.caller, GEMEENTE, "{what}");
        assert_eq!(rec.decision, Decision::Invalid, "{what}");
        assert_eq!(rec.status, status_name(f.code), "{what}");
        assert!(
            !rec.detail.contains("123456782") && !a.message.contains("123456782"),
            "{what}: a path is never echoed"
        );
        eprintln!("{what}: {:?} {}", f.code, a.message);
    }
    assert_eq!(node.log_len().await, before + n, "exactly one record each");

    // The same path with a good message reaches the handler, which answers
    // (and records) by itself.
    let ok = raw(
        &node,
        me,
        get_case,
        &[],
        Some(grpc_frame(
            0,
            &[0x1a, 0x06, b'r', b'e', b't', b'u', b'r', b'n'],
        )),
    )
    .await;
    assert_eq!(ok.grpc_status, Some(Code::InvalidArgument as i32), "{ok:?}");
    assert!(ok.message.contains("case_id"), "{ok:?}");
    record_of(&node, &ok.request_id()).await;
}

/// A request a gRPC client would not send, and what it must get.
struct Fault {
    what: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    /// None: no body at all.
    body: Option<Vec<u8>>,
    http: u16,
    code: Code,
    /// How its access record names the method.
    method: &'static str,
}

/// The name of a code in an access record.
fn status_name(code: Code) -> &'static str {
    match code {
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        other => panic!("not expected here: {other:?}"),
    }
}
