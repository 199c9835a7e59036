//! The subject access report across a federation (GDPR art. 15): "who saw
//! my data" complete over every node that served the subject's case
//! (ARCHITECTURE.md, "Federation", "The subject access report across
//! nodes").
//!
//! The log does not move with a case: each node's entries of it stay in
//! that node's log. The node a report is asked at (the case's node now, or
//! the officer's) starts from its own entries and follows the **links**
//! they hold to other nodes — a referral (the request id both nodes'
//! records share) and a call another node forwarded here for a participant
//! it hosts (the same) — asking each node for its entries
//! ([`Exchange::report_case_accesses`], over `rpc::federated`), and
//! following the links in their answers in turn.
//!
//! A node answers only for what the asking node shows a basis for, judged
//! by its own records of that node (an id alone is no right: ids travel in
//! reports): a referral of the case it made to, or took from, the asking
//! node (then every entry of the case there), or request ids of calls the
//! asking node was party to — forwarded here by it, or forwarded to it
//! (then those records). The asking node expects a line of every call its
//! own records show it served with a node, and flags a node whose answer
//! lacks one (its log went back). Each answer carries its entries as leaves with their
//! inclusion proofs against the answering node's signed checkpoint; the
//! asking node checks the checkpoint's signature with the key the running
//! directory lists for that node and every proof, and words the lines from
//! the leaves, so a line says what the proof proves. A node that does not
//! answer, or whose answer does not verify, makes the report incomplete,
//! naming the node.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::federation::Federation;
use crate::federation::directory::Directory;
use crate::gateway::oversight::{
    Access, EntryProof, ReportEntry, ReportNode, ReportedCase, describe, reported_from_log,
};
use crate::gateway::validate::{self, Invalid};
use crate::gateway::{Exchange, ExchangeError, RequestCtx};
use crate::store::{LogRow, Store, StoreError};
use crate::tlog::checkpoint::{self, Checkpoint};
use crate::tlog::merkle::{self, Hash};
use crate::tlog::proof::{self, LeafRef};
use crate::tlog::{AccessRecord, Decision, Recorded};

/// The node-to-node call for one node's part (made by `rpc`): the node's
/// id and the query in, its unverified answer out.
pub(crate) type AskPart<'a> = dyn Fn(
        Arc<Federation>,
        String,
        PartQuery,
    ) -> Pin<Box<dyn Future<Output = Result<Part, ExchangeError>> + Send + 'a>>
    + Send
    + Sync
    + 'a;

/// Most request ids one `ReportCaseAccesses` names.
pub(crate) const MAX_REQUEST_IDS: usize = 1_000;
/// Most entries one node reports for one case.
const MAX_PART_ENTRIES: usize = 100_000;

/// What a node is asked for: the case, and the basis the asking node has.
#[derive(Clone, Debug, Default)]
pub(crate) struct PartQuery {
    pub(crate) case_id: String,
    /// A referral of the case the asked node made or took.
    pub(crate) referral_id: Option<String>,
    /// Request ids of the asked node's records of calls about the case.
    pub(crate) request_ids: Vec<String>,
    /// How many of its witnesses' cosignatures the asking node wants on
    /// the checkpoint the entries are proven against (0: any checkpoint).
    pub(crate) cosignatures: u32,
}

/// One entry of a node's part: its position, its leaf (the record's
/// canonical encoding) and its audit path against the part's checkpoint
/// (empty when the checkpoint does not cover it yet).
#[derive(Clone, Debug)]
pub(crate) struct ProvenLeaf {
    pub(crate) index: u64,
    pub(crate) leaf: Vec<u8>,
    pub(crate) hashes: Vec<Hash>,
}

/// A link of the case to another node that a node's entries show.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Link {
    pub(crate) node: String,
    pub(crate) request_id: String,
    /// A referral (a basis for every entry of the case there); else a call
    /// that node forwarded.
    pub(crate) referral: bool,
}

/// A node's answer: its entries of the case with proofs, the signed
/// checkpoint they are proven against (note and size), and its links.
#[derive(Clone, Debug, Default)]
pub(crate) struct Part {
    pub(crate) entries: Vec<ProvenLeaf>,
    pub(crate) checkpoint: Option<(String, u64)>,
    pub(crate) links: Vec<Link>,
    /// The node's latest signed checkpoint note ("" when none), to judge
    /// whether its log went back since this node's witness cosigned it.
    pub(crate) latest: String,
}

/// Why a node's answer is not taken into a report.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PartError {
    #[error("its checkpoint does not verify with the key the directory lists for it ({0})")]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error("its checkpoint is of another log ('{0}')")]
    Origin(String),
    #[error("its checkpoint's size is not the tree size it names")]
    Size,
    #[error("entries without a signed checkpoint")]
    NoCheckpoint,
    #[error("the inclusion proof of its entry {index} does not verify ({source})")]
    Proof {
        index: u64,
        source: merkle::ProofError,
    },
    #[error("its entry {index} does not decode")]
    Undecodable { index: u64 },
    #[error("its entry {index} is not about the case asked for")]
    OtherCase { index: u64 },
    #[error("the federation directory lists no such node")]
    Unlisted,
    #[error(
        "a cosignature on its checkpoint does not verify ({0}): the note is not what its witness signed"
    )]
    Cosignature(#[from] crate::tlog::cosignature::CosignatureError),
}

