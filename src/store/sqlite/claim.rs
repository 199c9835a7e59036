//! A node's claim on its SQLite file: one node per file.
//!
//! A node that is the file's only writer may keep cases and consents in
//! memory (`cache`), because it sees every change before it is answered. A
//! second node on the same file would change them behind the first one's
//! back, so the claim is an exclusive lock on `<database>.node-lock`, held
//! until the store closes (or the process ends: the operating system drops
//! the lock with it). The claim also checkpoints the WAL in the background,
//! so that a log append seldom pays for copying the WAL into the file, and
//! watches its size: a reader that holds an old snapshot (a long
//! transaction in an `sqlite3` shell, a backup tool) keeps any checkpoint
//! from copying what was written after it began, and the WAL grows by every
//! write until the reader lets go. Above the warning size the node says so,
//! once a minute, naming the likely cause.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::store::StoreError;

/// How often the WAL is copied into the database file while a node serves.
const WAL_CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// How often the warning about a large WAL is repeated while it lasts.
const WAL_WARN_EVERY: Duration = Duration::from_secs(60);

/// Held while a node serves the file.
pub(super) struct Claim {
    _lock: File,
    wal_task: JoinHandle<()>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.wal_task.abort();
    }
}

/// `<database><suffix>`: the files SQLite and the node keep beside it.
fn beside(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The lock file beside the database.
fn lock_path(db: &Path) -> PathBuf {
    beside(db, ".node-lock")
}

/// The database's write-ahead log (SQLite names it `<database>-wal`).
pub(super) fn wal_path(db: &Path) -> PathBuf {
    beside(db, "-wal")
}

/// Takes the file's lock, or refuses with [`StoreError::InUse`] when
/// another node holds it, and starts the background checkpoints, which run
/// `checkpoint` every [`WAL_CHECKPOINT_EVERY`]; it answers the WAL's size in
/// bytes, and above `warn_bytes` a warning is logged every
/// [`WAL_WARN_EVERY`] until it is back below.
pub(super) fn claim<F, Fut>(db: &Path, warn_bytes: u64, checkpoint: F) -> Result<Claim, StoreError>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<u64, StoreError>> + Send,
{
    let path = lock_path(db);
    let lock_error = |source| StoreError::Lock {
        path: path.clone(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(lock_error)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Err(StoreError::InUse(db.to_path_buf())),
        Err(TryLockError::Error(source)) => return Err(lock_error(source)),
    }
    let wal = wal_path(db);
    let wal_task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(WAL_CHECKPOINT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut warned: Option<tokio::time::Instant> = None;
        loop {
            tick.tick().await;
            let size = match checkpoint().await {
                Ok(size) => size,
                Err(e) => {
                    tracing::debug!(error = %e, "background WAL checkpoint failed; SQLite's own takes over");
                    continue;
                }
            };
            let mb = size / (1024 * 1024);
            if size > warn_bytes {
                if warned.is_none_or(|at| at.elapsed() >= WAL_WARN_EVERY) {
                    tracing::warn!(
                        wal = %wal.display(),
                        size_mb = mb,
                        warn_mb = warn_bytes / (1024 * 1024),
                        "the SQLite write-ahead log keeps growing: a reader holds an old snapshot \
                         (a long transaction, e.g. an open sqlite3 shell or a backup), so it cannot be \
                         checkpointed; it is cut back once that reader ends"
                    );
                    warned = Some(tokio::time::Instant::now());
                }
            } else if warned.take().is_some() {
                tracing::info!(wal = %wal.display(), size_mb = mb, "the SQLite write-ahead log is back within bounds");
            }
        }
    });
    Ok(Claim {
        _lock: file,
        wal_task,
    })
}
