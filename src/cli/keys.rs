//! `sluis keys rotate-signing`, `sluis keys rotate-pseudonym` and `sluis
//! node rename` (the data key's commands are in `data_keys`): the operator's rotations, run on the node's host with the
//! node stopped (every replica, on PostgreSQL), each recorded in the access
//! log as the node's own record before it takes effect.
//!
//! A signing key rotation and a rename hand the log over from one verifier
//! key to the next (`tlog::handover`): the record names both keys, the
//! checkpoint over it carries both signatures, the retired verifier key
//! goes into `signing.history`. A pseudonym rotation adds a secret version
//! (`gateway::pseudonym`). What each means, and what losing each key means,
//! is in docs/operations.md.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::config::Config;
use crate::gateway::vault::Keys;
use crate::store::{LogSink, Store, StoreError};
use crate::tlog::checkpoint::{Checkpoint, origin};
use crate::tlog::handover::{self, Handover};
use crate::tlog::note::{self, Signer};
use crate::tlog::{AccessRecord, AuditLog, Cosigner, Decision, LogSettings};

/// The operator's key rotations.
#[derive(clap::Subcommand)]
pub(crate) enum KeysCommand {
    /// Replace the checkpoint-signing key: make a new Ed25519 key, record the handover in the
    /// access log (signed by the old key, its checkpoint by both), keep the old verifier key in
    /// keys/signing.history, then sign with the new one. Run with the node stopped; run again
    /// to finish a rotation that was interrupted.
    RotateSigning {
        #[arg(long, value_name = "FILE", default_value = "sluis.toml")]
        config: std::path::PathBuf,
    },
    /// Add a pseudonym secret version: recipients get new pseudonyms under the next prefix
    /// (ps2., ps3., …); every pseudonym issued before keeps resolving for its recipient. Recorded
    /// in the access log. Run with the node stopped.
    RotatePseudonym {
        #[arg(long, value_name = "FILE", default_value = "sluis.toml")]
        config: std::path::PathBuf,
    },
    /// Make a new data key version (keys/data.vN.key). The node re-wraps every case key under it
    /// in the background (no case data is re-encrypted) and records it; keep the old version's
    /// file until `sluis keys status` says it may be removed.
    RotateData {
        #[arg(long, value_name = "FILE", default_value = "sluis.toml")]
        config: std::path::PathBuf,
    },
    /// The data key versions, how many case keys each wraps, and which files may be removed.
    /// Only reads the keys folder and the database, so it runs beside a serving node (SQLite
    /// too). With --finish it re-wraps in the node's place: on SQLite only with the node
    /// stopped (a serving node re-wraps on its own every retention.interval).
    Status {
        #[arg(long, value_name = "FILE", default_value = "sluis.toml")]
        config: std::path::PathBuf,
        /// Also re-wrap what is left now, with a progress line per batch.
        #[arg(long)]
        finish: bool,
    },
    /// The log's checkpoint-signing keys, oldest first, each with the checkpoint sizes it
    /// signed, and each handover checkpoint (a C2SP signed note, signed by the key before and
    /// the key after it) for anyone to check: what an outside verifier needs to check this
    /// node's checkpoints across rotations and renames (`sluis audit verify --key … --key …`).
    /// Only reads. Exit 1 if a handover checkpoint is missing or not signed by both keys.
    History {
        #[arg(long, value_name = "FILE", default_value = "sluis.toml")]
        config: std::path::PathBuf,
    },
}

/// The node's identity.
#[derive(clap::Subcommand)]
pub(crate) enum NodeCommand {
    /// After changing `name` under [node] in the configuration: hand the log over from the old
    /// name (read from the log's latest checkpoint) to the new one, so that `audit verify` keeps
    /// passing. The checkpoints' origin line and verifier key change with the name; the old
    /// verifier key goes into keys/signing.history. Run with the node stopped.
    Rename {
        #[arg(long, value_name = "FILE", default_value = "sluis.toml")]
        config: std::path::PathBuf,
    },
}

pub(crate) async fn run_keys(command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::RotateSigning { config } => rotate_signing(&config).await,
        KeysCommand::RotatePseudonym { config } => rotate_pseudonym(&config).await,
        KeysCommand::RotateData { config } => crate::cli::data_keys::rotate_data(&config).await,
        KeysCommand::Status { config, finish } => {
            crate::cli::data_keys::status(&config, finish).await
        }
        KeysCommand::History { config } => history(&config).await,
    }
}