/// The nodes' parts gathered for a report: each node's verified lines, its
/// checkpoint and key, or why it is missing.
#[derive(Debug, Default)]
pub(crate) struct Gathered {
    pub(crate) entries: Vec<ReportEntry>,
    pub(crate) nodes: Vec<ReportNode>,
}

/// How long a node waits for its newest entries to be covered by a signed
/// checkpoint before it proves what is covered (the rest go without proof).
const COVERAGE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
const COVERAGE_POLL: std::time::Duration = std::time::Duration::from_millis(50);
/// How long a node waits for its witnesses to cosign a checkpoint that
/// covers its newest entries before it proves against its latest signed
/// one (flagged as not confirmed by witnesses): a round of witnesses that
/// is under way, not the next one (`witness_interval_secs`).
const COSIGNED_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Inclusion proofs of the entries at `indexes` against one signed
/// checkpoint: the latest, once it covers them all (waited for, a few
/// checkpoint intervals at most). An entry it does not cover gets no path.
pub(crate) async fn prove(
    store: &Store,
    indexes: &[u64],
) -> Result<(Option<crate::store::StoredCheckpoint>, Vec<Vec<Hash>>), ExchangeError> {
    let Some(&last) = indexes.iter().max() else {
        return Ok((None, vec![]));
    };
    let give_up = tokio::time::Instant::now() + COVERAGE_WAIT;
    let cp = loop {
        let cp = store.latest_checkpoint().await.map_err(stored)?;
        match cp {
            Some(cp) if cp.size as u64 > last => break Some(cp),
            cp if tokio::time::Instant::now() >= give_up => break cp,
            _ => tokio::time::sleep(COVERAGE_POLL).await,
        }
    };
    let Some(cp) = cp else {
        return Ok((None, vec![vec![]; indexes.len()]));
    };
    let size = cp.size as u64;
    let mut paths = Vec::with_capacity(indexes.len());
    for &i in indexes {
        if i >= size {
            paths.push(vec![]);
            continue;
        }
        let p = proof::inclusion_proof(store, LeafRef::Index(i), Some(size))
            .await
            .map_err(super::oversight::proof_error)?;
        paths.push(p.hashes);
    }
    Ok((Some(cp), paths))
}

/// Inclusion proofs of the entries at `indexes` of node `own`'s log
/// against a **cosigned** checkpoint: the largest that holds `k` valid
/// cosignatures by `directory`'s witnesses and covers them all (waited for
/// [`COSIGNED_WAIT`] at most); failing that, the latest
/// signed checkpoint ([`prove`]). Either way the note carries the valid
/// cosignature lines held for it (C2SP tlog-cosignature), so whoever reads
/// it counts them, and a checkpoint short of the quorum is seen as such.
pub(crate) async fn prove_cosigned(
    store: &Store,
    directory: &Directory,
    own: &str,
    k: u32,
    indexes: &[u64],
) -> Result<(Option<(String, u64)>, Vec<Vec<Hash>>), ExchangeError> {
    let Some(&last) = indexes.iter().max() else {
        return Ok((None, vec![]));
    };
    if k > 0 {
        let give_up = tokio::time::Instant::now() + COSIGNED_WAIT;
        loop {
            let cosigned = crate::federation::witness::cosigned_checkpoint(
                store, directory, own, k as usize, None,
            )
            .await
            .map_err(stored)?;
            if let Some(c) = cosigned.filter(|c| c.checkpoint.size as u64 > last) {
                let size = c.checkpoint.size as u64;
                let mut paths = Vec::with_capacity(indexes.len());
                for &i in indexes {
                    let p = proof::inclusion_proof(store, LeafRef::Index(i), Some(size))
                        .await
                        .map_err(super::oversight::proof_error)?;
                    paths.push(p.hashes);
                }
                return Ok((Some((c.note, size)), paths));
            }
            if tokio::time::Instant::now() >= give_up {
                break;
            }
            tokio::time::sleep(COVERAGE_POLL).await;
        }
    }
    let (cp, paths) = prove(store, indexes).await?;
    let Some(cp) = cp else {
        return Ok((None, paths));
    };
    let held = store.cosignatures(cp.size).await.map_err(stored)?;
    let valid = crate::federation::witness::valid_cosigners(directory, own, &cp.note, &held);
    let mut note = cp.note;
    for c in &held {
        if valid
            .iter()
            .any(|w| c.witness == crate::federation::directory::witness_name(w))
        {
            note.push_str(&c.line);
        }
    }
    Ok((Some((note, cp.size as u64)), paths))
}

