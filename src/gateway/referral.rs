//! Referral of a case between federation nodes, and where a pseudonym's
//! case is (ARCHITECTURE.md, "Federation").
//!
//! - **Referring** ([`Exchange::refer_case`], the old node): the owner asks;
//!   this node checks the directory (the new owner hosted by the named node
//!   as a municipality), ownership and the subject's consent to the
//!   referral, sends the case whole (its `send`, made by `rpc`), records
//!   the referral, and only then deletes the case, keeping a pointer.
//! - **Receiving** ([`Exchange::accept_referral`], the new node): checks it
//!   all again as its own (it trusts no node blindly), records, and stores
//!   the case sealed under its own key, its subject index under its own
//!   secret. `subject_ref` and the issued pseudonyms move with the case, so
//!   under the federation's pseudonym key every recipient keeps its value.
//! - **Pointers**: a read of a case that left, or of a pseudonym whose case
//!   is elsewhere, ends in [`ExchangeError::Referred`] naming the node.
//!
//! Consent to a referral: an active consent that names the new owner as a
//! participant recipient (not by role) for every category the case holds.
//! Purposes do not enter: the consent says the subject agreed that this
//! municipality receives the whole case, which is what a referral gives it.

use crate::federation::Federation;
use crate::gateway::exchange::{Exchange, RequestCtx};
use crate::gateway::validate::{self, Invalid, SubjectKey};
use crate::gateway::{ExchangeError, Resource};
use crate::model::consent::{Consent, ConsentState, Millis, Recipient};
use crate::model::{Caller, Category, Role};
use crate::store::CaseMeta;
use crate::store::referral::{ReferredCase, ReferredOut};
use crate::tlog::{AccessRecord, Decision, Recorded};

/// Most consents and issued pseudonyms a referred case may bring.
pub(crate) const MAX_REFERRED_CONSENTS: usize = 1_000;
pub(crate) const MAX_REFERRED_PSEUDONYMS: usize = 10_000;

/// What a caller asks of a case by id, to judge whether it may learn where
/// the case went ([`Exchange::not_held`]).
#[derive(Clone, Copy)]
pub(crate) enum Asking<'a> {
    /// A method of the case's owner; `refusal` is what anyone else is told.
    Owner { refusal: &'a str },
    /// A read for `purpose`.
    Read {
        purpose: &'a str,
        actor_present: bool,
    },
    /// The privacy officer (already checked).
    Officer,
}

/// How long the receiving node has to take a referred case (its
/// `AcceptReferral` answer). Past it the referral fails `Unavailable` and
/// the case stays here; if the case did arrive, the owner's next ReferCase
/// to that node completes (the node answers that it has it already).
const REFERRAL_SEND_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// How long a referral's claim on its case lives (ms): the send deadline
/// and as long again for the reads before it and the pointer after it. A
/// process that dies mid-referral leaves its claim in the database; the
/// case is refused to other referrals only until then.
const CLAIM_TTL_MS: i64 = 2 * REFERRAL_SEND_DEADLINE.as_millis() as i64;

/// What the owner asks: refer `case_id` to `new_owner` at `to_node`.
pub(crate) struct ReferCase {
    pub(crate) case_id: String,
    pub(crate) to_node: String,
    pub(crate) new_owner: String,
}

/// A case as it travels between nodes: opened, whole.
pub(crate) struct Outgoing {
    pub(crate) case_id: String,
    pub(crate) subject_ref: Vec<u8>,
    pub(crate) new_owner: String,
    pub(crate) version: i64,
    pub(crate) created_at: Millis,
    pub(crate) updated_at: Millis,
    /// Every category's payload, in the clear (the channel protects it).
    pub(crate) data: Vec<(Category, Vec<u8>)>,
    pub(crate) consents: Vec<Consent>,
    pub(crate) pseudonyms: Vec<(String, String)>,
}

/// A case as it arrives, with the subject's identifiers read from its
/// identity (by `rpc`, from the same message).
pub(crate) struct Incoming {
    pub(crate) case: Outgoing,
    pub(crate) subject_keys: Vec<SubjectKey>,
}

/// How a `ReferCase` record's detail begins; the node's id and a `'`
/// follow ([`referred_to`] reads it back).
const REFERRED_TO: &str = "referred to federation node '";

