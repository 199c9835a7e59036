//! Fuzz targets for what a registered participant can send a node: the
//! bytes of every unary `sluis.v1` method (and the streaming
//! `QueryAccess`), through the node's public entry — real gRPC over mTLS —
//! into protobuf decoding, the conversions to domain types, validation,
//! page tokens and pseudonyms.
//!
//! Inputs are generated messages (every field from a pool of edge values,
//! near-valid identifiers, text carrying a marker) and byte-level edits of
//! valid encodings. The contract, for every answer:
//!
//! - a status the caller can act on: never `INTERNAL`, `UNKNOWN` or
//!   `UNAVAILABLE` for a request the node could read;
//! - `x-request-id` on every answer, and exactly one access record with
//!   that id in the log afterwards;
//! - no text the caller sent (the marker) in the message, nor in any
//!   access record;
//! - a page token or pseudonym opens only for the participant it was
//!   issued to; any other answers as one that never existed.
//!
//! What a target found is a named regression test below.

mod common;
mod fuzz;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use common::{GEMEENTE, TestNode, with_actor};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use prost::Message;
use prost::bytes::{Buf, BufMut};
use sluis::rpc::REQUEST_ID_HEADER;
use sluis::rpc::proto::v1 as pb;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

/// Planted in every generated text field; no answer and no record may
/// carry it.
const MARKER: &str = "Zq9x";
const DTV: &str = "dtv";
const OFFICER: &str = "fg-utrecht";

// ---- a codec that sends and receives bytes as they are -----------------

#[derive(Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n).to_vec()))
    }
}

// ---- the methods ----------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    RegisterCase,
    UpdateCase,
    GetCase,
    FindCases,
    GrantConsent,
    WithdrawConsent,
    ListConsents,
    GetConsentReceipt,
    QueryAccess,
    SubjectAccessReport,
    GetCheckpoint,
    GetInclusionProof,
    GetConsistencyProof,
    ListStatisticsReleases,
}

impl Method {
    fn path(self) -> &'static str {
        match self {
            Method::RegisterCase => "/sluis.v1.CaseService/RegisterCase",
            Method::UpdateCase => "/sluis.v1.CaseService/UpdateCase",
            Method::GetCase => "/sluis.v1.CaseService/GetCase",
            Method::FindCases => "/sluis.v1.CaseService/FindCases",
            Method::GrantConsent => "/sluis.v1.ConsentService/GrantConsent",
            Method::WithdrawConsent => "/sluis.v1.ConsentService/WithdrawConsent",
            Method::ListConsents => "/sluis.v1.ConsentService/ListConsents",
            Method::GetConsentReceipt => "/sluis.v1.ConsentService/GetConsentReceipt",
            Method::QueryAccess => "/sluis.v1.AuditService/QueryAccess",
            Method::SubjectAccessReport => "/sluis.v1.AuditService/SubjectAccessReport",
            Method::GetCheckpoint => "/sluis.v1.AuditService/GetCheckpoint",
            Method::GetInclusionProof => "/sluis.v1.AuditService/GetInclusionProof",
            Method::GetConsistencyProof => "/sluis.v1.AuditService/GetConsistencyProof",
            Method::ListStatisticsReleases => "/sluis.v1.AuditService/ListStatisticsReleases",
        }
    }
}

/// One generated call: who sends which bytes to which method, and what the
/// answer must be beyond the common contract.
#[derive(Clone, Debug)]
struct Call {
    who: &'static str,
    method: Method,
    bytes: Vec<u8>,
    expect: Expect,
}

#[derive(Clone, Debug, PartialEq)]
enum Expect {
    /// The common contract only.
    Any,
    /// A page token or pseudonym the caller was not issued: refused as
    /// malformed or as not found, never answered.
    NotOpened,
}

