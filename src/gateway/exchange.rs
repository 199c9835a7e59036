//! The request path for case and consent methods, in the order every call
//! takes it: identify → validate → decide → pseudonymise → audit → respond.
//!
//! The gRPC layer converts protobuf to the types here and back; everything
//! that decides what leaves the node happens in the gateway. Every public
//! method ends in [`Exchange::finish`], which makes the access record durable
//! and only then hands back the result as [`Recorded`]. A write is applied
//! only after its record is durable; a read's data is in memory only until
//! then.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};

use crate::gateway::error::{Code, ExchangeError, Resource};
use crate::gateway::idempotency::{IdempotencyKey, InFlight};
use crate::gateway::officer::OfficerKey;
use crate::gateway::pseudonym::Pseudonymiser;
use crate::gateway::referral::Asking;
use crate::gateway::release::{self, Asker, Holdings, Withheld};
use crate::gateway::validate::{self, Invalid, SubjectKey};
use crate::gateway::vault::{CaseKey, Keys};
use crate::model::clock::now_millis;
use crate::model::consent::{self, Consent, ConsentEvent, EventKind, Millis, Recipient};
use crate::model::trace::TraceContext;
use crate::model::{Caller, Category, Role, WithholdReason};
use crate::net::identity::{Peer, Registry};
use crate::net::sources::Summary;
use crate::net::tls::HandshakeFailure;
use crate::policy::Policy;
use crate::store::{
    CaseChange, CaseMeta, CaseUpdate, IssuedPseudonym, NewCase, RequestKey, Store, StoreError,
};
use crate::tlog::note;
use crate::tlog::{AccessRecord, AuditLog, Decision, LdvStatus, Recorded, SubjectIdType};

fn internal(e: impl std::fmt::Display) -> ExchangeError {
    ExchangeError::internal("storage", &e)
}

/// A case's key for one request: unwrapped by the first step that needs it
/// (naming the subject for the privacy officer, opening what a read
/// releases) and kept for the others — each unwrap is an AES-GCM open and
/// an AES key schedule.
pub(super) struct CaseKeyOnce<'a> {
    case: &'a CaseMeta,
    key: std::cell::OnceCell<Result<Option<CaseKey>, crate::gateway::vault::VaultError>>,
}

impl<'a> CaseKeyOnce<'a> {
    pub(super) fn new(case: &'a CaseMeta) -> CaseKeyOnce<'a> {
        CaseKeyOnce {
            case,
            key: std::cell::OnceCell::new(),
        }
    }
}

/// A store error: `UNAVAILABLE` when the database cannot be reached,
/// internal otherwise.
fn stored(e: StoreError) -> ExchangeError {
    ExchangeError::store("storage", &e)
}

/// What the node knows about a request before it looks at the message.
#[derive(Clone, Debug)]
pub(crate) struct RequestCtx {
    pub(crate) request_id: String,
    pub(crate) peer: Peer,
    /// The acting employee's id from `x-sluis-actor`, already checked for shape.
    pub(crate) actor: Option<String>,
    /// The request's trace and span, and the caller's operation it
    /// continues (made once, at the gRPC edge: `rpc::trace`).
    pub(crate) trace: TraceContext,
}

/// What a request names of a subject, read from its message before the
/// message's shape or values are checked. A refused request that names a
/// case is still an access its subject may ask about (GDPR art. 15), so
/// [`Exchange::refuse`] names the case in the record when the name finds
/// one.
#[derive(Debug, Default)]
pub(crate) enum Named {
    #[default]
    Nothing,
    /// A case id.
    Case(String),
    /// The caller's own pseudonym for a subject.
    Pseudonym(String),
    /// A consent id: its case.
    Consent(String),
}

/// Which case a read names: its id (a lower-case UUID), or the caller's own
/// pseudonym for its subject (`ps1.…`, as this node issued it to the caller).
pub(crate) enum CaseRef {
    Id(String),
    Pseudonym(String),
}

/// A read: which case, why (a purpose the policy knows), which categories.
pub(crate) struct GetCase {
    pub(crate) subject: CaseRef,
    pub(crate) purpose: String,
    /// Empty: all categories.
    pub(crate) categories: Vec<Category>,
    /// The emergency justification (`GetCaseRequest.emergency_justification`),
    /// `None` when not given; checked by `read_case`.
    pub(crate) justification: Option<String>,
}

/// What a reader receives: the case id only if it named the case by id, its
/// own pseudonym, the released categories' plaintext payloads (opaque bytes
/// here, encoded messages to the gRPC layer), in category order, and the
/// withheld ones with reasons.
pub(crate) struct CaseView {
    pub(crate) case_id: Option<String>,
    pub(crate) pseudonym: String,
    pub(crate) released: Vec<(Category, Vec<u8>)>,
    pub(crate) withheld: Vec<Withheld>,
}

/// A registered case: its id and the owner's pseudonym for its subject.
pub(crate) struct Registered {
    pub(crate) case_id: String,
    pub(crate) pseudonym: String,
}

/// Which cases a listing covers: the caller's own (with ids), or those a
/// consent names it for (by its pseudonyms only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    Own,
    Visible,
}

/// A listing. `purpose` is required for [`Scope::Visible`].
pub(crate) struct FindCases {
    pub(crate) scope: Scope,
    pub(crate) purpose: String,
    /// 0: 50; above 500: 500 (AIP-158); negative: refused.
    pub(crate) page_size: i32,
    /// The previous page's token, empty for the first page.
    pub(crate) after: String,
}

/// One case of a listing; `case_id` only for the caller's own cases.
pub(crate) struct CaseSummary {
    pub(crate) case_id: Option<String>,
    pub(crate) pseudonym: String,
    pub(crate) owner: String,
    pub(crate) version: i64,
    pub(crate) updated_at: Millis,
}

/// Consent terms as the case owner records them. Times are ms since the
/// epoch (UTC); no `valid_from` means from now.
pub(crate) struct NewConsent {
    pub(crate) case_id: String,
    pub(crate) recipients: Vec<Recipient>,
    pub(crate) categories: Vec<Category>,
    pub(crate) purposes: Vec<String>,
    pub(crate) valid_from: Option<Millis>,
    pub(crate) valid_until: Option<Millis>,
    pub(crate) evidence_ref: String,
}

/// A consent receipt: a C2SP signed note the subject can keep, and the key
/// that verifies it offline.
pub(crate) struct Receipt {
    pub(crate) signed_note: String,
    pub(crate) verifier_key: String,
}

/// The gateway of one node: the request path, with what it needs to decide
/// (policy, registry, store), to seal and pseudonymise (keys), and to record
/// (the log writer).
pub(crate) struct Exchange {
    pub(super) node_name: String,
    pub(super) store: Store,
    pub(crate) keys: Arc<Keys>,
    /// The policy and the participant registry in force: a reload
    /// (`Exchange::reload`) swaps both at once; a request reads each once
    /// (`policy()`, `registry()`) and decides with what it read.
    in_force: RwLock<(Arc<Policy>, Arc<Registry>)>,
    pub(super) pseudonyms: Pseudonymiser,
    /// Idempotency keys being processed now (`idempotency`).
    pub(super) in_flight: InFlight,
    /// The one log writer; only this type's methods append through it.
    pub(super) audit: AuditLog,
    /// (recipient, pseudonym) pairs known to be stored. Rows are never
    /// deleted, so a hit is always true; it saves an insert in the log
    /// batch per `GetCase` (a miss costs only that: the insert is
    /// idempotent). Bounded: emptied when full.
    remembered: Mutex<HashSet<(String, String)>>,
    /// Disclosure control of statistics, and the gate that lets one
    /// statistics computation run at a time (each reads every case).
    /// The gate's permit is moved into the computation's blocking thread,
    /// so it is held as long as the computation runs, even if the request
    /// that started it is dropped.
    pub(super) statistics: (crate::stats::Settings, Arc<tokio::sync::Semaphore>),
    /// Statistics requests per caller and minute (`[statistics]
    /// requests_per_minute`).
    pub(super) statistics_rate: crate::gateway::statistics::Rate,
    /// The longest consent validity window, in ms (`[consent]`).
    consent_max_validity: Millis,
    /// Refusals of unregistered certificates beyond the first few per
    /// certificate and interval, counted instead of recorded one by one.
    unregistered: super::unregistered::Unregistered,
    /// What the Logboek Dataverwerkingen fields of each record need.
    ldv: LdvSettings,
    /// The node's federation, if it is in one (`gateway::forwarded`).
    pub(super) federation: Option<Arc<crate::federation::Federation>>,
    /// The `[retention]` periods (`gateway::retention`).
    pub(super) retention: super::retention::Retention,
    /// The data key version whose rotation the log last announced.
    pub(super) announced: super::retention::Announced,
    /// The names an identity category's payload holds (the gRPC layer's
    /// reader: the payload is opaque here), for free text that must not
    /// name the case's subject (`validate::free_line`).
    identity_names: fn(&[u8]) -> Vec<String>,
    /// Held by a close of an emergency alert from its check for an earlier
    /// review to its review's append, so that of two officers closing one
    /// alert the second finds the first's review (`gateway::emergency`).
    /// Closes are an officer's rare steps; one at a time costs nothing.
    pub(super) closing: tokio::sync::Mutex<()>,
}

/// What the Logboek Dataverwerkingen fields of a record are made from (the
/// configuration's `[processing_log]`).
#[derive(Clone, Debug, Default)]
pub(crate) struct LdvSettings {
    /// The privacy officer's public key: the data subject's id is sealed to
    /// it in every record. Without one, records carry no subject id.
    pub(crate) officer: Option<OfficerKey>,
    /// Purpose → processing activity URI in the register of processing
    /// activities.
    pub(crate) activities: std::collections::BTreeMap<String, String>,
}