/// The links to other nodes that records of a case on node `this` show: a
/// referral it made (to the node its pointer names) or took (from the node
/// the directory says hosts the handing owner), a call by a participant
/// another node hosts (which only that node forwards here), and a call
/// this node forwarded (to the node that answered it).
pub(crate) fn links_of<'a>(
    records: impl IntoIterator<Item = (&'a Access, &'a str)>,
    directory: &Directory,
    this: &str,
    referred_to: Option<&str>,
) -> Vec<Link> {
    let mut links = BTreeSet::new();
    for (a, request_id) in records {
        if a.decision == Decision::Error || a.participant == "-" {
            continue;
        }
        // A node that answered a forwarded call "no such case" holds no
        // record of the case to answer for.
        if a.forwarded_to.is_some() && a.decision == Decision::NotFound {
            continue;
        }
        let referral = matches!(a.method.as_str(), "ReferCase" | "AcceptReferral")
            && a.decision == Decision::Allowed;
        let node = match a.method.as_str() {
            "ReferCase" if referral => referred_to.map(str::to_string),
            // A call this node forwarded: the node that answered it.
            _ if a.forwarded_to.is_some() => a.forwarded_to.clone(),
            _ => directory.home_of(&a.participant).map(|(n, _)| n.id.clone()),
        };
        if let Some(node) = node.filter(|n| n != this) {
            links.insert(Link {
                node,
                request_id: request_id.to_string(),
                referral,
            });
        }
    }
    links.into_iter().collect()
}

impl Exchange {
    /// The federation and its running directory, for a call from a peer
    /// node. Errors: `FailedPrecondition` (no federation, or its directory
    /// not valid now).
    pub(crate) fn in_federation(
        &self,
    ) -> Result<(&Arc<Federation>, Arc<crate::federation::Running>), ExchangeError> {
        let federation = self.federation.as_ref().ok_or_else(|| {
            ExchangeError::FailedPrecondition("this node is not in a federation".into())
        })?;
        let running = federation
            .current(self.now())
            .map_err(|e| ExchangeError::FailedPrecondition(e.to_string()))?;
        Ok((federation, running))
    }

    /// This node's id in its federation, else its name.
    pub(crate) fn node_id(&self) -> &str {
        self.federation
            .as_ref()
            .map_or(self.node_name.as_str(), |f| f.node_id())
    }

