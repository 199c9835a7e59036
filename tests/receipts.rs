//! Consent receipts are C2SP signed notes that standard verifiers accept:
//! nothing a case owner types can add a line to what the node signs, and
//! `sluis receipt verify` refuses a note that is malformed even when its
//! signature is good.

mod common;

use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::*;
use sluis::gateway::vault::Keys;
use sluis::rpc::proto::v1 as pb;
use sluis::tlog::note::{self, Signer};
use tonic::Code;

fn sluis() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluis"))
}

/// `sluis receipt verify` on a note: whether it passed, and its output.
fn receipt_verify(dir: &std::path::Path, key: &str, note: &str) -> (bool, String) {
    let file = dir.join("receipt.txt");
    std::fs::write(&file, note).unwrap();
    let out = sluis()
        .args(["receipt", "verify", "--key", key])
        .arg(&file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The example from the outside test: a newline in `evidence_ref` planted
/// `category` and `state` lines in the signed receipt. Refused now, and the
/// receipt of the consent recorded instead has one line per fact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_cannot_plant_lines_in_a_signed_receipt() {
    let node = TestNode::start().await;
    let mut owner = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut owner).await;
    let planted = "DMS-1\ncategory medical\nstate active at 2099-01-01T00:00:00Z";
    let request = |evidence_ref: &str| {
        with_actor(pb::GrantConsentRequest {
            request_id: String::new(),
            evidence_ref: evidence_ref.into(),
            ..consent_request(&case_id)
        })
    };
    let digest = node.digest().await;
    let e = owner
        .consents
        .grant_consent(request(planted))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(
        e.message()
            .contains("evidence_ref must be a single line of printable text"),
        "{e:?}"
    );
    assert_eq!(node.digest().await, digest, "nothing stored");

    let consent = owner
        .consents
        .grant_consent(request("DMS-1 (scan, p. 3)"))
        .await
        .unwrap()
        .into_inner()
        .consent
        .unwrap();
    let receipt = owner
        .consents
        .get_consent_receipt(with_actor(pb::GetConsentReceiptRequest {
            consent_id: consent.consent_id,
        }))
        .await
        .unwrap()
        .into_inner();
    let body = note::verify(&receipt.signed_note, &receipt.verifier_key).unwrap();
    let count = |prefix: &str| body.lines().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(count("category "), 1, "{body}");
    assert_eq!(count("state "), 1, "{body}");
    assert_eq!(count("evidence "), 1, "{body}");
    let (ok, out) = receipt_verify(node.dir.path(), &receipt.verifier_key, &receipt.signed_note);
    assert!(ok, "{out}");
}

/// A note signed with the node's own key, but malformed by C2SP
/// signed-note (a control character in its text, a stray line among the
/// signatures): `sluis receipt verify` says NOT verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipt_verify_refuses_malformed_notes() {
    let node = TestNode::start().await;
    let keys = Keys::load(&node.config.path(&node.config.node.keys_dir)).unwrap();
    let name = node.config.node.name.clone();
    let key = note::verifier_key(&name, &keys.public_key());
    let key_id = hex::decode(key.split('+').nth(1).unwrap()).unwrap();
    // Signed as it stands, without the checks `note::sign` makes.
    let raw = |text: &str| {
        let mut blob = key_id.clone();
        blob.extend_from_slice(&keys.sign(text.as_bytes()));
        format!("{text}\n\u{2014} {name} {}\n", B64.encode(blob))
    };
    let good = raw("consent receipt\nevidence DMS-1\n");
    let (ok, out) = receipt_verify(node.dir.path(), &key, &good);
    assert!(ok, "a well-formed note verifies: {out}");
    for (what, note) in [
        (
            "a control character in the text",
            raw("consent receipt\nevidence DMS-1\u{1b}[1A\u{1b}[2Kstate active\n"),
        ),
        (
            "a carriage return in the text",
            raw("consent receipt\r\nevidence DMS-1\n"),
        ),
        (
            "a stray line among the signatures",
            format!("{good}state active\n"),
        ),
        (
            "no newline after the signature",
            good.trim_end().to_string(),
        ),
    ] {
        let (ok, out) = receipt_verify(node.dir.path(), &key, &note);
        assert!(!ok, "{what}: accepted:\n{out}");
        assert!(
            out.contains("receipt NOT verified: the note is malformed"),
            "{what}: {out}"
        );
    }
}
