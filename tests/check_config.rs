//! `sluis check-config` as an operator meets it: every mistake of a node's
//! configuration reported in one run, each with its file and fix; `serve`
//! refusing to start on any of them; and a production `sluis init` around
//! certificates of the operator's own, whose checklist `check-config`
//! follows until the node serves.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluis::check::{Severity, check, check_at};
use sluis::net::pki::{CertAuthority, ClientCertSpec};
use time::OffsetDateTime;

fn sluis() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluis"))
}

/// A development node written by `sluis init --dev`, not serving.
async fn dev_node() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = sluis::dev::init::init(dir.path(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (dir, config)
}

fn edit(path: &Path, f: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(path).unwrap();
    std::fs::write(path, f(text)).unwrap();
}

fn dev_ca(dir: &Path) -> CertAuthority {
    let read = |f: &str| std::fs::read_to_string(dir.join("pki").join(f)).unwrap();
    CertAuthority::from_pem(&read("ca.pem"), &read("ca.key")).unwrap()
}

/// One configuration with every mistake `check-config` knows, each once:
/// one run reports each of them, once, with its file, and exits non-zero.
#[tokio::test]
async fn one_run_reports_every_mistake_once() {
    let (dir, config) = dev_node().await;
    let d = dir.path();
    // Participants: two with one OIN, one with neither OIN nor key pin,
    // two pinning one key.
    let pin = "ab".repeat(32);
    edit(&config, |t| {
        t.replace(
            "oin = \"00000001000000000004\"",
            "oin = \"00000001000000000003\"",
        ) + "\n[[participant]]\nid = \"unnamed\"\nname = \"Stichting zonder OIN\"\nrole = \"ngo\"\n"
            + &format!(
                "\n[[participant]]\nid = \"pinned-a\"\nname = \"A\"\nrole = \"ngo\"\nspki_sha256 = \"{pin}\"\n\
                 \n[[participant]]\nid = \"pinned-b\"\nname = \"B\"\nrole = \"ngo\"\nspki_sha256 = \"{}\"\n",
                pin.to_uppercase()
            )
    });
    // The policy names an unknown role, an unknown category and an
    // unknown purpose, each in a rule of its own.
    edit(&d.join("policy.cedar"), |t| {
        t + "\n@id(\"typo-role\")\npermit (principal == Role::\"dvt\", action == Action::\"receive\", resource == Category::\"shelter\")\n  when { context.purpose == Purpose::\"return\" };\n\
             \n@id(\"typo-category\")\npermit (principal == Role::\"dtv\", action == Action::\"receive\", resource == Category::\"shelterr\")\n  when { context.purpose == Purpose::\"return\" };\n\
             \n@id(\"typo-purpose\")\npermit (principal == Role::\"dtv\", action == Action::\"receive\", resource == Category::\"shelter\")\n  when { context.purpose == Purpose::\"retrun\" };\n"
    });
    // A missing key file.
    std::fs::remove_file(d.join("keys/signing.key")).unwrap();
    // A node certificate that is not the key's, ends in ten days, and is
    // a client certificate (no serverAuth).
    let ca = dev_ca(d);
    let now = OffsetDateTime::now_utc();
    let mut spec = ClientCertSpec::new("sluis node", None);
    spec.not_after = now + time::Duration::days(10);
    let short = ca.issue_client(&spec).unwrap();
    std::fs::write(d.join("pki/node.pem"), &short.cert_pem).unwrap();
    // An expired CRL.
    let crl = ca
        .crl_pem_numbered(
            &[],
            u64::MAX >> 1,
            now - time::Duration::days(8),
            now - time::Duration::days(1),
        )
        .unwrap();
    std::fs::write(d.join("pki/crl.pem"), crl).unwrap();

    let out = sluis()
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let errors: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    let warnings: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    // Each mistake is named once, in the file it is in.
    let expected_errors: [(&str, &str); 10] = [
        ("sluis.toml:", "have the same oin 00000001000000000003"),
        ("sluis.toml:", "'unnamed' needs an oin or an spki_sha256"),
        ("sluis.toml:", "pin the same key"),
        ("policy.cedar:", "unknown Role \"dvt\""),
        ("policy.cedar:", "unknown Category \"shelterr\""),
        ("policy.cedar:", "unknown Purpose \"retrun\""),
        ("signing.key", "cannot read key file"),
        ("node.key", "does not belong to the certificate"),
        ("node.pem", "is not for TLS servers"),
        ("crl.pem", "expired at"),
    ];
    for (file, what) in expected_errors {
        let hits: Vec<&&str> = errors
            .iter()
            .filter(|l| l.contains(file) && l.contains(what))
            .collect();
        assert_eq!(hits.len(), 1, "{file}: {what}, once, in:\n{stdout}");
    }
    assert_eq!(errors.len(), expected_errors.len(), "{stdout}");
    assert_eq!(warnings.len(), 1, "{stdout}");
    assert!(
        warnings[0].contains("node.pem") && warnings[0].contains("node certificate expires"),
        "{stdout}"
    );
    // Every finding says how to fix it, and the summary counts them.
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("    fix: "))
            .count(),
        11,
        "{stdout}"
    );
    assert!(stdout.contains(": 10 errors, 1 warning"), "{stdout}");

    // The lines are the offending entries' own.
    let report = check(&config);
    let text = std::fs::read_to_string(&config).unwrap();
    let line_of = |what: &str| {
        report
            .findings
            .iter()
            .find(|f| f.problem.contains(what))
            .and_then(|f| f.line)
            .unwrap_or_else(|| panic!("{what}: no line"))
    };
    let line = |n: usize| text.lines().nth(n - 1).unwrap();
    assert_eq!(
        line(line_of("have the same oin")),
        "oin = \"00000001000000000003\""
    );
    assert!(line(line_of("pin the same key")).starts_with("spki_sha256 = "));
    let policy = std::fs::read_to_string(d.join("policy.cedar")).unwrap();
    let rule_line = report
        .findings
        .iter()
        .find(|f| f.problem.contains("\"shelterr\""))
        .and_then(|f| f.line)
        .unwrap();
    assert_eq!(
        policy.lines().nth(rule_line - 1).unwrap(),
        "@id(\"typo-category\")"
    );
}