    /// A peer node's request for this node's entries of a case, for the
    /// subject access report it makes (`FederationService.
    /// ReportCaseAccesses`). `asking` is the calling node, as `rpc::
    /// federated::Gate` recognised it by its pinned key. Recorded naming
    /// that node, the case and (with a referral basis) its subject.
    ///
    /// Errors: `Invalid` (ids; no basis named), `FailedPrecondition` (no
    /// federation, or its directory not valid now), `Forbidden` (a basis
    /// this node cannot find), `AuditUnavailable`, `Internal`.
    pub(crate) async fn report_case_accesses(
        &self,
        ctx: &RequestCtx,
        asking: &str,
        q: PartQuery,
    ) -> Result<Recorded<Part>, ExchangeError> {
        let mut rec = self.record(ctx, "ReportCaseAccesses");
        let result = async {
            let (federation, running) = self.in_federation()?;
            validate::uuid("case_id", &q.case_id)?;
            if let Some(r) = &q.referral_id {
                validate::uuid("referral_id", r)?;
            }
            if q.request_ids.len() > MAX_REQUEST_IDS {
                return Err(Invalid::new(
                    "request_ids",
                    format!("request_ids: at most {MAX_REQUEST_IDS}; ask again for the rest"),
                )
                .into());
            }
            for (i, id) in q.request_ids.iter().enumerate() {
                validate::uuid(&format!("request_ids[{i}]"), id)?;
            }
            if q.referral_id.is_none() && q.request_ids.is_empty() {
                return Err(Invalid::new(
                    "referral_id",
                    "name the basis: referral_id (a referral of the case this node made or took) or request_ids (calls about the case this node recorded)",
                )
                .into());
            }
            // A count of this node's witnesses: more than the directory
            // lists for it can never be met, so it is a mistake to say so,
            // not a wish to round down.
            let witnesses = crate::federation::witness::report_quorum(
                &running.directory,
                federation.node_id(),
                None,
            )
            .witness_keys
            .len();
            if q.cosignatures as usize > witnesses {
                return Err(Invalid::new(
                    "cosignatures",
                    format!(
                        "cosignatures: at most {witnesses}, the witnesses the federation directory (serial {}) lists for node '{}'",
                        running.directory.serial,
                        federation.node_id()
                    ),
                )
                .into());
            }
            rec.case_id = Some(q.case_id.clone());
            rec.detail = format!("asked by federation node '{asking}'");
            // Only a node of the case's trail, by this node's own records,
            // is answered: a request id or a referral id alone is no
            // right to the entries (ids travel in reports and logs).
            let trail = self.trail_of(&q.case_id, &running.directory).await?;
            if !trail.contains(asking) {
                return Err(ExchangeError::Forbidden(format!(
                    "node '{}' has no record of node '{asking}' on this case's trail (a referral to or from it, or a call about the case forwarded between them): it reports a case's entries only to the nodes of its trail",
                    self.node_id()
                )));
            }
            let mut rows: BTreeMap<i64, LogRow> = BTreeMap::new();
            if let Some(referral) = &q.referral_id {
                // The whole of the case goes only to the other end of a
                // referral this node made or took: a node that merely
                // knows the referral's id (ids travel in reports) is not
                // that node.
                let made = match self.record_of(referral).await? {
                    Some((_, r)) => {
                        r.case_id.as_deref() == Some(q.case_id.as_str())
                            && matches!(r.method.as_str(), "ReferCase" | "AcceptReferral")
                            && r.decision == Decision::Allowed
                            && trail_node(&r, &running.directory).as_deref() == Some(asking)
                    }
                    None => false,
                };
                if !made {
                    return Err(ExchangeError::Forbidden(format!(
                        "node '{}' made or took no referral of this case with node '{asking}' under this referral_id: it reports all of a case's entries only to the node it referred the case to or took it from",
                        self.node_id()
                    )));
                }
                let case = match self.store.case_meta(&q.case_id).await.map_err(stored)? {
                    Some(meta) => {
                        // The report concerns this case's subject: named
                        // with the sealed id, as a read of the case is.
                        self.name_subject(&mut rec, &meta);
                        Some(ReportedCase {
                            case_id: meta.id.clone(),
                            subject: self.subject_for_audit(&meta),
                        })
                    }
                    None => reported_from_log(&self.store, &q.case_id)
                        .await
                        .map_err(stored)?,
                };
                if let Some(case) = case {
                    rec.subject = Some(case.subject.clone());
                    let mut start = 0;
                    loop {
                        let page = self
                            .store
                            .subject_log(&case.case_id, &case.subject, start, 1000)
                            .await
                            .map_err(stored)?
                            .rows;
                        let Some(last) = page.last() else { break };
                        start = last.seq + 1;
                        for row in page {
                            rows.insert(row.seq, row);
                        }
                        if rows.len() >= MAX_PART_ENTRIES {
                            break;
                        }
                    }
                }
            }
            let mut named = 0;
            for id in &q.request_ids {
                // A forwarded call's record names the case when the call
                // did; one that failed before the case was known names none.
                // Only the calls the asking node was party to: those it
                // forwarded here, or this node forwarded to it.
                if let Some((row, r)) = self.record_of(id).await?
                    && r.case_id.as_deref().is_none_or(|c| c == q.case_id)
                    && party_to(&r, asking)
                {
                    named += 1;
                    rows.insert(row.seq, row);
                }
            }
            if q.referral_id.is_none() && named == 0 {
                return Err(ExchangeError::Forbidden(format!(
                    "node '{}' holds no record of these request ids about this case of a call node '{asking}' forwarded here or this node forwarded to it: it reports to a node only the calls that node was party to",
                    self.node_id()
                )));
            }
            let registry = self.registry();
            let records: Vec<(Access, String)> = rows
                .values()
                .filter_map(|row| {
                    AccessRecord::decode(&row.record)
                        .map(|r| (Access::of(&r, &registry), r.request_id))
                })
                .collect();
            let referred = self
                .store
                .referred_to(&q.case_id)
                .await
                .map_err(stored)?;
            let links = links_of(
                records.iter().map(|(a, id)| (a, id.as_str())),
                &running.directory,
                federation.node_id(),
                referred.as_deref(),
            )
            .into_iter()
            // A call between this node and a third is no basis the asking
            // node has there; a referral is named (the asking node says
            // it could not follow it, rather than miss it silently).
            .filter(|l| l.referral)
            .collect();
            let indexes: Vec<u64> = rows.keys().map(|i| *i as u64).collect();
            let k = q.cosignatures;
            let (cp, paths) = prove_cosigned(
                &self.store,
                &running.directory,
                federation.node_id(),
                k,
                &indexes,
            )
            .await?;
            let entries = rows
                .into_values()
                .zip(paths)
                .map(|(row, hashes)| ProvenLeaf {
                    index: row.seq as u64,
                    leaf: row.record,
                    hashes,
                })
                .collect::<Vec<_>>();
            let latest = self
                .store
                .latest_checkpoint()
                .await
                .map_err(stored)?
                .map(|c| c.note)
                .unwrap_or_default();
            rec.decision = Decision::Allowed;
            rec.detail = format!(
                "{} entries of the case reported to federation node '{asking}'",
                entries.len()
            );
            Ok(Part {
                entries,
                checkpoint: cp,
                links,
                latest,
            })
        }
        .await;
        self.finish(rec, result).await
    }

