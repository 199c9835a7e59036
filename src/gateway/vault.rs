//! The node's secrets and the encryption of data at rest.
//!
//! Keys live in files the operator controls (created by `sluis init`), never
//! in the database: a stolen database alone reveals no identity or case data.
//! Every sealed value is bound to where it belongs (the associated data names
//! the row and field), so a ciphertext copied into another row fails to open.
//!
//! Envelope encryption (NIST SP 800-57 Part 1 §5.3.5 and §6.2: a data key
//! wrapped by a key-encryption key): each case has a key of its own, a
//! random AES-256 key ([`CaseKey`]), that seals its categories and its
//! subject id; the case key is stored *wrapped* under the node's data key
//! (the key-encryption key, KEK), whose versions are files in the keys
//! folder (`data.key` is version 1, `data.v2.key` version 2, …; the newest
//! wraps). Destroying a case's wrapped key erases the case for good
//! (crypto-erasure, GDPR art. 17): nothing of it opens again. Rotating the
//! data key re-wraps the case keys (32 bytes each) without touching the
//! case data.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};

use crate::tlog::note::Signer;

/// First byte of every sealed value: lets the key or algorithm change later
/// without guessing what an old row holds. `SEAL_V1`: AES-256-GCM under
/// data key version 1 itself (`1 ‖ nonce ‖ ciphertext ‖ tag`), what a node
/// wrote before per-case keys; still opened, never written.
const SEAL_V1: u8 = 1;
/// AES-256-GCM under the case's own key ([`CaseKey`]):
/// `2 ‖ nonce ‖ ciphertext ‖ tag`.
const SEAL_CASE: u8 = 2;
/// AES-256-GCM under a named data key version:
/// `3 ‖ version (u32, big-endian) ‖ nonce ‖ ciphertext ‖ tag`. Wrapped case
/// keys and page tokens.
const SEAL_KEK: u8 = 3;

/// The most data key versions a node holds (files in its keys folder).
pub const MAX_DATA_KEY_VERSIONS: u32 = 1_000;

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
    #[error(
        "the data key version {0} this value is sealed under is not in the keys folder (data.key is version 1, data.vN.key version N); restore its file"
    )]
    MissingVersion(u32),
    /// A pseudonym secret version file with a lower version missing: the
    /// versions are read in order, so every later one would be ignored and
    /// the pseudonyms issued under it would stop resolving.
    #[error(
        "pseudonym secret version file {found} is there but {missing} is not: the versions must follow each other without a gap (pseudonyms issued under a missing version no longer resolve)"
    )]
    VersionGap { missing: PathBuf, found: PathBuf },
    #[error("the system random generator failed")]
    Random,
}

/// The three secrets of a node, with the versions of the pseudonym secret
/// made by rotations and the data key in every version the keys folder holds.
pub struct Keys {
    data: std::sync::RwLock<DataKeys>,
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

/// The data key's versions, as read from the keys folder: version 1 is
/// `data.key`, version N ≥ 2 `data.vN.key`. The newest wraps new case keys.
struct DataKeys {
    versions: std::collections::BTreeMap<u32, LessSafeKey>,
}

impl DataKeys {
    fn read(dir: &Path) -> Result<DataKeys, VaultError> {
        let mut versions = std::collections::BTreeMap::new();
        for (version, path) in data_key_files(dir)? {
            versions.insert(version, LessSafeKey::new(read_data_key(&path)?));
        }
        if versions.is_empty() {
            // The error of the one file every node has.
            read_data_key(&dir.join(DATA_KEY_FILE))?;
        }
        Ok(DataKeys { versions })
    }

