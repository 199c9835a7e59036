//! Signed notes in the C2SP `signed-note` format with Ed25519.
//!
//! The same format serves consent receipts now and log checkpoints later: a
//! plain-text body anyone can read, then signature lines that anyone holding
//! the node's verifier key can check offline, with standard tooling.
//! <https://c2sp.org/signed-note>

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::digest::{SHA256, digest};
use ring::signature::{ED25519, UnparsedPublicKey};

const ALG_ED25519: u8 = 0x01;
const EM_DASH: &str = "\u{2014}";

/// Most signature lines a note may carry. C2SP signed-note: verifiers must
/// accept at least 16 and should bound the number.
pub(crate) const MAX_SIGNATURES: usize = 100;
/// Largest note accepted, in bytes: a receipt or checkpoint is a few hundred.
pub(crate) const MAX_NOTE_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoteError {
    #[error("the note is malformed: {0}")]
    Malformed(&'static str),
    #[error("the verifier key is malformed: {0}")]
    BadKey(&'static str),
    #[error("no signature by key '{0}' in the note")]
    NoSignature(String),
    #[error("the signature by '{0}' does not verify")]
    BadSignature(String),
}

/// Whatever holds the node's Ed25519 signing key (RFC 8032). The log signs
/// its checkpoints and the gateway its receipts through this, so the log
/// needs no access to the node's other secrets and does not depend on where
/// the key is kept.
pub trait Signer: Send + Sync {
    /// The Ed25519 signature (64 bytes) of `msg`.
    fn sign(&self, msg: &[u8]) -> [u8; 64];
    /// The Ed25519 public key (32 bytes) that verifies [`Signer::sign`].
    fn public_key(&self) -> [u8; 32];
}

/// Whether `name` can name a key in a signed note (C2SP signed-note,
/// "Format"): non-empty, without Unicode spaces, `+` or control characters.
pub(crate) fn valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

/// A note text as C2SP signed-note requires it: non-empty, ending in a
/// newline, no ASCII control character other than newline.
fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::Malformed("the text does not end in a newline"));
    }
    if text.bytes().any(|b| b < 0x20 && b != b'\n') {
        return Err(NoteError::Malformed(
            "it holds a control character (only newline is allowed)",
        ));
    }
    Ok(())
}

/// The 4-byte key id of an Ed25519 note key.
fn key_hash(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    key_id(name, ALG_ED25519, public_key)
}

/// The 4-byte key id: SHA-256(name ‖ '\n' ‖ alg ‖ public key)[..4] (C2SP
/// signed-note; `alg` is the signature type, 0x01 for a note's Ed25519,
/// 0x04 for a `cosignature/v1`).
pub(crate) fn key_id(name: &str, alg: u8, public_key: &[u8; 32]) -> [u8; 4] {
    let mut buf = Vec::with_capacity(name.len() + 34);
    buf.extend_from_slice(name.as_bytes());
    buf.push(b'\n');
    buf.push(alg);
    buf.extend_from_slice(public_key);
    let d = digest(&SHA256, &buf);
    let mut out = [0u8; 4];
    out.copy_from_slice(&d.as_ref()[..4]);
    out
}

/// The verifier key string `<name>+<hash hex>+<base64(alg ‖ key)>`.
pub fn verifier_key(name: &str, public_key: &[u8; 32]) -> String {
    let mut k = vec![ALG_ED25519];
    k.extend_from_slice(public_key);
    format!(
        "{name}+{}+{}",
        hex::encode(key_hash(name, public_key)),
        B64.encode(k)
    )
}

/// Signs `body` as key `name`: the body, a blank line, and one signature
/// line `— <name> <base64(key id ‖ sig)>`.
///
/// Errors: [`NoteError::Malformed`] when the body is not a note text (empty,
/// not ending in a newline, a control character other than newline) or the
/// name not a key name: the node never signs what a verifier would refuse.
pub fn sign(signer: &dyn Signer, name: &str, body: &str) -> Result<String, NoteError> {
    check_text(body)?;
    if !valid_key_name(name) {
        return Err(NoteError::Malformed(
            "the key name is empty or holds a space, '+' or a control character",
        ));
    }
    let sig = signer.sign(body.as_bytes());
    let mut blob = key_hash(name, &signer.public_key()).to_vec();
    blob.extend_from_slice(&sig);
    Ok(format!("{body}\n{EM_DASH} {name} {}\n", B64.encode(blob)))
}

/// Adds a signature by key `name` to a note `signer` did not sign yet
/// (C2SP signed-note: a note may carry several signatures, each a line;
/// a verifier ignores the ones by keys it does not know). Used when the
/// log is handed over to a new key: the handover checkpoint carries the old
/// and the new key's signatures.
///
/// Errors: [`NoteError::Malformed`] for a malformed note or key name.
pub fn cosign(signer: &dyn Signer, name: &str, note: &str) -> Result<String, NoteError> {
    let (text, _) = parse(note)?;
    let line = sign(signer, name, text)?;
    let sig = &line[text.len() + 1..];
    Ok(format!("{note}{sig}"))
}