    /// The other nodes on the trail of case `case_id` by this node's own
    /// records of it (at most [`MAX_PART_ENTRIES`] read): the node it
    /// referred the case to and the one it took it from, the nodes whose
    /// participants' calls about it were forwarded here, and the nodes this
    /// node forwarded calls about it to.
    async fn trail_of(
        &self,
        case_id: &str,
        directory: &Directory,
    ) -> Result<BTreeSet<String>, ExchangeError> {
        let mut trail: BTreeSet<String> = self
            .records_of_case(case_id, None)
            .await?
            .iter()
            .filter_map(|r| trail_node(r, directory))
            .collect();
        trail.remove(self.node_id());
        Ok(trail)
    }

    /// This node's records of case `case_id` (of `method` only, if named),
    /// decoded, oldest first; at most [`MAX_PART_ENTRIES`] rows are read.
    pub(super) async fn records_of_case(
        &self,
        case_id: &str,
        method: Option<&str>,
    ) -> Result<Vec<AccessRecord>, ExchangeError> {
        let filter = crate::store::LogFilter {
            case_id: Some(case_id.to_string()),
            method: method.map(str::to_string),
            ..Default::default()
        };
        let mut records = Vec::new();
        let (mut start, mut read) = (0, 0);
        while read < MAX_PART_ENTRIES {
            let page = self
                .store
                .query_log(&filter, start, 1000)
                .await
                .map_err(stored)?;
            let Some(last) = page.last() else { break };
            start = last.seq + 1;
            read += page.len();
            records.extend(
                page.iter()
                    .filter_map(|row| AccessRecord::decode(&row.record))
                    .filter(|r| r.case_id.as_deref() == Some(case_id)),
            );
        }
        Ok(records)
    }

    /// The log row with this request id, decoded.
    async fn record_of(
        &self,
        request_id: &str,
    ) -> Result<Option<(LogRow, AccessRecord)>, ExchangeError> {
        let Some(at) = self.store.log_position(request_id).await.map_err(stored)? else {
            return Ok(None);
        };
        let filter = crate::store::LogFilter::default();
        let row = self
            .store
            .query_log(&filter, at, 1)
            .await
            .map_err(stored)?
            .into_iter()
            .find(|r| r.seq == at);
        Ok(row.and_then(|row| AccessRecord::decode(&row.record).map(|r| (row, r))))
    }

