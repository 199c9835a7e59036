//! The SQLite schema: the files of `migrations/sqlite/` (embedded by
//! `store::migrations`) applied in order in one transaction, the version
//! reached recorded in the database header (`PRAGMA user_version`, which
//! SQLite changes transactionally).
//!
//! Databases made before this runner existed were migrated by sqlx, which
//! records applied migrations in a `_sqlx_migrations` table and leaves
//! `user_version` at 0. Such a database is adopted: the versions sqlx
//! applied count as applied, provided each finished and ran exactly the SQL
//! embedded here (sqlx stores a SHA-384 of it). The table is left as it is.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::store::migrations::SQLITE as MIGRATIONS;
use crate::store::{SchemaError, StoreError};

/// Brings the schema to the latest version. Errors
/// ([`StoreError::Schema`]) say what to do: a database from a newer sluis,
/// a migration sqlx left unfinished or applied with other SQL.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let latest = MIGRATIONS.last().map_or(0, |m| m.version);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == 0 {
        version = adopt_sqlx(&tx)?;
    }
    if version > latest {
        return Err(SchemaError::Newer {
            found: version,
            known: latest,
        }
        .into());
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > version) {
        tx.execute_batch(m.sql).map_err(|e| SchemaError::Failed {
            version: m.version,
            name: m.name,
            source: e.into(),
        })?;
    }
    tx.pragma_update(None, "user_version", latest)?;
    tx.commit()?;
    Ok(())
}

/// The versions of this binary's migrations the database has not had, in
/// order (none: up to date), read without changing anything. Errors: those
/// of reading an sqlx-made history ([`SchemaError`]).
pub(super) fn pending(conn: &Connection) -> Result<Vec<i64>, StoreError> {
    let mut version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == 0 {
        version = adopt_sqlx(conn)?;
    }
    Ok(MIGRATIONS
        .iter()
        .map(|m| m.version)
        .filter(|v| *v > version)
        .collect())
}

/// The version sqlx brought the database to (0 if it never did).
fn adopt_sqlx(tx: &Connection) -> Result<i64, StoreError> {
    let sqlx_table = tx
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if !sqlx_table {
        return Ok(0);
    }
    let mut q =
        tx.prepare("SELECT version, success, checksum FROM _sqlx_migrations ORDER BY version")?;
    let applied = q
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, bool>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut version = 0;
    for (v, success, checksum) in applied {
        let Some(m) = MIGRATIONS.iter().find(|m| m.version == v) else {
            return Err(SchemaError::UnknownMigration(v).into());
        };
        // The next version of the list (numbers may be skipped there).
        let next = MIGRATIONS
            .iter()
            .find(|m| m.version > version)
            .map_or(version + 1, |m| m.version);
        if v != next {
            return Err(SchemaError::Gap {
                found: v,
                missing: next,
            }
            .into());
        }
        if !success {
            return Err(SchemaError::Unfinished {
                version: v,
                name: m.name,
            }
            .into());
        }
        if checksum != ring::digest::digest(&ring::digest::SHA384, m.sql.as_bytes()).as_ref() {
            return Err(SchemaError::OtherSql {
                version: v,
                name: m.name,
            }
            .into());
        }
        version = v;
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::migrations::Migration;

    fn user_version(c: &Connection) -> i64 {
        c.query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    }

    fn tables(c: &Connection) -> Vec<String> {
        let mut q = c
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap();
        q.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// A database as sqlx 0.9's migrator left it: the migrations applied,
    /// each recorded in `_sqlx_migrations` (its table, as sqlx creates it).
    fn migrated_by_sqlx(c: &Connection, record: impl Fn(&Migration) -> (bool, Vec<u8>)) {
        c.execute_batch(
            "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
                version BIGINT PRIMARY KEY,
                description TEXT NOT NULL,
                installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
                success BOOLEAN NOT NULL,
                checksum BLOB NOT NULL,
                execution_time BIGINT NOT NULL
            );",
        )
        .unwrap();
        for m in MIGRATIONS {
            c.execute_batch(m.sql).unwrap();
            let (success, checksum) = record(m);
            c.execute(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
                 VALUES (?1, ?2, ?3, ?4, 1000)",
                rusqlite::params![m.version, m.name, success, checksum],
            )
            .unwrap();
        }
    }

    fn sha384(sql: &str) -> Vec<u8> {
        ring::digest::digest(&ring::digest::SHA384, sql.as_bytes())
            .as_ref()
            .to_vec()
    }

    #[test]
    fn a_new_database_gets_every_migration_once() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c).unwrap();
        assert_eq!(user_version(&c), MIGRATIONS.last().unwrap().version);
        assert!(tables(&c).contains(&"access_log".to_string()));
        assert!(tables(&c).contains(&"merkle_nodes".to_string()));
        // Again: nothing to do, nothing fails.
        migrate(&mut c).unwrap();
        assert_eq!(user_version(&c), MIGRATIONS.last().unwrap().version);
    }

    #[test]
    fn a_database_sqlx_migrated_is_adopted_without_running_anything_again() {
        let mut c = Connection::open_in_memory().unwrap();
        migrated_by_sqlx(&c, |m| (true, sha384(m.sql)));
        c.execute(
            "INSERT INTO checkpoints (size, root, at, note) VALUES (0, x'00', 0, 'kept')",
            [],
        )
        .unwrap();
        // Running migration 1 again would fail: its tables exist.
        migrate(&mut c).unwrap();
        assert_eq!(user_version(&c), MIGRATIONS.last().unwrap().version);
        let note: String = c
            .query_row("SELECT note FROM checkpoints", [], |r| r.get(0))
            .unwrap();
        assert_eq!(note, "kept");
        assert!(tables(&c).contains(&"_sqlx_migrations".to_string()));
    }

    #[test]
    fn an_unfinished_or_different_sqlx_migration_is_refused() {
        let mut c = Connection::open_in_memory().unwrap();
        migrated_by_sqlx(&c, |m| (m.version != 2, sha384(m.sql)));
        let e = migrate(&mut c).unwrap_err().to_string();
        assert!(
            e.contains("migration 2") && e.contains("did not finish"),
            "{e}"
        );
        assert_eq!(user_version(&c), 0);

        let mut c = Connection::open_in_memory().unwrap();
        migrated_by_sqlx(&c, |m| (true, sha384(&format!("{} ", m.sql))));
        let e = migrate(&mut c).unwrap_err().to_string();
        assert!(e.contains("migration 1") && e.contains("other SQL"), "{e}");
    }

    #[test]
    fn a_database_from_a_newer_sluis_is_refused() {
        let mut c = Connection::open_in_memory().unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        let e = migrate(&mut c).unwrap_err().to_string();
        assert!(e.contains("version 99"), "{e}");
    }
}
