//! Access records and their canonical encoding: the leaves of the access log.
//!
//! One record per request, allowed or not, and per refused TLS handshake.
//! The encoding is versioned and deterministic, so the same record always
//! hashes to the same leaf (RFC 6962 §2.1: the leaf hash is over these bytes).

use crate::model::Category;
use crate::store::LogRow;

/// Version of the canonical record encoding. Bumped on any change to
/// [`AccessRecord::encode`]; old records keep their version byte, and
/// [`RecordView::parse`] reads every version, so they still decode and
/// verify.
///
/// - 1: the fields up to `consents`.
/// - 2: adds `subjects`, every other subject the call returned or touched.
const RECORD_VERSION: u8 = 2;

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
        }
    }

    /// The canonical binary encoding: a version byte, then every field in a
    /// fixed order, strings and lists length-prefixed (u32 big-endian);
    /// `subjects` sorted, without repeats. Deterministic, so the same record
    /// always hashes the same.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(256);
        b.push(RECORD_VERSION);
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
fn put_list(b: &mut Vec<u8>, items: &[String]) {
    b.extend_from_slice(&(items.len() as u32).to_be_bytes());
    for s in items {
        put_str(b, s);
    }
}

/// A record's fields borrowed from its encoding, checked as strictly as
/// [`AccessRecord::decode`] but without allocating: verification reads
/// every record of the log and only compares a few fields.
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
        let bytes = r.encode();
        assert_eq!(bytes[0], RECORD_VERSION);
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
        assert_eq!(AccessRecord::decode(&v2), None, "an unknown version");
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
