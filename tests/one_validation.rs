//! One validation per field: every RPC and every `sluis audit` command that
//! takes a field checks it with the same function (`gateway::validate`) and
//! says the same thing about it, naming the field as that entry point
//! spells it. A typo is `INVALID_ARGUMENT` everywhere — never an empty
//! answer or `NOT_FOUND` that reads as "no data".
//!
//! One table per field: its bad values, the message each must get, and
//! every entry point that takes the field.

mod common;

use std::process::Command;

use common::*;
use prost_types::Timestamp;
use sluis::rpc::proto::v1 as pb;
use tokio_stream::StreamExt;
use tonic::{Code, Status};
use tonic_types::StatusExt;

const OFFICER: &str = "fg-utrecht";
const UUID_HINT: &str =
    "is malformed: expected a lower-case UUID like 0190c4e2-7b1a-4c3e-9f00-1a2b3c4d5e6f";

/// A request to one entry point, carrying the bad value.
enum Call {
    Get(pb::GetCaseRequest),
    Update(pb::UpdateCaseRequest),
    Register(pb::RegisterCaseRequest),
    Find(pb::FindCasesRequest),
    Grant(pb::GrantConsentRequest),
    Withdraw(pb::WithdrawConsentRequest),
    List(pb::ListConsentsRequest),
    Receipt(pb::GetConsentReceiptRequest),
    Report(pb::SubjectAccessReportRequest),
    Query(pb::QueryAccessRequest),
    Prove(pb::GetInclusionProofRequest),
    /// `sluis audit …` with these arguments.
    Cli(Vec<String>),
}

/// An entry point: its name, the field's spelling there, and the request
/// it makes of a bad value.
struct Entry {
    name: &'static str,
    field: &'static str,
    /// The field the status's BadRequest names: `field` unless the check
    /// is of two fields and blames the other.
    violated: &'static str,
    call: Box<dyn Fn(&str) -> Call>,
}

fn entry(name: &'static str, field: &'static str, call: impl Fn(&str) -> Call + 'static) -> Entry {
    Entry {
        name,
        field,
        violated: field,
        call: Box::new(call),
    }
}

impl Entry {
    fn blaming(self, violated: &'static str) -> Entry {
        Entry { violated, ..self }
    }
}

/// A field: its bad values, the message (given the field's spelling), and
/// its entry points.
struct Field {
    name: &'static str,
    bad: Vec<String>,
    message: fn(&str) -> String,
    entries: Vec<Entry>,
}

struct Fixture {
    node: TestNode,
    case_id: String,
}

/// Who sends a call: the case owner, except on the officer's service.
fn caller(call: &Call) -> &'static str {
    match call {
        Call::Report(_) | Call::Query(_) | Call::Prove(_) => OFFICER,
        Call::Find(_) => "dtv",
        _ => GEMEENTE,
    }
}

/// Sends a call that must be refused; its status.
async fn refused(f: &Fixture, call: Call) -> Status {
    let mut c = f.node.client(caller(&call)).await;
    let r = match call {
        Call::Get(m) => c.cases.get_case(with_actor(m)).await.map(drop),
        Call::Update(m) => c.cases.update_case(with_actor(m)).await.map(drop),
        Call::Register(m) => c.cases.register_case(with_actor(m)).await.map(drop),
        Call::Find(m) => c.cases.find_cases(with_actor(m)).await.map(drop),
        Call::Grant(m) => c.consents.grant_consent(with_actor(m)).await.map(drop),
        Call::Withdraw(m) => c.consents.withdraw_consent(with_actor(m)).await.map(drop),
        Call::List(m) => c.consents.list_consents(with_actor(m)).await.map(drop),
        Call::Receipt(m) => c
            .consents
            .get_consent_receipt(with_actor(m))
            .await
            .map(drop),
        Call::Report(m) => c.audit.subject_access_report(m).await.map(drop),
        Call::Query(m) => match c.audit.query_access(m).await {
            // A refusal may also come as the stream's first item.
            Ok(r) => match r.into_inner().next().await {
                Some(Err(e)) => Err(e),
                _ => Ok(()),
            },
            Err(e) => Err(e),
        },
        Call::Prove(m) => c.audit.get_inclusion_proof(m).await.map(drop),
        Call::Cli(_) => unreachable!("the command line is run by `cli_refused`"),
    };
    r.expect_err("must be refused")
}

