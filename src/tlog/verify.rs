//! `sluis audit verify`: recompute the whole access log from its entries and
//! check everything stored against it — every entry, every tree node, every
//! signed checkpoint — and, given a checkpoint saved earlier by someone else,
//! that the log still extends it.
//!
//! It trusts nothing in the database: not the stored hashes, not the
//! checkpoints' root column (only their signatures), not the query columns.

use std::time::Instant;

use crate::store::scan::{Chunk, Entry, Field, Named, Node, Value};
use crate::store::{Store, StoreError, StoredCheckpoint};
use crate::tlog::RecordView;
use crate::tlog::checkpoint::{Checkpoint, CheckpointError, origin};
use crate::tlog::handover::{Handover, key_name};
use crate::tlog::layout::HEIGHT;
use crate::tlog::merkle::{self, Frontier, Hash};
use crate::tlog::note::NoteError;

/// Something wrong with the log, at the first entry it can concern.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub index: u64,
    pub what: String,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct VerifyReport {
    pub entries: u64,
    pub checkpoints: usize,
    pub tree_nodes: u64,
    pub(crate) root: String,
    /// The lowest-index problem first; at most `MAX_PROBLEMS` kept.
    pub problems: Vec<Problem>,
    pub(crate) trusted_checkpoint: Option<u64>,
    pub seconds: f64,
    /// The keys given are not this log's: set when the log's latest
    /// checkpoint carries no signature at all by the key given as the
    /// node's current one. The checkpoints' signatures could then not be
    /// checked, and `problems` holds only what is wrong independently of
    /// the keys.
    pub key_mismatch: Option<KeyMismatch>,
}

/// The verifier keys given do not match the log's signing key history: an
/// operator's or officer's configuration fault (the wrong signing key in
/// the keys folder, a `--key` of another node), which says nothing about
/// whether the log was tampered with.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct KeyMismatch {
    /// The size of the latest checkpoint.
    pub size: u64,
    /// Who signed it, `<key name>+<key id>` per signature
    /// (`note::signature_keys`).
    pub signed_by: Vec<String>,
    /// The verifier key given as the node's current one (the history's
    /// last).
    pub given: String,
}

impl KeyMismatch {
    /// What it means and what to do, for an operator or an officer.
    pub fn explain(&self) -> String {
        format!(
            "the verifier key given as the node's current one,\n  {}\nnever signed this log: its latest checkpoint (size {}) is signed by {}.\n\
             This is a configuration fault, not a sign of tampering: the keys folder holds a signing key that is not\n\
             the log's (replaced without `sluis keys rotate-signing`, or another node's), or --key names another\n\
             node's key. Put the key that signed the log back into the keys folder (from its backup), or pass the\n\
             log's verifier keys with --key, oldest first; then verify again.",
            self.given,
            self.size,
            if self.signed_by.is_empty() {
                "nobody readable".to_string()
            } else {
                self.signed_by.join(", ")
            }
        )
    }
}

impl VerifyReport {
    /// Every check passed, under keys that are the log's.
    pub fn intact(&self) -> bool {
        self.problems.is_empty() && self.key_mismatch.is_none()
    }
    pub fn first_problem(&self) -> Option<&Problem> {
        self.problems.first()
    }
    pub fn entries_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.entries as f64 / self.seconds
        } else {
            0.0
        }
    }
}

pub(crate) const MAX_PROBLEMS: usize = 100;

struct Problems(Vec<Problem>);
impl Problems {
    fn add(&mut self, index: u64, what: String) {
        if self.0.len() < MAX_PROBLEMS * 10 {
            self.0.push(Problem { index, what });
        }
    }
    /// The lowest index of a problem already found in `from..to`.
    fn lowest_in(&self, from: u64, to: u64) -> Option<u64> {
        self.0
            .iter()
            .map(|p| p.index)
            .filter(|i| (from..to).contains(i))
            .min()
    }
}

/// Verifies the log of a node whose checkpoints were all signed by one key.
/// `verifier_key` is the node's signed-note key; `trusted` a signed
/// checkpoint saved earlier (its signature is checked with the same key).
/// `progress(done, total)` is called now and then.
pub async fn verify_log(
    store: &Store,
    verifier_key: &str,
    trusted: Option<&str>,
    progress: impl FnMut(u64, u64),
) -> Result<VerifyReport, StoreError> {
    verify_log_history(store, &[verifier_key.to_string()], trusted, progress).await
}

