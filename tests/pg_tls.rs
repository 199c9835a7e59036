//! PostgreSQL over TLS (`sslmode=verify-full` with a CA file), against a
//! private server this test starts with `ssl=on` and TCP over TLS only,
//! its certificate made here: a node connects and serves; a CA that did
//! not issue the server's certificate, a host name the certificate does
//! not name, and a plain connection are each refused with an error that
//! says so.

mod common;

use std::path::Path;

use common::private_pg::{PrivatePg, pg_bin};
use common::*;
use sluis::config::Config;
use sluis::dev::init;
use sluis::net::pki::write_dev_pki;
use sluis::node::Node;
use sluis::rpc::Clients;

/// Tests that start a PostgreSQL server: ignored (visibly) in a plain
/// `cargo test`, run by the PostgreSQL pass (`-- --ignored postgres_only`).
mod postgres_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "starts a private PostgreSQL server (initdb, pg_ctl): run with `-- --ignored postgres_only` (as .ci/run does)"]
    async fn verify_full_with_a_ca_file_connects_and_refuses_a_wrong_ca() {
        super::verify_full_with_a_ca_file_connects_and_refuses_a_wrong_ca().await;
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

/// What a node says when it cannot start on `database`.
async fn refused(config: &Config, database: String) -> String {
    let mut config = config.clone();
    config.node.database = database;
    match Node::start(&config).await {
        Ok(_) => panic!("a node started on {}", config.node.database),
        Err(e) => sluis::telemetry::chain(&e),
    }
}

async fn verify_full_with_a_ca_file_connects_and_refuses_a_wrong_ca() {
    assert!(
        pg_bin().is_some(),
        "this test starts a private PostgreSQL server: install the server binaries (initdb, pg_ctl)"
    );
    // The server's CA and certificate (for "localhost"), and another CA.
    let certs = tempfile::tempdir().unwrap();
    let localhost = ["localhost".to_string()];
    let server = write_dev_pki(&certs.path().join("server"), &localhost, &[]).unwrap();
    let other = write_dev_pki(&certs.path().join("other"), &localhost, &[]).unwrap();
    let pg = PrivatePg::init_tls(&read(&server.node_cert), &read(&server.node_key));
    let verify_full = |host: &str, ca: &Path| {
        format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            pg.url_at(host),
            ca.display()
        )
    };

    let dir = tempfile::tempdir().unwrap();
    let path = init::init(dir.path(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut config = Config::load(&path).unwrap();

    // Refused, each saying why, before anything is written.
    // (Each development CA has a name of its own, so rustls finds no
    // issuer for the server's certificate among the roots given.)
    let wrong_ca = refused(&config, verify_full("localhost", &other.ca_cert)).await;
    assert!(
        wrong_ca.contains("invalid peer certificate: UnknownIssuer")
            && wrong_ca.contains("sslrootcert must be the CA that issued it"),
        "{wrong_ca}"
    );
    let wrong_name = refused(&config, verify_full("127.0.0.1", &server.ca_cert)).await;
    assert!(
        wrong_name.contains("certificate not valid for name \"127.0.0.1\"")
            && wrong_name.contains("a name the certificate carries"),
        "{wrong_name}"
    );
    let plain = refused(
        &config,
        format!("{}?sslmode=disable", pg.url_at("localhost")),
    )
    .await;
    assert!(plain.contains("pg_hba.conf"), "{plain}");

    // verify-full with the server's CA: the node starts, serves, records.
    config.node.database = verify_full("localhost", &server.ca_cert);
    let node = Node::start(&config)
        .await
        .expect("a node on PostgreSQL over TLS");
    let mut gemeente = Clients::new(
        channel_as(node.local_addr, dir.path(), GEMEENTE)
            .await
            .unwrap(),
    );
    let (case_id, _) = register(&mut gemeente).await;
    assert_eq!(own_cases(&mut gemeente).await, [case_id]);
    node.shutdown().await.unwrap();
    let report = verify_log_of(&config).await;
    assert!(report.intact(), "{:?}", report.first_problem());
    assert!(report.entries > 0);
}
