//! Referral of a case between federation nodes: the migrant moves from the
//! municipality of node B to the one node C hosts. Without the subject's
//! consent, to a node that does not host the new owner, or forged by a
//! node for a participant it does not host, the referral is refused,
//! recorded and changes nothing. With it, the case moves whole: B keeps a
//! pointer and no row of the case, C serves it to its new owner and to
//! every recipient under the pseudonym it had, a read at B says where it
//! went, and both logs verify.

mod common;

use common::federation::*;
use common::{GEMEENTE, NGO, Val, request_id, with_actor};
use sluis::net::client::{self, ClientPem};
use sluis::rpc::proto::v1 as pb;
use sluis::tlog::Decision;
use tonic::Request;
use tonic_types::StatusExt;

fn refer(case_id: &str, to: &str, owner: &str) -> Request<pb::ReferCaseRequest> {
    with_actor(pb::ReferCaseRequest {
        case_id: case_id.into(),
        to_node: to.into(),
        new_owner: owner.into(),
    })
}

fn by_pseudonym(p: &str, purpose: &str, holding: Option<&str>) -> Request<pb::GetCaseRequest> {
    let mut r = with_actor(pb::GetCaseRequest {
        subject: Some(pb::get_case_request::Subject::SubjectPseudonym(p.into())),
        purpose: purpose.into(),
        categories: vec![],
        emergency_justification: String::new(),
    });
    if let Some(h) = holding {
        r.metadata_mut()
            .insert("x-sluis-holding-node", h.parse().unwrap());
    }
    r
}