/// The node a `ReferCase` record's `detail` names as where the case went.
pub(crate) fn referred_to(detail: &str) -> Option<&str> {
    detail.strip_prefix(REFERRED_TO)?.split('\'').next()
}

fn stored(e: crate::store::StoreError) -> ExchangeError {
    ExchangeError::store("storage", &e)
}

impl Exchange {
    /// A recipient's pseudonym for the case with `subject_ref`: under the
    /// federation's key `K_fed` (`pf1.`) when the node has one, else under
    /// the node's own secret (`ps1.`).
    pub(super) fn recipient_pseudonym(&self, recipient: &str, subject_ref: &[u8]) -> String {
        match self.federation.as_ref().and_then(|f| f.pseudonyms()) {
            Some(fed) => fed.pseudonym(recipient, subject_ref),
            None => self.pseudonyms.pseudonym(recipient, subject_ref),
        }
    }

    /// The role the running federation directory gives a participant
    /// another node hosts; `None` outside a federation or its validity.
    pub(super) fn federated_role(&self, participant: &str) -> Option<Role> {
        let running = self.federation.as_ref()?.current(self.now()).ok()?;
        running.directory.home_of(participant).map(|(_, role)| role)
    }

    /// Why a case this node does not hold is not found: it was referred
    /// (`Referred`, naming the node), or it never was here (`NotFound`).
    ///
    /// Where a case went is told only to a caller who could have had what
    /// it asks of the case here (`asking`): the owner who referred it, or a
    /// reader whose role and purpose the policy gives some category of a
    /// case (or the case's owner's). Anyone else gets the refusal it would
    /// have had for the case here, and learns nothing of where the subject
    /// moved.
    ///
    /// A case that left is still a case this node knows: `rec` is named
    /// with its id (and the subject its earlier entries here name), so the
    /// refusal or the `CASE_REFERRED` answer is in the subject's access
    /// report like any other line of the case, whoever asked.
    pub(super) async fn not_held(
        &self,
        caller: &Caller,
        case_id: &str,
        asking: Asking<'_>,
        rec: &mut AccessRecord,
    ) -> ExchangeError {
        let node = match self.store.referred_to(case_id).await {
            Ok(Some(node)) => {
                self.name_left_case(rec, case_id).await;
                node
            }
            Ok(None) => {
                return ExchangeError::not_found(
                    Resource::Case,
                    Some(case_id),
                    "no case with this case_id",
                );
            }
            Err(e) => return stored(e),
        };
        let was_owner = match self.referred_by(case_id).await {
            Ok(owner) => owner.as_deref() == Some(caller.participant.as_str()),
            Err(e) => return e,
        };
        self.told_where(caller, node, asking, was_owner)
    }

    /// `Referred(node)` if the caller may learn where a case this node
    /// does not hold is (`asking`, and whether it is the owner that
    /// referred it); else the refusal it would have had for the case here.
    /// The one judgement for a case asked by id ([`Self::not_held`]) and
    /// by a pseudonym whose case is elsewhere.
    pub(super) fn told_where(
        &self,
        caller: &Caller,
        node: String,
        asking: Asking<'_>,
        was_owner: bool,
    ) -> ExchangeError {
        match asking {
            Asking::Officer => ExchangeError::Referred(node),
            Asking::Owner { refusal } if !was_owner => ExchangeError::Forbidden(refusal.into()),
            Asking::Owner { .. } => ExchangeError::Referred(node),
            // The owner that referred the case knows where it went: telling
            // it again discloses nothing, whatever the read's purpose or
            // actor.
            Asking::Read { .. } if was_owner => ExchangeError::Referred(node),
            Asking::Read {
                purpose,
                actor_present,
            } => {
                // A purpose the policy does not know is refused as for a
                // case held here.
                if let Err(e) = self.check_purpose(purpose) {
                    return e;
                }
                let policy = self.policy();
                let readable = |actor_present: bool| {
                    Category::ALL.iter().any(|category| {
                        policy
                            .decide(&crate::policy::Query {
                                role: caller.role,
                                category: *category,
                                purpose,
                                is_owner: false,
                                actor_present,
                            })
                            .allowed
                    })
                };
                if readable(actor_present) {
                    ExchangeError::Referred(node)
                } else if !actor_present && readable(true) {
                    // The refusal a read of a held case gets: what to add,
                    // not a policy that would in fact allow it.
                    ExchangeError::Forbidden(format!(
                        "role '{}' reads a case only with the acting employee named: send the x-sluis-actor header and retry",
                        caller.role
                    ))
                } else {
                    ExchangeError::Forbidden(format!(
                        "the policy releases no category of a case to role '{}' for this purpose",
                        caller.role
                    ))
                }
            }
        }
    }

