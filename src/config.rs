//! The node's configuration file (`sluis.toml`).
//!
//! Relative paths in the file are resolved against the file's own folder, so
//! a node directory can be moved or mounted anywhere and still work.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::{DEFAULT_PURPOSES, Role, is_name};
use crate::store::redact_url;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub node: NodeConfig,
    pub tls: TlsConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub statistics: StatisticsConfig,
    #[serde(default)]
    pub(crate) consent: ConsentConfig,
    #[serde(default)]
    pub processing_log: ProcessingLogConfig,
    #[serde(default)]
    pub probes: ProbesConfig,
    #[serde(default)]
    pub retention: RetentionConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// Membership of a federation of nodes (`[federation]`); none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation: Option<crate::federation::FederationConfig>,
    #[serde(default, rename = "participant")]
    pub participants: Vec<Participant>,
    /// Folder the relative paths are resolved against; not in the file.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's name: origin of its signed notes (receipts, checkpoints).
    pub name: String,
    /// Address to listen on, e.g. "0.0.0.0:7443".
    pub listen: SocketAddr,
    /// Folder holding data.key, pseudonym.key and signing.key.
    pub keys_dir: PathBuf,
    /// "sqlite://sluis.db" (relative to this file) or an absolute sqlite path.
    pub database: String,
    /// The Cedar policy file.
    pub(crate) policy: PathBuf,
    /// Purposes callers may state. Defaults to the LVV purposes.
    #[serde(default = "default_purposes")]
    pub purposes: Vec<String>,
    /// The access log gets a signed checkpoint at least this often while
    /// entries arrive.
    #[serde(default = "default_checkpoint_interval_ms")]
    pub checkpoint_interval_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The node's certificate chain (PEM).
    pub(crate) cert: PathBuf,
    /// The node's private key (PEM).
    pub(crate) key: PathBuf,
    /// CA certificates that issue client certificates (PEM, one or more).
    pub(crate) client_ca: PathBuf,
    /// Certificate revocation lists (PEM). Expired CRLs are refused.
    #[serde(default)]
    pub crl: Vec<PathBuf>,
    /// Serve although a client CA has no CRL in `crl` (logged as a
    /// warning). Off: such a configuration is refused at start and reload.
    #[serde(default)]
    pub allow_missing_crl: bool,
    /// A client that has not finished its handshake by then is dropped.
    #[serde(default = "default_handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
    /// A connection that sends nothing for this long after it is accepted
    /// is closed (and counted, not recorded one by one). A TLS client
    /// speaks first, at once, so this can be short; it bounds how long a
    /// silent connection holds a handshake slot.
    #[serde(default = "default_first_byte_timeout_ms")]
    pub first_byte_timeout_ms: u64,
    /// Connections are closed after this age. A reloaded CRL or CA applies
    /// to open connections on their next request; a changed participant
    /// registry applies to new connections, so this bounds how long an open
    /// one keeps the identity it was given.
    #[serde(default = "default_max_connection_age_secs")]
    pub max_connection_age_secs: u64,
    /// `sluis check-config` (and so `serve` at start) warns when the node
    /// certificate, a client CA or a deciding CRL ends within this many
    /// days; one that has ended is an error.
    #[serde(default = "default_expiry_warning_days")]
    pub expiry_warning_days: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest request accepted; larger ones get RESOURCE_EXHAUSTED.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// TLS handshakes in progress at once; further clients wait in the backlog.
    #[serde(default = "default_max_handshakes")]
    pub max_handshakes: usize,
    /// TLS handshakes in progress at once from one source (an IPv4 address
    /// or an IPv6 /64); a further connection from it is closed at once, so
    /// that no source can hold the node's handshake slots.
    #[serde(default = "default_max_handshakes_per_source")]
    pub max_handshakes_per_source: usize,
    /// Connections that never present a client certificate are summed per
    /// source and written as one access record per source per this many
    /// seconds (and at shutdown).
    #[serde(default = "default_unauthenticated_report_secs")]
    pub unauthenticated_report_secs: u64,
    /// Refused handshakes that presented a certificate get a record each,
    /// with its fingerprint: this many distinct certificates per source per
    /// report interval; further ones are counted in the source's summary.
    #[serde(default = "default_refused_certificate_records_per_source")]
    pub(crate) refused_certificate_records_per_source: usize,
    /// Requests in progress at once on the listener: each from the moment
    /// it is admitted until its work and its record are done, also when
    /// its caller stopped waiting. A request beyond is refused at once
    /// with UNAVAILABLE (and recorded).
    #[serde(default = "default_max_requests_in_flight")]
    pub max_requests_in_flight: usize,
    /// Of those, at most this many from one caller (a registered
    /// participant; unregistered certificates together count as one), so
    /// that no caller can take every place; more: UNAVAILABLE at once.
    #[serde(default = "default_max_requests_in_flight_per_caller")]
    pub max_requests_in_flight_per_caller: usize,
    /// A request whose message has not fully arrived this long after its
    /// headers ends before any handler (DEADLINE_EXCEEDED, recorded).
    #[serde(default = "default_message_timeout_ms")]
    pub message_timeout_ms: u64,
    /// Connections open at once (handshakes in progress included); at the
    /// limit the node accepts no more until one closes. Each holds its TLS
    /// and HTTP/2 state in memory.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections open at once from one source (an IPv4 address or an
    /// IPv6 /64), whatever certificate they present; a further one is
    /// closed at once, so that no source can hold the node's connections.
    #[serde(default = "default_max_connections_per_source")]
    pub max_connections_per_source: usize,
    /// A connection on which no request has run for this long is closed.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// A connection with an unregistered certificate is closed this long
    /// after its first request ends (each of its requests is refused).
    #[serde(default = "default_unregistered_linger_ms")]
    pub unregistered_linger_ms: u64,
    /// The node pings an open connection's client this often over HTTP/2
    /// and closes the connection when a ping goes unanswered as long: a
    /// vanished peer does not keep its slot.
    #[serde(default = "default_keepalive_secs")]
    pub keepalive_secs: u64,
    /// Requests (HTTP/2 streams) open at once on one connection,
    /// announced to the client in SETTINGS_MAX_CONCURRENT_STREAMS.
    #[serde(default = "default_max_concurrent_streams")]
    pub max_concurrent_streams: u32,
    /// Requests of one unregistered certificate recorded one by one per
    /// report interval; further ones are counted in one summary record per
    /// certificate and interval.
    #[serde(default = "default_unregistered_records_per_certificate")]
    pub unregistered_records_per_certificate: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: default_max_message_bytes(),
            max_handshakes: default_max_handshakes(),
            max_handshakes_per_source: default_max_handshakes_per_source(),
            unauthenticated_report_secs: default_unauthenticated_report_secs(),
            refused_certificate_records_per_source: default_refused_certificate_records_per_source(
            ),
            max_requests_in_flight: default_max_requests_in_flight(),
            max_requests_in_flight_per_caller: default_max_requests_in_flight_per_caller(),
            message_timeout_ms: default_message_timeout_ms(),
            max_connections: default_max_connections(),
            max_connections_per_source: default_max_connections_per_source(),
            idle_timeout_ms: default_idle_timeout_ms(),
            unregistered_linger_ms: default_unregistered_linger_ms(),
            keepalive_secs: default_keepalive_secs(),
            max_concurrent_streams: default_max_concurrent_streams(),
            unregistered_records_per_certificate: default_unregistered_records_per_certificate(),
        }
    }
}

