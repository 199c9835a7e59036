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
    officer_cli(node, &["report", "--case", case_id, "--lang", "nl"]).await
}

/// `sluis audit ARGS` against the node over mTLS with the officer's
/// certificate: its output.
async fn officer_cli(node: &TestNode, command: &[&str]) -> String {
    let pki = node.pki();
    let p = |f: &str| pki.join(f).to_string_lossy().to_string();
    let args: Vec<String> = ["audit"]
        .iter()
        .chain(command)
        .chain(&["--server-name", "localhost"])
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

    // The review's line names the access it reviews, by its position.
    let access_index = access_line.index;
    let review_line = r
        .entries
        .iter()
        .find(|e| e.review.is_some())
        .expect("the review's line");
    assert_eq!(
        review_line.review.as_ref().unwrap().access_index,
        Some(access_index)
    );
    assert!(
        review_line
            .summary
            .contains(&format!("The access reviewed: #{access_index}.")),
        "{}",
        review_line.summary
    );
    assert!(
        dutch.contains(&format!("De beoordeelde toegang: #{access_index}.")),
        "{dutch}"
    );
    let query = officer_cli(&node, &["query", "--method", "CloseEmergencyAlert"]).await;
    let line = query
        .lines()
        .find(|l| l.contains("verdict:"))
        .unwrap_or_else(|| panic!("{query}"));
    assert!(
        line.contains(&format!("reviews access #{access_index}")),
        "{line}"
    );

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

/// Free text the log, an alert or a receipt keeps never names the person:
/// an emergency justification, the officer's note closing an alert, a
/// consent's evidence reference and a withdrawal note that carry a
/// V-number, a BSN (however written) or the case's own name are refused
/// with INVALID_ARGUMENT naming the field, change nothing, and are
/// recorded as refused — without the text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_text_that_names_the_person_is_refused_everywhere() {
    let node = TestNode::start().await;
    let mut owner = node.client(GEMEENTE).await;
    // The case's subject is "Test Persoon", V-number 1234567890, BSN 111222333.
    let (case_id, _) = register(&mut owner).await;
    let mut avim = node.client(AVIM).await;
    let mut officer = node.client(OFFICER).await;
    let naming = [
        "subject 1234567890 seen armed at the shelter",
        "bsn 1112.22.333 threatened staff",
        "Persoon threatened staff at the shelter",
        "mr PERSOON is in danger",
        // Look-alike letters of another script (a Cyrillic "е"), a name
        // glued to digits or letters, a number with mixed separators.
        "P\u{435}rsoon threatened staff",
        "Persoon2 threatened staff",
        "mrPersoon threatened staff",
        "subject 12.34-56.78.90 seen armed",
        "bsn 111.222-333 threatened staff",
    ];
    let refused = |s: &tonic::Status, field: &str| {
        assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
        let d = s.check_error_details().unwrap();
        assert_eq!(d.bad_request().unwrap().field_violations[0].field, field);
        assert!(
            s.message()
                .starts_with(&format!("{field} must not name the person")),
            "{s:?}"
        );
        for raw in [
            "1234567890",
            "111222333",
            "1112.22.333",
            "Persoon",
            "PERSOON",
        ] {
            assert!(!s.message().contains(raw), "{s:?}");
        }
    };
    for text in naming {
        let before = node.digest().await;
        let e = avim
            .cases
            .get_case(emergency(&case_id, text))
            .await
            .unwrap_err();
        refused(&e, "emergency_justification");
        let rec = record_of(&node, &request_id_of(e.metadata())).await;
        assert_eq!(rec.status, "INVALID_ARGUMENT");
        assert!(rec.bases.is_empty() && rec.released.is_empty());
        assert!(
            !format!("{rec:?}").contains(text),
            "the text is not in the log"
        );
        assert!(alerts(&mut officer, false).await.is_empty(), "no alert");

        let e = owner
            .consents
            .grant_consent(with_actor(pb::GrantConsentRequest {
                evidence_ref: text.into(),
                ..consent_request(&case_id)
            }))
            .await
            .unwrap_err();
        refused(&e, "evidence_ref");
        assert_eq!(node.digest().await, before, "{text}: nothing changed");
    }

    // Withdrawal notes and the officer's note alike.
    let consent_id = grant(
        &mut owner,
        &case_id,
        vec![participant(NGO)],
        &[pb::Category::Shelter],
        &["shelter"],
    )
    .await
    .consent_id;
    let access = avim.cases.get_case(emergency(&case_id, WHY)).await.unwrap();
    let access_id = request_id(&access);
    for text in naming {
        let before = node.digest().await;
        let e = owner
            .consents
            .withdraw_consent(with_actor(pb::WithdrawConsentRequest {
                consent_id: consent_id.clone(),
                note: text.into(),
                request_id: String::new(),
            }))
            .await
            .unwrap_err();
        refused(&e, "note");
        let e = officer
            .audit
            .close_emergency_alert(pb::CloseEmergencyAlertRequest {
                access_record_id: access_id.clone(),
                verdict: pb::Verdict::Justified as i32,
                note: text.into(),
            })
            .await
            .unwrap_err();
        refused(&e, "note");
        assert_eq!(node.digest().await, before, "{text}: nothing changed");
    }
    assert_eq!(alerts(&mut officer, false).await.len(), 1, "still open");
    // Plain words pass: dates, times and reference numbers are no identity.
    officer
        .audit
        .close_emergency_alert(pb::CloseEmergencyAlertRequest {
            access_record_id: access_id.clone(),
            verdict: pb::Verdict::Justified as i32,
            note: "confirmed with shelter staff on 2026-11-30 12:00, ticket DMS-2026-0077".into(),
        })
        .await
        .unwrap();
}

