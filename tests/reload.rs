//! Reload without restart, on the real `sluis` binary: SIGHUP re-reads the
//! participant registry and the policy (with certificates and CRLs); a
//! broken policy is refused and the old one keeps deciding; the reload and
//! every later record name the policy's version (SHA-256 of its text).

mod common;

use common::served::{Served, sluis_command};
use common::*;
use sluis::net::pki::{CertAuthority, ClientCertSpec};
use sluis::rpc::proto::v1 as pb;

/// A participant the dev node does not know yet, with a certificate from
/// the node's CA.
const NEWCOMER: &str = "ngo-stichting-lvv";
const NEWCOMER_OIN: &str = "00000001000000000099";

/// A rule the privacy officer adds: NGOs no longer receive `shelter`.
const NO_SHELTER_FOR_NGO: &str = r#"
@id("no-shelter-for-ngo")
@reason("not_permitted_for_role_and_purpose")
forbid (principal == Role::"ngo", action == Action::"receive", resource == Category::"shelter");
"#;

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

/// Every record of the stopped node's log, as `sluis audit export` gives them.
fn exported(dir: &std::path::Path) -> Vec<serde_json::Value> {
    sluis_command(
        &["audit", "export", "--format", "jsonl"],
        &dir.join(sluis::dev::init::CONFIG_FILE),
    )
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect()
}

fn own() -> pb::FindCasesRequest {
    pb::FindCasesRequest {
        scope: pb::find_cases_request::Scope::Own as i32,
        ..Default::default()
    }
}

async fn ngo_reads_shelter(node: &Served, case_id: &str) -> (Vec<&'static str>, String) {
    let r = node
        .client(NGO)
        .await
        .cases
        .get_case(tonic::Request::new(by_id(case_id, "shelter")))
        .await
        .expect("the NGO's read is answered");
    let id = request_id(&r);
    (released(&r.into_inner()), id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_participants_and_policy_and_the_log_names_the_policy() {
    let node = Served::start(|t| t).await;
    let dir = node.dir.path().to_path_buf();
    let policy_path = dir.join("policy.cedar");
    let original = std::fs::read(&policy_path).unwrap();

    // A case the NGO may read the shelter of, with consent.
    let mut gemeente = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut gemeente).await;
    grant(
        &mut gemeente,
        &case_id,
        vec![participant(NGO)],
        &[pb::Category::Shelter],
        &["shelter"],
    )
    .await;
    let (before, first_read) = ngo_reads_shelter(&node, &case_id).await;
    assert_eq!(before, ["shelter"]);

    // A certificate for an organisation not yet registered: refused.
    let ca = CertAuthority::from_pem(
        &std::fs::read_to_string(dir.join("pki/ca.pem")).unwrap(),
        &std::fs::read_to_string(dir.join("pki/ca.key")).unwrap(),
    )
    .unwrap();
    let cert = ca
        .issue_client(&ClientCertSpec::new("Stichting LVV", Some(NEWCOMER_OIN)))
        .unwrap();
    std::fs::write(
        dir.join(format!("pki/clients/{NEWCOMER}.pem")),
        &cert.cert_pem,
    )
    .unwrap();
    std::fs::write(
        dir.join(format!("pki/clients/{NEWCOMER}.key")),
        &cert.key_pem,
    )
    .unwrap();
    let unknown = node
        .client(NEWCOMER)
        .await
        .cases
        .find_cases(own())
        .await
        .expect_err("not registered yet");
    assert_eq!(unknown.code(), tonic::Code::PermissionDenied);

    // The operator registers it and the privacy officer adds a rule; SIGHUP.
    let config = node.config_path();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[[participant]]\nid = \"{NEWCOMER}\"\nname = \"Stichting LVV\"\nrole = \"ngo\"\noin = \"{NEWCOMER_OIN}\"\n"
    ));
    std::fs::write(&config, text).unwrap();
    let mut changed = original.clone();
    changed.extend_from_slice(NO_SHELTER_FOR_NGO.as_bytes());
    std::fs::write(&policy_path, &changed).unwrap();
    node.signal("HUP");
    let line = node.wait_for_line("reloaded", 1).await;
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(line["fields"]["policy_sha256"], sha256_hex(&changed));
    assert_eq!(line["fields"]["added"], NEWCOMER);

    // The next requests: the newcomer is known, the new rule decides.
    node.client(NEWCOMER)
        .await
        .cases
        .find_cases(own())
        .await
        .expect("registered by the reload");
    let (after, second_read) = ngo_reads_shelter(&node, &case_id).await;
    assert!(after.is_empty(), "the new forbid decides: {after:?}");

    // A broken policy is refused, with check-config's finding, and the one
    // in force keeps deciding.
    let mut broken = changed.clone();
    broken.extend_from_slice(b"\n@id(\"half\")\npermit (principal == Role::\"ngo\", action ==\n");
    std::fs::write(&policy_path, &broken).unwrap();
    node.signal("HUP");
    let refused = node.wait_for_line("reload refused", 1).await;
    assert_eq!(refused["level"], "ERROR", "{refused}");
    let why = refused["fields"]["error"].as_str().unwrap();
    assert!(
        why.contains("policy.cedar") && why.contains("fix:"),
        "names the file and the fix, as check-config does: {why}"
    );
    let (still, third_read) = ngo_reads_shelter(&node, &case_id).await;
    assert!(
        still.is_empty(),
        "the previous policy still decides: {still:?}"
    );
    assert_eq!(
        node.lines()
            .iter()
            .filter(|l| l.contains("\"reloaded"))
            .count(),
        1,
        "nothing was reloaded the second time"
    );

    let (_, folder) = node.stop_keeping_folder();
    let records = exported(folder.path());
    let by_id = |id: &str| {
        records
            .iter()
            .find(|r| r["request_id"] == id)
            .unwrap_or_else(|| panic!("record {id}"))
            .clone()
    };
    let (old_hash, new_hash) = (sha256_hex(&original), sha256_hex(&changed));
    assert_eq!(by_id(&first_read)["policy_sha256"], old_hash);
    assert_eq!(by_id(&second_read)["policy_sha256"], new_hash);
    assert_eq!(by_id(&third_read)["policy_sha256"], new_hash);
    let reloads: Vec<_> = records
        .iter()
        .filter(|r| r["method"] == "node.reload")
        .collect();
    assert_eq!(reloads.len(), 1, "one reload, recorded once: {reloads:#?}");
    assert_eq!(reloads[0]["policy_sha256"], new_hash);
    assert!(
        reloads[0]["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("added: {NEWCOMER}")),
        "{}",
        reloads[0]
    );
    // The log with its new record version still verifies.
    sluis_command(
        &["audit", "verify"],
        &folder.path().join(sluis::dev::init::CONFIG_FILE),
    );
}