/// Rows of the case in each table that holds case data, on a node.
async fn case_rows(n: &Started, case_id: &str) -> Vec<(&'static str, i64)> {
    let url = n.config.database_url().unwrap();
    let mut db = common::connect_database(&url).await;
    let mut counts = Vec::new();
    for (table, sql) in [
        ("cases", "SELECT COUNT(*) FROM cases WHERE id = ?"),
        (
            "case_data",
            "SELECT COUNT(*) FROM case_data WHERE case_id = ?",
        ),
        (
            "consents",
            "SELECT COUNT(*) FROM consents WHERE case_id = ?",
        ),
        (
            "consent_events",
            "SELECT COUNT(*) FROM consent_events e JOIN consents c ON c.id = e.consent_id WHERE c.case_id = ?",
        ),
        (
            "pseudonyms",
            "SELECT COUNT(*) FROM pseudonyms WHERE case_id = ?",
        ),
        (
            "subject_index",
            "SELECT COUNT(*) FROM subject_index WHERE case_id = ?",
        ),
        (
            "referred_cases",
            "SELECT COUNT(*) FROM referred_cases WHERE case_id = ?",
        ),
    ] {
        let sql = if db.is_postgres() {
            common::placeholders(sql)
        } else {
            sql.to_string()
        };
        let row = db.query_one(&sql, &[Val::from(case_id)]).await;
        counts.push((table, row[0].int()));
    }
    db.close().await;
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referral_moves_the_case_whole_and_only_with_consent() {
    let (_key, nodes, _) = started_network().await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);

    // B's municipality registers a case; IND may receive the perspective.
    let (mut gemeente, case_id, owner_pseudonym) = case_at(b).await;

    // IND reads it through its home node A, the NGO through C: each gets
    // its own pseudonym, issued by B under the federation's key.
    let mut ind = a.client(IND).await;
    let for_ind = ind
        .cases
        .get_case(get_case(&case_id, "legalisation", Some(B)))
        .await
        .expect("IND's forwarded read")
        .into_inner();
    assert!(for_ind.subject_pseudonym.starts_with("pf1."));
    let mut ngo = c.client(NGO).await;
    let for_ngo = ngo
        .cases
        .get_case(get_case(&case_id, "guidance", Some(B)))
        .await
        .expect("the NGO's forwarded read")
        .into_inner();
    assert_ne!(for_ngo.subject_pseudonym, for_ind.subject_pseudonym);

    // Locating: IND comes back to A with its pseudonym alone; A remembers
    // that B issued it and forwards there.
    let again = ind
        .cases
        .get_case(by_pseudonym(
            &for_ind.subject_pseudonym,
            "legalisation",
            None,
        ))
        .await
        .expect("located by pseudonym")
        .into_inner();
    assert_eq!(again.released, for_ind.released);
    let before = case_rows(b, &case_id).await;

    // No consent to the referral yet: refused, recorded, nothing moves.
    let err = gemeente
        .cases
        .refer_case(refer(&case_id, C, AMSTERDAM))
        .await
        .expect_err("a referral without consent");
    assert_eq!(
        err.code(),
        tonic::Code::PermissionDenied,
        "{}",
        err.message()
    );
    assert!(err.message().contains("consent"), "{}", err.message());
    let id = common::request_id_of(err.metadata());
    let refused = b.record(&id).await;
    assert_eq!(refused.method, "ReferCase");
    assert_eq!(refused.decision, Decision::Denied);
    assert_eq!(refused.case_id.as_deref(), Some(case_id.as_str()));
    assert!(c.records(&id).await.is_empty(), "nothing reached C");
    assert_eq!(case_rows(b, &case_id).await, before);

    // The subject consents that Amsterdam receives the whole case.
    let consent_id = consent_to_move(&mut gemeente, &case_id).await;
    let before = case_rows(b, &case_id).await;

    // A node the directory does not say hosts the new owner: refused.
    let err = gemeente
        .cases
        .refer_case(refer(&case_id, A, AMSTERDAM))
        .await
        .expect_err("the wrong node");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert!(
        err.message().contains("does not say node 'gm0344' hosts"),
        "{}",
        err.message()
    );

    // Forged: node A, with its own node certificate, hands C a referral
    // of B's case asserting B's municipality. C refuses and records it,
    // naming A; nothing is stored.
    let export = pb::AcceptReferralRequest {
        case_id: case_id.clone(),
        subject_ref: vec![7; 16],
        new_owner: AMSTERDAM.into(),
        version: 1,
        registered_at: Some(prost_types::Timestamp::default()),
        updated_at: Some(prost_types::Timestamp::default()),
        data: Some(common::full_case("Test Persoon", "1234567890", "111222333")),
        consents: vec![],
        pseudonyms: vec![],
    };
    let node_client = |from: &Started, to: &Started| {
        let pem = ClientPem {
            ca: to.ca_pem(),
            identity: Some((
                std::fs::read_to_string(from.dir.path().join("node.pem")).unwrap(),
                std::fs::read_to_string(from.dir.path().join("node.key")).unwrap(),
            )),
        };
        let addr = to.node.federation_addr.unwrap();
        async move {
            let channel = client::connect(addr, "localhost", &pem).await.unwrap();
            pb::federation_service_client::FederationServiceClient::new(channel)
        }
    };
    let mut a_to_c = node_client(a, c).await;
    let err = a_to_c
        .accept_referral(asserting(
            Request::new(export.clone()),
            GEMEENTE,
            "municipality",
        ))
        .await
        .expect_err("a forged referral");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    let refused = c.record(&common::request_id_of(err.metadata())).await;
    assert_eq!(refused.caller, A, "the record names the node that asserted");
    assert_eq!(refused.decision, Decision::Denied);
    // Unbacked: B itself, for its own municipality, but with no consent
    // in the case it hands over.
    let mut b_to_c = node_client(b, c).await;
    let err = b_to_c
        .accept_referral(asserting(
            Request::new(export.clone()),
            GEMEENTE,
            "municipality",
        ))
        .await
        .expect_err("an unbacked referral");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert!(err.message().contains("consent"), "{}", err.message());
    let refused = c.record(&common::request_id_of(err.metadata())).await;
    assert_eq!(refused.method, "AcceptReferral");
    assert_eq!(refused.caller, GEMEENTE);
    assert_eq!(refused.decision, Decision::Denied);
    assert!(case_rows(c, &case_id).await.iter().all(|(_, n)| *n == 0));
    assert_eq!(case_rows(b, &case_id).await, before);

    // The referral: both nodes record it under one request id.
    let r = gemeente
        .cases
        .refer_case(refer(&case_id, C, AMSTERDAM))
        .await
        .expect("the referral");
    let id = request_id(&r);
    let answer = r.into_inner();
    assert_eq!(answer.holding_node, C);
    assert_eq!(answer.access_record_id, id);
    let on_b = b.record(&id).await;
    assert_eq!(on_b.method, "ReferCase");
    assert_eq!(on_b.decision, Decision::Allowed);
    assert_eq!(on_b.case_id.as_deref(), Some(case_id.as_str()));
    assert_eq!(on_b.consents.len(), 1);
    let on_c = c.record(&id).await;
    assert_eq!(on_c.method, "AcceptReferral");
    assert_eq!(on_c.caller, GEMEENTE);
    assert_eq!(on_c.decision, Decision::Allowed);
    assert_eq!(on_c.case_id.as_deref(), Some(case_id.as_str()));
    assert_eq!(on_c.consents, on_b.consents);

    // B holds no row of the case, only its pointer; C holds it all.
    let on_b_rows = case_rows(b, &case_id).await;
    for (table, n) in &on_b_rows {
        let want = i64::from(*table == "referred_cases");
        assert_eq!(*n, want, "{table} on B after the referral");
    }
    let on_c_rows = case_rows(c, &case_id).await;
    for ((table, was), (_, now)) in before.iter().zip(&on_c_rows) {
        assert_eq!(was, now, "{table} on C is what B had");
    }

    // A read at B says where the case went, for programs too.
    let err = gemeente
        .cases
        .get_case(get_case(&case_id, "case_consultation", None))
        .await
        .expect_err("moved");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    let info = err.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "CASE_REFERRED");
    assert_eq!(
        info.metadata.get("holding_node").map(String::as_str),
        Some(C)
    );
    // Every method that takes the case by id says the same, and changes
    // nothing: the update, the consent's grant, its listing.
    let before_b = case_rows(b, &case_id).await;
    let referred = |err: tonic::Status, what: &str| {
        assert_eq!(
            err.code(),
            tonic::Code::FailedPrecondition,
            "{what}: {err:?}"
        );
        let info = err.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "CASE_REFERRED", "{what}");
        assert_eq!(
            info.metadata.get("holding_node").map(String::as_str),
            Some(C),
            "{what}"
        );
    };
    let err = gemeente
        .cases
        .update_case(with_actor(pb::UpdateCaseRequest {
            case_id: case_id.clone(),
            data: Some(pb::CaseData {
                guidance: Some(pb::Guidance {
                    organisation: NGO.into(),
                    notes: "weekly".into(),
                }),
                ..Default::default()
            }),
            request_id: String::new(),
            update_mask: None,
        }))
        .await
        .expect_err("an update of a referred case");
    referred(err, "UpdateCase");
    let err = gemeente
        .consents
        .grant_consent(with_actor(common::consent_request(&case_id)))
        .await
        .expect_err("a consent for a referred case");
    referred(err, "GrantConsent");
    let err = gemeente
        .consents
        .list_consents(with_actor(pb::ListConsentsRequest {
            case_id: case_id.clone(),
        }))
        .await
        .expect_err("the consents of a referred case");
    referred(err, "ListConsents");
    // A consent by its id, too: its withdrawal and its receipt are asked
    // of C, which holds the consent with the case; B records the question.
    let err = gemeente
        .consents
        .withdraw_consent(with_actor(pb::WithdrawConsentRequest {
            consent_id: consent_id.clone(),
            note: "withdrawn by phone".into(),
            request_id: String::new(),
        }))
        .await
        .expect_err("a withdrawal of a referred case's consent");
    let asked = common::request_id_of(err.metadata());
    referred(err, "WithdrawConsent");
    let on_b = b.record(&asked).await;
    assert_eq!(on_b.method, "WithdrawConsent");
    assert_eq!(on_b.case_id.as_deref(), Some(case_id.as_str()));
    assert_eq!(on_b.consents, vec![consent_id.clone()]);
    let err = gemeente
        .consents
        .get_consent_receipt(with_actor(pb::GetConsentReceiptRequest {
            consent_id: consent_id.clone(),
        }))
        .await
        .expect_err("a receipt of a referred case's consent");
    referred(err, "GetConsentReceipt");
    // An id B never held stays unknown.
    let err = gemeente
        .consents
        .get_consent_receipt(with_actor(pb::GetConsentReceiptRequest {
            consent_id: uuid::Uuid::now_v7().to_string(),
        }))
        .await
        .expect_err("an unknown consent");
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert_eq!(case_rows(b, &case_id).await, before_b);

    // B's privacy officer still reports every access B made to the case,
    // the referral included (GDPR art. 15): the data left, the log did not.
    let report = b
        .client("fg-utrecht")
        .await
        .audit
        .subject_access_report(pb::SubjectAccessReportRequest {
            subject: Some(pb::subject_access_report_request::Subject::CaseId(
                case_id.clone(),
            )),
        })
        .await
        .expect("a report of a referred case at its old node")
        .into_inner();
    let methods: Vec<&str> = report.entries.iter().map(|e| e.method.as_str()).collect();
    assert!(methods.contains(&"RegisterCase"), "{methods:?}");
    assert!(methods.contains(&"ReferCase"), "{methods:?}");

    // C serves it: to its new owner, and to every recipient under the
    // pseudonym it had — IND through A naming C, then by its pseudonym
    // alone; the NGO at its home node C directly.
    let mut amsterdam = c.client(AMSTERDAM).await;
    let owned = amsterdam
        .cases
        .get_case(get_case(&case_id, "case_consultation", None))
        .await
        .expect("the new owner reads its case")
        .into_inner();
    assert!(owned.withheld.is_empty(), "the owner gets all it asks");
    assert_eq!(owned.released.len(), 3);
    assert_ne!(owned.subject_pseudonym, owner_pseudonym);
    let moved = ind
        .cases
        .get_case(get_case(&case_id, "legalisation", Some(C)))
        .await
        .expect("IND reads at C")
        .into_inner();
    assert_eq!(moved.subject_pseudonym, for_ind.subject_pseudonym);
    assert_eq!(moved.released, for_ind.released, "the consent moved too");
    let located = ind
        .cases
        .get_case(by_pseudonym(
            &for_ind.subject_pseudonym,
            "legalisation",
            None,
        ))
        .await
        .expect("located at C by pseudonym")
        .into_inner();
    assert_eq!(located.released, for_ind.released);
    let at_c = ngo
        .cases
        .get_case(get_case(&case_id, "guidance", None))
        .await
        .expect("the NGO reads at C")
        .into_inner();
    assert_eq!(at_c.subject_pseudonym, for_ngo.subject_pseudonym);
    // B's municipality comes back to B with the pseudonym it had as
    // owner: B forwards it to C, where the case is now (and where it is a
    // recipient like any other).
    let r = gemeente
        .cases
        .get_case(by_pseudonym(&owner_pseudonym, "case_consultation", None))
        .await;
    let id = match &r {
        Ok(r) => request_id(r),
        Err(e) => common::request_id_of(e.metadata()),
    };
    assert_eq!(c.record(&id).await.caller, GEMEENTE, "forwarded to C");

    // Both logs verify.
    let mut stopped = Vec::new();
    for n in nodes {
        n.node.shutdown().await.unwrap();
        stopped.push((n.config, n.dir));
    }
    for (config, _dir) in &stopped {
        let report = common::verify_log_of(config).await;
        assert!(
            report.intact(),
            "{}: {:?}",
            config.node.name,
            report.problems
        );
        assert!(report.entries > 0);
    }
}

