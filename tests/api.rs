//! The API as an agency developer meets it, over real mTLS gRPC to a real
//! node: errors carry `google.rpc.Status` details a program can act on,
//! writes can be retried safely with a `request_id` (AIP-155), listings page
//! as AIP-158 says, gzip works both ways, and domain validation refuses what
//! cannot be meant — on SQLite and on PostgreSQL.

mod common;

use common::*;
use prost_types::Timestamp;
use sluis::rpc::proto::v1 as pb;
use sluis::tlog::{AccessRecord, Decision};
use tonic::Code;
use tonic::codec::CompressionEncoding::Gzip;
use tonic_types::{ErrorDetails, StatusExt};

use pb::Category as C;

const OFFICER: &str = "fg-utrecht";
const MONITOR: &str = "monitor-jenv";
/// What the test identities hold that no error may repeat.
const PERSONAL: [&str; 4] = ["Test Persoon", "1234567890", "111222333", "123456789"];

/// The details of an error status, after checking what every error has:
/// an `ErrorInfo` in the API's domain with the expected reason, and nothing
/// personal anywhere in the status.
fn details(s: &tonic::Status, code: Code, reason: &str) -> ErrorDetails {
    assert_eq!(s.code(), code, "{s:?}");
    let d = s.check_error_details().expect("details decode");
    let info = d.error_info().unwrap_or_else(|| panic!("ErrorInfo: {s:?}"));
    assert_eq!(info.domain, "sluis.nl");
    assert_eq!(info.reason, reason, "{s:?}");
    let all = format!("{} {d:?}", s.message());
    for p in PERSONAL {
        assert!(!all.contains(p), "{p} in {all}");
    }
    d
}

/// The field an INVALID_ARGUMENT names, after checking its details.
fn invalid_field(s: &tonic::Status) -> String {
    field_of(&details(s, Code::InvalidArgument, "INVALID_FIELD")).to_string()
}

fn field_of(d: &ErrorDetails) -> &str {
    let v = &d.bad_request().expect("BadRequest").field_violations;
    assert_eq!(v.len(), 1, "{v:?}");
    &v[0].field
}

fn at(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
}

fn now_s() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn case_with(name: &str, date_of_birth: &str, bsn: &str) -> pb::RegisterCaseRequest {
    let mut data = full_case(name, "1234567890", bsn);
    data.identity.as_mut().unwrap().date_of_birth = date_of_birth.into();
    pb::RegisterCaseRequest {
        data: Some(data),
        request_id: String::new(),
    }
}

