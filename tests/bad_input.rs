//! Bad input over real gRPC + mTLS: every malformed, incomplete or
//! forbidden request gets the right status and a message that says what to
//! fix, changes nothing in the store, releases nothing, and leaves exactly one
//! access record with the matching decision and status. Values that may be
//! personal data (a BSN, a mistyped purpose) are never echoed back or logged.

mod common;

use common::*;
use prost_types::Timestamp;
use sluis::rpc::Clients;
use sluis::rpc::proto::v1 as pb;
use sluis::tlog::{AccessRecord, Decision};
use tonic::metadata::MetadataValue;
use tonic::{Code, Request, Status};

/// A well-formed id that no node has issued.
const UNKNOWN_ID: &str = "0190c4e2-7b1a-4c3e-9f00-1a2b3c4d5e6f";
/// Looks like a BSN (it passes the 11-check): must never be echoed or logged.
const BSN_LIKE: &str = "123456782";

/// One request, to any of the methods under test.
enum Call {
    Get(pb::GetCaseRequest),
    Register(Box<pb::RegisterCaseRequest>),
    Grant(pb::GrantConsentRequest),
    Withdraw(pb::WithdrawConsentRequest),
    Report(pb::SubjectAccessReportRequest),
}

impl Call {
    fn method(&self) -> &'static str {
        match self {
            Call::Get(_) => "GetCase",
            Call::Register(_) => "RegisterCase",
            Call::Grant(_) => "GrantConsent",
            Call::Withdraw(_) => "WithdrawConsent",
            Call::Report(_) => "SubjectAccessReport",
        }
    }
}

/// `msg` with `x-sluis-actor` set to these raw bytes (None: no header).
fn request<T>(msg: T, actor: Option<&[u8]>) -> Request<T> {
    let mut r = Request::new(msg);
    if let Some(a) = actor {
        let v = MetadataValue::try_from(a).expect("a value HTTP/2 can carry");
        r.metadata_mut().insert("x-sluis-actor", v);
    }
    r
}

async fn send(c: &mut Clients, call: Call, actor: Option<&[u8]>) -> Result<(), Status> {
    match call {
        Call::Get(m) => c.cases.get_case(request(m, actor)).await.map(drop),
        Call::Register(m) => c.cases.register_case(request(*m, actor)).await.map(drop),
        Call::Grant(m) => c.consents.grant_consent(request(m, actor)).await.map(drop),
        Call::Withdraw(m) => c
            .consents
            .withdraw_consent(request(m, actor))
            .await
            .map(drop),
        Call::Report(m) => c
            .audit
            .subject_access_report(request(m, actor))
            .await
            .map(drop),
    }
}

/// A bad request and how the node must answer it.
struct Bad {
    what: &'static str,
    /// The participant whose certificate sends it.
    who: &'static str,
    call: Call,
    code: Code,
    decision: Decision,
    /// The message must contain this: it tells the caller what to fix.
    hint: &'static str,
    /// A value from the request that must appear neither in the message nor
    /// anywhere in the access record.
    secret: Option<&'static str>,
}

fn bad(what: &'static str, call: Call, code: Code, hint: &'static str) -> Bad {
    let decision = match code {
        Code::InvalidArgument | Code::ResourceExhausted => Decision::Invalid,
        Code::NotFound => Decision::NotFound,
        _ => Decision::Denied,
    };
    Bad {
        what,
        who: GEMEENTE,
        call,
        code,
        decision,
        hint,
        secret: None,
    }
}

impl Bad {
    fn by(mut self, who: &'static str) -> Bad {
        self.who = who;
        self
    }
    fn never_echo(mut self, secret: &'static str) -> Bad {
        self.secret = Some(secret);
        self
    }
}

