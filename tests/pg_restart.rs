//! PostgreSQL restarted under load, on a private server this test starts
//! itself (initdb + pg_ctl, its own data directory and port), so the shared
//! server and the other tests are untouched. While the database is down,
//! requests fail closed (UNAVAILABLE, nothing released) and health says
//! NOT_SERVING; when it returns, the node recovers by itself, and no
//! acknowledged record is lost. The plain probes listener says the same
//! without a certificate, and the node logs why.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::private_pg::{PrivatePg, pg_bin};
use common::*;
use sluis::config::Config;
use sluis::dev::init;
use sluis::net::client::{self, ClientPem};
use sluis::node::Node;
use sluis::rpc::proto::v1 as pb;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

async fn health(channel: tonic::transport::Channel) -> Option<ServingStatus> {
    let r = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .ok()?;
    ServingStatus::try_from(r.into_inner().status).ok()
}

async fn wait_health(channel: &tonic::transport::Channel, want: ServingStatus) {
    for _ in 0..100 {
        if health(channel.clone()).await == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("health never became {want:?}");
}

/// Tests that need PostgreSQL: ignored (visibly) in a plain `cargo test`,
/// run by the PostgreSQL pass (`-- --ignored postgres_only`).
mod postgres_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL: run with SLUIS_TEST_BACKEND=postgres and `-- --ignored postgres_only` (as .ci/run does)"]
    async fn database_restart_fails_closed_and_recovers_by_itself() {
        super::database_restart_fails_closed_and_recovers_by_itself().await;
    }
}

async fn database_restart_fails_closed_and_recovers_by_itself() {
    require_postgres();
    assert!(
        pg_bin().is_some(),
        "this test starts a private PostgreSQL server: install the server binaries (initdb, pg_ctl)"
    );
    let logs = Captured::install("info");
    let server = PrivatePg::init();
    let dir = tempfile::tempdir().unwrap();
    let path = init::init(dir.path(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut config = Config::load(&path).unwrap();
    config.node.database = server.url();
    config.database.acquire_timeout_ms = 500;
    let node = Node::start(&config).await.unwrap();
    let pki = dir.path().join("pki");
    let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
    let pem = |who: &str| ClientPem {
        ca: read(pki.join("ca.pem")),
        identity: Some((
            read(pki.join(format!("clients/{who}.pem"))),
            read(pki.join(format!("clients/{who}.key"))),
        )),
    };
    let channel = client::connect(node.local_addr, "localhost", &pem(GEMEENTE))
        .await
        .unwrap();
    let mut gemeente = sluis::rpc::Clients::new(channel.clone());
    let mut ngo = sluis::rpc::Clients::new(
        client::connect(node.local_addr, "localhost", &pem(NGO))
            .await
            .unwrap(),
    );
    let (case_id, _) = register(&mut gemeente).await;
    grant(
        &mut gemeente,
        &case_id,
        vec![participant(NGO)],
        &[pb::Category::Shelter],
        &["shelter"],
    )
    .await;
    let mut acked = Vec::new();
    for _ in 0..20 {
        let r = ngo
            .cases
            .get_case(by_id(&case_id, "shelter"))
            .await
            .unwrap();
        acked.push(request_id(&r));
    }
    assert_eq!(health(channel.clone()).await, Some(ServingStatus::Serving));
    let probes = tonic::transport::Endpoint::from_shared(format!(
        "http://{}",
        node.probes_addr.expect("init writes a probes listener")
    ))
    .unwrap()
    .connect()
    .await
    .unwrap();
    assert_eq!(health(probes.clone()).await, Some(ServingStatus::Serving));

    server.stop();
    // Fail closed, and at once: every request while the database is down is
    // UNAVAILABLE with advice to retry, within about acquire_timeout (500
    // ms) — never INTERNAL, never after seconds — with several clients
    // looping, as the outside test ran it.
    let officer = sluis::rpc::Clients::new(
        client::connect(node.local_addr, "localhost", &pem("fg-utrecht"))
            .await
            .unwrap(),
    );
    let clients = [ngo.clone(), gemeente.clone(), officer.clone(), ngo.clone()];
    let outage = Instant::now() + Duration::from_secs(3);
    let mut loops = Vec::new();
    for (n, mut c) in clients.into_iter().enumerate() {
        let case_id = case_id.clone();
        loops.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            while Instant::now() < outage {
                let started = Instant::now();
                let e = match n {
                    1 => c
                        .cases
                        .register_case(with_actor(pb::RegisterCaseRequest {
                            request_id: String::new(),
                            data: Some(full_case("Uitval Test", "3234567890", "")),
                        }))
                        .await
                        .map(drop),
                    2 => c
                        .audit
                        .query_access(pb::QueryAccessRequest {
                            case_id: case_id.clone(),
                            ..Default::default()
                        })
                        .await
                        .map(drop),
                    _ => c.cases.get_case(by_id(&case_id, "shelter")).await.map(drop),
                }
                .expect_err("nothing is answered while the database is down");
                answers.push((started.elapsed(), e));
                // A client that heeds the advice waits; this one hurries.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answers
        }));
    }
    let (mut refused, mut slowest) = (0, Duration::ZERO);
    for l in loops {
        for (took, e) in l.await.unwrap() {
            refused += 1;
            slowest = slowest.max(took);
            assert_eq!(e.code(), Code::Unavailable, "{e:?}");
            assert!(e.message().contains("retry in"), "{e:?}");
            assert!(
                took < Duration::from_millis(500 + 400),
                "answered after {took:?}, acquire_timeout is 500 ms: {e:?}"
            );
            assert!(e.metadata().get("x-request-id").is_some(), "{e:?}");
        }
    }
    assert!(refused >= 20, "{refused} requests during the outage");
    eprintln!("{refused} requests refused during the outage, the slowest after {slowest:?}");
    wait_health(&channel, ServingStatus::NotServing).await;
    // Without a certificate, on the probes listener, too; the reason is in
    // the node's log.
    wait_health(&probes, ServingStatus::NotServing).await;
    assert!(logs.has("NOT_SERVING: the database is unreachable"));

    server.start();
    // Recovers by itself: the same node, the same connections. Until it
    // does, refusals are still UNAVAILABLE.
    let mut recovered = false;
    for _ in 0..100 {
        match ngo.cases.get_case(by_id(&case_id, "shelter")).await {
            Ok(r) => {
                assert_eq!(r.get_ref().released.len(), 1);
                acked.push(request_id(&r));
                recovered = true;
                break;
            }
            Err(e) => assert_eq!(e.code(), Code::Unavailable, "{e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "the node answers again once the database is back"
    );
    for _ in 0..20 {
        let r = ngo
            .cases
            .get_case(by_id(&case_id, "shelter"))
            .await
            .unwrap();
        acked.push(request_id(&r));
    }
    wait_health(&channel, ServingStatus::Serving).await;
    wait_health(&probes, ServingStatus::Serving).await;

    // No acknowledged record lost, and the log verifies.
    let rows = node.store.access_log(0, 100_000).await.unwrap();
    for id in &acked {
        assert!(
            rows.iter().any(|r| &r.request_id == id),
            "acknowledged {id} is in the log"
        );
    }
    let key = node.verifier_key();
    node.shutdown().await.unwrap();
    let (store, _) = sluis::store::Store::open(&server.url(), &Default::default(), false)
        .await
        .unwrap();
    let report = sluis::tlog::verify::verify_log(&store, &key, None, |_, _| {})
        .await
        .unwrap();
    assert!(report.intact(), "{:?}", report.problems);
    store.close().await;
}
