//! `sluis check-config`: every problem of a node's configuration in one run,
//! each with its file, the line where there is one, and what to do about it.
//!
//! It reads with the loaders the node itself starts with — the
//! configuration ([`Config::parse`] and [`Config::problems`]), the key files
//! ([`Keys::check`]), the policy ([`Policy::load`], which names every broken
//! rule) and the TLS files ([`crate::net::check`], through the acceptor's own
//! readers) — so that what it passes is what `serve` accepts, and nothing
//! is parsed twice in two ways. `sluis serve` runs it first and refuses to
//! start on an error; warnings (a certificate or CRL that ends within
//! `tls.expiry_warning_days`, no CRL, a database file not there yet) are
//! logged and the node starts.
//!
//! Nothing here writes. [`check`] reads files only; [`check_with_log`]
//! also reads the node's database (SQLite or PostgreSQL), for what only
//! the log can tell: whether the signing key and the node's name are the
//! ones that signed it.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError};
use crate::gateway::vault::{Keys, VaultError};
use crate::policy::{Policy, PolicyError};

/// Whether a finding stops the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// `serve` refuses to start.
    Error,
    /// Reported (and logged by `serve`); the node starts.
    Warning,
}

/// One problem: where, what, and the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub file: PathBuf,
    /// 1-based line in `file`, where the problem has one.
    pub line: Option<usize>,
    pub problem: String,
    pub fix: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{severity}: {}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}\n    fix: {}", self.problem, self.fix)
    }
}

/// What a check found, in the order it looked: the configuration file,
/// participants, keys, policy, TLS files, database.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }
}

/// Checks the node configured by the file at `path`, now.
pub fn check(path: &Path) -> Report {
    check_at(path, time::OffsetDateTime::now_utc().unix_timestamp())
}

/// Checks the node configured by the file at `path` as of `now` (seconds
/// since the Unix epoch).
pub fn check_at(path: &Path, now: i64) -> Report {
    check_parts(path, now, Directory::Included)
}

/// Whether a check reads the federation directory: a reload takes the
/// directory on its own ([`crate::node::Node::reload_federation`]), so a
/// bad directory does not hold back participants, policy and TLS files,
/// nor they the directory.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Directory {
    Included,
    Excluded,
}