fn code_name(code: Code) -> &'static str {
    match code {
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::NotFound => "NOT_FOUND",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        other => panic!("no bad-input case expects {other:?}"),
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Sends the bad request with the usual actor and checks everything the
/// node must do about it.
async fn check(node: &TestNode, b: Bad) {
    let mut c = node.client(b.who).await;
    check_with(node, &mut c, b, Some(ACTOR.as_bytes())).await;
}

async fn check_with(node: &TestNode, c: &mut Clients, b: Bad, actor: Option<&[u8]>) {
    let what = b.what;
    let method = b.call.method();
    let digest = node.digest().await;
    let log_len = node.log_len().await;

    let status = send(c, b.call, actor)
        .await
        .expect_err(&format!("{what}: must be refused"));

    assert_eq!(status.code(), b.code, "{what}: {status:?}");
    assert!(
        status.message().contains(b.hint),
        "{what}: the message says what to fix ({:?}): {:?}",
        b.hint,
        status.message()
    );
    assert_eq!(node.digest().await, digest, "{what}: nothing changed");

    // Exactly one new record, for this request, saying how it ended.
    assert_eq!(
        node.log_len().await,
        log_len + 1,
        "{what}: one access record"
    );
    let row = node.log().await.pop().expect("the new record");
    let rec = AccessRecord::decode(&row.record).expect("record decodes");
    let request_id = status
        .metadata()
        .get("x-request-id")
        .expect("x-request-id on errors too")
        .to_str()
        .unwrap();
    assert_eq!(rec.request_id, request_id, "{what}");
    assert_eq!(rec.method, method, "{what}");
    assert_eq!(rec.caller, b.who, "{what}");
    assert_eq!(rec.decision, b.decision, "{what}: {rec:?}");
    assert_eq!(row.decision, b.decision.as_str(), "{what}");
    assert_eq!(rec.status, code_name(b.code), "{what}");
    assert!(rec.released.is_empty(), "{what}: nothing released");
    assert_eq!(rec.detail, status.message(), "{what}: the record says why");

    if let Some(secret) = b.secret {
        assert!(
            !status.message().contains(secret),
            "{what}: the message echoes {secret}"
        );
        assert!(
            !contains(&row.record, secret),
            "{what}: the access record holds {secret}"
        );
        for field in [&row.purpose, &row.case_id, &row.subject] {
            assert!(
                !field.as_deref().unwrap_or("").contains(secret),
                "{what}: the log row holds {secret}"
            );
        }
    }
}

/// A node with one case of the municipality's; returns it with the case id
/// and the municipality's pseudonym for it.
async fn node_with_case() -> (TestNode, String, String) {
    let node = TestNode::start().await;
    let mut owner = node.client(GEMEENTE).await;
    let (case_id, pseudonym) = register(&mut owner).await;
    (node, case_id, pseudonym)
}

fn get(subject: Option<pb::get_case_request::Subject>, purpose: &str, cats: Vec<i32>) -> Call {
    Call::Get(pb::GetCaseRequest {
        subject,
        purpose: purpose.into(),
        categories: cats,
        emergency_justification: String::new(),
    })
}

fn case_id(id: &str) -> Option<pb::get_case_request::Subject> {
    Some(pb::get_case_request::Subject::CaseId(id.into()))
}

fn pseudonym(p: &str) -> Option<pb::get_case_request::Subject> {
    Some(pb::get_case_request::Subject::SubjectPseudonym(p.into()))
}

#[tokio::test]
async fn get_case_bad_input() {
    let (node, id, own_pseudonym) = node_with_case().await;
    let unknown_pseudonym = format!("ps1.{}", "A".repeat(27));
    let upper_id = id.to_uppercase();

    let cases = [
        bad(
            "missing purpose",
            get(case_id(&id), "", vec![]),
            Code::InvalidArgument,
            "purpose is required",
        ),
        bad(
            "unknown purpose",
            get(case_id(&id), BSN_LIKE, vec![]),
            Code::InvalidArgument,
            "unknown purpose; use one of",
        )
        .never_echo(BSN_LIKE),
        bad(
            "unknown category",
            get(case_id(&id), "case_consultation", vec![42]),
            Code::InvalidArgument,
            "unknown category 42",
        ),
        bad(
            "unspecified category",
            get(case_id(&id), "case_consultation", vec![0]),
            Code::InvalidArgument,
            "unknown category 0",
        ),
        bad(
            "malformed case id",
            get(case_id("not-a-uuid"), "case_consultation", vec![]),
            Code::InvalidArgument,
            "case_id is malformed",
        ),
        bad(
            "upper-case case id",
            get(case_id(&upper_id), "case_consultation", vec![]),
            Code::InvalidArgument,
            "lower-case UUID",
        ),
        bad(
            "malformed pseudonym",
            get(pseudonym("ps1.short"), "case_consultation", vec![]),
            Code::InvalidArgument,
            "subject_pseudonym is malformed",
        ),
        bad(
            "neither case id nor pseudonym",
            get(None, "case_consultation", vec![]),
            Code::InvalidArgument,
            "set case_id or subject_pseudonym",
        ),
        bad(
            "unknown case id",
            get(case_id(UNKNOWN_ID), "case_consultation", vec![]),
            Code::NotFound,
            "no case with this case_id",
        ),
        bad(
            "unknown pseudonym",
            get(pseudonym(&unknown_pseudonym), "case_consultation", vec![]),
            Code::NotFound,
            "no case for this pseudonym",
        ),
        // A pseudonym is only good for the recipient it was issued to.
        bad(
            "another recipient's pseudonym",
            get(pseudonym(&own_pseudonym), "return", vec![]),
            Code::NotFound,
            "no case for this pseudonym",
        )
        .by("dtv"),
    ];
    for b in cases {
        check(&node, b).await;
    }
}

/// A registration whose identity is the valid base, changed by `f`.
fn register_with(f: impl FnOnce(&mut pb::Identity)) -> Call {
    let mut identity = pb::Identity {
        name: "Test Persoon".into(),
        date_of_birth: "1988-02-29".into(),
        nationality: "SDN".into(),
        v_number: String::new(),
        bsn: String::new(),
    };
    f(&mut identity);
    Call::Register(Box::new(pb::RegisterCaseRequest {
        request_id: String::new(),
        data: Some(pb::CaseData {
            identity: Some(identity),
            ..Default::default()
        }),
    }))
}

#[tokio::test]
async fn register_case_bad_input() {
    let node = TestNode::start().await;
    let two_mib_of_notes = pb::RegisterCaseRequest {
        request_id: String::new(),
        data: Some(pb::CaseData {
            guidance: Some(pb::Guidance {
                organisation: NGO.into(),
                notes: "x".repeat(2 << 20),
            }),
            ..full_case("Test Persoon", "1234567890", "111222333")
        }),
    };
    // Beyond the transport's decoding cap (4 × the limit): refused before
    // decoding, and still answered with a request id and recorded.
    let eight_mib_of_notes = pb::RegisterCaseRequest {
        request_id: String::new(),
        data: Some(pb::CaseData {
            guidance: Some(pb::Guidance {
                organisation: NGO.into(),
                notes: "x".repeat(8 << 20),
            }),
            ..full_case("Test Persoon", "1234567890", "111222333")
        }),
    };
    let cases = [
        bad(
            "no data",
            Call::Register(Box::default()),
            Code::InvalidArgument,
            "data is required",
        ),
        bad(
            "data without identity",
            Call::Register(Box::new(pb::RegisterCaseRequest {
                request_id: String::new(),
                data: Some(pb::CaseData {
                    identity: None,
                    ..full_case("Test Persoon", "1234567890", "111222333")
                }),
            })),
            Code::InvalidArgument,
            "data.identity is required",
        ),
        bad(
            "empty identity",
            register_with(|i| *i = pb::Identity::default()),
            Code::InvalidArgument,
            "data.identity must have at least a name, a V-number or a BSN",
        ),
        bad(
            "blank name only",
            register_with(|i| i.name = "   ".into()),
            Code::InvalidArgument,
            "data.identity must have at least a name, a V-number or a BSN",
        ),
        bad(
            "BSN failing the 11-check",
            register_with(|i| i.bsn = "123456789".into()),
            Code::InvalidArgument,
            "data.identity.bsn must be 9 digits that pass the 11-check",
        )
        .never_echo("123456789"),
        bad(
            "BSN of 8 digits",
            register_with(|i| i.bsn = "11122233".into()),
            Code::InvalidArgument,
            "data.identity.bsn must be 9 digits",
        )
        .never_echo("11122233"),
        bad(
            "V-number of 11 digits",
            register_with(|i| i.v_number = "12345678901".into()),
            Code::InvalidArgument,
            "data.identity.v_number must be 10 digits",
        )
        .never_echo("12345678901"),
        bad(
            "V-number with a letter",
            register_with(|i| i.v_number = "V123456789".into()),
            Code::InvalidArgument,
            "data.identity.v_number must be 10 digits",
        )
        .never_echo("V123456789"),
        bad(
            "date of birth day-month-year",
            register_with(|i| i.date_of_birth = "29-02-1988".into()),
            Code::InvalidArgument,
            "data.identity.date_of_birth must be a date written YYYY-MM-DD",
        )
        .never_echo("29-02-1988"),
        bad(
            "date of birth that does not exist",
            register_with(|i| i.date_of_birth = "1987-02-29".into()),
            Code::InvalidArgument,
            "data.identity.date_of_birth must be a date written YYYY-MM-DD",
        ),
        bad(
            "date of birth in the future",
            register_with(|i| i.date_of_birth = "2090-01-01".into()),
            Code::InvalidArgument,
            "data.identity.date_of_birth is in the future",
        )
        .never_echo("2090-01-01"),
        bad(
            "date of birth before 1900",
            register_with(|i| i.date_of_birth = "1850-01-01".into()),
            Code::InvalidArgument,
            "data.identity.date_of_birth is before 1900-01-01",
        )
        .never_echo("1987-02-29"),
        bad(
            "2 MiB of notes",
            Call::Register(Box::new(two_mib_of_notes)),
            Code::ResourceExhausted,
            "this node accepts at most 1048576 bytes per message",
        ),
        bad(
            "8 MiB of notes",
            Call::Register(Box::new(eight_mib_of_notes)),
            Code::ResourceExhausted,
            "at most 1048576 bytes per message",
        ),
        bad(
            "the monitor registering",
            register_with(|_| {}),
            Code::PermissionDenied,
            "role monitor cannot register cases",
        )
        .by("monitor-jenv"),
        bad(
            "the privacy officer registering",
            register_with(|_| {}),
            Code::PermissionDenied,
            "role privacy_officer cannot register cases",
        )
        .by("fg-utrecht"),
    ];
    for b in cases {
        check(&node, b).await;
    }
}

fn grant(f: impl FnOnce(&mut pb::GrantConsentRequest), case_id: &str) -> Call {
    let mut m = consent_request(case_id);
    f(&mut m);
    Call::Grant(m)
}

fn at(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
}

#[tokio::test]
async fn grant_consent_bad_input() {
    let (node, id, _) = node_with_case().await;
    // 2030-01-01 and a day before it.
    let (from, day_before) = (1_893_456_000, 1_893_456_000 - 86_400);
    let cases = [
        bad(
            "consent on a case the caller does not own",
            grant(|_| {}, &id),
            Code::PermissionDenied,
            "only the case owner",
        )
        .by(NGO),
        bad(
            "valid_until before valid_from",
            grant(
                |m| {
                    m.valid_from = at(from);
                    m.valid_until = at(day_before);
                },
                &id,
            ),
            Code::InvalidArgument,
            "valid_until must be after valid_from",
        ),
        bad(
            "valid_until equal to valid_from",
            grant(
                |m| {
                    m.valid_from = at(from);
                    m.valid_until = at(from);
                },
                &id,
            ),
            Code::InvalidArgument,
            "valid_until must be after valid_from",
        ),
        bad(
            "valid_until already past",
            grant(|m| m.valid_until = at(day_before - 10 * 365 * 86_400), &id),
            Code::InvalidArgument,
            "valid_until is in the past",
        ),
        bad(
            "no recipients",
            grant(|m| m.recipients.clear(), &id),
            Code::InvalidArgument,
            "recipients: name at least one participant or role",
        ),
        bad(
            "a recipient with neither participant nor role",
            grant(
                |m| m.recipients = vec![pb::Recipient { recipient: None }],
                &id,
            ),
            Code::InvalidArgument,
            "recipients[0] must set participant or role",
        ),
        bad(
            "no categories",
            grant(|m| m.categories.clear(), &id),
            Code::InvalidArgument,
            "categories: name at least one category",
        ),
        bad(
            "unknown category",
            grant(|m| m.categories = vec![42], &id),
            Code::InvalidArgument,
            "unknown category 42",
        ),
        bad(
            "no purposes",
            grant(|m| m.purposes.clear(), &id),
            Code::InvalidArgument,
            "purposes: name at least one of:",
        ),
        bad(
            "unknown purpose",
            grant(|m| m.purposes = vec!["return".into(), BSN_LIKE.into()], &id),
            Code::InvalidArgument,
            "unknown purpose; use one of",
        )
        .never_echo(BSN_LIKE),
        bad(
            "unknown participant",
            grant(
                |m| m.recipients = vec![participant("gemeente-nergens")],
                &id,
            ),
            Code::InvalidArgument,
            "recipients[0].participant is not registered with this node",
        ),
        bad(
            "malformed participant id",
            grant(
                |m| m.recipients = vec![participant("Gemeente Utrecht")],
                &id,
            ),
            Code::InvalidArgument,
            "recipients[0].participant must be a participant id",
        ),
        bad(
            "unknown role",
            grant(
                |m| {
                    m.recipients = vec![pb::Recipient {
                        recipient: Some(pb::recipient::Recipient::Role(99)),
                    }]
                },
                &id,
            ),
            Code::InvalidArgument,
            "recipients[0].role: unknown role; use ROLE_MUNICIPALITY (1) to ROLE_PRIVACY_OFFICER (7)",
        ),
        bad(
            "a role that never receives case data",
            grant(|m| m.recipients = vec![role("privacy_officer")], &id),
            Code::InvalidArgument,
            "recipients[0].role: the node's policy releases no case data to role privacy_officer",
        ),
        bad(
            "a window wholly in the past",
            grant(
                |m| {
                    m.valid_from = Some(Timestamp {
                        seconds: 1_700_000_000,
                        nanos: 0,
                    });
                    m.valid_until = Some(Timestamp {
                        seconds: 1_700_086_400,
                        nanos: 0,
                    });
                },
                &id,
            ),
            Code::InvalidArgument,
            "valid_until is in the past",
        ),
        bad(
            "evidence_ref planting lines in the signed receipt",
            grant(
                |m| {
                    m.evidence_ref =
                        "DMS-1\ncategory medical\nstate active at 2030-01-01T00:00:00Z".into()
                },
                &id,
            ),
            Code::InvalidArgument,
            "evidence_ref must be a single line of printable text",
        ),
        bad(
            "evidence_ref with a terminal escape",
            grant(|m| m.evidence_ref = "DMS-1\u{1b}[2K".into(), &id),
            Code::InvalidArgument,
            "evidence_ref must be a single line of printable text",
        ),
        bad(
            "malformed case id",
            grant(|_| {}, "not-a-uuid"),
            Code::InvalidArgument,
            "case_id is malformed",
        ),
        bad(
            "unknown case",
            grant(|_| {}, UNKNOWN_ID),
            Code::NotFound,
            "no case with this case_id",
        ),
    ];
    for b in cases {
        check(&node, b).await;
    }
}

fn withdraw(consent_id: &str) -> Call {
    Call::Withdraw(pb::WithdrawConsentRequest {
        request_id: String::new(),
        consent_id: consent_id.into(),
        note: "withdrawn in conversation".into(),
    })
}

#[tokio::test]
async fn withdraw_consent_bad_input() {
    let (node, id, _) = node_with_case().await;
    let mut owner = node.client(GEMEENTE).await;
    let consent = grant_consent(&mut owner, &id).await;

    let cases = [
        bad(
            "malformed consent id",
            withdraw("not-a-uuid"),
            Code::InvalidArgument,
            "consent_id is malformed",
        ),
        bad(
            "empty consent id",
            withdraw(""),
            Code::InvalidArgument,
            "consent_id is required",
        ),
        bad(
            "a note of two lines",
            Call::Withdraw(pb::WithdrawConsentRequest {
                request_id: String::new(),
                consent_id: consent.clone(),
                note: "withdrawn\nstate active".into(),
            }),
            Code::InvalidArgument,
            "note must be a single line of printable text",
        ),
        bad(
            "unknown consent",
            withdraw(UNKNOWN_ID),
            Code::NotFound,
            "no consent with this consent_id",
        ),
        bad(
            "withdrawing another owner's consent",
            withdraw(&consent),
            Code::PermissionDenied,
            "only the case owner",
        )
        .by(NGO),
    ];
    for b in cases {
        check(&node, b).await;
    }

    // The first withdrawal works; the second is refused and changes nothing.
    let first = owner
        .consents
        .withdraw_consent(with_actor(pb::WithdrawConsentRequest {
            request_id: String::new(),
            consent_id: consent.clone(),
            note: String::new(),
        }))
        .await
        .expect("first withdrawal")
        .into_inner()
        .consent
        .unwrap();
    assert_eq!(first.state, pb::ConsentState::Withdrawn as i32);
    check(
        &node,
        bad(
            "withdrawing twice",
            withdraw(&consent),
            Code::FailedPrecondition,
            "this consent was already withdrawn",
        ),
    )
    .await;
}

async fn grant_consent(c: &mut Clients, case_id: &str) -> String {
    common::grant(
        c,
        case_id,
        vec![participant("dtv")],
        &[pb::Category::Perspective],
        &["return"],
    )
    .await
    .consent_id
}

#[tokio::test]
async fn bad_actor_metadata_is_refused() {
    let (node, id, _) = node_with_case().await;
    let mut c = node.client(GEMEENTE).await;
    let long = "a".repeat(500);
    let actors: [(&'static str, &[u8]); 5] = [
        ("500 characters", long.as_bytes()),
        ("129 characters", &long.as_bytes()[..129]),
        ("empty", b""),
        ("with a space", b"mw 0042"),
        ("non-ASCII bytes", b"mw-\xe9\xe9n"),
    ];
    for (what, actor) in actors {
        // Otherwise a good request: the owner reading its own case.
        let b = bad(
            what,
            get(case_id(&id), "case_consultation", vec![]),
            Code::InvalidArgument,
            "x-sluis-actor must be 1-128 printable ASCII characters",
        );
        check_with(&node, &mut c, b, Some(actor)).await;
    }
    // The longest accepted actor id works.
    c.cases
        .get_case(request(
            by_id(&id, "case_consultation"),
            Some(&long.as_bytes()[..128]),
        ))
        .await
        .expect("128 characters are accepted");
}

fn report(subject: pb::subject_access_report_request::Subject) -> Call {
    Call::Report(pb::SubjectAccessReportRequest {
        subject: Some(subject),
    })
}

/// A subject access report names its subject as registration does: a BSN
/// or V-number that could not have been registered is refused as invalid,
/// with the message registration gives, not answered "not found".
#[tokio::test]
async fn subject_access_report_bad_input() {
    use pb::subject_access_report_request::Subject;
    let (node, _, _) = node_with_case().await;
    let officer = "fg-utrecht";
    let cases = [
        bad(
            "BSN failing the 11-check",
            report(Subject::Bsn("123456789".into())),
            Code::InvalidArgument,
            "bsn must be 9 digits that pass the 11-check",
        )
        .by(officer)
        .never_echo("123456789"),
        bad(
            "V-number of 11 digits",
            report(Subject::VNumber("12345678901".into())),
            Code::InvalidArgument,
            "v_number must be 10 digits",
        )
        .by(officer)
        .never_echo("12345678901"),
        bad(
            "malformed case id",
            report(Subject::CaseId("not-a-uuid".into())),
            Code::InvalidArgument,
            "case_id is malformed",
        )
        .by(officer),
        // A well-formed BSN nobody registered: not found, as before.
        bad(
            "unregistered BSN",
            report(Subject::Bsn(BSN_LIKE.into())),
            Code::NotFound,
            "no case is registered for this subject",
        )
        .by(officer)
        .never_echo(BSN_LIKE),
        // Checked only for an officer: anyone else learns nothing.
        bad(
            "not an officer",
            report(Subject::Bsn("123456789".into())),
            Code::PermissionDenied,
            "only a privacy officer",
        ),
    ];
    for b in cases {
        check(&node, b).await;
    }
}

/// "Nothing changed" above rests on the node's fingerprint: it must move
/// with each kind of write a request makes, or those checks could not fail.
#[tokio::test]
async fn the_fingerprint_sees_every_kind_of_write() {
    let node = TestNode::start().await;
    let mut gemeente = node.client(GEMEENTE).await;
    let mut seen = vec![node.digest().await];
    let mut changed = async |what: &str| {
        let now = node.digest().await;
        assert!(!seen.contains(&now), "{what}: the fingerprint changed");
        seen.push(now);
    };

    // A case, its data, the owner's pseudonym and the subject index.
    let (case_id, _) = register(&mut gemeente).await;
    changed("register").await;
    // New data for one category: the case's version and that category.
    let moved = pb::CaseData {
        shelter: Some(pb::Shelter {
            location: "LVV West".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let update = pb::UpdateCaseRequest {
        case_id: case_id.clone(),
        data: Some(moved),
        request_id: String::new(),
        update_mask: None,
    };
    gemeente
        .cases
        .update_case(with_actor(update))
        .await
        .expect("update");
    changed("update").await;
    // A consent and its recipients.
    let consent = common::grant(
        &mut gemeente,
        &case_id,
        vec![participant(NGO)],
        &[pb::Category::Identity, pb::Category::Shelter],
        &["shelter"],
    )
    .await;
    changed("grant").await;
    // A pseudonym issued to another recipient with its access record.
    let mut ngo = node.client(NGO).await;
    ngo.cases
        .get_case(by_id(&case_id, "shelter"))
        .await
        .expect("read");
    changed("first read by the NGO").await;
    // An event appended to the consent.
    gemeente
        .consents
        .withdraw_consent(with_actor(pb::WithdrawConsentRequest {
            consent_id: consent.consent_id,
            note: String::new(),
            request_id: String::new(),
        }))
        .await
        .expect("withdraw");
    changed("withdraw").await;
}