    /// The other nodes' parts of a report of `cases`, whose entries here are
    /// `local`: the links those entries show are followed, node by node,
    /// through `ask` (the node-to-node call), until no new link appears.
    /// Each answer is verified before it is taken; a node that cannot be
    /// asked, refuses, or whose answer does not verify is listed missing.
    pub(crate) async fn gather_parts(
        &self,
        federation: &Arc<Federation>,
        cases: &[ReportedCase],
        local: &[ReportEntry],
        ask: &AskPart<'_>,
    ) -> Gathered {
        let mut out = Gathered::default();
        let this = federation.node_id().to_string();
        let running = match federation.current(self.now()) {
            Ok(r) => r,
            Err(e) => {
                // No peer can be asked; whether any served the case is
                // unknown, so the report says so.
                out.nodes.push(ReportNode::missing(
                    "*",
                    format!("the other nodes were not asked: {e}"),
                ));
                return out;
            }
        };
        // Pending bases per (node, case).
        #[derive(Default)]
        struct Basis {
            referral: Option<String>,
            referral_asked: bool,
            ids: BTreeSet<String>,
            asked: BTreeSet<String>,
        }
        let mut bases: BTreeMap<(String, String), Basis> = BTreeMap::new();
        // Per node, the calls this node's own records show it served with
        // that node (forwarded there, or forwarded here by it): its answer
        // must hold a line of each.
        let mut expected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let add = |bases: &mut BTreeMap<(String, String), Basis>, case: &str, l: Link| {
            if l.node == this {
                return;
            }
            let b = bases.entry((l.node, case.to_string())).or_default();
            if l.referral {
                b.referral.get_or_insert(l.request_id);
            } else {
                b.ids.insert(l.request_id);
            }
        };
        for case in cases {
            let records = local
                .iter()
                .filter(|e| e.case_id.as_deref() == Some(case.case_id.as_str()))
                .map(|e| (&e.access, e.request_id.as_str()));
            let referred = self.store.referred_to(&case.case_id).await.ok().flatten();
            for l in links_of(records, &running.directory, &this, referred.as_deref()) {
                if !l.referral {
                    expected
                        .entry(l.node.clone())
                        .or_default()
                        .insert(l.request_id.clone());
                }
                add(&mut bases, &case.case_id, l);
            }
        }
        let mut missing: BTreeMap<String, String> = BTreeMap::new();
        let mut answered: BTreeMap<String, ReportNode> = BTreeMap::new();
        let mut seen: BTreeSet<(String, u64)> = BTreeSet::new();
        let mut notes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        // Each round asks every node with a basis not asked yet; a node's
        // answer can only add links, and there are finitely many.
        for _round in 0..=running.directory.nodes.len() * 2 {
            let todo: Vec<(String, String, PartQuery)> = bases
                .iter_mut()
                .filter(|((node, _), _)| !missing.contains_key(node))
                .filter_map(|((node, case), b)| {
                    let referral = (!b.referral_asked).then(|| b.referral.clone()).flatten();
                    let ids: Vec<String> = b.ids.difference(&b.asked).cloned().collect();
                    if referral.is_none() && ids.is_empty() {
                        return None;
                    }
                    b.referral_asked |= referral.is_some();
                    b.asked.extend(ids.iter().cloned());
                    Some((
                        node.clone(),
                        case.clone(),
                        PartQuery {
                            case_id: case.clone(),
                            referral_id: referral,
                            request_ids: ids.into_iter().take(MAX_REQUEST_IDS).collect(),
                            cosignatures: federation
                                .report_quorum(&running.directory, node)
                                .required,
                        },
                    ))
                })
                .collect();
            if todo.is_empty() {
                break;
            }
            for (node, case, q) in todo {
                match self
                    .part_of(federation, &running, ask, &node, &case, q)
                    .await
                {
                    Err(why) => {
                        missing.insert(node, why);
                    }
                    Ok((links, lines, n)) => {
                        for l in links {
                            add(&mut bases, &case, l);
                        }
                        if !n.checkpoint.is_empty() {
                            notes
                                .entry(node.clone())
                                .or_default()
                                .insert(n.checkpoint.clone());
                        }
                        // A node asked for two cases keeps the checkpoint
                        // of its last answer with one.
                        if !n.checkpoint.is_empty() || !answered.contains_key(&node) {
                            answered.insert(node.clone(), n);
                        }
                        for line in lines {
                            if seen.insert((node.clone(), line.index as u64)) {
                                out.entries.push(line);
                            }
                        }
                    }
                }
            }
        }
        // A node asked in several rounds may have proven its answers
        // against different checkpoints (its log grew between them), while
        // the report names one per node: it is asked once more with every
        // basis at once, and its lines are that answer's.
        for (node, seen_notes) in notes {
            if seen_notes.len() < 2 || missing.contains_key(&node) {
                continue;
            }
            out.entries.retain(|e| e.node != node);
            let all: Vec<(String, PartQuery)> = bases
                .iter()
                .filter(|((n, _), _)| *n == node)
                .map(|((_, case), b)| {
                    (
                        case.clone(),
                        PartQuery {
                            case_id: case.clone(),
                            referral_id: b.referral.clone(),
                            request_ids: b.ids.iter().take(MAX_REQUEST_IDS).cloned().collect(),
                            cosignatures: federation
                                .report_quorum(&running.directory, &node)
                                .required,
                        },
                    )
                })
                .collect();
            for (case, q) in all {
                match self
                    .part_of(federation, &running, ask, &node, &case, q)
                    .await
                {
                    Err(why) => {
                        missing.insert(node.clone(), why);
                    }
                    Ok((_, lines, n)) => {
                        answered.insert(node.clone(), n);
                        out.entries.extend(lines);
                    }
                }
            }
        }
        for (node, n) in answered.iter_mut() {
            let Some(ids) = expected.get(node) else {
                continue;
            };
            let asked: BTreeSet<&String> = bases
                .iter()
                .filter(|((n, _), _)| n == node)
                .flat_map(|(_, b)| b.asked.iter())
                .collect();
            let lacking: Vec<&String> = ids
                .iter()
                .filter(|id| asked.contains(id))
                .filter(|id| {
                    !out.entries
                        .iter()
                        .any(|e| e.node == *node && e.request_id == **id)
                })
                .collect();
            if lacking.is_empty() {
                continue;
            }
            tracing::warn!(node = %node, lacking = lacking.len(), "a node's part of a subject access report lacks calls this node served with it");
            let shown: Vec<&str> = lacking.iter().take(5).map(|id| id.as_str()).collect();
            let warning = format!(
                "node {node} answered without {} call{} this node's own records show it served with that node (request id{} {}{}): its log lacks them (it went back, or was restored from an older copy); lines from it are missing",
                lacking.len(),
                if lacking.len() == 1 { "" } else { "s" },
                if lacking.len() == 1 { "" } else { "s" },
                shown.join(", "),
                if lacking.len() > shown.len() {
                    ", …"
                } else {
                    ""
                }
            );
            n.log_warning = if n.log_warning.is_empty() {
                warning
            } else {
                format!("{}; {warning}", n.log_warning)
            };
            n.witness_alarm = true;
            if let Err(e) = n.check_witnesses() {
                tracing::warn!(node = %node, error = %e, "a node's cosignatures do not verify");
            }
        }
        for (node, n) in answered {
            if !missing.contains_key(&node) {
                out.nodes.push(n);
            }
        }
        for (node, why) in missing {
            // Lines of a node that failed later are not kept half.
            out.entries.retain(|e| e.node != node);
            out.nodes.push(ReportNode::missing(&node, why));
        }
        out
    }