/// Expiry is judged against the clock: the dev node's CRL (a year) and
/// certificate (two years) are warnings within `tls.expiry_warning_days`
/// of their end and errors after it; the CA (ten years) is neither.
#[tokio::test]
async fn certificates_and_crls_warn_before_they_expire_and_fail_after() {
    let (_dir, config) = dev_node().await;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let day = 86_400;
    assert!(check_at(&config, now).findings.is_empty());

    let soon = check_at(&config, now + 350 * day);
    assert!(!soon.has_errors(), "{:?}", soon.findings);
    let warnings: Vec<_> = soon.warnings().collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].problem.contains("CRL") && warnings[0].problem.contains("expires"));
    assert!(warnings[0].file.ends_with("pki/crl.pem"));

    let later = check_at(&config, now + 3 * 365 * day);
    let errors: Vec<_> = later.errors().map(|f| f.problem.as_str()).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("node certificate expired"))
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("CRL") && e.contains("expired"))
    );

    // The warning period is the operator's: one day is too short to see
    // the CRL's end 15 days ahead.
    edit(&config, |t| {
        t.replace("expiry_warning_days = 30", "expiry_warning_days = 1")
    });
    assert!(check_at(&config, now + 350 * day).findings.is_empty());
}

/// Two participants with one OIN: `serve` does not start (a certificate
/// with that OIN would be taken for either), and says why.
#[test]
fn a_duplicate_oin_stops_serve() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let init = sluis()
        .args(["init", "--dev", "--dir"])
        .arg(dir.path())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(init.status.success());
    let config = dir.path().join("sluis.toml");
    edit(&config, |t| {
        t.replace(
            "oin = \"00000001000000000002\"",
            "oin = \"00000001000000000001\"",
        )
    });
    let mut child = sluis()
        .args(["serve", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("serve kept running with a duplicate OIN");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains("have the same oin 00000001000000000001"),
        "{stderr}"
    );
    assert!(stderr.contains("does not start"), "{stderr}");
    // It stopped before it listened.
    assert!(!stderr.contains("sluis node serving"), "{stderr}");
}

