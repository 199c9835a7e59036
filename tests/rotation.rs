//! Rotation of the checkpoint-signing key and the pseudonym secret, and the
//! rename of a node, done as docs/operations.md says: the node stopped, the
//! `sluis` binary's commands, the node started again. On the suite's
//! database (PostgreSQL when `SLUIS_TEST_POSTGRES_URL` is set, else SQLite).

mod common;

use std::process::Command;

use common::*;
use sluis::config::Config;
use sluis::gateway::vault::Keys;
use sluis::node::Node;
use sluis::rpc::Clients;
use sluis::store::{PoolSettings, Store};
use sluis::tlog::AccessRecord;
use sluis::tlog::checkpoint::{Checkpoint, origin};
use sluis::tlog::note;
use sluis::tlog::proof::{LeafRef, inclusion_proof};
use tonic::Code;

fn sluis(args: &[&str]) -> (bool, String) {
    let (code, said) = sluis_code(args);
    (code == Some(0), said)
}

/// `sluis ARGS`: its exit code and its output (stdout, then stderr).
fn sluis_code(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluis"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `sluis serve --config <file>`, which must refuse to start: its output.
/// A node that starts instead is stopped after a while, and the test fails.
fn serve_refused(config: &std::path::Path) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluis"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..300 {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            assert!(!out.status.success(), "serve exited 0");
            return format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    panic!("serve started instead of refusing");
}

/// `sluis <group> <command> --config <file>`, which must succeed.
fn run(group: &str, command: &str, config: &std::path::Path) -> String {
    let (ok, said) = sluis(&[group, command, "--config", config.to_str().unwrap()]);
    assert!(ok, "sluis {group} {command}: {said}");
    said
}

async fn client(node: &Node, dir: &std::path::Path, who: &str) -> Clients {
    Clients::new(channel_as(node.local_addr, dir, who).await.unwrap())
}

async fn open(config: &Config) -> Store {
    let (store, _) = Store::open(
        &config.database_url().unwrap(),
        &PoolSettings::default(),
        false,
    )
    .await
    .unwrap();
    store
}

/// The current verifier key of a node folder.
fn verifier_key(config: &Config) -> String {
    let keys = Keys::load(&config.path(&config.node.keys_dir)).unwrap();
    note::verifier_key(&config.node.name, &keys.signing_public_key())
}