/// What a page token is sealed to: its caller and its listing.
fn page_token_aad(caller: &Caller, listing: &str) -> Vec<u8> {
    format!("sluis/v1/page-token/{}/{listing}", caller.participant).into_bytes()
}

/// Most (recipient, pseudonym) pairs `Exchange` remembers having stored
/// (emptied when full). Both are bounded strings (a participant id of at
/// most 64 bytes, a pseudonym of at most 64), so this bounds the set's
/// memory too: about 13 MiB when full.
pub const REMEMBERED_PSEUDONYMS: usize = 65_536;

const MAX_PAGE: u32 = 500;
/// What a caller other than the owner is told of an update.
const UPDATE_BY_OWNER: &str = "only the case owner can update a case";
/// What a caller other than the owner is told of a case's consents.
const CONSENT_BY_OWNER: &str = "only the case owner records and reads consent for a case";
const DEFAULT_PAGE: u32 = 50;

/// What an owner's update writes once its record is durable.
enum Fill {
    /// The categories sealed, the new sealed subject id (when the update
    /// sends identifiers) and the categories cleared: a new version.
    Update(Vec<(Category, Vec<u8>)>, Option<Vec<u8>>, Vec<Category>),
    /// Only the sealed subject id of a case that held none, from an
    /// identity sent again unchanged: the version is kept.
    SubjectId(Vec<u8>),
}

impl Exchange {
    pub(crate) fn new(
        node_name: String,
        store: Store,
        keys: Arc<Keys>,
        policy: Arc<Policy>,
        registry: Arc<Registry>,
        audit: AuditLog,
    ) -> Exchange {
        let (version, newest) = keys.pseudonym_issuing();
        let pseudonyms = Pseudonymiser::new(keys.pseudonym_secret()).issuing_under(version, newest);
        Exchange {
            node_name,
            store,
            keys,
            in_force: RwLock::new((policy, registry)),
            pseudonyms,
            in_flight: InFlight::default(),
            audit,
            remembered: Mutex::default(),
            statistics: (
                crate::stats::Settings::default(),
                Arc::new(tokio::sync::Semaphore::new(1)),
            ),
            statistics_rate: crate::gateway::statistics::Rate::new(30),
            consent_max_validity: 1826 * 86_400_000,
            ldv: LdvSettings::default(),
            unregistered: super::unregistered::Unregistered::new(16),
            federation: None,
            retention: super::retention::Retention::default(),
            announced: super::retention::Announced::default(),
            identity_names: |_| Vec::new(),
            closing: tokio::sync::Mutex::new(()),
        }
    }

    /// How the names in an identity payload are read (`rpc::convert::identity_names`).
    pub(crate) fn with_identity_names(mut self, reader: fn(&[u8]) -> Vec<String>) -> Exchange {
        self.identity_names = reader;
        self
    }

    /// The case's own names, opened in memory only to check free text
    /// against them ([`validate::free_line`]); `sealed` its data when
    /// already read. None for a case without an identity, an erased one,
    /// or one whose identity does not open (the check then has only the
    /// number patterns; nothing is refused for it).
    pub(super) async fn case_names(
        &self,
        case: &CaseMeta,
        sealed: Option<&[(Category, Vec<u8>)]>,
    ) -> Vec<String> {
        if case.erased_at.is_some() {
            return Vec::new();
        }
        let read;
        let sealed = match sealed {
            Some(s) => s,
            None => match self.store.case_with_data(&case.id).await {
                Ok(Some((_, data))) => {
                    read = data;
                    &read
                }
                _ => return Vec::new(),
            },
        };
        let Some((_, identity)) = sealed.iter().find(|(c, _)| *c == Category::Identity) else {
            return Vec::new();
        };
        let Ok(key) = self.case_key(case) else {
            return Vec::new();
        };
        self.keys
            .open_case(
                key.as_ref(),
                &Self::aad(&case.id, Category::Identity),
                identity,
            )
            .map(|plain| (self.identity_names)(&plain))
            .unwrap_or_default()
    }

    /// The `[retention]` periods: per category and for the whole case, ms.
    pub(crate) fn with_retention(
        mut self,
        categories: Vec<(Category, Millis)>,
        case: Option<Millis>,
    ) -> Exchange {
        self.retention = super::retention::Retention { categories, case };
        self
    }

    /// The node's federation (`[federation]`): reads naming another node
    /// are forwarded there.
    pub(crate) fn with_federation(
        mut self,
        federation: Option<Arc<crate::federation::Federation>>,
    ) -> Exchange {
        self.federation = federation;
        self
    }

    /// The officer key and processing activities of the records' Logboek
    /// Dataverwerkingen fields (the configuration's `[processing_log]`).
    pub(crate) fn with_ldv(mut self, ldv: LdvSettings) -> Exchange {
        self.ldv = ldv;
        self
    }

    /// How many requests of one unregistered certificate are recorded one
    /// by one per report interval (`limits.unregistered_records_per_certificate`).
    pub(crate) fn with_unregistered_records(mut self, per_certificate: usize) -> Exchange {
        self.unregistered = super::unregistered::Unregistered::new(per_certificate);
        self
    }

    /// The longest validity window of a consent, in ms (the
    /// configuration's `consent.max_validity_days`; checked there).
    pub(crate) fn with_consent_max_validity(mut self, ms: Millis) -> Exchange {
        self.consent_max_validity = ms;
        self
    }

    /// The disclosure-control settings of the statistics this node answers,
    /// and how many one caller may ask a minute (the configuration's
    /// `[statistics]`; checked there).
    pub(crate) fn with_statistics(
        mut self,
        settings: crate::stats::Settings,
        requests_per_minute: u32,
    ) -> Exchange {
        self.statistics.0 = settings;
        self.statistics_rate = crate::gateway::statistics::Rate::new(requests_per_minute);
        self
    }

    /// The policy in force now.
    pub(super) fn policy(&self) -> Arc<Policy> {
        self.in_force
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
            .clone()
    }

    /// The participant registry in force now.
    pub(super) fn registry(&self) -> Arc<Registry> {
        self.in_force
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .1
            .clone()
    }

    /// Puts a new policy and registry in force together, for the requests
    /// that start from now on (requests under way finish with what they
    /// read), and records the reload: one access record naming the new
    /// policy's version (`detail` says what changed). The swap happens
    /// only once that record is durable, so no request is decided by a
    /// policy the log has not announced; if it cannot be written, the old
    /// policy and registry stay and the error is returned.
    pub(crate) async fn reload(
        &self,
        policy: Arc<Policy>,
        registry: Arc<Registry>,
        detail: String,
    ) -> Result<(), ExchangeError> {
        let mut rec = self.own_step("node.reload", detail);
        rec.policy = Some(policy.sha256());
        self.audit.append(&rec).await.map_err(|e| {
            tracing::error!(error = %e, "the reload could not be recorded");
            ExchangeError::AuditUnavailable
        })?;
        *self
            .in_force
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (policy, registry);
        Ok(())
    }

    /// A record of one of the node's own steps (`method`), taken: the
    /// node as the caller, a request id of its own, `detail` saying what.
    fn own_step(&self, method: &str, detail: String) -> AccessRecord {
        let mut rec = AccessRecord::new(uuid::Uuid::now_v7().to_string(), now_millis(), method);
        rec.caller = self.node_name.clone();
        rec.decision = Decision::Allowed;
        rec.status = Code::Ok.name().into();
        rec.detail = detail;
        rec
    }

    /// Records what a reload did with the federation directory (method
    /// `federation.directory`): taken (`Allowed`, OK) or refused and the
    /// running one kept (`Invalid`, FAILED_PRECONDITION); `detail` says
    /// which serial and why. It names directory serials, node ids and
    /// participant ids (organisations), never a subject.
    /// Errors: `AuditUnavailable` when the record cannot be written.
    pub(crate) async fn record_directory(
        &self,
        taken: bool,
        detail: String,
    ) -> Result<(), ExchangeError> {
        let mut rec = self.own_step("federation.directory", detail);
        if !taken {
            rec.decision = Decision::Invalid;
            rec.status = Code::FailedPrecondition.name().into();
        }
        rec.policy = Some(self.policy().sha256());
        self.audit.append(&rec).await.map_err(|e| {
            tracing::error!(error = %e, "the directory reload could not be recorded");
            ExchangeError::AuditUnavailable
        })?;
        Ok(())
    }

    /// A new access record filled with what is known before the message is
    /// read, naming the policy in force now (a method that decides names
    /// the one it decided with, read once).
    pub(super) fn record(&self, ctx: &RequestCtx, method: &str) -> AccessRecord {
        let mut rec = AccessRecord::new(ctx.request_id.clone(), now_millis(), method);
        rec.policy = Some(self.policy().sha256());
        if let Some(l) = &mut rec.ldv {
            l.trace = ctx.trace.clone();
        }
        match &ctx.peer {
            Peer::Registered(c) => {
                rec.caller = c.participant.clone();
                rec.role = c.role.to_string();
                rec.actor_hash = ctx
                    .actor
                    .as_deref()
                    .map(|a| self.pseudonyms.actor_hash(&c.participant, a));
                // A call from a peer node names that node: the participant
                // it asserted is the caller, or — a node calling as itself —
                // the node is, in the role no participant has.
                rec.from_node = c.node.clone();
                if c.node.as_deref() == Some(c.participant.as_str()) {
                    rec.role = super::oversight::PEER_NODE_ROLE.into();
                }
            }
            Peer::Unregistered { fingerprint } => {
                rec.peer_fingerprint = Some(fingerprint.clone());
            }
        }
        rec
    }