/// Connection pool of the database named by `node.database`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Connections per node process.
    #[serde(default = "default_max_db_connections")]
    pub max_connections: u32,
    /// A request that cannot get a connection within this time fails
    /// closed with UNAVAILABLE.
    #[serde(default = "default_acquire_timeout_ms")]
    pub acquire_timeout_ms: u64,
    /// Cases (and as many consent lists) kept in memory for reads, on
    /// SQLite only, where the node is the file's only writer; 0 turns it
    /// off. PostgreSQL replicas always read the database.
    #[serde(default = "default_cache_entries")]
    pub cache_entries: usize,
    /// SQLite only: at most this many MiB of cases and consent lists in
    /// that cache, whatever their number (a case may hold up to
    /// `max_message_bytes` of data).
    #[serde(default = "default_cache_mb")]
    pub cache_mb: u64,
    /// SQLite only: the size (MiB) the write-ahead log is cut back to once
    /// checkpoints have copied it into the database file.
    #[serde(default = "default_wal_limit_mb")]
    pub wal_limit_mb: u64,
    /// SQLite only: above this size (MiB) of write-ahead log the node logs
    /// a warning: a reader holding an old snapshot keeps it from shrinking.
    #[serde(default = "default_wal_warn_mb")]
    pub wal_warn_mb: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            max_connections: default_max_db_connections(),
            acquire_timeout_ms: default_acquire_timeout_ms(),
            cache_entries: default_cache_entries(),
            cache_mb: default_cache_mb(),
            wal_limit_mb: default_wal_limit_mb(),
            wal_warn_mb: default_wal_warn_mb(),
        }
    }
}

/// The node's log lines on stderr (`[log]`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// "auto" (human on a terminal, JSON lines otherwise), "json" or
    /// "human". Which lines: the `SLUIS_LOG` environment variable
    /// (an `EnvFilter`, default `info`).
    #[serde(default)]
    pub format: crate::telemetry::LogFormat,
}

/// OpenTelemetry export (`[telemetry]`): spans and metrics over OTLP/gRPC.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The collector's OTLP/gRPC endpoint, e.g. "http://127.0.0.1:4317".
    /// Absent: nothing is exported and no exporter is built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    /// `service.name` of what is exported; default: the node's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// How often metrics are exported.
    #[serde(default = "default_export_interval_ms")]
    pub export_interval_ms: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            service_name: None,
            export_interval_ms: default_export_interval_ms(),
        }
    }
}

fn default_export_interval_ms() -> u64 {
    10_000
}

/// What consent the node records (`[consent]`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsentConfig {
    /// The longest validity window a consent may have, in days: a window
    /// ending (or beginning) further away is refused as a likely typo in the
    /// year. Open-ended consents stay allowed (withdrawal ends them).
    #[serde(default = "default_max_validity_days")]
    pub(crate) max_validity_days: u32,
}

impl Default for ConsentConfig {
    fn default() -> Self {
        ConsentConfig {
            max_validity_days: default_max_validity_days(),
        }
    }
}

impl ConsentConfig {
    /// The maximum validity in milliseconds.
    pub(crate) fn max_validity_ms(&self) -> i64 {
        i64::from(self.max_validity_days) * 86_400_000
    }
}

/// Five years (and a leap day).
fn default_max_validity_days() -> u32 {
    1826
}

/// Disclosure control of the statistics this node publishes (see
/// `docs/statistics.md`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatisticsConfig {
    /// Counts below this are shown as "< threshold" (zero included).
    #[serde(default = "default_stats_threshold")]
    pub threshold: u32,
    /// No combination of published figures narrows a "< threshold" cell to
    /// fewer than this many values besides its true one (1 to threshold - 1).
    #[serde(default = "default_stats_protection")]
    pub protection: u32,
    /// Published counts are rounded to a multiple of this (1: exact); it
    /// must divide the threshold.
    #[serde(default = "default_stats_rounding_base")]
    pub rounding_base: u32,
    /// Statistics requests one caller may make a minute (1 to 10,000);
    /// beyond it RESOURCE_EXHAUSTED with the wait as RetryInfo. Each
    /// request that computes reads and opens every case.
    #[serde(default = "default_stats_requests_per_minute")]
    pub requests_per_minute: u32,
}