/// A production node around the operator's own certificates: no dev CA,
/// no sample participants; `check-config` names exactly what is left (a
/// participant), and once it is filled in the node serves it over mTLS.
#[tokio::test]
async fn production_init_lists_what_is_left_and_serves_once_filled() {
    let root = tempfile::tempdir().unwrap();
    // The operator's PKI, made here: a CA, the node's certificate for
    // localhost, a CRL, and one client certificate (DT&V's).
    let oin = "00000001009876543000";
    sluis::net::pki::write_dev_pki(
        &root.path().join("pki"),
        &["localhost".to_string()],
        &[("dtv".into(), "DT&V".into(), Some(oin.into()))],
    )
    .unwrap();
    let pki = root.path().join("pki");
    let node = root.path().join("node");
    let addr: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let out = sluis()
        .args(["init", "--name", "sluis.gemeente-test.example", "--dir"])
        .arg(&node)
        .arg("--cert")
        .arg(pki.join("node.pem"))
        .arg("--key")
        .arg(pki.join("node.key"))
        .arg("--ca")
        .arg(pki.join("ca.pem"))
        .arg("--crl")
        .arg(pki.join("crl.pem"))
        .args(["--listen", &addr.to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("[ ] register the organisations"),
        "{stdout}"
    );
    assert!(stdout.contains("back up"), "{stdout}");
    // No dev CA, no sample participants; the operator's files where they are.
    assert!(!node.join("pki").exists());
    let config = node.join("sluis.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(!text.contains("\n[[participant]]"), "{text}");
    let abs = std::fs::canonicalize(pki.join("node.pem")).unwrap();
    assert!(text.contains(&format!("cert = \"{}\"", abs.display())));
    assert!(node.join("keys/signing.key").exists());

    // Exactly one thing is left: registering who may call.
    let report = check(&config);
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
    assert_eq!(report.findings[0].severity, Severity::Error);
    assert!(
        report.findings[0]
            .problem
            .contains("no participant is registered")
    );
    assert!(stdout.contains("no participant is registered"), "{stdout}");
    let refused = sluis()
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!refused.status.success());

    edit(&config, |t| {
        t + &format!(
            "\n[[participant]]\nid = \"dtv\"\nname = \"Dienst Terugkeer en Vertrek\"\nrole = \"dtv\"\noin = \"{oin}\"\n"
        )
    });
    let ok = sluis()
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );

    let mut child = sluis()
        .args(["serve", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut served = None;
    for _ in 0..400 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("serve exited with {status}");
        }
        if let Ok(Ok(channel)) = tokio::time::timeout(
            Duration::from_secs(2),
            common::channel_as(addr, root.path(), "dtv"),
        )
        .await
        {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
            served = Some(
                health
                    .check(tonic_health::pb::HealthCheckRequest::default())
                    .await,
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let answer = served
        .expect("the node accepted DT&V's certificate")
        .unwrap();
    assert_eq!(
        answer.into_inner().status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

/// A client CA without a CRL stops `serve` unless `tls.allow_missing_crl`
/// says otherwise, so `check-config` calls it an error too: a configuration
/// the check passes is one the node starts with.
#[test]
fn a_client_ca_without_a_crl_is_an_error_unless_allowed() {
    let root = tempfile::tempdir().unwrap();
    let oin = "00000001009876543000";
    sluis::net::pki::write_dev_pki(
        &root.path().join("pki"),
        &["localhost".to_string()],
        &[("dtv".into(), "DT&V".into(), Some(oin.into()))],
    )
    .unwrap();
    let pki = root.path().join("pki");
    let node = root.path().join("node");
    // `init` without --crl: the operator has not fetched the CA's CRL yet.
    let out = sluis()
        .args(["init", "--name", "sluis.gemeente-test.example", "--dir"])
        .arg(&node)
        .arg("--cert")
        .arg(pki.join("node.pem"))
        .arg("--key")
        .arg(pki.join("node.key"))
        .arg("--ca")
        .arg(pki.join("ca.pem"))
        .args(["--listen", &format!("127.0.0.1:{}", common::free_port())])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let config = node.join("sluis.toml");
    edit(&config, |t| {
        t + &format!(
            "\n[[participant]]\nid = \"dtv\"\nname = \"Dienst Terugkeer en Vertrek\"\nrole = \"dtv\"\noin = \"{oin}\"\n"
        )
    });

    let report = check(&config);
    let errors: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    assert_eq!(errors.len(), 1, "{:?}", report.findings);
    assert!(errors[0].problem.contains("no CRL"), "{:?}", errors[0]);
    assert!(
        errors[0].fix.contains("allow_missing_crl"),
        "{:?}",
        errors[0]
    );
    let checked = sluis()
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(checked.status.code(), Some(1), "{checked:?}");
    // And serve agrees: it does not start.
    let refused = sluis()
        .args(["serve", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no CRL"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // Serving without a CRL is the operator's explicit choice: then a warning.
    edit(&config, |t| {
        t.replace("allow_missing_crl = false", "allow_missing_crl = true")
    });
    let report = check(&config);
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.severity == Severity::Warning),
        "{:?}",
        report.findings
    );
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.problem.contains("no CRL is configured")),
        "{:?}",
        report.findings
    );
}

/// Each finding of the policy has the fix that fits it, and an unreadable
/// policy file is reported at the line of `node.policy` in `sluis.toml`,
/// naming the policy file it could not read.
#[tokio::test]
async fn policy_findings_say_the_fix_that_fits_them() {
    let (dir, config) = dev_node().await;
    let policy = dir.path().join("policy.cedar");
    let default = std::fs::read_to_string(&policy).unwrap();
    let policy_findings = |config: &Path| {
        check(config)
            .findings
            .into_iter()
            .filter(|f| f.problem.contains("rule") || f.problem.contains("policy"))
            .collect::<Vec<_>>()
    };

    // A rule without an id.
    std::fs::write(
        &policy,
        format!("{default}\npermit (principal, action, resource);\n"),
    )
    .unwrap();
    let found = policy_findings(&config);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].problem.contains("without @id"), "{found:?}");
    assert!(found[0].fix.contains("@id"), "{found:?}");

    // A rule cut short.
    std::fs::write(
        &policy,
        format!("{default}\n@id(\"cut\")\npermit (principal, action, resource) when {{\n"),
    )
    .unwrap();
    let found = policy_findings(&config);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].fix.contains("syntax"), "{found:?}");
    assert!(!found[0].fix.contains("node.purposes"), "{found:?}");

    // A file that is no text: the setting's line, in the file that has it.
    std::fs::write(&policy, b"\xff\xfe").unwrap();
    let found = policy_findings(&config);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].file, config, "{found:?}");
    let line = std::fs::read_to_string(&config)
        .unwrap()
        .lines()
        .position(|l| l.starts_with("policy ="))
        .unwrap()
        + 1;
    assert_eq!(found[0].line, Some(line), "{found:?}");
    assert!(found[0].problem.contains("policy.cedar"), "{found:?}");
}

