//! The client side of `AuditService`, for the privacy officer's own tools:
//! `sluis audit` against a node and `sluis console`. They hold the
//! officer's certificate and nothing of the node's — no database
//! credentials, no keys — and see exactly what the node's API gives an
//! officer, each call recorded in the log like any other.
//!
//! Entries come back as the log's own records, decoded from the canonical
//! encoding the answer carries (`AccessEntry.leaf`), which is what an
//! inclusion proof proves: the tools show what they can have proven.

use tonic::Status;
use tonic::transport::Channel;

use crate::gateway::oversight::{
    Access, EntryProof, Lang, ReportEntry, ReportNode, SubjectRef, describe,
};
use crate::model::{Category, WithholdReason};
use crate::rpc::convert::{decision_filter, decision_pb, role_pb, withhold_reason};
use crate::rpc::proto::v1 as pb;
use crate::store::{LogFilter, StoredCheckpoint};
use crate::tlog::AccessRecord;
use crate::tlog::proof::{InclusionProof, LeafRef};

/// Entries per `QueryAccess` call the tools ask for (the node's maximum).
pub(crate) const PAGE: i32 = 10_000;

/// Pages of releases the tools read for one quarter at most: a quarter has
/// seven tables for each breakdown, so this is far more than any node's.
const MAX_RELEASE_PAGES: usize = 50;

/// A subject access report as a remote officer receives it.
#[derive(Clone, Debug)]
pub(crate) struct RemoteReport {
    pub(crate) case_ids: Vec<String>,
    pub(crate) entries: Vec<ReportEntry>,
    /// The nodes the report covers, and why any is missing.
    pub(crate) nodes: Vec<ReportNode>,
    /// The id of the report's own access record.
    pub(crate) access_record_id: String,
}

/// An emergency access's alert as the officer's tools show it: the access
/// and, when closed and read, the review, each as (index, record).
#[derive(Clone, Debug)]
pub(crate) struct RemoteAlert {
    pub(crate) access: (i64, AccessRecord),
    pub(crate) closed: bool,
    pub(crate) review: Option<(i64, AccessRecord)>,
}

/// A statistics release as the officer's tools show it: which one, when
/// computed, its SHA-256, and the table as it was handed out.
#[derive(Clone, Debug)]
pub(crate) struct RemoteRelease {
    /// `2025Q3`.
    pub(crate) quarter: String,
    /// `node`, `by_municipality` or `own`.
    pub(crate) breakdown: String,
    /// For `own`: the municipality's participant id.
    pub(crate) scope: String,
    /// ms since the epoch.
    pub(crate) as_of: i64,
    pub(crate) sha256: String,
    pub(crate) publication: crate::stats::Publication,
    /// The table as text, with its notes, as the node wrote it.
    pub(crate) text: String,
}

/// An entry of an answer as (index, the record its leaf holds).
fn entry_of(e: pb::AccessEntry) -> Result<(i64, AccessRecord), Status> {
    let record = AccessRecord::decode(&e.leaf).ok_or_else(|| unreadable("a record"))?;
    Ok((e.index as i64, record))
}

fn alert_of(a: pb::EmergencyAlert) -> Result<RemoteAlert, Status> {
    Ok(RemoteAlert {
        access: entry_of(
            a.access
                .ok_or_else(|| unreadable("an alert without its access"))?,
        )?,
        closed: a.closed,
        review: a.review.map(entry_of).transpose()?,
    })
}

/// `AuditService` over one mTLS channel, as the officer.
#[derive(Clone)]
pub(crate) struct Officer {
    client: pb::audit_service_client::AuditServiceClient<Channel>,
}

