//! Access records and their canonical encoding: the leaves of the access log.
//!
//! One record per request, allowed or not, and per refused TLS handshake.
//! The encoding is versioned and deterministic, so the same record always
//! hashes to the same leaf (RFC 6962 §2.1: the leaf hash is over these bytes).

use crate::model::Category;
use crate::model::trace::{ForeignOperation, SpanId, TraceContext, TraceId};
use crate::store::LogRow;

/// Version of the canonical record encoding. Bumped on any change to
/// [`AccessRecord::encode`]; old records keep their version byte, and
/// [`RecordView::parse`] reads every version, so they still decode and
/// verify.
///
/// - 1: the fields up to `consents`.
/// - 2: adds `subjects`, every other subject the call returned or touched.
/// - 3: adds the Logboek Dataverwerkingen fields ([`Ldv`]): trace and span
///   id, the caller's operation, the processing activity, the LDV status,
///   the end time and the sealed data subject id.
/// - 4: adds the version of the policy that decided (`policy`, the SHA-256
///   of the policy text); the LDV fields become optional (a presence byte
///   before them).
///
/// - 5: adds, per released category, its basis ([`CategoryBasis`]: the
///   consent, the rules and legal basis, or the emergency rules and the
///   justification) and the privacy officer's review of an emergency access
///   ([`Review`]); the policy's hash behind a presence byte.
///
/// - 6: adds the federation node the call came from (`from_node`), after
///   the fields of version 5.
///
/// A record is written in the lowest version that holds its fields: without
/// the node as version 5, without bases and review as version 4, without a policy version as version 3,
/// without [`Ldv`] fields too as version 2, so that every decoded record
/// re-encodes to the bytes it came from (the leaf hash is over them). A
/// read that released something is version 5, a call a peer node
/// forwarded or made as itself version 6.
const RECORD_VERSION: u8 = 6;

/// The version that added bases and review.
const BASES_VERSION: u8 = 5;

/// Longest emergency justification (or review note) a record holds, in
/// characters (Unicode scalar values); the gateway
/// refuses longer ones before anything is decided.
pub const MAX_JUSTIFICATION: usize = 500;

/// On what ground one category was released (record version 5 on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BasisKind {
    /// The subject's consent: `text` is the consent's id.
    Consent = 1,
    /// A rule's `@legal_basis` (or the owner's own case): `text` is the
    /// legal basis as the policy states it.
    LegalBasis = 2,
    /// An emergency rule (`@break_glass`): `text` is the request's written
    /// justification.
    Emergency = 3,
}

impl BasisKind {
    /// The kind's name in exports: `consent`, `legal_basis`, `emergency`.
    pub fn as_str(self) -> &'static str {
        match self {
            BasisKind::Consent => "consent",
            BasisKind::LegalBasis => "legal_basis",
            BasisKind::Emergency => "emergency",
        }
    }
    fn from_code(c: u8) -> Option<BasisKind> {
        Some(match c {
            1 => BasisKind::Consent,
            2 => BasisKind::LegalBasis,
            3 => BasisKind::Emergency,
            _ => return None,
        })
    }
}

/// The basis of one released category: what the console's "why allowed"
/// shows for it, exact even when several rules decided the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CategoryBasis {
    pub category: Category,
    pub kind: BasisKind,
    /// The policy rules that permitted it (`@id`s, sorted).
    pub rules: Vec<String>,
    /// The consent id, the legal basis, or the justification (by `kind`).
    pub text: String,
}

/// The privacy officer's verdict on an emergency access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The emergency was real and the access in proportion.
    Justified = 1,
    /// It was not: the officer follows it up with the organisation.
    NotJustified = 2,
}

impl Verdict {
    /// `justified` or `not_justified`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Justified => "justified",
            Verdict::NotJustified => "not_justified",
        }
    }
    pub(crate) fn from_code(c: u8) -> Option<Verdict> {
        Some(match c {
            1 => Verdict::Justified,
            2 => Verdict::NotJustified,
            _ => return None,
        })
    }
}

/// The record of an officer closing the alert of an emergency access
/// (record version 5 on): which access, the verdict and the officer's note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Review {
    /// The access record id of the emergency access reviewed.
    pub access_record_id: String,
    pub verdict: Verdict,
    /// One line, bounded like a justification; no identities.
    pub note: String,
}

/// LDV's `status_code` (Logboek Dataverwerkingen, "Component: Logboek",
/// interface): `STATUS_CODE_UNSET` for a processing that ran without a
/// server-side fault (success, or the caller's own error: HTTP 2xx–4xx),
/// `STATUS_CODE_OK` where the organisation marks success explicitly,
/// `STATUS_CODE_ERROR` for server-side faults (HTTP 5xx).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LdvStatus {
    Unset = 0,
    Ok = 1,
    Error = 2,
}

