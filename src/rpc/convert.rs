//! Protobuf ↔ domain: messages become the gateway's types and its answers
//! become messages. Shape is checked on the way in (presence, enum codes,
//! counts, timestamps in range); meaning is asked of the gateway
//! ([`validate`]). Category payloads stay encoded: the gateway seals and
//! releases them as opaque bytes.

use prost::Message;

use crate::gateway::validate::{self, MAX_TEXT, SubjectKey};
use crate::gateway::{ExchangeError, IdempotencyKey, Named};
use crate::model::consent::{Consent, ConsentState, EventKind, Millis, Recipient};
use crate::model::outcome::{Outcome, OutcomeKind, Scenario, parse_date};
use crate::model::{Category, Role, WithholdReason};
use crate::rpc::proto::v1 as pb;
use crate::stats::CaseFacts;
use crate::store::StoredCheckpoint;
use crate::tlog::{AccessRecord, BasisKind, CategoryBasis, Decision, Verdict};

/// A write's idempotency key (AIP-155): its `request_id`, already taken
/// out of the message `m`, and the encoding of `m` without it — what a
/// retry repeats.
pub(crate) fn idempotency_key<M: Message>(request_id: String, m: &M) -> IdempotencyKey {
    IdempotencyKey {
        request_id,
        body: m.encode_to_vec(),
    }
}

/// A field (`field`: its path in the request) whose shape is wrong:
/// `message` names it and says what to fix.
pub(crate) fn invalid(field: &str, message: impl Into<String>) -> ExchangeError {
    ExchangeError::Invalid(validate::Invalid::new(field, message))
}

pub(crate) fn category(field: &str, code: i32) -> Result<Category, ExchangeError> {
    Category::from_code(code).ok_or_else(|| {
        invalid(
            field,
            format!("{field}: unknown category {code}: use CATEGORY_IDENTITY (1) to CATEGORY_OUTCOME (8)"),
        )
    })
}

/// The categories of the repeated field `field`, each checked.
pub(crate) fn categories(field: &str, codes: &[i32]) -> Result<Vec<Category>, ExchangeError> {
    if codes.len() > 64 {
        return Err(invalid(field, format!("{field}: at most 64 entries")));
    }
    codes
        .iter()
        .enumerate()
        .map(|(i, c)| category(&format!("{field}[{i}]"), *c))
        .collect()
}

/// A role given as `sluis.v1.Role` in `field`; UNSPECIFIED is refused.
pub(crate) fn role(field: &str, code: i32) -> Result<Role, ExchangeError> {
    role_filter(field, code)?.ok_or_else(|| {
        invalid(
            field,
            format!("{field} is required: ROLE_MUNICIPALITY (1) to ROLE_PRIVACY_OFFICER (7)"),
        )
    })
}

/// A role filter: UNSPECIFIED is any (`None`).
pub(crate) fn role_filter(field: &str, code: i32) -> Result<Option<Role>, ExchangeError> {
    use pb::Role as P;
    Ok(Some(match P::try_from(code) {
        Ok(P::Unspecified) => return Ok(None),
        Ok(P::Municipality) => Role::Municipality,
        Ok(P::Ind) => Role::Ind,
        Ok(P::Dtv) => Role::Dtv,
        Ok(P::Avim) => Role::Avim,
        Ok(P::Ngo) => Role::Ngo,
        Ok(P::Monitor) => Role::Monitor,
        Ok(P::PrivacyOfficer) => Role::PrivacyOfficer,
        Err(_) => {
            return Err(invalid(
                field,
                format!(
                    "{field}: unknown role; use ROLE_MUNICIPALITY (1) to ROLE_PRIVACY_OFFICER (7)"
                ),
            ));
        }
    }))
}

/// A role as the access log spells it (`ngo`; `-` for none) as
/// `sluis.v1.Role`: UNSPECIFIED for none.
pub(crate) fn role_pb(name: &str) -> pb::Role {
    use pb::Role as P;
    match name.parse::<Role>() {
        Ok(Role::Municipality) => P::Municipality,
        Ok(Role::Ind) => P::Ind,
        Ok(Role::Dtv) => P::Dtv,
        Ok(Role::Avim) => P::Avim,
        Ok(Role::Ngo) => P::Ngo,
        Ok(Role::Monitor) => P::Monitor,
        Ok(Role::PrivacyOfficer) => P::PrivacyOfficer,
        Err(_) => P::Unspecified,
    }
}

