//! Who is calling: mutual TLS and identification, over real TLS 1.3 with
//! real certificates, against a real node on loopback.
//!
//! A client with a certificate the node does not accept must get no data and
//! leave an access record with the certificate's fingerprint; a certificate
//! the CA vouches for but no participant is registered for must be refused on
//! every method; revocation must apply to new connections after a reload;
//! and every answer must carry the request id that its access record holds.

mod common;

use common::*;
use sluis::config::Config;
use sluis::dev::init::{CONFIG_FILE, DEV_PARTICIPANTS};
use sluis::net::pki::{CertAuthority, ClientCertSpec, IssuedCert};
use sluis::net::x509;
use sluis::node::Node;
use sluis::rpc::proto::v1 as pb;
use sluis::store::LogRow;
use sluis::tlog::{AccessRecord, Decision};
use time::{Duration, OffsetDateTime};
use tonic::{Code, Status};

/// A well-formed case id that no node has issued.
const UNKNOWN_CASE: &str = "0190c4e2-7b1a-4c3e-9f00-1a2b3c4d5e6f";
/// An OIN that no participant is registered with.
const UNREGISTERED_OIN: &str = "00000009999999999999";

/// The OIN of a dev participant.
fn oin(participant: &str) -> &'static str {
    DEV_PARTICIPANTS
        .iter()
        .find(|(id, ..)| *id == participant)
        .map(|(.., oin)| *oin)
        .expect("a dev participant")
}

fn identity(cert: &IssuedCert) -> Option<(String, String)> {
    Some((cert.cert_pem.clone(), cert.key_pem.clone()))
}

fn fingerprint(cert: &IssuedCert) -> String {
    x509::cert_sha256_hex(&cert.cert_der)
}

/// How one attempt to reach the API over a fresh connection ended.
#[derive(Debug)]
enum Attempt {
    /// The request reached the node's API, which answered (every answer of
    /// the API, success or error, carries `x-request-id`).
    Answered(Box<Result<pb::GetCaseResponse, Status>>),
    /// No answer from the API: the connection failed at `connect()` or, as
    /// TLS 1.3 allows, on the first call.
    Refused(String),
}

/// Connects with `identity` on a new connection and makes one GetCase call.
async fn attempt(node: &TestNode, identity: Option<(String, String)>) -> Attempt {
    let mut c = match node.client_with(identity).await {
        Ok(c) => c,
        Err(e) => return Attempt::Refused(format!("connect: {e}")),
    };
    match c
        .cases
        .get_case(with_actor(by_id(UNKNOWN_CASE, "case_consultation")))
        .await
    {
        Ok(r) => Attempt::Answered(Box::new(Ok(r.into_inner()))),
        Err(s) if s.metadata().contains_key("x-request-id") => Attempt::Answered(Box::new(Err(s))),
        Err(s) => Attempt::Refused(format!("first call: {s}")),
    }
}

/// Asserts the attempt got no answer from the API, and says where it failed.
fn expect_refused(a: Attempt, what: &str) {
    match a {
        Attempt::Refused(at) => eprintln!("{what}: refused ({at})"),
        Attempt::Answered(r) => panic!("{what}: served anyway: {r:?}"),
    }
}

fn decode(row: &LogRow) -> AccessRecord {
    AccessRecord::decode(&row.record).expect("access record decodes")
}

/// The record of the refused handshake of the certificate with `fp`,
/// waiting for it since it is written in the background. `why` is a word
/// the recorded reason must contain.
async fn handshake_record(node: &TestNode, fp: &str, why: &str) -> AccessRecord {
    let row = node
        .wait_for_log(|r| {
            r.method == "tls.handshake"
                && decode(r).peer_fingerprint.as_deref() == Some(fp)
                && r.decision == "handshake_failed"
        })
        .await;
    let rec = decode(&row);
    assert_eq!(rec.decision, Decision::HandshakeFailed);
    assert_eq!(rec.status, "UNAUTHENTICATED");
    assert_eq!(rec.caller, "-", "a refused handshake names no participant");
    assert!(rec.case_id.is_none() && rec.subject.is_none());
    assert!(rec.released.is_empty());
    assert!(
        rec.detail.to_ascii_lowercase().contains(why),
        "the record says why it was refused ({why}): {}",
        rec.detail
    );
    rec
}

/// How many requests reached the API (records other than refused
/// handshakes and summaries of connections without a certificate). A
/// refused client must not add to it.
async fn api_records(node: &TestNode) -> usize {
    node.log()
        .await
        .iter()
        .filter(|r| !r.method.starts_with("tls."))
        .count()
}

