//! Federation: per-municipality nodes that form one network.
//!
//! What it promises (ARCHITECTURE.md, "Federation", has the whole design):
//!
//! - **One signed directory decides who is in the network.** The nodes,
//!   how each is recognised (its node certificate's key, its CA), its log's
//!   checkpoint key, and the participants it is home to, signed by the
//!   federation key ([`directory`]). A node believes nothing about a peer
//!   that the directory it runs does not say.
//! - **Fail closed on time.** Outside the running directory's validity
//!   period, [`Federation::current`] refuses, so no federated call is made
//!   or answered; local traffic is untouched.
//! - **Live replacement, never backwards.** `Node::reload_federation` reads
//!   the file again (on SIGHUP) through [`Federation::offer`], keeps its
//!   serial in the database, then [`Federation::take`]s it; a directory that
//!   does not verify, does not name this node, is outside its validity
//!   (expired or not valid yet), or has a lower serial than the running one
//!   (or than the highest the node has run with) is refused and the running
//!   one kept — apart from the rest of the reload, which a bad directory
//!   does not hold back.
//!
//! It exposes the directory format and its signing ([`directory`]), the
//! operator's key ([`FederationKey`]), the node's `[federation]`
//! configuration ([`FederationConfig`]) and the running directory
//! ([`Federation`]).

pub mod directory;
pub mod pseudonym;
pub mod witness;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};

use crate::config::Participant;
use crate::model::clock::rfc3339;
use crate::net::identity::Registry;
use crate::net::peer::{PeerTls, PeerTlsError, Session};
use crate::tlog::note;
use directory::{Directory, DirectoryError, Validity};

/// A node's `[federation]` section.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationConfig {
    /// The signed directory file (a C2SP signed note), relative to the
    /// configuration file. Replace the file and send SIGHUP to take a new one.
    pub directory: PathBuf,
    /// The federation's verifier key, `<network>+<key id>+<base64 key>`, as
    /// `sluis federation keygen` printed it.
    pub verifier_key: String,
    /// Where peer nodes call this node (mTLS with their node certificates),
    /// e.g. "0.0.0.0:7445"; none: this node only forwards, it serves no
    /// peer. The server certificate is the node's own (`[tls]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<std::net::SocketAddr>,
    /// This node's certificate chain for calling peers (PEM; the directory
    /// pins its key as this node's `tls_spki_sha256`).
    pub client_cert: PathBuf,
    /// Its private key (PEM).
    pub client_key: PathBuf,
    /// The CA certificates of the peer nodes (PEM, one or more): they
    /// issue the peers' server certificates and node certificates.
    pub peer_ca: PathBuf,
    /// CRLs of the peer CAs (PEM).
    #[serde(default)]
    pub peer_crl: Vec<PathBuf>,
    /// The federation's pseudonym key `K_fed` (made by `sluis federation
    /// pseudonym-keygen`, handed to every node by the operator out of
    /// band). With it, recipients' pseudonyms are `pf1.` values the same on
    /// every node and across referrals; without it, this node's own `ps1.`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudonym_key: Option<PathBuf>,
    /// This node's witness key (made by `sluis federation witness-keygen`;
    /// the directory lists its verifier key as this node's `witness-key`).
    /// With it the node cosigns its peers' checkpoints every
    /// `witness_interval_secs`; without it, it does not witness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witness_key: Option<PathBuf>,
    /// Seconds between witnessing rounds (each peer's latest checkpoint
    /// fetched, checked and cosigned); default 60.
    #[serde(default = "witness::default_interval_secs")]
    pub witness_interval_secs: u64,
    /// How many of a node's witnesses (the other nodes' `witness-key`s in
    /// the directory) must have cosigned the checkpoint a subject access
    /// report proves that node's lines against, for those lines to count
    /// as confirmed by witnesses; default a majority of them. 0: not
    /// required (the report still says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_cosignatures: Option<u32>,
}

