//! `sluis init`: writes a node folder — `sluis.toml` naming every setting
//! at its default, the default `policy.cedar`, fresh keys in `keys/` and
//! the SQLite database — around the operator's own certificates: no
//! development CA, no sample participants. It then runs `sluis
//! check-config` on what it wrote and prints a checklist of what is left
//! to fill in. The development node (`sluis init --dev`, `serve --dev`)
//! is `crate::dev::init`, which shares [`config_text`].

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::config::{ConfigError, valid_node_name};
use crate::gateway::vault::{Keys, VaultError};
use crate::model::{DEFAULT_PURPOSES, Role};
use crate::net::pki::CertError;
use crate::policy::DEFAULT_POLICY;
use crate::store::{Store, StoreError};

/// The configuration file in a node folder.
pub const CONFIG_FILE: &str = "sluis.toml";

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{0} already holds a node (sluis.toml exists); use it, or pick another --dir")]
    Exists(PathBuf),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificates: {0}")]
    Certs(#[from] CertError),
    #[error("keys: {0}")]
    Keys(#[from] VaultError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{what} {path}: {source}")]
    Missing {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "--name must be 1-255 characters without spaces, control characters or '+', e.g. sluis.gemeente.example (it names the node's key in signed notes)"
    )]
    Name,
}

/// What distinguishes one node's configuration file from another's; the
/// rest is defaults. Paths as they are written into the file (relative
/// ones are read against the file's folder).
pub(crate) struct Layout<'a> {
    /// Which command wrote the file, for its first line.
    pub(crate) made_by: &'a str,
    pub(crate) name: &'a str,
    pub(crate) listen: SocketAddr,
    pub(crate) database: &'a str,
    pub(crate) keys_dir: &'a str,
    pub(crate) cert: &'a str,
    pub(crate) key: &'a str,
    pub(crate) client_ca: &'a str,
    pub(crate) crls: &'a [&'a str],
}

/// The operator's side of a production node.
#[derive(Clone, Debug)]
pub struct Production {
    /// The node folder to write (created if missing; refused if it holds a
    /// `sluis.toml`).
    pub dir: PathBuf,
    /// The node's name: origin of its signed notes.
    pub name: String,
    pub listen: SocketAddr,
    /// The node's certificate chain (PEM), its private key, the CAs that
    /// issue client certificates, and their CRLs: used where they are,
    /// written into the file as absolute paths.
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
    pub crls: Vec<PathBuf>,
    /// `postgres://...` or `sqlite:///ABSOLUTE/FILE`; None: `sqlite://sluis.db`
    /// in the folder.
    pub database: Option<String>,
    /// Where the node's keys are made; None: `keys/` in the folder. The
    /// layout of `deploy/systemd` keeps them in the state directory, apart
    /// from the read-only configuration.
    pub keys_dir: Option<PathBuf>,
}

/// Writes a production node folder (see the module documentation) and
/// returns its configuration file's path. Errors: the folder already
/// holds a node; a name that cannot sign notes; a certificate, key, CA or
/// CRL path that does not exist; a file that cannot be written.
pub async fn production(p: &Production) -> Result<PathBuf, InitError> {
    let config_path = p.dir.join(CONFIG_FILE);
    if config_path.exists() {
        return Err(InitError::Exists(p.dir.clone()));
    }
    if !valid_node_name(&p.name) || !crate::tlog::note::valid_key_name(&p.name) {
        return Err(InitError::Name);
    }
    let absolute = |what: &'static str, path: &Path| {
        std::fs::canonicalize(path).map_err(|source| InitError::Missing {
            what,
            path: path.to_path_buf(),
            source,
        })
    };
    let cert = absolute("--cert", &p.cert)?;
    let key = absolute("--key", &p.key)?;
    let client_ca = absolute("--ca", &p.client_ca)?;
    let crls = p
        .crls
        .iter()
        .map(|c| absolute("--crl", c))
        .collect::<Result<Vec<_>, _>>()?;
    let text = |p: &Path| p.display().to_string();
    let crl_text: Vec<String> = crls.iter().map(|c| text(c)).collect();
    let crl_refs: Vec<&str> = crl_text.iter().map(String::as_str).collect();
    let database = p.database.as_deref().unwrap_or("sqlite://sluis.db");

    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InitError::Io { path, source }
    };
    std::fs::create_dir_all(&p.dir).map_err(io(&p.dir))?;
    let keys_dir = match &p.keys_dir {
        None => p.dir.join("keys"),
        Some(k) => {
            std::fs::create_dir_all(k).map_err(io(k))?;
            absolute("--keys-dir", k)?
        }
    };
    Keys::create(&keys_dir)?;
    let keys_text = match &p.keys_dir {
        None => "keys".to_string(),
        Some(_) => text(&keys_dir),
    };
    let policy_path = p.dir.join("policy.cedar");
    std::fs::write(&policy_path, DEFAULT_POLICY).map_err(io(&policy_path))?;
    let mut config = config_text(&Layout {
        made_by: "production node made by `sluis init`",
        name: &p.name,
        listen: p.listen,
        database,
        keys_dir: &keys_text,
        cert: &text(&cert),
        key: &text(&key),
        client_ca: &text(&client_ca),
        crls: &crl_refs,
    });
    config.push_str(&participant_template());
    std::fs::write(&config_path, config).map_err(io(&config_path))?;
    if database.starts_with("sqlite://") {
        let (config, _) = crate::config::Config::parse(&config_path)?;
        let (store, _) = Store::open_sqlite(&config.sqlite_path()?).await?;
        store.close().await;
    }
    Ok(config_path)
}