impl LdvStatus {
    /// The status of an answer with gRPC code `code` (its name, e.g.
    /// `"INVALID_ARGUMENT"`): `OK` is marked explicitly; the codes gRPC
    /// maps to HTTP 5xx (`INTERNAL`, `UNKNOWN`, `DATA_LOSS`,
    /// `UNIMPLEMENTED`, `UNAVAILABLE`, `DEADLINE_EXCEEDED`; the gRPC
    /// HTTP-mapping table) are `ERROR`; every other code is the caller's
    /// and `UNSET`.
    pub fn of_grpc(code: &str) -> LdvStatus {
        match code {
            "OK" => LdvStatus::Ok,
            "INTERNAL" | "UNKNOWN" | "DATA_LOSS" | "UNIMPLEMENTED" | "UNAVAILABLE"
            | "DEADLINE_EXCEEDED" => LdvStatus::Error,
            _ => LdvStatus::Unset,
        }
    }

    /// The enumeration's name as LDV writes it, e.g. `STATUS_CODE_OK`.
    pub fn as_str(self) -> &'static str {
        match self {
            LdvStatus::Unset => "STATUS_CODE_UNSET",
            LdvStatus::Ok => "STATUS_CODE_OK",
            LdvStatus::Error => "STATUS_CODE_ERROR",
        }
    }

    fn from_code(c: u8) -> Option<LdvStatus> {
        Some(match c {
            0 => LdvStatus::Unset,
            1 => LdvStatus::Ok,
            2 => LdvStatus::Error,
            _ => return None,
        })
    }
}

/// The kind of identifier a sealed data subject id is: LDV's
/// `dpl.core.data_subject_id_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubjectIdType {
    /// The V-number of the immigration services (10 digits).
    Vreemdelingennummer,
    /// The Dutch citizen service number (9 digits).
    Bsn,
}

impl SubjectIdType {
    /// The name LDV gives the type: `Vreemdelingennummer` or `BSN`.
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectIdType::Vreemdelingennummer => "Vreemdelingennummer",
            SubjectIdType::Bsn => "BSN",
        }
    }
    /// The type's code in the record encoding (1, 2).
    pub(crate) fn code(self) -> u8 {
        match self {
            SubjectIdType::Vreemdelingennummer => 1,
            SubjectIdType::Bsn => 2,
        }
    }
    pub(crate) fn from_code(c: u8) -> Option<SubjectIdType> {
        match c {
            1 => Some(SubjectIdType::Vreemdelingennummer),
            2 => Some(SubjectIdType::Bsn),
            _ => None,
        }
    }
}

/// The data subject's identifier, sealed to the privacy officer's public
/// key (HPKE, RFC 9180; `gateway::officer`): the log holds it, only the
/// officer can read it, and two records of one person do not link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedSubject {
    pub id_type: SubjectIdType,
    /// As `gateway::officer` seals it: `0x02 ‖ enc ‖ index ‖ ciphertext`
    /// (an epoch's HPKE encapsulated key, the record's index in the epoch),
    /// or in records written before epochs `enc ‖ ciphertext`.
    pub sealed: Vec<u8>,
}

/// The Logboek Dataverwerkingen fields of a record (version 3 on).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ldv {
    /// Trace id, span id and the caller's operation (`foreign_operation`).
    pub trace: TraceContext,
    /// The processing activity (a URI in the register of processing
    /// activities) the request's purpose maps to.
    pub processing_activity_id: Option<String>,
    pub status_code: LdvStatus,
    /// When the processing ended, ms since the epoch (the record's `at` is
    /// when it started).
    pub end_at: i64,
    /// The data subject, sealed; `None` when the request concerned no one
    /// person, or the case holds neither V-number nor BSN.
    pub data_subject: Option<SealedSubject>,
}

impl Ldv {
    /// Fields of a processing that has just started: a fresh trace.
    pub fn starting(at: i64) -> Ldv {
        Ldv {
            trace: TraceContext::fresh(),
            processing_activity_id: None,
            status_code: LdvStatus::Unset,
            end_at: at,
            data_subject: None,
        }
    }
}

/// How a request ended, as privacy officers read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Everything asked was released, or the change was made.
    Allowed,
    /// Some categories released, others withheld.
    Partial,
    /// Nothing released: not permitted, not consented, or not registered.
    Denied,
    /// Refused as malformed or oversized before any decision.
    Invalid,
    /// The case or pseudonym does not exist for this caller.
    NotFound,
    /// The TLS handshake was refused; no request was read.
    HandshakeFailed,
    /// An internal failure after the decision (e.g. the store failed).
    Error,
}

impl Decision {
    pub(crate) const ALL: [Decision; 7] = [
        Decision::Allowed,
        Decision::Partial,
        Decision::Denied,
        Decision::Invalid,
        Decision::NotFound,
        Decision::HandshakeFailed,
        Decision::Error,
    ];

