//! The binary as a newcomer uses it.

use std::process::Command;

mod common;

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
    // The account shows pseudonyms and which identity fields arrived,
    // never the migrant's name or V-number, on stdout or in the logs; and
    // it says why the pseudonyms change form once the nodes federate.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let sample = sluis::dev::sample::case_data(1);
    let id = sample.identity.unwrap();
    for text in [&stdout, &stderr] {
        assert!(!text.contains(&id.name), "the name is printed");
        assert!(!text.contains(&id.v_number), "the V-number is printed");
    }
    assert!(
        stdout.contains("the network's pseudonym (pf1.") && stdout.contains("still resolve"),
        "{stdout}"
    );
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

/// Under systemd (`Type=notify`, `deploy/sluis.service`) the node says when
/// it serves, when it reloads on SIGHUP and when it stops, on the socket
/// `NOTIFY_SOCKET` names.
#[cfg(unix)]
#[test]
fn serve_tells_the_service_manager_when_it_is_ready_reloads_and_stops() {
    use std::os::unix::net::UnixDatagram;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let node = dir.path().join("node");
    let init = sluis()
        .args(["init", "--dev", "--dir"])
        .arg(&node)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(init.status.success());
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut child = sluis()
        .args(["serve", "--config"])
        .arg(node.join("sluis.toml"))
        .env("NOTIFY_SOCKET", &socket_path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let next = || {
        let mut buf = [0u8; 512];
        let n = socket
            .recv(&mut buf)
            .expect("a notification within a minute");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let ready = next();
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready}");
    assert!(
        ready.contains(&format!("STATUS=serving on 127.0.0.1:{port}")),
        "{ready}"
    );
    // Ready means listening.
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("the node listens once ready");

    let signal = |name: &str| {
        let ok = std::process::Command::new("kill")
            .args([name, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    signal("-HUP");
    assert_eq!(next().trim(), "RELOADING=1");
    assert_eq!(next().trim(), "READY=1");
    signal("-TERM");
    assert_eq!(next().trim(), "STOPPING=1");
    assert!(child.wait().unwrap().success());
}

/// A PostgreSQL server that refuses connections is named as such when the
/// node opens its database, not as the pool's "timed out".
#[test]
fn an_unreachable_postgresql_is_named_by_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    let out = sluis()
        .args(["init", "--dev", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let config = dir.path().join("sluis.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    // Port 1 on loopback: nothing listens there.
    let text = text.replace(
        "database = \"sqlite://sluis.db\"",
        "database = \"postgres://postgres@127.0.0.1:1/sluis\"",
    );
    std::fs::write(&config, text).unwrap();
    let out = sluis()
        .args(["migrate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("Connection refused") && !said.contains("pool timed out"),
        "{said}"
    );
}

/// Three dev nodes for a federation trial, on consecutive ports: each has
/// the name given (its node id), a node certificate that serves and calls
/// (serverAuth and clientAuth: peers call each other with it), and a
/// probes port that is no other node's port or probes port.
#[test]
fn dev_nodes_for_a_federation_trial_have_names_node_certificates_and_apart_probes() {
    use rustls::pki_types::pem::PemObject as _;
    let dir = tempfile::tempdir().unwrap();
    let mut taken = Vec::new();
    for (i, name) in ["gm0344", "gm0363", "gm0518"].into_iter().enumerate() {
        let node = dir.path().join(name);
        let listen = format!("127.0.0.1:{}", 7443 + i);
        let out = sluis()
            .args([
                "init", "--dev", "--name", name, "--listen", &listen, "--dir",
            ])
            .arg(&node)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config = sluis::config::Config::load(&node.join("sluis.toml")).unwrap();
        assert_eq!(config.node.name, name);
        let probes = config.probes.listen.expect("a dev node has probes");
        assert_eq!(probes.port(), 8443 + i as u16, "the node's port + 1000");
        taken.push(config.node.listen);
        taken.push(probes);
        let pem = std::fs::read(node.join("pki/node.pem")).unwrap();
        let der = rustls::pki_types::CertificateDer::from_pem_slice(&pem).unwrap();
        let purposes = sluis::net::x509::key_purposes(&der).unwrap();
        assert!(purposes.server_auth && purposes.client_auth, "{purposes:?}");
    }
    let mut apart = taken.clone();
    apart.sort();
    apart.dedup();
    assert_eq!(apart.len(), taken.len(), "{taken:?}");

    // A name a node cannot have: said, nothing written.
    let bad = dir.path().join("bad");
    let out = sluis()
        .args(["init", "--dev", "--name", "two words", "--dir"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--name must be"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!bad.join("sluis.toml").exists());
}
