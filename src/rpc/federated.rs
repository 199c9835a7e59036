//! The gRPC face between federation nodes (ARCHITECTURE.md, "Federation").
//!
//! Holding side: the federation listener serves `CaseService.GetCase` to
//! peer nodes. [`Gate`], outside [`Edge`], admits a request only if the
//! directory is valid now and the calling node (recognised by the key its
//! certificate pins) asserts a participant the directory says it hosts,
//! with that role; the request then runs as that participant, through the
//! same edge and request path as the node's own callers, under the home
//! node's request id. Anything else is refused and recorded, naming the
//! calling node.
//!
//! Home side: [`forward_get_case`] makes the call for an agency and hands
//! what came back to `Exchange::forwarded`, which records it.

use std::sync::Arc;

use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic::transport::server::Router;
use tower::layer::util::{Identity, Stack};

use crate::federation::{Federation, PeerError};
use crate::gateway::{
    Code, Exchange, ExchangeError, GetCase, Named, Relayed, RequestCtx, validate,
};
use crate::model::{Caller, Category, Role};
use crate::net::identity::Peer;
use crate::net::peer::PeerTlsError;
use crate::net::tls::ConnectionInfo;
use crate::rpc::convert::{category, withhold_reason};
use crate::rpc::proto::v1 as pb;
use crate::rpc::status::{status, with_id};
use crate::rpc::{ACTOR_HEADER, Api, Edge, InFlight, REQUEST_ID_HEADER, RequestId, RouterError};
use crate::tlog::Recorded;

/// Request metadata naming the federation node that holds the case an
/// agency asks for (`CaseService.GetCase`).
pub(crate) const HOLDING_NODE: &str = "x-sluis-holding-node";
/// The participant a node calls for (its id, as the directory hosts it).
pub(crate) const ON_BEHALF_OF: &str = "x-sluis-on-behalf-of";
/// That participant's role, as the directory gives it.
pub(crate) const ON_BEHALF_OF_ROLE: &str = "x-sluis-on-behalf-of-role";

/// The federation listener's services: `CaseService` behind [`Edge`],
/// behind [`Gate`].
pub(crate) type FederatedRoutes = Router<Stack<Edge, Stack<Gate, Identity>>>;

/// The services peer nodes may call. Only `GetCase` is forwarded so far;
/// the other methods of the service answer as for any caller (a peer
/// asserting a participant gets that participant's rights, no more).
pub(crate) fn router(
    server: Server,
    ex: Arc<Exchange>,
    federation: Arc<Federation>,
    max_message_bytes: usize,
    message_timeout: std::time::Duration,
    in_flight: InFlight,
) -> Result<FederatedRoutes, RouterError> {
    let edge = Edge::new(
        ex.clone(),
        max_message_bytes,
        message_timeout,
        in_flight,
        super::DESCRIPTOR_SETS,
    )?;
    let api = Api::new(ex.clone(), max_message_bytes);
    Ok(server
        .layer(Gate { ex, federation })
        .layer(edge)
        .add_service(
            pb::case_service_server::CaseServiceServer::new(api)
                .max_decoding_message_size(max_message_bytes),
        ))
}

/// Admits a peer node's request as the participant it asserts, or refuses
/// and records it.
#[derive(Clone)]
pub(crate) struct Gate {
    ex: Arc<Exchange>,
    federation: Arc<Federation>,
}

