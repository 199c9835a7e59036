//! Persistence: cases (sealed), consents with their append-only events, the
//! pseudonyms issued, and the access log with its Merkle tree and signed
//! checkpoints, in SQLite (the embedded default) or PostgreSQL (production,
//! shared by replicas).
//!
//! This file is the interface the rest of the node uses: the row types, the
//! typed [`StoreError`], [`Store`] for reads and for case and consent
//! writes, and [`LogSink`], the only way to append to the access log. Each
//! backend lives in a folder of its own with one driver: `sqlite/`
//! (rusqlite) and `postgres/` (sqlx). No module outside `store/` names
//! either driver. The schema of each backend is embedded in the binary
//! (`migrations/sqlite/`, `migrations/postgres/`) and applied on open.
//!
//! What the store promises:
//!
//! - **Durable when it returns.** A write returns after its transaction has
//!   committed. SQLite runs in WAL mode with `synchronous=FULL`, so a
//!   commit survives a power cut; PostgreSQL as its server is configured
//!   (`synchronous_commit` is on by default).
//! - **One writer per SQLite file.** Every write to a SQLite file (log
//!   appends, cases, consents) runs in arrival order on one thread with one
//!   connection, so writers never poll for SQLite's lock; reads run on
//!   reader threads and do not wait for writes (WAL). A node claims its
//!   file (`Store::claim_for_node`: an exclusive lock), so the process is
//!   the file's only writer, which is what lets it keep cases and consents
//!   in memory.
//! - **A log append is one transaction**: the access records, the tree nodes
//!   they complete, an optional signed checkpoint and the pseudonyms their
//!   requests issued. After a crash the log, its tree and its checkpoints
//!   agree, and no answer carried a pseudonym that was not stored.
//! - **One log writer.** Only [`LogSink`] appends, and [`Store::open`] makes
//!   one per store; the node hands it to the access log's writer task.
//! - **Replicas race, the log does not fork.** An append names the position
//!   it starts at. If the log is longer (another replica on the same
//!   PostgreSQL database appended first), nothing is written and
//!   [`StoreError::Raced`] carries the log's real size, so the writer can
//!   catch up from the stored tree and try again. On PostgreSQL the check
//!   and the insert hold an advisory lock, so replicas take turns as the
//!   log's sequencer.

mod migrations;
mod postgres;
mod rows;
pub(crate) mod scan;
mod sql;
mod sqlite;
mod tiles;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::model::consent::{Consent, ConsentEvent, Millis};
use crate::model::{Category, Role};
use crate::tlog::merkle::{Frontier, Hash, NodeId};

use scan::Chunk;
pub(crate) use sqlite::CacheBounds;

/// Why the store could not do what was asked. Messages say what to fix and
/// never carry a database password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The `database` setting is not a URL the store can open.
    #[error("database URL '{url}': {problem}")]
    BadUrl {
        /// The URL with its password masked.
        url: String,
        problem: String,
    },
    /// The database file could not be opened or the server not reached.
    #[error("cannot open the database {target}: {source}")]
    Open {
        /// The file, or the URL with its password masked.
        target: String,
        source: DbError,
    },
    /// A statement failed: a refused write (a trigger, a constraint), a
    /// statement the database does not take.
    #[error("database: {0}")]
    Db(#[from] DbError),
    /// The database cannot take work now, and may again later: the server
    /// cannot be reached or is shutting down or starting up, no connection
    /// came within the acquire timeout, the disk is full, the file is
    /// locked or cannot be read. Requests fail closed with `UNAVAILABLE`.
    #[error("the database cannot be reached: {0}")]
    Unavailable(DbError),
    /// The schema could not be brought to the version this binary needs.
    #[error("database schema: {0}")]
    Schema(#[from] SchemaError),
    /// A thread the SQLite store runs its statements on gave no answer:
    /// it has stopped, or the call panicked (the thread then goes on with a
    /// fresh connection).
    #[error(
        "the SQLite {0} thread gave no answer (it stopped or the call panicked; see the node's log)"
    )]
    WorkerStopped(&'static str),
    /// Stored data that the store did not write that way (someone edited
    /// the database).
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// The database answered one of the store's own queries otherwise than
    /// the query makes it answer (no row from an aggregate, a packed
    /// result cut short): a fault of the server or the store, not of the
    /// stored data.
    #[error("the database answered a query unexpectedly: {0}")]
    BadAnswer(&'static str),
    /// Another node serves this SQLite file.
    #[error(
        "another sluis node is serving the database {}: one node per SQLite file (use PostgreSQL for several)",
        .0.display()
    )]
    InUse(std::path::PathBuf),
    /// A node serves this PostgreSQL database (it holds the serving claim,
    /// `Store::claim_exclusive`), so an operator's step that needs every
    /// node stopped cannot run.
    #[error("a sluis node is serving the PostgreSQL database {0}")]
    NodesServing(String),
    /// An operator's step that needs every node stopped (a key rotation, a
    /// rename) holds this PostgreSQL database, so a node may not start.
    #[error(
        "an operator's key rotation or node rename is running on the PostgreSQL database {0}: start the node once it has finished"
    )]
    StepRunning(String),
    /// The lock file that marks a SQLite file's node cannot be made.
    #[error("cannot lock {}: {source}", .path.display())]
    Lock {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// A log append did not start where the log ends: another writer
    /// appended first. Nothing was written.
    #[error("another writer appended to the log first (it now has {size} entries)")]
    Raced { size: i64 },
}

/// Why the schema cannot be brought to the version this binary needs; each
/// says what to do.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "the database is at schema version {found}, newer than this sluis knows ({known}): run the newer sluis that migrated it"
    )]
    Newer { found: i64, known: i64 },
    #[error(
        "the database records migration {0}, which this sluis does not have: run the newer sluis that migrated it"
    )]
    UnknownMigration(i64),
    #[error("the database records migration {found} but not {missing}: restore it from a backup")]
    Gap { found: i64, missing: i64 },
    #[error(
        "migration {version} ({name}) did not finish when the database was last migrated: restore it from a backup"
    )]
    Unfinished { version: i64, name: &'static str },
    #[error(
        "migration {version} ({name}) was applied with other SQL than this sluis has: run the sluis that migrated it"
    )]
    OtherSql { version: i64, name: &'static str },
    #[error("migration {version} ({name}) failed, nothing was changed: {source}")]
    Failed {
        version: i64,
        name: &'static str,
        source: DbError,
    },
    /// PostgreSQL's migrator (sqlx) refused; its message names the
    /// migration and why.
    #[error("{0}")]
    Migrator(DbError),
}

/// A database driver's error, opaque outside the store.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct DbError(Box<dyn std::error::Error + Send + Sync>);

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError(Box::new(e))
    }
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        DbError(Box::new(e))
    }
}

impl DbError {
    fn msg(text: &'static str) -> DbError {
        DbError(Box::from(text))
    }

