//! Persistence: cases (sealed), consents with their append-only events, the
//! pseudonyms issued, and the access log, in SQLite or PostgreSQL through
//! sqlx; the schema is embedded in the binary and applied on open. On SQLite
//! the three paths that run per request or per entry bypass sqlx's
//! per-statement thread hops: log appends (`sqlite_log`), point reads of the
//! request path (`sqlite_read`) and the verifier's bulk read (`log_scan`).
//!
//! Queries are plain `sqlx::query` calls rather than the `query!` macros, so
//! building needs neither a live database nor committed offline data.

pub mod scan;
pub mod sqlite;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::Executor;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, SqlSafeStr};
use sqlx::{AssertSqlSafe, Row, SqlStr};

use std::collections::HashMap;

use crate::store::sqlite::cache::{CaseWithData, ReadCache};
use crate::store::sqlite::read::SqliteReader;
use crate::store::sqlite::writer::SqliteAppender;
use crate::tlog::merkle::{Hash, NodeId};

use crate::model::consent::{Consent, ConsentEvent, EventKind, Millis, Recipient};
use crate::model::{Category, Role};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("another writer appended to the log first (it now has {size} entries)")]
    Raced { size: i64 },
}

/// Which database a store talks to. Both run the same queries; this decides
/// the placeholder syntax, the migrations and how appends are sequenced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    /// Queries are written once with `?` / `?N` placeholders; PostgreSQL
    /// wants `$N`.
    fn q(self, sql: &'static str) -> SqlStr {
        match self {
            Backend::Sqlite => SqlStr::from_static(sql),
            Backend::Postgres => AssertSqlSafe(to_dollar_placeholders(sql)).into_sql_str(),
        }
    }

    fn q_owned(self, sql: &str) -> SqlStr {
        match self {
            Backend::Sqlite => AssertSqlSafe(sql.to_string()).into_sql_str(),
            Backend::Postgres => AssertSqlSafe(to_dollar_placeholders(sql)).into_sql_str(),
        }
    }
}

/// `?` → `$1, $2, …` and `?N` → `$N`, outside string literals.
fn to_dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    let mut in_str = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_str = !in_str;
                out.push(c);
            }
            '?' if !in_str => {
                out.push('$');
                if chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                    while let Some(d) = chars.peek().copied().filter(|d| d.is_ascii_digit()) {
                        out.push(d);
                        chars.next();
                    }
                } else {
                    n += 1;
                    out.push_str(&n.to_string());
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// Pool sizes and timeouts (the `[database]` section of the config).
#[derive(Clone, Debug)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The database file, for the bulk log reader (SQLite only).
    sqlite_file: Option<std::sync::Arc<std::path::PathBuf>>,
    /// Cases and consents in memory, when this process is the database's
    /// only writer (see `read_cache`).
    cache: Option<std::sync::Arc<ReadCache>>,
    /// Log appends on SQLite (see `sqlite_log`).
    appender: Option<std::sync::Arc<SqliteAppender>>,
    /// The request path's point reads on SQLite (see `sqlite_read`).
    reader: Option<std::sync::Arc<SqliteReader>>,
    /// Taken by every write on SQLite, in arrival order. SQLite has one
    /// writer at a time and makes the others poll (busy_timeout, up to
    /// 100 ms between tries); with the log appended back to back, a write
    /// that polls can miss every gap and wait a second or more. Queuing
    /// here instead hands the file's write lock over in order.
    write_gate: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// Held for the length of a log-append transaction on PostgreSQL, so that
/// replicas sharing one database append one after the other: whoever holds
/// it is the log's sequencer for that batch.
const LOG_LOCK: i64 = 0x736c_7569_735f_6c6f; // "sluis_lo"

fn migrator(backend: Backend) -> Migrator {
    let m = |version, name: &'static str, sql: &'static str| {
        Migration::new(
            version,
            name.into(),
            MigrationType::Simple,
            SqlStr::from_static(sql),
            false,
        )
    };
    Migrator::with_migrations(match backend {
        Backend::Sqlite => vec![
            m(
                1,
                "initial",
                include_str!("../../migrations/sqlite/0001_initial.sql"),
            ),
            m(
                2,
                "merkle log",
                include_str!("../../migrations/sqlite/0002_merkle_log.sql"),
            ),
        ],
        Backend::Postgres => vec![
            m(
                1,
                "initial",
                include_str!("../../migrations/postgres/0001_initial.sql"),
            ),
            m(
                2,
                "merkle log",
                include_str!("../../migrations/postgres/0002_merkle_log.sql"),
            ),
        ],
    })
}

/// A signed checkpoint as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub size: i64,
    pub root: Vec<u8>,
    pub at: Millis,
    pub note: String,
}

/// Filters of a log query; empty fields match everything.
#[derive(Clone, Debug, Default)]
pub struct LogFilter {
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    pub caller: Option<String>,
    pub role: Option<String>,
    pub method: Option<String>,
    pub purpose: Option<String>,
    pub decision: Option<String>,
    pub case_id: Option<String>,
    pub subject: Option<String>,
}

#[derive(Clone, Debug)]
pub struct CaseMeta {
    pub id: String,
    pub owner: String,
    pub subject_ref: Vec<u8>,
    pub version: i64,
    pub updated_at: Millis,
}