/// Sends SIGHUP and waits for the node's "reload refused" line (level
/// ERROR, nothing reloaded); answers the reason it gives.
async fn refused_reload(node: &Served) -> String {
    node.signal("HUP");
    let refused = node.wait_for_line("reload refused", 1).await;
    assert_eq!(refused["level"], "ERROR", "{refused}");
    assert!(
        !node.lines().iter().any(|l| l.contains("\"reloaded")),
        "nothing was reloaded"
    );
    refused["fields"]["error"].as_str().unwrap().to_string()
}

/// A reload takes nothing `serve` would refuse at the next start: it runs
/// the whole of `sluis check-config`, the log's questions too. A name
/// changed without `sluis node rename` is refused with that finding, the
/// node goes on as it was, and the next start is not where the operator
/// first hears of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_refuses_what_the_next_start_would_refuse() {
    let node = Served::start(|t| t).await;
    let mut gemeente = node.client(GEMEENTE).await;
    register(&mut gemeente).await;
    let config = node.config_path();
    let text = std::fs::read_to_string(&config).unwrap();
    let name_line = text
        .lines()
        .find(|l| l.starts_with("name = "))
        .unwrap()
        .to_string();
    let renamed = text.replace(&name_line, "name = \"sluis-renamed.example\"");
    // Once a checkpoint has signed the record, the log has a name that
    // check-config holds the file to (within a second or so).
    let beside = node.dir.path().join("renamed.toml");
    std::fs::write(&beside, &renamed).unwrap();
    let mut seen = false;
    for _ in 0..100 {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluis"))
            .args(["check-config", "--config", beside.to_str().unwrap()])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).contains("renamed without the rename step") {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(seen, "check-config never saw the log's name");
    std::fs::write(&config, &renamed).unwrap();
    let why = refused_reload(&node).await;
    assert!(
        why.contains("renamed without the rename step") && why.contains("sluis node rename"),
        "{why}"
    );
    // The node goes on serving under its name.
    register(&mut gemeente).await;
    std::fs::write(&config, &text).unwrap();
    let (_, folder) = node.stop_keeping_folder();
    sluis_command(
        &["audit", "verify"],
        &folder.path().join(sluis::dev::init::CONFIG_FILE),
    );
}

/// A `sluis.toml` read while it was being written in place can be valid
/// TOML that ends before its participants: a reload of it is refused as
/// cut short, and every participant goes on being served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_of_a_file_cut_short_is_refused() {
    let node = Served::start(|t| t).await;
    let mut gemeente = node.client(GEMEENTE).await;
    register(&mut gemeente).await;
    let config = node.config_path();
    let text = std::fs::read_to_string(&config).unwrap();
    let cut = &text[..text
        .find("[[participant]]")
        .expect("participants in the file")];
    toml::from_str::<toml::Table>(cut).expect("the cut file is valid TOML");
    std::fs::write(&config, cut).unwrap();
    let why = refused_reload(&node).await;
    assert!(
        why.contains("names no participant")
            && why.contains("cut short")
            && why.contains("rename it into place"),
        "{why}"
    );
    // Still served as registered.
    register(&mut gemeente).await;
    std::fs::write(&config, &text).unwrap();
}