/// Checks a report as received, without trusting the node that made it
/// beyond the keys it names: each answering node's checkpoint verifies
/// under its verifier key, its cosignatures are counted again here against
/// the witness keys (a line that does not verify is refused), and each
/// proven line's inclusion proof verifies against its node's checkpoint.
/// `witnessing`: the node made the report in a federation, so the
/// witness verdicts are recomputed (outside one there are none).
fn check_report(
    entries: &[ReportEntry],
    nodes: &mut [ReportNode],
    witnessing: bool,
) -> Result<(), String> {
    use crate::tlog::checkpoint::Checkpoint;
    let mut checkpoints = std::collections::BTreeMap::new();
    for n in nodes
        .iter_mut()
        .filter(|n| n.answered && !n.checkpoint.is_empty())
    {
        let cp = Checkpoint::verify(&n.checkpoint, &n.verifier_key)
            .map_err(|e| format!("node {}'s checkpoint: {e}", n.node))?;
        if witnessing {
            n.check_witnesses()
                .map_err(|e| format!("node {}'s checkpoint: {e}", n.node))?;
        }
        checkpoints.insert(n.node.clone(), cp);
    }
    for e in entries {
        let Some(p) = &e.proof else { continue };
        let cp = checkpoints.get(&e.node).ok_or_else(|| {
            format!(
                "line {} #{} has a proof but its node no checkpoint",
                e.node, e.index
            )
        })?;
        if p.tree_size != cp.size {
            return Err(format!(
                "line {} #{} is proven against size {}, its node's checkpoint is of size {}",
                e.node, e.index, p.tree_size, cp.size
            ));
        }
        crate::tlog::merkle::verify_inclusion(
            e.index as u64,
            cp.size,
            &crate::tlog::merkle::leaf_hash(&e.leaf),
            &p.hashes,
            &cp.root,
        )
        .map_err(|err| format!("line {} #{}: {err}", e.node, e.index))?;
    }
    Ok(())
}

fn unreadable(what: &str) -> Status {
    Status::internal(format!(
        "the node's answer holds {what} this binary cannot read (a newer node?)"
    ))
}

impl Officer {
    pub(crate) fn new(channel: Channel) -> Officer {
        Officer {
            client: pb::audit_service_client::AuditServiceClient::new(channel)
                .max_decoding_message_size(64 << 20),
        }
    }

