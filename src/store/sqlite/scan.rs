//! The access log read in bulk for `sluis audit verify` (see
//! `store::scan`): one plain read-only connection in a blocking thread,
//! rows packed into chunks as they come, no value copied twice.
//!
//! No read transaction outlives a chunk's statement: a snapshot held for
//! the whole scan would keep the node from checkpointing its WAL, which
//! then grows by everything written meanwhile. The log's size is fixed in
//! one short transaction at the start; each chunk is then read below it
//! with statements of its own. The log and its tree are append-only, so
//! what lies below that size is what it was at the start.

use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, params};
use tokio::sync::mpsc;

use crate::store::StoreError;
use crate::store::scan::{CHUNK, Chunk, Ranges, Value, Window};
use crate::store::tiles::{EdgeRow, TileRow};

fn value(v: ValueRef<'_>) -> Value<'_> {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Text(b) | ValueRef::Blob(b) => Value::Bytes(b),
        ValueRef::Integer(_) | ValueRef::Real(_) => Value::Other,
    }
}

fn int(v: ValueRef<'_>) -> Option<i64> {
    match v {
        ValueRef::Integer(i) => Some(i),
        _ => None,
    }
}

const ENTRIES: &str = "SELECT seq, at, request_id, caller, role, method, case_id, subject, purpose,
            decision, record
     FROM access_log WHERE seq >= ?1 AND seq < ?2 ORDER BY seq LIMIT ?3";
const NAMED: &str = "SELECT seq, subject FROM access_log_subjects
     WHERE seq >= ?1 AND seq < ?2 ORDER BY seq, subject LIMIT ?3";

/// Reads the log of `file` into `tx` until the end or until the receiver
/// is dropped: the log as it was when the scan started, even while the
/// node keeps appending.
pub(super) fn scan(
    file: &Path,
    tx: &mpsc::Sender<Result<Chunk, StoreError>>,
) -> Result<(), StoreError> {
    use rusqlite::OpenFlags;
    let conn = Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // The size, and what is stored beyond it, in one snapshot.
    conn.execute_batch("BEGIN")?;
    let size: i64 = conn.query_row(crate::store::sql::LOG_SIZE, [], |r| r.get(0))?;
    let mut tail = Chunk::default();
    with_entries(&conn, Window::tail(size), &mut tail)?;
    conn.execute_batch("COMMIT")?;

    let mut window = Window::new(size);
    while let Some(from) = window.next_entry() {
        let mut chunk = Chunk::default();
        let mut q = conn.prepare_cached(ENTRIES)?;
        let mut rows = q.query(params![from, size, CHUNK as i64])?;
        while let Some(row) = rows.next()? {
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
        drop(rows);
        let Some(ranges) = window.ranges_for(&chunk) else {
            break;
        };
        with_entries(&conn, ranges, &mut chunk)?;
        if tx.blocking_send(Ok(chunk)).is_err() {
            return Ok(());
        }
    }
    if !tail.nodes.is_empty() || !tail.named.is_empty() {
        let _ = tx.blocking_send(Ok(tail));
    }
    Ok(())
}

/// The tree nodes and subject-index rows in `r`'s ranges, in order, at most
/// its caps (the first row beyond is noted as excess).
fn with_entries(conn: &Connection, r: Ranges, chunk: &mut Chunk) -> Result<(), StoreError> {
    let (tiles, edge) = tile_rows(conn, r.nodes)?;
    crate::store::tiles::scan_nodes(chunk, r.nodes, r.node_cap, &tiles, &edge);
    let mut q = conn.prepare_cached(NAMED)?;
    let mut rows = q.query(params![r.named.0, r.named.1, r.named_cap as i64 + 1])?;
    while let Some(row) = rows.next()? {
        let seq = int(row.get_ref(0)?).unwrap_or(i64::MAX);
        if chunk.named.len() == r.named_cap {
            chunk.excess_named_from = Some(seq);
            break;
        }
        chunk.push_named(seq, value(row.get_ref(1)?));
    }
    Ok(())
}

/// The hash tiles and level-0 edge rows that hold nodes ending in
/// `(after, up_to]` (`store::tiles::scan_nodes` picks the nodes).
fn tile_rows(
    conn: &Connection,
    (after, up_to): (i64, i64),
) -> Result<(Vec<TileRow>, Vec<EdgeRow>), StoreError> {
    use crate::store::sql;
    use crate::store::tiles;
    let mut found = Vec::new();
    let mut q = conn.prepare_cached(sql::TILES_IN)?;
    for level in tiles::scan_levels(up_to) {
        let (lo, hi) = tiles::scan_tile_range(level, after, up_to);
        let rows = q.query_map(params![i64::from(level), lo, hi], |r| {
            Ok((r.get(0)?, r.get(1)?, blob(r.get_ref(2)?)))
        })?;
        for row in rows {
            found.push(row?);
        }
    }
    let (lo, _) = tiles::scan_tile_range(0, after, up_to);
    let edge = conn
        .prepare_cached(sql::EDGE_IN)?
        .query_map(params![lo * 256, up_to], |r| {
            Ok((r.get(0)?, blob(r.get_ref(1)?)))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok((found, edge))
}

/// A tile's bytes as stored; anything but a blob or text (someone edited
/// the database) as no bytes, which the verifier finds missing.
fn blob(v: ValueRef<'_>) -> Vec<u8> {
    value(v).bytes().map(<[u8]>::to_vec).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::scan::AHEAD;

    /// While the verifier waits for its reader to take the next chunk, it
    /// holds no snapshot: a truncating checkpoint, which needs every reader
    /// off the WAL, succeeds without waiting.
    #[test]
    fn no_snapshot_is_held_between_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("log.db");
        let mut conn = Connection::open(&file).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;")
            .unwrap();
        crate::store::sqlite::migrate::migrate(&mut conn).unwrap();
        let entries = (AHEAD + 3) * CHUNK;
        let t = conn.transaction().unwrap();
        {
            let mut q = t
                .prepare(
                    "INSERT INTO access_log (seq, request_id, at, caller, role, method, decision, record)
                     VALUES (?1, 'r', 0, 'c', 'r', 'GetCase', 'allowed', x'01')",
                )
                .unwrap();
            for seq in 0..entries as i64 {
                q.execute([seq]).unwrap();
            }
        }
        t.commit().unwrap();

        let (tx, mut rx) = mpsc::channel(AHEAD);
        let scanner = std::thread::spawn(move || scan(&file, &tx));
        let first = rx.blocking_recv().unwrap().unwrap();
        assert_eq!(first.entries.len(), CHUNK);
        // The scanner fills the channel and then waits on it, its next
        // chunk in hand. Until it gets there (on a loaded machine, a while)
        // it may be reading, with a snapshot; once there it holds none, so
        // a truncating checkpoint succeeds. A scanner that held one while
        // waiting would keep every attempt busy.
        conn.busy_timeout(std::time::Duration::ZERO).unwrap();
        let mut busy = 1;
        for _ in 0..200 {
            std::thread::sleep(std::time::Duration::from_millis(50));
            (busy, _, _) = conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    Ok::<(i64, i64, i64), _>((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .unwrap();
            if busy == 0 {
                break;
            }
        }
        assert_eq!(busy, 0, "the waiting scan holds a snapshot");
        let mut seen = first.entries.len();
        while let Some(chunk) = rx.blocking_recv() {
            seen += chunk.unwrap().entries.len();
        }
        scanner.join().unwrap().unwrap();
        assert_eq!(seen, entries, "and it still reads the whole log");
    }
}