pub struct NewCase {
    pub id: String,
    pub owner: String,
    pub subject_ref: Vec<u8>,
    pub sealed: Vec<(Category, Vec<u8>)>,
    pub now: Millis,
    /// (kind, keyed hash) of the subject's identifiers (`subject_index`).
    pub subject_index: Vec<(String, String)>,
    /// The pseudonym the owner receives for the case.
    pub owner_pseudonym: String,
}

/// A pseudonym a request handed out, stored in the same transaction as that
/// request's access record, so its recipient can come back with it.
#[derive(Clone, Debug)]
pub struct IssuedPseudonym {
    pub recipient: String,
    pub pseudonym: String,
    pub case_id: String,
}

/// Stores an issued pseudonym unless it is known; a case that does not
/// exist (it never is deleted, but the batch must not fail for it) stores
/// nothing.
pub(crate) const INSERT_ISSUED: &str = "INSERT INTO pseudonyms (recipient, pseudonym, case_id)
     SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM cases WHERE id = ?3)
     ON CONFLICT DO NOTHING";

/// A row of the access log as stored.
#[derive(Clone, Debug)]
pub struct LogRow {
    pub seq: i64,
    pub request_id: String,
    pub at: Millis,
    pub caller: String,
    pub role: String,
    pub method: String,
    pub case_id: Option<String>,
    pub subject: Option<String>,
    pub purpose: Option<String>,
    pub decision: String,
    pub record: Vec<u8>,
}

/// Consents joined with their recipients and events: one row per
/// (consent, recipient, event), in the order `load_consents` folds them
/// (recipients by kind and value, events by sequence). Every consent has at
/// least one of each, written with it; the LEFT JOINs keep a damaged one
/// visible instead of dropping it.
const CASE_WITH_DATA: &str =
    "SELECT c.id, c.owner, c.subject_ref, c.version, c.updated_at, d.category, d.sealed
     FROM cases c LEFT JOIN case_data d ON d.case_id = c.id WHERE c.id = ?";

fn category_of(code: i64) -> Result<Category, StoreError> {
    Category::from_code(code as i32)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown category code {code}")))
}

const CONSENT_BY_ID: &str = "SELECT c.id, c.case_id, c.recorded_by, c.categories, c.purposes, c.valid_from, c.valid_until, c.evidence_ref, c.created_at, r.kind, r.value, e.seq, e.kind, e.at, e.by, e.note FROM consents c LEFT JOIN consent_recipients r ON r.consent_id = c.id LEFT JOIN consent_events e ON e.consent_id = c.id WHERE c.id = ? ORDER BY c.created_at, c.id, r.kind, r.value, e.seq";
const CONSENTS_BY_CASE: &str = "SELECT c.id, c.case_id, c.recorded_by, c.categories, c.purposes, c.valid_from, c.valid_until, c.evidence_ref, c.created_at, r.kind, r.value, e.seq, e.kind, e.at, e.by, e.note FROM consents c LEFT JOIN consent_recipients r ON r.consent_id = c.id LEFT JOIN consent_events e ON e.consent_id = c.id WHERE c.case_id = ? ORDER BY c.created_at, c.id, r.kind, r.value, e.seq";

impl Store {
    /// Opens (creating if needed) a SQLite database file with default pool
    /// settings and applies the migrations.
    pub async fn open_sqlite(path: &Path) -> Result<Store, StoreError> {
        Store::open(&sqlite_url(path), &PoolSettings::default(), true).await
    }

