//! The data subject's identifier in the access log, sealed to the privacy
//! officer's key.
//!
//! The Logboek Dataverwerkingen standard wants every log line to name its
//! data subject (`dpl.core.data_subject_id`), encrypted. The node seals the
//! subject's V-number or BSN to the officer's public key with HPKE
//! (RFC 9180, base mode; suite DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! ChaCha20-Poly1305 — KEM 0x0020, KDF 0x0001, AEAD 0x0003), with a fresh
//! encapsulation per record, so that two records of one person share no
//! bytes and do not link. The node holds only the public key: neither it
//! nor its operator can read the ids back. The officer opens one with
//! `sluis audit decrypt-subject` and the private key `sluis audit
//! officer-key` wrote.
//!
//! A sealed id is bound to its record: the AEAD's associated data is the
//! record's request id and the id type, so a ciphertext copied into another
//! record does not open.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};

use crate::tlog::{SealedSubject, SubjectIdType};

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type Aead = hpke::aead::ChaCha20Poly1305;

/// HPKE's `info`: names what the key is used for, so a ciphertext made for
/// anything else does not open.
const INFO: &[u8] = b"sluis/v1 ldv data_subject_id";
/// Length of the X25519 encapsulated key that starts a sealed id.
const ENC_LEN: usize = 32;
/// What a public key in the configuration starts with.
pub const PUBLIC_PREFIX: &str = "hpke-x25519:";
/// What the officer's private key file starts with.
const SECRET_PREFIX: &str = "sluis-officer-key-v1 hpke-x25519:";

#[derive(Debug, thiserror::Error)]
pub enum OfficerKeyError {
    #[error(
        "not an officer public key: expected \"{PUBLIC_PREFIX}\" and 32 bytes in base64 (as `sluis audit officer-key` writes it)"
    )]
    Public,
    #[error(
        "not an officer private key file: expected one line \"{SECRET_PREFIX}<32 bytes, base64>\" (as `sluis audit officer-key` writes it)"
    )]
    Secret,
    #[error("the sealed subject id is not valid base64 or is too short")]
    Malformed,
    #[error(
        "the sealed subject id does not open with this key: another officer key, or another record"
    )]
    Open,
    #[error("sealing the subject id failed")]
    Seal,
}

/// The privacy officer's public key, as the node holds it.
#[derive(Clone)]
pub struct OfficerKey(<Kem as hpke::Kem>::PublicKey);

impl std::fmt::Debug for OfficerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OfficerKey({})", self.to_config())
    }
}

impl OfficerKey {
    /// Reads `hpke-x25519:<base64 of 32 bytes>`.
    pub fn parse(s: &str) -> Result<OfficerKey, OfficerKeyError> {
        let b64 = s
            .trim()
            .strip_prefix(PUBLIC_PREFIX)
            .ok_or(OfficerKeyError::Public)?;
        let bytes = B64.decode(b64).map_err(|_| OfficerKeyError::Public)?;
        let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(&bytes)
            .map_err(|_| OfficerKeyError::Public)?;
        Ok(OfficerKey(pk))
    }

    /// The key as the configuration holds it.
    pub fn to_config(&self) -> String {
        format!("{PUBLIC_PREFIX}{}", B64.encode(self.0.to_bytes()))
    }

    /// Seals `value` (a V-number or BSN, as text) for the record
    /// `request_id`: a fresh encapsulation each call.
    pub fn seal(
        &self,
        request_id: &str,
        id_type: SubjectIdType,
        value: &str,
    ) -> Result<SealedSubject, OfficerKeyError> {
        let (enc, ct) = hpke::single_shot_seal::<Aead, Kdf, Kem>(
            &OpModeS::Base,
            &self.0,
            INFO,
            value.as_bytes(),
            &aad(request_id, id_type),
        )
        .map_err(|_| OfficerKeyError::Seal)?;
        let mut sealed = enc.to_bytes().to_vec();
        sealed.extend_from_slice(&ct);
        Ok(SealedSubject { id_type, sealed })
    }
}

