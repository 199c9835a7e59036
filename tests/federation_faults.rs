//! Faults between federation nodes, each as the agency and the operators
//! meet it: a holding node whose certificate is not the key the directory
//! pins is not called (and a reload changes the pin for the next call); a
//! holding node that refuses this node's certificate, a node the directory
//! does not name, a node id that is not one, and a directory of the holding
//! node that does not pin the calling node each get their own code and a
//! message that says who must act; `check-config` reports what `serve`
//! would stop at in `[federation]` and the directory's own problems.

mod common;

use common::federated::{self, Started};
use common::{GEMEENTE, NGO, request_id_of, with_actor};
use rustls::pki_types::pem::PemObject;
use sluis::check::Severity;
use sluis::rpc::proto::v1 as pb;
use sluis::tlog::Decision;
use tonic::Request;
use tonic_types::StatusExt;

const IND: &str = "ind";
const A: &str = "gm0344";
const B: &str = "gm0363";
const C: &str = "gm0518";

fn get_case(case_id: &str, holding: &str) -> Request<pb::GetCaseRequest> {
    let mut r = with_actor(pb::GetCaseRequest {
        subject: Some(pb::get_case_request::Subject::CaseId(case_id.into())),
        purpose: "legalisation".into(),
        categories: vec![pb::Category::ResidenceProcedure as i32],
        emergency_justification: String::new(),
    });
    r.metadata_mut()
        .insert("x-sluis-holding-node", holding.parse().unwrap());
    r
}

/// The status's ErrorInfo reason, and whether it carries RetryInfo.
fn reason(s: &tonic::Status) -> (String, bool) {
    let d = s.get_error_details();
    (
        d.error_info().map(|i| i.reason.clone()).unwrap_or_default(),
        d.retry_info().is_some(),
    )
}

