//! Reads the whole access log and its stored tree in order, in bulk, for
//! `sluis audit verify`.
//!
//! Verification touches every entry and about two tree nodes per entry, so
//! the per-row cost decides its speed. Through sqlx every row crosses from
//! the SQLite worker thread and each value is copied into its own
//! allocation; here SQLite rows are read on one plain connection in a
//! blocking thread and packed into one buffer per chunk. The reader runs
//! ahead of the checker (a channel of a few chunks), so reading and hashing
//! use both cores. On PostgreSQL the server packs each chunk's entries and
//! nodes into one value per query (`string_agg`), read in a task of its own.
//!
//! Nothing read here is trusted: a column may hold NULL or a value of the
//! wrong type where the schema says otherwise (someone edited the file), and
//! that arrives as [`Value::Null`] or [`Value::Other`] for the checker to
//! report, never as a panic.

use std::path::PathBuf;

use rusqlite::types::ValueRef;
use tokio::sync::mpsc;

use crate::store::{Backend, Store, StoreError};

/// Entries per chunk: a few MiB of buffer.
pub const CHUNK: usize = 8192;
/// Chunks read ahead of the checker.
const AHEAD: usize = 3;

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

const FIELDS: usize = 9;

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

    fn push_entry(&mut self, seq: i64, at: Option<i64>, fields: [Value<'_>; FIELDS]) {
        let spans = fields.map(|v| self.keep(v));
        self.entries.push(Entry { seq, at, spans });
    }

    fn push_node(&mut self, end: i64, level: i64, hash: Value<'_>) {
        let hash = self.keep(hash);
        self.nodes.push(Node { end, level, hash });
    }

    /// Most nodes a chunk of `entries` entries can honestly hold.
    fn node_cap(entries: usize) -> usize {
        2 * entries + 64
    }
}

/// Starts reading the log of `store`; chunks arrive in order on the
/// returned channel, which closes after the last. Dropping the receiver
/// stops the reader.
pub fn scan(store: &Store) -> mpsc::Receiver<Result<Chunk, StoreError>> {
    let (tx, rx) = mpsc::channel(AHEAD);
    match store.backend() {
        Backend::Sqlite => {
            let file = store.sqlite_file().map(|f| f.to_path_buf());
            tokio::task::spawn_blocking(move || {
                let result = match file {
                    Some(file) => scan_sqlite(file, &tx),
                    None => Err(StoreError::Corrupt(
                        "the SQLite database has no file to read the log from".into(),
                    )),
                };
                if let Err(e) = result {
                    let _ = tx.blocking_send(Err(e));
                }
            });
        }
        Backend::Postgres => {
            let store = store.clone();
            tokio::spawn(async move {
                if let Err(e) = scan_paged(&store, &tx).await {
                    let _ = tx.send(Err(e)).await;
                }
            });
        }
    }
    rx
}

/// A value kept beyond its row.
enum Owned {
    Null,
    Bytes(Vec<u8>),
    Other,
}

impl Owned {
    fn of(v: Value<'_>) -> Owned {
        match v {
            Value::Null => Owned::Null,
            Value::Bytes(b) => Owned::Bytes(b.to_vec()),
            Value::Other => Owned::Other,
        }
    }
    fn value(&self) -> Value<'_> {
        match self {
            Owned::Null => Value::Null,
            Owned::Bytes(b) => Value::Bytes(b),
            Owned::Other => Value::Other,
        }
    }
}

fn sqlite_err(e: rusqlite::Error) -> StoreError {
    StoreError::Sqlite(e)
}

fn value(v: ValueRef<'_>) -> Value<'_> {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Text(b) | ValueRef::Blob(b) => Value::Bytes(b),
        ValueRef::Integer(_) | ValueRef::Real(_) => Value::Other,
    }
}

