//! The data subject's identifier in the access log, sealed to the privacy
//! officer's key.
//!
//! The Logboek Dataverwerkingen standard wants every log line to name its
//! data subject (`dpl.core.data_subject_id`), encrypted. The node seals the
//! subject's V-number or BSN to the officer's public key with HPKE
//! (RFC 9180, base mode; suite DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! ChaCha20-Poly1305 — KEM 0x0020, KDF 0x0001, AEAD 0x0003). The node holds
//! only the public key: neither it nor its operator can read the ids back
//! from the log. The officer opens one with `sluis audit decrypt-subject`
//! and the private key `sluis audit officer-key` wrote.
//!
//! Two formats of the sealed bytes, both opened by [`OfficerSecret::open`]:
//!
//! - **version 1** (records written before epochs): `enc ‖ ct`, a fresh
//!   single-shot HPKE encapsulation per record (RFC 9180 §6.1). Two X25519
//!   scalar multiplications per record: ~100 µs, most of a request's CPU.
//! - **version 2**: `0x02 ‖ enc ‖ n ‖ ct`. The node sets up one HPKE sender
//!   context per *epoch* (RFC 9180 §5.1, one encapsulation), takes the
//!   epoch's record key from it with the secret export interface (§5.3,
//!   `Export("sluis/v2 ldv record key", 32)`), and seals each record with
//!   ChaCha20-Poly1305 under that key and the nonce `0⁴ ‖ n` (`n` = the
//!   record's index in its epoch, u64 big-endian). Every record carries its
//!   epoch's `enc` and its own `n`, so it opens on its own (LDV export,
//!   `decrypt-subject`) with the officer's private key: decapsulate, export
//!   the same key, open. Nonces never repeat under one key (a counter, and
//!   a fresh key per epoch, also after a restart), so two records of one
//!   person in one epoch still share no ciphertext bytes and do not link:
//!   ChaCha20's key streams under distinct nonces are independent. What
//!   records of one epoch share is `enc`, which says only that they were
//!   written close together — as their log positions and times already do.
//!   An epoch ends after [`EPOCH_RECORDS`] records or [`EPOCH_AGE`],
//!   whichever comes first, and its key is dropped then: the node never
//!   holds a key that opens more than one epoch of records.
//!
//! A sealed id is bound to its record: the AEAD's associated data is the
//! record's request id and the id type, so a ciphertext copied into another
//! record does not open.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};

use crate::tlog::{SealedSubject, SubjectIdType};

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type Aead = hpke::aead::ChaCha20Poly1305;

/// HPKE's `info` of a version-1 sealed id: names what the key is used for,
/// so a ciphertext made for anything else does not open.
const INFO: &[u8] = b"sluis/v1 ldv data_subject_id";
/// HPKE's `info` of an epoch's context (version 2).
const INFO_V2: &[u8] = b"sluis/v2 ldv data_subject_id epoch";
/// The exporter context an epoch's record key is exported under
/// (RFC 9180 §5.3).
const EXPORT_CONTEXT: &[u8] = b"sluis/v2 ldv record key";
/// First byte of a version-2 sealed id.
const V2: u8 = 0x02;
/// Length of the X25519 encapsulated key (`enc`).
const ENC_LEN: usize = 32;
/// Length of a version-2 record's index in its epoch (u64 big-endian).
const INDEX_LEN: usize = 8;
/// Length of the ChaCha20-Poly1305 tag.
const TAG_LEN: usize = 16;
/// Records sealed under one epoch's key before a new epoch starts.
pub const EPOCH_RECORDS: u64 = 4096;
/// Age after which an epoch's key is no longer used: the next record
/// starts a new epoch.
pub const EPOCH_AGE: Duration = Duration::from_secs(60);
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

/// The privacy officer's public key, as the node holds it, with the
/// current epoch's sealing state (shared by clones: one epoch per node).
#[derive(Clone)]
pub struct OfficerKey {
    public: <Kem as hpke::Kem>::PublicKey,
    epoch: Arc<Mutex<Option<Epoch>>>,
}

/// One epoch of version-2 sealing: its `enc`, its record key and the next
/// record's index.
struct Epoch {
    enc: [u8; ENC_LEN],
    key: Arc<LessSafeKey>,
    next: u64,
    started: Instant,
}