#[tokio::test]
async fn certificate_from_an_unknown_ca_is_refused_and_audited() {
    let node = TestNode::start().await;
    let mut owner = node.client(GEMEENTE).await;
    register(&mut owner).await;
    let digest = node.digest().await;
    let served = api_records(&node).await;

    // A foreign CA copying a registered participant's OIN gets nowhere.
    let rogue = CertAuthority::generate("rogue CA").unwrap();
    let cert = rogue
        .issue_client(&ClientCertSpec::new(
            "Gemeente Utrecht",
            Some(oin(GEMEENTE)),
        ))
        .unwrap();
    expect_refused(
        attempt(&node, identity(&cert)).await,
        "certificate from an unknown CA",
    );

    let fp = fingerprint(&cert);
    let rec = handshake_record(&node, &fp, "unknownissuer").await;
    assert_eq!(rec.method, "tls.handshake");
    assert_eq!(rec.peer_fingerprint.as_deref(), Some(fp.as_str()));
    assert_eq!(
        uuid::Uuid::parse_str(&rec.request_id)
            .unwrap()
            .get_version_num(),
        7
    );
    assert_eq!(
        api_records(&node).await,
        served,
        "no request reached the API"
    );
    assert_eq!(node.digest().await, digest, "nothing changed");
}

#[tokio::test]
async fn certificates_outside_their_validity_are_refused_and_audited() {
    let node = TestNode::start().await;
    let now = OffsetDateTime::now_utc();
    let cases = [
        ("expired", now - Duration::days(30), now - Duration::days(1)),
        (
            "not valid yet",
            now + Duration::days(1),
            now + Duration::days(30),
        ),
    ];
    for (why, not_before, not_after) in cases {
        // Right CA, registered OIN: only the dates are wrong.
        let cert = node.issue(&ClientCertSpec {
            not_before,
            not_after,
            ..ClientCertSpec::new("DT&V", Some(oin("dtv")))
        });
        expect_refused(attempt(&node, identity(&cert)).await, why);
        let fp = fingerprint(&cert);
        let rec = handshake_record(&node, &fp, why).await;
        assert_eq!(rec.peer_fingerprint.as_deref(), Some(fp.as_str()), "{why}");
    }
    assert_eq!(api_records(&node).await, 0, "no request reached the API");
}

/// A client without a certificate is refused and counted; it leaves no
/// record of its own (a peer without a certificate could otherwise write
/// the permanent log once per connection) but is in its source's summary.
#[tokio::test]
async fn a_client_without_certificate_is_refused_and_summarised() {
    let node = TestNode::start().await;
    expect_refused(attempt(&node, None).await, "no client certificate");
    assert_eq!(node.log_len().await, 0, "no record per connection");
    assert_eq!(node.node.report_unauthenticated().await, 1);
    let row = node
        .wait_for_log(|r| r.method == "tls.unauthenticated")
        .await;
    let rec = decode(&row);
    assert_eq!(rec.decision, Decision::HandshakeFailed);
    assert_eq!(rec.status, "UNAUTHENTICATED");
    assert_eq!(rec.peer_fingerprint, None, "no certificate, no fingerprint");
    assert!(
        rec.detail.contains("no client certificate"),
        "{}",
        rec.detail
    );
    assert_eq!(api_records(&node).await, 0, "no request reached the API");
}

#[tokio::test]
async fn an_unregistered_certificate_is_denied_on_every_method() {
    let node = TestNode::start().await;
    let mut owner = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut owner).await;

    // The node's own CA vouches for it, but nobody registered its OIN.
    let cert = node.issue(&ClientCertSpec::new(
        "Stichting Onbekend",
        Some(UNREGISTERED_OIN),
    ));
    let fp = fingerprint(&cert);
    let mut c = node
        .client_with(identity(&cert))
        .await
        .expect("TLS accepts it");
    let digest = node.digest().await;
    let log_len = node.log_len().await;

    let identity_data = full_case("Iemand Anders", "2345678901", "123456782");
    let answers: Vec<(&str, Result<(), Status>)> = vec![
        (
            "GetCase",
            c.cases
                .get_case(with_actor(by_id(&case_id, "case_consultation")))
                .await
                .map(drop),
        ),
        (
            "RegisterCase",
            c.cases
                .register_case(with_actor(pb::RegisterCaseRequest {
                    request_id: String::new(),
                    data: Some(identity_data),
                }))
                .await
                .map(drop),
        ),
        (
            "ListConsents",
            c.consents
                .list_consents(with_actor(pb::ListConsentsRequest {
                    case_id: case_id.clone(),
                }))
                .await
                .map(drop),
        ),
    ];

    for (method, answer) in answers {
        expect_unregistered(&node, method, answer, &fp).await;
    }
    assert_eq!(node.log_len().await, log_len + 3, "one record per call");
    assert_eq!(node.digest().await, digest, "nothing stored");
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_on_new_connections_after_reload() {
    let node = TestNode::start().await;
    let second = node.issue(&ClientCertSpec::new(
        "DT&V (second system)",
        Some(oin("dtv")),
    ));
    let dtv_cert = std::fs::read_to_string(node.pki().join("clients/dtv.pem")).unwrap();
    let dtv_key = std::fs::read_to_string(node.pki().join("clients/dtv.key")).unwrap();
    let regular = Some((dtv_cert, dtv_key));

    // Before: the second certificate is recognised as dtv.
    assert_answered_as_dtv(&node, identity(&second)).await;

    revoke_and_reload(&node, &second);
    let served = api_records(&node).await;

    expect_refused(
        attempt(&node, identity(&second)).await,
        "revoked certificate",
    );
    let fp = fingerprint(&second);
    handshake_record(&node, &fp, "revoked").await;
    assert_eq!(
        api_records(&node).await,
        served,
        "no request reached the API"
    );

    // dtv's other certificate is not affected.
    assert_answered_as_dtv(&node, regular).await;
}

