//! Persistence: cases (sealed), consents with their append-only events, the
//! pseudonyms issued, and the access log. SQLite through sqlx; the schema is
//! embedded in the binary and applied on open.
//!
//! Queries are plain `sqlx::query` calls rather than the `query!` macros, so
//! building needs neither a live database nor committed offline data.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, SqlStr};

use crate::consent::{Consent, ConsentEvent, EventKind, Millis, Recipient};
use crate::model::{Category, Role};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

fn migrator() -> Migrator {
    Migrator::with_migrations(vec![Migration::new(
        1,
        "initial".into(),
        MigrationType::Simple,
        SqlStr::from_static(include_str!("../migrations/sqlite/0001_initial.sql")),
        false,
    )])
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
}

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

impl Store {
    /// Opens (creating if needed) the SQLite database: WAL with
    /// `synchronous=FULL`, so a committed transaction survives power loss.
    pub async fn open_sqlite(path: &Path) -> Result<Store, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        migrator().run(&pool).await?;
        Ok(Store { pool })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn insert_case(&self, case: NewCase) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO cases (id, owner, subject_ref, version, created_at, updated_at)
             VALUES (?, ?, ?, 1, ?, ?)",
        )
        .bind(&case.id)
        .bind(&case.owner)
        .bind(&case.subject_ref)
        .bind(case.now)
        .bind(case.now)
        .execute(&mut *tx)
        .await?;
        for (cat, sealed) in &case.sealed {
            sqlx::query("INSERT INTO case_data (case_id, category, sealed) VALUES (?, ?, ?)")
                .bind(&case.id)
                .bind(i64::from(cat.code()))
                .bind(sealed)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Replaces the given categories and bumps the version. Returns the new
    /// version, or None if the case does not exist.
    pub async fn update_case(
        &self,
        case_id: &str,
        sealed: &[(Category, Vec<u8>)],
        now: Millis,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE cases SET version = version + 1, updated_at = ? WHERE id = ? RETURNING version",
        )
        .bind(now)
        .bind(case_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        for (cat, blob) in sealed {
            sqlx::query(
                "INSERT INTO case_data (case_id, category, sealed) VALUES (?, ?, ?)
                 ON CONFLICT (case_id, category) DO UPDATE SET sealed = excluded.sealed",
            )
            .bind(case_id)
            .bind(i64::from(cat.code()))
            .bind(blob)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Some(row.get::<i64, _>(0)))
    }

    pub async fn case_meta(&self, case_id: &str) -> Result<Option<CaseMeta>, StoreError> {
        let row = sqlx::query(
            "SELECT id, owner, subject_ref, version, updated_at FROM cases WHERE id = ?",
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

    /// The categories the case holds data in.
    pub async fn case_categories(&self, case_id: &str) -> Result<Vec<Category>, StoreError> {
        let rows = sqlx::query("SELECT category FROM case_data WHERE case_id = ?")
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
        let rows = sqlx::query("SELECT category, sealed FROM case_data WHERE case_id = ?")
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
        let row =
            sqlx::query("SELECT case_id FROM pseudonyms WHERE recipient = ? AND pseudonym = ?")
                .bind(recipient)
                .bind(pseudonym)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.get(0)))
    }

    pub async fn remember_pseudonym(
        &self,
        recipient: &str,
        pseudonym: &str,
        case_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO pseudonyms (recipient, pseudonym, case_id) VALUES (?, ?, ?)
             ON CONFLICT DO NOTHING",
        )
        .bind(recipient)
        .bind(pseudonym)
        .bind(case_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn insert_consent(&self, c: &Consent) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO consents (id, case_id, recorded_by, categories, purposes, valid_from,
                                   valid_until, evidence_ref, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
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
            sqlx::query(
                "INSERT INTO consent_recipients (consent_id, kind, value) VALUES (?, ?, ?)
                 ON CONFLICT DO NOTHING",
            )
            .bind(&c.id)
            .bind(kind)
            .bind(value)
            .execute(&mut *tx)
            .await?;
        }
        for e in &c.events {
            insert_event(&mut tx, &c.id, e).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn append_consent_event(
        &self,
        consent_id: &str,
        event: &ConsentEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_event(&mut tx, consent_id, event).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn consent(&self, id: &str) -> Result<Option<Consent>, StoreError> {
        let rows = self
            .load_consents("SELECT id, case_id, recorded_by, categories, purposes, valid_from, valid_until, evidence_ref, created_at FROM consents WHERE id = ?", id)
            .await?;
        Ok(rows.into_iter().next())
    }

    /// All consents of a case with their recipients and events, oldest first.
    pub async fn consents_for_case(&self, case_id: &str) -> Result<Vec<Consent>, StoreError> {
        self.load_consents("SELECT id, case_id, recorded_by, categories, purposes, valid_from, valid_until, evidence_ref, created_at FROM consents WHERE case_id = ? ORDER BY created_at, id", case_id)
            .await
    }

    async fn load_consents(
        &self,
        sql: &'static str,
        key: &str,
    ) -> Result<Vec<Consent>, StoreError> {
        let rows = sqlx::query(sql).bind(key).fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.get(0);
            let categories = split(&r.get::<String, _>(3))
                .map(Category::from_str)
                .collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::Corrupt)?;
            let recipients = sqlx::query(
                "SELECT kind, value FROM consent_recipients WHERE consent_id = ? ORDER BY kind, value",
            )
            .bind(&id)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|r| {
                let kind: String = r.get(0);
                let value: String = r.get(1);
                match kind.as_str() {
                    "participant" => Ok(Recipient::Participant(value)),
                    _ => value
                        .parse::<Role>()
                        .map(Recipient::Role)
                        .map_err(|e| StoreError::Corrupt(e.to_string())),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
            let events = sqlx::query(
                "SELECT kind, at, by, note FROM consent_events WHERE consent_id = ? ORDER BY seq",
            )
            .bind(&id)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|r| ConsentEvent {
                kind: if r.get::<String, _>(0) == "withdrawn" {
                    EventKind::Withdrawn
                } else {
                    EventKind::Given
                },
                at: r.get(1),
                by: r.get(2),
                note: r.get(3),
            })
            .collect();
            out.push(Consent {
                id,
                case_id: r.get(1),
                recorded_by: r.get(2),
                recipients,
                categories,
                purposes: split(&r.get::<String, _>(4)).map(String::from).collect(),
                valid_from: r.get(5),
                valid_until: r.get(6),
                evidence_ref: r.get(7),
                created_at: r.get(8),
                events,
            });
        }
        Ok(out)
    }

    /// The caller's own cases, by id, after `after` (exclusive).
    pub async fn own_cases(
        &self,
        owner: &str,
        after: &str,
        limit: u32,
    ) -> Result<Vec<CaseMeta>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, owner, subject_ref, version, updated_at FROM cases
             WHERE owner = ? AND id > ? ORDER BY id LIMIT ?",
        )
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
        let rows = sqlx::query(
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
        )
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

    /// Appends access records in one transaction: one fsync for the batch.
    /// Positions are assigned here, contiguous from the current size.
    pub async fn append_access(&self, rows: &[LogRow]) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let next: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq) + 1, 0) FROM access_log")
            .fetch_one(&mut *tx)
            .await?;
        for (i, r) in rows.iter().enumerate() {
            sqlx::query(
                "INSERT INTO access_log (seq, request_id, at, caller, role, method, case_id,
                                         subject, purpose, decision, record)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(next + i as i64)
            .bind(&r.request_id)
            .bind(r.at)
            .bind(&r.caller)
            .bind(&r.role)
            .bind(&r.method)
            .bind(&r.case_id)
            .bind(&r.subject)
            .bind(&r.purpose)
            .bind(&r.decision)
            .bind(&r.record)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(next)
    }

    /// Access-log rows from position `from` on, at most `limit`.
    pub async fn access_log(&self, from: i64, limit: i64) -> Result<Vec<LogRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, request_id, at, caller, role, method, case_id, subject, purpose,
                    decision, record
             FROM access_log WHERE seq >= ? ORDER BY seq LIMIT ?",
        )
        .bind(from)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| LogRow {
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
            })
            .collect())
    }

    pub async fn access_log_len(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM access_log")
            .fetch_one(&self.pool)
            .await?)
    }

    /// A fingerprint of everything but the access log, for tests that show
    /// a refused request changed nothing.
    pub async fn content_digest(&self) -> Result<String, StoreError> {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for sql in [
            "SELECT id || owner || hex(subject_ref) || version || updated_at FROM cases ORDER BY id",
            "SELECT case_id || category || hex(sealed) FROM case_data ORDER BY case_id, category",
            "SELECT id || case_id || categories || purposes || valid_from || COALESCE(valid_until, '') FROM consents ORDER BY id",
            "SELECT consent_id || kind || value FROM consent_recipients ORDER BY consent_id, kind, value",
            "SELECT seq || consent_id || kind || at FROM consent_events ORDER BY seq",
            "SELECT recipient || pseudonym || case_id FROM pseudonyms ORDER BY recipient, pseudonym",
        ] {
            for row in sqlx::query(sql).fetch_all(&self.pool).await? {
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
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    consent_id: &str,
    e: &ConsentEvent,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO consent_events (consent_id, kind, at, by, note) VALUES (?, ?, ?, ?, ?)",
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

fn meta(r: sqlx::sqlite::SqliteRow) -> CaseMeta {
    CaseMeta {
        id: r.get(0),
        owner: r.get(1),
        subject_ref: r.get(2),
        version: r.get(3),
        updated_at: r.get(4),
    }
}

fn join<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(",")
}

fn split(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').filter(|p| !p.is_empty())
}
