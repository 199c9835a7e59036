//! Requests whose headers break the gRPC over HTTP/2 protocol in ways tonic
//! lets through are refused before any handler: INVALID_ARGUMENT, with a
//! request id and one record, saying what to fix.

mod common;

use bytes::Bytes;
use common::by_hand::*;
use common::*;
use sluis::tlog::{AccessRecord, Decision};

/// One request by hand with `method` and extra `headers` (repeats kept).
async fn send(
    node: &TestNode,
    method: &str,
    headers: &[(&str, &str)],
) -> (Option<String>, Option<String>, String) {
    let mut client = connection(node, Some(node.identity(GEMEENTE))).await;
    let mut req = http::Request::builder()
        .method(method)
        .uri("https://localhost/sluis.v1.CaseService/FindCases")
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let (response, mut body_tx) = client.send_request(req.body(()).unwrap(), false).unwrap();
    body_tx
        .send_data(Bytes::from(grpc_frame(0, &[])), true)
        .unwrap();
    let response = response.await.expect("an answer");
    let (parts, mut body) = response.into_parts();
    let get =
        |h: &http::HeaderMap, k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
    let id = get(&parts.headers, "x-request-id");
    let mut status = get(&parts.headers, "grpc-status");
    let mut message = get(&parts.headers, "grpc-message");
    if status.is_none() {
        while let Some(Ok(c)) = body.data().await {
            let _ = body.flow_control().release_capacity(c.len());
        }
        if let Ok(Some(t)) = body.trailers().await {
            status = get(&t, "grpc-status");
            message = get(&t, "grpc-message");
        }
    }
    (status, id, message.unwrap_or_default())
}

/// The review's examples: two `x-sluis-actor` values (only the first was
/// recorded), `:method GET` (served), `grpc-timeout: -5S` (run without a
/// deadline). Each is now INVALID_ARGUMENT with a request id and a record.
#[tokio::test]
async fn headers_that_break_the_protocol_are_refused_with_a_request_id_and_a_record() {
    let node = TestNode::start().await;
    let cases: [(&str, Vec<(&str, &str)>); 4] = [
        (
            "POST",
            vec![("x-sluis-actor", ACTOR), ("x-sluis-actor", "someone-else")],
        ),
        ("GET", vec![("x-sluis-actor", ACTOR)]),
        (
            "POST",
            vec![("x-sluis-actor", ACTOR), ("grpc-timeout", "-5S")],
        ),
        (
            "POST",
            vec![("x-sluis-actor", ACTOR), ("grpc-timeout", "123456789S")],
        ),
    ];
    for (method, headers) in cases {
        let (status, id, _) = send(&node, method, &headers).await;
        assert_eq!(status.as_deref(), Some("3"), "{method} {headers:?}");
        let id = id.expect("x-request-id");
        let row = node.wait_for_log(|r| r.request_id == id).await;
        let rec = AccessRecord::decode(&row.record).unwrap();
        assert_eq!(rec.decision, Decision::Invalid, "{method} {headers:?}");
    }
    // The same request, well formed, gets past these checks (and is
    // refused for its empty message only).
    let (status, _, message) = send(
        &node,
        "POST",
        &[("x-sluis-actor", ACTOR), ("grpc-timeout", "5S")],
    )
    .await;
    assert!(status.is_some());
    assert!(
        !message.contains("grpc-timeout") && !message.contains("POST"),
        "{message}"
    );
}

/// A `FindCases` request by hand whose body is sent as these chunks, the
/// last ending the stream; its answer's head.
async fn find_cases_in_chunks(
    node: &TestNode,
    chunks: Vec<Vec<u8>>,
) -> http::Response<h2::RecvStream> {
    let mut client = connection(node, Some(node.identity(GEMEENTE))).await;
    let req = http::Request::builder()
        .method("POST")
        .uri("https://localhost/sluis.v1.CaseService/FindCases")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("x-sluis-actor", ACTOR)
        .body(())
        .unwrap();
    let (response, mut body_tx) = client.send_request(req, false).unwrap();
    let last = chunks.len() - 1;
    for (i, c) in chunks.into_iter().enumerate() {
        body_tx.send_data(Bytes::from(c), i == last).unwrap();
    }
    response.await.expect("an answer")
}

/// A unary call carries one message (gRPC over HTTP/2). tonic read the
/// first of two and answered OK, as if the second had never been sent; a
/// second message is now INVALID_ARGUMENT with a request id and a record,
/// whether it comes in the first message's chunk or after it.
#[tokio::test]
async fn a_unary_call_with_two_messages_is_refused_with_a_request_id_and_a_record() {
    let node = TestNode::start().await;
    let one = grpc_frame(0, &[]);
    for chunks in [
        vec![[one.clone(), one.clone()].concat()],
        vec![one.clone(), one.clone()],
    ] {
        let response = find_cases_in_chunks(&node, chunks).await;
        let get = |k: &str| {
            response
                .headers()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        assert_eq!(get("grpc-status").as_deref(), Some("3"));
        // grpc-message is percent-encoded (gRPC over HTTP/2).
        let message = get("grpc-message").unwrap_or_default().replace("%20", " ");
        assert!(message.contains("more than one message"), "{message}");
        let id = get("x-request-id").expect("x-request-id");
        let row = node.wait_for_log(|r| r.request_id == id).await;
        let rec = AccessRecord::decode(&row.record).unwrap();
        assert_eq!(rec.decision, Decision::Invalid);
        assert_eq!(rec.method, "FindCases");
    }
    // One well-formed message alone is answered by the method.
    use prost::Message;
    let own = sluis::rpc::proto::v1::FindCasesRequest {
        scope: sluis::rpc::proto::v1::find_cases_request::Scope::Own as i32,
        ..Default::default()
    };
    let response = find_cases_in_chunks(&node, vec![grpc_frame(0, &own.encode_to_vec())]).await;
    assert_eq!(response.status(), http::StatusCode::OK);
    assert!(
        response.headers().get("grpc-status").is_none(),
        "answered by the method"
    );
}
