//! Break-glass access: a category that only an emergency rule of the
//! policy (`@break_glass`) permits is released only to a request with a
//! written justification and the acting employee named; without them it is
//! refused and recorded. With them it is released without consent, its
//! record names the emergency basis per category, and an alert stays open
//! until a privacy officer closes it with a verdict over `AuditService` —
//! both steps in the log and in the subject's access report, in Dutch and
//! English. Every released category's basis (consent, legal basis,
//! emergency) is in its record.
//!
//! The default policy's emergency rule `avim-emergency-safety` lets the
//! police (AVIM) see `shelter` and `safety` in an emergency; `safety` also
//! has the ordinary legal-basis rule `avim-safety` for case consultation.

mod common;

use common::*;
use sluis::rpc::proto::v1 as pb;
use sluis::tlog::{BasisKind, Decision};
use tonic::Code;
use tonic_types::StatusExt;

const AVIM: &str = "avim";
const DTV: &str = "dtv";
const OFFICER: &str = "fg-utrecht";
const WHY: &str = "acute threat reported at the shelter location; officer on duty needs it now";

fn emergency(case_id: &str, justification: &str) -> tonic::Request<pb::GetCaseRequest> {
    with_actor(pb::GetCaseRequest {
        categories: vec![pb::Category::Shelter as i32, pb::Category::Safety as i32],
        emergency_justification: justification.into(),
        ..by_id(case_id, "case_consultation")
    })
}

async fn alerts(officer: &mut sluis::rpc::Clients, show_closed: bool) -> Vec<pb::EmergencyAlert> {
    officer
        .audit
        .list_emergency_alerts(pb::ListEmergencyAlertsRequest {
            show_closed,
            ..Default::default()
        })
        .await
        .expect("an officer lists the emergency alerts")
        .into_inner()
        .alerts
}