    /// The decision a name in the log stands for ([`Decision::as_str`]).
    /// A match, not a search: the verifier parses every record's.
    pub(crate) fn parse(name: &str) -> Option<Decision> {
        Some(match name {
            "allowed" => Decision::Allowed,
            "partial" => Decision::Partial,
            "denied" => Decision::Denied,
            "invalid" => Decision::Invalid,
            "not_found" => Decision::NotFound,
            "handshake_failed" => Decision::HandshakeFailed,
            "error" => Decision::Error,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Partial => "partial",
            Decision::Denied => "denied",
            Decision::Invalid => "invalid",
            Decision::NotFound => "not_found",
            Decision::HandshakeFailed => "handshake_failed",
            Decision::Error => "error",
        }
    }
}

/// One access, as recorded. It holds no raw identity: the subject appears
/// as its pseudonym in the audit domain, the acting person as a keyed hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessRecord {
    pub request_id: String,
    pub at: i64,
    /// Participant id, or "-" when the caller is not registered.
    pub caller: String,
    pub role: String,
    /// Certificate fingerprint when the caller is not registered, or for a
    /// failed handshake when a certificate was presented.
    pub peer_fingerprint: Option<String>,
    pub actor_hash: Option<String>,
    /// gRPC method name, e.g. "GetCase", or "tls.handshake".
    pub method: String,
    pub case_id: Option<String>,
    /// Subject pseudonym in the audit domain.
    pub subject: Option<String>,
    pub purpose: Option<String>,
    pub asked: Vec<Category>,
    pub released: Vec<Category>,
    /// Withheld categories with the reason code (see `WithholdReason`).
    pub withheld: Vec<(Category, String)>,
    pub decision: Decision,
    /// gRPC status code name of the answer, e.g. "OK", "INVALID_ARGUMENT".
    pub status: String,
    /// Why, in words: never contains request content that could be personal.
    pub detail: String,
    /// Policy rules that decided.
    pub rules: Vec<String>,
    /// Consents that decided.
    pub consents: Vec<String>,
    /// Every subject, besides `subject`, that the call returned or touched
    /// — the cases a listing named, the entries an officer read — as
    /// audit-domain pseudonyms, so that each of their access reports shows
    /// the call. Encoded sorted and without repeats (version 2 on; empty in
    /// older records).
    pub subjects: Vec<String>,
    /// The Logboek Dataverwerkingen fields (version 3 on; `None` in older
    /// records).
    pub ldv: Option<Ldv>,
    /// The version of the policy in force: SHA-256 of the policy text
    /// (`Policy::sha256`) that decided the request, or that a reload put in
    /// force (version 4 on; `None` in older records and in records of
    /// what no policy decides, such as refused handshakes).
    pub policy: Option<[u8; 32]>,
    /// Per released category, in the order released, its basis (version 5
    /// on; empty in older records and where nothing was released).
    pub bases: Vec<CategoryBasis>,
    /// The officer's review of an emergency access this call closed
    /// (version 5 on).
    pub review: Option<Review>,
    /// The federation node the call came from (version 6 on): for a call
    /// a peer node forwarded, that node's directory id (`caller` is the
    /// participant it asserted); for a peer node calling as itself
    /// (witnessing, a subject access report), its id (`caller` too).
    /// `None` for this node's own participants and steps.
    pub from_node: Option<String>,
}

impl AccessRecord {
    pub fn new(request_id: String, at: i64, method: &str) -> Self {
        AccessRecord {
            request_id,
            at,
            caller: "-".into(),
            role: "-".into(),
            peer_fingerprint: None,
            actor_hash: None,
            method: method.into(),
            case_id: None,
            subject: None,
            purpose: None,
            asked: vec![],
            released: vec![],
            withheld: vec![],
            decision: Decision::Error,
            status: "UNKNOWN".into(),
            detail: String::new(),
            rules: vec![],
            consents: vec![],
            subjects: vec![],
            ldv: Some(Ldv::starting(at)),
            policy: None,
            bases: vec![],
            review: None,
            from_node: None,
        }
    }

    /// The version of the encoding the record is written in: the lowest
    /// that holds its fields (versions 1 and 2 differ only in a field
    /// version 1 lacks, so a record is never written as version 1).
    pub fn version(&self) -> u8 {
        match (&self.policy, &self.ldv) {
            _ if self.from_node.is_some() => RECORD_VERSION,
            _ if !self.bases.is_empty() || self.review.is_some() => BASES_VERSION,
            (Some(_), _) => 4,
            (None, Some(_)) => 3,
            (None, None) => 2,
        }
    }

    /// The request released something on an emergency rule: its record
    /// opens an alert the privacy officer must close.
    pub fn is_emergency(&self) -> bool {
        self.bases.iter().any(|b| b.kind == BasisKind::Emergency)
    }

