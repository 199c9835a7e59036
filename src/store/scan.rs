//! What `Store::scan_log` delivers: the whole access log and its stored
//! tree in order, in chunks, for `sluis audit verify`.
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
pub enum Value<'a> {
    Null,
    /// Text or blob.
    Bytes(&'a [u8]),
    /// A number where text or a blob belongs.
    Other,
}

impl<'a> Value<'a> {
    pub fn bytes(self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The value as text; `None` for NULL, another type, or invalid UTF-8.
    pub fn text(self) -> Option<&'a str> {
        match self {
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
}

/// The text and blob columns of an entry, in [`Entry`]'s order.
#[derive(Clone, Copy, Debug)]
pub enum Field {
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
pub struct Entry {
    pub seq: i64,
    /// `None` when the column does not hold an integer.
    pub at: Option<i64>,
    spans: [Span; FIELDS],
}

/// One stored tree node.
#[derive(Debug)]
pub struct Node {
    pub end: i64,
    pub level: i64,
    hash: Span,
}

/// A run of entries in `seq` order, and the tree nodes stored for them:
/// those completed at sizes after the previous chunk's entries, up to this
/// chunk's last entry (`seq + 1`), in `(end_size, level)` order. A chunk
/// without entries carries the nodes stored past the last entry (at most a
/// few: one is proof enough that the tail was cut).
#[derive(Debug, Default)]
pub struct Chunk {
    buf: Vec<u8>,
    pub entries: Vec<Entry>,
    pub nodes: Vec<Node>,
    /// Set when the table held more nodes in this chunk's range than any
    /// tree has (two per entry plus one per level): the first end size of
    /// those left unread.
    pub excess_nodes_from: Option<i64>,
}

impl Chunk {
    pub fn field(&self, e: &Entry, f: Field) -> Value<'_> {
        self.value(e.spans[f as usize])
    }

    pub fn node_hash(&self, n: &Node) -> Value<'_> {
        self.value(n.hash)
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

    /// Most nodes a chunk of `entries` entries can honestly hold.
    pub(super) fn node_cap(entries: usize) -> usize {
        2 * entries + 64
    }
}