impl Default for StatisticsConfig {
    fn default() -> Self {
        StatisticsConfig {
            threshold: default_stats_threshold(),
            protection: default_stats_protection(),
            rounding_base: default_stats_rounding_base(),
            requests_per_minute: default_stats_requests_per_minute(),
        }
    }
}

impl StatisticsConfig {
    pub fn settings(&self) -> crate::stats::Settings {
        crate::stats::Settings {
            threshold: self.threshold,
            protection: self.protection,
            rounding_base: self.rounding_base,
        }
    }
}

fn default_stats_threshold() -> u32 {
    crate::stats::Settings::default().threshold
}
fn default_stats_protection() -> u32 {
    crate::stats::Settings::default().protection
}
fn default_stats_rounding_base() -> u32 {
    crate::stats::Settings::default().rounding_base
}
fn default_stats_requests_per_minute() -> u32 {
    30
}

fn default_max_db_connections() -> u32 {
    16
}
fn default_acquire_timeout_ms() -> u64 {
    3_000
}
fn default_cache_entries() -> usize {
    10_000
}
fn default_cache_mb() -> u64 {
    64
}
fn default_wal_limit_mb() -> u64 {
    64
}
fn default_wal_warn_mb() -> u64 {
    256
}

/// The Logboek Dataverwerkingen (LDV) fields of each access record (see
/// `docs/processing-log.md`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessingLogConfig {
    /// The privacy officer's public key (`hpke-x25519:…`, as `sluis audit
    /// officer-key` writes it): each record's data subject id is sealed
    /// to it. Without it records name no data subject id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub officer_key: Option<String>,
    /// Purpose → the processing activity's URI in the municipality's
    /// register of processing activities (`dpl.core.processing_activity_id`).
    #[serde(default)]
    pub activities: std::collections::BTreeMap<String, String>,
}

impl ProcessingLogConfig {
    /// What the gateway makes the records' LDV fields from (checked by
    /// `Config::validate`).
    pub(crate) fn settings(&self) -> crate::gateway::LdvSettings {
        crate::gateway::LdvSettings {
            officer: self
                .officer_key
                .as_deref()
                .and_then(|k| crate::gateway::officer::OfficerKey::parse(k).ok()),
            activities: self.activities.clone(),
        }
    }
}

/// A second listener for load balancers and probes: `grpc.health.v1` and
/// server reflection in plain text (no TLS), never the data services.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbesConfig {
    /// Address of the plain listener, e.g. "127.0.0.1:7444"; none when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
}

/// How long case data is kept (`[retention]`; GDPR art. 5(1)(e) storage
/// limitation, art. 17 erasure). Each period is a number and a unit — `s`,
/// `m`, `h`, `d`, `y` (365 days) — e.g. `"2y"`, `"90d"`, counted from the
/// case's **last update** (`UpdateCase`, or its registration): data still
/// being worked on is still needed. A category past its period is erased
/// (its ciphertext deleted); a case whose every category is past its
/// period, or that is past `case`, is crypto-erased as a whole (its key
/// destroyed). No period: kept (no automatic erasure by default).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// How often the node looks for what is due (and re-wraps case keys
    /// after a data key rotation), e.g. "1h".
    #[serde(default = "default_retention_interval")]
    pub interval: String,
    /// The whole case, e.g. "10y".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residence_procedure: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shelter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guidance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perspective: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medical: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

pub(crate) fn default_retention_interval() -> String {
    "1h".into()
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            interval: default_retention_interval(),
            case: None,
            identity: None,
            residence_procedure: None,
            shelter: None,
            guidance: None,
            perspective: None,
            medical: None,
            safety: None,
            outcome: None,
        }
    }
}

/// The longest retention period or interval: 100 years.
const MAX_PERIOD_MS: i64 = 100 * 365 * 86_400_000;

/// A period as `[retention]` writes it (`"2y"`, `"90d"`, `"12h"`, `"30m"`,
/// `"10s"`; a year is 365 days) in milliseconds, 1 s to 100 years.
pub fn parse_period(s: &str) -> Option<i64> {
    let unit = s.chars().last()?;
    let n: i64 = s[..s.len() - unit.len_utf8()].parse().ok()?;
    let ms = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        'y' => 365 * 86_400_000,
        _ => return None,
    };
    n.checked_mul(ms)
        .filter(|v| (1_000..=MAX_PERIOD_MS).contains(v))
}

impl RetentionConfig {
    /// Each configured category's period (ms), and the whole case's.
    /// Assumes `Config::problems` found none in this section.
    pub(crate) fn periods(&self) -> (Vec<(crate::model::Category, i64)>, Option<i64>) {
        let cats = self
            .fields()
            .into_iter()
            .skip(1)
            .filter_map(|(name, v)| {
                let c = name.parse().ok()?;
                Some((c, parse_period(v.as_deref()?)?))
            })
            .collect();
        (cats, self.case.as_deref().and_then(parse_period))
    }

    /// How often the node erases what is due.
    pub(crate) fn interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(parse_period(&self.interval).unwrap_or(3_600_000) as u64)
    }

    /// `case` and every category, by name.
    fn fields(&self) -> [(&'static str, &Option<String>); 9] {
        [
            ("case", &self.case),
            ("identity", &self.identity),
            ("residence_procedure", &self.residence_procedure),
            ("shelter", &self.shelter),
            ("guidance", &self.guidance),
            ("perspective", &self.perspective),
            ("medical", &self.medical),
            ("safety", &self.safety),
            ("outcome", &self.outcome),
        ]
    }

    fn problems(&self, problem: &mut impl FnMut(String, String, &str)) {
        const FIX: &str =
            "write a number and a unit: s, m, h, d or y (365 days), e.g. \"2y\" or \"90d\"";
        if parse_period(&self.interval).is_none() {
            problem(
                "retention.interval".into(),
                "retention.interval must be a period from 1s to 100y".into(),
                FIX,
            );
        }
        for (name, v) in self.fields() {
            if let Some(v) = v
                && parse_period(v).is_none()
            {
                problem(
                    format!("retention.{name}"),
                    format!("retention.{name} must be a period from 1s to 100y"),
                    FIX,
                );
            }
        }
    }
}