    /// Opens the database at `url` (`sqlite://FILE` or `postgres://…`).
    /// SQLite runs in WAL mode with `synchronous=FULL`, so a committed
    /// transaction survives power loss. `migrate` applies the embedded
    /// migrations first.
    pub async fn open(
        url: &str,
        settings: &PoolSettings,
        migrate: bool,
    ) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url).ok_or_else(|| {
            StoreError::Corrupt("database must be a sqlite:// or postgres:// URL".into())
        })?;
        let mut options = AnyPoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .acquire_timeout(settings.acquire_timeout);
        if backend == Backend::Sqlite {
            // A SQLite connection is a file handle in this process: pinging
            // it before every use (sqlx's default) tests nothing and costs a
            // round trip to its worker thread per query. It is still pinged
            // when it goes back to the pool.
            options = options.test_before_acquire(false);
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; \
                         PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 8000;",
                    )
                    .await?;
                    Ok(())
                })
            });
        }
        let sqlite_file = match backend {
            Backend::Sqlite => Some(std::sync::Arc::new(
                sqlx::sqlite::SqliteConnectOptions::from_str(url)?
                    .get_filename()
                    .to_path_buf(),
            )),
            Backend::Postgres => None,
        };
        let pool = options.connect(url).await?;
        let store = Store {
            pool,
            backend,
            appender: sqlite_file
                .as_ref()
                .map(|f| std::sync::Arc::new(SqliteAppender::start(f.to_path_buf()))),
            reader: sqlite_file
                .as_ref()
                .map(|f| std::sync::Arc::new(SqliteReader::start(f.to_path_buf()))),
            sqlite_file,
            cache: None,
            write_gate: Default::default(),
        };
        if migrate {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// Applies the embedded migrations (PostgreSQL takes an advisory lock,
    /// so replicas starting together migrate once).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrator(self.backend).run(&self.pool).await?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Keeps up to `max_entries` cases and consent lists in memory. Only for
    /// a process that is the only writer of cases and consents: a node on
    /// its own SQLite file (never PostgreSQL replicas, which change the
    /// data behind each other's backs).
    pub fn with_read_cache(mut self, max_entries: usize) -> Store {
        self.cache = Some(std::sync::Arc::new(ReadCache::new(max_entries)));
        self
    }

    /// Held for the length of a write (SQLite only; PostgreSQL has row
    /// locks and queues writers itself).
    async fn gate(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.backend {
            Backend::Sqlite => Some(self.write_gate.lock().await),
            Backend::Postgres => None,
        }
    }

    fn forget_case(&self, case_id: &str) {
        if let Some(c) = &self.cache {
            c.forget_case(case_id);
        }
    }

    /// The SQLite database file, when this store is one.
    pub fn sqlite_file(&self) -> Option<&Path> {
        self.sqlite_file.as_deref().map(|p| p.as_path())
    }

    /// Copies what the SQLite write-ahead log holds into the database file,
    /// as far as readers allow, without waiting for them. A node runs this
    /// in the background, so that a log append seldom pays for it (SQLite
    /// otherwise checkpoints in whichever commit crosses the WAL limit,
    /// which is then the slowest request of its second). No-op on
    /// PostgreSQL.
    pub async fn checkpoint_wal(&self) -> Result<(), StoreError> {
        if self.backend == Backend::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Whether the database answers, for health reporting.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// The PostgreSQL database this store works in (`None` on SQLite).
    pub async fn postgres_database(&self) -> Result<Option<String>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(
                sqlx::query_scalar("SELECT current_database()::text")
                    .fetch_one(&self.pool)
                    .await?,
            ),
        })
    }

    pub async fn close(&self) {
        if let Some(a) = &self.appender {
            a.close().await;
        }
        self.pool.close().await;
    }

    pub async fn insert_case(&self, case: NewCase) -> Result<(), StoreError> {
        let id = case.id.clone();
        let result = self.insert_case_tx(case).await;
        self.forget_case(&id);
        result
    }

    async fn insert_case_tx(&self, case: NewCase) -> Result<(), StoreError> {
        let _gate = self.gate().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query(self.backend.q(
            "INSERT INTO cases (id, owner, subject_ref, version, created_at, updated_at)
             VALUES (?, ?, ?, 1, ?, ?)",
        ))
        .bind(&case.id)
        .bind(&case.owner)
        .bind(&case.subject_ref)
        .bind(case.now)
        .bind(case.now)
        .execute(&mut *tx)
        .await?;
        for (cat, sealed) in &case.sealed {
            sqlx::query(
                self.backend
                    .q("INSERT INTO case_data (case_id, category, sealed) VALUES (?, ?, ?)"),
            )
            .bind(&case.id)
            .bind(i64::from(cat.code()))
            .bind(sealed)
            .execute(&mut *tx)
            .await?;
        }
        insert_subject_index(self.backend, &mut tx, &case.id, &case.subject_index).await?;
        sqlx::query(self.backend.q(
            "INSERT INTO pseudonyms (recipient, pseudonym, case_id) VALUES (?, ?, ?)
             ON CONFLICT DO NOTHING",
        ))
        .bind(&case.owner)
        .bind(&case.owner_pseudonym)
        .bind(&case.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces the given categories and bumps the version. Returns the new
    /// version, or None if the case does not exist.
    pub async fn update_case(
        &self,
        case_id: &str,
        sealed: &[(Category, Vec<u8>)],
        subject_index: &[(String, String)],
        now: Millis,
    ) -> Result<Option<i64>, StoreError> {
        let result = self
            .update_case_tx(case_id, sealed, subject_index, now)
            .await;
        self.forget_case(case_id);
        result
    }

    async fn update_case_tx(
        &self,
        case_id: &str,
        sealed: &[(Category, Vec<u8>)],
        subject_index: &[(String, String)],
        now: Millis,
    ) -> Result<Option<i64>, StoreError> {
        let _gate = self.gate().await;
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(self.backend.q(
            "UPDATE cases SET version = version + 1, updated_at = ? WHERE id = ? RETURNING version",
        ))
        .bind(now)
        .bind(case_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        for (cat, blob) in sealed {
            sqlx::query(self.backend.q(
                "INSERT INTO case_data (case_id, category, sealed) VALUES (?, ?, ?)
                 ON CONFLICT (case_id, category) DO UPDATE SET sealed = excluded.sealed",
            ))
            .bind(case_id)
            .bind(i64::from(cat.code()))
            .bind(blob)
            .execute(&mut *tx)
            .await?;
        }
        insert_subject_index(self.backend, &mut tx, case_id, subject_index).await?;
        tx.commit().await?;
        Ok(Some(row.get::<i64, _>(0)))
    }

    pub async fn case_meta(&self, case_id: &str) -> Result<Option<CaseMeta>, StoreError> {
        let row = sqlx::query(
            self.backend
                .q("SELECT id, owner, subject_ref, version, updated_at FROM cases WHERE id = ?"),
        )
        .bind(case_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| CaseMeta {
            id: r.get(0),
            owner: r.get(1),
            subject_ref: r.get(2),
            version: r.get(3),
            updated_at: r.get(4),
        }))
    }

    /// A case's metadata and all its sealed data in one query: a read needs
    /// both, and each query is a round trip to the database.
    pub async fn case_with_data(&self, case_id: &str) -> Result<Option<CaseWithData>, StoreError> {
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
        if let Some(reader) = &self.reader {
            let id = case_id.to_string();
            return reader
                .read(move |conn| {
                    let mut q = conn.prepare_cached(CASE_WITH_DATA)?;
                    let mut rows = q.query([&id])?;
                    let mut out: Option<CaseWithData> = None;
                    while let Some(r) = rows.next()? {
                        if out.is_none() {
                            let meta = CaseMeta {
                                id: r.get(0)?,
                                owner: r.get(1)?,
                                subject_ref: r.get(2)?,
                                version: r.get(3)?,
                                updated_at: r.get(4)?,
                            };
                            out = Some((meta, Vec::new()));
                        }
                        let Some((_, data)) = out.as_mut() else { break };
                        if let Some(code) = r.get::<_, Option<i64>>(5)? {
                            data.push((category_of(code)?, r.get(6)?));
                        }
                    }
                    Ok(out)
                })
                .await;
        }
        let rows = sqlx::query(self.backend.q(CASE_WITH_DATA))
            .bind(case_id)
            .fetch_all(&self.pool)
            .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let meta = CaseMeta {
            id: first.get(0),
            owner: first.get(1),
            subject_ref: first.get(2),
            version: first.get(3),
            updated_at: first.get(4),
        };
        let mut data = Vec::with_capacity(rows.len());
        for r in &rows {
            if let Some(code) = r.get::<Option<i64>, _>(5) {
                data.push((category_of(code)?, r.get(6)));
            }
        }
        Ok(Some((meta, data)))
    }

    /// The categories the case holds data in.
    pub async fn case_categories(&self, case_id: &str) -> Result<Vec<Category>, StoreError> {
        let rows = sqlx::query(
            self.backend
                .q("SELECT category FROM case_data WHERE case_id = ?"),
        )
        .bind(case_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let code: i64 = r.get(0);
                Category::from_code(code as i32)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown category code {code}")))
            })
            .collect()
    }

    /// Sealed data of the given categories (only those present).
    pub async fn case_data(
        &self,
        case_id: &str,
        categories: &[Category],
    ) -> Result<Vec<(Category, Vec<u8>)>, StoreError> {
        let rows = sqlx::query(
            self.backend
                .q("SELECT category, sealed FROM case_data WHERE case_id = ?"),
        )
        .bind(case_id)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let code: i64 = r.get(0);
            let cat = Category::from_code(code as i32)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown category code {code}")))?;
            if categories.contains(&cat) {
                out.push((cat, r.get(1)));
            }
        }
        Ok(out)
    }

    pub async fn resolve_pseudonym(
        &self,
        recipient: &str,
        pseudonym: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            self.backend
                .q("SELECT case_id FROM pseudonyms WHERE recipient = ? AND pseudonym = ?"),
        )
        .bind(recipient)
        .bind(pseudonym)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.get(0)))
    }

    pub async fn insert_consent(&self, c: &Consent) -> Result<(), StoreError> {
        let result = self.insert_consent_tx(c).await;
        self.forget_case(&c.case_id);
        result
    }

    async fn insert_consent_tx(&self, c: &Consent) -> Result<(), StoreError> {
        let _gate = self.gate().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query(self.backend.q(
            "INSERT INTO consents (id, case_id, recorded_by, categories, purposes, valid_from,
                                   valid_until, evidence_ref, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(&c.id)
        .bind(&c.case_id)
        .bind(&c.recorded_by)
        .bind(join(c.categories.iter().map(|c| c.as_str())))
        .bind(join(c.purposes.iter().map(String::as_str)))
        .bind(c.valid_from)
        .bind(c.valid_until)
        .bind(&c.evidence_ref)
        .bind(c.created_at)
        .execute(&mut *tx)
        .await?;
        for r in &c.recipients {
            let (kind, value) = match r {
                Recipient::Participant(p) => ("participant", p.as_str()),
                Recipient::Role(role) => ("role", role.as_str()),
            };
            sqlx::query(self.backend.q(
                "INSERT INTO consent_recipients (consent_id, kind, value) VALUES (?, ?, ?)
                 ON CONFLICT DO NOTHING",
            ))
            .bind(&c.id)
            .bind(kind)
            .bind(value)
            .execute(&mut *tx)
            .await?;
        }
        for e in &c.events {
            insert_event(self.backend, &mut tx, &c.id, e).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn append_consent_event(
        &self,
        consent_id: &str,
        event: &ConsentEvent,
    ) -> Result<(), StoreError> {
        let _gate = self.gate().await;
        let result = async {
            let mut tx = self.pool.begin().await?;
            insert_event(self.backend, &mut tx, consent_id, event).await?;
            tx.commit().await?;
            Ok::<(), StoreError>(())
        }
        .await;
        // Which case the consent belongs to is not at hand; events are
        // rare next to reads, so all cached consents go.
        if let Some(c) = &self.cache {
            c.forget_all_consents();
        }
        result
    }

    pub async fn consent(&self, id: &str) -> Result<Option<Consent>, StoreError> {
        let rows = self.load_consents(CONSENT_BY_ID, id).await?;
        Ok(rows.into_iter().next())
    }

    /// All consents of a case with their recipients and events, oldest first.
    pub async fn consents_for_case(&self, case_id: &str) -> Result<Vec<Consent>, StoreError> {
        let Some(cache) = &self.cache else {
            return self.load_consents(CONSENTS_BY_CASE, case_id).await;
        };
        if let Some(hit) = cache.consents(case_id) {
            return Ok((*hit).clone());
        }
        let read_at = cache.generation();
        let read = self.load_consents(CONSENTS_BY_CASE, case_id).await?;
        Ok((*cache.keep_consents(read_at, case_id, read)).clone())
    }

    /// Consents with their recipients and events in one query (it runs on
    /// every read: one round trip instead of one plus two per consent). The
    /// rows are one per (consent, recipient, event), folded here in order.
    async fn load_consents(
        &self,
        sql: &'static str,
        key: &str,
    ) -> Result<Vec<Consent>, StoreError> {
        if let Some(reader) = &self.reader {
            let key = key.to_string();
            return reader
                .read(move |conn| {
                    let mut q = conn.prepare_cached(sql)?;
                    let mut rows = q.query([&key])?;
                    let mut joined = Vec::new();
                    while let Some(r) = rows.next()? {
                        joined.push(ConsentJoinRow {
                            id: r.get(0)?,
                            case_id: r.get(1)?,
                            recorded_by: r.get(2)?,
                            categories: r.get(3)?,
                            purposes: r.get(4)?,
                            valid_from: r.get(5)?,
                            valid_until: r.get(6)?,
                            evidence_ref: r.get(7)?,
                            created_at: r.get(8)?,
                            recipient: match (r.get(9)?, r.get(10)?) {
                                (Some(kind), Some(value)) => Some((kind, value)),
                                _ => None,
                            },
                            event: match r.get::<_, Option<i64>>(11)? {
                                Some(seq) => {
                                    Some((seq, r.get(12)?, r.get(13)?, r.get(14)?, r.get(15)?))
                                }
                                None => None,
                            },
                        });
                    }
                    fold_consents(joined)
                })
                .await;
        }
        let rows = sqlx::query(self.backend.q(sql))
            .bind(key)
            .fetch_all(&self.pool)
            .await?;
        fold_consents(rows.iter().map(|r| {
            ConsentJoinRow {
                id: r.get(0),
                case_id: r.get(1),
                recorded_by: r.get(2),
                categories: r.get(3),
                purposes: r.get(4),
                valid_from: r.get(5),
                valid_until: r.get(6),
                evidence_ref: r.get(7),
                created_at: r.get(8),
                recipient: match (r.get(9), r.get(10)) {
                    (Some(kind), Some(value)) => Some((kind, value)),
                    _ => None,
                },
                event: r
                    .get::<Option<i64>, _>(11)
                    .map(|seq| (seq, r.get(12), r.get(13), r.get(14), r.get(15))),
            }
        }))
    }

    /// The caller's own cases, by id, after `after` (exclusive).
    pub async fn own_cases(
        &self,
        owner: &str,
        after: &str,
        limit: u32,
    ) -> Result<Vec<CaseMeta>, StoreError> {
        let rows = sqlx::query(self.backend.q(
            "SELECT id, owner, subject_ref, version, updated_at FROM cases
             WHERE owner = ? AND id > ? ORDER BY id LIMIT ?",
        ))
        .bind(owner)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(meta).collect())
    }

    /// Cases of other owners with a consent that names this participant or
    /// its role for the purpose and has not been withdrawn. Validity windows
    /// are checked here too; the per-category check at read time still decides.
    pub async fn visible_cases(
        &self,
        participant: &str,
        role: Role,
        purpose: &str,
        now: Millis,
        after: &str,
        limit: u32,
    ) -> Result<Vec<CaseMeta>, StoreError> {
        let rows = sqlx::query(self.backend.q(
            "SELECT DISTINCT c.id, c.owner, c.subject_ref, c.version, c.updated_at
             FROM consent_recipients r
             JOIN consents k ON k.id = r.consent_id
             JOIN cases c ON c.id = k.case_id
             WHERE ((r.kind = 'participant' AND r.value = ?) OR (r.kind = 'role' AND r.value = ?))
               AND c.owner <> ?
               AND (',' || k.purposes || ',') LIKE ('%,' || ? || ',%')
               AND k.valid_from <= ? AND (k.valid_until IS NULL OR k.valid_until > ?)
               AND NOT EXISTS (SELECT 1 FROM consent_events e
                               WHERE e.consent_id = k.id AND e.kind = 'withdrawn')
               AND c.id > ?
             ORDER BY c.id LIMIT ?",
        ))
        .bind(participant)
        .bind(role.as_str())
        .bind(participant)
        .bind(purpose)
        .bind(now)
        .bind(now)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(meta).collect())
    }

    /// Appends access records at positions `first_seq..`, the tree nodes
    /// they complete and optionally a checkpoint, in one transaction: one
    /// fsync for the batch, and the log, its tree and its checkpoints can
    /// never disagree after a crash.
    ///
    /// The batch must start where the log ends: if another replica appended
    /// in between, nothing is written and [`StoreError::Raced`] tells the
    /// caller the log's real size, so it can catch up and try again. On
    /// PostgreSQL the check and the insert run under an advisory lock, which
    /// makes replicas on one database take turns as the log's sequencer.
    pub async fn append_log(
        &self,
        first_seq: i64,
        rows: &[LogRow],
        issued: &[IssuedPseudonym],
        nodes: &[(NodeId, Hash)],
        checkpoint: Option<&StoredCheckpoint>,
    ) -> Result<(), StoreError> {
        let _gate = self.gate().await;
        if let Some(a) = &self.appender {
            return a.append(first_seq, rows, issued, nodes, checkpoint).await;
        }
        // PostgreSQL (SQLite appends went to the appender above).
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(LOG_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        if !rows.is_empty() {
            let size: i64 = sqlx::query_scalar(
                self.backend
                    .q("SELECT COALESCE(MAX(seq) + 1, 0) FROM access_log"),
            )
            .fetch_one(&mut *tx)
            .await?;
            if size != first_seq {
                return Err(StoreError::Raced { size });
            }
        }
        // Multi-row INSERTs: a batch takes a handful of statements instead
        // of three per record (each statement is a round trip to the
        // database's worker thread, which dominated the cost of a read).
        // Chunks have power-of-two sizes, so each size is one cached
        // prepared statement.
        let mut done = 0;
        while done < rows.len() {
            let n = insert_chunk(rows.len() - done);
            let sql = multi_row_insert(
                "access_log (seq, request_id, at, caller, role, method, case_id, subject, purpose, decision, record)",
                11,
                n,
            );
            let mut q = sqlx::query(self.backend.q_owned(&sql));
            for (i, r) in rows[done..done + n].iter().enumerate() {
                q = q
                    .bind(first_seq + (done + i) as i64)
                    .bind(&r.request_id)
                    .bind(r.at)
                    .bind(&r.caller)
                    .bind(&r.role)
                    .bind(&r.method)
                    .bind(&r.case_id)
                    .bind(&r.subject)
                    .bind(&r.purpose)
                    .bind(&r.decision)
                    .bind(&r.record);
            }
            q.execute(&mut *tx).await?;
            done += n;
        }
        for i in issued {
            sqlx::query(self.backend.q(INSERT_ISSUED))
                .bind(&i.recipient)
                .bind(&i.pseudonym)
                .bind(&i.case_id)
                .execute(&mut *tx)
                .await?;
        }
        let mut done = 0;
        while done < nodes.len() {
            let n = insert_chunk(nodes.len() - done);
            let sql = multi_row_insert("merkle_nodes (end_size, level, hash)", 3, n);
            let mut q = sqlx::query(self.backend.q_owned(&sql));
            for (id, hash) in &nodes[done..done + n] {
                q = q
                    .bind(id.end() as i64)
                    .bind(i64::from(id.level))
                    .bind(hash.as_slice());
            }
            q.execute(&mut *tx).await?;
            done += n;
        }
        if let Some(cp) = checkpoint {
            insert_checkpoint(self.backend, &mut tx, cp).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn append_checkpoint(&self, cp: &StoredCheckpoint) -> Result<(), StoreError> {
        let _gate = self.gate().await;
        let mut tx = self.pool.begin().await?;
        insert_checkpoint(self.backend, &mut tx, cp).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Number of entries in the log (positions are 0..size, no gaps).
    pub async fn log_size(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            self.backend
                .q("SELECT COALESCE(MAX(seq) + 1, 0) FROM access_log"),
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// The stored hashes of the given perfect subtrees (those present).
    pub async fn merkle_nodes(&self, ids: &[NodeId]) -> Result<HashMap<NodeId, Hash>, StoreError> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(400) {
            let placeholders = vec!["(?, ?)"; chunk.len()].join(", ");
            let sql = format!(
                "SELECT end_size, level, hash FROM merkle_nodes WHERE (end_size, level) IN (VALUES {placeholders})"
            );
            let mut q = sqlx::query(self.backend.q_owned(&sql));
            for id in chunk {
                q = q.bind(id.end() as i64).bind(i64::from(id.level));
            }
            for row in q.fetch_all(&self.pool).await? {
                let end: i64 = row.get(0);
                let level: i64 = row.get(1);
                let hash: Vec<u8> = row.get(2);
                let hash: Hash = hash
                    .as_slice()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("tree node hash is not 32 bytes".into()))?;
                out.insert(NodeId::from_end(end as u64, level as u32), hash);
            }
        }
        Ok(out)
    }

    /// PostgreSQL only: a read-only view of the log that stays as it was
    /// when taken (one REPEATABLE READ transaction), for reading it whole
    /// while replicas keep appending: entries and tree nodes are read by
    /// separate queries, which must see the same state.
    pub async fn log_snapshot(&self) -> Result<LogSnapshot, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        Ok(LogSnapshot { tx })
    }

    /// Leaves (position, record bytes) from `from` on, in order.
    pub async fn log_leaves(
        &self,
        from: i64,
        limit: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        let rows = sqlx::query(
            self.backend
                .q("SELECT seq, record FROM access_log WHERE seq >= ? ORDER BY seq LIMIT ?"),
        )
        .bind(from)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn log_position(&self, request_id: &str) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            self.backend
                .q("SELECT MIN(seq) FROM access_log WHERE request_id = ?"),
        )
        .bind(request_id)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let row = sqlx::query(
            self.backend
                .q("SELECT size, root, at, note FROM checkpoints ORDER BY size DESC LIMIT 1"),
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(checkpoint_row))
    }

    pub async fn checkpoint(&self, size: i64) -> Result<Option<StoredCheckpoint>, StoreError> {
        let row = sqlx::query(
            self.backend
                .q("SELECT size, root, at, note FROM checkpoints WHERE size = ?"),
        )
        .bind(size)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(checkpoint_row))
    }

    /// Every stored checkpoint, smallest first.
    pub async fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let rows = sqlx::query(
            self.backend
                .q("SELECT size, root, at, note FROM checkpoints ORDER BY size"),
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(checkpoint_row).collect())
    }

    /// Log rows matching `filter`, from position `start` on, at most `limit`.
    pub async fn query_log(
        &self,
        filter: &LogFilter,
        start: i64,
        limit: i64,
    ) -> Result<Vec<LogRow>, StoreError> {
        let rows = sqlx::query(self.backend.q(
            "SELECT seq, request_id, at, caller, role, method, case_id, subject, purpose,
                    decision, record
             FROM access_log
             WHERE seq >= ?1
               AND (?2 IS NULL OR at >= ?2) AND (?3 IS NULL OR at < ?3)
               AND (?4 IS NULL OR caller = ?4) AND (?5 IS NULL OR role = ?5)
               AND (?6 IS NULL OR method = ?6) AND (?7 IS NULL OR purpose = ?7)
               AND (?8 IS NULL OR decision = ?8) AND (?9 IS NULL OR case_id = ?9)
               AND (?10 IS NULL OR subject = ?10)
             ORDER BY seq LIMIT ?11",
        ))
        .bind(start)
        .bind(filter.since)
        .bind(filter.until)
        .bind(&filter.caller)
        .bind(&filter.role)
        .bind(&filter.method)
        .bind(&filter.purpose)
        .bind(&filter.decision)
        .bind(&filter.case_id)
        .bind(&filter.subject)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(log_row).collect())
    }

    pub async fn cases_by_subject(
        &self,
        kind: &str,
        digest: &str,
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            self.backend.q(
                "SELECT case_id FROM subject_index WHERE kind = ? AND digest = ? ORDER BY case_id",
            ),
        )
        .bind(kind)
        .bind(digest)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Access-log rows from position `from` on, at most `limit`.
    pub async fn access_log(&self, from: i64, limit: i64) -> Result<Vec<LogRow>, StoreError> {
        let rows = sqlx::query(self.backend.q(
            "SELECT seq, request_id, at, caller, role, method, case_id, subject, purpose,
                    decision, record
             FROM access_log WHERE seq >= ? ORDER BY seq LIMIT ?",
        ))
        .bind(from)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(log_row).collect())
    }

    pub async fn access_log_len(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar(self.backend.q("SELECT COUNT(*) FROM access_log"))
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// A fingerprint of everything but the access log, for tests that show
    /// a refused request changed nothing.
    pub async fn content_digest(&self) -> Result<String, StoreError> {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let hex = match self.backend {
            Backend::Sqlite => "hex",
            Backend::Postgres => "encode",
        };
        let (a, b) = match self.backend {
            Backend::Sqlite => ("", ""),
            Backend::Postgres => ("", ", 'hex'"),
        };
        let cases = format!(
            "SELECT id || owner || {hex}({a}subject_ref{b}) || version || updated_at FROM cases ORDER BY id"
        );
        let data = format!(
            "SELECT case_id || category || {hex}({a}sealed{b}) FROM case_data ORDER BY case_id, category"
        );
        for sql in [
            cases.as_str(),
            data.as_str(),
            "SELECT id || case_id || categories || purposes || valid_from || COALESCE(CAST(valid_until AS TEXT), '') FROM consents ORDER BY id",
            "SELECT consent_id || kind || value FROM consent_recipients ORDER BY consent_id, kind, value",
            "SELECT seq || consent_id || kind || at FROM consent_events ORDER BY seq",
            "SELECT recipient || pseudonym || case_id FROM pseudonyms ORDER BY recipient, pseudonym",
            "SELECT kind || digest || case_id FROM subject_index ORDER BY kind, digest, case_id",
        ] {
            for row in sqlx::query(self.backend.q_owned(sql))
                .fetch_all(&self.pool)
                .await?
            {
                let s: String = row.get(0);
                ctx.update(s.as_bytes());
                ctx.update(b"\n");
            }
            ctx.update(b"--\n");
        }
        Ok(hex::encode(ctx.finish()))
    }
}

