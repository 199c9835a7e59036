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
use crate::gateway::network_report::{Link, Part, PartQuery, ProvenLeaf};
use crate::gateway::{
    Code, Exchange, ExchangeError, GetCase, Incoming, Named, Outgoing, ReferCase, Relayed,
    RequestCtx, Target, validate,
};
use crate::model::consent::{Consent, ConsentEvent, EventKind};
use crate::model::{Caller, Category, Role};
use crate::net::identity::Peer;
use crate::net::peer::PeerTlsError;
use crate::net::tls::ConnectionInfo;
use crate::rpc::convert::{
    case_data, case_input, categories, category, consent_pb, invalid, millis, recipients,
    timestamp, withhold_reason,
};
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

/// The services the federation listener serves (those added to the router
/// below): a method of another is answered as unknown, naming these.
const SERVED: &[&str] = &[
    "sluis.v1.CaseService",
    "sluis.v1.FederationService",
    "sluis.v1.StatisticsService",
    "sluis.v1.WitnessService",
];

/// The services peer nodes may call: `CaseService` (`GetCase` is what
/// nodes forward; the other methods answer as for any caller, so a peer
/// asserting a participant gets that participant's rights, no more, and
/// `ReferCase` is refused from a peer), `FederationService` (served
/// here alone: `AcceptReferral`) and `WitnessService` (served here alone,
/// to a node as itself: `rpc::witness`) and `StatisticsService` (the
/// node's own protected table for the monitor's network figures, asked by
/// the monitor's home node; a network request from a peer is refused, one
/// hop).
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
        Some(SERVED),
    )?;
    let api = Api::new(ex.clone(), max_message_bytes);
    Ok(server
        .layer(Gate { ex, federation })
        .layer(edge)
        .add_service(
            pb::case_service_server::CaseServiceServer::new(api.clone())
                .max_decoding_message_size(max_message_bytes),
        )
        .add_service(
            pb::federation_service_server::FederationServiceServer::new(api.clone())
                .max_decoding_message_size(max_message_bytes),
        )
        .add_service(
            pb::statistics_service_server::StatisticsServiceServer::new(api.clone())
                .max_decoding_message_size(max_message_bytes),
        )
        .add_service(
            pb::witness_service_server::WitnessServiceServer::new(api)
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
            // The calls a node makes as itself, for no participant.
            let as_node = req.uri().path() == REPORT_CASE_ACCESSES
                || req.uri().path().starts_with(WITNESS_SERVICE);
            let (request_id, admitted) = match forwarded_id(headers) {
                Ok(id) => {
                    let admitted = if as_node {
                        gate.admit_node(&info.peer, headers)
                    } else {
                        gate.admit(&info.peer, headers)
                    };
                    (id, admitted)
                }
                Err(e) => (uuid::Uuid::now_v7().to_string(), Err(e)),
            };
            match admitted {
                Ok(caller) => {
                    if as_node {
                        req.extensions_mut()
                            .insert(FromNode(caller.participant.clone()));
                    }
                    info.peer = Peer::Registered(caller);
                    req.extensions_mut().insert(info);
                    req.extensions_mut().insert(FromPeer);
                    req.extensions_mut().insert(RequestId(request_id));
                    inner.call(req).await
                }
                Err(e) => {
                    let method = match req.uri().path() {
                        "/sluis.v1.CaseService/GetCase" => "GetCase",
                        "/sluis.v1.FederationService/AcceptReferral" => "AcceptReferral",
                        "/sluis.v1.StatisticsService/GetStatistics" => "GetStatistics",
                        "/sluis.v1.WitnessService/GetWitnessCheckpoint" => "GetWitnessCheckpoint",
                        "/sluis.v1.WitnessService/AddCosignature" => "AddCosignature",
                        REPORT_CASE_ACCESSES => "ReportCaseAccesses",
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

/// Marks a request [`Gate`] admitted from a peer node: it is answered
/// here, never forwarded on (one hop).
#[derive(Clone, Copy)]
struct FromPeer;

/// The path of the node-to-node report call, which a node makes as itself.
const REPORT_CASE_ACCESSES: &str = "/sluis.v1.FederationService/ReportCaseAccesses";

/// Marks a request [`Gate`] admitted as a peer node itself (no
/// participant asserted), with that node's directory id.
#[derive(Clone)]
struct FromNode(String);

/// Whether a request came from a peer node through [`Gate`].
pub(crate) fn from_peer<T>(req: &tonic::Request<T>) -> bool {
    req.extensions().get::<FromPeer>().is_some()
}

/// The node that holds the case of a pseudonym the caller received
/// through this node from another node; `None` otherwise, or if it cannot
/// be read now (the read then runs here and says what it finds).
pub(crate) async fn located(ex: &Exchange, ctx: &RequestCtx, pseudonym: &str) -> Option<String> {
    let Peer::Registered(caller) = &ctx.peer else {
        return None;
    };
    ex.locate(&caller.participant, pseudonym)
        .await
        .ok()
        .flatten()
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

/// The path prefix of `WitnessService`, whose calls a node makes as itself.
const WITNESS_SERVICE: &str = "/sluis.v1.WitnessService/";

impl Gate {
    /// A call a peer node makes as itself (`WitnessService`,
    /// `ReportCaseAccesses`): it runs as the node (its id as the caller) and asserts no
    /// participant. Errors: those of [`Gate::admit`] about the node, and
    /// `Forbidden` for an assertion.
    fn admit_node(&self, peer: &Peer, headers: &http::HeaderMap) -> Result<Caller, ExchangeError> {
        let (_, node) = self.calling_node(peer)?;
        if headers.contains_key(ON_BEHALF_OF) || headers.contains_key(HOLDING_NODE) {
            return Err(ExchangeError::Forbidden(format!(
                "a node calls WitnessService and ReportCaseAccesses as itself: send neither {ON_BEHALF_OF} nor {HOLDING_NODE}"
            )));
        }
        Ok(Caller {
            participant: node.clone(),
            role: Role::Municipality,
            oin: None,
            node: Some(node),
        })
    }

    /// The running directory and the calling node's id in it. Errors:
    /// `FailedPrecondition` (the directory is not valid now), `Forbidden`
    /// (a certificate no directory node pins, or a node no longer in it).
    fn calling_node(
        &self,
        peer: &Peer,
    ) -> Result<(Arc<crate::federation::Running>, String), ExchangeError> {
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
        let node = node.to_string();
        Ok((running, node))
    }

    /// The participant a peer node's request runs as. Errors:
    /// `FailedPrecondition` (the directory is not valid now), `Unregistered`
    /// (a certificate no directory node pins), `Forbidden` (no assertion, one
    /// the directory does not back, or a further hop asked for).
    fn admit(&self, peer: &Peer, headers: &http::HeaderMap) -> Result<Caller, ExchangeError> {
        let (running, node) = self.calling_node(peer)?;
        let node = node.as_str();
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
                node: Some(node.to_string()),
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
    let case_id = match &q.subject {
        crate::gateway::CaseRef::Id(id) => Some(id.clone()),
        crate::gateway::CaseRef::Pseudonym(_) => None,
    };
    let pseudonym = match &q.subject {
        crate::gateway::CaseRef::Pseudonym(p) => Some(p.clone()),
        crate::gateway::CaseRef::Id(_) => None,
    };
    let message = pb::GetCaseRequest {
        subject: Some(match q.subject {
            crate::gateway::CaseRef::Id(id) => pb::get_case_request::Subject::CaseId(id),
            crate::gateway::CaseRef::Pseudonym(p) => {
                pb::get_case_request::Subject::SubjectPseudonym(p)
            }
        }),
        purpose: q.purpose.clone(),
        categories: q.categories.iter().map(|c| i32::from(c.code())).collect(),
        emergency_justification: q.justification.clone().unwrap_or_default(),
    };
    let asked = q.categories.clone();
    let answer = ex
        .forwarded(
            ctx,
            "GetCase",
            Target {
                node: &node,
                case_id: case_id.as_deref(),
            },
            &q.purpose,
            &asked,
            async |federation: &Federation, caller: &Caller| {
                let (channel, session) = federation.channel(&node).await.map_err(peer_unusable)?;
                let assertion = Assertion::of(ctx, caller);
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
                // Where this pseudonym's case is, for the caller's next
                // request by it (`located`).
                ex.remember_located(&caller.participant, &answer.subject_pseudonym, &node)
                    .await;
                let relayed = Relayed {
                    case_id: Some(answer.case_id.clone()),
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
                                category("withheld", w.category)
                                    .map_err(|_| peer_malformed(&node))?,
                                reason_code(reason).ok_or_else(|| peer_malformed(&node))?,
                            ))
                        })
                        .collect::<Result<Vec<_>, ExchangeError>>()?,
                };
                Ok((answer, relayed))
            },
        )
        .await;
    // The holding node referred the case on: the caller's next request by
    // its pseudonym goes to the node that holds it now.
    if let (Err(ExchangeError::Referred(holder)), Some(p), Peer::Registered(caller)) =
        (&answer, &pseudonym, &ctx.peer)
    {
        ex.remember_located(&caller.participant, p, holder).await;
    }
    answer
}

/// What each other node of the running directory answered when asked, as
/// the caller of `ctx`, for its own protected table `message` (the
/// monitor's network figures): per node id, its answer or why there is
/// none (unreachable, refused: the node's own words). Each answering node
/// records the request under `ctx`'s request id. Empty if this node is in
/// no federation or its directory is not valid now.
pub(crate) async fn peer_statistics(
    ex: &Exchange,
    ctx: &RequestCtx,
    message: pb::GetStatisticsRequest,
) -> Vec<(String, Result<pb::GetStatisticsResponse, String>)> {
    let (Some(federation), Peer::Registered(caller)) = (ex.federation(), &ctx.peer) else {
        return vec![];
    };
    let Ok(running) = federation.current(ex.now()) else {
        return vec![];
    };
    // All peers at once, at most PEERS_AT_ONCE connections at a time: the
    // monitor waits about as long as the slowest node, not the sum of them.
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(PEERS_AT_ONCE));
    let assertion = Assertion::of(ctx, caller);
    let mut asked = tokio::task::JoinSet::new();
    let peers: Vec<String> = running
        .directory
        .nodes
        .iter()
        .filter(|n| n.id != federation.node_id())
        .map(|n| n.id.clone())
        .collect();
    for (i, node) in peers.iter().enumerate() {
        let (federation, permits, assertion) =
            (federation.clone(), permits.clone(), assertion.clone());
        let (node, message) = (node.clone(), message.clone());
        asked.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let answer = async {
                let (channel, _session) =
                    federation.channel(&node).await.map_err(|e| e.to_string())?;
                let mut client = pb::statistics_service_client::StatisticsServiceClient::new(
                    InterceptedService::new(channel, move |r| assertion.apply(r)),
                );
                client
                    .get_statistics(message)
                    .await
                    .map(tonic::Response::into_inner)
                    .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
            };
            // A node that takes the call and then hangs is missing, not a
            // stall of the whole answer.
            let answer = tokio::time::timeout(PART_TIMEOUT, answer)
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {} s", PART_TIMEOUT.as_secs())));
            (i, answer)
        });
    }
    let mut answers: Vec<Option<Result<pb::GetStatisticsResponse, String>>> =
        peers.iter().map(|_| None).collect();
    while let Some(done) = asked.join_next().await {
        if let Ok((i, answer)) = done {
            answers[i] = Some(answer);
        }
    }
    // In the directory's order, whatever order they answered in.
    peers
        .into_iter()
        .zip(answers)
        .map(|(node, a)| {
            (
                node,
                a.unwrap_or_else(|| Err("the call to this node failed inside this node".into())),
            )
        })
        .collect()
}

