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
use crate::tlog::checkpoint::Checkpoint;
use crate::tlog::layout::HEIGHT;
use crate::tlog::merkle::{self, Frontier, Hash};

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
}

impl VerifyReport {
    pub fn intact(&self) -> bool {
        self.problems.is_empty()
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

/// Verifies the log. `verifier_key` is the node's signed-note key;
/// `trusted` a signed checkpoint saved earlier (its signature is checked
/// with the same key). `progress(done, total)` is called now and then.
pub async fn verify_log(
    store: &Store,
    verifier_key: &str,
    trusted: Option<&str>,
    mut progress: impl FnMut(u64, u64),
) -> Result<VerifyReport, StoreError> {
    let started = Instant::now();
    let mut problems = Problems(Vec::new());
    let total = store.log_size().await? as u64;

    // Checkpoints: only their signed bodies count.
    let mut checkpoints: Vec<(StoredCheckpoint, Option<Checkpoint>)> = Vec::new();
    for cp in store.checkpoints().await? {
        let parsed = match Checkpoint::verify(&cp.note, verifier_key) {
            Ok(c) if c.size == cp.size as u64 && c.root.as_slice() == cp.root.as_slice() => Some(c),
            Ok(_) => {
                problems.add(
                    0,
                    format!(
                        "checkpoint {}: its columns differ from its signed note",
                        cp.size
                    ),
                );
                None
            }
            Err(e) => {
                problems.add(0, format!("checkpoint {}: {e}", cp.size));
                None
            }
        };
        checkpoints.push((cp, parsed));
    }
    let trusted = match trusted {
        None => None,
        Some(note) => match Checkpoint::verify(note, verifier_key) {
            Ok(c) => Some(c),
            Err(e) => {
                problems.add(0, format!("trusted checkpoint: {e}"));
                None
            }
        },
    };

    let mut frontier = Frontier::new();
    let mut cp_iter = checkpoints.iter().filter(|(_, p)| p.is_some()).peekable();
    let mut last_good_cp = 0u64;
    let mut tree_nodes = 0u64;
    let mut completed: Vec<(merkle::NodeId, Hash)> = Vec::with_capacity(64);
    // A checkpoint at size 0 covers nothing but still must have the empty root.
    while let Some((_, Some(c))) = cp_iter.peek() {
        if c.size != 0 {
            break;
        }
        if c.root != merkle::EMPTY_ROOT {
            problems.add(0, "checkpoint 0 does not have the empty tree's root".into());
        }
        cp_iter.next();
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
                ));
            }
            check_columns(&chunk, entry, &mut next_named, &mut problems);
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
            while let Some((_, Some(c))) = cp_iter.peek() {
                if c.size > size {
                    break;
                }
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
                cp_iter.next();
            }
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
    for (c, _) in cp_iter {
        problems.add(size, format!(
            "a checkpoint of size {} was signed but the log has only {size} entries: entries were removed",
            c.size
        ));
    }
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
    Ok(finish(
        problems,
        frontier,
        checkpoints.len(),
        tree_nodes,
        trusted.map(|t| t.size),
        started,
    ))
}

/// The queryable columns, and the subject index rows of the entry (from
/// `chunk.named[*named..]`, consumed), must say what the signed record
/// says: otherwise a changed column or a removed row could hide an access
/// from a privacy officer's query or a subject's report.
fn check_columns(chunk: &Chunk, e: &Entry, named: &mut usize, problems: &mut Problems) {
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
        return;
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
    }
}