/// The methods of the node's own records, in log order.
async fn node_methods(config: &Config) -> Vec<String> {
    let store = open(config).await;
    let rows = store.access_log(0, 100_000).await.unwrap();
    store.close().await;
    rows.iter()
        .map(|r| AccessRecord::decode(&r.record).unwrap().method)
        .filter(|m| m.starts_with("node."))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_rotating_both_keys_old_pseudonyms_resolve_for_their_recipient_and_the_log_verifies()
{
    let node = TestNode::start().await;
    let dir = node.dir.path().to_path_buf();
    let path = node.config_path();
    let mut gemeente = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut gemeente).await;
    let mut dtv = node.client("dtv").await;
    let before = dtv.cases.get_case(by_id(&case_id, "return")).await.unwrap();
    let old_request = request_id(&before);
    let old_pseudonym = before.into_inner().subject_pseudonym;
    assert!(old_pseudonym.starts_with("ps1."), "{old_pseudonym}");
    let old_key = verifier_key(&node.config);
    node.node.shutdown().await.unwrap();
    let store = open(&node.config).await;
    let old_cp = store.latest_checkpoint().await.unwrap().unwrap();
    store.close().await;

    run("keys", "rotate-signing", &path);
    run("keys", "rotate-pseudonym", &path);
    let config = Config::load(&path).unwrap();
    let new_key = verifier_key(&config);
    assert_ne!(new_key, old_key);
    let history =
        std::fs::read_to_string(dir.join("keys").join("signing.history")).unwrap_or_default();
    assert!(history.contains(&old_key), "{history}");
    assert!(!dir.join("keys/signing.key.next").exists());
    assert_eq!(
        node_methods(&config).await,
        ["node.rotate_key", "node.rotate_pseudonym"]
    );

    let node = Node::start(&config)
        .await
        .expect("start after the rotations");
    let mut dtv = client(&node, &dir, "dtv").await;
    // The old pseudonym still resolves for DT&V …
    let by_old = dtv
        .cases
        .get_case(by_pseudonym(&old_pseudonym, "return"))
        .await
        .expect("the ps1. pseudonym resolves for its recipient")
        .into_inner();
    assert_eq!(released(&by_old), ["residence_procedure"]);
    // … new ones are issued under the new version, and resolve too …
    let new_pseudonym = dtv
        .cases
        .get_case(by_id(&case_id, "return"))
        .await
        .unwrap()
        .into_inner()
        .subject_pseudonym;
    assert!(new_pseudonym.starts_with("ps2."), "{new_pseudonym}");
    assert_ne!(new_pseudonym[4..], old_pseudonym[4..]);
    assert_eq!(by_old.subject_pseudonym, new_pseudonym);
    dtv.cases
        .get_case(by_pseudonym(&new_pseudonym, "return"))
        .await
        .expect("the ps2. pseudonym resolves for its recipient");
    // … and neither resolves for anyone else.
    let mut ind = client(&node, &dir, "ind").await;
    for p in [&old_pseudonym, &new_pseudonym] {
        let err = ind
            .cases
            .get_case(by_pseudonym(p, "legalisation"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{p}");
    }
    node.shutdown().await.unwrap();

    // The whole log verifies under its key history, as the officer's
    // command runs it …
    let report = verify_log_of(&config).await;
    assert!(report.intact(), "{:?}", report.first_problem());
    let (ok, said) = sluis(&["audit", "verify", "--config", path.to_str().unwrap()]);
    assert!(ok, "{said}");
    // … and with the keys given by hand, oldest first; with the new key
    // alone, the checkpoints signed by the old one are refused.
    let given = |keys: &[&str]| {
        let mut args = vec!["audit", "verify", "--config", path.to_str().unwrap()];
        for k in keys {
            args.extend(["--key", k]);
        }
        sluis(&args)
    };
    assert!(given(&[&old_key, &new_key]).0);
    let (ok, said) = given(&[&new_key]);
    assert!(!ok && said.contains("not in the key history"), "{said}");
    let (ok, said) = given(&[&old_key]);
    assert!(
        !ok,
        "a history without the new key refuses its checkpoints: {said}"
    );

    // The old checkpoint still verifies under the old key, and an inclusion
    // proof of an old entry against it holds.
    assert!(Checkpoint::verify(&old_cp.note, &old_key).is_ok());
    assert!(Checkpoint::verify(&old_cp.note, &new_key).is_err());
    let store = open(&config).await;
    let proof = inclusion_proof(
        &store,
        LeafRef::RequestId(old_request),
        Some(old_cp.size as u64),
    )
    .await
    .unwrap();
    proof
        .verify()
        .expect("an old entry's proof against the old checkpoint");
    // The latest checkpoint is the new key's alone.
    let latest = store.latest_checkpoint().await.unwrap().unwrap();
    store.close().await;
    assert!(Checkpoint::verify(&latest.note, &new_key).is_ok());
    assert!(Checkpoint::verify(&latest.note, &old_key).is_err());

    let (ok, said) = sluis(&["restore", "--check", "--config", path.to_str().unwrap()]);
    assert!(ok && said.contains("usable"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_signing_key_stops_serve_and_the_old_one_starts_it_again() {
    let node = TestNode::start().await;
    let dir = node.dir.path().to_path_buf();
    let path = node.config_path();
    let mut gemeente = node.client(GEMEENTE).await;
    register(&mut gemeente).await;
    let config = node.config.clone();
    node.node.shutdown().await.unwrap();

    // Another key in place of the node's, without a rotation.
    let keys = dir.join("keys/signing.key");
    let original = std::fs::read(&keys).unwrap();
    let other = tempfile::tempdir().unwrap();
    Keys::create(other.path()).unwrap();
    std::fs::copy(other.path().join("signing.key"), &keys).unwrap();

    let said = serve_refused(&path);
    assert!(
        said.contains("does not sign this log") && said.contains("sluis keys rotate-signing"),
        "{said}"
    );
    // check-config names the key file and the fix, as serve refuses it.
    let (code, said) = sluis_code(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains(
            "keys/signing.key: the signing key in the keys folder does not sign this log"
        ) && said.contains("put the key that signed the log back"),
        "{said}"
    );
    // `audit verify` says the key is wrong — a configuration fault, with
    // its own exit code — not that the log was tampered with.
    let (code, said) = sluis_code(&["audit", "verify", "--config", path.to_str().unwrap()]);
    assert_eq!(code, Some(3), "{said}");
    assert!(
        said.contains("KEYS DO NOT MATCH THE LOG")
            && said.contains("not a sign of tampering")
            && !said.contains("NOT INTACT"),
        "{said}"
    );
    let (code, said) = sluis_code(&[
        "audit",
        "verify",
        "--json",
        "--config",
        path.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(3), "{said}");
    let json: serde_json::Value = serde_json::from_str(said.lines().next().unwrap()).unwrap();
    assert_eq!(json["intact"], false);
    assert_eq!(json["key_mismatch"]["given"], verifier_key(&config));
    assert_eq!(json["problems"].as_array().map(Vec::len), Some(0), "{json}");
    let (code, said) = sluis_code(&["audit", "verify", "--help"]);
    assert_eq!(code, Some(0));
    assert!(said.contains("3 the keys do not match the log"), "{said}");

    // An interrupted rotation stops it too, until the rotation is run again.
    std::fs::write(&keys, &original).unwrap();
    std::fs::copy(
        other.path().join("signing.key"),
        dir.join("keys/signing.key.next"),
    )
    .unwrap();
    let err = Node::start(&config).await.err().expect("refused");
    assert!(err.to_string().contains("rotate-signing"), "{err}");
    std::fs::remove_file(dir.join("keys/signing.key.next")).unwrap();

    // The key that signed the log starts it again.
    let node = Node::start(&config).await.expect("the original key serves");
    node.shutdown().await.unwrap();
    let report = verify_log_of(&config).await;
    assert!(report.intact(), "{:?}", report.first_problem());
}

/// Replicas on other hosts each have a keys folder of their own. One that
/// missed a rotation — a data key version that wraps case keys now, or a
/// pseudonym secret version the log records — is an error for
/// `check-config` and `serve`, naming the file to copy: such a node would
/// answer every read of those cases INTERNAL, and hand out pseudonyms under
/// the secret the rotation retired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_folder_that_missed_a_rotation_is_refused_naming_the_file() {
    let node = TestNode::start().await;
    let dir = node.dir.path().to_path_buf();
    let path = node.config_path();
    let mut gemeente = node.client(GEMEENTE).await;
    register(&mut gemeente).await;
    node.node.shutdown().await.unwrap();

    // The other host's keys folder, as it was before the rotations.
    let other = dir.join("keys-other-host");
    std::fs::create_dir(&other).unwrap();
    for file in ["data.key", "pseudonym.key", "signing.key"] {
        std::fs::copy(dir.join("keys").join(file), other.join(file)).unwrap();
    }
    run("keys", "rotate-pseudonym", &path);
    run("keys", "rotate-data", &path);
    let (ok, said) = sluis(&[
        "keys",
        "status",
        "--finish",
        "--config",
        path.to_str().unwrap(),
    ]);
    assert!(ok && said.contains("wraps 1 case keys"), "{said}");

    let text = std::fs::read_to_string(&path).unwrap();
    let keys_line = text
        .lines()
        .find(|l| l.starts_with("keys_dir"))
        .unwrap()
        .to_string();
    let replica = dir.join("replica.toml");
    std::fs::write(
        &replica,
        text.replace(
            &keys_line,
            &format!("keys_dir = {:?}", other.to_str().unwrap()),
        ),
    )
    .unwrap();
    let (code, said) = sluis_code(&["check-config", "--config", replica.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains(
            "keys-other-host/data.v2.key: 1 case keys are wrapped under data key version 2"
        ) && said.contains(
            "copy data.v2.key from the keys folder of the node that ran `sluis keys rotate-data`"
        ),
        "{said}"
    );
    assert!(
        said.contains(
            "keys-other-host/pseudonym.v2.key: the log records pseudonym secret version 2"
        ) && said.contains("copy pseudonym.v2.key"),
        "{said}"
    );
    let said = serve_refused(&replica);
    assert!(
        said.contains("data.v2.key") && said.contains("pseudonym.v2.key"),
        "{said}"
    );

    // With the files copied over, the replica's folder passes.
    for file in ["data.v2.key", "pseudonym.v2.key"] {
        std::fs::copy(dir.join("keys").join(file), other.join(file)).unwrap();
    }
    let (code, said) = sluis_code(&["check-config", "--config", replica.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{said}");
}

/// A rotation killed while it writes the new key file (here: by the kernel,
/// as `ulimit -f 0` stops a process at its first byte written) leaves no
/// half-written key behind under a key's name: the node's folder still
/// loads, and the rotation run again makes the version whole. (A key file
/// is written beside its name and renamed into place.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_killed_while_writing_its_key_leaves_no_half_key() {
    let node = TestNode::start_on_sqlite(|_| {}).await;
    let path = node.config_path();
    let p = path.to_str().unwrap();
    node.node.shutdown().await.unwrap();
    let killed = Command::new("sh")
        .args([
            "-c",
            "ulimit -f 0; exec \"$0\" keys rotate-data --config \"$1\"",
            env!("CARGO_BIN_EXE_sluis"),
            p,
        ])
        .output()
        .unwrap();
    assert!(!killed.status.success(), "{killed:?}");
    let keys = node.dir.path().join("keys");
    assert!(
        !keys.join("data.v2.key").exists(),
        "a half-written data.v2.key"
    );
    let (code, said) = sluis_code(&["check-config", "--config", p]);
    assert_eq!(code, Some(0), "{said}");
    let said = run("keys", "rotate-data", &path);
    assert!(said.contains("data key version 2 written"), "{said}");
    Keys::load(&keys).expect("the keys load, version 2 whole");
    let leftovers: Vec<_> = std::fs::read_dir(&keys)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_renamed_the_documented_way_keeps_audit_verify_passing() {
    let node = TestNode::start().await;
    let dir = node.dir.path().to_path_buf();
    let path = node.config_path();
    let mut gemeente = node.client(GEMEENTE).await;
    register(&mut gemeente).await;
    let old_name = node.config.node.name.clone();
    node.node.shutdown().await.unwrap();

    let new_name = "sluis.gemeente-utrecht.example";
    let text = std::fs::read_to_string(&path).unwrap();
    let from = format!("name = \"{old_name}\"");
    assert!(text.contains(&from));
    std::fs::write(
        &path,
        text.replacen(&from, &format!("name = \"{new_name}\""), 1),
    )
    .unwrap();
    let config = Config::load(&path).unwrap();

    // The name changed without the rename step: refused, saying what to run.
    let said = serve_refused(&path);
    assert!(
        said.contains("sluis node rename") && said.contains(&old_name),
        "{said}"
    );
    // check-config says the same, at node.name's line.
    let (code, said) = sluis_code(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("renamed without the rename step")
            && said.contains(&format!("signed as '{old_name}'"))
            && said.contains("run `sluis node rename`"),
        "{said}"
    );

    let said = run("node", "rename", &path);
    assert!(said.contains(new_name), "{said}");
    let node = Node::start(&config)
        .await
        .expect("start under the new name");
    let mut gemeente = client(&node, &dir, GEMEENTE).await;
    register(&mut gemeente).await;
    node.shutdown().await.unwrap();

    let (ok, said) = sluis(&["audit", "verify", "--config", path.to_str().unwrap()]);
    assert!(ok, "{said}");
    let store = open(&config).await;
    let checkpoints = store.checkpoints().await.unwrap();
    store.close().await;
    let last = checkpoints.last().unwrap();
    assert!(
        checkpoints[0]
            .note
            .starts_with(&format!("{}\n", origin(&old_name)))
    );
    assert!(last.note.starts_with(&format!("{}\n", origin(new_name))));
    assert!(Checkpoint::verify(&last.note, &verifier_key(&config)).is_ok());
    assert_eq!(node_methods(&config).await, ["node.rename"]);
    // Running it again changes nothing.
    let said = run("node", "rename", &path);
    assert!(said.contains("nothing to hand over"), "{said}");
}

/// `sluis keys history` publishes what an outside verifier needs across a
/// rotation and a rename: every key the log was signed with, oldest first,
/// the checkpoint sizes each signed, and each handover checkpoint, checked
/// under both of its keys — and `audit verify` with exactly those keys,
/// given by hand, passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_history_names_each_key_and_what_it_signed() {
    let node = TestNode::start().await;
    let path = node.config_path();
    let p = path.to_str().unwrap();
    let mut gemeente = node.client(GEMEENTE).await;
    register(&mut gemeente).await;
    let first = verifier_key(&node.config);
    let old_name = node.config.node.name.clone();
    node.node.shutdown().await.unwrap();
    run("keys", "rotate-signing", &path);
    let second = verifier_key(&Config::load(&path).unwrap());
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replacen(
            &format!("name = \"{old_name}\""),
            "name = \"sluis.gemeente-utrecht.example\"",
            1,
        ),
    )
    .unwrap();
    run("node", "rename", &path);
    let third = verifier_key(&Config::load(&path).unwrap());

    let said = run("keys", "history", &path);
    let at = |k: &str| {
        said.find(&format!("{k}\n  "))
            .unwrap_or_else(|| panic!("{k}: {said}"))
    };
    assert!(
        at(&first) < at(&second) && at(&second) < at(&third),
        "{said}"
    );
    assert!(
        said.contains(&format!("{third}\n  signs from size")),
        "{said}"
    );
    assert_eq!(
        said.matches("signed by both keys (checked)").count(),
        2,
        "{said}"
    );
    let (code, said) = sluis_code(&[
        "audit", "verify", "--config", p, "--key", &first, "--key", &second, "--key", &third,
    ]);
    assert_eq!(code, Some(0), "{said}");
}

/// `sluis node rename` with a name the node would refuse: the name is
/// what is wrong, and the message says what a valid one is — not that
/// there is no node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_to_an_invalid_name_says_what_a_valid_name_is() {
    let node = TestNode::start().await;
    let path = node.config_path();
    let old_name = node.config.node.name.clone();
    node.node.shutdown().await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replacen(
            &format!("name = \"{old_name}\""),
            "name = \"sluis gemeente+utrecht\"",
            1,
        ),
    )
    .unwrap();
    let (code, said) = sluis_code(&["node", "rename", "--config", path.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("'sluis gemeente+utrecht'")
            && said.contains("is not a valid node name")
            && said.contains("without spaces, control characters or '+'")
            && said.contains("Nothing was renamed")
            && !said.contains("no node"),
        "{said}"
    );
    // A configuration that is not there is the one case of "no node".
    let missing = path.with_file_name("absent.toml");
    let (_, said) = sluis_code(&["node", "rename", "--config", missing.to_str().unwrap()]);
    assert!(said.contains("no node configuration at"), "{said}");
}

/// With the node serving its SQLite file: `keys status` reads beside it;
/// what does the node's work (`keys status --finish`, a rotation) refuses,
/// saying the node is serving and must be stopped — not some other cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beside_a_serving_sqlite_node_status_reads_and_rotations_refuse_clearly() {
    let node = TestNode::start_on_sqlite(|_| {}).await;
    let path = node.config_path();
    let p = path.to_str().unwrap();
    let mut gemeente = node.client(GEMEENTE).await;
    register(&mut gemeente).await;
    let (ok, said) = sluis(&["keys", "rotate-data", "--config", p]);
    assert!(ok, "{said}");

    let (code, said) = sluis_code(&["keys", "status", "--config", p]);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("current data key version: 2") && said.contains("wraps 1 case keys"),
        "{said}"
    );
    let (code, said) = sluis_code(&["keys", "status", "--finish", "--config", p]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("a node is serving") && said.contains("with the node stopped"),
        "{said}"
    );
    for command in ["rotate-signing", "rotate-pseudonym"] {
        let (code, said) = sluis_code(&["keys", command, "--config", p]);
        assert_eq!(code, Some(1), "{command}: {said}");
        assert!(
            said.contains("a node is serving")
                && said.contains("stop the node")
                && !said.contains("use PostgreSQL"),
            "{command}: {said}"
        );
    }
    // Nothing was changed: no new version, no rotation left pending.
    for file in ["keys/pseudonym.v2.key", "keys/signing.key.next"] {
        assert!(!node.dir.path().join(file).exists(), "{file}");
    }
    node.node.shutdown().await.unwrap();
}

mod postgres_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL: run with SLUIS_TEST_BACKEND=postgres and `-- --ignored postgres_only` (as .ci/run does)"]
    async fn a_rotation_refuses_while_any_replica_serves_the_database() {
        super::a_rotation_refuses_while_any_replica_serves_the_database().await;
    }
}

/// The serving claim's advisory lock key (`store::postgres`), to stand in
/// for a rotation in progress.
const SERVING_LOCK: i64 = 0x736c_7569_735f_7376;

/// On PostgreSQL several replicas serve one database: a rotation or rename
/// run while any of them serves is refused, saying to stop them all, and
/// changes nothing; a replica does not start while such a step holds the
/// database; with every replica stopped the rotation runs.
async fn a_rotation_refuses_while_any_replica_serves_the_database() {
    require_postgres();
    let node = TestNode::start().await;
    let path = node.config_path();
    let p = path.to_str().unwrap();
    let replica = Node::start(&node.config).await.expect("a second replica");
    node.node.shutdown().await.unwrap();

    // One replica still serves.
    for command in ["rotate-signing", "rotate-pseudonym"] {
        let (code, said) = sluis_code(&["keys", command, "--config", p]);
        assert_eq!(code, Some(1), "{command}: {said}");
        assert!(
            said.contains("a node is serving the PostgreSQL database")
                && said.contains("every replica stopped")
                && said.contains("Nothing was changed"),
            "{command}: {said}"
        );
    }
    assert!(!node.dir.path().join("keys/pseudonym.v2.key").exists());
    assert!(!node.dir.path().join("keys/signing.key.next").exists());
    replica.shutdown().await.unwrap();

    // A step holding the database keeps replicas from starting.
    let url = node.config.database_url().unwrap();
    let mut step = {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&url).await.unwrap()
    };
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(SERVING_LOCK)
        .execute(&mut step)
        .await
        .unwrap();
    let err = Node::start(&node.config)
        .await
        .err()
        .expect("no replica starts during a rotation");
    assert!(
        err.to_string()
            .contains("key rotation or node rename is running"),
        "{err}"
    );
    {
        use sqlx::Connection;
        step.close().await.unwrap();
    }

    // Every replica stopped: the rotation runs.
    let said = run("keys", "rotate-pseudonym", &path);
    assert!(said.contains("pseudonym secret version 2 made"), "{said}");
}
