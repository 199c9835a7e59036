//! The trail of a case across federation nodes, as each node's own records
//! show it, decides what a node tells and to whom. A node hands a case's
//! entries only to a node on that trail; where a referred case went is told
//! only to a caller who could have read it (or its owner); a node that
//! referred a case on says where it is now, also through a forwarding node;
//! a referred case whose pseudonyms would collide is refused; a report asked
//! at a node that only forwarded reads names the node that holds the case;
//! and a node whose log went back is flagged in every report, first from
//! the checkpoint the reporting node's witness cosigned, then from its
//! witness alarm.

mod common;

use common::federation::*;
use common::{GEMEENTE, request_id, request_id_of, with_actor};
use sluis::federation::witness::WitnessOutcome;
use sluis::node::Node;
use sluis::rpc::proto::v1 as pb;
use sluis::tlog::Decision;
use tonic::Request;
use tonic_types::StatusExt;

const OFFICER: &str = "fg-utrecht";
const MONITOR: &str = "monitor-jenv";

fn ask(
    case_id: &str,
    ids: Vec<String>,
    cosignatures: u32,
) -> Request<pb::ReportCaseAccessesRequest> {
    Request::new(pb::ReportCaseAccessesRequest {
        case_id: case_id.into(),
        referral_id: String::new(),
        request_ids: ids,
        cosignatures,
    })
}

fn report_of(case_id: &str) -> Request<pb::SubjectAccessReportRequest> {
    Request::new(pb::SubjectAccessReportRequest {
        subject: Some(pb::subject_access_report_request::Subject::CaseId(
            case_id.into(),
        )),
    })
}

fn by_pseudonym(p: &str) -> Request<pb::GetCaseRequest> {
    with_actor(pb::GetCaseRequest {
        subject: Some(pb::get_case_request::Subject::SubjectPseudonym(p.into())),
        purpose: "legalisation".into(),
        categories: vec![],
        emergency_justification: String::new(),
    })
}