/// A registered participant: an organisation allowed to call this node.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Participant {
    /// Short stable id, e.g. "gemeente-utrecht". Used in consents and logs.
    pub id: String,
    /// Human name, e.g. "Gemeente Utrecht".
    pub name: String,
    pub role: String,
    /// 20-digit OIN in the certificate subject serialNumber.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oin: Option<String>,
    /// Pinned SHA-256 of the certificate's SubjectPublicKeyInfo, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spki_sha256: Option<String>,
}

fn default_purposes() -> Vec<String> {
    DEFAULT_PURPOSES.iter().map(|s| s.to_string()).collect()
}
pub(crate) fn default_checkpoint_interval_ms() -> u64 {
    1_000
}
pub(crate) fn default_handshake_timeout_ms() -> u64 {
    10_000
}
pub(crate) fn default_expiry_warning_days() -> u32 {
    30
}
pub(crate) fn default_max_connection_age_secs() -> u64 {
    3_600
}
fn default_max_message_bytes() -> usize {
    1024 * 1024
}
fn default_max_handshakes() -> usize {
    10_000
}
pub(crate) fn default_first_byte_timeout_ms() -> u64 {
    2_000
}
fn default_max_handshakes_per_source() -> usize {
    64
}
fn default_unauthenticated_report_secs() -> u64 {
    60
}
fn default_refused_certificate_records_per_source() -> usize {
    16
}
fn default_max_requests_in_flight() -> usize {
    1024
}
fn default_max_requests_in_flight_per_caller() -> usize {
    256
}
fn default_message_timeout_ms() -> u64 {
    10_000
}
fn default_max_connections() -> usize {
    10_000
}
fn default_max_connections_per_source() -> usize {
    256
}
fn default_idle_timeout_ms() -> u64 {
    300_000
}
fn default_unregistered_linger_ms() -> u64 {
    1_000
}
fn default_keepalive_secs() -> u64 {
    60
}
fn default_max_concurrent_streams() -> u32 {
    128
}
fn default_unregistered_records_per_certificate() -> usize {
    16
}