/// The SQLite reader: one read transaction, so the whole scan sees one
/// state of the log even while the node keeps appending.
fn scan_sqlite(
    file: PathBuf,
    tx: &mpsc::Sender<Result<Chunk, StoreError>>,
) -> Result<(), StoreError> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        &file,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sqlite_err)?;
    conn.execute_batch("BEGIN").map_err(sqlite_err)?;
    let mut entries = conn
        .prepare(
            "SELECT seq, at, request_id, caller, role, method, case_id, subject, purpose,
                    decision, record
             FROM access_log ORDER BY seq",
        )
        .map_err(sqlite_err)?;
    let mut nodes = conn
        .prepare("SELECT end_size, level, hash FROM merkle_nodes ORDER BY end_size, level")
        .map_err(sqlite_err)?;
    let mut entry_rows = entries.query([]).map_err(sqlite_err)?;
    let mut node_rows = nodes.query([]).map_err(sqlite_err)?;
    // A node read but beyond the last chunk's range: it opens the next one.
    let mut held: Option<(i64, i64, Owned)> = None;
    let int = |v: ValueRef<'_>| match v {
        ValueRef::Integer(i) => Some(i),
        _ => None,
    };
    loop {
        let mut chunk = Chunk::default();
        while chunk.entries.len() < CHUNK {
            let Some(row) = entry_rows.next().map_err(sqlite_err)? else {
                break;
            };
            let col = |i| row.get_ref(i).map(value).map_err(sqlite_err);
            let seq = int(row.get_ref(0).map_err(sqlite_err)?).unwrap_or(i64::MIN);
            let at = int(row.get_ref(1).map_err(sqlite_err)?);
            let fields = [
                col(2)?,
                col(3)?,
                col(4)?,
                col(5)?,
                col(6)?,
                col(7)?,
                col(8)?,
                col(9)?,
                col(10)?,
            ];
            chunk.push_entry(seq, at, fields);
        }
        let bound = chunk.entries.last().map(|e| e.seq.saturating_add(1));
        let beyond = |end: i64| bound.is_some_and(|b| end > b);
        let cap = match bound {
            Some(_) => Chunk::node_cap(chunk.entries.len()),
            None => 4,
        };
        if let Some((end, level, hash)) = held.take() {
            if beyond(end) {
                held = Some((end, level, hash));
            } else {
                chunk.push_node(end, level, hash.value());
            }
        }
        while held.is_none() {
            let Some(row) = node_rows.next().map_err(sqlite_err)? else {
                break;
            };
            let end = int(row.get_ref(0).map_err(sqlite_err)?).unwrap_or(i64::MAX);
            let level = int(row.get_ref(1).map_err(sqlite_err)?).unwrap_or(-1);
            let hash = value(row.get_ref(2).map_err(sqlite_err)?);
            if beyond(end) {
                held = Some((end, level, Owned::of(hash)));
            } else if chunk.nodes.len() < cap {
                chunk.push_node(end, level, hash);
            } else {
                chunk.excess_nodes_from.get_or_insert(end);
                if bound.is_none() {
                    break;
                }
            }
        }
        let done = chunk.entries.is_empty();
        if (!done || !chunk.nodes.is_empty()) && tx.blocking_send(Ok(chunk)).is_err() {
            return Ok(());
        }
        if done {
            return Ok(());
        }
    }
}

/// The PostgreSQL reader: in one snapshot of the log, each chunk is two
/// queries whose single result the server packs (see
/// `LogSnapshot::access_log_packed`), instead of a row per entry and per
/// node through the pool.
async fn scan_paged(
    store: &Store,
    tx: &mpsc::Sender<Result<Chunk, StoreError>>,
) -> Result<(), StoreError> {
    let mut snapshot = store.log_snapshot().await?;
    let mut from = i64::MIN;
    let mut after: (i64, i64) = (i64::MIN, i64::MIN);
    loop {
        let mut chunk = Chunk::default();
        let packed = snapshot.access_log_packed(from, CHUNK as i64).await?;
        unpack_entries(packed.as_deref().unwrap_or_default(), &mut chunk)?;
        let bound = chunk.entries.last().map(|e| e.seq.saturating_add(1));
        let cap = match bound {
            Some(_) => Chunk::node_cap(chunk.entries.len()),
            None => 4,
        };
        let packed = snapshot
            .merkle_nodes_packed(after, bound.unwrap_or(i64::MAX), cap as i64 + 1)
            .await?;
        unpack_nodes(packed.as_deref().unwrap_or_default(), cap, &mut chunk)?;
        // Whatever lies in this chunk's range has been read or counted as
        // excess: the next chunk starts after it.
        if let Some(b) = bound {
            after = (b, i64::MAX);
        }
        let done = chunk.entries.is_empty();
        if (!done || !chunk.nodes.is_empty()) && tx.send(Ok(chunk)).await.is_err() {
            return Ok(());
        }
        let Some(b) = bound else {
            return Ok(());
        };
        from = b;
    }
}

/// Reads the packed values of `access_log_packed` / `merkle_nodes_packed`.
struct Packed<'a>(&'a [u8]);

impl<'a> Packed<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.0.len() < n {
            return Err(StoreError::Corrupt(
                "the packed log read from the server is cut short".into(),
            ));
        }
        let (h, t) = self.0.split_at(n);
        self.0 = t;
        Ok(h)
    }
    fn i64(&mut self) -> Result<i64, StoreError> {
        let b = self.take(8)?;
        Ok(i64::from_be_bytes(b.try_into().unwrap_or_default()))
    }
    fn value(&mut self) -> Result<Value<'a>, StoreError> {
        let b = self.take(4)?;
        let n = i32::from_be_bytes(b.try_into().unwrap_or_default());
        Ok(match usize::try_from(n) {
            Ok(n) => Value::Bytes(self.take(n)?),
            Err(_) => Value::Null,
        })
    }
}

fn unpack_entries(packed: &[u8], chunk: &mut Chunk) -> Result<(), StoreError> {
    let mut p = Packed(packed);
    while !p.0.is_empty() {
        let seq = p.i64()?;
        let at = p.i64()?;
        let mut fields = [Value::Null; FIELDS];
        for f in &mut fields {
            *f = p.value()?;
        }
        chunk.push_entry(seq, Some(at), fields);
    }
    Ok(())
}

fn unpack_nodes(packed: &[u8], cap: usize, chunk: &mut Chunk) -> Result<(), StoreError> {
    let mut p = Packed(packed);
    while !p.0.is_empty() {
        let end = p.i64()?;
        let level = p.i64()?;
        let hash = p.value()?;
        if chunk.nodes.len() >= cap {
            chunk.excess_nodes_from = Some(end);
            break;
        }
        chunk.push_node(end, level, hash);
    }
    Ok(())
}