    fn text(text: String) -> DbError {
        DbError(Box::from(text))
    }

    /// Whether sqlx waited out the acquire timeout for a connection.
    fn is_pool_timeout(&self) -> bool {
        matches!(
            self.0.downcast_ref::<sqlx::Error>(),
            Some(sqlx::Error::PoolTimedOut)
        )
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        let unavailable = matches!(
            &e,
            rusqlite::Error::SqliteFailure(f, _) if matches!(
                f.code,
                C::DatabaseBusy | C::DatabaseLocked | C::DiskFull | C::SystemIoFailure | C::CannotOpen
            )
        );
        if unavailable {
            StoreError::Unavailable(e.into())
        } else {
            StoreError::Db(e.into())
        }
    }
}

impl From<sqlx::Error> for StoreError {
    /// Unavailable: no connection within the acquire timeout, a closed
    /// pool, I/O and TLS failures, and the server's own SQLSTATE classes
    /// for it — 08 (connection exception), 53 (insufficient resources: a
    /// full disk, too many connections), 57P (shutting down, starting up).
    fn from(e: sqlx::Error) -> Self {
        let unavailable = match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(d) => d.code().is_some_and(|c| {
                c.starts_with("08") || c.starts_with("53") || c.starts_with("57P")
            }),
            _ => false,
        };
        if unavailable {
            StoreError::Unavailable(e.into())
        } else {
            StoreError::Db(e.into())
        }
    }
}

impl StoreError {
    /// Whether the database could not take the work now ([`StoreError::Unavailable`]):
    /// trying again later may succeed.
    pub(crate) fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// A [`StoreError::Unavailable`] the store decides itself, saying why.
    pub(crate) fn unavailable(why: &'static str) -> StoreError {
        StoreError::Unavailable(DbError::msg(why))
    }
}

/// How the store uses its database (the `[database]` section of the
/// config). On PostgreSQL the pool limits size the pool; a SQLite store
/// works on a fixed set of threads (one writer, two readers) and ignores
/// them, but bounds its write-ahead log.
#[derive(Clone, Debug)]
pub struct PoolSettings {
    pub(crate) max_connections: u32,
    /// How long a statement may wait for a free connection before it fails
    /// (and the request with it, closed).
    pub(crate) acquire_timeout: Duration,
    /// SQLite: the size, in bytes, the WAL file is cut back to once a
    /// checkpoint has copied it all (`journal_size_limit`, and a truncating
    /// checkpoint when readers allow).
    pub(crate) wal_limit_bytes: u64,
    /// SQLite: above this many bytes of WAL a node logs a warning (once a
    /// minute): something holds an old snapshot and the WAL cannot shrink.
    pub(crate) wal_warn_bytes: u64,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(3),
            wal_limit_bytes: 64 * 1024 * 1024,
            wal_warn_bytes: 256 * 1024 * 1024,
        }
    }
}

/// A case's row, without its data.
#[derive(Clone, Debug)]
pub struct CaseMeta {
    pub(crate) id: String,
    /// Participant id of the owner (who registered it).
    pub(crate) owner: String,
    /// Random bytes the case's pseudonyms are derived from.
    pub(crate) subject_ref: Vec<u8>,
    /// 1 at registration, +1 per update.
    pub(crate) version: i64,
    pub(crate) updated_at: Millis,
    /// The subject's V-number or BSN, sealed under the case key
    /// (`Exchange::seal_subject_id`); `None` when the case names neither,
    /// or its identity was cleared or erased.
    pub(crate) subject_id: Option<Vec<u8>>,
    /// The case's own key, wrapped under a data key version
    /// (`vault::Keys::new_case_key`); `None` for a case from before
    /// per-case keys (values sealed under data key version 1) or an
    /// erased one.
    pub(crate) case_key: Option<Vec<u8>>,
    /// When the whole case was crypto-erased (ms since the epoch).
    pub(crate) erased_at: Option<Millis>,
}

/// A case with its sealed category data, as [`Store::case_with_data`]
/// reads it.
pub type CaseWithData = (CaseMeta, Vec<(Category, Vec<u8>)>);

/// A case's owner, registration time (ms since the epoch) and sealed data
/// in some categories, as [`Store::cases_for_statistics`] reads it.
#[derive(Clone, Debug)]
pub(crate) struct SealedCase {
    pub(crate) id: String,
    pub(crate) owner: String,
    pub(crate) registered: Millis,
    /// The wrapped case key ([`CaseMeta::case_key`]).
    pub(crate) case_key: Option<Vec<u8>>,
    pub(crate) sealed: Vec<(Category, Vec<u8>)>,
}

/// A case to register.
pub(crate) struct NewCase {
    pub(crate) id: String,
    pub(crate) owner: String,
    pub(crate) subject_ref: Vec<u8>,
    /// Per category, the sealed data (`vault::Keys::seal_case`).
    pub(crate) sealed: Vec<(Category, Vec<u8>)>,
    /// The case key, wrapped, and the data key version that wraps it.
    pub(crate) case_key: (Vec<u8>, i64),
    pub(crate) now: Millis,
    /// (kind, keyed hash) of the subject's identifiers (`subject_index`).
    pub(crate) subject_index: Vec<(String, String)>,
    /// The subject's V-number or BSN, sealed ([`CaseMeta::subject_id`]).
    pub(crate) subject_id: Option<Vec<u8>>,
    /// The pseudonym the owner receives for the case.
    pub(crate) owner_pseudonym: String,
    /// The client's idempotency key, stored in the same transaction.
    pub(crate) key: Option<RequestKey>,
}

/// A change to a case made by the node itself (erasure, a case's values
/// moved under its own key), in one transaction, and only if the case is
/// still at `version` and not erased — a concurrent update wins, and the
/// change is tried again from what it left.
#[derive(Clone, Debug, Default)]
pub(crate) struct CaseChange {
    pub(crate) case_id: String,
    /// The version the change was prepared from.
    pub(crate) version: i64,
    /// Whether the version grows (a change of the case's content does;
    /// re-sealing the same values under another key does not).
    pub(crate) bump: bool,
    /// Categories written (sealed).
    pub(crate) put: Vec<(Category, Vec<u8>)>,
    /// Categories whose rows are deleted.
    pub(crate) delete: Vec<Category>,
    /// `Some(x)`: the sealed subject id becomes `x` (`None`: cleared).
    pub(crate) subject_id: Option<Option<Vec<u8>>>,
    /// A wrapped case key and the data key version wrapping it.
    pub(crate) case_key: Option<(Vec<u8>, i64)>,
    /// The whole case is erased at this instant: every data row, the case
    /// key and the subject id go.
    pub(crate) erase_at: Option<Millis>,
}

