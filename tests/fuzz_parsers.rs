//! Fuzz targets for the parsers a node runs on bytes it did not make:
//! certificates (`net::x509`) and CRLs (the TLS configuration), signed
//! notes and checkpoints (`tlog::note`, `tlog::checkpoint`), access records
//! (`tlog::AccessRecord::decode`), the policy file (`policy::Policy`) and
//! the config file (`config::Config`).
//!
//! Each target states the parser's contract as a property: any input gives
//! a value or a typed error, never a panic; in bounded time (each call
//! timed) and memory (the allocator below has a ceiling); a round trip
//! where there is an encoder; errors that echo no input that could be
//! secret or personal. See `tests/fuzz/mod.rs` for budgets and seeds.

mod fuzz;

use std::sync::OnceLock;
use std::time::Duration;

use proptest::prelude::*;

use sluis::config::Config;
use sluis::model::Category;
use sluis::model::trace::{ForeignOperation, SpanId, TraceContext, TraceId};
use sluis::net::pki::{CertAuthority, ClientCertSpec, IssuedCert};
use sluis::net::x509;
use sluis::policy::{DEFAULT_POLICY, Policy};
use sluis::tlog::checkpoint::Checkpoint;
use sluis::tlog::note::{self, Signer};
use sluis::tlog::{
    AccessRecord, BasisKind, CategoryBasis, Decision, Ldv, LdvStatus, Review, SealedSubject,
    SubjectIdType, Verdict,
};

/// Every allocation of this test binary is counted, and the whole binary
/// may hold at most [`MEMORY_CEILING`] at once: a parser that sizes a
/// buffer by a length field it read (up to 4 GiB for a u32) aborts the run.
#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

/// Far above what the targets need together (a few MiB each), far below
/// what an unchecked length field asks for.
const MEMORY_CEILING: usize = 1 << 30;

fn ceiling() {
    static SET: OnceLock<()> = OnceLock::new();
    SET.get_or_init(|| {
        ALLOCATOR
            .set_limit(MEMORY_CEILING)
            .expect("the targets start well below the ceiling");
    });
}

fn cases(n: u32) -> u32 {
    ceiling();
    n
}

// ---- certificates ---------------------------------------------------------

struct Pki {
    ca: CertAuthority,
    client: IssuedCert,
    crl_der: Vec<u8>,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let ca = CertAuthority::generate("fuzz CA").unwrap();
        let client = ca
            .issue_client(&ClientCertSpec::new(
                "fuzz client",
                Some("00000001000000000042"),
            ))
            .unwrap();
        let crl_pem = ca
            .crl_pem(
                std::slice::from_ref(&client.serial),
                time::Duration::days(1),
            )
            .unwrap();
        let crl_der = pem_body(&crl_pem);
        Pki {
            ca,
            client,
            crl_der,
        }
    })
}

/// The DER inside a single-item PEM text.
fn pem_body(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let b64: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn certificate_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..512),
        6 => fuzz::mutated(pki().client.cert_der.clone()),
        1 => fuzz::mutated(pki().ca.cert_der()),
    ]
}

/// Every accessor on any bytes: a value or `X509Error`, never a panic; the
/// accessors that only walk the TBSCertificate agree on whether the bytes
/// are a certificate; a subject string handed out is in the input.
#[test]
fn x509_accessors_take_any_bytes() {
    fuzz::run("x509", file!(), cases(2000), certificate_bytes(), |der| {
        let (serial, spki, subject, issuer, attrs, sn, cn, ski, pin) =
            fuzz::timed("x509 accessors", || {
                (
                    x509::serial_number(&der).is_ok(),
                    x509::subject_public_key_info(&der).is_ok(),
                    x509::subject_name_der(&der).is_ok(),
                    x509::issuer_name_der(&der).is_ok(),
                    x509::subject_attributes(&der),
                    x509::subject_serial_number(&der),
                    x509::subject_common_name(&der),
                    x509::subject_key_identifier(&der).is_ok(),
                    x509::spki_sha256_hex(&der),
                )
            })?;
        let _ = x509::cert_sha256_hex(&der);
        prop_assert!(
            serial == spki && spki == subject && subject == issuer,
            "the TBS accessors disagree on whether this is a certificate"
        );
        // The extensions are walked further only where they are read.
        prop_assert!(!ski || serial, "an extension read from a non-certificate");
        prop_assert_eq!(pin.is_ok(), spki);
        if attrs.is_ok() || sn.is_ok() || cn.is_ok() {
            prop_assert!(serial, "a subject attribute read from a non-certificate");
        }
        for s in [sn, cn].into_iter().flatten().flatten() {
            prop_assert!(
                der.windows(s.len().max(1)).any(|w| w == s.as_bytes()) || s.is_empty(),
                "a subject string that is not in the certificate"
            );
        }
        Ok(())
    });
}