/// One thing wrong with a configuration that parsed: where (a key path
/// such as `node.name` or `participant.2.oin`, array entries counted from
/// 0), what, and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    pub at: String,
    pub message: String,
    pub fix: String,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let (config, _) = Config::parse(path)?;
        let problems = config.problems();
        if !problems.is_empty() {
            let message = problems
                .iter()
                .map(|p| p.message.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message,
            });
        }
        Ok(config)
    }

    /// Reads and parses the file without checking the values (see
    /// [`Config::problems`]); also returns the text, for locating
    /// problems in it.
    pub(crate) fn parse(path: &Path) -> Result<(Config, String), ConfigError> {
        let text =
            crate::files::read_to_string(path, crate::files::Kind::Config).map_err(|source| {
                ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
        let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: parse_message(&text, &e),
        })?;
        config.base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok((config, text))
    }

    /// Every value that would stop the node, all of them (not only the
    /// first), in the order of the file's sections.
    pub(crate) fn problems(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        let mut problem = |at: String, message: String, fix: &str| {
            out.push(ConfigProblem {
                at,
                message,
                fix: fix.to_string(),
            })
        };
        self.retention.problems(&mut problem);
        // The name signs receipts and checkpoints: a signed-note key name
        // (C2SP), and the first line of each note.
        if let Some(message) = node_name_problem(&self.node.name, self.federation.is_some()) {
            problem("node.name".into(), message, NODE_NAME_FIX);
        }
        for (i, p) in self.node.purposes.iter().enumerate() {
            if !is_name(p) {
                problem(
                    format!("node.purposes.{i}"),
                    format!(
                        "purpose '{}' must be 1-64 characters of a-z, 0-9, '-', '_' or '.'",
                        p.escape_debug()
                    ),
                    "spell the purpose in lower case without spaces, e.g. case_consultation",
                );
            }
        }
        let mut ids = std::collections::HashMap::new();
        let mut oins = std::collections::HashMap::new();
        let mut pins = std::collections::HashMap::new();
        for (i, p) in self.participants.iter().enumerate() {
            let at = |field: &str| format!("participant.{i}.{field}");
            if !is_name(&p.id) {
                problem(
                    at("id"),
                    format!(
                        "participant id '{}' must be 1-64 characters of a-z, 0-9, '-', '_' or '.'",
                        p.id.escape_debug()
                    ),
                    "use a short lower-case id, e.g. gemeente-utrecht",
                );
            }
            if let Some(first) = ids.insert(p.id.as_str(), i) {
                let _ = first;
                problem(
                    at("id"),
                    format!("participant id '{}' is listed twice", p.id.escape_debug()),
                    "give every participant its own id, or remove the second entry",
                );
            }
            if let Err(e) = p.role.parse::<Role>() {
                problem(
                    at("role"),
                    format!("participant '{}': {e}", p.id.escape_debug()),
                    "use one of the roles the message lists",
                );
            }
            match (&p.oin, &p.spki_sha256) {
                (None, None) => problem(
                    format!("participant.{i}"),
                    format!(
                        "participant '{}' needs an oin or an spki_sha256 to be recognised",
                        p.id.escape_debug()
                    ),
                    "add oin = \"<the 20-digit OIN in its certificate's subject serialNumber>\", \
                     or spki_sha256 = \"<hex SHA-256 of its certificate's public key>\"",
                ),
                (oin, pin) => {
                    if let Some(oin) = oin {
                        if !(oin.len() == 20 && oin.bytes().all(|b| b.is_ascii_digit())) {
                            problem(
                                at("oin"),
                                format!(
                                    "participant '{}': oin must be 20 digits",
                                    p.id.escape_debug()
                                ),
                                "copy the OIN from the participant's certificate (subject serialNumber)",
                            );
                        } else if let Some(first) = oins.insert(oin.as_str(), p.id.as_str()) {
                            // A certificate names one organisation: the
                            // registry would give both entries one identity.
                            problem(
                                at("oin"),
                                format!(
                                    "participants '{}' and '{}' have the same oin {oin}: a certificate with it would be taken for one of them",
                                    first.escape_debug(),
                                    p.id.escape_debug()
                                ),
                                "register each organisation once; correct the OIN of the one that is wrong",
                            );
                        }
                    }
                    if let Some(fp) = pin {
                        if !(fp.len() == 64 && fp.bytes().all(|b| b.is_ascii_hexdigit())) {
                            problem(
                                at("spki_sha256"),
                                format!(
                                    "participant '{}': spki_sha256 must be 64 hex digits",
                                    p.id.escape_debug()
                                ),
                                "give the hex SHA-256 of the certificate's SubjectPublicKeyInfo",
                            );
                        } else if let Some(first) =
                            pins.insert(fp.to_ascii_lowercase(), p.id.as_str())
                        {
                            problem(
                                at("spki_sha256"),
                                format!(
                                    "participants '{}' and '{}' pin the same key (spki_sha256): a certificate with it would be taken for one of them",
                                    first.escape_debug(),
                                    p.id.escape_debug()
                                ),
                                "give each participant the fingerprint of its own key",
                            );
                        }
                    }
                }
            }
        }
        if let Err(e) = self.statistics.settings().check() {
            problem("statistics".into(), e, "see docs/statistics.md");
        }
        if self.database.wal_limit_mb == 0 || self.database.wal_warn_mb < self.database.wal_limit_mb
        {
            problem(
                "database.wal_warn_mb".into(),
                "database.wal_limit_mb must be at least 1, and wal_warn_mb at least wal_limit_mb"
                    .into(),
                "raise wal_warn_mb to at least wal_limit_mb",
            );
        }
        // Every number is bounded: a value past what the runtime can
        // represent (a timer, a semaphore) would panic the node at start
        // or on its first connection instead of being refused here.
        if let Some(k) = &self.processing_log.officer_key
            && let Err(e) = crate::gateway::officer::OfficerKey::parse(k)
        {
            problem(
                "processing_log.officer_key".into(),
                format!("processing_log.officer_key: {e}"),
                "paste the public key `sluis audit officer-key` printed, or remove the line",
            );
        }
        for (purpose, uri) in &self.processing_log.activities {
            if !self.node.purposes.contains(purpose) {
                problem(
                    format!("processing_log.activities.{purpose}"),
                    format!(
                        "processing_log.activities: '{}' is not one of node.purposes ({})",
                        purpose.escape_debug(),
                        self.node.purposes.join(", ")
                    ),
                    "name a purpose the node has, or remove the line",
                );
            }
            let scheme_ok = uri.split_once(':').is_some_and(|(scheme, rest)| {
                !scheme.is_empty()
                    && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                    && !rest.is_empty()
            });
            let http_problem = uri
                .split_once(':')
                .filter(|(scheme, _)| {
                    scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")
                })
                .and_then(|_| http_url_problem(uri));
            if let Some(what) = http_problem {
                problem(
                    format!("processing_log.activities.{purpose}"),
                    format!("processing_log.activities.{purpose} '{uri}': {what}"),
                    "use the register's URI, e.g. https://register.example/verwerkingsactiviteiten/1",
                );
            } else if !scheme_ok || uri.len() > 512 || !uri.chars().all(|c| c.is_ascii_graphic()) {
                problem(
                    format!("processing_log.activities.{purpose}"),
                    format!(
                        "processing_log.activities.{purpose}: must be a URI (scheme:rest, at most 512 visible ASCII characters)"
                    ),
                    "use the register's URI, e.g. https://register.example/verwerkingsactiviteiten/1",
                );
            }
        }
        if !(1..=10_000).contains(&self.statistics.requests_per_minute) {
            problem(
                "statistics.requests_per_minute".into(),
                "statistics.requests_per_minute must be from 1 to 10000".into(),
                "set it within the range, or remove it for the default (30)",
            );
        }
        if let Some(endpoint) = &self.telemetry.otlp_endpoint
            && let Some(what) = otlp_endpoint_problem(endpoint)
        {
            problem(
                "telemetry.otlp_endpoint".into(),
                format!(
                    "telemetry.otlp_endpoint '{}': {what}",
                    endpoint.escape_debug()
                ),
                "give the collector's OTLP/gRPC address as http://HOST:PORT or https://HOST:PORT, e.g. http://127.0.0.1:4317, or remove the line to export nothing",
            );
        }
        if let Some(name) = &self.telemetry.service_name
            && (name.is_empty()
                || name.len() > 255
                || !name.chars().all(crate::model::printable_in_line))
        {
            problem(
                "telemetry.service_name".into(),
                "telemetry.service_name must be 1-255 printable characters".into(),
                "shorten it, or remove it for the node's name",
            );
        }
        // Each listener needs a port of its own: two on one address stop
        // the node at its start ("address in use"), after every other check
        // passed.
        let mut listeners = vec![("node.listen", self.node.listen)];
        listeners.extend(self.probes.listen.map(|a| ("probes.listen", a)));
        if let Some(f) = &self.federation {
            listeners.extend(f.listen.map(|a| ("federation.listen", a)));
        }
        for (i, (name, addr)) in listeners.iter().enumerate() {
            if let Some((other, _)) = listeners[..i]
                .iter()
                .find(|(_, earlier)| same_listener(*earlier, *addr))
            {
                problem(
                    (*name).into(),
                    format!(
                        "{name} ({addr}) is the address {other} listens on: the node cannot listen twice on one port"
                    ),
                    &format!("give {name} a port of its own, e.g. {}", next_port(*addr)),
                );
            }
        }
        for (name, value, min, max) in self.bounds() {
            if !(min..=max).contains(&value) {
                problem(
                    name.into(),
                    format!("{name} must be {min} to {max}"),
                    "set it within the range, or remove it for the default",
                );
            }
        }
        out
    }

    /// Each numeric setting with its bounds: (name, value, min, max).
    fn bounds(&self) -> [(&'static str, u64, u64, u64); 27] {
        [
            (
                "limits.max_connections_per_source",
                self.limits.max_connections_per_source as u64,
                1,
                1_000_000,
            ),
            (
                "limits.idle_timeout_ms",
                self.limits.idle_timeout_ms,
                1,
                86_400_000,
            ),
            (
                "limits.unregistered_linger_ms",
                self.limits.unregistered_linger_ms,
                1,
                3_600_000,
            ),
            (
                "limits.keepalive_secs",
                self.limits.keepalive_secs,
                1,
                86_400,
            ),
            (
                "limits.max_concurrent_streams",
                u64::from(self.limits.max_concurrent_streams),
                1,
                1_000_000,
            ),
            (
                "limits.unregistered_records_per_certificate",
                self.limits.unregistered_records_per_certificate as u64,
                0,
                1_000_000,
            ),
            (
                "node.checkpoint_interval_ms",
                self.node.checkpoint_interval_ms,
                0,
                86_400_000,
            ),
            (
                "tls.handshake_timeout_ms",
                self.tls.handshake_timeout_ms,
                1,
                3_600_000,
            ),
            (
                "tls.max_connection_age_secs",
                self.tls.max_connection_age_secs,
                1,
                31_536_000,
            ),
            (
                "limits.max_message_bytes",
                self.limits.max_message_bytes as u64,
                1024,
                1 << 30,
            ),
            (
                "limits.max_handshakes",
                self.limits.max_handshakes as u64,
                1,
                1_000_000,
            ),
            (
                "limits.max_handshakes_per_source",
                self.limits.max_handshakes_per_source as u64,
                1,
                1_000_000,
            ),
            (
                "limits.refused_certificate_records_per_source",
                self.limits.refused_certificate_records_per_source as u64,
                0,
                1_000_000,
            ),
            (
                "limits.max_connections",
                self.limits.max_connections as u64,
                1,
                1_000_000,
            ),
            (
                "limits.max_requests_in_flight_per_caller",
                self.limits.max_requests_in_flight_per_caller as u64,
                1,
                1_000_000,
            ),
            (
                "limits.message_timeout_ms",
                self.limits.message_timeout_ms,
                1,
                3_600_000,
            ),
            (
                "limits.max_requests_in_flight",
                self.limits.max_requests_in_flight as u64,
                1,
                1_000_000,
            ),
            (
                "limits.unauthenticated_report_secs",
                self.limits.unauthenticated_report_secs,
                1,
                86_400,
            ),
            (
                "tls.first_byte_timeout_ms",
                self.tls.first_byte_timeout_ms,
                1,
                3_600_000,
            ),
            (
                "database.wal_warn_mb",
                self.database.wal_warn_mb,
                1,
                1_000_000,
            ),
            (
                "database.max_connections",
                u64::from(self.database.max_connections),
                1,
                10_000,
            ),
            (
                "database.acquire_timeout_ms",
                self.database.acquire_timeout_ms,
                1,
                3_600_000,
            ),
            ("database.cache_mb", self.database.cache_mb, 1, 1_000_000),
            (
                "database.cache_entries",
                self.database.cache_entries as u64,
                0,
                100_000_000,
            ),
            (
                "telemetry.export_interval_ms",
                self.telemetry.export_interval_ms,
                100,
                3_600_000,
            ),
            (
                "consent.max_validity_days",
                u64::from(self.consent.max_validity_days),
                1,
                36_525,
            ),
            (
                "tls.expiry_warning_days",
                u64::from(self.tls.expiry_warning_days),
                1,
                3_650,
            ),
        ]
    }

    /// The OTLP export `[telemetry]` asks for, if any: the service named
    /// after the node unless it says otherwise.
    pub fn otlp(&self) -> Option<crate::telemetry::Otlp> {
        let endpoint = self.telemetry.otlp_endpoint.clone()?;
        Some(crate::telemetry::Otlp {
            endpoint,
            service_name: self
                .telemetry
                .service_name
                .clone()
                .unwrap_or_else(|| self.node.name.clone()),
            export_interval: Duration::from_millis(self.telemetry.export_interval_ms),
        })
    }

    /// Resolves a path from the file against the file's folder.
    pub fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// The SQLite file the `database` setting names (an error for PostgreSQL).
    pub fn sqlite_path(&self) -> Result<PathBuf, ConfigError> {
        let rest = self
            .node
            .database
            .strip_prefix("sqlite://")
            .ok_or_else(|| ConfigError::Invalid {
                path: self.base_dir.join("sluis.toml"),
                message: format!(
                    "database '{}' is not a sqlite:// file",
                    redact_url(&self.node.database)
                ),
            })?;
        Ok(self.path(Path::new(rest)))
    }

    /// The database URL with a relative SQLite path resolved.
    pub fn database_url(&self) -> Result<String, ConfigError> {
        let db = &self.node.database;
        if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            Ok(db.clone())
        } else if db.starts_with("sqlite://") {
            Ok(crate::store::sqlite_url(&self.sqlite_path()?))
        } else {
            Err(ConfigError::Invalid {
                path: self.base_dir.join("sluis.toml"),
                message: "node.database must be sqlite://FILE or postgres://USER@HOST/DB".into(),
            })
        }
    }

    /// The SQLite read cache's bounds.
    pub(crate) fn cache_bounds(&self) -> crate::store::CacheBounds {
        crate::store::CacheBounds {
            entries: self.database.cache_entries,
            bytes: usize::try_from(self.database.cache_mb.saturating_mul(1024 * 1024))
                .unwrap_or(usize::MAX),
        }
    }

    pub(crate) fn pool_settings(&self) -> crate::store::PoolSettings {
        crate::store::PoolSettings {
            max_connections: self.database.max_connections,
            acquire_timeout: Duration::from_millis(self.database.acquire_timeout_ms),
            wal_limit_bytes: self.database.wal_limit_mb.saturating_mul(1024 * 1024),
            wal_warn_bytes: self.database.wal_warn_mb.saturating_mul(1024 * 1024),
        }
    }

    pub(crate) fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.tls.handshake_timeout_ms)
    }

    /// The files the node's TLS server is built from, resolved. The
    /// benchmark's bare server reads them here too, so that it runs behind
    /// the very TLS the node does.
    pub fn tls_files(&self) -> crate::net::tls::TlsFiles {
        crate::net::tls::TlsFiles {
            cert: self.path(&self.tls.cert),
            key: self.path(&self.tls.key),
            client_ca: self.path(&self.tls.client_ca),
            crls: self.tls.crl.iter().map(|p| self.path(p)).collect(),
            allow_missing_crl: self.tls.allow_missing_crl,
            settings: crate::net::tls::TlsSettings::NODE,
        }
    }

    /// The federation listener's TLS files: the node's own certificate and
    /// key, the peers' CAs and CRLs (`[federation]`); none outside a
    /// federation.
    pub fn federation_tls_files(&self) -> Option<crate::net::tls::TlsFiles> {
        let f = self.federation.as_ref()?;
        Some(crate::net::tls::TlsFiles {
            cert: self.path(&self.tls.cert),
            key: self.path(&self.tls.key),
            client_ca: self.path(&f.peer_ca),
            crls: f.peer_crl.iter().map(|p| self.path(p)).collect(),
            allow_missing_crl: self.tls.allow_missing_crl,
            settings: crate::net::tls::TlsSettings::FEDERATION,
        })
    }

    /// How the node's accept loop is tuned (timeouts and the global limit).
    pub fn accept_settings(&self) -> crate::net::tls::AcceptSettings {
        crate::net::tls::AcceptSettings {
            handshake_timeout: self.handshake_timeout(),
            first_byte_timeout: Duration::from_millis(self.tls.first_byte_timeout_ms),
            max_handshakes: self.limits.max_handshakes,
            max_connections: self.limits.max_connections,
            idle_timeout: Duration::from_millis(self.limits.idle_timeout_ms),
            unregistered_linger: Duration::from_millis(self.limits.unregistered_linger_ms),
        }
    }

    /// The per-source limits of the accept loop.
    pub fn source_limits(&self) -> crate::net::sources::SourceLimits {
        crate::net::sources::SourceLimits {
            max_handshakes_per_source: self.limits.max_handshakes_per_source,
            refused_certificate_records_per_source: self
                .limits
                .refused_certificate_records_per_source,
            max_connections_per_source: self.limits.max_connections_per_source,
        }
    }

    /// How often connections without a certificate are summarised in the
    /// access log.
    pub(crate) fn unauthenticated_report_interval(&self) -> Duration {
        Duration::from_secs(self.limits.unauthenticated_report_secs)
    }

    pub(crate) fn max_connection_age(&self) -> Duration {
        Duration::from_secs(self.tls.max_connection_age_secs)
    }
}

