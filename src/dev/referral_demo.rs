//! The demo's second municipality: the migrant moves from Utrecht to
//! Amsterdam. A second node (its own CA and keys) joins the first in a
//! federation with a signed directory and one pseudonym key; Utrecht refers
//! the case there with the migrant's consent, and the demo checks that the
//! case moved whole, that every party keeps its pseudonym, and that both
//! logs verify.

use std::path::{Path, PathBuf};

use tonic::Code;

use crate::config::{Config, Participant};
use crate::dev::demo::{Checks, clients_for, read, show};
use crate::dev::init;
use crate::dev::sample::{NGO, OWNER, OWNER_ACTOR, with_actor};
use crate::federation::directory::{self, Directory, DirectoryNode, Host};
use crate::federation::pseudonym::FederationPseudonyms;
use crate::federation::witness::{WitnessOutcome, WitnessSigner, cosigned_checkpoint};
use crate::federation::{FederationConfig, FederationKey};
use crate::net::pki::{CertAuthority, ClientCertSpec};
use crate::node::Node;
use crate::rpc::proto::v1 as pb;

/// The second municipality, registered on the second node.
const AMSTERDAM: &str = "gemeente-amsterdam";
const AMSTERDAM_OIN: &str = "00000001000000000008";
const SECOND_NODE: &str = "sluis-amsterdam.example";