impl Epoch {
    /// A fresh encapsulation to `public` and the record key exported from
    /// its context (RFC 9180 §5.1, §5.3).
    fn start(public: &<Kem as hpke::Kem>::PublicKey) -> Result<Epoch, OfficerKeyError> {
        let (enc, ctx) = hpke::setup_sender::<Aead, Kdf, Kem>(&OpModeS::Base, public, INFO_V2)
            .map_err(|_| OfficerKeyError::Seal)?;
        let key = export_key(|out| ctx.export(EXPORT_CONTEXT, out))?;
        let mut e = [0u8; ENC_LEN];
        e.copy_from_slice(&enc.to_bytes());
        Ok(Epoch {
            enc: e,
            key: Arc::new(key),
            next: 0,
            started: Instant::now(),
        })
    }

    fn spent(&self) -> bool {
        self.next >= EPOCH_RECORDS || self.started.elapsed() >= EPOCH_AGE
    }
}

/// The ChaCha20-Poly1305 key an HPKE context exports for records.
fn export_key(
    export: impl FnOnce(&mut [u8]) -> Result<(), hpke::HpkeError>,
) -> Result<LessSafeKey, OfficerKeyError> {
    let mut secret = [0u8; 32];
    export(&mut secret).map_err(|_| OfficerKeyError::Seal)?;
    let key = UnboundKey::new(&CHACHA20_POLY1305, &secret).map_err(|_| OfficerKeyError::Seal);
    secret.fill(0);
    Ok(LessSafeKey::new(key?))
}

/// The nonce of the record with index `n` in its epoch: `0⁴ ‖ n`.
fn nonce(n: u64) -> Nonce {
    let mut b = [0u8; 12];
    b[4..].copy_from_slice(&n.to_be_bytes());
    Nonce::assume_unique_for_key(b)
}

impl std::fmt::Debug for OfficerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OfficerKey({})", self.to_config())
    }
}

impl OfficerKey {
    fn new(public: <Kem as hpke::Kem>::PublicKey) -> OfficerKey {
        OfficerKey {
            public,
            epoch: Arc::default(),
        }
    }

    /// Reads `hpke-x25519:<base64 of 32 bytes>`.
    pub fn parse(s: &str) -> Result<OfficerKey, OfficerKeyError> {
        let b64 = s
            .trim()
            .strip_prefix(PUBLIC_PREFIX)
            .ok_or(OfficerKeyError::Public)?;
        let bytes = B64.decode(b64).map_err(|_| OfficerKeyError::Public)?;
        let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(&bytes)
            .map_err(|_| OfficerKeyError::Public)?;
        Ok(OfficerKey::new(pk))
    }

    /// The key as the configuration holds it.
    pub fn to_config(&self) -> String {
        format!("{PUBLIC_PREFIX}{}", B64.encode(self.public.to_bytes()))
    }

    /// Seals `value` (a V-number or BSN, as text) for the record
    /// `request_id`, in the version-2 format: `0x02 ‖ enc ‖ n ‖ ct`, under
    /// the current epoch's key (a new epoch, one encapsulation, when the
    /// last is spent). A few µs, and ~100 µs once per epoch.
    pub fn seal(
        &self,
        request_id: &str,
        id_type: SubjectIdType,
        value: &str,
    ) -> Result<SealedSubject, OfficerKeyError> {
        let (enc, key, n) = {
            let mut slot = self.epoch.lock().map_err(|_| OfficerKeyError::Seal)?;
            if slot.as_ref().is_none_or(Epoch::spent) {
                *slot = Some(Epoch::start(&self.public)?);
            }
            let Some(e) = slot.as_mut() else {
                return Err(OfficerKeyError::Seal);
            };
            let n = e.next;
            e.next += 1;
            (e.enc, Arc::clone(&e.key), n)
        };
        let mut sealed = Vec::with_capacity(1 + ENC_LEN + INDEX_LEN + value.len() + TAG_LEN);
        sealed.push(V2);
        sealed.extend_from_slice(&enc);
        sealed.extend_from_slice(&n.to_be_bytes());
        let mut body = value.as_bytes().to_vec();
        key.seal_in_place_append_tag(nonce(n), Aad::from(aad(request_id, id_type)), &mut body)
            .map_err(|_| OfficerKeyError::Seal)?;
        sealed.extend_from_slice(&body);
        Ok(SealedSubject { id_type, sealed })
    }