/// A decision filter: UNSPECIFIED is any (`None`).
pub(crate) fn decision_filter(field: &str, code: i32) -> Result<Option<Decision>, ExchangeError> {
    use pb::Decision as P;
    Ok(Some(match P::try_from(code) {
        Ok(P::Unspecified) => return Ok(None),
        Ok(P::Allowed) => Decision::Allowed,
        Ok(P::Partial) => Decision::Partial,
        Ok(P::Denied) => Decision::Denied,
        Ok(P::Invalid) => Decision::Invalid,
        Ok(P::NotFound) => Decision::NotFound,
        Ok(P::HandshakeFailed) => Decision::HandshakeFailed,
        Ok(P::Error) => Decision::Error,
        Err(_) => {
            return Err(invalid(
                field,
                format!(
                    "{field}: unknown decision; use DECISION_ALLOWED (1) to DECISION_ERROR (7)"
                ),
            ));
        }
    }))
}

pub(crate) fn decision_pb(d: Decision) -> pb::Decision {
    use pb::Decision as P;
    match d {
        Decision::Allowed => P::Allowed,
        Decision::Partial => P::Partial,
        Decision::Denied => P::Denied,
        Decision::Invalid => P::Invalid,
        Decision::NotFound => P::NotFound,
        Decision::HandshakeFailed => P::HandshakeFailed,
        Decision::Error => P::Error,
    }
}

/// A withheld category's reason as the access log spells it, as
/// `sluis.v1.WithholdReason` (UNSPECIFIED for a spelling it does not know).
pub(crate) fn withheld_pb(category: Category, reason: &str) -> pb::WithheldEntry {
    pb::WithheldEntry {
        category: i32::from(category.code()),
        reason: WithholdReason::ALL
            .iter()
            .find(|r| r.as_str() == reason)
            .map_or(pb::WithholdReason::Unspecified, |r| withhold_reason(*r))
            as i32,
    }
}

pub(crate) type Payloads = (Vec<(Category, Vec<u8>)>, Vec<SubjectKey>);

/// The categories an `UpdateCase` clears: those its `update_mask` (AIP-134,
/// paths of `CaseData`) names that `data` leaves unset. Each bad path is
/// `INVALID_ARGUMENT` naming it by its place (`update_mask.paths[2]`):
/// one that is no category (or `*`, or a field inside a category: an update
/// replaces whole categories), one named twice, and `identity` unless
/// `data` sets it — a case always has its identity, so neither it nor the
/// whole case can be cleared this way (erasure is the node's, by its
/// retention periods). A category set in `data` but not named is
/// `INVALID_ARGUMENT` naming `update_mask`. No mask: nothing is cleared.
pub(crate) fn cleared_by_mask(
    mask: Option<&prost_types::FieldMask>,
    set: &[Category],
) -> Result<Vec<Category>, ExchangeError> {
    use std::str::FromStr;
    use validate::Invalid;
    let Some(mask) = mask.filter(|m| !m.paths.is_empty()) else {
        return Ok(Vec::new());
    };
    if mask.paths.len() > Category::ALL.len() {
        return Err(Invalid::new(
            "update_mask.paths",
            format!(
                "update_mask names at most {} categories",
                Category::ALL.len()
            ),
        )
        .into());
    }
    let mut bad = validate::Violations::default();
    let mut named = Vec::new();
    for (i, path) in mask.paths.iter().enumerate() {
        let field = format!("update_mask.paths[{i}]");
        let Ok(c) = Category::from_str(path) else {
            let names: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
            let why = if path == "*" {
                "\"*\" (replace everything) is not accepted".to_string()
            } else if path.contains('.')
                && Category::from_str(path.split('.').next().unwrap_or("")).is_ok()
            {
                "names a field inside a category; an update replaces whole categories, so name the category alone".to_string()
            } else {
                "is not a category of CaseData".to_string()
            };
            bad.push(Invalid::new(
                field.clone(),
                format!("{field} {why}: name one of {}", names.join(", ")),
            ));
            continue;
        };
        if named.contains(&c) {
            bad.push(Invalid::new(
                field.clone(),
                format!("{field} names {c}, which an earlier path names already"),
            ));
            continue;
        }
        if c == Category::Identity && !set.contains(&c) {
            bad.push(Invalid::new(
                field.clone(),
                format!(
                    "{field} would clear identity, which a case always has: set data.identity to replace it, or leave identity out of update_mask"
                ),
            ));
            continue;
        }
        named.push(c);
    }
    bad.finish()?;
    if let Some(c) = set.iter().find(|c| !named.contains(c)) {
        return Err(Invalid::new(
            "update_mask",
            format!(
                "update_mask does not name {c}, which data sets; name every category the update changes"
            ),
        )
        .into());
    }
    Ok(named.into_iter().filter(|c| !set.contains(c)).collect())
}

