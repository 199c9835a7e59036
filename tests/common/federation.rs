//! Three federation nodes on 127.0.0.1, each made by `sluis init` with its
//! own CA, joined by one signed directory and one federation pseudonym key
//! (`tests/federation.rs`, `tests/referral.rs`). A hosts IND, B the
//! municipality of the dev registry, C the NGO and a second municipality
//! registered there.

use std::path::PathBuf;

use sluis::config::{Config, Participant};
use sluis::dev::init;
use sluis::federation::directory::{Directory, DirectoryNode, Host};
use sluis::federation::pseudonym::FederationPseudonyms;
use sluis::federation::{FederationConfig, FederationKey, directory};
use sluis::net::pki::{CertAuthority, ClientCertSpec};
use sluis::net::x509;
use sluis::node::Node;
use sluis::rpc::Clients;
use sluis::rpc::proto::v1 as pb;
use sluis::tlog::AccessRecord;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tonic::Request;

use super::{GEMEENTE, NGO, with_actor};

/// The municipality C hosts besides the NGO: where B's cases are referred.
pub const AMSTERDAM: &str = "gemeente-amsterdam";

pub const IND: &str = "ind";
/// Node ids (each node's `node.name`).
pub const A: &str = "gm0344";
pub const B: &str = "gm0363";
pub const C: &str = "gm0518";

/// A node folder before it starts: its config, CA, node certificate.
pub struct Prepared {
    pub id: &'static str,
    pub dir: tempfile::TempDir,
    pub config: Config,
    pub ca: CertAuthority,
    pub node_cert_der: Vec<u8>,
    pub federation_port: u16,
    /// Its witness verifier key (the directory's `witness-key`).
    pub witness_key: String,
}

pub struct Started {
    pub id: &'static str,
    pub dir: tempfile::TempDir,
    pub node: Node,
    pub config: Config,
}

impl Started {
    /// Runs SQL (one text for both backends) on the node's database over a
    /// connection of its own, as someone with database access would.
    pub async fn sql(&self, sql: &str) {
        super::exec_sql(&self.config.database_url().unwrap(), sql, sql).await;
    }

    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pki/ca.pem")).unwrap()
    }

    pub async fn client(&self, participant: &str) -> Clients {
        let channel = super::channel_as(self.node.local_addr, self.dir.path(), participant)
            .await
            .expect("connect");
        Clients::new(channel)
    }

    /// The records with this request id (written before the answer left).
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

    /// The one record of this request id.
    pub async fn record(&self, request_id: &str) -> AccessRecord {
        let mut rs = self.records(request_id).await;
        assert_eq!(rs.len(), 1, "one record of {request_id} on {}", self.id);
        rs.remove(0)
    }

    pub fn directory_path(&self) -> PathBuf {
        self.dir.path().join("federation.note")
    }
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0).unwrap().format(&Rfc3339).unwrap()
}

pub async fn prepare(id: &'static str) -> Prepared {
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
    // One node key both ways: peers pin it on the calls this node makes
    // and on its federation listener's certificate.
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
    if id == C {
        // A second municipality, registered on C with a certificate of C's CA.
        let oin = "00000001000000000099";
        let cert = ca
            .issue_client(&ClientCertSpec::new("Gemeente Amsterdam", Some(oin)))
            .unwrap();
        let clients = pki.join("clients");
        std::fs::write(clients.join(format!("{AMSTERDAM}.pem")), &cert.cert_pem).unwrap();
        std::fs::write(clients.join(format!("{AMSTERDAM}.key")), &cert.key_pem).unwrap();
        config.participants.push(Participant {
            id: AMSTERDAM.into(),
            name: "Gemeente Amsterdam".into(),
            role: "municipality".into(),
            oin: Some(oin.into()),
            spki_sha256: None,
        });
    }
    let witness_key =
        sluis::federation::witness::WitnessSigner::generate(id, &dir.path().join("witness.key"))
            .unwrap();
    Prepared {
        witness_key,
        id,
        dir,
        config,
        ca,
        node_cert_der: node_cert.cert_der,
        federation_port: super::free_port(),
    }
}

pub fn log_key(p: &Prepared) -> String {
    let keys = sluis::gateway::vault::Keys::load(&p.config.path(&p.config.node.keys_dir)).unwrap();
    sluis::tlog::note::verifier_key(p.id, &keys.signing_public_key())
}