    /// Names case `case_id`, which left this node, in `rec`: its id, and
    /// the subject its earlier entries here name (the case's row is gone).
    /// A log that cannot be read leaves the subject out; the id is enough
    /// for the report to find the line.
    pub(super) async fn name_left_case(&self, rec: &mut AccessRecord, case_id: &str) {
        rec.case_id = Some(case_id.to_string());
        if let Ok(Some(case)) =
            crate::gateway::oversight::reported_from_log(&self.store, case_id).await
        {
            rec.subject = Some(case.subject);
        }
    }

    /// The participant that referred case `case_id` away from this node
    /// (the caller of its last allowed `ReferCase` record here).
    async fn referred_by(&self, case_id: &str) -> Result<Option<String>, ExchangeError> {
        Ok(self
            .records_of_case(case_id, Some("ReferCase"))
            .await?
            .into_iter()
            .rfind(|r| r.decision == Decision::Allowed)
            .map(|r| r.caller))
    }

    /// The node that holds the case of `pseudonym`, which `recipient`
    /// received through this node from another node (or whose case left
    /// this node); `None` on a node outside a federation.
    pub(crate) async fn locate(
        &self,
        recipient: &str,
        pseudonym: &str,
    ) -> Result<Option<String>, ExchangeError> {
        if self.federation.is_none() {
            return Ok(None);
        }
        self.store
            .located(recipient, pseudonym)
            .await
            .map_err(stored)
    }

    /// Remembers that `node` issued `pseudonym` to `recipient` (after a
    /// forwarded read), so a later request by it is forwarded there
    /// without the caller naming the node. A failure costs only that.
    pub(crate) async fn remember_located(&self, recipient: &str, pseudonym: &str, node: &str) {
        if validate::pseudonym("subject_pseudonym", pseudonym).is_err() {
            return;
        }
        if let Err(e) = self
            .store
            .remember_located(recipient, pseudonym, node)
            .await
        {
            tracing::warn!(error = %e, node, "where a pseudonym's case is was not stored");
        }
    }