impl<S> tower::Layer<S> for Gate {
    type Service = GateService<S>;
    fn layer(&self, inner: S) -> GateService<S> {
        GateService {
            inner,
            gate: self.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct GateService<S> {
    inner: S,
    gate: Gate,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;
type HttpResponse = http::Response<tonic::body::Body>;

impl<S, B> tower::Service<http::Request<B>> for GateService<S>
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

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let gate = self.gate.clone();
        Box::pin(async move {
            let Some(mut info) = req.extensions().get::<ConnectionInfo>().cloned() else {
                let s = tonic::Status::unauthenticated("no authenticated connection");
                return Ok(with_id(s, &uuid::Uuid::now_v7().to_string()).into_http());
            };
            let headers = req.headers();
            let (request_id, admitted) = match forwarded_id(headers) {
                Ok(id) => {
                    let admitted = gate.admit(&info.peer, headers);
                    (id, admitted)
                }
                Err(e) => (uuid::Uuid::now_v7().to_string(), Err(e)),
            };
            match admitted {
                Ok(caller) => {
                    info.peer = Peer::Registered(caller);
                    req.extensions_mut().insert(info);
                    req.extensions_mut().insert(RequestId(request_id));
                    inner.call(req).await
                }
                Err(e) => {
                    let method = match req.uri().path() {
                        "/sluis.v1.CaseService/GetCase" => "GetCase",
                        _ => "federation.refused",
                    };
                    let ctx = RequestCtx {
                        request_id: request_id.clone(),
                        trace: super::trace::at_edge(req.headers(), &info.peer, None),
                        peer: info.peer,
                        actor: None,
                    };
                    let e = gate.ex.refuse(&ctx, method, e, Named::Nothing).await;
                    Ok(status(e, &request_id).into_http())
                }
            }
        })
    }
}

/// The home node's request id, kept so both records share it: a UUID, or a
/// new id when the peer sent none.
fn forwarded_id(headers: &http::HeaderMap) -> Result<String, ExchangeError> {
    match headers.get(REQUEST_ID_HEADER) {
        None => Ok(uuid::Uuid::now_v7().to_string()),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
            .map(|u| u.hyphenated().to_string())
            .ok_or_else(|| {
                ExchangeError::Malformed(format!(
                    "{REQUEST_ID_HEADER} from a peer node must be a UUID (the home node's request id)"
                ))
            }),
    }
}

impl Gate {
    /// The participant a peer node's request runs as. Errors:
    /// `FailedPrecondition` (the directory is not valid now), `Unregistered`
    /// (a certificate no directory node pins), `Forbidden` (no assertion, one
    /// the directory does not back, or a further hop asked for).
    fn admit(&self, peer: &Peer, headers: &http::HeaderMap) -> Result<Caller, ExchangeError> {
        let running = self
            .federation
            .current(self.ex.now())
            .map_err(|e| ExchangeError::FailedPrecondition(e.to_string()))?;
        let node = match peer {
            Peer::Registered(c) => c.participant.as_str(),
            // A node-to-node problem, never the agency's: say so, and who
            // can mend it.
            Peer::Unregistered { fingerprint } => {
                return Err(ExchangeError::Forbidden(format!(
                    "node-to-node: the calling node's certificate (SHA-256 {fingerprint}) carries no key the federation directory (serial {}) of this node pins for a node, so this node does not know which node calls; the calling node's operator must call with the certificate of the key the directory pins for it, or ask the network's operator for a directory that pins its new key and have it installed on this node",
                    running.directory.serial
                )));
            }
        };
        // The connection was admitted under the directory of its time; the
        // node must still be in the one running now.
        if running.directory.node(node).is_none() {
            return Err(ExchangeError::Forbidden(format!(
                "node '{node}' is not in the running federation directory (serial {})",
                running.directory.serial
            )));
        }
        // One hop: a peer's call is answered here or not at all, so no node
        // can relay through another under that node's name.
        if headers.contains_key(HOLDING_NODE) {
            return Err(ExchangeError::Forbidden(format!(
                "a call between nodes is answered by the node it reaches; {HOLDING_NODE} is not taken from a peer"
            )));
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let Some(participant) = header(ON_BEHALF_OF) else {
            return Err(ExchangeError::Forbidden(format!(
                "a call between nodes names the participant it is made for in {ON_BEHALF_OF}"
            )));
        };
        validate::participant_id(ON_BEHALF_OF, participant)?;
        let role = header(ON_BEHALF_OF_ROLE)
            .and_then(|r| r.parse::<Role>().ok())
            .ok_or_else(|| {
                ExchangeError::Forbidden(format!(
                    "a call between nodes names the participant's role in {ON_BEHALF_OF_ROLE}"
                ))
            })?;
        match running.directory.home_of(participant) {
            Some((home, r)) if home.id == node && r == role => Ok(Caller {
                participant: participant.to_string(),
                role,
                oin: None,
            }),
            _ => Err(ExchangeError::Forbidden(format!(
                "node '{node}' asserted participant '{participant}' as {role}, which the federation directory (serial {}) does not say it hosts",
                running.directory.serial
            ))),
        }
    }
}

/// Forwards an agency's `GetCase` to `node` over mTLS with this node's
/// certificate, asserting the caller, the request id, the acting employee
/// and the trace; the answer is the holding node's, recorded here too.
pub(crate) async fn forward_get_case(
    ex: &Exchange,
    ctx: &RequestCtx,
    node: String,
    q: GetCase,
) -> Result<Recorded<pb::GetCaseResponse>, ExchangeError> {
    let message = pb::GetCaseRequest {
        subject: Some(match q.subject {
            crate::gateway::CaseRef::Id(id) => pb::get_case_request::Subject::CaseId(id),
            crate::gateway::CaseRef::Pseudonym(p) => {
                pb::get_case_request::Subject::SubjectPseudonym(p)
            }
        }),
        purpose: q.purpose.clone(),
        categories: q.categories.iter().map(|c| i32::from(c.code())).collect(),
    };
    let asked = q.categories.clone();
    ex.forwarded(
        ctx,
        "GetCase",
        &node,
        &q.purpose,
        &asked,
        async |federation: &Federation, caller: &Caller| {
            let (channel, session) = federation.channel(&node).await.map_err(peer_unusable)?;
            let assertion = Assertion {
                request_id: ctx.request_id.clone(),
                participant: caller.participant.clone(),
                role: caller.role.to_string(),
                actor: ctx.actor.clone(),
                traceparent: format!(
                    "00-{}-{}-01",
                    ctx.trace.trace_id.hex(),
                    ctx.trace.span_id.hex()
                ),
            };
            let mut client = pb::case_service_client::CaseServiceClient::new(
                InterceptedService::new(channel, move |r| assertion.apply(r)),
            );
            let answer = client
                .get_case(message)
                .await
                .map_err(|s| match session.refusal() {
                    Some(refused) => peer_unusable(PeerError::Refused {
                        node: node.clone(),
                        serial: federation.serial(),
                        server_name: String::new(),
                        source: refused,
                    }),
                    None => peer_refused(&node, &s),
                })?
                .into_inner();
            let relayed = Relayed {
                released: answer
                    .released
                    .iter()
                    .map(|c| category("released", *c))
                    .collect::<Result<Vec<Category>, _>>()
                    .map_err(|_| peer_malformed(&node))?,
                withheld: answer
                    .withheld
                    .iter()
                    .map(|w| {
                        let reason = pb::WithholdReason::try_from(w.reason)
                            .map_err(|_| peer_malformed(&node))?;
                        Ok((
                            category("withheld", w.category).map_err(|_| peer_malformed(&node))?,
                            reason_code(reason).ok_or_else(|| peer_malformed(&node))?,
                        ))
                    })
                    .collect::<Result<Vec<_>, ExchangeError>>()?,
            };
            Ok((answer, relayed))
        },
    )
    .await
}

/// What a home node asserts on a forwarded call (see [`Gate::admit`]).
#[derive(Clone)]
struct Assertion {
    request_id: String,
    participant: String,
    role: String,
    actor: Option<String>,
    traceparent: String,
}

impl Assertion {
    fn apply(&self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let md = r.metadata_mut();
        let mut put = |name: &'static str, v: &str| {
            if let Ok(v) = MetadataValue::try_from(v) {
                md.insert(name, v);
            }
        };
        put(REQUEST_ID_HEADER, &self.request_id);
        put(ON_BEHALF_OF, &self.participant);
        put(ON_BEHALF_OF_ROLE, &self.role);
        put("traceparent", &self.traceparent);
        if let Some(a) = &self.actor {
            put(ACTOR_HEADER, a);
        }
        Ok(r)
    }
}

/// The withhold reason's code as the access record holds it.
fn reason_code(r: pb::WithholdReason) -> Option<String> {
    crate::model::WithholdReason::ALL
        .into_iter()
        .find(|w| withhold_reason(*w) == r)
        .map(|w| w.as_str().to_string())
}

fn peer_malformed(node: &str) -> ExchangeError {
    ExchangeError::PeerNode {
        code: Code::Internal,
        message: format!(
            "node '{node}' answered with a message this node cannot read; nothing was released"
        ),
    }
}

/// The holding node's refusal, with its code and its message.
fn peer_refused(node: &str, s: &tonic::Status) -> ExchangeError {
    let code = match s.code() {
        tonic::Code::InvalidArgument => Code::InvalidArgument,
        tonic::Code::DeadlineExceeded => Code::DeadlineExceeded,
        tonic::Code::NotFound => Code::NotFound,
        tonic::Code::AlreadyExists => Code::AlreadyExists,
        tonic::Code::PermissionDenied => Code::PermissionDenied,
        tonic::Code::ResourceExhausted => Code::ResourceExhausted,
        tonic::Code::FailedPrecondition => Code::FailedPrecondition,
        tonic::Code::Aborted => Code::Aborted,
        tonic::Code::OutOfRange => Code::OutOfRange,
        tonic::Code::Unimplemented => Code::Unimplemented,
        tonic::Code::Unauthenticated => Code::Unauthenticated,
        tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::Unknown => {
            Code::Unavailable
        }
        _ => Code::Internal,
    };
    let mut message: String = s.message().chars().take(300).collect();
    if message.is_empty() {
        message = "no reason given".into();
    }
    ExchangeError::PeerNode {
        code,
        message: format!("node '{node}' answered {}: {message}", code.name()),
    }
}

/// Why the home node could not make the call, as the agency hears it: the
/// code by AIP-193 (`UNAVAILABLE` only for what may pass by itself), and who
/// must act — the agency, this (home) node's operator, the holding node's
/// operator, or the network's operator. Nothing reached the holding node.
fn peer_unusable(e: PeerError) -> ExchangeError {
    let (code, message) = match e {
        PeerError::Federation(e) => (
            Code::FailedPrecondition,
            format!("{e} (by this node's operator)"),
        ),
        PeerError::Unknown { node, serial } => (
            Code::FailedPrecondition,
            format!(
                "the federation directory (serial {serial}) names no node '{node}': check the node id in {HOLDING_NODE} (the node that holds the case, as an earlier answer or a referral named it); if it is right, that node is not in the network yet, which its operator settles with the network's operator"
            ),
        ),
        PeerError::Unreachable(node, why) => (
            Code::Unavailable,
            format!(
                "node '{node}' cannot be reached ({why}); nothing was sent to it; retry later; if it lasts, the holding node's operator must check its federation listener at the directory's endpoint"
            ),
        ),
        PeerError::Refused {
            node,
            serial,
            server_name,
            source,
        } => {
            let fix = match &source {
                PeerTlsError::NotPinned { .. } => format!(
                    "nothing was sent to it: the holding node's operator must serve the certificate of the key the directory pins, or have the network's operator pin its new key in a newer directory than serial {serial}"
                ),
                PeerTlsError::Certificate(_) => format!(
                    "nothing was sent to it: the holding node's operator must serve a current certificate for '{server_name}' from its CA, or this node's operator must add that CA (and its CRL) to federation.peer_ca (federation.peer_crl)"
                ),
                PeerTlsError::RefusedOurs(_) => "nothing was released: the holding node's operator must trust this node's CA (its federation.peer_ca, with a current CRL in federation.peer_crl), and this node's federation.client_cert must be current and carry the key the directory pins for this node (this node's operator)".to_string(),
                PeerTlsError::Tls(_) | PeerTlsError::Unreachable(_) => {
                    "nothing was sent to it; the operators of both nodes must compare their TLS settings ([federation])".to_string()
                }
            };
            (
                Code::FailedPrecondition,
                format!("node '{node}': {source}; {fix}"),
            )
        }
    };
    ExchangeError::PeerNode { code, message }
}
