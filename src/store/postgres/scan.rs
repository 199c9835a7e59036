//! The access log read in bulk for `sluis audit verify` (see
//! `store::scan`): the server packs each chunk of entries and of tree nodes
//! into one value (`string_agg`), so a chunk is two rows to fetch instead
//! of one per entry and per node.
//!
//! No transaction spans the scan (a long snapshot holds back vacuum on a
//! busy server): the log's size is fixed in one short snapshot at the
//! start, and each chunk is read below it by statements of their own, while
//! replicas keep appending above it.

use sqlx::{PgConnection, PgPool};
use tokio::sync::mpsc;

use crate::store::StoreError;
use crate::store::scan::{CHUNK, Chunk, FIELDS, Ranges, Value, Window};
use crate::store::tiles::{EdgeRow, TileRow};

/// Up to `limit` log entries in `[from, to)`, packed into one value by
/// the server. The upper bound is applied outside the limited scan: with
/// both bounds in one range, a planner without statistics (a log just
/// loaded) sorts the whole range for each chunk instead of walking the
/// index. Per entry: seq and at (i64), then request_id, caller, role,
/// method, case_id, subject, purpose, decision and record, each as an i32
/// length (-1 for NULL) and bytes; big-endian. `None` when there are none.
async fn entries<'e>(
    conn: impl sqlx::PgExecutor<'e>,
    from: i64,
    to: i64,
    limit: i64,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT string_agg(
             int8send(seq) || int8send(at)
             || int4send(octet_length(request_id)) || convert_to(request_id, 'UTF8')
             || int4send(octet_length(caller)) || convert_to(caller, 'UTF8')
             || int4send(octet_length(role)) || convert_to(role, 'UTF8')
             || int4send(octet_length(method)) || convert_to(method, 'UTF8')
             || COALESCE(int4send(octet_length(case_id)) || convert_to(case_id, 'UTF8'), '\\xffffffff'::bytea)
             || COALESCE(int4send(octet_length(subject)) || convert_to(subject, 'UTF8'), '\\xffffffff'::bytea)
             || COALESCE(int4send(octet_length(purpose)) || convert_to(purpose, 'UTF8'), '\\xffffffff'::bytea)
             || int4send(octet_length(decision)) || convert_to(decision, 'UTF8')
             || int4send(length(record)) || record,
             ''::bytea ORDER BY seq)
         FROM (SELECT * FROM access_log WHERE seq >= $1 ORDER BY seq LIMIT $3) t
         WHERE seq < $2",
    )
    .bind(from)
    .bind(to)
    .bind(limit)
    .fetch_one(conn)
    .await?)
}

/// The hash tiles and level-0 edge rows that hold nodes ending in
/// `(after, up_to]` (`store::tiles::scan_nodes` picks the nodes): a few
/// rows per chunk.
async fn tile_rows(
    conn: &mut PgConnection,
    (after, up_to): (i64, i64),
) -> Result<(Vec<TileRow>, Vec<EdgeRow>), StoreError> {
    use crate::store::sql;
    use crate::store::tiles;
    let mut found = Vec::new();
    for level in tiles::scan_levels(up_to) {
        let (lo, hi) = tiles::scan_tile_range(level, after, up_to);
        let rows: Vec<TileRow> = sqlx::query_as(sql::TILES_IN)
            .bind(i64::from(level))
            .bind(lo)
            .bind(hi)
            .fetch_all(&mut *conn)
            .await?;
        found.extend(rows);
    }
    let (lo, _) = tiles::scan_tile_range(0, after, up_to);
    let edge: Vec<EdgeRow> = sqlx::query_as(sql::EDGE_IN)
        .bind(lo * 256)
        .bind(up_to)
        .fetch_all(&mut *conn)
        .await?;
    Ok((found, edge))
}

/// Subject-index rows with positions in `[from, to)`, in `(seq, subject)`
/// order, at most `limit`, packed by the server: seq (i64), an i32 length
/// and the subject, per row.
async fn named<'e>(
    conn: impl sqlx::PgExecutor<'e>,
    (from, to): (i64, i64),
    limit: i64,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT string_agg(int8send(seq) || int4send(octet_length(subject)) || convert_to(subject, 'UTF8'),
                           ''::bytea ORDER BY seq, subject)
         FROM (SELECT seq, subject FROM access_log_subjects
               WHERE seq >= $1 AND seq < $2
               ORDER BY seq, subject LIMIT $3) t",
    )
    .bind(from)
    .bind(to)
    .bind(limit)
    .fetch_one(conn)
    .await?)
}

/// The tree nodes and subject-index rows in `r`'s ranges into `chunk`.
async fn with_entries(
    conn: &mut PgConnection,
    r: Ranges,
    chunk: &mut Chunk,
) -> Result<(), StoreError> {
    let (tiles, edge) = tile_rows(&mut *conn, r.nodes).await?;
    crate::store::tiles::scan_nodes(chunk, r.nodes, r.node_cap, &tiles, &edge);
    let packed = named(&mut *conn, r.named, r.named_cap as i64 + 1).await?;
    unpack_named(packed.as_deref().unwrap_or_default(), r.named_cap, chunk)
}

/// Reads the log into `tx` until the end or until the receiver is
/// dropped: the log as it was when the scan started, each chunk three
/// queries whose single result the server packs.
pub(super) async fn scan(
    pool: &PgPool,
    tx: &mpsc::Sender<Result<Chunk, StoreError>>,
) -> Result<(), StoreError> {
    // The size, and what is stored beyond it, in one snapshot.
    let mut snapshot = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *snapshot)
        .await?;
    let size: i64 = sqlx::query_scalar(crate::store::sql::LOG_SIZE)
        .fetch_one(&mut *snapshot)
        .await?;
    let mut tail = Chunk::default();
    with_entries(&mut snapshot, Window::tail(size), &mut tail).await?;
    snapshot.commit().await?;

    let mut conn = pool.acquire().await?;
    let mut window = Window::new(size);
    while let Some(from) = window.next_entry() {
        let mut chunk = Chunk::default();
        let packed = entries(&mut *conn, from, window.size(), CHUNK as i64).await?;
        unpack_entries(packed.as_deref().unwrap_or_default(), &mut chunk)?;
        let Some(ranges) = window.ranges_for(&chunk) else {
            break;
        };
        with_entries(&mut conn, ranges, &mut chunk).await?;
        if tx.send(Ok(chunk)).await.is_err() {
            return Ok(());
        }
    }
    if !tail.nodes.is_empty() || !tail.named.is_empty() {
        let _ = tx.send(Ok(tail)).await;
    }
    Ok(())
}

/// Reads the packed values of [`entries`], [`nodes`] and [`named`].
struct Packed<'a>(&'a [u8]);

impl<'a> Packed<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.0.len() < n {
            return Err(StoreError::BadAnswer(
                "the packed log read from the server is cut short",
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

fn unpack_named(packed: &[u8], cap: usize, chunk: &mut Chunk) -> Result<(), StoreError> {
    let mut p = Packed(packed);
    while !p.0.is_empty() {
        let seq = p.i64()?;
        let subject = p.value()?;
        if chunk.named.len() >= cap {
            chunk.excess_named_from = Some(seq);
            break;
        }
        chunk.push_named(seq, subject);
    }
    Ok(())
}