/// The one record of a request id on a node.
async fn record(n: &Started, id: &str) -> sluis::tlog::AccessRecord {
    let mut rs = n.records(id).await;
    assert_eq!(rs.len(), 1, "one record of {id} on {}", n.id);
    rs.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pins_both_ways_and_forwarding_failures_say_who_acts() {
    let (_keys, key) = federated::federation_key();
    let prepared = vec![
        federated::prepare(A, vec![(IND, "ind")]).await,
        federated::prepare(B, vec![(GEMEENTE, "municipality")]).await,
        federated::prepare(C, vec![(NGO, "ngo")]).await,
    ];
    // C trusts B's CA only: it refuses A's node certificate at the handshake.
    let (nodes, entries) = federated::start(prepared, &key, |i, cas| {
        if i == 2 {
            cas[1].clone()
        } else {
            federated::others(i, cas)
        }
    })
    .await;
    let (a, b) = (&nodes[0], &nodes[1]);

    let mut gemeente = b.client(GEMEENTE).await;
    let (case_id, _) = common::register(&mut gemeente).await;
    let mut ind = a.client(IND).await;
    ind.cases
        .get_case(get_case(&case_id, B))
        .await
        .expect("forwarded under the directory as signed");

    // A directory on A that pins another key for B: B's real certificate
    // (from a CA A trusts, for the right name) is refused at the handshake,
    // nothing reaches B, and A records the refusal naming B.
    let mut wrong_b = entries.clone();
    wrong_b[1].tls_spki_sha256 = "cc".repeat(32);
    a.install(&key, &federated::directory_of(&wrong_b, 2)).await;
    let err = ind
        .cases
        .get_case(get_case(&case_id, B))
        .await
        .expect_err("B is not the key A's directory pins");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message()
            .contains("is not the one the federation directory pins"),
        "{}",
        err.message()
    );
    assert!(
        err.message().contains("holding node's operator"),
        "{}",
        err.message()
    );
    assert_eq!(reason(&err), ("PEER_NODE".into(), false));
    let id = request_id_of(err.metadata());
    let on_a = record(a, &id).await;
    assert_eq!(on_a.status, "FAILED_PRECONDITION");
    assert_eq!(on_a.decision, Decision::Denied);
    assert!(on_a.detail.contains(B), "{}", on_a.detail);
    assert!(b.records(&id).await.is_empty(), "nothing reached B");

    // The next directory pins B's key again: the next call is made.
    a.install(&key, &federated::directory_of(&entries, 3)).await;
    ind.cases
        .get_case(get_case(&case_id, B))
        .await
        .expect("the reloaded pin holds for the next call");

    // A node the directory does not name: permanent, the agency's to fix.
    let err = ind
        .cases
        .get_case(get_case(&case_id, "gm9999"))
        .await
        .expect_err("no such node");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("names no node 'gm9999'")
            && err.message().contains("x-sluis-holding-node"),
        "{}",
        err.message()
    );
    assert_eq!(reason(&err), ("PEER_NODE".into(), false));
    assert_eq!(
        record(a, &request_id_of(err.metadata())).await.status,
        "FAILED_PRECONDITION"
    );

    // A node id that is not one is named as a node id.
    let err = ind
        .cases
        .get_case(get_case(&case_id, "GM 0363"))
        .await
        .expect_err("not a node id");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message()
            .contains("x-sluis-holding-node must be a federation node id"),
        "{}",
        err.message()
    );
    let d = err.get_error_details();
    assert_eq!(
        d.bad_request().unwrap().field_violations[0].field,
        "x-sluis-holding-node"
    );

    // C does not trust A's CA: its refusal of A's certificate reaches the
    // agency as such, not as a transport error to retry.
    let err = ind
        .cases
        .get_case(get_case(&case_id, C))
        .await
        .expect_err("C refuses A's certificate");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("refused this node's certificate")
            && err.message().contains("federation.peer_ca"),
        "{}",
        err.message()
    );
    assert_eq!(reason(&err), ("PEER_NODE".into(), false));
    // Every time, not only when the timing is kind: C closes a refused
    // connection after its alert without a reset, so A reads why.
    for i in 0..20 {
        let err = ind
            .cases
            .get_case(get_case(&case_id, C))
            .await
            .expect_err("C refuses A's certificate");
        assert_eq!(
            err.code(),
            tonic::Code::FailedPrecondition,
            "attempt {i}: {err:?}"
        );
    }

    // B's directory does not pin A: B says it is between the nodes, not
    // the agency's certificate.
    let mut wrong_a = entries.clone();
    wrong_a[0].tls_spki_sha256 = "dd".repeat(32);
    b.install(&key, &federated::directory_of(&wrong_a, 4)).await;
    let err = ind
        .cases
        .get_case(get_case(&case_id, B))
        .await
        .expect_err("B does not know A's key");
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert!(
        err.message().contains("node-to-node")
            && !err.message().contains("register your organisation"),
        "{}",
        err.message()
    );
    let on_b = record(b, &request_id_of(err.metadata())).await;
    assert_eq!(on_b.decision, Decision::Denied);

    for n in nodes {
        n.node.shutdown().await.unwrap();
    }
}

/// Nodes A (home of IND) and B (home of the municipality), started under
/// one directory, with a case registered at B that IND has read through A;
/// the directory's entries; the case id; IND's client at A.
async fn two_nodes_and_a_forwarded_read(
    key: &sluis::federation::FederationKey,
) -> (
    Vec<Started>,
    Vec<sluis::federation::directory::DirectoryNode>,
    String,
    sluis::rpc::Clients,
) {
    let prepared = vec![
        federated::prepare(A, vec![(IND, "ind")]).await,
        federated::prepare(B, vec![(GEMEENTE, "municipality")]).await,
    ];
    let (nodes, entries) = federated::start(prepared, key, federated::others).await;
    let mut gemeente = nodes[1].client(GEMEENTE).await;
    let (case_id, _) = common::register(&mut gemeente).await;
    let mut ind = nodes[0].client(IND).await;
    ind.cases
        .get_case(get_case(&case_id, B))
        .await
        .expect("forwarded");
    (nodes, entries, case_id, ind)
}

/// A node's CA, read back from its folder.
fn ca_of(n: &Started) -> sluis::net::pki::CertAuthority {
    let read = |f: &str| std::fs::read_to_string(n.dir.path().join("pki").join(f)).unwrap();
    sluis::net::pki::CertAuthority::from_pem(&read("ca.pem"), &read("ca.key")).unwrap()
}