/// The participants part of a production configuration: none, and how to
/// write one.
fn participant_template() -> String {
    let roles: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
    format!(
        "\n# Participants: organisations that may call this node, one [[participant]]\n\
         # each. A client certificate is recognised by its subject serialNumber\n\
         # (OIN, as on PKIoverheid certificates) or by a pinned `spki_sha256`\n\
         # fingerprint. The node does not start before at least one is registered.\n\
         #\n\
         # [[participant]]\n\
         # id = \"gemeente-voorbeeld\"        # short, stable; used in consents and the log\n\
         # name = \"Gemeente Voorbeeld\"\n\
         # role = \"municipality\"            # {roles}\n\
         # oin = \"<20 digits>\"              # or: spki_sha256 = \"<64 hex digits>\"\n",
        roles = roles.join(", ")
    )
}

/// What `sluis init` prints after writing a production node: what is
/// left to do, then what `check-config` finds in the folder now.
pub fn checklist(p: &Production, config_path: &Path, report: &crate::check::Report) -> String {
    let mut s = String::new();
    let c = config_path.display();
    let _ = writeln!(
        s,
        "wrote a node to {}: sluis.toml, policy.cedar; its keys in {}",
        p.dir.display(),
        p.keys_dir
            .clone()
            .unwrap_or_else(|| p.dir.join("keys"))
            .display()
    );
    let _ = writeln!(s, "\nbefore it serves:");
    let mut item = |text: String| {
        let _ = writeln!(s, "  [ ] {text}");
    };
    item(format!(
        "register the organisations that call this node: a [[participant]] each in {c}"
    ));
    if p.crls.is_empty() {
        item(
            "add the CRL of every client CA to tls.crl (in a chain, every CA needs its CRL)".into(),
        );
    }
    item("have the privacy officer review policy.cedar (it is the LVV default policy)".into());
    item(
        "back up the keys now, apart from the database: without them the data, the pseudonyms and the log's signatures are lost (docs/operations.md)"
            .into(),
    );
    item(format!(
        "check node.listen ({}) and node.database ({})",
        p.listen,
        p.database.as_deref().unwrap_or("sqlite://sluis.db")
    ));
    item(format!(
        "run `sluis check-config --config {c}` until it reports no error, then `sluis serve --config {c}`"
    ));
    if report.findings.is_empty() {
        let _ = writeln!(s, "\ncheck-config finds nothing to fix.");
    } else {
        let _ = writeln!(s, "\ncheck-config finds now:");
        for f in &report.findings {
            let _ = writeln!(s, "{f}");
        }
    }
    s
}