async fn insert_event(
    backend: Backend,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    consent_id: &str,
    e: &ConsentEvent,
) -> Result<(), StoreError> {
    sqlx::query(
        backend.q(
            "INSERT INTO consent_events (consent_id, kind, at, by, note) VALUES (?, ?, ?, ?, ?)",
        ),
    )
    .bind(consent_id)
    .bind(e.kind.as_str())
    .bind(e.at)
    .bind(&e.by)
    .bind(&e.note)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// See [`Store::log_snapshot`].
pub struct LogSnapshot {
    tx: sqlx::Transaction<'static, sqlx::Any>,
}

impl LogSnapshot {
    /// PostgreSQL only: up to `limit` log entries from `from` on, packed
    /// into one value by the server (one row to fetch instead of one per
    /// entry, see `log_scan`). Per entry: seq and at (i64), then
    /// request_id, caller, role, method, case_id, subject, purpose,
    /// decision and record, each as an i32 length (-1 for NULL) and bytes;
    /// big-endian. `None` when there are none.
    pub async fn access_log_packed(
        &mut self,
        from: i64,
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
             FROM (SELECT * FROM access_log WHERE seq >= $1 ORDER BY seq LIMIT $2) t",
        )
        .bind(from)
        .bind(limit)
        .fetch_one(&mut *self.tx)
        .await?)
    }

    /// PostgreSQL only: tree nodes after `after` with end sizes up to
    /// `up_to`, in completion order (end_size, level), packed by the server:
    /// end_size and level (i64), an i32 length and the hash, per node.
    pub async fn merkle_nodes_packed(
        &mut self,
        after: (i64, i64),
        up_to: i64,
        limit: i64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT string_agg(int8send(end_size) || int8send(level) || int4send(length(hash)) || hash,
                               ''::bytea ORDER BY end_size, level)
             FROM (SELECT end_size, level, hash FROM merkle_nodes
                   WHERE (end_size, level) > ($1, $2) AND end_size <= $3
                   ORDER BY end_size, level LIMIT $4) t",
        )
        .bind(after.0)
        .bind(after.1)
        .bind(up_to)
        .bind(limit)
        .fetch_one(&mut *self.tx)
        .await?)
    }
}