/// What the CA wrote is what the walker reads: OIN, common name, serial
/// and public key of certificates issued with arbitrary subjects.
#[test]
fn x509_reads_back_what_was_issued() {
    let oin = prop_oneof![
        "[0-9]{20}",
        "[ -~]{1,40}",
        // Not ASCII: rcgen writes UTF8String.
        "\\PC{1,20}",
    ];
    fuzz::run(
        "x509-round-trip",
        file!(),
        cases(48),
        ("[ -~]{1,64}", proptest::option::of(oin)),
        |(cn, oin)| {
            let spec = ClientCertSpec::new(&cn, oin.as_deref());
            let Ok(issued) = pki().ca.issue_client(&spec) else {
                // rcgen refuses some strings; nothing to read back.
                return Ok(());
            };
            let der = &issued.cert_der;
            prop_assert_eq!(x509::subject_common_name(der).unwrap(), Some(cn));
            prop_assert_eq!(x509::subject_serial_number(der).unwrap(), oin);
            prop_assert_eq!(x509::serial_number(der).unwrap(), &issued.serial[..]);
            let ca = pki().ca.cert_der();
            prop_assert_eq!(
                x509::issuer_name_der(der).unwrap(),
                x509::subject_name_der(&ca).unwrap()
            );
            Ok(())
        },
    );
}

/// The TLS configuration reads CA and CRL files an operator was handed
/// (and SIGHUP rereads them): any bytes in them give a typed `TlsError`
/// or a configuration, never a panic. The unedited files load.
#[test]
fn crl_and_ca_files_load_or_fail_typed() {
    let dir = tempfile::tempdir().unwrap();
    let paths = sluis::net::pki::write_dev_pki(
        dir.path(),
        &["localhost".to_string()],
        &[(
            "p".to_string(),
            "p".to_string(),
            Some("00000001000000000042".to_string()),
        )],
    )
    .unwrap();
    let ca_der = pem_body(&std::fs::read_to_string(&paths.ca_cert).unwrap());
    let crl_der = pem_body(&std::fs::read_to_string(&paths.crl).unwrap());
    let files = sluis::net::tls::TlsFiles {
        cert: paths.node_cert.clone(),
        key: paths.node_key.clone(),
        client_ca: dir.path().join("fuzz-ca.pem"),
        crls: vec![dir.path().join("fuzz-crl.pem")],
        allow_missing_crl: false,
        settings: sluis::net::tls::TlsSettings::NODE,
    };
    let write = |ca: &[u8], crl: &[u8]| {
        std::fs::write(&files.client_ca, pem("CERTIFICATE", ca)).unwrap();
        std::fs::write(&files.crls[0], pem("X509 CRL", crl)).unwrap();
    };
    write(&ca_der, &crl_der);
    sluis::net::tls::server_config(&files, None).expect("the files as written load");
    let inputs = prop_oneof![
        4 => fuzz::mutated(crl_der.clone()).prop_map(|crl| (None, crl)),
        1 => fuzz::mutated(pki().crl_der.clone()).prop_map(|crl| (None, crl)),
        2 => fuzz::mutated(ca_der.clone()).prop_map(|ca| (Some(ca), Vec::new())),
    ];
    fuzz::run("crl", file!(), cases(400), inputs, |(ca, crl)| {
        match ca {
            Some(ca) => write(&ca, &crl_der),
            None => write(&ca_der, &crl),
        }
        let r = fuzz::timed("server_config", || {
            sluis::net::tls::server_config(&files, None)
        })?;
        if let Err(e) = r {
            // A message an operator reads: it names the file, and carries
            // no bytes of it.
            prop_assert!(e.to_string().len() < 1024, "{}", e);
        }
        Ok(())
    });
}

// ---- signed notes and checkpoints -----------------------------------------

/// An Ed25519 key from a fixed seed (RFC 8032), as the vault holds one.
struct Key(ring::signature::Ed25519KeyPair);

impl Key {
    fn new(seed: u8) -> Key {
        Key(ring::signature::Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap())
    }
}

impl Signer for Key {
    fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg).as_ref().try_into().unwrap()
    }
    fn public_key(&self) -> [u8; 32] {
        use ring::signature::KeyPair;
        self.0.public_key().as_ref().try_into().unwrap()
    }
}

/// A key name as C2SP signed-note allows one: no spaces, no '+'.
fn key_name() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9.-]{0,30}(/[a-z0-9-]{1,10})?"
}

/// Note text: lines of printable characters, each ending in a newline.
fn note_body() -> impl Strategy<Value = String> {
    proptest::collection::vec("[^\\p{Cc}]{0,40}", 1..6).prop_map(|lines| {
        let mut s = lines.join("\n");
        s.push('\n');
        s
    })
}