/// The directory of the three nodes: A hosts IND, B the municipality, C
/// the NGO.
pub fn directory_of(
    nodes: &[&Prepared],
    serial: u64,
    from: OffsetDateTime,
    until: OffsetDateTime,
) -> Directory {
    let hosts = |id: &str| match id {
        A => vec![Host {
            participant: IND.into(),
            role: "ind".into(),
        }],
        B => vec![Host {
            participant: GEMEENTE.into(),
            role: "municipality".into(),
        }],
        _ => vec![
            Host {
                participant: AMSTERDAM.into(),
                role: "municipality".into(),
            },
            Host {
                participant: NGO.into(),
                role: "ngo".into(),
            },
        ],
    };
    Directory {
        network: "lvv".into(),
        serial,
        not_before: rfc3339(from),
        not_after: rfc3339(until),
        nodes: nodes
            .iter()
            .map(|p| DirectoryNode {
                id: p.id.into(),
                municipality_code: format!("GM{}", &p.id[2..]),
                municipality: format!("Gemeente {}", p.id),
                endpoint: format!("127.0.0.1:{}", p.federation_port),
                server_name: "localhost".into(),
                tls_spki_sha256: x509::spki_sha256_hex(&p.node_cert_der).unwrap(),
                tls_ca_sha256: x509::cert_sha256_hex(&p.ca.cert_der()),
                log_key: log_key(p),
                witness_key: Some(p.witness_key.clone()),
                hosts: hosts(p.id),
            })
            .collect(),
    }
}

/// Three nodes with their own CAs, each trusting the others' CAs for
/// federation, started with directory serial 1 (valid a year) and one
/// federation pseudonym key, which the operator made and copied to each.
pub async fn network(key: &FederationKey) -> (Vec<Started>, Vec<DirectoryNode>) {
    let k_fed = tempfile::tempdir().unwrap();
    FederationPseudonyms::generate(&k_fed.path().join("pseudonym.key")).unwrap();
    let mut prepared = vec![prepare(A).await, prepare(B).await, prepare(C).await];
    let now = OffsetDateTime::now_utc();
    let d = directory_of(
        &prepared.iter().collect::<Vec<_>>(),
        1,
        now - time::Duration::hours(1),
        now + time::Duration::days(365),
    );
    let signed = directory::sign(&d, key).unwrap();
    let cas: Vec<String> = prepared
        .iter()
        .map(|p| std::fs::read_to_string(p.dir.path().join("pki/ca.pem")).unwrap())
        .collect();
    for (i, p) in prepared.iter_mut().enumerate() {
        std::fs::write(p.dir.path().join("federation.note"), &signed).unwrap();
        let peers: String = cas
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, c)| c.as_str())
            .collect();
        std::fs::write(p.dir.path().join("peers.pem"), peers).unwrap();
        std::fs::copy(
            k_fed.path().join("pseudonym.key"),
            p.dir.path().join("pseudonym.key"),
        )
        .unwrap();
        p.config.federation = Some(FederationConfig {
            directory: "federation.note".into(),
            verifier_key: key.verifier_key(),
            listen: Some(format!("127.0.0.1:{}", p.federation_port).parse().unwrap()),
            client_cert: "node.pem".into(),
            client_key: "node.key".into(),
            peer_ca: "peers.pem".into(),
            peer_crl: vec![],
            pseudonym_key: Some("pseudonym.key".into()),
            // Each node witnesses the others; tests start rounds with
            // `Node::witness_now`.
            witness_key: Some("witness.key".into()),
            witness_interval_secs: 3600,
            report_cosignatures: None,
        });
        p.config.tls.allow_missing_crl = true;
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
    (started, d.nodes)
}

pub fn get_case(
    case_id: &str,
    purpose: &str,
    holding: Option<&str>,
) -> Request<pb::GetCaseRequest> {
    let mut r = with_actor(pb::GetCaseRequest {
        subject: Some(pb::get_case_request::Subject::CaseId(case_id.into())),
        purpose: purpose.into(),
        categories: vec![
            pb::Category::ResidenceProcedure as i32,
            pb::Category::Perspective as i32,
            pb::Category::Medical as i32,
        ],
        emergency_justification: String::new(),
    });
    if let Some(h) = holding {
        r.metadata_mut()
            .insert("x-sluis-holding-node", h.parse().unwrap());
    }
    r
}