/// One row of the consents query (`CONSENTS_BY_CASE`, `CONSENT_BY_ID`):
/// a consent with one of its recipients and one of its events.
struct ConsentJoinRow {
    id: String,
    case_id: String,
    recorded_by: String,
    categories: String,
    purposes: String,
    valid_from: Millis,
    valid_until: Option<Millis>,
    evidence_ref: String,
    created_at: Millis,
    /// (kind, value)
    recipient: Option<(String, String)>,
    /// (seq, kind, at, by, note)
    event: Option<(i64, String, Millis, String, String)>,
}

/// Folds the joined rows, in the query's order, into consents.
fn fold_consents(
    rows: impl IntoIterator<Item = ConsentJoinRow>,
) -> Result<Vec<Consent>, StoreError> {
    let mut out: Vec<Consent> = Vec::new();
    let mut event_seqs: Vec<i64> = Vec::new();
    for r in rows {
        if out.last().is_none_or(|c| c.id != r.id) {
            let categories = split(&r.categories)
                .map(Category::from_str)
                .collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::Corrupt)?;
            event_seqs.clear();
            out.push(Consent {
                id: r.id,
                case_id: r.case_id,
                recorded_by: r.recorded_by,
                recipients: Vec::new(),
                categories,
                purposes: split(&r.purposes).map(String::from).collect(),
                valid_from: r.valid_from,
                valid_until: r.valid_until,
                evidence_ref: r.evidence_ref,
                created_at: r.created_at,
                events: Vec::new(),
            });
        }
        let Some(c) = out.last_mut() else { continue };
        if let Some((kind, value)) = r.recipient {
            let recipient = match kind.as_str() {
                "participant" => Recipient::Participant(value),
                _ => value
                    .parse::<Role>()
                    .map(Recipient::Role)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            };
            if !c.recipients.contains(&recipient) {
                c.recipients.push(recipient);
            }
        }
        if let Some((seq, kind, at, by, note)) = r.event
            && !event_seqs.contains(&seq)
        {
            event_seqs.push(seq);
            c.events.push(ConsentEvent {
                kind: if kind == "withdrawn" {
                    EventKind::Withdrawn
                } else {
                    EventKind::Given
                },
                at,
                by,
                note,
            });
        }
    }
    Ok(out)
}

