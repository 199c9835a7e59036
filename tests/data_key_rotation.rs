//! Rotating the data key (the key-encryption key that wraps every case's
//! own key): `sluis keys rotate-data` writes a new version, the node
//! re-wraps the case keys under it while it serves — progress kept in the
//! database, so an interrupted run goes on where it stopped — every case
//! still opens, and once done the old version's file can be removed.
//! Recorded in the access log; `audit verify` passes. Both backends
//! (PostgreSQL when `SLUIS_TEST_POSTGRES_URL` is set).

mod common;

use std::process::Command;

use common::*;
use sluis::node::Node;
use sluis::rpc::Clients;
use sluis::rpc::proto::v1 as pb;

const CASES: usize = 40;

fn by_id(case_id: &str) -> pb::GetCaseRequest {
    pb::GetCaseRequest {
        subject: Some(pb::get_case_request::Subject::CaseId(case_id.into())),
        purpose: "case_consultation".into(),
        categories: vec![],
        emergency_justification: String::new(),
    }
}

/// Every case opens for its owner, with its identity.
async fn all_open(owner: &mut Clients, cases: &[String]) {
    for id in cases {
        let read = owner
            .cases
            .get_case(with_actor(by_id(id)))
            .await
            .unwrap_or_else(|s| panic!("case {id} does not open: {s:?}"))
            .into_inner();
        assert_eq!(read.data.unwrap().identity.unwrap().name, "Test Persoon");
    }
}

fn quiet(_: &str) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_under_load_interrupt_resume_and_remove_the_old_key() {
    let mut node = TestNode::start().await;
    let mut owner = node.client(GEMEENTE).await;
    let mut cases = Vec::new();
    for _ in 0..CASES {
        cases.push(register(&mut owner).await.0);
    }
    let keys_dir = node.config.path(&node.config.node.keys_dir);
    let config_path = node.config_path();

    // The operator's command writes version 2 and says what happens next.
    let out = Command::new(env!("CARGO_BIN_EXE_sluis"))
        .args(["keys", "rotate-data", "--config"])
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("data key version 2"), "{said}");
    assert!(keys_dir.join("data.v2.key").exists());
    node.node.reload_data_keys().unwrap();
    let status = node.node.upkeep().key_status().await.unwrap();
    assert_eq!(status.current, 2);
    assert_eq!(status.pending(), CASES as i64);
    assert!(status.removable().is_empty(), "{status:?}");

    // Under load: reads of every case and new registrations while the job
    // runs; it stops after 16 keys, as a crash between two batches would
    // leave it (each batch is its own transaction).
    let load = {
        let mut reader = node.client(GEMEENTE).await;
        let cases = cases.clone();
        tokio::spawn(async move {
            let mut registered = Vec::new();
            for _ in 0..3 {
                all_open(&mut reader, &cases).await;
                registered.push(register(&mut reader).await.0);
            }
            registered
        })
    };
    let lines = std::sync::Mutex::new(Vec::new());
    let progress = |l: &str| lines.lock().unwrap().push(l.to_string());
    let left = node
        .node
        .upkeep()
        .rewrap_case_keys(Some(16), &progress)
        .await
        .unwrap();
    let registered = load.await.unwrap();
    assert_eq!(left, CASES as i64 - 16);
    assert!(
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("16 of 40 case keys re-wrapped")),
        "a progress line: {lines:?}"
    );
    cases.extend(registered);
    let status = node.node.upkeep().key_status().await.unwrap();
    assert_eq!(status.pending(), CASES as i64 - 16, "{status:?}");
    assert!(status.removable().is_empty(), "version 1 still wraps keys");

    // The node stops mid-rotation and starts again: what is left is read
    // from the database, and the node goes on from there by itself.
    let config = node.config.clone();
    node.node.shutdown().await.unwrap();
    node.node = Node::start(&config).await.unwrap();
    let mut owner = node.client(GEMEENTE).await;
    all_open(&mut owner, &cases).await;
    let mut waited = 0;
    while node.node.upkeep().key_status().await.unwrap().pending() > 0 {
        waited += 1;
        assert!(
            waited < 400,
            "the restarted node did not finish the rotation"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The run that re-wraps the last key records the rotation done, by
    // itself (no later run is needed for it).
    let mut waited = 0;
    while !node.log().await.iter().any(|r| {
        r.method == "keys.rotate_data"
            && sluis::tlog::AccessRecord::decode(&r.record)
                .is_some_and(|a| a.detail.contains("every case key is wrapped under it"))
    }) {
        waited += 1;
        assert!(waited < 400, "the finished rotation was not recorded done");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let status = node.node.upkeep().key_status().await.unwrap();
    assert_eq!(status.pending(), 0);
    assert_eq!(status.removable(), vec![1]);

    // `keys status` tells the operator (the node stopped: SQLite's file is
    // the node's while it runs).
    node.node.shutdown().await.unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluis"))
        .args(["keys", "status", "--config"])
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("rotation done"), "{said}");
    assert!(said.contains("may be removed: data.key"), "{said}");

    // The old version removed: every case still opens.
    std::fs::remove_file(keys_dir.join("data.key")).unwrap();
    node.node = Node::start(&config).await.unwrap();
    let mut owner = node.client(GEMEENTE).await;
    all_open(&mut owner, &cases).await;

    // Each step is in the log, and the log verifies.
    let rotations: Vec<_> = node
        .log()
        .await
        .into_iter()
        .filter(|r| r.method == "keys.rotate_data")
        .collect();
    assert!(rotations.len() >= 2, "started and done: {rotations:?}");
    let done = record_of(&node, &rotations.last().unwrap().request_id).await;
    assert!(
        done.detail.contains("older versions removable: 1"),
        "{}",
        done.detail
    );
    node.node.shutdown().await.unwrap();
    assert!(verify_log_of(&config).await.intact());
}

/// A case key wrapped under a version whose file is gone does not open,
/// and the node says which version to restore — never the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_removed_too_early_is_named() {
    let mut node = TestNode::start().await;
    let mut owner = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut owner).await;
    let keys_dir = node.config.path(&node.config.node.keys_dir);
    sluis::gateway::vault::Keys::rotate_data(&keys_dir).unwrap();
    let config = node.config.clone();
    node.node.shutdown().await.unwrap();
    std::fs::remove_file(keys_dir.join("data.key")).unwrap();
    node.node = Node::start(&config).await.unwrap();
    let mut owner = node.client(GEMEENTE).await;
    let s = owner
        .cases
        .get_case(with_actor(by_id(&case_id)))
        .await
        .unwrap_err();
    assert_eq!(s.code(), tonic::Code::Internal, "{s:?}");
    assert!(!s.message().contains("Test Persoon"));
    let status = node.node.upkeep().key_status().await.unwrap();
    assert_eq!(status.pending(), 1);
    assert!(
        node.node
            .upkeep()
            .rewrap_case_keys(None, &quiet)
            .await
            .is_err()
    );
    node.node.shutdown().await.unwrap();
}