/// Why the federation cannot serve, or a directory was not taken.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    #[error("cannot read the federation directory {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the federation directory {path} is refused: {source}")]
    Directory {
        path: PathBuf,
        source: DirectoryError,
    },
    #[error(
        "the federation directory does not name this node '{node}': ask the network's operator for one that does"
    )]
    NotListed { node: String },
    #[error(
        "the federation directory offered has serial {offered}, older than the running one ({running}); keeping the running one"
    )]
    Older { running: u64, offered: u64 },
    #[error(
        "the federation directory has serial {offered}, older than serial {seen} this node has already run with: put the newest signed directory in place (a directory never goes back, so that old pins do not come back)"
    )]
    BehindSeen { seen: u64, offered: u64 },
    #[error(
        "the federation directory (serial {serial}) expired at {at}: federated calls are refused until a newer one is installed"
    )]
    Expired { serial: u64, at: String },
    #[error(
        "the federation directory (serial {serial}) is valid only from {from}: federated calls are refused until then"
    )]
    NotYetValid { serial: u64, from: String },
    /// A reload offered a directory whose validity has ended: the
    /// running one stays.
    #[error(
        "the federation directory offered (serial {serial}) expired at {at}: not taken, the running one stays; install a directory valid now and send SIGHUP again"
    )]
    OfferedExpired { serial: u64, at: String },
    /// A reload offered a directory whose validity has not begun: the
    /// running one stays.
    #[error(
        "the federation directory offered (serial {serial}) is valid only from {from}: not taken, the running one stays; send SIGHUP again once it is valid"
    )]
    OfferedNotYetValid { serial: u64, from: String },
    #[error("the federation key {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("{0}")]
    PseudonymKey(String),
    /// The database did not keep the offered directory's serial, so it is
    /// not taken: a restart could otherwise go back to an older one.
    #[error(
        "the federation directory (serial {serial}) is not taken: its serial could not be kept in the database ({reason}); the running directory stays"
    )]
    Unrecorded { serial: u64, reason: String },
    /// The files for calling peers (`peer_ca`, `peer_crl`, `client_cert`,
    /// `client_key`) cannot be used.
    #[error("[federation] TLS files: {0}")]
    PeerTls(#[from] crate::net::tls::TlsError),
}

/// A verified directory, as the node runs it.
#[derive(Debug)]
pub struct Running {
    pub directory: Directory,
    pub validity: Validity,
}

/// The running directory of a node, replaced whole on reload, and what
/// the node needs to call its peers. No `Debug`: it holds the node
/// certificate's private key.
pub struct Federation {
    node: String,
    path: PathBuf,
    verifier_key: String,
    running: RwLock<Arc<Running>>,
    /// The peer nodes as the federation listener's accept loop knows them
    /// (by their pinned keys), replaced with the directory.
    peers: tokio::sync::watch::Sender<Arc<Registry>>,
    /// This node's certificate and key and the peers' CAs and CRLs, for
    /// calling; the pin comes from the running directory per call. Replaced
    /// on reload ([`Federation::set_peer_tls`]).
    tls: RwLock<Arc<PeerTls>>,
    /// `K_fed`, if configured.
    pseudonyms: Option<pseudonym::FederationPseudonyms>,
    /// This node's witness key, if configured.
    witness: Option<witness::WitnessSigner>,
    /// Between witnessing rounds.
    witness_interval: std::time::Duration,
    /// `report_cosignatures`, if configured.
    report_cosignatures: Option<u32>,
    /// Whether a peer's log forked or went back (an alarm raised since
    /// start, or kept from before): the node's health says so.
    alarmed: std::sync::atomic::AtomicBool,
    /// One witnessing round at a time.
    pub(crate) witnessing: tokio::sync::Mutex<()>,
}

