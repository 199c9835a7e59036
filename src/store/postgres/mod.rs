//! PostgreSQL, through sqlx's `PgPool`: the production store, which several
//! node processes (replicas) may share.
//!
//! Replicas change the data behind each other's backs, so nothing is kept
//! in memory: every read is a query, one round trip each. Log appends are
//! sequenced across replicas by an advisory lock held for the append's
//! transaction ([`LOG_LOCK`]); inside it, the append checks that it starts
//! where the log ends (`StoreError::Raced` otherwise) and inserts the
//! whole batch with one statement per table (arrays, `UNNEST`), whatever
//! its size. The verifier reads one snapshot of the log, packed by the
//! server (`scan`).

mod reachable;
mod referral;
mod scan;
mod witness;

use std::collections::HashMap;
use std::str::FromStr;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::query::Query;
use sqlx::{PgConnection, PgPool, Postgres, Row, SqlStr};
use tokio::sync::mpsc;

use crate::model::Category;
use crate::model::consent::{Consent, ConsentEvent, EventKind, Millis};
use crate::store::rows::{
    self, CaseFold, Columns, ConsentFold, StatisticsFold, categories_column, purposes_column,
    recipient_columns,
};
use crate::store::scan::{AHEAD, Chunk};
use crate::store::{
    Append, CaseChange, CaseMeta, CaseUpdate, CaseWithData, DbError, IndexProblems, LogFilter,
    LogRow, NewCase, PoolSettings, ReleaseKey, RequestKey, Rewrap, SchemaError, SealedCase,
    StoreError, StoredCheckpoint, StoredRelease, Visible, migrations, redact_url, sql, tiles,
};
use crate::tlog::layout::TileId;
use crate::tlog::merkle::{Hash, NodeId};

/// Held for the length of a log-append transaction, so that replicas
/// sharing one database append one after the other: whoever holds it is the
/// log's sequencer for that batch.
const LOG_LOCK: i64 = 0x736c_7569_735f_6c6f; // "sluis_lo"
/// The serving claim's advisory lock (session level): every serving node
/// holds it shared, an operator's step that needs them all stopped holds it
/// exclusively (`Store::claim_exclusive`).
const SERVING_LOCK: i64 = 0x736c_7569_735f_7376; // "sluis_sv"
/// How often a serving node looks at the session that holds its claim, and
/// takes the claim again on a new one if the server dropped it (a restart).
const CLAIM_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The serving claim, held until the store closes: a serving node's
/// (shared, kept by a task that takes it again after a restart of the
/// server) or an operator's step's (exclusive). Dropping it ends the
/// session, and the server lets go of the lock.
enum Claim {
    Serving(tokio::task::JoinHandle<()>),
    Exclusive(#[allow(dead_code)] PgConnection),
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Claim::Serving(task) = self {
            task.abort();
        }
    }
}

/// The serving claim on a session of its own, out of the pool: `Some`
/// with that session if it was granted, `None` if the other kind holds it.
async fn take_claim(pool: &PgPool, exclusive: bool) -> Result<Option<PgConnection>, StoreError> {
    let mut conn = pool.acquire().await?.detach();
    let sql = if exclusive {
        "SELECT pg_try_advisory_lock($1)"
    } else {
        "SELECT pg_try_advisory_lock_shared($1)"
    };
    let granted: bool = sqlx::query_scalar(sql)
        .bind(SERVING_LOCK)
        .fetch_one(&mut conn)
        .await?;
    Ok(granted.then_some(conn))
}

/// Keeps a serving node's claim while it serves: the session that holds
/// it is checked every [`CLAIM_CHECK_EVERY`], and a new one takes the
/// claim again when the server dropped it.
async fn keep_claim(pool: PgPool, conn: PgConnection, server: std::sync::Arc<str>) {
    let mut conn = Some(conn);
    let mut tick = tokio::time::interval(CLAIM_CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Some(c) = conn.as_mut()
            && sqlx::query("SELECT 1").execute(&mut *c).await.is_ok()
        {
            continue;
        }
        conn = None;
        match take_claim(&pool, false).await {
            Ok(Some(c)) => {
                tracing::info!(database = %server, "the serving claim on the database is held again");
                conn = Some(c);
            }
            Ok(None) => tracing::error!(
                database = %server,
                "an operator's key rotation or node rename holds the database while this node serves: stop every node of this database, let the step finish, then start them"
            ),
            // The database is down: the health watch reports it.
            Err(_) => {}
        }
    }
}

const INSERT_ENTRIES: &str = "INSERT INTO access_log
         (seq, request_id, at, caller, role, method, case_id, subject, purpose, decision, record)
     SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[],
                          $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                          $11::bytea[])";
/// Stores the issued pseudonyms not yet known; one whose case does not
/// exist (cases are never deleted, but the batch must not fail for one)
/// is skipped.
const INSERT_ISSUED: &str = "INSERT INTO pseudonyms (recipient, pseudonym, case_id)
     SELECT t.r, t.p, t.c FROM UNNEST($1::text[], $2::text[], $3::text[]) AS t(r, p, c)
     WHERE EXISTS (SELECT 1 FROM cases WHERE id = t.c)
     ON CONFLICT DO NOTHING";