/// The node a refusal names as holding the case, if it says so.
fn holding_node(err: &tonic::Status) -> Option<String> {
    err.get_details_error_info()
        .filter(|i| i.reason == "CASE_REFERRED")
        .and_then(|i| i.metadata.get("holding_node").cloned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_node_tells_follows_the_cases_trail_by_its_own_records() {
    let (_key, nodes, _dir) = started_network().await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);

    // Registered at B; IND reads it through its home node A.
    let (mut gemeente, case_id, _) = case_at(b).await;
    let mut ind = a.client(IND).await;
    let r = ind
        .cases
        .get_case(get_case(&case_id, "legalisation", Some(B)))
        .await
        .expect("IND's forwarded read");
    let ind_read = request_id(&r);
    let ind_pseudonym = r.into_inner().subject_pseudonym;

    // C, with its own node certificate, names the case and IND's request
    // id: C is on no trail of the case by B's records. Refused, recorded.
    let mut c_to_b =
        pb::federation_service_client::FederationServiceClient::new(node_channel(c, b).await);
    let err = c_to_b
        .report_case_accesses(ask(&case_id, vec![ind_read.clone()], 0))
        .await
        .expect_err("a node off the trail");
    assert_eq!(
        err.code(),
        tonic::Code::PermissionDenied,
        "{}",
        err.message()
    );
    assert!(err.message().contains("trail"), "{}", err.message());
    let refused = b.record(&request_id_of(err.metadata())).await;
    assert_eq!(refused.method, "ReportCaseAccesses");
    assert_eq!(refused.caller, C);
    assert_eq!(refused.decision, Decision::Denied);
    // A, which forwarded that read, is answered.
    let mut a_to_b =
        pb::federation_service_client::FederationServiceClient::new(node_channel(a, b).await);
    let part = a_to_b
        .report_case_accesses(ask(&case_id, vec![ind_read.clone()], 0))
        .await
        .expect("A is on the trail")
        .into_inner();
    assert_eq!(part.entries.len(), 1);
    // More cosignatures than B has witnesses can never be given: the
    // field is named, the call recorded, nothing handed out.
    let err = a_to_b
        .report_case_accesses(ask(&case_id, vec![ind_read.clone()], 3))
        .await
        .expect_err("three cosignatures of two witnesses");
    assert_eq!(
        err.code(),
        tonic::Code::InvalidArgument,
        "{}",
        err.message()
    );
    let bad = err.get_details_bad_request().expect("BadRequest");
    assert_eq!(bad.field_violations[0].field, "cosignatures");
    assert!(err.message().contains("at most 2"), "{}", err.message());
    let invalid = b.record(&request_id_of(err.metadata())).await;
    assert_eq!(invalid.method, "ReportCaseAccesses");
    assert_eq!(invalid.caller, A);
    assert_ne!(invalid.decision, Decision::Allowed);

    // A report asked at A, which only forwarded a read: it names B.
    let err = a
        .client(OFFICER)
        .await
        .audit
        .subject_access_report(report_of(&case_id))
        .await
        .expect_err("A holds no case");
    assert_eq!(
        err.code(),
        tonic::Code::FailedPrecondition,
        "{}",
        err.message()
    );
    assert_eq!(holding_node(&err).as_deref(), Some(B), "{}", err.message());
    assert!(
        err.message().contains("ask the subject access report"),
        "{}",
        err.message()
    );

    // The migrant moves: referred to C with consent.
    let consent_id = consent_to_move(&mut gemeente, &case_id).await;
    let consents = gemeente
        .consents
        .list_consents(with_actor(pb::ListConsentsRequest {
            case_id: case_id.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .consents;
    gemeente
        .cases
        .refer_case(with_actor(pb::ReferCaseRequest {
            case_id: case_id.clone(),
            to_node: C.into(),
            new_owner: AMSTERDAM.into(),
        }))
        .await
        .expect("the referral");

    // The monitor, whom the policy gives no case for any purpose, does
    // not learn where the migrant moved: not by the case, not by its
    // consent, whatever method.
    let mut monitor = b.client(MONITOR).await;
    let err = monitor
        .cases
        .get_case(with_actor(pb::GetCaseRequest {
            subject: Some(pb::get_case_request::Subject::CaseId(case_id.clone())),
            purpose: "monitoring".into(),
            categories: vec![],
            emergency_justification: String::new(),
        }))
        .await
        .expect_err("the monitor reads a case");
    let refusals = [
        ("GetCase", err),
        (
            "UpdateCase",
            monitor
                .cases
                .update_case(with_actor(pb::UpdateCaseRequest {
                    case_id: case_id.clone(),
                    data: Some(pb::CaseData::default()),
                    request_id: String::new(),
                    update_mask: None,
                }))
                .await
                .expect_err("the monitor updates a case"),
        ),
        (
            "ReferCase",
            monitor
                .cases
                .refer_case(with_actor(pb::ReferCaseRequest {
                    case_id: case_id.clone(),
                    to_node: A.into(),
                    new_owner: GEMEENTE.into(),
                }))
                .await
                .expect_err("the monitor refers a case"),
        ),
        (
            "ListConsents",
            monitor
                .consents
                .list_consents(with_actor(pb::ListConsentsRequest {
                    case_id: case_id.clone(),
                }))
                .await
                .expect_err("the monitor lists consents"),
        ),
        (
            "GetConsentReceipt",
            monitor
                .consents
                .get_consent_receipt(with_actor(pb::GetConsentReceiptRequest {
                    consent_id: consent_id.clone(),
                }))
                .await
                .expect_err("the monitor asks a receipt"),
        ),
        (
            "WithdrawConsent",
            monitor
                .consents
                .withdraw_consent(with_actor(pb::WithdrawConsentRequest {
                    consent_id: consent_id.clone(),
                    note: String::new(),
                    request_id: String::new(),
                }))
                .await
                .expect_err("the monitor withdraws a consent"),
        ),
    ];
    for (method, err) in refusals {
        assert_eq!(
            err.code(),
            tonic::Code::PermissionDenied,
            "{method}: {}",
            err.message()
        );
        assert_eq!(holding_node(&err), None, "{method}");
        assert!(!err.message().contains(C), "{method}: {}", err.message());
        let rec = b.record(&request_id_of(err.metadata())).await;
        assert_eq!(rec.method, method);
        assert_eq!(rec.decision, Decision::Denied, "{method}");
    }
    // The owner who referred it is told, by its consent too.
    let err = gemeente
        .consents
        .get_consent_receipt(with_actor(pb::GetConsentReceiptRequest {
            consent_id: consent_id.clone(),
        }))
        .await
        .expect_err("moved");
    assert_eq!(holding_node(&err).as_deref(), Some(C));

    // IND reads by its pseudonym through A, whose pointer says B: B
    // referred the case on, and the answer names C, where it is now.
    let err = ind
        .cases
        .get_case(by_pseudonym(&ind_pseudonym))
        .await
        .expect_err("a stale pointer");
    assert_eq!(
        err.code(),
        tonic::Code::FailedPrecondition,
        "{}",
        err.message()
    );
    assert_eq!(holding_node(&err).as_deref(), Some(C), "{}", err.message());
    // A keeps the new pointer: IND's next read by pseudonym reaches C.
    let r = ind
        .cases
        .get_case(by_pseudonym(&ind_pseudonym))
        .await
        .expect("IND reads at C through A");
    assert_eq!(c.record(&request_id(&r)).await.method, "GetCase");

    // A second case handed to C whose pseudonym rows name the first one's
    // pseudonym for IND: refused, saying which row, nothing stored.
    let other = uuid::Uuid::now_v7().to_string();
    let mut consent = consents
        .into_iter()
        .find(|k| k.consent_id == consent_id)
        .expect("the referral's consent");
    consent.case_id = other.clone();
    consent.consent_id = uuid::Uuid::now_v7().to_string();
    let forged = pb::AcceptReferralRequest {
        case_id: other.clone(),
        subject_ref: vec![9; 16],
        new_owner: AMSTERDAM.into(),
        version: 1,
        registered_at: Some(prost_types::Timestamp::default()),
        updated_at: Some(prost_types::Timestamp::default()),
        data: Some(common::full_case("Test Persoon", "1234567890", "111222333")),
        consents: vec![consent],
        pseudonyms: vec![pb::IssuedPseudonym {
            recipient: IND.into(),
            pseudonym: ind_pseudonym.clone(),
        }],
    };
    let mut b_to_c =
        pb::federation_service_client::FederationServiceClient::new(node_channel(b, c).await);
    let err = b_to_c
        .accept_referral(asserting(Request::new(forged), GEMEENTE, "municipality"))
        .await
        .expect_err("a colliding pseudonym");
    assert_eq!(
        err.code(),
        tonic::Code::FailedPrecondition,
        "{}",
        err.message()
    );
    assert!(err.message().contains("pseudonyms[0]"), "{}", err.message());
    let refused = c.record(&request_id_of(err.metadata())).await;
    assert_eq!(refused.method, "AcceptReferral");
    assert_ne!(refused.decision, Decision::Allowed);
    assert!(c.node.store.case_meta(&other).await.unwrap().is_none());
    assert_eq!(
        c.node
            .store
            .resolve_pseudonym(IND, &ind_pseudonym)
            .await
            .unwrap()
            .as_deref(),
        Some(case_id.as_str()),
        "IND's pseudonym still names its case"
    );
}

/// A witnessing round of `witness` on `peer` until it has cosigned a
/// checkpoint of at least `size` (or raised an alarm).
async fn witness_until(witness: &Started, peer: &str, size: u64) -> WitnessOutcome {
    for _ in 0..200 {
        let outcome = witness_round(witness, peer).await;
        match &outcome {
            WitnessOutcome::Cosigned { size: s, .. } if *s >= size => return outcome,
            WitnessOutcome::Alarm { .. } => return outcome,
            _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    panic!("{} did not cosign {peer} at size {size}", witness.id)
}

/// Stops `n` and keeps a copy of its database as it is now; starts it
/// again. Returns the node and the copy's URL.
async fn stop_copy_start(n: Started) -> (Started, String) {
    let Started {
        id,
        dir,
        node,
        config,
    } = n;
    node.shutdown().await.unwrap();
    let copy = match common::postgres_admin_url() {
        Some(admin) => {
            use sqlx::Connection;
            let url = config.database_url().unwrap();
            let name = url.rsplit('/').next().unwrap().to_string();
            let snap = format!("{name}_snap");
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE {snap} TEMPLATE {name}"
            )))
            .execute(&mut conn)
            .await
            .expect("copy the database");
            conn.close().await.ok();
            format!("{}/{snap}", url.rsplit_once('/').unwrap().0)
        }
        None => {
            let db = dir.path().join("sluis.db");
            for suffix in ["", "-wal", "-shm"] {
                let from = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
                if from.exists() {
                    std::fs::copy(&from, dir.path().join(format!("copy.db{suffix}"))).unwrap();
                }
            }
            "sqlite://copy.db".to_string()
        }
    };
    let node = Node::start(&config).await.expect("restarts");
    (
        Started {
            id,
            dir,
            node,
            config,
        },
        copy,
    )
}

/// Stops `n` and starts it on the database at `url`.
async fn restart_on(n: Started, url: &str) -> Started {
    let Started {
        id,
        dir,
        node,
        mut config,
    } = n;
    node.shutdown().await.unwrap();
    config.node.database = url.to_string();
    let node = Node::start(&config).await.expect("restarts on the copy");
    Started {
        id,
        dir,
        node,
        config,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_flags_a_node_whose_log_went_back() {
    let (_key, mut nodes, _dir) = started_network().await;
    let (_, case_id, _) = case_at(&nodes[1]).await;
    let mut ind = nodes[0].client(IND).await;
    ind.cases
        .get_case(get_case(&case_id, "legalisation", Some(B)))
        .await
        .expect("IND's first read");
    // Both its witnesses cosign A's log with it: a checkpoint "witnessed 2
    // of 2" that the copy below keeps.
    let size = nodes[0].node.store.log_size().await.unwrap() as u64;
    for w in [1, 2] {
        let WitnessOutcome::Cosigned { .. } = witness_until(&nodes[w], A, size).await else {
            panic!("{} cosigns A", nodes[w].id)
        };
    }

    // A's database is copied as it is now.
    let a = nodes.remove(0);
    let (a, copy) = stop_copy_start(a).await;
    nodes.insert(0, a);

    // IND reads again through A: A's records of these reads are newer than
    // the copy. B's witness cosigns A's log with them.
    let mut ind = nodes[0].client(IND).await;
    for _ in 0..3 {
        ind.cases
            .get_case(get_case(&case_id, "legalisation", Some(B)))
            .await
            .expect("IND's later reads");
    }
    let size = nodes[0]
        .node
        .store
        .access_log(0, 100_000)
        .await
        .unwrap()
        .len() as u64;
    let WitnessOutcome::Cosigned { .. } = witness_until(&nodes[1], A, size).await else {
        panic!("B cosigns A")
    };

    // A is restarted on the copy: its log went back.
    let a = nodes.remove(0);
    let a = restart_on(a, &copy).await;
    nodes.insert(0, a);

    // The report at B: A still answers (it has the first read), but with a
    // log smaller than the one B's witness cosigned. Flagged, incomplete.
    let b = &nodes[1];
    let report = report_at(b, &case_id).await;
    let part = report.nodes.iter().find(|n| n.node == A).expect("A's part");
    assert!(part.answered, "{}", report.text);
    assert!(!report.complete, "{}", report.text);
    assert!(
        part.log_warning.contains("went back"),
        "{}",
        part.log_warning
    );
    assert!(
        report.text.contains(&format!(
            "INCOMPLETE: node {A} answered with its log at size"
        )),
        "{}",
        report.text
    );
    // Its old cosignatures are not counted as if they vouched for it.
    assert!(!part.witnessed, "{}", part.witness_note);
    assert!(
        part.witness_note.contains("UNDER A WITNESS ALARM"),
        "{}",
        part.witness_note
    );
    assert!(
        !report.text.contains(&format!("Witnessed: node {A}:")),
        "{}",
        report.text
    );

    // B's witness catches the rollback: from then on the report names the
    // witness alarm, whatever A's log grows to.
    let WitnessOutcome::Alarm { .. } = witness_until(b, A, u64::MAX).await else {
        panic!("B raises an alarm on A")
    };
    let report = report_at(b, &case_id).await;
    assert!(!report.complete, "{}", report.text);
    assert!(
        report
            .text
            .contains(&format!("node {A} is under a witness alarm"))
            && report
                .text
                .contains("its log went back; lines from it may be missing"),
        "{}",
        report.text
    );
    let part = report.nodes.iter().find(|n| n.node == A).expect("A's part");
    assert!(!part.witnessed, "{}", part.witness_note);
    assert!(
        report.text.contains(&format!(
            "NOT CONFIRMED BY WITNESSES: node {A}: UNDER A WITNESS ALARM"
        )),
        "{}",
        report.text
    );
    assert!(
        !report.text.contains(&format!("Witnessed: node {A}:")),
        "{}",
        report.text
    );
}

/// The subject access report of `case_id` asked at `n` by its officer.
async fn report_at(n: &Started, case_id: &str) -> pb::SubjectAccessReportResponse {
    n.client(OFFICER)
        .await
        .audit
        .subject_access_report(report_of(case_id))
        .await
        .expect("the report")
        .into_inner()
}

/// IND's read of `case_id` through its home node `a`, forwarded to B: its
/// request id.
async fn ind_reads_at_b(a: &Started, case_id: &str) -> String {
    let r = a
        .client(IND)
        .await
        .cases
        .get_case(get_case(case_id, "legalisation", Some(B)))
        .await
        .expect("IND's read through A");
    request_id(&r)
}

/// A node restarted on a copy of its database from before it forwarded a
/// read, which no witness has seen yet: no checkpoint and no alarm say its
/// log went back, but the node making the report holds its own record of
/// that call with it, so the report flags the node and is incomplete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_flags_a_node_that_lacks_a_call_it_served() {
    let (_key, mut nodes, _dir) = started_network().await;
    let (_, case_id, _) = case_at(&nodes[1]).await;
    let first = ind_reads_at_b(&nodes[0], &case_id).await;
    let a = nodes.remove(0);
    let (a, copy) = stop_copy_start(a).await;
    nodes.insert(0, a);
    let later = ind_reads_at_b(&nodes[0], &case_id).await;
    // A goes back to the copy; no witness round has seen its newer log.
    let a = nodes.remove(0);
    let a = restart_on(a, &copy).await;
    nodes.insert(0, a);
    assert!(nodes[0].records(&later).await.is_empty());

    let report = report_at(&nodes[1], &case_id).await;
    assert!(!report.complete, "{}", report.text);
    let part = report.nodes.iter().find(|n| n.node == A).expect("A's part");
    assert!(part.answered, "{}", report.text);
    assert!(
        part.log_warning.contains(&later) && part.log_warning.contains("lines from it are missing"),
        "{}",
        part.log_warning
    );
    assert!(!part.witnessed, "{}", part.witness_note);
    assert!(
        report
            .text
            .contains(&format!("INCOMPLETE: node {A} answered without 1 call")),
        "{}",
        report.text
    );
    // A's line of the first read is there.
    assert!(
        report
            .entries
            .iter()
            .any(|e| e.node == A && e.request_id == first),
        "{}",
        report.text
    );
}
