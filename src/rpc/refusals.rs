//! The edge of the mTLS listener: every request, to any service, passes
//! here, so that none escapes the identity rules or the access log.
//!
//! - **The same identity rules for every service.** `grpc.health.v1`, both
//!   server reflection versions, and any service added later: a connection
//!   whose certificate no longer passes (revoked since it opened) gets
//!   `UNAUTHENTICATED`, an unregistered certificate `PERMISSION_DENIED`,
//!   each with a request id and an access record — before the service sees
//!   the request.
//! - **Every answer carries a request id and has one access record.** An
//!   answer from [`Api::call`](super::Api::call) has both already (it
//!   carries `x-request-id`). Any other answer did not come from a
//!   `sluis.v1` handler: tonic answering by itself before a handler ran (a
//!   message that does not decode, malformed gRPC framing, an unsupported
//!   compression, a message beyond the decoding cap, an unknown service or
//!   method) or a service outside `sluis.v1` (health, reflection). The
//!   former is a refusal: it gets the status the failure deserves —
//!   `INVALID_ARGUMENT` for bytes that do not decode, `UNIMPLEMENTED` for
//!   what the node does not serve, `RESOURCE_EXHAUSTED` for size — a
//!   request id and one record, durable before the answer leaves. The
//!   latter releases no case data and gets a request id and a record of
//!   its call, written without holding the answer: health must be able to
//!   say `NOT_SERVING` while the log cannot be written.
//! - **gRPC only.** A request whose content-type is not `application/grpc`
//!   gets HTTP 415 (gRPC over HTTP/2, "Requests") with `INVALID_ARGUMENT`,
//!   a request id and a record.
//!
//! Messages never echo request content: an unknown path is recorded as
//! `unknown`, and tonic's own messages are reduced to printable ASCII and
//! bounded (they name protobuf fields and types, never values).

use std::collections::BTreeMap;
use std::sync::Arc;

use prost::Message;

use crate::gateway::{Exchange, ExchangeError, RequestCtx, Resource};
use crate::net::identity::Peer;
use crate::net::tls::ConnectionInfo;
use crate::rpc::REQUEST_ID_HEADER;
use crate::rpc::status::{status, with_id};

/// The package whose methods answer through `Api::call`.
const API_PACKAGE: &str = "sluis.v1";
/// How the record names a path this node does not serve.
const UNKNOWN_METHOD: &str = "unknown";
/// Longest part of a message of tonic's that a refusal repeats.
const MAX_CAUSE: usize = 200;

/// A method the router serves, as the access record names it.
#[derive(Clone, Debug)]
struct Method {
    /// `GetCase` for `sluis.v1` (as `Api::call` names it), the full
    /// `grpc.health.v1.Health/Check` for other services.
    label: String,
}

/// The layer (see the module documentation).
#[derive(Clone)]
pub(crate) struct Edge {
    shared: Arc<Shared>,
}

struct Shared {
    ex: Arc<Exchange>,
    max_message_bytes: usize,
    /// By HTTP/2 path, `/package.Service/Method`.
    methods: BTreeMap<String, Method>,
    /// The services, for the message to a caller of an unknown one.
    services: Vec<String>,
}

impl Edge {
    /// `descriptor_sets`: the encoded `FileDescriptorSet`s of every service
    /// the router serves, so that every method is named in its record.
    pub(super) fn new(
        ex: Arc<Exchange>,
        max_message_bytes: usize,
        descriptor_sets: &[&[u8]],
    ) -> Result<Edge, prost::DecodeError> {
        let mut methods = BTreeMap::new();
        let mut services = Vec::new();
        for set in descriptor_sets {
            for file in prost_types::FileDescriptorSet::decode(*set)?.file {
                let package = file.package();
                for service in &file.service {
                    let full = format!("{package}.{}", service.name());
                    for m in &service.method {
                        let label = if package == API_PACKAGE {
                            m.name().to_string()
                        } else {
                            format!("{full}/{}", m.name())
                        };
                        methods.insert(format!("/{full}/{}", m.name()), Method { label });
                    }
                    if !services.contains(&full) {
                        services.push(full);
                    }
                }
            }
        }
        Ok(Edge {
            shared: Arc::new(Shared {
                ex,
                max_message_bytes,
                methods,
                services,
            }),
        })
    }
}