    /// Makes the access record durable, then lets the result through, as
    /// [`Recorded`]: the only way an answer leaves the gateway. Fail closed:
    /// if the record cannot be written, the caller gets `AuditUnavailable`
    /// instead of the result.
    pub(super) async fn finish<T>(
        &self,
        rec: AccessRecord,
        result: Result<T, ExchangeError>,
    ) -> Result<Recorded<T>, ExchangeError> {
        self.finish_issuing(rec, result, &[], "").await
    }

    /// [`finish`](Self::finish) for a request whose refusal should also
    /// say what was asked: a refusal's record then holds the error, then
    /// `asked` (e.g. the table and quarter of a statistics request).
    pub(super) async fn finish_asked<T>(
        &self,
        rec: AccessRecord,
        result: Result<T, ExchangeError>,
        asked: &str,
    ) -> Result<Recorded<T>, ExchangeError> {
        self.finish_issuing(rec, result, &[], asked).await
    }

    /// [`finish`](Self::finish) for a request that hands out pseudonyms
    /// ((pseudonym, case id), to the caller): those not known to be stored
    /// are stored with the access record, in its transaction, so that the
    /// recipient can come back with them.
    async fn finish_issuing<T>(
        &self,
        mut rec: AccessRecord,
        result: Result<T, ExchangeError>,
        issued: &[(String, String)],
        asked: &str,
    ) -> Result<Recorded<T>, ExchangeError> {
        let mut new = Vec::new();
        if result.is_ok()
            && let Ok(known) = self.remembered.lock()
        {
            for (pseudonym, case_id) in issued {
                if !known.contains(&(rec.caller.clone(), pseudonym.clone())) {
                    new.push(IssuedPseudonym {
                        recipient: rec.caller.clone(),
                        pseudonym: pseudonym.clone(),
                        case_id: case_id.clone(),
                    });
                }
            }
        }
        match &result {
            Ok(_) => rec.status = Code::Ok.name().into(),
            Err(e) => {
                rec.status = e.code().name().into();
                rec.decision = e.decision();
                rec.detail = if asked.is_empty() {
                    e.to_string()
                } else {
                    format!("{e}; {asked}")
                };
                rec.released.clear();
                rec.bases.clear();
            }
        }
        self.end_processing(&mut rec);
        crate::telemetry::decided(rec.decision.as_str());
        let request_id = rec.request_id.clone();
        let durable = match self.audit.append_issuing(rec, new.clone()).await {
            Ok(durable) => durable,
            Err(e) => {
                // The writer logs each failed batch; here only the request.
                tracing::debug!(%request_id, error = %e, "refusing request: access record not durable");
                return Err(match e {
                    crate::tlog::AuditError::Refused(_) => ExchangeError::AuditRefused,
                    _ => ExchangeError::AuditUnavailable,
                });
            }
        };
        if !new.is_empty()
            && let Ok(mut known) = self.remembered.lock()
        {
            if known.len() + new.len() > REMEMBERED_PSEUDONYMS {
                known.clear();
            }
            known.extend(new.into_iter().map(|i| (i.recipient, i.pseudonym)));
        }
        result.map(|value| durable.map(|()| value))
    }

    /// Records a write that failed after its access record was made
    /// durable, with the way it failed, and answers that.
    pub(super) async fn failed_after_record(
        &self,
        mut rec: AccessRecord,
        err: ExchangeError,
    ) -> ExchangeError {
        rec.at = now_millis();
        rec.released.clear();
        let recorded = match err {
            ExchangeError::DatabaseUnavailable => ExchangeError::DatabaseUnavailable,
            _ => ExchangeError::Internal("storage"),
        };
        let _ = self.finish::<()>(rec, Err(recorded)).await;
        err
    }

    /// Refuses a request that failed before reaching a method (malformed
    /// message, oversized, bad metadata, unregistered certificate), with an
    /// access record like any other.
    pub(crate) async fn refuse(
        &self,
        ctx: &RequestCtx,
        method: &str,
        err: ExchangeError,
        named: Named,
    ) -> ExchangeError {
        // Every request of an unregistered certificate is refused: past
        // the first few per interval it is counted, not recorded.
        if let Peer::Unregistered { fingerprint } = &ctx.peer
            && !self.unregistered.record(fingerprint, now_millis())
        {
            return err;
        }
        let mut rec = self.record(ctx, method);
        self.name_refused(ctx, &mut rec, named).await;
        match self.finish::<()>(rec, Err(err)).await {
            Err(e) => e,
            Ok(_) => unreachable!("finish passes an error through"),
        }
    }

    /// Names in a refusal's record the case its request named, if the name
    /// finds one for a registered caller (a pseudonym only the caller's
    /// own). A name that is malformed or finds nothing, or a database that
    /// cannot answer, leaves the record as it is: the refusal stays the
    /// answer, never another error.
    async fn name_refused(&self, ctx: &RequestCtx, rec: &mut AccessRecord, named: Named) {
        let Ok(caller) = self.caller(ctx) else {
            return;
        };
        let case_id = match named {
            Named::Nothing => return,
            Named::Case(id) => id,
            Named::Pseudonym(p) => {
                if validate::pseudonym("subject_pseudonym", &p).is_err() {
                    return;
                }
                match self.store.resolve_pseudonym(&caller.participant, &p).await {
                    Ok(Some(id)) => id,
                    // The pseudonym of a case that left names that case.
                    Ok(None) => match self
                        .store
                        .referred_pseudonym_case(&caller.participant, &p)
                        .await
                    {
                        Ok(Some(id)) => id,
                        _ => return,
                    },
                    Err(_) => return,
                }
            }
            Named::Consent(id) => {
                if validate::uuid("consent_id", &id).is_err() {
                    return;
                }
                match self.store.consent(&id).await {
                    Ok(Some(c)) => c.case_id,
                    // A consent that left with its case names the case.
                    Ok(None) => match self.store.consent_referred_to(&id).await {
                        Ok(Some((case_id, _))) => case_id,
                        _ => return,
                    },
                    Err(_) => return,
                }
            }
        };
        if validate::uuid("case_id", &case_id).is_err() {
            return;
        }
        match self.store.case_meta(&case_id).await {
            Ok(Some(case)) => {
                rec.case_id = Some(case.id.clone());
                self.name_subject(rec, &case);
            }
            // A case that left is named too: the refusal is a line of it.
            Ok(None) if matches!(self.store.referred_to(&case_id).await, Ok(Some(_))) => {
                self.name_left_case(rec, &case_id).await;
            }
            _ => {}
        }
    }

    /// Records a call to a service outside `sluis.v1` (health, reflection)
    /// that a registered caller made: it releases no case data, but every
    /// request has its record.
    pub(crate) async fn admit(
        &self,
        ctx: &RequestCtx,
        method: &str,
    ) -> Result<Recorded<()>, ExchangeError> {
        let mut rec = self.record(ctx, method);
        rec.decision = Decision::Allowed;
        self.finish(rec, Ok(())).await
    }

    /// Records what one source did without an accepted certificate in one
    /// interval: one record, however many connections.
    pub(crate) async fn unauthenticated(&self, s: &Summary) -> Result<(), ExchangeError> {
        let mut rec = AccessRecord::new(
            uuid::Uuid::now_v7().to_string(),
            now_millis(),
            "tls.unauthenticated",
        );
        rec.decision = Decision::HandshakeFailed;
        rec.status = Code::Unauthenticated.name().into();
        rec.detail = s.to_string();
        self.audit.append(&rec).await.map_err(|e| {
            tracing::error!(error = %e, "connections without a certificate could not be recorded");
            ExchangeError::AuditUnavailable
        })?;
        Ok(())
    }

    /// Writes one record per unregistered certificate whose requests were
    /// counted rather than recorded in the interval now ended; returns how
    /// many.
    pub(crate) async fn report_unregistered(&self) -> usize {
        let counted = self.unregistered.take();
        for c in &counted {
            let mut rec = AccessRecord::new(
                uuid::Uuid::now_v7().to_string(),
                now_millis(),
                "tls.unregistered",
            );
            rec.peer_fingerprint = Some(c.fingerprint.clone());
            rec.decision = Decision::Denied;
            rec.status = Code::PermissionDenied.name().into();
            rec.detail = format!(
                "{} further request{} of an unregistered certificate from {} to {} (ms since the epoch), each refused with PERMISSION_DENIED, not recorded one by one",
                c.requests,
                if c.requests == 1 { "" } else { "s" },
                c.first,
                c.last
            );
            tracing::info!(fingerprint = %c.fingerprint, requests = c.requests, "requests of an unregistered certificate counted");
            if let Err(e) = self.audit.append(&rec).await {
                tracing::error!(error = %e, "requests of an unregistered certificate could not be recorded");
            }
        }
        counted.len()
    }

    /// Records a refused TLS handshake that presented a certificate (no
    /// request was read).
    pub(crate) async fn handshake_failed(&self, f: HandshakeFailure) {
        let mut rec = AccessRecord::new(
            uuid::Uuid::now_v7().to_string(),
            now_millis(),
            "tls.handshake",
        );
        rec.peer_fingerprint = Some(f.fingerprint);
        rec.decision = Decision::HandshakeFailed;
        rec.status = Code::Unauthenticated.name().into();
        rec.detail = f.reason;
        if let Err(e) = self.audit.append(&rec).await {
            tracing::error!(error = %e, "failed handshake could not be recorded");
        }
    }