    /// Up to `limit` entries matching `filter` (and `request_id`, when
    /// given) from index `start` on, as (index, record), and the request id
    /// of this call's own access record (which the log holds after the
    /// entries returned, and which may match the same filter). Errors: the
    /// node's status (its message names the field to fix, or what was not
    /// found).
    pub(crate) async fn query(
        &mut self,
        filter: &LogFilter,
        request_id: Option<&str>,
        start: i64,
        limit: i32,
    ) -> Result<(Vec<(i64, AccessRecord)>, String), Status> {
        let ts = crate::rpc::convert::timestamp;
        let role = match filter.role.as_deref() {
            None => pb::Role::Unspecified,
            Some(r) => match r.parse::<crate::model::Role>() {
                Ok(_) => role_pb(r),
                Err(_) => return Err(Status::invalid_argument(format!("role: unknown role {r}"))),
            },
        };
        let decision = match filter.decision.as_deref() {
            None => pb::Decision::Unspecified,
            Some(d) => crate::tlog::Decision::parse(d)
                .map(decision_pb)
                .ok_or_else(|| Status::invalid_argument("decision: unknown decision"))?,
        };
        let req = pb::QueryAccessRequest {
            since: filter.since.map(ts),
            until: filter.until.map(ts),
            caller: filter.caller.clone().unwrap_or_default(),
            role: role as i32,
            method: filter.method.clone().unwrap_or_default(),
            purpose: filter.purpose.clone().unwrap_or_default(),
            decision: decision as i32,
            case_id: filter.case_id.clone().unwrap_or_default(),
            subject: filter.subject.clone().unwrap_or_default(),
            start_index: u64::try_from(start).unwrap_or(0),
            limit,
            access_record_id: request_id.unwrap_or_default().to_string(),
        };
        let response = self.client.query_access(req).await?;
        let own = response
            .metadata()
            .get(crate::rpc::REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let mut stream = response.into_inner();
        let mut out = Vec::new();
        while let Some(m) = stream.message().await? {
            out.push(entry_of(
                m.entry.ok_or_else(|| unreadable("an empty entry"))?,
            )?);
        }
        Ok((out, own))
    }

    /// One page of the alerts of emergency accesses (AIP-158: at most
    /// `page_size`, the node's bound applies), open ones only unless
    /// `show_closed`, in log order from `page_token` on; with the next
    /// page's token, empty after the last. Never more than one page in
    /// memory: a log of years holds many closed alerts. Errors: the node's
    /// status (`INVALID_ARGUMENT`: page size or token).
    pub(crate) async fn emergency_alerts(
        &mut self,
        show_closed: bool,
        page_size: i32,
        page_token: String,
    ) -> Result<(Vec<RemoteAlert>, String), Status> {
        let r = self
            .client
            .list_emergency_alerts(pb::ListEmergencyAlertsRequest {
                page_size,
                page_token,
                show_closed,
            })
            .await?
            .into_inner();
        let alerts = r
            .alerts
            .into_iter()
            .map(alert_of)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((alerts, r.next_page_token))
    }

    /// Closes the alert of the emergency access `access_record_id` with a
    /// verdict and a note. Errors: the node's status (`NOT_FOUND`: no such
    /// emergency access; `FAILED_PRECONDITION`: closed already;
    /// `INVALID_ARGUMENT`: the note).
    pub(crate) async fn close_emergency_alert(
        &mut self,
        access_record_id: &str,
        verdict: crate::tlog::Verdict,
        note: &str,
    ) -> Result<RemoteAlert, Status> {
        let r = self
            .client
            .close_emergency_alert(pb::CloseEmergencyAlertRequest {
                access_record_id: access_record_id.to_string(),
                verdict: crate::rpc::convert::verdict_pb(verdict) as i32,
                note: note.to_string(),
            })
            .await?
            .into_inner();
        alert_of(r.alert.ok_or_else(|| unreadable("no alert"))?)
    }

    /// Acknowledges witness alarm `id` with `note`. Errors: the node's
    /// status (`NOT_FOUND`: no such alarm; `FAILED_PRECONDITION`:
    /// acknowledged before; `INVALID_ARGUMENT`: the note).
    pub(crate) async fn acknowledge_witness_alarm(
        &mut self,
        id: u64,
        note: String,
    ) -> Result<pb::AcknowledgeWitnessAlarmResponse, Status> {
        Ok(self
            .client
            .acknowledge_witness_alarm(pb::AcknowledgeWitnessAlarmRequest { alarm_id: id, note })
            .await?
            .into_inner())
    }

    /// The subject access report, its lines worded in `lang`. Errors: the
    /// node's status (`NOT_FOUND` for a subject with no case on the node).
    pub(crate) async fn report(
        &mut self,
        subject: SubjectRef,
        lang: Lang,
    ) -> Result<RemoteReport, Status> {
        use pb::subject_access_report_request::Subject;
        let subject = match subject {
            SubjectRef::CaseId(c) => Subject::CaseId(c),
            SubjectRef::VNumber(v) => Subject::VNumber(v),
            SubjectRef::Bsn(b) => Subject::Bsn(b),
        };
        let r = self
            .client
            .subject_access_report(pb::SubjectAccessReportRequest {
                subject: Some(subject),
            })
            .await?
            .into_inner();
        let mut entries = Vec::with_capacity(r.entries.len());
        for e in r.entries {
            let access = access_of(e.clone())?;
            let (leaf, proof) = match e.proof {
                Some(p) => (
                    p.leaf,
                    Some(EntryProof {
                        tree_size: p.tree_size,
                        hashes: p
                            .hashes
                            .iter()
                            .map(|h| <[u8; 32]>::try_from(h.as_slice()))
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(|_| unreadable("a hash that is not 32 bytes"))?,
                    }),
                ),
                None => (vec![], None),
            };
            entries.push(ReportEntry {
                index: e.index as i64,
                summary: describe(&access, lang),
                access,
                node: e.node,
                request_id: e.request_id,
                case_id: None,
                leaf,
                proof,
            });
        }
        let witnessing = r.nodes.iter().any(|n| !n.witness_note.is_empty());
        let mut nodes: Vec<ReportNode> = r
            .nodes
            .into_iter()
            .map(|n| ReportNode {
                node: n.node,
                checkpoint: n.checkpoint,
                verifier_key: n.verifier_key,
                answered: n.answered,
                missing_reason: n.missing_reason,
                quorum: crate::federation::witness::Quorum {
                    witness_keys: n.witness_keys,
                    required: n.cosignatures_required,
                },
                witnesses: n.witnesses,
                witnessed: n.witnessed,
                witness_note: n.witness_note,
                log_warning: n.log_warning,
                witness_alarm: n.witness_alarm,
            })
            .collect();
        check_report(&entries, &mut nodes, witnessing).map_err(|e| {
            Status::data_loss(format!(
                "the node's report does not verify here: {e}; do not hand it out, and run `sluis audit verify` on the node named"
            ))
        })?;
        Ok(RemoteReport {
            case_ids: r.case_ids,
            entries,
            nodes,
            access_record_id: r.access_record_id,
        })
    }

    /// The latest signed checkpoint and the node's verifier key.
    /// The statistics releases of `quarter` (`2025Q3`; empty: the newest
    /// quarter with any), every page of them, with the municipalities' own
    /// tables if `include_own`; and every quarter with releases, newest
    /// first. Each page is a call of its own, recorded.
    pub(crate) async fn statistics_releases(
        &mut self,
        quarter: &str,
        include_own: bool,
    ) -> Result<(Vec<RemoteRelease>, Vec<String>), Status> {
        let mut quarter = quarter.to_string();
        let mut releases = Vec::new();
        let mut quarters = Vec::new();
        let mut token = String::new();
        for _ in 0..MAX_RELEASE_PAGES {
            let r = self
                .client
                .list_statistics_releases(pb::ListStatisticsReleasesRequest {
                    quarter: quarter.clone(),
                    include_own,
                    // Only to learn the quarters, when none is named.
                    page_size: if quarter.is_empty() { 1 } else { 100 },
                    page_token: std::mem::take(&mut token),
                })
                .await?
                .into_inner();
            quarters = r.quarters;
            if quarter.is_empty() {
                match quarters.first() {
                    Some(newest) => {
                        quarter = newest.clone();
                        continue;
                    }
                    None => break,
                }
            }
            for r in r.releases {
                let as_of = r
                    .as_of
                    .as_ref()
                    .map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000);
                let table = r
                    .table
                    .ok_or_else(|| unreadable("a release without its table"))?;
                let text = table.text.clone();
                let (publication, _) = crate::rpc::stats::publication_of(table)?;
                releases.push(RemoteRelease {
                    quarter: r.quarter,
                    breakdown: r.breakdown,
                    scope: r.scope,
                    as_of,
                    sha256: r.release_sha256,
                    publication,
                    text,
                });
            }
            token = r.next_page_token;
            if token.is_empty() {
                break;
            }
        }
        Ok((releases, quarters))
    }

