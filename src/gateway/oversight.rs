//! What privacy officers (and, through them, the migrant) get out of the
//! access log: queries, the subject access report (GDPR art. 15), signed
//! checkpoints, and inclusion and consistency proofs anyone can check
//! offline.
//!
//! The proofs themselves are the log's ([`crate::tlog::proof`]); the report
//! is made here from stored records and the node's registry. The methods on
//! [`Exchange`] add the role check and an access record of their own; the
//! `sluis audit` commands call the report and proofs directly on a node's
//! database.

use std::fmt::Write as _;

use crate::gateway::pseudonym::{AUDIT_DOMAIN, Pseudonymiser};
use crate::gateway::validate::{self, SubjectKey};
use crate::gateway::{Exchange, ExchangeError, RequestCtx, Resource};
use crate::model::{Category, Role};
use crate::net::identity::Registry;
use crate::store::{CaseMeta, LogFilter, LogRow, Store, StoreError, StoredCheckpoint};
use crate::tlog::proof::{self, ConsistencyProof, InclusionProof, LeafRef, ProofError};
use crate::tlog::{AccessRecord, RecordView, Recorded};

/// Why a subject access report could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReportError {
    #[error("entry {index} does not decode; run `sluis audit verify`")]
    Undecodable { index: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One line of a subject access report.
#[derive(Clone, Debug)]
pub(crate) struct ReportEntry {
    pub(crate) index: i64,
    pub(crate) record: AccessRecord,
    /// The organisation's name from the node's registry.
    pub(crate) organisation: String,
    /// The entry in plain words.
    pub(crate) summary: String,
}

#[derive(Clone, Debug)]
pub(crate) struct SubjectReport {
    pub(crate) case_ids: Vec<String>,
    pub(crate) entries: Vec<ReportEntry>,
    /// The whole report, printable.
    pub(crate) text: String,
}

fn category_words(c: Category) -> &'static str {
    match c {
        Category::Identity => "identity (name, date of birth, nationality, V-number, BSN)",
        Category::ResidenceProcedure => "residence procedure",
        Category::Shelter => "shelter",
        Category::Guidance => "guidance",
        Category::Perspective => "perspective",
        Category::Medical => "medical information",
        Category::Safety => "safety information",
        Category::Outcome => "outcome",
    }
}

fn reason_words(r: &str) -> &str {
    match r {
        "not_permitted_for_role_and_purpose" => "not permitted for this organisation and purpose",
        "no_consent" => "you had not consented",
        "consent_withdrawn" => "you had withdrawn your consent",
        "consent_expired" => "your consent had expired",
        "consent_not_yet_valid" => "your consent was not valid yet",
        "actor_required" => "the employee was not named",
        "not_present" => "no such information was recorded",
        other => other,
    }
}

fn method_words(m: &str) -> &str {
    match m {
        "RegisterCase" => "registered your case",
        "UpdateCase" => "updated your case",
        "GetCase" => "asked to see your case",
        "FindCases" => "listed cases, yours among them",
        "QueryAccess" | "tlog-tiles/entries" => "read entries of this access log about you",
        "GetInclusionProof" => "proved an entry about you is in this access log",
        "GrantConsent" => "recorded your consent",
        "WithdrawConsent" => "recorded the withdrawal of your consent",
        "ListConsents" => "looked at your consents",
        "GetConsentReceipt" => "made a receipt of your consent",
        "SubjectAccessReport" => "made this kind of report about you",
        other => other,
    }
}

