//! Retention and crypto-erasure (GDPR art. 5(1)(e), 17): after its period a
//! case's data no longer opens — not for its owner, not for a recipient with
//! consent — while the access log and its proofs stay valid, the subject
//! access report still lists every access, and the erasure is itself an
//! access record. `UpdateCase` clears a category by its field mask
//! (AIP-134). Periods are a few seconds; the node's own erasure step is run
//! at once instead of waiting for its interval. Both backends (PostgreSQL
//! when `SLUIS_TEST_POSTGRES_URL` is set).

mod common;

use std::time::Duration;

use common::*;
use prost_types::FieldMask;
use sluis::rpc::proto::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;

const OFFICER: &str = "fg-utrecht";

fn by_id(case_id: &str, purpose: &str) -> pb::GetCaseRequest {
    pb::GetCaseRequest {
        subject: Some(pb::get_case_request::Subject::CaseId(case_id.into())),
        purpose: purpose.into(),
        categories: vec![],
        emergency_justification: String::new(),
    }
}

fn by_pseudonym(pseudonym: &str, purpose: &str) -> pb::GetCaseRequest {
    pb::GetCaseRequest {
        subject: Some(pb::get_case_request::Subject::SubjectPseudonym(
            pseudonym.into(),
        )),
        purpose: purpose.into(),
        categories: vec![],
        emergency_justification: String::new(),
    }
}

/// The answer to reading an erased case: NOT_FOUND, reason CASE_ERASED,
/// with the case and when.
fn assert_erased(s: &tonic::Status, case_id: Option<&str>) {
    assert_eq!(s.code(), Code::NotFound, "{s:?}");
    let d = s.check_error_details().unwrap();
    let info = d.error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "CASE_ERASED", "{s:?}");
    assert!(info.metadata.contains_key("erased_at"), "{s:?}");
    if let Some(id) = case_id {
        assert_eq!(d.resource_info().unwrap().resource_name, id);
    }
    assert!(s.message().contains("erased"), "{s:?}");
}

fn quiet(_: &str) {}