/// What the setup made, that generated calls refer to.
#[derive(Clone, Debug)]
struct Known {
    case_id: String,
    consent_id: String,
    /// The owner's pseudonym of the case, and DT&V's.
    owner_pseudonym: String,
    dtv_pseudonym: String,
    /// A page token issued to the owner.
    owner_token: String,
}

// ---- generated field values -----------------------------------------------

/// Text as a back-end might send it by mistake or on purpose: empty, long,
/// control characters, other scripts, near-valid values — most with the
/// marker inside.
fn text() -> BoxedStrategy<String> {
    prop_oneof![
        2 => Just(String::new()),
        6 => "[ -~]{0,20}".prop_map(|s| format!("{s}{MARKER}")),
        2 => "\\PC{0,12}".prop_map(|s| format!("{MARKER}{s}")),
        1 => "[\\x00-\\x1f\\x7f]{1,4}".prop_map(|s| format!("{MARKER}{s}")),
        1 => (1usize..3000).prop_map(|n| format!("{MARKER}{}", "a".repeat(n))),
        1 => Just(format!("{MARKER}\n\u{2014} forged 1234\n")),
    ]
    .boxed()
}

/// Values of a field with a meaning: valid ones (so validation passes and
/// the request goes deeper) and broken ones.
fn field(valid: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        8 => proptest::sample::select(valid).prop_map(String::from),
        1 => text(),
    ]
    .boxed()
}

const PURPOSES: &[&str] = &["return", "case_consultation", "legalisation", "monitoring"];
const DATES: &[&str] = &[
    "2026-01-01",
    "1990-02-28",
    "2024-02-29",
    "2023-02-29",
    "9999-12-31",
    "0000-01-01",
];
const V_NUMBERS: &[&str] = &["1234567890", "0000000000", "123456789", "12345678901"];
const BSNS: &[&str] = &["111222333", "123456782", "123456789", "000000000", ""];
const PARTICIPANTS: &[&str] = &[
    "dtv",
    "ngo-vluchtelingenwerk",
    "unknown-party",
    "a.b_c-d",
    "",
];

/// An enum's code: mostly the known ones (0 to `last`) and just past them,
/// sometimes any number.
fn enum_code(last: i32) -> BoxedStrategy<i32> {
    prop_oneof![4 => 0i32..=last + 1, 1 => any::<i32>()].boxed()
}

fn category() -> BoxedStrategy<i32> {
    prop_oneof![4 => 0i32..=9, 1 => any::<i32>()].boxed()
}

fn categories() -> BoxedStrategy<Vec<i32>> {
    proptest::collection::vec(category(), 0..5).boxed()
}

fn timestamp() -> BoxedStrategy<Option<prost_types::Timestamp>> {
    proptest::option::of(
        (
            prop_oneof![
                Just(0i64),
                Just(1_700_000_000i64),
                Just(4_102_444_800i64),
                Just(253_402_300_800i64),
                Just(-1i64),
                any::<i64>()
            ],
            prop_oneof![
                Just(0i32),
                Just(999_999_999),
                Just(1_000_000_000),
                any::<i32>()
            ],
        )
            .prop_map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos }),
    )
    .boxed()
}

fn identity() -> BoxedStrategy<pb::Identity> {
    (
        field(&["Test Persoon"]),
        field(DATES),
        field(&["ERI", "SDN", "XXX", "eri"]),
        field(V_NUMBERS),
        field(BSNS),
    )
        .prop_map(
            |(name, date_of_birth, nationality, v_number, bsn)| pb::Identity {
                name,
                date_of_birth,
                nationality,
                v_number,
                bsn,
            },
        )
        .boxed()
}

