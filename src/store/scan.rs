//! What `Store::scan_log` delivers: the whole access log and its stored
//! tree in order, in chunks, for `sluis audit verify`.
//!
//! A scan reads the log as it was when it started without holding one
//! snapshot throughout (which would keep SQLite from checkpointing its WAL
//! and PostgreSQL from vacuuming): it fixes the log's size first, then reads
//! each chunk below it with statements of its own ([`Window`]). The log and
//! its tree are append-only, so below that size nothing changes.
//!
//! Verification touches every entry and about two tree nodes per entry, so
//! the per-row cost decides its speed. A chunk therefore keeps the text and
//! blob columns of thousands of entries in one buffer instead of one
//! allocation per value. Each backend fills chunks its own way
//! (`sqlite::scan`: one plain connection in a blocking thread;
//! `postgres::scan`: the server packs each chunk into one value), ahead of
//! the checker through a channel of a few chunks, so reading and hashing
//! use both cores.
//!
//! Nothing read is trusted: a column may hold NULL or a value of the wrong
//! type where the schema says otherwise (someone edited the database), and
//! that arrives as [`Value::Null`] or [`Value::Other`] for the checker to
//! report, never as a panic.

/// Entries per chunk: a few MiB of buffer.
pub(super) const CHUNK: usize = 8192;
/// Chunks read ahead of the checker.
pub(super) const AHEAD: usize = 3;

/// A column as stored.
#[derive(Clone, Copy, Debug)]
enum Span {
    Null,
    Bytes { start: u32, end: u32 },
    Other,
}

/// A column's value as the checker sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    Null,
    /// Text or blob.
    Bytes(&'a [u8]),
    /// A number where text or a blob belongs.
    Other,
}

impl<'a> Value<'a> {
    pub(crate) fn bytes(self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The value as text; `None` for NULL, another type, or invalid UTF-8.
    pub(crate) fn text(self) -> Option<&'a str> {
        match self {
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
}

/// The text and blob columns of an entry, in [`Entry`]'s order.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Field {
    RequestId = 0,
    Caller,
    Role,
    Method,
    CaseId,
    Subject,
    Purpose,
    Decision,
    Record,
}

pub(super) const FIELDS: usize = 9;

/// One stored log entry; its text and blob columns live in the chunk.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) seq: i64,
    /// `None` when the column does not hold an integer.
    pub(crate) at: Option<i64>,
    spans: [Span; FIELDS],
}

/// One stored tree node.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) end: i64,
    pub(crate) level: i64,
    hash: Span,
}

/// One row of the subject index (`access_log_subjects`): an entry's
/// position and a subject it names.
#[derive(Debug)]
pub(crate) struct Named {
    pub(crate) seq: i64,
    subject: Span,
}

/// A run of entries in `seq` order, with the tree nodes stored for them —
/// those completed at sizes after the previous chunk's entries, up to this
/// chunk's last entry (`seq + 1`), in `(end_size, level)` order — and the
/// subject-index rows of the positions in between, in `(seq, subject)`
/// order. A chunk without entries carries what is stored past the last
/// entry (at most a few rows: one is proof enough that the tail was cut).
#[derive(Debug, Default)]
pub(crate) struct Chunk {
    buf: Vec<u8>,
    pub(crate) entries: Vec<Entry>,
    pub(crate) nodes: Vec<Node>,
    /// Set when the table held more nodes in this chunk's range than any
    /// tree has (two per entry plus one per level): the first end size of
    /// those left unread.
    pub(crate) excess_nodes_from: Option<i64>,
    pub(crate) named: Vec<Named>,
    /// Set when the subject index held more rows in this chunk's range than
    /// its records could name: the first position of those left unread.
    pub(crate) excess_named_from: Option<i64>,
}

