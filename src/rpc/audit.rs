//! `AuditService`: the access log for this node's privacy officers —
//! queries, the subject access report, checkpoints and proofs, and the
//! alerts of emergency accesses with their review.

use tonic::{Request, Response, Status};

use crate::gateway::emergency::Alert;
use crate::gateway::network_report::AskPart;
use crate::gateway::oversight::SubjectRef;
use crate::rpc::Api;
use crate::rpc::convert::{
    basis_pb, checkpoint_pb, decision_filter, decision_pb, entry_pb, invalid, millis, nonempty,
    role_filter, role_pb, timestamp, verdict, withheld_pb,
};
use crate::rpc::proto::v1 as pb;
use crate::rpc::status::status;
use crate::store::LogFilter;
use crate::tlog::proof::LeafRef;

type EntryStream = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<pb::QueryAccessResponse, Status>> + Send>,
>;

#[tonic::async_trait]
impl pb::audit_service_server::AuditService for Api {
    type QueryAccessStream = EntryStream;

    async fn query_access(
        &self,
        req: Request<pb::QueryAccessRequest>,
    ) -> Result<Response<EntryStream>, Status> {
        self.call(
            "QueryAccess",
            req,
            |m| {
                let filter = LogFilter {
                    since: m.since.as_ref().map(|t| millis("since", t)).transpose()?,
                    until: m.until.as_ref().map(|t| millis("until", t)).transpose()?,
                    caller: nonempty(m.caller),
                    role: role_filter("role", m.role)?.map(|r| r.as_str().to_string()),
                    method: nonempty(m.method),
                    purpose: nonempty(m.purpose),
                    decision: decision_filter("decision", m.decision)?
                        .map(|d| d.as_str().to_string()),
                    case_id: nonempty(m.case_id),
                    case_subject: None,
                    subject: nonempty(m.subject),
                };
                if m.start_index > i64::MAX as u64 {
                    return Err(invalid("start_index", "start_index is out of range"));
                }
                Ok((
                    filter,
                    nonempty(m.access_record_id),
                    m.start_index as i64,
                    i64::from(m.limit),
                ))
            },
            async |ex, ctx, (filter, request_id, start, limit)| {
                ex.query_access(ctx, filter, request_id, start, limit)
                    .await?
                    .try_map(|page| {
                        let indexed_upto = page.indexed_upto.map(|u| u.max(0) as u64);
                        let entries: Vec<Result<pb::QueryAccessResponse, Status>> = page
                            .rows
                            .into_iter()
                            .map(|r| {
                                entry_pb(r.seq, r.record)
                                    .map(|entry| pb::QueryAccessResponse {
                                        entry: Some(entry),
                                        indexed_upto,
                                    })
                                    .map_err(|e| status(e, &ctx.request_id))
                            })
                            .collect();
                        Ok(Box::pin(tokio_stream::iter(entries)) as EntryStream)
                    })
            },
        )
        .await
    }