/// Sign, then verify: the body comes back. Any edit of the signed note
/// either fails verification or leaves the body that was signed.
#[test]
fn signed_notes_round_trip_and_resist_edits() {
    let key = Key::new(9);
    let strategy = (key_name(), note_body()).prop_flat_map(|(name, body)| {
        // A body `note::sign` refuses (see below) is mutated from nothing.
        let signed = note::sign(&Key::new(9), &name, &body).unwrap_or_default();
        (Just(name), Just(body), fuzz::mutated_text(signed))
    });
    fuzz::run(
        "signed-note",
        file!(),
        cases(600),
        strategy,
        |(name, body, edited)| {
            let vk = note::verifier_key(&name, &key.public_key());
            // Text that C2SP signed-note forbids is refused before signing,
            // with a typed error; anything signed verifies to its body.
            let signed = match note::sign(&key, &name, &body) {
                Ok(signed) => signed,
                Err(e) => {
                    prop_assert!(!e.to_string().contains('\n'), "{}", e);
                    return Ok(());
                }
            };
            prop_assert_eq!(note::verify(&signed, &vk), Ok(body.as_str()));
            match fuzz::timed("note::verify", || note::verify(&edited, &vk))? {
                Ok(b) => prop_assert_eq!(
                    b,
                    body.as_str(),
                    "an edited note verified with another body"
                ),
                Err(e) => prop_assert!(!e.to_string().contains('\n'), "{}", e),
            }
            Ok(())
        },
    );
}

/// Arbitrary text as a note and as a verifier key: a typed error, no panic.
#[test]
fn notes_and_verifier_keys_take_any_text() {
    let key = Key::new(3);
    let good_vk = note::verifier_key("sluis.example", &key.public_key());
    let strategy = (
        prop_oneof![
            "\\PC{0,200}".boxed(),
            "(\\PC{0,20}\n){0,6}\n\u{2014} sluis.example [A-Za-z0-9+/=]{0,100}\n".boxed(),
        ],
        prop_oneof![
            Just(good_vk.clone()),
            fuzz::mutated_text(good_vk.clone()).boxed(),
            "\\PC{0,80}".boxed()
        ],
    );
    fuzz::run("note-text", file!(), cases(1000), strategy, |(text, vk)| {
        let _ = fuzz::timed("note::verify", || note::verify(&text, &vk))?;
        let _ = fuzz::timed("Checkpoint::verify", || Checkpoint::verify(&text, &vk))?;
        Ok(())
    });
}

/// `Checkpoint::parse(cp.body()) == cp`, and signed checkpoints verify to
/// themselves; what parses is a canonical body (the text starts with the
/// body of what it parsed to).
#[test]
fn checkpoints_round_trip_and_parse_canonically() {
    let key = Key::new(5);
    let cp = ("[!-~][ -~]{0,60}", any::<u64>(), any::<[u8; 32]>())
        .prop_map(|(origin, size, root)| Checkpoint { origin, size, root });
    let seed = Checkpoint {
        origin: "node.example/access-log".into(),
        size: 1234,
        root: [7; 32],
    }
    .body();
    let text = prop_oneof![
        fuzz::mutated_text(seed).boxed(),
        "\\PC{0,30}\n[0-9]{0,21}\n[A-Za-z0-9+/=]{0,46}\n?(\\PC{0,20}\n?)?".boxed(),
    ];
    fuzz::run(
        "checkpoint",
        file!(),
        cases(1000),
        (cp, text),
        |(cp, text)| {
            prop_assert_eq!(Checkpoint::parse(&cp.body()), Ok(cp.clone()));
            let vk = note::verifier_key("node.example", &key.public_key());
            let signed = cp.sign(&key, "node.example");
            prop_assert!(
                signed.is_ok(),
                "a checkpoint that parses signs: {:?}",
                signed
            );
            prop_assert_eq!(
                Checkpoint::verify(&signed.unwrap_or_default(), &vk),
                Ok(cp.clone())
            );
            if let Ok(parsed) = fuzz::timed("Checkpoint::parse", || Checkpoint::parse(&text))? {
                prop_assert!(
                    text.starts_with(&parsed.body()),
                    "{:?} parsed to a checkpoint whose body is {:?}",
                    text,
                    parsed.body()
                );
            }
            Ok(())
        },
    );
}

// ---- access records -------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,24}"
}

fn categories() -> impl Strategy<Value = Vec<Category>> {
    proptest::collection::vec(proptest::sample::select(Category::ALL.to_vec()), 0..9)
}