    /// Refers a case to another node (see the module's doc). `send` makes
    /// the node-to-node call; the record is durable before the case is
    /// deleted here. Answers the node that holds the case now.
    ///
    /// Errors: `Invalid` (ids), `FailedPrecondition` (no federation, its
    /// directory not valid), `Forbidden` (not the owner, a new owner the
    /// directory does not host there, no consent), `NotFound`/`Referred`,
    /// `Erased` (before anything else is looked at), the receiving node's
    /// answer (`PeerNode`), `AuditUnavailable`.
    pub(crate) async fn refer_case(
        &self,
        ctx: &RequestCtx,
        r: ReferCase,
        send: impl AsyncFnOnce(&Federation, &Caller, Outgoing) -> Result<(), ExchangeError>,
    ) -> Result<Recorded<String>, ExchangeError> {
        let mut rec = self.record(ctx, "ReferCase");
        let mut pseudonyms = Vec::new();
        let mut consent_ids = Vec::new();
        // Held until the referral is stored (or refused), in the database:
        // every process serving it sees the claim.
        let mut claimed = false;
        let result = async {
            let caller = self.caller(ctx)?;
            validate::uuid("case_id", &r.case_id)?;
            let until = rec.at.saturating_add(CLAIM_TTL_MS);
            if !self
                .store
                .claim_referral(&r.case_id, &ctx.request_id, rec.at, until)
                .await
                .map_err(stored)?
            {
                return Err(ExchangeError::FailedPrecondition(
                    "another ReferCase of this case is under way on this node: wait for its answer (once it is referred, the case is answered CASE_REFERRED here)".into(),
                ));
            }
            claimed = true;
            validate::participant_id("to_node", &r.to_node)?;
            validate::participant_id("new_owner", &r.new_owner)?;
            // An erased case is answered so before the federation or any
            // peer is consulted: it has nothing left to refer.
            self.live_case(
                caller,
                &r.case_id,
                Asking::Owner {
                    refusal: "only the case's owner may refer it",
                },
                &mut rec,
            )
            .await?;
            let federation = self.federation.as_ref().ok_or_else(|| {
                ExchangeError::FailedPrecondition(
                    "this node is not in a federation: a case is referred only to another federation node".into(),
                )
            })?;
            let running = federation
                .current(self.now())
                .map_err(|e| ExchangeError::FailedPrecondition(e.to_string()))?;
            if r.to_node == federation.node_id() {
                return Err(Invalid::new(
                    "to_node",
                    "to_node names this node: refer the case to another node",
                )
                .into());
            }
            if running.directory.node(&r.to_node).is_none() {
                return Err(Invalid::new(
                    "to_node",
                    format!(
                        "to_node: the federation directory (serial {}) names no such node",
                        running.directory.serial
                    ),
                )
                .into());
            }
            let Some(export) = self
                .store
                .case_for_referral(&r.case_id)
                .await
                .map_err(stored)?
            else {
                return Err(self
                    .not_held(
                        caller,
                        &r.case_id,
                        Asking::Owner {
                            refusal: "only the case's owner may refer it",
                        },
                        &mut rec,
                    )
                    .await);
            };
            // Erased between the check above and this read: still refused
            // here, never sent.
            Self::not_erased(&export.meta)?;
            self.name_subject(&mut rec, &export.meta);
            if export.meta.owner != caller.participant {
                return Err(ExchangeError::Forbidden(
                    "only the case's owner may refer it".into(),
                ));
            }
            hosted_municipality(&running.directory, &r.new_owner, &r.to_node)?;
            let present: Vec<Category> = export.sealed.iter().map(|(c, _)| *c).collect();
            let consent = referral_consent(&export.consents, &r.new_owner, &present, rec.at)?;
            rec.consents = vec![consent];
            rec.asked = present.clone();
            rec.released = present.clone();
            rec.rules = vec!["referral:consent-names-new-owner".into()];
            rec.detail = format!("{REFERRED_TO}{}', owner there '{}'", r.to_node, r.new_owner);
            let data = self.open_released(&export.meta, export.sealed, &present)?;
            pseudonyms = export.pseudonyms.clone();
            consent_ids = export.consents.iter().map(|c| c.id.clone()).collect();
            let outgoing = Outgoing {
                case_id: r.case_id.clone(),
                subject_ref: export.meta.subject_ref.clone(),
                new_owner: r.new_owner.clone(),
                version: export.meta.version,
                created_at: export.created_at,
                updated_at: export.meta.updated_at,
                data,
                consents: export.consents,
                pseudonyms: export.pseudonyms,
            };
            tokio::time::timeout(REFERRAL_SEND_DEADLINE, send(federation, caller, outgoing))
                .await
                .map_err(|_| ExchangeError::PeerNode {
                    code: crate::gateway::error::Code::Unavailable,
                    message: format!(
                        "node '{}' did not take the case within {} s: the case stays here; refer it again",
                        r.to_node,
                        REFERRAL_SEND_DEADLINE.as_secs()
                    ),
                })??;
            rec.decision = Decision::Allowed;
            Ok(r.to_node.clone())
        }
        .await;
        let ok = result.is_ok();
        let answer = match self.finish(rec.clone(), result).await {
            Ok(recorded) if ok => {
                let out = ReferredOut {
                    case_id: r.case_id.clone(),
                    node: r.to_node.clone(),
                    request_id: ctx.request_id.clone(),
                    at: rec.at,
                    pseudonyms,
                    consent_ids,
                };
                match self.store.refer_out(out).await {
                    Ok(()) => Ok(recorded),
                    Err(e) => Err(self.failed_after_record(rec, stored(e)).await),
                }
            }
            other => other,
        };
        if claimed {
            // A release that fails leaves the claim to expire: the case
            // waits at most `CLAIM_TTL_MS`, nothing else is lost.
            if let Err(e) = self
                .store
                .release_referral(&r.case_id, &ctx.request_id)
                .await
            {
                tracing::warn!(error = %e, "a referral's claim was not released; it expires");
            }
        }
        answer
    }