/// Whether two listeners would take one port: the same port (0, a port
/// the system picks, never collides) on the same address, or on any address
/// where one of them is the unspecified address (`0.0.0.0`, `::`).
fn same_listener(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// `addr` with the next port, for a fix's example.
fn next_port(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip(), addr.port().checked_add(1).unwrap_or(1024))
}

/// What is wrong with `name` as a node's name (`node.name`), if anything:
/// it names the node's key in signed notes and is the first line of its
/// checkpoints, and on a federated node it is also the node's id in the
/// federation directory (`gateway::validate::node_id`). The one rule of
/// `Config::problems` and `sluis node rename`.
pub(crate) fn node_name_problem(name: &str, federated: bool) -> Option<String> {
    if !crate::tlog::note::valid_key_name(name)
        || !name.chars().all(crate::model::printable_in_line)
        || !valid_node_name(name)
    {
        return Some(
            "node.name must be 1-255 characters without spaces, control characters or '+' \
             (it names the node's key in signed notes)"
                .into(),
        );
    }
    if federated {
        return crate::gateway::validate::node_id("node.name", name)
            .err()
            .map(|e| e.to_string());
    }
    None
}

/// The fix of a bad `node.name`.
pub(crate) const NODE_NAME_FIX: &str =
    "use a DNS-like name in lower case, e.g. sluis.gemeente.example";

