//! The subject access report across a federation: "who saw my data" is
//! complete over every node that served the case. A case registered at B
//! is read by IND through its home node A and by the NGO through C, then
//! referred to C, then read at C. The report asked at C (the case's node
//! now) lists the entries of all three nodes — the forwarded reads C was
//! party to on both nodes, the referral on both, every entry at B before
//! it — each with its node and request id, and each line's
//! inclusion proof verifies against that node's checkpoint, signed with the
//! key the federation directory lists for it and cosigned by both its
//! peers' witness keys (C2SP tlog-cosignature). A node whose checkpoint its
//! witnesses have not yet cosigned is flagged, and a forged cosignature
//! counts for nothing. A node asked without a basis refuses and records
//! it; with one node down, the report says which part is missing.

mod common;

use std::collections::BTreeSet;

use common::federation::*;
use common::{NGO, request_id, with_actor};
use sluis::federation::directory::{Directory, DirectoryNode};
use sluis::federation::witness::{cosigned_checkpoint, cosigners_in};
use sluis::net::client::{self, ClientPem};
use sluis::rpc::proto::v1 as pb;
use sluis::tlog::checkpoint::Checkpoint;
use sluis::tlog::{Decision, merkle};
use tonic::Request;

const OFFICER: &str = "fg-utrecht";

fn report_of(case_id: &str) -> pb::SubjectAccessReportRequest {
    pb::SubjectAccessReportRequest {
        subject: Some(pb::subject_access_report_request::Subject::CaseId(
            case_id.into(),
        )),
    }
}

/// The witness keys the directory lists for node `node`'s log: its peers'.
/// The subject access report of `case_id` asked at `node` by its privacy
/// officer; panics with `what` if it is refused.
async fn officer_report(
    node: &Started,
    case_id: &str,
    what: &str,
) -> pb::SubjectAccessReportResponse {
    node.client(OFFICER)
        .await
        .audit
        .subject_access_report(report_of(case_id))
        .await
        .expect(what)
        .into_inner()
}

fn witness_keys(dir: &[DirectoryNode], node: &str) -> Vec<String> {
    dir.iter()
        .filter(|n| n.id != node)
        .filter_map(|n| n.witness_key.clone())
        .collect()
}