impl<S> tower::Layer<S> for Edge {
    type Service = EdgeService<S>;
    fn layer(&self, inner: S) -> EdgeService<S> {
        EdgeService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct EdgeService<S> {
    inner: S,
    shared: Arc<Shared>,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;
type HttpResponse = http::Response<tonic::body::Body>;

impl<S, B> tower::Service<http::Request<B>> for EdgeService<S>
where
    S: tower::Service<http::Request<B>, Response = HttpResponse> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = HttpResponse;
    type Error = S::Error;
    type Future = BoxFuture<Result<HttpResponse, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // The clone is not ready; the original is: take it, leave the clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(async move {
            let request_id = uuid::Uuid::now_v7().to_string();
            let Some(info) = req.extensions().get::<ConnectionInfo>().cloned() else {
                // Only reachable if the server is wired without our TLS layer.
                let s = tonic::Status::unauthenticated("no authenticated connection");
                return Ok(with_id(s, &request_id).into_http());
            };
            let method = shared.methods.get(req.uri().path()).cloned();
            let label = method.as_ref().map_or(UNKNOWN_METHOD, |m| m.label.as_str());
            let ctx = RequestCtx {
                request_id: request_id.clone(),
                peer: info.peer.clone(),
                actor: None,
            };
            if let Some(refusal) = admission(&info, req.headers()) {
                let unsupported_media = matches!(refusal, Refusal::ContentType(_));
                let mut resp = shared.refuse(&ctx, label, refusal.into()).await;
                if unsupported_media {
                    *resp.status_mut() = http::StatusCode::UNSUPPORTED_MEDIA_TYPE;
                }
                return Ok(resp);
            }
            let mut resp = inner.call(req).await?;
            if resp.headers().contains_key(REQUEST_ID_HEADER) {
                // Api::call answered, and recorded.
                return Ok(resp);
            }
            if let Some(code) = refused_code(&resp) {
                let message = resp
                    .extensions()
                    .get::<tonic::Status>()
                    .map(|s| s.message().to_string())
                    .unwrap_or_default();
                let e = shared.before_handler(method.as_ref(), code, &message);
                return Ok(shared.refuse(&ctx, label, e).await);
            }
            // A service outside sluis.v1 answered. It releases no case
            // data, and health must be able to say NOT_SERVING while the
            // log cannot be written: recorded without holding the answer.
            let (ex, label) = (shared.ex.clone(), label.to_string());
            tokio::spawn(async move {
                if let Err(e) = ex.admit(&ctx, &label).await {
                    tracing::warn!(request_id = %ctx.request_id, method = %label, error = %e, "answer outside sluis.v1 not recorded");
                }
            });
            if let Ok(v) = http::HeaderValue::from_str(&request_id) {
                resp.headers_mut().insert(REQUEST_ID_HEADER, v);
            }
            Ok(resp)
        })
    }
}

/// Why a request is refused before any service sees it.
enum Refusal {
    NoLongerValid(crate::net::tls::CertRejected),
    Unregistered,
    ContentType(String),
}

impl From<Refusal> for ExchangeError {
    fn from(r: Refusal) -> ExchangeError {
        match r {
            Refusal::NoLongerValid(why) => ExchangeError::CertificateNoLongerValid(why),
            Refusal::Unregistered => ExchangeError::Unregistered,
            Refusal::ContentType(m) => ExchangeError::Malformed(m),
        }
    }
}

/// The identity rules of every service, then the content-type.
fn admission(info: &ConnectionInfo, headers: &http::HeaderMap) -> Option<Refusal> {
    if let Err(why) = info.cert.still_valid() {
        return Some(Refusal::NoLongerValid(why));
    }
    if matches!(info.peer, Peer::Unregistered { .. }) {
        return Some(Refusal::Unregistered);
    }
    let grpc = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("application/grpc"))
        .is_some_and(|rest| rest.is_empty() || rest == "+proto" || rest.starts_with(';'));
    if !grpc {
        return Some(Refusal::ContentType(
            "this node speaks gRPC only: send content-type application/grpc".into(),
        ));
    }
    None
}

/// The status of an answer that ended at once (gRPC "Trailers-Only": the
/// status in the headers), unless it is OK.
fn refused_code(resp: &HttpResponse) -> Option<tonic::Code> {
    let code = resp.headers().get("grpc-status")?.to_str().ok()?;
    let code = tonic::Code::from_i32(code.parse().ok()?);
    (code != tonic::Code::Ok).then_some(code)
}

impl Shared {
    /// Records the refusal and answers it with its status and request id.
    async fn refuse(&self, ctx: &RequestCtx, label: &str, e: ExchangeError) -> HttpResponse {
        let e = self.ex.refuse(ctx, label, e).await;
        status(e, &ctx.request_id).into_http()
    }

    /// What an answer tonic gave by itself means, as the node's error.
    fn before_handler(
        &self,
        method: Option<&Method>,
        code: tonic::Code,
        message: &str,
    ) -> ExchangeError {
        let Some(method) = method else {
            return ExchangeError::Unimplemented(format!(
                "unknown service or method; this node serves {}",
                self.services.join(", ")
            ));
        };
        let cause = cause(message);
        match code {
            // tonic answers UNIMPLEMENTED for a known method only when it
            // cannot decompress the message.
            tonic::Code::Unimplemented => ExchangeError::UnsupportedEncoding,
            tonic::Code::OutOfRange | tonic::Code::ResourceExhausted => ExchangeError::TooLarge {
                size: None,
                max: self.max_message_bytes,
            },
            // Health, asked about a service it does not know.
            tonic::Code::NotFound => ExchangeError::not_found(Resource::Service, None, &cause),
            // tonic answers INTERNAL by itself only for a request it cannot
            // read: a message that does not decode, broken framing, a
            // missing message.
            _ => ExchangeError::Malformed(format!(
                "the request is not one gRPC message of {}'s request type ({cause}); send exactly one protobuf-encoded, length-prefixed message",
                method.label
            )),
        }
    }
}

/// tonic's message, as printable ASCII and bounded.
fn cause(message: &str) -> String {
    let mut out: String = message
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(MAX_CAUSE)
        .collect();
    if out.is_empty() {
        out.push_str("no detail");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_printable_and_bounded() {
        assert_eq!(cause("a\nb\u{7f}c\u{e9}"), "abc");
        assert_eq!(cause(""), "no detail");
        assert_eq!(cause(&"x".repeat(1000)).len(), MAX_CAUSE);
    }
}