/// A connection opened before the CRL that revokes its certificate is not
/// cut off at the TLS layer (the handshake is done), but its very next
/// request is refused, recorded, and nothing is released.
#[tokio::test]
async fn a_connection_opened_before_its_certificate_was_revoked_is_refused_after_reload() {
    let node = TestNode::start().await;
    let mut gemeente = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut gemeente).await;
    let second = node.issue(&ClientCertSpec::new(
        "Gemeente Utrecht (second system)",
        Some(oin("gemeente-utrecht")),
    ));
    let mut open = node.client_with(identity(&second)).await.expect("connect");
    let read = || with_actor(by_id(&case_id, "case_consultation"));
    open.cases
        .get_case(read())
        .await
        .expect("served before the revocation");

    revoke_and_reload(&node, &second);

    // The same connection, the same call: refused now, and recorded.
    for _ in 0..2 {
        let refused = open
            .cases
            .get_case(read())
            .await
            .expect_err("a revoked certificate must not be served");
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
        assert!(
            refused.message().contains("no longer accepted"),
            "{}",
            refused.message()
        );
        let id = refused
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .expect("a request id")
            .to_string();
        let rec = record_of(&node, &id).await;
        assert_eq!(rec.status, "UNAUTHENTICATED");
        assert!(rec.released.is_empty());
    }

    // The node's other connection, with a certificate not revoked, goes on.
    gemeente
        .cases
        .get_case(read())
        .await
        .expect("an unrevoked connection is still served");
}

/// Publishes a CRL that revokes `cert` and reloads the node's TLS (what
/// SIGHUP does).
fn revoke_and_reload(node: &TestNode, cert: &IssuedCert) {
    let crl = node
        .ca()
        .crl_pem(std::slice::from_ref(&cert.serial), Duration::days(7))
        .unwrap();
    std::fs::write(node.pki().join("crl.pem"), crl).unwrap();
    node.node.reload_tls().expect("reload with the new CRL");
}

/// One GetCase over a new connection reaches the API as participant dtv.
async fn assert_answered_as_dtv(node: &TestNode, identity: Option<(String, String)>) {
    let status = match attempt(node, identity).await {
        Attempt::Answered(a) => a.expect_err("GetCase of an unknown case"),
        Attempt::Refused(at) => panic!("expected an answer from the API, refused ({at})"),
    };
    // Identified: the unknown case is NOT_FOUND, not PERMISSION_DENIED.
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let rec = record_of(node, &request_id_of(status.metadata())).await;
    assert_eq!(rec.caller, "dtv");
    assert_eq!(rec.role, "dtv");
    assert_eq!(rec.peer_fingerprint, None);
}

