//! The access log read in bulk for `sluis audit verify` (see
//! `store::scan`): one plain read-only connection in a blocking thread,
//! rows packed into chunks as they come, no value copied twice.

use std::path::Path;

use rusqlite::types::ValueRef;
use tokio::sync::mpsc;

use crate::store::StoreError;
use crate::store::scan::{CHUNK, Chunk, Value};

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

fn value(v: ValueRef<'_>) -> Value<'_> {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Text(b) | ValueRef::Blob(b) => Value::Bytes(b),
        ValueRef::Integer(_) | ValueRef::Real(_) => Value::Other,
    }
}

/// Reads the log of `file` into `tx` until the end or until the receiver
/// is dropped, in one read transaction, so the whole scan sees one state
/// of the log even while the node keeps appending.
pub(super) fn scan(
    file: &Path,
    tx: &mpsc::Sender<Result<Chunk, StoreError>>,
) -> Result<(), StoreError> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch("BEGIN")?;
    let mut entries = conn.prepare(
        "SELECT seq, at, request_id, caller, role, method, case_id, subject, purpose,
                    decision, record
             FROM access_log ORDER BY seq",
    )?;
    let mut nodes =
        conn.prepare("SELECT end_size, level, hash FROM merkle_nodes ORDER BY end_size, level")?;
    let mut entry_rows = entries.query([])?;
    let mut node_rows = nodes.query([])?;
    // A node read but beyond the last chunk's range: it opens the next one.
    let mut held: Option<(i64, i64, Owned)> = None;
    let int = |v: ValueRef<'_>| match v {
        ValueRef::Integer(i) => Some(i),
        _ => None,
    };
    loop {
        let mut chunk = Chunk::default();
        while chunk.entries.len() < CHUNK {
            let Some(row) = entry_rows.next()? else {
                break;
            };
            let col = |i| row.get_ref(i).map(value);
            let seq = int(row.get_ref(0)?).unwrap_or(i64::MIN);
            let at = int(row.get_ref(1)?);
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
            let Some(row) = node_rows.next()? else {
                break;
            };
            let end = int(row.get_ref(0)?).unwrap_or(i64::MAX);
            let level = int(row.get_ref(1)?).unwrap_or(-1);
            let hash = value(row.get_ref(2)?);
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