/// Two referrals of one case at once: one moves it, the other is refused
/// (the case is being referred, or is referred already) and is not
/// recorded as allowed; the case lands on one node once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_referrals_of_one_case_at_once_move_it_once() {
    let (_key, nodes, _) = started_network().await;
    let (b, c) = (&nodes[1], &nodes[2]);
    let (mut gemeente, case_id, _) = case_at(b).await;
    consent_to_move(&mut gemeente, &case_id).await;
    let mut other = b.client(GEMEENTE).await;
    let (first, second) = tokio::join!(
        gemeente.cases.refer_case(refer(&case_id, C, AMSTERDAM)),
        other.cases.refer_case(refer(&case_id, C, AMSTERDAM)),
    );
    let (ok, refused) = match (first, second) {
        (Ok(ok), Err(e)) | (Err(e), Ok(ok)) => (ok, e),
        (a, b) => panic!("one referral goes through, one is refused: {a:?} / {b:?}"),
    };
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{}",
        refused.message()
    );
    let refused_record = b.record(&common::request_id_of(refused.metadata())).await;
    assert_ne!(refused_record.decision, Decision::Allowed);
    let moved = b.record(&request_id(&ok)).await;
    assert_eq!(moved.decision, Decision::Allowed);
    let at_c = case_rows(c, &case_id).await;
    assert!(at_c.contains(&("cases", 1)), "{at_c:?}");
    let at_b = case_rows(b, &case_id).await;
    assert!(at_b.contains(&("cases", 0)), "{at_b:?}");
    assert!(at_b.contains(&("referred_cases", 1)), "{at_b:?}");
}