    /// The canonical binary encoding: a version byte, then every field in a
    /// fixed order, strings and lists length-prefixed (u32 big-endian);
    /// `subjects` sorted, without repeats. Deterministic, so the same record
    /// always hashes the same.
    pub fn encode(&self) -> Vec<u8> {
        // A read's record with its Logboek Dataverwerkingen fields and a
        // sealed data subject id is ~940 bytes: room for it at once, where
        // growing from less copied it twice.
        let mut b = Vec::with_capacity(1024);
        let version = self.version();
        b.push(version);
        put_str(&mut b, &self.request_id);
        b.extend_from_slice(&self.at.to_be_bytes());
        put_str(&mut b, &self.caller);
        put_str(&mut b, &self.role);
        put_opt(&mut b, &self.peer_fingerprint);
        put_opt(&mut b, &self.actor_hash);
        put_str(&mut b, &self.method);
        put_opt(&mut b, &self.case_id);
        put_opt(&mut b, &self.subject);
        put_opt(&mut b, &self.purpose);
        put_cats(&mut b, &self.asked);
        put_cats(&mut b, &self.released);
        b.extend_from_slice(&(self.withheld.len() as u32).to_be_bytes());
        for (c, reason) in &self.withheld {
            b.push(c.code());
            put_str(&mut b, reason);
        }
        put_str(&mut b, self.decision.as_str());
        put_str(&mut b, &self.status);
        put_str(&mut b, &self.detail);
        put_list(&mut b, &self.rules);
        put_list(&mut b, &self.consents);
        put_list(&mut b, &canonical(&self.subjects));
        match (version, &self.ldv) {
            (3, Some(l)) => put_ldv(&mut b, l),
            (4.., None) => b.push(0),
            (4.., Some(l)) => {
                b.push(1);
                put_ldv(&mut b, l);
            }
            _ => {}
        }
        match (version, &self.policy) {
            (4, Some(p)) => b.extend_from_slice(p),
            (BASES_VERSION.., None) => b.push(0),
            (BASES_VERSION.., Some(p)) => {
                b.push(1);
                b.extend_from_slice(p);
            }
            _ => {}
        }
        if version >= BASES_VERSION {
            b.extend_from_slice(&(self.bases.len() as u32).to_be_bytes());
            for basis in &self.bases {
                b.push(basis.category.code());
                b.push(basis.kind as u8);
                put_list(&mut b, &basis.rules);
                put_str(&mut b, &basis.text);
            }
            match &self.review {
                None => b.push(0),
                Some(r) => {
                    b.push(1);
                    put_str(&mut b, &r.access_record_id);
                    b.push(r.verdict as u8);
                    put_str(&mut b, &r.note);
                }
            }
        }
        if let Some(node) = &self.from_node {
            put_str(&mut b, node);
        }
        b
    }

    /// Inverse of [`encode`](Self::encode), for export and verification.
    pub fn decode(bytes: &[u8]) -> Option<AccessRecord> {
        RecordView::parse(bytes).map(|v| v.to_record())
    }

    /// The row as stored: the encoding and the query columns, moved out of
    /// the record (it is not needed after).
    pub(crate) fn into_row(self) -> LogRow {
        let record = self.encode();
        let subjects = canonical(&self.subjects);
        let emergency = self.is_emergency();
        let closes = self.review.map(|r| r.access_record_id);
        LogRow {
            seq: 0,
            request_id: self.request_id,
            at: self.at,
            caller: self.caller,
            role: self.role,
            method: self.method,
            case_id: self.case_id,
            subject: self.subject,
            purpose: self.purpose,
            decision: self.decision.as_str().into(),
            record,
            subjects,
            emergency,
            closes,
        }
    }
}

/// Subjects as a record encodes them: sorted, without repeats.
fn canonical(subjects: &[String]) -> Vec<String> {
    let set: std::collections::BTreeSet<&String> = subjects.iter().collect();
    set.into_iter().cloned().collect()
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u32).to_be_bytes());
    b.extend_from_slice(s.as_bytes());
}
fn put_opt(b: &mut Vec<u8>, s: &Option<String>) {
    match s {
        None => b.push(0),
        Some(s) => {
            b.push(1);
            put_str(b, s);
        }
    }
}
fn put_cats(b: &mut Vec<u8>, cats: &[Category]) {
    b.extend_from_slice(&(cats.len() as u32).to_be_bytes());
    b.extend(cats.iter().map(|c| c.code()));
}
/// Version 3's fields: trace id (16), span id (8), foreign operation
/// (absent 0, or 1 + trace id + span id + entity), processing activity
/// (optional string), status (u8), end (i64), data subject (absent 0, or
/// 1 + type (u8) + sealed bytes, length-prefixed).
fn put_ldv(b: &mut Vec<u8>, l: &Ldv) {
    b.extend_from_slice(&l.trace.trace_id.0);
    b.extend_from_slice(&l.trace.span_id.0);
    match &l.trace.foreign {
        None => b.push(0),
        Some(f) => {
            b.push(1);
            b.extend_from_slice(&f.trace_id.0);
            b.extend_from_slice(&f.span_id.0);
            put_str(b, &f.entity);
        }
    }
    put_opt(b, &l.processing_activity_id);
    b.push(l.status_code as u8);
    b.extend_from_slice(&l.end_at.to_be_bytes());
    match &l.data_subject {
        None => b.push(0),
        Some(s) => {
            b.push(1);
            b.push(s.id_type.code());
            b.extend_from_slice(&(s.sealed.len() as u32).to_be_bytes());
            b.extend_from_slice(&s.sealed);
        }
    }
}
fn put_list(b: &mut Vec<u8>, items: &[String]) {
    b.extend_from_slice(&(items.len() as u32).to_be_bytes());
    for s in items {
        put_str(b, s);
    }
}