/// Two officers close one alert at the same moment: one review is
/// appended, the other is told plainly that the alert is closed, by whom
/// and when — FAILED_PRECONDITION, never INTERNAL — and its refusal is
/// recorded. Both calls are under way before either's record is written
/// (`at_once`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_officers_closing_one_alert_at_once_get_one_verdict() {
    let node = TestNode::start().await;
    let mut owner = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut owner).await;
    let mut avim = node.client(AVIM).await;
    let access = avim.cases.get_case(emergency(&case_id, WHY)).await.unwrap();
    let access_id = request_id(&access);
    let close = |note: &str| pb::CloseEmergencyAlertRequest {
        access_record_id: access_id.clone(),
        verdict: pb::Verdict::Justified as i32,
        note: note.into(),
    };
    let mut first = node.client(OFFICER).await;
    let mut second = node.client(OFFICER).await;
    let (a, b) = (close("first look"), close("second look"));
    let (a, b) = at_once(
        &node,
        async move { first.audit.close_emergency_alert(a).await },
        async move { second.audit.close_emergency_alert(b).await },
    )
    .await;
    let (won, lost) = match (a, b) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
        other => panic!("one close wins and one is refused: {other:?}"),
    };
    assert!(won.into_inner().alert.unwrap().closed);
    assert_eq!(lost.code(), Code::FailedPrecondition, "{lost:?}");
    assert!(
        lost.message()
            .contains(&format!("closed already: closed by {OFFICER} at ")),
        "{lost:?}"
    );
    let rec = record_of(&node, &request_id_of(lost.metadata())).await;
    assert_eq!(rec.status, "FAILED_PRECONDITION");
    assert!(rec.review.is_none(), "the refused close holds no verdict");
    let mut officer = node.client(OFFICER).await;
    let all = alerts(&mut officer, true).await;
    assert_eq!(all.len(), 1);
    assert!(all[0].closed);
}

/// The alerts' page token is sealed to its listing (AIP-158): a token
/// from the open alerts is refused for all alerts and the other way
/// round, a bare position is refused, and the pages of one listing cover
/// it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_page_tokens_are_sealed_to_their_listing() {
    let node = TestNode::start().await;
    let mut owner = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut owner).await;
    let mut avim = node.client(AVIM).await;
    for _ in 0..3 {
        avim.cases.get_case(emergency(&case_id, WHY)).await.unwrap();
    }
    let mut officer = node.client(OFFICER).await;
    let page = |token: &str, show_closed: bool| pb::ListEmergencyAlertsRequest {
        page_size: 2,
        page_token: token.into(),
        show_closed,
    };
    let first = officer
        .audit
        .list_emergency_alerts(page("", false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.alerts.len(), 2);
    assert!(!first.next_page_token.is_empty());
    assert!(
        first.next_page_token.parse::<i64>().is_err(),
        "not a bare position"
    );
    for (token, show_closed) in [
        (first.next_page_token.as_str(), true),
        ("3", false),
        ("0", true),
    ] {
        let e = officer
            .audit
            .list_emergency_alerts(page(token, show_closed))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        let d = e.check_error_details().unwrap();
        assert_eq!(
            d.bad_request().unwrap().field_violations[0].field,
            "page_token"
        );
        assert!(e.message().contains("show_closed"), "{e:?}");
    }
    // Another officer's token is not this one's either.
    let mut avim_as_officer = node.client(AVIM).await;
    let e = avim_as_officer
        .audit
        .list_emergency_alerts(page(&first.next_page_token, false))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let rest = officer
        .audit
        .list_emergency_alerts(page(&first.next_page_token, false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.alerts.len(), 1);
    assert!(rest.next_page_token.is_empty());
    let mut ids: Vec<String> = first
        .alerts
        .iter()
        .chain(&rest.alerts)
        .map(|a| a.access.as_ref().unwrap().access_record_id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "each alert once");
}

/// A name written another way is still the name: with or without its
/// accents (`Zoe` for `Zoë`, `Muller` for `Müller`, `Sahin` for `Şahin`),
/// its accents as separate combining marks (Unicode NFD, as some keyboards
/// and systems send them), `ss` for `ß`. Each is refused like the name as
/// registered, and nothing of it reaches the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subjects_name_is_refused_in_any_spelling_of_its_letters() {
    let node = TestNode::start().await;
    let mut owner = node.client(GEMEENTE).await;
    let registered = owner
        .cases
        .register_case(with_actor(pb::RegisterCaseRequest {
            request_id: String::new(),
            data: Some(full_case("Zoë Müller-Şahin Strauß", "1234567890", "")),
        }))
        .await
        .unwrap()
        .into_inner();
    // And the other way round: registered with combining marks.
    let decomposed = owner
        .cases
        .register_case(with_actor(pb::RegisterCaseRequest {
            request_id: String::new(),
            data: Some(full_case("Ame\u{301}lie Dubois", "1234567891", "")),
        }))
        .await
        .unwrap()
        .into_inner();
    let mut avim = node.client(AVIM).await;
    let mut officer = node.client(OFFICER).await;
    for (case_id, text) in [
        (&registered.case_id, "Zoe\u{308} seen at the shelter"),
        (&registered.case_id, "zoe seen at the shelter"),
        (&registered.case_id, "threat against Muller"),
        (&registered.case_id, "SAHIN threatened staff"),
        (&registered.case_id, "strauss threatened staff"),
        (&registered.case_id, "ZOË threatened staff"),
        (&decomposed.case_id, "Amélie threatened staff"),
        (&decomposed.case_id, "Amelie threatened staff"),
        // A part of four letters or more inside a longer word: a
        // possessive or a name glued to another word is still the name.
        (&registered.case_id, "threat at the Mullers' shed"),
    ] {
        refused_as_naming(&node, &mut avim, case_id, text).await;
    }
    // Digits written another way are the same number: full-width digits
    // of a V-number and of a BSN.
    for text in [
        "subject \u{ff11}\u{ff12}\u{ff13}\u{ff14}\u{ff15}\u{ff16}\u{ff17}\u{ff18}\u{ff19}\u{ff10} at risk",
        "bsn \u{ff11}\u{ff11}\u{ff11}\u{ff12}\u{ff12}\u{ff12}\u{ff13}\u{ff13}\u{ff13}",
    ] {
        refused_as_naming(&node, &mut avim, &registered.case_id, text).await;
    }
    assert!(alerts(&mut officer, false).await.is_empty(), "no alert");
    // A three-letter part inside another word, and words that share some
    // letters with the name, still pass.
    avim.cases
        .get_case(emergency(
            &registered.case_id,
            "a zoetic threat at the mule shed",
        ))
        .await
        .unwrap();
}

