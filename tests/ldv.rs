//! `sluis audit export --format ldv` against the Logboek Dataverwerkingen
//! standard's field list (Logius, "Component: Logboek", interface): every
//! required field present and of its type, the caller's W3C `traceparent`
//! as `foreign_operation`, the processing activity per purpose, and the
//! data subject's V-number or BSN sealed — in the clear nowhere in the
//! export or the database file, and opened with the officer's key (and
//! with no other) to the right value. A log holding records from before
//! these fields (version 2) and after still verifies.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::Value;
use sluis::config::Config;
use sluis::dev::init;
use sluis::node::Node;
use sluis::rpc::proto::v1 as pb;
use sluis::tlog::{AccessRecord, AuditLog, Decision, LogSettings};

const V_NUMBER: &str = "3141592653";
const BSN_ONLY: &str = "123456782";
const BSN_OF_V: &str = "111222333";
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn sluis(args: &[&str], config: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sluis"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

fn lower_hex(v: &Value, len: usize) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == len
            && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            && s.bytes().any(|b| b != b'0')
    })
}

fn attr<'a>(line: &'a Value, key: &str) -> Option<&'a Value> {
    line["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

/// `sluis audit export --format ldv` of the node at `config` into
/// `dir/ldv.jsonl`: the file and its lines, each one JSON object.
fn export_ldv(config: &Path, dir: &Path) -> (std::path::PathBuf, Vec<Value>) {
    let export = dir.join("ldv.jsonl");
    let out = sluis(
        &[
            "audit",
            "export",
            "--format",
            "ldv",
            "--out",
            export.to_str().unwrap(),
        ],
        config,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = std::fs::read_to_string(&export)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect();
    (export, lines)
}

/// Appends one record as a node of the previous version wrote it (no LDV
/// fields: encoding version 2), through the log's own writer.
async fn append_old_record(config: &Config) -> String {
    let keys =
        Arc::new(sluis::gateway::vault::Keys::load(&config.path(&config.node.keys_dir)).unwrap());
    let (store, sink) = sluis::store::Store::open(
        &config.database_url().unwrap(),
        &sluis::store::PoolSettings::default(),
        true,
    )
    .await
    .unwrap();
    let log = AuditLog::start(
        store.clone(),
        sink,
        keys,
        LogSettings {
            key_name: config.node.name.clone(),
            origin: sluis::tlog::checkpoint::origin(&config.node.name),
            checkpoint_interval: Duration::from_millis(0),
        },
    )
    .await
    .unwrap();
    let id = uuid::Uuid::now_v7().to_string();
    let mut old = AccessRecord::new(id.clone(), sluis::model::clock::now_millis(), "FindCases");
    old.caller = GEMEENTE.into();
    old.role = "municipality".into();
    old.purpose = Some("return".into());
    old.decision = Decision::Allowed;
    old.status = "OK".into();
    old.ldv = None;
    assert_eq!(old.encode()[0], 2, "written as version 2");
    log.append(&old).await.unwrap();
    log.sign_pending().await;
    store.close().await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldv_export_has_the_standards_fields_and_seals_the_subject() {
    // A SQLite node, so that the database file itself can be searched.
    let dir = tempfile::tempdir().unwrap();
    let path = init::init(dir.path(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let config = Config::load(&path).unwrap();
    let old_id = append_old_record(&config).await;
    let node = Node::start(&config).await.unwrap();
    let node = TestNode { dir, config, node };
    let ngo_oin = node
        .config
        .participants
        .iter()
        .find(|p| p.id == NGO)
        .and_then(|p| p.oin.clone())
        .unwrap();

    // Real requests: two cases (one with a V-number, one with a BSN only),
    // a consent, reads with and without a caller's trace, a refused one.
    let mut gemeente = node.client(GEMEENTE).await;
    let mut ngo = node.client(NGO).await;
    let v_case = gemeente
        .cases
        .register_case(with_actor(pb::RegisterCaseRequest {
            request_id: String::new(),
            data: Some(full_case("Amal Test", V_NUMBER, BSN_OF_V)),
        }))
        .await
        .unwrap()
        .into_inner()
        .case_id;
    let bsn_case = gemeente
        .cases
        .register_case(with_actor(pb::RegisterCaseRequest {
            request_id: String::new(),
            data: Some(full_case("Bram Test", "", BSN_ONLY)),
        }))
        .await
        .unwrap()
        .into_inner()
        .case_id;
    for case in [&v_case, &bsn_case] {
        grant(
            &mut gemeente,
            case,
            vec![participant(NGO)],
            &[pb::Category::Shelter],
            &["shelter"],
        )
        .await;
    }
    let mut traced = tonic::Request::new(by_id(&v_case, "shelter"));
    traced.metadata_mut().insert(
        "traceparent",
        format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01")
            .parse()
            .unwrap(),
    );
    let traced_id = request_id(&ngo.cases.get_case(traced).await.unwrap());
    let plain_id = request_id(&ngo.cases.get_case(by_id(&v_case, "shelter")).await.unwrap());
    let mut bad_trace = tonic::Request::new(by_id(&bsn_case, "shelter"));
    bad_trace
        .metadata_mut()
        .insert("traceparent", "00-not-a-trace-01".parse().unwrap());
    let bsn_id = request_id(&ngo.cases.get_case(bad_trace).await.unwrap());
    let refused = ngo
        .cases
        .get_case(by_id(&v_case, "no-such-purpose"))
        .await
        .expect_err("an unknown purpose is refused");
    let refused_id = request_id_of(refused.metadata());

    let config_path = node.config_path();
    let officer_key = node.dir.path().join(init::OFFICER_KEY_FILE);
    let db = node.db_path();
    let node_dir = node.dir.path().to_path_buf();
    node.node.shutdown().await.unwrap();

    // The export.
    let (export, lines) = export_ldv(&config_path, &node_dir);
    assert!(lines.len() >= 9, "{} lines", lines.len());

    // Every line: the standard's required fields, each of its type.
    for l in &lines {
        assert!(lower_hex(&l["trace_id"], 32), "trace_id, 16 bytes: {l}");
        assert!(lower_hex(&l["span_id"], 16), "span_id, 8 bytes: {l}");
        assert!(
            ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"]
                .contains(&l["status_code"].as_str().unwrap_or("")),
            "status_code: {l}"
        );
        assert!(
            l["name"].as_str().is_some_and(|n| !n.is_empty()),
            "name: {l}"
        );
        let (start, end) = (l["start_time"].as_i64(), l["end_time"].as_i64());
        assert!(
            start.is_some_and(|s| s > 1_600_000_000_000) && end >= start,
            "start_time, end_time in ms: {l}"
        );
        let attributes = l["attributes"].as_array().expect("attributes, a list");
        assert!(
            attributes
                .iter()
                .all(|a| a["key"].is_string() && !a["value"].is_null()),
            "attributes are key-value pairs: {l}"
        );
        assert!(l["resource"]["attributes"].is_array(), "resource: {l}");
        if let Some(f) = l.get("foreign_operation") {
            assert!(
                lower_hex(&f["trace_id"], 32) && lower_hex(&f["span_id"], 16),
                "{f}"
            );
            assert!(
                f["entity"].as_str().is_some_and(|e| e.contains(':')),
                "a URI: {f}"
            );
        }
    }
    let by_id = |id: &str| -> &Value {
        lines
            .iter()
            .find(|l| attr(l, "sluis.request_id") == Some(&Value::from(id)))
            .unwrap_or_else(|| panic!("no line for {id}"))
    };

    // The caller's trace continues, and its span is the foreign operation.
    let t = by_id(&traced_id);
    assert_eq!(t["trace_id"], CALLER_TRACE);
    assert_ne!(t["span_id"], CALLER_SPAN);
    assert_eq!(t["foreign_operation"]["trace_id"], CALLER_TRACE);
    assert_eq!(t["foreign_operation"]["span_id"], CALLER_SPAN);
    assert_eq!(
        t["foreign_operation"]["entity"],
        format!("urn:nl:oin:{ngo_oin}")
    );
    assert_eq!(t["status_code"], "STATUS_CODE_OK");
    assert_eq!(t["name"], "GetCase");
    // Without a trace, or with one that does not parse: a trace of its own.
    for id in [&plain_id, &bsn_id] {
        let l = by_id(id);
        assert!(l.get("foreign_operation").is_none(), "{l}");
        assert_ne!(l["trace_id"], CALLER_TRACE);
    }
    assert_ne!(by_id(&plain_id)["trace_id"], by_id(&bsn_id)["trace_id"]);
    // A refusal for the caller's own error is not a server error.
    assert_eq!(by_id(&refused_id)["status_code"], "STATUS_CODE_UNSET");

    // The processing activity of the purpose, as configured.
    assert_eq!(
        attr(t, "dpl.core.processing_activity_id").unwrap(),
        "https://register.gemeente.example/verwerkingsactiviteiten/lvv-shelter"
    );

    // The subject: typed, sealed, different in every record.
    assert_eq!(
        attr(t, "dpl.core.data_subject_id_type").unwrap(),
        "Vreemdelingennummer"
    );
    assert_eq!(
        attr(by_id(&bsn_id), "dpl.core.data_subject_id_type").unwrap(),
        "BSN"
    );
    let sealed_t = attr(t, "dpl.core.data_subject_id")
        .unwrap()
        .as_str()
        .unwrap();
    let sealed_p = attr(by_id(&plain_id), "dpl.core.data_subject_id")
        .unwrap()
        .as_str()
        .unwrap();
    assert_ne!(sealed_t, sealed_p, "equal subjects do not link");

    // In the clear nowhere: not in the export, not in the database files.
    let mut files = vec![export.clone()];
    for suffix in ["", "-wal", "-shm"] {
        let f = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        if f.exists() {
            files.push(f);
        }
    }
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for id in [V_NUMBER, BSN_ONLY, BSN_OF_V] {
            assert!(
                !bytes.windows(id.len()).any(|w| w == id.as_bytes()),
                "{id} in the clear in {}",
                f.display()
            );
        }
    }

    // The officer's key opens it, from the database or from the export line.
    let out = sluis(
        &[
            "audit",
            "decrypt-subject",
            "--key",
            officer_key.to_str().unwrap(),
            "--request-id",
            &traced_id,
        ],
        &config_path,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("Vreemdelingennummer\t{V_NUMBER}")
    );
    let l = by_id(&bsn_id);
    let sealed = attr(l, "dpl.core.data_subject_id")
        .unwrap()
        .as_str()
        .unwrap();
    let offline = |key: &Path, request: &str| {
        sluis(
            &[
                "audit",
                "decrypt-subject",
                "--key",
                key.to_str().unwrap(),
                "--request-id",
                request,
                "--sealed",
                sealed,
                "--type",
                "BSN",
            ],
            &node_dir.join("no-such-config.toml"),
        )
    };
    let out = offline(&officer_key, &bsn_id);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("BSN\t{BSN_ONLY}")
    );
    // Bound to its record: under another request id it does not open.
    assert!(!offline(&officer_key, &plain_id).status.success());
    // Another officer's key does not open it.
    let other = node_dir.join("other-officer.key");
    let made = sluis(
        &["audit", "officer-key", "--out", other.to_str().unwrap()],
        &node_dir.join("no-such-config.toml"),
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    assert!(String::from_utf8_lossy(&made.stdout).starts_with("hpke-x25519:"));
    let out = offline(&other, &bsn_id);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not open"));

    // The record written before these fields: in the export with a trace
    // id from its request id, and the whole log verifies.
    let old = by_id(&old_id);
    assert_eq!(attr(old, "sluis.record_version").unwrap(), 2);
    assert_eq!(old["trace_id"], old_id.replace('-', ""));
    let verify = sluis(&["audit", "verify"], &config_path);
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}

/// `sluis audit officer-key` puts the public key into the node's
/// configuration, which still loads; it never overwrites a private key.
#[tokio::test]
async fn officer_key_writes_the_public_key_into_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = init::init(dir.path(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let before = Config::load(&path).unwrap().processing_log.officer_key;
    let key = dir.path().join("new-officer.key");
    let out = sluis(
        &["audit", "officer-key", "--out", key.to_str().unwrap()],
        &path,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let after = Config::load(&path).unwrap();
    assert_eq!(
        after.processing_log.officer_key.as_deref(),
        Some(public.as_str())
    );
    assert_ne!(before.as_deref(), Some(public.as_str()));
    assert_eq!(after.participants.len(), init::DEV_PARTICIPANTS.len());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the private key is its owner's alone");
    }
    let again = sluis(
        &["audit", "officer-key", "--out", key.to_str().unwrap()],
        &path,
    );
    assert!(
        !again.status.success(),
        "an existing key is not overwritten"
    );
    assert_eq!(
        Config::load(&path)
            .unwrap()
            .processing_log
            .officer_key
            .as_deref(),
        Some(public.as_str())
    );
}

/// The lines the standard expects per data subject: a listing's record
/// (`FindCases` naming two cases) is one line per subject, each naming its
/// own subject by audit pseudonym and which of how many it is, with one
/// trace and span; and a read of a case registered before subject ids were
/// sealed (its `subject_id` empty, as such a case's row is) says why it
/// has no `dpl.core.data_subject_id` instead of leaving it out silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_is_one_line_per_subject_and_a_missing_subject_id_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let path = init::init(dir.path(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let config = Config::load(&path).unwrap();
    let node = TestNode {
        node: Node::start(&config).await.unwrap(),
        dir,
        config,
    };
    let mut gemeente = node.client(GEMEENTE).await;
    let mut cases = Vec::new();
    for (name, v) in [("Amal Test", V_NUMBER), ("Oud Dossier", "2718281828")] {
        let case = register_as(&mut gemeente, name, v).await;
        grant(
            &mut gemeente,
            &case,
            vec![participant(NGO)],
            &[pb::Category::Shelter],
            &["shelter"],
        )
        .await;
        cases.push(case);
    }
    // The second case as one registered before subject ids were sealed.
    let (dir, config) = (node.dir, node.config);
    node.node.shutdown().await.unwrap();
    let old = format!(
        "UPDATE cases SET subject_id = NULL WHERE id = '{}'",
        cases[1]
    );
    exec_sql(&config.database_url().unwrap(), &old, &old).await;
    let node = TestNode {
        node: Node::start(&config).await.unwrap(),
        dir,
        config,
    };
    let mut ngo = node.client(NGO).await;
    let listed = ngo
        .cases
        .find_cases(with_actor(pb::FindCasesRequest {
            scope: pb::find_cases_request::Scope::Visible as i32,
            purpose: "shelter".into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    let listing_id = request_id(&listed);
    assert_eq!(listed.into_inner().cases.len(), 2);
    let new_read = request_id(
        &ngo.cases
            .get_case(by_id(&cases[0], "shelter"))
            .await
            .unwrap(),
    );
    let old_read = request_id(
        &ngo.cases
            .get_case(by_id(&cases[1], "shelter"))
            .await
            .unwrap(),
    );
    let config_path = node.config_path();
    let node_dir = node.dir.path().to_path_buf();
    node.node.shutdown().await.unwrap();

    let (_, lines) = export_ldv(&config_path, &node_dir);
    let of = |id: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| attr(l, "sluis.request_id") == Some(&Value::from(id)))
            .collect()
    };

    // The listing: two lines, one per subject, one trace and span.
    let listing = of(&listing_id);
    assert_eq!(listing.len(), 2, "{listing:?}");
    let subjects: Vec<&Value> = listing
        .iter()
        .map(|l| attr(l, "sluis.subject").expect("each line names its subject"))
        .collect();
    assert_ne!(subjects[0], subjects[1], "{listing:?}");
    for (i, l) in listing.iter().enumerate() {
        assert_eq!(attr(l, "sluis.listing.part"), Some(&Value::from(i + 1)));
        assert_eq!(attr(l, "sluis.listing.subjects"), Some(&Value::from(2)));
        assert_eq!(l["trace_id"], listing[0]["trace_id"]);
        assert_eq!(l["span_id"], listing[0]["span_id"]);
        assert!(attr(l, "dpl.core.data_subject_id").is_none(), "{l}");
        assert!(
            attr(l, "sluis.data_subject_id_absent")
                .and_then(Value::as_str)
                .is_some_and(|w| w.starts_with("listing")),
            "{l}"
        );
    }
    // Each subject of the listing is the subject its own read names.
    let new_line = of(&new_read);
    let old_line = of(&old_read);
    assert_eq!(new_line.len(), 1);
    assert_eq!(old_line.len(), 1);
    for read in [new_line[0], old_line[0]] {
        let s = attr(read, "sluis.subject").expect("a read names its subject");
        assert!(subjects.contains(&s), "{s} in {subjects:?}");
    }
    // The new case's read has the sealed id; the old one's says why not.
    assert!(attr(new_line[0], "dpl.core.data_subject_id").is_some());
    assert!(attr(new_line[0], "sluis.data_subject_id_absent").is_none());
    assert!(attr(old_line[0], "dpl.core.data_subject_id").is_none());
    let why = attr(old_line[0], "sluis.data_subject_id_absent")
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert!(
        why.contains("registered before subject ids were sealed"),
        "{}",
        old_line[0]
    );
}

/// What the entries of a method concern, for the export's subject id:
/// every method the log records (`validate::METHODS`) is decided here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Concerns {
    /// One case: every line of an answered call carries its subject's
    /// sealed id.
    OneCase,
    /// One case, between federation nodes (`tests/federation_trail.rs`
    /// exercises them): named as `OneCase`.
    OneCaseFederated,
    /// Entries or cases of several subjects: one line per subject, named
    /// by pseudonym (one subject: that subject's sealed id when the call
    /// was about one case).
    Listing,
    /// No data subject.
    Nobody,
}

const METHOD_SUBJECTS: &[(&str, Concerns)] = &[
    ("RegisterCase", Concerns::OneCase),
    ("UpdateCase", Concerns::OneCase),
    ("GetCase", Concerns::OneCase),
    ("FindCases", Concerns::Listing),
    ("GrantConsent", Concerns::OneCase),
    ("WithdrawConsent", Concerns::OneCase),
    ("ListConsents", Concerns::OneCase),
    ("GetConsentReceipt", Concerns::OneCase),
    ("QueryAccess", Concerns::Listing),
    ("SubjectAccessReport", Concerns::OneCase),
    ("GetCheckpoint", Concerns::Nobody),
    ("GetInclusionProof", Concerns::OneCase),
    ("GetConsistencyProof", Concerns::Nobody),
    ("ListEmergencyAlerts", Concerns::Listing),
    ("CloseEmergencyAlert", Concerns::OneCase),
    ("AcknowledgeWitnessAlarm", Concerns::Nobody),
    ("GetStatistics", Concerns::Nobody),
    ("ListStatisticsReleases", Concerns::Nobody),
    ("ReferCase", Concerns::OneCaseFederated),
    ("AcceptReferral", Concerns::OneCaseFederated),
    ("GetWitnessCheckpoint", Concerns::Nobody),
    ("AddCosignature", Concerns::Nobody),
    ("ReportCaseAccesses", Concerns::OneCaseFederated),
    ("grpc.health.v1.Health/Check", Concerns::Nobody),
    ("grpc.health.v1.Health/Watch", Concerns::Nobody),
    (
        "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        Concerns::Nobody,
    ),
    (
        "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        Concerns::Nobody,
    ),
    ("tlog-tiles/checkpoint", Concerns::Nobody),
    ("tlog-tiles/tile", Concerns::Listing),
    ("tlog-tiles/entries", Concerns::Listing),
    ("tls.handshake", Concerns::Nobody),
    ("tls.unauthenticated", Concerns::Nobody),
    ("tls.unregistered", Concerns::Nobody),
    ("node.reload", Concerns::Nobody),
    ("node.rotate_key", Concerns::Nobody),
    ("node.rename", Concerns::Nobody),
    ("node.rotate_pseudonym", Concerns::Nobody),
    ("case.erase", Concerns::OneCase),
    ("keys.rotate_data", Concerns::Nobody),
    ("federation.refused", Concerns::Nobody),
    ("federation.directory", Concerns::Nobody),
    ("unknown", Concerns::Nobody),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_about_one_case_carries_its_subjects_sealed_id() {
    use sluis::gateway::validate::METHODS;
    let decided: Vec<&str> = METHOD_SUBJECTS.iter().map(|(m, _)| *m).collect();
    for m in METHODS {
        assert!(decided.contains(m), "{m}: decide what its entries concern");
    }
    for m in &decided {
        assert!(METHODS.contains(m), "{m}: not a method the log records");
    }

    let node = TestNode::start_with(|c| c.node.checkpoint_interval_ms = 50).await;
    let mut owner = node.client(GEMEENTE).await;
    let mut avim = node.client("avim").await;
    let mut officer = node.client("fg-utrecht").await;
    // One case: the owner's listing of its own cases matches it alone.
    let (case_id, _) = register(&mut owner).await;
    let mut data = full_case("Test Persoon", "1234567890", "111222333");
    data.shelter.as_mut().unwrap().location = "LVV West".into();
    owner
        .cases
        .update_case(with_actor(pb::UpdateCaseRequest {
            case_id: case_id.clone(),
            data: Some(pb::CaseData {
                shelter: data.shelter,
                ..Default::default()
            }),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(find_own(&mut owner).await.into_inner().cases.len(), 1);
    let consent = grant(
        &mut owner,
        &case_id,
        vec![participant(NGO)],
        &[pb::Category::Shelter],
        &["shelter"],
    )
    .await;
    owner
        .consents
        .list_consents(with_actor(pb::ListConsentsRequest {
            case_id: case_id.clone(),
        }))
        .await
        .unwrap();
    owner
        .consents
        .get_consent_receipt(with_actor(pb::GetConsentReceiptRequest {
            consent_id: consent.consent_id.clone(),
        }))
        .await
        .unwrap();
    owner
        .consents
        .withdraw_consent(with_actor(pb::WithdrawConsentRequest {
            consent_id: consent.consent_id.clone(),
            note: String::new(),
            request_id: String::new(),
        }))
        .await
        .unwrap();
    // An emergency read, its alert closed by the officer.
    let read = avim
        .cases
        .get_case(with_actor(pb::GetCaseRequest {
            categories: vec![pb::Category::Shelter as i32],
            emergency_justification: "acute threat reported at the shelter location".into(),
            ..by_id(&case_id, "case_consultation")
        }))
        .await
        .unwrap();
    let access_id = request_id(&read);
    officer
        .audit
        .close_emergency_alert(pb::CloseEmergencyAlertRequest {
            access_record_id: access_id.clone(),
            verdict: pb::Verdict::Justified as i32,
            note: "justified by the threat".into(),
        })
        .await
        .unwrap();
    officer
        .audit
        .get_inclusion_proof(pb::GetInclusionProofRequest {
            entry: Some(pb::get_inclusion_proof_request::Entry::AccessRecordId(
                access_id,
            )),
            tree_size: 0,
        })
        .await
        .unwrap();
    query_case(&mut officer, &case_id).await;
    // A read of a case this node does not hold.
    let missing = uuid::Uuid::now_v7().to_string();
    let e = owner
        .cases
        .get_case(with_actor(by_id(&missing, "shelter")))
        .await
        .unwrap_err();
    let missing_read = request_id_of(e.metadata());
    // An officer's query about it: it names the case id asked for, and
    // says the case was not reached.
    let e = officer
        .audit
        .query_access(pb::QueryAccessRequest {
            case_id: missing.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    let missing_query = request_id_of(e.metadata());
    report_record(&node, &mut officer, &case_id).await;

    let config_path = node.config_path();
    let node_dir = node.dir.path().to_path_buf();
    node.node.shutdown().await.unwrap();
    let (_, lines) = export_ldv(&config_path, &node_dir);
    let mut seen = std::collections::BTreeSet::new();
    for line in &lines {
        let method = line["name"].as_str().unwrap();
        let concerns = METHOD_SUBJECTS
            .iter()
            .find(|(m, _)| *m == method)
            .map(|(_, c)| *c)
            .unwrap_or_else(|| panic!("{method}: not decided"));
        let ok = attr(line, "sluis.grpc_status") == Some(&Value::from("OK"));
        let has_id = attr(line, "dpl.core.data_subject_id").is_some();
        let absent = attr(line, "sluis.data_subject_id_absent");
        // Never both, and never neither on a line about a subject.
        assert!(!(has_id && absent.is_some()), "{line}");
        if attr(line, "sluis.case_id").is_some() || attr(line, "sluis.subject").is_some() {
            assert!(has_id || absent.is_some(), "{line}");
        }
        let listed = attr(line, "sluis.listing.subjects").is_some();
        let one_case = match concerns {
            Concerns::OneCase | Concerns::OneCaseFederated => true,
            // A listing that matched one case, a query about one case.
            Concerns::Listing => !listed && attr(line, "sluis.case_id").is_some(),
            Concerns::Nobody => {
                assert!(!has_id && absent.is_none(), "{line}");
                false
            }
        };
        if ok && (one_case || (method == "FindCases" && !listed)) {
            assert!(has_id, "{method}: one case, yet no sealed id: {line}");
            seen.insert(method.to_string());
        }
    }
    let missing_line = lines
        .iter()
        .find(|l| attr(l, "sluis.request_id") == Some(&Value::from(missing_read.as_str())))
        .expect("the refused read is in the export");
    // It names no case and no subject, so it claims no absent id either.
    for key in [
        "sluis.case_id",
        "sluis.subject",
        "sluis.data_subject_id_absent",
    ] {
        assert!(attr(missing_line, key).is_none(), "{missing_line}");
    }
    let query_line = lines
        .iter()
        .find(|l| attr(l, "sluis.request_id") == Some(&Value::from(missing_query.as_str())))
        .expect("the refused query is in the export");
    assert!(
        attr(query_line, "sluis.data_subject_id_absent")
            .and_then(Value::as_str)
            .is_some_and(|w| w.starts_with("case not reached")),
        "{query_line}"
    );
    // Every one-case method this node serves on its own (retention runs
    // on its schedule: `tests/retention.rs`), and the listings about one.
    let exercised = METHOD_SUBJECTS
        .iter()
        .filter(|(m, c)| *c == Concerns::OneCase && *m != "case.erase")
        .map(|(m, _)| *m)
        .chain(["FindCases", "QueryAccess"]);
    for m in exercised {
        assert!(seen.contains(m), "{m}: no line with the sealed id");
    }
}

/// Registers a case of `name` with V-number `v` (no BSN); its id.
async fn register_as(owner: &mut sluis::rpc::Clients, name: &str, v: &str) -> String {
    owner
        .cases
        .register_case(with_actor(pb::RegisterCaseRequest {
            request_id: String::new(),
            data: Some(full_case(name, v, "")),
        }))
        .await
        .unwrap()
        .into_inner()
        .case_id
}

/// The caller's `FindCases` of its own cases (one page).
async fn find_own(owner: &mut sluis::rpc::Clients) -> tonic::Response<pb::FindCasesResponse> {
    owner
        .cases
        .find_cases(with_actor(pb::FindCasesRequest {
            scope: pb::find_cases_request::Scope::Own as i32,
            ..Default::default()
        }))
        .await
        .unwrap()
}

/// The access record ids of the officer's `QueryAccess` about `case_id`.
async fn query_case(officer: &mut sluis::rpc::Clients, case_id: &str) -> Vec<String> {
    let mut stream = officer
        .audit
        .query_access(pb::QueryAccessRequest {
            case_id: case_id.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut ids = Vec::new();
    while let Some(m) = stream.message().await.unwrap() {
        ids.push(m.entry.unwrap().access_record_id);
    }
    ids
}

/// The record of the officer's subject access report of `case_id`.
async fn report_record(
    node: &TestNode,
    officer: &mut sluis::rpc::Clients,
    case_id: &str,
) -> AccessRecord {
    let r = officer
        .audit
        .subject_access_report(pb::SubjectAccessReportRequest {
            subject: Some(pb::subject_access_report_request::Subject::CaseId(
                case_id.into(),
            )),
        })
        .await
        .unwrap();
    record_of(node, &request_id(&r)).await
}

/// A case registered before subject ids were sealed (its `subject_id`
/// NULL): the node started on `config` again after the change.
async fn forget_subject_id(node: TestNode, case_id: &str) -> TestNode {
    let (dir, config) = (node.dir, node.config);
    node.node.shutdown().await.unwrap();
    let old = format!("UPDATE cases SET subject_id = NULL WHERE id = '{case_id}'");
    exec_sql(&config.database_url().unwrap(), &old, &old).await;
    TestNode {
        node: Node::start(&config).await.unwrap(),
        dir,
        config,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resending_the_same_identity_fills_an_old_cases_subject_id() {
    let node = TestNode::start().await;
    let mut owner = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut owner).await;
    let node = forget_subject_id(node, &case_id).await;
    let mut owner = node.client(GEMEENTE).await;
    let mut officer = node.client("fg-utrecht").await;
    let before = report_record(&node, &mut officer, &case_id).await;
    assert!(before.ldv.unwrap().data_subject.is_none(), "an old case");

    // The owner resends the identity the case holds: nothing else changes.
    let same = full_case("Test Persoon", "1234567890", "111222333").identity;
    let updated = owner
        .cases
        .update_case(with_actor(pb::UpdateCaseRequest {
            case_id: case_id.clone(),
            data: Some(pb::CaseData {
                identity: same,
                ..Default::default()
            }),
            ..Default::default()
        }))
        .await
        .unwrap();
    let update = record_of(&node, &request_id(&updated)).await;
    assert_eq!(updated.into_inner().version, 1, "no new version");
    assert!(
        update.ldv.unwrap().data_subject.is_some(),
        "{}",
        update.detail
    );
    assert!(update.detail.contains("subject id"), "{}", update.detail);

    // Stored: the next record about the case carries it.
    let after = report_record(&node, &mut officer, &case_id).await;
    assert!(after.ldv.unwrap().data_subject.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_about_a_case_includes_the_listings_that_named_it() {
    let node = TestNode::start().await;
    let mut owner = node.client(GEMEENTE).await;
    let mut cases = Vec::new();
    for (name, v) in [("Amal Test", V_NUMBER), ("Oud Dossier", "2718281828")] {
        cases.push(register_as(&mut owner, name, v).await);
    }
    let listed = find_own(&mut owner).await;
    let listing = request_id(&listed);
    assert_eq!(listed.into_inner().cases.len(), 2);

    // Over the node's QueryAccess, as the officer.
    let mut officer = node.client("fg-utrecht").await;
    let ids = query_case(&mut officer, &cases[0]).await;
    assert!(ids.contains(&listing), "{ids:?}");

    // From the database, in every export format.
    let config_path = node.config_path();
    let node_dir = node.dir.path().to_path_buf();
    node.node.shutdown().await.unwrap();
    for format in ["jsonl", "csv", "ldv"] {
        let out_file = node_dir.join(format!("case.{format}"));
        let out = sluis(
            &[
                "audit",
                "export",
                "--format",
                format,
                "--case",
                &cases[0],
                "--out",
                out_file.to_str().unwrap(),
            ],
            &config_path,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(&out_file).unwrap();
        assert!(text.contains(&listing), "{format}: {text}");
        assert!(text.contains(&cases[0]), "{format}: {text}");
    }
}
