//! The privacy officer's command line as an officer uses it: against a
//! real node over mTLS with the officer's certificate (no database, no node
//! keys), and on the node's host. Filters, dates alone, a closed pipe,
//! fixed-width times, complete CSV, unknown subjects as errors, and the
//! report in plain Dutch and English.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use common::*;
use sluis::rpc::proto::v1 as pb;

const OFFICER: &str = "fg-utrecht";

/// The flags that make a command ask the node as the officer.
fn remote(node: &TestNode) -> Vec<String> {
    let pki = node.pki();
    let p = |f: &str| pki.join(f).to_string_lossy().to_string();
    vec![
        "--node".into(),
        format!("https://127.0.0.1:{}", node.node.local_addr.port()),
        "--server-name".into(),
        "localhost".into(),
        "--cert".into(),
        p(&format!("clients/{OFFICER}.pem")),
        "--key".into(),
        p(&format!("clients/{OFFICER}.key")),
        "--ca".into(),
        p("ca.pem"),
    ]
}

/// Runs `sluis audit ARGS` in a thread of its own (the node serves in
/// this process), from a folder with no node in it: whatever it reads, it
/// reads over the network.
async fn audit(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let empty = tempfile::tempdir().unwrap();
        Command::new(env!("CARGO_BIN_EXE_sluis"))
            .current_dir(empty.path())
            .arg("audit")
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn args(a: &[&str], node: &TestNode) -> Vec<String> {
    let mut v: Vec<String> = a.iter().map(|s| s.to_string()).collect();
    v.extend(remote(node));
    v
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A node with one case, a consent for the NGO's shelter reads, reads by
/// the NGO (one allowed, one denied) and by the return service.
async fn scene() -> (TestNode, String, String) {
    let node = TestNode::start_with(|c| c.node.checkpoint_interval_ms = 50).await;
    let mut owner = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut owner).await;
    grant(
        &mut owner,
        &case_id,
        vec![participant(NGO)],
        &[pb::Category::Shelter],
        &["shelter"],
    )
    .await;
    let mut ngo = node.client(NGO).await;
    let read = ngo
        .cases
        .get_case(with_actor(by_id(&case_id, "shelter")))
        .await
        .unwrap();
    let read_id = request_id(&read);
    // Not permitted: answered with everything withheld, recorded as denied.
    ngo.cases
        .get_case(with_actor(by_id(&case_id, "return")))
        .await
        .unwrap();
    (node, case_id, read_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_filters_over_mtls_with_dates_alone_and_fixed_width_times() {
    let (node, case_id, read_id) = scene().await;
    let today = &time::OffsetDateTime::now_utc().date().to_string();

    // Dates alone: from today 00:00 through the whole of today.
    let out = audit(args(
        &[
            "query",
            "--format",
            "jsonl",
            "--since",
            today,
            "--until",
            today,
            "--case",
            &case_id,
            "--participant",
            NGO,
        ],
        &node,
    ))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "the NGO's two reads of the case: {lines:?}");
    for l in &lines {
        assert_eq!(l["caller"], NGO);
        assert_eq!(l["case_id"], case_id.as_str());
        let at = l["at"].as_str().unwrap();
        assert_eq!(at.len(), 24, "fixed width, milliseconds and Z: {at}");
        assert!(at.ends_with('Z') && at.as_bytes()[19] == b'.', "{at}");
    }

    // Each filter narrows: decision, role, method, purpose, request id.
    let one = |extra: &[&str]| {
        let mut a = vec!["query", "--format", "jsonl", "--case", &case_id];
        a.extend_from_slice(extra);
        args(&a, &node)
    };
    let denied = audit(one(&["--decision", "denied", "--role", "ngo"])).await;
    assert!(denied.status.success(), "{}", stderr(&denied));
    let denied: Vec<serde_json::Value> = stdout(&denied)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["purpose"], "return");
    let by_id = audit(one(&["--request-id", &read_id, "--method", "GetCase"])).await;
    assert!(by_id.status.success(), "{}", stderr(&by_id));
    let by_id: serde_json::Value = serde_json::from_str(stdout(&by_id).trim()).unwrap();
    assert_eq!(by_id["request_id"], read_id.as_str());
    assert_eq!(by_id["released"], serde_json::json!(["shelter"]));
    let shelter = audit(args(
        &[
            "query",
            "--case",
            &case_id,
            "--purpose",
            "shelter",
            "--lang",
            "nl",
        ],
        &node,
    ))
    .await;
    assert!(shelter.status.success(), "{}", stderr(&shelter));
    let text = stdout(&shelter);
    assert!(
        text.contains("maatschappelijke organisatie") && text.contains("gedeeld: opvang"),
        "plain Dutch words: {text}"
    );

    // Yesterday holds none of it: the range is real, not ignored.
    let yesterday = time::OffsetDateTime::now_utc()
        .date()
        .previous_day()
        .unwrap()
        .to_string();
    let none = audit(args(
        &["query", "--until", &yesterday, "--case", &case_id],
        &node,
    ))
    .await;
    assert!(none.status.success(), "{}", stderr(&none));
    assert_eq!(stdout(&none), "");

    // What the officer types is checked as the node checks it.
    let bad = audit(args(&["query", "--since", "29-11-2026"], &node)).await;
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("--since must be a date like 2026-11-29"),
        "{}",
        stderr(&bad)
    );
    let bad = audit(args(&["query", "--role", "police"], &node)).await;
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("--role: unknown role"),
        "{}",
        stderr(&bad)
    );
    let bad = audit(args(&["query", "--purpose", "curiosity"], &node)).await;
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("unknown purpose"), "{}", stderr(&bad));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_has_every_column_and_a_closed_pipe_ends_quietly() {
    let (node, case_id, read_id) = scene().await;
    // Enough entries that the export outgrows a pipe's buffer.
    let mut owner = node.client(GEMEENTE).await;
    for _ in 0..300 {
        owner
            .cases
            .get_case(with_actor(by_id(&case_id, "case_consultation")))
            .await
            .unwrap();
    }

    let csv = audit(args(
        &["export", "--format", "csv", "--case", &case_id],
        &node,
    ))
    .await;
    assert!(csv.status.success(), "{}", stderr(&csv));
    let text = stdout(&csv);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    for column in [
        "index",
        "request_id",
        "at",
        "caller",
        "role",
        "method",
        "case_id",
        "subject",
        "purpose",
        "decision",
        "status",
        "asked",
        "released",
        "withheld",
        "rules",
        "consents",
        "actor_hash",
        "peer_fingerprint",
        "detail",
        "subjects",
    ] {
        assert!(header.contains(&column), "column {column} in {header:?}");
    }
    let asked = header.iter().position(|c| *c == "asked").unwrap();
    let released = header.iter().position(|c| *c == "released").unwrap();
    let read = text.lines().find(|l| l.contains(&read_id)).unwrap();
    let fields: Vec<&str> = read.split(',').collect();
    assert!(fields[asked].contains("shelter") && fields[asked].contains("medical"));
    assert_eq!(fields[released], "shelter");
    assert_eq!(
        text.lines().count(),
        1 + 2 + 300 + 2,
        "header, reads, registration and consent"
    );

    // `| head -1`: the reader leaves after one line.
    let mut a = vec!["audit".to_string(), "export".into()];
    a.extend(remote(&node));
    let out = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluis"))
            .args(a)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 1];
        std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
        drop(child.stdout.take());
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "exit 0: {}", stderr(&out));
    assert!(
        !stderr(&out).contains("Broken pipe") && !stderr(&out).contains("panicked"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_subjects_are_errors_and_the_report_speaks_dutch_and_english() {
    let (node, case_id, _) = scene().await;
    let unknown_case = "0193f1a2-7b3c-7d4e-8f90-123456789abc";

    let no_case = audit(args(&["report", "--case", unknown_case], &node)).await;
    assert!(!no_case.status.success(), "{}", stdout(&no_case));
    assert!(
        stderr(&no_case).contains("not found"),
        "{}",
        stderr(&no_case)
    );
    assert!(!stdout(&no_case).contains("Entries: 0"));

    // A valid V-number nobody registered: said plainly, not an empty report.
    let no_v = audit(args(&["report", "--v-number", "9999999999"], &node)).await;
    assert!(!no_v.status.success(), "{}", stdout(&no_v));
    assert!(
        stderr(&no_v).contains("no case is registered for this subject"),
        "{}",
        stderr(&no_v)
    );
    let no_entries = audit(args(&["query", "--case", unknown_case], &node)).await;
    assert!(!no_entries.status.success());
    assert!(
        stderr(&no_entries).contains("no case with this case_id"),
        "{}",
        stderr(&no_entries)
    );
    let no_id = audit(args(&["query", "--request-id", unknown_case], &node)).await;
    assert!(!no_id.status.success());
    assert!(
        stderr(&no_id).contains("access_record_id"),
        "{}",
        stderr(&no_id)
    );

    // The V-number the case was registered with finds it; in Dutch.
    let nl = audit(args(
        &["report", "--v-number", "1234567890", "--lang", "nl"],
        &node,
    ))
    .await;
    assert!(nl.status.success(), "{}", stderr(&nl));
    let text = stdout(&nl);
    assert!(text.starts_with("Wie zag mijn gegevens"), "{text}");
    assert!(text.contains(&case_id));
    assert!(
        text.contains(
            "VluchtelingenWerk Midden-Nederland (maatschappelijke organisatie) vroeg om uw dossier in te zien met als doel \"opvang\". Gedeeld: opvang."
        ),
        "{text}"
    );
    assert!(text.contains("Dit werd geweigerd") || text.contains("Er is niets gedeeld"));
    for machine in ["(ngo)", "PERMISSION_DENIED", "GetCase", "privacy_officer"] {
        assert!(!text.contains(machine), "no machine word {machine}: {text}");
    }
    // Every line: a fixed-width UTC time and its log position.
    for line in text.lines().filter(|l| l.contains("  #")) {
        assert_eq!(line.as_bytes()[23], b'Z', "{line}");
        assert!(line[24..].starts_with("  #"), "{line}");
    }
    let en = audit(args(&["report", "--case", &case_id, "--lang", "en"], &node)).await;
    assert!(en.status.success(), "{}", stderr(&en));
    assert!(stdout(&en).contains("(civil-society organisation) asked to see your case"));
    assert!(!stdout(&en).contains("1234567890"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_file_holds_the_connection_and_the_host_mode_stays() {
    let (node, case_id, read_id) = scene().await;
    let dir = tempfile::tempdir().unwrap();
    let profile: PathBuf = dir.path().join("officer.toml");
    let pki = node.pki();
    std::fs::write(
        &profile,
        format!(
            "node = \"https://127.0.0.1:{}\"\nserver_name = \"localhost\"\ncert = \"{}\"\nkey = \"{}\"\nca = \"{}\"\n",
            node.node.local_addr.port(),
            pki.join(format!("clients/{OFFICER}.pem")).display(),
            pki.join(format!("clients/{OFFICER}.key")).display(),
            pki.join("ca.pem").display(),
        ),
    )
    .unwrap();
    let prove = audit(vec![
        "prove".into(),
        "--request-id".into(),
        read_id.clone(),
        "--profile".into(),
        profile.to_string_lossy().to_string(),
    ])
    .await;
    assert!(prove.status.success(), "{}", stderr(&prove));
    assert!(stdout(&prove).contains("verified: the entry is in the log the node signed"));

    // A certificate of another role is refused by the node, and said so.
    let mut not_officer = remote(&node);
    for a in not_officer.iter_mut() {
        *a = a.replace(OFFICER, NGO);
    }
    let mut a = vec!["query".to_string()];
    a.extend(not_officer);
    let refused = audit(a).await;
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("not permitted"),
        "{}",
        stderr(&refused)
    );

    // On the node's host, from its database: the same date handling.
    let config = node.config_path();
    node.node.shutdown().await.unwrap();
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let local = audit(vec![
        "query".into(),
        "--format".into(),
        "jsonl".into(),
        "--since".into(),
        today.clone(),
        "--until".into(),
        today,
        "--case".into(),
        case_id.clone(),
        "--config".into(),
        config.to_string_lossy().to_string(),
    ])
    .await;
    assert!(local.status.success(), "{}", stderr(&local));
    assert!(stdout(&local).lines().count() >= 4, "{}", stdout(&local));

    // The report on the host by V-number and by BSN is the report of the
    // case (through the node's keyed index); an unknown number is an error.
    let host_report = async |by: &[&str]| {
        let mut a: Vec<String> = ["report", "--lang", "en", "--config"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.push(config.to_string_lossy().to_string());
        a.extend(by.iter().map(|s| s.to_string()));
        audit(a).await
    };
    let by_case = host_report(&["--case", &case_id]).await;
    assert!(by_case.status.success(), "{}", stderr(&by_case));
    let lines = |o: &Output| {
        stdout(o)
            .lines()
            .filter(|l| l.starts_with("20"))
            .filter_map(|l| l.split_once("  ").map(|(_, rest)| rest.to_string()))
            .collect::<Vec<_>>()
    };
    assert!(lines(&by_case).len() >= 4, "{}", stdout(&by_case));
    for by in [["--v-number", "1234567890"], ["--bsn", "111222333"]] {
        let o = host_report(&by).await;
        assert!(o.status.success(), "{by:?}: {}", stderr(&o));
        assert!(stdout(&o).contains(&case_id), "{by:?}: {}", stdout(&o));
        assert_eq!(lines(&o), lines(&by_case), "{by:?}");
    }
    for by in [["--v-number", "9999999999"], ["--bsn", "123456782"]] {
        let o = host_report(&by).await;
        assert!(!o.status.success(), "{by:?}: {}", stdout(&o));
        assert!(
            stderr(&o).contains("no case is registered for this subject"),
            "{by:?}: {}",
            stderr(&o)
        );
    }
    let o = host_report(&["--v-number", "12"]).await;
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--v-number must be 10 digits"),
        "{}",
        stderr(&o)
    );
}

/// The node's own steps (an erasure here; reloads, rotations and
/// federation records alike) carry the node's name and no role: the
/// officer's query and report name the node itself as their caller, never
/// "not registered", which is for certificates the node does not know.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_own_records_name_the_node_itself() {
    let node = TestNode::start_with(|c| {
        c.node.checkpoint_interval_ms = 50;
        c.retention.case = Some("1s".into());
    })
    .await;
    let mut owner = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut owner).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_300)).await;
    let erased = node.node.upkeep().erase_due(&|_| {}).await.unwrap();
    assert_eq!(erased.cases, 1, "{erased:?}");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let q = audit(args(&["query", "--method", "case.erase"], &node)).await;
    assert!(q.status.success(), "{}", stderr(&q));
    let line = stdout(&q)
        .lines()
        .find(|l| l.contains("case.erase"))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("{}", stdout(&q)));
    assert!(line.contains("(this node itself)"), "{line}");
    assert!(!line.contains("not registered"), "{line}");

    for (lang, node_words, unregistered) in [
        ("en", "(this node itself)", "not registered"),
        ("nl", "(dit knooppunt zelf)", "niet geregistreerd"),
    ] {
        let r = audit(args(&["report", "--case", &case_id, "--lang", lang], &node)).await;
        assert!(r.status.success(), "{}", stderr(&r));
        let text = stdout(&r);
        assert!(text.contains(node_words), "{text}");
        assert!(!text.contains(unregistered), "{text}");
    }
}
