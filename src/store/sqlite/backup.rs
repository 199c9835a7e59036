//! A consistent copy of a live SQLite database: SQLite's online backup API
//! (`sqlite3_backup_*`, https://sqlite.org/backup.html) on a connection of
//! its own, next to the node's.

use std::path::Path;
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use crate::store::{DbError, StoreError};

/// Copies the database at `src` into a new file `dst`, all pages in one
/// step under one read transaction, so the copy is the database as of one
/// commit while the node goes on writing (a step that finds the database
/// busy is retried, at most for `busy`). Returns the number of pages.
pub(crate) fn copy(src: &Path, dst: &Path, busy: Duration) -> Result<u64, StoreError> {
    let open = |e: rusqlite::Error, path: &Path| StoreError::Open {
        target: path.display().to_string(),
        source: e.into(),
    };
    let from = Connection::open_with_flags(src, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| open(e, src))?;
    from.busy_timeout(busy).map_err(|e| open(e, src))?;
    let mut to = Connection::open_with_flags(
        dst,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    )
    .map_err(|e| open(e, dst))?;
    let backup = Backup::new(&from, &mut to).map_err(|e| StoreError::Db(e.into()))?;
    let started = std::time::Instant::now();
    loop {
        match backup.step(-1).map_err(|e| StoreError::Db(e.into()))? {
            StepResult::Done => break,
            StepResult::More => {}
            StepResult::Busy | StepResult::Locked if started.elapsed() < busy => {
                std::thread::sleep(Duration::from_millis(50));
            }
            _ => {
                return Err(StoreError::Unavailable(DbError::msg(
                    "the database stayed locked: no consistent copy could be taken",
                )));
            }
        }
    }
    let pages = backup.progress().pagecount;
    Ok(u64::try_from(pages).unwrap_or(0))
}
