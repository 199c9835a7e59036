//! The gRPC face of witnessing between federation nodes (ARCHITECTURE.md,
//! "Witnessing"): `WitnessService` as the federation listener serves it to
//! peer nodes (admitted by `federated::Gate` as the calling node itself),
//! and one witnessing round of this node over its peers ([`round`]).

use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;

use crate::federation::witness::WitnessOutcome;
use crate::gateway::Exchange;
use crate::rpc::convert::invalid;
use crate::rpc::proto::v1 as pb;
use crate::rpc::{Api, REQUEST_ID_HEADER};

/// One witnessing round: every other node of the running directory, one
/// after the other, fetched, judged and cosigned
/// (`Exchange::witness_peer`). Each call goes over the node-to-node mTLS
/// channel to the key the directory pins for the peer, under a request id
/// of its own that the peer records. Nothing when this node has no witness
/// key or the directory is not valid now (the outcome says so).
pub(crate) async fn round(ex: &Exchange) -> Vec<(String, WitnessOutcome)> {
    let Some(federation) = ex.federation() else {
        return Vec::new();
    };
    if federation.witness().is_none() {
        return Vec::new();
    }
    let _one_at_a_time = federation.witnessing.lock().await;
    let running = match federation.current(ex.now()) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "no witnessing round: the federation directory is not valid now");
            return Vec::new();
        }
    };
    let mut outcomes = Vec::new();
    for peer in running
        .directory
        .nodes
        .iter()
        .filter(|n| n.id != federation.node_id())
    {
        let client = async || {
            let (channel, _) = federation
                .channel(&peer.id)
                .await
                .map_err(|e| e.to_string())?;
            let id = uuid::Uuid::now_v7().to_string();
            Ok::<_, String>(pb::witness_service_client::WitnessServiceClient::new(
                InterceptedService::new(channel, move |mut r: tonic::Request<()>| {
                    if let Ok(v) = MetadataValue::try_from(id.as_str()) {
                        r.metadata_mut().insert(REQUEST_ID_HEADER, v);
                    }
                    Ok(r)
                }),
            ))
        };
        let said = |s: tonic::Status| {
            format!(
                "node '{}' answered {:?}: {}",
                peer.id,
                s.code(),
                s.message()
            )
        };
        let outcome = ex
            .witness_peer(
                peer,
                async |old_size| {
                    let got = client()
                        .await?
                        .get_witness_checkpoint(pb::GetWitnessCheckpointRequest { old_size })
                        .await
                        .map_err(said)?
                        .into_inner();
                    Ok((got.checkpoint, got.consistency_proof))
                },
                async |checkpoint, cosignature| {
                    let got = client()
                        .await?
                        .add_cosignature(pb::AddCosignatureRequest {
                            checkpoint,
                            cosignature,
                        })
                        .await
                        .map_err(said)?
                        .into_inner();
                    Ok(got.cosignatures)
                },
            )
            .await;
        if let WitnessOutcome::Failed(why) = &outcome {
            tracing::warn!(peer = %peer.id, %why, "witnessing a peer failed; tried again next round");
        }
        outcomes.push((peer.id.clone(), outcome));
    }
    outcomes
}

/// Rounds every `interval`, the first one after the first interval.
pub(crate) async fn every(interval: std::time::Duration, ex: std::sync::Arc<Exchange>) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        round(&ex).await;
    }
}

fn checked_cosignature(
    m: pb::AddCosignatureRequest,
) -> Result<(String, String), crate::gateway::ExchangeError> {
    if m.checkpoint.is_empty() {
        return Err(invalid(
            "checkpoint",
            "checkpoint is required: the signed checkpoint cosigned",
        ));
    }
    if m.cosignature.is_empty() {
        return Err(invalid(
            "cosignature",
            "cosignature is required: one signature line '— <name> <base64>' and a newline",
        ));
    }
    Ok((m.checkpoint, m.cosignature))
}

#[tonic::async_trait]
impl pb::witness_service_server::WitnessService for Api {
    async fn get_witness_checkpoint(
        &self,
        req: tonic::Request<pb::GetWitnessCheckpointRequest>,
    ) -> Result<tonic::Response<pb::GetWitnessCheckpointResponse>, tonic::Status> {
        self.call(
            "GetWitnessCheckpoint",
            req,
            |m| Ok(m.old_size),
            async |ex, ctx, old_size| {
                Ok(ex.witness_checkpoint(ctx, old_size).await?.map(|w| {
                    pb::GetWitnessCheckpointResponse {
                        checkpoint: w.checkpoint.note,
                        consistency_proof: w.proof.iter().map(|h| h.to_vec()).collect(),
                        access_record_id: ctx.request_id.clone(),
                    }
                }))
            },
        )
        .await
    }

    async fn add_cosignature(
        &self,
        req: tonic::Request<pb::AddCosignatureRequest>,
    ) -> Result<tonic::Response<pb::AddCosignatureResponse>, tonic::Status> {
        self.call(
            "AddCosignature",
            req,
            checked_cosignature,
            async |ex, ctx, (checkpoint, line)| {
                Ok(ex
                    .add_cosignature(ctx, checkpoint, line)
                    .await?
                    .map(|held| pb::AddCosignatureResponse {
                        cosignatures: held,
                        access_record_id: ctx.request_id.clone(),
                    }))
            },
        )
        .await
    }
}