/// The Logboek Dataverwerkingen fields of a version-3 record.
fn ldv() -> impl Strategy<Value = Ldv> {
    let status = proptest::sample::select(vec![LdvStatus::Unset, LdvStatus::Ok, LdvStatus::Error]);
    let id_type =
        proptest::sample::select(vec![SubjectIdType::Vreemdelingennummer, SubjectIdType::Bsn]);
    (
        any::<[u8; 16]>(),
        any::<[u8; 8]>(),
        proptest::option::of((any::<[u8; 16]>(), any::<[u8; 8]>(), text())),
        proptest::option::of(text()),
        status,
        any::<i64>(),
        proptest::option::of((id_type, proptest::collection::vec(any::<u8>(), 0..80))),
    )
        .prop_map(
            |(t, s, foreign, activity, status_code, end_at, subject)| Ldv {
                trace: TraceContext {
                    trace_id: TraceId(t),
                    span_id: SpanId(s),
                    foreign: foreign.map(|(t, s, entity)| ForeignOperation {
                        trace_id: TraceId(t),
                        span_id: SpanId(s),
                        entity,
                    }),
                },
                processing_activity_id: activity,
                status_code,
                end_at,
                data_subject: subject.map(|(id_type, sealed)| SealedSubject { id_type, sealed }),
            },
        )
}

fn record() -> impl Strategy<Value = AccessRecord> {
    let decision = proptest::sample::select(vec![
        Decision::Allowed,
        Decision::Partial,
        Decision::Denied,
        Decision::Invalid,
        Decision::NotFound,
        Decision::HandshakeFailed,
        Decision::Error,
    ]);
    (
        (
            text(),
            any::<i64>(),
            text(),
            text(),
            proptest::option::of(text()),
            proptest::option::of(text()),
            text(),
        ),
        (
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::option::of(text()),
            // Sorted and without repeats, as records hold them.
            proptest::collection::btree_set(text(), 0..4)
                .prop_map(|s| s.into_iter().collect::<Vec<_>>()),
        ),
        (
            categories(),
            categories(),
            proptest::collection::vec(
                (proptest::sample::select(Category::ALL.to_vec()), text()),
                0..4,
            ),
        ),
        (
            decision,
            text(),
            text(),
            proptest::collection::vec(text(), 0..4),
            proptest::collection::vec(text(), 0..4),
        ),
        // Version 2 (neither), 3 (LDV fields) and 4 (a policy version,
        // with or without LDV fields) records.
        (
            proptest::option::of(ldv()),
            proptest::option::of(any::<[u8; 32]>()),
        ),
        // Version 5: per-category bases and an officer's review; version 6:
        // the node a call came from.
        (
            proptest::collection::vec(
                (
                    proptest::sample::select(Category::ALL.to_vec()),
                    proptest::sample::select(vec![
                        BasisKind::Consent,
                        BasisKind::LegalBasis,
                        BasisKind::Emergency,
                    ]),
                    proptest::collection::vec(text(), 0..3),
                    text(),
                )
                    .prop_map(|(category, kind, rules, text)| CategoryBasis {
                        category,
                        kind,
                        rules,
                        text,
                    }),
                0..3,
            ),
            proptest::option::of(
                (
                    text(),
                    proptest::sample::select(vec![Verdict::Justified, Verdict::NotJustified]),
                    text(),
                )
                    .prop_map(|(access_record_id, verdict, note)| Review {
                        access_record_id,
                        verdict,
                        note,
                    }),
            ),
            // Version 6: the federation node a call came from.
            proptest::option::of(text()),
        ),
    )
        .prop_map(
            |(
                (request_id, at, caller, role, peer_fingerprint, actor_hash, method),
                (case_id, subject, purpose, subjects),
                (asked, released, withheld),
                (decision, status, detail, rules, consents),
                (ldv, policy),
                (bases, review, from_node),
            )| AccessRecord {
                request_id,
                at,
                caller,
                role,
                peer_fingerprint,
                actor_hash,
                method,
                case_id,
                subject,
                subjects,
                purpose,
                asked,
                released,
                withheld,
                decision,
                status,
                detail,
                rules,
                consents,
                ldv,
                policy,
                bases,
                review,
                from_node,
            },
        )
}

/// `decode(encode(r)) == r`; any bytes decode to a record or to `None`;
/// what decodes re-encodes to the same bytes (one encoding per record: the
/// leaf hash is over these bytes).
#[test]
fn access_records_round_trip_and_decode_canonically() {
    let bytes = record().prop_flat_map(|r| {
        let enc = r.encode();
        (
            Just(r),
            prop_oneof![
                4 => fuzz::mutated(enc),
                1 => proptest::collection::vec(any::<u8>(), 0..64),
            ],
        )
    });
    fuzz::run(
        "access-record",
        file!(),
        cases(2000),
        bytes,
        |(r, bytes)| {
            let enc = r.encode();
            prop_assert_eq!(AccessRecord::decode(&enc), Some(r));
            if let Some(d) = fuzz::timed("AccessRecord::decode", || AccessRecord::decode(&bytes))? {
                prop_assert_eq!(d.encode(), bytes, "two encodings of one record");
            }
            Ok(())
        },
    );
}