    async fn subject_access_report(
        &self,
        req: Request<pb::SubjectAccessReportRequest>,
    ) -> Result<Response<pb::SubjectAccessReportResponse>, Status> {
        self.call(
            "SubjectAccessReport",
            req,
            |m| match m.subject {
                Some(pb::subject_access_report_request::Subject::CaseId(id)) => {
                    Ok(SubjectRef::CaseId(id))
                }
                Some(pb::subject_access_report_request::Subject::VNumber(v)) => {
                    Ok(SubjectRef::VNumber(v))
                }
                Some(pb::subject_access_report_request::Subject::Bsn(b)) => Ok(SubjectRef::Bsn(b)),
                None => Err(invalid(
                    "subject",
                    "set case_id, v_number or bsn to say whose report",
                )),
            },
            async |ex, ctx, subject| {
                let ask: &AskPart<'_> = &|federation, node, q| {
                    Box::pin(crate::rpc::federated::ask_part(ctx, federation, node, q))
                };
                ex.subject_access_report(ctx, subject, ask)
                    .await?
                    .try_map(|report| {
                        let complete = report.complete();
                        let witnessed = report.witnessed();
                        Ok(pb::SubjectAccessReportResponse {
                            complete,
                            witnessed,
                            indexed_upto: report.indexed_upto.unwrap_or(0).max(0) as u64,
                            nodes: report
                                .nodes
                                .into_iter()
                                .map(|n| pb::ReportNode {
                                    node: n.node,
                                    checkpoint: n.checkpoint,
                                    verifier_key: n.verifier_key,
                                    answered: n.answered,
                                    missing_reason: n.missing_reason,
                                    witness_keys: n.quorum.witness_keys,
                                    cosignatures_required: n.quorum.required,
                                    witnesses: n.witnesses,
                                    witnessed: n.witnessed,
                                    witness_note: n.witness_note,
                                    log_warning: n.log_warning,
                                    witness_alarm: n.witness_alarm,
                                })
                                .collect(),
                            case_ids: report.case_ids,
                            entries: report
                                .entries
                                .into_iter()
                                .map(|e| pb::ReportEntry {
                                    index: e.index as u64,
                                    at: Some(timestamp(e.access.at)),
                                    role: role_pb(&e.access.role) as i32,
                                    method: e.access.method.clone(),
                                    purpose: e.access.purpose.clone().unwrap_or_default(),
                                    released: e
                                        .access
                                        .released
                                        .iter()
                                        .map(|c| i32::from(c.code()))
                                        .collect(),
                                    withheld: e
                                        .access
                                        .withheld
                                        .iter()
                                        .map(|(c, reason)| withheld_pb(*c, reason))
                                        .collect(),
                                    decision: decision_pb(e.access.decision) as i32,
                                    participant: e.access.participant,
                                    organisation: e.access.organisation,
                                    summary: e.summary,
                                    bases: e.access.bases.iter().map(basis_pb).collect(),
                                    erased: e
                                        .access
                                        .erased
                                        .iter()
                                        .map(|c| i32::from(c.code()))
                                        .collect(),
                                    review: e.access.review.map(|v| pb::EmergencyReview {
                                        access_record_id: v.access_record_id,
                                        verdict: crate::rpc::convert::verdict_pb(v.verdict) as i32,
                                        note: v.note,
                                        access_index: e.access.reviewed.map(|i| i as u64),
                                    }),
                                    from_node: e.access.from_node.unwrap_or_default(),
                                    forwarded_to: e.access.forwarded_to.unwrap_or_default(),
                                    node: e.node,
                                    request_id: e.request_id,
                                    proof: e.proof.map(|p| pb::ReportEntryProof {
                                        tree_size: p.tree_size,
                                        hashes: p.hashes.iter().map(|h| h.to_vec()).collect(),
                                        leaf: e.leaf,
                                    }),
                                })
                                .collect(),
                            text: report.text,
                            access_record_id: ctx.request_id.clone(),
                        })
                    })
            },
        )
        .await
    }

    async fn acknowledge_witness_alarm(
        &self,
        req: Request<pb::AcknowledgeWitnessAlarmRequest>,
    ) -> Result<Response<pb::AcknowledgeWitnessAlarmResponse>, Status> {
        self.call(
            "AcknowledgeWitnessAlarm",
            req,
            |m| Ok((m.alarm_id, m.note)),
            async |ex, ctx, (id, note)| {
                ex.acknowledge_witness_alarm(ctx, id, note)
                    .await?
                    .try_map(|(alarm, open)| {
                        Ok(pb::AcknowledgeWitnessAlarmResponse {
                            alarm_id: u64::try_from(alarm.id).unwrap_or_default(),
                            node: alarm.node,
                            unacknowledged: u32::try_from(open).unwrap_or(u32::MAX),
                            access_record_id: ctx.request_id.clone(),
                        })
                    })
            },
        )
        .await
    }

    async fn get_checkpoint(
        &self,
        req: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        self.call(
            "GetCheckpoint",
            req,
            |m| Ok((m.size != 0).then_some(m.size)),
            async |ex, ctx, size| {
                ex.get_checkpoint(ctx, size).await?.try_map(|cp| {
                    Ok(pb::GetCheckpointResponse {
                        checkpoint: Some(checkpoint_pb(cp)),
                        verifier_key: ex.verifier_key(),
                        access_record_id: ctx.request_id.clone(),
                    })
                })
            },
        )
        .await
    }

    async fn get_inclusion_proof(
        &self,
        req: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::GetInclusionProofResponse>, Status> {
        self.call(
            "GetInclusionProof",
            req,
            |m| {
                let leaf = match m.entry {
                    Some(pb::get_inclusion_proof_request::Entry::AccessRecordId(id)) => {
                        LeafRef::RequestId(id)
                    }
                    Some(pb::get_inclusion_proof_request::Entry::Index(i)) => LeafRef::Index(i),
                    None => {
                        return Err(invalid(
                            "entry",
                            "set access_record_id or index to say which entry",
                        ));
                    }
                };
                Ok((leaf, (m.tree_size != 0).then_some(m.tree_size)))
            },
            async |ex, ctx, (leaf, size)| {
                ex.get_inclusion_proof(ctx, leaf, size).await?.try_map(|p| {
                    Ok(pb::GetInclusionProofResponse {
                        index: p.index,
                        tree_size: p.tree_size,
                        hashes: p.hashes.iter().map(|h| h.to_vec()).collect(),
                        entry: Some(entry_pb(p.index as i64, p.leaf)?),
                        checkpoint: Some(checkpoint_pb(p.checkpoint)),
                        access_record_id: ctx.request_id.clone(),
                    })
                })
            },
        )
        .await
    }

    async fn list_emergency_alerts(
        &self,
        req: Request<pb::ListEmergencyAlertsRequest>,
    ) -> Result<Response<pb::ListEmergencyAlertsResponse>, Status> {
        self.call("ListEmergencyAlerts", req, Ok, async |ex, ctx, m| {
            ex.list_emergency_alerts(ctx, m.page_size, &m.page_token, m.show_closed)
                .await?
                .try_map(|(alerts, next)| {
                    Ok(pb::ListEmergencyAlertsResponse {
                        alerts: alerts.into_iter().map(alert_pb).collect::<Result<_, _>>()?,
                        next_page_token: next,
                        access_record_id: ctx.request_id.clone(),
                    })
                })
        })
        .await
    }

    async fn close_emergency_alert(
        &self,
        req: Request<pb::CloseEmergencyAlertRequest>,
    ) -> Result<Response<pb::CloseEmergencyAlertResponse>, Status> {
        self.call(
            "CloseEmergencyAlert",
            req,
            |m| {
                if m.access_record_id.is_empty() {
                    return Err(invalid(
                        "access_record_id",
                        "access_record_id is required: the id of the emergency access to close",
                    ));
                }
                Ok((m.access_record_id, verdict("verdict", m.verdict)?, m.note))
            },
            async |ex, ctx, (id, verdict, note)| {
                ex.close_emergency_alert(ctx, &id, verdict, &note)
                    .await?
                    .try_map(|alert| {
                        Ok(pb::CloseEmergencyAlertResponse {
                            alert: Some(alert_pb(alert)?),
                            access_record_id: ctx.request_id.clone(),
                        })
                    })
            },
        )
        .await
    }

    async fn list_statistics_releases(
        &self,
        req: Request<pb::ListStatisticsReleasesRequest>,
    ) -> Result<Response<pb::ListStatisticsReleasesResponse>, Status> {
        self.call("ListStatisticsReleases", req, Ok, async |ex, ctx, m| {
            ex.list_statistics_releases(ctx, &m.quarter, m.include_own, m.page_size, &m.page_token)
                .await?
                .try_map(|listing| {
                    Ok(pb::ListStatisticsReleasesResponse {
                        releases: listing
                            .releases
                            .into_iter()
                            .map(|l| pb::StatisticsRelease {
                                as_of: Some(timestamp(l.released.as_of)),
                                release_sha256: l.released.sha256.clone(),
                                table: Some(crate::rpc::stats::publication_pb(&l.released, "")),
                                quarter: l.key.quarter,
                                breakdown: l.key.breakdown,
                                scope: l.key.scope,
                            })
                            .collect(),
                        next_page_token: listing.next_page_token,
                        access_record_id: ctx.request_id.clone(),
                        quarters: listing.quarters,
                    })
                })
        })
        .await
    }

    async fn get_consistency_proof(
        &self,
        req: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::GetConsistencyProofResponse>, Status> {
        self.call(
            "GetConsistencyProof",
            req,
            |m| Ok((m.old_size, (m.new_size != 0).then_some(m.new_size))),
            async |ex, ctx, (old, new)| {
                ex.get_consistency_proof(ctx, old, new).await?.try_map(|p| {
                    Ok(pb::GetConsistencyProofResponse {
                        old_size: p.old_size,
                        new_size: p.new_size,
                        hashes: p.hashes.iter().map(|h| h.to_vec()).collect(),
                        access_record_id: ctx.request_id.clone(),
                    })
                })
            },
        )
        .await
    }
}

/// An alert as `EmergencyAlert`: its access and, if read, its review.
fn alert_pb(a: Alert) -> Result<pb::EmergencyAlert, crate::gateway::ExchangeError> {
    Ok(pb::EmergencyAlert {
        access: Some(entry_pb(a.access.seq, a.access.record)?),
        closed: a.closed,
        review: a.review.map(|r| entry_pb(r.seq, r.record)).transpose()?,
    })
}