fn case_data() -> BoxedStrategy<pb::CaseData> {
    (
        proptest::option::of(identity()),
        proptest::option::of((field(&["pending"]), field(DATES), any::<bool>()).prop_map(
            |(status, last_decision_date, pending)| pb::ResidenceProcedure {
                status,
                last_decision_date,
                pending,
            },
        )),
        proptest::option::of(
            (field(&["LVV Oost"]), field(DATES), field(DATES), text()).prop_map(
                |(location, since, until, notes)| pb::Shelter {
                    location,
                    since,
                    until,
                    notes,
                },
            ),
        ),
        proptest::option::of(
            (
                prop_oneof![0i32..6, any::<i32>()],
                proptest::collection::vec(
                    (text(), field(DATES), any::<bool>()).prop_map(
                        |(description, date, reached)| pb::Milestone {
                            description,
                            date,
                            reached,
                        },
                    ),
                    0..3,
                ),
                prop_oneof![0i32..6, any::<i32>()],
                field(DATES),
            )
                .prop_map(|(kind, milestones, intake_scenario, intake_date)| {
                    pb::Perspective {
                        kind,
                        milestones,
                        intake_scenario,
                        intake_date,
                    }
                }),
        ),
        proptest::option::of(text().prop_map(|notes| pb::Medical { notes })),
        proptest::option::of(
            (
                any::<bool>(),
                prop_oneof![0i32..6, any::<i32>()],
                field(DATES),
                prop_oneof![0i32..8, any::<i32>()],
            )
                .prop_map(|(reached, kind, date, outcome_kind)| pb::Outcome {
                    reached,
                    kind,
                    date,
                    outcome_kind,
                }),
        ),
    )
        .prop_map(
            |(identity, residence_procedure, shelter, perspective, medical, outcome)| {
                pb::CaseData {
                    identity,
                    residence_procedure,
                    shelter,
                    guidance: None,
                    perspective,
                    medical,
                    safety: None,
                    outcome,
                }
            },
        )
        .boxed()
}

fn recipients() -> BoxedStrategy<Vec<pb::Recipient>> {
    proptest::collection::vec(
        prop_oneof![
            field(PARTICIPANTS).prop_map(|p| Some(pb::recipient::Recipient::Participant(p))),
            enum_code(7).prop_map(|r| Some(pb::recipient::Recipient::Role(r))),
            Just(None),
        ]
        .prop_map(|recipient| pb::Recipient { recipient }),
        0..4,
    )
    .boxed()
}

/// An id: the real one, a well-formed unknown one, or text.
fn id(real: String) -> BoxedStrategy<String> {
    prop_oneof![
        3 => Just(real.clone()),
        1 => Just("0190c4e2-7b1a-4c3e-9f00-1a2b3c4d5e6f".to_string()),
        1 => fuzz::mutated_text(real),
        1 => text(),
    ]
    .boxed()
}

fn size() -> BoxedStrategy<u64> {
    prop_oneof![
        0u64..8,
        Just(u64::MAX),
        Just(i64::MAX as u64),
        Just(1u64 << 63),
        any::<u64>()
    ]
    .boxed()
}

