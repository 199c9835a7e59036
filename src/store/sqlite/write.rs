//! The write transactions, as they run on the writer thread's connection.
//!
//! Each starts with `BEGIN IMMEDIATE`: the file's write lock is taken up
//! front, so a transaction that reads before it writes (the log size check)
//! cannot fail half-way with `SQLITE_BUSY` because another connection
//! committed in between (only tools outside the node write to the file, but
//! the busy timeout then waits for them instead of failing). A transaction
//! that fails is rolled back when rusqlite's `Transaction` drops; the
//! commit is an fsync (`synchronous = FULL`).
//!
//! Statements are single-row and cached on the connection: in-process
//! they cost microseconds, and a batch of log appends is a loop of them.

use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use crate::model::Category;
use crate::model::consent::{Consent, ConsentEvent, EventKind, Millis};
use crate::store::rows::{categories_column, purposes_column, recipient_columns};
use crate::store::{
    CaseChange, CaseUpdate, IssuedPseudonym, LogRow, NewCase, RequestKey, Rewrap, StoreError,
    StoredCheckpoint, StoredRelease, sql, tiles,
};
use crate::tlog::merkle::{Hash, NodeId};

/// A log append, owned so it can cross to the writer thread.
pub(super) struct Batch {
    pub first_seq: i64,
    pub rows: Vec<LogRow>,
    pub issued: Vec<IssuedPseudonym>,
    pub nodes: Vec<(NodeId, Hash)>,
    pub checkpoint: Option<StoredCheckpoint>,
    /// Roll back instead of committing (`LogSink::try_append`).
    pub dry_run: bool,
}

/// Stores an issued pseudonym unless it is known; a case that does not
/// exist (cases are never deleted, but the batch must not fail for one)
/// stores nothing.
const INSERT_ISSUED: &str = "INSERT INTO pseudonyms (recipient, pseudonym, case_id)
     SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM cases WHERE id = ?3)
     ON CONFLICT DO NOTHING";
const INSERT_ENTRY: &str =
    "INSERT INTO access_log (seq, request_id, at, caller, role, method, case_id, subject,
                             purpose, decision, record)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
const INSERT_SUBJECT: &str = "INSERT INTO access_log_subjects (seq, subject) VALUES (?1, ?2)";