/// Peers asked for their statistics at the same time, at most.
const PEERS_AT_ONCE: usize = 16;

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
    /// The assertion of `caller`'s request `ctx`.
    fn of(ctx: &RequestCtx, caller: &Caller) -> Assertion {
        Assertion {
            request_id: ctx.request_id.clone(),
            participant: caller.participant.clone(),
            role: caller.role.to_string(),
            actor: ctx.actor.clone(),
            traceparent: format!(
                "00-{}-{}-01",
                ctx.trace.trace_id.hex(),
                ctx.trace.span_id.hex()
            ),
        }
    }

    /// The assertion of a call this node makes as itself (no participant):
    /// the request id, the acting employee and the trace of `ctx`.
    fn of_node(ctx: &RequestCtx) -> Assertion {
        Assertion {
            participant: String::new(),
            role: String::new(),
            ..Assertion::of(
                ctx,
                &Caller {
                    participant: String::new(),
                    role: Role::Municipality,
                    oin: None,
                    node: None,
                },
            )
        }
    }

    fn apply(&self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let md = r.metadata_mut();
        let mut put = |name: &'static str, v: &str| {
            if let Ok(v) = MetadataValue::try_from(v) {
                md.insert(name, v);
            }
        };
        put(REQUEST_ID_HEADER, &self.request_id);
        if !self.participant.is_empty() {
            put(ON_BEHALF_OF, &self.participant);
            put(ON_BEHALF_OF_ROLE, &self.role);
        }
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