/// Generated messages of every method, encoded.
fn message(k: &Known) -> BoxedStrategy<Call> {
    let k = k.clone();
    let owner = |method: Method, bytes: Vec<u8>| Call {
        who: GEMEENTE,
        method,
        bytes,
        expect: Expect::Any,
    };
    let officer = |method: Method, bytes: Vec<u8>| Call {
        who: OFFICER,
        method,
        bytes,
        expect: Expect::Any,
    };
    prop_oneof![
        case_data().prop_map(move |d| owner(
            Method::RegisterCase,
            pb::RegisterCaseRequest {
                request_id: String::new(),
                data: Some(d)
            }
            .encode_to_vec()
        )),
        (id(k.case_id.clone()), proptest::option::of(case_data())).prop_map(
            move |(case_id, data)| owner(
                Method::UpdateCase,
                pb::UpdateCaseRequest {
                    request_id: String::new(),
                    case_id,
                    data,
                    update_mask: None,
                }
                .encode_to_vec()
            )
        ),
        (
            prop_oneof![
                id(k.case_id.clone()).prop_map(|c| Some(pb::get_case_request::Subject::CaseId(c))),
                id(k.dtv_pseudonym.clone())
                    .prop_map(|p| Some(pb::get_case_request::Subject::SubjectPseudonym(p))),
                Just(None),
            ],
            field(PURPOSES),
            categories(),
            proptest::sample::select(vec![DTV, GEMEENTE, "ngo-vluchtelingenwerk"]),
        )
            .prop_map(|(subject, purpose, categories, who)| Call {
                who,
                method: Method::GetCase,
                bytes: pb::GetCaseRequest {
                    subject,
                    purpose,
                    categories,
                    emergency_justification: String::new(),
                }
                .encode_to_vec(),
                expect: Expect::Any,
            }),
        (
            prop_oneof![0i32..3, any::<i32>()],
            field(PURPOSES),
            prop_oneof![0i32..3, Just(-1), any::<i32>()],
            prop_oneof![
                Just(String::new()),
                Just(k.owner_token.clone()),
                fuzz::mutated_text(k.owner_token.clone()),
                "[A-Za-z0-9_-]{0,80}".boxed(),
                text(),
            ],
            proptest::sample::select(vec![GEMEENTE, DTV]),
        )
            .prop_map({
                let token = k.owner_token.clone();
                move |(scope, purpose, page_size, page_token, who)| Call {
                    who,
                    method: Method::FindCases,
                    expect: if page_token.is_empty() || (page_token == token && who == GEMEENTE) {
                        Expect::Any
                    } else {
                        Expect::NotOpened
                    },
                    bytes: pb::FindCasesRequest {
                        scope,
                        purpose,
                        page_size,
                        page_token,
                    }
                    .encode_to_vec(),
                }
            }),
        (
            id(k.case_id.clone()),
            recipients(),
            categories(),
            proptest::collection::vec(field(PURPOSES), 0..3),
            timestamp(),
            timestamp(),
            field(&["DMS-2026-0042"]),
        )
            .prop_map(
                move |(
                    case_id,
                    recipients,
                    categories,
                    purposes,
                    valid_from,
                    valid_until,
                    evidence_ref,
                )| owner(
                    Method::GrantConsent,
                    pb::GrantConsentRequest {
                        request_id: String::new(),
                        case_id,
                        recipients,
                        categories,
                        purposes,
                        valid_from,
                        valid_until,
                        evidence_ref,
                    }
                    .encode_to_vec()
                )
            ),
        (id(k.consent_id.clone()), text()).prop_map(move |(consent_id, note)| owner(
            Method::WithdrawConsent,
            pb::WithdrawConsentRequest {
                request_id: String::new(),
                consent_id,
                note
            }
            .encode_to_vec()
        )),
        id(k.case_id.clone()).prop_map(move |case_id| owner(
            Method::ListConsents,
            pb::ListConsentsRequest { case_id }.encode_to_vec()
        )),
        id(k.consent_id.clone()).prop_map(move |consent_id| owner(
            Method::GetConsentReceipt,
            pb::GetConsentReceiptRequest { consent_id }.encode_to_vec()
        )),
        (
            timestamp(),
            timestamp(),
            (
                field(&["dtv", "-"]),
                enum_code(7),
                field(&["GetCase", "tls.handshake"])
            ),
            (field(PURPOSES), enum_code(7), id(k.case_id.clone())),
            field(&["ps1.aaaaaaaaaaaaaaaaaaaaaaaaaaa"]),
            size(),
            prop_oneof![0i32..3, Just(100_000i32), any::<i32>()],
        )
            .prop_map(
                move |(
                    since,
                    until,
                    (caller, role, method),
                    (purpose, decision, case_id),
                    subject,
                    start_index,
                    limit,
                )| officer(
                    Method::QueryAccess,
                    pb::QueryAccessRequest {
                        since,
                        until,
                        caller,
                        role,
                        method,
                        purpose,
                        decision,
                        case_id,
                        subject,
                        start_index,
                        limit,
                        access_record_id: String::new(),
                    }
                    .encode_to_vec()
                )
            ),
        // A filter alone, so the query runs and its record is written.
        (id(k.case_id.clone()), field(&["dtv", "GetCase"])).prop_map(move |(case_id, caller)| {
            officer(
                Method::QueryAccess,
                pb::QueryAccessRequest {
                    case_id,
                    caller,
                    limit: 10,
                    ..Default::default()
                }
                .encode_to_vec(),
            )
        }),
        // One entry by its request id (well-formed or not, known or not).
        id(k.case_id.clone()).prop_map(move |access_record_id| {
            officer(
                Method::QueryAccess,
                pb::QueryAccessRequest {
                    access_record_id,
                    ..Default::default()
                }
                .encode_to_vec(),
            )
        }),
        prop_oneof![
            id(k.case_id.clone())
                .prop_map(|c| Some(pb::subject_access_report_request::Subject::CaseId(c))),
            field(V_NUMBERS)
                .prop_map(|v| Some(pb::subject_access_report_request::Subject::VNumber(v))),
            field(BSNS).prop_map(|b| Some(pb::subject_access_report_request::Subject::Bsn(b))),
            Just(None),
        ]
        .prop_map(move |subject| officer(
            Method::SubjectAccessReport,
            pb::SubjectAccessReportRequest { subject }.encode_to_vec()
        )),
        size().prop_map(move |size| officer(
            Method::GetCheckpoint,
            pb::GetCheckpointRequest { size }.encode_to_vec()
        )),
        (size(), size()).prop_map(move |(index, tree_size)| officer(
            Method::GetInclusionProof,
            pb::GetInclusionProofRequest {
                entry: Some(pb::get_inclusion_proof_request::Entry::Index(index)),
                tree_size,
            }
            .encode_to_vec()
        )),
        (size(), size()).prop_map(move |(old_size, new_size)| officer(
            Method::GetConsistencyProof,
            pb::GetConsistencyProofRequest { old_size, new_size }.encode_to_vec()
        )),
        // The statistics releases: a quarter as "2025Q3" or near it, any
        // page size, page tokens never issued (refused unopened), by the
        // officer and by a caller who is none.
        (
            prop_oneof![
                field(&["2025Q1", "2025Q5", "2018Q4", "25Q1", "2025q1", "2025Q", ""]),
                text()
            ],
            any::<bool>(),
            prop_oneof![0i32..3, Just(-1), Just(101), any::<i32>()],
            prop_oneof![
                Just(String::new()),
                fuzz::mutated_text(k.owner_token.clone()),
                "[A-Za-z0-9_-]{0,80}".boxed(),
                text(),
            ],
            proptest::sample::select(vec![OFFICER, DTV]),
        )
            .prop_map(
                move |(quarter, include_own, page_size, page_token, who)| Call {
                    who,
                    method: Method::ListStatisticsReleases,
                    // Only an officer's token is looked at; anyone else is
                    // refused first.
                    expect: if page_token.is_empty() || who != OFFICER {
                        Expect::Any
                    } else {
                        Expect::NotOpened
                    },
                    bytes: pb::ListStatisticsReleasesRequest {
                        quarter,
                        include_own,
                        page_size,
                        page_token,
                    }
                    .encode_to_vec(),
                }
            ),
        // A pseudonym issued to the owner, used by DT&V: as if none existed.
        (
            prop_oneof![
                Just(k.owner_pseudonym.clone()),
                fuzz::mutated_text(k.dtv_pseudonym.clone())
            ],
            field(PURPOSES),
        )
            .prop_map({
                let dtv = k.dtv_pseudonym.clone();
                move |(p, purpose)| Call {
                    who: DTV,
                    method: Method::GetCase,
                    expect: if p == dtv {
                        Expect::Any
                    } else {
                        Expect::NotOpened
                    },
                    bytes: pb::GetCaseRequest {
                        subject: Some(pb::get_case_request::Subject::SubjectPseudonym(p)),
                        purpose,
                        categories: vec![],
                        emergency_justification: String::new(),
                    }
                    .encode_to_vec(),
                }
            }),
    ]
    .boxed()
}

