//! Federation: three real nodes on 127.0.0.1, each made by `sluis init`
//! with its own CA, joined by one signed directory. A national participant
//! (IND, home node A) and an NGO (home node C) read a case held by node B
//! through their home nodes; B applies its own policy and consent,
//! pseudonymises for the recipient and records; the home node records the
//! forwarding under the same request id. A node asserting a participant it
//! does not host is refused and recorded; an expired directory stops
//! federated traffic with a clear error, and a new one is taken live.

mod common;

use common::federation::*;
use common::{NGO, request_id, with_actor};
use sluis::rpc::proto::v1 as pb;
use sluis::tlog::Decision;
use time::OffsetDateTime;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_reads_forged_assertions_and_directory_lifetime() {
    let (key, nodes, dir_nodes) = started_network().await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);

    // B's municipality registers a case; the migrant consents that IND
    // receives the perspective for legalisation.
    let (_, case_id, _) = case_at(b).await;

    // IND asks its home node A; A forwards to B, which decides: the
    // residence procedure by the policy's legal basis, the perspective by
    // consent, the medical category withheld.
    let mut ind = a.client(IND).await;
    let r = ind
        .cases
        .get_case(get_case(&case_id, "legalisation", Some(B)))
        .await
        .expect("forwarded read");
    let id = request_id(&r);
    let answer = r.into_inner();
    assert_eq!(
        answer.released,
        cats(&[pb::Category::ResidenceProcedure, pb::Category::Perspective])
    );
    assert_eq!(answer.withheld.len(), 1);
    assert_eq!(answer.withheld[0].category, pb::Category::Medical as i32);
    assert!(answer.data.as_ref().unwrap().perspective.is_some());
    assert!(answer.data.as_ref().unwrap().identity.is_none());
    assert_eq!(answer.access_record_id, id);

    // Both nodes recorded it under the same request id: B as the decision
    // it made for IND, A as the forwarding.
    let on_b = b.record(&id).await;
    assert_eq!(on_b.caller, IND);
    assert_eq!(on_b.role, "ind");
    // B's record names the node that forwarded the call (and asserted
    // IND), not only the participant.
    assert_eq!(on_b.from_node.as_deref(), Some(A));
    assert_eq!(on_b.case_id.as_deref(), Some(case_id.as_str()));
    assert_eq!(on_b.decision, Decision::Partial);
    assert_eq!(on_b.purpose.as_deref(), Some("legalisation"));
    assert!(
        !on_b.consents.is_empty(),
        "B names the consent that decided"
    );
    let on_a = a.record(&id).await;
    assert_eq!(on_a.caller, IND);
    assert_eq!(on_a.from_node, None, "IND called A itself");
    assert_eq!(on_a.method, "GetCase");
    assert_eq!(on_a.decision, Decision::Partial);
    assert_eq!(on_a.released, on_b.released);
    assert!(on_a.detail.contains(B), "{}", on_a.detail);
    // A holds none of the case's data, but its record names the case the
    // call was about, so the subject's report finds the forwarding.
    assert_eq!(on_a.case_id.as_deref(), Some(case_id.as_str()));
    assert!(on_a.subject.is_none(), "A does not hold the case");

    // The pseudonym is the recipient's: IND's is the same whether it asks
    // B directly or through A, and comes back to the same case through A;
    // the NGO, through its own home node C, gets another.
    let mut ind_at_b = b.client(IND).await;
    let direct = ind_at_b
        .cases
        .get_case(get_case(&case_id, "legalisation", None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(direct.subject_pseudonym, answer.subject_pseudonym);
    let mut again = with_actor(pb::GetCaseRequest {
        subject: Some(pb::get_case_request::Subject::SubjectPseudonym(
            answer.subject_pseudonym.clone(),
        )),
        purpose: "legalisation".into(),
        categories: vec![],
        emergency_justification: String::new(),
    });
    again
        .metadata_mut()
        .insert("x-sluis-holding-node", B.parse().unwrap());
    let again = ind.cases.get_case(again).await.unwrap().into_inner();
    assert_eq!(again.subject_pseudonym, answer.subject_pseudonym);
    let mut ngo = c.client(NGO).await;
    let for_ngo = ngo
        .cases
        .get_case(get_case(&case_id, "guidance", Some(B)))
        .await
        .expect("the NGO's forwarded read")
        .into_inner();
    assert_ne!(for_ngo.subject_pseudonym, answer.subject_pseudonym);
    assert!(for_ngo.released.is_empty(), "no consent for the NGO");

    // Node A, with its own node certificate, asserts the NGO (hosted by
    // C): B refuses and records the attempt, naming A.
    let channel = node_channel(a, b).await;
    let mut forged = pb::case_service_client::CaseServiceClient::new(channel.clone());
    let req = asserting(get_case(&case_id, "guidance", None), NGO, "ngo");
    let err = forged.get_case(req).await.expect_err("a forged assertion");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert!(
        err.message().contains("does not say it hosts"),
        "{}",
        err.message()
    );
    let refused = b.record(&common::request_id_of(err.metadata())).await;
    assert_eq!(refused.caller, A, "the record names the node that asserted");
    // A node, shown as one: not as a municipality.
    assert_eq!(refused.role, "peer_node");
    assert_eq!(refused.from_node.as_deref(), Some(A));
    assert_eq!(refused.decision, Decision::Denied);
    assert!(refused.detail.contains(NGO), "{}", refused.detail);
    assert!(refused.released.is_empty());

    // A service the federation listener does not serve, asked with an
    // assertion the directory backs, is an unknown method there, naming
    // what it serves (before, health and consent answered "compressed
    // messages only", and the list named the agency listener's services).
    let err = tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(asserting(
            tonic::Request::new(tonic_health::pb::HealthCheckRequest::default()),
            IND,
            "ind",
        ))
        .await
        .expect_err("health is not served to peers");
    let err2 = pb::consent_service_client::ConsentServiceClient::new(channel)
        .list_consents(asserting(
            tonic::Request::new(pb::ListConsentsRequest {
                case_id: case_id.clone(),
            }),
            IND,
            "ind",
        ))
        .await
        .expect_err("consents are not served to peers");
    for err in [err, err2] {
        assert_eq!(err.code(), tonic::Code::Unimplemented, "{err:?}");
        let reason = tonic_types::StatusExt::get_error_details(&err)
            .error_info()
            .map(|i| i.reason.clone());
        assert_eq!(reason.as_deref(), Some("METHOD_NOT_SERVED"), "{err:?}");
        assert!(
            err.message().contains("sluis.v1.CaseService")
                && err.message().contains("sluis.v1.FederationService")
                && !err.message().contains("AuditService")
                && !err.message().contains("ConsentService"),
            "{}",
            err.message()
        );
    }

    // A peer's call is answered where it arrives: B does not relay it on,
    // even for a participant the calling node does host.
    let req = asserting(get_case(&case_id, "legalisation", Some(C)), IND, "ind");
    let err = forged.get_case(req).await.expect_err("no second hop");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert!(
        err.message().contains("x-sluis-holding-node"),
        "{}",
        err.message()
    );
    assert!(
        c.records(&common::request_id_of(err.metadata()))
            .await
            .is_empty()
    );

    // An expired directory stops federated traffic on both sides, with a
    // clear error; local reads go on.
    let now = OffsetDateTime::now_utc();
    let short = reissue(&dir_nodes, 2, now + time::Duration::seconds(2));
    write_directory(&[a, b, c], &key, &short).await;
    assert_eq!(a.node.federation().unwrap().serial(), 2);
    while OffsetDateTime::now_utc() < now + time::Duration::seconds(3) {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let err = ind
        .cases
        .get_case(get_case(&case_id, "legalisation", Some(B)))
        .await
        .expect_err("expired directory");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("expired"), "{}", err.message());
    let on_a = a.record(&common::request_id_of(err.metadata())).await;
    assert_eq!(on_a.decision, Decision::Denied);
    assert!(
        b.records(&common::request_id_of(err.metadata()))
            .await
            .is_empty(),
        "nothing reached B"
    );
    // B, too, refuses a peer's call now, even with an assertion the
    // directory backs, and records the refusal.
    let req = asserting(get_case(&case_id, "legalisation", None), IND, "ind");
    let err = forged.get_case(req).await.expect_err("expired at B");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("expired"), "{}", err.message());
    let refused = b.record(&common::request_id_of(err.metadata())).await;
    assert_eq!(refused.caller, A);
    assert_eq!(refused.status, "FAILED_PRECONDITION");
    let direct = ind_at_b
        .cases
        .get_case(get_case(&case_id, "legalisation", None))
        .await
        .expect("local reads go on");
    assert!(!direct.into_inner().released.is_empty());

    // A newer directory is taken without restart, and forwarding works again.
    let renewed = reissue(&dir_nodes, 3, now + time::Duration::days(30));
    write_directory(&[a, b, c], &key, &renewed).await;
    let r = ind
        .cases
        .get_case(get_case(&case_id, "legalisation", Some(B)))
        .await
        .expect("forwarded under the new directory");
    assert_eq!(r.into_inner().subject_pseudonym, answer.subject_pseudonym);

    for n in nodes {
        n.node.shutdown().await.unwrap();
    }
}

