//! Proofs from the stored log: the signed checkpoint of a size, inclusion
//! proofs (an entry is in the tree a checkpoint commits to) and consistency
//! proofs (a later tree extends an earlier one), per RFC 6962 §2.1.1 and
//! §2.1.2 (RFC 9162 §2.1.3, §2.1.4).
//!
//! They are computed from the stored hash tiles (each perfect subtree's
//! hash read from its tile), so a proof costs O(log n) tile reads at any
//! log size. Anyone holding a signed checkpoint and the node's
//! verifier key can check them offline; [`InclusionProof::verify`] does the
//! hash part.

use std::collections::HashMap;

use crate::store::{Store, StoreError, StoredCheckpoint};
use crate::tlog::merkle::{self, Hash, NodeId};

/// Why a proof cannot be given. The first five are the asker's to act on;
/// the missing ones mean the stored log is damaged.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    #[error(
        "no checkpoint has been signed yet; the first follows within a second of the first entry"
    )]
    NoCheckpointYet,
    #[error("no checkpoint of size {size} was signed; ask for the latest")]
    NoCheckpointOfSize { size: u64 },
    #[error("no access record with this request id")]
    NoSuchRecord,
    #[error("entry {index} is not covered by the checkpoint of size {size} yet")]
    NotCoveredYet { index: u64, size: u64 },
    /// The index is past the end of the log (or of the tree size named):
    /// asking again will not help until the log grows that far.
    #[error("index {index} is past the end: the {what} has {}", entries(*.size))]
    PastTheEnd {
        index: u64,
        size: u64,
        what: &'static str,
    },
    #[error("need old_size <= new_size <= {size} (the log's size); got {old} and {new}")]
    BadRange { old: u64, new: u64, size: u64 },
    #[error(
        "the log's tree is incomplete: nodes for the proof are missing; run `sluis audit verify`"
    )]
    NodesMissing,
    #[error("the log's tree is incomplete: entry {index} is missing; run `sluis audit verify`")]
    EntryMissing { index: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How many entries a log of `size` has and their indexes, as `PastTheEnd`
/// words them.
fn entries(size: u64) -> String {
    match size {
        0 => "no entries".into(),
        1 => "1 entry (index 0)".into(),
        n => format!("{n} entries (indexes 0 to {})", n - 1),
    }
}

/// Which entry a proof is for.
#[derive(Clone, Debug)]
pub enum LeafRef {
    /// The request id in the access record (a UUID).
    RequestId(String),
    /// The entry's position in the log, from 0.
    Index(u64),
}

/// An entry, the signed checkpoint it is proven against, and the audit
/// path between them (RFC 6962 §2.1.1).
#[derive(Clone, Debug)]
pub struct InclusionProof {
    pub(crate) index: u64,
    pub(crate) tree_size: u64,
    /// The audit path, leaf side first (32-byte SHA-256 hashes).
    pub(crate) hashes: Vec<Hash>,
    /// The record's canonical encoding; its leaf hash is what the proof proves.
    pub(crate) leaf: Vec<u8>,
    pub(crate) checkpoint: StoredCheckpoint,
}

impl InclusionProof {
    /// Checks the proof against the checkpoint's root (the signature is the
    /// caller's to check, with the node's verifier key).
    pub fn verify(&self) -> Result<(), merkle::ProofError> {
        let root: Hash = self
            .checkpoint
            .root
            .as_slice()
            .try_into()
            .map_err(|_| merkle::ProofError::RootMismatch)?;
        merkle::verify_inclusion(
            self.index,
            self.tree_size,
            &merkle::leaf_hash(&self.leaf),
            &self.hashes,
            &root,
        )
    }
}

/// The hashes that show the tree of `new_size` extends the tree of
/// `old_size` (RFC 6962 §2.1.2).
#[derive(Clone, Debug)]
pub(crate) struct ConsistencyProof {
    pub(crate) old_size: u64,
    pub(crate) new_size: u64,
    pub(crate) hashes: Vec<Hash>,
}

async fn nodes(store: &Store, ids: Vec<NodeId>) -> Result<HashMap<NodeId, Hash>, ProofError> {
    Ok(store.merkle_nodes(&ids).await?)
}

/// The checkpoint of the given size, or the latest one.
pub(crate) async fn checkpoint(
    store: &Store,
    size: Option<u64>,
) -> Result<StoredCheckpoint, ProofError> {
    let cp = match size {
        None => store.latest_checkpoint().await?,
        Some(s) => store.checkpoint(s as i64).await?,
    };
    cp.ok_or(match size {
        None => ProofError::NoCheckpointYet,
        Some(size) => ProofError::NoCheckpointOfSize { size },
    })
}

/// An inclusion proof for a record, against a signed checkpoint (the latest
/// unless `tree_size` names one).
pub async fn inclusion_proof(
    store: &Store,
    leaf: LeafRef,
    tree_size: Option<u64>,
) -> Result<InclusionProof, ProofError> {
    let index = match leaf {
        LeafRef::Index(i) => i,
        LeafRef::RequestId(id) => store
            .log_position(&id)
            .await?
            .ok_or(ProofError::NoSuchRecord)? as u64,
    };
    let cp = checkpoint(store, tree_size).await?;
    let size = cp.size as u64;
    if index >= size {
        if tree_size.is_some() {
            return Err(ProofError::PastTheEnd {
                index,
                size,
                what: "tree of the size named",
            });
        }
        let log_size = store.log_size().await? as u64;
        if index >= log_size {
            return Err(ProofError::PastTheEnd {
                index,
                size: log_size,
                what: "log",
            });
        }
        return Err(ProofError::NotCoveredYet { index, size });
    }
    let have = nodes(store, merkle::inclusion_proof_nodes(index, size)).await?;
    let hashes = merkle::inclusion_proof(index, size, |id| have.get(&id).copied())
        .ok_or(ProofError::NodesMissing)?;
    let leaf = store
        .log_leaves(index as i64, 1)
        .await?
        .into_iter()
        .next()
        .filter(|(seq, _)| *seq as u64 == index)
        .map(|(_, r)| r)
        .ok_or(ProofError::EntryMissing { index })?;
    Ok(InclusionProof {
        index,
        tree_size: size,
        hashes,
        leaf,
        checkpoint: cp,
    })
}

/// A consistency proof from `old` to `new` (the latest checkpoint's size
/// when None).
pub(crate) async fn consistency_proof(
    store: &Store,
    old: u64,
    new: Option<u64>,
) -> Result<ConsistencyProof, ProofError> {
    let new = match new {
        Some(n) => n,
        None => checkpoint(store, None).await?.size as u64,
    };
    let size = store.log_size().await? as u64;
    if old > new || new > size {
        return Err(ProofError::BadRange { old, new, size });
    }
    let have = nodes(store, merkle::consistency_proof_nodes(old, new)).await?;
    let hashes = merkle::consistency_proof(old, new, |id| have.get(&id).copied())
        .ok_or(ProofError::NodesMissing)?;
    Ok(ConsistencyProof {
        old_size: old,
        new_size: new,
        hashes,
    })
}
