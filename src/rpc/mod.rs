//! The gRPC face of a node: the `sluis.v1` services (`CaseService`,
//! `ConsentService`, `AuditService`, `StatisticsService`) with
//! `grpc.health.v1` and reflection.
//!
//! What it promises:
//!
//! - every method takes one path, `Api::call`: a request id; the typed
//!   peer the TLS layer attached (never a certificate); metadata and size;
//!   the message's *shape* (presence, enum codes, counts, timestamps in
//!   range); the gateway; and one status map (`status.rs`);
//! - what a value means (a BSN, a date, an id) is not decided here but by
//!   the gateway ([`crate::gateway::validate`]), the same for every method;
//! - a response is built only from a [`Recorded`] answer, so none leaves
//!   before its access record is durable;
//! - every response on the listener, success or error, from any service,
//!   carries `x-request-id`, the id of its one access record; every service
//!   (health and reflection too) applies the same identity rules; answers
//!   tonic gives by itself before a handler runs (undecodable messages,
//!   unknown methods, unsupported compression, oversized messages) are
//!   refusals with the right status, recorded like any other (`Edge`);
//! - a request the edge admits runs to its end — handler and record —
//!   whatever its caller does (a deadline that passes, a reset stream, a
//!   closed connection), and at most `max_requests_in_flight` run at once,
//!   a share of them per caller ([`InFlight`]); a request whose message is
//!   not complete within `message_timeout_ms` ends before any handler;
//! - the log's C2SP tlog-tiles read API (`tiles.rs`) is served on the same
//!   listener, behind the same edge: HTTP GETs of the checkpoint, hash
//!   tiles and entry bundles;
//! - no module outside `rpc` names a protobuf type: the gateway receives
//!   domain values and category payloads as opaque bytes.
//!
//! To the node it exposes `router` and `Health` (crate-only); to clients and
//! tests, [`Clients`], [`proto`], the [`REQUEST_ID_HEADER`] name and
//! [`get_statistics`].

mod audit;
mod case;
mod client;
mod consent;
mod convert;
pub(crate) mod federated;
mod in_flight;
pub(crate) mod officer;
pub mod proto;
mod refusals;
mod stats;
mod status;
mod tiles;
mod trace;
pub(crate) mod witness;

use std::sync::Arc;

use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::transport::Server;
use tonic::transport::server::Router;
use tonic::{Request, Response, Status};
use tower::layer::util::{Identity, Stack};

use crate::gateway::{Exchange, ExchangeError, RequestCtx, validate};
use crate::net::identity::Peer;
use crate::net::tls::ConnectionInfo;
use crate::rpc::proto::v1 as pb;
use crate::rpc::status::{status, with_id};
use crate::tlog::Recorded;

pub use client::Clients;
pub(crate) use convert::identity_names;
pub use in_flight::InFlight;
pub(crate) use refusals::Edge;
pub use stats::{StatisticsAnswer, StatisticsAsk, get_statistics};

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id `Edge` gave a request, in its extensions: the id of its one
/// access record and of its answer's `x-request-id`.
#[derive(Clone, Debug)]
pub(crate) struct RequestId(pub(crate) String);
pub(crate) const ACTOR_HEADER: &str = "x-sluis-actor";

/// The state every service shares: the gateway and the message limit.
#[derive(Clone)]
pub(crate) struct Api {
    ex: Arc<Exchange>,
    max_message_bytes: usize,
}

impl Api {
    fn new(ex: Arc<Exchange>, max_message_bytes: usize) -> Api {
        Api {
            ex,
            max_message_bytes,
        }
    }