fn aad(request_id: &str, id_type: SubjectIdType) -> Vec<u8> {
    format!("{request_id}\n{}", id_type.as_str()).into_bytes()
}

/// The privacy officer's private key: only in the officer's hands, never
/// on the node.
pub struct OfficerSecret(<Kem as hpke::Kem>::PrivateKey);

impl OfficerSecret {
    /// A new key pair: the private key's file text and the public key's
    /// configuration value.
    pub fn generate() -> (String, String) {
        let (sk, pk) = Kem::gen_keypair();
        let file = format!("{SECRET_PREFIX}{}\n", B64.encode(sk.to_bytes()));
        (file, OfficerKey(pk).to_config())
    }

    /// Reads the file text `generate` made.
    pub fn parse(file: &str) -> Result<OfficerSecret, OfficerKeyError> {
        let b64 = file
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(OfficerKeyError::Secret)?;
        let bytes = B64.decode(b64).map_err(|_| OfficerKeyError::Secret)?;
        let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(&bytes)
            .map_err(|_| OfficerKeyError::Secret)?;
        Ok(OfficerSecret(sk))
    }

    /// The public key that goes with it.
    pub fn public(&self) -> OfficerKey {
        OfficerKey(Kem::sk_to_pk(&self.0))
    }

    /// Opens a sealed id of the record `request_id`.
    pub fn open(
        &self,
        request_id: &str,
        id_type: SubjectIdType,
        sealed: &[u8],
    ) -> Result<String, OfficerKeyError> {
        if sealed.len() < ENC_LEN + 16 {
            return Err(OfficerKeyError::Malformed);
        }
        let (enc, ct) = sealed.split_at(ENC_LEN);
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(enc)
            .map_err(|_| OfficerKeyError::Malformed)?;
        let plain = hpke::single_shot_open::<Aead, Kdf, Kem>(
            &OpModeR::Base,
            &self.0,
            &enc,
            INFO,
            ct,
            &aad(request_id, id_type),
        )
        .map_err(|_| OfficerKeyError::Open)?;
        String::from_utf8(plain).map_err(|_| OfficerKeyError::Open)
    }

    /// Opens a sealed id as the LDV export writes it (base64).
    pub fn open_base64(
        &self,
        request_id: &str,
        id_type: SubjectIdType,
        sealed: &str,
    ) -> Result<String, OfficerKeyError> {
        let bytes = B64
            .decode(sealed.trim())
            .map_err(|_| OfficerKeyError::Malformed)?;
        self.open(request_id, id_type, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_ids_open_with_the_officer_key_only_and_do_not_link() {
        let (file, public) = OfficerSecret::generate();
        let secret = OfficerSecret::parse(&file).unwrap();
        let key = OfficerKey::parse(&public).unwrap();
        assert_eq!(secret.public().to_config(), public);
        let v = SubjectIdType::Vreemdelingennummer;
        let a = key.seal("r1", v, "1234567890").unwrap();
        let b = key.seal("r1", v, "1234567890").unwrap();
        assert_ne!(a.sealed, b.sealed, "a fresh encapsulation each time");
        assert!(!a.sealed.windows(10).any(|w| w == b"1234567890"));
        assert_eq!(secret.open("r1", v, &a.sealed).unwrap(), "1234567890");
        // Bound to its record and type.
        assert!(secret.open("r2", v, &a.sealed).is_err());
        assert!(secret.open("r1", SubjectIdType::Bsn, &a.sealed).is_err());
        // Another officer's key does not open it.
        let (other, _) = OfficerSecret::generate();
        let other = OfficerSecret::parse(&other).unwrap();
        assert!(matches!(
            other.open("r1", v, &a.sealed),
            Err(OfficerKeyError::Open)
        ));
        assert!(OfficerKey::parse("hpke-x25519:AAAA").is_err());
        assert!(OfficerSecret::parse(&public).is_err());
    }
}
