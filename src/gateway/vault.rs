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
    #[error(
        "a rotation of the signing key was started and not finished ({0} is there): run `sluis keys rotate-signing` again to finish it, then start the node"
    )]
    RotationPending(PathBuf),
    #[error("sealed value cannot be opened (wrong key, wrong row, or tampered)")]
    Open,
    #[error("the system random generator failed")]
    Random,
}

/// The three secrets of a node, with the versions of the pseudonym secret
/// made by rotations.
pub struct Keys {
    data: LessSafeKey,
    pseudonym_secret: [u8; 32],
    /// Pseudonym secrets 2, 3, … (`pseudonym.v<N>.key`), oldest first.
    pseudonym_versions: Vec<[u8; 32]>,
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
/// The checkpoint verifier keys the log was signed with before the current
/// one, oldest first, one C2SP verifier key a line (public, not secret).
pub(crate) const SIGNING_HISTORY_FILE: &str = "signing.history";
/// The signing key a rotation is handing over to; present only while a
/// rotation is under way (or was interrupted).
pub(crate) const NEXT_SIGNING_KEY_FILE: &str = "signing.key.next";

/// The file of pseudonym secret `version` (2 or more; 1 is `pseudonym.key`).
fn pseudonym_version_file(version: u32) -> String {
    format!("pseudonym.v{version}.key")
}
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
        let pseudonym_versions = read_pseudonym_versions(dir)?;
        let signing = read_signing_key(dir)?;
        Ok(Keys {
            data: LessSafeKey::new(data_key),
            pseudonym_secret,
            pseudonym_versions,
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
            read_pseudonym_versions(dir).err(),
            read_signing_key(dir).err(),
            read_signing_history(dir).err(),
            Keys::no_rotation_pending(dir).err(),
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

    /// The first pseudonym secret: the log's own pseudonyms, hashes and
    /// digests stay under it (`gateway::pseudonym`).
    pub fn pseudonym_secret(&self) -> &[u8; 32] {
        &self.pseudonym_secret
    }

    /// The newest pseudonym secret and its version (1 until the first
    /// rotation): recipients' pseudonyms are issued under it.
    pub fn pseudonym_issuing(&self) -> (u32, &[u8; 32]) {
        match self.pseudonym_versions.last() {
            Some(s) => (1 + self.pseudonym_versions.len() as u32, s),
            None => (1, &self.pseudonym_secret),
        }
    }

    /// Makes the next pseudonym secret (`pseudonym.v<N>.key`, 0600) in
    /// `dir` and returns its version. The earlier ones stay: their files
    /// are what the node is, and a recipient's earlier pseudonyms resolve
    /// through the stored table, not through them.
    pub fn add_pseudonym_version(dir: &Path) -> Result<u32, VaultError> {
        let version = 2 + read_pseudonym_versions(dir)?.len() as u32;
        if version > crate::gateway::pseudonym::MAX_VERSION {
            return Err(VaultError::Malformed {
                path: dir.join(pseudonym_version_file(version)),
                what: "no pseudonym secret version is left",
            });
        }
        let mut ps = [0u8; 32];
        SystemRandom::new()
            .fill(&mut ps)
            .map_err(|_| VaultError::Random)?;
        write_secret(&dir.join(pseudonym_version_file(version)), &B64.encode(ps))?;
        Ok(version)
    }

    /// The verifier keys of the node's log, oldest first, the last the
    /// current signing key's under `name`: `signing.history` (each line a
    /// key the log was signed with before), then the current one. What
    /// `sluis audit verify` and `sluis restore --check` check the log
    /// against (`tlog::verify::verify_log_history`).
    pub fn log_keys(&self, dir: &Path, name: &str) -> Result<Vec<String>, VaultError> {
        let mut keys = read_signing_history(dir)?;
        let current = crate::tlog::note::verifier_key(name, &self.signing_public_key());
        if keys.last() != Some(&current) {
            keys.push(current);
        }
        Ok(keys)
    }

    /// The key a rotation hands over to: `signing.key.next`, made now if
    /// it is not there (an interrupted rotation left it), 0600.
    pub fn next_signing_key(dir: &Path) -> Result<Keys, VaultError> {
        let next = dir.join(NEXT_SIGNING_KEY_FILE);
        if !next.exists() {
            let rng = SystemRandom::new();
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| VaultError::Random)?;
            write_secret(&next, &B64.encode(pkcs8.as_ref()))?;
        }
        let mut keys = Keys::load(dir)?;
        keys.signing = read_signing_key_at(&next)?;
        Ok(keys)
    }

    /// Refuses a keys folder in which a rotation of the signing key was
    /// started and not finished (`signing.key.next` is there): the node
    /// must not sign with either key until `sluis keys rotate-signing` has
    /// finished it, or it would sign past the handover with the old key.
    pub fn no_rotation_pending(dir: &Path) -> Result<(), VaultError> {
        let next = dir.join(NEXT_SIGNING_KEY_FILE);
        match next.exists() {
            true => Err(VaultError::RotationPending(next)),
            false => Ok(()),
        }
    }

    /// Ends a rotation whose handover the log holds: `retired` (the old
    /// verifier key, and each before it) goes into `signing.history`, then
    /// `signing.key.next` replaces `signing.key` (a rename, atomic). The
    /// old private key is gone after this; its public key stays in the
    /// history.
    pub fn finish_rotation(dir: &Path, retired: &[String]) -> Result<(), VaultError> {
        write_signing_history(dir, retired)?;
        let (next, current) = (dir.join(NEXT_SIGNING_KEY_FILE), dir.join(SIGNING_KEY_FILE));
        fs::rename(&next, &current).map_err(|source| VaultError::Write {
            path: current,
            source,
        })
    }

    /// Writes `signing.history` (the verifier keys before the current one,
    /// oldest first), replacing it atomically: after a rename, the old
    /// name's key goes here.
    pub fn record_history(dir: &Path, retired: &[String]) -> Result<(), VaultError> {
        write_signing_history(dir, retired)
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

/// Pseudonym secrets 2, 3, … as far as their files go without a gap.
fn read_pseudonym_versions(dir: &Path) -> Result<Vec<[u8; 32]>, VaultError> {
    let mut out = Vec::new();
    for version in 2..=crate::gateway::pseudonym::MAX_VERSION {
        let path = dir.join(pseudonym_version_file(version));
        if !path.exists() {
            break;
        }
        let ps = read_b64(&path)?;
        out.push(
            ps.as_slice()
                .try_into()
                .map_err(|_| VaultError::Malformed {
                    path,
                    what: "expected 32 bytes, base64",
                })?,
        );
    }
    Ok(out)
}

/// Most verifier keys `signing.history` may hold (rotations and renames).
const MAX_HISTORY: usize = 1000;

fn read_signing_history(dir: &Path) -> Result<Vec<String>, VaultError> {
    let path = dir.join(SIGNING_HISTORY_FILE);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = crate::files::read_to_string(&path, crate::files::Kind::Key).map_err(|source| {
        VaultError::Read {
            path: path.clone(),
            source,
        }
    })?;
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    if keys.len() > MAX_HISTORY || keys.iter().any(|k| k.splitn(3, '+').count() != 3) {
        return Err(VaultError::Malformed {
            path,
            what: "expected one verifier key (<name>+<key id>+<key>) a line",
        });
    }
    Ok(keys)
}

fn write_signing_history(dir: &Path, keys: &[String]) -> Result<(), VaultError> {
    let path = dir.join(SIGNING_HISTORY_FILE);
    let tmp = dir.join(format!("{SIGNING_HISTORY_FILE}.tmp"));
    let _ = fs::remove_file(&tmp);
    let mut text = String::from(
        "# The checkpoint verifier keys this node's access log was signed with before\n\
         # the current signing key, oldest first. Public; written by `sluis keys\n\
         # rotate-signing` and `sluis node rename`. Keep it with the keys.\n",
    );
    for k in keys {
        text.push_str(k);
        text.push('\n');
    }
    write_secret(&tmp, text.trim_end())?;
    fs::rename(&tmp, &path).map_err(|source| VaultError::Write { path, source })
}

fn read_signing_key(dir: &Path) -> Result<Ed25519KeyPair, VaultError> {
    read_signing_key_at(&dir.join(SIGNING_KEY_FILE))
}

fn read_signing_key_at(path: &Path) -> Result<Ed25519KeyPair, VaultError> {
    let path = path.to_path_buf();
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
