//! A node's claim on its SQLite file: one node per file.
//!
//! A node that is the file's only writer may keep cases and consents in
//! memory (`cache`), because it sees every change before it is answered. A
//! second node on the same file would change them behind the first one's
//! back, so the claim is an exclusive lock on `<database>.node-lock`, held
//! until the store closes (or the process ends: the operating system drops
//! the lock with it). The claim also checkpoints the WAL in the background,
//! so that a log append seldom pays for copying the WAL into the file.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::store::StoreError;

/// How often the WAL is copied into the database file while a node serves.
const WAL_CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

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

/// The lock file beside the database.
fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".node-lock");
    PathBuf::from(name)
}

/// Takes the file's lock, or refuses with [`StoreError::InUse`] when
/// another node holds it, and starts the background checkpoints, which run
/// `checkpoint` every [`WAL_CHECKPOINT_EVERY`].
pub(super) fn claim<F, Fut>(db: &Path, checkpoint: F) -> Result<Claim, StoreError>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), StoreError>> + Send,
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
    let wal_task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(WAL_CHECKPOINT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = checkpoint().await {
                tracing::debug!(error = %e, "background WAL checkpoint failed; SQLite's own takes over");
            }
        }
    });
    Ok(Claim {
        _lock: file,
        wal_task,
    })
}
