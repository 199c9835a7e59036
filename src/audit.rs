//! The access log: one record per request, allowed or not, made durable
//! before anything is answered.
//!
//! [`AuditLog::append`] is the only way into the log. A single writer task
//! batches concurrent appends into one transaction (group commit: one fsync
//! for many records), and each caller waits only for the batch holding its
//! record. If the write fails, the caller gets an error and must release
//! nothing: the exchange maps it to `UNAVAILABLE`.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::model::Category;
use crate::store::{LogRow, Store};

/// Version of the canonical record encoding. Bumped on any change to
/// [`AccessRecord::encode`]; old records keep their version byte.
pub const RECORD_VERSION: u8 = 1;

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
        }
    }

    /// The canonical binary encoding: a version byte, then every field in a
    /// fixed order, strings and lists length-prefixed (u32 big-endian).
    /// Deterministic, so the same record always hashes the same.
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
        b
    }

    /// Inverse of [`encode`](Self::encode), for export and verification.
    pub fn decode(bytes: &[u8]) -> Option<AccessRecord> {
        let mut r = Reader { b: bytes };
        if r.u8()? != RECORD_VERSION {
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
        let n = r.u32()?;
        let mut withheld = Vec::new();
        for _ in 0..n {
            let c = Category::from_code(i32::from(r.u8()?))?;
            withheld.push((c, r.str()?));
        }
        let decision = match r.str()?.as_str() {
            "allowed" => Decision::Allowed,
            "partial" => Decision::Partial,
            "denied" => Decision::Denied,
            "invalid" => Decision::Invalid,
            "not_found" => Decision::NotFound,
            "handshake_failed" => Decision::HandshakeFailed,
            "error" => Decision::Error,
            _ => return None,
        };
        let status = r.str()?;
        let detail = r.str()?;
        let rules = r.list()?;
        let consents = r.list()?;
        if !r.b.is_empty() {
            return None;
        }
        Some(AccessRecord {
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
            asked,
            released,
            withheld,
            decision,
            status,
            detail,
            rules,
            consents,
        })
    }

    fn to_row(&self) -> LogRow {
        LogRow {
            seq: 0,
            request_id: self.request_id.clone(),
            at: self.at,
            caller: self.caller.clone(),
            role: self.role.clone(),
            method: self.method.clone(),
            case_id: self.case_id.clone(),
            subject: self.subject.clone(),
            purpose: self.purpose.clone(),
            decision: self.decision.as_str().into(),
            record: self.encode(),
        }
    }
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
    fn str(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn opt(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.str()?)),
            _ => None,
        }
    }
    fn cats(&mut self) -> Option<Vec<Category>> {
        let n = self.u32()? as usize;
        self.take(n)?
            .iter()
            .map(|c| Category::from_code(i32::from(*c)))
            .collect()
    }
    fn list(&mut self) -> Option<Vec<String>> {
        let n = self.u32()?;
        (0..n).map(|_| self.str()).collect()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the access log cannot be written: {0}")]
pub struct AuditError(pub String);

type Pending = (LogRow, oneshot::Sender<Result<i64, AuditError>>);

/// Handle to the single writer of the access log.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Pending>,
}

/// Most records in one transaction.
const MAX_BATCH: usize = 512;
/// How long the writer waits for more records once it has one.
const LINGER: Duration = Duration::from_micros(500);

impl AuditLog {
    /// Starts the writer task.
    pub fn start(store: Store) -> AuditLog {
        let (tx, mut rx) = mpsc::channel::<Pending>(4 * MAX_BATCH);
        tokio::spawn(async move {
            let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
            while let Some(first) = rx.recv().await {
                batch.push(first);
                let deadline = tokio::time::Instant::now() + LINGER;
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(p) => batch.push(p),
                        Err(_) => {
                            if tokio::time::Instant::now() >= deadline {
                                break;
                            }
                            match tokio::time::timeout_at(deadline, rx.recv()).await {
                                Ok(Some(p)) => batch.push(p),
                                _ => break,
                            }
                        }
                    }
                }
                let rows: Vec<LogRow> = batch.iter().map(|(r, _)| r.clone()).collect();
                match store.append_access(&rows).await {
                    Ok(first_seq) => {
                        for (i, (_, done)) in batch.drain(..).enumerate() {
                            let _ = done.send(Ok(first_seq + i as i64));
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, records = batch.len(), "access log write failed; requests fail closed");
                        for (_, done) in batch.drain(..) {
                            let _ = done.send(Err(AuditError(e.to_string())));
                        }
                    }
                }
            }
        });
        AuditLog { tx }
    }

    /// Appends a record and waits until it is durable. Returns its position.
    pub async fn append(&self, record: &AccessRecord) -> Result<i64, AuditError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((record.to_row(), done))
            .await
            .map_err(|_| AuditError("the log writer has stopped".into()))?;
        wait.await
            .map_err(|_| AuditError("the log writer has stopped".into()))?
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
        r.rules = vec!["dtv-return".into()];
        r.consents = vec!["k1".into()];
        let bytes = r.encode();
        assert_eq!(bytes[0], RECORD_VERSION);
        assert_eq!(AccessRecord::decode(&bytes), Some(r.clone()));
        assert_eq!(bytes, r.encode());
        assert_eq!(AccessRecord::decode(&bytes[..bytes.len() - 1]), None);
    }
}