pub(crate) async fn run_node(command: NodeCommand) -> anyhow::Result<ExitCode> {
    match command {
        NodeCommand::Rename { config } => rename(&config).await,
    }
}

fn load(config_path: &Path) -> anyhow::Result<Config> {
    crate::cli::load_config(config_path, crate::cli::ON_HOST)
}

/// The node's store, claimed for an operator's step that needs every node
/// stopped (`Store::claim_exclusive`): refused, saying so, while a node
/// serves it. Taken before anything is changed, so that a refusal changes
/// nothing.
async fn claim(config: &Config, command: &str) -> anyhow::Result<(Store, LogSink)> {
    let (store, sink) = Store::open(&config.database_url()?, &config.pool_settings(), true).await?;
    match store.claim_exclusive(config.cache_bounds()).await {
        Ok(store) => Ok((store, sink)),
        Err(StoreError::InUse(db)) => bail!(
            "a node is serving the database {}: `sluis {command}` runs only with the node stopped, so that it does not go on with the old key or name. Nothing was changed: stop the node, run this again, then start the node",
            db.display()
        ),
        Err(StoreError::NodesServing(db)) => bail!(
            "a node is serving the PostgreSQL database {db}: `sluis {command}` runs only with every replica stopped, so that none goes on with the old key or name. Nothing was changed: stop the node on every host, run this again, then start them"
        ),
        Err(e) => Err(e.into()),
    }
}

/// The claimed store's log writer signing as `name` (with `cosigner` too,
/// for a handover). The writer's start refuses a log whose latest
/// checkpoint `signer` did not sign as `name`; the store is closed then.
async fn open_log(
    config: &Config,
    (store, sink): (Store, LogSink),
    signer: Arc<dyn Signer>,
    name: &str,
    cosigner: Option<Cosigner>,
) -> anyhow::Result<(Store, AuditLog)> {
    let settings = LogSettings {
        key_name: name.to_string(),
        origin: origin(name),
        checkpoint_interval: Duration::from_millis(config.node.checkpoint_interval_ms),
    };
    match AuditLog::start_handover(store.clone(), sink, signer, settings, cosigner).await {
        Ok(log) => Ok((store, log)),
        Err(e) => {
            store.close().await;
            Err(anyhow::Error::from(e).context("the access log cannot be opened"))
        }
    }
}

/// The node's own record of an operator's step.
fn record(name: &str, method: &str, detail: String) -> AccessRecord {
    let mut rec = AccessRecord::new(
        uuid::Uuid::now_v7().to_string(),
        crate::model::clock::now_millis(),
        method,
    );
    rec.caller = name.to_string();
    rec.decision = Decision::Allowed;
    rec.status = crate::gateway::Code::Ok.name().into();
    rec.detail = detail;
    rec
}

/// Appends the handover's record and signs the checkpoint over it (by both
/// keys: the writer has the new one as cosigner); returns that checkpoint's
/// size, once it is stored and verifies under both keys.
async fn hand_over(
    store: &Store,
    log: &AuditLog,
    name: &str,
    method: &str,
    h: &Handover,
) -> anyhow::Result<u64> {
    let recorded = log
        .append(&record(name, method, h.detail()))
        .await
        .context("the handover could not be recorded; nothing changed")?;
    log.sign_pending().await;
    let size = recorded.index() + 1;
    let cp = store.checkpoint(size as i64).await?;
    let both = cp.as_ref().is_some_and(|cp| {
        Checkpoint::verify(&cp.note, &h.from).is_ok() && Checkpoint::verify(&cp.note, &h.to).is_ok()
    });
    if !both {
        bail!(
            "the handover is recorded at entry {} but its checkpoint of size {size} signed by both keys is not stored; run the command again",
            recorded.index()
        );
    }
    Ok(size)
}