/// What `serve` would refuse at start, or what would stop the node's
/// traffic once it serves, found by `check-config` in the same run: a
/// client-only certificate as the node's server certificate, a server-only
/// one for calling peers, two peer CAs under one subject, the federation
/// listener on the node's own address, an unreadable federation pseudonym
/// key — and `serve` refuses on them, saying the same.
#[tokio::test]
async fn check_config_finds_what_serve_would_refuse_or_trip_over() {
    let (dir, config) = dev_node().await;
    let d = dir.path();
    let ca = dev_ca(d);
    // The node's server certificate with clientAuth only.
    let client_only = ca
        .issue_client(&ClientCertSpec::new("sluis node", None))
        .unwrap();
    std::fs::write(d.join("pki/node.pem"), &client_only.cert_pem).unwrap();
    std::fs::write(d.join("pki/node.key"), &client_only.key_pem).unwrap();
    // The certificate for calling peers with serverAuth only.
    let server_only = ca
        .issue_server("sluis node", &["localhost".to_string()])
        .unwrap();
    std::fs::write(d.join("pki/fed.pem"), &server_only.cert_pem).unwrap();
    std::fs::write(d.join("pki/fed.key"), &server_only.key_pem).unwrap();
    // Two peer CAs with one subject.
    let (a, b) = (
        CertAuthority::generate("peer CA").unwrap(),
        CertAuthority::generate("peer CA").unwrap(),
    );
    std::fs::write(d.join("pki/peers.pem"), a.cert_pem() + &b.cert_pem()).unwrap();
    std::fs::write(
        d.join("pki/peers-crl.pem"),
        a.crl_pem(&[], time::Duration::days(1)).unwrap(),
    )
    .unwrap();
    // A pseudonym key that is not one.
    std::fs::write(d.join("kfed.key"), "not a key\n").unwrap();
    edit(&config, |t| {
        t.replacen(
            "listen = \"127.0.0.1:0\"",
            "listen = \"127.0.0.1:17443\"",
            1,
        ) + "\n[federation]\ndirectory = \"directory.note\"\n\
               verifier_key = \"net.example+00000000+AQ==\"\n\
               listen = \"127.0.0.1:17443\"\n\
               client_cert = \"pki/fed.pem\"\nclient_key = \"pki/fed.key\"\n\
               peer_ca = \"pki/peers.pem\"\npeer_crl = [\"pki/peers-crl.pem\"]\n\
               pseudonym_key = \"kfed.key\"\n"
    });

    let report = check(&config);
    let errors: Vec<String> = report
        .errors()
        .map(|f| format!("{}: {} | fix: {}", f.file.display(), f.problem, f.fix))
        .collect();
    for (file, what, fix) in [
        ("node.pem", "tls.cert is not for TLS servers", "serverAuth"),
        (
            "fed.pem",
            "federation.client_cert is not for TLS clients",
            "clientAuth",
        ),
        (
            "peers.pem",
            "two CAs with the same subject",
            "one certificate per CA subject",
        ),
        (
            "sluis.toml",
            "federation.listen (127.0.0.1:17443) is the address node.listen listens on",
            "a port of its own",
        ),
        ("kfed.key", "federation pseudonym key", "pseudonym-keygen"),
    ] {
        assert!(
            errors
                .iter()
                .any(|e| e.contains(file) && e.contains(what) && e.contains(fix)),
            "no error in {file} saying '{what}' with the fix '{fix}':\n{}",
            errors.join("\n")
        );
    }
    // The line of the listener that collides is named.
    let listen = report
        .errors()
        .find(|f| f.problem.starts_with("federation.listen"))
        .unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let line = text
        .lines()
        .position(|l| l == "listen = \"127.0.0.1:17443\"")
        .unwrap();
    assert!(listen.line.is_some_and(|l| l > line + 1), "{listen:?}");

    // The probes listener is a listener too.
    edit(&config, |t| {
        t.replace(
            "listen = \"127.0.0.1:17443\"\nclient_cert",
            "listen = \"127.0.0.1:0\"\nclient_cert",
        )
        .replacen(
            "listen = \"127.0.0.1:0\"",
            "listen = \"127.0.0.1:17444\"",
            1,
        )
        .replacen(
            "listen = \"127.0.0.1:0\"\nclient_cert",
            "listen = \"127.0.0.1:17444\"\nclient_cert",
            1,
        )
    });
    let report = check(&config);
    assert!(
        report.errors().any(|f| f.problem.contains(
            "federation.listen (127.0.0.1:17444) is the address probes.listen listens on"
        )),
        "{:#?}",
        report.findings
    );

    // `serve` stops on them before it listens, naming them.
    let out = sluis()
        .args(["serve", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("is not for TLS servers") && said.contains("does not start"),
        "{said}"
    );
}

/// A pseudonym secret version missing between two others (v1, v3): the
/// versions after the gap would be skipped and the pseudonyms issued under
/// them stop resolving, so the node refuses to start and check-config
/// names the missing file.
#[tokio::test]
async fn a_pseudonym_secret_version_missing_between_others_is_refused() {
    let (dir, config) = dev_node().await;
    let keys = dir.path().join("keys");
    assert_eq!(
        sluis::gateway::vault::Keys::add_pseudonym_version(&keys).unwrap(),
        2
    );
    assert_eq!(
        sluis::gateway::vault::Keys::add_pseudonym_version(&keys).unwrap(),
        3
    );
    std::fs::remove_file(keys.join("pseudonym.v2.key")).unwrap();

    let report = check(&config);
    let gap = report
        .errors()
        .find(|f| f.file.ends_with("pseudonym.v2.key"))
        .unwrap_or_else(|| panic!("{:#?}", report.findings));
    assert!(gap.problem.contains("pseudonym.v3.key"), "{gap}");
    assert!(gap.fix.contains("restore the missing version"), "{gap}");

    let loaded = sluis::config::Config::load(&config).unwrap();
    let err = sluis::node::Node::start(&loaded)
        .await
        .err()
        .expect("the node refuses to start");
    assert!(err.to_string().contains("pseudonym.v2.key"), "{err}");
    // A rotation does not paper over the gap either.
    assert!(sluis::gateway::vault::Keys::add_pseudonym_version(&keys).is_err());
}

/// A database no sluis has migrated yet — a new, empty PostgreSQL database
/// (SLUIS_TEST_BACKEND=postgres) or an empty SQLite file — is named as
/// that, with the step that is true of it: `serve` migrates as it starts,
/// or `sluis migrate` does it first. Not "make the database reachable",
/// which it is. After `sluis migrate` the warning is gone.
#[tokio::test]
async fn an_unmigrated_database_is_told_to_migrate_not_to_be_reached() {
    let (dir, config) = dev_node().await;
    let db = dir.path().join("sluis.db");
    std::fs::remove_file(&db).unwrap();
    std::fs::write(&db, b"").unwrap();
    common::use_test_database(dir.path()).await;
    let run = || {
        let out = sluis()
            .args(["check-config", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = run();
    let warning = said
        .lines()
        .find(|l| l.contains("no sluis schema yet"))
        .unwrap_or_else(|| panic!("no warning of the missing schema: {said}"));
    assert!(warning.starts_with("warning: "), "{warning}");
    assert!(
        said.contains("`sluis serve` applies the migrations when it starts")
            && said.contains("sluis migrate --config"),
        "{said}"
    );
    assert!(!said.contains("make the database reachable"), "{said}");
    let out = sluis()
        .args(["migrate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let said = run();
    assert!(!said.contains("schema"), "{said}");
}