impl Federation {
    /// Loads and verifies the directory for node `node`. A directory outside
    /// its validity period loads (the node serves its own participants) but
    /// [`Federation::current`] refuses it; the node says so once here.
    pub fn load(
        node: &str,
        config: &FederationConfig,
        base_dir: &Path,
    ) -> Result<Federation, FederationError> {
        let path = base_dir.join(&config.directory);
        let running = read(node, &path, &config.verifier_key)?;
        let tls = Federation::peer_tls(config, base_dir)?;
        let pseudonyms = config
            .pseudonym_key
            .as_ref()
            .map(|p| pseudonym::FederationPseudonyms::load(&base_dir.join(p)))
            .transpose()
            .map_err(|e| FederationError::PseudonymKey(e.to_string()))?;
        let witness = config
            .witness_key
            .as_ref()
            .map(|p| witness::WitnessSigner::load(node, &base_dir.join(p)))
            .transpose()?;
        let (peers, _) = tokio::sync::watch::channel(peer_registry(&running.directory));
        let f = Federation {
            pseudonyms,
            witness,
            witness_interval: std::time::Duration::from_secs(config.witness_interval_secs.max(1)),
            report_cosignatures: config.report_cosignatures,
            alarmed: std::sync::atomic::AtomicBool::new(false),
            witnessing: tokio::sync::Mutex::new(()),
            node: node.to_string(),
            path,
            verifier_key: config.verifier_key.clone(),
            running: RwLock::new(Arc::new(running)),
            peers,
            tls: RwLock::new(Arc::new(tls)),
        };
        if let Some(w) = &f.witness {
            let vkey = w.verifier_key();
            let running = f.running.read().unwrap_or_else(|p| p.into_inner()).clone();
            let listed = running
                .directory
                .node(node)
                .and_then(|n| n.witness_key.as_deref());
            if listed != Some(vkey.as_str()) {
                tracing::warn!(
                    witness_key = %vkey,
                    "the federation directory does not list this node's witness key: peers refuse its cosignatures until the network's operator lists it as this node's witness_key"
                );
            }
        }
        match f.current(crate::model::clock::now_millis()) {
            Ok(r) => tracing::info!(
                serial = r.directory.serial,
                nodes = r.directory.nodes.len(),
                until = %r.directory.not_after,
                "federation directory loaded"
            ),
            Err(e) => tracing::warn!(error = %e, "federation directory loaded"),
        }
        Ok(f)
    }

    /// This node's side of calls to peers as `config` names it: the peer
    /// CAs and their CRLs, this node's certificate and key. Errors: a file
    /// that does not load ([`FederationError::PeerTls`]).
    pub fn peer_tls(
        config: &FederationConfig,
        base_dir: &Path,
    ) -> Result<PeerTls, FederationError> {
        let crls: Vec<PathBuf> = config.peer_crl.iter().map(|p| base_dir.join(p)).collect();
        Ok(PeerTls::load(
            &base_dir.join(&config.peer_ca),
            &crls,
            &base_dir.join(&config.client_cert),
            &base_dir.join(&config.client_key),
        )?)
    }

    /// Puts re-read peer CAs, CRLs and node certificate in force for the
    /// next call to a peer (calls under way keep their connection).
    pub fn set_peer_tls(&self, tls: PeerTls) {
        *self.tls.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(tls);
    }

    /// Reads the directory file again and checks it: it verifies, names
    /// this node, is valid at `now` (ms since the epoch) and has a serial
    /// no lower than the running one. The
    /// caller keeps its serial (`Node::reload_federation`, which keeps it in
    /// the database first) and then [`Federation::take`]s it; otherwise
    /// the running one stays. Errors say why.
    pub(crate) fn offer(&self, now: i64) -> Result<Running, FederationError> {
        let offered = read(&self.node, &self.path, &self.verifier_key)?;
        let serial = offered.directory.serial;
        if now >= offered.validity.not_after {
            return Err(FederationError::OfferedExpired {
                serial,
                at: rfc3339(offered.validity.not_after),
            });
        }
        if now < offered.validity.not_before {
            return Err(FederationError::OfferedNotYetValid {
                serial,
                from: rfc3339(offered.validity.not_before),
            });
        }
        let running = self.serial();
        if offered.directory.serial < running {
            return Err(FederationError::Older {
                running,
                offered: offered.directory.serial,
            });
        }
        Ok(offered)
    }

