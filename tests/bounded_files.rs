//! Every file is read through one bounded reader: a path set to an endless
//! file (`/dev/zero`) is refused with an error naming the kind of file and
//! the limit, instead of hanging the node or running it out of memory.

use std::process::Command;
use std::time::Duration;

use sluis::config::Config;
use sluis::dev::init;
use sluis::node::Node;

/// A node folder whose configuration has `from` replaced by `to`; the
/// error of starting it.
async fn start_error(from: &str, to: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = init::init(dir.path(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from}");
    std::fs::write(&path, text.replace(from, to)).unwrap();
    let started = tokio::time::timeout(Duration::from_secs(60), async {
        let config = Config::load(&path).map_err(|e| e.to_string())?;
        Node::start(&config).await.map_err(|e| e.to_string())
    })
    .await
    .expect("an endless file must not hang the node");
    match started {
        Ok(_) => panic!("a node started with {to}"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn a_policy_certificate_or_crl_that_never_ends_is_refused() {
    for (from, to, kind) in [
        (
            "policy = \"policy.cedar\"",
            "policy = \"/dev/zero\"",
            "policy file",
        ),
        (
            "cert = \"pki/node.pem\"",
            "cert = \"/dev/zero\"",
            "certificate or key",
        ),
        (
            "crl = [\"pki/crl.pem\"]",
            "crl = [\"/dev/zero\"]",
            "CRL file",
        ),
    ] {
        let err = start_error(from, to).await;
        assert!(err.contains("larger than") && err.contains(kind), "{err}");
    }
}

#[test]
fn a_receipt_or_checkpoint_that_never_ends_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_sluis"))
        .args([
            "receipt",
            "verify",
            "--key",
            "node+01234567+AAAA",
            "/dev/zero",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("larger than") && err.contains("signed note"),
        "{err}"
    );
}
