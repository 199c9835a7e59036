//! Several CRLs from one issuer: the newest decides, at start and at every
//! reload, for new and for open connections, whether the newer CRL is
//! appended to the same file or sits in a file of its own. A set in which
//! no CRL can be said to be the newest is refused, naming the files, and a
//! reload that is refused keeps the configuration that worked.

mod common;

use common::*;
use sluis::config::Config;
use sluis::net::pki::CertAuthority;
use sluis::net::x509;
use sluis::tlog::AccessRecord;
use time::{Duration, OffsetDateTime};
use tonic::Code;

/// A well-formed case id that no node has issued.
const UNKNOWN_CASE: &str = "0190c4e2-7b1a-4c3e-9f00-1a2b3c4d5e6f";

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// The CA of a node folder.
fn ca_of(dir: &std::path::Path) -> CertAuthority {
    CertAuthority::from_pem(
        &read(&dir.join("pki/ca.pem")),
        &read(&dir.join("pki/ca.key")),
    )
    .unwrap()
}

/// The serial number of a dev participant's certificate, as a CRL lists it.
fn serial_of(dir: &std::path::Path, participant: &str) -> Vec<u8> {
    let pem = read(&dir.join(format!("pki/clients/{participant}.pem")));
    let der = pem_to_der(&pem);
    x509::serial_number(&der).unwrap().to_vec()
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

/// A new CRL of the node's CA revoking dtv's certificate (numbered above
/// the one `sluis init` wrote).
fn crl_revoking_dtv(dir: &std::path::Path) -> String {
    ca_of(dir)
        .crl_pem(&[serial_of(dir, "dtv")], Duration::days(7))
        .unwrap()
}

/// One GetCase as dtv over `c`: `Ok` if the API answered (any status but
/// UNAUTHENTICATED), `Err` with what refused it otherwise.
async fn as_dtv(c: &mut sluis::rpc::Clients) -> Result<(), String> {
    match c
        .cases
        .get_case(with_actor(by_id(UNKNOWN_CASE, "return")))
        .await
    {
        Err(s) if s.code() == Code::NotFound => Ok(()),
        Err(s) => Err(format!("{:?}: {}", s.code(), s.message())),
        Ok(_) => Ok(()),
    }
}

/// A new connection as dtv, and one call on it.
async fn new_connection_as_dtv(node: &TestNode) -> Result<(), String> {
    let dtv = (
        read(&node.pki().join("clients/dtv.pem")),
        read(&node.pki().join("clients/dtv.key")),
    );
    match node.client_with(Some(dtv)).await {
        Ok(mut c) => as_dtv(&mut c).await,
        Err(e) => Err(format!("connect: {e}")),
    }
}

/// The example: `pki/crl.pem` holds the original empty CRL followed
/// by a newer CRL from the same CA revoking dtv's serial; after SIGHUP dtv
/// is refused on new connections, and its open connection is refused on
/// its next request — data service and health alike. (Before, webpki
/// consulted only the first CRL of the issuer and dtv went on.)
#[tokio::test]
async fn a_newer_crl_appended_to_the_same_file_revokes_on_new_and_open_connections() {
    let node = TestNode::start().await;
    let mut open = node.client("dtv").await;
    as_dtv(&mut open).await.expect("dtv is served before");
    new_connection_as_dtv(&node)
        .await
        .expect("and on a new connection");

    let crl = node.pki().join("crl.pem");
    let appended = read(&crl) + &crl_revoking_dtv(node.dir.path());
    std::fs::write(&crl, appended).unwrap();
    node.node.reload_tls().expect("reload (SIGHUP)");

    let refused = new_connection_as_dtv(&node)
        .await
        .expect_err("a revoked certificate must not get a new connection");
    eprintln!("new connection: {refused}");
    let fp = x509::cert_sha256_hex(&pem_to_der(&read(&node.pki().join("clients/dtv.pem"))));
    let row = node.wait_for_log(|r| r.method == "tls.handshake").await;
    let rec = AccessRecord::decode(&row.record).unwrap();
    assert_eq!(rec.peer_fingerprint.as_deref(), Some(fp.as_str()));
    assert!(
        rec.detail.to_lowercase().contains("revoked"),
        "{}",
        rec.detail
    );

    let on_open = as_dtv(&mut open)
        .await
        .expect_err("the open connection's next request is refused");
    assert!(on_open.contains("Unauthenticated"), "{on_open}");
    let health = tonic_health::pb::health_client::HealthClient::new(open.channel())
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect_err("no service answers a revoked certificate");
    assert_eq!(health.code(), Code::Unauthenticated, "{health:?}");

    // Others of the same CA are not affected.
    let mut gemeente = node.client(GEMEENTE).await;
    gemeente
        .cases
        .get_case(with_actor(by_id(UNKNOWN_CASE, "case_consultation")))
        .await
        .expect_err("unknown case");
}

/// `crl = ["pki/crl.pem", "pki/crl2.pem"]`, the newer CRL in the second
/// file (or the first): dtv is refused from the start, without SIGHUP.
#[tokio::test]
async fn a_newer_crl_in_a_second_file_revokes_from_the_start() {
    for newer_first in [false, true] {
        let node = TestNode::start_with(|config: &mut Config| {
            let dir = config.base_dir.clone();
            std::fs::write(dir.join("pki/crl2.pem"), crl_revoking_dtv(&dir)).unwrap();
            let second = std::path::PathBuf::from("pki/crl2.pem");
            if newer_first {
                config.tls.crl.insert(0, second);
            } else {
                config.tls.crl.push(second);
            }
        })
        .await;
        let refused = new_connection_as_dtv(&node).await;
        assert!(refused.is_err(), "newer first: {newer_first}: {refused:?}");
        new_connection_as_dtv_is_not_everyone(&node).await;
    }
}

async fn new_connection_as_dtv_is_not_everyone(node: &TestNode) {
    let mut c = node.client(NGO).await;
    c.cases
        .get_case(with_actor(by_id(UNKNOWN_CASE, "guidance")))
        .await
        .expect_err("unknown case, but answered");
}

/// Two different CRLs from one CA that claim the same CRL number and
/// thisUpdate: neither is the newer, so the set is refused, naming both
/// files — at reload (the node keeps serving with what it had) and at start.
#[tokio::test]
async fn two_different_crls_with_one_number_are_refused_naming_the_files() {
    let node = TestNode::start().await;
    let dir = node.dir.path().to_path_buf();
    let current = pem_to_der(&read(&dir.join("pki/crl.pem")));
    let fields = x509::crl_fields(&current).unwrap();
    let number = fields
        .crl_number
        .unwrap()
        .iter()
        .fold(0u64, |n, &b| (n << 8) | u64::from(b));
    let this_update = OffsetDateTime::from_unix_timestamp(fields.this_update).unwrap();
    let twin = ca_of(&dir)
        .crl_pem_numbered(
            &[serial_of(&dir, "dtv")],
            number,
            this_update,
            this_update + Duration::days(7),
        )
        .unwrap();
    std::fs::write(dir.join("pki/crl2.pem"), twin).unwrap();
    let mut text = read(&node.config_path());
    text = text.replace(
        "crl = [\"pki/crl.pem\"]",
        "crl = [\"pki/crl.pem\", \"pki/crl2.pem\"]",
    );
    std::fs::write(node.config_path(), &text).unwrap();

    // What SIGHUP does: re-read the configured files.
    let config = Config::load(&node.config_path()).unwrap();
    let err = sluis::net::tls::server_config(&config.tls_files(), None)
        .expect_err("an ambiguous set is refused")
        .to_string();
    assert!(
        err.contains("crl.pem") && err.contains("crl2.pem"),
        "names both files: {err}"
    );
    // The running node's reload reads the files it started with; point it
    // at the ambiguous pair by appending the twin to its own file.
    let crl = dir.join("pki/crl.pem");
    let original = read(&crl);
    std::fs::write(&crl, original.clone() + &read(&dir.join("pki/crl2.pem"))).unwrap();
    let err = node
        .node
        .reload_tls()
        .expect_err("reload refused")
        .to_string();
    assert!(err.contains("crl.pem"), "{err}");
    new_connection_as_dtv(&node)
        .await
        .expect("the configuration that worked stays in force");

    // And at start, with the two files.
    std::fs::write(&crl, original).unwrap();
    let TestNode { node: running, .. } = node;
    running.shutdown().await.unwrap();
    let err = match sluis::node::Node::start(&config).await {
        Ok(_) => panic!("a node with an ambiguous CRL set must not start"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("crl2.pem"), "{err}");
}

/// The review's example: after a newer CRL revoked dtv, emptying the CRL
/// file (or putting back only the older CRL) and SIGHUP re-admitted dtv
/// with "reloaded" in the log. Now such a reload is refused, naming the
/// issuer, and the running CRLs stay in force.
#[tokio::test]
async fn a_reload_that_would_un_revoke_is_refused_and_the_running_crls_kept() {
    let node = TestNode::start().await;
    let crl = node.pki().join("crl.pem");
    let original = read(&crl);
    std::fs::write(&crl, original.clone() + &crl_revoking_dtv(node.dir.path())).unwrap();
    node.node.reload_tls().expect("reload with the newer CRL");
    new_connection_as_dtv(&node)
        .await
        .expect_err("dtv is revoked");

    std::fs::write(&crl, "").unwrap();
    let emptied = node.node.reload_tls().expect_err("an emptied CRL file");
    assert!(emptied.to_string().contains("no longer hold"), "{emptied}");
    std::fs::write(&crl, &original).unwrap();
    let rolled_back = node.node.reload_tls().expect_err("only the older CRL");
    assert!(
        rolled_back
            .to_string()
            .contains("older than the one in force"),
        "{rolled_back}"
    );
    new_connection_as_dtv(&node)
        .await
        .expect_err("dtv stays revoked: the running CRLs are kept");
}

/// A client CA without any CRL served with no warning; now it is refused
/// at start, naming the CA, unless `tls.allow_missing_crl` says so.
#[tokio::test]
async fn a_client_ca_without_a_crl_is_refused_unless_allowed() {
    let node = TestNode::start().await;
    let mut config = node.config.clone();
    config.tls.crl.clear();
    let err = sluis::net::tls::server_config(&config.tls_files(), None)
        .expect_err("no CRL for the client CA");
    assert!(err.to_string().contains("tls.allow_missing_crl"), "{err}");
    config.tls.allow_missing_crl = true;
    sluis::net::tls::server_config(&config.tls_files(), None).expect("allowed explicitly");
}

/// The review's example of a reload that read the files named at start: a
/// CRL added to the `tls.crl` list in sluis.toml and a SIGHUP (the whole
/// reload, as the signal runs it) left dtv served until a restart. The
/// reload now reads the files the new configuration names.
#[tokio::test]
async fn a_crl_added_to_the_list_counts_from_the_reload() {
    let node = TestNode::start().await;
    new_connection_as_dtv(&node)
        .await
        .expect("dtv is served before");
    std::fs::write(
        node.pki().join("crl2.pem"),
        crl_revoking_dtv(node.dir.path()),
    )
    .unwrap();
    let text = read(&node.config_path());
    assert!(text.contains("crl = [\"pki/crl.pem\"]"), "{text}");
    std::fs::write(
        node.config_path(),
        text.replace(
            "crl = [\"pki/crl.pem\"]",
            "crl = [\"pki/crl.pem\", \"pki/crl2.pem\"]",
        ),
    )
    .unwrap();
    node.node
        .reload(&node.config_path())
        .await
        .expect("reload (SIGHUP)");
    new_connection_as_dtv(&node)
        .await
        .expect_err("the CRL the new list names must revoke dtv");
    // And a later reload of the TLS files alone keeps the new list.
    node.node.reload_tls().expect("reload the same files");
    new_connection_as_dtv(&node)
        .await
        .expect_err("still revoked after a TLS-only reload");
}