/// A generated call with its bytes edited.
fn edited(k: &Known) -> BoxedStrategy<Call> {
    message(k)
        .prop_flat_map(|call| {
            fuzz::mutated(call.bytes.clone()).prop_map(move |bytes| Call {
                bytes,
                // An edit may turn anything into anything.
                expect: Expect::Any,
                ..call.clone()
            })
        })
        .boxed()
}

// ---- the node and the checks ----------------------------------------------

struct Harness {
    node: TestNode,
    channels: HashMap<&'static str, Channel>,
    known: Known,
    /// Request id → method of every answered call.
    answered: Mutex<Vec<(String, Method)>>,
    /// How many answers of each (method, code): the inputs reach past
    /// validation, not only into it.
    codes: Mutex<std::collections::BTreeMap<(String, String), u64>>,
}

impl Harness {
    async fn start() -> Harness {
        let node = TestNode::start().await;
        let mut channels = HashMap::new();
        for who in [GEMEENTE, DTV, OFFICER, "ngo-vluchtelingenwerk"] {
            let c = common::channel_as(node.node.local_addr, node.dir.path(), who)
                .await
                .expect("connect");
            channels.insert(who, c);
        }
        let mut owner = node.client(GEMEENTE).await;
        let (case_id, owner_pseudonym) = common::register(&mut owner).await;
        // A second case, so a page of one has a next page.
        common::register(&mut owner).await;
        let consent_id = common::grant_to_role(&mut owner, &case_id, DTV).await;
        let mut dtv = node.client(DTV).await;
        let dtv_pseudonym = dtv
            .cases
            .get_case(pb::GetCaseRequest {
                subject: Some(pb::get_case_request::Subject::CaseId(case_id.clone())),
                purpose: "return".into(),
                categories: vec![],
                emergency_justification: String::new(),
            })
            .await
            .expect("DT&V reads")
            .into_inner()
            .subject_pseudonym;
        let owner_token = owner
            .cases
            .find_cases(with_actor(pb::FindCasesRequest {
                scope: pb::find_cases_request::Scope::Own as i32,
                purpose: String::new(),
                page_size: 1,
                page_token: String::new(),
            }))
            .await
            .expect("find")
            .into_inner()
            .next_page_token;
        assert!(
            !owner_token.is_empty(),
            "a page of one of two has a next page"
        );
        Harness {
            node,
            channels,
            known: Known {
                case_id,
                consent_id,
                owner_pseudonym,
                dtv_pseudonym,
                owner_token,
            },
            answered: Mutex::new(Vec::new()),
            codes: Mutex::default(),
        }
    }

