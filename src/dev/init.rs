//! A ready-to-run node directory for development and the demo: dev PKI,
//! keys, policy, configuration with one participant per LVV role, and the
//! SQLite database. `sluis init` and `sluis serve --dev` write it.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError};
use crate::gateway::vault::{Keys, VaultError};
use crate::model::DEFAULT_PURPOSES;
use crate::net::pki::{self, CertError};
use crate::policy::DEFAULT_POLICY;
use crate::store::{Store, StoreError};

pub const CONFIG_FILE: &str = "sluis.toml";

/// One participant per role, as in an LVV region (fictional OINs).
pub const DEV_PARTICIPANTS: [(&str, &str, &str, &str); 7] = [
    (
        "gemeente-utrecht",
        "Gemeente Utrecht",
        "municipality",
        "00000001000000000001",
    ),
    (
        "ind",
        "Immigratie- en Naturalisatiedienst",
        "ind",
        "00000001000000000002",
    ),
    (
        "dtv",
        "Dienst Terugkeer en Vertrek",
        "dtv",
        "00000001000000000003",
    ),
    (
        "avim",
        "Politie, Afdeling Vreemdelingenpolitie (AVIM)",
        "avim",
        "00000001000000000004",
    ),
    (
        "ngo-vluchtelingenwerk",
        "VluchtelingenWerk Midden-Nederland",
        "ngo",
        "00000001000000000005",
    ),
    (
        "monitor-jenv",
        "Ministerie van Justitie en Veiligheid (monitor)",
        "monitor",
        "00000001000000000006",
    ),
    (
        "fg-utrecht",
        "Functionaris gegevensbescherming Utrecht",
        "privacy_officer",
        "00000001000000000007",
    ),
];

/// The dev participants as `net::pki::write_dev_pki` takes them: (id,
/// common name, OIN), one client certificate each.
pub(crate) fn pki_participants() -> Vec<(String, String, Option<String>)> {
    DEV_PARTICIPANTS
        .iter()
        .map(|(id, name, _, oin)| (id.to_string(), name.to_string(), Some(oin.to_string())))
        .collect()
}

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
}