// ---- the policy file ------------------------------------------------------

fn purposes() -> Vec<String> {
    sluis::model::DEFAULT_PURPOSES
        .iter()
        .map(|p| p.to_string())
        .collect()
}

/// Rules built from the grammar's pieces, right and wrong, so the target
/// gets past Cedar's parser to sluis's own checks (ids, annotations,
/// vocabulary, strict validation).
fn cedar_rule() -> impl Strategy<Value = String> {
    let annotation = prop_oneof![
        "@id\\(\"[a-z-]{0,12}\"\\)",
        "@legal_basis\\(\"[ -~&&[^\"\\\\]]{0,20}\"\\)",
        "@reason\\(\"(actor_required|not_permitted_for_role_and_purpose|[a-z_]{0,12})\"\\)",
        "@description\\(\"[^\"\\\\]{0,20}\"\\)",
        "@[a-z]{1,8}(\\(\"[a-z]{0,5}\"\\))?",
    ];
    let role = proptest::sample::select(vec![
        "municipality",
        "ind",
        "dtv",
        "avim",
        "ngo",
        "monitor",
        "privacy_officer",
        "nobody",
        "",
    ]);
    let category = proptest::sample::select(vec![
        "identity",
        "residence_procedure",
        "shelter",
        "guidance",
        "perspective",
        "medical",
        "safety",
        "outcome",
        "nothing",
    ]);
    let purpose = proptest::sample::select(vec![
        "return",
        "legalisation",
        "monitoring",
        "case_consultation",
        "unknown",
        "",
    ]);
    let condition = prop_oneof![
        Just(String::new()),
        purpose.prop_map(|p| format!(" when {{ context.purpose == \"{p}\" }}")),
        Just(" when { context.is_owner }".to_string()),
        Just(" unless { context.actor_present }".to_string()),
        Just(" when { context.nothing }".to_string()),
        Just(" when { 1 + \"a\" }".to_string()),
    ];
    (
        proptest::collection::vec(annotation, 0..4),
        proptest::sample::select(vec!["permit", "forbid", "permit", "allow"]),
        prop_oneof![
            Just("principal".to_string()),
            (role, any::<bool>()).prop_map(|(r, eq)| {
                let op = if eq { "==" } else { "in" };
                format!("principal {op} Role::\"{r}\"")
            }),
        ],
        prop_oneof![
            Just("action".to_string()),
            Just("action == Action::\"receive\"".to_string()),
            Just("action == Action::\"delete\"".to_string()),
        ],
        prop_oneof![
            Just("resource".to_string()),
            category.prop_map(|c| format!("resource == Category::\"{c}\"")),
        ],
        condition,
    )
        .prop_map(|(ann, effect, p, a, r, cond)| {
            format!("{}\n{effect} ({p}, {a}, {r}){cond};\n", ann.join("\n"))
        })
}

/// A rule whose condition nests `brackets` brackets of one kind around
/// `ifs` nested if-then-else.
fn nested(brackets: usize, ifs: usize, open: &str) -> String {
    let close = match open {
        "(" => ")",
        "[" => "]",
        _ => "}",
    };
    format!(
        "@id(\"deep\")\npermit (principal, action, resource) when {{ {}{}context.is_owner{}{} }};\n",
        open.repeat(brackets),
        "if true then ".repeat(ifs),
        " else false".repeat(ifs),
        close.repeat(brackets),
    )
}

/// Any policy text gives a policy or a `PolicyError` that names the source,
/// never a panic, in bounded time.
#[test]
fn policy_text_loads_or_fails_typed() {
    let text = prop_oneof![
        3 => fuzz::mutated_text(DEFAULT_POLICY.to_string()).boxed(),
        3 => proptest::collection::vec(cedar_rule(), 1..6)
            .prop_map(|r| r.concat())
            .boxed(),
        1 => "\\PC{0,300}".boxed(),
        1 => (0usize..40, 0usize..40, proptest::sample::select(vec!["(", "[", "{a: "]))
            .prop_map(|(brackets, ifs, open)| nested(brackets, ifs, open))
            .boxed(),
    ];
    let purposes = purposes();
    fuzz::run("policy", file!(), cases(300), text, |text| {
        match fuzz::timed("Policy::from_text", || {
            Policy::from_text(&text, "fuzz.cedar", &purposes)
        })? {
            Ok(p) => {
                // A loaded policy answers every question.
                for role in sluis::model::Role::ALL {
                    for category in Category::ALL {
                        let _ = p.decide(&sluis::policy::Query {
                            role,
                            category,
                            purpose: "return",
                            is_owner: false,
                            actor_present: true,
                        });
                    }
                }
            }
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(
                    msg.contains("fuzz.cedar")
                        || matches!(e, sluis::policy::PolicyError::Schema(_)),
                    "an error that does not name the file: {}",
                    msg
                );
            }
        }
        Ok(())
    });
}

