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
//! - **Admitted work runs to its end.** A request the edge admits runs in
//!   a task of its own — identity rules, the service, the record — holding
//!   a permit of [`InFlight`] until it is done. A caller that stops waiting
//!   (its `grpc-timeout` passes, it resets the stream, it closes the
//!   connection) therefore never stops a handler halfway or leaves it
//!   without its record. When the deadline passes first, the edge answers
//!   `DEADLINE_EXCEEDED` with the request id, under which the request's own
//!   record then says how it ended. Beyond `max_requests_in_flight`, or
//!   its caller's share of them, a request is refused at once with
//!   `UNAVAILABLE` (recorded). Until its handler starts a request only
//!   waits for its message; a message not complete within
//!   `message_timeout_ms` ends the request, before any handler, with
//!   `DEADLINE_EXCEEDED` (recorded).
//! - **gRPC, and the tlog-tiles read API.** A request for `/checkpoint` or
//!   under `/tile/` is the read API's (`super::tiles`): the same identity
//!   rules, bounds and records, answered in plain HTTP. Any other request
//!   whose content-type is not `application/grpc` gets HTTP 415 (gRPC over
//!   HTTP/2, "Requests") with `INVALID_ARGUMENT`, a request id and a record;
//!   a method whose client sends one message gets one (a second is
//!   `INVALID_ARGUMENT`, recorded).
//!
//! Messages never echo request content: an unknown path is recorded as
//! `unknown`, and tonic's own messages are reduced to printable ASCII and
//! bounded (they name protobuf fields and types, never values).

use std::collections::BTreeMap;
use std::sync::Arc;

use prost::Message;

use crate::gateway::{Exchange, ExchangeError, Named, RequestCtx, Resource};
use crate::net::identity::Peer;
use crate::net::tls::ConnectionInfo;
use crate::rpc::REQUEST_ID_HEADER;
use crate::rpc::in_flight::{Full, InFlight};
use crate::rpc::status::{http_error, status, with_id};

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
    /// Whether the client sends a stream of messages; if not, its request
    /// body is held to one message (`OneMessage`).
    client_streaming: bool,
}

/// The layer (see the module documentation).
#[derive(Clone)]
pub(crate) struct Edge {
    shared: Arc<Shared>,
}

struct Shared {
    ex: Arc<Exchange>,
    max_message_bytes: usize,
    /// From admission to a handler's start: how long the message may take.
    message_timeout: std::time::Duration,
    in_flight: InFlight,
    /// By HTTP/2 path, `/package.Service/Method`.
    methods: BTreeMap<String, Method>,
    /// The services, for the message to a caller of an unknown one.
    services: Vec<String>,
}