/// The names an identity category's payload holds (`Identity.name`), for
/// the gateway's check that free text does not name the case's subject;
/// none when it does not decode.
pub(crate) fn identity_names(payload: &[u8]) -> Vec<String> {
    pb::Identity::decode(payload)
        .map(|i| vec![i.name])
        .unwrap_or_default()
}

/// Checks case data and splits it into per-category payloads, plus the
/// subject's identifiers for the index. Every invalid field is reported,
/// not only the first, so a form is fixed in one round.
pub(crate) fn case_input(data: pb::CaseData) -> Result<Payloads, ExchangeError> {
    use validate::Invalid;
    let today = crate::model::clock::today();
    let mut bad = validate::Violations::default();
    let mut out = Vec::new();
    let mut keys = Vec::new();
    if let Some(v) = data.identity {
        keys = bad
            .check(validate::identity(
                "data.identity",
                &validate::Identity {
                    name: &v.name,
                    date_of_birth: &v.date_of_birth,
                    nationality: &v.nationality,
                    v_number: &v.v_number,
                    bsn: &v.bsn,
                },
            ))
            .unwrap_or_default();
        out.push((Category::Identity, v.encode_to_vec()));
    }
    if let Some(v) = data.residence_procedure {
        bad.check(validate::text(
            "data.residence_procedure.status",
            &v.status,
            MAX_TEXT,
        ));
        bad.check(validate::past_date(
            "data.residence_procedure.last_decision_date",
            &v.last_decision_date,
            today,
        ));
        out.push((Category::ResidenceProcedure, v.encode_to_vec()));
    }
    if let Some(v) = data.shelter {
        bad.check(validate::text("data.shelter.location", &v.location, 200));
        bad.check(validate::date_range(
            ("data.shelter.since", &v.since),
            ("data.shelter.until", &v.until),
        ));
        bad.check(validate::text("data.shelter.notes", &v.notes, MAX_TEXT));
        out.push((Category::Shelter, v.encode_to_vec()));
    }
    if let Some(v) = data.guidance {
        bad.check(validate::text(
            "data.guidance.organisation",
            &v.organisation,
            200,
        ));
        bad.check(validate::text("data.guidance.notes", &v.notes, MAX_TEXT));
        out.push((Category::Guidance, v.encode_to_vec()));
    }
    if let Some(v) = data.perspective {
        if pb::PerspectiveKind::try_from(v.kind).is_err() {
            bad.push(Invalid::new(
                "data.perspective.kind",
                "data.perspective.kind is not a known PerspectiveKind",
            ));
        }
        if pb::PerspectiveKind::try_from(v.intake_scenario).is_err() {
            bad.push(Invalid::new(
                "data.perspective.intake_scenario",
                "data.perspective.intake_scenario is not a known PerspectiveKind",
            ));
        }
        bad.check(validate::past_date(
            "data.perspective.intake_date",
            &v.intake_date,
            today,
        ));
        if v.milestones.len() > 64 {
            bad.push(Invalid::new(
                "data.perspective.milestones",
                "data.perspective.milestones: at most 64",
            ));
        } else {
            for (i, m) in v.milestones.iter().enumerate() {
                bad.check(validate::text(
                    &format!("data.perspective.milestones[{i}].description"),
                    &m.description,
                    512,
                ));
                // A milestone may be planned: a future date is fine.
                bad.check(validate::case_date(
                    &format!("data.perspective.milestones[{i}].date"),
                    &m.date,
                ));
            }
        }
        out.push((Category::Perspective, v.encode_to_vec()));
    }
    if let Some(v) = data.medical {
        bad.check(validate::text("data.medical.notes", &v.notes, MAX_TEXT));
        out.push((Category::Medical, v.encode_to_vec()));
    }
    if let Some(v) = data.safety {
        bad.check(validate::text("data.safety.notes", &v.notes, MAX_TEXT));
        out.push((Category::Safety, v.encode_to_vec()));
    }
    if let Some(v) = data.outcome
        && let Some(v) = bad.check(outcome(v, today))
    {
        out.push((Category::Outcome, v.encode_to_vec()));
    }
    bad.finish()?;
    Ok((out, keys))
}