async fn count(node: &TestNode, sql: &str) -> i64 {
    let mut db = connect_database(&node.database_url()).await;
    let n = db.query_one(sql, &[]).await[0].int();
    db.close().await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_class_carries_its_documented_details() {
    let node = TestNode::start().await;
    let mut owner = node.client(GEMEENTE).await;
    let (case_id, pseudonym) = register(&mut owner).await;

    // INVALID_ARGUMENT: a BadRequest naming the field, the value never.
    let s = owner
        .cases
        .register_case(with_actor(case_with("Test Persoon", "", "123456789")))
        .await
        .unwrap_err();
    let d = details(&s, Code::InvalidArgument, "INVALID_FIELD");
    assert_eq!(field_of(&d), "data.identity.bsn");
    assert_eq!(
        d.error_info()
            .unwrap()
            .metadata
            .get("field")
            .map(String::as_str),
        Some("data.identity.bsn")
    );

    // NOT_FOUND: a ResourceInfo with the kind, and the id the node issued.
    let unknown = "0190c4e2-7b1a-4c3e-9f00-1a2b3c4d5e6f";
    let s = owner
        .cases
        .get_case(with_actor(by_id(unknown, "return")))
        .await
        .unwrap_err();
    let d = details(&s, Code::NotFound, "NOT_FOUND");
    let r = d.resource_info().expect("ResourceInfo");
    assert_eq!(
        (r.resource_type.as_str(), r.resource_name.as_str()),
        ("sluis.v1.Case", unknown)
    );
    // ... but never a pseudonym: it is the caller's handle on a person.
    let mut ngo = node.client(NGO).await;
    let s = ngo
        .cases
        .get_case(with_actor(by_pseudonym(&pseudonym, "shelter")))
        .await
        .unwrap_err();
    let d = details(&s, Code::NotFound, "NOT_FOUND");
    assert_eq!(d.resource_info().unwrap().resource_name, "");
    assert!(!format!("{s:?}").contains(&pseudonym));

    // PERMISSION_DENIED: not the owner.
    let s = ngo
        .consents
        .list_consents(with_actor(pb::ListConsentsRequest {
            case_id: case_id.clone(),
        }))
        .await
        .unwrap_err();
    details(&s, Code::PermissionDenied, "NOT_PERMITTED");

    // FAILED_PRECONDITION: a consent withdrawn twice (without a request_id).
    let consent = grant(
        &mut owner,
        &case_id,
        vec![participant(NGO)],
        &[C::Shelter],
        &["shelter"],
    )
    .await;
    let withdraw = pb::WithdrawConsentRequest {
        consent_id: consent.consent_id.clone(),
        note: String::new(),
        request_id: String::new(),
    };
    owner
        .consents
        .withdraw_consent(with_actor(withdraw.clone()))
        .await
        .unwrap();
    let s = owner
        .consents
        .withdraw_consent(with_actor(withdraw))
        .await
        .unwrap_err();
    details(&s, Code::FailedPrecondition, "CONSENT_ALREADY_WITHDRAWN");

    // RESOURCE_EXHAUSTED: the limit as metadata.
    let mut big = full_case("Test Persoon", "1234567890", "111222333");
    let limit = node.config.limits.max_message_bytes;
    big.guidance.as_mut().unwrap().notes = "y".repeat(limit);
    let s = owner
        .cases
        .register_case(with_actor(pb::RegisterCaseRequest {
            data: Some(big),
            request_id: String::new(),
        }))
        .await
        .unwrap_err();
    let d = details(&s, Code::ResourceExhausted, "MESSAGE_TOO_LARGE");
    assert_eq!(
        d.error_info().unwrap().metadata.get("max_message_bytes"),
        Some(&limit.to_string())
    );

    // OUT_OF_RANGE: an index past the end of the log, not "retry".
    let mut officer = node.client(OFFICER).await;
    let past = node.log_len().await as u64 + 1000;
    let s = officer
        .audit
        .get_inclusion_proof(pb::GetInclusionProofRequest {
            entry: Some(pb::get_inclusion_proof_request::Entry::Index(past)),
            tree_size: 0,
        })
        .await
        .unwrap_err();
    let d = details(&s, Code::OutOfRange, "BEYOND_LOG_END");
    assert_eq!(
        d.error_info().unwrap().metadata.get("field").unwrap(),
        "index"
    );
    assert!(d.retry_info().is_none(), "asking again does not help");

    // UNAVAILABLE: RetryInfo, and the message says the same.
    block_log(&node, true).await;
    let s = owner
        .cases
        .get_case(with_actor(by_id(&case_id, "return")))
        .await
        .unwrap_err();
    block_log(&node, false).await;
    let d = details(&s, Code::Unavailable, "ACCESS_LOG_UNAVAILABLE");
    assert_eq!(
        d.retry_info().expect("RetryInfo").retry_delay,
        Some(std::time::Duration::from_secs(1))
    );
    assert!(s.message().contains("retry in 1 s"), "{s:?}");

    // Its record could not be made durable, so there is none: the answer
    // still names the request.
    let id = request_id_of(s.metadata());
    assert!(node.log().await.iter().all(|r| r.request_id != id));
}

/// The two ways a write is retried: the same `request_id` and request (the
/// first answer, nothing written, the retry recorded) and the same
/// `request_id` for another request (refused, nothing written).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_write_with_the_same_request_id_writes_once() {
    let node = TestNode::start().await;
    let mut owner = node.client(GEMEENTE).await;
    let key = || uuid::Uuid::now_v7().to_string();

    // RegisterCase, three times with one key.
    let mut req = case_with("Test Persoon", "1988-02-29", "111222333");
    req.request_id = key();
    let mut answers = Vec::new();
    for _ in 0..3 {
        let r = owner
            .cases
            .register_case(with_actor(req.clone()))
            .await
            .expect("register (retry)");
        let id = request_id(&r);
        let r = r.into_inner();
        assert_eq!(r.access_record_id, id, "each call names its own record");
        answers.push((r.case_id, r.subject_pseudonym, id));
    }
    assert!(
        answers
            .windows(2)
            .all(|w| w[0].0 == w[1].0 && w[0].1 == w[1].1)
    );
    assert_eq!(count(&node, "SELECT COUNT(*) FROM cases").await, 1);
    assert_eq!(count(&node, "SELECT COUNT(*) FROM request_keys").await, 1);
    let case_id = answers[0].0.clone();
    // Each retry is recorded, naming the call that wrote.
    for (_, _, id) in &answers[1..] {
        let rec = record_of(&node, id).await;
        assert_eq!(rec.method, "RegisterCase");
        assert_eq!(rec.decision, Decision::Allowed);
        assert_eq!(rec.case_id.as_deref(), Some(case_id.as_str()));
        assert!(rec.detail.contains(&answers[0].2), "{}", rec.detail);
        assert!(rec.detail.contains("nothing written"), "{}", rec.detail);
    }

    // The same key with other content: ALREADY_EXISTS, nothing written.
    let digest = node.digest().await;
    let mut other = req.clone();
    other.data.as_mut().unwrap().identity.as_mut().unwrap().name = "Ander Persoon".into();
    let s = owner
        .cases
        .register_case(with_actor(other))
        .await
        .unwrap_err();
    details(&s, Code::AlreadyExists, "REQUEST_ID_REUSED");
    // ... and with another method.
    let s = owner
        .consents
        .grant_consent(with_actor(pb::GrantConsentRequest {
            request_id: req.request_id.clone(),
            ..consent_request(&case_id)
        }))
        .await
        .unwrap_err();
    details(&s, Code::AlreadyExists, "REQUEST_ID_REUSED");
    assert_eq!(node.digest().await, digest, "refusals change nothing");
    let rec = record_of(&node, &request_id_of(s.metadata())).await;
    assert_eq!(rec.status, "ALREADY_EXISTS");
    // Keys are per caller: another participant's identical key is its own.
    let mut other_owner = node.client("dtv").await;
    other_owner
        .cases
        .register_case(with_actor(req.clone()))
        .await
        .expect("another caller's key");
    assert_eq!(count(&node, "SELECT COUNT(*) FROM cases").await, 2);

    // UpdateCase: the first version, once.
    let update = pb::UpdateCaseRequest {
        case_id: case_id.clone(),
        data: Some(pb::CaseData {
            guidance: Some(pb::Guidance {
                organisation: NGO.into(),
                notes: "twice a week".into(),
            }),
            ..Default::default()
        }),
        request_id: key(),
        update_mask: None,
    };
    let v1 = owner
        .cases
        .update_case(with_actor(update.clone()))
        .await
        .unwrap();
    let v2 = owner.cases.update_case(with_actor(update)).await.unwrap();
    assert_eq!(v1.get_ref().version, 2);
    assert_eq!(
        v2.get_ref().version,
        2,
        "the retry answers the first version"
    );
    assert_eq!(
        count(&node, "SELECT MAX(version) FROM cases").await,
        2,
        "one update"
    );

    // GrantConsent: one consent.
    let grant_req = pb::GrantConsentRequest {
        request_id: key(),
        ..consent_request(&case_id)
    };
    let g1 = owner
        .consents
        .grant_consent(with_actor(grant_req.clone()))
        .await
        .unwrap()
        .into_inner();
    let g2 = owner
        .consents
        .grant_consent(with_actor(grant_req))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        g1.consent, g2.consent,
        "the retry answers the consent as stored"
    );
    assert_ne!(g1.access_record_id, g2.access_record_id);
    assert_eq!(count(&node, "SELECT COUNT(*) FROM consents").await, 1);
    let consent_id = g1.consent.unwrap().consent_id;

    // WithdrawConsent: one withdrawal event; the retry is not "already
    // withdrawn" but the first answer.
    let withdraw = pb::WithdrawConsentRequest {
        consent_id: consent_id.clone(),
        note: "in conversation".into(),
        request_id: key(),
    };
    let w1 = owner
        .consents
        .withdraw_consent(with_actor(withdraw.clone()))
        .await
        .unwrap();
    let w2 = owner
        .consents
        .withdraw_consent(with_actor(withdraw))
        .await
        .expect("a retried withdrawal is answered, not refused");
    let w2_id = request_id(&w2);
    assert_eq!(w1.into_inner().consent, w2.into_inner().consent);
    assert_eq!(
        count(
            &node,
            "SELECT COUNT(*) FROM consent_events WHERE kind = 'withdrawn'"
        )
        .await,
        1
    );
    let rec = record_of(&node, &w2_id).await;
    assert_eq!(rec.consents, [consent_id]);
    assert!(rec.detail.contains("nothing written"));

    // A request_id that is not a UUID is a field like any other.
    let s = owner
        .cases
        .register_case(with_actor(pb::RegisterCaseRequest {
            request_id: "retry-1".into(),
            ..req
        }))
        .await
        .unwrap_err();
    assert_eq!(invalid_field(&s), "request_id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_requests_work_and_answers_come_compressed() {
    let node = TestNode::start().await;
    let mut c = node.client(GEMEENTE).await;
    let mut cases = c
        .cases
        .clone()
        .send_compressed(Gzip)
        .accept_compressed(Gzip);
    let r = cases
        .register_case(with_actor(case_with(
            "Test Persoon",
            "1988-02-29",
            "111222333",
        )))
        .await
        .expect("a gzip-compressed request is taken");
    let case_id = r.into_inner().case_id;
    let read = cases
        .get_case(with_actor(by_id(&case_id, "case_consultation")))
        .await
        .expect("read, compressed both ways");
    assert_eq!(
        read.metadata()
            .get("grpc-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("gzip"),
        "the answer is compressed for a client that accepts gzip"
    );
    assert_eq!(
        released(read.get_ref()).len(),
        8,
        "the owner reads everything"
    );
    // A client that does not accept gzip gets it uncompressed.
    let plain = c
        .cases
        .get_case(with_actor(by_id(&case_id, "case_consultation")))
        .await
        .unwrap();
    assert!(plain.metadata().get("grpc-encoding").is_none());
    // Every answer, an error too, says what the node takes.
    let refused = c
        .cases
        .get_case(with_actor(by_id(&case_id, "")))
        .await
        .unwrap_err();
    for md in [plain.metadata(), refused.metadata()] {
        assert_eq!(
            md.get("grpc-accept-encoding").map(|v| v.to_str().unwrap()),
            Some("gzip,identity"),
            "{md:?}"
        );
    }
    // The audit service too, streamed.
    let mut officer = node.client(OFFICER).await;
    let mut audit = officer
        .audit
        .clone()
        .send_compressed(Gzip)
        .accept_compressed(Gzip);
    let mut stream = audit
        .query_access(pb::QueryAccessRequest {
            case_id: case_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().expect("an entry");
    assert_eq!(first.entry.unwrap().case_id, case_id);
    let _ = &mut officer;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_follows_aip_158() {
    let node = TestNode::start().await;
    let owner = node.client(GEMEENTE).await;
    // 501 cases: one more than the largest page.
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..8 {
        let mut c = owner.clone();
        tasks.spawn(async move {
            for i in (w..501).step_by(8) {
                let mut req = case_with("Test Persoon", "1988-02-29", "111222333");
                req.data.as_mut().unwrap().shelter.as_mut().unwrap().notes = format!("{i}");
                c.cases.register_case(with_actor(req)).await.unwrap();
            }
        });
    }
    while let Some(t) = tasks.join_next().await {
        t.unwrap();
    }
    let mut c = owner.clone();
    let find = |page_size: i32, page_token: &str| pb::FindCasesRequest {
        scope: pb::find_cases_request::Scope::Own as i32,
        purpose: String::new(),
        page_size,
        page_token: page_token.into(),
    };

    // Above the maximum: read as 500, not refused.
    let big = c
        .cases
        .find_cases(with_actor(find(i32::MAX, "")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(big.cases.len(), 500);
    assert!(!big.next_page_token.is_empty());
    let rest = c
        .cases
        .find_cases(with_actor(find(1000, &big.next_page_token)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.cases.len(), 1);
    assert!(
        rest.next_page_token.is_empty(),
        "the last page has no token"
    );
    // 0: the default, 50.
    let default = c
        .cases
        .find_cases(with_actor(find(0, "")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(default.cases.len(), 50);

    // A last page that is exactly full has no token either: 501 = 3 × 167.
    let mut token = String::new();
    let mut seen = Vec::new();
    for page in 0..3 {
        let r = c
            .cases
            .find_cases(with_actor(find(167, &token)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.cases.len(), 167, "page {page}");
        seen.extend(r.cases.into_iter().map(|s| s.case_id));
        token = r.next_page_token;
        assert_eq!(token.is_empty(), page == 2, "page {page}");
    }
    let distinct: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!(distinct.len(), 501, "every case once");

    // Negative: refused, naming the field.
    let s = c
        .cases
        .find_cases(with_actor(find(-1, "")))
        .await
        .unwrap_err();
    assert_eq!(invalid_field(&s), "page_size");
    // A token this node did not issue to the caller: refused.
    let s = c
        .cases
        .find_cases(with_actor(find(10, "bm90LWEtdG9rZW4")))
        .await
        .unwrap_err();
    assert_eq!(invalid_field(&s), "page_token");
    let mut dtv = node.client("dtv").await;
    let s = dtv
        .cases
        .find_cases(with_actor(find(10, &big.next_page_token)))
        .await
        .unwrap_err();
    assert_eq!(invalid_field(&s), "page_token");
    // The caller's own token, for another listing (AIP-158: the other
    // fields stay the same from page to page): refused, not read as a
    // position in a listing it was not issued for.
    let s = c
        .cases
        .find_cases(with_actor(pb::FindCasesRequest {
            scope: pb::find_cases_request::Scope::Visible as i32,
            purpose: "return".into(),
            ..find(10, &big.next_page_token)
        }))
        .await
        .unwrap_err();
    assert_eq!(invalid_field(&s), "page_token");
    assert!(s.message().contains("same scope and purpose"), "{s:?}");

    // QueryAccess: a limit above the maximum is read as the maximum; a
    // negative one is refused.
    let mut officer = node.client(OFFICER).await;
    let mut stream = officer
        .audit
        .query_access(pb::QueryAccessRequest {
            limit: i32::MAX,
            ..Default::default()
        })
        .await
        .expect("capped, not refused")
        .into_inner();
    let mut n = 0;
    while stream.message().await.unwrap().is_some() {
        n += 1;
    }
    assert!(n > 501 && n <= 10_000, "{n}");
    let s = officer
        .audit
        .query_access(pb::QueryAccessRequest {
            limit: -5,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(invalid_field(&s), "limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inclusion_proof_past_the_end_is_out_of_range() {
    let node = TestNode::start().await;
    let mut owner = node.client(GEMEENTE).await;
    register(&mut owner).await;
    let mut officer = node.client(OFFICER).await;
    // Wait for a checkpoint, then ask for its size and beyond.
    let size = loop {
        match officer
            .audit
            .get_checkpoint(pb::GetCheckpointRequest { size: 0 })
            .await
        {
            Ok(r) => break r.into_inner().checkpoint.unwrap().size,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    };
    let proof = |index, tree_size| pb::GetInclusionProofRequest {
        entry: Some(pb::get_inclusion_proof_request::Entry::Index(index)),
        tree_size,
    };
    officer
        .audit
        .get_inclusion_proof(proof(size - 1, size))
        .await
        .expect("the last entry of the tree");
    // Inside the named tree size: never; past the log: not until it grows.
    for (index, tree_size) in [(size, size), (u64::MAX / 2, 0)] {
        let s = officer
            .audit
            .get_inclusion_proof(proof(index, tree_size))
            .await
            .unwrap_err();
        let d = details(&s, Code::OutOfRange, "BEYOND_LOG_END");
        assert!(s.message().contains("past the end"), "{s:?}");
        assert!(!s.message().contains("retry"), "{s:?}");
        if index == size {
            // The last index as a number, not as arithmetic to do.
            let last = match size {
                1 => "1 entry (index 0)".to_string(),
                n => format!("{n} entries (indexes 0 to {})", n - 1),
            };
            assert!(s.message().contains(&last), "{s:?}");
        }
        let rec = record_of(&node, &request_id_of(s.metadata())).await;
        assert_eq!(rec.status, "OUT_OF_RANGE");
        assert_eq!(field_of_info(&d), "index");
    }
}

/// A caller proving the call it just made gets its proof, not an error to
/// retry: the node waits for the checkpoint that covers the entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inclusion_proof_of_a_call_just_made_waits_for_its_checkpoint() {
    let node = TestNode::start().await;
    let mut owner = node.client(GEMEENTE).await;
    let mut officer = node.client(OFFICER).await;
    for _ in 0..3 {
        // Registered a moment after the previous one: a checkpoint was
        // signed with the previous batch at most, not with this one.
        let id = owner
            .cases
            .register_case(with_actor(pb::RegisterCaseRequest {
                request_id: String::new(),
                data: Some(full_case("Test Persoon", "1234567890", "111222333")),
            }))
            .await
            .expect("register")
            .into_inner()
            .access_record_id;
        let proof = officer
            .audit
            .get_inclusion_proof(pb::GetInclusionProofRequest {
                entry: Some(pb::get_inclusion_proof_request::Entry::AccessRecordId(
                    id.clone(),
                )),
                tree_size: 0,
            })
            .await
            .expect("the proof of a call just made")
            .into_inner();
        let cp = proof.checkpoint.unwrap();
        assert!(proof.index < cp.size, "{} < {}", proof.index, cp.size);
        assert_eq!(record_of(&node, &id).await.method, "RegisterCase");
    }
}

fn field_of_info(d: &ErrorDetails) -> String {
    d.error_info().unwrap().metadata["field"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_validation_refuses_what_cannot_be_meant() {
    let node = TestNode::start().await;
    let mut owner = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut owner).await;
    let digest = node.digest().await;

    // Dates of birth: in the future, or before 1900.
    let next_year = time::OffsetDateTime::now_utc().year() + 1;
    for (dob, says) in [
        (format!("{next_year}-01-01"), "in the future"),
        ("2090-06-15".to_string(), "in the future"),
        ("1899-12-31".to_string(), "before 1900-01-01"),
    ] {
        let s = owner
            .cases
            .register_case(with_actor(case_with("Test Persoon", &dob, "111222333")))
            .await
            .unwrap_err();
        let d = details(&s, Code::InvalidArgument, "INVALID_FIELD");
        assert_eq!(field_of(&d), "data.identity.date_of_birth");
        assert!(s.message().contains(says), "{dob}: {s:?}");
        assert!(!s.message().contains(&dob), "the value is not echoed");
    }
    // Several invalid fields: every one named at once, none echoed.
    let mut data = full_case("Test Persoon", "12", "123");
    data.identity.as_mut().unwrap().date_of_birth = "2090-01-01".into();
    data.shelter.as_mut().unwrap().since = "1800-01-01".into();
    let s = owner
        .cases
        .register_case(with_actor(pb::RegisterCaseRequest {
            request_id: String::new(),
            data: Some(data),
        }))
        .await
        .unwrap_err();
    let mut fields: Vec<_> = s
        .get_error_details()
        .bad_request()
        .expect("BadRequest")
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "data.identity.bsn",
            "data.identity.date_of_birth",
            "data.identity.v_number",
            "data.shelter.since"
        ],
        "{s:?}"
    );
    assert!(s.message().contains("3 more invalid fields"), "{s:?}");
    assert_eq!(node.digest().await, digest);
    owner
        .cases
        .register_case(with_actor(case_with(
            "Test Persoon",
            "1900-01-01",
            "111222333",
        )))
        .await
        .expect("the earliest date of birth");
    let digest_after_register = node.digest().await;
    assert_ne!(digest, digest_after_register);

    // Case dates: what has happened is not in the future, and nothing in a
    // case is before 1900. Refused on an update too, which changes nothing.
    let update = |data: pb::CaseData| pb::UpdateCaseRequest {
        case_id: case_id.clone(),
        data: Some(data),
        request_id: String::new(),
        update_mask: None,
    };
    let refused_dates = [
        (
            pb::CaseData {
                outcome: Some(pb::Outcome {
                    outcome_kind: 1,
                    date: "2099-01-01".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "data.outcome.date",
            "in the future",
        ),
        (
            pb::CaseData {
                perspective: Some(pb::Perspective {
                    intake_date: "2099-01-01".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "data.perspective.intake_date",
            "in the future",
        ),
        (
            pb::CaseData {
                shelter: Some(pb::Shelter {
                    location: "LVV Oost".into(),
                    since: "1800-01-01".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "data.shelter.since",
            "before 1900-01-01",
        ),
    ];
    for (data, field, says) in refused_dates {
        let s = owner
            .cases
            .update_case(with_actor(update(data)))
            .await
            .unwrap_err();
        let d = details(&s, Code::InvalidArgument, "INVALID_FIELD");
        assert_eq!(field_of(&d), field);
        assert!(s.message().contains(says), "{field}: {s:?}");
    }
    assert_eq!(
        node.digest().await,
        digest_after_register,
        "nothing changed"
    );
    owner
        .cases
        .update_case(with_actor(update(pb::CaseData {
            shelter: Some(pb::Shelter {
                location: "LVV Oost".into(),
                since: "2026-01-01".into(),
                until: "2099-01-01".into(),
                ..Default::default()
            }),
            ..Default::default()
        })))
        .await
        .expect("a shelter place may be planned to end in the future");
    let digest_after_register = node.digest().await;

    // Consent to recipients that can never receive case data: the roles
    // privacy_officer and monitor, or a participant in such a role.
    let refused = [
        (vec![role("privacy_officer")], "recipients[0].role"),
        (
            vec![participant(NGO), role("monitor")],
            "recipients[1].role",
        ),
        (vec![participant(OFFICER)], "recipients[0].participant"),
        (vec![participant(MONITOR)], "recipients[0].participant"),
    ];
    for (recipients, field) in refused {
        let s = owner
            .consents
            .grant_consent(with_actor(pb::GrantConsentRequest {
                recipients,
                ..consent_request(&case_id)
            }))
            .await
            .unwrap_err();
        let d = details(&s, Code::InvalidArgument, "INVALID_FIELD");
        assert_eq!(field_of(&d), field);
        assert!(s.message().contains("never let anything through"), "{s:?}");
    }

    // Validity windows: wholly in the past; longer than the maximum
    // (1826 days by default); beginning beyond it.
    let day = 86_400;
    let windows = [
        (
            at(now_s() - 30 * day),
            at(now_s() - day),
            "valid_until",
            "in the past",
        ),
        // Only valid_until set, a moment ago: the message is about the
        // field the caller set, not a valid_from it never wrote.
        (None, at(now_s() - 5), "valid_until", "in the past"),
        (None, at(now_s() + 1827 * day), "valid_until", "1826 days"),
        (at(now_s() + 1900 * day), None, "valid_from", "1826 days"),
    ];
    for (valid_from, valid_until, field, says) in windows {
        let s = owner
            .consents
            .grant_consent(with_actor(pb::GrantConsentRequest {
                valid_from,
                valid_until,
                ..consent_request(&case_id)
            }))
            .await
            .unwrap_err();
        let d = details(&s, Code::InvalidArgument, "INVALID_FIELD");
        assert_eq!(field_of(&d), field, "{s:?}");
        assert!(s.message().contains(says), "{s:?}");
    }
    assert_eq!(node.digest().await, digest_after_register, "nothing stored");

    // A recipient (and a category, a purpose) named twice is stored once,
    // and the answer echoes what was stored: the same as ListConsents.
    let granted = owner
        .consents
        .grant_consent(with_actor(pb::GrantConsentRequest {
            recipients: vec![
                role("ngo"),
                participant("dtv"),
                role("ngo"),
                participant("dtv"),
            ],
            categories: cats(&[C::Perspective, C::Shelter, C::Perspective]),
            purposes: vec![
                "shelter".into(),
                "case_consultation".into(),
                "shelter".into(),
            ],
            ..consent_request(&case_id)
        }))
        .await
        .unwrap()
        .into_inner()
        .consent
        .unwrap();
    assert_eq!(granted.recipients, vec![participant("dtv"), role("ngo")]);
    assert_eq!(granted.categories, cats(&[C::Shelter, C::Perspective]));
    assert_eq!(granted.purposes, ["case_consultation", "shelter"]);
    let listed = owner
        .consents
        .list_consents(with_actor(pb::ListConsentsRequest {
            case_id: case_id.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .consents;
    assert_eq!(listed, vec![granted]);
}

/// `FindCases{scope: VISIBLE}` lists what `GetCase` would release something
/// of: cases a consent names the caller for, and — where the policy gives
/// its role a legal basis for the purpose — every case of another owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visible_cases_include_those_open_on_a_legal_basis() {
    let node = TestNode::start().await;
    let mut owner = node.client(GEMEENTE).await;
    let (a, _) = register(&mut owner).await;
    let (b, _) = register(&mut owner).await;
    let visible = |purpose: &str| pb::FindCasesRequest {
        scope: pb::find_cases_request::Scope::Visible as i32,
        purpose: purpose.into(),
        page_size: 10,
        page_token: String::new(),
    };

    // DT&V, purpose return: residence_procedure on a legal basis, so both
    // cases, without any consent; and GetCase agrees for each.
    let mut dtv = node.client("dtv").await;
    let found = dtv
        .cases
        .find_cases(with_actor(visible("return")))
        .await
        .unwrap();
    let found_id = request_id(&found);
    let found = found.into_inner().cases;
    assert_eq!(found.len(), 2);
    for s in &found {
        assert!(s.case_id.is_empty(), "not the caller's: by pseudonym only");
        let r = dtv
            .cases
            .get_case(with_actor(by_pseudonym(&s.subject_pseudonym, "return")))
            .await
            .unwrap()
            .into_inner();
        assert!(
            !r.released.is_empty(),
            "each listed case releases something"
        );
    }
    let rec: AccessRecord = record_of(&node, &found_id).await;
    assert_eq!(
        rec.subjects.len(),
        2,
        "the listing's record names both subjects"
    );

    // An NGO has no legal basis: nothing without consent ...
    let mut ngo = node.client(NGO).await;
    let none = ngo
        .cases
        .find_cases(with_actor(visible("shelter")))
        .await
        .unwrap();
    assert!(none.into_inner().cases.is_empty());
    // ... and the case its consent names, with one.
    grant(
        &mut owner,
        &b,
        vec![participant(NGO)],
        &[C::Shelter],
        &["shelter"],
    )
    .await;
    let one = ngo
        .cases
        .find_cases(with_actor(visible("shelter")))
        .await
        .unwrap()
        .into_inner()
        .cases;
    assert_eq!(one.len(), 1);
    let r = ngo
        .cases
        .get_case(with_actor(by_pseudonym(
            &one[0].subject_pseudonym,
            "shelter",
        )))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(released(&r), ["shelter"]);
    let _ = a;
}

/// Two withdrawals of one consent at the same moment: one is written, the
/// other is answered as a withdrawal of a withdrawn consent
/// (FAILED_PRECONDITION, CONSENT_ALREADY_WITHDRAWN) and recorded so; the
/// consent's history holds one withdrawal. Both calls are under way before
/// either record is written (`at_once`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_withdrawals_at_once_write_one() {
    let node = TestNode::start().await;
    let mut owner = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut owner).await;
    let consent_id = grant(
        &mut owner,
        &case_id,
        vec![participant(NGO)],
        &[pb::Category::Shelter],
        &["shelter"],
    )
    .await
    .consent_id;
    let withdraw = |note: &str| {
        with_actor(pb::WithdrawConsentRequest {
            consent_id: consent_id.clone(),
            note: note.into(),
            request_id: String::new(),
        })
    };
    let mut first = node.client(GEMEENTE).await;
    let mut second = node.client(GEMEENTE).await;
    let (a, b) = (withdraw("in conversation"), withdraw("by letter"));
    let (a, b) = at_once(
        &node,
        async move { first.consents.withdraw_consent(a).await },
        async move { second.consents.withdraw_consent(b).await },
    )
    .await;
    let lost = match (a, b) {
        (Ok(_), Err(l)) | (Err(l), Ok(_)) => l,
        other => panic!("one withdrawal is written and one refused: {other:?}"),
    };
    assert_eq!(lost.code(), Code::FailedPrecondition, "{lost:?}");
    assert_eq!(
        lost.get_details_error_info().unwrap().reason,
        "CONSENT_ALREADY_WITHDRAWN"
    );
    let consents = owner
        .consents
        .list_consents(with_actor(pb::ListConsentsRequest {
            case_id: case_id.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .consents;
    let c = consents
        .iter()
        .find(|c| c.consent_id == consent_id)
        .unwrap();
    let withdrawals = c
        .events
        .iter()
        .filter(|e| e.kind == pb::consent_event::Kind::Withdrawn as i32)
        .count();
    assert_eq!(withdrawals, 1, "{:?}", c.events);
    let log = node.log().await;
    let refused: Vec<_> = log
        .iter()
        .filter(|r| r.method == "WithdrawConsent")
        .collect();
    assert!(
        refused.len() >= 3,
        "both calls and the refusal are recorded: {refused:?}"
    );
}
