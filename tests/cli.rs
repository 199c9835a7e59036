//! The binary as a newcomer uses it.

use std::process::Command;

fn sluis() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluis"))
}

#[test]
fn demo_runs_the_scenario_and_passes() {
    let dir = tempfile::tempdir().unwrap();
    let out = sluis()
        .args(["demo", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("demo passed"));
    assert!(!stdout.contains('✗'));
    // Who saw what, and the access log, are in the account.
    for party in ["DT&V", "IND", "AVIM", "VluchtelingenWerk"] {
        assert!(stdout.contains(party), "{party} missing");
    }
    assert!(stdout.contains("consent_withdrawn"));
    // --data-dir keeps the node's files, and a second run reuses them.
    assert!(dir.path().join("sluis.toml").exists());
    assert!(dir.path().join("sluis.db").exists());
    let again = sluis()
        .args(["demo", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
}

#[test]
fn init_refuses_to_overwrite_and_help_explains() {
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("node");
    let ok = sluis()
        .args(["init", "--dev", "--dir"])
        .arg(&node)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    for f in [
        "sluis.toml",
        "policy.cedar",
        "keys/data.key",
        "pki/ca.pem",
        "pki/crl.pem",
        "pki/clients/dtv.pem",
    ] {
        assert!(node.join(f).exists(), "{f} written");
    }
    let again = sluis()
        .args(["init", "--dev", "--dir"])
        .arg(&node)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a node"));

    let help = sluis().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    for cmd in ["serve", "init", "certs", "demo"] {
        assert!(text.contains(cmd), "--help lists {cmd}");
    }
    let certs = sluis()
        .args(["certs", "init", "--dir"])
        .arg(dir.path().join("pki"))
        .output()
        .unwrap();
    assert!(certs.status.success());
    assert!(
        dir.path()
            .join("pki/clients/ngo-vluchtelingenwerk.pem")
            .exists()
    );
}
