//! Filling an access log for the scaling run and `bench audit-log`, which
//! need logs of millions of entries.
//!
//! Only the node's log writer may append to a log (the store hands out one
//! `LogSink`, and `AuditLog` takes it), so a bench log is written the way a
//! node writes its own: through [`AuditLog`], with enough appends in
//! flight that every group commit is a full batch, and a checkpoint signed
//! over the whole log at the end. A node then starts on it, and `sluis
//! audit verify` checks it, as its own.

use std::sync::Arc;
use std::time::Duration;

use sluis::gateway::vault::Keys;
use sluis::store::{LogSink, Store};
use sluis::tlog::checkpoint;
use sluis::tlog::{AccessRecord, AuditLog, LogSettings};

/// Appends in flight at once: several full batches of the writer.
const IN_FLIGHT: u64 = 20_000;

/// Extends the log in `store` with `record(i)` for every index `i` from its
/// current size up to `target`, through the log writer (which stores the
/// tree nodes), then has it sign a checkpoint over the whole log as
/// `key_name` with `keys` (the node's name and keys, for a log a node will
/// serve). `progress` is told the log's size after each round of appends.
/// A log already at `target` is left as it is.
pub async fn bulk_append(
    store: &Store,
    sink: LogSink,
    keys: Arc<Keys>,
    key_name: &str,
    target: u64,
    record: impl Fn(u64) -> AccessRecord,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<()> {
    let size = store.log_size().await? as u64;
    if size >= target {
        return Ok(());
    }
    let settings = LogSettings {
        key_name: key_name.to_string(),
        origin: checkpoint::origin(key_name),
        // One checkpoint at the end is enough for a bench log.
        checkpoint_interval: Duration::from_secs(24 * 3600),
    };
    let log = AuditLog::start(store.clone(), sink, keys, settings).await?;
    let mut i = size;
    while i < target {
        let n = IN_FLIGHT.min(target - i);
        let mut appends = tokio::task::JoinSet::new();
        for k in i..i + n {
            let (log, r) = (log.clone(), record(k));
            appends.spawn(async move { log.append(&r).await });
        }
        while let Some(appended) = appends.join_next().await {
            appended??;
        }
        i += n;
        progress(i);
    }
    log.sign_pending().await;
    Ok(())
}