    /// Sends the call's bytes as they are; the answer's status (OK or not)
    /// and its metadata.
    async fn send(&self, call: &Call) -> Result<Status, TestCaseError> {
        let mut grpc = tonic::client::Grpc::new(self.channels[call.who].clone());
        grpc.ready()
            .await
            .map_err(|e| TestCaseError::fail(format!("channel not ready: {e}")))?;
        let mut req = Request::new(call.bytes.clone());
        req.metadata_mut()
            .insert("x-sluis-actor", common::ACTOR.parse().unwrap());
        let path = http::uri::PathAndQuery::from_static(call.method.path());
        let answer = if call.method == Method::QueryAccess {
            match grpc.server_streaming(req, path, Raw).await {
                Ok(r) => {
                    let meta = r.metadata().clone();
                    let mut stream = r.into_inner();
                    let mut end = Status::ok("");
                    while let Some(item) = stream.next().await {
                        if let Err(s) = item {
                            end = s;
                            break;
                        }
                    }
                    let mut s = Status::new(end.code(), end.message());
                    *s.metadata_mut() = meta;
                    s
                }
                Err(s) => s,
            }
        } else {
            match grpc.unary(req, path, Raw).await {
                Ok(r) => {
                    let mut s = Status::ok("");
                    *s.metadata_mut() = r.metadata().clone();
                    s
                }
                Err(s) => s,
            }
        };
        Ok(answer)
    }