/// An owner's update of a case ([`Store::update_case`]): written in one
/// transaction that also bumps the case's version.
#[derive(Clone, Debug)]
pub(crate) struct CaseUpdate {
    pub(crate) case_id: String,
    /// Categories written (sealed under the case key).
    pub(crate) sealed: Vec<(Category, Vec<u8>)>,
    /// Categories whose rows are deleted; clearing `Identity` also clears
    /// the sealed subject id.
    pub(crate) cleared: Vec<Category>,
    /// Subject-index entries added (keyed hashes, never raw identifiers).
    pub(crate) subject_index: Vec<(String, String)>,
    /// The new sealed subject id, when the identity changed.
    pub(crate) subject_id: Option<Vec<u8>>,
    /// When (ms since the epoch): the case's `updated_at`.
    pub(crate) now: Millis,
    /// The write's idempotency key; its `seq` becomes the new version.
    pub(crate) key: Option<RequestKey>,
}

/// A case key re-wrapped under a newer data key version:
/// `(case id, wrapped key, new version, version it was under)`.
pub(crate) type Rewrap = (String, Vec<u8>, i64, i64);

/// A client's idempotency key (AIP-155) for a write, stored in the write's
/// own transaction: either both are stored or neither. Keys are per caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RequestKey {
    /// The participant that sent the write.
    pub(crate) caller: String,
    /// The client's `request_id` (a UUID).
    pub(crate) request_id: String,
    /// The write it named (`RegisterCase`, …).
    pub(crate) method: String,
    /// Keyed hash of the request (its method and encoded content), so a
    /// retry can be told from another request without storing either.
    pub(crate) digest: String,
    /// The case or consent the write made or changed.
    pub(crate) resource_id: String,
    /// After the write: the consent's number of events, or the case's
    /// version. For [`Store::update_case`] the store fills in the version it
    /// made (whatever is given here).
    pub(crate) seq: i64,
    /// The access record of the call that wrote (its `x-request-id`).
    pub(crate) record_id: String,
    /// When (ms since the epoch); keys expire by it.
    pub(crate) at: Millis,
}

/// A pseudonym a request handed out, stored in the same transaction as that
/// request's access record, so its recipient can come back with it.
#[derive(Clone, Debug)]
pub(crate) struct IssuedPseudonym {
    pub(crate) recipient: String,
    pub(crate) pseudonym: String,
    pub(crate) case_id: String,
}

/// A row of the access log as stored: the signed `record` (the canonical
/// encoding of `tlog::AccessRecord`) and copies of its fields for queries.
#[derive(Clone, Debug)]
pub struct LogRow {
    /// Position in the log, from 0 (on append, the position is given by
    /// the batch and this field is ignored).
    pub seq: i64,
    pub request_id: String,
    pub(crate) at: Millis,
    pub caller: String,
    pub(crate) role: String,
    pub method: String,
    pub case_id: Option<String>,
    pub subject: Option<String>,
    pub purpose: Option<String>,
    pub decision: String,
    pub record: Vec<u8>,
    /// The record's other subjects (`tlog::AccessRecord::subjects`), to
    /// index on append, so that a subject's report finds the entry. Rows
    /// read back leave it empty: the record holds them.
    pub(crate) subjects: Vec<String>,
    /// The record is an emergency access (`tlog::AccessRecord::is_emergency`):
    /// on append it opens an alert (`emergency_accesses`, migration 0009).
    /// Rows read back leave it false: the record says so.
    pub(crate) emergency: bool,
    /// The access record id of the emergency access whose alert this
    /// record's review closes (`emergency_reviews`). Rows read back leave
    /// it empty: the record holds it.
    pub(crate) closes: Option<String>,
}

/// What names a statistics release: the table, the quarter (`2025Q3`), the
/// breakdown (`node`, `by_municipality`, `own`) and, for `own`, the
/// municipality's participant id (else empty).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ReleaseKey {
    pub(crate) table: String,
    pub(crate) quarter: String,
    pub(crate) breakdown: String,
    pub(crate) scope: String,
}

/// A statistics release as stored: published once, never changed
/// (migration 0005's triggers refuse UPDATE and DELETE).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredRelease {
    pub(crate) key: ReleaseKey,
    /// When its figures were computed, in ms since the epoch.
    pub(crate) computed_at: Millis,
    /// The protected table, as JSON; no count below the threshold.
    pub(crate) body: String,
    /// Hex SHA-256 of `body`.
    pub(crate) sha256: String,
}

/// A signed checkpoint as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Entries covered.
    pub size: i64,
    /// The tree's root at that size (32 bytes).
    pub(crate) root: Vec<u8>,
    pub(crate) at: Millis,
    /// The signed note (C2SP tlog-checkpoint).
    pub note: String,
}

/// Filters of a log query; empty fields match everything.
#[derive(Clone, Debug, Default)]
pub(crate) struct LogFilter {
    /// From this instant on (inclusive).
    pub(crate) since: Option<Millis>,
    /// Before this instant (exclusive).
    pub(crate) until: Option<Millis>,
    pub(crate) caller: Option<String>,
    pub(crate) role: Option<String>,
    pub(crate) method: Option<String>,
    pub(crate) purpose: Option<String>,
    pub(crate) decision: Option<String>,
    pub(crate) case_id: Option<String>,
    /// The audit pseudonym of `case_id`'s subject: with it, `case_id` also
    /// matches the entries that name the case among other subjects
    /// (listings, whose records list their subjects' pseudonyms in
    /// `access_log_subjects` and name no one case).
    pub(crate) case_subject: Option<String>,
    pub(crate) subject: Option<String>,
}

/// The open database: reads, and writes of cases and consents. Cheap to
/// clone (all clones share the connections).
///
/// The writes are the gateway's alone, which applies each only after its
/// access record is durable; outside this crate a store only reads:
///
/// ```compile_fail,E0624
/// # async fn try_it(store: sluis::store::Store, consent: sluis::model::consent::Consent) {
/// store.insert_consent(&consent, None).await.unwrap();
/// # }
/// ```
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

/// What `audit verify` finds of the index of the log by case, in one
/// snapshot of the database ([`Store::index_problems`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IndexProblems {
    /// How far the index has caught up (entries below it are indexed).
    pub upto: i64,
    /// The log's size in the same snapshot.
    pub size: i64,
    /// Entries below `upto` with a case but no index row (the first few).
    pub missing: Vec<i64>,
    /// Index rows no entry below `upto` accounts for (the first few).
    pub extra: Vec<i64>,
}

/// Rows read from the log, and how far the index behind the log had caught
/// up when they were read (entries below `indexed_upto` were found through
/// it, later ones in the log itself; `None` when the query used no such
/// index).
#[derive(Clone, Debug, Default)]
pub(crate) struct LogPage {
    pub rows: Vec<LogRow>,
    pub indexed_upto: Option<i64>,
}

