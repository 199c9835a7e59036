//! A ready-to-run node directory for development and the demo: dev PKI,
//! keys, policy, configuration with one participant per LVV role, and the
//! SQLite database. `sluis init` and `sluis serve --dev` write it.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::gateway::vault::Keys;
use crate::init::Layout;
use crate::net::pki;
use crate::policy::DEFAULT_POLICY;
use crate::store::Store;

pub use crate::init::{CONFIG_FILE, InitError};

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

/// The name a dev node has unless `sluis init --dev --name` gives one.
pub const DEV_NAME: &str = "sluis-dev.example";

/// Writes a complete dev node into `dir` and returns its config path.
pub async fn init(dir: &Path, listen: SocketAddr) -> Result<PathBuf, InitError> {
    init_named(dir, listen, DEV_NAME).await
}

/// [`init`] with the node's name (`node.name`: the origin of its
/// checkpoints and receipts, and its node id in a federation trial, e.g.
/// `gm0344`). Errors: `InitError::Name` for a name a node cannot have
/// (as `sluis init --name` checks it), and those of [`init`].
pub async fn init_named(dir: &Path, listen: SocketAddr, name: &str) -> Result<PathBuf, InitError> {
    let config_path = dir.join(CONFIG_FILE);
    if config_path.exists() {
        return Err(InitError::Exists(dir.to_path_buf()));
    }
    if !crate::config::valid_node_name(name) || !crate::tlog::note::valid_key_name(name) {
        return Err(InitError::Name);
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
    std::fs::write(&config_path, config_text(name, listen, &officer_public))
        .map_err(io(&config_path))?;
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

/// How far a dev node's probes port is from its own: far enough that dev
/// nodes on consecutive ports (7443, 7444, 7445 for a federation trial)
/// do not take each other's probes port (7444 would be the first's probes
/// and the second's own with an offset of one).
pub const DEV_PROBES_OFFSET: u16 = 1000;

/// The probes listener of a dev node: the node's port plus
/// [`DEV_PROBES_OFFSET`] (minus it, for a port above 64535), or any free
/// port when the node's is chosen at start.
fn dev_probes(listen: SocketAddr) -> SocketAddr {
    let port = match listen.port() {
        0 => 0,
        p => p
            .checked_add(DEV_PROBES_OFFSET)
            .unwrap_or(p - DEV_PROBES_OFFSET),
    };
    SocketAddr::new([127, 0, 0, 1].into(), port)
}

/// The configuration of a dev node: its own paths and participants, and
/// every other setting at its default (see [`crate::init::config_text`]).
fn config_text(name: &str, listen: SocketAddr, officer_key: &str) -> String {
    let mut s = crate::init::config_text(&Layout {
        made_by: "development node made by `sluis init --dev`",
        name,
        listen,
        database: "sqlite://sluis.db",
        keys_dir: "keys",
        cert: "pki/node.pem",
        key: "pki/node.key",
        client_ca: "pki/ca.pem",
        crls: &["pki/crl.pem"],
    });
    let activities: String = crate::model::DEFAULT_PURPOSES
        .iter()
        .map(|p| {
            format!("{p} = \"https://register.gemeente.example/verwerkingsactiviteiten/lvv-{p}\"\n")
        })
        .collect();
    let _ = write!(
        s,
        r#"
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
{activities}"#,
        probes = dev_probes(listen),
    );
    s.push_str(
        "\n# Participants: organisations that may call this node. A client certificate\n\
         # is recognised by its subject serialNumber (OIN, as on PKIoverheid\n\
         # certificates) or by a pinned `spki_sha256` fingerprint.\n",
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
        let text = config_text(DEV_NAME, dev_listen(), &officer);
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
            Some("127.0.0.1:8443".parse().unwrap())
        );
        assert_eq!(
            written.processing_log.officer_key.as_deref(),
            Some(officer.as_str())
        );
        assert_eq!(
            written.processing_log.activities.len(),
            crate::model::DEFAULT_PURPOSES.len(),
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