    pub(super) fn caller<'a>(&self, ctx: &'a RequestCtx) -> Result<&'a Caller, ExchangeError> {
        match &ctx.peer {
            Peer::Registered(c) => Ok(c),
            Peer::Unregistered { .. } => Err(ExchangeError::Unregistered),
        }
    }

    pub(super) fn check_purpose(&self, purpose: &str) -> Result<(), ExchangeError> {
        self.check_purpose_at("purpose", purpose)
    }

    /// A purpose the policy knows, in the request's `field`.
    pub(super) fn check_purpose_at(&self, field: &str, purpose: &str) -> Result<(), ExchangeError> {
        // The value is not echoed: whatever a caller typed there stays out
        // of logs and error messages.
        let problem = if purpose.is_empty() {
            " is required: state why you need the data, one of"
        } else if !self.policy().knows_purpose(purpose) {
            ": unknown purpose; use one of"
        } else {
            return Ok(());
        };
        let purposes = self.policy().purposes().join(", ");
        Err(Invalid::new(field, format!("{field}{problem}: {purposes}")).into())
    }

    /// The case of `case_id` on this node. Every method that takes a case
    /// by id finds it here, so a case referred away is `Referred` (naming
    /// the node that holds it now) for all of them, never `NotFound`.
    /// Told only to a caller `asking` what it could have had of the case
    /// here (`Exchange::not_held`).
    pub(super) async fn case_by_id(
        &self,
        caller: &Caller,
        case_id: &str,
        asking: Asking<'_>,
        rec: &mut AccessRecord,
    ) -> Result<CaseMeta, ExchangeError> {
        validate::uuid("case_id", case_id)?;
        match self.store.case_meta(case_id).await.map_err(stored)? {
            Some(case) => Ok(case),
            None => Err(self.not_held(caller, case_id, asking, rec).await),
        }
    }

    /// The case of `case_id` for a method that works on its data or its
    /// consents: named in `rec` (so even a refused attempt is in the
    /// subject's access report), then `Erased` when it was crypto-erased,
    /// before any other check or work — an erased case has nothing left
    /// to read, change, share or refer, whoever asks. Every data-service
    /// method that takes a case by id, or a consent of one, starts here;
    /// the officer's reports use [`Self::case_by_id`], which finds an
    /// erased case too. Errors: those of `case_by_id`, `Erased`.
    pub(super) async fn live_case(
        &self,
        caller: &Caller,
        case_id: &str,
        asking: Asking<'_>,
        rec: &mut AccessRecord,
    ) -> Result<CaseMeta, ExchangeError> {
        let case = self.case_by_id(caller, case_id, asking, rec).await?;
        rec.case_id = Some(case.id.clone());
        self.name_subject(rec, &case);
        Self::not_erased(&case)?;
        Ok(case)
    }

    /// `Erased` for a case whose data was crypto-erased.
    pub(super) fn not_erased(case: &CaseMeta) -> Result<(), ExchangeError> {
        match case.erased_at {
            Some(at) => Err(ExchangeError::Erased {
                case_id: case.id.clone(),
                at,
            }),
            None => Ok(()),
        }
    }

    /// The case's own key, unwrapped; `None` for a case from before
    /// per-case keys (its values open under data key version 1).
    pub(super) fn case_key(&self, case: &CaseMeta) -> Result<Option<CaseKey>, ExchangeError> {
        case.case_key
            .as_deref()
            .map(|w| self.keys.case_key(&case.id, w))
            .transpose()
            .map_err(|e| ExchangeError::internal("case key", &e))
    }

    /// The case's key from `once`, unwrapped on the first call (see
    /// [`Exchange::case_key`]); an unwrap that failed fails every call.
    fn case_key_once<'k>(
        &self,
        once: &'k CaseKeyOnce<'_>,
    ) -> Result<Option<&'k CaseKey>, ExchangeError> {
        once.key
            .get_or_init(|| {
                once.case
                    .case_key
                    .as_deref()
                    .map(|w| self.keys.case_key(&once.case.id, w))
                    .transpose()
            })
            .as_ref()
            .map(Option::as_ref)
            .map_err(|e| ExchangeError::internal("case key", e))
    }

    /// The case and all its sealed data in one read, for `GetCase`.
    async fn case_with_data(
        &self,
        case_id: &str,
    ) -> Result<(CaseMeta, Vec<(Category, Vec<u8>)>), ExchangeError> {
        validate::uuid("case_id", case_id)?;
        self.store
            .case_with_data(case_id)
            .await
            .map_err(stored)?
            .ok_or_else(|| {
                ExchangeError::not_found(Resource::Case, Some(case_id), "no case with this case_id")
            })
    }

    /// Completes a record's Logboek Dataverwerkingen fields as the
    /// processing ends: its LDV status from the answer's gRPC code, the end
    /// time, and the processing activity its purpose maps to.
    pub(super) fn end_processing(&self, rec: &mut AccessRecord) {
        let activity = rec
            .purpose
            .as_deref()
            .and_then(|p| self.ldv.activities.get(p))
            .cloned();
        if let Some(l) = &mut rec.ldv {
            l.status_code = LdvStatus::of_grpc(&rec.status);
            l.end_at = now_millis().max(rec.at);
            l.processing_activity_id = activity;
        }
    }

    /// The subject's V-number (preferred: the LVV's people are known to
    /// the immigration services by it) or else BSN, sealed by the node's
    /// data key for the case's row; `None` when `keys` has neither.
    pub(super) fn seal_subject_id(
        &self,
        case_key: &CaseKey,
        case_id: &str,
        keys: &[SubjectKey],
    ) -> Result<Option<Vec<u8>>, ExchangeError> {
        let key = keys
            .iter()
            .find(|k| k.kind() == "v_number")
            .or_else(|| keys.iter().find(|k| k.kind() == "bsn"));
        let Some(key) = key else { return Ok(None) };
        let id_type = if key.kind() == "v_number" {
            SubjectIdType::Vreemdelingennummer
        } else {
            SubjectIdType::Bsn
        };
        let mut plain = vec![id_type.code()];
        plain.extend_from_slice(key.value().as_bytes());
        let sealed = self
            .keys
            .seal_case(case_key, subject_id_aad(case_id).as_bytes(), &plain)
            .map_err(internal)?;
        Ok(Some(sealed))
    }

    /// Names the case's subject in a record: as the audit domain's
    /// pseudonym, and — when the node has the officer's key and the case
    /// its V-number or BSN — as LDV's `data_subject_id`, sealed to the
    /// officer under the current epoch's key with this record's own nonce
    /// (`gateway::officer`): it opens on its own and links to no other
    /// record. The id is in the clear only in this function's memory.
    pub(super) fn name_subject(&self, rec: &mut AccessRecord, case: &CaseMeta) {
        self.name_subject_keyed(rec, &CaseKeyOnce::new(case));
    }

    /// Names the case `case_id` in `rec` as a method that reads the case
    /// does ([`Exchange::name_subject`]: its audit pseudonym and, when the
    /// case holds one, its sealed subject id) — for the methods that
    /// concern one case without reading it (an officer's report or query
    /// about it, a proof or review of an entry about it). A case no longer
    /// held here (referred away) is named by the pseudonym its entries
    /// carry, with no sealed id: the node holds no identifier for it. A
    /// lookup that fails leaves the subject unnamed (the record still
    /// names the case id), never another error.
    pub(super) async fn name_case(&self, rec: &mut AccessRecord, case_id: &str) {
        if validate::uuid("case_id", case_id).is_err() {
            return;
        }
        rec.case_id = Some(case_id.to_string());
        match self.store.case_meta(case_id).await {
            Ok(Some(case)) => self.name_subject(rec, &case),
            Ok(None) => {
                if let Ok(Some(r)) = super::oversight::reported_from_log(&self.store, case_id).await
                {
                    rec.subject = Some(r.subject);
                }
            }
            Err(_) => {}
        }
    }

    /// [`Exchange::name_subject`] of `key`'s case, unwrapping its key
    /// through `key` (a read opens its data with the same unwrap).
    fn name_subject_keyed(&self, rec: &mut AccessRecord, key: &CaseKeyOnce<'_>) {
        let case = key.case;
        rec.subject = Some(self.subject_for_audit(case));
        let (Some(officer), Some(sealed), Some(ldv)) =
            (&self.ldv.officer, &case.subject_id, &mut rec.ldv)
        else {
            return;
        };
        let opened = self
            .case_key_once(key)
            .ok()
            .and_then(|key| {
                self.keys
                    .open_case(key, subject_id_aad(&case.id).as_bytes(), sealed)
                    .ok()
            })
            .and_then(|plain| {
                let (kind, value) = plain.split_first()?;
                let id_type = SubjectIdType::from_code(*kind)?;
                Some((id_type, String::from_utf8(value.to_vec()).ok()?))
            });
        match opened.map(|(t, v)| officer.seal(&rec.request_id, t, &v)) {
            Some(Ok(s)) => ldv.data_subject = Some(s),
            // Never the id itself in the node's log: only which case.
            _ => tracing::error!(
                case_id = %case.id,
                "the case's sealed subject id did not open or could not be sealed for the officer; the record names no data subject id"
            ),
        }
    }

    pub(super) fn subject_for_audit(&self, case: &CaseMeta) -> String {
        self.pseudonyms.audit_pseudonym(&case.subject_ref)
    }

    fn pseudonym_for(&self, caller: &Caller, case: &CaseMeta) -> String {
        self.recipient_pseudonym(&caller.participant, &case.subject_ref)
    }

    pub(super) fn aad(case_id: &str, category: Category) -> Vec<u8> {
        format!("sluis/v1/case/{case_id}/{category}").into_bytes()
    }

    pub(super) fn seal_all(
        &self,
        case_key: &CaseKey,
        case_id: &str,
        data: &[(Category, Vec<u8>)],
    ) -> Result<Vec<(Category, Vec<u8>)>, ExchangeError> {
        data.iter()
            .map(|(c, plain)| {
                self.keys
                    .seal_case(case_key, &Self::aad(case_id, *c), plain)
                    .map(|s| (*c, s))
                    .map_err(internal)
            })
            .collect()
    }

    // ---- CaseService ----

    /// Registers a case; the caller becomes its owner. `data` holds the
    /// categories' payloads (identity required), `subject_keys` the
    /// subject's identifiers for the subject index, stored keyed-hashed
    /// only. Errors: `Forbidden` for monitor and privacy-officer roles,
    /// `Invalid` without identity, `AuditUnavailable`, `Internal`.
    pub(crate) async fn register_case(
        &self,
        ctx: &RequestCtx,
        data: Vec<(Category, Vec<u8>)>,
        subject_keys: Vec<SubjectKey>,
        key: Option<IdempotencyKey>,
    ) -> Result<Recorded<Registered>, ExchangeError> {
        let mut rec = self.record(ctx, "RegisterCase");
        let replay = async |k: RequestKey, rec: &mut AccessRecord| {
            let case = self.replayed_case(&k.resource_id, rec).await?;
            Self::record_replay(rec, &k);
            Ok(Registered {
                case_id: case.id.clone(),
                pseudonym: self.pseudonym_for(self.caller(ctx)?, &case),
            })
        };
        let held = match self
            .begin_write(ctx, "RegisterCase", key, &mut rec, replay)
            .await
        {
            Ok(held) => held,
            Err(answer) => return answer,
        };
        let prepared = self.prepare_register(ctx, data, &subject_keys, &mut rec);
        let ((mut new_case, registered), durable) =
            self.finish(rec.clone(), prepared).await?.into_parts();
        new_case.subject_index = self.subject_index(&subject_keys);
        new_case.key = held.as_ref().map(|h| h.row(&new_case.id, 1, &rec));
        match self.store.insert_case(new_case).await {
            Ok(()) => Ok(durable.map(|()| registered)),
            Err(e) => Err(self.failed_after_record(rec, stored(e)).await),
        }
    }

    fn prepare_register(
        &self,
        ctx: &RequestCtx,
        data: Vec<(Category, Vec<u8>)>,
        subject_keys: &[SubjectKey],
        rec: &mut AccessRecord,
    ) -> Result<(NewCase, Registered), ExchangeError> {
        let caller = self.caller(ctx)?;
        if matches!(caller.role, Role::Monitor | Role::PrivacyOfficer) {
            return Err(ExchangeError::Forbidden(format!(
                "role {} cannot register cases",
                caller.role
            )));
        }
        if !data.iter().any(|(c, _)| *c == Category::Identity) {
            return Err(Invalid::new(
                "data.identity",
                "data.identity is required: give at least a name, V-number or BSN",
            )
            .into());
        }
        let case_id =
            uuid::Builder::from_random_bytes(self.keys.random_bytes::<16>().map_err(internal)?)
                .into_uuid()
                .to_string();
        let subject_ref = self.keys.random_bytes::<16>().map_err(internal)?.to_vec();
        let (case_key, wrapped) = self.keys.new_case_key(&case_id).map_err(internal)?;
        let key_version = i64::from(self.keys.data_key_version());
        let sealed = self.seal_all(&case_key, &case_id, &data)?;
        let subject_id = self.seal_subject_id(&case_key, &case_id, subject_keys)?;
        let meta = CaseMeta {
            id: case_id.clone(),
            owner: caller.participant.clone(),
            subject_ref: subject_ref.clone(),
            version: 1,
            updated_at: rec.at,
            subject_id: subject_id.clone(),
            case_key: Some(wrapped.clone()),
            erased_at: None,
        };
        rec.case_id = Some(case_id.clone());
        self.name_subject(rec, &meta);
        rec.released = vec![];
        rec.asked = data.iter().map(|(c, _)| *c).collect();
        rec.decision = Decision::Allowed;
        rec.rules = vec!["register:any-participating-role".into()];
        let pseudonym = self.recipient_pseudonym(&caller.participant, &subject_ref);
        Ok((
            NewCase {
                id: case_id.clone(),
                owner: caller.participant.clone(),
                subject_ref,
                sealed,
                case_key: (wrapped, key_version),
                now: rec.at,
                subject_index: Vec::new(),
                subject_id,
                owner_pseudonym: pseudonym.clone(),
                key: None,
            },
            Registered { case_id, pseudonym },
        ))
    }

    /// Replaces the categories `data` sets and deletes the `cleared` ones
    /// (the field mask's categories `data` leaves unset, AIP-134), by the
    /// owner; answers the new version. An update that changes nothing
    /// keeps the version; when it sends the identity of a case that holds
    /// no sealed subject id (registered before they were sealed), the id
    /// is filled in, still at the same version. Errors: `Invalid` (id,
    /// nothing to change), `NotFound`, `Erased`, `Forbidden` (not the
    /// owner), `AuditUnavailable`, `Internal`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn update_case(
        &self,
        ctx: &RequestCtx,
        case_id: String,
        data: Vec<(Category, Vec<u8>)>,
        cleared: Vec<Category>,
        subject_keys: Vec<SubjectKey>,
        key: Option<IdempotencyKey>,
    ) -> Result<Recorded<i64>, ExchangeError> {
        let mut rec = self.record(ctx, "UpdateCase");
        let replay = async |k: RequestKey, rec: &mut AccessRecord| {
            self.replayed_case(&k.resource_id, rec).await?;
            Self::record_replay(rec, &k);
            Ok(k.seq)
        };
        let held = match self
            .begin_write(ctx, "UpdateCase", key, &mut rec, replay)
            .await
        {
            Ok(held) => held,
            Err(answer) => return answer,
        };
        let prepared = async {
            let caller = self.caller(ctx)?;
            let case = self
                .live_case(
                    caller,
                    &case_id,
                    Asking::Owner {
                        refusal: UPDATE_BY_OWNER,
                    },
                    &mut rec,
                )
                .await?;
            let Some(case_key) = self.case_key(&case)? else {
                // Moved under a key of its own when the node starts.
                return Err(internal("a case from before per-case keys"));
            };
            let new_subject_id = self.seal_subject_id(&case_key, &case_id, &subject_keys)?;
            let named = CaseMeta {
                subject_id: new_subject_id.clone().or_else(|| case.subject_id.clone()),
                ..case.clone()
            };
            self.name_subject(&mut rec, &named);
            rec.asked = data
                .iter()
                .map(|(c, _)| *c)
                .chain(cleared.iter().copied())
                .collect();
            if case.owner != caller.participant {
                return Err(ExchangeError::Forbidden(
                    UPDATE_BY_OWNER.into(),
                ));
            }
            if data.is_empty() && cleared.is_empty() {
                return Err(Invalid::new(
                    "data",
                    "data must set at least one category to update, or update_mask name one to clear",
                )
                .into());
            }
            rec.decision = Decision::Allowed;
            rec.rules = vec!["update:owner".into()];
            // What the case holds now: a category the mask clears that the
            // case does not hold is no change, nor is a category set to
            // the value it has (AIP-134: an update that changes nothing
            // leaves the resource, and its version, as it was).
            let (_, held_data) = self.case_with_data(&case.id).await?;
            let holds = |c: &Category| held_data.iter().any(|(h, _)| h == c);
            let clears: Vec<Category> = cleared.iter().copied().filter(|c| holds(c)).collect();
            let same = |(c, plain): &(Category, Vec<u8>)| {
                held_data.iter().any(|(h, sealed)| {
                    h == c
                        && self
                            .keys
                            .open_case(Some(&case_key), &Self::aad(&case.id, *c), sealed)
                            .is_ok_and(|old| &old == plain)
                })
            };
            if clears.is_empty() && data.iter().all(same) {
                // A case kept from before subject ids were sealed gets its
                // id when the owner resends its identity, changed or not:
                // the identifiers are only in what the owner sends (the
                // node never opens a case to rewrite it on its own). The
                // content is the same, so the version is kept.
                let fill = match (&case.subject_id, &new_subject_id) {
                    (None, Some(sealed)) => Some(sealed.clone()),
                    _ => None,
                };
                rec.detail = format!(
                    "no change: version {} kept (the categories set hold these values already; those cleared are not held){}",
                    case.version,
                    if fill.is_some() {
                        "; the case's sealed subject id filled from the identity sent"
                    } else {
                        ""
                    }
                );
                return Ok((fill.map(Fill::SubjectId), case.version));
            }
            if !clears.is_empty() {
                let names: Vec<String> = clears.iter().map(|c| c.to_string()).collect();
                rec.detail = format!("cleared: {}", names.join(", "));
            }
            Ok((
                Some(Fill::Update(
                    self.seal_all(&case_key, &case.id, &data)?,
                    new_subject_id,
                    clears,
                )),
                case.version,
            ))
        }
        .await;
        let ((prepared, version), durable) = self.finish(rec.clone(), prepared).await?.into_parts();
        let (sealed, subject_id, cleared) = match prepared {
            Some(Fill::Update(sealed, subject_id, cleared)) => (sealed, subject_id, cleared),
            Some(Fill::SubjectId(sealed)) => {
                // Only the subject id, at the version read: a case updated
                // meanwhile keeps what that update wrote.
                let change = CaseChange {
                    case_id: case_id.clone(),
                    version,
                    bump: false,
                    subject_id: Some(Some(sealed)),
                    ..CaseChange::default()
                };
                return match self.store.change_case(change).await {
                    Ok(_) => Ok(durable.map(|()| version)),
                    Err(e) => Err(self.failed_after_record(rec, stored(e)).await),
                };
            }
            // Nothing changed: the case's version as it is.
            None => return Ok(durable.map(|()| version)),
        };
        let index = self.subject_index(&subject_keys);
        // The version is the store's to fill in.
        let key = held.as_ref().map(|h| h.row(&case_id, 0, &rec));
        match self
            .store
            .update_case(CaseUpdate {
                case_id: case_id.clone(),
                sealed,
                cleared,
                subject_index: index,
                subject_id,
                now: rec.at,
                key,
            })
            .await
        {
            Ok(Some(v)) => Ok(durable.map(|()| v)),
            Ok(None) => {
                let err = internal("the case vanished before its update");
                Err(self.failed_after_record(rec, err).await)
            }
            Err(e) => Err(self.failed_after_record(rec, stored(e)).await),
        }
    }

    /// A read (see `read_case` for its order). Withheld categories are not
    /// errors: they are in the answer with their reasons. Errors: `Invalid`
    /// (purpose, id, pseudonym), `NotFound` (also for another recipient's
    /// pseudonym), `AuditUnavailable`, `Internal`.
    pub(crate) async fn get_case(
        &self,
        ctx: &RequestCtx,
        req: GetCase,
    ) -> Result<Recorded<CaseView>, ExchangeError> {
        let mut rec = self.record(ctx, "GetCase");
        let result = self.read_case(ctx, req, &mut rec).await;
        let issued: Vec<(String, String)> = match (&result, &rec.case_id) {
            (Ok(view), Some(case_id)) => vec![(view.pseudonym.clone(), case_id.clone())],
            _ => vec![],
        };
        self.finish_issuing(rec, result, &issued, "").await
    }

    /// A read, in the order of the request path: load → plan →
    /// pseudonymise → open. Fills in `rec` as it learns; the caller records.
    async fn read_case(
        &self,
        ctx: &RequestCtx,
        req: GetCase,
        rec: &mut AccessRecord,
    ) -> Result<CaseView, ExchangeError> {
        let caller = self.caller(ctx)?;
        let asked = release::asked(&req.categories);
        rec.asked = asked.clone();

        // Load: the case with its sealed data, then its consents.
        let asking = Asking::Read {
            purpose: &req.purpose,
            actor_present: ctx.actor.is_some(),
        };
        let (case, sealed, by_id) = self.load_case(caller, &req.subject, asking, rec).await?;
        rec.case_id = Some(case.id.clone());
        // The case key is unwrapped once, for the subject's name and the
        // data released alike.
        let key = CaseKeyOnce::new(&case);
        self.name_subject_keyed(rec, &key);
        // An erased case is answered so, to its owner too; the attempt is
        // in the subject's access report like any other.
        Self::not_erased(&case)?;
        // Checked after the case is known, so that even a refused attempt
        // appears in the subject's access report.
        self.check_purpose(&req.purpose)?;
        rec.purpose = Some(req.purpose.clone());
        if let Some(j) = &req.justification {
            let names = self.case_names(&case, Some(&sealed)).await;
            validate::free_line(
                "emergency_justification",
                j,
                crate::tlog::MAX_JUSTIFICATION,
                &names,
            )?;
        }
        let consents = self
            .store
            .consents_for_case(&case.id)
            .await
            .map_err(stored)?;

        // Plan: per category, policy × consent × presence; the record names
        // the policy that decided.
        let policy = self.policy();
        rec.policy = Some(policy.sha256());
        let present: Vec<Category> = sealed.iter().map(|(c, _)| *c).collect();
        let plan = release::plan(
            &policy,
            &Asker {
                caller,
                purpose: &req.purpose,
                is_owner: case.owner == caller.participant,
                actor_present: ctx.actor.is_some(),
                now: rec.at,
                justification: req.justification.as_deref(),
            },
            &Holdings {
                present: &present,
                consents: &consents,
            },
            &asked,
        );
        // A category asked for by name that only an emergency rule permits:
        // the caller meant to break the glass and did not say why (or who).
        let needs: Vec<&release::Withheld> = plan
            .withheld
            .iter()
            .filter(|w| w.reason == WithholdReason::JustificationRequired)
            .filter(|w| req.categories.contains(&w.category))
            .collect();
        if !needs.is_empty() {
            let mut rules = Vec::new();
            for w in &needs {
                rules.extend(
                    policy
                        .decide(&crate::policy::Query {
                            role: caller.role,
                            category: w.category,
                            purpose: &req.purpose,
                            is_owner: case.owner == caller.participant,
                            actor_present: ctx.actor.is_some(),
                        })
                        .emergency,
                );
            }
            rules.sort();
            rules.dedup();
            rec.rules = plan.rules;
            return Err(ExchangeError::JustificationRequired {
                categories: needs.iter().map(|w| w.category.to_string()).collect(),
                rules,
            });
        }
        rec.bases = plan.bases;
        rec.rules = plan.rules;
        rec.consents = plan.consents;
        rec.released = plan.released.clone();
        rec.withheld = plan
            .withheld
            .iter()
            .map(|w| (w.category, w.reason.as_str().to_string()))
            .collect();
        rec.decision = plan.decision;

        // Pseudonymise, then open only what is released.
        let pseudonym = self.pseudonym_for(caller, &case);
        let released = self.open_released_keyed(&key, sealed, &plan.released)?;
        Ok(CaseView {
            case_id: by_id.then(|| case.id.clone()),
            pseudonym,
            released,
            withheld: plan.withheld,
        })
    }

    /// The case a read names, with its sealed data, and whether it was named
    /// by id (a reader by pseudonym is not told the case id).
    async fn load_case(
        &self,
        caller: &Caller,
        subject: &CaseRef,
        asking: Asking<'_>,
        rec: &mut AccessRecord,
    ) -> Result<(CaseMeta, Vec<(Category, Vec<u8>)>, bool), ExchangeError> {
        match subject {
            CaseRef::Id(id) => {
                let (case, sealed) = match self.case_with_data(id).await {
                    Err(ExchangeError::NotFound(_)) => {
                        return Err(self.not_held(caller, id, asking, rec).await);
                    }
                    found => found?,
                };
                Ok((case, sealed, true))
            }
            CaseRef::Pseudonym(p) => {
                validate::pseudonym("subject_pseudonym", p)?;
                // A pseudonym issued to someone else resolves to nothing: the
                // same answer as one that never existed.
                let id = self
                    .store
                    .resolve_pseudonym(&caller.participant, p)
                    .await
                    .map_err(stored)?;
                let Some(id) = id else {
                    // Its case is on another node, which this node knows
                    // only for a pseudonym the caller received through it.
                    // Told only to a caller the policy would let read a
                    // case for this purpose, as for a case named by id.
                    if let Some(node) = self.locate(&caller.participant, p).await? {
                        // A case that left this node is named in the record.
                        if let Ok(Some(id)) = self
                            .store
                            .referred_pseudonym_case(&caller.participant, p)
                            .await
                        {
                            self.name_left_case(rec, &id).await;
                        }
                        return Err(self.told_where(caller, node, asking, false));
                    }
                    // Never the pseudonym itself: it is the caller's
                    // handle on a person.
                    return Err(ExchangeError::not_found(
                        Resource::Case,
                        None,
                        "no case for this pseudonym",
                    ));
                };
                let (case, sealed) = self.case_with_data(&id).await?;
                Ok((case, sealed, false))
            }
        }
    }

    /// Opens the released categories' data, in category order.
    pub(super) fn open_released(
        &self,
        case: &CaseMeta,
        sealed: Vec<(Category, Vec<u8>)>,
        release: &[Category],
    ) -> Result<Vec<(Category, Vec<u8>)>, ExchangeError> {
        self.open_released_keyed(&CaseKeyOnce::new(case), sealed, release)
    }

    /// [`Exchange::open_released`] of `key`'s case, unwrapping its key
    /// through `key`.
    fn open_released_keyed(
        &self,
        key: &CaseKeyOnce<'_>,
        mut sealed: Vec<(Category, Vec<u8>)>,
        release: &[Category],
    ) -> Result<Vec<(Category, Vec<u8>)>, ExchangeError> {
        sealed.retain(|(c, _)| release.contains(c));
        if sealed.is_empty() {
            return Ok(Vec::new());
        }
        let case = key.case;
        let key = self.case_key_once(key)?;
        let mut released = sealed
            .into_iter()
            .map(|(cat, sealed)| {
                self.keys
                    .open_case(key, &Self::aad(&case.id, cat), &sealed)
                    .map(|plain| (cat, plain))
                    .map_err(internal)
            })
            .collect::<Result<Vec<_>, _>>()?;
        released.sort_by_key(|(c, _)| *c);
        Ok(released)
    }

    /// A page of cases and the next page's token (empty when done); hands
    /// out the caller's pseudonyms and stores them with the record. Errors:
    /// `Invalid` (page size, token, purpose for visible cases),
    /// `AuditUnavailable`, `Internal`.
    pub(crate) async fn find_cases(
        &self,
        ctx: &RequestCtx,
        req: FindCases,
    ) -> Result<Recorded<(Vec<CaseSummary>, String)>, ExchangeError> {
        let mut rec = self.record(ctx, "FindCases");
        let result = async {
            let caller = self.caller(ctx)?;
            let limit = validate::page_size(
                req.page_size,
                DEFAULT_PAGE.into(),
                MAX_PAGE.into(),
                "cases",
            )? as u32;
            // Which listing the pages are of: the scope, and for VISIBLE the
            // purpose (ignored for OWN).
            let listing = match req.scope {
                Scope::Own => "own".to_string(),
                Scope::Visible => format!("visible/{}", req.purpose),
            };
            let after = self.open_page_token(caller, &listing, &req.after, || {
                ExchangeError::Invalid(Invalid::new(
                    "page_token",
                    "page_token is not one this node issued to you for this listing (the same scope and purpose as the request that returned it); start again with an empty page_token",
                ))
            })?;
            // One more than the page, so that a last page that is exactly
            // full says so (AIP-158: no token on the last page).
            let fetch = limit + 1;
            let mut rows = match req.scope {
                Scope::Own => {
                    self.store
                        .own_cases(&caller.participant, &after, fetch)
                        .await
                }
                Scope::Visible => {
                    self.check_purpose(&req.purpose)?;
                    rec.purpose = Some(req.purpose.clone());
                    // Visible: what GetCase would release something of. A
                    // legal basis of the role for the purpose opens every
                    // case of another owner; otherwise a consent must name
                    // the caller.
                    let policy = self.policy();
                    rec.policy = Some(policy.sha256());
                    if release::legal_basis_reaches(
                        &policy,
                        caller.role,
                        &req.purpose,
                        ctx.actor.is_some(),
                    ) {
                        rec.rules = vec!["find:legal-basis".into()];
                        self.store
                            .others_cases(&caller.participant, &after, fetch)
                            .await
                    } else {
                        self.store
                            .visible_cases(
                                &caller.participant,
                                caller.role,
                                &req.purpose,
                                rec.at,
                                &after,
                                fetch,
                            )
                            .await
                    }
                }
            }
            .map_err(stored)?;
            let more = rows.len() > limit as usize;
            rows.truncate(limit as usize);
            let next = match rows.last() {
                Some(last) if more => self.seal_page_token(caller, &listing, &last.id)?,
                _ => String::new(),
            };
            let mut out = Vec::with_capacity(rows.len());
            let mut issued = Vec::with_capacity(rows.len());
            // Each case listed is an access to its subject: the record names
            // them all, so each subject's report shows the listing.
            rec.subjects = rows.iter().map(|c| self.subject_for_audit(c)).collect();
            // A listing of one case concerns one subject: its line carries
            // the subject's sealed id, as a read of the case does.
            if let [only] = rows.as_slice() {
                self.name_subject(&mut rec, only);
            }
            for case in rows {
                let pseudonym = self.pseudonym_for(caller, &case);
                issued.push((pseudonym.clone(), case.id.clone()));
                out.push(CaseSummary {
                    case_id: (req.scope == Scope::Own).then(|| case.id.clone()),
                    pseudonym,
                    owner: case.owner.clone(),
                    version: case.version,
                    updated_at: case.updated_at,
                });
            }
            rec.decision = Decision::Allowed;
            rec.detail = format!("{} cases listed", out.len());
            Ok((out, next, issued))
        }
        .await;
        let issued = match &result {
            Ok((_, _, issued)) => issued.clone(),
            Err(_) => vec![],
        };
        Ok(self
            .finish_issuing(rec, result, &issued, "")
            .await?
            .map(|(out, next, _)| (out, next)))
    }

    /// The subject index entries for a subject's identifiers: kind and
    /// keyed hash.
    pub(super) fn subject_index(&self, keys: &[SubjectKey]) -> Vec<(String, String)> {
        keys.iter()
            .map(|k| (k.kind().to_string(), self.subject_digest(k)))
            .collect()
    }

    /// Keyed hash of a V-number or BSN for the subject index: lets a
    /// privacy officer find a subject's cases without storing identifiers.
    pub(super) fn subject_digest(&self, key: &SubjectKey) -> String {
        self.pseudonyms.index_digest(key.kind(), key.value())
    }

    /// Page tokens are sealed, for every listing that pages (`FindCases`,
    /// `ListEmergencyAlerts`): a token for visible cases must not hand the
    /// caller another owner's case id, a position is not the caller's to
    /// forge, and only its own caller can use it, for the listing it was
    /// issued for (AIP-158: the other request fields must stay the same
    /// from page to page), so the listing named is bound into the seal.
    /// `position` is where the next page starts, as the listing reads it.
    pub(super) fn seal_page_token(
        &self,
        caller: &Caller,
        listing: &str,
        position: &str,
    ) -> Result<String, ExchangeError> {
        use base64::Engine;
        let aad = page_token_aad(caller, listing);
        let sealed = self
            .keys
            .seal(&aad, position.as_bytes())
            .map_err(internal)?;
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed))
    }

    /// The position a token of [`seal_page_token`](Self::seal_page_token)
    /// holds, empty for an empty token; `bad` is the listing's answer to
    /// a token that is not its caller's for this listing.
    pub(super) fn open_page_token(
        &self,
        caller: &Caller,
        listing: &str,
        token: &str,
        bad: impl Fn() -> ExchangeError,
    ) -> Result<String, ExchangeError> {
        use base64::Engine;
        if token.is_empty() {
            return Ok(String::new());
        }
        if token.len() > 256 {
            return Err(bad());
        }
        let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| bad())?;
        let aad = page_token_aad(caller, listing);
        let plain = self.keys.open(&aad, &sealed).map_err(|_| bad())?;
        String::from_utf8(plain).map_err(|_| bad())
    }

    // ---- ConsentService ----

    /// The case, when the caller owns it; consent is managed by the owner.
    /// An erased case is `Erased` first, for its owner and anyone else.
    async fn owned_case(
        &self,
        caller: &Caller,
        case_id: &str,
        rec: &mut AccessRecord,
    ) -> Result<CaseMeta, ExchangeError> {
        let case = self
            .live_case(
                caller,
                case_id,
                Asking::Owner {
                    refusal: CONSENT_BY_OWNER,
                },
                rec,
            )
            .await?;
        if case.owner != caller.participant {
            return Err(ExchangeError::Forbidden(CONSENT_BY_OWNER.into()));
        }
        Ok(case)
    }

    /// Records consent for a case, by its owner; answers it with its new
    /// id. Errors: `Invalid` (no recipients, categories or purposes, an
    /// unknown participant or purpose, an empty window), `NotFound`,
    /// `Forbidden` (not the owner), `AuditUnavailable`, `Internal`.
    pub(crate) async fn grant_consent(
        &self,
        ctx: &RequestCtx,
        req: NewConsent,
        key: Option<IdempotencyKey>,
    ) -> Result<Recorded<Consent>, ExchangeError> {
        let mut rec = self.record(ctx, "GrantConsent");
        let replay = async |k, rec: &mut AccessRecord| self.replayed_consent(&k, rec).await;
        let held = match self
            .begin_write(ctx, "GrantConsent", key, &mut rec, replay)
            .await
        {
            Ok(held) => held,
            Err(answer) => return answer,
        };
        let prepared = async {
            let caller = self.caller(ctx)?;
            // Nothing left to share: consent to an erased case is refused
            // (`owned_case`).
            let case = self.owned_case(caller, &req.case_id, &mut rec).await?;
            // The evidence reference is in the subject's signed receipt.
            let names = self.case_names(&case, None).await;
            validate::free_line("evidence_ref", &req.evidence_ref, 256, &names)?;
            let recipients = self.check_recipients(&req.recipients)?;
            if req.categories.is_empty() {
                return Err(
                    Invalid::new("categories", "categories: name at least one category").into(),
                );
            }
            if req.purposes.is_empty() {
                return Err(Invalid::new(
                    "purposes",
                    format!(
                        "purposes: name at least one of: {}",
                        self.policy().purposes().join(", ")
                    ),
                )
                .into());
            }
            for (i, p) in req.purposes.iter().enumerate() {
                self.check_purpose_at(&format!("purposes[{i}]"), p)?;
            }
            let valid_from = req.valid_from.unwrap_or(rec.at);
            self.check_window(rec.at, valid_from, req.valid_until)?;
            let id =
                uuid::Builder::from_random_bytes(self.keys.random_bytes::<16>().map_err(internal)?)
                    .into_uuid()
                    .to_string();
            let mut categories = req.categories.clone();
            categories.sort();
            categories.dedup();
            let mut purposes = req.purposes.clone();
            purposes.sort();
            purposes.dedup();
            rec.asked = categories.clone();
            rec.consents = vec![id.clone()];
            rec.decision = Decision::Allowed;
            Ok(Consent {
                id,
                case_id: req.case_id.clone(),
                recorded_by: caller.participant.clone(),
                recipients,
                categories,
                purposes,
                valid_from,
                valid_until: req.valid_until,
                evidence_ref: req.evidence_ref.clone(),
                created_at: rec.at,
                events: vec![ConsentEvent {
                    kind: EventKind::Given,
                    at: rec.at,
                    by: caller.participant.clone(),
                    note: String::new(),
                }],
            })
        }
        .await;
        let (consent, durable) = self.finish(rec.clone(), prepared).await?.into_parts();
        let key = held
            .as_ref()
            .map(|h| h.row(&consent.id, consent.events.len() as i64, &rec));
        match self.store.insert_consent(&consent, key.as_ref()).await {
            Ok(()) => Ok(durable.map(|()| consent)),
            Err(e) => Err(self.failed_after_record(rec, stored(e)).await),
        }
    }

    /// The recipients of a consent, checked and as the store keeps them:
    /// each once, participants before roles, each group sorted. At least
    /// one; each participant registered; none that the policy could never
    /// release case data to (a consent for it would be a dead letter that
    /// looks like a disclosure).
    fn check_recipients(&self, given: &[Recipient]) -> Result<Vec<Recipient>, ExchangeError> {
        if given.is_empty() {
            return Err(Invalid::new(
                "recipients",
                "recipients: name at least one participant or role",
            )
            .into());
        }
        let (policy, registry) = (self.policy(), self.registry());
        for (i, r) in given.iter().enumerate() {
            let (field, role) = match r {
                Recipient::Participant(p) => {
                    let field = format!("recipients[{i}].participant");
                    // A participant of this node, or one a federation
                    // node hosts (a case referred there keeps the consent).
                    let role = registry.role_of(p).or_else(|| self.federated_role(p));
                    let Some(role) = role else {
                        return Err(Invalid::new(
                            &field,
                            format!("{field} is not registered with this node (see the node's participant list)"),
                        )
                        .into());
                    };
                    (field, role)
                }
                Recipient::Role(role) => (format!("recipients[{i}].role"), *role),
            };
            if !release::can_ever_receive(&policy, role) {
                return Err(Invalid::new(
                    &field,
                    format!(
                        "{field}: the node's policy releases no case data to role {role}, so a consent for it could never let anything through"
                    ),
                )
                .into());
            }
        }
        let mut recipients = given.to_vec();
        recipients.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        recipients.dedup();
        Ok(recipients)
    }

    /// A consent's validity window `[from, until)` against `now`: not over
    /// already, not empty, and not beyond the configured maximum.
    fn check_window(
        &self,
        now: Millis,
        from: Millis,
        until: Option<Millis>,
    ) -> Result<(), ExchangeError> {
        let max = self.consent_max_validity;
        let days = max / 86_400_000;
        if from > now.saturating_add(max) {
            return Err(Invalid::new(
                "valid_from",
                format!("valid_from is more than {days} days from now (consent.max_validity_days): check the year"),
            )
            .into());
        }
        let Some(until) = until else {
            return Ok(());
        };
        // Past first: a caller who set only valid_until (valid_from
        // defaults to now) never wrote a valid_from to be compared with.
        if until <= now {
            return Err(Invalid::new(
                "valid_until",
                "valid_until is in the past: this consent would never be in force; record it with a window that has not ended",
            )
            .into());
        }
        if until <= from {
            return Err(Invalid::new("valid_until", "valid_until must be after valid_from").into());
        }
        if until - from > max {
            return Err(Invalid::new(
                "valid_until",
                format!("valid_until is more than {days} days after valid_from (consent.max_validity_days): check the year, or leave valid_until unset for a consent that holds until withdrawn"),
            )
            .into());
        }
        Ok(())
    }

    /// The case a retried write made or changed, named in its record.
    async fn replayed_case(
        &self,
        case_id: &str,
        rec: &mut AccessRecord,
    ) -> Result<CaseMeta, ExchangeError> {
        let case =
            self.store
                .case_meta(case_id)
                .await
                .map_err(stored)?
                .ok_or(ExchangeError::Internal(
                    "a case named by a request key is missing",
                ))?;
        rec.case_id = Some(case.id.clone());
        self.name_subject(rec, &case);
        Ok(case)
    }

    /// The consent as a retried grant or withdrawal left it: its events up
    /// to that write's (events are append-only), named in the record.
    async fn replayed_consent(
        &self,
        k: &RequestKey,
        rec: &mut AccessRecord,
    ) -> Result<Consent, ExchangeError> {
        let mut consent = self
            .store
            .consent(&k.resource_id)
            .await
            .map_err(stored)?
            .ok_or(ExchangeError::Internal(
                "a consent named by a request key is missing",
            ))?;
        consent.events.truncate(usize::try_from(k.seq).unwrap_or(0));
        self.replayed_case(&consent.case_id, rec).await?;
        rec.consents = vec![consent.id.clone()];
        rec.asked = consent.categories.clone();
        Self::record_replay(rec, k);
        Ok(consent)
    }

    async fn consent_of_owner(
        &self,
        ctx: &RequestCtx,
        consent_id: &str,
        rec: &mut AccessRecord,
    ) -> Result<Consent, ExchangeError> {
        let caller = self.caller(ctx)?;
        validate::uuid("consent_id", consent_id)?;
        let Some(consent) = self.store.consent(consent_id).await.map_err(stored)? else {
            // The consent left with its case: say where, as for the case.
            if let Some((case_id, _)) = self
                .store
                .consent_referred_to(consent_id)
                .await
                .map_err(stored)?
            {
                rec.consents = vec![consent_id.to_string()];
                let asking = Asking::Owner {
                    refusal: CONSENT_BY_OWNER,
                };
                return Err(self.not_held(caller, &case_id, asking, rec).await);
            }
            return Err(ExchangeError::not_found(
                Resource::Consent,
                Some(consent_id),
                "no consent with this consent_id",
            ));
        };
        rec.consents = vec![consent.id.clone()];
        self.owned_case(caller, &consent.case_id, rec).await?;
        Ok(consent)
    }

    /// Appends a withdrawal to a consent, by the case owner; it holds from
    /// the next request on. Errors: `Invalid`, `NotFound`, `Forbidden`,
    /// `FailedPrecondition` (already withdrawn), `AuditUnavailable`,
    /// `Internal`.
    pub(crate) async fn withdraw_consent(
        &self,
        ctx: &RequestCtx,
        consent_id: String,
        note: String,
        key: Option<IdempotencyKey>,
    ) -> Result<Recorded<Consent>, ExchangeError> {
        let mut rec = self.record(ctx, "WithdrawConsent");
        let replay = async |k, rec: &mut AccessRecord| self.replayed_consent(&k, rec).await;
        let held = match self
            .begin_write(ctx, "WithdrawConsent", key, &mut rec, replay)
            .await
        {
            Ok(held) => held,
            Err(answer) => return answer,
        };
        let prepared = async {
            let consent = self.consent_of_owner(ctx, &consent_id, &mut rec).await?;
            // The note is in the consent's history and its receipt.
            let names = match self.store.case_meta(&consent.case_id).await {
                Ok(Some(case)) => self.case_names(&case, None).await,
                _ => Vec::new(),
            };
            validate::free_line("note", &note, 512, &names)?;
            if consent.state(rec.at) == consent::ConsentState::Withdrawn {
                return Err(ExchangeError::ConsentWithdrawn);
            }
            rec.decision = Decision::Allowed;
            Ok(consent)
        }
        .await;
        let (mut consent, durable) = self.finish(rec.clone(), prepared).await?.into_parts();
        let event = ConsentEvent {
            kind: EventKind::Withdrawn,
            at: rec.at,
            by: rec.caller.clone(),
            note,
        };
        let key = held
            .as_ref()
            .map(|h| h.row(&consent.id, consent.events.len() as i64 + 1, &rec));
        match self
            .store
            .append_consent_event(&consent.id, &event, key.as_ref())
            .await
        {
            Ok(true) => {
                consent.events.push(event);
                Ok(durable.map(|()| consent))
            }
            // Another withdrawal of it was written between the check and
            // this write: answered and recorded as a withdrawal of a
            // withdrawn consent is, never as an internal error.
            Ok(false) => {
                rec.at = now_millis();
                let _ = self
                    .finish::<()>(rec, Err(ExchangeError::ConsentWithdrawn))
                    .await;
                Err(ExchangeError::ConsentWithdrawn)
            }
            Err(e) => Err(self.failed_after_record(rec, stored(e)).await),
        }
    }

    /// Every consent of a case with its events, for its owner. Errors:
    /// `Invalid`, `NotFound`, `Forbidden`, `AuditUnavailable`, `Internal`.
    pub(crate) async fn list_consents(
        &self,
        ctx: &RequestCtx,
        case_id: String,
    ) -> Result<Recorded<Vec<Consent>>, ExchangeError> {
        let mut rec = self.record(ctx, "ListConsents");
        let result = async {
            let caller = self.caller(ctx)?;
            self.owned_case(caller, &case_id, &mut rec).await?;
            let consents = self
                .store
                .consents_for_case(&case_id)
                .await
                .map_err(stored)?;
            rec.consents = consents.iter().map(|c| c.id.clone()).collect();
            rec.decision = Decision::Allowed;
            Ok(consents)
        }
        .await;
        self.finish(rec, result).await
    }

    /// A signed receipt of a consent's terms and state now, for its case's
    /// owner to hand to the subject. Errors as for `list_consents`.
    pub(crate) async fn consent_receipt(
        &self,
        ctx: &RequestCtx,
        consent_id: String,
    ) -> Result<Recorded<Receipt>, ExchangeError> {
        let mut rec = self.record(ctx, "GetConsentReceipt");
        let result = async {
            let consent = self.consent_of_owner(ctx, &consent_id, &mut rec).await?;
            let body = consent::receipt_body(&self.node_name, &consent, rec.at);
            let signed_note = note::sign(self.keys.as_ref(), &self.node_name, &body)
                .map_err(|e| ExchangeError::internal("signing", &e))?;
            rec.decision = Decision::Allowed;
            Ok(Receipt {
                signed_note,
                verifier_key: self.verifier_key(),
            })
        }
        .await;
        self.finish(rec, result).await
    }

    /// How often the log signs a checkpoint while entries arrive.
    pub(super) fn checkpoint_interval(&self) -> std::time::Duration {
        self.audit.checkpoint_interval()
    }

    /// Signs a checkpoint over the log's tail not yet covered by one; the
    /// node calls it once requests have drained, before closing the store.
    /// Why the access log cannot take records now, if it cannot
    /// (`AuditLog::down`), for health answers.
    pub(crate) fn log_down(&self) -> Option<&'static str> {
        self.audit.down()
    }

    pub(crate) async fn sign_pending(&self) {
        self.audit.sign_pending().await;
    }

    /// The node's signed-note verifier key (`<name>+<key id>+<base64 key>`,
    /// C2SP signed-note), to check receipts and checkpoints with. Public
    /// key material only, so reading it is not an access to record.
    pub(crate) fn verifier_key(&self) -> String {
        note::verifier_key(&self.node_name, &self.keys.signing_public_key())
    }

    pub(crate) fn now(&self) -> Millis {
        now_millis()
    }
}

/// What a case's sealed subject id is bound to: its case.
pub(super) fn subject_id_aad(case_id: &str) -> String {
    format!("sluis/v1/case/{case_id}/subject_id")
}
