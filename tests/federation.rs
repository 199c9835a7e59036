//! Federation: three real nodes on 127.0.0.1, each made by `sluis init`
//! with its own CA, joined by one signed directory. A national participant
//! (IND, home node A) and an NGO (home node C) read a case held by node B
//! through their home nodes; B applies its own policy and consent,
//! pseudonymises for the recipient and records; the home node records the
//! forwarding under the same request id. A node asserting a participant it
//! does not host is refused and recorded; an expired directory stops
//! federated traffic with a clear error, and a new one is taken live.

mod common;

use std::path::PathBuf;

use common::{GEMEENTE, NGO, request_id, role, with_actor};
use sluis::config::Config;
use sluis::dev::init;
use sluis::federation::directory::{Directory, DirectoryNode, Host};
use sluis::federation::{FederationConfig, FederationKey, directory};
use sluis::net::client::{self, ClientPem};
use sluis::net::pki::CertAuthority;
use sluis::net::x509;
use sluis::node::Node;
use sluis::rpc::Clients;
use sluis::rpc::proto::v1 as pb;
use sluis::tlog::{AccessRecord, Decision};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tonic::Request;

const IND: &str = "ind";
/// Node ids (each node's `node.name`).
const A: &str = "gm0344";
const B: &str = "gm0363";
const C: &str = "gm0518";

/// A node folder before it starts: its config, CA, node certificate.
struct Prepared {
    id: &'static str,
    dir: tempfile::TempDir,
    config: Config,
    ca: CertAuthority,
    node_cert_der: Vec<u8>,
    federation_port: u16,
}

struct Started {
    id: &'static str,
    dir: tempfile::TempDir,
    node: Node,
}

impl Started {
    fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pki/ca.pem")).unwrap()
    }

    async fn client(&self, participant: &str) -> Clients {
        let channel = common::channel_as(self.node.local_addr, self.dir.path(), participant)
            .await
            .expect("connect");
        Clients::new(channel)
    }

    /// The records with this request id (written before the answer left).
    async fn records(&self, request_id: &str) -> Vec<AccessRecord> {
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
    async fn record(&self, request_id: &str) -> AccessRecord {
        let mut rs = self.records(request_id).await;
        assert_eq!(rs.len(), 1, "one record of {request_id} on {}", self.id);
        rs.remove(0)
    }

    fn directory_path(&self) -> PathBuf {
        self.dir.path().join("federation.note")
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0).unwrap().format(&Rfc3339).unwrap()
}

async fn prepare(id: &'static str) -> Prepared {
    let dir = tempfile::tempdir().unwrap();
    let path = init::init(dir.path(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    common::use_test_database(dir.path()).await;
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
    Prepared {
        id,
        dir,
        config,
        ca,
        node_cert_der: node_cert.cert_der,
        federation_port: free_port(),
    }
}

fn log_key(p: &Prepared) -> String {
    let keys = sluis::gateway::vault::Keys::load(&p.config.path(&p.config.node.keys_dir)).unwrap();
    sluis::tlog::note::verifier_key(p.id, &keys.signing_public_key())
}

/// The directory of the three nodes: A hosts IND, B the municipality, C
/// the NGO.
fn directory_of(
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
        _ => vec![Host {
            participant: NGO.into(),
            role: "ngo".into(),
        }],
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
                hosts: hosts(p.id),
            })
            .collect(),
    }
}

/// Three nodes with their own CAs, each trusting the others' CAs for
/// federation, started with directory serial 1 (valid a year).
async fn network(key: &FederationKey) -> (Vec<Started>, Vec<DirectoryNode>) {
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
        p.config.federation = Some(FederationConfig {
            directory: "federation.note".into(),
            verifier_key: key.verifier_key(),
            listen: Some(format!("127.0.0.1:{}", p.federation_port).parse().unwrap()),
            client_cert: "node.pem".into(),
            client_key: "node.key".into(),
            peer_ca: "peers.pem".into(),
            peer_crl: vec![],
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
        });
    }
    (started, d.nodes)
}

fn get_case(case_id: &str, purpose: &str, holding: Option<&str>) -> Request<pb::GetCaseRequest> {
    let mut r = with_actor(pb::GetCaseRequest {
        subject: Some(pb::get_case_request::Subject::CaseId(case_id.into())),
        purpose: purpose.into(),
        categories: vec![
            pb::Category::ResidenceProcedure as i32,
            pb::Category::Perspective as i32,
            pb::Category::Medical as i32,
        ],
    });
    if let Some(h) = holding {
        r.metadata_mut()
            .insert("x-sluis-holding-node", h.parse().unwrap());
    }
    r
}

