//! The node's secrets and the encryption of data at rest.
//!
//! Keys live in files the operator controls (created by `sluis init`), never
//! in the database: a stolen database alone reveals no identity or case data.
//! Every sealed value is bound to where it belongs (the associated data names
//! the row and field), so a ciphertext copied into another row fails to open.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};

use crate::tlog::note::Signer;

/// First byte of every sealed value: lets the key or algorithm change later
/// without guessing what an old row holds.
const SEAL_V1: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write key file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {path} is malformed: {what}")]
    Malformed { path: PathBuf, what: &'static str },
    #[error(
        "key file {0} already exists; refusing to replace a key (data sealed with it would be lost)"
    )]
    Exists(PathBuf),
    #[error("sealed value cannot be opened (wrong key, wrong row, or tampered)")]
    Open,
    #[error("the system random generator failed")]
    Random,
}

/// The three secrets of a node.
pub struct Keys {
    data: LessSafeKey,
    pseudonym_secret: [u8; 32],
    signing: Ed25519KeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<secret>)")
    }
}

pub(crate) const DATA_KEY_FILE: &str = "data.key";
pub(crate) const PSEUDONYM_KEY_FILE: &str = "pseudonym.key";
pub(crate) const SIGNING_KEY_FILE: &str = "signing.key";

impl Keys {
    /// Creates the key files in `dir`. Refuses to overwrite any of them.
    pub fn create(dir: &Path) -> Result<(), VaultError> {
        let rng = SystemRandom::new();
        fs::create_dir_all(dir).map_err(|source| VaultError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        for name in [DATA_KEY_FILE, PSEUDONYM_KEY_FILE, SIGNING_KEY_FILE] {
            let path = dir.join(name);
            if path.exists() {
                return Err(VaultError::Exists(path));
            }
        }
        let mut data = [0u8; 32];
        rng.fill(&mut data).map_err(|_| VaultError::Random)?;
        let mut ps = [0u8; 32];
        rng.fill(&mut ps).map_err(|_| VaultError::Random)?;
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| VaultError::Random)?;
        write_secret(&dir.join(DATA_KEY_FILE), &B64.encode(data))?;
        write_secret(&dir.join(PSEUDONYM_KEY_FILE), &B64.encode(ps))?;
        write_secret(&dir.join(SIGNING_KEY_FILE), &B64.encode(pkcs8.as_ref()))?;
        Ok(())
    }

    pub fn load(dir: &Path) -> Result<Keys, VaultError> {
        let data_key = read_data_key(dir)?;
        let pseudonym_secret = read_pseudonym_secret(dir)?;
        let signing = read_signing_key(dir)?;
        Ok(Keys {
            data: LessSafeKey::new(data_key),
            pseudonym_secret,
            signing,
            rng: SystemRandom::new(),
        })
    }

    /// Every problem [`Keys::load`] would stop at, each key file read on
    /// its own (for `sluis check-config`, which reports all at once).
    pub fn check(dir: &Path) -> Vec<VaultError> {
        [
            read_data_key(dir).err(),
            read_pseudonym_secret(dir).err(),
            read_signing_key(dir).err(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Encrypts `plain` with AES-256-GCM under a fresh random nonce; `aad`
    /// binds it to its place.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| VaultError::Random)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plain.len() + 16);
        out.push(SEAL_V1);
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        self.data
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            )
            .map_err(|_| VaultError::Open)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
        if sealed.len() < 1 + NONCE_LEN + 16 || sealed[0] != SEAL_V1 {
            return Err(VaultError::Open);
        }
        let nonce: [u8; NONCE_LEN] = sealed[1..1 + NONCE_LEN]
            .try_into()
            .map_err(|_| VaultError::Open)?;
        let mut body = sealed[1 + NONCE_LEN..].to_vec();
        let plain = self
            .data
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            )
            .map_err(|_| VaultError::Open)?;
        Ok(plain.to_vec())
    }

    pub fn pseudonym_secret(&self) -> &[u8; 32] {
        &self.pseudonym_secret
    }

    pub fn signing_public_key(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.signing.public_key().as_ref());
        out
    }

    pub(crate) fn random_bytes<const N: usize>(&self) -> Result<[u8; N], VaultError> {
        let mut out = [0u8; N];
        self.rng.fill(&mut out).map_err(|_| VaultError::Random)?;
        Ok(out)
    }
}

/// The node's signing key signs checkpoints and receipts (C2SP signed notes).
impl Signer for Keys {
    fn sign(&self, msg: &[u8]) -> [u8; 64] {
        let sig = self.signing.sign(msg);
        let mut out = [0u8; 64];
        out.copy_from_slice(sig.as_ref());
        out
    }

    fn public_key(&self) -> [u8; 32] {
        self.signing_public_key()
    }
}

fn read_data_key(dir: &Path) -> Result<UnboundKey, VaultError> {
    let path = dir.join(DATA_KEY_FILE);
    let data = read_b64(&path)?;
    UnboundKey::new(&AES_256_GCM, &data).map_err(|_| VaultError::Malformed {
        path,
        what: "expected 32 bytes, base64",
    })
}

fn read_pseudonym_secret(dir: &Path) -> Result<[u8; 32], VaultError> {
    let path = dir.join(PSEUDONYM_KEY_FILE);
    let ps = read_b64(&path)?;
    ps.as_slice().try_into().map_err(|_| VaultError::Malformed {
        path,
        what: "expected 32 bytes, base64",
    })
}

fn read_signing_key(dir: &Path) -> Result<Ed25519KeyPair, VaultError> {
    let path = dir.join(SIGNING_KEY_FILE);
    let pkcs8 = read_b64(&path)?;
    Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|_| VaultError::Malformed {
        path,
        what: "expected an Ed25519 PKCS#8 key, base64",
    })
}

fn read_b64(path: &Path) -> Result<Vec<u8>, VaultError> {
    let text = crate::files::read_to_string(path, crate::files::Kind::Key).map_err(|source| {
        VaultError::Read {
            path: path.to_path_buf(),
            source,
        }
    })?;
    B64.decode(text.trim()).map_err(|_| VaultError::Malformed {
        path: path.to_path_buf(),
        what: "not base64",
    })
}

/// Writes a secret readable by its owner only.
pub(crate) fn write_secret(path: &Path, contents: &str) -> Result<(), VaultError> {
    let err = |source| VaultError::Write {
        path: path.to_path_buf(),
        source,
    };
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(err)?;
        f.write_all(contents.as_bytes()).map_err(err)?;
        f.write_all(b"\n").map_err(err)?;
        f.sync_all().map_err(err)
    }
    #[cfg(not(unix))]
    {
        fs::write(path, format!("{contents}\n")).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_value_opens_only_in_its_place() {
        let dir = tempfile::tempdir().unwrap();
        Keys::create(dir.path()).unwrap();
        let keys = Keys::load(dir.path()).unwrap();
        let sealed = keys.seal(b"case/1/identity", b"secret").unwrap();
        assert_eq!(keys.open(b"case/1/identity", &sealed).unwrap(), b"secret");
        assert!(keys.open(b"case/2/identity", &sealed).is_err());
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(keys.open(b"case/1/identity", &flipped).is_err());
        assert!(matches!(
            Keys::create(dir.path()),
            Err(VaultError::Exists(_))
        ));
    }
}
