//! The monitor's figures over the whole federation (`network = true`) on
//! three real nodes: the monitor's home node adds up the tables every node
//! published, a cell "< 10" or "x" at any node is "x" nationally, every
//! node that answered records the request, a node refuses a network
//! request from another node (one hop), and a node that does not answer is
//! named rather than silently left out of the totals.

mod common;

use common::federation::*;
use common::*;
use sluis::federation::directory::Host;
use sluis::rpc::proto::v1 as pb;
use tonic::Code;

const MONITOR: &str = "monitor-jenv";

/// `n` cases at `node`, by the municipality, with intakes in 2025 Q1 and the
/// scenarios given as (scenario, how many).
async fn cases_at(node: &Started, first: usize, mix: &[(pb::PerspectiveKind, usize)]) {
    cases_by(node, GEMEENTE, first, mix).await;
}

/// The same, registered by `municipality`.
async fn cases_by(
    node: &Started,
    municipality: &str,
    first: usize,
    mix: &[(pb::PerspectiveKind, usize)],
) {
    let mut gemeente = node.client(municipality).await;
    register_intakes(&mut gemeente, mix, first, 7_100_000_000).await;
}

fn inflow(network: bool) -> pb::GetStatisticsRequest {
    pb::GetStatisticsRequest {
        table: pb::StatisticsTable::Inflow as i32,
        year: 2025,
        quarter: 1,
        by_municipality: false,
        purpose: "monitoring".into(),
        network,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_figures_add_up_what_each_node_published() {
    let (key, nodes, mut dir_nodes) = started_network().await;
    // The monitor is hosted at A.
    dir_nodes[0].hosts.push(Host {
        participant: MONITOR.into(),
        role: "monitor".into(),
    });
    let d = reissue(
        &dir_nodes,
        2,
        time::OffsetDateTime::now_utc() + time::Duration::days(30),
    );
    write_directory(&nodes.iter().collect::<Vec<_>>(), &key, &d).await;
    use pb::PerspectiveKind as P;
    cases_at(
        &nodes[0],
        0,
        &[
            (P::Legalisation, 30),
            (P::Return, 20),
            (P::OnwardMigration, 15),
            (P::Undetermined, 15),
        ],
    )
    .await;
    cases_at(
        &nodes[1],
        100,
        &[
            (P::Legalisation, 25),
            (P::Return, 15),
            (P::OnwardMigration, 15),
            (P::Undetermined, 20),
        ],
    )
    .await;
    cases_at(
        &nodes[2],
        200,
        &[
            (P::Legalisation, 30),
            (P::Return, 20),
            (P::OnwardMigration, 15),
            (P::Undetermined, 20),
        ],
    )
    .await;

    // C's second municipality: a node protects each municipality's slice
    // too, so one without cases would hide C's figures.
    cases_by(
        &nodes[2],
        AMSTERDAM,
        300,
        &[
            (P::Legalisation, 20),
            (P::Return, 15),
            (P::OnwardMigration, 15),
            (P::Undetermined, 15),
        ],
    )
    .await;
    let mut monitor = nodes[0].client(MONITOR).await;
    let national = monitor
        .stats
        .get_statistics(with_actor(inflow(true)))
        .await
        .expect("network figures")
        .into_inner();
    assert_eq!(national.nodes, vec![A, B, C]);
    assert!(
        national.missing_nodes.is_empty(),
        "{:?}",
        national.missing_nodes
    );

    // Each node's own table, as the monitor gets it there (published once,
    // so the same figures the network request added up).
    let mut own = Vec::new();
    own.push(
        monitor
            .stats
            .get_statistics(with_actor(inflow(false)))
            .await
            .unwrap()
            .into_inner(),
    );
    for n in &nodes[1..] {
        let ch = node_channel(&nodes[0], n).await;
        let mut c = pb::statistics_service_client::StatisticsServiceClient::new(ch);
        own.push(
            c.get_statistics(asserting(with_actor(inflow(false)), MONITOR, "monitor"))
                .await
                .expect("a peer answers the monitor's home node")
                .into_inner(),
        );
    }
    use pb::statistics_figure::Kind;
    let mut counts = 0;
    for (i, f) in national.figures.iter().enumerate() {
        let parts: Vec<&pb::StatisticsFigure> = own.iter().map(|t| &t.figures[i]).collect();
        if parts.iter().all(|p| p.kind == Kind::Count as i32) {
            assert_eq!(f.kind, Kind::Count as i32, "cell {i}");
            assert_eq!(
                f.count,
                parts.iter().map(|p| p.count).sum::<u64>(),
                "cell {i}"
            );
            counts += 1;
        } else {
            assert_eq!(f.kind, Kind::Suppressed as i32, "cell {i}");
            assert_eq!(f.shown, "x");
        }
    }
    assert!(
        counts > 0,
        "some national cell is a count:\n{}\n{}\n{}\n{}",
        national.text,
        own[0].text,
        own[1].text,
        own[2].text
    );
    // The total is "x" at a node (it also counts cases in no listed
    // category, none here, so it would give that "< 10" away): "x"
    // nationally. ("< 10" at one node: `stats::national`'s tests.)
    let rows = national.rows.as_ref().unwrap();
    let total = rows.labels.iter().position(|l| l.key == "total").unwrap();
    assert_eq!(own[2].figures[total].kind, Kind::Suppressed as i32);
    assert_eq!(national.figures[total].kind, Kind::Suppressed as i32);
    assert!(!national.text.contains("INCOMPLETE"), "{}", national.text);
    // Its headings and notes say what a national table is: the total of
    // every node, and an "x" that is some node's own suppression.
    let columns = national.columns.as_ref().unwrap();
    assert_eq!(columns.labels[0].words, "all nodes of the federation");
    assert!(
        national
            .text
            .contains("at least one node shows this figure"),
        "{}",
        national.text
    );
    assert!(
        !national
            .text
            .contains("that one municipality holds most of"),
        "the node-level legend: {}",
        national.text
    );
    assert_eq!(
        national.text.matches("nodes added up").count(),
        1,
        "{}",
        national.text
    );
    // The home node's record says the request was national and which
    // nodes it added up, durable before the answer left.
    let home = nodes[0].record(&national.access_record_id).await;
    assert!(
        home.detail.contains("network: 3 nodes added up, 0 missing"),
        "{}",
        home.detail
    );
    assert!(
        home.detail
            .contains(&format!("nodes added up (3): {A}, {B}, {C}")),
        "{}",
        home.detail
    );

    // Every node that answered recorded the request under its id.
    for n in &nodes {
        let rs = n.records(&national.access_record_id).await;
        assert!(
            rs.iter().any(|r| r.method == "GetStatistics"),
            "a record at {}",
            n.id
        );
    }

    // One hop: a node asking another for network figures is refused, and
    // the refusal is recorded there.
    let ch = node_channel(&nodes[0], &nodes[1]).await;
    let mut c = pb::statistics_service_client::StatisticsServiceClient::new(ch);
    let e = c
        .get_statistics(asserting(with_actor(inflow(true)), MONITOR, "monitor"))
        .await
        .expect_err("a network request from a peer");
    assert_eq!(e.code(), Code::PermissionDenied, "{}", e.message());
    assert!(e.message().contains("one hop"), "{}", e.message());
    let id = e.metadata().get("x-request-id").unwrap().to_str().unwrap();
    assert_eq!(nodes[1].record(id).await.method, "GetStatistics");

    // Only the monitor asks for network figures.
    let mut gemeente = nodes[0].client(GEMEENTE).await;
    let e = gemeente
        .stats
        .get_statistics(with_actor(inflow(true)))
        .await
        .expect_err("a municipality asking for network figures");
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());

    // A node that is down is named; its cases are not silently dropped.
    let mut nodes = nodes;
    let c_node = nodes.pop().unwrap();
    c_node.node.shutdown().await.unwrap();
    let partial = monitor
        .stats
        .get_statistics(with_actor(inflow(true)))
        .await
        .expect("network figures without C")
        .into_inner();
    assert_eq!(partial.nodes, vec![A, B]);
    assert_eq!(partial.missing_nodes.len(), 1);
    assert!(
        partial.missing_nodes[0].starts_with(C),
        "{:?}",
        partial.missing_nodes
    );
    assert!(partial.text.contains("INCOMPLETE"), "{}", partial.text);
    let home = nodes[0].record(&partial.access_record_id).await;
    assert!(
        home.detail.contains("2 nodes added up, 1 missing")
            && home.detail.contains("(INCOMPLETE)")
            && home.detail.contains(&format!("missing (1): {C}: ")),
        "{}",
        home.detail
    );

    // The same from the command line: `sluis stats --network`, whose exit
    // status says the figures are incomplete; as text it names the nodes
    // once.
    let pki = nodes[0].dir.path().join("pki");
    let addr = nodes[0].node.local_addr.to_string();
    let run = |format: &'static str| {
        let (pki, addr) = (pki.clone(), addr.clone());
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_sluis"))
                .arg("stats")
                .arg("--node")
                .arg(&addr)
                .arg("--ca")
                .arg(pki.join("ca.pem"))
                .arg("--cert")
                .arg(pki.join(format!("clients/{MONITOR}.pem")))
                .arg("--key")
                .arg(pki.join(format!("clients/{MONITOR}.key")))
                .args([
                    "--actor",
                    ACTOR,
                    "--table",
                    "inflow",
                    "--year",
                    "2025",
                    "--quarter",
                    "1",
                ])
                .args(["--network", "--format", format])
                .output()
                .unwrap()
        })
    };
    let text = run("text").await.unwrap();
    let both = format!(
        "{}{}",
        String::from_utf8_lossy(&text.stdout),
        String::from_utf8_lossy(&text.stderr)
    );
    assert_eq!(text.status.code(), Some(3), "{both}");
    assert_eq!(both.matches("nodes added up").count(), 1, "{both}");
    assert_eq!(both.matches("INCOMPLETE").count(), 1, "{both}");
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_sluis"))
        .args(["stats", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("3 (--network only)"), "{help}");
    let out = run("json").await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["nodes"], serde_json::json!([A, B]), "{json}");
    assert!(
        json["missing_nodes"][0].as_str().unwrap().starts_with(C),
        "{json}"
    );
    assert!(stderr.contains("INCOMPLETE"), "{stderr}");
}

