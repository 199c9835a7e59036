//! The gRPC services: protobuf in, domain types to `exchange`, protobuf out.
//!
//! Every method goes through [`Api::call`], which gives the request its id,
//! reads the typed peer that the TLS layer attached, checks size and
//! metadata, converts the message, and maps the outcome to a status in one
//! place ([`status`]). Every response, success or error, carries
//! `x-request-id`, the same id as in the access record.

use std::sync::Arc;

use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use crate::gateway::oversight::SubjectRef;
use crate::gateway::validate::{self, MAX_TEXT, SubjectKey};
use crate::gateway::{
    CaseRef, Exchange, ExchangeError, FindCases, GetCase, NewConsent, RequestCtx, Scope,
};
use crate::model::consent::{Consent, ConsentState, EventKind, Millis, Recipient};
use crate::model::{Category, Role, WithholdReason};
use crate::net::identity::Peer;
use crate::net::tls::ConnectionInfo;
use crate::rpc::proto::v1 as pb;
use crate::store::{LogFilter, StoredCheckpoint};
use crate::tlog::proof::LeafRef;
use crate::tlog::{AccessRecord, Recorded};

pub const REQUEST_ID_HEADER: &str = "x-request-id";
pub const ACTOR_HEADER: &str = "x-sluis-actor";
const MAX_ACTOR_LEN: usize = 128;

/// Shared by both services.
#[derive(Clone)]
pub struct Api {
    ex: Arc<Exchange>,
    max_message_bytes: usize,
}