    async fn check(&self, call: Call) -> Result<(), TestCaseError> {
        let started = std::time::Instant::now();
        let s = tokio::time::timeout(Duration::from_secs(20), self.send(&call))
            .await
            .map_err(|_| TestCaseError::fail("no answer in 20 s"))??;
        let took = started.elapsed();
        prop_assert!(took < Duration::from_secs(10), "answered after {:?}", took);
        prop_assert!(
            !matches!(
                s.code(),
                Code::Internal
                    | Code::Unknown
                    | Code::Unavailable
                    | Code::Unimplemented
                    | Code::DataLoss
            ),
            "{:?} answered {:?}: {}",
            call.method,
            s.code(),
            s.message()
        );
        let id = s
            .metadata()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        prop_assert!(
            id.is_some(),
            "{:?} answered {:?} without x-request-id",
            call.method,
            s.code()
        );
        prop_assert!(
            !s.message().contains(MARKER),
            "{:?} echoes the request in its message: {}",
            call.method,
            s.message()
        );
        if call.expect == Expect::NotOpened {
            prop_assert!(
                matches!(s.code(), Code::InvalidArgument | Code::NotFound),
                "{:?} as {} with a token or pseudonym issued to another: {:?} {}",
                call.method,
                call.who,
                s.code(),
                s.message()
            );
        }
        self.answered
            .lock()
            .unwrap()
            .push((id.unwrap_or_default(), call.method));
        *self
            .codes
            .lock()
            .unwrap()
            .entry((format!("{:?}", call.method), format!("{:?}", s.code())))
            .or_default() += 1;
        Ok(())
    }

    /// After the run: one record per answered call, and no caller text in
    /// any record.
    async fn check_log(&self) {
        let log = self.node.log().await;
        let mut count: HashMap<&str, usize> = HashMap::new();
        for row in &log {
            *count.entry(row.request_id.as_str()).or_default() += 1;
            let record = sluis::tlog::AccessRecord::decode(&row.record).expect("a record");
            let fields = [
                ("detail", Some(record.detail.as_str())),
                ("case_id", record.case_id.as_deref()),
                ("subject", record.subject.as_deref()),
                ("purpose", record.purpose.as_deref()),
                ("status", Some(record.status.as_str())),
            ];
            for (field, value) in fields {
                if value.is_some_and(|v| v.contains(MARKER)) {
                    panic!(
                        "the record of {} ({}) carries caller text in {field}: {value:?}",
                        record.method, record.request_id
                    );
                }
            }
            for r in record.rules.iter().chain(&record.consents) {
                assert!(
                    !r.contains(MARKER),
                    "caller text in {}'s rules or consents",
                    record.method
                );
            }
        }
        for (id, method) in self.answered.lock().unwrap().iter() {
            assert_eq!(
                count.get(id.as_str()).copied().unwrap_or(0),
                1,
                "{method:?} answered with request id {id}: records with that id"
            );
        }
        let answered = self.answered.lock().unwrap().len();
        eprintln!(
            "{answered} answers, {} records; answers by method and code:",
            log.len()
        );
        for ((method, code), n) in self.codes.lock().unwrap().iter() {
            eprintln!("  {method:<20} {code:<16} {n}");
        }
    }
}

use tokio_stream::StreamExt;

fn run_target(name: &str, cases: u32, strategy: impl Fn(&Known) -> BoxedStrategy<Call>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let h = rt.block_on(Harness::start());
    let s = strategy(&h.known);
    fuzz::run(name, file!(), cases, s, |call| rt.block_on(h.check(call)));
    rt.block_on(h.check_log());
    let Harness { node, .. } = h;
    rt.block_on(node.node.shutdown()).unwrap();
}