/// The home node asks its peers at once, not one after another: three
/// peers that take the connection and never answer cost the monitor one
/// peer's wait (the node's connect timeout, 10 s), not three; each is
/// named in `missing_nodes`, and the peers that answer are added up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_are_asked_at_once() {
    let (key, nodes, mut dir_nodes) = started_network().await;
    dir_nodes[0].hosts.push(Host {
        participant: MONITOR.into(),
        role: "monitor".into(),
    });
    // Three listeners that accept and then say nothing, ever.
    let mut silent = Vec::new();
    for i in 1..=3u8 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        silent.push(tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        }));
        let id = format!("gm090{i}");
        dir_nodes.push(sluis::federation::directory::DirectoryNode {
            id: id.clone(),
            municipality_code: format!("GM090{i}"),
            municipality: format!("Stil {i}"),
            endpoint: addr.to_string(),
            server_name: "localhost".into(),
            tls_spki_sha256: format!("{:064x}", u128::from(i)),
            tls_ca_sha256: dir_nodes[1].tls_ca_sha256.clone(),
            log_key: sluis::tlog::note::verifier_key(&id, &[i; 32]),
            witness_key: None,
            hosts: vec![],
        });
    }
    let d = reissue(
        &dir_nodes,
        2,
        time::OffsetDateTime::now_utc() + time::Duration::days(30),
    );
    write_directory(&nodes.iter().collect::<Vec<_>>(), &key, &d).await;
    let mut monitor = nodes[0].client(MONITOR).await;
    let started = std::time::Instant::now();
    let national = monitor
        .stats
        .get_statistics(with_actor(inflow(true)))
        .await
        .expect("network figures")
        .into_inner();
    let took = started.elapsed();
    assert_eq!(national.nodes, vec![A, B, C]);
    assert_eq!(
        national.missing_nodes.len(),
        3,
        "{:?}",
        national.missing_nodes
    );
    for (m, i) in national.missing_nodes.iter().zip(1..) {
        assert!(m.starts_with(&format!("gm090{i}: ")), "{m}");
    }
    assert!(
        took < std::time::Duration::from_secs(20),
        "three silent peers cost {took:?}: they were asked one after another"
    );
    for s in silent {
        s.abort();
    }
}