    pub(crate) async fn checkpoint(&mut self) -> Result<(StoredCheckpoint, String), Status> {
        let r = self
            .client
            .get_checkpoint(pb::GetCheckpointRequest { size: 0 })
            .await?
            .into_inner();
        let cp = checkpoint_of(r.checkpoint)?;
        Ok((cp, r.verifier_key))
    }

    /// An inclusion proof of one entry against the latest checkpoint.
    pub(crate) async fn inclusion_proof(
        &mut self,
        leaf: LeafRef,
    ) -> Result<InclusionProof, Status> {
        use pb::get_inclusion_proof_request::Entry;
        let entry = match leaf {
            LeafRef::RequestId(id) => Entry::AccessRecordId(id),
            LeafRef::Index(i) => Entry::Index(i),
        };
        let r = self
            .client
            .get_inclusion_proof(pb::GetInclusionProofRequest {
                entry: Some(entry),
                tree_size: 0,
            })
            .await?
            .into_inner();
        let hashes = r
            .hashes
            .iter()
            .map(|h| <[u8; 32]>::try_from(h.as_slice()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| unreadable("a hash that is not 32 bytes"))?;
        Ok(InclusionProof {
            index: r.index,
            tree_size: r.tree_size,
            hashes,
            leaf: r.entry.map(|e| e.leaf).unwrap_or_default(),
            checkpoint: checkpoint_of(r.checkpoint)?,
        })
    }
}

fn checkpoint_of(cp: Option<pb::Checkpoint>) -> Result<StoredCheckpoint, Status> {
    let cp = cp.ok_or_else(|| unreadable("no checkpoint"))?;
    let at = cp
        .signed_at
        .map(|t| t.seconds * 1000 + i64::from(t.nanos / 1_000_000))
        .unwrap_or_default();
    Ok(StoredCheckpoint {
        size: i64::try_from(cp.size).map_err(|_| unreadable("a checkpoint size"))?,
        root: cp.root_hash,
        at,
        note: cp.signed_note,
    })
}

fn access_of(e: pb::ReportEntry) -> Result<Access, Status> {
    let category = |c: i32| Category::from_code(c).ok_or_else(|| unreadable("an unknown category"));
    let released = e
        .released
        .iter()
        .map(|c| category(*c))
        .collect::<Result<Vec<_>, _>>()?;
    let withheld = e
        .withheld
        .iter()
        .map(|w| {
            let reason = WithholdReason::ALL
                .iter()
                .find(|r| withhold_reason(**r) as i32 == w.reason)
                .map_or("unspecified", |r| r.as_str());
            Ok((category(w.category)?, reason.to_string()))
        })
        .collect::<Result<Vec<_>, Status>>()?;
    let decision = decision_filter("decision", e.decision)
        .ok()
        .flatten()
        .ok_or_else(|| unreadable("an unknown decision"))?;
    let role = pb::Role::try_from(e.role)
        .ok()
        .and_then(|r| {
            crate::model::Role::ALL
                .into_iter()
                .find(|x| role_pb(x.as_str()) == r)
        })
        .map_or_else(
            // No role: a peer node calling as itself, or else the node's
            // own step when it names a caller.
            || {
                if e.from_node == e.participant {
                    crate::gateway::oversight::PEER_NODE_ROLE.to_string()
                } else {
                    crate::gateway::oversight::shown_role(&e.participant, "").to_string()
                }
            },
            |r| r.as_str().to_string(),
        );
    let from_node = (!e.from_node.is_empty()).then(|| e.from_node.clone());
    let forwarded_to = (!e.forwarded_to.is_empty()).then(|| e.forwarded_to.clone());
    Ok(Access {
        forwarded_to,
        at: e
            .at
            .map(|t| t.seconds * 1000 + i64::from(t.nanos / 1_000_000))
            .unwrap_or_default(),
        participant: e.participant,
        organisation: e.organisation,
        role,
        from_node,
        method: e.method,
        purpose: (!e.purpose.is_empty()).then_some(e.purpose),
        released,
        withheld,
        decision,
        bases: e
            .bases
            .iter()
            .filter_map(crate::rpc::convert::basis_from_pb)
            .collect(),
        erased: e
            .erased
            .iter()
            .map(|c| category(*c))
            .collect::<Result<Vec<_>, _>>()?,
        reviewed: e
            .review
            .as_ref()
            .and_then(|v| v.access_index)
            .map(|i| i as i64),
        review: e.review.and_then(|v| {
            Some(crate::tlog::Review {
                verdict: match pb::Verdict::try_from(v.verdict).ok()? {
                    pb::Verdict::Justified => crate::tlog::Verdict::Justified,
                    pb::Verdict::NotJustified => crate::tlog::Verdict::NotJustified,
                    pb::Verdict::Unspecified => return None,
                },
                access_record_id: v.access_record_id,
                note: v.note,
            })
        }),
    })
}
