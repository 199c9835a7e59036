//! Over real mTLS: each role receives exactly what the policy and the
//! subject's consent allow, under its own stable pseudonym, and consent
//! changes take effect on the very next request.

mod common;

use common::*;
use sluis::rpc::proto::v1 as pb;
use tonic::Code;

use pb::Category as C;
use pb::WithholdReason as W;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_receives_exactly_what_policy_and_consent_allow() {
    let node = TestNode::start().await;
    let mut gemeente = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut gemeente).await;

    // Before any consent: only legal-basis categories flow.
    let mut dtv = node.client("dtv").await;
    let r = dtv
        .cases
        .get_case(by_id(&case_id, "return"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(released(&r), ["residence_procedure"]);
    assert_eq!(withheld_reason(&r, C::Perspective), Some(W::NoConsent));
    assert_eq!(withheld_reason(&r, C::Identity), Some(W::NoConsent));
    assert_eq!(
        withheld_reason(&r, C::Medical),
        Some(W::NotPermittedForRoleAndPurpose)
    );
    assert!(data_matches_released(&r));

    grant(
        &mut gemeente,
        &case_id,
        vec![role("dtv")],
        &[C::Perspective, C::Medical],
        &["return"],
    )
    .await;
    grant(
        &mut gemeente,
        &case_id,
        vec![participant(NGO)],
        &[C::Identity, C::Perspective, C::Shelter, C::Medical],
        &["case_consultation"],
    )
    .await;

    let expectations: [(&str, &str, &[&str]); 6] = [
        // Consent for medical to DT&V does not override the policy's forbid.
        ("dtv", "return", &["perspective", "residence_procedure"]),
        ("ind", "legalisation", &["residence_procedure"]),
        ("avim", "return", &["safety"]),
        (
            NGO,
            "case_consultation",
            &["identity", "medical", "perspective", "shelter"],
        ),
        // The NGO's consent names case_consultation only.
        (NGO, "shelter", &[]),
        ("monitor-jenv", "monitoring", &[]),
    ];
    for (who, purpose, want) in expectations {
        let mut c = node.client(who).await;
        let r = c
            .cases
            .get_case(by_id(&case_id, purpose))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(released(&r), want, "{who} for {purpose}");
        assert!(
            data_matches_released(&r),
            "{who}: data only for released categories"
        );
        assert_eq!(
            r.released.len() + r.withheld.len(),
            8,
            "{who}: every category accounted for"
        );
    }

    // Identity released to the NGO is the identity registered.
    let mut ngo = node.client(NGO).await;
    let r = ngo
        .cases
        .get_case(by_id(&case_id, "case_consultation"))
        .await
        .unwrap()
        .into_inner();
    let id = r.data.unwrap().identity.unwrap();
    assert_eq!(
        (id.name.as_str(), id.v_number.as_str()),
        ("Test Persoon", "1234567890")
    );

    // Asking for a subset returns only that subset.
    let mut req = by_id(&case_id, "case_consultation");
    req.categories = cats(&[C::Shelter, C::Safety]);
    let r = ngo.cases.get_case(req).await.unwrap().into_inner();
    assert_eq!(released(&r), ["shelter"]);
    assert_eq!(r.withheld.len(), 1);
    assert_eq!(
        withheld_reason(&r, C::Safety),
        Some(W::NotPermittedForRoleAndPurpose)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_needs_an_acting_person_and_then_sees_everything() {
    let node = TestNode::start().await;
    let mut gemeente = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut gemeente).await;
    let r = gemeente
        .cases
        .get_case(by_id(&case_id, "case_consultation"))
        .await
        .unwrap()
        .into_inner();
    assert!(r.released.is_empty());
    assert_eq!(withheld_reason(&r, C::Shelter), Some(W::ActorRequired));
    let r = gemeente
        .cases
        .get_case(with_actor(by_id(&case_id, "case_consultation")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.released.len(), 8);
    // The acting person is in the access record only as a keyed hash.
    let rows = node.log().await;
    let rec = sluis::tlog::AccessRecord::decode(&rows.last().unwrap().record).unwrap();
    let hash = rec.actor_hash.expect("actor recorded");
    assert!(hash.starts_with("ah1.") && !hash.contains(ACTOR));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pseudonyms_are_stable_per_recipient_unlinkable_and_private() {
    let node = TestNode::start().await;
    let mut gemeente = node.client(GEMEENTE).await;
    let (case_id, owner_pseudonym) = register(&mut gemeente).await;
    let (other_case, _) = register(&mut gemeente).await;

    let mut seen = vec![owner_pseudonym];
    let mut by_who = std::collections::HashMap::new();
    for who in ["dtv", "ind", "avim", NGO, "monitor-jenv"] {
        let mut c = node.client(who).await;
        let a = c
            .cases
            .get_case(by_id(&case_id, "return"))
            .await
            .unwrap()
            .into_inner();
        let b = c
            .cases
            .get_case(by_id(&case_id, "legalisation"))
            .await
            .unwrap()
            .into_inner();
        let other = c
            .cases
            .get_case(by_id(&other_case, "return"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(a.subject_pseudonym, b.subject_pseudonym, "{who}: stable");
        assert_ne!(
            a.subject_pseudonym, other.subject_pseudonym,
            "{who}: per subject"
        );
        assert!(a.subject_pseudonym.starts_with("ps1."));
        seen.push(a.subject_pseudonym.clone());
        by_who.insert(who, a.subject_pseudonym);
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "different for every recipient");

    // Its own pseudonym resolves for DT&V; asked by pseudonym, the case id
    // is not handed out.
    let mut dtv = node.client("dtv").await;
    let r = dtv
        .cases
        .get_case(by_pseudonym(&by_who["dtv"], "return"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.subject_pseudonym, by_who["dtv"]);
    assert!(r.case_id.is_empty());
    assert_eq!(released(&r), ["residence_procedure"]);

    // Another participant's pseudonym: NOT_FOUND, the same answer and
    // message as for one that never existed.
    let mut ind = node.client("ind").await;
    let wrong = ind
        .cases
        .get_case(by_pseudonym(&by_who["dtv"], "legalisation"))
        .await
        .unwrap_err();
    let never = ind
        .cases
        .get_case(by_pseudonym(
            "ps1.AAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "legalisation",
        ))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::NotFound);
    assert_eq!(
        (wrong.code(), wrong.message()),
        (never.code(), never.message())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawal_takes_effect_on_the_very_next_request() {
    let node = TestNode::start().await;
    let mut gemeente = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut gemeente).await;
    let consent = grant(
        &mut gemeente,
        &case_id,
        vec![participant(NGO)],
        &[C::Identity, C::Shelter],
        &["shelter"],
    )
    .await;
    let mut ngo = node.client(NGO).await;
    let r = ngo
        .cases
        .get_case(by_id(&case_id, "shelter"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(released(&r), ["identity", "shelter"]);

    gemeente
        .consents
        .withdraw_consent(with_actor(pb::WithdrawConsentRequest {
            request_id: String::new(),
            consent_id: consent.consent_id.clone(),
            note: String::new(),
        }))
        .await
        .unwrap();
    let r = ngo
        .cases
        .get_case(by_id(&case_id, "shelter"))
        .await
        .unwrap()
        .into_inner();
    assert!(r.released.is_empty());
    assert!(r.data.clone().unwrap_or_default().identity.is_none());
    assert_eq!(withheld_reason(&r, C::Identity), Some(W::ConsentWithdrawn));
    assert_eq!(withheld_reason(&r, C::Shelter), Some(W::ConsentWithdrawn));

    // The consent and its history stay.
    let list = gemeente
        .consents
        .list_consents(with_actor(pb::ListConsentsRequest {
            case_id: case_id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.consents.len(), 1);
    let c = &list.consents[0];
    assert_eq!(c.state, pb::ConsentState::Withdrawn as i32);
    let kinds: Vec<i32> = c.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            pb::consent_event::Kind::Given as i32,
            pb::consent_event::Kind::Withdrawn as i32
        ]
    );
}

fn ts(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms / 1000,
        nanos: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_validity_window_is_honoured() {
    let node = TestNode::start().await;
    let mut gemeente = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut gemeente).await;
    let now = sluis::model::clock::now_millis();
    let hour = 3_600_000;
    let window = |from: i64, until: i64, cat: C| pb::GrantConsentRequest {
        request_id: String::new(),
        case_id: case_id.clone(),
        recipients: vec![participant(NGO)],
        categories: cats(&[cat]),
        purposes: vec!["guidance".into()],
        valid_from: Some(ts(from)),
        valid_until: Some(ts(until)),
        evidence_ref: "DMS-2".into(),
    };
    // One that ends in a second (a window already over is refused when
    // recorded), one valid only from tomorrow, and one that ends in four
    // seconds.
    for req in [
        window(now - hour, now + 1_000, C::Shelter),
        window(now + 24 * hour, now + 48 * hour, C::Guidance),
        window(now - hour, now + 4_000, C::Perspective),
    ] {
        gemeente
            .consents
            .grant_consent(with_actor(req))
            .await
            .unwrap();
    }
    let mut ngo = node.client(NGO).await;
    tokio::time::sleep(std::time::Duration::from_millis(
        (now + 1_100 - sluis::model::clock::now_millis()).max(0) as u64,
    ))
    .await;
    let r = ngo
        .cases
        .get_case(by_id(&case_id, "guidance"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(released(&r), ["perspective"]);
    assert_eq!(withheld_reason(&r, C::Shelter), Some(W::ConsentExpired));
    assert_eq!(
        withheld_reason(&r, C::Guidance),
        Some(W::ConsentNotYetValid)
    );

    // Once the short consent's window closes, the next request is withheld.
    tokio::time::sleep(std::time::Duration::from_millis(
        (now + 4_100 - sluis::model::clock::now_millis()).max(0) as u64,
    ))
    .await;
    let r = ngo
        .cases
        .get_case(by_id(&case_id, "guidance"))
        .await
        .unwrap()
        .into_inner();
    assert!(r.released.is_empty());
    assert_eq!(withheld_reason(&r, C::Perspective), Some(W::ConsentExpired));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_has_one_access_record_without_identity() {
    let node = TestNode::start().await;
    let mut gemeente = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut gemeente).await;
    grant(
        &mut gemeente,
        &case_id,
        vec![role("ngo")],
        &[C::Shelter],
        &["shelter"],
    )
    .await;
    let mut ngo = node.client(NGO).await;
    let r = ngo
        .cases
        .get_case(by_id(&case_id, "shelter"))
        .await
        .unwrap();
    let request_id = r
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let rows = node.log().await;
    assert_eq!(rows.len(), 3);
    let row = rows
        .iter()
        .find(|r| r.request_id == request_id)
        .expect("record of the read");
    let rec = sluis::tlog::AccessRecord::decode(&row.record).unwrap();
    assert_eq!(rec.caller, NGO);
    assert_eq!(rec.role, "ngo");
    assert_eq!(rec.method, "GetCase");
    assert_eq!(rec.purpose.as_deref(), Some("shelter"));
    assert_eq!(rec.case_id.as_deref(), Some(case_id.as_str()));
    assert_eq!(rec.released, [sluis::model::Category::Shelter]);
    assert_eq!(rec.withheld.len(), 7);
    assert_eq!(rec.consents.len(), 1);
    assert!(!rec.rules.is_empty());
    // The subject appears under the audit-domain pseudonym, not the NGO's.
    let subject = rec.subject.unwrap();
    assert!(subject.starts_with("ps1."));
    assert_ne!(subject, r.into_inner().subject_pseudonym);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_cases_lists_own_and_consented_cases_by_pseudonym() {
    let node = TestNode::start().await;
    let mut gemeente = node.client(GEMEENTE).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(register(&mut gemeente).await.0);
    }
    grant(
        &mut gemeente,
        &ids[1],
        vec![participant(NGO)],
        &[C::Shelter],
        &["shelter"],
    )
    .await;
    grant(
        &mut gemeente,
        &ids[3],
        vec![role("ngo")],
        &[C::Shelter],
        &["shelter"],
    )
    .await;

    // Own cases, two per page.
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let r = gemeente
            .cases
            .find_cases(with_actor(pb::FindCasesRequest {
                scope: pb::find_cases_request::Scope::Own as i32,
                purpose: String::new(),
                page_size: 2,
                page_token: token.clone(),
            }))
            .await
            .unwrap()
            .into_inner();
        all.extend(r.cases.into_iter().map(|c| c.case_id));
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    all.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(all, want);

    // Visible to the NGO: exactly the two consented cases, without case ids,
    // and the pseudonyms resolve for the NGO.
    let mut ngo = node.client(NGO).await;
    let r = ngo
        .cases
        .find_cases(pb::FindCasesRequest {
            scope: pb::find_cases_request::Scope::Visible as i32,
            purpose: "shelter".into(),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.cases.len(), 2);
    for c in &r.cases {
        assert!(c.case_id.is_empty());
        let got = ngo
            .cases
            .get_case(by_pseudonym(&c.subject_pseudonym, "shelter"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(released(&got), ["shelter"]);
    }
    // A page token is only good for the caller it was issued to.
    let page = gemeente
        .cases
        .find_cases(with_actor(pb::FindCasesRequest {
            scope: pb::find_cases_request::Scope::Own as i32,
            purpose: String::new(),
            page_size: 1,
            page_token: String::new(),
        }))
        .await
        .unwrap()
        .into_inner();
    let err = ngo
        .cases
        .find_cases(pb::FindCasesRequest {
            scope: pb::find_cases_request::Scope::Own as i32,
            purpose: String::new(),
            page_size: 1,
            page_token: page.next_page_token,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_receipt_verifies_offline_and_detects_edits() {
    let node = TestNode::start().await;
    let mut gemeente = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut gemeente).await;
    let consent = grant(
        &mut gemeente,
        &case_id,
        vec![participant(NGO)],
        &[C::Shelter],
        &["shelter"],
    )
    .await;
    let r = gemeente
        .consents
        .get_consent_receipt(with_actor(pb::GetConsentReceiptRequest {
            consent_id: consent.consent_id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    let body =
        sluis::tlog::note::verify(&r.signed_note, &r.verifier_key).expect("receipt verifies");
    assert!(body.contains(&format!("consent {}", consent.consent_id)));
    assert!(body.contains("recipient participant ngo-vluchtelingenwerk"));
    assert!(!body.contains("Test Persoon") && !body.contains("1234567890"));
    let forged = r
        .signed_note
        .replace("category shelter", "category medical");
    assert!(sluis::tlog::note::verify(&forged, &r.verifier_key).is_err());

    // `sluis receipt verify` checks the same offline.
    let file = node.dir.path().join("receipt.txt");
    std::fs::write(&file, &r.signed_note).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluis"))
        .args(["receipt", "verify", "--key", &r.verifier_key])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&file, forged).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluis"))
        .args(["receipt", "verify", "--key", &r.verifier_key])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());

    // Only the owner hands out receipts.
    let mut ngo = node.client(NGO).await;
    let err = ngo
        .consents
        .get_consent_receipt(pb::GetConsentReceiptRequest {
            consent_id: consent.consent_id,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_is_what_the_next_read_sees() {
    let node = TestNode::start().await;
    let mut gemeente = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut gemeente).await;
    let name = |r: pb::GetCaseResponse| r.data.unwrap().identity.unwrap().name;
    let read = || with_actor(by_id(&case_id, "case_consultation"));
    let before = gemeente.cases.get_case(read()).await.unwrap().into_inner();
    assert_eq!(name(before), "Test Persoon");
    gemeente
        .cases
        .update_case(with_actor(pb::UpdateCaseRequest {
            request_id: String::new(),
            case_id: case_id.clone(),
            data: Some(full_case("Ander Persoon", "1234567890", "111222333")),
            update_mask: None,
        }))
        .await
        .unwrap();
    let after = gemeente.cases.get_case(read()).await.unwrap().into_inner();
    assert_eq!(name(after), "Ander Persoon");
}

/// A SQLite file has one node: a second one would change cases and
/// consents behind the first one's back (and its read cache).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_on_the_same_sqlite_file_is_refused() {
    let node = TestNode::start_on_sqlite(|_| {}).await;
    let second = sluis::node::Node::start(&node.config).await;
    let err = second.err().expect("the second node must not start");
    let msg = err.to_string();
    assert!(
        msg.contains("another sluis node is serving the database"),
        "{msg}"
    );
    // The first one still answers.
    let mut gemeente = node.client(GEMEENTE).await;
    register(&mut gemeente).await;
}