fn summary(rec: &AccessRecord, organisation: &str) -> String {
    let mut s = format!(
        "{organisation} ({}) {}",
        rec.role,
        method_words(&rec.method)
    );
    if let Some(p) = &rec.purpose {
        let _ = write!(s, " for the purpose \"{p}\"");
    }
    s.push('.');
    if rec.method == "GetCase" {
        if rec.released.is_empty() {
            s.push_str(" Nothing was shared.");
        } else {
            let shared: Vec<&str> = rec.released.iter().map(|c| category_words(*c)).collect();
            let _ = write!(s, " Shared: {}.", shared.join(", "));
        }
        if !rec.withheld.is_empty() {
            let held: Vec<String> = rec
                .withheld
                .iter()
                .map(|(c, r)| format!("{} ({})", category_words(*c), reason_words(r)))
                .collect();
            let _ = write!(s, " Not shared: {}.", held.join("; "));
        }
    } else if rec.status != "OK" {
        let _ = write!(s, " It was refused ({}).", rec.status);
    }
    s
}

/// A case a report covers: its id and its subject's pseudonym in the audit
/// domain, under which the log names the subject.
#[derive(Clone, Debug)]
pub(crate) struct ReportedCase {
    pub(crate) case_id: String,
    pub(crate) subject: String,
}

impl ReportedCase {
    /// The case as a report covers it; `secret` is the node's pseudonym key.
    pub(crate) fn of(case: &CaseMeta, secret: &[u8; 32]) -> ReportedCase {
        ReportedCase {
            case_id: case.id.clone(),
            subject: Pseudonymiser::new(secret).pseudonym(AUDIT_DOMAIN, &case.subject_ref),
        }
    }
}

/// Every access to the cases of one subject, in order, with the report
/// text: each entry of a case, and each entry that names its subject among
/// others (a listing that returned it, an officer's read of the log).
pub(crate) async fn subject_report(
    store: &Store,
    registry: &Registry,
    node_name: &str,
    cases: &[ReportedCase],
) -> Result<SubjectReport, ReportError> {
    let mut entries = Vec::new();
    for case in cases {
        let mut start = 0;
        loop {
            let rows = store
                .subject_log(&case.case_id, &case.subject, start, 1000)
                .await?;
            let Some(last) = rows.last() else { break };
            start = last.seq + 1;
            for row in rows {
                entries.push(report_entry(row, registry)?);
            }
        }
    }
    entries.sort_by_key(|e| e.index);
    entries.dedup_by_key(|e| e.index);
    let case_ids: Vec<String> = cases.iter().map(|c| c.case_id.clone()).collect();
    let mut text = String::new();
    let _ = writeln!(text, "Who saw my data — access report (GDPR art. 15)");
    let _ = writeln!(text, "Node: {node_name}");
    let _ = writeln!(
        text,
        "Made: {}",
        crate::model::clock::rfc3339(crate::model::clock::now_millis())
    );
    let _ = writeln!(text, "Cases: {}", case_ids.join(", "));
    let _ = writeln!(text, "Entries: {}\n", entries.len());
    for e in &entries {
        let _ = writeln!(
            text,
            "{}  #{}  {}",
            crate::model::clock::rfc3339(e.record.at),
            e.index,
            e.summary
        );
    }
    let _ = writeln!(
        text,
        "\nEvery entry is in the node's tamper-evident access log; #N is its position, \
for which the node can prove inclusion against a signed checkpoint."
    );
    Ok(SubjectReport {
        case_ids,
        entries,
        text,
    })
}

fn report_entry(row: LogRow, registry: &Registry) -> Result<ReportEntry, ReportError> {
    let record =
        AccessRecord::decode(&row.record).ok_or(ReportError::Undecodable { index: row.seq })?;
    let organisation = registry
        .participant(&record.caller)
        .map(|p| p.name.clone())
        .unwrap_or_else(|| record.caller.clone());
    Ok(ReportEntry {
        index: row.seq,
        summary: summary(&record, &organisation),
        organisation,
        record,
    })
}

/// Whose access report is asked for. A V-number or BSN is checked as on
/// registration ([`SubjectKey`]) after the caller is known to be an officer.
pub(crate) enum SubjectRef {
    CaseId(String),
    VNumber(String),
    Bsn(String),
}