/// Generated messages of every method, valid and not.
#[test]
fn rpc_messages_get_a_status_a_request_id_and_one_record() {
    run_target("rpc-messages", 300, message);
}

/// Byte-level edits of generated messages.
#[test]
fn rpc_message_bytes_get_a_status_a_request_id_and_one_record() {
    run_target("rpc-bytes", 200, edited);
}

/// Suspected from reading `oversight.rs`, confirmed here, and generated
/// by `rpc-messages` since: an officer's `QueryAccess` filter `case_id`
/// goes into the permanent record as sent, so a name typed into it is in
/// the log for good. No filter is validated: on PostgreSQL a NUL in one
/// fails the query (INTERNAL).
#[test]
fn a_query_filter_is_not_written_into_the_log_as_sent() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let node = TestNode::start().await;
        let mut officer = node.client(OFFICER).await;
        let filter = format!("Jan Jansen {MARKER}");
        let r = officer
            .audit
            .query_access(with_actor(pb::QueryAccessRequest {
                case_id: filter.clone(),
                ..Default::default()
            }))
            .await;
        let code = r.as_ref().map(|_| Code::Ok).unwrap_or_else(|s| s.code());
        let leaked: Vec<_> = node
            .log()
            .await
            .into_iter()
            .filter(|row| row.case_id.as_deref().is_some_and(|c| c.contains(MARKER)))
            .collect();
        assert!(
            leaked.is_empty(),
            "QueryAccess answered {code:?} and its record holds the filter as sent: {:?}",
            leaked[0].case_id
        );
        assert_eq!(code, Code::InvalidArgument, "a case id that is not one");
        // Found by `rpc-messages` in the PostgreSQL pass: a NUL in another
        // filter (here `caller`) fails the query itself, answered INTERNAL.
        let r = officer
            .audit
            .query_access(with_actor(pb::QueryAccessRequest {
                caller: format!("{MARKER}\u{0}"),
                ..Default::default()
            }))
            .await;
        let code = r.as_ref().map(|_| Code::Ok).unwrap_or_else(|s| s.code());
        assert_eq!(code, Code::InvalidArgument, "a caller filter with a NUL");
    });
}

/// Found by `rpc-messages` in the PostgreSQL pass: the same unvalidated
/// `case_id` filter holding a NUL character cannot be stored in a
/// PostgreSQL text column, so the group commit's transaction fails, and
/// every request batched with it is answered UNAVAILABLE, unrecorded. Here
/// 199 of 200 concurrent queries failed for the one with the NUL. On
/// SQLite the NUL is stored (and the filter is in the log, as above).
#[test]
fn one_refused_record_does_not_fail_the_requests_batched_with_it() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let node = TestNode::start().await;
        let officer = node.client(OFFICER).await;
        let mut tasks = Vec::new();
        for i in 0..200 {
            let mut o = officer.clone();
            tasks.push(tokio::spawn(async move {
                let case_id = if i == 100 {
                    "a\u{0}b".to_string()
                } else {
                    String::new()
                };
                let r = o
                    .audit
                    .query_access(with_actor(pb::QueryAccessRequest {
                        case_id,
                        limit: 1,
                        ..Default::default()
                    }))
                    .await;
                (i, r.map(|_| ()).map_err(|s| s.code()))
            }));
        }
        let mut failed = Vec::new();
        for t in tasks {
            let (i, r) = t.await.unwrap();
            match r {
                Err(code) if i == 100 => assert_eq!(code, Code::InvalidArgument, "the NUL filter"),
                Ok(()) if i == 100 => panic!("a case_id filter with a NUL is not a case id"),
                Err(code) => failed.push((i, code)),
                Ok(()) => {}
            }
        }
        assert!(
            failed.is_empty(),
            "{} requests failed with the one: {:?}",
            failed.len(),
            &failed[..failed.len().min(5)]
        );
    });
}