fn check_parts(path: &Path, now: i64, directory: Directory) -> Report {
    let mut report = Report::default();
    let mut add = |severity, file: &Path, line, problem: String, fix: &str| {
        report.findings.push(Finding {
            severity,
            file: file.to_path_buf(),
            line,
            problem,
            fix: fix.to_string(),
        })
    };
    let (config, text) = match Config::parse(path) {
        Ok(parsed) => parsed,
        Err(ConfigError::Read { source, .. }) => {
            add(
                Severity::Error,
                path,
                None,
                format!("cannot read the configuration: {source}"),
                "give --config the node's sluis.toml (`sluis init` writes one), readable by the node's user",
            );
            return report;
        }
        Err(ConfigError::Parse { message, .. }) => {
            add(
                Severity::Error,
                path,
                parse_line(&message),
                message,
                "correct the TOML at that line; unknown keys are refused, so check the spelling",
            );
            return report;
        }
        Err(e @ ConfigError::Invalid { .. }) => {
            add(Severity::Error, path, None, e.to_string(), "correct it");
            return report;
        }
    };
    let spans = toml::de::DeTable::parse(&text).ok();
    let line = |at: &str| spans.as_ref().and_then(|root| line_of(&text, root, at));

    for p in config.problems() {
        add(Severity::Error, path, line(&p.at), p.message, &p.fix);
    }
    if config.participants.is_empty() {
        add(
            Severity::Error,
            path,
            None,
            "no participant is registered: no organisation can call this node".into(),
            "add a [[participant]] (id, name, role, and oin or spki_sha256) for each organisation that calls this node",
        );
    }

    let keys_dir = config.path(&config.node.keys_dir);
    if !keys_dir.is_dir() {
        add(
            Severity::Error,
            &keys_dir,
            None,
            "the keys folder (node.keys_dir) does not exist".into(),
            "restore keys/ from the node's backup; a new node gets its keys from `sluis init`",
        );
    } else {
        for e in Keys::check(&keys_dir) {
            let file = match &e {
                VaultError::Read { path, .. }
                | VaultError::Malformed { path, .. }
                | VaultError::Write { path, .. }
                | VaultError::Exists(path)
                | VaultError::RotationPending(path)
                | VaultError::VersionGap { missing: path, .. } => path.clone(),
                VaultError::Open | VaultError::Random | VaultError::MissingVersion(_) => {
                    keys_dir.clone()
                }
            };
            let fix = match &e {
                VaultError::RotationPending(_) => {
                    "run `sluis keys rotate-signing` again: it finishes the rotation it started"
                }
                VaultError::VersionGap { .. } => {
                    "restore the missing version's file from the node's backup (a new secret cannot stand in for it); never delete a pseudonym secret version"
                }
                _ => {
                    "restore the key file from the node's backup: a new key cannot open what the old one sealed, signed or derived"
                }
            };
            add(Severity::Error, &file, None, e.to_string(), fix);
        }
    }

    let policy_path = config.path(&config.node.policy);
    match Policy::load(&policy_path, &config.node.purposes) {
        Ok(_) => {}
        // The line is node.policy's, so the file it belongs to is sluis.toml.
        Err(PolicyError::Read { source, .. }) => add(
            Severity::Error,
            path,
            line("node.policy"),
            format!("cannot read the policy {}: {source}", policy_path.display()),
            "point node.policy at the node's Cedar policy (`sluis init` writes the default one)",
        ),
        Err(PolicyError::Parse(lines)) => {
            for l in lines.lines() {
                let (at, problem) = policy_line(l, &policy_path.display().to_string());
                add(
                    Severity::Error,
                    &policy_path,
                    at,
                    problem.to_string(),
                    policy_fix(true, problem),
                );
            }
        }
        Err(PolicyError::Invalid(lines)) => {
            for l in lines.lines() {
                let (at, problem) = policy_line(l, &policy_path.display().to_string());
                add(
                    Severity::Error,
                    &policy_path,
                    at,
                    problem.to_string(),
                    policy_fix(false, problem),
                );
            }
        }
        Err(e @ PolicyError::Schema(_)) => add(
            Severity::Error,
            path,
            line("node.purposes"),
            e.to_string(),
            "list each purpose once in node.purposes",
        ),
    }

    let warn_secs = i64::from(config.tls.expiry_warning_days) * 86_400;
    for f in crate::net::check::check_tls(&config.tls_files(), now, warn_secs) {
        let at = match line(f.setting) {
            Some(l) => format!(" ({} in {}:{l})", f.setting, path.display()),
            None => format!(" ({})", f.setting),
        };
        add(
            if f.error {
                Severity::Error
            } else {
                Severity::Warning
            },
            &f.file,
            None,
            format!("{}{at}", f.problem),
            &f.fix,
        );
    }

    for f in federation(&config, now, warn_secs, directory) {
        let file = f.file.unwrap_or_else(|| path.to_path_buf());
        let at = f.at.and_then(|a| line(a).map(|l| (a, l)));
        let problem = match (&at, file == path) {
            (Some((a, l)), false) => format!("{} ({a} in {}:{l})", f.problem, path.display()),
            _ => f.problem,
        };
        let line = if file == path {
            at.map(|(_, l)| l)
        } else {
            None
        };
        add(f.severity, &file, line, problem, &f.fix);
    }

    match config.database_url() {
        Err(e) => add(
            Severity::Error,
            path,
            line("node.database"),
            e.to_string(),
            "use sqlite://FILE or postgres://USER@HOST:5432/DB",
        ),
        Ok(_) if config.node.database.starts_with("sqlite://") => {
            if let Ok(db) = config.sqlite_path() {
                let folder = db.parent().unwrap_or(Path::new("."));
                if !folder.as_os_str().is_empty() && !folder.is_dir() {
                    add(
                        Severity::Error,
                        &db,
                        line("node.database"),
                        "the database's folder does not exist".into(),
                        "create the folder (writable by the node's user), or correct node.database",
                    );
                } else if !db.exists() {
                    add(
                        Severity::Warning,
                        &db,
                        line("node.database"),
                        "the database file does not exist: the node creates an empty one when it starts".into(),
                        "nothing for a new node; if this node has served before, restore its database from the backup first",
                    );
                }
            }
        }
        Ok(_) => {}
    }
    report
}