/// A node folder joined to the federation: its CA, node certificate and
/// the port peers call it on.
struct Member {
    dir: PathBuf,
    config: Config,
    ca: CertAuthority,
    node_cert_der: Vec<u8>,
    port: u16,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn read_file(p: &Path) -> anyhow::Result<String> {
    Ok(crate::files::read_to_string(p, crate::files::Kind::Pem)?)
}

fn member(dir: &Path, config: Config) -> anyhow::Result<Member> {
    let pki = dir.join("pki");
    let ca = CertAuthority::from_pem(
        &read_file(&pki.join("ca.pem"))?,
        &read_file(&pki.join("ca.key"))?,
    )?;
    // One node key both ways: the peer pins it on the calls this node makes
    // and on its federation listener's certificate (`tls.cert`).
    let node_cert = ca.issue_node(
        &format!("sluis node {}", config.node.name),
        &["localhost".into(), "127.0.0.1".into()],
    )?;
    std::fs::write(dir.join("node.pem"), &node_cert.cert_pem)?;
    std::fs::write(dir.join("node.key"), &node_cert.key_pem)?;
    let tls = config.tls_files();
    std::fs::write(&tls.cert, &node_cert.cert_pem)?;
    std::fs::write(&tls.key, &node_cert.key_pem)?;
    Ok(Member {
        dir: dir.to_path_buf(),
        config,
        ca,
        node_cert_der: node_cert.cert_der,
        port: free_port()?,
    })
}

/// The member's witness key (made once, in its folder) and its verifier
/// key, the directory's `witness-key` for it.
fn witness_key(m: &Member) -> anyhow::Result<String> {
    let path = m.dir.join("witness.key");
    let name = &m.config.node.name;
    Ok(if path.exists() {
        WitnessSigner::load(name, &path)?.verifier_key()
    } else {
        WitnessSigner::generate(name, &path)?
    })
}

fn directory_node(m: &Member, code: &str, name: &str, hosts: &[(&str, &str)]) -> DirectoryNode {
    let keys = crate::gateway::vault::Keys::load(&m.config.path(&m.config.node.keys_dir));
    let log_key = keys
        .map(|k| crate::tlog::note::verifier_key(&m.config.node.name, &k.signing_public_key()))
        .unwrap_or_default();
    DirectoryNode {
        id: m.config.node.name.clone(),
        municipality_code: code.into(),
        municipality: name.into(),
        endpoint: format!("127.0.0.1:{}", m.port),
        server_name: "localhost".into(),
        tls_spki_sha256: crate::net::x509::spki_sha256_hex(&m.node_cert_der).unwrap_or_default(),
        tls_ca_sha256: crate::net::x509::cert_sha256_hex(&m.ca.cert_der()),
        log_key,
        witness_key: None,
        hosts: hosts
            .iter()
            .map(|(p, r)| Host {
                participant: (*p).into(),
                role: (*r).into(),
            })
            .collect(),
    }
}

/// Step 11. `first` is the demo's node folder (its node stopped); the
/// second node lives in `first/amsterdam`, the operator's keys in `ops`.
pub(super) async fn run(
    first_dir: &Path,
    first_config: &Config,
    ops: &Path,
    case_id: &str,
    ngo_pseudonym: &str,
    checks: &mut Checks,
) -> anyhow::Result<()> {
    println!("11. The migrant moves to Amsterdam: a second municipality's node, and a referral");
    let second_dir = first_dir.join("amsterdam");
    let second_path = if second_dir.join(init::CONFIG_FILE).exists() {
        second_dir.join(init::CONFIG_FILE)
    } else {
        std::fs::create_dir_all(&second_dir)?;
        init::init(&second_dir, "127.0.0.1:0".parse()?).await?
    };
    let mut second_config = Config::load(&second_path)?;
    second_config.node.name = SECOND_NODE.into();
    second_config.node.listen = "127.0.0.1:0".parse()?;
    let mut first = member(first_dir, first_config.clone())?;
    let mut second = member(&second_dir, second_config)?;
    // Amsterdam, registered on the second node with a certificate of its CA.
    let cert = second.ca.issue_client(&ClientCertSpec::new(
        "Gemeente Amsterdam",
        Some(AMSTERDAM_OIN),
    ))?;
    let clients = second_dir.join("pki/clients");
    std::fs::write(clients.join(format!("{AMSTERDAM}.pem")), &cert.cert_pem)?;
    std::fs::write(clients.join(format!("{AMSTERDAM}.key")), &cert.key_pem)?;
    if !second.config.participants.iter().any(|p| p.id == AMSTERDAM) {
        second.config.participants.push(Participant {
            id: AMSTERDAM.into(),
            name: "Gemeente Amsterdam".into(),
            role: "municipality".into(),
            oin: Some(AMSTERDAM_OIN.into()),
            spki_sha256: None,
        });
    }

    // The network operator: a directory key, a signed directory, and the
    // federation's pseudonym key, copied to both nodes.
    let key_path = ops.join("federation.key");
    FederationKey::generate("lvv-demo", &key_path)?;
    let key = FederationKey::load(&key_path)?;
    let now = time::OffsetDateTime::now_utc();
    let rfc = |t: time::OffsetDateTime| crate::model::clock::rfc3339(t.unix_timestamp() * 1000);
    let mut nodes = vec![
        directory_node(
            &first,
            "GM0344",
            "Utrecht",
            &[(OWNER, "municipality"), ("ind", "ind"), (NGO, "ngo")],
        ),
        directory_node(
            &second,
            "GM0363",
            "Amsterdam",
            &[(AMSTERDAM, "municipality")],
        ),
    ];
    // Each node witnesses the other: its witness key in the directory.
    nodes[0].witness_key = Some(witness_key(&first)?);
    nodes[1].witness_key = Some(witness_key(&second)?);
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    let d = Directory {
        network: "lvv-demo".into(),
        serial: 1,
        not_before: rfc(now - time::Duration::hours(1)),
        not_after: rfc(now + time::Duration::days(1)),
        nodes,
    };
    let signed = directory::sign(&d, &key)?;
    let directory = d;
    let pseudonym_key = ops.join("pseudonym.key");
    FederationPseudonyms::generate(&pseudonym_key)?;
    let (first_ca, second_ca) = (
        read_file(&first_dir.join("pki/ca.pem"))?,
        read_file(&second_dir.join("pki/ca.pem"))?,
    );
    for (m, peer_ca) in [(&mut first, &second_ca), (&mut second, &first_ca)] {
        std::fs::write(m.dir.join("federation.note"), &signed)?;
        std::fs::write(m.dir.join("peers.pem"), peer_ca)?;
        std::fs::copy(&pseudonym_key, m.dir.join("pseudonym.key"))?;
        m.config.federation = Some(FederationConfig {
            directory: "federation.note".into(),
            verifier_key: key.verifier_key(),
            listen: Some(format!("127.0.0.1:{}", m.port).parse()?),
            client_cert: "node.pem".into(),
            client_key: "node.key".into(),
            peer_ca: "peers.pem".into(),
            peer_crl: vec![],
            pseudonym_key: Some("pseudonym.key".into()),
            witness_key: Some("witness.key".into()),
            witness_interval_secs: 60,
            report_cosignatures: None,
        });
        m.config.tls.allow_missing_crl = true;
    }
    let utrecht_node = Node::start(&first.config).await?;
    let amsterdam_node = Node::start(&second.config).await?;
    println!(
        "    two nodes in one signed directory: {} (Utrecht) and {SECOND_NODE} (Amsterdam)",
        first.config.node.name
    );

    let mut gemeente = clients_for(first_dir, &first.config, &utrecht_node, OWNER).await?;
    let mut ind = clients_for(first_dir, &first.config, &utrecht_node, "ind").await?;
    let mut ngo = clients_for(first_dir, &first.config, &utrecht_node, NGO).await?;
    let mut amsterdam =
        clients_for(&second_dir, &second.config, &amsterdam_node, AMSTERDAM).await?;

    let before = read(&mut ind, case_id, "legalisation").await?;
    // The pseudonyms change form here: say why, so that a reader who
    // compares with step 3 is not misled.
    println!(
        "    with the federation's pseudonym key each party now gets the network's pseudonym (pf1.…),\n    the same on every node and across a referral; the node's own ones from step 3 (ps1.…) still resolve"
    );
    println!(
        "    IND's pseudonym before the referral: {}",
        before.subject_pseudonym
    );
    println!("   a) the migrant consents that Gemeente Amsterdam receives the whole case");
    gemeente
        .consents
        .grant_consent(with_actor(
            pb::GrantConsentRequest {
                request_id: uuid::Uuid::now_v7().to_string(),
                case_id: case_id.into(),
                recipients: vec![pb::Recipient {
                    recipient: Some(pb::recipient::Recipient::Participant(AMSTERDAM.into())),
                }],
                categories: (1..=8).collect(),
                purposes: vec!["case_consultation".into()],
                valid_from: None,
                valid_until: None,
                evidence_ref: "DMS-2026-0077 (signed consent to referral)".into(),
            },
            Some(OWNER_ACTOR),
        ))
        .await?;
    println!("   b) Gemeente Utrecht refers the case to Amsterdam's node");
    let referral = gemeente
        .cases
        .refer_case(with_actor(
            pb::ReferCaseRequest {
                case_id: case_id.into(),
                to_node: SECOND_NODE.into(),
                new_owner: AMSTERDAM.into(),
            },
            Some(OWNER_ACTOR),
        ))
        .await?
        .into_inner();
    println!(
        "    referred: held by {}, access record {} on both nodes",
        referral.holding_node, referral.access_record_id
    );
    let mut on_both = true;
    for n in [&utrecht_node, &amsterdam_node] {
        on_both &= n
            .store
            .log_position(&referral.access_record_id)
            .await?
            .is_some();
    }
    checks.expect(
        on_both,
        "both nodes record the referral under one request id",
    );
    let gone = utrecht_node.store.case_meta(case_id).await?.is_none();
    checks.expect(gone, "Utrecht's node keeps a pointer, not the case");
    let moved = read(&mut gemeente, case_id, "case_consultation")
        .await
        .err();
    if let Some(s) = &moved {
        println!("    Utrecht reads it: {:?}: {}", s.code(), s.message());
    }
    checks.expect(
        moved.is_some_and(|s| s.code() == Code::FailedPrecondition),
        "a read at Utrecht says where the case went",
    );
    let r = amsterdam
        .cases
        .get_case(with_actor(
            pb::GetCaseRequest {
                subject: Some(pb::get_case_request::Subject::CaseId(case_id.into())),
                purpose: "case_consultation".into(),
                categories: vec![],
                emergency_justification: String::new(),
            },
            Some("mw-0107"),
        ))
        .await?
        .into_inner();
    show("Gemeente Amsterdam", "case_consultation", &r);
    checks.expect(
        r.data.as_ref().is_some_and(|d| d.identity.is_some()),
        "Amsterdam owns the case now and reads all of it",
    );
    let mut at_amsterdam = tonic::Request::new(pb::GetCaseRequest {
        subject: Some(pb::get_case_request::Subject::CaseId(case_id.into())),
        purpose: "legalisation".into(),
        categories: vec![],
        emergency_justification: String::new(),
    });
    at_amsterdam
        .metadata_mut()
        .insert("x-sluis-holding-node", SECOND_NODE.parse()?);
    let after = ind.cases.get_case(at_amsterdam).await?.into_inner();
    show("IND (through Utrecht)", "legalisation", &after);
    checks.expect(
        after.subject_pseudonym == before.subject_pseudonym && after.released == before.released,
        "IND keeps its pseudonym and what it may see, now served by Amsterdam",
    );
    let ngo_again = ngo
        .cases
        .get_case(pb::GetCaseRequest {
            subject: Some(pb::get_case_request::Subject::SubjectPseudonym(
                ngo_pseudonym.into(),
            )),
            purpose: "case_consultation".into(),
            categories: vec![],
            emergency_justification: String::new(),
        })
        .await;
    // Its pseudonym was issued before the nodes shared a pseudonym key
    // (`ps1.`): it still resolves, and the answer carries the federation's
    // (`pf1.`), which stays the same wherever the case goes from now on.
    checks.expect(
        ngo_again.is_ok_and(|r| {
            let r = r.into_inner();
            r.released.is_empty() && r.subject_pseudonym.starts_with("pf1.")
        }),
        "VluchtelingenWerk's earlier pseudonym still finds the case: Utrecht forwards it to Amsterdam, where its consent is still withdrawn",
    );
    println!(
        "   c) witnessing: each node checks the other's log and cosigns its checkpoint (C2SP tlog-cosignature)"
    );
    let (utrecht_id, amsterdam_id) = (first.config.node.name.clone(), SECOND_NODE.to_string());
    for (witness, peer, peer_id) in [
        (&utrecht_node, &amsterdam_node, amsterdam_id),
        (&amsterdam_node, &utrecht_node, utrecht_id),
    ] {
        // A node signs its first checkpoint within its checkpoint interval.
        let mut outcome = WitnessOutcome::Failed(String::new());
        for _ in 0..50 {
            outcome = witness
                .witness_now()
                .await
                .into_iter()
                .map(|(_, o)| o)
                .next()
                .unwrap_or(WitnessOutcome::Failed("no peer".into()));
            if matches!(outcome, WitnessOutcome::Cosigned { .. }) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let cosigned = cosigned_checkpoint(&peer.store, &directory, &peer_id, 1, None).await?;
        match &cosigned {
            Some(c) => {
                println!(
                    "    {peer_id}'s checkpoint of size {}, cosigned by {}:",
                    c.checkpoint.size,
                    c.witnesses.join(", ")
                );
                for line in c.note.lines() {
                    println!("      {line}");
                }
            }
            None => println!("    {peer_id}'s checkpoint is not cosigned: {outcome:?}"),
        }
        checks.expect(
            cosigned.is_some(),
            &format!("{peer_id}'s log is backed by its peer's cosignature"),
        );
    }
    utrecht_node.shutdown().await?;
    amsterdam_node.shutdown().await?;
    for m in [&first, &second] {
        let keys = crate::gateway::vault::Keys::load(&m.config.path(&m.config.node.keys_dir))?;
        let vkey = crate::tlog::note::verifier_key(&m.config.node.name, &keys.signing_public_key());
        let (store, _) =
            crate::store::Store::open(&m.config.database_url()?, &m.config.pool_settings(), false)
                .await?;
        let report = crate::tlog::verify::verify_log(&store, &vkey, None, |_, _| {}).await?;
        store.close().await;
        checks.expect(
            report.intact(),
            &format!("the access log of {} verifies", m.config.node.name),
        );
    }
    println!();
    Ok(())
}