/// Checks an outcome and, for one written with `outcome_kind`, fills in
/// the former model's `reached` and `kind` so that readers of that model
/// still understand it (a client that sets them must agree with the kind).
fn outcome(mut v: pb::Outcome, today: time::Date) -> Result<pb::Outcome, validate::Invalid> {
    if pb::PerspectiveKind::try_from(v.kind).is_err() {
        return Err(validate::Invalid::new(
            "data.outcome.kind",
            "data.outcome.kind is not a known PerspectiveKind",
        ));
    }
    validate::past_date("data.outcome.date", &v.date, today)?;
    if v.outcome_kind == 0 {
        return Ok(v);
    }
    let kind = OutcomeKind::from_code(v.outcome_kind).ok_or_else(|| {
        validate::Invalid::new(
            "data.outcome.outcome_kind",
            "data.outcome.outcome_kind is not a known OutcomeKind",
        )
    })?;
    if v.date.is_empty() {
        return Err(validate::Invalid::new(
            "data.outcome.date",
            "data.outcome.date is required with outcome_kind: the day the outcome was reached",
        ));
    }
    let reached = kind.is_durable();
    let realised = kind.realises().map_or(0, |s| s.code());
    if (v.reached && !reached) || (v.kind != 0 && v.kind != realised) {
        let field = if v.reached && !reached {
            "data.outcome.reached"
        } else {
            "data.outcome.kind"
        };
        return Err(validate::Invalid::new(
            field,
            "data.outcome.reached and data.outcome.kind follow from outcome_kind; leave them unset",
        ));
    }
    v.reached = reached;
    v.kind = realised;
    Ok(v)
}

/// The facts statistics count, from a case's opened categories (perspective,
/// outcome, shelter; others are ignored). `owner` and `registered` (ms since
/// the epoch) come from the case's row; the intake is the perspective's
/// `intake_date` when set, else the registration day. A payload that does
/// not decode is an internal error, as for a read.
pub(crate) fn case_facts(
    owner: &str,
    registered: Millis,
    payloads: &[(Category, Vec<u8>)],
) -> Result<CaseFacts, ExchangeError> {
    let corrupt = |_| ExchangeError::Internal("stored case data does not decode");
    let registered_day = time::OffsetDateTime::from_unix_timestamp(registered.div_euclid(1000))
        .map(|t| t.date())
        .map_err(|_| ExchangeError::Internal("a case's registration time is out of range"))?;
    let mut facts = CaseFacts {
        owner: owner.to_string(),
        intake: registered_day,
        intake_scenario: None,
        perspective: None,
        outcome: None,
        shelter: None,
    };
    for (cat, bytes) in payloads {
        match cat {
            Category::Perspective => {
                let p = pb::Perspective::decode(bytes.as_slice()).map_err(corrupt)?;
                facts.perspective = Scenario::from_code(p.kind);
                facts.intake_scenario = Scenario::from_code(p.intake_scenario);
                if let Some(d) = parse_date(&p.intake_date) {
                    facts.intake = d;
                }
            }
            Category::Outcome => {
                let o = pb::Outcome::decode(bytes.as_slice()).map_err(corrupt)?;
                facts.outcome = match (OutcomeKind::from_code(o.outcome_kind), parse_date(&o.date))
                {
                    (Some(kind), Some(date)) => Some(Outcome { kind, date }),
                    (Some(_), None) => None,
                    (None, date) => {
                        Outcome::from_legacy(o.reached, Scenario::from_code(o.kind), date)
                    }
                };
            }
            Category::Shelter => {
                let s = pb::Shelter::decode(bytes.as_slice()).map_err(corrupt)?;
                facts.shelter = Some((parse_date(&s.since), parse_date(&s.until)));
            }
            _ => {}
        }
    }
    Ok(facts)
}