/// `sluis keys status --finish` killed (SIGKILL) in the middle of
/// re-wrapping, as power loss would stop it: every batch is its own
/// transaction, so nothing is lost or half-done. The folder passes
/// `check-config`, the node starts, finishes the rotation on its own and
/// records it done, every case opens, and the log verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrap_killed_mid_way_resumes_and_loses_nothing() {
    // More than a few batches of 256, so that the kill lands among them.
    const MANY: usize = 1300;
    let mut node = TestNode::start_on_sqlite(|_| {}).await;
    let mut cases = Vec::new();
    let mut writers = Vec::new();
    for _ in 0..4 {
        let mut c = node.client(GEMEENTE).await;
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..MANY / 4 {
                ids.push(register(&mut c).await.0);
            }
            ids
        }));
    }
    for w in writers {
        cases.extend(w.await.unwrap());
    }
    let config = node.config.clone();
    let config_path = node.config_path();
    node.node.shutdown().await.unwrap();
    let sluis = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sluis"))
            .args(args)
            .arg("--config")
            .arg(&config_path)
            .output()
            .unwrap()
    };
    assert!(sluis(&["keys", "rotate-data"]).status.success());

    let mut finish = Command::new(env!("CARGO_BIN_EXE_sluis"))
        .args(["keys", "status", "--finish", "--config"])
        .arg(&config_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Killed as soon as it says it re-wrapped its first batch.
    let stderr = finish.stderr.take().unwrap();
    let mut said = String::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
        let line = line.unwrap();
        said.push_str(&line);
        if line.contains("case keys re-wrapped") {
            finish.kill().unwrap();
            break;
        }
    }
    let status = finish.wait().unwrap();
    assert!(
        !status.success(),
        "it ran to its end before the kill: {said}"
    );
    let out = sluis(&["keys", "status"]);
    let left = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(left.contains("rotation in progress"), "{left}");
    let out = sluis(&["check-config"]);
    assert!(out.status.success(), "{out:?}");

    node.node = Node::start(&config).await.unwrap();
    let mut waited = 0;
    while node.node.upkeep().key_status().await.unwrap().pending() > 0 {
        waited += 1;
        assert!(waited < 600, "the node did not finish the rotation");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut owner = node.client(GEMEENTE).await;
    all_open(&mut owner, &cases).await;
    node.node.shutdown().await.unwrap();
    let out = sluis(&["keys", "status"]);
    let done = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        done.contains("rotation done") && done.contains("may be removed: data.key"),
        "{done}"
    );
    let report = verify_log_of(&config).await;
    assert!(report.intact(), "{:?}", report.first_problem());
}