/// [`check`], and then what only the node's database can tell: whether the
/// log's latest checkpoint is signed by the signing key in the keys folder
/// under `node.name` — what the node refuses to start without
/// (`tlog::signed_by_this_key`, the same function) — and whether the keys
/// folder holds every key version the database relies on
/// ([`keys_behind_the_database`]). The database is read, never written, so
/// this is safe while the node serves; a database that cannot be read here
/// is a warning (the node checks again when it starts). What `sluis
/// check-config` and `sluis serve` run.
pub async fn check_with_log(path: &Path) -> Report {
    against_log(path, None, Directory::Included).await
}

/// What a reload of a serving node runs: [`check_with_log`], asking the
/// node's own store instead of opening the database again, so that a
/// reload takes nothing `serve` would refuse at its next start — without
/// the federation directory, which the reload takes (or refuses) on its
/// own, so that a bad directory does not refuse participants, policy and
/// TLS files.
pub async fn check_with_store(path: &Path, store: &crate::store::Store) -> Report {
    against_log(path, Some(store), Directory::Excluded).await
}

async fn against_log(
    path: &Path,
    running: Option<&crate::store::Store>,
    directory: Directory,
) -> Report {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut report = check_parts(path, now, directory);
    // A configuration or key files with errors are reported above; the
    // log is checked against a node that could start otherwise.
    if report.has_errors() {
        return report;
    }
    let Ok((config, text)) = Config::parse(path) else {
        return report;
    };
    report
        .findings
        .extend(log_signer(path, &config, &text, running).await);
    report
}

/// How long `check-config` waits for the database before it says the log
/// was not checked.
const DATABASE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

async fn log_signer(
    path: &Path,
    config: &Config,
    text: &str,
    running: Option<&crate::store::Store>,
) -> Vec<Finding> {
    use crate::tlog::AuditError;
    let keys_dir = config.path(&config.node.keys_dir);
    let Ok(keys) = Keys::load(&keys_dir) else {
        return Vec::new(); // named by Keys::check
    };
    let Ok(url) = config.database_url() else {
        return Vec::new(); // named above
    };
    if running.is_none()
        && let Ok(db) = config.sqlite_path()
        && !db.exists()
    {
        return Vec::new(); // a new node: nothing signed yet
    }
    let spans = toml::de::DeTable::parse(text).ok();
    let line = |at: &str| spans.as_ref().and_then(|root| line_of(text, root, at));
    let not_checked = |why: String| {
        vec![Finding {
            severity: Severity::Warning,
            file: path.to_path_buf(),
            line: line("node.database"),
            problem: format!(
                "the access log's signing key was not checked against the log: {why}"
            ),
            fix: "make the database reachable from here and run check-config again; the node checks it when it starts either way".into(),
        }]
    };
    let store = match running {
        Some(store) => store.clone(),
        None => {
            let opened = tokio::time::timeout(
                DATABASE_WAIT,
                crate::store::Store::open(&url, &config.pool_settings(), false),
            )
            .await;
            match opened {
                Ok(Ok((store, _))) => store,
                Ok(Err(e)) => return not_checked(e.to_string()),
                Err(_) => {
                    return not_checked(format!(
                        "the database did not answer within {} s",
                        DATABASE_WAIT.as_secs()
                    ));
                }
            }
        }
    };
    // A database not migrated yet (a new PostgreSQL database, a file from
    // an older sluis) has no log to check the key against: say that, and
    // the step that brings it up to date, not that it cannot be reached.
    if running.is_none() {
        match store.pending_migrations().await {
            Ok(pending) if !pending.is_empty() => {
                store.close().await;
                return vec![unmigrated(path, line("node.database"), &pending)];
            }
            Ok(_) => {}
            Err(e) => {
                store.close().await;
                return not_checked(e.to_string());
            }
        }
    }
    let latest = store.latest_checkpoint().await;
    let behind = keys_behind_the_database(&keys, &keys_dir, &store).await;
    if running.is_none() {
        store.close().await;
    }
    let cp = match latest {
        Ok(Some(cp)) => cp,
        Ok(None) => return behind.unwrap_or_default(),
        Err(e) => return not_checked(e.to_string()),
    };
    let mut findings = match behind {
        Ok(behind) => behind,
        Err(e) => not_checked(e.to_string()),
    };
    let signing_key = keys_dir.join(crate::gateway::vault::SIGNING_KEY_FILE);
    match crate::tlog::signed_by_this_key(&cp, &keys, &config.node.name) {
        Ok(()) => {}
        Err(AuditError::Renamed {
            size,
            signed_as,
            configured,
        }) => findings.push(Finding {
            severity: Severity::Error,
            file: path.to_path_buf(),
            line: line("node.name"),
            problem: format!(
                "node.name is '{configured}', but the log's latest checkpoint (size {size}) is signed as '{signed_as}': the node was renamed without the rename step, and does not start"
            ),
            fix: "to rename the node, run `sluis node rename` with the node stopped (docs/operations.md, \"Renaming the node\"); otherwise put the old name back".into(),
        }),
        Err(AuditError::KeyReplaced { size, name, key }) => findings.push(Finding {
            severity: Severity::Error,
            file: signing_key,
            line: None,
            problem: format!(
                "the signing key in the keys folder does not sign this log: the latest checkpoint (size {size}) is signed as '{name}' by another key, not by {key}; the node does not start"
            ),
            fix: "put the key that signed the log back (from the backup of the keys folder); to change the key, run `sluis keys rotate-signing` with the old key in place. If the old key is lost, see \"What losing each key means\" in docs/operations.md".into(),
        }),
        Err(e) => findings.extend(not_checked(e.to_string())),
    }
    findings
}

