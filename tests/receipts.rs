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
use sluis::rpc::Clients;
use sluis::rpc::proto::v1 as pb;
use sluis::tlog::note::{self, Signer};
use tonic::Code;

fn sluis() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluis"))
}

/// Grants a consent and fetches its signed receipt, as the case's owner.
async fn granted_receipt(
    owner: &mut Clients,
    grant: tonic::Request<pb::GrantConsentRequest>,
) -> pb::GetConsentReceiptResponse {
    let consent = owner
        .consents
        .grant_consent(grant)
        .await
        .unwrap()
        .into_inner()
        .consent
        .unwrap();
    owner
        .consents
        .get_consent_receipt(with_actor(pb::GetConsentReceiptRequest {
            consent_id: consent.consent_id,
        }))
        .await
        .unwrap()
        .into_inner()
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

    let receipt = granted_receipt(&mut owner, request("DMS-1 (scan, p. 3)")).await;
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
    let body = |evidence: &str, tail: &str| {
        format!(
            "{name}/consent-receipt/v1\nconsent 0f6a\ncase 9b2c\nrecorded-by gemeente-utrecht\n\
             recipient role dtv\ncategory perspective\npurpose return\n\
             valid-from 2026-01-01T00:00:00Z\nvalid-until open\nevidence {evidence}\n\
             state active at 2026-01-02T00:00:00Z\n{tail}"
        )
    };
    let good = raw(&body("DMS-1", ""));
    let (ok, out) = receipt_verify(node.dir.path(), &key, &good);
    assert!(ok, "a well-formed receipt verifies: {out}");
    for (what, note) in [
        (
            "a control character in the text",
            raw(&body("DMS-1\u{1b}[1A\u{1b}[2K", "")),
        ),
        ("a carriage return in the text", raw(&body("DMS-1\r", ""))),
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

/// A note the node's key signed that is not a consent receipt — a
/// checkpoint, or a receipt with a line doubled, added or missing — is
/// refused: a valid signature alone does not make a receipt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipt_verify_refuses_signed_notes_that_are_not_receipts() {
    let node = TestNode::start().await;
    let mut owner = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut owner).await;
    let receipt = granted_receipt(&mut owner, with_actor(consent_request(&case_id))).await;
    let body = note::verify(&receipt.signed_note, &receipt.verifier_key).unwrap();
    let keys = Keys::load(&node.config.path(&node.config.node.keys_dir)).unwrap();
    let name = node.config.node.name.clone();
    let key = receipt.verifier_key.clone();
    let key_id = hex::decode(key.split('+').nth(1).unwrap()).unwrap();
    let raw = |text: &str| {
        let mut blob = key_id.clone();
        blob.extend_from_slice(&keys.sign(text.as_bytes()));
        format!("{text}\n\u{2014} {name} {}\n", B64.encode(blob))
    };
    let state = body.lines().last().unwrap();
    let case_line = body.lines().find(|l| l.starts_with("case ")).unwrap();
    for (what, text, says) in [
        (
            "a checkpoint of the node's log",
            format!("{name}\n7\nq1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c=\n"),
            "its first line is",
        ),
        (
            "a second state line",
            format!("{body}state withdrawn at 2099-01-01T00:00:00Z\n"),
            "one such line only",
        ),
        (
            "a second case line",
            body.replacen(case_line, &format!("{case_line}\n{case_line}"), 1),
            "one such line only",
        ),
        (
            "no state line",
            body.replacen(&format!("{state}\n"), "", 1),
            "before its state line",
        ),
        (
            "a line added at the end",
            format!("{body}note agreed by phone\n"),
            "after the state line",
        ),
    ] {
        let note = raw(&text);
        let (ok, out) = receipt_verify(node.dir.path(), &key, &note);
        assert!(!ok, "{what}: accepted:\n{out}");
        assert!(
            out.contains("receipt NOT verified") && out.contains("is not a consent receipt"),
            "{what}: {out}"
        );
        assert!(out.contains(says), "{what}: {out}");
    }
}
