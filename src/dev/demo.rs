//! `sluis demo`: a realistic LVV scenario against a real node over mTLS,
//! ending with a second municipality's node and a referral
//! (`referral_demo`).
//!
//! Every party acts with its own client certificate. The demo prints who saw
//! what and the access log, and reports failure if any outcome differs from
//! what the policy and the consents say it must be.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use tonic::Code;

use crate::config::Config;
use crate::dev::init;
use crate::dev::sample::{self, NGO, OWNER, OWNER_ACTOR, with_actor};
use crate::model::Category;
use crate::net::client::{self, ClientPem};
use crate::node::Node;
use crate::rpc::Clients;
use crate::rpc::proto::v1 as pb;
use crate::stats::Quarter;
use crate::tlog::AccessRecord;
use crate::tlog::note;

/// Which sample case the demo registers (any has the same shape).
const CASE: u64 = 1;

/// Cases registered for the statistics step.
const POPULATION: u64 = 1500;

/// The region's other municipalities, registered with the demo node for
/// the statistics step: (participant id, name, OIN; fictional). With the
/// cases spread over three municipalities, no one of them holds nearly all
/// of a node total, so the monitor's table shows figures as well as "< 10"
/// and "x" (with one municipality, every small node total is one it could
/// read its neighbours' share from, and is hidden).
const REGION: [(&str, &str, &str); 2] = [
    (
        "gemeente-amersfoort",
        "Gemeente Amersfoort",
        "00000001000000000011",
    ),
    ("gemeente-zeist", "Gemeente Zeist", "00000001000000000012"),
];

/// Of every ten cases of the statistics step, how many each municipality
/// registers: Utrecht, then [`REGION`] in order.
const SHARES: [u64; 3] = [5, 3, 2];

/// Registers [`REGION`]'s municipalities with the node's dev CA (client
/// certificates in `pki/clients`), unless the configuration has them.
fn add_region(dir: &Path, config: &mut Config) -> anyhow::Result<()> {
    let pki = dir.join("pki");
    let pem = |p: &Path| crate::files::read_to_string(p, crate::files::Kind::Pem);
    let ca = crate::net::pki::CertAuthority::from_pem(
        &pem(&pki.join("ca.pem"))?,
        &pem(&pki.join("ca.key"))?,
    )?;
    for (id, name, oin) in REGION {
        if config.participants.iter().any(|p| p.id == id) {
            continue;
        }
        let cert = ca.issue_client(&crate::net::pki::ClientCertSpec::new(name, Some(oin)))?;
        std::fs::write(
            pki.join("clients").join(format!("{id}.pem")),
            &cert.cert_pem,
        )?;
        std::fs::write(pki.join("clients").join(format!("{id}.key")), &cert.key_pem)?;
        config.participants.push(crate::config::Participant {
            id: id.into(),
            name: name.into(),
            role: "municipality".into(),
            oin: Some(oin.into()),
            spki_sha256: None,
        });
    }
    Ok(())
}

pub(super) struct Checks {
    failed: Vec<String>,
}

impl Checks {
    pub(super) fn expect(&mut self, ok: bool, what: &str) {
        if ok {
            println!("    ✓ {what}");
        } else {
            println!("    ✗ {what}");
            self.failed.push(what.to_string());
        }
    }
}

pub(super) async fn clients_for(
    dir: &Path,
    config: &Config,
    node: &Node,
    id: &str,
) -> anyhow::Result<Clients> {
    let ca =
        crate::files::read_to_string(&config.path(&config.tls.client_ca), crate::files::Kind::Pem)?;
    let cert = crate::files::read_to_string(
        &dir.join("pki/clients").join(format!("{id}.pem")),
        crate::files::Kind::Pem,
    )?;
    let key = crate::files::read_to_string(
        &dir.join("pki/clients").join(format!("{id}.key")),
        crate::files::Kind::Pem,
    )?;
    let channel = client::connect(
        node.local_addr,
        "localhost",
        &ClientPem {
            ca,
            identity: Some((cert, key)),
        },
    )
    .await?;
    Ok(Clients::new(channel))
}