    /// The one path of every method. `convert` turns the message into the
    /// domain request (its errors are refused and audited like any other);
    /// `run` calls the exchange, which audits itself, and must answer with
    /// what the exchange returned as [`Recorded`]: a response whose access
    /// record is not durable does not type-check.
    pub(crate) async fn call<Req, Dom, Resp>(
        &self,
        method: &'static str,
        req: Request<Req>,
        convert: impl FnOnce(Req) -> Result<Dom, ExchangeError>,
        run: impl AsyncFnOnce(&Exchange, &RequestCtx, Dom) -> Result<Recorded<Resp>, ExchangeError>,
    ) -> Result<Response<Resp>, Status>
    where
        Req: Message + convert::NamesSubject,
    {
        // The edge gave the request its id (it may have to answer with it
        // before this method does: a deadline that passes).
        if let Some(started) = req.extensions().get::<refusals::Started>() {
            started.0.notify_one();
        }
        let request_id = req
            .extensions()
            .get::<RequestId>()
            .map_or_else(|| uuid::Uuid::now_v7().to_string(), |r| r.0.clone());
        let Some(info) = req.extensions().get::<ConnectionInfo>().cloned() else {
            // Only reachable if the server is wired without our TLS layer.
            return Err(with_id(
                Status::unauthenticated("no authenticated connection"),
                &request_id,
            ));
        };
        // The edge made the trace context; a request that did not pass
        // it (not reachable as the node is wired) gets one the same way.
        let trace = req
            .extensions()
            .get::<crate::model::trace::TraceContext>()
            .cloned()
            .unwrap_or_else(|| trace::at_edge(req.metadata().as_ref(), &info.peer, None));
        let mut ctx = RequestCtx {
            request_id: request_id.clone(),
            peer: info.peer,
            actor: None,
            trace,
        };
        // What the message names of a subject, for a refusal's record.
        let named = convert::NamesSubject::named(req.get_ref());
        let outcome = async {
            info.cert
                .still_valid()
                .map_err(ExchangeError::CertificateNoLongerValid)?;
            ctx.actor = actor(&req)?;
            if matches!(ctx.peer, Peer::Unregistered { .. }) {
                return Err(ExchangeError::Unregistered);
            }
            let size = req.get_ref().encoded_len();
            if size > self.max_message_bytes {
                return Err(ExchangeError::TooLarge {
                    size: Some(size),
                    max: self.max_message_bytes,
                });
            }
            convert(req.into_inner())
        };
        let dom = match outcome.await {
            Ok(d) => d,
            Err(e) => {
                let e = self.ex.refuse(&ctx, method, e, named).await;
                return Err(status(e, &request_id));
            }
        };
        match run(&self.ex, &ctx, dom).await {
            Ok(resp) => {
                let mut r = Response::new(resp.into_inner());
                if let Ok(v) = MetadataValue::try_from(request_id.as_str()) {
                    r.metadata_mut().insert(REQUEST_ID_HEADER, v);
                }
                Ok(r)
            }
            Err(e) => Err(status(e, &request_id)),
        }
    }
}

/// The acting employee from metadata: optional; if given, as
/// [`validate::actor`] says (bytes that are not text fail it too).
fn actor<T>(req: &Request<T>) -> Result<Option<String>, ExchangeError> {
    let Some(v) = req.metadata().get(ACTOR_HEADER) else {
        return Ok(None);
    };
    // Bytes that are not visible ASCII fail the check as an empty value does.
    let s = v.to_str().unwrap_or("");
    validate::actor(ACTOR_HEADER, s)?;
    Ok(Some(s.to_string()))
}

/// The services a node serves, behind [`Edge`].
pub(crate) type Routes = Router<Stack<Edge, Identity>>;

