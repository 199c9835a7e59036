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

/// The 4-byte key id: SHA-256(name ‖ '\n' ‖ alg ‖ public key)[..4].
fn key_hash(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let mut buf = Vec::with_capacity(name.len() + 34);
    buf.extend_from_slice(name.as_bytes());
    buf.push(b'\n');
    buf.push(ALG_ED25519);
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

/// Signs `body` (which must end in a newline) as key `name`: the body, a
/// blank line, and one signature line `— <name> <base64(key id ‖ sig)>`.
pub fn sign(signer: &dyn Signer, name: &str, body: &str) -> String {
    debug_assert!(body.ends_with('\n'));
    let sig = signer.sign(body.as_bytes());
    let mut blob = key_hash(name, &signer.public_key()).to_vec();
    blob.extend_from_slice(&sig);
    format!("{body}\n{EM_DASH} {name} {}\n", B64.encode(blob))
}

/// Verifies `note` against `verifier` and returns the body.
pub fn verify<'a>(note: &'a str, verifier: &str) -> Result<&'a str, NoteError> {
    let mut parts = verifier.splitn(3, '+');
    let (name, hash_hex, key_b64) = match (parts.next(), parts.next(), parts.next()) {
        (Some(n), Some(h), Some(k)) if !n.is_empty() => (n, h, k),
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
    let split = note
        .rfind("\n\n")
        .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
    let body = &note[..split + 1];
    let sigs = &note[split + 2..];
    let prefix = format!("{EM_DASH} {name} ");
    for line in sigs.lines() {
        let Some(b64) = line.strip_prefix(&prefix) else {
            continue;
        };
        let blob = B64
            .decode(b64)
            .map_err(|_| NoteError::Malformed("signature is not base64"))?;
        if blob.len() != 68 || blob[..4] != hash {
            continue;
        }
        return UnparsedPublicKey::new(&ED25519, public)
            .verify(body.as_bytes(), &blob[4..])
            .map(|()| body)
            .map_err(|_| NoteError::BadSignature(name.to_string()));
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
        let note = sign(&keys, "sluis.example", "hello\nworld\n");
        assert_eq!(verify(&note, &vk).unwrap(), "hello\nworld\n");
        let edited = note.replace("world", "w0rld");
        assert_eq!(
            verify(&edited, &vk),
            Err(NoteError::BadSignature("sluis.example".into()))
        );
        let other = vk.replacen("sluis.example", "other", 1);
        assert!(verify(&note, &other).is_err());
    }
}
