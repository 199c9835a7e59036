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