/// Verifies the log against its key history: `keys` are the verifier keys
/// the log was signed with, oldest first (`Keys::log_keys`; a rotation and
/// a rename each add one, `tlog::handover`). Each checkpoint must be
/// signed by the key in force at its size, with that key's origin line;
/// each handover record must name the next two keys of the history, and
/// the checkpoint at its end must carry both keys' signatures; the log
/// must end under the last key. A checkpoint signed by a key not in the
/// history is a problem. `trusted` may be signed by any key of the history.
pub async fn verify_log_history(
    store: &Store,
    keys: &[String],
    trusted: Option<&str>,
    mut progress: impl FnMut(u64, u64),
) -> Result<VerifyReport, StoreError> {
    let started = Instant::now();
    let mut problems = Problems(Vec::new());
    let total = store.log_size().await? as u64;
    if keys.is_empty() {
        problems.add(0, "no verifier key to check the checkpoints with".into());
    }
    // Checkpoints: only their signed bodies count, each checked under the
    // key in force at its size once the scan reaches it.
    let checkpoints: Vec<StoredCheckpoint> = store.checkpoints().await?;
    let key_mismatch = key_mismatch(&checkpoints, keys);
    let mut signing = Signing {
        keys,
        epoch: 0,
        handover: None,
        mismatch: key_mismatch.is_some(),
    };
    let trusted = match trusted {
        None => None,
        Some(note) => {
            let mut last = None;
            let found = keys.iter().find_map(|k| match Checkpoint::verify(note, k) {
                Ok(c) => Some(c),
                Err(e) => {
                    last = Some(e);
                    None
                }
            });
            if found.is_none() {
                let e = last.map_or_else(|| "no key".to_string(), |e| e.to_string());
                problems.add(0, format!("trusted checkpoint: {e}"));
            }
            found
        }
    };

    let mut frontier = Frontier::new();
    let mut cp_iter = checkpoints.iter().peekable();
    let mut last_good_cp = 0u64;
    let mut tree_nodes = 0u64;
    let mut completed: Vec<(merkle::NodeId, Hash)> = Vec::with_capacity(64);
    // A checkpoint at size 0 covers nothing but still must have the empty root.
    while let Some(stored) = cp_iter.next_if(|c| c.size == 0) {
        if let Some(c) = signing.check(stored, &mut problems)
            && c.root != merkle::EMPTY_ROOT
        {
            problems.add(0, "checkpoint 0 does not have the empty tree's root".into());
        }
    }
    let mut chunks = store.scan_log();
    while let Some(chunk) = chunks.recv().await {
        let chunk = chunk?;
        if let Some(end) = chunk.excess_nodes_from {
            problems.add(
                index_before(end),
                format!("the tree table holds more nodes than any tree has, from size {end}: nodes were added"),
            );
        }
        if let Some(seq) = chunk.excess_named_from {
            problems.add(
                seq.max(0) as u64,
                format!("the subject index holds more rows than the entries name, from entry {seq}: rows were added"),
            );
        }
        if chunk.entries.is_empty() {
            // Rows stored past the last entry: the tail was cut.
            let size = frontier.size();
            if !chunk.nodes.is_empty() {
                problems.add(
                    size,
                    format!("the tree has nodes for entries after {size}: entries were removed"),
                );
            }
            if !chunk.named.is_empty() {
                problems.add(
                    size,
                    format!("the subject index names entries after {size}: entries were removed"),
                );
            }
            continue;
        }
        // Stored nodes arrive in the order the tree completes them, index
        // rows in the order of their entries.
        let mut next_node = 0usize;
        let mut next_named = 0usize;
        for entry in &chunk.entries {
            let i = frontier.size();
            if entry.seq != i as i64 {
                problems.add(
                    i,
                    format!(
                        "entry {i} is missing (the next stored entry is {})",
                        entry.seq
                    ),
                );
                // Resynchronising would only repeat the same finding.
                return Ok(finish(
                    problems,
                    frontier,
                    checkpoints.len(),
                    tree_nodes,
                    trusted.map(|t| t.size),
                    started,
                    key_mismatch,
                ));
            }
            let handover = check_columns(&chunk, entry, &mut next_named, &mut problems);
            let record = match chunk.field(entry, Field::Record) {
                Value::Bytes(b) => b,
                _ => &[],
            };
            completed.clear();
            frontier.push_with(merkle::leaf_hash(record), |id, h| completed.push((id, *h)));
            // Only nodes at tile levels are stored (`tlog::layout`); the
            // levels between are hashed from them.
            for (id, h) in completed.iter().filter(|(id, _)| id.level % HEIGHT == 0) {
                let want = (id.end() as i64, i64::from(id.level));
                let first_leaf = id.index << id.level;
                while let Some(n) = chunk.nodes.get(next_node)
                    && (n.end, n.level) < want
                {
                    problems.add(index_before(n.end), stray(n));
                    next_node += 1;
                }
                match chunk.nodes.get(next_node) {
                    Some(n) if (n.end, n.level) == want => {
                        next_node += 1;
                        tree_nodes += 1;
                        if chunk.node_hash(n) != Value::Bytes(h) {
                            let what = if id.level == 0 {
                                format!(
                                    "entry {first_leaf} does not match its stored leaf hash (the entry or the tree was changed)"
                                )
                            } else {
                                format!(
                                    "tree node at level {} over entries {first_leaf}..{} does not match the entries",
                                    id.level,
                                    id.end() - 1
                                )
                            };
                            // A node over changed entries is wrong because of
                            // them: point at the first changed entry found.
                            let at = problems
                                .lowest_in(first_leaf, id.end())
                                .unwrap_or(first_leaf);
                            problems.add(at, what);
                        }
                    }
                    _ => {
                        // The node would have been stored with its last entry:
                        // that entry is the first the node did not write.
                        problems.add(
                            id.end() - 1,
                            format!(
                                "tree node at level {} over entries {first_leaf}..{} is missing",
                                id.level,
                                id.end() - 1
                            ),
                        );
                    }
                }
            }
            let size = frontier.size();
            if let Some(h) = handover {
                signing.handover_at(i, h, &mut problems);
            }
            while let Some(stored) = cp_iter.next_if(|c| c.size as u64 <= size) {
                let Some(c) = signing.check(stored, &mut problems) else {
                    continue;
                };
                if c.root != frontier.root() {
                    let at = problems
                        .lowest_in(last_good_cp, size)
                        .unwrap_or(last_good_cp);
                    problems.add(at, format!(
                        "the entries do not match the signed checkpoint of size {size}: an entry at or after {last_good_cp} was changed after it was signed"
                    ));
                } else {
                    last_good_cp = size;
                }
            }
            signing.handed_over(size, &mut problems);
            if let Some(t) = &trusted
                && t.size == size
                && t.root != frontier.root()
            {
                problems.add(0, format!(
                    "the log does not extend the trusted checkpoint of size {size}: it was rewritten"
                ));
            }
        }
        for n in &chunk.nodes[next_node..] {
            problems.add(index_before(n.end), stray(n));
        }
        for n in &chunk.named[next_named..] {
            problems.add(n.seq.max(0) as u64, stray_named(n));
        }
        progress(frontier.size(), total);
    }
    let size = frontier.size();
    for stored in cp_iter {
        if signing.check(stored, &mut problems).is_some() {
            problems.add(size, format!(
                "a checkpoint of size {} was signed but the log has only {size} entries: entries were removed",
                stored.size
            ));
        }
    }
    signing.ended(size, &mut problems);
    if let Some(t) = &trusted
        && t.size > size
    {
        problems.add(size, format!(
            "the log has {size} entries, fewer than the trusted checkpoint's {}: entries were removed",
            t.size
        ));
    }
    if let Some(t) = &trusted
        && t.size == 0
        && t.root != merkle::EMPTY_ROOT
    {
        problems.add(
            0,
            "the trusted checkpoint of size 0 is not the empty tree".into(),
        );
    }
    check_case_index(store, &mut problems).await?;
    Ok(finish(
        problems,
        frontier,
        checkpoints.len(),
        tree_nodes,
        trusted.map(|t| t.size),
        started,
        key_mismatch,
    ))
}