/// The one thing that appends to the access log. [`Store::open`] makes one
/// per store and it cannot be cloned: the node gives it to the log's writer
/// task (`tlog::AuditLog::start`), so no other code in the process can
/// append. Outside this crate it has no methods at all:
///
/// ```compile_fail,E0624
/// # use sluis::store::{LogSink, StoredCheckpoint};
/// # async fn try_it(sink: LogSink, checkpoint: StoredCheckpoint) {
/// sink.append_checkpoint(&checkpoint).await.unwrap();
/// # }
/// ```
pub struct LogSink {
    backend: Backend,
}

/// What [`Store::visible_cases`] asks, as the backends take it.
struct Visible<'a> {
    participant: &'a str,
    role: Role,
    purpose: &'a str,
    now: Millis,
    after: &'a str,
    limit: u32,
}

/// A log append as the backends take it (see [`LogSink::append`]).
struct Append<'a> {
    first_seq: i64,
    rows: &'a [LogRow],
    issued: &'a [IssuedPseudonym],
    nodes: &'a [(NodeId, Hash)],
    checkpoint: Option<&'a StoredCheckpoint>,
    /// Roll the transaction back instead of committing it: a trial of
    /// whether the log can be written ([`LogSink::try_append`]).
    dry_run: bool,
}

#[derive(Clone)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

/// Runs the same call on whichever backend this is. The only place that
/// tells the backends apart.
macro_rules! on_backend {
    ($backend:expr, $b:ident => $call:expr) => {
        match $backend {
            Backend::Sqlite($b) => $call,
            Backend::Postgres($b) => $call,
        }
    };
}

/// [`on_backend!`] for a call that returns `Result<_, StoreError>`: on
/// PostgreSQL it runs under the server's reachability guard
/// (`postgres::reachable`), which fails it at once while the server is
/// known to be unreachable, or as soon as another call finds it so, and is
/// told how it went.
macro_rules! on_store {
    ($backend:expr, $b:ident => $call:expr) => {
        match $backend {
            Backend::Sqlite($b) => $call,
            Backend::Postgres($b) => {
                $b.reachable().admit().map_err(|e| $b.explain(e))?;
                let result = $b
                    .reachable()
                    .run(async { $call })
                    .await
                    .map_err(|e| $b.explain(e));
                $b.reachable().observe(&result);
                result
            }
        }
    };
}

// After `on_store!`, which it uses.
pub(crate) mod referral;
pub mod witness;

impl Store {
    /// Opens (creating if needed) a SQLite database file and brings its
    /// schema up to date.
    pub async fn open_sqlite(path: &Path) -> Result<(Store, LogSink), StoreError> {
        Store::open(&sqlite_url(path), &PoolSettings::default(), true).await
    }

    /// Opens the database at `url`: `sqlite://FILE` (`?mode=rwc` creates a
    /// missing file) or `postgres://USER@HOST[:PORT]/DB`. `migrate` applies
    /// the embedded migrations first (PostgreSQL under an advisory lock, so
    /// replicas starting together migrate once).
    ///
    /// Returns the store and its [`LogSink`]; code that only reads drops
    /// the sink. Errors: [`StoreError::BadUrl`] for a URL of another kind,
    /// [`StoreError::Open`] when the file cannot be opened or the server
    /// not reached, [`StoreError::Schema`] when the schema cannot be
    /// brought up to date.
    pub async fn open(
        url: &str,
        settings: &PoolSettings,
        migrate: bool,
    ) -> Result<(Store, LogSink), StoreError> {
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite(sqlite::SqliteStore::open(url, settings, migrate).await?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres(postgres::PgStore::open(url, settings, migrate).await?)
        } else {
            return Err(StoreError::BadUrl {
                url: redact_url(url),
                problem: "use sqlite://FILE or postgres://USER@HOST/DB".into(),
            });
        };
        let sink = LogSink {
            backend: backend.clone(),
        };
        let store = Store { backend };
        if migrate {
            store.tiles_from_entries().await?;
        }
        Ok((store, sink))
    }

    /// Migration 0007's data step, for a log whose tree was stored one row
    /// per node (`merkle_nodes`): rebuilds the hash tiles from the entries
    /// (resuming where an interrupted run stopped), and drops the old table
    /// only once the tiles give the root of the latest checkpoint. If they
    /// do not, the old table stays and the store does not open
    /// ([`StoreError::Corrupt`]). The checkpoint's signature is checked by
    /// the log writer's start and by `sluis audit verify`, which hold the key.
    async fn tiles_from_entries(&self) -> Result<(), StoreError> {
        if !on_store!(&self.backend, b => b.has_node_table().await)? {
            return Ok(());
        }
        let frontier = self.rebuild_tree().await?;
        if let Some(cp) = self.latest_checkpoint().await? {
            let size = cp.size as u64;
            let nodes = self
                .merkle_nodes(&Frontier::perfect_nodes_for(size))
                .await?;
            let root = Frontier::from_nodes(size, |id| nodes.get(&id).copied()).map(|f| f.root());
            if size > frontier.size() || root.map(|r| r.to_vec()) != Some(cp.root.clone()) {
                return Err(StoreError::Corrupt(format!(
                    "the log's tree rebuilt as tiles does not have the root of its checkpoint at size {size}; the old tree is kept: run `sluis audit verify`"
                )));
            }
        }
        tracing::info!(
            entries = frontier.size(),
            "the log's tree is stored as tiles and matches its latest checkpoint; the old node table is dropped"
        );
        on_store!(&self.backend, b => b.drop_node_table().await)
    }

    /// Hashes the log's entries into its tree and stores the tiles that are
    /// missing (all of them for a log stored before the tree was, or one
    /// whose tiles were lost): the tree's compact range. Writes the tree
    /// only, never an entry; errors with [`StoreError::Corrupt`] where an
    /// entry is missing.
    pub(crate) async fn rebuild_tree(&self) -> Result<Frontier, StoreError> {
        let mut frontier = Frontier::new();
        let mut from = 0i64;
        loop {
            let leaves = self.log_leaves(from, 10_000).await?;
            let Some((last, _)) = leaves.last() else {
                break;
            };
            from = last + 1;
            let mut new_nodes = Vec::new();
            for (seq, record) in &leaves {
                if *seq as u64 != frontier.size() {
                    return Err(StoreError::Corrupt(format!(
                        "entry {} is missing from the log; run `sluis audit verify`",
                        frontier.size()
                    )));
                }
                frontier.push_with(crate::tlog::merkle::leaf_hash(record), |id, h| {
                    if id.level % crate::tlog::layout::HEIGHT == 0 {
                        new_nodes.push((id, *h));
                    }
                });
            }
            let ids: Vec<NodeId> = new_nodes.iter().map(|(id, _)| *id).collect();
            let have = self.merkle_nodes(&ids).await?;
            let missing: Vec<_> = new_nodes
                .into_iter()
                .filter(|(id, _)| !have.contains_key(id))
                .collect();
            if !missing.is_empty() {
                let append = Append {
                    first_seq: 0,
                    rows: &[],
                    issued: &[],
                    nodes: &missing,
                    checkpoint: None,
                    dry_run: false,
                };
                on_store!(&self.backend, b => b.append_log(&append).await)?;
            }
        }
        Ok(frontier)
    }