/// The finding for a database behind this binary's migrations: what
/// brings it up to date (`serve` applies them as it starts, `sluis
/// migrate` does it alone), and that the log was not checked meanwhile.
fn unmigrated(path: &Path, line: Option<usize>, pending: &[i64]) -> Finding {
    let problem = if pending.first() == Some(&1) {
        "the database has no sluis schema yet (a new, empty database): the access log's signing key was not checked against a log".to_string()
    } else {
        let versions: Vec<String> = pending.iter().map(i64::to_string).collect();
        format!(
            "the database's schema is behind this sluis (migrations {} not applied): the access log's signing key was not checked against the log",
            versions.join(", ")
        )
    };
    Finding {
        severity: Severity::Warning,
        file: path.to_path_buf(),
        line,
        problem,
        fix: format!(
            "nothing to do if this is the node's database: `sluis serve` applies the migrations when it starts. To apply them first (with a backup of the database at hand), run `sluis migrate --config {}`, then check-config again",
            path.display()
        ),
    }
}

/// A keys folder behind its database — a replica's on another host, or one
/// restored from an older backup of the keys — found as errors: a data key
/// version that wraps case keys and has no file here (every read of those
/// cases would fail), and a pseudonym secret version the log records as
/// made and this folder lacks (the node would go on handing out
/// pseudonyms under the secret the rotation retired). Each names the file
/// to copy from the node that ran the rotation.
async fn keys_behind_the_database(
    keys: &Keys,
    keys_dir: &Path,
    store: &crate::store::Store,
) -> Result<Vec<Finding>, crate::store::StoreError> {
    use crate::gateway::vault::data_key_file;
    let mut findings = Vec::new();
    let held = keys.data_key_versions();
    let (wrapped, _) = store.key_versions().await?;
    for (version, n) in wrapped {
        if n == 0 || u32::try_from(version).is_ok_and(|v| held.contains(&v)) {
            continue;
        }
        let file =
            u32::try_from(version).map_or_else(|_| format!("data.v{version}.key"), data_key_file);
        findings.push(Finding {
            severity: Severity::Error,
            file: keys_dir.join(&file),
            line: None,
            problem: format!(
                "{n} case keys are wrapped under data key version {version}, and this keys folder has no {file}: every read of those cases would fail"
            ),
            fix: format!(
                "copy {file} from the keys folder of the node that ran `sluis keys rotate-data` (on PostgreSQL every replica needs every version in use), or restore it from the backup of the keys folder"
            ),
        });
    }
    let recorded = 1 + store.pseudonym_rotations().await?;
    let (held, _) = keys.pseudonym_issuing();
    if i64::from(held) < recorded {
        let files: Vec<String> = ((i64::from(held) + 1)..=recorded)
            .map(|v| format!("pseudonym.v{v}.key"))
            .collect();
        findings.push(Finding {
            severity: Severity::Error,
            file: keys_dir.join(&files[0]),
            line: None,
            problem: format!(
                "the log records pseudonym secret version {recorded} as made, and this keys folder's newest is version {held}: the node would hand out pseudonyms under a secret the rotation retired"
            ),
            fix: format!(
                "copy {} from the keys folder of the node that ran `sluis keys rotate-pseudonym` (on PostgreSQL every replica needs them), or restore them from the backup of the keys folder",
                files.join(", ")
            ),
        });
    }
    Ok(findings)
}