/// Most entries one query returns; the caller resumes from the last index.
const MAX_QUERY: i64 = 10_000;
/// Most subjects one `QueryAccess` record names (beyond those of its first
/// entry): a bound on the record's size.
pub(super) const MAX_NAMED: usize = 10_000;

impl Exchange {
    fn officer<'a>(&self, ctx: &'a RequestCtx) -> Result<&'a crate::model::Caller, ExchangeError> {
        let caller = self.caller(ctx)?;
        if caller.role != Role::PrivacyOfficer {
            return Err(ExchangeError::Forbidden(
                "only a privacy officer (role privacy_officer) may read this node's access log"
                    .into(),
            ));
        }
        Ok(caller)
    }

    /// The cases registered for a subject, through the keyed index.
    async fn cases_of(&self, key: &SubjectKey) -> Result<Vec<String>, ExchangeError> {
        self.store
            .cases_by_subject(key.kind(), &self.subject_digest(key))
            .await
            .map_err(internal)
    }

    /// Up to `limit` (0: 1000; at most 10,000) log rows matching `filter`
    /// from index `start` on. Errors: `Forbidden` (not a privacy officer),
    /// `Invalid`, `AuditUnavailable`, `Internal`.
    pub(crate) async fn query_access(
        &self,
        ctx: &RequestCtx,
        filter: LogFilter,
        start: i64,
        limit: i64,
    ) -> Result<Recorded<Vec<LogRow>>, ExchangeError> {
        let mut rec = self.record(ctx, "QueryAccess");
        let result = async {
            self.officer(ctx)?;
            self.check_filter(&filter)?;
            if limit < 0 {
                return Err(ExchangeError::Invalid(validate::Invalid::new(
                    "limit",
                    "limit must not be negative: 0 asks for 1000 entries, and at most 10000 are sent",
                )));
            }
            // AIP-158: a page size above the maximum is read as the maximum.
            let limit = match limit {
                0 => 1000,
                n => n.min(MAX_QUERY),
            };
            rec.case_id = filter.case_id.clone();
            let mut rows = self
                .store
                .query_log(&filter, start, limit)
                .await
                .map_err(internal)?;
            // The entries handed out name subjects: each of their reports
            // shows that an officer read them. One record names at most
            // MAX_NAMED: the page stops before the entry that would pass it
            // (the officer resumes from there); the first entry always goes.
            let mut named = std::collections::BTreeSet::new();
            let mut keep = 0;
            for r in &rows {
                let subjects = subjects_named(&r.record);
                let new = subjects.iter().filter(|s| !named.contains(*s)).count();
                if keep > 0 && named.len() + new > MAX_NAMED {
                    break;
                }
                named.extend(subjects);
                keep += 1;
            }
            rows.truncate(keep);
            rec.subjects = named.into_iter().collect();
            rec.decision = crate::tlog::Decision::Allowed;
            rec.detail = format!("{} entries from index {start}", rows.len());
            Ok(rows)
        }
        .await;
        self.finish(rec, result).await
    }

    /// Each filter value checked as the field is everywhere else, so a typo
    /// is an error rather than an empty answer that reads as "no accesses".
    /// `-` stands for "not registered" as caller and role.
    fn check_filter(&self, f: &LogFilter) -> Result<(), ExchangeError> {
        if let Some(c) = f.caller.as_deref().filter(|c| *c != "-") {
            validate::participant_id("caller", c)?;
        }
        if let Some(r) = f.role.as_deref().filter(|r| *r != "-") {
            validate::role("role", r)?;
        }
        if let Some(m) = &f.method {
            validate::method("method", m)?;
        }
        if let Some(p) = &f.purpose {
            self.check_purpose_at("purpose", p)?;
        }
        if let Some(d) = &f.decision {
            validate::decision("decision", d)?;
        }
        if let Some(id) = &f.case_id {
            validate::uuid("case_id", id)?;
        }
        if let Some(s) = &f.subject {
            validate::pseudonym("subject", s)?;
        }
        validate::time_range(("since", f.since), ("until", f.until))?;
        Ok(())
    }

    /// Every access to a subject's cases (GDPR art. 15), found by case id
    /// or through the keyed index by V-number or BSN. Errors: `Forbidden`,
    /// `Invalid` (checked as on registration), `NotFound`,
    /// `AuditUnavailable`, `Internal`.
    pub(crate) async fn subject_access_report(
        &self,
        ctx: &RequestCtx,
        subject: SubjectRef,
    ) -> Result<Recorded<SubjectReport>, ExchangeError> {
        let mut rec = self.record(ctx, "SubjectAccessReport");
        let result = async {
            self.officer(ctx)?;
            let case_ids = match subject {
                SubjectRef::CaseId(id) => {
                    let case = self.case_by_id(&id).await?;
                    vec![case.id]
                }
                SubjectRef::VNumber(v) => {
                    self.cases_of(&SubjectKey::v_number("v_number", &v)?)
                        .await?
                }
                SubjectRef::Bsn(b) => self.cases_of(&SubjectKey::bsn("bsn", &b)?).await?,
            };
            if case_ids.is_empty() {
                return Err(ExchangeError::not_found(
                    Resource::Case,
                    None,
                    "no case is registered for this subject",
                ));
            }
            let mut cases = Vec::with_capacity(case_ids.len());
            for id in &case_ids {
                if let Some(meta) = self.store.case_meta(id).await.map_err(internal)? {
                    cases.push(ReportedCase {
                        case_id: meta.id.clone(),
                        subject: self.subject_for_audit(&meta),
                    });
                }
            }
            match cases.as_slice() {
                [only] => {
                    rec.case_id = Some(only.case_id.clone());
                    rec.subject = Some(only.subject.clone());
                }
                all => rec.subjects = all.iter().map(|c| c.subject.clone()).collect(),
            }
            let report = subject_report(&self.store, &self.registry, &self.node_name, &cases)
                .await
                .map_err(report_error)?;
            rec.decision = crate::tlog::Decision::Allowed;
            rec.detail = format!("{} entries reported", report.entries.len());
            Ok(report)
        }
        .await;
        self.finish(rec, result).await
    }

    /// The signed checkpoint of `size`, or the latest. Errors: `Forbidden`,
    /// `NotFound` (no such size), `CheckpointPending` (none yet),
    /// `AuditUnavailable`, `Internal`.
    pub(crate) async fn get_checkpoint(
        &self,
        ctx: &RequestCtx,
        size: Option<u64>,
    ) -> Result<Recorded<StoredCheckpoint>, ExchangeError> {
        let mut rec = self.record(ctx, "GetCheckpoint");
        let result = async {
            self.officer(ctx)?;
            let cp = proof::checkpoint(&self.store, size)
                .await
                .map_err(proof_error)?;
            rec.decision = crate::tlog::Decision::Allowed;
            Ok(cp)
        }
        .await;
        self.finish(rec, result).await
    }

    /// An inclusion proof for an entry (by request id or index) against a
    /// signed checkpoint. An entry written a moment ago (the common case: a
    /// caller proving the call it just made) is covered by the next
    /// checkpoint, signed within `checkpoint_interval`; rather than have
    /// every client retry, the proof waits for it, up to
    /// [`COVERAGE_WAIT`] intervals. Errors: `Forbidden`, `Invalid`,
    /// `NotFound`, `OutOfRange`, `CheckpointPending` (still not covered),
    /// `AuditUnavailable`, `Internal`.
    pub(crate) async fn get_inclusion_proof(
        &self,
        ctx: &RequestCtx,
        leaf: LeafRef,
        tree_size: Option<u64>,
    ) -> Result<Recorded<InclusionProof>, ExchangeError> {
        let mut rec = self.record(ctx, "GetInclusionProof");
        let result = async {
            self.officer(ctx)?;
            if let LeafRef::RequestId(id) = &leaf {
                validate::uuid("access_record_id", id)?;
            }
            let wait = self.checkpoint_interval() * COVERAGE_WAIT;
            let give_up = tokio::time::Instant::now() + wait.min(MAX_COVERAGE_WAIT);
            let proof = loop {
                match proof::inclusion_proof(&self.store, leaf.clone(), tree_size).await {
                    Err(ProofError::NotCoveredYet { .. } | ProofError::NoCheckpointYet)
                        if tree_size.is_none() && tokio::time::Instant::now() < give_up =>
                    {
                        tokio::time::sleep(COVERAGE_POLL).await;
                    }
                    result => break result.map_err(proof_error)?,
                }
            };
            rec.subjects = subjects_named(&proof.leaf);
            rec.decision = crate::tlog::Decision::Allowed;
            rec.detail = format!("entry {} in tree of size {}", proof.index, proof.tree_size);
            Ok(proof)
        }
        .await;
        self.finish(rec, result).await
    }

    /// A consistency proof from `old` to `new` (default: the latest
    /// checkpoint's size). Errors: `Forbidden`, `Invalid` (range),
    /// `CheckpointPending` (none yet), `AuditUnavailable`, `Internal`.
    pub(crate) async fn get_consistency_proof(
        &self,
        ctx: &RequestCtx,
        old: u64,
        new: Option<u64>,
    ) -> Result<Recorded<ConsistencyProof>, ExchangeError> {
        let mut rec = self.record(ctx, "GetConsistencyProof");
        let result = async {
            self.officer(ctx)?;
            let proof = proof::consistency_proof(&self.store, old, new)
                .await
                .map_err(proof_error)?;
            rec.decision = crate::tlog::Decision::Allowed;
            Ok(proof)
        }
        .await;
        self.finish(rec, result).await
    }
}