    /// Makes this process the database's node. On SQLite a file has one
    /// node: this takes an exclusive lock on `<database>.node-lock` (held
    /// until [`close`](Self::close)), checkpoints the WAL in the background
    /// so that a log append seldom pays for it, and keeps cases and consent
    /// lists in memory within `cache` (0 entries: none),
    /// forgotten the moment a change to them commits — safe only because
    /// the node sees every change. On PostgreSQL, where replicas change the
    /// data behind each other's backs, this does nothing and every request
    /// reads. Errors: [`StoreError::InUse`] when another node serves the
    /// file, [`StoreError::Lock`] when the lock file cannot be made.
    ///
    /// On PostgreSQL the node holds the database's serving claim, shared
    /// with every other replica, until the store closes (an advisory lock
    /// of a session of its own, taken again should the server restart), so
    /// that an operator's step which needs every node stopped sees it
    /// ([`Store::claim_exclusive`]). Errors: [`StoreError::StepRunning`]
    /// while such a step runs.
    pub(crate) async fn claim_for_node(mut self, cache: CacheBounds) -> Result<Store, StoreError> {
        match &mut self.backend {
            Backend::Sqlite(s) => s.claim_for_node(cache)?,
            Backend::Postgres(p) => p.claim(false).await?,
        }
        Ok(self)
    }

    /// Claims the database for an operator's step that needs every node
    /// stopped (`sluis keys rotate-signing`, `rotate-pseudonym`, `sluis
    /// node rename`): on SQLite the file's claim, as a node takes it; on
    /// PostgreSQL the serving claim exclusively, which no replica may hold
    /// meanwhile. Errors: [`StoreError::InUse`] (SQLite) or
    /// [`StoreError::NodesServing`] (PostgreSQL) while a node serves.
    pub(crate) async fn claim_exclusive(mut self, cache: CacheBounds) -> Result<Store, StoreError> {
        match &mut self.backend {
            Backend::Sqlite(s) => s.claim_for_node(cache)?,
            Backend::Postgres(p) => p.claim(true).await?,
        }
        Ok(self)
    }