// ---- the config file ------------------------------------------------------

/// A database password planted in the config; no error may show it.
const PASSWORD: &str = "s3cr3t-Pw";

/// A node folder as `sluis init` writes it; returns the folder and its
/// sluis.toml.
fn node_dir(rt: &tokio::runtime::Runtime) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = rt
        .block_on(sluis::dev::init::init(
            dir.path(),
            "127.0.0.1:0".parse().unwrap(),
        ))
        .unwrap();
    (dir, path)
}

/// The config `sluis init` writes, on a PostgreSQL URL with a password.
fn config_seed() -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_dir, path) = node_dir(&rt);
    std::fs::read_to_string(path).unwrap().replace(
        "database = \"sqlite://sluis.db\"",
        &format!("database = \"postgres://sluis:{PASSWORD}@127.0.0.1:5432/sluis\""),
    )
}

/// Values for a config's keys: the edge of every type, and text a node
/// name or path should not be.
fn config_value() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "0",
            "1",
            "-1",
            "1023",
            "1024",
            "4294967295",
            "4294967296",
            "9223372036854775807",
            "18446744073709551615",
            "18446744073709551616",
            "1e3",
            "true",
            "\"\"",
            "[]",
            "{}",
            "\"a\\nb\"",
            "\"a+b\"",
            "\"a b\"",
            "\"\u{2014}\"",
            "\"../../etc\"",
            "\"/\"",
            "\"0.0.0.0:0\"",
            "\"[::1]:7443\"",
            "\"x\"",
        ])
        .prop_map(String::from),
        "\"[ -~&&[^\"\\\\]]{0,30}\"",
        "[0-9]{1,22}",
    ]
}

/// Edge values of a u64 field.
fn number() -> BoxedStrategy<u64> {
    prop_oneof![
        3 => proptest::sample::select(vec![0u64, 1, 1023, 1024, u64::from(u32::MAX), i64::MAX as u64, u64::MAX]),
        1 => any::<u64>(),
        1 => 0u64..100_000,
    ]
    .boxed()
}

/// A config as a structure, every field drawn from edge values, written
/// out with the same serde types the node reads it with.
fn config_struct(seed: Config) -> BoxedStrategy<String> {
    let name = prop_oneof![
        Just(seed.node.name.clone()),
        "\\PC{0,20}".boxed(),
        "[ -~]{0,20}".boxed(),
    ];
    let participant = (
        prop_oneof![Just("dtv".to_string()), "[ -~]{0,12}".boxed()],
        "\\PC{0,12}",
        proptest::sample::select(vec!["dtv", "ngo", "privacy_officer", "admin", ""]),
        proptest::option::of(prop_oneof![
            Just("00000001000000000003".to_string()),
            "[0-9a-z]{0,22}".boxed()
        ]),
        proptest::option::of("[0-9a-fA-F]{62,66}"),
    );
    (
        name,
        (number(), number(), number(), number()),
        (number(), number(), number(), number()),
        proptest::collection::vec("[a-z_]{0,12}", 0..4),
        proptest::collection::vec(participant, 0..3),
        any::<u8>(),
    )
        .prop_map(
            move |(name, (cp, hs, age, msg), (mh, mc, acq, cache), purposes, parts, which)| {
                let mut c = seed.clone();
                c.node.name = name;
                // Some fields at a time, so the rest stays loadable.
                if which & 1 != 0 {
                    c.node.checkpoint_interval_ms = cp;
                    c.tls.handshake_timeout_ms = hs;
                }
                if which & 2 != 0 {
                    c.tls.max_connection_age_secs = age;
                    c.limits.max_message_bytes = msg as usize;
                }
                if which & 4 != 0 {
                    c.limits.max_handshakes = mh as usize;
                    c.database.max_connections = mc as u32;
                }
                if which & 8 != 0 {
                    c.database.acquire_timeout_ms = acq;
                    c.database.cache_entries = cache as usize;
                }
                if which & 16 != 0 {
                    c.node.purposes = purposes;
                }
                if which & 32 != 0 {
                    c.participants = parts
                        .into_iter()
                        .map(|(id, name, role, oin, spki)| sluis::config::Participant {
                            id,
                            name,
                            role: role.to_string(),
                            oin,
                            spki_sha256: spki,
                        })
                        .collect();
                }
                toml::to_string(&c).expect("a config serialises")
            },
        )
        .boxed()
}