/// How many checkpoint intervals an inclusion proof waits for its entry
/// to be covered before answering `CheckpointPending`.
const COVERAGE_WAIT: u32 = 2;
/// The longest that wait, whatever the interval.
const MAX_COVERAGE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// How often the wait looks for the new checkpoint (three small reads).
const COVERAGE_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// Every subject an encoded access record names: its own and its others.
pub(super) fn subjects_named(record: &[u8]) -> Vec<String> {
    RecordView::parse(record)
        .map(|v| {
            v.subject
                .into_iter()
                .chain(v.subjects())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn internal(e: StoreError) -> ExchangeError {
    ExchangeError::store("access log", &e)
}

/// A failed read of the log fails closed without saying more than that.
fn log_read_failed(e: &dyn std::error::Error) -> ExchangeError {
    ExchangeError::internal("access log", &e)
}

fn report_error(e: ReportError) -> ExchangeError {
    match e {
        ReportError::Store(e) => internal(e),
        e => log_read_failed(&e),
    }
}

/// What the asker can act on keeps its message; a damaged log does not
/// explain itself to the caller (the node's log says it).
pub(super) fn proof_error(e: ProofError) -> ExchangeError {
    match e {
        ProofError::NoCheckpointOfSize { size } => {
            let size = size.to_string();
            ExchangeError::not_found(Resource::Checkpoint, Some(&size), &e.to_string())
        }
        ProofError::NoSuchRecord => {
            ExchangeError::not_found(Resource::AccessEntry, None, &e.to_string())
        }
        ProofError::BadRange { .. } => {
            ExchangeError::Invalid(validate::Invalid::new("new_size", e.to_string()))
        }
        ProofError::PastTheEnd { .. } => {
            ExchangeError::OutOfRange(validate::Invalid::new("index", e.to_string()))
        }
        ProofError::NoCheckpointYet | ProofError::NotCoveredYet { .. } => {
            ExchangeError::CheckpointPending
        }
        ProofError::Store(e) => internal(e),
        ProofError::NodesMissing | ProofError::EntryMissing { .. } => log_read_failed(&e),
    }
}