pub(super) fn begin(conn: &mut Connection) -> Result<Transaction<'_>, StoreError> {
    Ok(conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

/// See `LogSink::append`.
pub(super) fn append(conn: &mut Connection, b: &Batch) -> Result<(), StoreError> {
    let tx = begin(conn)?;
    if !b.rows.is_empty() {
        let size: i64 = tx
            .prepare_cached(sql::LOG_SIZE)?
            .query_row([], |r| r.get(0))?;
        if size != b.first_seq {
            return Err(StoreError::Raced { size });
        }
    }
    let mut insert = tx.prepare_cached(INSERT_ENTRY)?;
    let mut subject = tx.prepare_cached(INSERT_SUBJECT)?;
    for (i, r) in b.rows.iter().enumerate() {
        let seq = b.first_seq + i as i64;
        for s in &r.subjects {
            subject.execute(params![seq, s])?;
        }
        if r.emergency {
            tx.prepare_cached(sql::INSERT_EMERGENCY_ACCESS)?
                .execute(params![seq, r.request_id])?;
        }
        if let Some(access) = &r.closes {
            tx.prepare_cached(sql::INSERT_EMERGENCY_REVIEW)?
                .execute(params![seq, access])?;
        }
        insert.execute(params![
            seq,
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
    let mut issue = tx.prepare_cached(INSERT_ISSUED)?;
    for i in &b.issued {
        issue.execute(params![i.recipient, i.pseudonym, i.case_id])?;
    }
    drop((insert, subject, issue));
    put_tiles(&tx, &b.nodes)?;
    if let Some(cp) = &b.checkpoint {
        tx.prepare_cached(sql::INSERT_CHECKPOINT)?
            .execute(params![cp.size, cp.root, cp.at, cp.note])?;
    }
    if b.dry_run {
        tx.rollback()?;
    } else {
        tx.commit()?;
    }
    Ok(())
}

/// Stores the tree nodes an append completed as hash tiles
/// (`store::tiles::plan`): an edge row with its own leaf hashes, a level-0
/// tile once full (its edge rows removed), higher tiles grown.
fn put_tiles(tx: &Transaction<'_>, nodes: &[(NodeId, Hash)]) -> Result<(), StoreError> {
    let w = tiles::plan(nodes)?;
    if !w.edge.is_empty() {
        let mut q = tx.prepare_cached(sql::INSERT_EDGE)?;
        for (start, hashes) in &w.edge {
            q.execute(params![start, hashes])?;
        }
    }
    for (tile, from, hashes) in &w.fills {
        let edge = super::edge_of_tile(tx, *tile)?;
        let full = tiles::assemble(*tile, &edge, *from, hashes)?;
        tx.prepare_cached(sql::PUT_TILE)?
            .execute(params![0i64, tile, full])?;
        tx.prepare_cached(sql::DELETE_EDGE_OF_TILE)?
            .execute([tile])?;
    }
    for (tile, at, hashes) in &w.upper {
        let stored = super::stored_tile(tx, *tile)?;
        let grown = tiles::extend(*tile, stored, *at, hashes)?;
        tx.prepare_cached(sql::PUT_TILE)?.execute(params![
            i64::from(tile.level),
            tile.index as i64,
            grown
        ])?;
    }
    Ok(())
}

pub(super) fn insert_case(conn: &mut Connection, case: &NewCase) -> Result<(), StoreError> {
    let tx = begin(conn)?;
    tx.prepare_cached(sql::INSERT_CASE)?.execute(params![
        case.id,
        case.owner,
        case.subject_ref,
        case.now,
        case.subject_id,
        case.case_key.0,
        case.case_key.1
    ])?;
    put_case_data(&tx, sql::INSERT_CASE_DATA, &case.id, &case.sealed)?;
    put_subject_index(&tx, &case.id, &case.subject_index)?;
    tx.prepare_cached(sql::INSERT_OWNER_PSEUDONYM)?
        .execute(params![case.owner, case.owner_pseudonym, case.id])?;
    if let Some(key) = &case.key {
        put_request_key(&tx, key, key.seq)?;
    }
    tx.commit()?;
    Ok(())
}

/// The write's idempotency key, in its transaction; `seq` as it turned out.
fn put_request_key(tx: &Transaction<'_>, k: &RequestKey, seq: i64) -> Result<(), StoreError> {
    tx.prepare_cached(sql::INSERT_REQUEST_KEY)?
        .execute(params![
            k.caller,
            k.request_id,
            k.method,
            k.digest,
            k.resource_id,
            seq,
            k.record_id,
            k.at
        ])?;
    Ok(())
}

/// See `Store::insert_statistics_releases`.
pub(super) fn insert_statistics_releases(
    conn: &mut Connection,
    releases: &[StoredRelease],
) -> Result<(), StoreError> {
    let tx = begin(conn)?;
    {
        let mut insert = tx.prepare_cached(sql::INSERT_RELEASE)?;
        for r in releases {
            insert.execute(params![
                r.key.table,
                r.key.quarter,
                r.key.breakdown,
                r.key.scope,
                r.computed_at,
                r.body,
                r.sha256
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// See `Store::forget_request_keys`.
pub(super) fn forget_request_keys(
    conn: &mut Connection,
    key: Option<(String, String)>,
    before: Millis,
) -> Result<(), StoreError> {
    let tx = begin(conn)?;
    match key {
        Some((caller, request_id)) => {
            tx.prepare_cached(sql::DELETE_REQUEST_KEY)?
                .execute(params![caller, request_id])?;
        }
        None => {
            tx.prepare_cached(sql::PURGE_REQUEST_KEYS)?
                .execute(params![before])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// See `Store::update_case`.
pub(super) fn update_case(
    conn: &mut Connection,
    u: &CaseUpdate,
) -> Result<Option<i64>, StoreError> {
    let tx = begin(conn)?;
    let version = tx
        .prepare_cached(sql::BUMP_CASE)?
        .query_map(params![u.now, u.case_id], |r| r.get::<_, i64>(0))?
        .next()
        .transpose()?;
    let Some(version) = version else {
        return Ok(None);
    };
    put_case_data(&tx, sql::UPSERT_CASE_DATA, &u.case_id, &u.sealed)?;
    delete_case_data(&tx, &u.case_id, &u.cleared)?;
    put_subject_index(&tx, &u.case_id, &u.subject_index)?;
    if u.subject_id.is_some() || u.cleared.contains(&Category::Identity) {
        tx.prepare_cached(sql::SET_SUBJECT_ID)?
            .execute(params![u.subject_id, u.case_id])?;
    }
    if let Some(key) = &u.key {
        put_request_key(&tx, key, version)?;
    }
    tx.commit()?;
    Ok(Some(version))
}

fn delete_case_data(
    tx: &Transaction<'_>,
    case_id: &str,
    categories: &[Category],
) -> Result<(), StoreError> {
    let mut q = tx.prepare_cached(sql::DELETE_CASE_DATA)?;
    for cat in categories {
        q.execute(params![case_id, i64::from(cat.code())])?;
    }
    Ok(())
}

/// See `Store::change_case`.
pub(super) fn change_case(
    conn: &mut Connection,
    c: &CaseChange,
) -> Result<Option<i64>, StoreError> {
    let tx = begin(conn)?;
    let version = tx
        .prepare_cached(sql::GUARD_CASE)?
        .query_map(params![i64::from(c.bump), c.case_id, c.version], |r| {
            r.get::<_, i64>(0)
        })?
        .next()
        .transpose()?;
    let Some(version) = version else {
        return Ok(None);
    };
    put_case_data(&tx, sql::UPSERT_CASE_DATA, &c.case_id, &c.put)?;
    delete_case_data(&tx, &c.case_id, &c.delete)?;
    if let Some(subject_id) = &c.subject_id {
        tx.prepare_cached(sql::SET_SUBJECT_ID)?
            .execute(params![subject_id, c.case_id])?;
    }
    if let Some((wrapped, v)) = &c.case_key {
        tx.prepare_cached(sql::SET_CASE_KEY)?
            .execute(params![wrapped, v, c.case_id])?;
    }
    if let Some(at) = c.erase_at {
        tx.prepare_cached(sql::DELETE_ALL_CASE_DATA)?
            .execute(params![c.case_id])?;
        tx.prepare_cached(sql::ERASE_CASE)?
            .execute(params![at, c.case_id])?;
    }
    tx.commit()?;
    Ok(Some(version))
}

/// See `Store::rewrap_case_keys`.
pub(super) fn rewrap_case_keys(conn: &mut Connection, batch: &[Rewrap]) -> Result<u64, StoreError> {
    let tx = begin(conn)?;
    let mut n = 0;
    {
        let mut q = tx.prepare_cached(sql::REWRAP_CASE_KEY)?;
        for (id, wrapped, version, was) in batch {
            n += q.execute(params![wrapped, version, id, was])? as u64;
        }
    }
    tx.commit()?;
    Ok(n)
}

pub(super) fn put_case_data(
    tx: &Transaction<'_>,
    statement: &str,
    case_id: &str,
    sealed: &[(Category, Vec<u8>)],
) -> Result<(), StoreError> {
    let mut q = tx.prepare_cached(statement)?;
    for (cat, blob) in sealed {
        q.execute(params![case_id, i64::from(cat.code()), blob])?;
    }
    Ok(())
}

/// Keyed hashes of a subject's identifiers, in the transaction that
/// registers or updates the case: the index never misses a case that a
/// crash between two transactions would have left out.
pub(super) fn put_subject_index(
    tx: &Transaction<'_>,
    case_id: &str,
    entries: &[(String, String)],
) -> Result<(), StoreError> {
    let mut q = tx.prepare_cached(sql::INSERT_SUBJECT_INDEX)?;
    for (kind, digest) in entries {
        q.execute(params![kind, digest, case_id])?;
    }
    Ok(())
}

pub(super) fn insert_consent(
    conn: &mut Connection,
    c: &Consent,
    key: Option<&RequestKey>,
) -> Result<(), StoreError> {
    let tx = begin(conn)?;
    put_consent(&tx, c)?;
    if let Some(key) = key {
        put_request_key(&tx, key, key.seq)?;
    }
    tx.commit()?;
    Ok(())
}

/// A consent with its recipients and events, in the caller's transaction.
pub(super) fn put_consent(tx: &Transaction<'_>, c: &Consent) -> Result<(), StoreError> {
    tx.prepare_cached(sql::INSERT_CONSENT)?.execute(params![
        c.id,
        c.case_id,
        c.recorded_by,
        categories_column(c),
        purposes_column(c),
        c.valid_from,
        c.valid_until,
        c.evidence_ref,
        c.created_at
    ])?;
    let mut q = tx.prepare_cached(sql::INSERT_RECIPIENT)?;
    for r in &c.recipients {
        let (kind, value) = recipient_columns(r);
        q.execute(params![c.id, kind, value])?;
    }
    drop(q);
    for e in &c.events {
        insert_event(tx, &c.id, e)?;
    }
    Ok(())
}

pub(super) fn append_consent_event(
    conn: &mut Connection,
    consent_id: &str,
    event: &ConsentEvent,
    key: Option<&RequestKey>,
) -> Result<bool, StoreError> {
    let tx = begin(conn)?;
    // A withdrawal only if there is none yet (`sql::INSERT_WITHDRAWAL`).
    let stmt = match event.kind {
        EventKind::Withdrawn => sql::INSERT_WITHDRAWAL,
        _ => sql::INSERT_EVENT,
    };
    if insert_event_with(&tx, stmt, consent_id, event)? == 0 {
        return Ok(false);
    }
    if let Some(key) = key {
        put_request_key(&tx, key, key.seq)?;
    }
    tx.commit()?;
    Ok(true)
}

fn insert_event(
    tx: &Transaction<'_>,
    consent_id: &str,
    e: &ConsentEvent,
) -> Result<(), StoreError> {
    insert_event_with(tx, sql::INSERT_EVENT, consent_id, e).map(|_| ())
}

/// `stmt` ([`sql::INSERT_EVENT`] or [`sql::INSERT_WITHDRAWAL`]) for the
/// event; the rows it inserted.
fn insert_event_with(
    tx: &Transaction<'_>,
    stmt: &str,
    consent_id: &str,
    e: &ConsentEvent,
) -> Result<usize, StoreError> {
    Ok(tx.prepare_cached(stmt)?.execute(params![
        consent_id,
        e.kind.as_str(),
        e.at,
        e.by,
        e.note
    ])?)
}

/// See `LogSink::follow_index`: one batch of the index behind the log, in
/// a transaction of its own on the writer's connection, between appends.
pub(super) fn follow_index(conn: &mut Connection, most: i64) -> Result<(i64, i64), StoreError> {
    let tx = begin(conn)?;
    let (upto, size): (i64, i64) = tx
        .prepare_cached(sql::INDEX_PROGRESS)?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let to = size.min(upto.saturating_add(most.max(1)));
    if to <= upto {
        return Ok((upto, size));
    }
    tx.prepare_cached(sql::INDEX_BATCH)?
        .execute(params![upto, to])?;
    tx.prepare_cached(sql::SET_INDEX_UPTO)?.execute([to])?;
    tx.commit()?;
    Ok((to, size))
}