/// The holding node's refusal, with its code and its message. A case the
/// node referred on (`CASE_REFERRED`) keeps the node it names, so the
/// caller learns the current holder, not only that its pointer is stale.
fn peer_refused(node: &str, s: &tonic::Status) -> ExchangeError {
    use tonic_types::StatusExt;
    if s.code() == tonic::Code::FailedPrecondition
        && let Some(info) = s.get_details_error_info()
        && info.reason == "CASE_REFERRED"
        && let Some(holder) = info.metadata.get("holding_node")
        && validate::node_id("holding_node", holder).is_ok()
    {
        return ExchangeError::Referred(holder.clone());
    }
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

/// Refers a case for its owner: `Exchange::refer_case` checks and
/// records; the case goes to the new node's `FederationService` over mTLS
/// with this node's certificate, asserting the owner, under this request's
/// id. The channel's TLS 1.3, to the key the directory pins for that node,
/// is what protects the case on the way (ARCHITECTURE.md, "Referral").
pub(crate) async fn refer_case(
    ex: &Exchange,
    ctx: &RequestCtx,
    r: ReferCase,
) -> Result<Recorded<String>, ExchangeError> {
    let to = r.to_node.clone();
    let now = ex.now();
    ex.refer_case(
        ctx,
        r,
        async |federation: &Federation, caller: &Caller, out: Outgoing| {
            let message = referral_message(out, now)?;
            let (channel, session) = federation.channel(&to).await.map_err(peer_unusable)?;
            let assertion = Assertion::of(ctx, caller);
            let mut client = pb::federation_service_client::FederationServiceClient::new(
                InterceptedService::new(channel, move |r| assertion.apply(r)),
            );
            client
                .accept_referral(message)
                .await
                .map_err(|s| match session.refusal() {
                    Some(refused) => peer_unusable(PeerError::Refused {
                        node: to.clone(),
                        serial: federation.serial(),
                        server_name: String::new(),
                        source: refused,
                    }),
                    None => peer_refused(&to, &s),
                })?;
            Ok(())
        },
    )
    .await
}

/// A case as it travels.
fn referral_message(
    out: Outgoing,
    now: crate::model::consent::Millis,
) -> Result<pb::AcceptReferralRequest, ExchangeError> {
    Ok(pb::AcceptReferralRequest {
        case_id: out.case_id,
        subject_ref: out.subject_ref,
        new_owner: out.new_owner,
        version: out.version,
        registered_at: Some(timestamp(out.created_at)),
        updated_at: Some(timestamp(out.updated_at)),
        data: Some(case_data(out.data)?),
        consents: out.consents.iter().map(|c| consent_pb(c, now)).collect(),
        pseudonyms: out
            .pseudonyms
            .into_iter()
            .map(|(recipient, pseudonym)| pb::IssuedPseudonym {
                recipient,
                pseudonym,
            })
            .collect(),
    })
}

/// A referred case as it arrives: shape and encodings checked here, what
/// the values mean in `Exchange::accept_referral`.
fn incoming(m: pb::AcceptReferralRequest) -> Result<Incoming, ExchangeError> {
    let data = m
        .data
        .ok_or_else(|| invalid("data", "data is required: a case moves whole"))?;
    let (data, subject_keys) = case_input(data)?;
    let time = |field: &str, t: Option<prost_types::Timestamp>| {
        t.ok_or_else(|| invalid(field, format!("{field} is required")))
            .and_then(|t| millis(field, &t))
    };
    let consents = m
        .consents
        .into_iter()
        .enumerate()
        .map(|(i, c)| consent_in(i, c))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Incoming {
        case: Outgoing {
            case_id: m.case_id,
            subject_ref: m.subject_ref,
            new_owner: m.new_owner,
            version: m.version,
            created_at: time("registered_at", m.registered_at)?,
            updated_at: time("updated_at", m.updated_at)?,
            data,
            consents,
            pseudonyms: m
                .pseudonyms
                .into_iter()
                .map(|p| (p.recipient, p.pseudonym))
                .collect(),
        },
        subject_keys,
    })
}