/// The queryable columns, and the subject index rows of the entry (from
/// `chunk.named[*named..]`, consumed), must say what the signed record
/// says: otherwise a changed column or a removed row could hide an access
/// from a privacy officer's query or a subject's report.
///
/// Returns the handover the entry states, if it is one (`tlog::handover`).
fn check_columns(
    chunk: &Chunk,
    e: &Entry,
    named: &mut usize,
    problems: &mut Problems,
) -> Option<Handover> {
    let i = e.seq as u64;
    while let Some(n) = chunk.named.get(*named)
        && n.seq < e.seq
    {
        problems.add(n.seq.max(0) as u64, stray_named(n));
        *named += 1;
    }
    let first = *named;
    while chunk.named.get(*named).is_some_and(|n| n.seq == e.seq) {
        *named += 1;
    }
    let rows = &chunk.named[first..*named];
    let Some(r) = chunk
        .field(e, Field::Record)
        .bytes()
        .and_then(RecordView::parse)
    else {
        problems.add(i, format!("entry {i} is not a valid access record"));
        return None;
    };
    let text = |f| chunk.field(e, f).text();
    // NULL is "absent"; anything else must be text.
    let opt = |f| match chunk.field(e, f) {
        Value::Null => Some(None),
        v => v.text().map(Some),
    };
    let same = text(Field::RequestId) == Some(r.request_id)
        && e.at == Some(r.at)
        && text(Field::Caller) == Some(r.caller)
        && text(Field::Role) == Some(r.role)
        && text(Field::Method) == Some(r.method)
        && opt(Field::CaseId) == Some(r.case_id)
        && opt(Field::Subject) == Some(r.subject)
        && opt(Field::Purpose) == Some(r.purpose)
        && text(Field::Decision) == Some(r.decision.as_str());
    if !same {
        problems.add(
            i,
            format!("entry {i}: its query columns differ from the recorded entry"),
        );
    }
    // Most entries name no other subject and have no index rows.
    let indexed = if rows.is_empty() {
        r.subject_count() == 0
    } else {
        let mut subjects = r.subjects();
        rows.iter()
            .all(|n| chunk.named_subject(n).text() == subjects.next())
            && subjects.next().is_none()
    };
    if !indexed {
        problems.add(
            i,
            format!("entry {i}: the subject index differs from the subjects the entry names"),
        );
    }
    Handover::parse(r.method, r.detail)
}

