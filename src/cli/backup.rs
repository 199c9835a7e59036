//! `sluis backup` and `sluis restore`: a copy of a live SQLite node that
//! can be restored elsewhere, and the check that a restored log is the one
//! the node signed before anything serves from it.
//!
//! A backup folder holds `sluis.db` (SQLite's online backup: the database
//! as of one commit), `keys/` (the node's key files, each 0600), and
//! `MANIFEST.json`: what is where, each file's size and SHA-256, the node's
//! name and its checkpoint verifier key. The database and the keys are
//! separate files so they can be kept apart: together they are the data.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::gateway::vault::Keys;
use crate::store::{PoolSettings, Store};
use crate::tlog::{note, verify};

const MANIFEST: &str = "MANIFEST.json";
const DATABASE: &str = "sluis.db";
const FORMAT: &str = "sluis-backup/1";
/// How long a copy waits for a database the node holds locked.
const BUSY: Duration = Duration::from_secs(30);

/// How much of a file is in memory at once while it is hashed or copied.
const CHUNK: usize = 64 * 1024;

/// Reads `from` to its end in [`CHUNK`]-sized pieces, hashing each
/// (SHA-256, FIPS 180-4) and handing it to `sink`; answers (bytes, hex
/// SHA-256). Memory holds one piece whatever the file's size: a database
/// of many gigabytes is hashed and copied in 64 KiB.
fn stream_hashing(
    mut from: impl std::io::Read,
    mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<(u64, String)> {
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hash.update(&buf[..n]);
        sink(&buf[..n])?;
        total += n as u64;
    }
    Ok((total, hex::encode(hash.finish().as_ref())))
}

/// The size and SHA-256 (hex) of the file at `path`, read in pieces.
fn sha256_file(path: &Path) -> anyhow::Result<(u64, String)> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    stream_hashing(file, |_| Ok(())).with_context(|| format!("cannot read {}", path.display()))
}

/// Copies `from` into the new file `to` (0600, synced), hashing what it
/// copies: answers the copy's size and SHA-256, so a check against a
/// manifest is of the bytes written, not of a second read.
fn copy_hashing(from: &Path, to: &Path) -> anyhow::Result<(u64, String)> {
    let source =
        std::fs::File::open(from).with_context(|| format!("cannot read {}", from.display()))?;
    let mut target = create_private(to)?;
    let done = stream_hashing(source, |piece| target.write_all(piece))
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    target.sync_all()?;
    Ok(done)
}

/// Creates `path` for writing, readable by its owner only.
fn create_private(path: &Path) -> anyhow::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

fn create_private_dir(path: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path).with_context(|| {
        format!(
            "cannot create {} (it must not exist yet: a backup or restore never overwrites)",
            path.display()
        )
    })
}

