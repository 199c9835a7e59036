//! Cosignatures on checkpoints: C2SP `tlog-cosignature`, the Ed25519
//! `cosignature/v1` type (<https://c2sp.org/tlog-cosignature>).
//!
//! A cosignature is a witness's statement that, as of its timestamp, the
//! checkpoint is the largest consistent tree head it has seen of that log.
//! It is a signed-note signature line `— <witness name> base64(key id ‖
//! timestamp ‖ signature)`: the key id is SHA-256(name ‖ '\n' ‖ 0x04 ‖
//! public key)[..4], the timestamp 8 bytes big-endian (POSIX seconds), the
//! signature Ed25519 over
//!
//! ```text
//! cosignature/v1
//! time <timestamp>
//! <the checkpoint's body, every line of it>
//! ```
//!
//! so a cosigned checkpoint is the log's signed note with more signature
//! lines, readable by any C2SP tooling that knows the witness's key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{ED25519, UnparsedPublicKey};

use crate::tlog::note::{self, NoteError, Signer};

/// The signature type of an Ed25519 `cosignature/v1` key (C2SP
/// tlog-cosignature, "Format").
const ALG_COSIGNATURE_V1: u8 = 0x04;
/// The length of a decoded Ed25519 cosignature: key id, timestamp, signature.
const BLOB_LEN: usize = 4 + 8 + 64;

/// Why a cosignature or a witness key is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CosignatureError {
    #[error(transparent)]
    Note(#[from] NoteError),
    #[error(
        "the witness key is malformed: {0} (expected '<name>+<key id>+<base64 of 0x04 and the 32-byte Ed25519 key>')"
    )]
    BadKey(&'static str),
    #[error("the cosignature line is malformed: {0}")]
    Malformed(&'static str),
    #[error("no cosignature by witness '{0}'")]
    Missing(String),
    #[error("the cosignature by witness '{0}' does not verify")]
    BadSignature(String),
    #[error("the cosignature's timestamp is past 2^63 - 1")]
    Timestamp,
}

/// A witness's public key, parsed from its verifier key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessKey {
    /// The witness's key name, e.g. `gm0344/witness`.
    pub name: String,
    public: [u8; 32],
    id: [u8; 4],
}

fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    note::key_id(name, ALG_COSIGNATURE_V1, public)
}

/// The witness verifier key `<name>+<key id hex>+<base64(0x04 ‖ key)>`
/// (C2SP signed-note vkey with the cosignature type).
pub fn verifier_key(name: &str, public: &[u8; 32]) -> String {
    let mut k = vec![ALG_COSIGNATURE_V1];
    k.extend_from_slice(public);
    format!(
        "{name}+{}+{}",
        hex::encode(key_id(name, public)),
        B64.encode(k)
    )
}

impl WitnessKey {
    /// Parses a witness verifier key. Errors: `BadKey`, saying which part.
    pub fn parse(vkey: &str) -> Result<WitnessKey, CosignatureError> {
        let mut parts = vkey.splitn(3, '+');
        let (name, hash_hex, key_b64) = match (parts.next(), parts.next(), parts.next()) {
            (Some(n), Some(h), Some(k)) if note::valid_key_name(n) => (n, h, k),
            _ => return Err(CosignatureError::BadKey("not three '+'-separated parts")),
        };
        let key = B64
            .decode(key_b64)
            .map_err(|_| CosignatureError::BadKey("the key is not base64"))?;
        if key.len() != 33 || key[0] != ALG_COSIGNATURE_V1 {
            return Err(CosignatureError::BadKey(
                "not an Ed25519 cosignature/v1 key (type 0x04)",
            ));
        }
        let public: [u8; 32] = key[1..].try_into().expect("length checked above");
        let id = key_id(name, &public);
        if hex::encode(id) != hash_hex {
            return Err(CosignatureError::BadKey(
                "the key id does not match the name and key",
            ));
        }
        Ok(WitnessKey {
            name: name.to_string(),
            public,
            id,
        })
    }

    /// Verifies this witness's cosignature among the signature lines of
    /// `note` (a checkpoint with its signatures) and returns its timestamp
    /// (POSIX seconds). Lines by other keys are ignored; a line with this
    /// name and key id must verify. The log's own signature is not checked
    /// here: verify the checkpoint with the log's key as well.
    pub fn verify(&self, note: &str) -> Result<u64, CosignatureError> {
        let (text, sigs) = note::split(note)?;
        for (name, blob) in sigs {
            if name != self.name || blob[..4] != self.id {
                continue;
            }
            if blob.len() != BLOB_LEN {
                return Err(CosignatureError::BadSignature(self.name.clone()));
            }
            let ts = u64::from_be_bytes(blob[4..12].try_into().expect("8 bytes"));
            if ts > i64::MAX as u64 {
                return Err(CosignatureError::Timestamp);
            }
            return UnparsedPublicKey::new(&ED25519, self.public)
                .verify(message(text, ts).as_bytes(), &blob[12..])
                .map(|()| ts)
                .map_err(|_| CosignatureError::BadSignature(self.name.clone()));
        }
        Err(CosignatureError::Missing(self.name.clone()))
    }
}