/// Rebuilds case data from released payloads. A payload that fails to
/// decode is an internal error: nothing half-decoded is sent.
pub(crate) fn case_data(released: Vec<(Category, Vec<u8>)>) -> Result<pb::CaseData, ExchangeError> {
    let mut d = pb::CaseData::default();
    let corrupt = |_| ExchangeError::Internal("stored case data does not decode");
    for (cat, bytes) in released {
        let b = bytes.as_slice();
        match cat {
            Category::Identity => d.identity = Some(pb::Identity::decode(b).map_err(corrupt)?),
            Category::ResidenceProcedure => {
                d.residence_procedure = Some(pb::ResidenceProcedure::decode(b).map_err(corrupt)?)
            }
            Category::Shelter => d.shelter = Some(pb::Shelter::decode(b).map_err(corrupt)?),
            Category::Guidance => d.guidance = Some(pb::Guidance::decode(b).map_err(corrupt)?),
            Category::Perspective => {
                d.perspective = Some(pb::Perspective::decode(b).map_err(corrupt)?)
            }
            Category::Medical => d.medical = Some(pb::Medical::decode(b).map_err(corrupt)?),
            Category::Safety => d.safety = Some(pb::Safety::decode(b).map_err(corrupt)?),
            Category::Outcome => d.outcome = Some(pb::Outcome::decode(b).map_err(corrupt)?),
        }
    }
    Ok(d)
}

pub(crate) fn withhold_reason(r: WithholdReason) -> pb::WithholdReason {
    use pb::WithholdReason as W;
    match r {
        WithholdReason::NotPermittedForRoleAndPurpose => W::NotPermittedForRoleAndPurpose,
        WithholdReason::NoConsent => W::NoConsent,
        WithholdReason::ConsentWithdrawn => W::ConsentWithdrawn,
        WithholdReason::ConsentExpired => W::ConsentExpired,
        WithholdReason::ConsentNotYetValid => W::ConsentNotYetValid,
        WithholdReason::ActorRequired => W::ActorRequired,
        WithholdReason::NotPresent => W::NotPresent,
        WithholdReason::JustificationRequired => W::JustificationRequired,
    }
}

pub(crate) fn timestamp(ms: Millis) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub(crate) fn millis(field: &str, t: &prost_types::Timestamp) -> Result<Millis, ExchangeError> {
    Ok(validate::instant(field, t.seconds, t.nanos)?)
}

pub(crate) fn consent_pb(c: &Consent, now: Millis) -> pb::Consent {
    pb::Consent {
        consent_id: c.id.clone(),
        case_id: c.case_id.clone(),
        recipients: c
            .recipients
            .iter()
            .map(|r| pb::Recipient {
                recipient: Some(match r {
                    Recipient::Participant(p) => pb::recipient::Recipient::Participant(p.clone()),
                    Recipient::Role(role) => {
                        pb::recipient::Recipient::Role(role_pb(role.as_str()) as i32)
                    }
                }),
            })
            .collect(),
        categories: c.categories.iter().map(|c| i32::from(c.code())).collect(),
        purposes: c.purposes.clone(),
        valid_from: Some(timestamp(c.valid_from)),
        valid_until: c.valid_until.map(timestamp),
        evidence_ref: c.evidence_ref.clone(),
        recorded_by: c.recorded_by.clone(),
        state: match c.state(now) {
            ConsentState::Active => pb::ConsentState::Active,
            ConsentState::NotYetValid => pb::ConsentState::NotYetValid,
            ConsentState::Expired => pb::ConsentState::Expired,
            ConsentState::Withdrawn => pb::ConsentState::Withdrawn,
        } as i32,
        events: c
            .events
            .iter()
            .map(|e| pb::ConsentEvent {
                kind: match e.kind {
                    EventKind::Given => pb::consent_event::Kind::Given,
                    EventKind::Withdrawn => pb::consent_event::Kind::Withdrawn,
                } as i32,
                at: Some(timestamp(e.at)),
                by: e.by.clone(),
                note: e.note.clone(),
            })
            .collect(),
    }
}