#[tokio::test]
async fn a_participant_is_recognised_by_its_pinned_key() {
    let first = TestNode::start().await;

    // A certificate from the node's CA without an OIN (no PKIoverheid).
    let cert = first.issue(&ClientCertSpec::new("Kerkelijke Opvang Utrecht", None));
    let register_req = || {
        with_actor(pb::RegisterCaseRequest {
            request_id: String::new(),
            data: Some(full_case("Test Persoon", "1234567890", "111222333")),
        })
    };

    // Not pinned yet: unregistered.
    {
        let mut c = first.client_with(identity(&cert)).await.unwrap();
        let status = c.cases.register_case(register_req()).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    }

    // The operator pins its key (written upper-case, as some tools print
    // fingerprints) and restarts the node on the same directory.
    let spki = x509::spki_sha256_hex(&cert.cert_der).unwrap();
    let config_path = first.dir.path().join(CONFIG_FILE);
    let mut text = std::fs::read_to_string(&config_path).unwrap();
    text.push_str(&format!(
        "\n[[participant]]\nid = \"kerk-opvang\"\nname = \"Kerkelijke Opvang Utrecht\"\nrole = \"ngo\"\nspki_sha256 = \"{}\"\n",
        spki.to_ascii_uppercase()
    ));
    std::fs::write(&config_path, text).unwrap();
    let TestNode { dir, node, .. } = first;
    node.shutdown().await.expect("clean shutdown");
    let config = Config::load(&config_path).expect("config with a pinned key loads");
    let node = Node::start(&config).await.expect("restart");
    let second = TestNode { dir, config, node };

    let mut c = second.client_with(identity(&cert)).await.unwrap();
    let resp = c
        .cases
        .register_case(register_req())
        .await
        .expect("registered by key");
    let request_id = request_id_of(resp.metadata());
    let r = resp.into_inner();
    let rec = record_of(&second, &request_id).await;
    assert_eq!(rec.method, "RegisterCase");
    assert_eq!(rec.caller, "kerk-opvang");
    assert_eq!(rec.role, "ngo");
    assert_eq!(rec.decision, Decision::Allowed);
    assert_eq!(
        rec.peer_fingerprint, None,
        "a registered caller is named, not fingerprinted"
    );
    assert_eq!(rec.case_id.as_deref(), Some(r.case_id.as_str()));

    // The case is this participant's own: it can read it back.
    let view = c
        .cases
        .get_case(with_actor(by_id(&r.case_id, "case_consultation")))
        .await
        .expect("owner reads its case")
        .into_inner();
    assert_eq!(view.subject_pseudonym, r.subject_pseudonym);
}

#[tokio::test]
async fn every_answer_carries_a_uuidv7_request_id_matching_its_access_record() {
    let node = TestNode::start().await;
    let mut c = node.client(GEMEENTE).await;

    let ok = c
        .cases
        .register_case(with_actor(pb::RegisterCaseRequest {
            request_id: String::new(),
            data: Some(full_case("Test Persoon", "1234567890", "111222333")),
        }))
        .await
        .expect("register");
    let ok_id = request_id_of(ok.metadata());
    assert_eq!(
        ok.get_ref().access_record_id,
        ok_id,
        "body and metadata agree"
    );
    let case_id = ok.into_inner().case_id;

    let err = c
        .cases
        .get_case(with_actor(by_id(&case_id, "no-such-purpose")))
        .await
        .expect_err("unknown purpose");
    assert_eq!(err.code(), Code::InvalidArgument);
    let err_id = request_id_of(err.metadata());

    let read = c
        .cases
        .get_case(with_actor(by_id(&case_id, "case_consultation")))
        .await
        .expect("owner reads");
    let read_id = request_id_of(read.metadata());
    assert_eq!(read.get_ref().access_record_id, read_id);

    let ids = [
        (ok_id, "RegisterCase", "OK"),
        (err_id, "GetCase", "INVALID_ARGUMENT"),
        (read_id, "GetCase", "OK"),
    ];
    for (id, method, status) in &ids {
        let u = uuid::Uuid::try_parse(id).expect("a UUID");
        assert_eq!(u.get_version_num(), 7, "{id} is a UUIDv7");
        assert_eq!(&u.hyphenated().to_string(), id, "canonical lower-case form");
        let rec = record_of(&node, id).await;
        assert_eq!(rec.method, *method);
        assert_eq!(rec.status, *status);
        assert_eq!(rec.caller, GEMEENTE);
    }
    assert!(
        ids[0].0 != ids[1].0 && ids[1].0 != ids[2].0 && ids[0].0 != ids[2].0,
        "each request has its own id"
    );
}

/// A TCP connection that closes without a ClientHello (a load balancer's
/// port check, a scan) is counted but not written to the access log one by
/// one; a refused certificate still is.
#[tokio::test]
async fn a_connection_without_a_handshake_is_counted_not_logged() {
    use sluis::net::sources::Unauthenticated;
    let node = TestNode::start().await;
    let before = node.log_len().await;
    let silent = || node.node.sources.total(Unauthenticated::Silent);
    for _ in 0..3 {
        let s = tokio::net::TcpStream::connect(node.node.local_addr)
            .await
            .unwrap();
        drop(s);
    }
    for _ in 0..100 {
        if silent() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(silent(), 3);
    assert_eq!(
        node.log_len().await,
        before,
        "no access record for a bare TCP connect"
    );
    let rogue = CertAuthority::generate("rogue CA")
        .unwrap()
        .issue_client(&ClientCertSpec::new("Rogue", None))
        .unwrap();
    expect_refused(attempt(&node, identity(&rogue)).await, "unknown CA");
    node.wait_for_log(|r| r.method == "tls.handshake").await;
}