/// Any sluis.toml — a valid one with edited lines, fields set to edge
/// values, bytes edited — gives a `Config` or a `ConfigError`, never a
/// panic, and no error shows the database password. A config that loads
/// has a node name usable as a signed-note key name (receipts and
/// checkpoints are signed under it and must verify) and numbers the node
/// can run with.
#[test]
fn config_files_load_or_fail_typed() {
    let seed = config_seed();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluis.toml");
    std::fs::write(&path, &seed).unwrap();
    let seed_config = Config::load(&path).expect("the seed loads");
    let lines: Vec<String> = seed.lines().map(String::from).collect();
    let keyed: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains(" = "))
        .map(|(i, _)| i)
        .collect();
    let edit = (proptest::sample::select(keyed), config_value());
    let text = prop_oneof![
        2 => proptest::collection::vec(edit, 1..4).prop_map(move |edits| {
            let mut lines = lines.clone();
            for (i, value) in edits {
                let key = lines[i].split(" = ").next().unwrap().to_string();
                lines[i] = format!("{key} = {value}");
            }
            lines.join("\n")
        }).boxed(),
        2 => config_struct(seed_config),
        2 => fuzz::mutated_text(seed.clone()).boxed(),
    ];
    let key = Key::new(1);
    fuzz::run("config", file!(), cases(600), text, |text| {
        std::fs::write(&path, &text).unwrap();
        match fuzz::timed("Config::load", || Config::load(&path))? {
            Ok(config) => {
                let name = &config.node.name;
                let vk = note::verifier_key(name, &key.public_key());
                let body = "receipt\n";
                let signed = note::sign(&key, name, body);
                prop_assert!(
                    signed.is_ok(),
                    "node name {:?} loads but cannot sign a note: {:?}",
                    name,
                    signed
                );
                let signed = signed.unwrap_or_default();
                prop_assert_eq!(
                    note::verify(&signed, &vk),
                    Ok(body),
                    "node name {:?} loads but its signed notes do not verify",
                    name
                );
                // The runtime's own limits: a semaphore that can be made.
                prop_assert!(config.limits.max_handshakes <= tokio::sync::Semaphore::MAX_PERMITS);
            }
            Err(e) => {
                let msg = format!("{e} {e:?}");
                prop_assert!(
                    !msg.contains(PASSWORD),
                    "a config error shows the database password: {}",
                    msg
                );
            }
        }
        Ok(())
    });
}