/// The encoded descriptors of every service [`router`] serves: reflection
/// serves them, and [`Edge`] names every method in its records by them.
/// The services the agency listener serves (those its router adds): a
/// method of another (the federation listener's) is unknown there.
const SERVED: &[&str] = &[
    "sluis.v1.CaseService",
    "sluis.v1.ConsentService",
    "sluis.v1.AuditService",
    "sluis.v1.StatisticsService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

const DESCRIPTOR_SETS: &[&[u8]] = &[
    proto::FILE_DESCRIPTOR_SET,
    tonic_health::pb::FILE_DESCRIPTOR_SET,
    tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
    tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
];

/// Why the router could not be built: the embedded descriptors did not
/// read (a build defect).
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("gRPC server reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("embedded service descriptors: {0}")]
    Descriptors(#[from] prost::DecodeError),
}

/// The node's gRPC services on `server`: the four `sluis.v1` services,
/// `grpc.health.v1` and server reflection (v1 and v1alpha), all behind
/// [`Edge`], which applies the identity rules to every service and records
/// every answer that does not come from [`Api::call`], and runs every
/// admitted request to its end under a permit of `in_flight`. Every
/// service's decoder refuses a message beyond `max_message_bytes` before
/// buffering more of it (the edge records that as `RESOURCE_EXHAUSTED`), so
/// the messages in hand are at most `max_requests_in_flight` ×
/// `max_message_bytes`; `Api::call` checks a decoded message's size again.
///
/// Errors: only if the embedded descriptors cannot be read.
pub(crate) async fn router(
    server: Server,
    ex: Arc<Exchange>,
    max_message_bytes: usize,
    message_timeout: std::time::Duration,
    in_flight: InFlight,
) -> Result<(Routes, Health), RouterError> {
    let api = Api::new(ex.clone(), max_message_bytes);
    let cap = max_message_bytes;
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let health = Health(reporter);
    health.set(true).await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?.max_decoding_message_size(cap);
    let reflection_v1alpha = reflection().build_v1alpha()?.max_decoding_message_size(cap);
    let health_service = health_service.max_decoding_message_size(cap);
    let edge = Edge::new(
        ex,
        max_message_bytes,
        message_timeout,
        in_flight,
        DESCRIPTOR_SETS,
        Some(SERVED),
    )?;
    // Every service takes gzip-compressed requests and compresses its
    // answers for a client that says it accepts gzip (grpc-accept-encoding).
    // The decoding cap applies to the decompressed message.
    use tonic::codec::CompressionEncoding::Gzip;
    let routes = server
        .layer(edge)
        .add_service(
            pb::case_service_server::CaseServiceServer::new(api.clone())
                .max_decoding_message_size(cap)
                .accept_compressed(Gzip)
                .send_compressed(Gzip),
        )
        .add_service(
            pb::consent_service_server::ConsentServiceServer::new(api.clone())
                .max_decoding_message_size(cap)
                .accept_compressed(Gzip)
                .send_compressed(Gzip),
        )
        .add_service(
            pb::audit_service_server::AuditServiceServer::new(api.clone())
                .max_decoding_message_size(cap)
                .accept_compressed(Gzip)
                .send_compressed(Gzip),
        )
        .add_service(
            pb::statistics_service_server::StatisticsServiceServer::new(api)
                .max_decoding_message_size(cap)
                .accept_compressed(Gzip)
                .send_compressed(Gzip),
        )
        .add_service(health_service.accept_compressed(Gzip).send_compressed(Gzip))
        .add_service(reflection_v1.accept_compressed(Gzip).send_compressed(Gzip))
        .add_service(
            reflection_v1alpha
                .accept_compressed(Gzip)
                .send_compressed(Gzip),
        );
    Ok((routes, health))
}

/// The plain listener's services (`[probes]`): `grpc.health.v1`, with the
/// same answers as on the mTLS listener, and server reflection v1 and
/// v1alpha — nothing else, so the data and audit services stay mTLS-only.
/// No [`Edge`]: a probe is no access to anyone's data and is not recorded.
///
/// Errors: only if the embedded descriptors cannot be read.
pub(crate) fn probes_router(
    server: Server,
    health: &Health,
    max_message_bytes: usize,
) -> Result<Router, RouterError> {
    let cap = max_message_bytes;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let health_service = tonic_health::pb::health_server::HealthServer::new(
        tonic_health::server::HealthService::from_health_reporter(health.0.clone()),
    )
    .max_decoding_message_size(cap);
    let mut server = server;
    Ok(server
        .add_service(health_service)
        .add_service(reflection().build_v1()?.max_decoding_message_size(cap))
        .add_service(reflection().build_v1alpha()?.max_decoding_message_size(cap)))
}

/// The node's `grpc.health.v1` answers, so a load balancer stops sending
/// requests that would fail closed anyway.
#[derive(Clone)]
pub(crate) struct Health(tonic_health::server::HealthReporter);

/// The health service name that says whether this node's peers' logs are
/// one log each (`grpc.health.v1.Health/Check` with this service):
/// `NOT_SERVING` once a witness alarm is raised or kept (`sluis audit
/// witness-alarms` shows the evidence); `SERVING` otherwise. Only on a node
/// in a federation.
pub const WITNESS_HEALTH: &str = "sluis.witness";

impl Health {
    /// Follows, every second, whether requests can be served: the
    /// database reachable and the access log taking records (its writer
    /// running, its last write — a request's or the writer's own trial
    /// write — gone through: `AuditLog::down`) — a request that cannot be recorded
    /// fails closed, so a load balancer should send it elsewhere. Each
    /// change is logged once, with its reason. Runs until the task is
    /// dropped.
    pub(crate) async fn follow(self, store: crate::store::Store, ex: Arc<Exchange>) {
        let mut down: Option<&'static str> = None;
        let mut alarmed_was = None;
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            // A peer's log forked or went back: this node serves on, and
            // says so under its own health name.
            if let Some(f) = ex.federation() {
                let alarmed = f.alarmed();
                if alarmed_was != Some(alarmed) {
                    let status = if alarmed {
                        tonic_health::ServingStatus::NotServing
                    } else {
                        tonic_health::ServingStatus::Serving
                    };
                    self.0.set_service_status(WITNESS_HEALTH, status).await;
                    alarmed_was = Some(alarmed);
                }
            }
            let db_up = tokio::time::timeout(std::time::Duration::from_secs(2), store.ping())
                .await
                .unwrap_or(false);
            let now = if db_up {
                ex.log_down()
            } else {
                Some("the database is unreachable")
            };
            if now == down {
                continue;
            }
            match (down, now) {
                (_, Some(reason)) => tracing::error!(
                    reason,
                    "NOT_SERVING: {reason}; requests fail closed until it recovers"
                ),
                (Some(was), None) => {
                    tracing::info!(recovered = was, "SERVING again: {was} no longer")
                }
                (None, None) => {}
            }
            down = now;
            self.set(down.is_none()).await;
        }
    }

    /// Reports the node (service "") and each `sluis.v1` service as
    /// serving or not.
    pub(crate) async fn set(&self, serving: bool) {
        use pb::audit_service_server::AuditServiceServer as Audit;
        use pb::case_service_server::CaseServiceServer as Cases;
        use pb::consent_service_server::ConsentServiceServer as Consents;
        use pb::statistics_service_server::StatisticsServiceServer as Statistics;
        let r = &self.0;
        if serving {
            r.set_service_status("", tonic_health::ServingStatus::Serving)
                .await;
            r.set_serving::<Cases<Api>>().await;
            r.set_serving::<Consents<Api>>().await;
            r.set_serving::<Audit<Api>>().await;
            r.set_serving::<Statistics<Api>>().await;
        } else {
            r.set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
            r.set_not_serving::<Cases<Api>>().await;
            r.set_not_serving::<Consents<Api>>().await;
            r.set_not_serving::<Audit<Api>>().await;
            r.set_not_serving::<Statistics<Api>>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    /// A log filter refuses a method name it does not know, so every
    /// method the node serves must be known to it.
    #[test]
    fn every_served_method_is_a_known_log_method() {
        // Every method of every service the router serves, named as the
        // edge names it in its records (`sluis.v1` by method, the others by
        // service and method).
        let mut methods = 0;
        for set in super::DESCRIPTOR_SETS {
            let set = prost_types::FileDescriptorSet::decode(*set)
                .expect("the embedded descriptors decode");
            for file in set.file {
                let package = file.package().to_string();
                for service in file.service {
                    for m in &service.method {
                        let name = if package == "sluis.v1" {
                            m.name().to_string()
                        } else {
                            format!("{package}.{}/{}", service.name(), m.name())
                        };
                        assert!(
                            crate::gateway::validate::METHODS.contains(&name.as_str()),
                            "{name} is missing from gateway::validate::METHODS"
                        );
                        methods += 1;
                    }
                }
            }
        }
        assert!(methods >= 18, "{methods} methods");
    }
}