/// The cases a consent shows the caller for guidance.
async fn visible_for_guidance(c: &mut sluis::rpc::Clients) -> pb::FindCasesResponse {
    c.cases
        .find_cases(with_actor(pb::FindCasesRequest {
            scope: pb::find_cases_request::Scope::Visible as i32,
            purpose: "guidance".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
}

/// The owner's read of its case.
async fn owner_read(owner: &mut sluis::rpc::Clients, case_id: &str) -> pb::GetCaseResponse {
    owner
        .cases
        .get_case(with_actor(by_id(case_id, "case_consultation")))
        .await
        .unwrap()
        .into_inner()
}

/// The whole case past `case = "2s"`, counted from its last update: its
/// data no longer opens for its owner or for the recipient its consent
/// names; a case updated since is kept; the report lists every access and
/// the erasure; `audit verify` passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_past_its_period_is_crypto_erased_and_its_log_stays_valid() {
    let node = TestNode::start_with(|c| c.retention.case = Some("2s".into())).await;
    let mut owner = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut owner).await;
    owner
        .consents
        .grant_consent(with_actor(pb::GrantConsentRequest {
            case_id: case_id.clone(),
            recipients: vec![participant(NGO)],
            categories: vec![pb::Category::Perspective as i32],
            purposes: vec!["guidance".into()],
            evidence_ref: "DMS-1".into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    let mut ngo = node.client(NGO).await;
    let before = visible_for_guidance(&mut ngo).await;
    let pseudonym = before
        .cases
        .iter()
        .map(|c| c.subject_pseudonym.clone())
        .next()
        .expect("the NGO sees the case its consent names");
    let read = owner_read(&mut owner, &case_id).await;
    assert!(read.data.unwrap().identity.is_some());

    tokio::time::sleep(Duration::from_millis(2_300)).await;
    // Updated after the wait: its period starts again, it is kept.
    let (kept, _) = register(&mut owner).await;
    let erased = node.node.upkeep().erase_due(&quiet).await.unwrap();
    assert_eq!(erased.cases, 1, "{erased:?}");

    let s = owner
        .cases
        .get_case(with_actor(by_id(&case_id, "case_consultation")))
        .await
        .unwrap_err();
    assert_erased(&s, Some(&case_id));
    let s = ngo
        .cases
        .get_case(with_actor(by_pseudonym(&pseudonym, "guidance")))
        .await
        .unwrap_err();
    assert_erased(&s, None);
    let s = owner
        .cases
        .update_case(with_actor(pb::UpdateCaseRequest {
            case_id: case_id.clone(),
            data: Some(full_case("Ander", "1234567890", "111222333")),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_erased(&s, Some(&case_id));
    let s = owner
        .consents
        .grant_consent(with_actor(pb::GrantConsentRequest {
            case_id: case_id.clone(),
            recipients: vec![participant(NGO)],
            categories: vec![pb::Category::Perspective as i32],
            purposes: vec!["guidance".into()],
            evidence_ref: "DMS-2".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_erased(&s, Some(&case_id));
    owner
        .cases
        .get_case(with_actor(by_id(&kept, "case_consultation")))
        .await
        .expect("a case updated within its period is kept");

    // Erased is gone from the listings: its owner's own cases and the
    // cases a consent shows the NGO no longer list it (a listing of a case
    // that opens for no one would only lead to CASE_ERASED).
    let own = own_cases(&mut owner).await;
    assert!(!own.contains(&case_id), "{own:?}");
    assert!(own.contains(&kept), "{own:?}");
    let after = visible_for_guidance(&mut ngo).await;
    assert!(
        after.cases.iter().all(|c| c.subject_pseudonym != pseudonym),
        "{:?}",
        after.cases
    );

    // Nothing of it is left to open: no data rows, no key, no subject id.
    let (meta, data) = node
        .node
        .store
        .case_with_data(&case_id)
        .await
        .unwrap()
        .unwrap();
    assert!(data.is_empty());
    assert!(format!("{meta:?}").contains("case_key: None"), "{meta:?}");
    assert!(format!("{meta:?}").contains("subject_id: None"), "{meta:?}");

    // The erasure is an access record of its own, naming the case.
    let log = node.log().await;
    let erase = log
        .iter()
        .find(|r| r.method == "case.erase")
        .expect("a case.erase record");
    assert_eq!(erase.case_id.as_deref(), Some(case_id.as_str()));
    assert_eq!(log.iter().filter(|r| r.method == "case.erase").count(), 1);

    // The subject access report still lists every access, and the erasure.
    let mut officer = node.client(OFFICER).await;
    let entries = report(&mut officer, &case_id).await;
    let count = |who: &str, m: &str| entries.iter().filter(|(p, x)| p == who && x == m).count();
    assert_eq!(count(GEMEENTE, "RegisterCase"), 1, "{entries:?}");
    assert_eq!(count(GEMEENTE, "GetCase"), 2, "{entries:?}");
    assert_eq!(count(GEMEENTE, "UpdateCase"), 1, "{entries:?}");
    assert_eq!(count(GEMEENTE, "GrantConsent"), 2, "{entries:?}");
    assert_eq!(count(NGO, "GetCase"), 1, "{entries:?}");
    assert_eq!(count(NGO, "FindCases"), 1, "{entries:?}");
    assert!(
        entries.iter().any(|(_, m)| m == "case.erase"),
        "{entries:?}"
    );

    // The log and its proofs verify after the data they refer to is gone.
    let config = node.config.clone();
    node.node.shutdown().await.unwrap();
    let verified = verify_log_of(&config).await;
    assert!(verified.intact(), "{:?}", verified.first_problem());
}

/// Every method that takes an erased case by id, or a consent of it,
/// answers CASE_ERASED before any other check: to a caller that is not the
/// owner too (not PERMISSION_DENIED), for the consents its owner would list,
/// withdraw or have a receipt of, and for a referral, before the node even
/// looks at whether it is in a federation. Each attempt is recorded naming
/// the case, so it is in the subject's access report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_on_an_erased_case_answers_case_erased_first() {
    let node = TestNode::start_with(|c| c.retention.case = Some("1s".into())).await;
    let mut owner = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut owner).await;
    let consent_id = owner
        .consents
        .grant_consent(with_actor(pb::GrantConsentRequest {
            case_id: case_id.clone(),
            recipients: vec![participant(NGO)],
            categories: vec![pb::Category::Perspective as i32],
            purposes: vec!["guidance".into()],
            evidence_ref: "DMS-1".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .consent
        .unwrap()
        .consent_id;
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let erased = node.node.upkeep().erase_due(&quiet).await.unwrap();
    assert_eq!(erased.cases, 1, "{erased:?}");

    let mut ngo = node.client(NGO).await;
    let mut answers = Vec::new();
    let grant = |evidence: &str| {
        with_actor(pb::GrantConsentRequest {
            case_id: case_id.clone(),
            recipients: vec![participant(NGO)],
            categories: vec![pb::Category::Perspective as i32],
            purposes: vec!["guidance".into()],
            evidence_ref: evidence.into(),
            ..Default::default()
        })
    };
    let s = ngo
        .consents
        .grant_consent(grant("DMS-3"))
        .await
        .unwrap_err();
    answers.push(("GrantConsent by another participant", s));
    let s = ngo
        .cases
        .update_case(with_actor(pb::UpdateCaseRequest {
            case_id: case_id.clone(),
            data: Some(full_case("Ander", "1234567890", "111222333")),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    answers.push(("UpdateCase by another participant", s));
    let s = owner
        .consents
        .list_consents(with_actor(pb::ListConsentsRequest {
            case_id: case_id.clone(),
        }))
        .await
        .unwrap_err();
    answers.push(("ListConsents", s));
    let s = owner
        .consents
        .withdraw_consent(with_actor(pb::WithdrawConsentRequest {
            consent_id: consent_id.clone(),
            note: "verhuisd".into(),
            request_id: String::new(),
        }))
        .await
        .unwrap_err();
    answers.push(("WithdrawConsent", s));
    let s = owner
        .consents
        .get_consent_receipt(with_actor(pb::GetConsentReceiptRequest {
            consent_id: consent_id.clone(),
        }))
        .await
        .unwrap_err();
    answers.push(("GetConsentReceipt", s));
    let s = owner
        .cases
        .refer_case(with_actor(pb::ReferCaseRequest {
            case_id: case_id.clone(),
            to_node: "gm0363".into(),
            new_owner: "gemeente-amsterdam".into(),
        }))
        .await
        .unwrap_err();
    answers.push(("ReferCase", s));
    let log = node.log().await;
    for (what, s) in &answers {
        assert_eq!(
            s.check_error_details()
                .ok()
                .and_then(|d| d.error_info().map(|i| i.reason.clone())),
            Some("CASE_ERASED".to_string()),
            "{what}: {s:?}"
        );
        assert_erased(s, Some(&case_id));
        let id = request_id_of(s.metadata());
        let rec = log
            .iter()
            .find(|r| r.request_id == id)
            .unwrap_or_else(|| panic!("{what}: no record"));
        assert_eq!(rec.case_id.as_deref(), Some(case_id.as_str()), "{what}");
    }
}

/// One category past its period (`medical = "1s"`) is erased alone; the
/// rest of the case still opens for its owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_category_past_its_period_is_erased_alone() {
    let node = TestNode::start_with(|c| c.retention.medical = Some("1s".into())).await;
    let mut owner = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut owner).await;
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let erased = node.node.upkeep().erase_due(&quiet).await.unwrap();
    assert_eq!((erased.cases, erased.partly), (0, 1), "{erased:?}");
    let read = owner_read(&mut owner, &case_id).await;
    let data = read.data.unwrap();
    assert!(data.medical.is_none());
    assert!(data.identity.is_some());
    assert!(
        read.withheld
            .iter()
            .any(|w| w.category == pb::Category::Medical as i32
                && w.reason == pb::WithholdReason::NotPresent as i32),
        "{:?}",
        read.withheld
    );
    let erase = node
        .log()
        .await
        .into_iter()
        .find(|r| r.method == "case.erase")
        .expect("recorded");
    let rec = record_of(&node, &erase.request_id).await;
    assert_eq!(rec.asked, vec![sluis::model::Category::Medical]);
    // The subject's report says what was erased, not only that something was.
    let mut officer = node.client(OFFICER).await;
    let line = officer
        .audit
        .subject_access_report(pb::SubjectAccessReportRequest {
            subject: Some(pb::subject_access_report_request::Subject::CaseId(
                case_id.clone(),
            )),
        })
        .await
        .unwrap()
        .into_inner()
        .entries
        .into_iter()
        .find(|e| e.method == "case.erase")
        .expect("the erasure's line");
    assert_eq!(line.erased, vec![pb::Category::Medical as i32]);
    assert!(line.summary.contains("Erased: medical"), "{}", line.summary);
    // A second run finds nothing more to do.
    assert_eq!(
        node.node.upkeep().erase_due(&quiet).await.unwrap(),
        sluis::gateway::Erased::default()
    );
}

/// Without periods nothing is ever erased.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_period_nothing_is_erased() {
    let node = TestNode::start().await;
    let mut owner = node.client(GEMEENTE).await;
    register(&mut owner).await;
    assert_eq!(
        node.node.upkeep().erase_due(&quiet).await.unwrap(),
        sluis::gateway::Erased::default()
    );
    assert!(!node.log().await.iter().any(|r| r.method == "case.erase"));
}

/// `UpdateCase` with `update_mask` naming a category `data` leaves unset
/// clears it; a mask that does not cover `data`, or names what is not a
/// category, is INVALID_ARGUMENT naming `update_mask` and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_case_clears_a_category_named_in_its_mask() {
    let node = TestNode::start().await;
    let mut owner = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut owner).await;
    let mask = |paths: &[&str]| {
        Some(FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        })
    };

    // AIP-134: each bad path is named by its place; identity, and so the
    // whole case, cannot be cleared.
    let all: Vec<&str> = sluis::model::Category::ALL
        .iter()
        .map(|c| c.as_str())
        .collect();
    let identity_at = all.iter().position(|c| *c == "identity").unwrap();
    let identity_field = format!("update_mask.paths[{identity_at}]");
    for (data, paths, field, says) in [
        (
            Some(pb::CaseData {
                shelter: full_case("X", "1234567890", "111222333").shelter,
                ..Default::default()
            }),
            vec!["medical"],
            "update_mask",
            "does not name shelter",
        ),
        (
            None,
            vec!["diagnosis"],
            "update_mask.paths[0]",
            "not a category",
        ),
        (None, vec!["*"], "update_mask.paths[0]", "not accepted"),
        (
            None,
            vec!["medical.notes"],
            "update_mask.paths[0]",
            "inside a category",
        ),
        (
            None,
            vec!["medical", "medical"],
            "update_mask.paths[1]",
            "names medical",
        ),
        (
            None,
            vec!["shelter", "identity"],
            "update_mask.paths[1]",
            "would clear identity",
        ),
        (
            None,
            all.clone(),
            identity_field.as_str(),
            "would clear identity",
        ),
    ] {
        let before = node.digest().await;
        let s = owner
            .cases
            .update_case(with_actor(pb::UpdateCaseRequest {
                case_id: case_id.clone(),
                data,
                update_mask: mask(&paths),
                request_id: String::new(),
            }))
            .await
            .unwrap_err();
        assert_eq!(s.code(), Code::InvalidArgument, "{paths:?}: {s:?}");
        let d = s.check_error_details().unwrap();
        assert_eq!(
            d.bad_request().unwrap().field_violations[0].field,
            field,
            "{s:?}"
        );
        assert!(s.message().starts_with(field), "{s:?}");
        assert!(s.message().contains(says), "{s:?}");
        assert_eq!(node.digest().await, before, "{paths:?} changed nothing");
    }

    let updated = owner
        .cases
        .update_case(with_actor(pb::UpdateCaseRequest {
            case_id: case_id.clone(),
            data: None,
            update_mask: mask(&["medical"]),
            request_id: String::new(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.version, 2);
    let read = owner_read(&mut owner, &case_id).await;
    let data = read.data.unwrap();
    assert!(data.medical.is_none(), "cleared");
    assert!(data.shelter.is_some(), "the rest is untouched");
    let rec = record_of(&node, &updated.access_record_id).await;
    assert!(rec.asked.contains(&sluis::model::Category::Medical));
    assert!(rec.detail.contains("cleared: medical"), "{}", rec.detail);

    // Clearing what the case no longer holds, or setting a category to
    // the value it has, changes nothing: the version stays, nothing is
    // written, and the call is recorded as no change.
    let shelter_now = owner_read(&mut owner, &case_id).await.data.unwrap().shelter;
    for (data, paths) in [
        (None, vec!["medical"]),
        (
            Some(pb::CaseData {
                shelter: shelter_now.clone(),
                ..Default::default()
            }),
            vec!["shelter", "medical"],
        ),
    ] {
        let before = node.digest().await;
        let same = owner
            .cases
            .update_case(with_actor(pb::UpdateCaseRequest {
                case_id: case_id.clone(),
                data,
                update_mask: mask(&paths),
                request_id: String::new(),
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(same.version, 2, "{paths:?}: no change, no new version");
        let rec = record_of(&node, &same.access_record_id).await;
        assert!(rec.detail.starts_with("no change"), "{}", rec.detail);
        assert_eq!(node.digest().await, before, "{paths:?} wrote nothing");
    }

    // Replacing one category and clearing another in one call.
    owner
        .cases
        .update_case(with_actor(pb::UpdateCaseRequest {
            case_id: case_id.clone(),
            data: Some(pb::CaseData {
                medical: full_case("X", "1234567890", "111222333").medical,
                ..Default::default()
            }),
            update_mask: mask(&["medical", "shelter"]),
            request_id: String::new(),
        }))
        .await
        .unwrap();
    let data = owner_read(&mut owner, &case_id).await.data.unwrap();
    assert!(data.medical.is_some() && data.shelter.is_none());
}

/// `sluis erase --due` on a stopped node does the node's run now, with a
/// progress line and a summary; the erasure is recorded like the node's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erase_due_on_the_command_line() {
    let mut node = TestNode::start_with(|c| c.retention.case = Some("1s".into())).await;
    let path = node.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("interval = \"1h\"", "interval = \"1h\"\ncase = \"1s\""),
    )
    .unwrap();
    let mut owner = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut owner).await;
    let config = node.config.clone();
    node.node.shutdown().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluis"))
        .args(["erase", "--due", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("erased: 1 cases in full"), "{said}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("retention: 1 cases"),
        "{out:?}"
    );
    node.node = sluis::node::Node::start(&config).await.unwrap();
    let mut owner = node.client(GEMEENTE).await;
    let s = owner
        .cases
        .get_case(with_actor(by_id(&case_id, "case_consultation")))
        .await
        .unwrap_err();
    assert_erased(&s, Some(&case_id));
    assert!(node.log().await.iter().any(|r| r.method == "case.erase"));
    node.node.shutdown().await.unwrap();
}

/// Statistics computed after an erasure count nothing of the erased
/// cases: 20 cases of 2025 Q1 past their period and 15 kept; the
/// monitor's inflow table for that quarter, first asked after the erasure,
/// counts the 15 (a count of 35 anywhere would be the erased ones).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_after_an_erasure_do_not_count_the_erased_cases() {
    let node = TestNode::start_with(|c| c.retention.case = Some("2s".into())).await;
    let mut owner = node.client(GEMEENTE).await;
    let mut register_intakes = async |n: u64, first: u64| {
        for i in first..first + n {
            let mut data = full_case("Proef Persoon", &format!("{:010}", 6_000_000_000 + i), "");
            data.perspective = Some(pb::Perspective {
                kind: pb::PerspectiveKind::Return as i32,
                intake_scenario: pb::PerspectiveKind::Return as i32,
                intake_date: "2025-02-10".into(),
                ..Default::default()
            });
            owner
                .cases
                .register_case(with_actor(pb::RegisterCaseRequest {
                    request_id: String::new(),
                    data: Some(data),
                }))
                .await
                .unwrap();
        }
    };
    register_intakes(20, 0).await;
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    register_intakes(15, 100).await;
    let erased = node.node.upkeep().erase_due(&quiet).await.unwrap();
    assert_eq!(erased.cases, 20, "{erased:?}");

    let mut monitor = node.client("monitor-jenv").await;
    let table = monitor
        .stats
        .get_statistics(pb::GetStatisticsRequest {
            table: pb::StatisticsTable::Inflow as i32,
            year: 2025,
            quarter: 1,
            by_municipality: false,
            purpose: "monitoring".into(),
            network: false,
        })
        .await
        .expect("the monitor gets the inflow table")
        .into_inner();
    let counts: Vec<u64> = table
        .figures
        .iter()
        .filter(|f| f.kind == pb::statistics_figure::Kind::Count as i32)
        .map(|f| f.count)
        .collect();
    assert!(
        counts.contains(&15),
        "the kept cases are counted: {}",
        table.text
    );
    assert!(
        counts.iter().all(|c| *c <= 15),
        "nothing of the erased cases is counted: {}",
        table.text
    );
}

/// Whether `needle` occurs in `hay`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Crypto-erasure leaves nothing in the SQLite file's free space: the
/// erased case's wrapped key, its sealed subject id and its sealed data
/// are overwritten when deleted (`PRAGMA secure_delete`), so a copy of the
/// file made afterwards holds none of their bytes — neither in the
/// database file nor in its WAL. SQLite only (PostgreSQL keeps dead tuples
/// until VACUUM: docs/operations.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_case_leaves_no_bytes_in_the_sqlite_file() {
    let node = TestNode::start_on_sqlite(|c| c.retention.case = Some("1s".into())).await;
    let mut owner = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut owner).await;
    let url = node.database_url();
    let mut db = connect_database(&url).await;
    let row = db
        .query_one(
            "SELECT case_key, subject_id FROM cases WHERE id = ?",
            &[Val::Text(case_id.clone())],
        )
        .await;
    let mut secrets = vec![row[0].blob(), row[1].blob()];
    for r in db
        .query(
            "SELECT sealed FROM case_data WHERE case_id = ?",
            &[Val::Text(case_id.clone())],
        )
        .await
    {
        secrets.push(r[0].blob());
    }
    db.close().await;
    assert!(secrets.len() >= 3, "a key, a subject id and data");
    // Each secret is sealed (a random nonce, ciphertext, tag): its last
    // 24 bytes match nothing else in the file by chance.
    let probes: Vec<Vec<u8>> = secrets
        .iter()
        .map(|s| {
            assert!(s.len() >= 24, "{} bytes", s.len());
            s[s.len() - 24..].to_vec()
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let erased = node.node.upkeep().erase_due(&quiet).await.unwrap();
    assert_eq!(erased.cases, 1, "{erased:?}");
    // A copy of the files as they are now, the node running.
    let file = sqlite_file(&url).unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let wal = file.with_extension(format!(
        "{}-wal",
        file.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    bytes.extend(std::fs::read(&wal).unwrap_or_default());
    for (i, p) in probes.iter().enumerate() {
        assert!(
            !contains(&bytes, p),
            "secret {i} of the erased case is still in the database file"
        );
    }
    node.node.shutdown().await.unwrap();
}