fn log_row(r: AnyRow) -> LogRow {
    LogRow {
        seq: r.get(0),
        request_id: r.get(1),
        at: r.get(2),
        caller: r.get(3),
        role: r.get(4),
        method: r.get(5),
        case_id: r.get(6),
        subject: r.get(7),
        purpose: r.get(8),
        decision: r.get(9),
        record: r.get(10),
    }
}

fn checkpoint_row(r: AnyRow) -> StoredCheckpoint {
    StoredCheckpoint {
        size: r.get(0),
        root: r.get(1),
        at: r.get(2),
        note: r.get(3),
    }
}

/// Keyed hashes of a subject's identifiers, in the transaction that
/// registers or updates the case: the index never misses a case that a
/// crash between two transactions would have left out.
async fn insert_subject_index(
    backend: Backend,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    case_id: &str,
    entries: &[(String, String)],
) -> Result<(), StoreError> {
    for (kind, digest) in entries {
        sqlx::query(backend.q(
            "INSERT INTO subject_index (kind, digest, case_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        ))
        .bind(kind)
        .bind(digest)
        .bind(case_id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn insert_checkpoint(
    backend: Backend,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    cp: &StoredCheckpoint,
) -> Result<(), StoreError> {
    sqlx::query(backend.q("INSERT INTO checkpoints (size, root, at, note) VALUES (?, ?, ?, ?) ON CONFLICT (size) DO NOTHING"))
        .bind(cp.size)
        .bind(&cp.root)
        .bind(cp.at)
        .bind(&cp.note)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

fn meta(r: AnyRow) -> CaseMeta {
    CaseMeta {
        id: r.get(0),
        owner: r.get(1),
        subject_ref: r.get(2),
        version: r.get(3),
        updated_at: r.get(4),
    }
}

/// Rows in the next multi-row INSERT: the largest power of two up to 64
/// that fits what is left (64 × 11 parameters stays far below the limits of
/// both SQLite and PostgreSQL).
fn insert_chunk(left: usize) -> usize {
    let cap = left.min(64);
    1 << (usize::BITS - 1 - cap.leading_zeros())
}

/// `INSERT INTO <table_and_columns> VALUES (?, …), …` with `rows` tuples
/// of `columns` placeholders.
fn multi_row_insert(table_and_columns: &str, columns: usize, rows: usize) -> String {
    let tuple = format!("({})", vec!["?"; columns].join(", "));
    format!(
        "INSERT INTO {table_and_columns} VALUES {}",
        vec![tuple; rows].join(", ")
    )
}

fn join<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(",")
}

fn split(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').filter(|p| !p.is_empty())
}