/// Tests that need PostgreSQL: ignored (visibly) in a plain `cargo test`,
/// run by the PostgreSQL pass (`-- --ignored postgres_only`).
mod postgres_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL: run with SLUIS_TEST_BACKEND=postgres and `-- --ignored postgres_only` (as .ci/run does)"]
    async fn two_replicas_referring_one_case_at_once_move_it_once() {
        super::two_replicas_referring_one_case_at_once_move_it_once().await;
    }
}

/// A second process of node B on B's PostgreSQL database (a replica behind
/// the same load balancer): B's config with listeners of its own.
async fn replica_of(b: &Started) -> sluis::node::Node {
    let mut config = b.config.clone();
    config.node.listen = "127.0.0.1:0".parse().unwrap();
    config.probes.listen = None;
    if let Some(f) = config.federation.as_mut() {
        f.listen = Some(
            format!("127.0.0.1:{}", common::free_port())
                .parse()
                .unwrap(),
        );
    }
    sluis::node::Node::start(&config)
        .await
        .expect("replica starts")
}

/// Two replicas of B share no memory, only the database: a referral's
/// claim on its case is held there, so the second of two ReferCase calls
/// of one case, each sent to another replica, is refused as on one
/// process.
async fn two_replicas_referring_one_case_at_once_move_it_once() {
    common::require_postgres();
    let (_key, nodes, _) = started_network().await;
    let (b, c) = (&nodes[1], &nodes[2]);
    let replica = replica_of(b).await;
    let (mut gemeente, case_id, _) = case_at(b).await;
    consent_to_move(&mut gemeente, &case_id).await;
    let mut other = sluis::rpc::Clients::new(
        common::channel_as(replica.local_addr, b.dir.path(), GEMEENTE)
            .await
            .unwrap(),
    );
    let (first, second) = tokio::join!(
        gemeente.cases.refer_case(refer(&case_id, C, AMSTERDAM)),
        other.cases.refer_case(refer(&case_id, C, AMSTERDAM)),
    );
    let (ok, refused) = match (first, second) {
        (Ok(ok), Err(e)) | (Err(e), Ok(ok)) => (ok, e),
        (a, b) => panic!("one referral goes through, one is refused: {a:?} / {b:?}"),
    };
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{}",
        refused.message()
    );
    let refused_record = b.record(&common::request_id_of(refused.metadata())).await;
    assert_ne!(refused_record.decision, Decision::Allowed);
    assert_eq!(b.record(&request_id(&ok)).await.decision, Decision::Allowed);
    let at_c = case_rows(c, &case_id).await;
    assert!(at_c.contains(&("cases", 1)), "{at_c:?}");
    let at_b = case_rows(b, &case_id).await;
    assert!(at_b.contains(&("cases", 0)), "{at_b:?}");
    assert!(at_b.contains(&("referred_cases", 1)), "{at_b:?}");
    // Stored or refused, no claim outlives its referral.
    assert_eq!(claims(b, &case_id).await, 0);
}