fn names(codes: &[i32]) -> BTreeSet<String> {
    codes
        .iter()
        .filter_map(|c| Category::from_code(*c))
        .map(|c| c.to_string())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn reason_name(r: i32) -> String {
    pb::WithholdReason::try_from(r)
        .map(|r| {
            r.as_str_name()
                .trim_start_matches("WITHHOLD_REASON_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| r.to_string())
}

pub(super) fn show(who: &str, purpose: &str, r: &pb::GetCaseResponse) {
    println!("  {who} asks for everything, purpose '{purpose}'");
    println!("    pseudonym it sees: {}", r.subject_pseudonym);
    let released: Vec<String> = names(&r.released).into_iter().collect();
    println!(
        "    released: {}",
        if released.is_empty() {
            "nothing".to_string()
        } else {
            released.join(", ")
        }
    );
    if let Some(id) = r.data.as_ref().and_then(|d| d.identity.as_ref()) {
        // The demo shows which identity fields arrived, not their values.
        let fields: Vec<&str> = [
            ("name", !id.name.is_empty()),
            ("date of birth", !id.date_of_birth.is_empty()),
            ("V-number", !id.v_number.is_empty()),
            ("BSN", !id.bsn.is_empty()),
        ]
        .iter()
        .filter(|(_, present)| *present)
        .map(|(n, _)| *n)
        .collect();
        println!("    identity fields received: {}", fields.join(", "));
    }
    for w in &r.withheld {
        let cat = Category::from_code(w.category)
            .map(|c| c.to_string())
            .unwrap_or_default();
        println!(
            "    withheld {cat:<20} {:<36} {}",
            reason_name(w.reason),
            w.detail
        );
    }
}

pub(super) async fn read(
    c: &mut Clients,
    case_id: &str,
    purpose: &str,
) -> Result<pb::GetCaseResponse, tonic::Status> {
    c.cases
        .get_case(pb::GetCaseRequest {
            subject: Some(pb::get_case_request::Subject::CaseId(case_id.into())),
            purpose: purpose.into(),
            categories: vec![],
            emergency_justification: String::new(),
        })
        .await
        .map(|r| r.into_inner())
}

/// A fresh folder for a throw-away node, removed with all in it when
/// dropped. Written here instead of taken from a temporary-folder crate so
/// that the gateway binary carries no dependency for the demo alone.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> std::io::Result<Scratch> {
        let name = format!("sluis-demo-{}", uuid::Uuid::now_v7().simple());
        let path = std::env::temp_dir().join(name);
        let mut builder = std::fs::DirBuilder::new();
        // The node's keys go in here: for this user only.
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        // Not `recursive`: creating fails if the name exists, even as a link.
        builder.create(&path)?;
        Ok(Scratch(path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the scenario. `data_dir` keeps the node's files; otherwise a
/// temporary folder is used and removed. Returns whether every check passed.
pub(crate) async fn run(data_dir: Option<&Path>) -> anyhow::Result<bool> {
    let scratch;
    let dir = match data_dir {
        Some(d) => d.to_path_buf(),
        None => {
            scratch = Scratch::new()?;
            scratch.0.clone()
        }
    };
    println!("sluis demo: an LVV case shared between five parties\n");
    let config_path = if dir.join(init::CONFIG_FILE).exists() {
        dir.join(init::CONFIG_FILE)
    } else {
        init::init(&dir, "127.0.0.1:0".parse()?).await?
    };
    let mut config = Config::load(&config_path)?;
    config.node.listen = "127.0.0.1:0".parse()?;
    add_region(&dir, &mut config)?;
    let node = Node::start(&config).await?;
    println!(
        "node listening on {} (mTLS, TLS 1.3), files in {}\n",
        node.local_addr,
        dir.display()
    );

    let mut checks = Checks { failed: vec![] };
    let log_before = node.store.access_log_len().await?;
    let mut gemeente = clients_for(&dir, &config, &node, OWNER).await?;
    let mut ind = clients_for(&dir, &config, &node, "ind").await?;
    let mut dtv = clients_for(&dir, &config, &node, "dtv").await?;
    let mut avim = clients_for(&dir, &config, &node, "avim").await?;
    let mut ngo = clients_for(&dir, &config, &node, NGO).await?;
    let mut monitor = clients_for(&dir, &config, &node, "monitor-jenv").await?;

    println!("1. Gemeente Utrecht registers a case (acting employee {OWNER_ACTOR})");
    let reg = gemeente
        .cases
        .register_case(with_actor(
            pb::RegisterCaseRequest {
                data: Some(sample::case_data(CASE)),
                request_id: uuid::Uuid::now_v7().to_string(),
            },
            Some(OWNER_ACTOR),
        ))
        .await?
        .into_inner();
    let case_id = reg.case_id.clone();
    println!(
        "    case {case_id}, the municipality's pseudonym {}\n",
        reg.subject_pseudonym
    );

    println!("2. The migrant consents, recorded by the municipality:");
    println!(
        "   a) identity, perspective and shelter to VluchtelingenWerk, for case consultation, shelter and guidance"
    );
    let [to_ngo, to_dtv] = sample::consents();
    let c1 = gemeente
        .consents
        .grant_consent(with_actor(
            to_ngo.request(&case_id, "DMS-2026-0042 (signed consent form)".into()),
            Some(OWNER_ACTOR),
        ))
        .await?
        .into_inner()
        .consent
        .unwrap_or_default();
    println!("   b) perspective to DT&V (the role), for return");
    gemeente
        .consents
        .grant_consent(with_actor(
            to_dtv.request(&case_id, "DMS-2026-0043 (signed consent form)".into()),
            Some(OWNER_ACTOR),
        ))
        .await?;
    println!();

    println!("3. Each party reads the case with its own certificate");
    let mut pseudonyms = BTreeSet::new();
    pseudonyms.insert(reg.subject_pseudonym.clone());
    let r = read(&mut dtv, &case_id, "return").await?;
    show("DT&V", "return", &r);
    checks.expect(
        names(&r.released) == set(&["perspective", "residence_procedure"]),
        "DT&V receives perspective (consent) and residence procedure (legal basis), nothing else",
    );
    pseudonyms.insert(r.subject_pseudonym.clone());
    let dtv_pseudonym = r.subject_pseudonym.clone();

    let r = read(&mut ind, &case_id, "legalisation").await?;
    show("IND", "legalisation", &r);
    checks.expect(
        names(&r.released) == set(&["residence_procedure"]),
        "IND receives only the residence procedure (no consent for more)",
    );
    pseudonyms.insert(r.subject_pseudonym.clone());

    let r = read(&mut avim, &case_id, "return").await?;
    show("AVIM", "return", &r);
    checks.expect(
        names(&r.released) == set(&["safety"]),
        "AVIM receives only safety (legal basis); identity needs consent",
    );
    pseudonyms.insert(r.subject_pseudonym.clone());

    let r = read(&mut ngo, &case_id, "case_consultation").await?;
    show("VluchtelingenWerk", "case_consultation", &r);
    checks.expect(
        names(&r.released) == set(&["identity", "perspective", "shelter"]),
        "VluchtelingenWerk receives identity, perspective and shelter (consent)",
    );
    pseudonyms.insert(r.subject_pseudonym.clone());
    let ngo_pseudonym = r.subject_pseudonym.clone();

    let r = read(&mut monitor, &case_id, "monitoring").await?;
    show("Monitor (JenV)", "monitoring", &r);
    checks.expect(
        r.released.is_empty(),
        "the national monitor receives no personal data",
    );
    checks.expect(
        pseudonyms.len() == 5,
        "five parties, five different pseudonyms for the same migrant",
    );
    println!();

    println!("4. DT&V asks without stating a purpose");
    let e = read(&mut dtv, &case_id, "").await.err();
    if let Some(s) = &e {
        println!("    refused: {:?}: {}", s.code(), s.message());
    }
    checks.expect(
        e.as_ref()
            .is_some_and(|s| s.code() == Code::InvalidArgument),
        "a read without a purpose is refused with INVALID_ARGUMENT",
    );
    println!("   VluchtelingenWerk tries DT&V's pseudonym");
    let e = ngo
        .cases
        .get_case(pb::GetCaseRequest {
            subject: Some(pb::get_case_request::Subject::SubjectPseudonym(
                dtv_pseudonym,
            )),
            purpose: "case_consultation".into(),
            categories: vec![],
            emergency_justification: String::new(),
        })
        .await
        .err();
    checks.expect(
        e.as_ref().is_some_and(|s| s.code() == Code::NotFound),
        "a pseudonym issued to another party is NOT_FOUND",
    );
    println!();

    println!(
        "5. The migrant withdraws consent (a); VluchtelingenWerk reads again by its pseudonym"
    );
    gemeente
        .consents
        .withdraw_consent(with_actor(
            pb::WithdrawConsentRequest {
                consent_id: c1.consent_id.clone(),
                note: "withdrawn in conversation".into(),
                request_id: uuid::Uuid::now_v7().to_string(),
            },
            Some(OWNER_ACTOR),
        ))
        .await?;
    let r = ngo
        .cases
        .get_case(pb::GetCaseRequest {
            subject: Some(pb::get_case_request::Subject::SubjectPseudonym(
                ngo_pseudonym.clone(),
            )),
            purpose: "case_consultation".into(),
            categories: vec![],
            emergency_justification: String::new(),
        })
        .await?
        .into_inner();
    show("VluchtelingenWerk", "case_consultation", &r);
    checks.expect(
        r.released.is_empty(),
        "after withdrawal nothing is released to the NGO",
    );
    checks.expect(
        r.withheld
            .iter()
            .any(|w| w.reason == pb::WithholdReason::ConsentWithdrawn as i32),
        "the NGO is told the consent was withdrawn",
    );
    checks.expect(
        r.subject_pseudonym == ngo_pseudonym,
        "the NGO's pseudonym is stable",
    );
    println!();

    println!("6. The migrant's receipt for consent (a), signed by the node");
    let receipt = gemeente
        .consents
        .get_consent_receipt(with_actor(
            pb::GetConsentReceiptRequest {
                consent_id: c1.consent_id.clone(),
            },
            Some(OWNER_ACTOR),
        ))
        .await?
        .into_inner();
    for line in receipt.signed_note.lines() {
        println!("    | {line}");
    }
    let verified = note::verify(&receipt.signed_note, &receipt.verifier_key).is_ok();
    checks.expect(
        verified,
        "the receipt verifies offline with the node's public key",
    );
    println!();

    println!("7. The access log (every request, allowed or not; subjects pseudonymised)");
    let rows = node.store.access_log(log_before, 1000).await?;
    println!(
        "    {:>3}  {:<22} {:<16} {:<18} {:<18} {:<10} released / withheld",
        "#", "caller", "role", "method", "purpose", "decision"
    );
    for row in &rows {
        let rec = AccessRecord::decode(&row.record);
        let (released, withheld) = rec
            .as_ref()
            .map(|r| {
                (
                    r.released
                        .iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                    r.withheld.len(),
                )
            })
            .unwrap_or_default();
        println!(
            "    {:>3}  {:<22} {:<16} {:<18} {:<18} {:<10} {} / {} withheld",
            row.seq,
            row.caller,
            row.role,
            row.method,
            row.purpose.as_deref().unwrap_or("-"),
            row.decision,
            if released.is_empty() {
                "-".to_string()
            } else {
                released
            },
            withheld
        );
    }
    checks.expect(
        rows.len() == 13,
        "each of the 13 requests above has exactly one access record",
    );
    println!();

    println!("8. The privacy officer of Gemeente Utrecht asks for the migrant's access report");
    let mut officer = clients_for(&dir, &config, &node, "fg-utrecht").await?;
    let report = officer
        .audit
        .subject_access_report(pb::SubjectAccessReportRequest {
            subject: Some(pb::subject_access_report_request::Subject::CaseId(
                case_id.clone(),
            )),
        })
        .await?
        .into_inner();
    for line in report.text.lines() {
        println!("    | {line}");
    }
    checks.expect(
        report.entries.len() == 12,
        "the report lists the 12 accesses to this migrant's case",
    );
    let by_v_number = officer
        .audit
        .subject_access_report(pb::SubjectAccessReportRequest {
            subject: Some(pb::subject_access_report_request::Subject::VNumber(
                sample::v_number(CASE),
            )),
        })
        .await?
        .into_inner();
    checks.expect(
        by_v_number.case_ids.contains(&case_id),
        "asked by V-number, the node finds the case through its keyed-hash index",
    );
    let denied = dtv
        .audit
        .get_checkpoint(pb::GetCheckpointRequest { size: 0 })
        .await
        .err();
    checks.expect(
        denied.is_some_and(|s| s.code() == Code::PermissionDenied),
        "DT&V may not read the access log",
    );
    println!();

    println!("9. The national monitor asks for last quarter's durable solutions");
    let today = time::OffsetDateTime::now_utc().date();
    let this_quarter = Quarter::of(today);
    let last = Quarter::of(this_quarter.first_day() - time::Duration::days(1));
    let mut region = Vec::new();
    for (id, ..) in REGION {
        region.push(clients_for(&dir, &config, &node, id).await?);
    }
    for i in 0..POPULATION {
        let registrant = match i % 10 {
            n if n < SHARES[0] => &mut gemeente,
            n if n < SHARES[0] + SHARES[1] => &mut region[0],
            _ => &mut region[1],
        };
        registrant
            .cases
            .register_case(with_actor(
                pb::RegisterCaseRequest {
                    data: Some(sample::population_case(i, this_quarter.first_day())),
                    request_id: uuid::Uuid::now_v7().to_string(),
                },
                Some(OWNER_ACTOR),
            ))
            .await?;
    }
    println!(
        "    (Utrecht, Amersfoort and Zeist have registered {POPULATION} more cases with intakes in the last half year, half of them Utrecht's; fictional)"
    );
    let stats_before = node.store.access_log_len().await?;
    let durable_solutions = pb::GetStatisticsRequest {
        table: pb::StatisticsTable::DurableSolutions as i32,
        year: last.year as u32,
        quarter: u32::from(last.q),
        by_municipality: false,
        purpose: "monitoring".into(),
        network: false,
    };
    let table = monitor
        .stats
        .get_statistics(durable_solutions.clone())
        .await?
        .into_inner();
    for line in table.text.lines() {
        println!("    | {line}");
    }
    let shown_safely = table.figures.iter().all(|f| {
        f.shown == "< 10" || f.shown == "x" || f.shown.parse::<u64>().is_ok_and(|n| n >= 10)
    });
    checks.expect(
        shown_safely && !table.figures.is_empty(),
        "the monitor gets a protected table: every figure is at least 10, \"< 10\" or suppressed",
    );
    let counts = |t: &pb::GetStatisticsResponse| {
        t.figures
            .iter()
            .filter(|f| f.kind == pb::statistics_figure::Kind::Count as i32)
            .count()
    };
    checks.expect(
        counts(&table) > 0,
        "the node's table shows real figures (no one municipality holds nearly all its cases)",
    );
    let by_municipality = monitor
        .stats
        .get_statistics(pb::GetStatisticsRequest {
            by_municipality: true,
            ..durable_solutions.clone()
        })
        .await?
        .into_inner();
    for line in by_municipality.text.lines() {
        println!("    | {line}");
    }
    checks.expect(
        counts(&by_municipality) > 0 && by_municipality.figures.iter().any(|f| f.shown == "x"),
        "per municipality, figures are shown, and those that would give a \"< 10\" away are suppressed (\"x\")",
    );
    let recorded = node.store.access_log(stats_before, 10).await?;
    if let Some(rec) = recorded
        .iter()
        .filter(|r| r.method == "GetStatistics")
        .find_map(|r| AccessRecord::decode(&r.record))
    {
        println!(
            "    access record: {} ({}): {}",
            rec.caller,
            rec.decision.as_str(),
            rec.detail
        );
    }
    checks.expect(
        recorded
            .iter()
            .any(|r| r.method == "GetStatistics" && r.caller == "monitor-jenv"),
        "the statistics request is in the access log",
    );
    println!(
        "    release sha256 {}…, computed {}",
        table.release_sha256.get(..16).unwrap_or_default(),
        table
            .as_of
            .map(|t| crate::model::clock::rfc3339(t.seconds * 1000))
            .unwrap_or_default()
    );
    let again = monitor
        .stats
        .get_statistics(durable_solutions.clone())
        .await?
        .into_inner();
    checks.expect(
        again.release_sha256 == table.release_sha256 && again.figures == table.figures,
        "asked again, the monitor gets the same release (a quarter is published once)",
    );
    let e = dtv.stats.get_statistics(durable_solutions).await.err();
    checks.expect(
        e.is_some_and(|s| s.code() == Code::PermissionDenied),
        "DT&V gets no statistics (no rule with a legal basis for it)",
    );
    println!();

    println!(
        "10. The log is verified: a signed checkpoint, an inclusion proof, and a full recomputation"
    );
    let key = node.verifier_key();
    let proof = loop {
        match officer
            .audit
            .get_inclusion_proof(pb::GetInclusionProofRequest {
                entry: Some(pb::get_inclusion_proof_request::Entry::Index(
                    log_before as u64 + 3,
                )),
                tree_size: 0,
            })
            .await
        {
            Ok(p) => break p.into_inner(),
            // The node waits for the next checkpoint itself; only a
            // writer that fell behind makes it say retry.
            Err(s) if s.code() == Code::Unavailable => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await
            }
            Err(s) => return Err(s.into()),
        }
    };
    let cp = proof.checkpoint.clone().unwrap_or_default();
    let signed = crate::tlog::checkpoint::Checkpoint::verify(&cp.signed_note, &key);
    let hashes: Vec<crate::tlog::merkle::Hash> = proof
        .hashes
        .iter()
        .filter_map(|h| h.as_slice().try_into().ok())
        .collect();
    let leaf = proof
        .entry
        .as_ref()
        .map(|e| e.leaf.clone())
        .unwrap_or_default();
    let included = signed.as_ref().is_ok_and(|c| {
        crate::tlog::merkle::verify_inclusion(
            proof.index,
            c.size,
            &crate::tlog::merkle::leaf_hash(&leaf),
            &hashes,
            &c.root,
        )
        .is_ok()
    });
    println!("    checkpoint (signed by the node):");
    for line in cp.signed_note.lines() {
        println!("    | {line}");
    }
    println!(
        "    DT&V's read is entry {} of {}; its inclusion proof has {} hashes",
        proof.index,
        proof.tree_size,
        proof.hashes.len()
    );
    checks.expect(included, "DT&V's read is provably in the signed log");
    node.shutdown().await?;
    // As a privacy officer would: offline, on the node's files.
    let (store, _) =
        crate::store::Store::open(&config.database_url()?, &config.pool_settings(), false).await?;
    let report =
        crate::tlog::verify::verify_log(&store, &key, Some(&cp.signed_note), |_, _| {}).await?;
    println!(
        "    recomputed {} entries and {} tree nodes, checked {} signed checkpoints",
        report.entries, report.tree_nodes, report.checkpoints
    );
    checks.expect(
        report.intact(),
        "the whole access log verifies and extends the checkpoint",
    );
    store.close().await;
    println!();

    let ops = Scratch::new()?;
    super::referral_demo::run(&dir, &config, &ops.0, &case_id, &ngo_pseudonym, &mut checks).await?;

    if checks.failed.is_empty() {
        println!("demo passed: every party saw exactly what policy and consent allow.");
        Ok(true)
    } else {
        println!(
            "demo FAILED: {} expectation(s) not met:",
            checks.failed.len()
        );
        for f in &checks.failed {
            println!("  - {f}");
        }
        Ok(false)
    }
}
