//! SQLite, through rusqlite: the embedded default, one node per file.
//!
//! Every statement runs on a thread that owns a plain connection
//! (`worker`): all writes on one writer thread, in arrival order (log
//! appends and case and consent changes alike, so writers never poll for
//! SQLite's file lock); reads on two reader threads with read-only
//! connections that map the file (`mmap_size`, so the pages a read must
//! fetch again after each log commit are not copied through `pread`);
//! background WAL checkpoints on a thread of their own, so they never
//! queue behind a write. A caller waits once per call, however many
//! statements it runs. The verifier's bulk read has its own connection
//! (`scan`); cases and consents can be kept in memory (`cache`).
//!
//! Connections run in WAL mode with `synchronous = FULL`: a commit is on
//! disk when it returns, and readers never block the writer.

pub(super) mod backup;
mod cache;
pub(crate) use cache::CacheBounds;
mod claim;
mod migrate;
mod referral;
mod scan;
mod witness;
mod worker;
mod write;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{Connection, OpenFlags, Params, params};
use tokio::sync::mpsc;

use crate::model::Category;
use crate::model::consent::{Consent, ConsentEvent, Millis};
use crate::store::rows::{self, CaseFold, Columns, ConsentFold, StatisticsFold};
use crate::store::scan::{AHEAD, Chunk};
use crate::store::{
    Append, CaseChange, CaseMeta, CaseUpdate, CaseWithData, DbError, IndexProblems, LogFilter,
    LogRow, NewCase, PoolSettings, ReleaseKey, RequestKey, Rewrap, SealedCase, StoreError,
    StoredCheckpoint, StoredRelease, Visible, sql, tiles,
};
use crate::tlog::layout::TileId;
use crate::tlog::merkle::{Hash, NodeId};

use cache::ReadCache;
use worker::{Open, Workers};
use write::Batch;

/// Reader threads: enough to keep both cores busy while one waits on a
/// page.
const READERS: usize = 2;

/// How large the WAL may grow (`[database]` `wal_limit_mb`, `wal_warn_mb`).
#[derive(Clone, Copy, Debug)]
struct WalBounds {
    /// Bytes the WAL is cut back to once a checkpoint has copied it all.
    limit: u64,
    /// Above this many bytes the node warns: something keeps the WAL from
    /// being checkpointed.
    warn: u64,
}

#[derive(Clone)]
pub(super) struct SqliteStore {
    file: Arc<PathBuf>,
    wal_bounds: WalBounds,
    writer: Arc<Workers>,
    readers: Arc<Workers>,
    wal: Arc<Workers>,
    /// Cases and consents in memory, when this process is the file's only
    /// writer (see `cache`).
    cache: Option<Arc<ReadCache>>,
    /// Held while a node serves the file (see `claim`).
    claim: Arc<std::sync::Mutex<Option<claim::Claim>>>,
}

