//! The gRPC face of a node: the `sluis.v1` services (`CaseService`,
//! `ConsentService`, `AuditService`) with `grpc.health.v1` and reflection.
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
//! - every response, success or error, carries `x-request-id`, the id of
//!   its access record; refusals by the transport itself are recorded too
//!   ([`TransportRefusals`]);
//! - no module outside `rpc` names a protobuf type: the gateway receives
//!   domain values and category payloads as opaque bytes.
//!
//! It exposes [`router`] and [`Health`] for the node's wiring, the metadata
//! names, and [`proto`] for clients and tests.

mod audit;
mod case;
mod client;
mod consent;
mod convert;
pub mod proto;
mod refusals;
mod status;

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
pub use refusals::TransportRefusals;

pub const REQUEST_ID_HEADER: &str = "x-request-id";
pub const ACTOR_HEADER: &str = "x-sluis-actor";

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
        Req: Message,
    {
        let request_id = uuid::Uuid::now_v7().to_string();
        let Some(info) = req.extensions().get::<ConnectionInfo>().cloned() else {
            // Only reachable if the server is wired without our TLS layer.
            return Err(with_id(
                Status::unauthenticated("no authenticated connection"),
                &request_id,
            ));
        };
        let mut ctx = RequestCtx {
            request_id: request_id.clone(),
            peer: info.peer,
            actor: None,
        };
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
                return Err(ExchangeError::TooLarge(format!(
                    "request is {size} bytes; this node accepts at most {} bytes per message",
                    self.max_message_bytes
                )));
            }
            convert(req.into_inner())
        };
        let dom = match outcome.await {
            Ok(d) => d,
            Err(e) => {
                let e = self.ex.refuse(&ctx, method, e).await;
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

/// The services a node serves, behind the layer that records refusals by
/// the transport.
pub type Routes = Router<Stack<TransportRefusals, Identity>>;

/// The node's gRPC services on `server`: the three `sluis.v1` services,
/// `grpc.health.v1` and server reflection, behind [`TransportRefusals`].
/// tonic refuses a message beyond 4 × `max_message_bytes` before decoding
/// it (the layer records that); below, `Api::call` refuses oversized
/// messages with `RESOURCE_EXHAUSTED` and an access record.
///
/// Errors: only if the embedded descriptors cannot be read for reflection.
pub async fn router(
    server: Server,
    ex: Arc<Exchange>,
    max_message_bytes: usize,
) -> Result<(Routes, Health), tonic_reflection::server::Error> {
    let api = Api::new(ex.clone(), max_message_bytes);
    let hard_cap = max_message_bytes.saturating_mul(4);
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let health = Health(reporter);
    health.set(true).await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let routes = server
        .layer(TransportRefusals::new(ex, max_message_bytes))
        .add_service(
            pb::case_service_server::CaseServiceServer::new(api.clone())
                .max_decoding_message_size(hard_cap),
        )
        .add_service(
            pb::consent_service_server::ConsentServiceServer::new(api.clone())
                .max_decoding_message_size(hard_cap),
        )
        .add_service(
            pb::audit_service_server::AuditServiceServer::new(api)
                .max_decoding_message_size(hard_cap),
        )
        .add_service(health_service)
        .add_service(reflection);
    Ok((routes, health))
}

/// The node's `grpc.health.v1` answers, so a load balancer stops sending
/// requests that would fail closed anyway.
#[derive(Clone)]
pub struct Health(tonic_health::server::HealthReporter);

impl Health {
    /// Follows the database's reachability, checked every second, so that a
    /// load balancer stops sending requests that would fail closed anyway.
    /// Runs until the task is dropped.
    pub async fn follow(self, store: crate::store::Store) {
        let mut serving = true;
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            let up = tokio::time::timeout(std::time::Duration::from_secs(2), store.ping())
                .await
                .unwrap_or(false);
            if up == serving {
                continue;
            }
            serving = up;
            if up {
                tracing::info!("database reachable again; serving");
            } else {
                tracing::error!("database unreachable; requests fail closed until it returns");
            }
            self.set(up).await;
        }
    }

    /// Reports the node (service "") and each `sluis.v1` service as
    /// serving or not.
    pub async fn set(&self, serving: bool) {
        use pb::audit_service_server::AuditServiceServer as Audit;
        use pb::case_service_server::CaseServiceServer as Cases;
        use pb::consent_service_server::ConsentServiceServer as Consents;
        let r = &self.0;
        if serving {
            r.set_service_status("", tonic_health::ServingStatus::Serving)
                .await;
            r.set_serving::<Cases<Api>>().await;
            r.set_serving::<Consents<Api>>().await;
            r.set_serving::<Audit<Api>>().await;
        } else {
            r.set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
            r.set_not_serving::<Cases<Api>>().await;
            r.set_not_serving::<Consents<Api>>().await;
            r.set_not_serving::<Audit<Api>>().await;
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
        let set = prost_types::FileDescriptorSet::decode(super::proto::FILE_DESCRIPTOR_SET)
            .expect("the embedded descriptors decode");
        let mut methods = 0;
        for file in set.file {
            for service in file.service {
                for m in service.method {
                    let name = m.name.unwrap_or_default();
                    assert!(
                        crate::gateway::validate::METHODS.contains(&name.as_str()),
                        "{name} is missing from gateway::validate::METHODS"
                    );
                    methods += 1;
                }
            }
        }
        assert!(methods >= 13, "{methods} methods");
    }
}