/// A directory never goes back, across a restart as across a reload: the
/// highest serial a node has run with is kept in its database, so an older
/// signed directory put back in place (with its old pins) stops the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_directory_is_refused_after_a_restart() {
    let (key, mut nodes, dir_nodes) = started_network().await;
    let a = nodes.remove(0);
    let first = std::fs::read(a.directory_path()).unwrap();
    let newer = reissue(
        &dir_nodes,
        2,
        OffsetDateTime::now_utc() + time::Duration::days(30),
    );
    // Taken live (as on SIGHUP): the node keeps that it has run with
    // serial 2 before it takes it, not only at its next start.
    write_directory(&[&a], &key, &newer).await;
    let second = std::fs::read(a.directory_path()).unwrap();
    let Started {
        node, config, dir, ..
    } = a;
    node.shutdown().await.unwrap();

    // Serial 1 put back: refused, saying what to do.
    std::fs::write(dir.path().join("federation.note"), &first).unwrap();
    let refused = match sluis::node::Node::start(&config).await {
        Ok(_) => panic!("a node started with an older directory than it ran with"),
        Err(e) => e.to_string(),
    };
    assert!(
        refused.contains("serial 1, older than serial 2"),
        "{refused}"
    );
    assert!(refused.contains("newest signed directory"), "{refused}");

    // Serial 2 starts, and a reload cannot take serial 1 either.
    std::fs::write(dir.path().join("federation.note"), &second).unwrap();
    let node = sluis::node::Node::start(&config)
        .await
        .expect("serial 2 starts");
    std::fs::write(dir.path().join("federation.note"), &first).unwrap();
    let err = node.reload_federation().await.expect_err("an older reload");
    assert!(
        err.to_string().contains("older than the running one"),
        "{err}"
    );
    assert_eq!(node.federation().unwrap().serial(), 2);
    node.shutdown().await.unwrap();
}
