//! The baseline: bare tonic serving `sluis.v1.CaseService/GetCase` behind
//! the very same TLS as the gateway — `sluis::net::tls::server_config` (TLS 1.3
//! only, client certificate required, CRLs enforced) and the same accept
//! loop (`sluis::net::tls::serve_tls`: handshake per task under a timeout, the
//! certificate mapped to a participant once per connection) — and answering
//! every call with the answer the gateway gave that participant, byte for
//! byte the same size, plus the same `x-request-id` header.
//!
//! What it leaves out is exactly what the comparison prices: no policy,
//! no consent, no pseudonyms, no decryption, no database, no access log.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use prost::Message;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::transport::Server;
use tonic::{Request, Response, Status};

use sluis::net::identity::{Peer, Registry};
use sluis::net::tls::{self, ConnectionInfo};
use sluis::rpc::proto::v1 as pb;

/// The answers to replay, per participant id (protobuf, base64), as the
/// gateway gave them.
#[derive(Serialize, Deserialize)]
pub struct Answers {
    pub by_participant: HashMap<String, String>,
}

impl Answers {
    pub fn new(answers: &[(String, pb::GetCaseResponse)]) -> Answers {
        Answers {
            by_participant: answers
                .iter()
                .map(|(p, r)| (p.clone(), B64.encode(r.encode_to_vec())))
                .collect(),
        }
    }
}

struct Baseline {
    answers: HashMap<String, pb::GetCaseResponse>,
    fallback: pb::GetCaseResponse,
    request_id: MetadataValue<tonic::metadata::Ascii>,
}

#[tonic::async_trait]
impl pb::case_service_server::CaseService for Baseline {
    async fn register_case(
        &self,
        _: Request<pb::RegisterCaseRequest>,
    ) -> Result<Response<pb::RegisterCaseResponse>, Status> {
        Err(Status::unimplemented("the baseline only answers GetCase"))
    }

    async fn update_case(
        &self,
        _: Request<pb::UpdateCaseRequest>,
    ) -> Result<Response<pb::UpdateCaseResponse>, Status> {
        Err(Status::unimplemented("the baseline only answers GetCase"))
    }

    async fn get_case(
        &self,
        req: Request<pb::GetCaseRequest>,
    ) -> Result<Response<pb::GetCaseResponse>, Status> {
        let answer = match req.extensions().get::<ConnectionInfo>().map(|c| &c.peer) {
            Some(Peer::Registered(c)) => self.answers.get(&c.participant),
            _ => None,
        }
        .unwrap_or(&self.fallback);
        let mut r = Response::new(answer.clone());
        r.metadata_mut()
            .insert(sluis::rpc::REQUEST_ID_HEADER, self.request_id.clone());
        Ok(r)
    }

    async fn find_cases(
        &self,
        _: Request<pb::FindCasesRequest>,
    ) -> Result<Response<pb::FindCasesResponse>, Status> {
        Err(Status::unimplemented("the baseline only answers GetCase"))
    }

    async fn refer_case(
        &self,
        _: Request<pb::ReferCaseRequest>,
    ) -> Result<Response<pb::ReferCaseResponse>, Status> {
        Err(Status::unimplemented("the baseline only answers GetCase"))
    }
}

/// `serve-baseline`: listens on 127.0.0.1 with the node's TLS files and
/// participants from `config`, replaying `answers`.
pub async fn serve(config: &Path, answers: &Path) -> anyhow::Result<()> {
    let config = sluis::config::Config::load(config)?;
    let text = std::fs::read_to_string(answers)
        .with_context(|| format!("cannot read {}", answers.display()))?;
    let stored: Answers = serde_json::from_str(&text)?;
    let mut decoded = HashMap::new();
    for (p, b) in stored.by_participant {
        let r = pb::GetCaseResponse::decode(B64.decode(b)?.as_slice())?;
        decoded.insert(p, r);
    }
    let fallback = decoded
        .values()
        .next()
        .cloned()
        .context("no answers to replay")?;
    let request_id = fallback
        .access_record_id
        .parse()
        .unwrap_or_else(|_| MetadataValue::from_static("-"));
    let service = Baseline {
        answers: decoded,
        fallback,
        request_id,
    };

    let (_tls_tx, tls_rx) = watch::channel(tls::server_config(&config.tls_files(), None)?);
    let (_reg_tx, reg_rx) = watch::channel(Arc::new(Registry::new(&config.participants)));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let incoming = tls::serve_tls(
        listener,
        tls_rx,
        reg_rx,
        config.accept_settings(),
        sluis::net::sources::Sources::new(config.source_limits()),
        Arc::new(|_| {}),
    );
    crate::procs::announce(addr)?;
    Server::builder()
        .add_service(pb::case_service_server::CaseServiceServer::new(service))
        .serve_with_incoming_shutdown(ReceiverStream::new(incoming), crate::procs::stdin_closed())
        .await?;
    Ok(())
}