/// A consent as it moves with its case (the inverse of `consent_pb`; the
/// state is recomputed, the creation time is its first event's).
fn consent_in(i: usize, c: pb::Consent) -> Result<Consent, ExchangeError> {
    let field = |f: &str| format!("consents[{i}].{f}");
    validate::uuid(&field("consent_id"), &c.consent_id)?;
    validate::participant_id(&field("recorded_by"), &c.recorded_by)?;
    for p in &c.purposes {
        validate::participant_id(&field("purposes"), p)?;
    }
    let valid_from = c
        .valid_from
        .ok_or_else(|| invalid(&field("valid_from"), "valid_from is required"))
        .and_then(|t| millis(&field("valid_from"), &t))?;
    let valid_until = c
        .valid_until
        .map(|t| millis(&field("valid_until"), &t))
        .transpose()?;
    let events = c
        .events
        .into_iter()
        .map(|e| {
            let kind = match pb::consent_event::Kind::try_from(e.kind) {
                Ok(pb::consent_event::Kind::Given) => EventKind::Given,
                Ok(pb::consent_event::Kind::Withdrawn) => EventKind::Withdrawn,
                _ => return Err(invalid(&field("events"), "an event is given or withdrawn")),
            };
            let at =
                e.at.ok_or_else(|| invalid(&field("events"), "an event has a time"))
                    .and_then(|t| millis(&field("events"), &t))?;
            Ok(ConsentEvent {
                kind,
                at,
                by: e.by,
                note: e.note,
            })
        })
        .collect::<Result<Vec<_>, ExchangeError>>()?;
    Ok(Consent {
        id: c.consent_id,
        case_id: c.case_id,
        recorded_by: c.recorded_by,
        recipients: recipients(c.recipients)?,
        categories: categories(&field("categories"), &c.categories)?,
        purposes: c.purposes,
        valid_from,
        valid_until,
        evidence_ref: c.evidence_ref,
        created_at: events.first().map_or(valid_from, |e| e.at),
        events,
    })
}