/// A request as a node sends it to a peer, asserting `participant` in `role`.
fn asserting<T>(mut r: Request<T>, participant: &str, role: &str) -> Request<T> {
    r.metadata_mut()
        .insert("x-sluis-on-behalf-of", participant.parse().unwrap());
    r.metadata_mut()
        .insert("x-sluis-on-behalf-of-role", role.parse().unwrap());
    r
}

fn cats(cs: &[pb::Category]) -> Vec<i32> {
    cs.iter().map(|c| *c as i32).collect()
}

fn write_directory(nodes: &[&Started], key: &FederationKey, d: &Directory) {
    let signed = directory::sign(d, key).unwrap();
    for n in nodes {
        std::fs::write(n.directory_path(), &signed).unwrap();
        n.node.federation().unwrap().reload().expect("reload");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_reads_forged_assertions_and_directory_lifetime() {
    let keys = tempfile::tempdir().unwrap();
    FederationKey::generate("lvv", &keys.path().join("federation.key")).unwrap();
    let key = FederationKey::load(&keys.path().join("federation.key")).unwrap();
    let (nodes, dir_nodes) = network(&key).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);

    // B's municipality registers a case; the migrant consents that IND
    // receives the perspective for legalisation.
    let mut gemeente = b.client(GEMEENTE).await;
    let (case_id, _) = common::register(&mut gemeente).await;
    gemeente
        .consents
        .grant_consent(with_actor(pb::GrantConsentRequest {
            request_id: String::new(),
            case_id: case_id.clone(),
            recipients: vec![role("ind")],
            categories: vec![pb::Category::Perspective as i32],
            purposes: vec!["legalisation".into()],
            valid_from: None,
            valid_until: None,
            evidence_ref: "DMS-1".into(),
        }))
        .await
        .unwrap();

    // IND asks its home node A; A forwards to B, which decides: the
    // residence procedure by the policy's legal basis, the perspective by
    // consent, the medical category withheld.
    let mut ind = a.client(IND).await;
    let r = ind
        .cases
        .get_case(get_case(&case_id, "legalisation", Some(B)))
        .await
        .expect("forwarded read");
    let id = request_id(&r);
    let answer = r.into_inner();
    assert_eq!(
        answer.released,
        cats(&[pb::Category::ResidenceProcedure, pb::Category::Perspective])
    );
    assert_eq!(answer.withheld.len(), 1);
    assert_eq!(answer.withheld[0].category, pb::Category::Medical as i32);
    assert!(answer.data.as_ref().unwrap().perspective.is_some());
    assert!(answer.data.as_ref().unwrap().identity.is_none());
    assert_eq!(answer.access_record_id, id);

    // Both nodes recorded it under the same request id: B as the decision
    // it made for IND, A as the forwarding.
    let on_b = b.record(&id).await;
    assert_eq!(on_b.caller, IND);
    assert_eq!(on_b.role, "ind");
    assert_eq!(on_b.case_id.as_deref(), Some(case_id.as_str()));
    assert_eq!(on_b.decision, Decision::Partial);
    assert_eq!(on_b.purpose.as_deref(), Some("legalisation"));
    assert!(
        !on_b.consents.is_empty(),
        "B names the consent that decided"
    );
    let on_a = a.record(&id).await;
    assert_eq!(on_a.caller, IND);
    assert_eq!(on_a.method, "GetCase");
    assert_eq!(on_a.decision, Decision::Partial);
    assert_eq!(on_a.released, on_b.released);
    assert!(on_a.detail.contains(B), "{}", on_a.detail);
    assert!(on_a.case_id.is_none(), "A does not hold the case");

    // The pseudonym is the recipient's: IND's is the same whether it asks
    // B directly or through A, and comes back to the same case through A;
    // the NGO, through its own home node C, gets another.
    let mut ind_at_b = b.client(IND).await;
    let direct = ind_at_b
        .cases
        .get_case(get_case(&case_id, "legalisation", None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(direct.subject_pseudonym, answer.subject_pseudonym);
    let mut again = with_actor(pb::GetCaseRequest {
        subject: Some(pb::get_case_request::Subject::SubjectPseudonym(
            answer.subject_pseudonym.clone(),
        )),
        purpose: "legalisation".into(),
        categories: vec![],
    });
    again
        .metadata_mut()
        .insert("x-sluis-holding-node", B.parse().unwrap());
    let again = ind.cases.get_case(again).await.unwrap().into_inner();
    assert_eq!(again.subject_pseudonym, answer.subject_pseudonym);
    let mut ngo = c.client(NGO).await;
    let for_ngo = ngo
        .cases
        .get_case(get_case(&case_id, "guidance", Some(B)))
        .await
        .expect("the NGO's forwarded read")
        .into_inner();
    assert_ne!(for_ngo.subject_pseudonym, answer.subject_pseudonym);
    assert!(for_ngo.released.is_empty(), "no consent for the NGO");

    // Node A, with its own node certificate, asserts the NGO (hosted by
    // C): B refuses and records the attempt, naming A.
    let a_node = ClientPem {
        ca: b.ca_pem(),
        identity: Some((
            std::fs::read_to_string(a.dir.path().join("node.pem")).unwrap(),
            std::fs::read_to_string(a.dir.path().join("node.key")).unwrap(),
        )),
    };
    let channel = client::connect(b.node.federation_addr.unwrap(), "localhost", &a_node)
        .await
        .unwrap();
    let mut forged = pb::case_service_client::CaseServiceClient::new(channel);
    let req = asserting(get_case(&case_id, "guidance", None), NGO, "ngo");
    let err = forged.get_case(req).await.expect_err("a forged assertion");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert!(
        err.message().contains("does not say it hosts"),
        "{}",
        err.message()
    );
    let refused = b.record(&common::request_id_of(err.metadata())).await;
    assert_eq!(refused.caller, A, "the record names the node that asserted");
    assert_eq!(refused.decision, Decision::Denied);
    assert!(refused.detail.contains(NGO), "{}", refused.detail);
    assert!(refused.released.is_empty());

    // A peer's call is answered where it arrives: B does not relay it on,
    // even for a participant the calling node does host.
    let req = asserting(get_case(&case_id, "legalisation", Some(C)), IND, "ind");
    let err = forged.get_case(req).await.expect_err("no second hop");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert!(
        err.message().contains("x-sluis-holding-node"),
        "{}",
        err.message()
    );
    assert!(
        c.records(&common::request_id_of(err.metadata()))
            .await
            .is_empty()
    );

    // An expired directory stops federated traffic on both sides, with a
    // clear error; local reads go on.
    let now = OffsetDateTime::now_utc();
    let short = reissue(&dir_nodes, 2, now + time::Duration::seconds(2));
    write_directory(&[a, b, c], &key, &short);
    assert_eq!(a.node.federation().unwrap().serial(), 2);
    while OffsetDateTime::now_utc() < now + time::Duration::seconds(3) {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let err = ind
        .cases
        .get_case(get_case(&case_id, "legalisation", Some(B)))
        .await
        .expect_err("expired directory");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("expired"), "{}", err.message());
    let on_a = a.record(&common::request_id_of(err.metadata())).await;
    assert_eq!(on_a.decision, Decision::Denied);
    assert!(
        b.records(&common::request_id_of(err.metadata()))
            .await
            .is_empty(),
        "nothing reached B"
    );
    // B, too, refuses a peer's call now, even with an assertion the
    // directory backs, and records the refusal.
    let req = asserting(get_case(&case_id, "legalisation", None), IND, "ind");
    let err = forged.get_case(req).await.expect_err("expired at B");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("expired"), "{}", err.message());
    let refused = b.record(&common::request_id_of(err.metadata())).await;
    assert_eq!(refused.caller, A);
    assert_eq!(refused.status, "FAILED_PRECONDITION");
    let direct = ind_at_b
        .cases
        .get_case(get_case(&case_id, "legalisation", None))
        .await
        .expect("local reads go on");
    assert!(!direct.into_inner().released.is_empty());

    // A newer directory is taken without restart, and forwarding works again.
    let renewed = reissue(&dir_nodes, 3, now + time::Duration::days(30));
    write_directory(&[a, b, c], &key, &renewed);
    let r = ind
        .cases
        .get_case(get_case(&case_id, "legalisation", Some(B)))
        .await
        .expect("forwarded under the new directory");
    assert_eq!(r.into_inner().subject_pseudonym, answer.subject_pseudonym);

    for n in nodes {
        n.node.shutdown().await.unwrap();
    }
}

/// The same nodes under a new serial, valid from an hour ago until `until`.
fn reissue(nodes: &[DirectoryNode], serial: u64, until: OffsetDateTime) -> Directory {
    Directory {
        network: "lvv".into(),
        serial,
        not_before: rfc3339(OffsetDateTime::now_utc() - time::Duration::hours(1)),
        not_after: rfc3339(until),
        nodes: nodes.to_vec(),
    }
}