impl Chunk {
    pub(crate) fn field(&self, e: &Entry, f: Field) -> Value<'_> {
        self.value(e.spans[f as usize])
    }

    pub(crate) fn node_hash(&self, n: &Node) -> Value<'_> {
        self.value(n.hash)
    }

    pub(crate) fn named_subject(&self, n: &Named) -> Value<'_> {
        self.value(n.subject)
    }

    fn value(&self, s: Span) -> Value<'_> {
        match s {
            Span::Null => Value::Null,
            Span::Other => Value::Other,
            Span::Bytes { start, end } => Value::Bytes(&self.buf[start as usize..end as usize]),
        }
    }

    fn keep(&mut self, v: Value<'_>) -> Span {
        match v {
            Value::Null => Span::Null,
            Value::Other => Span::Other,
            Value::Bytes(b) => {
                let start = self.buf.len() as u32;
                self.buf.extend_from_slice(b);
                Span::Bytes {
                    start,
                    end: self.buf.len() as u32,
                }
            }
        }
    }

    pub(super) fn push_entry(&mut self, seq: i64, at: Option<i64>, fields: [Value<'_>; FIELDS]) {
        let spans = fields.map(|v| self.keep(v));
        self.entries.push(Entry { seq, at, spans });
    }

    pub(super) fn push_node(&mut self, end: i64, level: i64, hash: Value<'_>) {
        let hash = self.keep(hash);
        self.nodes.push(Node { end, level, hash });
    }

    pub(super) fn push_named(&mut self, seq: i64, subject: Value<'_>) {
        let subject = self.keep(subject);
        self.named.push(Named { seq, subject });
    }

    /// Most subject-index rows this chunk's entries can honestly have: a
    /// subject takes at least 5 bytes of its record (a length and a byte).
    fn named_cap(&self) -> usize {
        let record_bytes: usize = self
            .entries
            .iter()
            .map(|e| match e.spans[Field::Record as usize] {
                Span::Bytes { start, end } => (end - start) as usize,
                _ => 0,
            })
            .sum();
        record_bytes / 5 + 64
    }

    /// Most nodes a chunk of `entries` entries can honestly hold.
    pub(super) fn node_cap(entries: usize) -> usize {
        2 * entries + 64
    }

    /// Most rows of each kind the chunk after the last entry carries: one
    /// is proof enough that the tail was cut.
    pub(super) const TAIL_ROWS: usize = 4;
}

/// What a backend reads with a chunk's entries: tree nodes with end sizes
/// in `nodes.0 ..= nodes.1` exclusive of the first (`(after, up_to]`), at
/// most `node_cap`; subject-index rows with positions in `named.0 ..
/// named.1`, at most `named_cap`. One more row than the cap is asked for,
/// to see that the table holds too many.
#[derive(Clone, Copy, Debug)]
pub(super) struct Ranges {
    pub nodes: (i64, i64),
    pub node_cap: usize,
    pub named: (i64, i64),
    pub named_cap: usize,
}

/// Where a scan stands: the log's size, fixed when the scan started; the
/// first position the next chunk reads; the end size up to which tree
/// nodes have been read.
#[derive(Debug)]
pub(super) struct Window {
    size: i64,
    from: i64,
    nodes_after: i64,
    done: bool,
}

impl Window {
    /// A scan of the first `size` entries (positions below `size`).
    pub(super) fn new(size: i64) -> Window {
        Window {
            size,
            from: i64::MIN,
            nodes_after: i64::MIN,
            done: false,
        }
    }

    /// The log's size the scan reads up to.
    pub(super) fn size(&self) -> i64 {
        self.size
    }

    /// The first position the next chunk reads from, up to [`CHUNK`]
    /// entries below [`size`](Self::size); `None` once the entries are
    /// read.
    pub(super) fn next_entry(&self) -> Option<i64> {
        (!self.done).then_some(self.from)
    }

    /// Once a chunk's entries are read: what comes with them ([`Ranges`]),
    /// or `None` when the chunk has no entries and the scan is done.
    pub(super) fn ranges_for(&mut self, chunk: &Chunk) -> Option<Ranges> {
        let Some(last) = chunk.entries.last() else {
            self.done = true;
            return None;
        };
        let bound = last.seq.saturating_add(1);
        let ranges = Ranges {
            nodes: (self.nodes_after, bound),
            node_cap: Chunk::node_cap(chunk.entries.len()),
            named: (self.from, bound),
            named_cap: chunk.named_cap(),
        };
        // A position that does not advance (a column that is no integer)
        // would read the same rows again: stop after this chunk.
        self.done = bound <= self.from;
        self.from = bound;
        self.nodes_after = bound;
        Some(ranges)
    }

    /// What is stored past the log's end (the chunk without entries).
    pub(super) fn tail(size: i64) -> Ranges {
        Ranges {
            nodes: (size, i64::MAX),
            node_cap: Chunk::TAIL_ROWS,
            named: (size, i64::MAX),
            named_cap: Chunk::TAIL_ROWS,
        }
    }
}