/// The serial number of a node's certificate.
fn serial_of(n: &Started) -> Vec<u8> {
    let pem = std::fs::read_to_string(n.dir.path().join("node.pem")).unwrap();
    let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    sluis::net::x509::serial_number(&der).unwrap().to_vec()
}

/// Puts a CRL of `ca` revoking `serial` in `n`'s `peer_crl` and writes the
/// configuration for a reload, returning its path.
fn revoke(n: &Started, ca: &sluis::net::pki::CertAuthority, serial: Vec<u8>) -> std::path::PathBuf {
    std::fs::write(
        n.dir.path().join("peer-crl.pem"),
        ca.crl_pem(&[serial], time::Duration::days(7)).unwrap(),
    )
    .unwrap();
    let mut config = n.config.clone();
    config.federation.as_mut().unwrap().peer_crl = vec!["peer-crl.pem".into()];
    n.write_config(&config)
}

/// The review's example: a peer CRL revoking a node's certificate took
/// effect on neither side until a restart (the federation listener kept
/// the TLS files it started with; calls to peers kept the peer CAs and
/// CRLs read at start). After a reload, the holding node refuses the
/// revoked calling node at the handshake, and a calling node refuses a
/// revoked holding node's server certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_crl_counts_both_ways_from_the_reload() {
    let (_keys, key) = federated::federation_key();
    let (nodes, _, case_id, mut ind) = two_nodes_and_a_forwarded_read(&key).await;
    let cas: Vec<_> = nodes.iter().map(ca_of).collect();
    let (a, b) = (&nodes[0], &nodes[1]);

    // B's operator revokes A's node certificate (a CRL of A's CA in B's
    // peer_crl) and reloads.
    let path = revoke(b, &cas[0], serial_of(a));
    b.node.reload(&path).await.expect("B reloads");
    let err = ind
        .cases
        .get_case(get_case(&case_id, B))
        .await
        .expect_err("B refuses A's revoked certificate");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("refused this node's certificate"),
        "{}",
        err.message()
    );

    // Lifted on B by a newer CRL (dropping the CRL is refused: a
    // revocation is not undone by losing its file); A's operator revokes
    // B's node certificate: A no longer takes B's server certificate.
    std::fs::write(
        b.dir.path().join("peer-crl.pem"),
        cas[0].crl_pem(&[], time::Duration::days(7)).unwrap(),
    )
    .unwrap();
    b.node.reload(&path).await.expect("B reloads the newer CRL");
    ind.cases
        .get_case(get_case(&case_id, B))
        .await
        .expect("forwarded again");
    let path = revoke(a, &cas[1], serial_of(b));
    a.node.reload(&path).await.expect("A reloads");
    let err = ind
        .cases
        .get_case(get_case(&case_id, B))
        .await
        .expect_err("A refuses B's revoked certificate");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("server certificate is refused")
            && err.message().to_lowercase().contains("revoked"),
        "{}",
        err.message()
    );
    for n in nodes {
        n.node.shutdown().await.unwrap();
    }
}

