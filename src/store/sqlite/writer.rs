//! Access-log appends on SQLite: one plain connection on a thread of its
//! own, one hop there and back per batch.
//!
//! Through sqlx each statement of an append (BEGIN, the size check, the
//! inserts, COMMIT) is a message to the connection's worker thread and a
//! wake-up back: five round trips per batch, each a pair of context
//! switches. Under a light load every request is its own batch, so that
//! overhead was most of the CPU a request cost. Here the whole transaction
//! runs on the thread with cached prepared statements, and the caller waits
//! once. PostgreSQL appends stay on the pool (its round trips are network
//! round trips anyway, and replicas need the advisory lock there).
//!
//! The transaction is the same as on the pool: `BEGIN IMMEDIATE`, refuse
//! with [`StoreError::Raced`] unless the log ends at `first_seq`, insert
//! entries, the pseudonyms their requests issued, tree nodes and the
//! checkpoint, commit (fsync: the connection runs with
//! `synchronous = FULL`).

use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;

use tokio::sync::oneshot;

use crate::store::{INSERT_ISSUED, IssuedPseudonym, LogRow, StoreError, StoredCheckpoint};
use crate::tlog::merkle::{Hash, NodeId};

enum Msg {
    Append(Batch),
    /// Close the connection (SQLite then folds the WAL into the file) and
    /// say so; the next batch opens it again.
    Close(oneshot::Sender<()>),
}

struct Batch {
    first_seq: i64,
    rows: Vec<LogRow>,
    issued: Vec<IssuedPseudonym>,
    nodes: Vec<(NodeId, Hash)>,
    checkpoint: Option<StoredCheckpoint>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// Handle to the appending thread; the thread ends when the last handle
/// is dropped.
pub struct SqliteAppender {
    tx: std_mpsc::Sender<Msg>,
}

impl SqliteAppender {
    pub fn start(file: PathBuf) -> SqliteAppender {
        let (tx, rx) = std_mpsc::channel::<Msg>();
        std::thread::Builder::new()
            .name("sluis-log-append".into())
            .spawn(move || run(file, rx))
            .expect("spawn the log append thread");
        SqliteAppender { tx }
    }

    pub async fn append(
        &self,
        first_seq: i64,
        rows: &[LogRow],
        issued: &[IssuedPseudonym],
        nodes: &[(NodeId, Hash)],
        checkpoint: Option<&StoredCheckpoint>,
    ) -> Result<(), StoreError> {
        let (done, result) = oneshot::channel();
        let batch = Batch {
            first_seq,
            rows: rows.to_vec(),
            issued: issued.to_vec(),
            nodes: nodes.to_vec(),
            checkpoint: checkpoint.cloned(),
            done,
        };
        let gone = || StoreError::Corrupt("the log append thread has stopped".into());
        self.tx.send(Msg::Append(batch)).map_err(|_| gone())?;
        result.await.map_err(|_| gone())?
    }

    /// Closes the thread's connection and waits until it is closed.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.tx.send(Msg::Close(done)).is_ok() {
            let _ = closed.await;
        }
    }
}

fn run(file: PathBuf, rx: std_mpsc::Receiver<Msg>) {
    // Opened on first use, and again after a failure: a connection that
    // failed mid-transaction is not trusted with the next batch.
    let mut conn: Option<rusqlite::Connection> = None;
    while let Ok(msg) = rx.recv() {
        let batch = match msg {
            Msg::Append(b) => b,
            Msg::Close(done) => {
                drop(conn.take());
                let _ = done.send(());
                continue;
            }
        };
        let result = match conn.take() {
            Some(c) => Ok(c),
            None => open(&file),
        }
        .and_then(|c| match append(&c, &batch) {
            Ok(()) => {
                conn = Some(c);
                Ok(())
            }
            Err(e) => {
                // Leave nothing half-done on the connection, then drop it.
                let _ = c.execute_batch("ROLLBACK");
                Err(e)
            }
        });
        let _ = batch.done.send(result);
    }
}

fn open(file: &std::path::Path) -> Result<rusqlite::Connection, StoreError> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // As the pool's connections (store::Store::open).
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; \
         PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 8000;",
    )?;
    Ok(conn)
}

fn append(conn: &rusqlite::Connection, b: &Batch) -> Result<(), StoreError> {
    use rusqlite::params;
    // The write lock up front: a deferred transaction that reads the log
    // size and then writes fails at once with SQLITE_BUSY (no busy wait)
    // when another connection committed in between, e.g. a case registered
    // during the batch.
    conn.execute_batch("BEGIN IMMEDIATE")?;
    if !b.rows.is_empty() {
        let size: i64 = conn
            .prepare_cached("SELECT COALESCE(MAX(seq) + 1, 0) FROM access_log")?
            .query_row([], |r| r.get(0))?;
        if size != b.first_seq {
            // `run` rolls back, as after any failure.
            return Err(StoreError::Raced { size });
        }
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO access_log (seq, request_id, at, caller, role, method, case_id, subject,
                                 purpose, decision, record)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?;
    for (i, r) in b.rows.iter().enumerate() {
        insert.execute(params![
            b.first_seq + i as i64,
            r.request_id,
            r.at,
            r.caller,
            r.role,
            r.method,
            r.case_id,
            r.subject,
            r.purpose,
            r.decision,
            r.record,
        ])?;
    }
    let mut issue = conn.prepare_cached(INSERT_ISSUED)?;
    for i in &b.issued {
        issue.execute(params![i.recipient, i.pseudonym, i.case_id])?;
    }
    let mut node =
        conn.prepare_cached("INSERT INTO merkle_nodes (end_size, level, hash) VALUES (?, ?, ?)")?;
    for (id, hash) in &b.nodes {
        node.execute(params![
            id.end() as i64,
            i64::from(id.level),
            hash.as_slice()
        ])?;
    }
    if let Some(cp) = &b.checkpoint {
        conn.prepare_cached(
            "INSERT INTO checkpoints (size, root, at, note) VALUES (?, ?, ?, ?)
             ON CONFLICT (size) DO NOTHING",
        )?
        .execute(params![cp.size, cp.root, cp.at, cp.note])?;
    }
    conn.execute_batch("COMMIT")?;
    Ok(())
}