/// The key names a note's signature lines are signed as, in their order
/// (none for a malformed note). Says who signed; proves nothing.
pub fn signature_names(note: &str) -> Vec<&str> {
    parse(note)
        .map(|(_, sigs)| sigs.into_iter().map(|(name, _)| name).collect())
        .unwrap_or_default()
}

/// Who signed a note, one `<key name>+<key id in hex>` per signature line
/// (the first two parts of the signer's verifier key), in their order;
/// none for a malformed note. Says who signed; proves nothing.
pub fn signature_keys(note: &str) -> Vec<String> {
    parse(note)
        .map(|(_, sigs)| {
            sigs.into_iter()
                .map(|(name, blob)| format!("{name}+{}", hex::encode(&blob[..4])))
                .collect()
        })
        .unwrap_or_default()
}

/// A signature line: the key name, and the key id ‖ signature.
type SignatureLine<'a> = (&'a str, Vec<u8>);

/// A note split into its text and signature lines (name, key id ‖
/// signature), checked against C2SP signed-note's format: valid UTF-8 (a
/// `&str`), no ASCII control character but newline, the text ending in a
/// newline and separated by the last blank line from one or more signature
/// lines `— <key name> <base64 of at least 5 bytes>`, each ending in a
/// newline, at most [`MAX_SIGNATURES`] of them.
fn parse(note: &str) -> Result<(&str, Vec<SignatureLine<'_>>), NoteError> {
    if note.len() > MAX_NOTE_BYTES {
        return Err(NoteError::Malformed("it is larger than a note may be"));
    }
    let split = note
        .rfind("\n\n")
        .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
    let text = &note[..split + 1];
    check_text(text)?;
    let sigs = &note[split + 2..];
    if sigs.is_empty() {
        return Err(NoteError::Malformed("no signature lines"));
    }
    check_text(sigs)?;
    let mut out = Vec::new();
    for line in sigs.lines() {
        let (name, b64) = line
            .strip_prefix(EM_DASH)
            .and_then(|l| l.strip_prefix(' '))
            .and_then(|l| l.split_once(' '))
            .ok_or(NoteError::Malformed(
                "a line after the blank line is not a signature line ('— <key name> <signature>')",
            ))?;
        if !valid_key_name(name) {
            return Err(NoteError::Malformed("a signature line has a bad key name"));
        }
        let blob = B64
            .decode(b64)
            .map_err(|_| NoteError::Malformed("a signature is not base64"))?;
        if blob.len() < 5 {
            return Err(NoteError::Malformed("a signature is too short"));
        }
        if out.len() == MAX_SIGNATURES {
            return Err(NoteError::Malformed("it has too many signatures"));
        }
        out.push((name, blob));
    }
    Ok((text, out))
}

/// A note's text and its signature lines (key name, key id ‖ signature),
/// checked as [`verify`] checks them; for signature types whose lines carry
/// more than a plain signature (`tlog::cosignature`).
pub(crate) fn split(note: &str) -> Result<(&str, Vec<SignatureLine<'_>>), NoteError> {
    parse(note)
}

/// A C2SP signed-note verifier key `<name>+<key id>+<base64(0x01 ‖ Ed25519
/// public key)>`, checked whole: a valid key name, an Ed25519 key of 32
/// bytes, and a key id (8 hex digits) that is the one of that name and key.
/// Returns the name, the public key and the key id. Errors: `BadKey`
/// saying which part is wrong.
pub fn parse_verifier_key(verifier: &str) -> Result<(&str, [u8; 32], [u8; 4]), NoteError> {
    let mut parts = verifier.splitn(3, '+');
    let (name, hash_hex, key_b64) = match (parts.next(), parts.next(), parts.next()) {
        (Some(n), Some(h), Some(k)) if valid_key_name(n) => (n, h, k),
        _ => return Err(NoteError::BadKey("expected <name>+<hash>+<key>")),
    };
    let key = B64
        .decode(key_b64)
        .map_err(|_| NoteError::BadKey("key is not base64"))?;
    if key.len() != 33 || key[0] != ALG_ED25519 {
        return Err(NoteError::BadKey("not an Ed25519 key"));
    }
    let public: [u8; 32] = key[1..].try_into().expect("length checked above");
    let hash = key_hash(name, &public);
    if hex::encode(hash) != hash_hex {
        return Err(NoteError::BadKey("key hash does not match name and key"));
    }
    Ok((name, public, hash))
}

/// Verifies `note` against `verifier` and returns its text (C2SP
/// signed-note, "Signatures"). A malformed note is refused whatever its
/// signatures; signatures by other keys are ignored; a signature by this key
/// (same name and key id) must verify.
pub fn verify<'a>(note: &'a str, verifier: &str) -> Result<&'a str, NoteError> {
    let (name, public, hash) = parse_verifier_key(verifier)?;
    let (text, sigs) = parse(note)?;
    for (signer, blob) in sigs {
        if signer != name || blob[..4] != hash {
            continue;
        }
        let valid = blob.len() == 68
            && UnparsedPublicKey::new(&ED25519, public)
                .verify(text.as_bytes(), &blob[4..])
                .is_ok();
        return if valid {
            Ok(text)
        } else {
            Err(NoteError::BadSignature(name.to_string()))
        };
    }
    Err(NoteError::NoSignature(name.to_string()))
}

