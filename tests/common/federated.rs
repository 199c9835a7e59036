//! Federated nodes for integration tests: each made by `sluis init` with its
//! own CA and one node certificate (server and client authentication, one
//! key, the key the directory pins), joined by a directory signed on the fly.

use sluis::config::Config;
use sluis::dev::init;
use sluis::federation::directory::{self, Directory, DirectoryNode, Host};
use sluis::federation::{FederationConfig, FederationKey};
use sluis::net::pki::CertAuthority;
use sluis::net::x509;
use sluis::node::Node;
use sluis::rpc::Clients;
use sluis::tlog::AccessRecord;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A node folder before it starts.
pub struct Prepared {
    pub id: &'static str,
    pub dir: tempfile::TempDir,
    pub config: Config,
    pub ca: CertAuthority,
    pub node_cert_der: Vec<u8>,
    pub federation_port: u16,
    /// The participants the directory says it hosts: (id, role).
    pub hosts: Vec<(&'static str, &'static str)>,
}

pub struct Started {
    pub id: &'static str,
    pub dir: tempfile::TempDir,
    pub node: Node,
    /// The configuration it started with (its `[federation]` is not in
    /// the folder's sluis.toml until [`Started::write_config`]).
    pub config: Config,
}

impl Started {
    pub async fn client(&self, participant: &str) -> Clients {
        let channel = super::channel_as(self.node.local_addr, self.dir.path(), participant)
            .await
            .expect("connect");
        Clients::new(channel)
    }

    /// The records with this request id.
    pub async fn records(&self, request_id: &str) -> Vec<AccessRecord> {
        self.node
            .store
            .access_log(0, 100_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.request_id == request_id)
            .map(|r| AccessRecord::decode(&r.record).expect("access record decodes"))
            .collect()
    }

    /// Writes `config` as the folder's sluis.toml (for a reload to read),
    /// returning its path.
    pub fn write_config(&self, config: &Config) -> std::path::PathBuf {
        let path = self.dir.path().join(init::CONFIG_FILE);
        std::fs::write(&path, toml::to_string(config).unwrap()).unwrap();
        path
    }

    /// Writes `d`, signed, as this node's directory and reloads it.
    pub async fn install(&self, key: &FederationKey, d: &Directory) {
        std::fs::write(
            self.dir.path().join("federation.note"),
            directory::sign(d, key).unwrap(),
        )
        .unwrap();
        self.node
            .reload_federation()
            .await
            .expect("reload")
            .expect("in a federation");
    }
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0).unwrap().format(&Rfc3339).unwrap()
}

/// A federation key for network "lvv", in its own folder.
pub fn federation_key() -> (tempfile::TempDir, FederationKey) {
    let keys = tempfile::tempdir().unwrap();
    FederationKey::generate("lvv", &keys.path().join("federation.key")).unwrap();
    let key = FederationKey::load(&keys.path().join("federation.key")).unwrap();
    (keys, key)
}