/// The index of the log by case (kept behind the log, migration 0022) must
/// hold exactly the entries below its progress that have a case: a row
/// missing would hide an access from a query by case or a subject's report
/// (those read the index below its progress), a row added would show one
/// that is not there. Rebuilt from the entries' `case_id` column, which
/// [`check_columns`] holds to the signed records; each difference is
/// reported at the entry it concerns.
async fn check_case_index(store: &Store, problems: &mut Problems) -> Result<(), StoreError> {
    let found = store.index_problems(MAX_PROBLEMS as i64).await?;
    if found.upto > found.size {
        problems.add(
            found.size.max(0) as u64,
            format!(
                "the index of the log by case claims {} entries but the log has {}: entries were removed",
                found.upto, found.size
            ),
        );
    }
    for seq in found.missing {
        problems.add(
            seq.max(0) as u64,
            format!(
                "entry {seq} is missing from the index of the log by case: a query by its case would not show it"
            ),
        );
    }
    for seq in found.extra {
        problems.add(
            seq.max(0) as u64,
            format!(
                "the index of the log by case has a row for entry {seq} that the entry does not account for: a row was added or changed"
            ),
        );
    }
    Ok(())
}

/// Which key signs the checkpoints at the point the scan has reached.
struct Signing<'a> {
    /// The key history, oldest first.
    keys: &'a [String],
    /// The key in force: an index into `keys`.
    epoch: usize,
    /// A handover the scan has read and whose checkpoint it has not yet
    /// reached: (that checkpoint's size, the index of the new key, whether
    /// a checkpoint signed by both was seen).
    handover: Option<(u64, Option<usize>, bool)>,
    /// The keys are not the log's ([`KeyMismatch`]): a checkpoint without
    /// a signature by the key in force, and a log never handed over to the
    /// last key, follow from that and are not reported one by one.
    mismatch: bool,
}