/// Writes a complete dev node into `dir` and returns its config path.
pub async fn init(dir: &Path, listen: SocketAddr) -> Result<PathBuf, InitError> {
    let config_path = dir.join(CONFIG_FILE);
    if config_path.exists() {
        return Err(InitError::Exists(dir.to_path_buf()));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InitError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    pki::write_dev_pki(
        &dir.join("pki"),
        &["localhost".to_string(), "127.0.0.1".to_string()],
        &pki_participants(),
    )?;
    Keys::create(&dir.join("keys"))?;
    let policy_path = dir.join("policy.cedar");
    std::fs::write(&policy_path, DEFAULT_POLICY).map_err(io(&policy_path))?;
    // The privacy officer's key pair. On a real node the officer makes it
    // on their own machine and hands over only the public key; a dev node
    // keeps the private half beside it so the whole flow can be tried.
    let (officer_secret, officer_public) = crate::gateway::officer::OfficerSecret::generate();
    let officer_path = dir.join(OFFICER_KEY_FILE);
    write_private(&officer_path, &officer_secret).map_err(io(&officer_path))?;
    std::fs::write(&config_path, config_text(listen, &officer_public)).map_err(io(&config_path))?;
    let config = Config::load(&config_path)?;
    let (store, _) = Store::open_sqlite(&config.sqlite_path()?).await?;
    store.close().await;
    Ok(config_path)
}

/// Where a dev node keeps the privacy officer's private key.
pub const OFFICER_KEY_FILE: &str = "officer.key";

/// Writes a file only its owner can read.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}

/// The probes listener of a dev node: the port after the node's own (or
/// any free port when the node's is chosen at start).
fn dev_probes(listen: SocketAddr) -> SocketAddr {
    let port = if listen.port() == 0 {
        0
    } else {
        listen.port().wrapping_add(1)
    };
    SocketAddr::new([127, 0, 0, 1].into(), port)
}

/// The configuration of a dev node: its own paths and participants, and
/// every other setting at its default, each with what it does — written
/// from the defaults themselves, so that the file shows what a node runs
/// with (a test checks it names every field of [`Config`]).
fn config_text(listen: SocketAddr, officer_key: &str) -> String {
    use crate::config::{
        ConsentConfig, DatabaseConfig, Limits, StatisticsConfig, TelemetryConfig,
        default_checkpoint_interval_ms, default_first_byte_timeout_ms,
        default_handshake_timeout_ms, default_max_connection_age_secs,
    };
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
        r#"# sluis node configuration (development node made by `sluis init`).
# Relative paths are resolved against this file's folder. Every setting
# below that has a default is shown at its default.

[node]
# Origin name in signed notes (consent receipts, log checkpoints): no
# spaces, '+' or control characters.
name = "sluis-dev.example"
listen = "{listen}"
# data.key (AES-256), pseudonym.key, signing.key (Ed25519): never in the database.
keys_dir = "keys"
# sqlite://FILE, or postgres://USER@HOST:5432/DB for replicas.
database = "sqlite://sluis.db"
# The Cedar policy: which role may receive which category for which purpose.
policy = "policy.cedar"
# Purposes callers may state.
purposes = [{purposes}]
# The access log signs a checkpoint at least this often while entries arrive.
checkpoint_interval_ms = {checkpoint_interval_ms}

[tls]
cert = "pki/node.pem"
key = "pki/node.key"
# CAs that issue client certificates.
client_ca = "pki/ca.pem"
# Enforced, including their expiry; of several from one CA the newest
# decides. Reloaded on SIGHUP; open connections are checked again on their
# next request.
crl = ["pki/crl.pem"]
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

[probes]
# A plain (no TLS) listener for load balancers and probes: grpc.health.v1
# and server reflection only, never the data services, and not recorded as
# access. Remove the line to have none; keep it on a private address.
listen = "{probes}"

[processing_log]
# Logboek Dataverwerkingen fields of each access record (docs/processing-log.md).
# The privacy officer's public key: each record's data subject id (V-number
# or BSN) is sealed to it. `sluis audit officer-key` makes a pair; the
# private half stays with the officer (this dev node keeps it in officer.key).
officer_key = "{officer_key}"

[processing_log.activities]
# Purpose -> the processing activity in the municipality's register of
# processing activities (dpl.core.processing_activity_id). Replace these
# placeholders with the register's own URIs.
{activities}

[log]
# "auto": human-readable on a terminal, JSON lines otherwise (journald, a
# container); or "json", "human". SLUIS_LOG chooses the lines (default info).
format = "auto"

[telemetry]
# OpenTelemetry spans and metrics over OTLP/gRPC to this collector; without
# it nothing is exported.
# otlp_endpoint = "http://127.0.0.1:4317"
# service.name of what is exported (default: node.name).
# service_name = "sluis-dev.example"
# Metrics are exported this often.
export_interval_ms = {export_interval_ms}

# Participants: organisations that may call this node. A client certificate
# is recognised by its subject serialNumber (OIN, as on PKIoverheid
# certificates) or by a pinned `spki_sha256` fingerprint.
"#,
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
        probes = dev_probes(listen),
        officer_key = officer_key,
        activities = DEFAULT_PURPOSES
            .iter()
            .map(|p| format!(
                "{p} = \"https://register.gemeente.example/verwerkingsactiviteiten/lvv-{p}\"\n"
            ))
            .collect::<String>(),
        export_interval_ms = telemetry.export_interval_ms,
    );
    for (id, name, role, oin) in DEV_PARTICIPANTS {
        let _ = write!(
            s,
            "\n[[participant]]\nid = \"{id}\"\nname = \"{name}\"\nrole = \"{role}\"\noin = \"{oin}\"\n"
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev_listen() -> SocketAddr {
        "127.0.0.1:7443".parse().unwrap()
    }

    /// What the file says beyond the defaults: the dev node's own paths,
    /// name, address and participants. Everything else must be the default.
    fn required_only() -> String {
        "[node]\nname = \"sluis-dev.example\"\nlisten = \"127.0.0.1:7443\"\nkeys_dir = \"keys\"\n\
         database = \"sqlite://sluis.db\"\npolicy = \"policy.cedar\"\n\
         [tls]\ncert = \"pki/node.pem\"\nkey = \"pki/node.key\"\nclient_ca = \"pki/ca.pem\"\n\
         crl = [\"pki/crl.pem\"]\n"
            .to_string()
    }

    /// The settings every node has, without what is the dev node's own
    /// (participants, probes address, officer key and activities).
    fn without_participants(c: &Config) -> toml::Table {
        let mut t = toml::Table::try_from(c).expect("a config serialises");
        t.remove("participant");
        t.remove("probes");
        t.remove("processing_log");
        t
    }

    /// `sluis init` writes every setting of the configuration, each at its
    /// default: the file it writes reads back to exactly the configuration
    /// a file without them gives, and every field of every section of
    /// [`Config`] is named in it — a setting added to the code and not to
    /// the file fails here.
    #[test]
    fn init_writes_every_setting_at_its_default() {
        let (_, officer) = crate::gateway::officer::OfficerSecret::generate();
        let text = config_text(dev_listen(), &officer);
        let written: Config = toml::from_str(&text).expect("the written config parses");
        let defaults: Config = toml::from_str(&required_only()).expect("the minimal config parses");
        assert_eq!(
            without_participants(&written),
            without_participants(&defaults),
            "every setting the file writes is at its default"
        );
        assert_eq!(written.participants.len(), DEV_PARTICIPANTS.len());
        assert_eq!(
            written.probes.listen,
            Some("127.0.0.1:7444".parse().unwrap())
        );
        assert_eq!(
            written.processing_log.officer_key.as_deref(),
            Some(officer.as_str())
        );
        assert_eq!(
            written.processing_log.activities.len(),
            DEFAULT_PURPOSES.len(),
            "a processing activity for every purpose"
        );
        let raw: toml::Table = text.parse().unwrap();
        for (section, fields) in without_participants(&defaults) {
            let fields = fields.as_table().expect("each section is a table");
            let in_file = raw
                .get(&section)
                .and_then(|v| v.as_table())
                .unwrap_or_else(|| panic!("[{section}] is missing from the file init writes"));
            for key in fields.keys() {
                assert!(
                    in_file.contains_key(key),
                    "{section}.{key} is missing from the file init writes"
                );
            }
        }
    }

    /// The README's configuration examples show every numeric setting once,
    /// each at its default, so a reader copying them runs what the code
    /// runs.
    #[test]
    fn readme_numbers_are_the_defaults() {
        let readme = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"),
        )
        .unwrap();
        let defaults = without_participants(&toml::from_str(&required_only()).unwrap());
        let mut checked = 0;
        for block in readme.split("```toml").skip(1) {
            let block = block.split("```").next().unwrap();
            let table: toml::Table = block
                .parse()
                .unwrap_or_else(|e| panic!("a README toml example does not parse: {e}"));
            for (section, fields) in table {
                let Some(fields) = fields.as_table() else {
                    continue;
                };
                for (key, value) in fields {
                    if !value.is_integer() {
                        continue;
                    }
                    let default = defaults
                        .get(&section)
                        .and_then(|s| s.get(key))
                        .unwrap_or_else(|| {
                            panic!("README names {section}.{key}, which is no setting")
                        });
                    assert_eq!(value, default, "README: {section}.{key}");
                    checked += 1;
                }
            }
        }
        let numbers = defaults
            .values()
            .filter_map(|s| s.as_table())
            .flat_map(|s| s.values())
            .filter(|v| v.is_integer())
            .count();
        assert_eq!(
            checked, numbers,
            "the README shows every numeric setting once"
        );
    }
}
