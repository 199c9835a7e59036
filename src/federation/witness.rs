//! Witnessing: what a node checks of a peer's checkpoint before it cosigns
//! it, and the key it cosigns with (ARCHITECTURE.md, "Witnessing").
//!
//! A witness keeps, per peer, the newest checkpoint it cosigned. A new one
//! is cosigned only if it is signed by the peer's `log-key` from the
//! directory, carries the peer's origin, and extends the kept one (RFC 6962
//! §2.1.2 consistency proof from the kept size, fetched from the peer). A
//! smaller size is a log that went back; the same size with another root,
//! or a proof that does not verify, a log that forked: both raise an alarm
//! and keep the two signed checkpoints as evidence. A cosignature is a
//! C2SP `cosignature/v1` ([`crate::tlog::cosignature`]).

use std::path::Path;

use crate::federation::directory::{Directory, witness_name};
use crate::federation::{FederationError, FederationKey};
use crate::store::witness::StoredCosignature;
use crate::store::{Store, StoreError, StoredCheckpoint};
use crate::tlog::checkpoint::Checkpoint;
use crate::tlog::cosignature::{self, CosignatureError};
use crate::tlog::merkle::{self, Hash};
use crate::tlog::note::Signer;

/// `witness_interval_secs` when the configuration does not say.
pub fn default_interval_secs() -> u64 {
    60
}

/// A node's witness key (Ed25519, RFC 8032), named `<node id>/witness`.
/// Kept in a file of its own, in the federation key's format (the name on
/// the first line, PKCS#8 in base64 on the second): a witness key is not
/// the log's signing key, so the statement "I saw this log consistent" and
/// "this is my log" are never made with one key.
pub struct WitnessSigner {
    key: FederationKey,
}

impl WitnessSigner {
    /// Makes node `node`'s witness key at `path` (never overwritten) and
    /// returns its verifier key, the directory's `witness-key` for it.
    pub fn generate(node: &str, path: &Path) -> Result<String, FederationError> {
        FederationKey::generate(&witness_name(node), path)?;
        Ok(WitnessSigner::load(node, path)?.verifier_key())
    }

    /// Reads node `node`'s witness key. Errors: an unreadable or malformed
    /// file, or a key named for another node.
    pub fn load(node: &str, path: &Path) -> Result<WitnessSigner, FederationError> {
        let key = FederationKey::load(path)?;
        let want = witness_name(node);
        if key.network() != want {
            return Err(FederationError::Key {
                path: path.to_path_buf(),
                message: format!(
                    "this witness key is named '{}', not '{want}': it was made for another node (`sluis federation witness-keygen --node {node}`)",
                    key.network()
                ),
            });
        }
        Ok(WitnessSigner { key })
    }

    /// The name its cosignatures carry, `<node id>/witness`.
    pub fn name(&self) -> &str {
        self.key.network()
    }

    /// Its verifier key (C2SP vkey, type 0x04), as the directory lists it.
    pub fn verifier_key(&self) -> String {
        cosignature::verifier_key(self.name(), &self.key.public_key())
    }

    /// The cosignature line on checkpoint `cp` at `timestamp` (POSIX seconds).
    pub fn cosign(&self, cp: &Checkpoint, timestamp: u64) -> Result<String, CosignatureError> {
        cosignature::cosign(&self.key, self.name(), &cp.body(), timestamp)
    }
}

/// Why a peer's log is not one log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlarmKind {
    /// Two signed checkpoints that cannot both be of one append-only log:
    /// the same size with different roots, or a larger one that does not
    /// extend the smaller.
    Fork,
    /// A signed checkpoint smaller than one the peer signed before.
    Rollback,
}

impl AlarmKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmKind::Fork => "fork",
            AlarmKind::Rollback => "rollback",
        }
    }
}

/// What a witness makes of a peer's checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// It extends (or equals) the one seen before, or none was seen: cosign.
    Extends,
    /// Raise an alarm, keep both checkpoints, do not cosign.
    Alarm { kind: AlarmKind, detail: String },
}

/// What one witnessing step on a peer came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WitnessOutcome {
    /// Its checkpoint of `size` was checked and cosigned; the peer now holds
    /// `cosignatures` witnesses' cosignatures on it.
    Cosigned { size: u64, cosignatures: u32 },
    /// Its log forked or went back: the evidence is kept.
    Alarm { kind: AlarmKind, detail: String },
    /// Nothing was judged (unreachable, a checkpoint that does not verify,
    /// the directory not valid…): tried again next round.
    Failed(String),
}