    /// The PostgreSQL database this store works in (`None` on SQLite).
    pub async fn postgres_database(&self) -> Result<Option<String>, StoreError> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(None),
            Backend::Postgres(p) => p.database_name().await.map(Some),
        }
    }

    /// Whether the database answers, for health reporting.
    pub async fn ping(&self) -> bool {
        on_backend!(&self.backend, b => b.ping().await)
    }

    /// (used, idle) connections of the PostgreSQL pool, for the node's
    /// metrics; `None` on SQLite, whose connections are fixed threads.
    pub(crate) fn pool_use(&self) -> Option<(u64, u64)> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(p) => Some(p.pool_use()),
        }
    }

    /// Closes every connection and waits until they are closed (SQLite then
    /// folds its WAL into the file). A store used after this opens them
    /// again.
    pub async fn close(&self) {
        on_backend!(&self.backend, b => b.close().await)
    }

    /// Registers a case with its data, subject index and the owner's
    /// pseudonym, in one transaction.
    pub(crate) async fn insert_case(&self, case: NewCase) -> Result<(), StoreError> {
        on_store!(&self.backend, b => b.insert_case(case).await)
    }

    /// Replaces the given categories, deletes the `cleared` ones (and the
    /// sealed subject id with the identity), adds subject-index entries,
    /// replaces the sealed subject id when one is given, and bumps the
    /// version, in one transaction. Returns the new version, or `None`
    /// (nothing written) if the case does not exist.
    pub(crate) async fn update_case(&self, update: CaseUpdate) -> Result<Option<i64>, StoreError> {
        on_store!(&self.backend, b => b.update_case(update).await)
    }

    /// Applies a [`CaseChange`]; the case's new version, or `None` when the
    /// case changed since (or was erased): nothing written.
    pub(crate) async fn change_case(&self, change: CaseChange) -> Result<Option<i64>, StoreError> {
        on_store!(&self.backend, b => b.change_case(change).await)
    }

    /// Stores re-wrapped case keys in one transaction; each only if its
    /// case is still under the version it was read under and not erased.
    /// Answers how many were stored.
    pub(crate) async fn rewrap_case_keys(&self, batch: Vec<Rewrap>) -> Result<u64, StoreError> {
        on_store!(&self.backend, b => b.rewrap_case_keys(batch).await)
    }

    /// Up to `limit` case keys wrapped under a data key version below
    /// `version`: (case id, wrapped key, version).
    pub(crate) async fn case_keys_below(
        &self,
        version: i64,
        limit: i64,
    ) -> Result<Vec<(String, Vec<u8>, i64)>, StoreError> {
        on_store!(&self.backend, b => b.case_keys_below(version, limit).await)
    }

    /// How many case keys each data key version wraps, and how many cases
    /// (not erased) still have values sealed under data key version 1
    /// directly (from before per-case keys).
    pub async fn key_versions(&self) -> Result<(Vec<(i64, i64)>, i64), StoreError> {
        on_store!(&self.backend, b => b.key_versions().await)
    }

    /// How many rotations of the pseudonym secret the log records
    /// (`node.rotate_pseudonym` records): the newest pseudonym secret
    /// version the node must hold is one more.
    pub async fn pseudonym_rotations(&self) -> Result<i64, StoreError> {
        on_store!(&self.backend, b => b.pseudonym_rotations().await)
    }

    /// Ids of cases from before per-case keys, by id after `after`.
    pub(crate) async fn legacy_cases(
        &self,
        after: &str,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        on_store!(&self.backend, b => b.case_ids(sql::LEGACY_CASES, None, after, limit).await)
    }

    /// Ids of cases not erased and not changed since `cutoff`, by id after
    /// `after`.
    pub(crate) async fn cases_unchanged_since(
        &self,
        cutoff: Millis,
        after: &str,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        on_store!(&self.backend, b => b.case_ids(sql::CASES_UNCHANGED_SINCE, Some(cutoff), after, limit).await)
    }

    /// Stores a consent with its recipients and events (and the write's
    /// idempotency key), in one transaction.
    pub(crate) async fn insert_consent(
        &self,
        consent: &Consent,
        key: Option<&RequestKey>,
    ) -> Result<(), StoreError> {
        on_store!(&self.backend, b => b.insert_consent(consent, key).await)
    }

    /// Appends an event (e.g. a withdrawal) to a consent (and the write's
    /// idempotency key), in one transaction. `false`, and nothing written,
    /// for a withdrawal of a consent withdrawn already (by a call that
    /// raced this one past the gateway's check).
    pub(crate) async fn append_consent_event(
        &self,
        consent_id: &str,
        event: &ConsentEvent,
        key: Option<&RequestKey>,
    ) -> Result<bool, StoreError> {
        on_store!(&self.backend, b => b.append_consent_event(consent_id, event, key).await)
    }

    /// Makes an erasure reach the database's files now. SQLite: a
    /// truncating WAL checkpoint, so that the pages the erasure overwrote
    /// (`PRAGMA secure_delete`) replace the database file's, and the WAL's
    /// older copies of them are cut away; busy (a reader holds an older
    /// snapshot) is an error, and the background checkpoints finish it.
    /// PostgreSQL: nothing (its dead tuples need `VACUUM`, which cannot run
    /// in a transaction and is the operator's: docs/operations.md).
    pub(crate) async fn settle_erasure(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(b) => b.settle_erasure().await,
            Backend::Postgres(_) => Ok(()),
        }
    }

    /// A caller's idempotency key, if stored (whatever its age).
    pub(crate) async fn request_key(
        &self,
        caller: &str,
        request_id: &str,
    ) -> Result<Option<RequestKey>, StoreError> {
        on_store!(&self.backend, b => b.request_key(caller, request_id).await)
    }

    /// Deletes one key (an expired one, before its `request_id` is used
    /// again), or, with `caller` None, every key stored before `before`.
    pub(crate) async fn forget_request_keys(
        &self,
        key: Option<(&str, &str)>,
        before: Millis,
    ) -> Result<(), StoreError> {
        on_store!(&self.backend, b => b.forget_request_keys(key, before).await)
    }

    pub async fn case_meta(&self, case_id: &str) -> Result<Option<CaseMeta>, StoreError> {
        on_store!(&self.backend, b => b.case_meta(case_id).await)
    }

    /// A case's metadata and all its sealed data in one query: a read needs
    /// both, and each query is a round trip to the database.
    pub async fn case_with_data(&self, case_id: &str) -> Result<Option<CaseWithData>, StoreError> {
        on_store!(&self.backend, b => b.case_with_data(case_id).await)
    }

    /// The case a recipient's pseudonym stands for, if it was issued to
    /// that recipient.
    pub async fn resolve_pseudonym(
        &self,
        recipient: &str,
        pseudonym: &str,
    ) -> Result<Option<String>, StoreError> {
        on_store!(&self.backend, b => b.resolve_pseudonym(recipient, pseudonym).await)
    }

    pub(crate) async fn consent(&self, id: &str) -> Result<Option<Consent>, StoreError> {
        let found = on_store!(&self.backend, b => b.load_consents(sql::CONSENT_BY_ID, id).await)?;
        Ok(found.into_iter().next())
    }

    /// All consents of a case with their recipients and events, oldest
    /// first, in one query.
    pub async fn consents_for_case(&self, case_id: &str) -> Result<Vec<Consent>, StoreError> {
        on_store!(&self.backend, b => b.consents_for_case(case_id).await)
    }

    /// The owner's cases by id, after `after` (exclusive), at most `limit`.
    pub(crate) async fn own_cases(
        &self,
        owner: &str,
        after: &str,
        limit: u32,
    ) -> Result<Vec<CaseMeta>, StoreError> {
        on_store!(&self.backend, b => b.cases_by_owner(sql::OWN_CASES, owner, after, limit).await)
    }

    /// Cases of every owner but `participant` by id, after `after`
    /// (exclusive), at most `limit`: those a legal basis may open to it.
    pub(crate) async fn others_cases(
        &self,
        participant: &str,
        after: &str,
        limit: u32,
    ) -> Result<Vec<CaseMeta>, StoreError> {
        on_store!(&self.backend, b => b.cases_by_owner(sql::OTHERS_CASES, participant, after, limit).await)
    }

    /// Cases of other owners with a consent that names this participant or
    /// its role for the purpose and has not been withdrawn. Validity windows
    /// are checked here too; the per-category check at read time still
    /// decides.
    pub(crate) async fn visible_cases(
        &self,
        participant: &str,
        role: Role,
        purpose: &str,
        now: Millis,
        after: &str,
        limit: u32,
    ) -> Result<Vec<CaseMeta>, StoreError> {
        let query = Visible {
            participant,
            role,
            purpose,
            now,
            after,
            limit,
        };
        on_store!(&self.backend, b => b.visible_cases(&query).await)
    }

    /// A page of cases in id order, after `after` (exclusive; empty for the
    /// first page), at most `limit`, each with its sealed data in the three
    /// `categories` (statistics count from these and no others). Bypasses
    /// the read cache: statistics read every case once.
    pub(crate) async fn cases_for_statistics(
        &self,
        categories: [Category; 3],
        after: &str,
        limit: u32,
    ) -> Result<Vec<SealedCase>, StoreError> {
        on_backend!(&self.backend, b => b.cases_for_statistics(categories, after, limit).await)
    }

    /// The statistics release of this key, if one was published.
    pub(crate) async fn statistics_release(
        &self,
        key: &ReleaseKey,
    ) -> Result<Option<StoredRelease>, StoreError> {
        on_store!(&self.backend, b => b.statistics_release(key).await)
    }

    /// Up to `limit` releases, newest quarter first, then by table,
    /// breakdown and scope: of `quarter` only (`2025Q3`) if given; with the
    /// municipalities' own (`own`) only if `include_own`; after the key
    /// `after` in that order if given.
    pub(crate) async fn statistics_releases(
        &self,
        quarter: Option<&str>,
        include_own: bool,
        after: Option<&ReleaseKey>,
        limit: i64,
    ) -> Result<Vec<StoredRelease>, StoreError> {
        on_store!(&self.backend, b => b.statistics_releases(quarter, include_own, after, limit).await)
    }

    /// The quarters with releases (`2025Q3`), newest first, at most `limit`.
    pub(crate) async fn statistics_quarters(&self, limit: i64) -> Result<Vec<String>, StoreError> {
        on_store!(&self.backend, b => b.statistics_quarters(limit).await)
    }

    /// Stores releases in one transaction; a release whose key is already
    /// stored is left as it was (the first one stays).
    pub(crate) async fn insert_statistics_releases(
        &self,
        releases: Vec<StoredRelease>,
    ) -> Result<(), StoreError> {
        on_store!(&self.backend, b => b.insert_statistics_releases(releases).await)
    }

    /// Case ids whose subject has this keyed hash of an identifier
    /// (`kind`: `v_number` or `bsn`).
    pub(crate) async fn cases_by_subject(
        &self,
        kind: &str,
        digest: &str,
    ) -> Result<Vec<String>, StoreError> {
        on_store!(&self.backend, b => b.cases_by_subject(kind, digest).await)
    }

    /// Number of entries in the log (positions are 0..size, no gaps).
    pub async fn log_size(&self) -> Result<i64, StoreError> {
        on_store!(&self.backend, b => b.log_size().await)
    }

    /// Hash tile `level`/`index` as stored (C2SP tlog-tiles `tile/L/N`):
    /// the hashes of tree level `8·level`, nodes `256·index ..`, 32 bytes
    /// each, as many as the tree has so far (up to 256: a partial tile at
    /// the tree's right edge, whose first `W` hashes are `tile/L/N.p/W`);
    /// `None` for a tile beyond the tree. Read natively from `log_tiles` or,
    /// for the growing level-0 tile, its edge rows.
    pub async fn hash_tile(&self, level: u32, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let tile = crate::tlog::layout::TileId { level, index };
        on_store!(&self.backend, b => b.hash_tile(tile).await)
    }

    /// The stored hashes of the given perfect subtrees (those present).
    pub(crate) async fn merkle_nodes(
        &self,
        ids: &[NodeId],
    ) -> Result<HashMap<NodeId, Hash>, StoreError> {
        on_store!(&self.backend, b => b.merkle_nodes(ids).await)
    }

    /// Leaves (position, record bytes) from `from` on, at most `limit`, in
    /// order.
    pub(crate) async fn log_leaves(
        &self,
        from: i64,
        limit: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        on_store!(&self.backend, b => b.log_leaves(from, limit).await)
    }

    /// The position of a request's access record.
    pub(crate) async fn log_position(&self, request_id: &str) -> Result<Option<i64>, StoreError> {
        on_store!(&self.backend, b => b.log_position(request_id).await)
    }

    /// The versions of this binary's migrations the database has not had
    /// (none: its schema is current), read without changing anything: a
    /// store opened without migrating may be behind, and what reads it
    /// says so rather than failing on a missing table.
    pub(crate) async fn pending_migrations(&self) -> Result<Vec<i64>, StoreError> {
        on_store!(&self.backend, b => b.pending_migrations().await)
    }

    pub async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        on_store!(&self.backend, b => b.latest_checkpoint().await)
    }

    /// The checkpoint signed at exactly `size` entries.
    pub(crate) async fn checkpoint(
        &self,
        size: i64,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        on_store!(&self.backend, b => b.checkpoint(size).await)
    }

    /// Every stored checkpoint, smallest first.
    pub async fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        on_store!(&self.backend, b => b.checkpoints().await)
    }

    /// Log rows matching `filter`, from position `start` on, at most
    /// `limit`, in order.
    pub(crate) async fn query_log(
        &self,
        filter: &LogFilter,
        start: i64,
        limit: i64,
    ) -> Result<Vec<LogRow>, StoreError> {
        Ok(self.query_log_page(filter, start, limit).await?.rows)
    }

    /// [`Store::query_log`], and for a query by case how far the index of
    /// the log by case had caught up. The answer is complete either way:
    /// entries the index does not hold yet are read from the log itself.
    pub(crate) async fn query_log_page(
        &self,
        filter: &LogFilter,
        start: i64,
        limit: i64,
    ) -> Result<LogPage, StoreError> {
        let (rows, indexed_upto) =
            on_store!(&self.backend, b => b.query_log(filter, start, limit).await)?;
        Ok(LogPage { rows, indexed_upto })
    }

    /// What is wrong with the index of the log by case (migration 0022),
    /// for `sluis audit verify`: how far it has caught up, the first
    /// `limit` entries below that which have a case but no index row, and
    /// the first `limit` index rows that no such entry accounts for (for an
    /// entry not yet indexed, for none, or naming another case). It is
    /// checked against the entries' `case_id` column, which the verifier
    /// checks against the signed records.
    pub(crate) async fn index_problems(&self, limit: i64) -> Result<IndexProblems, StoreError> {
        on_store!(&self.backend, b => b.index_problems(limit).await)
    }

    /// Log rows that name a subject, from position `start` on, at most
    /// `limit`, in order: those of its case (`case_id`) and those that name
    /// its audit-domain pseudonym among their other subjects.
    pub(crate) async fn subject_log(
        &self,
        case_id: &str,
        subject: &str,
        start: i64,
        limit: i64,
    ) -> Result<LogPage, StoreError> {
        let (rows, upto) =
            on_store!(&self.backend, b => b.subject_log(case_id, subject, start, limit).await)?;
        Ok(LogPage {
            rows,
            indexed_upto: Some(upto),
        })
    }

    /// The log rows of emergency accesses (their alerts, migration 0009),
    /// from position `start` on, at most `limit`, in order: only those not
    /// yet reviewed unless `include_closed`.
    pub(crate) async fn emergency_alerts(
        &self,
        start: i64,
        include_closed: bool,
        limit: i64,
    ) -> Result<Vec<LogRow>, StoreError> {
        on_store!(&self.backend, b => b.emergency_alerts(start, include_closed, limit).await)
    }

    /// The log row of the review that closed the alert of the emergency
    /// access at position `access_seq`, if one did.
    pub(crate) async fn emergency_review(
        &self,
        access_seq: i64,
    ) -> Result<Option<LogRow>, StoreError> {
        on_store!(&self.backend, b => b.emergency_review(access_seq).await)
    }

    /// Access-log rows from position `from` on, at most `limit`.
    pub async fn access_log(&self, from: i64, limit: i64) -> Result<Vec<LogRow>, StoreError> {
        self.query_log(&LogFilter::default(), from, limit).await
    }

    /// Rows in the access log (counted; [`Store::log_size`] is the next
    /// position).
    pub async fn access_log_len(&self) -> Result<i64, StoreError> {
        on_store!(&self.backend, b => b.access_log_len().await)
    }

    /// Reads the whole log and its stored tree in bulk, for `sluis audit
    /// verify`: chunks arrive in order on the returned channel, which closes
    /// after the last; dropping the receiver stops the reader. The scan
    /// sees one state of the log even while the node appends. See
    /// [`scan`] for what a chunk holds.
    pub(crate) fn scan_log(&self) -> mpsc::Receiver<Result<Chunk, StoreError>> {
        on_backend!(&self.backend, b => b.scan_log())
    }
}