pub(crate) fn recipients(rs: Vec<pb::Recipient>) -> Result<Vec<Recipient>, ExchangeError> {
    if rs.len() > 64 {
        return Err(invalid("recipients", "recipients: at most 64"));
    }
    rs.into_iter()
        .enumerate()
        .map(|(i, r)| match r.recipient {
            Some(pb::recipient::Recipient::Participant(p)) => {
                validate::participant_id(&format!("recipients[{i}].participant"), &p)?;
                Ok(Recipient::Participant(p))
            }
            Some(pb::recipient::Recipient::Role(code)) => Ok(Recipient::Role(role(
                &format!("recipients[{i}].role"),
                code,
            )?)),
            None => Err(invalid(
                &format!("recipients[{i}]"),
                format!("recipients[{i}] must set participant or role"),
            )),
        })
        .collect()
}

pub(crate) fn entry_pb(index: i64, leaf: Vec<u8>) -> Result<pb::AccessEntry, ExchangeError> {
    let r = AccessRecord::decode(&leaf)
        .ok_or(ExchangeError::Internal("an access record does not decode"))?;
    Ok(pb::AccessEntry {
        index: index as u64,
        access_record_id: r.request_id,
        at: Some(timestamp(r.at)),
        caller: r.caller,
        role: role_pb(&r.role) as i32,
        peer_fingerprint: r.peer_fingerprint.unwrap_or_default(),
        actor_hash: r.actor_hash.unwrap_or_default(),
        method: r.method,
        case_id: r.case_id.unwrap_or_default(),
        subject: r.subject.unwrap_or_default(),
        purpose: r.purpose.unwrap_or_default(),
        asked: r.asked.iter().map(|c| i32::from(c.code())).collect(),
        released: r.released.iter().map(|c| i32::from(c.code())).collect(),
        withheld: r
            .withheld
            .iter()
            .map(|(c, reason)| withheld_pb(*c, reason))
            .collect(),
        decision: decision_pb(r.decision) as i32,
        status: r.status,
        detail: r.detail,
        rules: r.rules,
        consents: r.consents,
        leaf,
        subjects: r.subjects,
        bases: r.bases.iter().map(basis_pb).collect(),
        review: r.review.map(|v| pb::EmergencyReview {
            access_record_id: v.access_record_id,
            verdict: verdict_pb(v.verdict) as i32,
            note: v.note,
            access_index: None,
        }),
        from_node: r.from_node.unwrap_or_default(),
    })
}

/// A released category's basis as `AccessEntry.bases` and
/// `ReportEntry.bases` carry it.
pub(crate) fn basis_pb(b: &CategoryBasis) -> pb::CategoryBasis {
    pb::CategoryBasis {
        category: i32::from(b.category.code()),
        kind: match b.kind {
            BasisKind::Consent => pb::BasisKind::Consent,
            BasisKind::LegalBasis => pb::BasisKind::LegalBasis,
            BasisKind::Emergency => pb::BasisKind::Emergency,
        } as i32,
        rules: b.rules.clone(),
        text: b.text.clone(),
    }
}

/// The inverse of [`basis_pb`], for the officer's tools; `None` for a kind
/// or category this binary does not know.
pub(crate) fn basis_from_pb(b: &pb::CategoryBasis) -> Option<CategoryBasis> {
    Some(CategoryBasis {
        category: Category::from_code(b.category)?,
        kind: match pb::BasisKind::try_from(b.kind).ok()? {
            pb::BasisKind::Consent => BasisKind::Consent,
            pb::BasisKind::LegalBasis => BasisKind::LegalBasis,
            pb::BasisKind::Emergency => BasisKind::Emergency,
            pb::BasisKind::Unspecified => return None,
        },
        rules: b.rules.clone(),
        text: b.text.clone(),
    })
}