/// A node name usable as a C2SP signed-note key name
/// (<https://c2sp.org/signed-note>: non-empty, no Unicode spaces, no '+')
/// and as the first line of a checkpoint (no control characters).
pub(crate) fn valid_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '+')
}

/// A TOML error as one line for an operator: what is wrong and where (line
/// and column), without the snippet of the file the parser would show —
/// that line may be the database URL with its password — and with any
/// password of a URL in the file masked should the message quote it.
fn parse_message(text: &str, e: &toml::de::Error) -> String {
    let mut message = e.message().trim().replace('\n', " ");
    if let Some(span) = e.span() {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        message = format!("line {line}, column {column}: {message}");
    }
    for line in text.lines() {
        let Some(scheme) = line.find("://") else {
            continue;
        };
        let rest = &line[scheme + 3..];
        let Some(at) = rest.rfind('@') else {
            continue;
        };
        if let Some((_, password)) = rest[..at].split_once(':')
            && !password.is_empty()
        {
            message = message.replace(password, "***");
        }
    }
    message
}

/// What is wrong with `url` as an `http://` or `https://` URL of a
/// server, if anything: a scheme other than those two, no host, a port
/// that is not 1-65535, a user or password in it, or anything that is not
/// a URL (RFC 3986 as the `http` crate reads it). In words that say what
/// to change.
pub(crate) fn http_url_problem(url: &str) -> Option<String> {
    let uri: http::Uri = match url.parse() {
        Ok(u) => u,
        Err(_) if url.ends_with("://") => {
            return Some("names no host: add the server's host name or address".into());
        }
        Err(e) => return Some(format!("is not a URL ({e})")),
    };
    match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => {}
        Some(s) => return Some(format!("scheme '{s}' is neither http nor https")),
        None => return Some("has no scheme: start it with http:// or https://".into()),
    }
    let Some(authority) = uri.authority() else {
        return Some("names no host: add the server's host name or address".into());
    };
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() {
        return Some("names no host: add the server's host name or address".into());
    }
    if authority.as_str().contains('@') {
        return Some("carries a user or password: remove it (up to and including '@')".into());
    }
    // The port as written (`Authority::port` reads as absent one that
    // does not fit in 16 bits): after the host, an IPv6 one in brackets.
    let text = authority.as_str();
    let after_host = match text.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or("", |(_, r)| r),
        None => text,
    };
    if let Some((_, port)) = after_host.rsplit_once(':') {
        if port.is_empty() {
            return Some("has ':' but no port after it: give one from 1 to 65535".into());
        }
        if !matches!(port.parse::<u16>(), Ok(1..)) {
            return Some(format!(
                "port '{port}' is not a port: give one from 1 to 65535"
            ));
        }
    }
    None
}

