//! Filling an access log fast. The scaling run and `bench audit-log` need
//! logs of millions of entries, and the node's log writer makes every batch
//! of waiting requests durable with an fsync of its own: 10 M entries that
//! way would take hours. So the entries go to the store in large
//! transactions, the Merkle tree is extended here, and a checkpoint over the
//! whole log is signed at the end: a log the node starts on, and `sluis
//! audit verify` checks, as its own.
//!
//! [`bulk_append`] is the one place the bench writes the log without going
//! through the log writer; when only the writer may append, this function
//! is what changes.

use anyhow::Context;

use sluis::gateway::vault::Keys;
use sluis::store::{LogRow, Store, StoredCheckpoint};
use sluis::tlog::AccessRecord;
use sluis::tlog::checkpoint::{self, Checkpoint};
use sluis::tlog::merkle::{self, Frontier};

/// Entries per transaction: large enough that the per-commit cost vanishes,
/// small enough that a batch and its tree nodes stay a few MiB.
const BATCH: u64 = 20_000;

/// Extends the log in `store` with `record(i)` for every index `i` from its
/// current size up to `target`, with the tree nodes, then signs a
/// checkpoint over the whole log as `key_name` with `keys` (the node's name
/// and keys, for a log a node will serve). `progress` is told the log's size
/// after each transaction. A log already at `target` is left as it is.
pub async fn bulk_append(
    store: &Store,
    keys: &Keys,
    key_name: &str,
    target: u64,
    record: impl Fn(u64) -> AccessRecord,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<()> {
    let size = store.log_size().await? as u64;
    if size >= target {
        return Ok(());
    }
    let ids = Frontier::perfect_nodes_for(size);
    let nodes = store.merkle_nodes(&ids).await?;
    let mut frontier = Frontier::from_nodes(size, |id| nodes.get(&id).copied())
        .context("the log's stored tree is incomplete")?;
    let mut i = size;
    while i < target {
        let n = BATCH.min(target - i);
        let rows: Vec<LogRow> = (i..i + n).map(|k| row(record(k))).collect();
        let mut new_nodes = Vec::with_capacity(rows.len() * 2);
        for r in &rows {
            frontier.push_with(merkle::leaf_hash(&r.record), |id, h| {
                new_nodes.push((id, *h))
            });
        }
        store
            .append_log(i as i64, &rows, &[], &new_nodes, None)
            .await?;
        i += n;
        progress(i);
    }
    let cp = Checkpoint {
        origin: checkpoint::origin(key_name),
        size: frontier.size(),
        root: frontier.root(),
    };
    store
        .append_checkpoint(&StoredCheckpoint {
            size: cp.size as i64,
            root: cp.root.to_vec(),
            at: sluis::model::clock::now_millis(),
            note: cp.sign(keys, key_name),
        })
        .await?;
    Ok(())
}

/// The row as the log writer stores a record: its encoding and the query
/// columns.
fn row(r: AccessRecord) -> LogRow {
    LogRow {
        seq: 0,
        record: r.encode(),
        decision: r.decision.as_str().into(),
        request_id: r.request_id,
        at: r.at,
        caller: r.caller,
        role: r.role,
        method: r.method,
        case_id: r.case_id,
        subject: r.subject,
        purpose: r.purpose,
    }
}