    /// Takes a case another node refers here (see the module's doc). The
    /// caller is the participant the sending node asserted (`rpc::federated`
    /// checked the directory hosts it there): the case's owner until now.
    ///
    /// Errors: `Invalid` (ids, bounds, no identity), `FailedPrecondition`
    /// (no federation, directory not valid), `Forbidden` (the new owner not
    /// hosted here as a municipality, the caller not the owner, no consent,
    /// the case held here already under another subject reference),
    /// `AuditUnavailable`.
    pub(crate) async fn accept_referral(
        &self,
        ctx: &RequestCtx,
        incoming: Incoming,
    ) -> Result<Recorded<()>, ExchangeError> {
        let mut rec = self.record(ctx, "AcceptReferral");
        let prepared = self.prepare_accept(ctx, &incoming, &mut rec).await;
        let (case, again) = match prepared {
            Ok(Some(case)) => (Some(case), false),
            Ok(None) => (None, true),
            Err(e) => return self.finish(rec, Err(e)).await,
        };
        if again {
            rec.detail
                .push_str("; it arrived before: nothing stored again");
        }
        let recorded = self.finish(rec.clone(), Ok(())).await?;
        let Some(case) = case else {
            return Ok(recorded);
        };
        match self.store.accept_referred(case).await {
            Ok(()) => Ok(recorded),
            Err(e) => Err(self.failed_after_record(rec, stored(e)).await),
        }
    }

    /// The checks of [`accept_referral`](Self::accept_referral) and the
    /// rows to store; `None` when this very case (same id, same subject
    /// reference) is here already: a retry.
    async fn prepare_accept(
        &self,
        ctx: &RequestCtx,
        incoming: &Incoming,
        rec: &mut AccessRecord,
    ) -> Result<Option<ReferredCase>, ExchangeError> {
        let caller = self.caller(ctx)?;
        let c = &incoming.case;
        validate::uuid("case_id", &c.case_id)?;
        validate::participant_id("new_owner", &c.new_owner)?;
        if c.subject_ref.len() != 16 {
            return Err(Invalid::new("subject_ref", "subject_ref must be 16 bytes").into());
        }
        if c.consents.len() > MAX_REFERRED_CONSENTS {
            return Err(Invalid::new(
                "consents",
                format!("at most {MAX_REFERRED_CONSENTS} consents move with a case"),
            )
            .into());
        }
        if c.pseudonyms.len() > MAX_REFERRED_PSEUDONYMS {
            return Err(Invalid::new(
                "pseudonyms",
                format!("at most {MAX_REFERRED_PSEUDONYMS} pseudonyms move with a case"),
            )
            .into());
        }
        for (i, (recipient, pseudonym)) in c.pseudonyms.iter().enumerate() {
            validate::participant_id(&format!("pseudonyms[{i}].recipient"), recipient)?;
            validate::pseudonym(&format!("pseudonyms[{i}].pseudonym"), pseudonym)?;
        }
        // A pseudonym that names another case here already would, once
        // stored, answer that recipient with one case for the other (or
        // be dropped, and the recipient lose its pseudonym): refused,
        // saying which row, before anything is stored.
        let mut pairs = std::collections::BTreeSet::new();
        for (i, (recipient, pseudonym)) in c.pseudonyms.iter().enumerate() {
            let field = format!("pseudonyms[{i}]");
            if !pairs.insert((recipient.as_str(), pseudonym.as_str())) {
                return Err(Invalid::new(
                    &field,
                    format!("{field}: the same recipient and pseudonym are listed twice"),
                )
                .into());
            }
            let held = self
                .store
                .resolve_pseudonym(recipient, pseudonym)
                .await
                .map_err(stored)?;
            if held.is_some_and(|held| held != c.case_id) {
                return Err(ExchangeError::FailedPrecondition(format!(
                    "{field}: recipient '{recipient}' holds this pseudonym for another case on node '{}' already: the referred case cannot keep it, and nothing was stored; the operators of both nodes must find out how one pseudonym came to name two cases",
                    self.node_id()
                )));
            }
        }
        for (i, consent) in c.consents.iter().enumerate() {
            if consent.case_id != c.case_id {
                return Err(Invalid::new(
                    format!("consents[{i}].case_id"),
                    format!("consents[{i}].case_id must be the referred case's case_id"),
                )
                .into());
            }
        }
        if !c.data.iter().any(|(cat, _)| *cat == Category::Identity) {
            return Err(Invalid::new(
                "data.identity",
                "data.identity is required: a case moves whole",
            )
            .into());
        }
        rec.case_id = Some(c.case_id.clone());
        // A key of this node's own for the case: the sending node's case key
        // never travels (the data came over the channel in the clear).
        let (case_key, wrapped) = self
            .keys
            .new_case_key(&c.case_id)
            .map_err(|e| ExchangeError::internal("vault", &e))?;
        let key_version = i64::from(self.keys.data_key_version());
        let meta = CaseMeta {
            id: c.case_id.clone(),
            owner: c.new_owner.clone(),
            subject_ref: c.subject_ref.clone(),
            version: c.version,
            updated_at: c.updated_at,
            subject_id: self.seal_subject_id(&case_key, &c.case_id, &incoming.subject_keys)?,
            case_key: Some(wrapped.clone()),
            erased_at: None,
        };
        self.name_subject(rec, &meta);
        let (federation, running) = self.in_federation()?;
        hosted_municipality(&running.directory, &c.new_owner, federation.node_id())?;
        if self.registry().role_of(&c.new_owner) != Some(Role::Municipality) {
            return Err(ExchangeError::Forbidden(format!(
                "participant '{}' is not registered on this node as a municipality",
                c.new_owner
            )));
        }
        let present: Vec<Category> = c.data.iter().map(|(cat, _)| *cat).collect();
        let consent = referral_consent(&c.consents, &c.new_owner, &present, rec.at)?;
        // The case's owner until now: the one the sending node speaks for.
        let owner_before = c
            .consents
            .iter()
            .find(|k| k.id == consent)
            .map(|k| k.recorded_by.as_str());
        if owner_before != Some(caller.participant.as_str()) {
            return Err(ExchangeError::Forbidden(format!(
                "participant '{}' did not record the consent to this referral: only the case's owner refers it",
                caller.participant
            )));
        }
        let from = running
            .directory
            .home_of(&caller.participant)
            .map_or("?", |(n, _)| n.id.as_str());
        rec.consents = vec![consent];
        rec.asked = present.clone();
        rec.rules = vec!["referral:consent-names-new-owner".into()];
        rec.decision = Decision::Allowed;
        rec.detail = format!(
            "referral from federation node '{from}', owner here '{}'",
            c.new_owner
        );
        if let Some(held) = self.store.case_meta(&c.case_id).await.map_err(stored)? {
            if held.subject_ref == c.subject_ref {
                return Ok(None);
            }
            return Err(ExchangeError::Forbidden(
                "a case with this case_id is held here already".into(),
            ));
        }
        Ok(Some(ReferredCase {
            id: c.case_id.clone(),
            owner: c.new_owner.clone(),
            subject_ref: c.subject_ref.clone(),
            version: c.version,
            created_at: c.created_at,
            updated_at: c.updated_at,
            subject_id: meta.subject_id,
            case_key: (wrapped, key_version),
            sealed: self.seal_all(&case_key, &c.case_id, &c.data)?,
            subject_index: self.subject_index(&incoming.subject_keys),
            consents: c.consents.clone(),
            pseudonyms: c.pseudonyms.clone(),
        }))
    }
}