    /// Puts a directory [`Federation::offer`] checked in force (and its
    /// peers' pins in the federation listener), unless a newer one came in
    /// meanwhile. Returns the serial now running.
    pub(crate) fn take(&self, offered: Running) -> Result<u64, FederationError> {
        let mut running = self.running.write().unwrap_or_else(|p| p.into_inner());
        if offered.directory.serial < running.directory.serial {
            return Err(FederationError::Older {
                running: running.directory.serial,
                offered: offered.directory.serial,
            });
        }
        let serial = offered.directory.serial;
        self.peers.send_replace(peer_registry(&offered.directory));
        *running = Arc::new(offered);
        Ok(serial)
    }

    /// The running directory if it is valid at `now` (ms since the epoch).
    /// Errors: `Expired`, `NotYetValid` — every federated call is refused
    /// with them.
    pub fn current(&self, now: i64) -> Result<Arc<Running>, FederationError> {
        let r = self
            .running
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if now >= r.validity.not_after {
            return Err(FederationError::Expired {
                serial: r.directory.serial,
                at: rfc3339(r.validity.not_after),
            });
        }
        if now < r.validity.not_before {
            return Err(FederationError::NotYetValid {
                serial: r.directory.serial,
                from: rfc3339(r.validity.not_before),
            });
        }
        Ok(r)
    }

    /// `K_fed`, when the node is configured with it.
    pub(crate) fn pseudonyms(&self) -> Option<&pseudonym::FederationPseudonyms> {
        self.pseudonyms.as_ref()
    }

    /// This node's witness key, when it witnesses.
    pub(crate) fn witness(&self) -> Option<&witness::WitnessSigner> {
        self.witness.as_ref()
    }

    /// Between witnessing rounds (`witness_interval_secs`).
    pub(crate) fn witness_interval(&self) -> std::time::Duration {
        self.witness_interval
    }

    /// How many cosignatures a subject access report requires on node
    /// `node`'s checkpoint, of how many witnesses `directory` lists for it
    /// ([`witness::report_quorum`]).
    pub(crate) fn report_quorum(&self, directory: &Directory, node: &str) -> witness::Quorum {
        witness::report_quorum(directory, node, self.report_cosignatures)
    }