    /// Seals `value` in the version-1 format (a single-shot HPKE
    /// encapsulation), as records were sealed before epochs: only to show
    /// that such records still open.
    #[cfg(test)]
    fn seal_v1(&self, request_id: &str, id_type: SubjectIdType, value: &str) -> Vec<u8> {
        let (enc, ct) = hpke::single_shot_seal::<Aead, Kdf, Kem>(
            &OpModeS::Base,
            &self.public,
            INFO,
            value.as_bytes(),
            &aad(request_id, id_type),
        )
        .expect("seals");
        let mut sealed = enc.to_bytes().to_vec();
        sealed.extend_from_slice(&ct);
        sealed
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
        (file, OfficerKey::new(pk).to_config())
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
        OfficerKey::new(Kem::sk_to_pk(&self.0))
    }

    /// Opens a sealed id of the record `request_id`, in either format. A
    /// version-1 id starts with a random `enc`, so one in 256 starts with
    /// the version-2 byte: when the version-2 reading does not open, the
    /// version-1 reading is tried (an AEAD tag does not verify by chance).
    pub fn open(
        &self,
        request_id: &str,
        id_type: SubjectIdType,
        sealed: &[u8],
    ) -> Result<String, OfficerKeyError> {
        if sealed.len() < ENC_LEN + TAG_LEN {
            return Err(OfficerKeyError::Malformed);
        }
        let aad = aad(request_id, id_type);
        let v2 = if sealed[0] == V2 && sealed.len() >= 1 + ENC_LEN + INDEX_LEN + TAG_LEN {
            self.open_v2(&aad, &sealed[1..])
        } else {
            Err(OfficerKeyError::Open)
        };
        let plain = match v2 {
            Ok(plain) => plain,
            Err(_) => self.open_v1(&aad, sealed)?,
        };
        String::from_utf8(plain).map_err(|_| OfficerKeyError::Open)
    }