impl Api {
    pub fn new(ex: Arc<Exchange>, max_message_bytes: usize) -> Api {
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
    async fn call<Req, Dom, Resp>(
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

/// The acting employee from metadata: optional, printable ASCII, bounded.
fn actor<T>(req: &Request<T>) -> Result<Option<String>, ExchangeError> {
    let Some(v) = req.metadata().get(ACTOR_HEADER) else {
        return Ok(None);
    };
    let bad = || {
        ExchangeError::Invalid(format!(
            "{ACTOR_HEADER} must be 1-{MAX_ACTOR_LEN} printable ASCII characters (an employee id)"
        ))
    };
    let s = v.to_str().map_err(|_| bad())?;
    if s.is_empty() || s.len() > MAX_ACTOR_LEN || !s.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Err(bad());
    }
    Ok(Some(s.to_string()))
}

/// Error → gRPC status: the gateway's code, by its gRPC number, with the
/// error's message and the request id.
pub fn status(e: ExchangeError, request_id: &str) -> Status {
    let code = tonic::Code::from_i32(e.code() as i32);
    with_id(Status::new(code, e.to_string()), request_id)
}

fn with_id(mut s: Status, request_id: &str) -> Status {
    if let Ok(v) = MetadataValue::try_from(request_id) {
        s.metadata_mut().insert(REQUEST_ID_HEADER, v);
    }
    s
}

// ---- conversions and validation ----

fn invalid(msg: impl Into<String>) -> ExchangeError {
    ExchangeError::Invalid(msg.into())
}

fn category(code: i32) -> Result<Category, ExchangeError> {
    Category::from_code(code).ok_or_else(|| {
        invalid(format!(
            "unknown category {code}: use CATEGORY_IDENTITY (1) to CATEGORY_OUTCOME (8)"
        ))
    })
}

fn categories(codes: &[i32]) -> Result<Vec<Category>, ExchangeError> {
    if codes.len() > 64 {
        return Err(invalid("categories: at most 64 entries"));
    }
    codes.iter().map(|c| category(*c)).collect()
}

/// The identity's fields, checked, and the subject keys it carries.
fn identity(id: &pb::Identity) -> Result<Vec<SubjectKey>, ExchangeError> {
    Ok(validate::identity(
        "data.identity",
        &validate::Identity {
            name: &id.name,
            date_of_birth: &id.date_of_birth,
            nationality: &id.nationality,
            v_number: &id.v_number,
            bsn: &id.bsn,
        },
    )?)
}

type Payloads = (Vec<(Category, Vec<u8>)>, Vec<SubjectKey>);

/// Checks case data and splits it into per-category payloads, plus the
/// subject's identifiers for the index.
fn case_input(data: pb::CaseData) -> Result<Payloads, ExchangeError> {
    let mut out = Vec::new();
    let mut keys = Vec::new();
    if let Some(v) = data.identity {
        keys = identity(&v)?;
        out.push((Category::Identity, v.encode_to_vec()));
    }
    if let Some(v) = data.residence_procedure {
        validate::text("data.residence_procedure.status", &v.status, MAX_TEXT)?;
        validate::date(
            "data.residence_procedure.last_decision_date",
            &v.last_decision_date,
        )?;
        out.push((Category::ResidenceProcedure, v.encode_to_vec()));
    }
    if let Some(v) = data.shelter {
        validate::text("data.shelter.location", &v.location, 200)?;
        validate::date_range(
            ("data.shelter.since", &v.since),
            ("data.shelter.until", &v.until),
        )?;
        validate::text("data.shelter.notes", &v.notes, MAX_TEXT)?;
        out.push((Category::Shelter, v.encode_to_vec()));
    }
    if let Some(v) = data.guidance {
        validate::text("data.guidance.organisation", &v.organisation, 200)?;
        validate::text("data.guidance.notes", &v.notes, MAX_TEXT)?;
        out.push((Category::Guidance, v.encode_to_vec()));
    }
    if let Some(v) = data.perspective {
        if pb::PerspectiveKind::try_from(v.kind).is_err() {
            return Err(invalid(
                "data.perspective.kind is not a known PerspectiveKind",
            ));
        }
        if v.milestones.len() > 64 {
            return Err(invalid("data.perspective.milestones: at most 64"));
        }
        for m in &v.milestones {
            validate::text(
                "data.perspective.milestones.description",
                &m.description,
                512,
            )?;
            validate::date("data.perspective.milestones.date", &m.date)?;
        }
        out.push((Category::Perspective, v.encode_to_vec()));
    }
    if let Some(v) = data.medical {
        validate::text("data.medical.notes", &v.notes, MAX_TEXT)?;
        out.push((Category::Medical, v.encode_to_vec()));
    }
    if let Some(v) = data.safety {
        validate::text("data.safety.notes", &v.notes, MAX_TEXT)?;
        out.push((Category::Safety, v.encode_to_vec()));
    }
    if let Some(v) = data.outcome {
        if pb::PerspectiveKind::try_from(v.kind).is_err() {
            return Err(invalid("data.outcome.kind is not a known PerspectiveKind"));
        }
        validate::date("data.outcome.date", &v.date)?;
        out.push((Category::Outcome, v.encode_to_vec()));
    }
    Ok((out, keys))
}

/// Rebuilds case data from released payloads. A payload that fails to
/// decode is an internal error: nothing half-decoded is sent.
fn case_data(released: Vec<(Category, Vec<u8>)>) -> Result<pb::CaseData, ExchangeError> {
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

fn withhold_reason(r: WithholdReason) -> pb::WithholdReason {
    use pb::WithholdReason as W;
    match r {
        WithholdReason::NotPermittedForRoleAndPurpose => W::NotPermittedForRoleAndPurpose,
        WithholdReason::NoConsent => W::NoConsent,
        WithholdReason::ConsentWithdrawn => W::ConsentWithdrawn,
        WithholdReason::ConsentExpired => W::ConsentExpired,
        WithholdReason::ConsentNotYetValid => W::ConsentNotYetValid,
        WithholdReason::ActorRequired => W::ActorRequired,
        WithholdReason::NotPresent => W::NotPresent,
    }
}

pub fn timestamp(ms: Millis) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

fn millis(field: &str, t: &prost_types::Timestamp) -> Result<Millis, ExchangeError> {
    // Years 1970..=9999 are plenty for consent windows.
    if !(0..=253_402_300_799).contains(&t.seconds) || !(0..1_000_000_000).contains(&t.nanos) {
        return Err(invalid(format!("{field} is out of range")));
    }
    Ok(t.seconds * 1000 + i64::from(t.nanos / 1_000_000))
}

fn consent_pb(c: &Consent, now: Millis) -> pb::Consent {
    pb::Consent {
        consent_id: c.id.clone(),
        case_id: c.case_id.clone(),
        recipients: c
            .recipients
            .iter()
            .map(|r| pb::Recipient {
                recipient: Some(match r {
                    Recipient::Participant(p) => pb::recipient::Recipient::Participant(p.clone()),
                    Recipient::Role(role) => pb::recipient::Recipient::Role(role.to_string()),
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

// ---- CaseService ----

#[tonic::async_trait]
impl pb::case_service_server::CaseService for Api {
    async fn register_case(
        &self,
        req: Request<pb::RegisterCaseRequest>,
    ) -> Result<Response<pb::RegisterCaseResponse>, Status> {
        self.call(
            "RegisterCase",
            req,
            |m| {
                let data = m
                    .data
                    .ok_or_else(|| invalid("data is required and must contain an identity"))?;
                case_input(data)
            },
            async |ex, ctx, (data, keys)| {
                ex.register_case(ctx, data, keys).await?.try_map(|r| {
                    Ok(pb::RegisterCaseResponse {
                        case_id: r.case_id,
                        subject_pseudonym: r.pseudonym,
                        request_id: ctx.request_id.clone(),
                    })
                })
            },
        )
        .await
    }

    async fn update_case(
        &self,
        req: Request<pb::UpdateCaseRequest>,
    ) -> Result<Response<pb::UpdateCaseResponse>, Status> {
        self.call(
            "UpdateCase",
            req,
            |m| {
                let (data, keys) = case_input(m.data.unwrap_or_default())?;
                Ok((m.case_id, data, keys))
            },
            async |ex, ctx, (case_id, data, keys)| {
                ex.update_case(ctx, case_id, data, keys)
                    .await?
                    .try_map(|version| {
                        Ok(pb::UpdateCaseResponse {
                            version: version as u64,
                            request_id: ctx.request_id.clone(),
                        })
                    })
            },
        )
        .await
    }

    async fn get_case(
        &self,
        req: Request<pb::GetCaseRequest>,
    ) -> Result<Response<pb::GetCaseResponse>, Status> {
        self.call(
            "GetCase",
            req,
            |m| {
                let subject = match m.subject {
                    Some(pb::get_case_request::Subject::CaseId(id)) => CaseRef::Id(id),
                    Some(pb::get_case_request::Subject::SubjectPseudonym(p)) => {
                        CaseRef::Pseudonym(p)
                    }
                    None => {
                        return Err(invalid(
                            "set case_id or subject_pseudonym to say which case",
                        ));
                    }
                };
                Ok(GetCase {
                    subject,
                    purpose: m.purpose,
                    categories: categories(&m.categories)?,
                })
            },
            async |ex, ctx, q| {
                ex.get_case(ctx, q).await?.try_map(|view| {
                    Ok(pb::GetCaseResponse {
                        case_id: view.case_id.unwrap_or_default(),
                        subject_pseudonym: view.pseudonym,
                        released: view
                            .released
                            .iter()
                            .map(|(c, _)| i32::from(c.code()))
                            .collect(),
                        data: Some(case_data(view.released)?),
                        withheld: view
                            .withheld
                            .into_iter()
                            .map(|w| pb::WithheldCategory {
                                category: i32::from(w.category.code()),
                                reason: withhold_reason(w.reason) as i32,
                                detail: w.detail,
                            })
                            .collect(),
                        request_id: ctx.request_id.clone(),
                    })
                })
            },
        )
        .await
    }

    async fn find_cases(
        &self,
        req: Request<pb::FindCasesRequest>,
    ) -> Result<Response<pb::FindCasesResponse>, Status> {
        self.call(
            "FindCases",
            req,
            |m| {
                let scope = match pb::find_cases_request::Scope::try_from(m.scope) {
                    Ok(pb::find_cases_request::Scope::Own) => Scope::Own,
                    Ok(pb::find_cases_request::Scope::Visible) => Scope::Visible,
                    _ => return Err(invalid("scope must be SCOPE_OWN or SCOPE_VISIBLE")),
                };
                Ok(FindCases {
                    scope,
                    purpose: m.purpose,
                    page_size: m.page_size,
                    after: m.page_token,
                })
            },
            async |ex, ctx, q| {
                ex.find_cases(ctx, q).await?.try_map(|(cases, next)| {
                    Ok(pb::FindCasesResponse {
                        cases: cases
                            .into_iter()
                            .map(|c| pb::CaseSummary {
                                case_id: c.case_id.unwrap_or_default(),
                                subject_pseudonym: c.pseudonym,
                                owner: c.owner,
                                version: c.version as u64,
                                updated_at: Some(timestamp(c.updated_at)),
                            })
                            .collect(),
                        next_page_token: next,
                        request_id: ctx.request_id.clone(),
                    })
                })
            },
        )
        .await
    }
}

// ---- ConsentService ----

fn recipients(rs: Vec<pb::Recipient>) -> Result<Vec<Recipient>, ExchangeError> {
    if rs.len() > 64 {
        return Err(invalid("recipients: at most 64"));
    }
    rs.into_iter()
        .map(|r| match r.recipient {
            Some(pb::recipient::Recipient::Participant(p)) => {
                if crate::config::valid_participant_id(&p) {
                    Ok(Recipient::Participant(p))
                } else {
                    Err(invalid("recipients: a participant id is malformed (a-z, 0-9, '-', '_', '.', at most 64)"))
                }
            }
            Some(pb::recipient::Recipient::Role(role)) => role
                .parse::<Role>()
                .map(Recipient::Role)
                .map_err(|_| invalid("recipients: unknown role; use municipality, ind, dtv, avim, ngo, monitor or privacy_officer")),
            None => Err(invalid("recipients: each entry must set participant or role")),
        })
        .collect()
}

#[tonic::async_trait]
impl pb::consent_service_server::ConsentService for Api {
    async fn grant_consent(
        &self,
        req: Request<pb::GrantConsentRequest>,
    ) -> Result<Response<pb::GrantConsentResponse>, Status> {
        self.call(
            "GrantConsent",
            req,
            |m| {
                validate::text("evidence_ref", &m.evidence_ref, 256)?;
                if m.purposes.len() > 32 {
                    return Err(invalid("purposes: at most 32"));
                }
                Ok(NewConsent {
                    case_id: m.case_id,
                    recipients: recipients(m.recipients)?,
                    categories: categories(&m.categories)?,
                    purposes: m.purposes,
                    valid_from: m
                        .valid_from
                        .as_ref()
                        .map(|t| millis("valid_from", t))
                        .transpose()?,
                    valid_until: m
                        .valid_until
                        .as_ref()
                        .map(|t| millis("valid_until", t))
                        .transpose()?,
                    evidence_ref: m.evidence_ref,
                })
            },
            async |ex, ctx, c| {
                ex.grant_consent(ctx, c).await?.try_map(|consent| {
                    Ok(pb::GrantConsentResponse {
                        consent: Some(consent_pb(&consent, ex.now())),
                        request_id: ctx.request_id.clone(),
                    })
                })
            },
        )
        .await
    }

    async fn withdraw_consent(
        &self,
        req: Request<pb::WithdrawConsentRequest>,
    ) -> Result<Response<pb::WithdrawConsentResponse>, Status> {
        self.call(
            "WithdrawConsent",
            req,
            |m| {
                validate::text("note", &m.note, 512)?;
                Ok((m.consent_id, m.note))
            },
            async |ex, ctx, (id, note)| {
                ex.withdraw_consent(ctx, id, note)
                    .await?
                    .try_map(|consent| {
                        Ok(pb::WithdrawConsentResponse {
                            consent: Some(consent_pb(&consent, ex.now())),
                            request_id: ctx.request_id.clone(),
                        })
                    })
            },
        )
        .await
    }

    async fn list_consents(
        &self,
        req: Request<pb::ListConsentsRequest>,
    ) -> Result<Response<pb::ListConsentsResponse>, Status> {
        self.call(
            "ListConsents",
            req,
            |m| Ok(m.case_id),
            async |ex, ctx, case_id| {
                ex.list_consents(ctx, case_id).await?.try_map(|consents| {
                    let now = ex.now();
                    Ok(pb::ListConsentsResponse {
                        consents: consents.iter().map(|c| consent_pb(c, now)).collect(),
                        request_id: ctx.request_id.clone(),
                    })
                })
            },
        )
        .await
    }

    async fn get_consent_receipt(
        &self,
        req: Request<pb::GetConsentReceiptRequest>,
    ) -> Result<Response<pb::GetConsentReceiptResponse>, Status> {
        self.call(
            "GetConsentReceipt",
            req,
            |m| Ok(m.consent_id),
            async |ex, ctx, id| {
                ex.consent_receipt(ctx, id).await?.try_map(|r| {
                    Ok(pb::GetConsentReceiptResponse {
                        signed_note: r.signed_note,
                        verifier_key: r.verifier_key,
                        request_id: ctx.request_id.clone(),
                    })
                })
            },
        )
        .await
    }
}

// ---- AuditService ----

fn entry_pb(index: i64, leaf: Vec<u8>) -> Result<pb::AccessEntry, ExchangeError> {
    let r = AccessRecord::decode(&leaf)
        .ok_or(ExchangeError::Internal("an access record does not decode"))?;
    Ok(pb::AccessEntry {
        index: index as u64,
        request_id: r.request_id,
        at: Some(timestamp(r.at)),
        caller: r.caller,
        role: r.role,
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
            .into_iter()
            .map(|(c, reason)| pb::WithheldEntry {
                category: i32::from(c.code()),
                reason,
            })
            .collect(),
        decision: r.decision.as_str().into(),
        status: r.status,
        detail: r.detail,
        rules: r.rules,
        consents: r.consents,
        leaf,
    })
}

fn checkpoint_pb(cp: StoredCheckpoint) -> pb::Checkpoint {
    pb::Checkpoint {
        size: cp.size as u64,
        root_hash: cp.root,
        signed_note: cp.note,
        signed_at: Some(timestamp(cp.at)),
    }
}

fn nonempty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

type EntryStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::AccessEntry, Status>> + Send>>;

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
                    role: nonempty(m.role),
                    method: nonempty(m.method),
                    purpose: nonempty(m.purpose),
                    decision: nonempty(m.decision),
                    case_id: nonempty(m.case_id),
                    subject: nonempty(m.subject),
                };
                if m.start_index > i64::MAX as u64 {
                    return Err(invalid("start_index is out of range"));
                }
                Ok((filter, m.start_index as i64, i64::from(m.limit)))
            },
            async |ex, ctx, (filter, start, limit)| {
                ex.query_access(ctx, filter, start, limit)
                    .await?
                    .try_map(|rows| {
                        let entries: Vec<Result<pb::AccessEntry, Status>> = rows
                            .into_iter()
                            .map(|r| {
                                entry_pb(r.seq, r.record).map_err(|e| status(e, &ctx.request_id))
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
                None => Err(invalid("set case_id, v_number or bsn to say whose report")),
            },
            async |ex, ctx, subject| {
                ex.subject_access_report(ctx, subject)
                    .await?
                    .try_map(|report| {
                        Ok(pb::SubjectAccessReportResponse {
                            case_ids: report.case_ids,
                            entries: report
                                .entries
                                .into_iter()
                                .map(|e| pb::ReportEntry {
                                    index: e.index as u64,
                                    at: Some(timestamp(e.record.at)),
                                    participant: e.record.caller.clone(),
                                    organisation: e.organisation,
                                    role: e.record.role.clone(),
                                    method: e.record.method.clone(),
                                    purpose: e.record.purpose.clone().unwrap_or_default(),
                                    released: e
                                        .record
                                        .released
                                        .iter()
                                        .map(|c| i32::from(c.code()))
                                        .collect(),
                                    withheld: e
                                        .record
                                        .withheld
                                        .iter()
                                        .map(|(c, reason)| pb::WithheldEntry {
                                            category: i32::from(c.code()),
                                            reason: reason.clone(),
                                        })
                                        .collect(),
                                    decision: e.record.decision.as_str().into(),
                                    summary: e.summary,
                                })
                                .collect(),
                            text: report.text,
                            request_id: ctx.request_id.clone(),
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
                        request_id: ctx.request_id.clone(),
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
                    Some(pb::get_inclusion_proof_request::Entry::RequestId(id)) => {
                        LeafRef::RequestId(id)
                    }
                    Some(pb::get_inclusion_proof_request::Entry::Index(i)) => LeafRef::Index(i),
                    None => return Err(invalid("set request_id or index to say which entry")),
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
                        request_id: ctx.request_id.clone(),
                    })
                })
            },
        )
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
                        request_id: ctx.request_id.clone(),
                    })
                })
            },
        )
        .await
    }
}

// ---- refusals by the transport ----

/// tonic refuses a message beyond its decoding cap before any handler runs,
/// with OUT_OF_RANGE and without our request id or an access record. This
/// layer turns that answer into RESOURCE_EXHAUSTED with an `x-request-id`
/// and records the refusal like any other, so no refusal goes unrecorded.
#[derive(Clone)]
pub struct TransportRefusals {
    ex: Arc<Exchange>,
    max_message_bytes: usize,
}

impl TransportRefusals {
    pub fn new(ex: Arc<Exchange>, max_message_bytes: usize) -> Self {
        TransportRefusals {
            ex,
            max_message_bytes,
        }
    }
}

impl<S> tower::Layer<S> for TransportRefusals {
    type Service = RefusalService<S>;
    fn layer(&self, inner: S) -> RefusalService<S> {
        RefusalService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RefusalService<S> {
    inner: S,
    layer: TransportRefusals,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for RefusalService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let peer = req
            .extensions()
            .get::<ConnectionInfo>()
            .map(|c| c.peer.clone());
        let method = req
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or("")
            .to_string();
        // The clone is not ready; the original is: take it, leave the clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let resp = inner.call(req).await?;
            let refused_by_decoder = resp
                .headers()
                .get("grpc-status")
                .is_some_and(|v| v.as_bytes() == b"11");
            let Some(peer) = peer.filter(|_| refused_by_decoder) else {
                return Ok(resp);
            };
            let request_id = uuid::Uuid::now_v7().to_string();
            let ctx = RequestCtx {
                request_id: request_id.clone(),
                peer,
                actor: None,
            };
            let e = layer
                .ex
                .refuse(
                    &ctx,
                    &method,
                    ExchangeError::TooLarge(format!(
                        "request is larger than this node accepts: at most {} bytes per message",
                        layer.max_message_bytes
                    )),
                )
                .await;
            Ok(status(e, &request_id).into_http())
        })
    }
}