    fn current(&self) -> (u32, &LessSafeKey) {
        let (v, k) = self
            .versions
            .iter()
            .next_back()
            .expect("DataKeys::read refuses an empty folder");
        (*v, k)
    }
}

/// The file name of a data key version.
pub fn data_key_file(version: u32) -> String {
    if version == 1 {
        DATA_KEY_FILE.to_string()
    } else {
        format!("data.v{version}.key")
    }
}

/// The data key files in `dir`, by version (at most
/// [`MAX_DATA_KEY_VERSIONS`]).
fn data_key_files(dir: &Path) -> Result<Vec<(u32, PathBuf)>, VaultError> {
    let entries = fs::read_dir(dir).map_err(|source| VaultError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let version = if name == DATA_KEY_FILE {
            Some(1)
        } else {
            name.strip_prefix("data.v")
                .and_then(|r| r.strip_suffix(".key"))
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|n| (2..=MAX_DATA_KEY_VERSIONS).contains(n) && data_key_file(*n) == name)
        };
        if let Some(v) = version {
            out.push((v, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// A case's own data key, unwrapped, in memory only for the request that
/// needs it.
pub struct CaseKey(LessSafeKey);

impl std::fmt::Debug for CaseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CaseKey(<secret>)")
    }
}

/// What wraps a case key: bound to its case, so a wrapped key copied to
/// another case's row does not open.
fn case_key_aad(case_id: &str) -> Vec<u8> {
    format!("sluis/v1/case-key/{case_id}").into_bytes()
}

/// The data key version a wrapped key (or any `SEAL_KEK` value) is sealed
/// under; version 1 for a `SEAL_V1` value; `None` for anything else.
pub fn sealed_version(sealed: &[u8]) -> Option<u32> {
    match sealed.first() {
        Some(&SEAL_V1) => Some(1),
        Some(&SEAL_KEK) if sealed.len() >= 5 => {
            Some(u32::from_be_bytes(sealed[1..5].try_into().ok()?))
        }
        _ => None,
    }
}

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

/// The pseudonym secret version files (`pseudonym.v<N>.key`, N ≥ 2) in
/// `dir`, lowest version first.
fn pseudonym_version_files(dir: &Path) -> Result<Vec<(u32, PathBuf)>, VaultError> {
    let entries = fs::read_dir(dir).map_err(|source| VaultError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut out: Vec<(u32, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let version = name
                .to_str()?
                .strip_prefix("pseudonym.v")?
                .strip_suffix(".key")?
                .parse::<u32>()
                .ok()
                .filter(|v| *v >= 2 && pseudonym_version_file(*v) == name.to_str().unwrap_or(""))?;
            Some((version, entry.path()))
        })
        .collect();
    out.sort();
    Ok(out)
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
        let data = DataKeys::read(dir)?;
        let pseudonym_secret = read_pseudonym_secret(dir)?;
        let pseudonym_versions = read_pseudonym_versions(dir)?;
        let signing = read_signing_key(dir)?;
        Ok(Keys {
            data: std::sync::RwLock::new(data),
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
            DataKeys::read(dir).err(),
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

    fn data(&self) -> std::sync::RwLockReadGuard<'_, DataKeys> {
        self.data
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Re-reads the data key versions in `dir` (a new version the operator
    /// made with `sluis keys rotate-data`, an old one removed). Keeps the
    /// running set if the folder's keys do not load.
    pub fn reload_data_keys(&self, dir: &Path) -> Result<(), VaultError> {
        let read = DataKeys::read(dir)?;
        *self
            .data
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = read;
        Ok(())
    }

    /// The data key version that wraps new case keys (the newest file).
    pub fn data_key_version(&self) -> u32 {
        self.data().current().0
    }

    /// Every data key version this node holds, oldest first.
    pub fn data_key_versions(&self) -> Vec<u32> {
        self.data().versions.keys().copied().collect()
    }

    /// Writes a new data key version (the newest + 1) into `dir`, for
    /// `sluis keys rotate-data`; answers its number. Refuses to overwrite.
    pub fn rotate_data(dir: &Path) -> Result<u32, VaultError> {
        let newest = data_key_files(dir)?.last().map(|(v, _)| *v).unwrap_or(0);
        if newest == 0 {
            read_data_key(&dir.join(DATA_KEY_FILE))?;
        }
        let next = newest + 1;
        if next > MAX_DATA_KEY_VERSIONS {
            return Err(VaultError::Malformed {
                path: dir.to_path_buf(),
                what: "too many data key versions; remove the ones `sluis keys status` calls removable",
            });
        }
        let mut data = [0u8; 32];
        SystemRandom::new()
            .fill(&mut data)
            .map_err(|_| VaultError::Random)?;
        write_secret(&dir.join(data_key_file(next)), &B64.encode(data))?;
        Ok(next)
    }

    fn seal_with(
        &self,
        key: &LessSafeKey,
        header: &[u8],
        aad: &[u8],
        plain: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| VaultError::Random)?;
        let mut out = Vec::with_capacity(header.len() + NONCE_LEN + plain.len() + 16);
        out.extend_from_slice(header);
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut body,
        )
        .map_err(|_| VaultError::Open)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Encrypts `plain` with AES-256-GCM under a fresh random nonce and the
    /// newest data key version (named in the value); `aad` binds it to its
    /// place. For what belongs to no case (page tokens); case data is
    /// sealed under its case's key ([`Keys::seal_case`]).
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, VaultError> {
        let data = self.data();
        let (version, key) = data.current();
        let mut header = vec![SEAL_KEK];
        header.extend_from_slice(&version.to_be_bytes());
        self.seal_with(key, &header, aad, plain)
    }

    /// Opens what [`Keys::seal`] sealed, and values sealed under data key
    /// version 1 directly (`SEAL_V1`, before per-case keys). Errors:
    /// `Open` (wrong place, tampered, not such a value), `MissingVersion`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
        let (version, body) = match sealed.first() {
            Some(&SEAL_V1) => (1, &sealed[1..]),
            Some(&SEAL_KEK) => (
                sealed_version(sealed).ok_or(VaultError::Open)?,
                &sealed[5..],
            ),
            _ => return Err(VaultError::Open),
        };
        let data = self.data();
        let key = data
            .versions
            .get(&version)
            .ok_or(VaultError::MissingVersion(version))?;
        open_with(key, aad, body)
    }

    /// A new random key for a case, and that key wrapped under the newest
    /// data key version for the case's row.
    pub fn new_case_key(&self, case_id: &str) -> Result<(CaseKey, Vec<u8>), VaultError> {
        let raw = self.random_bytes::<32>()?;
        let wrapped = self.seal(&case_key_aad(case_id), &raw)?;
        let key = UnboundKey::new(&AES_256_GCM, &raw).map_err(|_| VaultError::Open)?;
        Ok((CaseKey(LessSafeKey::new(key)), wrapped))
    }

    /// Unwraps a case's key. Errors: `MissingVersion` when the data key
    /// version it is wrapped under is gone, `Open` when it is not this
    /// case's.
    pub fn case_key(&self, case_id: &str, wrapped: &[u8]) -> Result<CaseKey, VaultError> {
        let raw = self.open(&case_key_aad(case_id), wrapped)?;
        let key = UnboundKey::new(&AES_256_GCM, &raw).map_err(|_| VaultError::Open)?;
        Ok(CaseKey(LessSafeKey::new(key)))
    }

    /// The case key re-wrapped under the newest data key version, with that
    /// version, if it is wrapped under an older one; `None` if it is
    /// current. The case's data is not touched (it stays sealed under the
    /// same case key).
    pub fn rewrap(
        &self,
        case_id: &str,
        wrapped: &[u8],
    ) -> Result<Option<(Vec<u8>, u32)>, VaultError> {
        let current = self.data_key_version();
        if sealed_version(wrapped) == Some(current) {
            return Ok(None);
        }
        let raw = self.open(&case_key_aad(case_id), wrapped)?;
        Ok(Some((self.seal(&case_key_aad(case_id), &raw)?, current)))
    }

    /// Encrypts a case's value under its case key.
    pub fn seal_case(
        &self,
        key: &CaseKey,
        aad: &[u8],
        plain: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        self.seal_with(&key.0, &[SEAL_CASE], aad, plain)
    }

    /// Opens a case's value: one sealed under its case key, or one sealed
    /// before per-case keys under data key version 1 (then `key` may be
    /// `None`).
    pub fn open_case(
        &self,
        key: Option<&CaseKey>,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        match (sealed.first(), key) {
            (Some(&SEAL_CASE), Some(k)) => open_with(&k.0, aad, &sealed[1..]),
            (Some(&SEAL_V1), _) => self.open(aad, sealed),
            _ => Err(VaultError::Open),
        }
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

/// AES-256-GCM open of `nonce ‖ ciphertext ‖ tag`.
fn open_with(key: &LessSafeKey, aad: &[u8], body: &[u8]) -> Result<Vec<u8>, VaultError> {
    if body.len() < NONCE_LEN + 16 {
        return Err(VaultError::Open);
    }
    let nonce: [u8; NONCE_LEN] = body[..NONCE_LEN].try_into().map_err(|_| VaultError::Open)?;
    let mut body = body[NONCE_LEN..].to_vec();
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut body,
        )
        .map_err(|_| VaultError::Open)?;
    Ok(plain.to_vec())
}

fn read_data_key(path: &Path) -> Result<UnboundKey, VaultError> {
    let data = read_b64(path)?;
    UnboundKey::new(&AES_256_GCM, &data).map_err(|_| VaultError::Malformed {
        path: path.to_path_buf(),
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

/// Pseudonym secrets 2, 3, … in order. A version file past a missing one
/// is refused ([`VaultError::VersionGap`]), never skipped.
fn read_pseudonym_versions(dir: &Path) -> Result<Vec<[u8; 32]>, VaultError> {
    let mut out = Vec::new();
    for version in 2..=crate::gateway::pseudonym::MAX_VERSION {
        let path = dir.join(pseudonym_version_file(version));
        if !path.exists() {
            if let Some(found) = pseudonym_version_files(dir)?
                .into_iter()
                .find(|(v, _)| *v > version)
            {
                return Err(VaultError::VersionGap {
                    missing: path,
                    found: found.1,
                });
            }
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

/// Writes a secret readable by its owner only, whole or not at all, and
/// never over an existing file: into `.NAME.partial` beside `path`
/// (synced), then renamed to `path` and the folder synced. A write cut
/// short — the command killed, the disk full, the power gone — leaves no
/// file under `path`, so a half-written key is never taken for a key
/// version (which would stop the node, and make the next rotation build on
/// it); the next write of the same name replaces the partial file.
pub(crate) fn write_secret(path: &Path, contents: &str) -> Result<(), VaultError> {
    let err = |source| VaultError::Write {
        path: path.to_path_buf(),
        source,
    };
    if path.exists() {
        return Err(err(std::io::Error::from(std::io::ErrorKind::AlreadyExists)));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let partial = path.with_file_name(format!(".{name}.partial"));
    let _ = fs::remove_file(&partial);
    {
        use std::io::Write;
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(&partial).map_err(err)?;
        f.write_all(contents.as_bytes()).map_err(err)?;
        f.write_all(b"\n").map_err(err)?;
        f.sync_all().map_err(err)?;
    }
    fs::rename(&partial, path).map_err(err)?;
    // The rename itself durable: a key recorded in the log as made must
    // still be there after a power cut.
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value as a node sealed it before per-case keys: data key
    /// version 1 directly, `SEAL_V1`.
    fn seal_legacy(keys: &Keys, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        let data = keys.data();
        let key = data.versions.get(&1).unwrap();
        keys.seal_with(key, &[SEAL_V1], aad, plain).unwrap()
    }

    /// A case's values open only with its own key, in their place; values
    /// sealed before per-case keys still open; after a rotation the case
    /// key is re-wrapped (its values untouched) and the old version's file
    /// can go; a wrapped key under a missing version names that version.
    #[test]
    fn case_keys_wrap_under_versions_and_survive_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        Keys::create(dir.path()).unwrap();
        let keys = Keys::load(dir.path()).unwrap();
        assert_eq!(keys.data_key_version(), 1);
        let (key, wrapped) = keys.new_case_key("c1").unwrap();
        assert_eq!(sealed_version(&wrapped), Some(1));
        let sealed = keys.seal_case(&key, b"case/c1/medical", b"m").unwrap();
        assert!(keys.case_key("c2", &wrapped).is_err(), "bound to its case");
        let (other, _) = keys.new_case_key("c2").unwrap();
        assert!(
            keys.open_case(Some(&other), b"case/c1/medical", &sealed)
                .is_err()
        );
        let legacy = seal_legacy(&keys, b"case/c1/identity", b"old");
        assert_eq!(legacy.first(), Some(&SEAL_V1));
        assert_eq!(
            keys.open_case(None, b"case/c1/identity", &legacy).unwrap(),
            b"old"
        );

        assert_eq!(Keys::rotate_data(dir.path()).unwrap(), 2);
        keys.reload_data_keys(dir.path()).unwrap();
        assert_eq!(keys.data_key_versions(), vec![1, 2]);
        let (again, v) = keys.rewrap("c1", &wrapped).unwrap().unwrap();
        assert_eq!((v, sealed_version(&again)), (2, Some(2)));
        assert!(
            keys.rewrap("c1", &again).unwrap().is_none(),
            "already current"
        );

        fs::remove_file(dir.path().join(DATA_KEY_FILE)).unwrap();
        keys.reload_data_keys(dir.path()).unwrap();
        let key = keys.case_key("c1", &again).unwrap();
        assert_eq!(
            keys.open_case(Some(&key), b"case/c1/medical", &sealed)
                .unwrap(),
            b"m"
        );
        assert!(matches!(
            keys.case_key("c1", &wrapped),
            Err(VaultError::MissingVersion(1))
        ));
        assert!(matches!(
            keys.open_case(None, b"case/c1/identity", &legacy),
            Err(VaultError::MissingVersion(1))
        ));
    }

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