/// Checks the directory hosts `participant` at `node` as a municipality.
fn hosted_municipality(
    directory: &crate::federation::directory::Directory,
    participant: &str,
    node: &str,
) -> Result<(), ExchangeError> {
    match directory.home_of(participant) {
        Some((home, Role::Municipality)) if home.id == node => Ok(()),
        _ => Err(ExchangeError::Forbidden(format!(
            "the federation directory (serial {}) does not say node '{node}' hosts municipality '{participant}'",
            directory.serial
        ))),
    }
}

/// The consent that backs a referral to `new_owner`: active at `now`,
/// naming it as a participant, for every category in `present`. Its id,
/// or `Forbidden` saying what is missing.
fn referral_consent(
    consents: &[Consent],
    new_owner: &str,
    present: &[Category],
    now: Millis,
) -> Result<String, ExchangeError> {
    consents
        .iter()
        .find(|c| {
            c.state(now) == ConsentState::Active
                && c.recipients
                    .iter()
                    .any(|r| matches!(r, Recipient::Participant(p) if p == new_owner))
                && present.iter().all(|cat| c.categories.contains(cat))
        })
        .map(|c| c.id.clone())
        .ok_or_else(|| {
            ExchangeError::Forbidden(format!(
                "no active consent of the subject names participant '{new_owner}' as recipient of every category the case holds: record the subject's consent to the referral first"
            ))
        })
}
