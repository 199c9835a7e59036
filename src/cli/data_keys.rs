//! `sluis keys rotate-data`, `sluis keys status` and `sluis erase --due`.
//!
//! `rotate-data` makes a new version of the data key (the key-encryption
//! key that wraps every case's own key); the node re-wraps the case keys
//! under it in the background (every `retention.interval`, and at start)
//! and records the rotation in the access log. `status` says how far that
//! is and which old version files may be removed.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::config::Config;
use crate::gateway::vault::{Keys, data_key_file};

/// `sluis keys rotate-data`: a new data key version, taken by a running
/// node within `retention.interval`.
pub(crate) async fn rotate_data(config: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
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

pub(crate) async fn status(path: &Path, finish: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(path)?;
    let node = crate::node::Offline::open(&config)
        .await
        .context("cannot open the node (on SQLite, stop the node first)")?;
    if finish {
        let line = |l: &str| eprintln!("{l}");
        node.upkeep().rewrap_case_keys(None, &line).await?;
    }
    let s = node.upkeep().key_status().await?;
    node.close().await;
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
    let config = Config::load(path)?;
    let (periods, case) = config.retention.periods();
    if periods.is_empty() && case.is_none() {
        println!("[retention] names no period: nothing is ever erased automatically");
        return Ok(ExitCode::SUCCESS);
    }
    let node = crate::node::Offline::open(&config)
        .await
        .context("cannot open the node (on SQLite, stop the node first)")?;
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
