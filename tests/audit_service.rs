//! Privacy officers over mTLS: query the access log, get a subject access
//! report that lists exactly the accesses made, and proofs that verify
//! offline against the node's signed checkpoints. Other roles are refused,
//! and the refusal is itself recorded.

mod common;

use std::time::Duration;

use common::*;
use sluis::rpc::Clients;
use sluis::rpc::proto::v1 as pb;
use sluis::tlog::checkpoint::Checkpoint;
use sluis::tlog::merkle::{self, Hash};
use tokio_stream::StreamExt;
use tonic::Code;

use pb::Category as C;

const OFFICER: &str = "fg-utrecht";

async fn query(officer: &mut Clients, req: pb::QueryAccessRequest) -> Vec<pb::AccessEntry> {
    let mut stream = officer.audit.query_access(req).await.unwrap().into_inner();
    let mut out = Vec::new();
    while let Some(e) = stream.next().await {
        out.push(e.unwrap().entry.expect("each message holds an entry"));
    }
    out
}

/// Waits until a checkpoint covers `size` entries (one is signed within the
/// configured interval).
async fn checkpoint_covering(officer: &mut Clients, size: u64) -> (pb::Checkpoint, String) {
    for _ in 0..100 {
        if let Ok(r) = officer
            .audit
            .get_checkpoint(pb::GetCheckpointRequest { size: 0 })
            .await
        {
            let r = r.into_inner();
            let cp = r.checkpoint.unwrap();
            if cp.size >= size {
                return (cp, r.verifier_key);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no checkpoint covering {size} entries");
}

fn hashes(v: &[Vec<u8>]) -> Vec<Hash> {
    v.iter().map(|h| h.as_slice().try_into().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn officer_queries_reports_and_proves_others_are_refused() {
    let node = TestNode::start_with(|c| c.node.checkpoint_interval_ms = 50).await;
    let mut gemeente = node.client(GEMEENTE).await;
    let (case_a, _) = register(&mut gemeente).await;
    let (case_b, _) = register(&mut gemeente).await;
    grant(
        &mut gemeente,
        &case_a,
        vec![participant(NGO)],
        &[C::Shelter],
        &["shelter"],
    )
    .await;
    let mut ngo = node.client(NGO).await;
    let mut dtv = node.client("dtv").await;
    let read = ngo.cases.get_case(by_id(&case_a, "shelter")).await.unwrap();
    let read_id = request_id(&read);
    dtv.cases.get_case(by_id(&case_a, "return")).await.unwrap();
    dtv.cases.get_case(by_id(&case_b, "return")).await.unwrap();
    let _ = dtv.cases.get_case(by_id(&case_a, "")).await.unwrap_err();

    // A non-officer is refused on every method, and each refusal is recorded.
    let before = node.log_len().await;
    let e = dtv
        .audit
        .get_checkpoint(pb::GetCheckpointRequest { size: 0 })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = ngo
        .audit
        .subject_access_report(pb::SubjectAccessReportRequest {
            subject: Some(pb::subject_access_report_request::Subject::CaseId(
                case_a.clone(),
            )),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = gemeente
        .audit
        .query_access(pb::QueryAccessRequest::default())
        .await
        .expect_err("refused");
    assert_eq!(e.code(), Code::PermissionDenied);
    assert_eq!(node.log_len().await, before + 3);
    let denied = node.log().await;
    assert!(
        denied[before as usize..]
            .iter()
            .all(|r| r.decision == "denied")
    );

    // The subject access report lists exactly the accesses to case A.
    let mut officer = node.client(OFFICER).await;
    let report = officer
        .audit
        .subject_access_report(pb::SubjectAccessReportRequest {
            subject: Some(pb::subject_access_report_request::Subject::CaseId(
                case_a.clone(),
            )),
        })
        .await
        .unwrap()
        .into_inner();
    let got: Vec<(String, String, String)> = report
        .entries
        .iter()
        .map(|e| (e.participant.clone(), e.method.clone(), e.purpose.clone()))
        .collect();
    let want = [
        (GEMEENTE, "RegisterCase", ""),
        (GEMEENTE, "GrantConsent", ""),
        (NGO, "GetCase", "shelter"),
        ("dtv", "GetCase", "return"),
        ("dtv", "GetCase", ""),
    ]
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()));
    assert_eq!(got, want);
    assert!(report.text.contains("VluchtelingenWerk Midden-Nederland (civil-society organisation) asked to see your case for the purpose \"shelter\". Shared: shelter."));
    assert!(!report.text.contains("Test Persoon") && !report.text.contains("1234567890"));
    // By V-number, through the keyed index: both cases of this subject.
    let by_v = officer
        .audit
        .subject_access_report(pb::SubjectAccessReportRequest {
            subject: Some(pb::subject_access_report_request::Subject::VNumber(
                "1234567890".into(),
            )),
        })
        .await
        .unwrap()
        .into_inner();
    let mut ids = by_v.case_ids.clone();
    ids.sort();
    let mut both = vec![case_a.clone(), case_b.clone()];
    both.sort();
    assert_eq!(ids, both);
    let e = officer
        .audit
        .subject_access_report(pb::SubjectAccessReportRequest {
            subject: Some(pb::subject_access_report_request::Subject::Bsn(
                "123456782".into(),
            )),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    // Query with filters, and resume from an index.
    let dtv_reads = query(
        &mut officer,
        pb::QueryAccessRequest {
            caller: "dtv".into(),
            method: "GetCase".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(dtv_reads.len(), 3);
    let denied_only = query(
        &mut officer,
        pb::QueryAccessRequest {
            decision: pb::Decision::Denied as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(denied_only.len(), 3);
    let page = query(
        &mut officer,
        pb::QueryAccessRequest {
            limit: 2,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(page.iter().map(|e| e.index).collect::<Vec<_>>(), [0, 1]);
    let next = query(
        &mut officer,
        pb::QueryAccessRequest {
            limit: 2,
            start_index: page[1].index + 1,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(next.iter().map(|e| e.index).collect::<Vec<_>>(), [2, 3]);

    // An inclusion proof for the NGO's read, by request id, verifies offline
    // against the signed checkpoint.
    let size_now = node.log_len().await as u64;
    let (_, key) = checkpoint_covering(&mut officer, size_now).await;
    let p = officer
        .audit
        .get_inclusion_proof(pb::GetInclusionProofRequest {
            entry: Some(pb::get_inclusion_proof_request::Entry::AccessRecordId(
                read_id.clone(),
            )),
            tree_size: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let entry = p.entry.unwrap();
    assert_eq!(entry.access_record_id, read_id);
    assert_eq!(entry.caller, NGO);
    let cp =
        Checkpoint::verify(&p.checkpoint.unwrap().signed_note, &key).expect("signed by the node");
    assert_eq!(cp.size, p.tree_size);
    merkle::verify_inclusion(
        p.index,
        p.tree_size,
        &merkle::leaf_hash(&entry.leaf),
        &hashes(&p.hashes),
        &cp.root,
    )
    .expect("inclusion proof verifies");
    // A changed leaf does not.
    let mut forged = entry.leaf.clone();
    forged[20] ^= 1;
    assert!(
        merkle::verify_inclusion(
            p.index,
            p.tree_size,
            &merkle::leaf_hash(&forged),
            &hashes(&p.hashes),
            &cp.root
        )
        .is_err()
    );

    // A consistency proof between an early checkpoint and a later one.
    let early = cp.clone();
    for _ in 0..3 {
        dtv.cases.get_case(by_id(&case_b, "return")).await.unwrap();
    }
    let later_size = node.log_len().await as u64;
    let (later_cp, key) = checkpoint_covering(&mut officer, later_size).await;
    let later = Checkpoint::verify(&later_cp.signed_note, &key).unwrap();
    assert!(later.size > early.size);
    let c = officer
        .audit
        .get_consistency_proof(pb::GetConsistencyProofRequest {
            old_size: early.size,
            new_size: later.size,
        })
        .await
        .unwrap()
        .into_inner();
    merkle::verify_consistency(
        early.size,
        later.size,
        &early.root,
        &later.root,
        &hashes(&c.hashes),
    )
    .expect("the later log extends the earlier one");
    let e = officer
        .audit
        .get_consistency_proof(pb::GetConsistencyProofRequest {
            old_size: later.size + 1_000,
            new_size: later.size,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // The officer's own calls are in the log too.
    let officer_calls = query(
        &mut officer,
        pb::QueryAccessRequest {
            caller: OFFICER.into(),
            ..Default::default()
        },
    )
    .await;
    assert!(officer_calls.len() >= 8);

    // Offline, on the node's files: export (JSONL and CSV), prove, report, verify.
    let config = node.config_path();
    let total = node.log_len().await;
    node.node.shutdown().await.unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluis"))
            .arg("audit")
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (ok, jsonl) = run(&["export", "--format", "jsonl"]);
    assert!(ok);
    let lines: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as i64, total, "one line per access record");
    assert!(
        lines
            .iter()
            .any(|v| v["request_id"] == read_id.as_str() && v["released"][0] == "shelter")
    );
    let (ok, csv) = run(&["export", "--format", "csv"]);
    assert!(ok);
    assert_eq!(
        csv.lines().count(),
        lines.len() + 1,
        "a header and one line per record"
    );
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .starts_with("index,request_id,at,caller")
    );
    let (ok, proved) = run(&["prove", "--request-id", &read_id]);
    assert!(ok, "{proved}");
    assert!(proved.contains("verified: the entry is in the log the node signed"));
    let (ok, text) = run(&["report", "--case", &case_a]);
    assert!(ok);
    assert!(text.contains("Who saw my data"));
    let (ok, verified) = run(&["verify"]);
    assert!(ok, "{verified}");
    assert!(verified.starts_with("log intact"));
}

/// `sluis audit verify` may run while the node serves: the log grows under
/// it, and every pass must still see one consistent state (a prefix of the
/// log with its tree), never a torn one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_verifies_while_the_node_keeps_appending() {
    let node = TestNode::start_with(|c| c.node.checkpoint_interval_ms = 20).await;
    let mut gemeente = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut gemeente).await;
    let writing = tokio::spawn(async move {
        for _ in 0..300 {
            let _ = gemeente
                .cases
                .get_case(with_actor(by_id(&case_id, "case_consultation")))
                .await
                .unwrap();
        }
    });
    let key = node.node.verifier_key();
    let mut sizes = Vec::new();
    while !writing.is_finished() {
        let report = sluis::tlog::verify::verify_log(&node.node.store, &key, None, |_, _| {})
            .await
            .unwrap();
        assert!(report.intact(), "{:?}", report.problems);
        sizes.push(report.entries);
    }
    writing.await.unwrap();
    let last = sluis::tlog::verify::verify_log(&node.node.store, &key, None, |_, _| {})
        .await
        .unwrap();
    assert!(last.intact(), "{:?}", last.problems);
    // The registration and the 300 reads.
    assert_eq!(last.entries, 301, "every request was recorded");
    assert!(
        sizes.len() >= 2 && sizes.windows(2).all(|w| w[0] <= w[1]),
        "verified several growing states: {sizes:?}"
    );
}

/// The index of the log by case follows the log in batches of its own, out
/// of the requests' transactions. An officer's query by case and a
/// subject's report read what it does not hold yet from the log itself, so
/// they are complete whether or not it has caught up, and say how far it
/// had; once the node is idle its log writer brings the index to the log's
/// end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_by_case_are_complete_and_say_how_far_the_index_is() {
    let node = TestNode::start().await;
    let mut gemeente = node.client(GEMEENTE).await;
    let (case_a, _) = register(&mut gemeente).await;
    let (case_b, _) = register(&mut gemeente).await;
    grant(
        &mut gemeente,
        &case_a,
        vec![participant(NGO)],
        &[C::Shelter],
        &["shelter"],
    )
    .await;
    let mut ngo = node.client(NGO).await;
    let mut officer = node.client(OFFICER).await;
    let by_case = |case_id: &str| pb::QueryAccessRequest {
        case_id: case_id.into(),
        ..Default::default()
    };
    let mut reads = 0;
    let mut uptos = Vec::new();
    for _ in 0..3 {
        for _ in 0..4 {
            ngo.cases.get_case(by_id(&case_a, "shelter")).await.unwrap();
            reads += 1;
        }
        // Straight after the writes: the index may be behind.
        let size = node.log_len().await as u64;
        let mut stream = officer
            .audit
            .query_access(by_case(&case_a))
            .await
            .unwrap()
            .into_inner();
        let mut entries = Vec::new();
        while let Some(m) = stream.next().await {
            let m = m.unwrap();
            let upto = m
                .indexed_upto
                .expect("a query by case says how far its index is");
            assert!(upto <= size, "{upto} > {size}");
            uptos.push(upto);
            entries.push(m.entry.unwrap());
        }
        let gets = entries.iter().filter(|e| e.method == "GetCase").count();
        assert_eq!(gets, reads, "every read of the case, indexed or not");
        assert!(entries.iter().all(|e| e.case_id == case_a));
        assert!(entries.iter().any(|e| e.method == "RegisterCase"));
        let report = officer
            .audit
            .subject_access_report(pb::SubjectAccessReportRequest {
                subject: Some(pb::subject_access_report_request::Subject::CaseId(
                    case_a.clone(),
                )),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(report.indexed_upto <= node.log_len().await as u64);
        let reported: Vec<u64> = report.entries.iter().map(|e| e.index).collect();
        for e in &entries {
            assert!(
                reported.contains(&e.index),
                "{} missing from the report",
                e.index
            );
        }
    }
    // The other case's query finds only its own entries.
    let mut stream = officer
        .audit
        .query_access(by_case(&case_b))
        .await
        .unwrap()
        .into_inner();
    while let Some(m) = stream.next().await {
        assert_eq!(m.unwrap().entry.unwrap().case_id, case_b);
    }
    // A query not by case reads no index and says nothing of one.
    let mut stream = officer
        .audit
        .query_access(pb::QueryAccessRequest {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stream.next().await.unwrap().unwrap().indexed_upto, None);
    // Idle, the writer indexes up to the log's end.
    let mut caught_up = false;
    for _ in 0..30 {
        // Longer than the writer waits idle before it indexes (each query
        // is itself appended, and starts that wait again).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let size = node.log_len().await as u64;
        let mut stream = officer
            .audit
            .query_access(pb::QueryAccessRequest {
                limit: 1,
                ..by_case(&case_b)
            })
            .await
            .unwrap()
            .into_inner();
        let m = stream.next().await.unwrap().unwrap();
        if m.indexed_upto == Some(size) {
            caught_up = true;
            break;
        }
    }
    assert!(caught_up, "the index never caught up; seen {uptos:?}");
}
