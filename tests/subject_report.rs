//! The subject access report (GDPR art. 15) is complete: every record of a
//! call that returned or touched a subject names it, as the audit domain's
//! pseudonym, and the report finds it — a listing that returned the case, an
//! officer's read of log entries about it, a proof of such an entry, a
//! report covering several cases. The index that finds them is checked by
//! `sluis audit verify` like the log's other columns.

mod common;

use std::process::Command;

use common::*;
use sluis::rpc::proto::v1 as pb;
use tokio_stream::StreamExt;

const OFFICER: &str = "fg-utrecht";

fn has(entries: &[(String, String)], who: &str, method: &str) -> usize {
    entries
        .iter()
        .filter(|(p, m)| p == who && m == method)
        .count()
}

fn visible(purpose: &str) -> pb::FindCasesRequest {
    pb::FindCasesRequest {
        scope: pb::find_cases_request::Scope::Visible as i32,
        purpose: purpose.into(),
        ..Default::default()
    }
}

/// The outside test's example: a recipient lists the cases it may see and
/// gets this one, with its pseudonym; the report showed only "1 cases
/// listed" somewhere, not for this subject. (The NGO, which has no legal
/// basis of its own, sees only the case its consent names.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_that_returns_a_case_is_in_its_report() {
    let node = TestNode::start().await;
    let mut owner = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut owner).await;
    let (other_id, _) = register(&mut owner).await;
    grant(
        &mut owner,
        &case_id,
        vec![participant(NGO)],
        &[pb::Category::Perspective],
        &["guidance"],
    )
    .await;
    let mut ngo = node.client(NGO).await;
    let listed = ngo
        .cases
        .find_cases(visible("guidance"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.cases.len(), 1);
    assert!(!listed.cases[0].subject_pseudonym.is_empty());

    let mut officer = node.client(OFFICER).await;
    let entries = report(&mut officer, &case_id).await;
    assert_eq!(has(&entries, NGO, "FindCases"), 1, "{entries:?}");
    // The case that was not listed does not show the listing.
    let other = report(&mut officer, &other_id).await;
    assert_eq!(has(&other, NGO, "FindCases"), 0, "{other:?}");

    // The owner's own listing names both cases.
    owner
        .cases
        .find_cases(with_actor(pb::FindCasesRequest {
            scope: pb::find_cases_request::Scope::Own as i32,
            ..Default::default()
        }))
        .await
        .unwrap();
    for id in [&case_id, &other_id] {
        let entries = report(&mut officer, id).await;
        assert_eq!(has(&entries, GEMEENTE, "FindCases"), 1, "{entries:?}");
    }

    // The command-line report finds the listings too.
    let out = Command::new(env!("CARGO_BIN_EXE_sluis"))
        .args(["audit", "report", "--json", "--case", &case_id, "--config"])
        .arg(node.config_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let listings = json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["method"] == "FindCases")
        .count();
    assert_eq!(listings, 2, "{json}");
}