async fn rotate_signing(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = load(config_path)?;
    let name = config.node.name.clone();
    let dir = config.path(&config.node.keys_dir);
    let old = Arc::new(Keys::load(&dir).context("the node's keys do not load")?);
    let history = old.log_keys(&dir, &name)?;
    let claimed = claim(&config, "keys rotate-signing").await?;
    let next = match Keys::next_signing_key(&dir) {
        Ok(next) => Arc::new(next),
        Err(e) => {
            claimed.0.close().await;
            return Err(e.into());
        }
    };
    let h = Handover {
        from: note::verifier_key(&name, &old.signing_public_key()),
        to: note::verifier_key(&name, &next.signing_public_key()),
    };
    let cosigner = Cosigner {
        signer: next.clone(),
        name: name.clone(),
    };
    let (store, log) = open_log(&config, claimed, old, &name, Some(cosigner)).await?;
    // A rotation interrupted after its handover was recorded: finish it.
    let done = match store.latest_checkpoint().await? {
        Some(cp) => Checkpoint::verify(&cp.note, &h.to).is_ok(),
        None => false,
    };
    let result = match done {
        true => Ok(None),
        false => hand_over(&store, &log, &name, handover::ROTATE_KEY, &h)
            .await
            .map(Some),
    };
    drop(log);
    store.close().await;
    let at = result?;
    Keys::finish_rotation(&dir, &history)?;
    match at {
        Some(size) => {
            println!("the log is handed over at size {size}, by a checkpoint signed by both keys")
        }
        None => println!("finished the rotation an earlier run had recorded"),
    }
    println!(
        "checkpoints are signed from now on by\n  {}\nthe old verifier key is kept in {}:\n  {}\n\
         Give the new verifier key to whoever checks this node's checkpoints (witnesses, the\n\
         federation directory's log-key, privacy officers), then start the node.",
        h.to,
        dir.join("signing.history").display(),
        h.from
    );
    Ok(ExitCode::SUCCESS)
}

async fn rotate_pseudonym(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = load(config_path)?;
    let name = config.node.name.clone();
    let dir = config.path(&config.node.keys_dir);
    let keys = Arc::new(Keys::load(&dir).context("the node's keys do not load")?);
    let claimed = claim(&config, "keys rotate-pseudonym").await?;
    let (store, log) = open_log(&config, claimed, keys, &name, None).await?;
    let result = async {
        let version = Keys::add_pseudonym_version(&dir)?;
        let rec = record(
            &name,
            "node.rotate_pseudonym",
            format!(
                "recipients' pseudonyms are issued under pseudonym secret version {version} (ps{version}.) from here on; those issued before keep resolving"
            ),
        );
        if let Err(e) = log.append(&rec).await {
            // Not recorded: not in force either.
            let _ = std::fs::remove_file(dir.join(format!("pseudonym.v{version}.key")));
            return Err(anyhow::Error::from(e).context("the rotation could not be recorded; nothing changed"));
        }
        log.sign_pending().await;
        Ok(version)
    }
    .await;
    drop(log);
    store.close().await;
    let version = result?;
    println!(
        "pseudonym secret version {version} made ({}): recipients get ps{version}. pseudonyms from the\n\
         node's next start; their earlier pseudonyms keep resolving. Back up the keys folder now.",
        dir.join(format!("pseudonym.v{version}.key")).display()
    );
    Ok(ExitCode::SUCCESS)
}