    /// Asks node `node` for its part of case `case` and checks it: its
    /// links, its lines and the node as the report names it (checkpoint,
    /// key, witnesses). Errors: why the node's part is missing, in words.
    async fn part_of(
        &self,
        federation: &Arc<Federation>,
        running: &crate::federation::Running,
        ask: &AskPart<'_>,
        node: &str,
        case: &str,
        q: PartQuery,
    ) -> Result<(Vec<Link>, Vec<ReportEntry>, ReportNode), String> {
        let part = ask(federation.clone(), node.to_string(), q)
            .await
            .map_err(|e| format!("it did not answer: {e}"))?;
        let checked = self
            .verified(&running.directory, node, case, &part)
            .map_err(|e| e.to_string());
        let lines = match checked {
            Ok(lines) => lines,
            Err(e) => {
                tracing::warn!(node = %node, error = %e, "a node's part of a subject access report does not verify");
                return Err(format!("its answer does not verify: {e}"));
            }
        };
        let (log_warning, witness_alarm) = self.log_warning(running, node, &part).await;
        if !log_warning.is_empty() {
            tracing::warn!(node = %node, "a node's part of a subject access report may lack lines: its log went back or forked");
        }
        let mut n = ReportNode {
            node: node.to_string(),
            checkpoint: part
                .checkpoint
                .clone()
                .map(|(note, _)| note)
                .unwrap_or_default(),
            verifier_key: running
                .directory
                .node(node)
                .map(|n| n.log_key.clone())
                .unwrap_or_default(),
            answered: true,
            quorum: federation.report_quorum(&running.directory, node),
            log_warning,
            witness_alarm,
            ..ReportNode::default()
        };
        if let Err(e) = n.check_witnesses() {
            tracing::warn!(node = %node, error = %e, "a node's part of a subject access report does not verify");
            return Err(format!("its answer does not verify: {e}"));
        }
        Ok((part.links, lines, n))
    }

    /// Why lines of node `node`'s (verified) `part` may be missing, in
    /// words for the officer ("" when nothing says so): a witness alarm
    /// this node keeps about it (its log went back or forked, whatever it
    /// signs since), or a latest checkpoint (the one it says it has now,
    /// or the one its lines are proven against if larger) smaller than the
    /// newest this node's witness cosigned for it, or of that size with
    /// another root, or one that does not verify. A larger checkpoint is
    /// judged by the witnesses' own rounds (consistency proofs), whose
    /// alarms this reads.
    async fn log_warning(
        &self,
        running: &crate::federation::Running,
        node: &str,
        part: &Part,
    ) -> (String, bool) {
        match self.store.witness_alarms().await {
            Ok(alarms) => {
                if let Some(a) = alarms.iter().find(|a| a.node == node && a.open()) {
                    let what = if a.kind == crate::federation::witness::AlarmKind::Rollback.as_str()
                    {
                        "its log went back"
                    } else {
                        "its log forked"
                    };
                    return (
                        format!(
                            "node {node} is under a witness alarm ({} {}): {what}; lines from it may be missing",
                            a.id, a.kind
                        ),
                        true,
                    );
                }
            }
            Err(e) => {
                return (
                    format!(
                        "node {node}: whether it is under a witness alarm could not be read ({e}); lines from it may be missing"
                    ),
                    false,
                );
            }
        }
        let seen = match self.store.witnessed(node).await {
            Ok(Some(w)) => w,
            Ok(None) => return (String::new(), false),
            Err(e) => {
                return (
                    format!(
                        "node {node}: the checkpoint this node's witness last cosigned for it could not be read ({e}); lines from it may be missing"
                    ),
                    false,
                );
            }
        };
        let Some(listed) = running.directory.node(node) else {
            return (String::new(), false);
        };
        let Ok(seen) = Checkpoint::verify(&seen.note, &listed.log_key) else {
            return (String::new(), false);
        };
        let proven = part
            .checkpoint
            .as_ref()
            .and_then(|(note, _)| Checkpoint::verify(note, &listed.log_key).ok());
        let latest = if part.latest.is_empty() {
            None
        } else {
            match verify_checkpoint(node, &part.latest, &listed.log_key) {
                Ok(cp) => Some(cp),
                Err(e) => {
                    return (
                        format!(
                            "node {node}'s latest checkpoint does not verify ({e}); lines from it may be missing"
                        ),
                        true,
                    );
                }
            }
        };
        // The larger of the two: a node proves against an older cosigned
        // checkpoint, which is no sign of anything by itself.
        let answered = match (proven, latest) {
            (Some(p), Some(l)) => Some(if p.size > l.size { p } else { l }),
            (p, l) => l.or(p),
        };
        match answered {
            Some(cp) if cp.size < seen.size => (
                format!(
                    "node {node} answered with its log at size {}, smaller than the size {} this node's witness already cosigned: its log went back; lines from it may be missing",
                    cp.size, seen.size
                ),
                true,
            ),
            Some(cp) if cp.size == seen.size && cp.root != seen.root => (
                format!(
                    "node {node} answered with a checkpoint of size {} that differs from the one of that size this node's witness cosigned: its log forked; lines from it may be missing",
                    cp.size
                ),
                true,
            ),
            _ => (String::new(), false),
        }
    }