/// The subject's report in Dutch, as the officer's command line makes it
/// against the node over mTLS with the officer's certificate.
async fn dutch_report(node: &TestNode, case_id: &str) -> String {
    let pki = node.pki();
    let p = |f: &str| pki.join(f).to_string_lossy().to_string();
    let args: Vec<String> = [
        "audit",
        "report",
        "--case",
        case_id,
        "--lang",
        "nl",
        "--server-name",
        "localhost",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "--node".into(),
        format!("https://127.0.0.1:{}", node.node.local_addr.port()),
        "--cert".into(),
        p(&format!("clients/{OFFICER}.pem")),
        "--key".into(),
        p(&format!("clients/{OFFICER}.key")),
        "--ca".into(),
        p("ca.pem"),
    ])
    .collect();
    let out = tokio::task::spawn_blocking(move || {
        let empty = tempfile::tempdir().unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_sluis"))
            .current_dir(empty.path())
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn report(
    officer: &mut sluis::rpc::Clients,
    case_id: &str,
) -> pb::SubjectAccessReportResponse {
    officer
        .audit
        .subject_access_report(pb::SubjectAccessReportRequest {
            subject: Some(pb::subject_access_report_request::Subject::CaseId(
                case_id.into(),
            )),
        })
        .await
        .expect("report")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emergency_access_needs_a_justification_raises_an_alert_and_is_reviewed() {
    let node = TestNode::start_with(|c| c.node.checkpoint_interval_ms = 50).await;
    let mut owner = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut owner).await;
    let mut avim = node.client(AVIM).await;
    let mut officer = node.client(OFFICER).await;

    // Without a justification: refused, nothing released, recorded.
    let refused = avim
        .cases
        .get_case(emergency(&case_id, ""))
        .await
        .expect_err("an emergency-only category without a justification is refused");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    let info = refused.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "JUSTIFICATION_REQUIRED");
    assert_eq!(
        info.metadata.get("categories").map(String::as_str),
        Some("shelter")
    );
    assert_eq!(
        info.metadata.get("rules").map(String::as_str),
        Some("avim-emergency-safety")
    );
    assert!(
        refused.message().contains("emergency_justification"),
        "{refused:?}"
    );
    let rec = record_of(&node, &request_id_of(refused.metadata())).await;
    assert_eq!(
        (
            rec.decision,
            rec.status.as_str(),
            rec.released.len(),
            rec.bases.len()
        ),
        (Decision::Denied, "FAILED_PRECONDITION", 0, 0)
    );
    assert_eq!(rec.case_id.as_deref(), Some(case_id.as_str()));

    // A justification without the acting employee is no emergency either.
    let mut no_actor = by_id(&case_id, "case_consultation");
    no_actor.categories = vec![pb::Category::Shelter as i32];
    no_actor.emergency_justification = WHY.into();
    let e = avim.cases.get_case(no_actor).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");

    // A justification that is not one printable line is refused as such.
    for bad in ["two\nlines", "bell\u{7}", &"x".repeat(501)] {
        let e = avim
            .cases
            .get_case(emergency(&case_id, bad))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains("emergency_justification"), "{e:?}");
    }

    // Asking for all categories without one: the emergency-only category
    // is withheld, saying why; the rest is decided as always.
    let r = avim
        .cases
        .get_case(with_actor(by_id(&case_id, "case_consultation")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(released(&r), ["safety"]);
    assert_eq!(
        withheld_reason(&r, pb::Category::Shelter),
        Some(pb::WithholdReason::JustificationRequired)
    );
    assert!(alerts(&mut officer, false).await.is_empty(), "no alert yet");

    // With both: released without consent, the basis per category
    // recorded, and an alert opened.
    let ok = avim.cases.get_case(emergency(&case_id, WHY)).await.unwrap();
    let access_id = request_id(&ok);
    let r = ok.into_inner();
    assert_eq!(released(&r), ["safety", "shelter"]);
    assert!(data_matches_released(&r));
    let rec = record_of(&node, &access_id).await;
    assert!(rec.is_emergency());
    let bases: Vec<(String, BasisKind, &str)> = rec
        .bases
        .iter()
        .map(|b| (b.category.to_string(), b.kind, b.text.as_str()))
        .collect();
    assert_eq!(bases.len(), 2, "{bases:?}");
    // In category order: shelter only on the emergency; safety on its
    // ordinary legal basis.
    assert_eq!(
        (bases[0].0.as_str(), bases[0].1, bases[0].2),
        ("shelter", BasisKind::Emergency, WHY)
    );
    assert_eq!(rec.bases[0].rules, ["avim-emergency-safety"]);
    assert_eq!(
        (bases[1].0.as_str(), bases[1].1),
        ("safety", BasisKind::LegalBasis)
    );
    assert!(bases[1].2.contains("Politiewet"), "{bases:?}");
    assert_eq!(rec.bases[1].rules, ["avim-safety"]);
    assert!(rec.consents.is_empty(), "no consent was needed");

    let open = alerts(&mut officer, false).await;
    assert_eq!(open.len(), 1);
    let entry = open[0].access.as_ref().unwrap();
    assert_eq!(entry.access_record_id, access_id);
    assert!(!open[0].closed);
    let emergency_basis = entry
        .bases
        .iter()
        .find(|b| b.kind == pb::BasisKind::Emergency as i32)
        .expect("the entry names its emergency basis");
    assert_eq!(emergency_basis.text, WHY);

    // Only a privacy officer may list or close alerts.
    let e = avim
        .audit
        .list_emergency_alerts(pb::ListEmergencyAlertsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);

    // Closing needs a verdict and a note; a non-emergency access has no
    // alert; the open alert stays listed until closed.
    let close = |id: &str, verdict: pb::Verdict, note: &str| pb::CloseEmergencyAlertRequest {
        access_record_id: id.into(),
        verdict: verdict as i32,
        note: note.into(),
    };
    let e = officer
        .audit
        .close_emergency_alert(close(&access_id, pb::Verdict::Unspecified, "fine"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let e = officer
        .audit
        .close_emergency_alert(close(&access_id, pb::Verdict::Justified, ""))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let plain = owner
        .cases
        .get_case(with_actor(by_id(&case_id, "case_consultation")))
        .await
        .unwrap();
    let e = officer
        .audit
        .close_emergency_alert(close(&request_id(&plain), pb::Verdict::Justified, "ok"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert_eq!(alerts(&mut officer, false).await.len(), 1, "still open");

    let note = "threat confirmed by the shelter staff log; access in proportion";
    let closed = officer
        .audit
        .close_emergency_alert(close(&access_id, pb::Verdict::Justified, note))
        .await
        .unwrap();
    let review_id = request_id(&closed);
    let alert = closed.into_inner().alert.unwrap();
    assert!(alert.closed);
    let review_entry = alert.review.expect("the review's own entry");
    assert_eq!(review_entry.access_record_id, review_id);
    let review = review_entry.review.unwrap();
    assert_eq!(
        (
            review.access_record_id.as_str(),
            review.verdict,
            review.note.as_str()
        ),
        (access_id.as_str(), pb::Verdict::Justified as i32, note)
    );
    let rec = record_of(&node, &review_id).await;
    assert_eq!(rec.case_id.as_deref(), Some(case_id.as_str()));
    assert_eq!(rec.review.unwrap().access_record_id, access_id);

    // Closed: no longer open, listed with its review when asked, and not
    // closed twice.
    assert!(alerts(&mut officer, false).await.is_empty());
    let all = alerts(&mut officer, true).await;
    assert_eq!(all.len(), 1);
    assert!(all[0].closed);
    assert_eq!(all[0].review.as_ref().unwrap().access_record_id, review_id);
    let e = officer
        .audit
        .close_emergency_alert(close(&access_id, pb::Verdict::NotJustified, "second look"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");

    // The subject's report shows the refusal, the emergency access with
    // its justification, and the review, plainly.
    let r = report(&mut officer, &case_id).await;
    let text = &r.text;
    assert!(text.contains("EMERGENCY ACCESS"), "{text}");
    assert!(
        text.contains(&format!("justification: \"{WHY}\"")),
        "{text}"
    );
    assert!(text.contains("reviewed an emergency access"), "{text}");
    assert!(
        text.contains(&format!("Verdict: justified: \"{note}\"")),
        "{text}"
    );
    assert!(text.contains("legal basis: Politiewet"), "{text}");
    let access_line = r
        .entries
        .iter()
        .find(|e| e.summary.contains("EMERGENCY ACCESS"))
        .unwrap();
    assert_eq!(access_line.bases.len(), 2);
    assert!(
        r.entries
            .iter()
            .any(|e| e.method == "GetCase" && e.decision == pb::Decision::Denied as i32),
        "the refused attempt is in the report"
    );

    // And in Dutch, through the officer's own tools (the words are the
    // report's; the node words in English).
    let dutch = dutch_report(&node, &case_id).await;
    assert!(dutch.contains("NOODTOEGANG"), "{dutch}");
    assert!(
        dutch.contains(&format!("rechtvaardiging: \"{WHY}\"")),
        "{dutch}"
    );
    assert!(dutch.contains("Oordeel: gerechtvaardigd"), "{dutch}");

    // Everything verifies.
    node.node.shutdown().await.expect("an orderly shutdown");
    let v = verify_log_of(&node.config).await;
    assert!(v.intact(), "{:?}", v.first_problem());
}

/// Each released category carries its own basis: with two rules of
/// different kinds deciding one read, the record says which category went
/// on consent and which on a legal basis (not only the request's rules).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_released_category_names_its_basis() {
    let node = TestNode::start().await;
    let mut owner = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut owner).await;
    let consent = grant_to_role(&mut owner, &case_id, DTV).await;
    let mut dtv = node.client(DTV).await;
    let r = dtv.cases.get_case(by_id(&case_id, "return")).await.unwrap();
    let rec = record_of(&node, &request_id(&r)).await;
    let bases: Vec<(String, BasisKind, &str, Vec<String>)> = rec
        .bases
        .iter()
        .map(|b| {
            (
                b.category.to_string(),
                b.kind,
                b.text.as_str(),
                b.rules.clone(),
            )
        })
        .collect();
    assert_eq!(
        rec.released.len(),
        rec.bases.len(),
        "one basis per released category: {bases:?}"
    );
    let residence = bases.iter().find(|b| b.0 == "residence_procedure").unwrap();
    assert_eq!(residence.1, BasisKind::LegalBasis);
    assert_eq!(residence.3, ["dtv-return-residence"]);
    let perspective = bases.iter().find(|b| b.0 == "perspective").unwrap();
    assert_eq!(
        (perspective.1, perspective.2),
        (BasisKind::Consent, consent.as_str())
    );
    assert_eq!(perspective.3, ["dtv-return-consent"]);
    assert!(!rec.is_emergency());
}
