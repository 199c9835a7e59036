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
    std::fs::write(&config_path, config_text(listen)).map_err(io(&config_path))?;
    let config = Config::load(&config_path)?;
    let (store, _) = Store::open_sqlite(&config.sqlite_path()?).await?;
    store.close().await;
    Ok(config_path)
}

fn config_text(listen: SocketAddr) -> String {
    let mut s = String::new();
    let purposes: Vec<String> = DEFAULT_PURPOSES
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect();
    let _ = write!(
        s,
        r#"# sluis node configuration (development node made by `sluis init`).
# Relative paths are resolved against this file's folder.

[node]
# Origin name in signed notes (consent receipts, log checkpoints).
name = "sluis-dev.example"
listen = "{listen}"
keys_dir = "keys"
database = "sqlite://sluis.db"
# The Cedar policy: which role may receive which category for which purpose.
policy = "policy.cedar"
purposes = [{purposes}]
# The access log signs a checkpoint at least this often while entries arrive.
checkpoint_interval_ms = 1000

[tls]
cert = "pki/node.pem"
key = "pki/node.key"
client_ca = "pki/ca.pem"
crl = ["pki/crl.pem"]
handshake_timeout_ms = 10000
max_connection_age_secs = 3600

[limits]
max_message_bytes = 1048576
max_handshakes = 1024

# Participants: organisations that may call this node. A client certificate
# is recognised by its subject serialNumber (OIN, as on PKIoverheid
# certificates) or by a pinned `spki_sha256` fingerprint.
"#,
        purposes = purposes.join(", ")
    );
    for (id, name, role, oin) in DEV_PARTICIPANTS {
        let _ = write!(
            s,
            "\n[[participant]]\nid = \"{id}\"\nname = \"{name}\"\nrole = \"{role}\"\noin = \"{oin}\"\n"
        );
    }
    s
}