/// Copies every regular file of `from` into the new folder `to`, each 0600;
/// returns (name, size, SHA-256) per file.
fn copy_keys(from: &Path, to: &Path) -> anyhow::Result<Vec<(String, u64, String)>> {
    create_private_dir(to)?;
    let mut names: Vec<String> = std::fs::read_dir(from)
        .with_context(|| format!("cannot read the keys folder {}", from.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let (bytes, sha) = copy_hashing(&from.join(&name), &to.join(&name))?;
        out.push((name, bytes, sha));
    }
    Ok(out)
}

/// `sluis backup --to DIR`.
pub(crate) async fn backup(config_path: &Path, to: &Path) -> anyhow::Result<ExitCode> {
    let config = crate::cli::load_config(config_path, crate::cli::ON_HOST)?;
    let Ok(db) = config.sqlite_path() else {
        bail!(
            "the node's database is PostgreSQL: back it up with pg_dump or pg_basebackup, and its keys folder apart (docs/operations.md, \"Back up\"); `sluis restore --check` checks a restored database"
        );
    };
    if !db.exists() {
        bail!("the node's database {} does not exist", db.display());
    }
    create_private_dir(to)?;
    eprintln!("copying the database {} (online backup) …", db.display());
    let copy = to.join(DATABASE);
    drop(create_private(&copy)?);
    let started = std::time::Instant::now();
    let pages = tokio::task::spawn_blocking({
        let (db, copy) = (db.clone(), copy.clone());
        move || crate::store::backup_sqlite(&db, &copy, BUSY)
    })
    .await??;
    let (db_bytes, db_sha) = sha256_file(&copy)?;
    eprintln!(
        "copied {pages} pages ({db_bytes} bytes) in {:.1}s; copying the keys …",
        started.elapsed().as_secs_f64()
    );
    let keys_dir = config.path(&config.node.keys_dir);
    let keys = copy_keys(&keys_dir, &to.join("keys"))?;
    let signing = Keys::load(&to.join("keys")).context("the copied keys do not load")?;
    let manifest = serde_json::json!({
        "format": FORMAT,
        "node": config.node.name,
        "created": crate::model::clock::rfc3339(crate::model::clock::now_millis()),
        "verifier_key": note::verifier_key(&config.node.name, &signing.signing_public_key()),
        "database": {"file": DATABASE, "bytes": db_bytes, "sha256": db_sha, "source": db.display().to_string()},
        "keys": keys.iter().map(|(name, bytes, sha)| serde_json::json!({
            "file": format!("keys/{name}"), "bytes": bytes, "sha256": sha,
        })).collect::<Vec<_>>(),
        "keys_source": keys_dir.display().to_string(),
    });
    let mut m = create_private(&to.join(MANIFEST))?;
    writeln!(m, "{}", serde_json::to_string_pretty(&manifest)?)?;
    m.sync_all()?;
    println!(
        "backup of node {} in {}: {DATABASE} ({db_bytes} bytes), keys/ ({} files), {MANIFEST}\n\
         Keep keys/ apart from {DATABASE}: together they are the data. Restore with\n  \
         sluis restore --from {} --to NEW_DATABASE_FILE",
        config.node.name,
        to.display(),
        keys.len(),
        to.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `sluis restore --from DIR --to PATH`: the database to `PATH`, the keys
/// to `keys` (default: a `keys` folder beside `PATH`), each checked against
/// the manifest, then the log checked against its signed checkpoints.
pub(crate) async fn restore(
    from: &Path,
    to: &Path,
    keys_to: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let text = crate::files::read_to_string(&from.join(MANIFEST), crate::files::Kind::Config)
        .with_context(|| format!("{} is no backup made by `sluis backup`", from.display()))?;
    let manifest: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{MANIFEST} does not parse"))?;
    if manifest["format"] != FORMAT {
        bail!("{MANIFEST}: format {} is not {FORMAT}", manifest["format"]);
    }
    let (Some(node), Some(key)) = (manifest["node"].as_str(), manifest["verifier_key"].as_str())
    else {
        bail!("{MANIFEST}: no node name or verifier key");
    };
    let mut files = vec![(
        DATABASE.to_string(),
        manifest["database"]["sha256"].as_str().unwrap_or(""),
    )];
    for k in manifest["keys"].as_array().into_iter().flatten() {
        files.push((
            k["file"].as_str().unwrap_or("").to_string(),
            k["sha256"].as_str().unwrap_or(""),
        ));
    }
    for (file, want) in &files {
        if file.contains("..") || file.starts_with('/') {
            bail!("{MANIFEST}: {file} is outside the backup");
        }
        let (_, got) = sha256_file(&from.join(file))?;
        if got != *want {
            bail!("{file} is not the file the backup wrote (SHA-256 differs from {MANIFEST})");
        }
    }
    let keys_to = keys_to.unwrap_or_else(|| {
        to.parent()
            .map(|p| p.join("keys"))
            .unwrap_or_else(|| PathBuf::from("keys"))
    });
    for path in [to, keys_to.as_path()] {
        if path.exists() {
            bail!(
                "{} already exists: a restore never overwrites. Give --to (and --keys-to) paths that do not exist yet, or remove what is there if it is not a node's",
                path.display()
            );
        }
    }
    // Written under names of their own and renamed into place only once
    // the log is checked: a restore cut short (killed, a full disk) leaves
    // nothing at `to` that looks restored. What such a restore left under
    // these names was never checked and is replaced.
    let (db_partial, keys_partial) = (partial(to), partial(&keys_to));
    remove_partial(&db_partial, &keys_partial);
    {
        let mut source = std::fs::File::open(from.join(DATABASE))
            .with_context(|| format!("cannot read {}", from.join(DATABASE).display()))?;
        let mut db = create_private(&db_partial)?;
        std::io::copy(&mut source, &mut db)?;
        db.sync_all()?;
    }
    copy_keys(&from.join("keys"), &keys_partial)?;
    let own = Keys::load(&keys_partial).context("the restored keys do not load")?;
    if note::verifier_key(node, &own.signing_public_key()) != key {
        remove_partial(&db_partial, &keys_partial);
        bail!("the restored signing key is not the one {MANIFEST} names; nothing was restored");
    }
    eprintln!(
        "copied {} and {}; checking the log …",
        to.display(),
        keys_to.display()
    );
    let url = crate::store::sqlite_url(&db_partial);
    let ok = check(&url, &own.log_keys(&keys_partial, node)?).await;
    if !matches!(ok, Ok(true)) {
        remove_partial(&db_partial, &keys_partial);
        println!("nothing was restored");
        return ok.map(|_| ExitCode::FAILURE);
    }
    std::fs::rename(&keys_partial, &keys_to)
        .with_context(|| format!("cannot move the keys into {}", keys_to.display()))?;
    for suffix in ["-wal", "-shm"] {
        let side = with_suffix(&db_partial, suffix);
        if side.exists() {
            std::fs::rename(&side, with_suffix(to, suffix))?;
        }
    }
    std::fs::rename(&db_partial, to)
        .with_context(|| format!("cannot move the database to {}", to.display()))?;
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir).and_then(|d| d.sync_all())?;
    }
    println!(
        "usable: serve it with node.name = \"{node}\", node.database = \"sqlite://{}\", node.keys_dir = \"{}\"",
        to.display(),
        keys_to.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `path` with `suffix` added to its file name (`sluis.db` → `sluis.db-wal`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Where a restore writes `path` until the copy is checked.
fn partial(path: &Path) -> PathBuf {
    with_suffix(path, ".partial")
}

/// Removes what a restore wrote under its own names (the database, its
/// SQLite side files, the keys folder), quietly: they were never in use.
fn remove_partial(db: &Path, keys: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(with_suffix(db, suffix));
    }
    let _ = std::fs::remove_dir_all(keys);
}

/// `sluis restore --check`: the database a configuration names (SQLite, or
/// PostgreSQL restored with its own tools), checked with its keys.
pub(crate) async fn check_config(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = crate::cli::load_config(config_path, crate::cli::ON_HOST)?;
    let dir = config.path(&config.node.keys_dir);
    let keys = Keys::load(&dir).context("the node's keys do not load")?;
    let history = keys.log_keys(&dir, &config.node.name)?;
    Ok(if check(&config.database_url()?, &history).await? {
        println!("usable");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Recomputes the whole log and checks it against every signed checkpoint
/// under the node's key history (`tlog::verify`); usable only if intact and
/// at least one checkpoint covers it. Says why on standard output.
async fn check(url: &str, keys: &[String]) -> anyhow::Result<bool> {
    let settings = PoolSettings {
        max_connections: 2,
        ..PoolSettings::default()
    };
    let (store, _) = Store::open(url, &settings, false).await?;
    let report = verify::verify_log_history(&store, keys, None, |done, total| {
        if total > 0 && done == total {
            eprintln!("checked {done} entries");
        }
    })
    .await;
    store.close().await;
    let report = report?;
    if let Some(m) = &report.key_mismatch {
        println!(
            "NOT checked: the keys do not match the log's signing key history: {}",
            m.explain()
        );
        return Ok(false);
    }
    if let Some(p) = report.first_problem() {
        println!(
            "NOT usable: the log does not match its signed checkpoints at entry {}: {} ({} problem(s); `sluis audit verify` lists them)",
            p.index,
            p.what,
            report.problems.len()
        );
        return Ok(false);
    }
    if report.checkpoints == 0 && report.entries > 0 {
        println!(
            "NOT usable: {} entries and no signed checkpoint to check them against",
            report.entries
        );
        return Ok(false);
    }
    println!(
        "log intact: {} entries, {} signed checkpoints verified, root {}",
        report.entries, report.checkpoints, report.root
    );
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streamed hash of a file larger than one piece, whose length is
    /// no multiple of it, is the SHA-256 of the whole file read at once
    /// (what a manifest written before held), and a copy is byte for byte.
    #[test]
    fn a_streamed_hash_is_the_whole_files_hash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluis.db");
        let bytes: Vec<u8> = (0..3 * CHUNK + 17)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(&path, &bytes).unwrap();
        let whole = hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes));
        assert_eq!(
            sha256_file(&path).unwrap(),
            (bytes.len() as u64, whole.clone())
        );
        let copy = dir.path().join("copy.db");
        assert_eq!(
            copy_hashing(&path, &copy).unwrap(),
            (bytes.len() as u64, whole)
        );
        assert_eq!(std::fs::read(&copy).unwrap(), bytes);
        // The empty file: SHA-256 of nothing (FIPS 180-4 test vector).
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(
            sha256_file(&empty).unwrap().1,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