impl LogSink {
    /// Appends access records at positions `first_seq..`, the pseudonyms
    /// their requests issued, the tree nodes they complete and optionally a
    /// checkpoint, in one transaction: one fsync for the batch, and the
    /// log, its tree and its checkpoints never disagree after a crash.
    /// With no rows, only the nodes and the checkpoint are stored (the
    /// writer repairing a tree).
    ///
    /// Errors: [`StoreError::Raced`] (nothing written) when the log does
    /// not end at `first_seq`; any other error also writes nothing.
    pub(crate) async fn append(
        &self,
        first_seq: i64,
        rows: &[LogRow],
        issued: &[IssuedPseudonym],
        nodes: &[(NodeId, Hash)],
        checkpoint: Option<&StoredCheckpoint>,
    ) -> Result<(), StoreError> {
        let append = Append {
            first_seq,
            rows,
            issued,
            nodes,
            checkpoint,
            dry_run: false,
        };
        on_store!(&self.backend, b => b.append_log(&append).await)
    }

    /// Whether the log can be written now: appends `row` at `first_seq`
    /// the way [`LogSink::append`] does (same statements, same triggers,
    /// same locks) in a transaction that is then rolled back, so nothing
    /// is stored. For the writer to find out, after a failed append and
    /// with no request to try, that the database takes records again.
    ///
    /// Errors: those of [`LogSink::append`].
    pub(crate) async fn try_append(&self, first_seq: i64, row: &LogRow) -> Result<(), StoreError> {
        let append = Append {
            first_seq,
            rows: std::slice::from_ref(row),
            issued: &[],
            nodes: &[],
            checkpoint: None,
            dry_run: true,
        };
        on_store!(&self.backend, b => b.append_log(&append).await)
    }