/// Runs `sluis audit …` on the node's folder; its error message.
fn cli_refused(f: &Fixture, args: &[String]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sluis"))
        .arg("audit")
        .args(args)
        .arg("--config")
        .arg(f.node.config_path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{args:?} must fail: {stderr}");
    stderr
}

fn at(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
}

fn grant(case_id: &str, edit: impl FnOnce(&mut pb::GrantConsentRequest)) -> Call {
    let mut m = consent_request(case_id);
    edit(&mut m);
    Call::Grant(m)
}

fn query(edit: impl FnOnce(&mut pb::QueryAccessRequest)) -> Call {
    let mut m = pb::QueryAccessRequest::default();
    edit(&mut m);
    Call::Query(m)
}

fn cli(args: &[&str]) -> Call {
    Call::Cli(args.iter().map(|s| s.to_string()).collect())
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn fields(case_id: &str) -> Vec<Field> {
    let id = case_id.to_string();
    let (i1, i2, i3, i4) = (id.clone(), id.clone(), id.clone(), id.clone());
    vec![
        Field {
            name: "case id",
            bad: strings(&[
                "not-a-uuid",
                "0190C4E2-7B1A-4C3E-9F00-1A2B3C4D5E6F",
                "0190c4e27b1a4c3e9f001a2b3c4d5e6f",
            ]),
            message: |f| format!("{f} {UUID_HINT}"),
            entries: vec![
                entry("GetCase", "case_id", |v| Call::Get(by_id(v, "return"))),
                entry("UpdateCase", "case_id", |v| {
                    Call::Update(pb::UpdateCaseRequest {
                        request_id: String::new(),
                        case_id: v.into(),
                        data: None,
                        update_mask: None,
                    })
                }),
                entry("GrantConsent", "case_id", |v| grant(v, |_| {})),
                entry("ListConsents", "case_id", |v| {
                    Call::List(pb::ListConsentsRequest { case_id: v.into() })
                }),
                entry("SubjectAccessReport", "case_id", |v| {
                    Call::Report(pb::SubjectAccessReportRequest {
                        subject: Some(pb::subject_access_report_request::Subject::CaseId(v.into())),
                    })
                }),
                entry("QueryAccess", "case_id", |v| {
                    query(|m| m.case_id = v.into())
                }),
                entry("sluis audit report", "--case", |v| {
                    cli(&["report", "--case", v])
                }),
            ],
        },
        Field {
            name: "consent id",
            bad: strings(&["consent-1", "0190C4E2-7B1A-4C3E-9F00-1A2B3C4D5E6F"]),
            message: |f| format!("{f} {UUID_HINT}"),
            entries: vec![
                entry("WithdrawConsent", "consent_id", |v| {
                    Call::Withdraw(pb::WithdrawConsentRequest {
                        request_id: String::new(),
                        consent_id: v.into(),
                        note: String::new(),
                    })
                }),
                entry("GetConsentReceipt", "consent_id", |v| {
                    Call::Receipt(pb::GetConsentReceiptRequest {
                        consent_id: v.into(),
                    })
                }),
            ],
        },
        Field {
            name: "request id",
            bad: strings(&["req-1", "0190C4E2-7B1A-4C3E-9F00-1A2B3C4D5E6F"]),
            message: |f| format!("{f} {UUID_HINT}"),
            entries: vec![
                entry("GetInclusionProof", "access_record_id", |v| {
                    Call::Prove(pb::GetInclusionProofRequest {
                        entry: Some(pb::get_inclusion_proof_request::Entry::AccessRecordId(
                            v.into(),
                        )),
                        tree_size: 0,
                    })
                }),
                entry("sluis audit prove", "--request-id", |v| {
                    cli(&["prove", "--request-id", v])
                }),
            ],
        },
        Field {
            name: "purpose",
            bad: strings(&["curiosity", "Return", "return "]),
            message: |f| {
                format!(
                    "{f}: unknown purpose; use one of: case_consultation, return, onward_migration, legalisation, shelter, guidance, monitoring"
                )
            },
            entries: vec![
                entry("GetCase", "purpose", move |v| Call::Get(by_id(&i1, v))),
                entry("FindCases", "purpose", |v| {
                    Call::Find(pb::FindCasesRequest {
                        scope: pb::find_cases_request::Scope::Visible as i32,
                        purpose: v.into(),
                        ..Default::default()
                    })
                }),
                entry("GrantConsent", "purposes[0]", move |v| {
                    grant(&i2, |m| m.purposes = vec![v.into()])
                }),
                entry("QueryAccess", "purpose", |v| {
                    query(|m| m.purpose = v.into())
                }),
            ],
        },
        Field {
            name: "role",
            bad: strings(&["8", "-1", "1000"]),
            message: |f| {
                format!("{f}: unknown role; use ROLE_MUNICIPALITY (1) to ROLE_PRIVACY_OFFICER (7)")
            },
            entries: vec![
                entry("GrantConsent", "recipients[0].role", move |v| {
                    grant(&i3, |m| {
                        m.recipients = vec![pb::Recipient {
                            recipient: Some(pb::recipient::Recipient::Role(v.parse().unwrap())),
                        }]
                    })
                }),
                entry("QueryAccess", "role", |v| {
                    query(|m| m.role = v.parse().unwrap())
                }),
            ],
        },
        Field {
            name: "participant id",
            bad: strings(&["Gemeente Utrecht", "dtv/1", &"a".repeat(65)]),
            message: |f| {
                format!(
                    "{f} must be a participant id: 1-64 characters of a-z, 0-9, '-', '_' or '.'"
                )
            },
            entries: vec![
                entry("GrantConsent", "recipients[0].participant", move |v| {
                    grant(&i4, |m| m.recipients = vec![participant(v)])
                }),
                entry("QueryAccess", "caller", |v| query(|m| m.caller = v.into())),
            ],
        },
        Field {
            name: "pseudonym",
            bad: strings(&[
                "ps1.short",
                "xx1.aaaaaaaaaaaaaaaaaaaaaaaaaaa",
                "ps1.aaaaaaaaaaaaaaaaaaaaaaaaaa!",
            ]),
            message: |f| {
                format!(
                    "{f} is malformed: expected a 'ps1.' (or later version) or 'pf1.' pseudonym as the nodes issue them"
                )
            },
            entries: vec![
                entry("GetCase", "subject_pseudonym", |v| {
                    Call::Get(by_pseudonym(v, "return"))
                }),
                entry("QueryAccess", "subject", |v| {
                    query(|m| m.subject = v.into())
                }),
            ],
        },
        Field {
            name: "decision",
            bad: strings(&["8", "-1"]),
            message: |f| {
                format!("{f}: unknown decision; use DECISION_ALLOWED (1) to DECISION_ERROR (7)")
            },
            entries: vec![entry("QueryAccess", "decision", |v| {
                query(|m| m.decision = v.parse().unwrap())
            })],
        },
        Field {
            name: "method",
            bad: strings(&["getcase", "sluis.v1.CaseService/GetCase"]),
            message: |f| {
                format!(
                    "{f}: unknown method; use one of {}",
                    sluis::gateway::validate::METHODS.join(", ")
                )
            },
            entries: vec![entry("QueryAccess", "method", |v| {
                query(|m| m.method = v.into())
            })],
        },
        Field {
            name: "time range (until not after since)",
            // 2026-11-01T00:00:00Z, and 0 or 1 day before it, as seconds.
            bad: strings(&["1793491200,1793491200", "1793491200,1793404800"]),
            message: |f| format!("{} must be after {}", f.replace("since", "until"), f),
            entries: vec![
                entry("QueryAccess", "since", |v| {
                    let (s, u) = v.split_once(',').unwrap();
                    query(|m| {
                        m.since = at(s.parse().unwrap());
                        m.until = at(u.parse().unwrap());
                    })
                })
                .blaming("until"),
                entry("sluis audit export", "--since", |v| {
                    let rfc = |s: &str| {
                        time::OffsetDateTime::from_unix_timestamp(s.parse().unwrap())
                            .unwrap()
                            .format(&time::format_description::well_known::Rfc3339)
                            .unwrap()
                    };
                    let (s, u) = v.split_once(',').unwrap();
                    cli(&["export", "--since", &rfc(s), "--until", &rfc(u)])
                }),
            ],
        },
        Field {
            name: "instant out of range",
            bad: strings(&["-1", "253402300800"]),
            message: |f| format!("{f} is out of range: give a time from 1970 to 9999"),
            entries: vec![
                entry("QueryAccess", "since", |v| {
                    query(|m| m.since = at(v.parse().unwrap()))
                }),
                entry("GrantConsent", "valid_until", {
                    let id = id.clone();
                    move |v| grant(&id, |m| m.valid_until = at(v.parse().unwrap()))
                }),
                entry("sluis audit export", "--since", |v| {
                    // RFC 3339 cannot write year 10000; 1969 is before the range.
                    let t = if v.starts_with('-') {
                        "1969-12-31T23:59:59Z"
                    } else {
                        "0000-01-01T00:00:00Z"
                    };
                    cli(&["export", "--since", t])
                }),
            ],
        },
        Field {
            name: "BSN",
            bad: strings(&["123456789", "12345678", "12345678a"]),
            message: |f| format!("{f} must be 9 digits that pass the 11-check"),
            entries: vec![
                entry("RegisterCase", "data.identity.bsn", |v| {
                    Call::Register(pb::RegisterCaseRequest {
                        request_id: String::new(),
                        data: Some(full_case("Test Persoon", "", v)),
                    })
                }),
                entry("UpdateCase", "data.identity.bsn", {
                    let id = id.clone();
                    move |v| {
                        Call::Update(pb::UpdateCaseRequest {
                            request_id: String::new(),
                            case_id: id.clone(),
                            data: Some(full_case("Test Persoon", "", v)),
                            update_mask: None,
                        })
                    }
                }),
                entry("SubjectAccessReport", "bsn", |v| {
                    Call::Report(pb::SubjectAccessReportRequest {
                        subject: Some(pb::subject_access_report_request::Subject::Bsn(v.into())),
                    })
                }),
            ],
        },
        Field {
            name: "V-number",
            bad: strings(&["abc", "123456789", "V123456789"]),
            message: |f| format!("{f} must be 10 digits"),
            entries: vec![
                entry("RegisterCase", "data.identity.v_number", |v| {
                    Call::Register(pb::RegisterCaseRequest {
                        request_id: String::new(),
                        data: Some(full_case("Test Persoon", v, "")),
                    })
                }),
                entry("SubjectAccessReport", "v_number", |v| {
                    Call::Report(pb::SubjectAccessReportRequest {
                        subject: Some(pb::subject_access_report_request::Subject::VNumber(
                            v.into(),
                        )),
                    })
                }),
            ],
        },
        Field {
            name: "a line of text a receipt may carry",
            bad: strings(&["DMS-1\ncategory medical", "DMS-1\u{1b}[2K", "DMS-1\u{202e}"]),
            message: |f| {
                format!(
                    "{f} must be a single line of printable text (no newlines, control characters, invisible characters, direction overrides, or white space other than a plain space)"
                )
            },
            entries: vec![
                entry("GrantConsent", "evidence_ref", move |v| {
                    grant(&id, |m| m.evidence_ref = v.into())
                }),
                entry("WithdrawConsent", "note", |v| {
                    Call::Withdraw(pb::WithdrawConsentRequest {
                        request_id: String::new(),
                        consent_id: "0190c4e2-7b1a-4c3e-9f00-1a2b3c4d5e6f".into(),
                        note: v.into(),
                    })
                }),
            ],
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_field_is_checked_alike_at_every_entry_point() {
    let node = TestNode::start().await;
    let mut owner = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut owner).await;
    let f = Fixture { node, case_id };
    for field in fields(&f.case_id) {
        for e in &field.entries {
            let want = (field.message)(e.field);
            for value in &field.bad {
                let what = format!("{} via {} ({value:?})", field.name, e.name);
                let digest = f.node.digest().await;
                match (e.call)(value) {
                    Call::Cli(args) => {
                        let stderr = cli_refused(&f, &args);
                        assert!(
                            stderr.contains(&format!("error: {want}")),
                            "{what}: {stderr}"
                        );
                    }
                    call => {
                        let status = refused(&f, call).await;
                        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
                        assert_eq!(status.message(), want, "{what}");
                        // The same, for programs: a BadRequest naming the
                        // field by its path, and the reason.
                        let details = status.get_error_details();
                        let violations = &details.bad_request().expect(&what).field_violations;
                        assert_eq!(violations.len(), 1, "{what}");
                        assert_eq!(violations[0].field, e.violated, "{what}");
                        assert_eq!(violations[0].description, want, "{what}");
                        let info = details.error_info().expect(&what);
                        assert_eq!(
                            (info.reason.as_str(), info.domain.as_str()),
                            ("INVALID_FIELD", "sluis.nl"),
                            "{what}"
                        );
                    }
                }
                assert_eq!(f.node.digest().await, digest, "{what}: nothing changed");
            }
        }
    }
}