/// Judges `offered` against `seen` (the newest checkpoint of the same log
/// this witness cosigned, if any) with `proof`, the RFC 6962 §2.1.2
/// consistency proof from `seen`'s size to `offered`'s. Both checkpoints'
/// signatures and origins are checked by the caller.
pub fn judge(seen: Option<&Checkpoint>, offered: &Checkpoint, proof: &[Hash]) -> Judgement {
    let Some(seen) = seen else {
        return Judgement::Extends;
    };
    if offered.size < seen.size {
        return Judgement::Alarm {
            kind: AlarmKind::Rollback,
            detail: format!(
                "the log went back: it signed size {} after size {}",
                offered.size, seen.size
            ),
        };
    }
    if offered.size == seen.size {
        return if offered.root == seen.root {
            Judgement::Extends
        } else {
            Judgement::Alarm {
                kind: AlarmKind::Fork,
                detail: format!("two different roots signed at size {}", seen.size),
            }
        };
    }
    match merkle::verify_consistency(seen.size, offered.size, &seen.root, &offered.root, proof) {
        Ok(()) => Judgement::Extends,
        Err(e) => Judgement::Alarm {
            kind: AlarmKind::Fork,
            detail: format!(
                "the checkpoint of size {} does not extend the one of size {} (consistency proof: {e})",
                offered.size, seen.size
            ),
        },
    }
}

/// The witnesses of `directory` (other than `own`, the log's node) whose
/// cosignature among `cosignatures` verifies on the signed checkpoint
/// `note`, by node id, each once. A line by a key the directory does not
/// list, or one that does not verify, counts for nothing.
pub fn valid_cosigners(
    directory: &Directory,
    own: &str,
    note: &str,
    cosignatures: &[StoredCosignature],
) -> Vec<String> {
    let mut out: Vec<String> = directory
        .nodes
        .iter()
        .filter(|n| n.id != own)
        .filter_map(|n| {
            let key = cosignature::WitnessKey::parse(n.witness_key.as_deref()?).ok()?;
            let line = cosignatures.iter().find(|c| c.witness == key.name)?;
            key.verify(&format!("{note}{}", line.line)).ok()?;
            Some(n.id.clone())
        })
        .collect();
    out.dedup();
    out
}

/// How many cosignatures a subject access report requires on one node's
/// checkpoint, of how many witnesses the directory lists for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Quorum {
    /// The verifier keys of the node's witnesses: every other node's
    /// `witness-key` in the directory (C2SP tlog-cosignature, type 0x04).
    pub witness_keys: Vec<String>,
    /// How many of them must have cosigned.
    pub required: u32,
}

/// The quorum of node `node`'s witnesses a report requires:
/// `configured` (`[federation] report_cosignatures`), else a majority of
/// the witnesses the directory lists for it (the other nodes with a
/// `witness-key`); 0 witnesses, 0 required (and the report says that no
/// witness confirms the node's checkpoint).
pub fn report_quorum(directory: &Directory, node: &str, configured: Option<u32>) -> Quorum {
    let witness_keys: Vec<String> = directory
        .nodes
        .iter()
        .filter(|n| n.id != node)
        .filter_map(|n| n.witness_key.clone())
        .collect();
    let majority = u32::try_from(witness_keys.len() / 2 + 1).unwrap_or(u32::MAX);
    let required = match (configured, witness_keys.is_empty()) {
        (_, true) => 0,
        (Some(k), false) => k,
        (None, false) => majority,
    };
    Quorum {
        witness_keys,
        required,
    }
}

