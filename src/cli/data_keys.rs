//! `sluis keys rotate-data`, `sluis keys status` and `sluis erase --due`.
//!
//! `rotate-data` makes a new version of the data key (the key-encryption
//! key that wraps every case's own key); the node re-wraps the case keys
//! under it in the background (every `retention.interval`, and at start)
//! and records the rotation in the access log. `status` says how far that
//! is and which old version files may be removed.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::gateway::KeyStatus;
use crate::gateway::vault::{Keys, data_key_file};
use crate::store::{PoolSettings, Store};

/// `sluis keys rotate-data`: a new data key version, taken by a running
/// node within `retention.interval`.
pub(crate) async fn rotate_data(config: &Path) -> anyhow::Result<ExitCode> {
    let config = crate::cli::load_config(config, crate::cli::ON_HOST)?;
    let dir = config.path(&config.node.keys_dir);
    let version = Keys::rotate_data(&dir)
        .with_context(|| format!("cannot make a new data key in {}", dir.display()))?;
    println!(
        "data key version {version} written to {}",
        dir.join(data_key_file(version)).display()
    );
    println!(
        "a running node takes it within retention.interval ({}) and re-wraps every case key under it; `sluis keys status` shows when the older files may be removed",
        config.retention.interval
    );
    Ok(ExitCode::SUCCESS)
}

/// `sluis keys status [--finish]`. Without `--finish` it only reads — the
/// keys folder and the database, no claim on it, no migration — so it is
/// safe beside a serving node (SQLite's WAL lets readers in while the node
/// writes). `--finish` re-wraps, which is the node's work: it opens the node
/// as `sluis erase --due` does, so on SQLite only with the node stopped.
pub(crate) async fn status(path: &Path, finish: bool) -> anyhow::Result<ExitCode> {
    let config = crate::cli::load_config(path, crate::cli::ON_HOST)?;
    let s = if finish {
        let node = open_offline(&config, "keys status --finish").await?;
        let line = |l: &str| eprintln!("{l}");
        let done = node.upkeep().rewrap_case_keys(None, &line).await;
        let s = match done {
            Ok(_) => node.upkeep().key_status().await,
            Err(e) => Err(e),
        };
        node.close().await;
        s?
    } else {
        let dir = config.path(&config.node.keys_dir);
        let keys = Keys::load(&dir)
            .with_context(|| format!("the node's keys in {} do not load", dir.display()))?;
        if let Ok(db) = config.sqlite_path()
            && !db.exists()
        {
            bail!(
                "the node's database {} does not exist (node.database in {})",
                db.display(),
                path.display()
            );
        }
        let (store, _) = Store::open(&config.database_url()?, &read_only(), false).await?;
        let s = KeyStatus::read(&keys, &store).await;
        store.close().await;
        s?
    };
    println!("current data key version: {}", s.current);
    for v in &s.versions {
        let n = s
            .wrapped
            .iter()
            .find(|(w, _)| *w == i64::from(*v))
            .map_or(0, |(_, n)| *n);
        println!("  version {v} ({}): wraps {n} case keys", data_key_file(*v));
    }
    if s.legacy > 0 {
        println!(
            "  {} cases still sealed under version 1 directly (moved when the node starts)",
            s.legacy
        );
    }
    if s.pending() > 0 {
        println!(
            "rotation in progress: {} case keys to re-wrap; keep every version's file",
            s.pending()
        );
    } else {
        println!("rotation done");
    }
    let removable = s.removable();
    if removable.is_empty() {
        println!("no data key file may be removed");
    } else {
        for v in removable {
            println!(
                "may be removed: {} (version {v}; no case key is wrapped under it; backups made before this rotation need it)",
                data_key_file(v)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `sluis erase --due`: erases what is past its `[retention]` period now,
/// with a progress line per batch, as a serving node does every
/// `retention.interval`; each erasure is a `case.erase` record.
pub(crate) async fn erase_due(path: &Path) -> anyhow::Result<ExitCode> {
    let config = crate::cli::load_config(path, crate::cli::ON_HOST)?;
    let (periods, case) = config.retention.periods();
    if periods.is_empty() && case.is_none() {
        println!("[retention] names no period: nothing is ever erased automatically");
        return Ok(ExitCode::SUCCESS);
    }
    let node = open_offline(&config, "erase --due").await?;
    let line = |l: &str| eprintln!("{l}");
    let done = node.upkeep().erase_due(&line).await;
    node.close().await;
    let done = done?;
    println!(
        "erased: {} cases in full (keys destroyed), {} in part; {} postponed (updated meanwhile)",
        done.cases, done.partly, done.postponed
    );
    Ok(ExitCode::SUCCESS)
}

/// The node opened for an operator's command that does the node's work
/// (`node::Offline`), with the cause said right when it cannot be: a SQLite
/// file a serving node holds is the one case where stopping the node helps.
async fn open_offline(
    config: &crate::config::Config,
    command: &str,
) -> anyhow::Result<crate::node::Offline> {
    use crate::node::NodeError;
    use crate::store::StoreError;
    match crate::node::Offline::open(config).await {
        Ok(node) => Ok(node),
        Err(NodeError::Store(StoreError::InUse(db))) => bail!(
            "a node is serving {}: `sluis {command}` does the node's own work and runs only with the node stopped on SQLite (a serving node does the same every retention.interval on its own; `sluis keys status` without --finish shows how far it is while it serves)",
            db.display()
        ),
        Err(e) => {
            Err(anyhow::Error::from(e).context(format!("`sluis {command}` cannot open the node")))
        }
    }
}

/// A small read-only pool: the command reads a few counts.
fn read_only() -> PoolSettings {
    PoolSettings {
        max_connections: 2,
        ..PoolSettings::default()
    }
}