/// The same kind on the officer's side: reading log entries about a
/// subject, proving one, and reporting on several cases at once each name
/// the subjects concerned. The index is verified with the log: a row taken
/// out of it is found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn officers_reads_of_the_log_are_in_the_report_and_the_index_verifies() {
    let node = TestNode::start_with(|c| c.node.checkpoint_interval_ms = 50).await;
    let mut owner = node.client(GEMEENTE).await;
    let (a, _) = register(&mut owner).await;
    let (b, _) = register(&mut owner).await;
    grant(
        &mut owner,
        &a,
        vec![participant(NGO)],
        &[pb::Category::Shelter],
        &["shelter"],
    )
    .await;
    let mut ngo = node.client(NGO).await;
    let read = ngo.cases.get_case(by_id(&a, "shelter")).await.unwrap();
    let read_id = request_id(&read);

    let mut officer = node.client(OFFICER).await;
    // Entries of the NGO's reads: about case A only.
    let mut stream = officer
        .audit
        .query_access(pb::QueryAccessRequest {
            caller: NGO.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut returned = Vec::new();
    while let Some(e) = stream.next().await {
        returned.push(e.unwrap().entry.unwrap());
    }
    assert!(!returned.is_empty() && returned.iter().all(|e| e.case_id == a));
    assert_eq!(
        has(&report(&mut officer, &a).await, OFFICER, "QueryAccess"),
        1
    );
    assert_eq!(
        has(&report(&mut officer, &b).await, OFFICER, "QueryAccess"),
        0
    );
    // A QueryAccess by subject finds the officer's read as well.
    let subject = returned[0].subject.clone();
    let mut stream = officer
        .audit
        .query_access(pb::QueryAccessRequest {
            subject: subject.clone(),
            method: "QueryAccess".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let read_by_officer = stream.next().await.unwrap().unwrap().entry.unwrap();
    assert_eq!(read_by_officer.caller, OFFICER);
    assert!(read_by_officer.subjects.contains(&subject));

    // A proof of the NGO's read names its subject.
    for _ in 0..100 {
        let proved = officer
            .audit
            .get_inclusion_proof(pb::GetInclusionProofRequest {
                entry: Some(pb::get_inclusion_proof_request::Entry::AccessRecordId(
                    read_id.clone(),
                )),
                tree_size: 0,
            })
            .await;
        if proved.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        has(
            &report(&mut officer, &a).await,
            OFFICER,
            "GetInclusionProof"
        ),
        1
    );

    // A report by V-number covers both cases: it names both subjects.
    officer
        .audit
        .subject_access_report(pb::SubjectAccessReportRequest {
            subject: Some(pb::subject_access_report_request::Subject::VNumber(
                "1234567890".into(),
            )),
        })
        .await
        .unwrap();
    for id in [&a, &b] {
        let entries = report(&mut officer, id).await;
        assert!(
            has(&entries, OFFICER, "SubjectAccessReport") >= 1,
            "{entries:?}"
        );
    }

    // The log, with its subject index, verifies; without one of its rows it
    // does not, and the first bad index is the entry that lost it.
    let entries = node.log().await;
    let (seq, _) = entries
        .iter()
        .map(|r| (r.seq, sluis::tlog::AccessRecord::decode(&r.record).unwrap()))
        .find(|(_, r)| r.method == "FindCases" || !r.subjects.is_empty())
        .expect("an entry naming other subjects");
    let key = node.node.verifier_key();
    let store = node.node.store.clone();
    let before = sluis::tlog::verify::verify_log(&store, &key, None, |_, _| {})
        .await
        .unwrap();
    assert!(before.intact(), "{:?}", before.problems);
    node.sql(
        &format!(
            "DROP TRIGGER access_log_subjects_append_only_d;
             DELETE FROM access_log_subjects WHERE seq = {seq};"
        ),
        &format!(
            "DROP TRIGGER access_log_subjects_append_only ON access_log_subjects;
             DELETE FROM access_log_subjects WHERE seq = {seq};"
        ),
    )
    .await;
    let after = sluis::tlog::verify::verify_log(&store, &key, None, |_, _| {})
        .await
        .unwrap();
    assert_eq!(
        after.first_problem().map(|p| p.index),
        Some(seq as u64),
        "{:?}",
        after.problems
    );
    assert!(
        after.problems[0].what.contains("subject index"),
        "{:?}",
        after.problems
    );
}

/// Refused requests that name a case are accesses the subject may ask
/// about: an attempt with a bad purpose, an unknown category code, an
/// invalid update, a consent that cannot be granted, a withdrawal with a
/// bad note — each is in the case's report, whether the refusal came from
/// the message's shape or from what its values mean, whoever asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_naming_a_case_are_in_its_report() {
    let node = TestNode::start().await;
    let mut owner = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut owner).await;
    let consent_id = grant(
        &mut owner,
        &case_id,
        vec![participant(NGO)],
        &[pb::Category::Perspective],
        &["guidance"],
    )
    .await
    .consent_id;
    let mut ngo = node.client(NGO).await;
    // Purpose unknown (a value's meaning).
    let e = ngo
        .cases
        .get_case(by_id(&case_id, "curiosity"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    // A category code no version of the API has (the message's shape).
    let mut bad = by_id(&case_id, "guidance");
    bad.categories = vec![99];
    let e = ngo.cases.get_case(bad).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    // The same by the NGO's own pseudonym for the subject.
    let listed = ngo
        .cases
        .find_cases(visible("guidance"))
        .await
        .unwrap()
        .into_inner();
    let mut bad = by_pseudonym(&listed.cases[0].subject_pseudonym, "guidance");
    bad.categories = vec![99];
    let e = ngo.cases.get_case(bad).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    // An update with an invalid field.
    let mut data = full_case("Test Persoon", "1234567890", "111222333");
    data.identity.as_mut().unwrap().bsn = "123456789".into();
    let e = owner
        .cases
        .update_case(with_actor(pb::UpdateCaseRequest {
            case_id: case_id.clone(),
            data: Some(data),
            request_id: String::new(),
            update_mask: None,
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    // A consent without recipients.
    let mut c = consent_request(&case_id);
    c.recipients.clear();
    let e = owner
        .consents
        .grant_consent(with_actor(c))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    // A withdrawal whose note is two lines.
    let e = owner
        .consents
        .withdraw_consent(with_actor(pb::WithdrawConsentRequest {
            consent_id: consent_id.clone(),
            note: "one\ntwo".into(),
            request_id: String::new(),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);

    let mut officer = node.client(OFFICER).await;
    let entries = report(&mut officer, &case_id).await;
    assert_eq!(has(&entries, NGO, "GetCase"), 3, "{entries:?}");
    assert_eq!(has(&entries, GEMEENTE, "UpdateCase"), 1, "{entries:?}");
    // The grant that worked and the one that was refused.
    assert_eq!(has(&entries, GEMEENTE, "GrantConsent"), 2, "{entries:?}");
    assert_eq!(has(&entries, GEMEENTE, "WithdrawConsent"), 1, "{entries:?}");
}