    /// A node's part, checked: its checkpoint signed with the key the
    /// running directory lists for the node (its cosignatures are counted
    /// by the caller, [`ReportNode::check_witnesses`]),
    /// each entry's proof against it, each entry about the case (or one of
    /// the node's forwarded calls); the lines worded from the leaves.
    fn verified(
        &self,
        directory: &Directory,
        node: &str,
        case_id: &str,
        part: &Part,
    ) -> Result<Vec<ReportEntry>, PartError> {
        let listed = directory.node(node).ok_or(PartError::Unlisted)?;
        let cp = match &part.checkpoint {
            Some((note, size)) => {
                let cp = verify_checkpoint(node, note, &listed.log_key)?;
                if cp.size != *size {
                    return Err(PartError::Size);
                }
                Some(cp)
            }
            None if part.entries.is_empty() => None,
            None => return Err(PartError::NoCheckpoint),
        };
        let registry = self.registry();
        let mut lines = Vec::with_capacity(part.entries.len());
        for e in &part.entries {
            let record =
                AccessRecord::decode(&e.leaf).ok_or(PartError::Undecodable { index: e.index })?;
            if record.case_id.as_deref().is_some_and(|c| c != case_id) {
                return Err(PartError::OtherCase { index: e.index });
            }
            let proof = match (&cp, e.hashes.is_empty()) {
                (Some(cp), false) => {
                    merkle::verify_inclusion(
                        e.index,
                        cp.size,
                        &merkle::leaf_hash(&e.leaf),
                        &e.hashes,
                        &cp.root,
                    )
                    .map_err(|source| PartError::Proof {
                        index: e.index,
                        source,
                    })?;
                    Some(EntryProof {
                        tree_size: cp.size,
                        hashes: e.hashes.clone(),
                    })
                }
                // Not covered by the checkpoint yet: the line is shown, and
                // says it has no proof.
                _ => None,
            };
            let access = Access::of(&record, &registry);
            lines.push(ReportEntry {
                index: e.index as i64,
                summary: describe(&access, super::oversight::Lang::En),
                node: node.to_string(),
                request_id: record.request_id.clone(),
                case_id: record.case_id.clone(),
                leaf: e.leaf.clone(),
                proof,
                access,
            });
        }
        Ok(lines)
    }
}

/// Whether node `asking` was party to the call of record `r` on this
/// node: it forwarded the call here (`from_node`), or this node forwarded
/// the call to it (the forwarding record's detail names it).
fn party_to(r: &AccessRecord, asking: &str) -> bool {
    r.from_node.as_deref() == Some(asking)
        || super::forwarded::forwarded_to(&r.detail) == Some(asking)
}

/// The other node a record of this node shows on its case's trail: the
/// node a referral went to (`ReferCase`, as its record names it) or came
/// from (`AcceptReferral`: the node the directory says hosts the handing
/// owner), the node a call was forwarded to (`forwarded`'s record names
/// it), or the home node of a caller another node hosts (a call that node
/// forwarded here). Refused and failed calls are no trail.
fn trail_node(r: &AccessRecord, directory: &Directory) -> Option<String> {
    if r.decision == Decision::Error {
        return None;
    }
    if let Some(node) = super::forwarded::forwarded_to(&r.detail) {
        return Some(node.to_string());
    }
    if r.decision != Decision::Allowed
        && matches!(r.method.as_str(), "ReferCase" | "AcceptReferral")
    {
        return None;
    }
    if r.method == "ReferCase" {
        return super::referral::referred_to(&r.detail).map(str::to_string);
    }
    directory.home_of(&r.caller).map(|(n, _)| n.id.clone())
}

/// A node's signed checkpoint, verified with the key the directory lists
/// for the node and of that node's log (C2SP tlog-checkpoint origin). Its
/// cosignatures are counted apart ([`ReportNode::check_witnesses`]).
pub(crate) fn verify_checkpoint(
    node: &str,
    note: &str,
    log_key: &str,
) -> Result<Checkpoint, PartError> {
    let cp = Checkpoint::verify(note, log_key)?;
    if cp.origin != checkpoint::origin(node) {
        return Err(PartError::Origin(cp.origin));
    }
    Ok(cp)
}

fn stored(e: StoreError) -> ExchangeError {
    ExchangeError::store("access log", &e)
}