/// The message a `cosignature/v1` signs: header line, time line, body.
fn message(body: &str, timestamp: u64) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{body}")
}

/// The signature line (ending in a newline) by which witness `name` cosigns
/// the checkpoint `body` at `timestamp` (POSIX seconds). Errors: a body
/// that is not a note text, a name a note cannot carry, a timestamp past
/// 2^63 - 1.
pub fn cosign(
    signer: &dyn Signer,
    name: &str,
    body: &str,
    timestamp: u64,
) -> Result<String, CosignatureError> {
    if timestamp > i64::MAX as u64 {
        return Err(CosignatureError::Timestamp);
    }
    // The same checks a signed note's text and key name pass.
    note::sign(signer, name, body)?;
    let sig = signer.sign(message(body, timestamp).as_bytes());
    let mut blob = key_id(name, &signer.public_key()).to_vec();
    blob.extend_from_slice(&timestamp.to_be_bytes());
    blob.extend_from_slice(&sig);
    Ok(format!("\u{2014} {name} {}\n", B64.encode(blob)))
}

/// Whether `line` is one signature line (`— <name> <base64>` and a
/// newline) and nothing else; its key name.
pub fn line_name(line: &str) -> Result<&str, CosignatureError> {
    let inner = line
        .strip_suffix('\n')
        .filter(|l| !l.contains('\n'))
        .ok_or(CosignatureError::Malformed(
            "it must be one line ending in a newline",
        ))?;
    let (name, b64) = inner
        .strip_prefix("\u{2014} ")
        .and_then(|l| l.split_once(' '))
        .ok_or(CosignatureError::Malformed(
            "expected '— <witness name> <base64 signature>'",
        ))?;
    if !note::valid_key_name(name) {
        return Err(CosignatureError::Malformed("the key name is not valid"));
    }
    match B64.decode(b64) {
        Ok(b) if b.len() == BLOB_LEN => Ok(name),
        _ => Err(CosignatureError::Malformed(
            "the signature is not base64 of a key id, a timestamp and an Ed25519 signature (76 bytes)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::checkpoint::Checkpoint;
    use crate::tlog::note::TestSigner;

    #[test]
    fn a_cosignature_verifies_under_its_witness_key_only() {
        let (log, w) = (TestSigner::new(1), TestSigner::new(2));
        let cp = Checkpoint {
            origin: "gm0363/access-log".into(),
            size: 7,
            root: [9; 32],
        };
        let signed = cp.sign(&log, "gm0363").unwrap();
        let line = cosign(&w, "gm0344/witness", &cp.body(), 1_700_000_000).unwrap();
        assert_eq!(line_name(&line), Ok("gm0344/witness"));
        let cosigned = format!("{signed}{line}");
        let key = WitnessKey::parse(&verifier_key("gm0344/witness", &w.public_key())).unwrap();
        assert_eq!(key.verify(&cosigned), Ok(1_700_000_000));
        // The log's signature still verifies: a cosignature is one more line.
        let log_key = note::verifier_key("gm0363", &log.public_key());
        assert_eq!(Checkpoint::verify(&cosigned, &log_key), Ok(cp.clone()));
        // Not on another checkpoint, not by another key, not as a log key.
        let other = signed.replacen("\n7\n", "\n8\n", 1);
        assert!(matches!(
            key.verify(&format!("{other}{line}")),
            Err(CosignatureError::BadSignature(_))
        ));
        assert_eq!(
            key.verify(&signed),
            Err(CosignatureError::Missing("gm0344/witness".into()))
        );
        assert!(WitnessKey::parse(&log_key).is_err());
        // A note signature by the witness key is not a cosignature.
        let plain = note::cosign(&w, "gm0344/witness", &signed).unwrap();
        assert!(key.verify(&plain).is_err());
    }

    /// The timestamp is part of what is signed (C2SP: `time <ts>` line).
    #[test]
    fn the_timestamp_is_signed() {
        let w = TestSigner::new(2);
        let key = WitnessKey::parse(&verifier_key("w", &w.public_key())).unwrap();
        let body = "o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        let line = cosign(&w, "w", body, 5).unwrap();
        let mut blob = B64
            .decode(line.trim_end().rsplit(' ').next().unwrap())
            .unwrap();
        blob[11] = 6;
        let moved = format!("\u{2014} w {}\n", B64.encode(&blob));
        let note = |l: &str| format!("{body}\n\u{2014} log AAAAAAAAAAAA\n{l}");
        assert_eq!(key.verify(&note(&line)), Ok(5));
        assert!(matches!(
            key.verify(&note(&moved)),
            Err(CosignatureError::BadSignature(_))
        ));
        assert!(line_name("\u{2014} w AAAA\n").is_err());
        assert!(line_name(&format!("{line}{line}")).is_err());
    }
}