impl Edge {
    /// `descriptor_sets`: the encoded `FileDescriptorSet`s of the services
    /// the router serves, so that every method is named in its record;
    /// `served`, when the router serves only some of them, their full
    /// names (`sluis.v1.CaseService`): a method of any other is unknown
    /// here, as the router answers it.
    pub(super) fn new(
        ex: Arc<Exchange>,
        max_message_bytes: usize,
        message_timeout: std::time::Duration,
        in_flight: InFlight,
        descriptor_sets: &[&[u8]],
        served: Option<&[&str]>,
    ) -> Result<Edge, prost::DecodeError> {
        let mut methods = BTreeMap::new();
        let mut services = Vec::new();
        for set in descriptor_sets {
            for file in prost_types::FileDescriptorSet::decode(*set)?.file {
                let package = file.package();
                for service in &file.service {
                    let full = format!("{package}.{}", service.name());
                    if served.is_some_and(|only| !only.contains(&full.as_str())) {
                        continue;
                    }
                    for m in &service.method {
                        let label = if package == API_PACKAGE {
                            m.name().to_string()
                        } else {
                            format!("{full}/{}", m.name())
                        };
                        let method = Method {
                            label,
                            client_streaming: m.client_streaming(),
                        };
                        methods.insert(format!("/{full}/{}", m.name()), method);
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
                message_timeout,
                in_flight,
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

type HttpRequest = http::Request<tonic::body::Body>;

impl<S> tower::Service<HttpRequest> for EdgeService<S>
where
    S: tower::Service<HttpRequest, Response = HttpResponse> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
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

    fn call(&mut self, mut req: HttpRequest) -> Self::Future {
        // The clone is not ready; the original is: take it, leave the clone.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        // The caller's deadline counts from here. tonic's own timer, which
        // wraps this layer, starts just after and polls this future before
        // it fires, so at the deadline the answer below is the one sent.
        let deadline = grpc_timeout(req.headers()).map(|d| tokio::time::Instant::now() + d);
        // The tlog-tiles read API: plain HTTP GETs, under the same rules.
        let tiles = super::tiles::is_tiles_path(req.uri().path());
        let answered = async move {
            // A request forwarded by a federation node keeps the home
            // node's id (`rpc::federated::Gate` put it there), so that both
            // records share it.
            let request_id = req
                .extensions()
                .get::<crate::rpc::RequestId>()
                .map_or_else(|| uuid::Uuid::now_v7().to_string(), |r| r.0.clone());
            let Some(info) = req.extensions().get::<ConnectionInfo>().cloned() else {
                // Only reachable if the server is wired without our TLS layer.
                let s = tonic::Status::unauthenticated("no authenticated connection");
                return Ok(with_id(s, &request_id).into_http());
            };
            // The connection is at work until this request's work ends.
            let running = info.activity.running();
            let method = shared.methods.get(req.uri().path()).cloned();
            let label = if tiles {
                super::tiles::label(req.uri().path())
            } else {
                method.as_ref().map_or(UNKNOWN_METHOD, |m| m.label.as_str())
            }
            .to_string();
            let caller = match &info.peer {
                Peer::Registered(c) => Some(c),
                Peer::Unregistered { .. } => None,
            };
            let observed = crate::telemetry::begin(req.headers(), &request_id, &label, caller);
            let trace = crate::rpc::trace::at_edge(req.headers(), &info.peer, observed.ids());
            req.extensions_mut().insert(trace.clone());
            let ctx = RequestCtx {
                request_id: request_id.clone(),
                peer: info.peer.clone(),
                actor: None,
                trace,
            };
            let permit = match shared.in_flight.admit(&info.peer) {
                Ok(p) => p,
                Err(full) => {
                    let busy = match full {
                        Full::Node(n) => ExchangeError::Busy(n),
                        Full::Caller(n) => ExchangeError::CallerBusy(n),
                    };
                    let resp = observed
                        .run(Box::pin(shared.refuse(&ctx, &label, busy)))
                        .await;
                    observed.end(grpc_code(&resp));
                    return Ok(resp);
                }
            };
            req.extensions_mut()
                .insert(crate::rpc::RequestId(request_id.clone()));
            // The request's work runs in a task of its own, holding its
            // permit to the end, so that nothing the caller does — a
            // deadline that passes, a stream it resets, a connection it
            // closes — stops a handler halfway or leaves it unrecorded.
            let (answer_tx, answer) = tokio::sync::oneshot::channel();
            let work = Work {
                shared,
                info,
                ctx,
                method,
                label,
            };
            tokio::spawn(async move {
                let code = observed.run(work.run(inner, req, answer_tx)).await;
                observed.end(code);
                drop(permit);
                drop(running);
            });
            let answer = match deadline {
                None => answer.await,
                Some(at) => {
                    tokio::pin!(answer);
                    tokio::select! {
                        biased;
                        a = &mut answer => a,
                        () = tokio::time::sleep_until(at) => {
                            return Ok(status(ExchangeError::DeadlineExceeded, &request_id).into_http());
                        }
                    }
                }
            };
            match answer {
                Ok(resp) => resp,
                // The task panicked (a defect; its cause is in the node's
                // log): no record was made.
                Err(_) => Ok(status(ExchangeError::Internal("request"), &request_id).into_http()),
            }
        };
        Box::pin(async move {
            let answer = answered.await;
            if tiles {
                answer
            } else {
                answer.map(advertise_encodings)
            }
        })
    }
}

/// Says on every answer, errors included, which compressions the node
/// takes (gRPC compression spec: `grpc-accept-encoding`), so that a client
/// that negotiates learns gzip is accepted, and one refused for another
/// encoding learns what to send instead.
fn advertise_encodings(mut resp: HttpResponse) -> HttpResponse {
    resp.headers_mut()
        .entry("grpc-accept-encoding")
        .or_insert(http::HeaderValue::from_static("gzip,identity"));
    resp
}

/// One admitted request: everything from the identity rules to its
/// record, run to its end whether or not anyone still waits for the answer.
struct Work {
    shared: Arc<Shared>,
    info: ConnectionInfo,
    ctx: RequestCtx,
    method: Option<Method>,
    label: String,
}

type Answer<E> = tokio::sync::oneshot::Sender<Result<HttpResponse, E>>;

/// In a request's extensions: told by `Api::call` the moment a handler
/// starts, after tonic has read the whole message.
#[derive(Clone)]
pub(crate) struct Started(pub(crate) Arc<tokio::sync::Notify>);

impl Work {
    /// Returns the gRPC status code of the answer it gave.
    ///
    /// Its future is moved into a task of its own for every request (and
    /// copied at its full size as it is): the refusal, tiles and
    /// outside-`sluis.v1` paths' futures, each an access record's whole
    /// append, are boxed where they are awaited, so that room for them is
    /// taken only when one runs.
    async fn run<S>(self, mut inner: S, req: HttpRequest, answer: Answer<S::Error>) -> i32
    where
        S: tower::Service<HttpRequest, Response = HttpResponse>,
    {
        let Work {
            shared,
            info,
            ctx,
            method,
            label,
        } = self;
        if super::tiles::is_tiles_path(req.uri().path()) {
            // The same identity rules; then the read API answers in HTTP.
            let (resp, code) = match identity(&info) {
                Some(refusal) => {
                    let e = Box::pin(shared.ex.refuse(
                        &ctx,
                        &label,
                        refusal.into(),
                        Named::Nothing,
                    ))
                    .await;
                    let code = e.code() as i32;
                    (http_error(e, &ctx.request_id), code)
                }
                None => {
                    let (method, path) = (req.method(), req.uri().path());
                    Box::pin(super::tiles::serve(
                        &shared.ex,
                        &ctx,
                        method,
                        path,
                        req.headers(),
                    ))
                    .await
                }
            };
            let _ = answer.send(Ok(resp));
            return code;
        }
        if let Some(refusal) = admission(&info, req.method(), req.headers()) {
            let unsupported_media = matches!(refusal, Refusal::ContentType(_));
            let mut resp = Box::pin(shared.refuse(&ctx, &label, refusal.into())).await;
            if unsupported_media {
                *resp.status_mut() = http::StatusCode::UNSUPPORTED_MEDIA_TYPE;
            }
            return reply(answer, Ok(resp));
        }
        // Until a handler starts, the request is only waiting for its
        // message: a caller that never finishes sending it would hold its
        // place for as long as it likes. That wait is bounded; a handler
        // that has started runs to its end.
        let started = Arc::new(tokio::sync::Notify::new());
        let mut req = if method.as_ref().is_some_and(|m| !m.client_streaming) {
            req.map(|body| tonic::body::Body::new(OneMessage::new(body)))
        } else {
            req
        };
        req.extensions_mut().insert(Started(started.clone()));
        let call = inner.call(req);
        tokio::pin!(call);
        let result = tokio::select! {
            biased;
            r = &mut call => r,
            () = started.notified() => call.await,
            () = tokio::time::sleep(shared.message_timeout) => {
                let late = ExchangeError::MessageTimeout(shared.message_timeout.as_millis() as u64);
                return reply(answer, Ok(Box::pin(shared.refuse(&ctx, &label, late)).await));
            }
        };
        let mut resp = match result {
            Ok(resp) => resp,
            Err(e) => return reply(answer, Err(e)),
        };
        if resp.headers().contains_key(REQUEST_ID_HEADER) {
            // Api::call answered, and recorded.
            return reply(answer, Ok(resp));
        }
        if let Some(code) = refused_code(&resp) {
            let message = resp
                .extensions()
                .get::<tonic::Status>()
                .map(|s| s.message().to_string())
                .unwrap_or_default();
            let e = shared.before_handler(method.as_ref(), code, &message);
            return reply(answer, Ok(Box::pin(shared.refuse(&ctx, &label, e)).await));
        }
        // A service outside sluis.v1 answered. It releases no case data,
        // and health must be able to say NOT_SERVING while the log cannot
        // be written: answered first, recorded after (still holding the
        // request's permit).
        if let Ok(v) = http::HeaderValue::from_str(&ctx.request_id) {
            resp.headers_mut().insert(REQUEST_ID_HEADER, v);
        }
        let code = reply(answer, Ok(resp));
        if let Err(e) = Box::pin(shared.ex.admit(&ctx, &label)).await {
            tracing::warn!(request_id = %ctx.request_id, method = %label, error = %e, "answer outside sluis.v1 not recorded");
        }
        code
    }
}

/// Hands the answer to whoever still waits for it; returns its gRPC status
/// code (`UNKNOWN` for a transport error).
fn reply<E>(answer: Answer<E>, r: Result<HttpResponse, E>) -> i32 {
    let code = r.as_ref().map_or(tonic::Code::Unknown as i32, grpc_code);
    let _ = answer.send(r);
    code
}

/// The gRPC status code of an answer: from its headers when it ended at
/// once (a refusal, any error of a unary method), otherwise `OK` (a unary
/// answer with a message, whose status follows in its trailers).
fn grpc_code(resp: &HttpResponse) -> i32 {
    refused_code(resp).map_or(0, |c| c as i32)
}

/// The caller's deadline from `grpc-timeout` (gRPC over HTTP/2: at most 8
/// digits and a unit, H M S m u n); none when absent or malformed, as tonic
/// reads it.
fn grpc_timeout(headers: &http::HeaderMap) -> Option<std::time::Duration> {
    use std::time::Duration;
    let v = headers.get("grpc-timeout")?.to_str().ok()?;
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Why a request is refused before any service sees it.
enum Refusal {
    NoLongerValid(crate::net::tls::CertRejected),
    Unregistered,
    ContentType(String),
    /// The headers break the gRPC over HTTP/2 protocol (see `framing`).
    Framing(String),
}

impl From<Refusal> for ExchangeError {
    fn from(r: Refusal) -> ExchangeError {
        match r {
            Refusal::NoLongerValid(why) => ExchangeError::CertificateNoLongerValid(why),
            Refusal::Unregistered => ExchangeError::Unregistered,
            Refusal::ContentType(m) | Refusal::Framing(m) => ExchangeError::Malformed(m),
        }
    }
}

/// The identity rules of every service and of the tlog-tiles read API.
fn identity(info: &ConnectionInfo) -> Option<Refusal> {
    if let Err(why) = info.cert.still_valid() {
        return Some(Refusal::NoLongerValid(why));
    }
    if matches!(info.peer, Peer::Unregistered { .. }) {
        return Some(Refusal::Unregistered);
    }
    None
}

/// The identity rules of every service, then the content-type.
fn admission(
    info: &ConnectionInfo,
    method: &http::Method,
    headers: &http::HeaderMap,
) -> Option<Refusal> {
    if let Some(refusal) = identity(info) {
        return Some(refusal);
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
    framing(method, headers).map(Refusal::Framing)
}

/// What the gRPC over HTTP/2 protocol requires of a request's headers that
/// tonic lets through: POST; a `grpc-timeout`, if sent, of 1 to 8 ASCII
/// digits and a unit (tonic ignores a malformed one, which would run the
/// request without the deadline its caller meant); and each of the node's
/// own `x-sluis-actor` at most once (only the first would be read and recorded).
/// `None` when the headers are fine, else what to fix.
fn framing(method: &http::Method, headers: &http::HeaderMap) -> Option<String> {
    if method != http::Method::POST {
        return Some(format!("gRPC requests use the POST method, not {method}"));
    }
    if headers.contains_key("grpc-timeout") && grpc_timeout(headers).is_none() {
        return Some(
            "grpc-timeout is malformed: send 1 to 8 ASCII digits and a unit (H, M, S, m, u or n), such as 5S".into(),
        );
    }
    let actor = crate::rpc::ACTOR_HEADER;
    if headers.get_all(actor).iter().nth(1).is_some() {
        return Some(format!("send {actor} at most once"));
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
        let e = self.ex.refuse(ctx, label, e, Named::Nothing).await;
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

/// A request body held to one gRPC message, for methods whose client
/// sends one (gRPC over HTTP/2, "Requests": a unary call's body is one
/// Length-Prefixed-Message). tonic decodes the first message and drops any
/// further ones unread, so a second message would be answered as if it had
/// never been sent; here its first byte ends the body with
/// `INVALID_ARGUMENT`, which tonic answers before any handler runs and the
/// edge records as a refusal.
struct OneMessage {
    inner: tonic::body::Body,
    /// Messages begun so far.
    messages: u32,
    /// The bytes of the current message's 5-byte prefix seen so far.
    prefix: [u8; 5],
    prefix_len: usize,
    /// Bytes of the current message still to come.
    payload_left: u64,
}

impl OneMessage {
    fn new(inner: tonic::body::Body) -> OneMessage {
        OneMessage {
            inner,
            messages: 0,
            prefix: [0; 5],
            prefix_len: 0,
            payload_left: 0,
        }
    }

    /// Follows the message boundaries through one chunk of the body.
    fn scan(&mut self, mut data: &[u8]) -> Result<(), tonic::Status> {
        while !data.is_empty() {
            if self.payload_left > 0 {
                let n = data
                    .len()
                    .min(usize::try_from(self.payload_left).unwrap_or(usize::MAX));
                self.payload_left -= n as u64;
                data = &data[n..];
                continue;
            }
            if self.prefix_len == 0 {
                self.messages += 1;
                if self.messages > 1 {
                    return Err(tonic::Status::invalid_argument(
                        "the request carried more than one message",
                    ));
                }
            }
            let n = data.len().min(5 - self.prefix_len);
            self.prefix[self.prefix_len..self.prefix_len + n].copy_from_slice(&data[..n]);
            self.prefix_len += n;
            data = &data[n..];
            if self.prefix_len == 5 {
                let len = [
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ];
                self.payload_left = u64::from(u32::from_be_bytes(len));
                self.prefix_len = 0;
            }
        }
        Ok(())
    }
}

impl http_body::Body for OneMessage {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, tonic::Status>>> {
        let this = self.get_mut();
        let polled = std::pin::Pin::new(&mut this.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
            && let Err(e) = this.scan(data)
        {
            return std::task::Poll::Ready(Some(Err(e)));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
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

    /// Message boundaries are found however the body is cut into chunks.
    #[test]
    fn a_second_message_is_found_across_chunk_boundaries() {
        let frame = |payload: &[u8]| {
            let mut f = vec![0u8];
            f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            f.extend_from_slice(payload);
            f
        };
        let one = frame(b"abcdefgh");
        let two = [one.clone(), frame(b"")].concat();
        for cut in 0..=one.len() {
            let mut m = OneMessage::new(tonic::body::Body::empty());
            assert!(m.scan(&one[..cut]).is_ok());
            assert!(m.scan(&one[cut..]).is_ok(), "one message cut at {cut}");
            let mut m = OneMessage::new(tonic::body::Body::empty());
            let first = m.scan(&two[..cut]).is_ok();
            assert!(first && m.scan(&two[cut..]).is_err(), "two cut at {cut}");
        }
        // An empty message, then another.
        let mut m = OneMessage::new(tonic::body::Body::empty());
        assert!(m.scan(&frame(b"")).is_ok());
        assert!(m.scan(&[0]).is_err());
    }

    #[test]
    fn causes_are_printable_and_bounded() {
        assert_eq!(cause("a\nb\u{7f}c\u{e9}"), "abc");
        assert_eq!(cause(""), "no detail");
        assert_eq!(cause(&"x".repeat(1000)).len(), MAX_CAUSE);
    }
}