/// `sqlite://FILE?mode=rwc`: `%`, `?` and `#` in the path are
/// percent-encoded, so any file name survives the trip.
pub(super) fn url_of(path: &Path) -> String {
    let mut out = String::from("sqlite://");
    for c in path.display().to_string().chars() {
        match c {
            '%' | '?' | '#' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push_str("?mode=rwc");
    out
}

/// What a `sqlite:` URL names: the file, and whether to create it.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    file: PathBuf,
    create: bool,
}

fn parse_url(url: &str) -> Result<Target, StoreError> {
    let bad = |problem: &str| StoreError::BadUrl {
        url: crate::store::redact_url(url),
        problem: problem.into(),
    };
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| bad("not a sqlite: URL"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" {
        return Err(bad(
            "name a database file (sqlite://FILE); an in-memory database cannot hold a node's data",
        ));
    }
    let mut create = false;
    for param in query.split('&').filter(|p| !p.is_empty()) {
        match param {
            "mode=rwc" => create = true,
            "mode=rw" => create = false,
            _ => {
                return Err(bad(&format!(
                    "unknown parameter '{param}' (sqlite:// takes mode=rw or mode=rwc)"
                )));
            }
        }
    }
    let file = percent_decode(path).ok_or_else(|| bad("the file name is not valid UTF-8"))?;
    Ok(Target {
        file: PathBuf::from(file),
        create,
    })
}

/// `%XX` → the byte; `None` if the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The pragmas of a connection that writes. `wal_autocheckpoint` is high
/// because the node checkpoints in the background (`checkpoint_wal`).
/// `secure_delete` overwrites deleted content with zeros: an erased case's
/// wrapped key, sealed subject id and data rows (`store::CaseChange`) must
/// not stay readable in the file's free space, where a copy of the file
/// would keep them (GDPR art. 17; <https://sqlite.org/pragma.html#pragma_secure_delete>).
/// It is a per-connection setting, so every writing connection sets it.
const WRITER_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; \
     PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 8000; \
     PRAGMA secure_delete = ON;";

/// A writing connection whose WAL is cut back to `wal_limit` bytes once a
/// checkpoint has copied it all (`journal_size_limit`: SQLite truncates the
/// file when it next starts the WAL over, instead of keeping it at the
/// largest size it ever reached).
fn writer(wal_limit: u64) -> Open {
    Arc::new(move |file| {
        open_with(
            file,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            &format!("{WRITER_PRAGMAS} PRAGMA journal_size_limit = {wal_limit};"),
        )
    })
}

/// The background checkpointer's connection: as a writer's, but it waits
/// at most [`CHECKPOINT_WAIT_MS`] for a lock. A PASSIVE checkpoint never
/// waits; a truncating one waits that long for the writer's transaction to
/// end (under steady writes it would otherwise never find the file free)
/// and, holding the write lock, for the node's own short reads. One that
/// would wait longer is tried again on a later tick, so it holds up the
/// node's writes for no more than that.
fn checkpointer(wal_limit: u64) -> Open {
    Arc::new(move |file| {
        open_with(
            file,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            &format!(
                "{WRITER_PRAGMAS} PRAGMA journal_size_limit = {wal_limit}; \
                 PRAGMA busy_timeout = {CHECKPOINT_WAIT_MS};"
            ),
        )
    })
}

/// The longest a truncating checkpoint waits for a lock, in milliseconds.
const CHECKPOINT_WAIT_MS: u64 = 50;

fn reader() -> Open {
    Arc::new(|file| {
        open_with(
            file,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            "PRAGMA busy_timeout = 5000; PRAGMA mmap_size = 268435456;",
        )
    })
}

fn open_with(file: &Path, flags: OpenFlags, pragmas: &str) -> Result<Connection, StoreError> {
    let opened =
        Connection::open_with_flags(file, flags).and_then(|c| c.execute_batch(pragmas).map(|()| c));
    opened.map_err(|e| StoreError::Open {
        target: file.display().to_string(),
        source: DbError::from(e),
    })
}

impl SqliteStore {
    /// Opens the file a `sqlite:` URL names; `settings` bound its WAL.
    pub(super) async fn open(
        url: &str,
        settings: &PoolSettings,
        migrate: bool,
    ) -> Result<SqliteStore, StoreError> {
        let wal = WalBounds {
            limit: settings.wal_limit_bytes,
            warn: settings.wal_warn_bytes,
        };
        let target = parse_url(url)?;
        let file = target.file.clone();
        // Create the file (only here: a connection reopened later must not
        // make an empty database where a deleted one was), switch it to
        // WAL, and bring its schema up to date, before any thread opens it.
        tokio::task::spawn_blocking(move || {
            let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            if target.create {
                flags |= OpenFlags::SQLITE_OPEN_CREATE;
            }
            let mut conn = open_with(&target.file, flags, WRITER_PRAGMAS)?;
            if migrate {
                migrate::migrate(&mut conn)?;
            }
            Ok::<_, StoreError>(())
        })
        .await
        .map_err(|_| StoreError::WorkerStopped("opening"))??;
        Ok(SqliteStore {
            writer: Arc::new(Workers::start("writer", 1, &file, writer(wal.limit))?),
            readers: Arc::new(Workers::start("reader", READERS, &file, reader())?),
            wal: Arc::new(Workers::start("wal", 1, &file, checkpointer(wal.limit))?),
            wal_bounds: wal,
            file: Arc::new(file),
            cache: None,
            claim: Arc::default(),
        })
    }

    /// Makes this process the file's one node: takes its lock (see
    /// `claim`), checkpoints the WAL in the background (and warns while it
    /// stays above its warning size), and keeps cases and consent lists in
    /// memory within `cache` (0 entries: none).
    pub(super) fn claim_for_node(&mut self, cache: CacheBounds) -> Result<(), StoreError> {
        let store = self.clone();
        let held = claim::claim(&self.file, self.wal_bounds.warn, move || {
            let store = store.clone();
            async move { store.checkpoint_wal().await }
        })?;
        *self.claim.lock().unwrap_or_else(|p| p.into_inner()) = Some(held);
        if cache.entries > 0 {
            self.cache = Some(Arc::new(ReadCache::new(cache)));
        }
        Ok(())
    }

    /// Copies what it can of the WAL into the database file without
    /// waiting for anyone (PASSIVE). When that copied it all — no reader
    /// holds an older snapshot — and the WAL file has grown past its limit
    /// (steady writes never left it idle for SQLite to start it over, or a
    /// reader held an old snapshot and has let go), a truncating checkpoint
    /// cuts the file back, unless the writer or a reader is in the way for
    /// longer than [`CHECKPOINT_WAIT_MS`] (then on a later tick). Returns
    /// the WAL file's size in bytes afterwards.
    pub(super) async fn checkpoint_wal(&self) -> Result<u64, StoreError> {
        let wal_file = claim::wal_path(&self.file);
        let limit = self.wal_bounds.limit;
        self.wal
            .run(move |c| {
                let (log, copied): (i64, i64) =
                    c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                        Ok((r.get(1)?, r.get(2)?))
                    })?;
                let size = std::fs::metadata(&wal_file).map_or(0, |m| m.len());
                // All copied: no reader holds a snapshot older than the
                // WAL's end, so cutting it back will not wait for one.
                if size > limit && copied == log {
                    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
                }
                Ok(std::fs::metadata(&wal_file).map_or(0, |m| m.len()))
            })
            .await
    }

    /// Copies the whole WAL into the database file and cuts the WAL to
    /// nothing (TRUNCATE), waiting at most [`CHECKPOINT_WAIT_MS`] for the
    /// writer; `Busy` when a reader's snapshot kept a frame back.
    pub(super) async fn settle_erasure(&self) -> Result<(), StoreError> {
        self.wal
            .run(|c| {
                let busy: i64 = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
                if busy != 0 {
                    return Err(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                        Some("a reader holds an older snapshot of the database".into()),
                    )
                    .into());
                }
                Ok(())
            })
            .await
    }

    pub(super) async fn ping(&self) -> bool {
        self.readers
            .run(|c| Ok(c.execute_batch("SELECT 1")?))
            .await
            .is_ok()
    }

    pub(super) async fn close(&self) {
        // Release the file for the next node once this one has stopped.
        drop(self.claim.lock().unwrap_or_else(|p| p.into_inner()).take());
        self.writer.close().await;
        self.wal.close().await;
        self.readers.close().await;
    }

    /// Runs a read on a reader thread.
    /// The embedded migrations this database has not had (`migrate::pending`).
    pub(super) async fn pending_migrations(&self) -> Result<Vec<i64>, StoreError> {
        self.read(|c| migrate::pending(c)).await
    }

    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.readers.run(read).await
    }

    /// Runs a write on the writer thread.
    async fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.writer.run(write).await
    }

    /// Forgets what the cache holds of a case, after a change to it
    /// committed (or failed: it may have committed before the failure was
    /// seen) and before the change is answered.
    fn forget_case(&self, case_id: &str) {
        if let Some(c) = &self.cache {
            c.forget_case(case_id);
        }
    }

    pub(super) async fn insert_case(&self, case: NewCase) -> Result<(), StoreError> {
        let id = case.id.clone();
        let result = self.write(move |c| write::insert_case(c, &case)).await;
        self.forget_case(&id);
        result
    }

    pub(super) async fn update_case(&self, update: CaseUpdate) -> Result<Option<i64>, StoreError> {
        let id = update.case_id.clone();
        let result = self.write(move |c| write::update_case(c, &update)).await;
        self.forget_case(&id);
        result
    }

    pub(super) async fn change_case(&self, change: CaseChange) -> Result<Option<i64>, StoreError> {
        let id = change.case_id.clone();
        let result = self.write(move |c| write::change_case(c, &change)).await;
        self.forget_case(&id);
        result
    }

    pub(super) async fn rewrap_case_keys(&self, batch: Vec<Rewrap>) -> Result<u64, StoreError> {
        let ids: Vec<String> = batch.iter().map(|r| r.0.clone()).collect();
        let result = self
            .write(move |c| write::rewrap_case_keys(c, &batch))
            .await;
        for id in &ids {
            self.forget_case(id);
        }
        result
    }

    pub(super) async fn case_keys_below(
        &self,
        version: i64,
        limit: i64,
    ) -> Result<Vec<(String, Vec<u8>, i64)>, StoreError> {
        self.read(move |c| {
            all(c, sql::CASE_KEYS_BELOW, params![version, limit], |r| {
                Ok((r.text(0)?, r.blob(1)?, r.int(2)?))
            })
        })
        .await
    }

    pub(super) async fn pseudonym_rotations(&self) -> Result<i64, StoreError> {
        self.read(move |c| Ok(c.query_row(sql::PSEUDONYM_ROTATIONS, [], |r| r.get(0))?))
            .await
    }

    pub(super) async fn key_versions(&self) -> Result<(Vec<(i64, i64)>, i64), StoreError> {
        self.read(move |c| {
            let counts = all(c, sql::KEY_VERSION_COUNTS, [], |r| {
                Ok((r.int(0)?, r.int(1)?))
            })?;
            let legacy: i64 = c.query_row(sql::LEGACY_COUNT, [], |r| r.get(0))?;
            Ok((counts, legacy))
        })
        .await
    }

    /// `stmt`: [`sql::LEGACY_CASES`] (no cut-off) or
    /// [`sql::CASES_UNCHANGED_SINCE`].
    pub(super) async fn case_ids(
        &self,
        stmt: &'static str,
        cutoff: Option<Millis>,
        after: &str,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let after = after.to_owned();
        self.read(move |c| match cutoff {
            Some(t) => all(c, stmt, params![t, after, limit], |r| r.text(0)),
            None => all(c, stmt, params![after, limit], |r| r.text(0)),
        })
        .await
    }

    pub(super) async fn insert_consent(
        &self,
        consent: &Consent,
        key: Option<&RequestKey>,
    ) -> Result<(), StoreError> {
        let (owned, key) = (consent.clone(), key.cloned());
        let result = self
            .write(move |c| write::insert_consent(c, &owned, key.as_ref()))
            .await;
        self.forget_case(&consent.case_id);
        result
    }

    pub(super) async fn append_consent_event(
        &self,
        consent_id: &str,
        event: &ConsentEvent,
        key: Option<&RequestKey>,
    ) -> Result<bool, StoreError> {
        let (id, event, key) = (consent_id.to_owned(), event.clone(), key.cloned());
        let result = self
            .write(move |c| write::append_consent_event(c, &id, &event, key.as_ref()))
            .await;
        // Which case the consent belongs to is not at hand; events are
        // rare next to reads, so all cached consents go.
        if let Some(c) = &self.cache {
            c.forget_all_consents();
        }
        result
    }

    pub(super) async fn append_log(&self, a: &Append<'_>) -> Result<(), StoreError> {
        let batch = Batch {
            first_seq: a.first_seq,
            rows: a.rows.to_vec(),
            issued: a.issued.to_vec(),
            nodes: a.nodes.to_vec(),
            checkpoint: a.checkpoint.cloned(),
            dry_run: a.dry_run,
        };
        self.write(move |c| write::append(c, &batch)).await
    }

    pub(super) async fn request_key(
        &self,
        caller: &str,
        request_id: &str,
    ) -> Result<Option<RequestKey>, StoreError> {
        let (caller, request_id) = (caller.to_owned(), request_id.to_owned());
        self.read(move |c| {
            first(
                c,
                sql::REQUEST_KEY,
                params![caller, request_id],
                rows::request_key,
            )
        })
        .await
    }

    pub(super) async fn statistics_release(
        &self,
        key: &ReleaseKey,
    ) -> Result<Option<StoredRelease>, StoreError> {
        let k = key.clone();
        self.read(move |c| {
            first(
                c,
                sql::RELEASE,
                params![k.table, k.quarter, k.breakdown, k.scope],
                rows::release,
            )
        })
        .await
    }

    pub(super) async fn statistics_releases(
        &self,
        quarter: Option<&str>,
        include_own: bool,
        after: Option<&ReleaseKey>,
        limit: i64,
    ) -> Result<Vec<StoredRelease>, StoreError> {
        let quarter = quarter.unwrap_or_default().to_string();
        let own = i64::from(include_own);
        let after = after.cloned().unwrap_or(ReleaseKey {
            table: String::new(),
            quarter: String::new(),
            breakdown: String::new(),
            scope: String::new(),
        });
        self.read(move |c| {
            all(
                c,
                sql::RELEASES,
                params![
                    quarter,
                    own,
                    after.quarter,
                    after.table,
                    after.breakdown,
                    after.scope,
                    limit
                ],
                rows::release,
            )
        })
        .await
    }

    pub(super) async fn statistics_quarters(&self, limit: i64) -> Result<Vec<String>, StoreError> {
        self.read(move |c| all(c, sql::RELEASE_QUARTERS, params![limit], |r| r.text(0)))
            .await
    }

    pub(super) async fn insert_statistics_releases(
        &self,
        releases: Vec<StoredRelease>,
    ) -> Result<(), StoreError> {
        self.write(move |c| write::insert_statistics_releases(c, &releases))
            .await
    }

    pub(super) async fn forget_request_keys(
        &self,
        key: Option<(&str, &str)>,
        before: Millis,
    ) -> Result<(), StoreError> {
        let key = key.map(|(c, r)| (c.to_owned(), r.to_owned()));
        self.write(move |c| write::forget_request_keys(c, key, before))
            .await
    }

    pub(super) async fn case_meta(&self, case_id: &str) -> Result<Option<CaseMeta>, StoreError> {
        let id = case_id.to_owned();
        self.read(move |c| first(c, sql::CASE_META, [id], rows::case_meta))
            .await
    }

    pub(super) async fn case_with_data(
        &self,
        case_id: &str,
    ) -> Result<Option<CaseWithData>, StoreError> {
        let Some(cache) = &self.cache else {
            return self.read_case_with_data(case_id).await;
        };
        if let Some(hit) = cache.case(case_id) {
            return Ok(Some((*hit).clone()));
        }
        let read_at = cache.generation();
        Ok(self
            .read_case_with_data(case_id)
            .await?
            .map(|c| (*cache.keep_case(read_at, c)).clone()))
    }

    async fn read_case_with_data(&self, case_id: &str) -> Result<Option<CaseWithData>, StoreError> {
        let id = case_id.to_owned();
        self.read(move |c| {
            let mut fold = CaseFold::default();
            each(c, sql::CASE_WITH_DATA, [id], |r| fold.add(r))?;
            Ok(fold.finish())
        })
        .await
    }

    pub(super) async fn resolve_pseudonym(
        &self,
        recipient: &str,
        pseudonym: &str,
    ) -> Result<Option<String>, StoreError> {
        let key = [recipient.to_owned(), pseudonym.to_owned()];
        self.read(move |c| first(c, sql::RESOLVE_PSEUDONYM, key, rows::text))
            .await
    }

    pub(super) async fn consents_for_case(
        &self,
        case_id: &str,
    ) -> Result<Vec<Consent>, StoreError> {
        let Some(cache) = &self.cache else {
            return self.load_consents(sql::CONSENTS_BY_CASE, case_id).await;
        };
        if let Some(hit) = cache.consents(case_id) {
            return Ok((*hit).clone());
        }
        let read_at = cache.generation();
        let read = self.load_consents(sql::CONSENTS_BY_CASE, case_id).await?;
        Ok((*cache.keep_consents(read_at, case_id, read)).clone())
    }

    pub(super) async fn load_consents(
        &self,
        statement: &'static str,
        key: &str,
    ) -> Result<Vec<Consent>, StoreError> {
        let key = key.to_owned();
        self.read(move |c| {
            let mut fold = ConsentFold::default();
            each(c, statement, [key], |r| fold.add(r))?;
            Ok(fold.finish())
        })
        .await
    }

    /// `stmt`: [`sql::OWN_CASES`] or [`sql::OTHERS_CASES`].
    pub(super) async fn cases_by_owner(
        &self,
        stmt: &'static str,
        owner: &str,
        after: &str,
        limit: u32,
    ) -> Result<Vec<CaseMeta>, StoreError> {
        let (owner, after) = (owner.to_owned(), after.to_owned());
        self.read(move |c| all(c, stmt, params![owner, after, limit], rows::case_meta))
            .await
    }

    pub(super) async fn cases_for_statistics(
        &self,
        categories: [Category; 3],
        after: &str,
        limit: u32,
    ) -> Result<Vec<SealedCase>, StoreError> {
        let after = after.to_owned();
        let [a, b, c] = categories.map(Category::code);
        self.read(move |conn| {
            let mut fold = StatisticsFold::default();
            each(
                conn,
                sql::STATISTICS_PAGE,
                params![after, limit, a, b, c],
                |r| fold.add(r),
            )?;
            Ok(fold.finish())
        })
        .await
    }

    pub(super) async fn visible_cases(&self, v: &Visible<'_>) -> Result<Vec<CaseMeta>, StoreError> {
        let (participant, role, purpose) = (v.participant.to_owned(), v.role, v.purpose.to_owned());
        let (now, after, limit) = (v.now, v.after.to_owned(), v.limit);
        self.read(move |c| {
            let p = params![participant, role.as_str(), purpose, now, after, limit];
            all(c, sql::VISIBLE_CASES, p, rows::case_meta)
        })
        .await
    }

    pub(super) async fn cases_by_subject(
        &self,
        kind: &str,
        digest: &str,
    ) -> Result<Vec<String>, StoreError> {
        let key = [kind.to_owned(), digest.to_owned()];
        self.read(move |c| all(c, sql::CASES_BY_SUBJECT, key, rows::text))
            .await
    }

    pub(super) async fn log_size(&self) -> Result<i64, StoreError> {
        self.read(|c| one(c, sql::LOG_SIZE, [], rows::int)).await
    }

    pub(super) async fn access_log_len(&self) -> Result<i64, StoreError> {
        self.read(|c| one(c, sql::LOG_COUNT, [], rows::int)).await
    }

    /// Whether the tree's node table of before migration 0007 is still
    /// there (`Store::tiles_from_entries`).
    pub(super) async fn has_node_table(&self) -> Result<bool, StoreError> {
        self.read(|c| {
            one(
                c,
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'merkle_nodes')",
                [],
                rows::int,
            )
        })
        .await
        .map(|n| n != 0)
    }

    pub(super) async fn drop_node_table(&self) -> Result<(), StoreError> {
        self.write(|c| Ok(c.execute_batch("DROP TABLE IF EXISTS merkle_nodes")?))
            .await
    }

    pub(super) async fn hash_tile(&self, tile: TileId) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(move |c| read_tile(c, tile)).await
    }

    /// The tiles holding the nodes, one cached point lookup each (the
    /// growing level-0 tile from its edge rows): in-process, a few
    /// microseconds each.
    pub(super) async fn merkle_nodes(
        &self,
        ids: &[NodeId],
    ) -> Result<HashMap<NodeId, Hash>, StoreError> {
        let ids = ids.to_vec();
        self.read(move |c| {
            let wanted = tiles::tiles_for(&ids);
            let mut found = HashMap::with_capacity(wanted.len());
            for tile in wanted {
                if let Some(bytes) = read_tile(c, tile)? {
                    found.insert(tile, bytes);
                }
            }
            Ok(tiles::nodes_from(&ids, &found))
        })
        .await
    }

    pub(super) async fn log_leaves(
        &self,
        from: i64,
        limit: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        self.read(move |c| all(c, sql::LOG_LEAVES, [from, limit], rows::leaf))
            .await
    }

    pub(super) async fn log_position(&self, request_id: &str) -> Result<Option<i64>, StoreError> {
        let id = request_id.to_owned();
        self.read(move |c| one(c, sql::LOG_POSITION, [id], rows::opt_int))
            .await
    }

    pub(super) async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.read(|c| first(c, sql::LATEST_CHECKPOINT, [], rows::checkpoint))
            .await
    }

    pub(super) async fn checkpoint(
        &self,
        size: i64,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.read(move |c| first(c, sql::CHECKPOINT_AT, [size], rows::checkpoint))
            .await
    }

    pub(super) async fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        self.read(|c| all(c, sql::CHECKPOINTS, [], rows::checkpoint))
            .await
    }

    /// The rows, and for a query by case how far the index behind the log
    /// had caught up (its entries below that position were read through
    /// it, the rest from the log).
    pub(super) async fn query_log(
        &self,
        filter: &LogFilter,
        start: i64,
        limit: i64,
    ) -> Result<(Vec<LogRow>, Option<i64>), StoreError> {
        let f = filter.clone();
        self.read(move |c| {
            if f.case_id.is_some() {
                let upto: i64 = c
                    .prepare_cached(sql::INDEX_UPTO)?
                    .query_row([], |r| r.get(0))?;
                let p = params![
                    start,
                    f.since,
                    f.until,
                    f.caller,
                    f.role,
                    f.method,
                    f.purpose,
                    f.decision,
                    f.case_id,
                    f.case_subject,
                    f.subject,
                    upto,
                    limit
                ];
                return Ok((
                    all(c, sql::QUERY_LOG_BY_CASE, p, rows::log_row)?,
                    Some(upto),
                ));
            }
            let p = params![
                start,
                f.since,
                f.until,
                f.caller,
                f.role,
                f.method,
                f.purpose,
                f.decision,
                f.case_id,
                f.case_subject,
                f.subject,
                limit
            ];
            Ok((all(c, sql::QUERY_LOG, p, rows::log_row)?, None))
        })
        .await
    }

    /// See `LogSink::follow_index`.
    pub(super) async fn follow_index(&self, most: i64) -> Result<(i64, i64), StoreError> {
        self.write(move |c| write::follow_index(c, most)).await
    }

    /// See `Store::index_problems`.
    pub(super) async fn index_problems(&self, limit: i64) -> Result<IndexProblems, StoreError> {
        self.read(move |c| {
            // One snapshot: the writer may index more meanwhile.
            let tx = c.transaction()?;
            let (upto, size): (i64, i64) =
                tx.query_row(sql::INDEX_PROGRESS, [], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let missing = all(&tx, sql::INDEX_MISSING, params![upto, limit], |r| r.int(0))?;
            let extra = all(&tx, sql::INDEX_EXTRA, params![upto, limit], |r| r.int(0))?;
            tx.commit()?;
            Ok(IndexProblems {
                upto,
                size,
                missing,
                extra,
            })
        })
        .await
    }

    pub(super) async fn emergency_alerts(
        &self,
        start: i64,
        include_closed: bool,
        limit: i64,
    ) -> Result<Vec<LogRow>, StoreError> {
        let closed = i64::from(include_closed);
        self.read(move |c| {
            all(
                c,
                sql::EMERGENCY_ALERTS,
                params![start, closed, limit],
                rows::log_row,
            )
        })
        .await
    }

    pub(super) async fn emergency_review(
        &self,
        access_seq: i64,
    ) -> Result<Option<LogRow>, StoreError> {
        self.read(move |c| first(c, sql::EMERGENCY_REVIEW, [access_seq], rows::log_row))
            .await
    }

    pub(super) async fn subject_log(
        &self,
        case_id: &str,
        subject: &str,
        start: i64,
        limit: i64,
    ) -> Result<(Vec<LogRow>, i64), StoreError> {
        let (case_id, subject) = (case_id.to_owned(), subject.to_owned());
        self.read(move |c| {
            let upto: i64 = c
                .prepare_cached(sql::INDEX_UPTO)?
                .query_row([], |r| r.get(0))?;
            let p = params![start, case_id, upto, subject, limit];
            Ok((all(c, sql::SUBJECT_LOG, p, rows::log_row)?, upto))
        })
        .await
    }

    pub(super) fn scan_log(&self) -> mpsc::Receiver<Result<Chunk, StoreError>> {
        let (tx, rx) = mpsc::channel(AHEAD);
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = scan::scan(&file, &tx) {
                let _ = tx.blocking_send(Err(e));
            }
        });
        rx
    }
}