    /// `enc ‖ ct`: one single-shot HPKE open (RFC 9180 §6.1).
    fn open_v1(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OfficerKeyError> {
        let (enc, ct) = sealed.split_at(ENC_LEN);
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(enc)
            .map_err(|_| OfficerKeyError::Malformed)?;
        hpke::single_shot_open::<Aead, Kdf, Kem>(&OpModeR::Base, &self.0, &enc, INFO, ct, aad)
            .map_err(|_| OfficerKeyError::Open)
    }

    /// `enc ‖ n ‖ ct` (after the version byte): the epoch's context set up
    /// from `enc`, its record key exported, the record opened with nonce
    /// `0⁴ ‖ n`.
    fn open_v2(&self, aad: &[u8], rest: &[u8]) -> Result<Vec<u8>, OfficerKeyError> {
        let (enc, rest) = rest.split_at(ENC_LEN);
        let (n, ct) = rest.split_at(INDEX_LEN);
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(enc)
            .map_err(|_| OfficerKeyError::Malformed)?;
        let ctx = hpke::setup_receiver::<Aead, Kdf, Kem>(&OpModeR::Base, &self.0, &enc, INFO_V2)
            .map_err(|_| OfficerKeyError::Open)?;
        let key =
            export_key(|out| ctx.export(EXPORT_CONTEXT, out)).map_err(|_| OfficerKeyError::Open)?;
        let n = u64::from_be_bytes(n.try_into().map_err(|_| OfficerKeyError::Malformed)?);
        let mut body = ct.to_vec();
        let plain = key
            .open_in_place(nonce(n), Aad::from(aad), &mut body)
            .map_err(|_| OfficerKeyError::Open)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (OfficerSecret, OfficerKey) {
        let (file, public) = OfficerSecret::generate();
        let secret = OfficerSecret::parse(&file).unwrap();
        let key = OfficerKey::parse(&public).unwrap();
        assert_eq!(secret.public().to_config(), public);
        (secret, key)
    }

    #[test]
    fn sealed_ids_open_with_the_officer_key_only_and_do_not_link() {
        let (secret, key) = pair();
        let v = SubjectIdType::Vreemdelingennummer;
        let a = key.seal("r1", v, "1234567890").unwrap();
        let b = key.seal("r1", v, "1234567890").unwrap();
        assert_ne!(a.sealed, b.sealed, "a fresh nonce each time");
        assert!(!a.sealed.windows(10).any(|w| w == b"1234567890"));
        assert_eq!(secret.open("r1", v, &a.sealed).unwrap(), "1234567890");
        // Bound to its record and type.
        assert!(secret.open("r2", v, &a.sealed).is_err());
        assert!(secret.open("r1", SubjectIdType::Bsn, &a.sealed).is_err());
        // Another officer's key does not open it.
        let (other, _) = pair();
        assert!(matches!(
            other.open("r1", v, &a.sealed),
            Err(OfficerKeyError::Open)
        ));
        // Cut short: malformed or not opened, never a wrong answer.
        assert!(secret.open("r1", v, &a.sealed[..40]).is_err());
        assert!(
            secret
                .open("r1", v, &a.sealed[..a.sealed.len() - 1])
                .is_err()
        );
        assert!(OfficerKey::parse("hpke-x25519:AAAA").is_err());
        assert!(OfficerSecret::parse(&key.to_config()).is_err());
    }

    /// Two records of one subject in one epoch: one encapsulation between
    /// them, yet ciphertexts that share nothing, and each opens on its own
    /// with the officer's key.
    #[test]
    fn records_of_one_subject_in_one_epoch_do_not_link_and_each_opens() {
        let (secret, key) = pair();
        let v = SubjectIdType::Vreemdelingennummer;
        let a = key.seal("r1", v, "1234567890").unwrap().sealed;
        let b = key.seal("r2", v, "1234567890").unwrap().sealed;
        let head = 1 + ENC_LEN;
        assert_eq!(a[0], V2);
        assert_eq!(a[..head], b[..head], "one epoch: the same enc");
        assert_ne!(a[head..head + INDEX_LEN], b[head..head + INDEX_LEN]);
        let (ca, cb) = (&a[head + INDEX_LEN..], &b[head + INDEX_LEN..]);
        assert_eq!(ca.len(), cb.len());
        assert!(
            ca.iter().zip(cb).filter(|(x, y)| x == y).count() < 4,
            "the ciphertexts of one value under distinct nonces look unrelated"
        );
        assert_eq!(secret.open("r1", v, &a).unwrap(), "1234567890");
        assert_eq!(secret.open("r2", v, &b).unwrap(), "1234567890");
        // A record's index is bound in: another index does not open.
        let mut moved = b.clone();
        moved[head + INDEX_LEN - 1] ^= 1;
        assert!(secret.open("r2", v, &moved).is_err());
    }

    #[test]
    fn an_epoch_ends_after_its_records_and_clones_share_it() {
        let (secret, key) = pair();
        let other = key.clone();
        let v = SubjectIdType::Bsn;
        let first = key.seal("r0", v, "123456782").unwrap().sealed;
        for i in 1..EPOCH_RECORDS {
            let s = other.seal(&format!("r{i}"), v, "123456782").unwrap().sealed;
            assert_eq!(s[..1 + ENC_LEN], first[..1 + ENC_LEN]);
        }
        let next = key.seal("rn", v, "123456782").unwrap().sealed;
        assert_ne!(next[..1 + ENC_LEN], first[..1 + ENC_LEN], "a new epoch");
        assert_eq!(next[1 + ENC_LEN..1 + ENC_LEN + INDEX_LEN], [0; 8]);
        assert_eq!(secret.open("rn", v, &next).unwrap(), "123456782");
    }

    /// Records sealed before epochs (version 1: `enc ‖ ct`) still open,
    /// including those whose `enc` happens to start with the version-2 byte.
    #[test]
    fn version_1_ids_still_open() {
        let (secret, key) = pair();
        let v = SubjectIdType::Vreemdelingennummer;
        let mut seen_v2_byte = false;
        for i in 0..2000 {
            let old = key.seal_v1("r1", v, "1234567890");
            assert_eq!(old.len(), ENC_LEN + 10 + TAG_LEN);
            assert_eq!(secret.open("r1", v, &old).unwrap(), "1234567890", "{i}");
            seen_v2_byte |= old[0] == V2;
            if seen_v2_byte && i > 10 {
                break;
            }
        }
        assert!(seen_v2_byte, "an old id starting with 0x02 was tried");
    }
}