/// One problem of `[federation]`: the file it is in (none: `sluis.toml`)
/// and the setting that names it.
struct FederationFinding {
    severity: Severity,
    file: Option<PathBuf>,
    at: Option<&'static str>,
    problem: String,
    fix: String,
}

/// What `serve` would stop at in `[federation]` — the directory unreadable,
/// not verifying under `verifier_key`, or not naming this node; the TLS
/// files for calling peers and for the federation listener — as errors,
/// and what stops federated calls while the node serves its own
/// participants — a directory outside its validity, this node's
/// certificates not carrying the key the directory pins for it — as
/// warnings. Read with the loaders `serve` uses (`directory::verify`,
/// `net::check`).
fn federation(
    config: &Config,
    now: i64,
    warn_secs: i64,
    directory: Directory,
) -> Vec<FederationFinding> {
    use crate::federation::directory::{self, DirectoryError};
    use crate::tlog::note::NoteError;
    let Some(fed) = &config.federation else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut push = |severity, file: Option<PathBuf>, at, problem: String, fix: &str| {
        out.push(FederationFinding {
            severity,
            file,
            at,
            problem,
            fix: fix.to_string(),
        })
    };
    // This node's certificate for calling peers and the peers' CAs and
    // CRLs, then the federation listener's (the node's own certificate,
    // checked above under [tls], with the peers' CAs and CRLs).
    let peers = crate::net::tls::TlsFiles {
        cert: config.path(&fed.client_cert),
        key: config.path(&fed.client_key),
        client_ca: config.path(&fed.peer_ca),
        crls: fed.peer_crl.iter().map(|p| config.path(p)).collect(),
        allow_missing_crl: config.tls.allow_missing_crl,
        settings: crate::net::tls::TlsSettings::PEERS,
    };
    for f in crate::net::check::check_tls(&peers, now, warn_secs) {
        let severity = if f.error {
            Severity::Error
        } else {
            Severity::Warning
        };
        push(severity, Some(f.file), Some(f.setting), f.problem, &f.fix);
    }

    // K_fed, read by the loader `serve` reads it with.
    if let Some(key) = &fed.pseudonym_key {
        let key = config.path(key);
        if let Err(e) = crate::federation::pseudonym::FederationPseudonyms::load(&key) {
            push(
                Severity::Error,
                Some(key),
                Some("federation.pseudonym_key"),
                e.to_string(),
                "put the federation pseudonym key the network's operator handed out (`sluis federation pseudonym-keygen` made it) in this file, unchanged; every node of the network needs the same one",
            );
        }
    }

    if directory == Directory::Excluded {
        return out;
    }
    // The key first, so that it is named even when the directory is
    // missing too (the key is parsed before the note is).
    if let Err(e @ NoteError::BadKey(_)) = crate::tlog::note::verify("", &fed.verifier_key) {
        push(
            Severity::Error,
            None,
            Some("federation.verifier_key"),
            format!("federation.verifier_key: {e}"),
            "set federation.verifier_key to the line `sluis federation keygen` printed (<network>+<key id>+<base64 key>), as the network's operator gives it",
        );
    }
    let dir_path = config.path(&fed.directory);
    let text = match crate::files::read_to_string(&dir_path, crate::files::Kind::Note) {
        Ok(text) => text,
        Err(e) => {
            push(
                Severity::Error,
                None,
                Some("federation.directory"),
                format!(
                    "cannot read the federation directory {}: {e}",
                    dir_path.display()
                ),
                "point federation.directory at the signed directory the network's operator issued (`sluis federation sign` writes it), readable by the node's user",
            );
            return out;
        }
    };
    let (d, validity) = match directory::verify(&text, &fed.verifier_key) {
        Ok(v) => v,
        Err(DirectoryError::Signature(NoteError::BadKey(_))) => return out, // named above
        Err(e) => {
            push(
                Severity::Error,
                Some(dir_path),
                None,
                format!("the federation directory is refused: {e}"),
                "install the directory exactly as the network's operator signed it, and check federation.verifier_key is that network's key (`sluis federation verify --key VKEY FILE` says which)",
            );
            return out;
        }
    };
    let Some(me) = d.node(&config.node.name) else {
        push(
            Severity::Error,
            Some(dir_path),
            None,
            format!(
                "the federation directory (serial {}) does not name this node '{}' (node.name)",
                d.serial, config.node.name
            ),
            "ask the network's operator for a directory that lists this node, or correct node.name to the id the directory gives it",
        );
        return out;
    };
    let (from, until) = (validity.not_before / 1000, validity.not_after / 1000);
    let renew = "ask the network's operator for a newer directory, install it and send the node SIGHUP; local traffic is not affected";
    if until <= now {
        push(
            Severity::Warning,
            Some(dir_path.clone()),
            None,
            format!(
                "the federation directory (serial {}) expired at {}: federated calls are refused until a newer one is installed",
                d.serial, d.not_after
            ),
            renew,
        );
    } else if from > now {
        push(
            Severity::Warning,
            Some(dir_path.clone()),
            None,
            format!(
                "the federation directory (serial {}) is valid only from {}: federated calls are refused until then",
                d.serial, d.not_before
            ),
            renew,
        );
    } else if until - now <= warn_secs {
        push(
            Severity::Warning,
            Some(dir_path.clone()),
            None,
            format!(
                "the federation directory (serial {}) expires at {}: federated calls stop then",
                d.serial, d.not_after
            ),
            renew,
        );
    }
    // Peers admit this node, and accept its federation listener, only
    // with the key the directory pins for it.
    for (file, at, what) in [
        (
            config.path(&fed.client_cert),
            "federation.client_cert",
            "this node's certificate for calling peers",
        ),
        (
            config.path(&config.tls.cert),
            "tls.cert",
            "this node's server certificate (which the federation listener presents)",
        ),
    ] {
        let Some(spki) = crate::net::check::leaf_spki_sha256(&file) else {
            continue; // unreadable: reported above
        };
        if !spki.eq_ignore_ascii_case(&me.tls_spki_sha256) {
            push(
                Severity::Warning,
                Some(file),
                Some(at),
                format!(
                    "{what} carries the key SHA-256 {spki}, but the federation directory (serial {}) pins {} for this node: peers refuse it, so federated calls to and from this node fail",
                    d.serial, me.tls_spki_sha256
                ),
                "use the certificate of the key the directory pins (one node key for both certificates), or give the network's operator this key's SHA-256 for a newer directory",
            );
        }
    }
    out
}