/// `check-config` on a node whose `[federation]` names files that are not
/// there and a key that is not one: each is an error with its setting's
/// line, where before it said "0 errors" and `serve` refused.
#[tokio::test]
async fn check_config_reports_what_serve_stops_at_in_federation() {
    let dir = tempfile::tempdir().unwrap();
    let path = sluis::dev::init::init(dir.path(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = std::fs::read_to_string(&path).unwrap();
    let with = |section: &str| {
        std::fs::write(&path, format!("{base}\n{section}")).unwrap();
        sluis::check::check(&path)
    };
    let report = with(
        r#"[federation]
directory = "nope.note"
verifier_key = "garbage"
client_cert = "nope-node.pem"
client_key = "nope-node.key"
peer_ca = "nope.pem"
"#,
    );
    let errors: Vec<String> = report.errors().map(|f| f.to_string()).collect();
    for setting in [
        "federation.directory",
        "federation.verifier_key",
        "federation.peer_ca",
        "federation.client_cert",
    ] {
        assert!(
            errors.iter().any(|e| e.contains(setting)),
            "{setting} in {errors:#?}"
        );
    }
    assert!(
        report
            .errors()
            .any(|f| f.file == path && f.line.is_some_and(|l| l > 1)),
        "located by line in sluis.toml: {errors:#?}"
    );
}

/// The directory's own problems: not naming this node stops `serve`;
/// this node's certificate not carrying the pinned key, and a directory
/// out of its validity, are warnings (the node serves its own
/// participants). A peer CA without a CRL names `federation.peer_crl`, in
/// `check-config` and in `serve`'s refusal alike.
#[tokio::test]
async fn check_config_reads_the_directory_and_the_peer_crls() {
    let (_keys, key) = federated::federation_key();
    let me = federated::prepare(A, vec![(IND, "ind")]).await;
    let peer = federated::prepare(B, vec![(GEMEENTE, "municipality")]).await;
    let path = me.dir.path().join("sluis.toml");
    let base = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        me.dir.path().join("peers.pem"),
        std::fs::read_to_string(peer.dir.path().join("pki/ca.pem")).unwrap(),
    )
    .unwrap();
    let run = |d: &sluis::federation::directory::Directory, allow_missing_crl: bool| {
        std::fs::write(
            me.dir.path().join("federation.note"),
            sluis::federation::directory::sign(d, &key).unwrap(),
        )
        .unwrap();
        let text: String = base
            .lines()
            .map(|l| match l {
                l if l.starts_with("name = ") => format!("name = \"{A}\"\n"),
                "allow_missing_crl = false" => {
                    format!("allow_missing_crl = {allow_missing_crl}\n")
                }
                l => format!("{l}\n"),
            })
            .collect();
        std::fs::write(
            &path,
            format!(
                "{text}\n[federation]\ndirectory = \"federation.note\"\nverifier_key = \"{}\"\nclient_cert = \"node.pem\"\nclient_key = \"node.key\"\npeer_ca = \"peers.pem\"\n",
                key.verifier_key()
            ),
        )
        .unwrap();
        sluis::check::check(&path)
    };
    let mut mine = federated::entry(&me);
    let theirs = federated::entry(&peer);

    // A directory without this node.
    let report = run(
        &federated::directory_of(std::slice::from_ref(&theirs), 1),
        true,
    );
    assert!(
        report
            .errors()
            .any(|f| f.problem.contains("does not name this node")),
        "{:#?}",
        report.findings
    );

    // This node listed with another key: a warning naming the pin.
    mine.tls_spki_sha256 = "ee".repeat(32);
    let report = run(
        &federated::directory_of(&[mine.clone(), theirs.clone()], 2),
        true,
    );
    assert!(
        report.warnings().any(|f| f.severity == Severity::Warning
            && f.problem.contains("pins")
            && f.problem.contains("federation.client_cert")),
        "{:#?}",
        report.findings
    );
    assert!(!report.has_errors(), "{:#?}", report.findings);

    // An expired directory: a warning, the node still starts.
    let mine = federated::entry(&me);
    let mut old = federated::directory_of(&[mine.clone(), theirs.clone()], 3);
    let now = time::OffsetDateTime::now_utc();
    old.not_before = federated::rfc3339(now - time::Duration::days(30));
    old.not_after = federated::rfc3339(now - time::Duration::days(1));
    let report = run(&old, true);
    assert!(
        report.warnings().any(|f| f.problem.contains("expired")),
        "{:#?}",
        report.findings
    );
    assert!(!report.has_errors(), "{:#?}", report.findings);

    // A peer CA without a CRL, CRLs required: an error naming
    // federation.peer_crl, and serve's refusal names it too.
    let fine = federated::directory_of(&[mine, theirs], 4);
    let report = run(&fine, false);
    let errors: Vec<String> = report.errors().map(|f| f.to_string()).collect();
    assert!(
        errors.iter().any(|e| e.contains("federation.peer_crl")),
        "{errors:#?}"
    );
    let mut config = sluis::config::Config::load(&path).unwrap();
    config.tls.allow_missing_crl = true; // the node's own CA passes
    config.federation.as_mut().unwrap().listen = Some("127.0.0.1:0".parse().unwrap());
    let mut files = config.federation_tls_files().unwrap();
    files.allow_missing_crl = false;
    let refused = sluis::net::tls::server_config(&files, None).expect_err("no peer CRL");
    assert!(
        refused.to_string().contains("federation.peer_crl")
            && !refused.to_string().contains("tls.crl"),
        "{refused}"
    );
}

/// The directory's records of this node's log (`federation.directory`):
/// (status, detail), oldest first.
async fn directory_records(n: &Started) -> Vec<(String, String)> {
    n.node
        .store
        .access_log(0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| sluis::tlog::AccessRecord::decode(&r.record).unwrap())
        .filter(|r| r.method == "federation.directory")
        .map(|r| (r.status, r.detail))
        .collect()
}

/// A reload takes the directory and the rest of the configuration
/// (participants, policy, TLS files) each on its own: a bad directory
/// keeps the running one and the rest is taken; a bad policy keeps the
/// running one and a newer directory is taken. A directory outside its
/// validity (expired, or not yet valid) is not taken either. Each
/// directory outcome is in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_directory_and_the_rest_of_a_reload_are_taken_apart() {
    let (_keys, key) = federated::federation_key();
    let (nodes, entries, case_id, mut ind) = two_nodes_and_a_forwarded_read(&key).await;
    let (a, b) = (&nodes[0], &nodes[1]);

    // A's directory file is damaged and its operator revokes B's node
    // certificate (a CRL of B's CA in A's peer_crl); SIGHUP.
    let path = revoke(a, &ca_of(b), serial_of(b));
    std::fs::write(a.dir.path().join("federation.note"), "not a signed note\n").unwrap();
    a.node
        .reload(&path)
        .await
        .expect("the CRL is taken though the directory is bad");
    let err = a
        .node
        .reload_federation()
        .await
        .expect_err("the bad directory is not taken");
    assert!(err.to_string().contains("is refused"), "{err}");
    assert_eq!(a.node.federation().unwrap().serial(), 1);
    let err = ind
        .cases
        .get_case(get_case(&case_id, B))
        .await
        .expect_err("A refuses B's revoked certificate");
    assert!(
        err.message().to_lowercase().contains("revoked"),
        "{}",
        err.message()
    );
    let recorded = directory_records(a).await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0].0, "FAILED_PRECONDITION");
    assert!(
        recorded[0].1.contains("not taken, serial 1 stays"),
        "{recorded:?}"
    );

    // The other way round: a broken policy is refused, a newer directory
    // is taken.
    let policy = a.dir.path().join("policy.cedar");
    let good_policy = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(&policy, "permit (principal, action, resource").unwrap();
    std::fs::write(
        a.dir.path().join("federation.note"),
        sluis::federation::directory::sign(&federated::directory_of(&entries, 2), &key).unwrap(),
    )
    .unwrap();
    a.node.reload(&path).await.expect_err("the broken policy");
    assert_eq!(a.node.reload_federation().await.unwrap(), Some(2));
    std::fs::write(&policy, good_policy).unwrap();

    // A directory whose validity has ended, or not yet begun, is not
    // taken however new its serial: the running one stays.
    let now = time::OffsetDateTime::now_utc();
    let mut expired = federated::directory_of(&entries, 3);
    expired.not_before = federated::rfc3339(now - time::Duration::days(30));
    expired.not_after = federated::rfc3339(now - time::Duration::days(1));
    let mut early = federated::directory_of(&entries, 4);
    early.not_before = federated::rfc3339(now + time::Duration::days(1));
    for (d, says) in [
        (&expired, "(serial 3) expired at"),
        (&early, "(serial 4) is valid only from"),
    ] {
        std::fs::write(
            a.dir.path().join("federation.note"),
            sluis::federation::directory::sign(d, &key).unwrap(),
        )
        .unwrap();
        let err = a
            .node
            .reload_federation()
            .await
            .expect_err("a directory outside its validity");
        assert!(err.to_string().contains(says), "{err}");
        assert!(err.to_string().contains("the running one stays"), "{err}");
        assert_eq!(a.node.federation().unwrap().serial(), 2);
    }
    let recorded = directory_records(a).await;
    let statuses: Vec<&str> = recorded.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        statuses,
        [
            "FAILED_PRECONDITION",
            "OK",
            "FAILED_PRECONDITION",
            "FAILED_PRECONDITION"
        ],
        "{recorded:?}"
    );
    assert!(recorded[1].1.contains("serial 2 taken"), "{recorded:?}");
    for n in nodes {
        n.node.shutdown().await.unwrap();
    }
}