/// What is wrong with `telemetry.otlp_endpoint`, if anything: it must be
/// an http(s) URL of a server ([`http_url_problem`]) and, since OTLP/gRPC
/// has fixed paths, carry no path or query.
fn otlp_endpoint_problem(endpoint: &str) -> Option<String> {
    if let Some(what) = http_url_problem(endpoint) {
        return Some(what);
    }
    let uri: http::Uri = endpoint.parse().ok()?;
    if uri.query().is_some() || !matches!(uri.path(), "" | "/") {
        return Some(
            "has a path or query: OTLP/gRPC sends to fixed paths, give scheme, host and port only"
                .into(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An OTLP endpoint must say how to reach the collector: an http(s)
    /// scheme, a host and, if given, a port that is one. (`http://` was
    /// taken, and the node exported to nowhere.)
    #[test]
    fn otlp_endpoints_are_checked_in_full() {
        for good in [
            "http://127.0.0.1:4317",
            "https://collector.example",
            "http://[::1]:4317",
            "http://collector.example:4317/",
        ] {
            assert_eq!(otlp_endpoint_problem(good), None, "{good}");
        }
        for (bad, says) in [
            ("http://", "names no host"),
            ("https://", "names no host"),
            ("http://:4317", "names no host"),
            ("http://collector:99999", "port"),
            ("http://collector:0", "port"),
            ("http://collector:", "no port"),
            ("ftp://collector:4317", "neither http nor https"),
            ("127.0.0.1:4317", "http"),
            ("http://u:p@collector:4317", "user or password"),
            ("http://collector:4317/v1/traces", "path"),
            ("http://coll ector:4317", "not a URL"),
        ] {
            let what = otlp_endpoint_problem(bad).unwrap_or_else(|| panic!("{bad}: taken"));
            assert!(what.contains(says), "{bad}: {what}");
        }
        let Err(e) = load("name = \"ok\"\n[telemetry]\notlp_endpoint = \"http://\"") else {
            panic!("an endpoint without a host is refused at load");
        };
        assert!(e.to_string().contains("names no host"), "{e}");
    }

    /// A register URI that is an http(s) URL must name a host too.
    #[test]
    fn http_activity_uris_name_a_host() {
        assert_eq!(
            http_url_problem("https://register.example/verwerkingsactiviteiten/1"),
            None
        );
        assert!(http_url_problem("https://").is_some());
        assert!(http_url_problem("https:///verwerkingsactiviteiten/1").is_some());
    }

    #[test]
    fn listeners_collide_on_one_port_of_one_or_any_address() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(same_listener(a("127.0.0.1:7443"), a("127.0.0.1:7443")));
        assert!(same_listener(a("0.0.0.0:7443"), a("127.0.0.1:7443")));
        assert!(same_listener(a("[::1]:7443"), a("[::]:7443")));
        assert!(!same_listener(a("127.0.0.1:7443"), a("127.0.0.2:7443")));
        assert!(!same_listener(a("127.0.0.1:7443"), a("127.0.0.1:7444")));
        // Port 0: the system picks a free port for each.
        assert!(!same_listener(a("127.0.0.1:0"), a("127.0.0.1:0")));
    }

    fn load(node_extra: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluis.toml");
        let text = format!(
            "[node]\nlisten = \"127.0.0.1:0\"\nkeys_dir = \"keys\"\ndatabase = \"sqlite://x.db\"\n\
             policy = \"policy.cedar\"\n{node_extra}\n\
             [tls]\ncert = \"a.pem\"\nkey = \"a.key\"\nclient_ca = \"ca.pem\"\n"
        );
        std::fs::write(&path, text).unwrap();
        Config::load(&path)
    }

    /// The node's name and purposes go into signed notes, line by line: a
    /// name that is no signed-note key name, or a purpose that is no name,
    /// is refused at load.
    #[test]
    fn names_that_reach_signed_notes_are_checked_at_load() {
        assert!(load("name = \"sluis.gemeente.example\"").is_ok());
        for bad in [
            "name = \"\"",
            "name = \"two words\"",
            "name = \"a+b\"",
            "name = \"a\\nstate active\"",
            "name = \"ok\"\npurposes = [\"return\", \"return\\ncategory medical\"]",
            "name = \"ok\"\npurposes = [\"Return\"]",
        ] {
            let e = load(bad).err().unwrap_or_else(|| panic!("{bad}: accepted"));
            assert!(matches!(e, ConfigError::Invalid { .. }), "{bad}: {e}");
        }
    }
}