/// The line a TOML parse message names (`line N, column M: ...`).
fn parse_line(message: &str) -> Option<usize> {
    message
        .strip_prefix("line ")?
        .split(',')
        .next()?
        .parse()
        .ok()
}

/// A policy problem `SOURCE:LINE: text` as (line, text).
/// The fix for one finding of the policy: a rule that does not parse, one
/// without an id of its own, or one that names what the node does not know.
fn policy_fix(syntax: bool, problem: &str) -> &'static str {
    if syntax {
        "correct that rule's Cedar syntax as the message says: `@id(\"...\") permit (principal, action, resource) when { ... };`"
    } else if problem.contains("@id") {
        "give that rule an @id(\"...\") no other rule has: the access log names the deciding rules by it"
    } else {
        "edit that rule: it may name only the roles, categories and purposes the message lists (node.purposes in sluis.toml adds purposes)"
    }
}

fn policy_line<'a>(l: &'a str, source: &str) -> (Option<usize>, &'a str) {
    let Some(rest) = l.strip_prefix(source).and_then(|r| r.strip_prefix(':')) else {
        return (None, l);
    };
    match rest.split_once(": ") {
        Some((n, text)) => match n.parse::<usize>() {
            Ok(n) if n > 0 => (Some(n), text),
            _ => (None, l),
        },
        None => (None, l),
    }
}

/// The line of a key path (`node.name`, `participant.2.oin`; array entries
/// counted from 0) in the parsed file, or of the nearest enclosing entry
/// the file has (a setting left at its default is not in the file).
fn line_of(text: &str, root: &toml::Spanned<toml::de::DeTable<'_>>, at: &str) -> Option<usize> {
    use toml::de::DeValue;
    let mut span = None;
    let mut value: Option<&DeValue<'_>> = None;
    let mut table = Some(root.get_ref());
    for seg in at.split('.') {
        let next = match (table, value) {
            (Some(t), _) => t.get(seg),
            (None, Some(DeValue::Array(a))) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
        let Some(next) = next else { break };
        span = Some(next.span());
        value = Some(next.get_ref());
        table = next.get_ref().as_table();
    }
    let start = span?.start.min(text.len());
    Some(text[..start].matches('\n').count() + 1)
}