/// A record's fields borrowed from its encoding, checked as strictly as
/// [`AccessRecord::decode`] but allocating only for the LDV fields'
/// entity and sealed subject: verification reads every record of the log
/// and only compares a few fields.
#[derive(Clone, Debug)]
pub(crate) struct RecordView<'a> {
    pub(crate) request_id: &'a str,
    pub(crate) at: i64,
    pub(crate) caller: &'a str,
    pub(crate) role: &'a str,
    pub(crate) peer_fingerprint: Option<&'a str>,
    pub(crate) actor_hash: Option<&'a str>,
    pub(crate) method: &'a str,
    pub(crate) case_id: Option<&'a str>,
    pub(crate) subject: Option<&'a str>,
    pub(crate) purpose: Option<&'a str>,
    pub(crate) decision: Decision,
    pub(crate) status: &'a str,
    pub(crate) detail: &'a str,
    // Lists, already checked; read again only by `to_record`.
    asked: &'a [u8],
    released: &'a [u8],
    withheld: (u32, &'a [u8]),
    rules: (u32, &'a [u8]),
    consents: (u32, &'a [u8]),
    subjects: (u32, &'a [u8]),
    pub(crate) ldv: Option<Ldv>,
    pub(crate) policy: Option<[u8; 32]>,
    pub(crate) bases: Vec<CategoryBasis>,
    pub(crate) review: Option<Review>,
    pub(crate) from_node: Option<&'a str>,
}

impl<'a> RecordView<'a> {
    /// Parses a whole encoded record; `None` when it is not one.
    pub(crate) fn parse(bytes: &'a [u8]) -> Option<RecordView<'a>> {
        let mut r = Reader { b: bytes };
        let version = r.u8()?;
        if !(1..=RECORD_VERSION).contains(&version) {
            return None;
        }
        let request_id = r.str()?;
        let at = i64::from_be_bytes(r.take(8)?.try_into().ok()?);
        let caller = r.str()?;
        let role = r.str()?;
        let peer_fingerprint = r.opt()?;
        let actor_hash = r.opt()?;
        let method = r.str()?;
        let case_id = r.opt()?;
        let subject = r.opt()?;
        let purpose = r.opt()?;
        let asked = r.cats()?;
        let released = r.cats()?;
        let withheld = r.counted(|r| {
            Category::from_code(i32::from(r.u8()?))?;
            r.str().map(drop)
        })?;
        let decision = Decision::parse(r.str()?)?;
        let status = r.str()?;
        let detail = r.str()?;
        let rules = r.counted(|r| r.str().map(drop))?;
        let consents = r.counted(|r| r.str().map(drop))?;
        let subjects = if version >= 2 {
            // Sorted and without repeats: one encoding per record.
            let mut last: Option<&str> = None;
            r.counted(|r| {
                let s = r.str()?;
                if last.is_some_and(|l| l >= s) {
                    return None;
                }
                last = Some(s);
                Some(())
            })?
        } else {
            (0, &[][..])
        };
        let ldv = match version {
            3 => Some(r.ldv()?),
            4.. => match r.u8()? {
                0 => None,
                1 => Some(r.ldv()?),
                _ => return None,
            },
            _ => None,
        };
        let policy = match version {
            4 => Some(r.array()?),
            BASES_VERSION.. => match r.u8()? {
                0 => None,
                1 => Some(r.array()?),
                _ => return None,
            },
            _ => None,
        };
        let (bases, review) = if version >= BASES_VERSION {
            let n = r.u32()?;
            let mut bases = Vec::new();
            for _ in 0..n {
                let category = Category::from_code(i32::from(r.u8()?))?;
                let kind = BasisKind::from_code(r.u8()?)?;
                let rules = r.strings()?;
                let text = r.str()?.to_string();
                bases.push(CategoryBasis {
                    category,
                    kind,
                    rules,
                    text,
                });
            }
            let review = match r.u8()? {
                0 => None,
                1 => Some(Review {
                    access_record_id: r.str()?.to_string(),
                    verdict: Verdict::from_code(r.u8()?)?,
                    note: r.str()?.to_string(),
                }),
                _ => return None,
            };
            // Written only when there is something to write: the lowest
            // version that holds a record is its one encoding.
            if version == BASES_VERSION && bases.is_empty() && review.is_none() {
                return None;
            }
            (bases, review)
        } else {
            (Vec::new(), None)
        };
        let from_node = if version == RECORD_VERSION {
            Some(r.str()?)
        } else {
            None
        };
        if !r.b.is_empty() {
            return None;
        }
        Some(RecordView {
            request_id,
            at,
            caller,
            role,
            peer_fingerprint,
            actor_hash,
            method,
            case_id,
            subject,
            purpose,
            decision,
            status,
            detail,
            asked,
            released,
            withheld,
            rules,
            consents,
            subjects,
            ldv,
            policy,
            bases,
            review,
            from_node,
        })
    }

    /// How many other subjects the record names.
    pub(crate) fn subject_count(&self) -> u32 {
        self.subjects.0
    }

    /// The record's other subjects (`AccessRecord::subjects`), in order.
    pub(crate) fn subjects(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        let (n, b) = self.subjects;
        let mut r = Reader { b };
        (0..n).map_while(move |_| r.str())
    }

    pub(crate) fn to_record(&self) -> AccessRecord {
        // The lists were checked by `parse`: reading them again cannot fail.
        let cats = |b: &[u8]| -> Vec<Category> {
            b.iter()
                .filter_map(|c| Category::from_code(i32::from(*c)))
                .collect()
        };
        let strings = |(n, b): (u32, &[u8])| -> Vec<String> {
            let mut r = Reader { b };
            (0..n).filter_map(|_| r.str().map(String::from)).collect()
        };
        let mut withheld = Vec::with_capacity(self.withheld.0 as usize);
        let mut r = Reader { b: self.withheld.1 };
        for _ in 0..self.withheld.0 {
            if let (Some(c), Some(reason)) = (
                r.u8().and_then(|c| Category::from_code(i32::from(c))),
                r.str(),
            ) {
                withheld.push((c, reason.to_string()));
            }
        }
        let owned = |s: Option<&str>| s.map(String::from);
        AccessRecord {
            request_id: self.request_id.into(),
            at: self.at,
            caller: self.caller.into(),
            role: self.role.into(),
            peer_fingerprint: owned(self.peer_fingerprint),
            actor_hash: owned(self.actor_hash),
            method: self.method.into(),
            case_id: owned(self.case_id),
            subject: owned(self.subject),
            purpose: owned(self.purpose),
            asked: cats(self.asked),
            released: cats(self.released),
            withheld,
            decision: self.decision,
            status: self.status.into(),
            detail: self.detail.into(),
            rules: strings(self.rules),
            consents: strings(self.consents),
            subjects: self.subjects().map(String::from).collect(),
            ldv: self.ldv.clone(),
            policy: self.policy,
            bases: self.bases.clone(),
            review: self.review.clone(),
            from_node: owned(self.from_node),
        }
    }
}

struct Reader<'a> {
    b: &'a [u8],
}
impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.b.len() < n {
            return None;
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Some(h)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<&'a str> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?).ok()
    }
    fn opt(&mut self) -> Option<Option<&'a str>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.str()?)),
            _ => None,
        }
    }
    /// A category list, checked; the raw codes.
    fn cats(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        let codes = self.take(n)?;
        codes
            .iter()
            .all(|c| Category::from_code(i32::from(*c)).is_some())
            .then_some(codes)
    }
    /// A counted list of strings, owned (version 5's bases).
    fn strings(&mut self) -> Option<Vec<String>> {
        let n = self.u32()?;
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(self.str()?.to_string());
        }
        Some(out)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    /// Version 3's fields ([`put_ldv`]).
    fn ldv(&mut self) -> Option<Ldv> {
        let trace_id = TraceId(self.array()?);
        let span_id = SpanId(self.array()?);
        let foreign = match self.u8()? {
            0 => None,
            1 => Some(ForeignOperation {
                trace_id: TraceId(self.array()?),
                span_id: SpanId(self.array()?),
                entity: self.str()?.to_string(),
            }),
            _ => return None,
        };
        let processing_activity_id = self.opt()?.map(String::from);
        let status_code = LdvStatus::from_code(self.u8()?)?;
        let end_at = i64::from_be_bytes(self.array()?);
        let data_subject = match self.u8()? {
            0 => None,
            1 => {
                let id_type = SubjectIdType::from_code(self.u8()?)?;
                let n = self.u32()? as usize;
                Some(SealedSubject {
                    id_type,
                    sealed: self.take(n)?.to_vec(),
                })
            }
            _ => return None,
        };
        Some(Ldv {
            trace: TraceContext {
                trace_id,
                span_id,
                foreign,
            },
            processing_activity_id,
            status_code,
            end_at,
            data_subject,
        })
    }
    /// A counted list whose items `item` checks; the count and raw bytes.
    fn counted(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<(u32, &'a [u8])> {
        let n = self.u32()?;
        let start = self.b;
        for _ in 0..n {
            item(self)?;
        }
        Some((n, &start[..start.len() - self.b.len()]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_is_versioned() {
        let mut r = AccessRecord::new("0190-abc".into(), 1_700_000_000_000, "GetCase");
        r.caller = "dtv".into();
        r.role = "dtv".into();
        r.case_id = Some("c1".into());
        r.subject = Some("ps1.x".into());
        r.purpose = Some("return".into());
        r.asked = vec![Category::Perspective, Category::Medical];
        r.released = vec![Category::Perspective];
        r.withheld = vec![(
            Category::Medical,
            "not_permitted_for_role_and_purpose".into(),
        )];
        r.decision = Decision::Partial;
        r.status = "OK".into();
        r.rules = vec!["dtv-return".into(), "dtv-base".into()];
        r.consents = vec!["k1".into()];
        r.withheld.push((Category::Identity, "no_consent".into()));
        r.actor_hash = Some("a1".into());
        r.subjects = vec!["ps1.a".into(), "ps1.b".into()];
        r.policy = Some([7; 32]);
        r.bases = vec![CategoryBasis {
            category: Category::Perspective,
            kind: BasisKind::Consent,
            rules: vec!["dtv-return".into()],
            text: "k1".into(),
        }];
        let bytes = r.encode();
        assert_eq!(bytes[0], BASES_VERSION);
        assert_eq!(AccessRecord::decode(&bytes), Some(r.clone()));
        assert_eq!(bytes, r.encode());
        // Verification reads the same fields without allocating.
        let view = RecordView::parse(&bytes).expect("view");
        assert_eq!((view.caller, view.case_id), ("dtv", Some("c1")));
        assert_eq!(view.to_record(), r);
        // No cut-off or padded encoding is a record.
        for n in 0..bytes.len() {
            assert_eq!(AccessRecord::decode(&bytes[..n]), None, "prefix {n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(AccessRecord::decode(&longer), None);
    }

    /// A version-1 record, as nodes wrote them before `subjects`, byte for
    /// byte: it still decodes (with no other subjects), so the reports and
    /// the verifier read old logs as they are.
    #[test]
    fn version_1_records_still_decode() {
        let v1 = hex::decode(
            "010000002430313930633465322d376231612d376333652d396630302d3161326233633464356536\
             660000018bcfe56800000000036474760000000364747600000000000946696e6443617365730000\
             010000000672657475726e00000000000000000000000000000007616c6c6f776564000000024f4b\
             0000000e31206361736573206c69737465640000000000000000",
        )
        .unwrap();
        let r = AccessRecord::decode(&v1).expect("a version-1 record decodes");
        assert_eq!(
            (r.method.as_str(), r.purpose.as_deref(), r.detail.as_str()),
            ("FindCases", Some("return"), "1 cases listed")
        );
        assert!(r.subjects.is_empty());
        assert_eq!(RecordView::parse(&v1).unwrap().subjects().count(), 0);
        // Cut short or padded, it is no record of either version.
        assert_eq!(AccessRecord::decode(&v1[..v1.len() - 1]), None);
        let mut v2 = v1.clone();
        v2[0] = 2;
        assert_eq!(
            AccessRecord::decode(&v2),
            None,
            "version 2 needs its subjects"
        );
        v2.extend_from_slice(&0u32.to_be_bytes());
        assert!(AccessRecord::decode(&v2).is_some());
        v2[0] = 3;
        assert_eq!(
            AccessRecord::decode(&v2),
            None,
            "version 3 needs its LDV fields"
        );
        v2[0] = RECORD_VERSION + 1;
        assert_eq!(AccessRecord::decode(&v2), None, "an unknown version");
        v2[0] = 4;
        assert_eq!(AccessRecord::decode(&v2), None, "version 4 needs more");
    }

    /// Version 3 carries the LDV fields and round-trips; a record without
    /// them is still written as version 2, byte for byte as before, so
    /// the leaves of existing entries do not change.
    #[test]
    fn version_3_round_trips_and_version_2_stays_as_it_was() {
        let mut r = AccessRecord::new("0190-abc".into(), 1_700_000_000_000, "GetCase");
        let l = r.ldv.as_mut().unwrap();
        l.trace.foreign = Some(ForeignOperation {
            trace_id: TraceId([7; 16]),
            span_id: SpanId([9; 8]),
            entity: "urn:nl:oin:00000001003214345000".into(),
        });
        l.processing_activity_id = Some("https://register.example/va/1".into());
        l.status_code = LdvStatus::Error;
        l.end_at = 1_700_000_000_042;
        l.data_subject = Some(SealedSubject {
            id_type: SubjectIdType::Bsn,
            sealed: vec![1, 2, 3],
        });
        let bytes = r.encode();
        assert_eq!(bytes[0], 3);
        assert_eq!(AccessRecord::decode(&bytes), Some(r.clone()));
        for n in 0..bytes.len() {
            assert_eq!(AccessRecord::decode(&bytes[..n]), None, "prefix {n}");
        }
        let mut v2 = r.clone();
        v2.ldv = None;
        let old = v2.encode();
        assert_eq!(old[0], 2);
        assert_eq!(AccessRecord::decode(&old), Some(v2));
        assert_eq!(&bytes[..old.len()][1..], &old[1..], "version 3 appends");
        // Version 4 is version 3's fields behind a presence byte, then the
        // policy's hash; with or without LDV fields it round-trips.
        let mut v4 = r.clone();
        v4.policy = Some([0xab; 32]);
        let new = v4.encode();
        assert_eq!(new[0], 4);
        assert_eq!(AccessRecord::decode(&new), Some(v4.clone()));
        assert_eq!(&new[1..old.len()], &old[1..]);
        assert_eq!(new[old.len()], 1);
        assert_eq!(&new[old.len() + 1..new.len() - 32], &bytes[old.len()..]);
        assert_eq!(&new[new.len() - 32..], &[0xab; 32]);
        for n in 0..new.len() {
            assert_eq!(AccessRecord::decode(&new[..n]), None, "prefix {n}");
        }
        v4.ldv = None;
        let bare = v4.encode();
        assert_eq!((bare[0], bare.len()), (4, old.len() + 1 + 32));
        assert_eq!(AccessRecord::decode(&bare), Some(v4));
        assert_eq!(LdvStatus::of_grpc("OK"), LdvStatus::Ok);
        assert_eq!(LdvStatus::of_grpc("INVALID_ARGUMENT"), LdvStatus::Unset);
        assert_eq!(LdvStatus::of_grpc("UNAVAILABLE"), LdvStatus::Error);
    }

    /// Version 6 adds the node a call came from after version 5's fields;
    /// a record without it keeps its version, byte for byte.
    #[test]
    fn version_6_names_the_node_a_call_came_from() {
        let mut r = AccessRecord::new("0190-abc".into(), 1_700_000_000_000, "GetCase");
        r.caller = "ind".into();
        r.role = "ind".into();
        r.policy = Some([0xab; 32]);
        let v4 = r.encode();
        assert_eq!(v4[0], 4);
        r.from_node = Some("gm0344".into());
        let v6 = r.encode();
        assert_eq!(v6[0], RECORD_VERSION);
        assert_eq!(AccessRecord::decode(&v6), Some(r.clone()));
        assert_eq!(RecordView::parse(&v6).unwrap().from_node, Some("gm0344"));
        for n in 0..v6.len() {
            assert_eq!(AccessRecord::decode(&v6[..n]), None, "prefix {n}");
        }
        // With bases as well.
        r.bases = vec![CategoryBasis {
            category: Category::Safety,
            kind: BasisKind::LegalBasis,
            rules: vec!["ind-safety".into()],
            text: "Vreemdelingenwet 2000".into(),
        }];
        let both = r.encode();
        assert_eq!(both[0], RECORD_VERSION);
        assert_eq!(AccessRecord::decode(&both), Some(r.clone()));
        r.from_node = None;
        assert_eq!(r.encode()[0], BASES_VERSION);
    }

    /// Version 5 adds the per-category bases and the review after version
    /// 4's fields (its policy behind a presence byte); a record without
    /// either stays version 4, byte for byte, and a version-5 encoding of
    /// nothing new is no record (one encoding per record).
    #[test]
    fn version_5_carries_bases_and_review_and_version_4_stays_as_it_was() {
        let mut r = AccessRecord::new("0190-abc".into(), 1_700_000_000_000, "GetCase");
        r.policy = Some([0xab; 32]);
        r.released = vec![Category::Safety, Category::Shelter];
        let v4 = r.encode();
        assert_eq!(v4[0], 4);
        r.bases = vec![
            CategoryBasis {
                category: Category::Safety,
                kind: BasisKind::LegalBasis,
                rules: vec!["avim-safety".into()],
                text: "Politiewet 2012 art. 3".into(),
            },
            CategoryBasis {
                category: Category::Shelter,
                kind: BasisKind::Emergency,
                rules: vec!["avim-emergency".into()],
                text: "acute threat reported at the location".into(),
            },
        ];
        assert!(r.is_emergency());
        let v5 = r.encode();
        assert_eq!(v5[0], 5);
        assert_eq!(AccessRecord::decode(&v5), Some(r.clone()));
        assert_eq!(&v5[1..v4.len() - 32], &v4[1..v4.len() - 32]);
        assert_eq!(v5[v4.len() - 32], 1, "the policy's presence byte");
        for n in 0..v5.len() {
            assert_eq!(AccessRecord::decode(&v5[..n]), None, "prefix {n}");
        }
        let mut review =
            AccessRecord::new("0190-def".into(), 1_700_000_000_100, "CloseEmergencyAlert");
        review.review = Some(Review {
            access_record_id: "0190-abc".into(),
            verdict: Verdict::NotJustified,
            note: "no threat on record".into(),
        });
        let bytes = review.encode();
        assert_eq!(bytes[0], 5);
        assert_eq!(AccessRecord::decode(&bytes), Some(review.clone()));
        assert!(!review.is_emergency());
        // Version 4's bytes relabelled 5 with an empty tail: no record.
        let mut empty = r.clone();
        empty.bases.clear();
        let mut relabelled = empty.encode();
        relabelled[0] = 5;
        let p = relabelled.len() - 32;
        relabelled.insert(p, 1);
        relabelled.extend_from_slice(&0u32.to_be_bytes());
        relabelled.push(0);
        assert_eq!(AccessRecord::decode(&relabelled), None);
    }

    #[test]
    fn decision_names_parse_back() {
        for d in Decision::ALL {
            assert_eq!(Decision::parse(d.as_str()), Some(d));
        }
        assert_eq!(Decision::parse("granted"), None);
    }

    /// Subjects have one encoding: sorted, without repeats.
    #[test]
    fn subjects_are_encoded_once_in_order() {
        let mut r = AccessRecord::new("id".into(), 0, "FindCases");
        r.subjects = vec!["ps1.b".into(), "ps1.a".into(), "ps1.b".into()];
        let bytes = r.encode();
        let view = RecordView::parse(&bytes).unwrap();
        assert_eq!(view.subjects().collect::<Vec<_>>(), ["ps1.a", "ps1.b"]);
        // The same bytes with the two swapped are no record.
        let a = bytes.windows(5).position(|w| w == b"ps1.a").unwrap();
        let b = bytes.windows(5).position(|w| w == b"ps1.b").unwrap();
        let mut swapped = bytes.clone();
        swapped[a + 4] = b'b';
        swapped[b + 4] = b'a';
        assert!(RecordView::parse(&swapped).is_none());
    }
}