/// Witnessing rounds on every node until each one's log, as it is now, is
/// covered by a checkpoint both its peers cosigned.
async fn cosign_all(nodes: &[Started], dir: &[DirectoryNode]) {
    let directory = Directory {
        network: "lvv".into(),
        serial: 1,
        not_before: String::new(),
        not_after: String::new(),
        nodes: dir.to_vec(),
    };
    let mut sizes = Vec::new();
    for n in nodes {
        sizes.push(n.node.store.log_size().await.unwrap());
    }
    for _ in 0..100 {
        for n in nodes {
            n.node.witness_now().await;
        }
        let mut done = true;
        for (n, size) in nodes.iter().zip(&sizes) {
            let c = cosigned_checkpoint(&n.node.store, &directory, n.id, 2, None)
                .await
                .unwrap();
            done &= c.is_some_and(|c| c.checkpoint.size >= *size);
        }
        if done {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the nodes' checkpoints were not cosigned by both peers");
}

/// Checks every line of `r` against the checkpoint its node signed with
/// the key the directory (not the answer) lists for it, and, if
/// `witnessed`, that both its peers' witness keys (from the directory)
/// cosigned that checkpoint; returns the nodes with proven lines.
fn verify_lines(
    r: &pb::SubjectAccessReportResponse,
    dir: &[DirectoryNode],
    witnessed: bool,
) -> BTreeSet<String> {
    let mut proven = BTreeSet::new();
    for e in &r.entries {
        let key = &dir
            .iter()
            .find(|n| n.id == e.node)
            .unwrap_or_else(|| panic!("line of an unknown node {}", e.node))
            .log_key;
        let part = r
            .nodes
            .iter()
            .find(|n| n.node == e.node)
            .expect("the line's node is listed");
        assert!(part.answered, "a line of a node that did not answer");
        let cp = Checkpoint::verify(&part.checkpoint, key)
            .unwrap_or_else(|err| panic!("{}'s checkpoint: {err}", e.node));
        if witnessed {
            let by = cosigners_in(&part.checkpoint, &witness_keys(dir, &e.node))
                .unwrap_or_else(|err| panic!("{}'s cosignatures: {err}", e.node));
            assert_eq!(by.len(), 2, "{}'s checkpoint is cosigned by {by:?}", e.node);
            assert!(part.witnessed, "{}: {}", e.node, part.witness_note);
            assert_eq!(part.cosignatures_required, 2);
            assert_eq!(part.witnesses, by);
        }
        let proof = e
            .proof
            .as_ref()
            .unwrap_or_else(|| panic!("line {} #{} has no proof", e.node, e.index));
        assert_eq!(proof.tree_size, cp.size);
        let hashes: Vec<[u8; 32]> = proof
            .hashes
            .iter()
            .map(|h| h.as_slice().try_into().unwrap())
            .collect();
        merkle::verify_inclusion(
            e.index,
            cp.size,
            &merkle::leaf_hash(&proof.leaf),
            &hashes,
            &cp.root,
        )
        .unwrap_or_else(|err| panic!("line {} #{}: {err}", e.node, e.index));
        // The line says what the leaf holds.
        let record = sluis::tlog::AccessRecord::decode(&proof.leaf).expect("leaf decodes");
        assert_eq!(record.request_id, e.request_id);
        assert_eq!(record.method, e.method);
        proven.insert(e.node.clone());
    }
    proven
}

fn lines<'a>(r: &'a pb::SubjectAccessReportResponse, request_id: &str) -> Vec<(&'a str, &'a str)> {
    r.entries
        .iter()
        .filter(|e| e.request_id == request_id)
        .map(|e| (e.node.as_str(), e.method.as_str()))
        .collect()
}

/// What [`served_then_referred`] did: the clients, the case, and the
/// request ids of its calls.
struct Served {
    gemeente: sluis::rpc::Clients,
    ind: sluis::rpc::Clients,
    ngo: sluis::rpc::Clients,
    case_id: String,
    ind_read: String,
    ind_pseudonym: String,
    ngo_read: String,
    referral: String,
}

/// A case registered at `b`, read by IND through `a` and by the NGO
/// through `c` (both forwarded to `b`), then referred to `c` with the
/// migrant's consent.
async fn served_then_referred(a: &Started, b: &Started, c: &Started) -> Served {
    let (mut gemeente, case_id, _) = case_at(b).await;
    let mut ind = a.client(IND).await;
    let r = ind
        .cases
        .get_case(get_case(&case_id, "legalisation", Some(B)))
        .await
        .expect("IND's forwarded read");
    let ind_read = request_id(&r);
    let ind_pseudonym = r.into_inner().subject_pseudonym;
    let mut ngo = c.client(NGO).await;
    let r = ngo
        .cases
        .get_case(get_case(&case_id, "guidance", Some(B)))
        .await
        .expect("the NGO's forwarded read");
    let ngo_read = request_id(&r);
    consent_to_move(&mut gemeente, &case_id).await;
    let r = gemeente
        .cases
        .refer_case(with_actor(pb::ReferCaseRequest {
            case_id: case_id.clone(),
            to_node: C.into(),
            new_owner: AMSTERDAM.into(),
        }))
        .await
        .expect("the referral");
    Served {
        gemeente,
        ind,
        ngo,
        ind_read,
        ind_pseudonym,
        ngo_read,
        referral: request_id(&r),
        case_id,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_at_the_home_node_covers_every_node_that_served_the_case() {
    let (_key, mut nodes, dir) = started_network().await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);

    // Registered at B; IND reads through A, the NGO through C; the migrant
    // moves: referred to C with consent.
    let Served {
        mut ind,
        case_id,
        ind_read,
        ngo_read,
        referral,
        ..
    } = served_then_referred(a, b, c).await;

    // After: IND reads at C through A.
    let r = ind
        .cases
        .get_case(get_case(&case_id, "legalisation", Some(C)))
        .await
        .expect("IND reads at C");
    let ind_at_c = request_id(&r);

    // Each node's witnesses cosign its checkpoint covering all this.
    cosign_all(&nodes, &dir).await;

    // The report at C, the case's node now.
    let r = c
        .client(OFFICER)
        .await
        .audit
        .subject_access_report(report_of(&case_id))
        .await
        .expect("the report at C");
    let report_id = request_id(&r);
    let report = r.into_inner();
    assert!(report.complete, "{}", report.text);
    assert!(report.witnessed, "{}", report.text);
    let answered: BTreeSet<&str> = report
        .nodes
        .iter()
        .filter(|n| n.answered)
        .map(|n| n.node.as_str())
        .collect();
    assert_eq!(answered, BTreeSet::from([A, B, C]), "{}", report.text);

    // Every line names its node and request id, and its proof verifies.
    let proven = verify_lines(&report, &dir, true);
    assert_eq!(proven, BTreeSet::from([A.into(), B.into(), C.into()]));
    for n in [A, B, C] {
        assert!(
            report
                .text
                .contains(&format!("Witnessed: node {n}: checkpoint of size")),
            "{}",
            report.text
        );
    }
    // A cosignature altered on the way does not pass a client's check.
    let a_part = report.nodes.iter().find(|n| n.node == A).unwrap();
    let forged = forge_cosignature(&a_part.checkpoint, B);
    assert_ne!(forged, a_part.checkpoint, "B cosigned A's checkpoint");
    assert!(
        cosigners_in(&forged, &witness_keys(&dir, A)).is_err(),
        "an altered cosignature verified"
    );
    assert!(report.entries.iter().all(|e| !e.request_id.is_empty()));

    // The reads at B before the referral, the registration included.
    let at_b: Vec<&str> = report
        .entries
        .iter()
        .filter(|e| e.node == B)
        .map(|e| e.method.as_str())
        .collect();
    assert!(at_b.contains(&"RegisterCase"), "{at_b:?}");
    assert!(at_b.contains(&"GrantConsent"), "{at_b:?}");
    // A forwarded read with C as one end (the NGO's, IND's at C) is on
    // both nodes; IND's read at B before the referral only on B, which
    // answered it: A's line of that call is A's to give only to B, the
    // node it forwarded it to (ARCHITECTURE.md, what each node learns).
    let ind_lines = lines(&report, &ind_read);
    assert_eq!(ind_lines, vec![(B, "GetCase")], "{}", report.text);
    // The holding node's line names the node that forwarded the read, and
    // the participant it asserted.
    let line_at = |node: &str| {
        report
            .entries
            .iter()
            .find(|e| e.request_id == ind_read && e.node == node)
            .unwrap()
    };
    let held = line_at(B);
    assert_eq!(
        (held.participant.as_str(), held.from_node.as_str()),
        (IND, A)
    );
    assert!(
        held.summary.contains(&format!("through node {A}")),
        "{}",
        held.summary
    );
    let mut ngo_lines = lines(&report, &ngo_read);
    ngo_lines.sort();
    assert_eq!(ngo_lines, vec![(B, "GetCase"), (C, "GetCase")]);
    let mut after = lines(&report, &ind_at_c);
    after.sort();
    assert_eq!(after, vec![(A, "GetCase"), (C, "GetCase")]);
    // The referral on both nodes.
    let mut referred = lines(&report, &referral);
    referred.sort();
    assert_eq!(referred, vec![(B, "ReferCase"), (C, "AcceptReferral")]);
    // What travelled between the nodes holds no identity in clear.
    for e in &report.entries {
        let leaf = &e.proof.as_ref().unwrap().leaf;
        for id in ["Test Persoon", "1234567890", "111222333"] {
            assert!(
                !leaf.windows(id.len()).any(|w| w == id.as_bytes()),
                "an identity in {}'s entry #{}",
                e.node,
                e.index
            );
        }
    }
    // The printable report has the node column.
    assert!(report.text.contains(&format!("  {B} #")), "{}", report.text);
    assert!(report.text.contains(&format!("  {A} #")), "{}", report.text);

    // Each peer recorded that it answered, naming C, under the report's
    // request id; C recorded the report.
    for peer in [a, b] {
        let rec = peer.records(&report_id).await;
        assert!(!rec.is_empty(), "{} recorded its answer", peer.id);
        for r in rec {
            assert_eq!(r.method, "ReportCaseAccesses");
            assert_eq!(r.caller, C);
            assert_eq!(r.decision, Decision::Allowed);
            assert_eq!(r.case_id.as_deref(), Some(case_id.as_str()));
        }
    }
    assert_eq!(c.record(&report_id).await.method, "SubjectAccessReport");

    // No basis: A, with its own node certificate, asks B for the case's
    // entries naming a referral B never made. Refused, recorded, nothing
    // handed out.
    let pem = ClientPem {
        ca: b.ca_pem(),
        identity: Some((
            std::fs::read_to_string(a.dir.path().join("node.pem")).unwrap(),
            std::fs::read_to_string(a.dir.path().join("node.key")).unwrap(),
        )),
    };
    let channel = client::connect(b.node.federation_addr.unwrap(), "localhost", &pem)
        .await
        .unwrap();
    let mut a_to_b = pb::federation_service_client::FederationServiceClient::new(channel);
    let err = a_to_b
        .report_case_accesses(Request::new(pb::ReportCaseAccessesRequest {
            case_id: case_id.clone(),
            referral_id: uuid::Uuid::now_v7().to_string(),
            request_ids: vec![],
            cosignatures: 0,
        }))
        .await
        .expect_err("no basis");
    assert_eq!(
        err.code(),
        tonic::Code::PermissionDenied,
        "{}",
        err.message()
    );
    let refused = b.record(&common::request_id_of(err.metadata())).await;
    assert_eq!(refused.method, "ReportCaseAccesses");
    assert_eq!(refused.caller, A);
    assert_eq!(refused.decision, Decision::Denied);
    // Nor does a node get a report part by asserting a participant.
    let err = a_to_b
        .report_case_accesses(asserting(
            Request::new(pb::ReportCaseAccessesRequest {
                case_id: case_id.clone(),
                referral_id: referral.clone(),
                request_ids: vec![],
                cosignatures: 0,
            }),
            IND,
            "ind",
        ))
        .await
        .expect_err("a part asked for a participant");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);

    // IND reads again at C through A; until their witnesses cosign a
    // checkpoint covering it, A's and C's lines are shown, proven against
    // their signed checkpoints, and flagged as not confirmed by witnesses.
    ind.cases
        .get_case(get_case(&case_id, "legalisation", Some(C)))
        .await
        .expect("IND reads at C again");
    let report = officer_report(c, &case_id, "a report before the witnesses' next round").await;
    assert!(report.complete, "{}", report.text);
    assert!(!report.witnessed, "{}", report.text);
    verify_lines(&report, &dir, false);
    for n in [A, C] {
        let part = report.nodes.iter().find(|p| p.node == n).unwrap();
        assert!(!part.witnessed, "{n}: {}", part.witness_note);
        assert!(
            part.witness_note
                .contains("2 witnesses' cosignatures required"),
            "{}",
            part.witness_note
        );
        assert!(
            report
                .text
                .contains(&format!("NOT CONFIRMED BY WITNESSES: node {n}: ")),
            "{}",
            report.text
        );
    }
    // After a round, confirmed again.
    cosign_all(&nodes, &dir).await;
    let report = officer_report(c, &case_id, "a report after the witnesses' round").await;
    assert!(report.witnessed, "{}", report.text);
    verify_lines(&report, &dir, true);

    // Someone with B's database forges A's cosignatures there: they count
    // for nothing, so no checkpoint of B has the two it needs.
    for size in b.node.store.cosigned_sizes().await.unwrap() {
        for held in b.node.store.cosignatures(size).await.unwrap() {
            if held.witness == format!("{A}/witness") {
                let forged = forge_cosignature(&held.line, A);
                let sql = format!(
                    "UPDATE checkpoint_cosignatures SET line = '{forged}' WHERE size = {size} AND witness = '{}'",
                    held.witness
                );
                b.sql(&sql).await;
            }
        }
    }
    let report = officer_report(c, &case_id, "a report with forged cosignatures at B").await;
    let b_part = report.nodes.iter().find(|p| p.node == B).unwrap();
    assert!(b_part.answered, "{}", report.text);
    assert!(!b_part.witnessed, "{}", b_part.witness_note);
    assert!(
        !b_part.witnesses.contains(&format!("{A}/witness")),
        "{:?}",
        b_part.witnesses
    );
    assert!(
        !b_part
            .checkpoint
            .contains(&format!("\u{2014} {A}/witness ")),
        "the forged line is not handed out: {}",
        b_part.checkpoint
    );
    assert!(!report.witnessed);
    assert!(
        report
            .text
            .contains(&format!("NOT CONFIRMED BY WITNESSES: node {B}: ")),
        "{}",
        report.text
    );

    // A stops: the report at C says A's part is missing, and still has B's
    // and C's lines, proven.
    let a = nodes.remove(0);
    a.node.shutdown().await.unwrap();
    let (b, c) = (&nodes[0], &nodes[1]);
    let report = officer_report(c, &case_id, "a report with a node down").await;
    assert!(!report.complete);
    let missing: Vec<&pb::ReportNode> = report.nodes.iter().filter(|n| !n.answered).collect();
    assert_eq!(missing.len(), 1, "{:?}", report.nodes);
    assert_eq!(missing[0].node, A);
    assert!(
        missing[0].missing_reason.contains("cannot be reached"),
        "{}",
        missing[0].missing_reason
    );
    assert!(
        report.text.contains("INCOMPLETE") && report.text.contains(A),
        "{}",
        report.text
    );
    assert!(report.entries.iter().all(|e| e.node != A));
    assert_eq!(
        verify_lines(&report, &dir, false),
        BTreeSet::from([B.into(), C.into()])
    );
    let _ = b;
}

/// `text` (a cosigned note, or one cosignature line) with the signature of
/// node `by`'s witness altered in its last byte: the name and key id stay,
/// so a verifier finds the line and must refuse it.
fn forge_cosignature(text: &str, by: &str) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as B64;
    let prefix = format!("\u{2014} {by}/witness ");
    text.lines()
        .map(|l| match l.strip_prefix(&prefix) {
            Some(b64) => {
                let mut blob = B64.decode(b64).unwrap();
                *blob.last_mut().unwrap() ^= 1;
                format!("{prefix}{}\n", B64.encode(blob))
            }
            None => format!("{l}\n"),
        })
        .collect()
}