/// The witnesses (by key name, `<node>/witness`) among `witness_keys`
/// whose cosignature on the cosigned checkpoint `note` (the log's signed
/// note with cosignature lines appended, C2SP tlog-cosignature) verifies.
/// A key without a line counts for nothing. Errors: a line with a listed
/// witness's name and key id that does not verify (a forged or altered
/// cosignature: the note is not what the witness signed), or a key that
/// does not parse. The log's own signature is checked by the caller.
pub fn cosigners_in(note: &str, witness_keys: &[String]) -> Result<Vec<String>, CosignatureError> {
    let mut out = Vec::new();
    for vkey in witness_keys {
        let key = cosignature::WitnessKey::parse(vkey)?;
        match key.verify(note) {
            Ok(_) => out.push(key.name),
            Err(CosignatureError::Missing(_)) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// A checkpoint of this node with the witnesses whose cosignatures on it
/// verify.
#[derive(Clone, Debug)]
pub struct Cosigned {
    pub checkpoint: StoredCheckpoint,
    /// Node ids of the witnesses, each with a valid cosignature.
    pub witnesses: Vec<String>,
    /// The checkpoint's signed note with those cosignature lines appended
    /// (C2SP tlog-cosignature): what a client checks a quorum on.
    pub note: String,
}

/// The checkpoint of this node (`own`) held with cosignatures of a size no
/// larger than `at_most` (any: `None`), the largest of those with at least
/// `k` valid cosignatures from `directory`'s witness keys; `None` if none
/// has. For `sluis audit verify --cosignatures` and for proofs that need a
/// cosigned checkpoint.
pub async fn cosigned_checkpoint(
    store: &Store,
    directory: &Directory,
    own: &str,
    k: usize,
    at_most: Option<u64>,
) -> Result<Option<Cosigned>, StoreError> {
    for size in store.cosigned_sizes().await? {
        if at_most.is_some_and(|m| size as u64 > m) {
            continue;
        }
        let Some(checkpoint) = store.checkpoint(size).await? else {
            continue;
        };
        let held = store.cosignatures(size).await?;
        let witnesses = valid_cosigners(directory, own, &checkpoint.note, &held);
        if witnesses.len() >= k {
            let mut note = checkpoint.note.clone();
            for c in &held {
                if witnesses
                    .iter()
                    .any(|w| c.witness == crate::federation::directory::witness_name(w))
                {
                    note.push_str(&c.line);
                }
            }
            return Ok(Some(Cosigned {
                checkpoint,
                witnesses,
                note,
            }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::merkle::{leaf_hash, root_of};

    fn cp(size: u64, root: Hash) -> Checkpoint {
        Checkpoint {
            origin: "gm0363/access-log".into(),
            size,
            root,
        }
    }

    /// A real tree: extensions pass, a rewritten history, a same-size
    /// other root and a smaller size do not.
    #[test]
    fn a_witness_cosigns_extensions_only() {
        let leaves: Vec<Hash> = (0..9u8).map(|i| leaf_hash(&[i])).collect();
        let root = |n: usize| root_of(&leaves[..n]);
        let proof = |old: u64, new: u64| {
            merkle::consistency_proof(old, new, |id| {
                Some(root_of(&leaves[id.start() as usize..id.end() as usize]))
            })
            .expect("all nodes at hand")
        };
        let seen = cp(5, root(5));
        assert_eq!(judge(None, &seen, &[]), Judgement::Extends);
        assert_eq!(
            judge(Some(&seen), &cp(9, root(9)), &proof(5, 9)),
            Judgement::Extends
        );
        assert_eq!(judge(Some(&seen), &seen.clone(), &[]), Judgement::Extends);
        // A history rewritten below size 5, then grown to 9.
        let mut other = leaves.clone();
        other[2] = leaf_hash(b"rewritten");
        let forked = cp(9, root_of(&other));
        assert!(matches!(
            judge(Some(&seen), &forked, &proof(5, 9)),
            Judgement::Alarm {
                kind: AlarmKind::Fork,
                ..
            }
        ));
        assert!(matches!(
            judge(Some(&seen), &cp(5, root_of(&other[..5])), &[]),
            Judgement::Alarm {
                kind: AlarmKind::Fork,
                ..
            }
        ));
        assert!(matches!(
            judge(Some(&seen), &cp(3, root(3)), &[]),
            Judgement::Alarm {
                kind: AlarmKind::Rollback,
                ..
            }
        ));
    }

    /// The quorum a report requires: a majority of the node's witnesses
    /// (its peers' witness keys), the configured number, and none (said
    /// as such) when the directory lists no witness for the node.
    #[test]
    fn a_report_requires_a_majority_of_a_nodes_witnesses() {
        let mut d = crate::federation::directory::tests::sample();
        // gm0518 is witnessed by gm0344 only: one of one.
        let q = report_quorum(&d, "gm0518", None);
        assert_eq!((q.witness_keys.len(), q.required), (1, 1));
        assert_eq!(report_quorum(&d, "gm0518", Some(3)).required, 3);
        // gm0344's only peer has no witness key: nobody confirms it.
        let q = report_quorum(&d, "gm0344", Some(2));
        assert_eq!((q.witness_keys.len(), q.required), (0, 0));
        let mut n = crate::gateway::oversight::ReportNode {
            node: "gm0344".into(),
            quorum: q,
            ..Default::default()
        };
        n.check_witnesses().unwrap();
        assert!(!n.witnessed);
        assert!(
            n.witness_note.contains("lists no witnesses"),
            "{}",
            n.witness_note
        );
        // Three more witnessed peers: a majority of four is three.
        for i in 0..3u8 {
            let mut extra = d.nodes[0].clone();
            extra.id = format!("gm090{i}");
            d.nodes.push(extra);
        }
        assert_eq!(report_quorum(&d, "gm0518", None).required, 3);
    }

    #[test]
    fn a_witness_key_is_its_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("witness.key");
        let vkey = WitnessSigner::generate("gm0344", &path).unwrap();
        assert!(vkey.starts_with("gm0344/witness+"));
        let w = WitnessSigner::load("gm0344", &path).unwrap();
        assert_eq!(w.verifier_key(), vkey);
        assert!(matches!(
            WitnessSigner::load("gm0363", &path),
            Err(FederationError::Key { .. })
        ));
        let c = cp(1, [1; 32]);
        let line = w.cosign(&c, 10).unwrap();
        let key = cosignature::WitnessKey::parse(&vkey).unwrap();
        assert_eq!(
            key.verify(&format!("{}\n\u{2014} x AAAAAAAA\n{line}", c.body())),
            Ok(10)
        );
    }
}