/// An emergency read with `text` as its justification is refused as
/// naming the person, and nothing of the text is in its record.
async fn refused_as_naming(
    node: &TestNode,
    avim: &mut sluis::rpc::Clients,
    case_id: &str,
    text: &str,
) {
    let e = avim
        .cases
        .get_case(emergency(case_id, text))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{text}: {e:?}");
    assert!(
        e.message()
            .starts_with("emergency_justification must not name the person"),
        "{text}: {e:?}"
    );
    let rec = record_of(node, &request_id_of(e.metadata())).await;
    assert!(rec.released.is_empty() && rec.bases.is_empty(), "{text}");
    assert!(!format!("{rec:?}").contains(text), "{text}: not in the log");
}

/// Every attempt at a review names the reviewed access's case in its
/// record, so the subject's report shows the refused ones too: a note
/// that names the person, an empty note, and a second close of a closed
/// alert — not only the review that was taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_reviews_of_an_emergency_access_are_in_the_subjects_report() {
    let node = TestNode::start().await;
    let mut owner = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut owner).await;
    let mut avim = node.client(AVIM).await;
    let access = avim.cases.get_case(emergency(&case_id, WHY)).await.unwrap();
    let access_id = request_id(&access);
    let mut officer = node.client(OFFICER).await;
    let close = |note: &str| pb::CloseEmergencyAlertRequest {
        access_record_id: access_id.clone(),
        verdict: pb::Verdict::Justified as i32,
        note: note.into(),
    };
    let mut refused = Vec::new();
    for note in ["Persoon was in danger", ""] {
        let e = officer
            .audit
            .close_emergency_alert(close(note))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        refused.push(request_id_of(e.metadata()));
    }
    officer
        .audit
        .close_emergency_alert(close("threat confirmed by the shelter"))
        .await
        .unwrap();
    let e = officer
        .audit
        .close_emergency_alert(close("once more"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    refused.push(request_id_of(e.metadata()));
    for id in &refused {
        let rec = record_of(&node, id).await;
        assert_eq!(rec.case_id.as_deref(), Some(case_id.as_str()), "{rec:?}");
        assert!(
            rec.review.is_none(),
            "a refused review is no review: {rec:?}"
        );
    }
    let r = report(&mut officer, &case_id).await;
    let tried: Vec<&str> = r
        .entries
        .iter()
        .filter(|e| e.method == "CloseEmergencyAlert")
        .map(|e| e.request_id.as_str())
        .collect();
    assert_eq!(tried.len(), 4, "{tried:?}");
    for id in &refused {
        assert!(tried.contains(&id.as_str()), "{id} in the report");
    }
}