/// The request id of a refusal with `code` (panics on another code).
fn refused(err: &tonic::Status, code: tonic::Code) -> String {
    assert_eq!(err.code(), code, "{}", err.message());
    common::request_id_of(err.metadata())
}

/// The ids of the lines of node `node` in report `r`.
fn ids_at(r: &pb::SubjectAccessReportResponse, node: &str) -> BTreeSet<String> {
    r.entries
        .iter()
        .filter(|e| e.node == node)
        .map(|e| e.request_id.clone())
        .collect()
}

/// A case registered at B, read by IND through A and by the NGO through C,
/// then referred to C. Every answer about the case that left B — the
/// `CASE_REFERRED` told to a reader or its owner, the refusal of one who
/// may not learn where it went — is a line of the case at B, in the report
/// asked at C; a report asked at B by V-number names C; A, which only
/// forwarded IND's read to B, gets from B only the line of that read,
/// whatever referral or request id it names; the home node's line of a
/// forwarded read says where it went.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_referral_every_answer_is_reported_and_a_forwarder_gets_only_its_own_lines() {
    let (_key, nodes, _dir) = started_network().await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let Served {
        mut gemeente,
        mut ind,
        mut ngo,
        case_id,
        ind_read,
        ind_pseudonym,
        ngo_read,
        referral,
    } = served_then_referred(a, b, c).await;

    // After the referral, at B: the NGO (through C) and the owner are told
    // where the case is; the monitor is refused without being told.
    let err = ngo
        .cases
        .get_case(get_case(&case_id, "guidance", Some(B)))
        .await
        .expect_err("the NGO reads at the old node");
    let ngo_after = refused(&err, tonic::Code::FailedPrecondition);
    let err = gemeente
        .cases
        .get_case(get_case(&case_id, "case_consultation", None))
        .await
        .expect_err("the owner reads the case it referred");
    let owner_after = refused(&err, tonic::Code::FailedPrecondition);
    let err = gemeente
        .cases
        .update_case(with_actor(pb::UpdateCaseRequest {
            case_id: case_id.clone(),
            data: Some(pb::CaseData::default()),
            request_id: String::new(),
            update_mask: None,
        }))
        .await
        .expect_err("the owner updates the case it referred");
    let update_after = common::request_id_of(err.metadata());
    let err = b
        .client("monitor-jenv")
        .await
        .cases
        .get_case(get_case(&case_id, "monitoring", None))
        .await
        .expect_err("the monitor reads");
    let monitor_after = refused(&err, tonic::Code::PermissionDenied);
    // Refused as malformed before the case is looked up: named all the same.
    let mut bad = get_case(&case_id, "case_consultation", None);
    bad.get_mut().categories = vec![99];
    let err = gemeente
        .cases
        .get_case(bad)
        .await
        .expect_err("an unknown category");
    let bad_after = refused(&err, tonic::Code::InvalidArgument);
    for id in [
        &ngo_after,
        &owner_after,
        &update_after,
        &monitor_after,
        &bad_after,
    ] {
        let rec = b.record(id).await;
        assert_eq!(
            rec.case_id.as_deref(),
            Some(case_id.as_str()),
            "{}",
            rec.method
        );
        assert!(rec.subject.is_some(), "{} names the subject", rec.method);
    }

    // IND by its pseudonym, for a purpose the policy gives its role no
    // category for: refused as for a case held here, not told where the
    // case went.
    let err = ind
        .cases
        .get_case(with_actor(pb::GetCaseRequest {
            subject: Some(pb::get_case_request::Subject::SubjectPseudonym(
                ind_pseudonym.clone(),
            )),
            purpose: "monitoring".into(),
            categories: vec![],
            emergency_justification: String::new(),
        }))
        .await
        .expect_err("IND by pseudonym for monitoring");
    let by_pseudonym = refused(&err, tonic::Code::PermissionDenied);
    assert!(!err.message().contains(C), "{}", err.message());
    // B's record of it names the case that left, as for a call by its id.
    let rec = b.record(&by_pseudonym).await;
    assert_eq!(rec.case_id.as_deref(), Some(case_id.as_str()));
    // A report by V-number at B, which holds no case of the subject now,
    // names the node that does.
    let err = b
        .client(OFFICER)
        .await
        .audit
        .subject_access_report(pb::SubjectAccessReportRequest {
            subject: Some(pb::subject_access_report_request::Subject::VNumber(
                "1234567890".into(),
            )),
        })
        .await
        .expect_err("a report by V-number where the case left");
    assert_eq!(
        err.code(),
        tonic::Code::FailedPrecondition,
        "{}",
        err.message()
    );
    {
        use tonic_types::StatusExt;
        let info = err.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "CASE_REFERRED");
        assert_eq!(
            info.metadata.get("holding_node").map(String::as_str),
            Some(C)
        );
    }
    assert!(!err.message().contains("1234567890"), "{}", err.message());

    // IND reads at C through A.
    let r = ind
        .cases
        .get_case(get_case(&case_id, "legalisation", Some(C)))
        .await
        .expect("IND reads at C");
    let ind_at_c = request_id(&r);

    // The report at C lists every answer B gave after the referral.
    let report = officer_report(c, &case_id, "the report at C").await;
    assert!(report.complete, "{}", report.text);
    let at_b = ids_at(&report, B);
    for id in [
        &ngo_after,
        &owner_after,
        &update_after,
        &monitor_after,
        &bad_after,
        &by_pseudonym,
    ] {
        assert!(at_b.contains(id), "{id} missing at B: {}", report.text);
    }
    let mut after = lines(&report, &ngo_after);
    after.sort();
    assert_eq!(
        after,
        vec![(B, "GetCase"), (C, "GetCase")],
        "{}",
        report.text
    );
    // The home node's line of a forwarded read says where it went.
    let home = report
        .entries
        .iter()
        .find(|e| e.request_id == ind_at_c && e.node == A)
        .expect("A's line of IND's read at C");
    assert!(
        home.summary.contains(&format!("forwarded to node {C}")),
        "{}",
        home.summary
    );
    let home = report
        .entries
        .iter()
        .find(|e| e.request_id == ngo_read && e.node == C)
        .expect("C's line of the NGO's read at B");
    assert!(
        home.summary.contains(&format!("forwarded to node {B}")),
        "{}",
        home.summary
    );

    // A, which only forwarded IND's read to B, with its own node key.
    let mut a_to_b =
        pb::federation_service_client::FederationServiceClient::new(node_channel(a, b).await);
    let ask = |referral_id: &str, request_ids: Vec<String>| {
        Request::new(pb::ReportCaseAccessesRequest {
            case_id: case_id.clone(),
            referral_id: referral_id.to_string(),
            request_ids,
            cosignatures: 0,
        })
    };
    // The referral's id (it travels in reports) is no basis for A.
    let err = a_to_b
        .report_case_accesses(ask(&referral, vec![]))
        .await
        .expect_err("a forwarder names the referral");
    assert_eq!(
        err.code(),
        tonic::Code::PermissionDenied,
        "{}",
        err.message()
    );
    let refused = b.record(&common::request_id_of(err.metadata())).await;
    assert_eq!(
        (refused.caller.as_str(), refused.decision),
        (A, Decision::Denied)
    );
    // Nor the NGO's read, which C forwarded.
    let err = a_to_b
        .report_case_accesses(ask("", vec![ngo_read.clone(), ngo_after.clone()]))
        .await
        .expect_err("a forwarder names another node's calls");
    assert_eq!(
        err.code(),
        tonic::Code::PermissionDenied,
        "{}",
        err.message()
    );
    // With its own read among them: that line only.
    let part = a_to_b
        .report_case_accesses(ask("", vec![ind_read.clone(), ngo_read.clone()]))
        .await
        .expect("A's own read")
        .into_inner();
    let got: Vec<String> = part
        .entries
        .iter()
        .map(|e| {
            sluis::tlog::AccessRecord::decode(&e.leaf)
                .expect("leaf decodes")
                .request_id
        })
        .collect();
    assert_eq!(got, vec![ind_read.clone()]);
    assert!(part.links.iter().all(|l| l.referral), "{:?}", part.links);
}