/// A node's configuration without its participants: the node's own
/// name, address, database and TLS files from `layout`, and every other
/// setting at its default, each with what it does — written from the
/// defaults themselves, so that the file shows what a node runs with (a
/// test checks it names every field of [`crate::config::Config`]).
pub(crate) fn config_text(layout: &Layout<'_>) -> String {
    use crate::config::{
        ConsentConfig, DatabaseConfig, Limits, StatisticsConfig, TelemetryConfig,
        default_checkpoint_interval_ms, default_expiry_warning_days, default_first_byte_timeout_ms,
        default_handshake_timeout_ms, default_max_connection_age_secs,
    };
    let listen = layout.listen;
    let quoted = |s: &str| toml::Value::String(s.to_string()).to_string();
    let crls: Vec<String> = layout.crls.iter().map(|c| quoted(c)).collect();
    let limits = Limits::default();
    let database = DatabaseConfig::default();
    let statistics = StatisticsConfig::default();
    let consent = ConsentConfig::default();
    let telemetry = TelemetryConfig::default();
    let purposes: Vec<String> = DEFAULT_PURPOSES
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect();
    let mut s = String::new();
    let _ = write!(
        s,
        r#"# sluis node configuration ({made_by}).
# Relative paths are resolved against this file's folder. Every setting
# below that has a default is shown at its default.

[node]
# Origin name in signed notes (consent receipts, log checkpoints): no
# spaces, '+' or control characters.
name = {name}
listen = "{listen}"
# data.key (AES-256), pseudonym.key, signing.key (Ed25519): never in the database.
keys_dir = {keys_dir}
# sqlite://FILE, or postgres://USER@HOST:5432/DB for replicas.
database = {database}
# The Cedar policy: which role may receive which category for which purpose.
policy = "policy.cedar"
# Purposes callers may state.
purposes = [{purposes}]
# The access log signs a checkpoint at least this often while entries arrive.
checkpoint_interval_ms = {checkpoint_interval_ms}

[retention]
# How long case data is kept (docs/operations.md, "Retention and erasure").
# Per category (identity, residence_procedure, shelter, guidance,
# perspective, medical, safety, outcome) and for the whole case ("case"),
# counted from the case's last update: e.g. medical = "2y", case = "10y".
# Units s, m, h, d, y (365 days). A category without a period is kept. Past
# its period a category is erased; a case whose every category is past, or
# that is past "case", is crypto-erased (its key destroyed).
# How often the node erases what is due and re-wraps case keys after
# `sluis keys rotate-data`.
interval = "1h"

[tls]
# The node's certificate chain (PEM, its own certificate first) and key.
cert = {cert}
key = {key}
# CAs that issue client certificates.
client_ca = {client_ca}
# Enforced, including their expiry; of several from one CA the newest
# decides, and in a chain every CA needs its CRL. Reloaded on SIGHUP; open
# connections are checked again on their next request.
crl = [{crls}]
# A client CA without a CRL above is refused at start and reload; true
# serves without one (with a warning). A reload that drops a CA's CRL, or
# replaces it by an older one, is refused and the running set kept.
allow_missing_crl = false
# A client that has not finished its handshake by then is dropped.
handshake_timeout_ms = {handshake_timeout_ms}
# A connection that sends nothing this long after it is accepted is closed
# (and counted, not recorded one by one).
first_byte_timeout_ms = {first_byte_timeout_ms}
# Connections are closed after this age: it bounds how long an open
# connection keeps the identity a changed participant list took away.
max_connection_age_secs = {max_connection_age_secs}
# `sluis check-config` (and `serve` at start) warns when the node
# certificate, a client CA or a CRL ends within this many days.
expiry_warning_days = {expiry_warning_days}

[limits]
# Larger requests: RESOURCE_EXHAUSTED.
max_message_bytes = {max_message_bytes}
# TLS handshakes in progress at once; further clients wait in the backlog.
max_handshakes = {max_handshakes}
# ... from one IPv4 address or IPv6 /64; more are closed at once.
max_handshakes_per_source = {max_handshakes_per_source}
# Connections without a client certificate: one access record per source
# per this many seconds, saying how many and why.
unauthenticated_report_secs = {unauthenticated_report_secs}
# Refused certificates recorded one by one per source and interval;
# further ones are counted in the source's summary.
refused_certificate_records_per_source = {refused_certificate_records_per_source}
# Requests in progress at once, each until its work and record are done
# (also when its caller stopped waiting); more: UNAVAILABLE at once.
max_requests_in_flight = {max_requests_in_flight}
# ... of them at most this many from one caller (a registered participant;
# unregistered certificates together count as one).
max_requests_in_flight_per_caller = {max_requests_in_flight_per_caller}
# A request whose message has not fully arrived this long after its headers
# ends before any handler (DEADLINE_EXCEEDED).
message_timeout_ms = {message_timeout_ms}
# Connections open at once; at the limit a further one is closed at once.
max_connections = {open_connections}
# ... from one IPv4 address or IPv6 /64, whatever certificate they present.
max_connections_per_source = {max_connections_per_source}
# A connection on which no request has run this long is closed.
idle_timeout_ms = {idle_timeout_ms}
# A connection with an unregistered certificate is closed this long after
# its first request ends (each of its requests is refused).
unregistered_linger_ms = {unregistered_linger_ms}
# The node pings each connection's client this often (HTTP/2 PING) and
# closes the connection when a ping goes unanswered as long.
keepalive_secs = {keepalive_secs}
# Requests (HTTP/2 streams) open at once on one connection.
max_concurrent_streams = {max_concurrent_streams}
# Requests of one unregistered certificate recorded one by one per report
# interval; further ones are counted in one summary record.
unregistered_records_per_certificate = {unregistered_records_per_certificate}

[database]
# PostgreSQL: connections per node process.
max_connections = {max_connections}
# A request that cannot get a connection this soon fails closed (UNAVAILABLE).
acquire_timeout_ms = {acquire_timeout_ms}
# SQLite only: cases and consent lists kept in memory (0: none) ...
cache_entries = {cache_entries}
# ... and at most this many MiB of them.
cache_mb = {cache_mb}
# SQLite only: the write-ahead log is cut back to this (MiB) once checkpointed.
wal_limit_mb = {wal_limit_mb}
# SQLite only: above this (MiB) the node warns that a reader keeps the WAL
# from shrinking.
wal_warn_mb = {wal_warn_mb}

[statistics]
# Counts below this are shown as "< threshold".
threshold = {threshold}
# No combination of figures narrows a "< threshold" cell to fewer than
# this many values besides its true one.
protection = {protection}
# Published counts are rounded to a multiple of this (1: exact).
rounding_base = {rounding_base}
# Statistics requests one caller may make a minute; beyond it
# RESOURCE_EXHAUSTED with the time to wait.
requests_per_minute = {requests_per_minute}

[consent]
# The longest validity window a consent may have, in days: a window ending
# (or beginning) further away is refused (INVALID_ARGUMENT) as a likely typo
# in the year. Open-ended consents stay allowed; withdrawal ends them.
max_validity_days = {max_validity_days}

[log]
# "auto": human-readable on a terminal, JSON lines otherwise (journald, a
# container); or "json", "human". SLUIS_LOG chooses the lines (default info).
format = "auto"

[telemetry]
# OpenTelemetry spans and metrics over OTLP/gRPC to this collector; without
# it nothing is exported.
# otlp_endpoint = "http://127.0.0.1:4317"
# service.name of what is exported (default: node.name).
# service_name = "sluis.gemeente.example"
# Metrics are exported this often.
export_interval_ms = {export_interval_ms}
"#,
        made_by = layout.made_by,
        name = quoted(layout.name),
        database = quoted(layout.database),
        keys_dir = quoted(layout.keys_dir),
        cert = quoted(layout.cert),
        key = quoted(layout.key),
        client_ca = quoted(layout.client_ca),
        crls = crls.join(", "),
        expiry_warning_days = default_expiry_warning_days(),
        purposes = purposes.join(", "),
        checkpoint_interval_ms = default_checkpoint_interval_ms(),
        handshake_timeout_ms = default_handshake_timeout_ms(),
        first_byte_timeout_ms = default_first_byte_timeout_ms(),
        max_connection_age_secs = default_max_connection_age_secs(),
        max_message_bytes = limits.max_message_bytes,
        max_handshakes = limits.max_handshakes,
        max_handshakes_per_source = limits.max_handshakes_per_source,
        unauthenticated_report_secs = limits.unauthenticated_report_secs,
        refused_certificate_records_per_source = limits.refused_certificate_records_per_source,
        max_requests_in_flight = limits.max_requests_in_flight,
        max_requests_in_flight_per_caller = limits.max_requests_in_flight_per_caller,
        message_timeout_ms = limits.message_timeout_ms,
        open_connections = limits.max_connections,
        max_connections_per_source = limits.max_connections_per_source,
        idle_timeout_ms = limits.idle_timeout_ms,
        unregistered_linger_ms = limits.unregistered_linger_ms,
        keepalive_secs = limits.keepalive_secs,
        max_concurrent_streams = limits.max_concurrent_streams,
        unregistered_records_per_certificate = limits.unregistered_records_per_certificate,
        max_connections = database.max_connections,
        acquire_timeout_ms = database.acquire_timeout_ms,
        cache_entries = database.cache_entries,
        cache_mb = database.cache_mb,
        wal_limit_mb = database.wal_limit_mb,
        wal_warn_mb = database.wal_warn_mb,
        threshold = statistics.threshold,
        protection = statistics.protection,
        rounding_base = statistics.rounding_base,
        requests_per_minute = statistics.requests_per_minute,
        max_validity_days = consent.max_validity_days,
        export_interval_ms = telemetry.export_interval_ms,
    );
    s
}