const INSERT_SUBJECTS: &str = "INSERT INTO access_log_subjects (seq, subject)
     SELECT * FROM UNNEST($1::bigint[], $2::text[])";

type PgQuery = Query<'static, Postgres, PgArguments>;

#[derive(Clone)]
pub(super) struct PgStore {
    pool: PgPool,
    reachable: std::sync::Arc<reachable::Reachable>,
    /// `host:port/database`, for messages (no user, no password).
    server: std::sync::Arc<str>,
    acquire_timeout: std::time::Duration,
    /// The serving claim, once taken (`Store::claim_for_node`,
    /// `Store::claim_exclusive`).
    claim: std::sync::Arc<std::sync::Mutex<Option<Claim>>>,
}

impl PgStore {
    pub(super) async fn open(
        url: &str,
        settings: &PoolSettings,
        migrate: bool,
    ) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl {
            url: redact_url(url),
            problem: e.to_string(),
        })?;
        let server: std::sync::Arc<str> = format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("postgres")
        )
        .into();
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options.clone())
            .await;
        // The pool says only that it timed out; one connection of our own
        // says why (refused, unknown host, authentication).
        let pool = match pool {
            Err(sqlx::Error::PoolTimedOut) => Err(why_no_connection(&options, settings).await),
            other => other,
        };
        let pool = pool.map_err(|e| StoreError::Open {
                target: redact_url(url),
                source: match e {
                    // rustls says what failed (e.g. UnknownIssuer,
                    // NotValidForName), in an I/O error of the handshake;
                    // the operator needs what to change.
                    e if e.to_string().contains("invalid peer certificate") => DbError::text(format!(
                        "{e}: the server's certificate was not accepted; sslrootcert must be the CA that issued it, and with sslmode=verify-full the URL's host must be a name the certificate carries"
                    )),
                    e => e.into(),
                },
            })?;
        let store = PgStore {
            pool,
            reachable: std::sync::Arc::new(reachable::Reachable::new(settings.acquire_timeout)),
            server,
            acquire_timeout: settings.acquire_timeout,
            claim: std::sync::Arc::default(),
        };
        if migrate {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// Applies the embedded migrations with sqlx's migrator, which takes an
    /// advisory lock, so replicas starting together migrate once.
    async fn migrate(&self) -> Result<(), StoreError> {
        let migrations = migrations::POSTGRES
            .iter()
            .map(|m| {
                Migration::new(
                    m.version,
                    m.name.into(),
                    MigrationType::Simple,
                    SqlStr::from_static(m.sql),
                    false,
                )
            })
            .collect();
        Migrator::with_migrations(migrations)
            .run(&self.pool)
            .await
            .map_err(|e| SchemaError::Migrator(DbError(Box::new(e))).into())
    }

    /// The embedded migrations this database has not had, by the history
    /// sqlx's migrator keeps (`_sqlx_migrations`; none at all in a database
    /// no sluis has opened to write). Reads only.
    pub(super) async fn pending_migrations(&self) -> Result<Vec<i64>, StoreError> {
        let history: Option<String> = self
            .one(
                sqlx::query("SELECT to_regclass('_sqlx_migrations')::text"),
                |r| r.opt_text(0),
            )
            .await?;
        let applied: Vec<i64> = if history.is_some() {
            self.all(
                sqlx::query("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version"),
                rows::int,
            )
            .await?
        } else {
            Vec::new()
        };
        Ok(migrations::POSTGRES
            .iter()
            .map(|m| m.version)
            .filter(|v| !applied.contains(v))
            .collect())
    }

    pub(super) async fn database_name(&self) -> Result<String, StoreError> {
        self.one(sqlx::query("SELECT current_database()::text"), rows::text)
            .await
    }

    /// The server's reachability, which every statement passes (see
    /// `reachable`).
    pub(super) fn reachable(&self) -> &reachable::Reachable {
        &self.reachable
    }

    /// Whether the server answers. Always tries it (it is the health
    /// check's probe) and tells the reachability guard.
    pub(super) async fn ping(&self) -> bool {
        let result = sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(StoreError::from);
        self.reachable.observe(&result);
        result.is_ok()
    }

    /// A failure of the server's availability, saying which server and,
    /// for a connection that did not come in time, why: every connection
    /// busy, or none could be opened. Other errors pass unchanged.
    pub(super) fn explain(&self, e: StoreError) -> StoreError {
        let StoreError::Unavailable(inner) = e else {
            return e;
        };
        let ms = self.acquire_timeout.as_millis();
        let why = if inner.is_pool_timeout() {
            let max = self.pool.options().get_max_connections();
            if self.pool.size() >= max && self.pool.num_idle() == 0 {
                format!(
                    "no connection within {ms} ms (database.acquire_timeout_ms): all {max} are in use (database.max_connections)"
                )
            } else {
                format!(
                    "no connection within {ms} ms (database.acquire_timeout_ms): the server did not accept one (stopped, unreachable, or refusing connections)"
                )
            }
        } else {
            inner.to_string()
        };
        StoreError::Unavailable(DbError::text(format!(
            "PostgreSQL at {}: {why}",
            self.server
        )))
    }

    /// (used, idle) connections of the pool now.
    pub(super) fn pool_use(&self) -> (u64, u64) {
        let size = u64::from(self.pool.size());
        let idle = self.pool.num_idle() as u64;
        (size.saturating_sub(idle), idle)
    }

    pub(super) async fn close(&self) {
        drop(self.claim.lock().unwrap_or_else(|p| p.into_inner()).take());
        self.pool.close().await;
    }

    /// Takes the serving claim, shared (a serving node) or exclusive (an
    /// operator's step), and holds it until the store closes.
    pub(super) async fn claim(&self, exclusive: bool) -> Result<(), StoreError> {
        let server = self.server.to_string();
        let conn = take_claim(&self.pool, exclusive)
            .await?
            .ok_or_else(|| match exclusive {
                true => StoreError::NodesServing(server.clone()),
                false => StoreError::StepRunning(server.clone()),
            })?;
        let claim = match exclusive {
            true => Claim::Exclusive(conn),
            false => Claim::Serving(tokio::spawn(keep_claim(
                self.pool.clone(),
                conn,
                self.server.clone(),
            ))),
        };
        *self.claim.lock().unwrap_or_else(|p| p.into_inner()) = Some(claim);
        Ok(())
    }

    async fn all<T>(
        &self,
        q: PgQuery,
        map: fn(&dyn Columns) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(|r| map(r)).collect()
    }

    async fn first<T>(
        &self,
        q: PgQuery,
        map: fn(&dyn Columns) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let row = q.fetch_optional(&self.pool).await?;
        row.as_ref().map(|r| map(r)).transpose()
    }

    /// A query that always returns a row (an aggregate).
    async fn one<T>(
        &self,
        q: PgQuery,
        map: fn(&dyn Columns) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let row = q.fetch_one(&self.pool).await?;
        map(&row)
    }

    pub(super) async fn insert_case(&self, case: NewCase) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(sql::INSERT_CASE)
            .bind(&case.id)
            .bind(&case.owner)
            .bind(&case.subject_ref)
            .bind(case.now)
            .bind(&case.subject_id)
            .bind(&case.case_key.0)
            .bind(case.case_key.1)
            .execute(&mut *tx)
            .await?;
        put_case_data(&mut tx, &case.id, &case.sealed).await?;
        put_subject_index(&mut tx, &case.id, &case.subject_index).await?;
        sqlx::query(sql::INSERT_OWNER_PSEUDONYM)
            .bind(&case.owner)
            .bind(&case.owner_pseudonym)
            .bind(&case.id)
            .execute(&mut *tx)
            .await?;
        if let Some(key) = &case.key {
            put_request_key(&mut tx, key, key.seq).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn update_case(&self, u: CaseUpdate) -> Result<Option<i64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let version: Option<i64> = sqlx::query_scalar(sql::BUMP_CASE)
            .bind(u.now)
            .bind(&u.case_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(version) = version else {
            return Ok(None);
        };
        for (cat, blob) in &u.sealed {
            sqlx::query(sql::UPSERT_CASE_DATA)
                .bind(&u.case_id)
                .bind(i64::from(cat.code()))
                .bind(blob)
                .execute(&mut *tx)
                .await?;
        }
        delete_case_data(&mut tx, &u.case_id, &u.cleared).await?;
        put_subject_index(&mut tx, &u.case_id, &u.subject_index).await?;
        if u.subject_id.is_some() || u.cleared.contains(&Category::Identity) {
            sqlx::query(sql::SET_SUBJECT_ID)
                .bind(&u.subject_id)
                .bind(&u.case_id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(key) = &u.key {
            put_request_key(&mut tx, key, version).await?;
        }
        tx.commit().await?;
        Ok(Some(version))
    }

    pub(super) async fn change_case(&self, c: CaseChange) -> Result<Option<i64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let version: Option<i64> = sqlx::query_scalar(sql::GUARD_CASE)
            .bind(i64::from(c.bump))
            .bind(&c.case_id)
            .bind(c.version)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(version) = version else {
            return Ok(None);
        };
        for (cat, blob) in &c.put {
            sqlx::query(sql::UPSERT_CASE_DATA)
                .bind(&c.case_id)
                .bind(i64::from(cat.code()))
                .bind(blob)
                .execute(&mut *tx)
                .await?;
        }
        delete_case_data(&mut tx, &c.case_id, &c.delete).await?;
        if let Some(subject_id) = &c.subject_id {
            sqlx::query(sql::SET_SUBJECT_ID)
                .bind(subject_id)
                .bind(&c.case_id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some((wrapped, v)) = &c.case_key {
            sqlx::query(sql::SET_CASE_KEY)
                .bind(wrapped)
                .bind(v)
                .bind(&c.case_id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(at) = c.erase_at {
            sqlx::query(sql::DELETE_ALL_CASE_DATA)
                .bind(&c.case_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(sql::ERASE_CASE)
                .bind(at)
                .bind(&c.case_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Some(version))
    }

    pub(super) async fn rewrap_case_keys(&self, batch: Vec<Rewrap>) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut n = 0;
        for (id, wrapped, version, was) in &batch {
            n += sqlx::query(sql::REWRAP_CASE_KEY)
                .bind(wrapped)
                .bind(version)
                .bind(id)
                .bind(was)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }

    pub(super) async fn case_keys_below(
        &self,
        version: i64,
        limit: i64,
    ) -> Result<Vec<(String, Vec<u8>, i64)>, StoreError> {
        let q = sqlx::query(sql::CASE_KEYS_BELOW).bind(version).bind(limit);
        self.all(q, |r| Ok((r.text(0)?, r.blob(1)?, r.int(2)?)))
            .await
    }

    pub(super) async fn pseudonym_rotations(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(sql::PSEUDONYM_ROTATIONS)
            .fetch_one(&self.pool)
            .await?)
    }

    pub(super) async fn key_versions(&self) -> Result<(Vec<(i64, i64)>, i64), StoreError> {
        let counts = self
            .all(sqlx::query(sql::KEY_VERSION_COUNTS), |r| {
                Ok((r.int(0)?, r.int(1)?))
            })
            .await?;
        let legacy: i64 = sqlx::query_scalar(sql::LEGACY_COUNT)
            .fetch_one(&self.pool)
            .await?;
        Ok((counts, legacy))
    }

    pub(super) async fn case_ids(
        &self,
        stmt: &'static str,
        cutoff: Option<Millis>,
        after: &str,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let q = match cutoff {
            Some(t) => sqlx::query(stmt).bind(t).bind(after).bind(limit),
            None => sqlx::query(stmt).bind(after).bind(limit),
        };
        self.all(q, |r| r.text(0)).await
    }

    pub(super) async fn insert_consent(
        &self,
        c: &Consent,
        key: Option<&RequestKey>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        put_consent(&mut tx, c).await?;
        if let Some(key) = key {
            put_request_key(&mut tx, key, key.seq).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn append_consent_event(
        &self,
        consent_id: &str,
        event: &ConsentEvent,
        key: Option<&RequestKey>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // A withdrawal only if there is none yet (`sql::INSERT_WITHDRAWAL`),
        // the consent's row locked so that two are not checked at once.
        let stmt = match event.kind {
            EventKind::Withdrawn => {
                sqlx::query(sql::LOCK_CONSENT)
                    .bind(consent_id)
                    .execute(&mut *tx)
                    .await?;
                sql::INSERT_WITHDRAWAL
            }
            _ => sql::INSERT_EVENT,
        };
        if insert_event_with(&mut tx, stmt, consent_id, event).await? == 0 {
            return Ok(false);
        }
        if let Some(key) = key {
            put_request_key(&mut tx, key, key.seq).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    pub(super) async fn request_key(
        &self,
        caller: &str,
        request_id: &str,
    ) -> Result<Option<RequestKey>, StoreError> {
        let q = sqlx::query(sql::REQUEST_KEY).bind(caller).bind(request_id);
        self.first(q, rows::request_key).await
    }

    pub(super) async fn statistics_release(
        &self,
        key: &ReleaseKey,
    ) -> Result<Option<StoredRelease>, StoreError> {
        let q = sqlx::query(sql::RELEASE)
            .bind(key.table.clone())
            .bind(key.quarter.clone())
            .bind(key.breakdown.clone())
            .bind(key.scope.clone());
        self.first(q, rows::release).await
    }

    pub(super) async fn statistics_releases(
        &self,
        quarter: Option<&str>,
        include_own: bool,
        after: Option<&ReleaseKey>,
        limit: i64,
    ) -> Result<Vec<StoredRelease>, StoreError> {
        let (q, t, b, s) = after.map_or(Default::default(), |k| {
            (
                k.quarter.clone(),
                k.table.clone(),
                k.breakdown.clone(),
                k.scope.clone(),
            )
        });
        let query = sqlx::query(sql::RELEASES)
            .bind(quarter.unwrap_or_default().to_string())
            .bind(i64::from(include_own))
            .bind(q)
            .bind(t)
            .bind(b)
            .bind(s)
            .bind(limit);
        self.all(query, rows::release).await
    }

    pub(super) async fn statistics_quarters(&self, limit: i64) -> Result<Vec<String>, StoreError> {
        let query = sqlx::query(sql::RELEASE_QUARTERS).bind(limit);
        self.all(query, |r| r.text(0)).await
    }

    pub(super) async fn insert_statistics_releases(
        &self,
        releases: Vec<StoredRelease>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for r in releases {
            sqlx::query(sql::INSERT_RELEASE)
                .bind(r.key.table)
                .bind(r.key.quarter)
                .bind(r.key.breakdown)
                .bind(r.key.scope)
                .bind(r.computed_at)
                .bind(r.body)
                .bind(r.sha256)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn forget_request_keys(
        &self,
        key: Option<(&str, &str)>,
        before: Millis,
    ) -> Result<(), StoreError> {
        let q = match key {
            Some((caller, request_id)) => sqlx::query(sql::DELETE_REQUEST_KEY)
                .bind(caller.to_owned())
                .bind(request_id.to_owned()),
            None => sqlx::query(sql::PURGE_REQUEST_KEYS).bind(before),
        };
        q.execute(&self.pool).await?;
        Ok(())
    }

    /// See `LogSink::append`.
    pub(super) async fn append_log(&self, a: &Append<'_>) -> Result<(), StoreError> {
        let Append {
            first_seq,
            rows,
            issued,
            nodes,
            checkpoint,
            dry_run,
        } = *a;
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(LOG_LOCK)
            .execute(&mut *tx)
            .await?;
        if !rows.is_empty() {
            let size: i64 = sqlx::query_scalar(sql::LOG_SIZE)
                .fetch_one(&mut *tx)
                .await?;
            if size != first_seq {
                // Dropping the transaction rolls it back and frees the lock.
                return Err(StoreError::Raced { size });
            }
            let column = |f: fn(&LogRow) -> Option<&str>| rows.iter().map(f).collect::<Vec<_>>();
            sqlx::query(INSERT_ENTRIES)
                .bind((first_seq..).take(rows.len()).collect::<Vec<i64>>())
                .bind(
                    rows.iter()
                        .map(|r| r.request_id.as_str())
                        .collect::<Vec<_>>(),
                )
                .bind(rows.iter().map(|r| r.at).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.caller.as_str()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.role.as_str()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.method.as_str()).collect::<Vec<_>>())
                .bind(column(|r| r.case_id.as_deref()))
                .bind(column(|r| r.subject.as_deref()))
                .bind(column(|r| r.purpose.as_deref()))
                .bind(rows.iter().map(|r| r.decision.as_str()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.record.as_slice()).collect::<Vec<_>>())
                .execute(&mut *tx)
                .await?;
            let named: Vec<(i64, &str)> = (first_seq..)
                .zip(rows)
                .flat_map(|(seq, r)| r.subjects.iter().map(move |s| (seq, s.as_str())))
                .collect();
            if !named.is_empty() {
                sqlx::query(INSERT_SUBJECTS)
                    .bind(named.iter().map(|(seq, _)| *seq).collect::<Vec<_>>())
                    .bind(named.iter().map(|(_, s)| *s).collect::<Vec<_>>())
                    .execute(&mut *tx)
                    .await?;
            }
            // Emergency accesses and reviews are rare: a statement each.
            for (seq, r) in (first_seq..).zip(rows) {
                if r.emergency {
                    sqlx::query(sql::INSERT_EMERGENCY_ACCESS)
                        .bind(seq)
                        .bind(r.request_id.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                if let Some(access) = &r.closes {
                    sqlx::query(sql::INSERT_EMERGENCY_REVIEW)
                        .bind(seq)
                        .bind(access.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        if !issued.is_empty() {
            sqlx::query(INSERT_ISSUED)
                .bind(
                    issued
                        .iter()
                        .map(|i| i.recipient.as_str())
                        .collect::<Vec<_>>(),
                )
                .bind(
                    issued
                        .iter()
                        .map(|i| i.pseudonym.as_str())
                        .collect::<Vec<_>>(),
                )
                .bind(
                    issued
                        .iter()
                        .map(|i| i.case_id.as_str())
                        .collect::<Vec<_>>(),
                )
                .execute(&mut *tx)
                .await?;
        }
        put_tiles(&mut tx, nodes).await?;
        if let Some(cp) = checkpoint {
            sqlx::query(sql::INSERT_CHECKPOINT)
                .bind(cp.size)
                .bind(&cp.root)
                .bind(cp.at)
                .bind(&cp.note)
                .execute(&mut *tx)
                .await?;
        }
        if dry_run {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
        Ok(())
    }

    pub(super) async fn case_meta(&self, case_id: &str) -> Result<Option<CaseMeta>, StoreError> {
        self.first(sqlx::query(sql::CASE_META).bind(case_id), rows::case_meta)
            .await
    }

    pub(super) async fn case_with_data(
        &self,
        case_id: &str,
    ) -> Result<Option<CaseWithData>, StoreError> {
        let rows = sqlx::query(sql::CASE_WITH_DATA)
            .bind(case_id)
            .fetch_all(&self.pool)
            .await?;
        let mut fold = CaseFold::default();
        for r in &rows {
            fold.add(r)?;
        }
        Ok(fold.finish())
    }

    pub(super) async fn resolve_pseudonym(
        &self,
        recipient: &str,
        pseudonym: &str,
    ) -> Result<Option<String>, StoreError> {
        let q = sqlx::query(sql::RESOLVE_PSEUDONYM)
            .bind(recipient)
            .bind(pseudonym);
        self.first(q, rows::text).await
    }

    pub(super) async fn consents_for_case(
        &self,
        case_id: &str,
    ) -> Result<Vec<Consent>, StoreError> {
        self.load_consents(sql::CONSENTS_BY_CASE, case_id).await
    }

    pub(super) async fn load_consents(
        &self,
        statement: &'static str,
        key: &str,
    ) -> Result<Vec<Consent>, StoreError> {
        let rows = sqlx::query(statement)
            .bind(key)
            .fetch_all(&self.pool)
            .await?;
        let mut fold = ConsentFold::default();
        for r in &rows {
            fold.add(r)?;
        }
        Ok(fold.finish())
    }

    /// `stmt`: [`sql::OWN_CASES`] or [`sql::OTHERS_CASES`].
    pub(super) async fn cases_by_owner(
        &self,
        stmt: &'static str,
        owner: &str,
        after: &str,
        limit: u32,
    ) -> Result<Vec<CaseMeta>, StoreError> {
        let q = sqlx::query(stmt)
            .bind(owner)
            .bind(after)
            .bind(i64::from(limit));
        self.all(q, rows::case_meta).await
    }

    pub(super) async fn cases_for_statistics(
        &self,
        categories: [Category; 3],
        after: &str,
        limit: u32,
    ) -> Result<Vec<SealedCase>, StoreError> {
        let [a, b, c] = categories.map(|c| i64::from(c.code()));
        let rows = sqlx::query(sql::STATISTICS_PAGE)
            .bind(after)
            .bind(i64::from(limit))
            .bind(a)
            .bind(b)
            .bind(c)
            .fetch_all(&self.pool)
            .await?;
        let mut fold = StatisticsFold::default();
        for r in &rows {
            fold.add(r)?;
        }
        Ok(fold.finish())
    }

    pub(super) async fn visible_cases(&self, v: &Visible<'_>) -> Result<Vec<CaseMeta>, StoreError> {
        let q = sqlx::query(sql::VISIBLE_CASES)
            .bind(v.participant)
            .bind(v.role.as_str())
            .bind(v.purpose)
            .bind(v.now)
            .bind(v.after)
            .bind(i64::from(v.limit));
        self.all(q, rows::case_meta).await
    }

    pub(super) async fn cases_by_subject(
        &self,
        kind: &str,
        digest: &str,
    ) -> Result<Vec<String>, StoreError> {
        let q = sqlx::query(sql::CASES_BY_SUBJECT).bind(kind).bind(digest);
        self.all(q, rows::text).await
    }

    pub(super) async fn log_size(&self) -> Result<i64, StoreError> {
        self.one(sqlx::query(sql::LOG_SIZE), rows::int).await
    }

    pub(super) async fn access_log_len(&self) -> Result<i64, StoreError> {
        self.one(sqlx::query(sql::LOG_COUNT), rows::int).await
    }

    /// Whether the tree's node table of before migration 0007 is still
    /// there (`Store::tiles_from_entries`).
    pub(super) async fn has_node_table(&self) -> Result<bool, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT to_regclass('merkle_nodes') IS NOT NULL")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    pub(super) async fn drop_node_table(&self) -> Result<(), StoreError> {
        sqlx::query("DROP TABLE IF EXISTS merkle_nodes")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(super) async fn hash_tile(&self, tile: TileId) -> Result<Option<Vec<u8>>, StoreError> {
        read_tile(&mut *self.pool.acquire().await?, tile).await
    }

    /// The tiles holding the nodes, each read once (the growing level-0
    /// tile from its edge rows).
    pub(super) async fn merkle_nodes(
        &self,
        ids: &[NodeId],
    ) -> Result<HashMap<NodeId, Hash>, StoreError> {
        let wanted = tiles::tiles_for(ids);
        let mut found = HashMap::with_capacity(wanted.len());
        let mut conn = self.pool.acquire().await?;
        for tile in wanted {
            if let Some(bytes) = read_tile(&mut conn, tile).await? {
                found.insert(tile, bytes);
            }
        }
        Ok(tiles::nodes_from(ids, &found))
    }

    pub(super) async fn log_leaves(
        &self,
        from: i64,
        limit: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        let q = sqlx::query(sql::LOG_LEAVES).bind(from).bind(limit);
        self.all(q, rows::leaf).await
    }

    pub(super) async fn log_position(&self, request_id: &str) -> Result<Option<i64>, StoreError> {
        let q = sqlx::query(sql::LOG_POSITION).bind(request_id);
        self.one(q, rows::opt_int).await
    }

    pub(super) async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.first(sqlx::query(sql::LATEST_CHECKPOINT), rows::checkpoint)
            .await
    }

    pub(super) async fn checkpoint(
        &self,
        size: i64,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        let q = sqlx::query(sql::CHECKPOINT_AT).bind(size);
        self.first(q, rows::checkpoint).await
    }

    pub(super) async fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        self.all(sqlx::query(sql::CHECKPOINTS), rows::checkpoint)
            .await
    }

    pub(super) async fn query_log(
        &self,
        filter: &LogFilter,
        start: i64,
        limit: i64,
    ) -> Result<(Vec<LogRow>, Option<i64>), StoreError> {
        let filtered = |stmt: &'static str| {
            sqlx::query(stmt)
                .bind(start)
                .bind(filter.since)
                .bind(filter.until)
                .bind(&filter.caller)
                .bind(&filter.role)
                .bind(&filter.method)
                .bind(&filter.purpose)
                .bind(&filter.decision)
                .bind(&filter.case_id)
                .bind(&filter.case_subject)
                .bind(&filter.subject)
        };
        if filter.case_id.is_some() {
            // Read before the query: the index holds every entry below it
            // (it only grows), and the query reads the log from there on.
            let upto = self.index_upto().await?;
            let q = filtered(sql::QUERY_LOG_BY_CASE).bind(upto).bind(limit);
            return Ok((self.all(q, rows::log_row).await?, Some(upto)));
        }
        let q = filtered(sql::QUERY_LOG).bind(limit);
        Ok((self.all(q, rows::log_row).await?, None))
    }

    async fn index_upto(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(sql::INDEX_UPTO)
            .fetch_one(&self.pool)
            .await?)
    }

    /// See `LogSink::follow_index`. Under the log's advisory lock, so that
    /// replicas sharing the database follow one after the other and never
    /// beside an append.
    pub(super) async fn follow_index(&self, most: i64) -> Result<(i64, i64), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(LOG_LOCK)
            .execute(&mut *tx)
            .await?;
        let (upto, size): (i64, i64) = sqlx::query_as(sql::INDEX_PROGRESS)
            .fetch_one(&mut *tx)
            .await?;
        let to = size.min(upto.saturating_add(most.max(1)));
        if to <= upto {
            return Ok((upto, size));
        }
        sqlx::query(sql::INDEX_BATCH)
            .bind(upto)
            .bind(to)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::SET_INDEX_UPTO)
            .bind(to)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((to, size))
    }

    /// See `Store::index_problems`.
    pub(super) async fn index_problems(&self, limit: i64) -> Result<IndexProblems, StoreError> {
        // One snapshot: a node may index more meanwhile.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let (upto, size): (i64, i64) = sqlx::query_as(sql::INDEX_PROGRESS)
            .fetch_one(&mut *tx)
            .await?;
        let mut seqs = Vec::with_capacity(2);
        for stmt in [sql::INDEX_MISSING, sql::INDEX_EXTRA] {
            let found: Vec<i64> = sqlx::query_scalar(stmt)
                .bind(upto)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
            seqs.push(found);
        }
        tx.commit().await?;
        let extra = seqs.pop().unwrap_or_default();
        let missing = seqs.pop().unwrap_or_default();
        Ok(IndexProblems {
            upto,
            size,
            missing,
            extra,
        })
    }

    pub(super) async fn emergency_alerts(
        &self,
        start: i64,
        include_closed: bool,
        limit: i64,
    ) -> Result<Vec<LogRow>, StoreError> {
        let q = sqlx::query(sql::EMERGENCY_ALERTS)
            .bind(start)
            .bind(i64::from(include_closed))
            .bind(limit);
        self.all(q, rows::log_row).await
    }

    pub(super) async fn emergency_review(
        &self,
        access_seq: i64,
    ) -> Result<Option<LogRow>, StoreError> {
        let q = sqlx::query(sql::EMERGENCY_REVIEW).bind(access_seq);
        self.first(q, rows::log_row).await
    }

    pub(super) async fn subject_log(
        &self,
        case_id: &str,
        subject: &str,
        start: i64,
        limit: i64,
    ) -> Result<(Vec<LogRow>, i64), StoreError> {
        let upto = self.index_upto().await?;
        let q = sqlx::query(sql::SUBJECT_LOG)
            .bind(start)
            .bind(case_id)
            .bind(upto)
            .bind(subject)
            .bind(limit);
        Ok((self.all(q, rows::log_row).await?, upto))
    }

    pub(super) fn scan_log(&self) -> mpsc::Receiver<Result<Chunk, StoreError>> {
        let (tx, rx) = mpsc::channel(AHEAD);
        let pool = self.pool.clone();
        tokio::spawn(async move {
            if let Err(e) = scan::scan(&pool, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        rx
    }
}

/// The write's idempotency key, in its transaction; `seq` as it turned out.
async fn put_request_key(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    k: &RequestKey,
    seq: i64,
) -> Result<(), StoreError> {
    sqlx::query(sql::INSERT_REQUEST_KEY)
        .bind(&k.caller)
        .bind(&k.request_id)
        .bind(&k.method)
        .bind(&k.digest)
        .bind(&k.resource_id)
        .bind(seq)
        .bind(&k.record_id)
        .bind(k.at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A new case's sealed data, in the caller's transaction.
async fn put_case_data(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    case_id: &str,
    sealed: &[(Category, Vec<u8>)],
) -> Result<(), StoreError> {
    for (cat, blob) in sealed {
        sqlx::query(sql::INSERT_CASE_DATA)
            .bind(case_id)
            .bind(i64::from(cat.code()))
            .bind(blob)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

async fn delete_case_data(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    case_id: &str,
    categories: &[Category],
) -> Result<(), StoreError> {
    for cat in categories {
        sqlx::query(sql::DELETE_CASE_DATA)
            .bind(case_id)
            .bind(i64::from(cat.code()))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

async fn put_subject_index(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    case_id: &str,
    entries: &[(String, String)],
) -> Result<(), StoreError> {
    for (kind, digest) in entries {
        sqlx::query(sql::INSERT_SUBJECT_INDEX)
            .bind(kind)
            .bind(digest)
            .bind(case_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// A consent with its recipients and events, in the caller's transaction.
async fn put_consent(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    c: &Consent,
) -> Result<(), StoreError> {
    sqlx::query(sql::INSERT_CONSENT)
        .bind(&c.id)
        .bind(&c.case_id)
        .bind(&c.recorded_by)
        .bind(categories_column(c))
        .bind(purposes_column(c))
        .bind(c.valid_from)
        .bind(c.valid_until)
        .bind(&c.evidence_ref)
        .bind(c.created_at)
        .execute(&mut **tx)
        .await?;
    for r in &c.recipients {
        let (kind, value) = recipient_columns(r);
        sqlx::query(sql::INSERT_RECIPIENT)
            .bind(&c.id)
            .bind(kind)
            .bind(value)
            .execute(&mut **tx)
            .await?;
    }
    for e in &c.events {
        insert_event(tx, &c.id, e).await?;
    }
    Ok(())
}

async fn insert_event(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    consent_id: &str,
    e: &ConsentEvent,
) -> Result<(), StoreError> {
    insert_event_with(tx, sql::INSERT_EVENT, consent_id, e)
        .await
        .map(|_| ())
}

/// `stmt` ([`sql::INSERT_EVENT`] or [`sql::INSERT_WITHDRAWAL`]) for the
/// event; the rows it inserted.
async fn insert_event_with(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    stmt: &'static str,
    consent_id: &str,
    e: &ConsentEvent,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(stmt)
        .bind(consent_id)
        .bind(e.kind.as_str())
        .bind(e.at)
        .bind(&e.by)
        .bind(&e.note)
        .execute(&mut **tx)
        .await?
        .rows_affected())
}

rows::columns_by!(PgRow, try_get);

/// Stores the tree nodes an append completed as hash tiles
/// (`store::tiles::plan`), in the append's transaction.
async fn put_tiles(tx: &mut PgConnection, nodes: &[(NodeId, Hash)]) -> Result<(), StoreError> {
    let w = tiles::plan(nodes)?;
    for (start, hashes) in &w.edge {
        sqlx::query(sql::INSERT_EDGE)
            .bind(start)
            .bind(hashes)
            .execute(&mut *tx)
            .await?;
    }
    for (tile, from, hashes) in &w.fills {
        let edge: Vec<tiles::EdgeRow> = sqlx::query_as(sql::EDGE_OF_TILE)
            .bind(tile)
            .fetch_all(&mut *tx)
            .await?;
        let full = tiles::assemble(*tile, &edge, *from, hashes)?;
        sqlx::query(sql::PUT_TILE)
            .bind(0i64)
            .bind(tile)
            .bind(full)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::DELETE_EDGE_OF_TILE)
            .bind(tile)
            .execute(&mut *tx)
            .await?;
    }
    for (tile, at, hashes) in &w.upper {
        let (level, index) = (i64::from(tile.level), tile.index as i64);
        let stored: Option<Vec<u8>> = sqlx::query_scalar(sql::TILE)
            .bind(level)
            .bind(index)
            .fetch_optional(&mut *tx)
            .await?;
        let grown = tiles::extend(*tile, stored, *at, hashes)?;
        sqlx::query(sql::PUT_TILE)
            .bind(level)
            .bind(index)
            .bind(grown)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// A hash tile as stored: a full or higher tile, else for level 0 the
/// growing tile from its edge rows; `None` when neither holds any of it.
async fn read_tile(conn: &mut PgConnection, tile: TileId) -> Result<Option<Vec<u8>>, StoreError> {
    let stored: Option<Vec<u8>> = sqlx::query_scalar(sql::TILE)
        .bind(i64::from(tile.level))
        .bind(tile.index as i64)
        .fetch_optional(&mut *conn)
        .await?;
    if stored.is_some() || tile.level != 0 {
        return Ok(stored);
    }
    let edge: Vec<tiles::EdgeRow> = sqlx::query_as(sql::EDGE_OF_TILE)
        .bind(tile.index as i64)
        .fetch_all(&mut *conn)
        .await?;
    let bytes = tiles::edge_tile(tile.index, &edge);
    Ok((!bytes.is_empty()).then_some(bytes))
}

/// Why the server takes no connection, after the pool timed out: the
/// error of one connection attempt (e.g. "Connection refused"), or the
/// pool's timeout if that attempt succeeds or does not end in time either.
async fn why_no_connection(options: &PgConnectOptions, settings: &PoolSettings) -> sqlx::Error {
    use sqlx::Connection as _;
    match tokio::time::timeout(
        settings.acquire_timeout,
        sqlx::PgConnection::connect_with(options),
    )
    .await
    {
        Ok(Err(e)) => e,
        _ => sqlx::Error::PoolTimedOut,
    }
}