/// A report part's request as it arrives: shape here, meaning in
/// `Exchange::report_case_accesses`.
fn part_query(m: pb::ReportCaseAccessesRequest) -> Result<PartQuery, ExchangeError> {
    Ok(PartQuery {
        case_id: m.case_id,
        referral_id: (!m.referral_id.is_empty()).then_some(m.referral_id),
        request_ids: m.request_ids,
        cosignatures: m.cosignatures,
    })
}

/// Asks node `node` for its part of a subject access report (the home
/// node's side of `ReportCaseAccesses`), as this node, under the report's
/// request id and with the acting officer, over mTLS to the key the
/// directory pins. At most [`PART_TIMEOUT`] per node.
pub(crate) async fn ask_part(
    ctx: &RequestCtx,
    federation: Arc<Federation>,
    node: String,
    q: PartQuery,
) -> Result<Part, ExchangeError> {
    let node = node.as_str();
    let call = async {
        let (channel, session) = federation.channel(node).await.map_err(peer_unusable)?;
        let assertion = Assertion::of_node(ctx);
        let mut client = pb::federation_service_client::FederationServiceClient::new(
            InterceptedService::new(channel, move |r| assertion.apply(r)),
        );
        let answer = client
            .report_case_accesses(pb::ReportCaseAccessesRequest {
                case_id: q.case_id,
                referral_id: q.referral_id.unwrap_or_default(),
                request_ids: q.request_ids,
                cosignatures: q.cosignatures,
            })
            .await
            .map_err(|s| match session.refusal() {
                Some(refused) => peer_unusable(PeerError::Refused {
                    node: node.to_string(),
                    serial: federation.serial(),
                    server_name: String::new(),
                    source: refused,
                }),
                None => peer_refused(node, &s),
            })?
            .into_inner();
        part_of(node, answer)
    };
    tokio::time::timeout(PART_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| {
            Err(ExchangeError::PeerNode {
                code: Code::Unavailable,
                message: format!(
                    "node '{node}' did not answer within {} s",
                    PART_TIMEOUT.as_secs()
                ),
            })
        })
}