    /// Stores a checkpoint on its own (one signed after the last append).
    pub(crate) async fn append_checkpoint(&self, cp: &StoredCheckpoint) -> Result<(), StoreError> {
        self.append(0, &[], &[], &[], Some(cp)).await
    }

    /// Brings the index of the log by case (`log_index_case`, migration
    /// 0022) up by at most `most` entries, in a transaction of its own:
    /// the index is kept behind the log, out of the transaction an answer
    /// waits for, and queries read what it does not hold yet from the log.
    /// The log's writer calls this between batches. A crash loses at most
    /// this transaction, which the next call redoes. Returns how far the
    /// index has caught up and the log's size, both in entries.
    pub(crate) async fn follow_index(&self, most: i64) -> Result<(i64, i64), StoreError> {
        on_store!(&self.backend, b => b.follow_index(most).await)
    }
}

/// Copies the live SQLite database at `src` into the new file `dst`, as
/// of one commit, while a node may be writing it (SQLite's online backup);
/// a locked database is retried for up to `busy`. Returns the pages
/// copied. Errors: [`StoreError::Open`] for a file that cannot be opened,
/// [`StoreError::Unavailable`] if it stays locked.
pub fn backup_sqlite(src: &Path, dst: &Path, busy: std::time::Duration) -> Result<u64, StoreError> {
    sqlite::backup::copy(src, dst, busy)
}

/// The URL of a SQLite file, created if missing.
pub(crate) fn sqlite_url(path: &Path) -> String {
    sqlite::url_of(path)
}

/// A database URL without its password, for messages and logs:
/// `postgres://u:secret@h/db` → `postgres://u:***@h/db`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme && url[scheme + 3..at].contains(':') => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_shows() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }

    /// A store of the backend the tests run on (`SLUIS_TEST_BACKEND`): a
    /// fresh SQLite file, or a fresh PostgreSQL database on the test server.
    async fn test_store(dir: &Path) -> (Store, LogSink) {
        if std::env::var("SLUIS_TEST_BACKEND").as_deref() == Ok("postgres") {
            use sqlx::Connection;
            let admin = std::env::var("SLUIS_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
            let name = format!("sluis_u_{}", uuid::Uuid::now_v7().simple());
            let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut c)
                .await
                .unwrap();
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            let url = format!("{base}/{name}");
            return Store::open(&url, &PoolSettings::default(), true)
                .await
                .unwrap();
        }
        Store::open_sqlite(&dir.join("t.db")).await.unwrap()
    }

    fn entry(case_id: Option<&str>, n: usize) -> LogRow {
        LogRow {
            seq: 0,
            request_id: format!("0190f2a0-0000-7000-8000-{n:012}"),
            at: 1_700_000_000_000 + n as i64,
            caller: "ngo".into(),
            role: "ngo".into(),
            method: "GetCase".into(),
            case_id: case_id.map(str::to_string),
            subject: None,
            purpose: None,
            decision: "allowed".into(),
            record: vec![n as u8],
            subjects: Vec::new(),
            emergency: false,
            closes: None,
        }
    }

    /// The index of the log by case follows the log in batches of its own;
    /// a query by case right after appends (the index behind) still finds
    /// every entry of the case, and says how far the index had caught up.
    #[tokio::test]
    async fn a_query_by_case_is_complete_while_its_index_is_behind() {
        const A: &str = "0190f2a0-0000-7000-8000-00000000000a";
        const B: &str = "0190f2a0-0000-7000-8000-00000000000b";
        let dir = tempfile::tempdir().unwrap();
        let (store, sink) = test_store(dir.path()).await;
        let rows: Vec<LogRow> = (0..12)
            .map(|n| entry([Some(A), Some(B), None][n % 3], n))
            .collect();
        sink.append(0, &rows, &[], &[], None).await.unwrap();
        let of_a: Vec<i64> = (0..12).filter(|n| n % 3 == 0).collect();
        let by_a = LogFilter {
            case_id: Some(A.into()),
            ..LogFilter::default()
        };
        let seqs = |p: &LogPage| p.rows.iter().map(|r| r.seq).collect::<Vec<_>>();
        let mut seen = Vec::new();
        for step in [0, 5, 100] {
            if step > 0 {
                let (upto, size) = sink.follow_index(step).await.unwrap();
                assert_eq!(size, 12);
                assert!(upto <= 12, "{upto}");
            }
            let page = store.query_log_page(&by_a, 0, 100).await.unwrap();
            assert_eq!(seqs(&page), of_a, "after following {step}");
            let upto = page.indexed_upto.expect("a query by case says it");
            seen.push(upto);
            // From a later position, and a page at a time: the same.
            let page = store.query_log_page(&by_a, 4, 2).await.unwrap();
            assert_eq!(seqs(&page), vec![6, 9], "after following {step}");
            let report = store.subject_log(A, "", 0, 100).await.unwrap();
            assert_eq!(seqs(&report), of_a, "after following {step}");
            assert_eq!(report.indexed_upto, Some(upto));
        }
        // Behind, part-way, caught up.
        assert_eq!(seen, vec![0, 5, 12]);
        let found = store.index_problems(10).await.unwrap();
        assert_eq!((found.upto, found.size), (12, 12));
        assert!(
            found.missing.is_empty() && found.extra.is_empty(),
            "{found:?}"
        );
        // Another batch: behind again, answers still complete.
        sink.append(12, &[entry(Some(A), 12)], &[], &[], None)
            .await
            .unwrap();
        let page = store.query_log_page(&by_a, 0, 100).await.unwrap();
        assert_eq!(seqs(&page), vec![0, 3, 6, 9, 12]);
        assert_eq!(page.indexed_upto, Some(12));
        // A query not by case uses no such index and says nothing.
        let all = store
            .query_log_page(&LogFilter::default(), 0, 100)
            .await
            .unwrap();
        assert_eq!(all.rows.len(), 13);
        assert_eq!(all.indexed_upto, None);
    }

    #[tokio::test]
    async fn a_url_of_another_kind_is_refused_without_its_password() {
        let e = Store::open("mysql://u:hunter2@h/db", &PoolSettings::default(), false)
            .await
            .err()
            .expect("refused");
        assert!(matches!(e, StoreError::BadUrl { .. }), "{e:?}");
        let text = e.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("sqlite://FILE"), "{text}");
    }
}
