//! If the access record cannot be made durable, nothing is released and
//! nothing is changed: the caller gets UNAVAILABLE.

mod common;

use common::*;
use sluis::rpc::proto::v1 as pb;
use tonic::Code;

use pb::Category as C;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_data_leaves_and_nothing_changes_when_the_log_cannot_be_written() {
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
    assert_eq!(
        ngo.cases
            .get_case(by_id(&case_id, "shelter"))
            .await
            .unwrap()
            .into_inner()
            .released
            .len(),
        2
    );
    let log_before = node.log_len().await;
    let digest_before = node.digest().await;

    block_log(&node, true).await;

    let err = ngo
        .cases
        .get_case(by_id(&case_id, "shelter"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(
        err.message().contains("nothing was released") && err.message().contains("retry in"),
        "{}",
        err.message()
    );
    assert!(err.metadata().get("x-request-id").is_some());

    let err = gemeente
        .cases
        .register_case(with_actor(pb::RegisterCaseRequest {
            request_id: String::new(),
            data: Some(full_case("Ander Persoon", "2234567890", "123456782")),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    let err = gemeente
        .consents
        .withdraw_consent(with_actor(pb::WithdrawConsentRequest {
            request_id: String::new(),
            consent_id: consent.consent_id.clone(),
            note: String::new(),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    // Denials and refusals fail closed too.
    let err = ngo.cases.get_case(by_id(&case_id, "")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);

    assert_eq!(
        node.digest().await,
        digest_before,
        "nothing stored while the log was down"
    );
    assert_eq!(node.log_len().await, log_before);

    // The node recovers by itself once the log can be written again.
    block_log(&node, false).await;
    let r = ngo
        .cases
        .get_case(by_id(&case_id, "shelter"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.released.len(),
        2,
        "consent was not withdrawn while the log was down"
    );
    assert_eq!(node.log_len().await, log_before + 1);
}

/// One record the database refuses (here a trigger on one case's records,
/// as a constraint or a value it does not take would) does not fail the
/// other requests of its group commit: they are answered as if it were not
/// there, and only its own request fails — INTERNAL, saying the database
/// refused its record, nothing released. The records are held behind a
/// lock until they all wait, so that they go to the database as one batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_the_database_refuses_fails_only_its_own_request() {
    let node = TestNode::start().await;
    let mut gemeente = node.client(GEMEENTE).await;
    let (innocent, _) = register(&mut gemeente).await;
    let (refused, _) = register(&mut gemeente).await;
    for case_id in [&innocent, &refused] {
        grant_to_role(&mut gemeente, case_id, "dtv").await;
    }
    node.sql(
        &format!(
            "CREATE TRIGGER refuse_one BEFORE INSERT ON access_log WHEN NEW.case_id = '{refused}' \
             BEGIN SELECT RAISE(ABORT, 'refused'); END"
        ),
        &format!(
            "CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF NEW.case_id = '{refused}' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END; $$;
             CREATE TRIGGER refuse_one BEFORE INSERT ON access_log FOR EACH ROW EXECUTE FUNCTION refuse_one();"
        ),
    )
    .await;
    let dtv = node.client("dtv").await;
    let log_before = node.log_len().await;

    let lock = LogLock::take(&node).await;
    let read = |case_id: &String| {
        let (mut c, case_id) = (dtv.clone(), case_id.clone());
        tokio::spawn(async move { c.cases.get_case(by_id(&case_id, "return")).await })
    };
    // The first holds the writer at the lock; the rest queue behind it and
    // are written together once it opens.
    let first = read(&innocent);
    wait_in_flight(&node, 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut innocents: Vec<_> = (0..10).map(|_| read(&innocent)).collect();
    let bad = read(&refused);
    innocents.extend((0..10).map(|_| read(&innocent)));
    let mut owner = gemeente.clone();
    let write = tokio::spawn(async move {
        owner
            .cases
            .register_case(with_actor(pb::RegisterCaseRequest {
                data: Some(full_case("Nog Een", "5234567890", "")),
                request_id: String::new(),
            }))
            .await
    });
    wait_in_flight(&node, 23).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    lock.release().await;

    first.await.unwrap().expect("the first read");
    for r in innocents {
        let r = r
            .await
            .unwrap()
            .expect("a read sharing the batch goes through");
        assert!(!r.get_ref().released.is_empty());
    }
    let registered = write
        .await
        .unwrap()
        .expect("a write sharing the batch goes through")
        .into_inner()
        .case_id;
    let err = bad
        .await
        .unwrap()
        .expect_err("the refused record's request");
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    assert!(
        err.message()
            .contains("the database refused this request's record")
            && err.message().contains("nothing was released"),
        "{}",
        err.message()
    );
    {
        use tonic_types::StatusExt;
        assert_eq!(
            err.get_error_details()
                .error_info()
                .map(|i| i.reason.as_str()),
            Some("ACCESS_RECORD_REFUSED")
        );
    }
    assert!(err.metadata().get("x-request-id").is_some());
    assert!(
        own_cases(&mut gemeente).await.contains(&registered),
        "the write is applied"
    );
    let log = node.log().await;
    assert_eq!(
        log.len() as i64,
        log_before + 22 + 1,
        "every record but the refused one (and the listing just now)"
    );
    assert!(
        log[log_before as usize..]
            .iter()
            .all(|r| r.case_id.as_deref() != Some(&refused))
    );

    let TestNode { dir, config, node } = node;
    node.shutdown().await.unwrap();
    let report = verify_log_of(&config).await;
    assert!(report.intact(), "{:?}", report.first_problem());
    drop(dir);
}