/// Claims on `case_id` left in `n`'s database.
async fn claims(n: &Started, case_id: &str) -> i64 {
    let mut db = common::connect_database(&n.config.database_url().unwrap()).await;
    let sql = "SELECT COUNT(*) FROM referral_claims WHERE case_id = ?";
    let sql = if db.is_postgres() {
        common::placeholders(sql)
    } else {
        sql.to_string()
    };
    let count = db.query_one(&sql, &[Val::from(case_id)]).await[0].int();
    db.close().await;
    count
}

/// A process that died mid-referral leaves its claim; it holds the case
/// only until it expires (`gateway::referral::CLAIM_TTL`): while it is live
/// the owner is refused as during any other referral, once expired the
/// referral takes it over and moves the case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_left_by_a_dead_process_holds_the_case_until_it_expires() {
    let (_key, nodes, _) = started_network().await;
    let (b, c) = (&nodes[1], &nodes[2]);
    let (mut gemeente, case_id, _) = case_at(b).await;
    consent_to_move(&mut gemeente, &case_id).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let left = |expires: i64| {
        format!(
            "INSERT INTO referral_claims (case_id, request_id, claimed_at_ms, expires_at_ms) \
             VALUES ('{case_id}', 'dead-process', {}, {expires})",
            now - 1_000
        )
    };
    b.sql(&left(now + 600_000)).await;
    let refused = gemeente
        .cases
        .refer_case(refer(&case_id, C, AMSTERDAM))
        .await
        .expect_err("a live claim holds the case");
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{}",
        refused.message()
    );
    assert_eq!(case_rows(c, &case_id).await.first(), Some(&("cases", 0)));
    // The refusal leaves the other's claim alone.
    assert_eq!(claims(b, &case_id).await, 1);
    b.sql(&format!(
        "DELETE FROM referral_claims WHERE case_id = '{case_id}'"
    ))
    .await;
    b.sql(&left(now - 1)).await;
    let moved = gemeente
        .cases
        .refer_case(refer(&case_id, C, AMSTERDAM))
        .await
        .expect("an expired claim is taken over");
    assert_eq!(moved.into_inner().holding_node, C);
    let at_c = case_rows(c, &case_id).await;
    assert!(at_c.contains(&("cases", 1)), "{at_c:?}");
    assert_eq!(claims(b, &case_id).await, 0);
}