async fn rename(config_path: &Path) -> anyhow::Result<ExitCode> {
    // The new name first: a name the node would refuse is what to mend,
    // whatever else the file holds.
    if let Ok((parsed, _)) = Config::parse(config_path)
        && let Some(problem) =
            crate::config::node_name_problem(&parsed.node.name, parsed.federation.is_some())
    {
        bail!(
            "the new name '{}' (node.name in {}) is not a valid node name: {problem}. Nothing was renamed; {}, then run `sluis node rename` again",
            parsed.node.name.escape_debug(),
            config_path.display(),
            crate::config::NODE_NAME_FIX
        );
    }
    let config = load(config_path)?;
    let new = config.node.name.clone();
    let dir = config.path(&config.node.keys_dir);
    let keys = Arc::new(Keys::load(&dir).context("the node's keys do not load")?);
    let public = keys.signing_public_key();
    let latest = {
        let (store, _) =
            Store::open(&config.database_url()?, &config.pool_settings(), true).await?;
        let cp = store.latest_checkpoint().await;
        store.close().await;
        cp?
    };
    let Some(cp) = latest else {
        println!(
            "the log has no signed checkpoint yet: the node starts as '{new}', nothing to hand over"
        );
        return Ok(ExitCode::SUCCESS);
    };
    // The names this node's key signed the latest checkpoint as.
    let signed_as: Vec<String> = note::signature_names(&cp.note)
        .into_iter()
        .filter(|n| Checkpoint::verify(&cp.note, &note::verifier_key(n, &public)).is_ok())
        .map(str::to_string)
        .collect();
    let Some(old) = signed_as.iter().find(|n| **n != new).cloned() else {
        if signed_as.is_empty() {
            bail!(
                "the log's latest checkpoint (size {}) is not signed by this node's signing key: put the key that signed the log back first",
                cp.size
            );
        }
        println!("the log is signed as '{new}' already: nothing to hand over");
        return Ok(ExitCode::SUCCESS);
    };
    let h = Handover {
        from: note::verifier_key(&old, &public),
        to: note::verifier_key(&new, &public),
    };
    let history = keys.log_keys(&dir, &old)?;
    if !signed_as.contains(&new) {
        let cosigner = Cosigner {
            signer: keys.clone(),
            name: new.clone(),
        };
        let claimed = claim(&config, "node rename").await?;
        let (store, log) = open_log(&config, claimed, keys, &old, Some(cosigner)).await?;
        let result = hand_over(&store, &log, &old, handover::RENAME, &h).await;
        drop(log);
        store.close().await;
        result?;
    }
    Keys::record_history(&dir, &history)?;
    println!(
        "the log is handed over from '{old}' to '{new}': checkpoints now have the origin {}\n\
         and verify under\n  {}\nThe old verifier key is kept in {}. A federated node also needs a directory that\n\
         names it '{new}' with this log-key (the network operator's `sluis federation sign`).",
        origin(&new),
        h.to,
        dir.join("signing.history").display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `sluis keys history`: the log's signing keys with the checkpoint sizes
/// each signed, from the handover records (`node.rotate_key`,
/// `node.rename`) and the checkpoints over them, each checked here under
/// both of its keys. Reads only.
async fn history(config_path: &Path) -> anyhow::Result<ExitCode> {
    use crate::store::LogFilter;
    let config = load(config_path)?;
    let name = config.node.name.clone();
    let dir = config.path(&config.node.keys_dir);
    let keys = Keys::load(&dir).context("the node's keys do not load")?;
    let current = note::verifier_key(&name, &keys.signing_public_key());
    if let Ok(db) = config.sqlite_path()
        && !db.exists()
    {
        bail!("the node's database {} does not exist", db.display());
    }
    let settings = crate::store::PoolSettings {
        max_connections: 2,
        ..crate::store::PoolSettings::default()
    };
    let (store, _) = Store::open(&config.database_url()?, &settings, false).await?;
    let result = async {
        let mut handovers = Vec::new();
        for method in [handover::ROTATE_KEY, handover::RENAME] {
            let filter = LogFilter {
                method: Some(method.to_string()),
                ..LogFilter::default()
            };
            for row in store.query_log(&filter, 0, 10_000).await? {
                let h = AccessRecord::decode(&row.record)
                    .and_then(|r| Handover::parse(&r.method, &r.detail));
                if let Some(h) = h {
                    handovers.push((row.seq + 1, h));
                }
            }
        }
        handovers.sort_by_key(|(size, _)| *size);
        let mut checked = Vec::new();
        for (size, h) in handovers {
            let cp = store.checkpoint(size).await?;
            checked.push((size, h, cp));
        }
        let latest = store.latest_checkpoint().await?.map(|cp| cp.size);
        anyhow::Ok((checked, latest))
    }
    .await;
    store.close().await;
    let (handovers, latest) = result?;

    println!(
        "checkpoint keys of this node's access log, oldest first; a checkpoint of size N verifies\n\
         under the key whose range holds N (a handover checkpoint under both):"
    );
    let mut ok = true;
    let mut start = 1;
    for (size, h, _) in &handovers {
        println!("{}\n  signed sizes {start} to {size}", h.from);
        start = *size;
    }
    let last = handovers
        .last()
        .map_or(current.as_str(), |(_, h, _)| h.to.as_str());
    match latest {
        Some(latest) => {
            println!("{last}\n  signs from size {start} on (latest checkpoint: size {latest})")
        }
        None => println!("{last}\n  has signed no checkpoint yet"),
    }
    if last != current {
        ok = false;
        println!(
            "NOT the key in the keys folder ({current}): the log was last handed over to another key"
        );
    }
    for (size, h, cp) in &handovers {
        println!("\nhandover at size {size}, {} to {}:", h.from, h.to);
        match cp {
            Some(cp)
                if Checkpoint::verify(&cp.note, &h.from).is_ok()
                    && Checkpoint::verify(&cp.note, &h.to).is_ok() =>
            {
                println!("signed by both keys (checked):\n{}", cp.note.trim_end());
            }
            Some(cp) => {
                ok = false;
                println!("NOT signed by both keys:\n{}", cp.note.trim_end());
            }
            None => {
                ok = false;
                println!("NO checkpoint of size {size} is stored");
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