pub(crate) fn verdict_pb(v: Verdict) -> pb::Verdict {
    match v {
        Verdict::Justified => pb::Verdict::Justified,
        Verdict::NotJustified => pb::Verdict::NotJustified,
    }
}

/// `CloseEmergencyAlertRequest.verdict`: set, and one this node knows.
pub(crate) fn verdict(field: &str, v: i32) -> Result<Verdict, ExchangeError> {
    match pb::Verdict::try_from(v) {
        Ok(pb::Verdict::Justified) => Ok(Verdict::Justified),
        Ok(pb::Verdict::NotJustified) => Ok(Verdict::NotJustified),
        _ => Err(invalid(
            field,
            "verdict must be VERDICT_JUSTIFIED or VERDICT_NOT_JUSTIFIED",
        )),
    }
}

pub(crate) fn checkpoint_pb(cp: StoredCheckpoint) -> pb::Checkpoint {
    pb::Checkpoint {
        size: cp.size as u64,
        root_hash: cp.root,
        signed_note: cp.note,
        signed_at: Some(timestamp(cp.at)),
    }
}

pub(crate) fn nonempty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// What a request message names of a subject, read before its shape is
/// checked, so that a refusal's record names the case (the subject access
/// report then shows the attempt). Messages that name no single case keep
/// the default.
pub(crate) trait NamesSubject {
    fn named(&self) -> Named {
        Named::Nothing
    }
}

impl NamesSubject for pb::GetCaseRequest {
    fn named(&self) -> Named {
        use pb::get_case_request::Subject;
        match &self.subject {
            Some(Subject::CaseId(id)) => Named::Case(id.clone()),
            Some(Subject::SubjectPseudonym(p)) => Named::Pseudonym(p.clone()),
            None => Named::Nothing,
        }
    }
}

impl NamesSubject for pb::UpdateCaseRequest {
    fn named(&self) -> Named {
        Named::Case(self.case_id.clone())
    }
}

impl NamesSubject for pb::GrantConsentRequest {
    fn named(&self) -> Named {
        Named::Case(self.case_id.clone())
    }
}

impl NamesSubject for pb::ListConsentsRequest {
    fn named(&self) -> Named {
        Named::Case(self.case_id.clone())
    }
}

impl NamesSubject for pb::WithdrawConsentRequest {
    fn named(&self) -> Named {
        Named::Consent(self.consent_id.clone())
    }
}

impl NamesSubject for pb::GetConsentReceiptRequest {
    fn named(&self) -> Named {
        Named::Consent(self.consent_id.clone())
    }
}

impl NamesSubject for pb::SubjectAccessReportRequest {
    fn named(&self) -> Named {
        use pb::subject_access_report_request::Subject;
        match &self.subject {
            Some(Subject::CaseId(id)) => Named::Case(id.clone()),
            _ => Named::Nothing,
        }
    }
}

impl NamesSubject for pb::QueryAccessRequest {
    fn named(&self) -> Named {
        Named::Case(self.case_id.clone())
    }
}

impl NamesSubject for pb::ReferCaseRequest {
    fn named(&self) -> Named {
        Named::Case(self.case_id.clone())
    }
}

impl NamesSubject for pb::ReportCaseAccessesRequest {
    fn named(&self) -> Named {
        Named::Case(self.case_id.clone())
    }
}

impl NamesSubject for pb::AcceptReferralRequest {
    fn named(&self) -> Named {
        Named::Case(self.case_id.clone())
    }
}

impl NamesSubject for pb::RegisterCaseRequest {}
impl NamesSubject for pb::FindCasesRequest {}
impl NamesSubject for pb::GetCheckpointRequest {}
impl NamesSubject for pb::GetWitnessCheckpointRequest {}
impl NamesSubject for pb::AddCosignatureRequest {}
impl NamesSubject for pb::GetInclusionProofRequest {}
impl NamesSubject for pb::GetConsistencyProofRequest {}
impl NamesSubject for pb::GetStatisticsRequest {}
impl NamesSubject for pb::ListEmergencyAlertsRequest {}
impl NamesSubject for pb::ListStatisticsReleasesRequest {}
impl NamesSubject for pb::CloseEmergencyAlertRequest {}
impl NamesSubject for pb::AcknowledgeWitnessAlarmRequest {}