/// `sluis init` into a folder, named `id`, with a node certificate from
/// its CA that is both its server certificate (`tls.cert`) and its
/// certificate for calling peers.
pub async fn prepare(id: &'static str, hosts: Vec<(&'static str, &'static str)>) -> Prepared {
    let dir = tempfile::tempdir().unwrap();
    let path = init::init(dir.path(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    super::use_test_database(dir.path()).await;
    let mut config = Config::load(&path).unwrap();
    config.node.name = id.to_string();
    let pki = dir.path().join("pki");
    let ca = CertAuthority::from_pem(
        &std::fs::read_to_string(pki.join("ca.pem")).unwrap(),
        &std::fs::read_to_string(pki.join("ca.key")).unwrap(),
    )
    .unwrap();
    let node_cert = ca
        .issue_node(
            &format!("sluis node {id}"),
            &["localhost".into(), "127.0.0.1".into()],
        )
        .unwrap();
    std::fs::write(dir.path().join("node.pem"), &node_cert.cert_pem).unwrap();
    std::fs::write(dir.path().join("node.key"), &node_cert.key_pem).unwrap();
    let tls = config.tls_files();
    std::fs::write(&tls.cert, &node_cert.cert_pem).unwrap();
    std::fs::write(&tls.key, &node_cert.key_pem).unwrap();
    config.tls.allow_missing_crl = true;
    Prepared {
        id,
        dir,
        config,
        ca,
        node_cert_der: node_cert.cert_der,
        federation_port: super::free_port(),
        hosts,
    }
}

fn log_key(p: &Prepared) -> String {
    let keys = sluis::gateway::vault::Keys::load(&p.config.path(&p.config.node.keys_dir)).unwrap();
    sluis::tlog::note::verifier_key(p.id, &keys.signing_public_key())
}

/// The directory entry of a prepared node.
pub fn entry(p: &Prepared) -> DirectoryNode {
    DirectoryNode {
        id: p.id.into(),
        municipality_code: format!("GM{}", &p.id[2..]),
        municipality: format!("Gemeente {}", p.id),
        endpoint: format!("127.0.0.1:{}", p.federation_port),
        server_name: "localhost".into(),
        tls_spki_sha256: x509::spki_sha256_hex(&p.node_cert_der).unwrap(),
        tls_ca_sha256: x509::cert_sha256_hex(&p.ca.cert_der()),
        log_key: log_key(p),
        witness_key: None,
        hosts: p
            .hosts
            .iter()
            .map(|(participant, role)| Host {
                participant: (*participant).into(),
                role: (*role).into(),
            })
            .collect(),
    }
}

/// A directory of `nodes`, valid from an hour ago for a year.
pub fn directory_of(nodes: &[DirectoryNode], serial: u64) -> Directory {
    let now = OffsetDateTime::now_utc();
    Directory {
        network: "lvv".into(),
        serial,
        not_before: rfc3339(now - time::Duration::hours(1)),
        not_after: rfc3339(now + time::Duration::days(365)),
        nodes: nodes.to_vec(),
    }
}

/// Joins the prepared nodes under one directory (serial 1): each trusts
/// the others' CAs as peer CAs (`peer_ca` of node i is `peer_cas(i)`'s
/// choice), listens for peers, and starts.
pub async fn start(
    mut prepared: Vec<Prepared>,
    key: &FederationKey,
    peer_cas: impl Fn(usize, &[String]) -> String,
) -> (Vec<Started>, Vec<DirectoryNode>) {
    let entries: Vec<DirectoryNode> = prepared.iter().map(entry).collect();
    let signed = directory::sign(&directory_of(&entries, 1), key).unwrap();
    let cas: Vec<String> = prepared
        .iter()
        .map(|p| std::fs::read_to_string(p.dir.path().join("pki/ca.pem")).unwrap())
        .collect();
    for (i, p) in prepared.iter_mut().enumerate() {
        std::fs::write(p.dir.path().join("federation.note"), &signed).unwrap();
        std::fs::write(p.dir.path().join("peers.pem"), peer_cas(i, &cas)).unwrap();
        p.config.federation = Some(FederationConfig {
            directory: "federation.note".into(),
            verifier_key: key.verifier_key(),
            listen: Some(format!("127.0.0.1:{}", p.federation_port).parse().unwrap()),
            client_cert: "node.pem".into(),
            client_key: "node.key".into(),
            peer_ca: "peers.pem".into(),
            peer_crl: vec![],
            pseudonym_key: None,
            witness_key: None,
            witness_interval_secs: 60,
            report_cosignatures: None,
        });
    }
    let mut started = Vec::new();
    for p in prepared {
        let node = Node::start(&p.config).await.expect("start node");
        started.push(Started {
            id: p.id,
            dir: p.dir,
            node,
            config: p.config,
        });
    }
    (started, entries)
}

/// Every other node's CA: the usual `peer_ca`.
pub fn others(i: usize, cas: &[String]) -> String {
    cas.iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(_, c)| c.as_str())
        .collect()
}
