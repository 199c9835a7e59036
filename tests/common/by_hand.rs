//! gRPC over HTTP/2 by hand, for what a gRPC client never sends (broken
//! framing, a wrong content-type, bytes that do not decode) or does not let
//! a test see (an answer after its own deadline, a stream it resets).

use bytes::Bytes;
use sluis::net::client::{ClientPem, connect_h2_stream};

use super::TestNode;

/// An HTTP/2 connection over a new mTLS connection to `node`, ready for a
/// request; the connection is driven by a task of its own.
pub async fn connection(
    node: &TestNode,
    identity: Option<(String, String)>,
) -> h2::client::SendRequest<Bytes> {
    let pem = ClientPem {
        ca: node.ca_pem(),
        identity,
    };
    let tls = connect_h2_stream(node.node.local_addr, "localhost", &pem)
        .await
        .expect("mTLS");
    let (client, conn) = h2::client::handshake(tls).await.expect("HTTP/2");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client.ready().await.unwrap()
}

/// A gRPC length-prefixed message: compressed flag, length, bytes.
pub fn grpc_frame(flag: u8, message: &[u8]) -> Vec<u8> {
    let mut f = vec![flag];
    f.extend_from_slice(&(message.len() as u32).to_be_bytes());
    f.extend_from_slice(message);
    f
}

/// What came back for a request sent by hand.
#[derive(Debug)]
pub struct Answer {
    pub http: u16,
    pub grpc_status: Option<i32>,
    pub message: String,
    pub request_id: Option<String>,
    /// `ErrorInfo.reason` from the status details, if any.
    pub reason: Option<String>,
}

impl Answer {
    pub fn request_id(&self) -> String {
        let id = self.request_id.clone().expect("x-request-id");
        let uuid = uuid::Uuid::parse_str(&id).expect("a UUID");
        assert_eq!(uuid.get_version_num(), 7);
        id
    }
}

/// One HTTP/2 request over a new mTLS connection: POST `path` with
/// `content-type: application/grpc` and `te: trailers` unless `headers`
/// says otherwise, and `body` (None: no body at all).
pub async fn raw(
    node: &TestNode,
    identity: Option<(String, String)>,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Answer {
    let mut client = connection(node, identity).await;
    let mut req = http::Request::builder()
        .method("POST")
        .uri(format!("https://localhost{path}"))
        .header("te", "trailers");
    if !headers.iter().any(|(k, _)| *k == "content-type") {
        req = req.header("content-type", "application/grpc");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let (response, mut send) = client
        .send_request(req.body(()).unwrap(), body.is_none())
        .unwrap();
    if let Some(body) = body {
        send.send_data(Bytes::from(body), true).unwrap();
    }
    let response = response.await.expect("an HTTP/2 response");
    let (parts, mut body) = response.into_parts();
    let header = |h: &http::HeaderMap, k: &str| {
        h.get(k)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.to_string())
    };
    let mut status = header(&parts.headers, "grpc-status");
    let mut message = header(&parts.headers, "grpc-message");
    let mut reason = reason_in(&parts.headers);
    if status.is_none() {
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        if let Some(trailers) = body.trailers().await.unwrap() {
            status = header(&trailers, "grpc-status");
            message = header(&trailers, "grpc-message");
            reason = reason_in(&trailers);
        }
    }
    Answer {
        http: parts.status.as_u16(),
        grpc_status: status.and_then(|s| s.parse().ok()),
        message: percent_decode(&message.unwrap_or_default()),
        request_id: header(&parts.headers, "x-request-id"),
        reason,
    }
}

/// The `ErrorInfo.reason` of the status in `headers` (or trailers).
pub fn reason_in(headers: &http::HeaderMap) -> Option<String> {
    use tonic_types::StatusExt;
    let status = tonic::Status::from_header_map(headers)?;
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 3 <= b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