impl Signing<'_> {
    /// The stored checkpoint's signed body, if it is signed by the key in
    /// force at its size (at a handover: by both keys) with that key's
    /// origin line and matches its columns; otherwise a problem, and
    /// `None`.
    fn check(&mut self, cp: &StoredCheckpoint, problems: &mut Problems) -> Option<Checkpoint> {
        let size = cp.size as u64;
        let key = self.keys.get(self.epoch)?;
        let mut parsed = Checkpoint::verify(&cp.note, key);
        if let Some((at, to, seen)) = &mut self.handover
            && *at == size
        {
            let next = to.and_then(|t| self.keys.get(t));
            parsed = parsed.and_then(|c| match next {
                Some(next) => Checkpoint::verify(&cp.note, next).map(|_| c),
                None => Ok(c),
            });
            *seen |= parsed.is_ok();
        }
        match parsed {
            Ok(c) if c.size == size && c.root.as_slice() == cp.root.as_slice() => {
                if c.origin != origin(key_name(key)) {
                    problems.add(
                        0,
                        format!(
                            "checkpoint {size}: its origin is '{}', not '{}' of the key in force at that size",
                            c.origin,
                            origin(key_name(key))
                        ),
                    );
                    return None;
                }
                Some(c)
            }
            Ok(_) => {
                problems.add(
                    0,
                    format!("checkpoint {size}: its columns differ from its signed note"),
                );
                None
            }
            Err(CheckpointError::Note(NoteError::NoSignature(_))) if self.mismatch => None,
            Err(e) => {
                problems.add(
                    0,
                    format!(
                        "checkpoint {size}: {e} (the key in force at that size is {key}; a checkpoint signed by a key not in the key history is refused)"
                    ),
                );
                None
            }
        }
    }

    /// The entry at `index` hands the log over: it must name the key in
    /// force and the next one of the history.
    fn handover_at(&mut self, index: u64, h: Handover, problems: &mut Problems) {
        let current = self.keys.get(self.epoch);
        let next = self.keys.get(self.epoch + 1);
        if current != Some(&h.from) || next != Some(&h.to) {
            problems.add(
                index,
                format!(
                    "entry {index} hands the log over from {} to {}, but the key history has {} then {}",
                    h.from,
                    h.to,
                    current.map_or("no key", String::as_str),
                    next.map_or("no later key", String::as_str),
                ),
            );
        }
        let to = self.keys.iter().position(|k| *k == h.to);
        self.handover = Some((index + 1, to, false));
    }

    /// The scan has checked the checkpoints at `size`: a handover ending
    /// there takes effect, once a checkpoint signed by both keys was seen.
    fn handed_over(&mut self, size: u64, problems: &mut Problems) {
        let Some((at, to, seen)) = self.handover else {
            return;
        };
        if at != size {
            return;
        }
        if !seen {
            problems.add(
                at - 1,
                format!(
                    "the handover at entry {} has no checkpoint of size {at} signed by both keys",
                    at - 1
                ),
            );
        }
        if let Some(to) = to {
            self.epoch = to;
        }
        self.handover = None;
    }

    /// The log ends at `size`: it must be signed by the last key of the
    /// history by then (a key file replaced without a rotation is not).
    fn ended(&mut self, size: u64, problems: &mut Problems) {
        if self.keys.len() > self.epoch + 1 && !self.mismatch {
            problems.add(
                size,
                format!(
                    "the log was never handed over to {} (the key history's last key, the node's signing key): the key file was replaced without `sluis keys rotate-signing`, or the history belongs to another log",
                    self.keys[self.keys.len() - 1]
                ),
            );
        }
    }
}

/// Whether the keys given are not this log's: no checkpoint has a
/// signature line at all by the last key of `keys`, the one given as the
/// node's current key — the key never signed this log. A signature line by
/// it that does not verify is no mismatch (that is a forged or changed
/// checkpoint), nor is a latest checkpoint by another key after earlier
/// ones by this key (a checkpoint put in): the scan reports those.
fn key_mismatch(checkpoints: &[StoredCheckpoint], keys: &[String]) -> Option<KeyMismatch> {
    let latest = checkpoints.iter().max_by_key(|c| c.size)?;
    let given = keys.last()?;
    let never_signed = checkpoints.iter().all(|c| {
        matches!(
            Checkpoint::verify(&c.note, given),
            Err(CheckpointError::Note(NoteError::NoSignature(_)))
        )
    });
    never_signed.then(|| KeyMismatch {
        size: latest.size as u64,
        signed_by: crate::tlog::note::signature_keys(&latest.note),
        given: given.clone(),
    })
}

fn stray_named(n: &Named) -> String {
    format!(
        "the subject index names entry {} under a subject the entry does not name",
        n.seq
    )
}

/// The entry a stored node at end size `end` was written with.
fn index_before(end: i64) -> u64 {
    end.max(1) as u64 - 1
}

fn stray(n: &Node) -> String {
    format!(
        "the tree table holds a node (level {}, size {}) that is not part of the tree",
        n.level, n.end
    )
}

fn finish(
    mut problems: Problems,
    frontier: Frontier,
    checkpoints: usize,
    tree_nodes: u64,
    trusted: Option<u64>,
    started: Instant,
    key_mismatch: Option<KeyMismatch>,
) -> VerifyReport {
    problems.0.sort_by_key(|p| p.index);
    problems.0.truncate(MAX_PROBLEMS);
    VerifyReport {
        entries: frontier.size(),
        checkpoints,
        tree_nodes,
        root: hex::encode(frontier.root()),
        problems: problems.0,
        trusted_checkpoint: trusted,
        seconds: started.elapsed().as_secs_f64(),
        key_mismatch,
    }
}