/// A config that loads starts a node or fails with an error: no number
/// field, at any edge of its type, panics the node at start. Every field ×
/// every edge value, once each.
#[test]
fn config_numbers_start_a_node_or_fail() {
    ceiling();
    let fields = [
        "checkpoint_interval_ms",
        "handshake_timeout_ms",
        "max_connection_age_secs",
        "max_message_bytes",
        "max_handshakes",
        "max_connections",
        "acquire_timeout_ms",
        "cache_entries",
    ];
    let values = [
        0u64,
        1,
        1024,
        u64::from(u32::MAX),
        i64::MAX as u64,
        u64::MAX,
    ];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (_dir, path) = node_dir(&rt);
    let seed = std::fs::read_to_string(&path).unwrap();
    let mut started = 0;
    for key in fields {
        for value in values {
            let text = if seed.contains(&format!("\n{key} = ")) {
                seed.lines()
                    .map(|l| {
                        if l.starts_with(&format!("{key} = ")) {
                            format!("{key} = {value}")
                        } else {
                            l.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            } else {
                format!("{seed}\n[database]\n{key} = {value}\n")
            };
            std::fs::write(&path, text).unwrap();
            let Ok(config) = Config::load(&path) else {
                continue;
            };
            let outcome = rt.block_on(async {
                let start = tokio::spawn(async move { sluis::node::Node::start(&config).await });
                tokio::time::timeout(Duration::from_secs(30), start).await
            });
            match outcome {
                Err(_) => panic!("{key} = {value}: the node did not start in 30 s"),
                Ok(Err(join)) => {
                    panic!("{key} = {value} loads, and the node panics at start: {join}")
                }
                Ok(Ok(Ok(node))) => {
                    started += 1;
                    rt.block_on(node.shutdown()).unwrap();
                }
                Ok(Ok(Err(_))) => {}
            }
        }
    }
    assert!(started > 0);
}

// ---- what the targets found, as named tests --------------------------------

/// Found by `config`: a syntax error on the database line printed that line,
/// password and all, in the error an operator's log keeps.
#[test]
fn a_config_error_never_shows_the_database_password() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluis.toml");
    let seed = config_seed();
    let unterminated = seed.replace("5432/sluis\"", "5432/");
    assert_ne!(unterminated, seed);
    for text in [
        unterminated,
        seed.replace(
            "checkpoint_interval_ms = 1000",
            "checkpoint_interval_ms = \"x\"",
        ),
    ] {
        std::fs::write(&path, &text).unwrap();
        let e = Config::load(&path).expect_err("a broken file");
        let msg = e.to_string();
        assert!(!msg.contains(PASSWORD), "{msg}");
        assert!(msg.contains("line "), "the error says where: {msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
    }
}

/// Found by `config-start`: `max_handshakes = 9223372036854775807` loaded,
/// and the node panicked at start ("a semaphore may not have more than
/// MAX_PERMITS permits"). Every number is bounded now, at load, with a
/// message naming the field and its range; a handshake timeout of 0 (no
/// client could ever finish) is refused with them.
#[test]
fn numbers_past_what_the_node_can_run_are_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluis.toml");
    let seed = config_seed();
    for (line, value) in [
        ("max_handshakes = 10000", "9223372036854775807"),
        ("checkpoint_interval_ms = 1000", "18446744073709551615"),
        ("handshake_timeout_ms = 10000", "0"),
        ("max_connection_age_secs = 3600", "18446744073709551615"),
    ] {
        let key = line.split(" = ").next().unwrap();
        let text = seed.replace(line, &format!("{key} = {value}"));
        assert_ne!(text, seed);
        std::fs::write(&path, &text).unwrap();
        let e = Config::load(&path).expect_err(line);
        assert!(e.to_string().contains(key), "{e}");
    }
}

/// Found by `config`: an empty node name loaded (so would one with a
/// space or '+'), and every receipt and checkpoint signed under it failed
/// to verify (the verifier key `<name>+<hash>+<key>` cannot carry it).
#[test]
fn a_node_name_that_cannot_sign_notes_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluis.toml");
    let seed = config_seed();
    for name in ["a b", "a+b", "", "a\\nb"] {
        let text = seed.replace(
            "name = \"sluis-dev.example\"",
            &format!("name = \"{name}\""),
        );
        std::fs::write(&path, &text).unwrap();
        let e = Config::load(&path).expect_err(name);
        assert!(e.to_string().contains("node.name"), "{e}");
    }
}

/// Found by `checkpoint`: a body whose root hash line lacked its newline
/// parsed, so two texts meant one checkpoint.
#[test]
fn a_checkpoint_body_ends_in_a_newline() {
    let body = Checkpoint {
        origin: "node.example/access-log".into(),
        size: 1234,
        root: [7; 32],
    }
    .body();
    assert!(Checkpoint::parse(&body).is_ok());
    assert!(Checkpoint::parse(body.trim_end_matches('\n')).is_err());
}

/// Found by `x509-round-trip`: an OIN with a '?' (a PrintableString
/// character X.680 allows) panicked inside the certificate library while
/// the CA wrote the certificate. It is an error now, and so is a CA whose
/// own name has one.
#[test]
fn an_oin_the_certificate_library_cannot_write_is_an_error() {
    let r = pki()
        .ca
        .issue_client(&ClientCertSpec::new("fuzz client", Some("0000?")));
    assert!(r.is_err(), "{r:?}");
}

/// Found by a probe beside the `policy` target (random text seldom nests
/// deep; the target now generates nesting too): Cedar parses nesting
/// recursively, and a rule with ~50 nested parentheses (a debug build on a
/// 2 MiB thread; a few hundred in release on the main thread) or ~1000
/// nested if-then-else overflowed the stack and aborted the process, with
/// no word about which file or rule. Nesting is bounded before Cedar sees
/// the rule, and the error names it.
#[test]
fn a_rule_nested_too_deep_is_refused_naming_it() {
    let purposes = purposes();
    for (brackets, ifs, open) in [
        (200, 0, "("),
        (10_000, 0, "["),
        (0, 1000, "("),
        (17, 0, "{a: "),
    ] {
        let text = nested(brackets, ifs, open);
        let e = Policy::from_text(&text, "deep.cedar", &purposes).expect_err("too deep");
        let msg = e.to_string();
        assert!(
            msg.contains("deep.cedar:1: rule \"deep\"") && msg.contains("deeper than"),
            "{msg}"
        );
    }
    // Up to the limit is allowed (the `when` braces are one level).
    let text = nested(15, 16, "(");
    let r = Policy::from_text(&text, "deep.cedar", &purposes);
    assert!(
        !r.as_ref()
            .is_err_and(|e| e.to_string().contains("deeper than")),
        "{r:?}"
    );
}