/// How long a report (or network statistics) waits for one node's part.
const PART_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// A node's answer as the gateway checks it.
fn part_of(node: &str, m: pb::ReportCaseAccessesResponse) -> Result<Part, ExchangeError> {
    let entries = m
        .entries
        .into_iter()
        .map(|e| {
            let hashes = e
                .hashes
                .iter()
                .map(|h| <[u8; 32]>::try_from(h.as_slice()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| peer_malformed(node))?;
            Ok(ProvenLeaf {
                index: e.index,
                leaf: e.leaf,
                hashes,
            })
        })
        .collect::<Result<Vec<_>, ExchangeError>>()?;
    Ok(Part {
        entries,
        checkpoint: (!m.checkpoint.is_empty()).then_some((m.checkpoint, m.tree_size)),
        links: m
            .links
            .into_iter()
            .map(|l| Link {
                node: l.node,
                request_id: l.request_id,
                referral: l.referral,
            })
            .collect(),
        latest: m.latest_checkpoint,
    })
}

#[tonic::async_trait]
impl pb::federation_service_server::FederationService for Api {
    async fn report_case_accesses(
        &self,
        req: tonic::Request<pb::ReportCaseAccessesRequest>,
    ) -> Result<tonic::Response<pb::ReportCaseAccessesResponse>, tonic::Status> {
        let asking = req.extensions().get::<FromNode>().map(|n| n.0.clone());
        self.call("ReportCaseAccesses", req, part_query, async |ex, ctx, q| {
            let Some(asking) = asking else {
                return Err(ExchangeError::Forbidden(
                    "only a federation node asks for a report part, as itself".into(),
                ));
            };
            ex.report_case_accesses(ctx, &asking, q)
                .await?
                .try_map(|part| {
                    let (checkpoint, tree_size) = part.checkpoint.unwrap_or_default();
                    Ok(pb::ReportCaseAccessesResponse {
                        entries: part
                            .entries
                            .into_iter()
                            .map(|e| pb::ReportedCaseAccess {
                                index: e.index,
                                leaf: e.leaf,
                                hashes: e.hashes.iter().map(|h| h.to_vec()).collect(),
                            })
                            .collect(),
                        checkpoint,
                        tree_size,
                        links: part
                            .links
                            .into_iter()
                            .map(|l| pb::CaseAccessLink {
                                node: l.node,
                                request_id: l.request_id,
                                referral: l.referral,
                            })
                            .collect(),
                        access_record_id: ctx.request_id.clone(),
                        latest_checkpoint: part.latest,
                    })
                })
        })
        .await
    }

    async fn accept_referral(
        &self,
        req: tonic::Request<pb::AcceptReferralRequest>,
    ) -> Result<tonic::Response<pb::AcceptReferralResponse>, tonic::Status> {
        self.call("AcceptReferral", req, incoming, async |ex, ctx, i| {
            ex.accept_referral(ctx, i).await?.try_map(|()| {
                Ok(pb::AcceptReferralResponse {
                    access_record_id: ctx.request_id.clone(),
                })
            })
        })
        .await
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