rows::columns_by!(rusqlite::Row<'_>, get);

/// Runs a query (its statement cached on the connection) and hands each
/// row to `f`.
fn each(
    c: &Connection,
    statement: &str,
    params: impl Params,
    mut f: impl FnMut(&dyn Columns) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut q = c.prepare_cached(statement)?;
    let mut rows = q.query(params)?;
    while let Some(r) = rows.next()? {
        f(r)?;
    }
    Ok(())
}

fn all<T>(
    c: &Connection,
    statement: &str,
    params: impl Params,
    map: fn(&dyn Columns) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    each(c, statement, params, |r| {
        out.push(map(r)?);
        Ok(())
    })?;
    Ok(out)
}

fn first<T>(
    c: &Connection,
    statement: &str,
    params: impl Params,
    map: fn(&dyn Columns) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut q = c.prepare_cached(statement)?;
    let mut rows = q.query(params)?;
    rows.next()?.map(|r| map(r)).transpose()
}

/// A query that always returns a row (an aggregate).
fn one<T>(
    c: &Connection,
    statement: &str,
    params: impl Params,
    map: fn(&dyn Columns) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    first(c, statement, params, map)?.ok_or(StoreError::BadAnswer("no row from an aggregate query"))
}

/// A hash tile as stored: a full or higher tile from `log_tiles`, else for
/// level 0 the growing tile from its edge rows; `None` when neither holds
/// any of it.
fn read_tile(c: &Connection, tile: TileId) -> Result<Option<Vec<u8>>, StoreError> {
    let stored = stored_tile(c, tile)?;
    if stored.is_some() || tile.level != 0 {
        return Ok(stored);
    }
    let bytes = tiles::edge_tile(tile.index, &edge_of_tile(c, tile.index as i64)?);
    Ok((!bytes.is_empty()).then_some(bytes))
}

/// The row of `log_tiles` for `tile`, if any.
pub(super) fn stored_tile(c: &Connection, tile: TileId) -> Result<Option<Vec<u8>>, StoreError> {
    let key = params![i64::from(tile.level), tile.index as i64];
    Ok(c.prepare_cached(sql::TILE)?
        .query_map(key, |r| r.get(0))?
        .next()
        .transpose()?)
}

/// The edge rows of level-0 tile `index`, in order.
pub(super) fn edge_of_tile(c: &Connection, index: i64) -> Result<Vec<tiles::EdgeRow>, StoreError> {
    Ok(c.prepare_cached(sql::EDGE_OF_TILE)?
        .query_map([index], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_files_and_nothing_else() {
        let t = parse_url(&url_of(Path::new("/var/lib/sluis/odd ?#%.db"))).unwrap();
        assert_eq!(t.file, PathBuf::from("/var/lib/sluis/odd ?#%.db"));
        assert!(t.create);
        let t = parse_url("sqlite:relative.db").unwrap();
        assert_eq!(t.file, PathBuf::from("relative.db"));
        assert!(!t.create);
        for bad in [
            "sqlite://",
            "sqlite::memory:",
            "sqlite://x.db?mode=memory",
            "sqlite://x.db?cache=shared",
        ] {
            let e = parse_url(bad).unwrap_err();
            assert!(matches!(e, StoreError::BadUrl { .. }), "{bad}: {e}");
        }
    }

    /// The shared statements use `$N` parameters, which SQLite numbers in
    /// order of first appearance: each must introduce them in order.
    #[test]
    fn shared_statements_number_their_parameters_in_order() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate::migrate(&mut c).unwrap();
        for statement in sql::WITH_PARAMETERS {
            let q = c.prepare(statement).unwrap();
            let n = q.parameter_count();
            assert!(n > 0, "{statement}");
            for i in 1..=n {
                assert_eq!(
                    q.parameter_name(i),
                    Some(format!("${i}").as_str()),
                    "{statement}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_missing_file_without_create_is_an_open_error() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("none.db").display());
        let e = SqliteStore::open(&url, &PoolSettings::default(), true)
            .await
            .err()
            .unwrap();
        assert!(matches!(e, StoreError::Open { .. }), "{e}");
    }
}