/// A signer over a fixed key, for tests in the log's own modules.
#[cfg(test)]
pub(crate) struct TestSigner(ring::signature::Ed25519KeyPair);

#[cfg(test)]
impl TestSigner {
    pub(crate) fn new(seed: u8) -> TestSigner {
        TestSigner(
            ring::signature::Ed25519KeyPair::from_seed_unchecked(&[seed; 32])
                .expect("any 32 bytes are a seed"),
        )
    }
}

#[cfg(test)]
impl Signer for TestSigner {
    fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg).as_ref().try_into().expect("64 bytes")
    }
    fn public_key(&self) -> [u8; 32] {
        use ring::signature::KeyPair;
        self.0.public_key().as_ref().try_into().expect("32 bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_and_catches_edits() {
        let keys = TestSigner::new(7);
        let vk = verifier_key("sluis.example", &keys.public_key());
        let note = sign(&keys, "sluis.example", "hello\nworld\n").unwrap();
        assert_eq!(verify(&note, &vk).unwrap(), "hello\nworld\n");
        let edited = note.replace("world", "w0rld");
        assert_eq!(
            verify(&edited, &vk),
            Err(NoteError::BadSignature("sluis.example".into()))
        );
        let other = vk.replacen("sluis.example", "other", 1);
        assert!(verify(&note, &other).is_err());
    }

    /// A cosigned note verifies under either key, and still refuses edits.
    #[test]
    fn a_cosigned_note_verifies_under_each_key() {
        let (a, b) = (TestSigner::new(1), TestSigner::new(2));
        let (va, vb) = (
            verifier_key("a.example", &a.public_key()),
            verifier_key("b.example", &b.public_key()),
        );
        let note = cosign(&b, "b.example", &sign(&a, "a.example", "x\n").unwrap()).unwrap();
        assert_eq!(verify(&note, &va), Ok("x\n"));
        assert_eq!(verify(&note, &vb), Ok("x\n"));
        assert_eq!(note.lines().filter(|l| l.starts_with(EM_DASH)).count(), 2);
        assert!(verify(&note.replace("x\n\n", "y\n\n"), &vb).is_err());
    }

    /// What C2SP signed-note calls malformed is refused, even when the
    /// signature over the text is good: a control character, no blank line,
    /// a stray line among the signatures, a bad key name, bad base64.
    #[test]
    fn malformed_notes_are_refused_whatever_their_signature() {
        let keys = TestSigner::new(7);
        let vk = verifier_key("sluis.example", &keys.public_key());
        let good = sign(&keys, "sluis.example", "a\nb\n").unwrap();
        let sig_line = good.lines().last().unwrap().to_string();
        // A body with a control character, signed as it is (as a signer
        // that checks nothing would): the signature is good, the note is not.
        let sig = keys.sign(b"a\x1b[2Kb\n");
        let mut blob = key_hash("sluis.example", &keys.public_key()).to_vec();
        blob.extend_from_slice(&sig);
        let raw = format!(
            "a\x1b[2Kb\n\n{EM_DASH} sluis.example {}\n",
            B64.encode(&blob)
        );
        let malformed = [
            raw,
            format!("a\r\nb\n\n{sig_line}\n"),
            good.replacen("\n\n", "\n", 1),
            format!("{good}stray line\n"),
            format!("{good}{EM_DASH} bad+name AAAAAAAA\n"),
            format!("{good}{EM_DASH} other.example not-base64!\n"),
            format!("{good}{EM_DASH} other.example AAAA\n"),
            good.trim_end_matches('\n').to_string(),
            "a\nb\n\n".to_string(),
        ];
        for note in &malformed {
            assert!(
                matches!(verify(note, &vk), Err(NoteError::Malformed(_))),
                "{note:?}: {:?}",
                verify(note, &vk)
            );
        }
        // Signatures by other keys are ignored; a known key's bad one is not.
        let other = TestSigner::new(8);
        let cosigned = format!(
            "{good}{}",
            sign(&other, "other.example", "a\nb\n")
                .unwrap()
                .lines()
                .last()
                .unwrap()
        ) + "\n";
        assert_eq!(verify(&cosigned, &vk), Ok("a\nb\n"));
        let mut short = key_hash("sluis.example", &keys.public_key()).to_vec();
        short.push(0);
        let truncated = format!("a\nb\n\n{EM_DASH} sluis.example {}\n", B64.encode(&short));
        assert_eq!(
            verify(&truncated, &vk),
            Err(NoteError::BadSignature("sluis.example".into()))
        );
        // The node signs nothing a verifier would refuse.
        assert!(sign(&keys, "sluis.example", "a\x07\n").is_err());
        assert!(sign(&keys, "sluis.example", "no newline").is_err());
        assert!(sign(&keys, "two words", "a\n").is_err());
    }
}
