//! The federation's pseudonym key `K_fed` (ARCHITECTURE.md, "Pseudonyms
//! across nodes"): on a node configured with it, a recipient's pseudonym
//! for a case is `HMAC-SHA256(HKDF-SHA256(K_fed, recipient), subject_ref)`
//! (RFC 5869, RFC 2104), truncated to 160 bits, with the prefix `pf1.`.
//!
//! Every node of the network holds the same `K_fed` (the operator hands it
//! out of band, never in the directory), and `subject_ref` moves with a
//! case on referral, so a recipient sees one pseudonym for a case whichever
//! node holds it. Two recipients' pseudonyms stay unlinkable without the
//! key. The node's own secret keeps deriving what never leaves it (the
//! audit domain, actor hashes, the subject index), and `ps1.` pseudonyms
//! issued before keep resolving: the issued (recipient, pseudonym) rows
//! stay and move with the case.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{hkdf, hmac};

/// The prefix of pseudonyms derived from `K_fed`.
pub(crate) const PREFIX: &str = "pf1.";
/// The first line of a key file, naming what it is.
const HEADER: &str = "sluis federation pseudonym key v1";

/// Why a pseudonym key file cannot be made or read.
#[derive(Debug, thiserror::Error)]
#[error("the federation pseudonym key {path}: {message}")]
pub struct PseudonymKeyError {
    path: std::path::PathBuf,
    message: String,
}

/// `K_fed`, ready to derive recipients' pseudonyms. No `Debug`: a secret.
pub struct FederationPseudonyms {
    prk: hkdf::Prk,
}

struct HmacKeyLen;
impl hkdf::KeyType for HmacKeyLen {
    fn len(&self) -> usize {
        32
    }
}

impl FederationPseudonyms {
    fn from_secret(secret: &[u8; 32]) -> FederationPseudonyms {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"sluis federation pseudonym v1");
        FederationPseudonyms {
            prk: salt.extract(secret),
        }
    }

    /// Makes a new `K_fed` (32 random bytes) and writes it to `path`
    /// (readable by its owner only; an existing file is never overwritten).
    pub fn generate(path: &Path) -> Result<(), PseudonymKeyError> {
        let err = |message: String| PseudonymKeyError {
            path: path.to_path_buf(),
            message,
        };
        let mut secret = [0u8; 32];
        SystemRandom::new()
            .fill(&mut secret)
            .map_err(|_| err("the system random generator failed".into()))?;
        let text = format!("{HEADER}\n{}", B64.encode(secret));
        crate::gateway::vault::write_secret(path, &text).map_err(|e| err(e.to_string()))
    }

    /// Reads a key [`FederationPseudonyms::generate`] wrote.
    pub fn load(path: &Path) -> Result<FederationPseudonyms, PseudonymKeyError> {
        let err = |message: &str| PseudonymKeyError {
            path: path.to_path_buf(),
            message: message.to_string(),
        };
        let text = crate::files::read_to_string(path, crate::files::Kind::Key)
            .map_err(|e| err(&e.to_string()))?;
        let mut lines = text.lines();
        if lines.next().map(str::trim) != Some(HEADER) {
            return Err(err(&format!(
                "expected '{HEADER}' on the first line (made by `sluis federation pseudonym-keygen`)"
            )));
        }
        let secret: [u8; 32] = lines
            .next()
            .and_then(|l| B64.decode(l.trim()).ok())
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| err("the second line must be 32 bytes in base64"))?;
        Ok(FederationPseudonyms::from_secret(&secret))
    }

    /// The pseudonym of the case with `subject_ref` for `recipient` (a
    /// participant id): `pf1.` and 27 characters of base64url.
    pub(crate) fn pseudonym(&self, recipient: &str, subject_ref: &[u8]) -> String {
        let info = [recipient.as_bytes()];
        let okm = self
            .prk
            .expand(&info, HmacKeyLen)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let mut key = [0u8; 32];
        okm.fill(&mut key)
            .expect("buffer length equals the requested length");
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), subject_ref);
        format!("{PREFIX}{}", B64URL.encode(&tag.as_ref()[..20]))
    }
}

/// Whether `s` has the shape of a `pf1.` pseudonym.
pub(crate) fn is_well_formed(s: &str) -> bool {
    s.strip_prefix(PREFIX).is_some_and(|rest| {
        rest.len() == 27
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_gives_every_node_the_same_pseudonyms_per_recipient() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pseudonym.key");
        FederationPseudonyms::generate(&path).unwrap();
        // Two nodes loading the same file: same value for one recipient,
        // different ones for another recipient and another case.
        let (a, b) = (
            FederationPseudonyms::load(&path).unwrap(),
            FederationPseudonyms::load(&path).unwrap(),
        );
        let p = a.pseudonym("ind", b"subject-ref-1");
        assert_eq!(p, b.pseudonym("ind", b"subject-ref-1"));
        assert_ne!(p, b.pseudonym("ngo-x", b"subject-ref-1"));
        assert_ne!(p, b.pseudonym("ind", b"subject-ref-2"));
        assert!(is_well_formed(&p), "{p}");
        assert!(!crate::gateway::pseudonym::is_well_formed(&p));
        // Another network's key: other values.
        let other = FederationPseudonyms::from_secret(&[9u8; 32]);
        assert_ne!(p, other.pseudonym("ind", b"subject-ref-1"));
        // Never overwritten; a file of another kind is refused.
        assert!(FederationPseudonyms::generate(&path).is_err());
        std::fs::write(dir.path().join("bad.key"), "lvv\nAAAA\n").unwrap();
        assert!(FederationPseudonyms::load(&dir.path().join("bad.key")).is_err());
    }
}