    /// Marks that a peer's log forked or went back.
    pub(crate) fn raise_alarm(&self) {
        self.alarmed
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Clears the mark once an operator acknowledged every alarm kept.
    pub(crate) fn settle_alarms(&self) {
        self.alarmed
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether a witness alarm was raised (since start, or kept from
    /// before it) and not yet acknowledged.
    pub fn alarmed(&self) -> bool {
        self.alarmed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// This node's id in the directory (its `node.name`).
    pub fn node_id(&self) -> &str {
        &self.node
    }

    /// The peers the federation listener recognises, following reloads.
    pub(crate) fn peers(&self) -> tokio::sync::watch::Receiver<Arc<Registry>> {
        self.peers.subscribe()
    }

    /// A channel to node `id` over mTLS with this node's certificate, its
    /// server checked against the peer CAs, the directory's server name
    /// and **the key the running directory pins for it** (`net::peer`), on
    /// a connection of its own (none is kept, so a reloaded directory's
    /// pins hold for the next call); and what that connection saw of the
    /// peer's refusals. Errors: the directory's validity, a node it does
    /// not name, an endpoint that does not resolve or answer, a TLS
    /// refusal either way (`Refused`).
    pub async fn channel(
        &self,
        id: &str,
    ) -> Result<(tonic::transport::Channel, Session), PeerError> {
        let running = self.current(crate::model::clock::now_millis())?;
        let node = running
            .directory
            .node(id)
            .ok_or_else(|| PeerError::Unknown {
                node: id.to_string(),
                serial: running.directory.serial,
            })?;
        let addr = tokio::net::lookup_host(&node.endpoint)
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| {
                PeerError::Unreachable(id.to_string(), "its endpoint does not resolve".into())
            })?;
        let tls = self.tls.read().unwrap_or_else(|p| p.into_inner()).clone();
        tls.connect(addr, &node.server_name, &node.tls_spki_sha256)
            .await
            .map_err(|e| match e {
                PeerTlsError::Unreachable(why) => PeerError::Unreachable(id.to_string(), why),
                refused => PeerError::Refused {
                    node: id.to_string(),
                    serial: running.directory.serial,
                    server_name: node.server_name.clone(),
                    source: refused,
                },
            })
    }

    /// The serial of the running directory, whatever its validity.
    pub fn serial(&self) -> u64 {
        self.running
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .directory
            .serial
    }
}

/// Why a peer cannot be called.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error(transparent)]
    Federation(#[from] FederationError),
    #[error("the federation directory (serial {serial}) names no node '{node}'")]
    Unknown { node: String, serial: u64 },
    #[error("node '{0}' cannot be reached ({1})")]
    Unreachable(String, String),
    /// The TLS session with the node was refused, by this node (its
    /// certificate, e.g. not the pinned key) or by the peer (this node's).
    #[error("node '{node}': {source}")]
    Refused {
        node: String,
        /// The directory whose pin and server name were checked.
        serial: u64,
        server_name: String,
        source: PeerTlsError,
    },
}

/// The peer nodes as registered callers of the federation listener, each
/// recognised by the key its certificate pins. This identity is the
/// connection's only: every request on it is refused unless it asserts a
/// participant the directory says that node hosts, and then it runs as that
/// participant (`rpc::federated`). The role is the one a node's operator
/// has — a municipality — and is never used to decide anything.
fn peer_registry(d: &Directory) -> Arc<Registry> {
    let participants: Vec<Participant> = d
        .nodes
        .iter()
        .map(|n| Participant {
            id: n.id.clone(),
            name: n.municipality.clone(),
            role: crate::model::Role::Municipality.as_str().to_string(),
            oin: None,
            spki_sha256: Some(n.tls_spki_sha256.clone()),
        })
        .collect();
    Arc::new(Registry::nodes(&participants))
}

fn read(node: &str, path: &Path, verifier_key: &str) -> Result<Running, FederationError> {
    let text = crate::files::read_to_string(path, crate::files::Kind::Note).map_err(|source| {
        FederationError::Read {
            path: path.to_path_buf(),
            source,
        }
    })?;
    let (directory, validity) =
        directory::verify(&text, verifier_key).map_err(|source| FederationError::Directory {
            path: path.to_path_buf(),
            source,
        })?;
    if directory.node(node).is_none() {
        return Err(FederationError::NotListed {
            node: node.to_string(),
        });
    }
    Ok(Running {
        directory,
        validity,
    })
}

/// The network operator's Ed25519 key (RFC 8032) that signs directories.
/// Kept by the operator, never on a node: a node holds only
/// [`FederationKey::verifier_key`].
pub struct FederationKey {
    network: String,
    pair: Ed25519KeyPair,
}

impl FederationKey {
    /// Makes a key for `network` and writes it to `path` (PKCS#8, base64,
    /// readable by its owner only; an existing file is never overwritten).
    /// Returns the verifier key nodes are configured with.
    pub fn generate(network: &str, path: &Path) -> Result<String, FederationError> {
        let err = |message: String| FederationError::Key {
            path: path.to_path_buf(),
            message,
        };
        if !note::valid_key_name(network) {
            return Err(err(
                "the network name is empty or holds a space, '+' or a control character".into(),
            ));
        }
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| err("the system random generator failed".into()))?;
        let text = format!("{network}\n{}", B64.encode(pkcs8.as_ref()));
        crate::gateway::vault::write_secret(path, &text).map_err(|e| err(e.to_string()))?;
        Ok(FederationKey::load(path)?.verifier_key())
    }

    /// Reads a key [`FederationKey::generate`] wrote: the network name on the
    /// first line, the PKCS#8 key in base64 on the second.
    pub fn load(path: &Path) -> Result<FederationKey, FederationError> {
        let err = |message: &str| FederationError::Key {
            path: path.to_path_buf(),
            message: message.to_string(),
        };
        let text = crate::files::read_to_string(path, crate::files::Kind::Key)
            .map_err(|e| err(&e.to_string()))?;
        let mut lines = text.lines();
        let (Some(network), Some(b64)) = (lines.next(), lines.next()) else {
            return Err(err(
                "expected the network name and a base64 PKCS#8 key on two lines (made by `sluis federation keygen`)",
            ));
        };
        let pkcs8 = B64
            .decode(b64.trim())
            .map_err(|_| err("the key line is not base64"))?;
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .map_err(|_| err("the key line is not an Ed25519 PKCS#8 key"))?;
        Ok(FederationKey {
            network: network.trim().to_string(),
            pair,
        })
    }

    /// The network this key signs for.
    pub fn network(&self) -> &str {
        &self.network
    }

    /// `<network>+<key id>+<base64 key>` (C2SP signed-note verifier key).
    pub fn verifier_key(&self) -> String {
        note::verifier_key(&self.network, &note::Signer::public_key(self))
    }
}

impl note::Signer for FederationKey {
    fn sign(&self, msg: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(msg).as_ref());
        out
    }

    fn public_key(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.pair.public_key().as_ref());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, key: &FederationKey, d: &Directory) {
        std::fs::write(dir.join("directory.note"), directory::sign(d, key).unwrap()).unwrap();
    }

