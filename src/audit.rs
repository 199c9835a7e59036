//! The access log: one record per request, allowed or not, made durable
//! before anything is answered.
//!
//! [`AuditLog::append`] is the only way into the log. A single writer task
//! batches concurrent appends into one transaction (group commit: one fsync
//! for many records), and each caller waits only for the batch holding its
//! record. If the write fails, the caller gets an error and must release
//! nothing: the exchange maps it to `UNAVAILABLE`.
//!
//! The log is a Merkle tree (RFC 6962): each record's canonical encoding is a
//! leaf, the writer keeps the tree's compact range in memory and stores the
//! hash of every perfect subtree with the batch that completes it, and signs
//! a checkpoint (size, root) at least every `checkpoint_interval` while
//! entries arrive, in the same transaction as the entries it covers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::checkpoint::Checkpoint;
use crate::merkle::{self, Frontier};
use crate::model::Category;
use crate::store::{IssuedPseudonym, LogRow, Store, StoreError, StoredCheckpoint};
use crate::vault::Keys;

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
        RecordView::parse(bytes).map(|v| v.to_record())
    }

    /// The row as stored: the encoding and the query columns, moved out of
    /// the record (it is not needed after).
    fn into_row(self) -> LogRow {
        let record = self.encode();
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

/// A record's fields borrowed from its encoding, checked as strictly as
/// [`AccessRecord::decode`] but without allocating: verification reads
/// every record of the log and only compares a few fields.
#[derive(Clone, Debug)]
pub struct RecordView<'a> {
    pub request_id: &'a str,
    pub at: i64,
    pub caller: &'a str,
    pub role: &'a str,
    pub peer_fingerprint: Option<&'a str>,
    pub actor_hash: Option<&'a str>,
    pub method: &'a str,
    pub case_id: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub purpose: Option<&'a str>,
    pub decision: Decision,
    pub status: &'a str,
    pub detail: &'a str,
    // Lists, already checked; read again only by `to_record`.
    asked: &'a [u8],
    released: &'a [u8],
    withheld: (u32, &'a [u8]),
    rules: (u32, &'a [u8]),
    consents: (u32, &'a [u8]),
}

impl<'a> RecordView<'a> {
    /// Parses a whole encoded record; `None` when it is not one.
    pub fn parse(bytes: &'a [u8]) -> Option<RecordView<'a>> {
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
        let withheld = r.counted(|r| {
            Category::from_code(i32::from(r.u8()?))?;
            r.str().map(drop)
        })?;
        let decision = match r.str()? {
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
        let rules = r.counted(|r| r.str().map(drop))?;
        let consents = r.counted(|r| r.str().map(drop))?;
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
        })
    }

    pub fn to_record(&self) -> AccessRecord {
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
    fn counted(&mut self, item: impl Fn(&mut Self) -> Option<()>) -> Option<(u32, &'a [u8])> {
        let n = self.u32()?;
        let start = self.b;
        for _ in 0..n {
            item(self)?;
        }
        Some((n, &start[..start.len() - self.b.len()]))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the access log cannot be written: {0}")]
pub struct AuditError(pub String);

impl From<StoreError> for AuditError {
    fn from(e: StoreError) -> Self {
        AuditError(e.to_string())
    }
}

/// A record, the pseudonyms its request issued, and who waits for it.
struct Pending {
    row: LogRow,
    issued: Vec<IssuedPseudonym>,
    done: oneshot::Sender<Result<i64, AuditError>>,
}

/// What the writer task receives: records to append, or a request to sign
/// whatever is not yet covered by a checkpoint (on shutdown).
enum Msg {
    Append(Box<Pending>),
    Sign(oneshot::Sender<()>),
}

/// Handle to the single writer of the access log.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
}

/// How the log signs its checkpoints.
#[derive(Clone, Debug)]
pub struct LogSettings {
    /// Name of the node's signing key in signed notes.
    pub key_name: String,
    /// Origin line of checkpoints.
    pub origin: String,
    /// A new checkpoint at least this often while entries arrive.
    pub checkpoint_interval: Duration,
}

/// Most records in one transaction.
const MAX_BATCH: usize = 1024;
/// How often a batch may lose the race to another replica before it fails.
const MAX_RACES: u32 = 32;

/// The writer's state: the tree's compact range and the last checkpoint.
struct Writer {
    store: Store,
    keys: Arc<Keys>,
    settings: LogSettings,
    frontier: Frontier,
    signed_size: u64,
    signed_at: Instant,
}

impl AuditLog {
    /// Loads the tree's state, checks it against the latest checkpoint, and
    /// starts the writer task. Refuses to start on a log that does not match
    /// what the node signed: it would otherwise sign an inconsistent tree.
    pub async fn start(
        store: Store,
        keys: Arc<Keys>,
        settings: LogSettings,
    ) -> Result<AuditLog, AuditError> {
        // The checkpoint first: another replica may append (and sign) in
        // between, and a checkpoint must never look newer than the log.
        let latest = store.latest_checkpoint().await?;
        let frontier = load_frontier(&store).await?;
        let signed_size = match &latest {
            Some(cp) => {
                let size = cp.size as u64;
                if size > frontier.size() {
                    return Err(AuditError(format!(
                        "the log has {} entries but a checkpoint for {} was signed: entries were removed; run `sluis audit verify`",
                        frontier.size(),
                        size
                    )));
                }
                let ids = Frontier::perfect_nodes_for(size);
                let nodes = store.merkle_nodes(&ids).await?;
                let at_cp =
                    Frontier::from_nodes(size, |id| nodes.get(&id).copied()).ok_or_else(|| {
                        AuditError("tree nodes are missing; run `sluis audit verify`".into())
                    })?;
                if at_cp.root().as_slice() != cp.root.as_slice() {
                    return Err(AuditError(format!(
                        "the log does not match its checkpoint at size {size}; run `sluis audit verify`"
                    )));
                }
                size
            }
            None => 0,
        };
        let (tx, rx) = mpsc::channel::<Msg>(4 * MAX_BATCH);
        let writer = Writer {
            store,
            keys,
            signed_at: Instant::now() - settings.checkpoint_interval,
            settings,
            frontier,
            signed_size,
        };
        tokio::spawn(writer.run(rx));
        Ok(AuditLog { tx })
    }

    /// Appends a record and waits until it is durable. Returns its position.
    pub async fn append(&self, record: &AccessRecord) -> Result<i64, AuditError> {
        self.append_issuing(record.clone(), Vec::new()).await
    }

    /// Appends a record together with the pseudonyms its request hands out:
    /// they are stored in the same transaction, so an answer never carries
    /// a pseudonym that a later request could not resolve, and issuing one
    /// costs no write of its own.
    pub async fn append_issuing(
        &self,
        record: AccessRecord,
        issued: Vec<IssuedPseudonym>,
    ) -> Result<i64, AuditError> {
        let (done, wait) = oneshot::channel();
        let pending = Pending {
            row: record.into_row(),
            issued,
            done,
        };
        self.tx
            .send(Msg::Append(Box::new(pending)))
            .await
            .map_err(|_| AuditError("the log writer has stopped".into()))?;
        wait.await
            .map_err(|_| AuditError("the log writer has stopped".into()))?
    }
}

impl AuditLog {
    /// Signs a checkpoint over every entry written so far, if any is not
    /// yet covered; called on a clean stop so no tail stays unsigned.
    pub async fn sign_pending(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Sign(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
        loop {
            // Entries not yet covered by a checkpoint get one within the
            // interval even if no more entries arrive.
            let first = if self.frontier.size() > self.signed_size {
                let left = self
                    .settings
                    .checkpoint_interval
                    .saturating_sub(self.signed_at.elapsed());
                match tokio::time::timeout(left, rx.recv()).await {
                    Ok(first) => first,
                    Err(_) => {
                        self.checkpoint_now().await;
                        continue;
                    }
                }
            } else {
                rx.recv().await
            };
            let first = match first {
                Some(Msg::Append(p)) => *p,
                Some(Msg::Sign(done)) => {
                    if self.frontier.size() > self.signed_size {
                        self.checkpoint_now().await;
                    }
                    let _ = done.send(());
                    continue;
                }
                None => {
                    // All handles dropped: sign what is unsigned and stop.
                    if self.frontier.size() > self.signed_size {
                        self.checkpoint_now().await;
                    }
                    return;
                }
            };
            // Group commit: whatever queued while the last batch was being
            // written goes into this one.
            batch.push(first);
            let mut sign = None;
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(Msg::Append(p)) => batch.push(*p),
                    Ok(Msg::Sign(done)) => {
                        sign = Some(done);
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.write(&mut batch).await;
            if let Some(done) = sign {
                if self.frontier.size() > self.signed_size {
                    self.checkpoint_now().await;
                }
                let _ = done.send(());
            }
        }
    }

    async fn write(&mut self, batch: &mut Vec<Pending>) {
        let mut rows: Vec<LogRow> = Vec::with_capacity(batch.len());
        let mut issued: Vec<IssuedPseudonym> = Vec::new();
        let mut waiting = Vec::with_capacity(batch.len());
        for p in batch.drain(..) {
            rows.push(p.row);
            issued.extend(p.issued);
            waiting.push(p.done);
        }
        let leaves: Vec<merkle::Hash> = rows.iter().map(|r| merkle::leaf_hash(&r.record)).collect();
        let mut attempt = 0;
        let outcome = loop {
            attempt += 1;
            let before = self.frontier.clone();
            let first_seq = self.frontier.size() as i64;
            let mut nodes = Vec::with_capacity(rows.len() * 2);
            for leaf in &leaves {
                self.frontier.push_with(*leaf, |id, h| nodes.push((id, *h)));
            }
            let checkpoint = (self.signed_at.elapsed() >= self.settings.checkpoint_interval)
                .then(|| self.signed_checkpoint());
            match self
                .store
                .append_log(first_seq, &rows, &issued, &nodes, checkpoint.as_ref())
                .await
            {
                Ok(()) => {
                    if let Some(cp) = checkpoint {
                        self.signed_size = cp.size as u64;
                        self.signed_at = Instant::now();
                    }
                    break Ok(first_seq);
                }
                Err(StoreError::Raced { size }) if attempt < MAX_RACES => {
                    // Another replica appended first: catch up with the
                    // stored tree and take the next positions.
                    self.frontier = before;
                    if let Err(e) = self.catch_up(size as u64).await {
                        break Err(e);
                    }
                }
                Err(e) => {
                    // Nothing of the batch is in the log: forget it, so the
                    // next batch takes the same positions.
                    self.frontier = before;
                    break Err(AuditError(e.to_string()));
                }
            }
        };
        match outcome {
            Ok(first_seq) => {
                for (i, done) in waiting.into_iter().enumerate() {
                    let _ = done.send(Ok(first_seq + i as i64));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, records = waiting.len(), "access log write failed; requests fail closed");
                for done in waiting {
                    let _ = done.send(Err(AuditError(e.0.clone())));
                }
            }
        }
    }

    /// Rebuilds the compact range at `size` from the stored tree (written by
    /// another replica). The stored nodes up to the last checkpoint this
    /// writer checked are trusted; what others appended since extends them.
    async fn catch_up(&mut self, size: u64) -> Result<(), AuditError> {
        let ids = Frontier::perfect_nodes_for(size);
        let nodes = self.store.merkle_nodes(&ids).await?;
        self.frontier = Frontier::from_nodes(size, |id| nodes.get(&id).copied())
            .ok_or_else(|| AuditError(format!("tree nodes for size {size} are missing")))?;
        Ok(())
    }

    /// A checkpoint of the current tree. The tree only ever grows from the
    /// state checked against the last checkpoint at start, so every
    /// checkpoint the node signs is consistent with all earlier ones.
    fn signed_checkpoint(&self) -> StoredCheckpoint {
        let cp = Checkpoint {
            origin: self.settings.origin.clone(),
            size: self.frontier.size(),
            root: self.frontier.root(),
        };
        StoredCheckpoint {
            size: cp.size as i64,
            root: cp.root.to_vec(),
            at: crate::clock::now_millis(),
            note: cp.sign(&self.keys, &self.settings.key_name),
        }
    }

    async fn checkpoint_now(&mut self) {
        let cp = self.signed_checkpoint();
        match self.store.append_checkpoint(&cp).await {
            Ok(()) => {
                self.signed_size = cp.size as u64;
                self.signed_at = Instant::now();
            }
            Err(e) => {
                tracing::error!(error = %e, "checkpoint could not be stored; will retry");
                self.signed_at = Instant::now();
            }
        }
    }
}

/// Rebuilds the compact range of the stored tree. A log written before the
/// tree existed (or whose nodes are missing) is hashed from its leaves and
/// the missing nodes are stored.
async fn load_frontier(store: &Store) -> Result<Frontier, AuditError> {
    let size = store.log_size().await? as u64;
    let ids = Frontier::perfect_nodes_for(size);
    let nodes = store.merkle_nodes(&ids).await?;
    if let Some(f) = Frontier::from_nodes(size, |id| nodes.get(&id).copied()) {
        return Ok(f);
    }
    tracing::warn!(
        entries = size,
        "building the log's Merkle tree from its entries"
    );
    let mut frontier = Frontier::new();
    let mut from = 0i64;
    loop {
        let leaves = store.log_leaves(from, 10_000).await?;
        if leaves.is_empty() {
            break;
        }
        let mut new_nodes = Vec::new();
        for (seq, record) in &leaves {
            if *seq as u64 != frontier.size() {
                return Err(AuditError(format!(
                    "entry {} is missing from the log",
                    frontier.size()
                )));
            }
            frontier.push_with(merkle::leaf_hash(record), |id, h| new_nodes.push((id, *h)));
        }
        let have = store
            .merkle_nodes(&new_nodes.iter().map(|(id, _)| *id).collect::<Vec<_>>())
            .await?;
        let missing: Vec<_> = new_nodes
            .into_iter()
            .filter(|(id, _)| !have.contains_key(id))
            .collect();
        store.append_log(0, &[], &[], &missing, None).await?;
        from = leaves.last().map(|(s, _)| s + 1).unwrap_or(from);
    }
    Ok(frontier)
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
}