/// A request as a node sends it to a peer, asserting `participant` in `role`.
pub fn asserting<T>(mut r: Request<T>, participant: &str, role: &str) -> Request<T> {
    r.metadata_mut()
        .insert("x-sluis-on-behalf-of", participant.parse().unwrap());
    r.metadata_mut()
        .insert("x-sluis-on-behalf-of-role", role.parse().unwrap());
    r
}

pub fn cats(cs: &[pb::Category]) -> Vec<i32> {
    cs.iter().map(|c| *c as i32).collect()
}

pub async fn write_directory(nodes: &[&Started], key: &FederationKey, d: &Directory) {
    let signed = directory::sign(d, key).unwrap();
    for n in nodes {
        std::fs::write(n.directory_path(), &signed).unwrap();
        n.node
            .reload_federation()
            .await
            .expect("reload")
            .expect("in a federation");
    }
}

/// The same nodes under a new serial, valid from an hour ago until `until`.
pub fn reissue(nodes: &[DirectoryNode], serial: u64, until: OffsetDateTime) -> Directory {
    Directory {
        network: "lvv".into(),
        serial,
        not_before: rfc3339(OffsetDateTime::now_utc() - time::Duration::hours(1)),
        not_after: rfc3339(until),
        nodes: nodes.to_vec(),
    }
}

/// A federation key made for the test, and the three nodes started under
/// a directory it signed.
pub async fn started_network() -> (FederationKey, Vec<Started>, Vec<DirectoryNode>) {
    let keys = tempfile::tempdir().unwrap();
    FederationKey::generate("lvv", &keys.path().join("federation.key")).unwrap();
    let key = FederationKey::load(&keys.path().join("federation.key")).unwrap();
    let (nodes, dir_nodes) = network(&key).await;
    (key, nodes, dir_nodes)
}

/// A case the municipality registers at `n` (a full one, see
/// `common::register`), with the migrant's consent that IND receives the
/// perspective for legalisation: the municipality's client, the case id and
/// its pseudonym for the case.
pub async fn case_at(n: &Started) -> (Clients, String, String) {
    let mut gemeente = n.client(GEMEENTE).await;
    let (case_id, pseudonym) = super::register(&mut gemeente).await;
    gemeente
        .consents
        .grant_consent(with_actor(pb::GrantConsentRequest {
            request_id: String::new(),
            case_id: case_id.clone(),
            recipients: vec![super::role("ind")],
            categories: vec![pb::Category::Perspective as i32],
            purposes: vec!["legalisation".into()],
            valid_from: None,
            valid_until: None,
            evidence_ref: "DMS-1".into(),
        }))
        .await
        .unwrap();
    (gemeente, case_id, pseudonym)
}

/// The migrant's consent that Amsterdam (on C) receives the whole case,
/// for its referral there, recorded by the case's owner: its id.
pub async fn consent_to_move(owner: &mut Clients, case_id: &str) -> String {
    owner
        .consents
        .grant_consent(with_actor(pb::GrantConsentRequest {
            request_id: String::new(),
            case_id: case_id.into(),
            recipients: vec![super::participant(AMSTERDAM)],
            categories: (1..=8).collect(),
            purposes: vec!["case_consultation".into()],
            valid_from: None,
            valid_until: None,
            evidence_ref: "DMS-verhuizing-7".into(),
        }))
        .await
        .expect("the consent to the referral")
        .into_inner()
        .consent
        .expect("the consent")
        .consent_id
}

/// A channel to `to`'s federation listener with `from`'s node certificate:
/// what `from` itself would open when it calls `to`.
pub async fn node_channel(from: &Started, to: &Started) -> tonic::transport::Channel {
    let pem = sluis::net::client::ClientPem {
        ca: to.ca_pem(),
        identity: Some((
            std::fs::read_to_string(from.dir.path().join("node.pem")).unwrap(),
            std::fs::read_to_string(from.dir.path().join("node.key")).unwrap(),
        )),
    };
    sluis::net::client::connect(to.node.federation_addr.unwrap(), "localhost", &pem)
        .await
        .unwrap()
}

/// One witnessing round of `witness` on `peer`: what came of it.
pub async fn witness_round(
    witness: &Started,
    peer: &str,
) -> sluis::federation::witness::WitnessOutcome {
    witness
        .node
        .witness_now()
        .await
        .into_iter()
        .find(|(n, _)| n == peer)
        .map(|(_, o)| o)
        .expect("the peer is in the directory")
}