    #[test]
    fn reload_takes_newer_keeps_running_on_older_or_broken() {
        let dir = tempfile::tempdir().unwrap();
        let vkey = FederationKey::generate("lvv", &dir.path().join("fed.key")).unwrap();
        let key = FederationKey::load(&dir.path().join("fed.key")).unwrap();
        assert_eq!(key.verifier_key(), vkey);
        let mut d = directory::tests::sample();
        d.serial = 5;
        write(dir.path(), &key, &d);
        let ca = crate::net::pki::CertAuthority::generate("peers").unwrap();
        let node = ca
            .issue_client(&crate::net::pki::ClientCertSpec::new("node", None))
            .unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
        std::fs::write(dir.path().join("node.pem"), &node.cert_pem).unwrap();
        std::fs::write(dir.path().join("node.key"), &node.key_pem).unwrap();
        let config = FederationConfig {
            directory: "directory.note".into(),
            verifier_key: vkey,
            listen: None,
            client_cert: "node.pem".into(),
            client_key: "node.key".into(),
            peer_ca: "ca.pem".into(),
            peer_crl: vec![],
            pseudonym_key: None,
            witness_key: None,
            witness_interval_secs: witness::default_interval_secs(),
            report_cosignatures: None,
        };
        let f = Federation::load("gm0344", &config, dir.path()).unwrap();
        assert!(matches!(
            Federation::load("gm9999", &config, dir.path()),
            Err(FederationError::NotListed { .. })
        ));
        let mid = 1_790_000_000_000; // 2026-09
        assert_eq!(f.current(mid).unwrap().directory.serial, 5);
        assert!(matches!(
            f.current(1_800_000_000_000),
            Err(FederationError::Expired { serial: 5, .. })
        ));
        assert!(matches!(
            f.current(1_700_000_000_000),
            Err(FederationError::NotYetValid { .. })
        ));

        d.serial = 4;
        write(dir.path(), &key, &d);
        assert!(matches!(
            f.offer(mid),
            Err(FederationError::Older {
                running: 5,
                offered: 4
            })
        ));
        std::fs::write(dir.path().join("directory.note"), "not a note").unwrap();
        assert!(matches!(
            f.offer(mid),
            Err(FederationError::Directory { .. })
        ));
        assert_eq!(f.serial(), 5);
        d.serial = 6;
        write(dir.path(), &key, &d);
        // Outside its validity, a newer directory is not taken either.
        assert!(matches!(
            f.offer(1_800_000_000_000),
            Err(FederationError::OfferedExpired { serial: 6, .. })
        ));
        assert!(matches!(
            f.offer(1_700_000_000_000),
            Err(FederationError::OfferedNotYetValid { serial: 6, .. })
        ));
        assert_eq!(f.serial(), 5);
        assert_eq!(f.take(f.offer(mid).unwrap()).unwrap(), 6);
        assert!(matches!(
            FederationKey::generate("lvv", &dir.path().join("fed.key")),
            Err(FederationError::Key { .. })
        ));
    }
}
