//! RFC 6962 / RFC 9162 Merkle tree hashing, proofs and their verification.
//!
//! The access log stores the hash of every *perfect* subtree (a `NodeId`:
//! level L, index i, covering leaves [i·2^L, (i+1)·2^L)). Those never change
//! once complete, so appending writes O(1) amortised nodes, any root or proof
//! is a combination of O(log n) of them, and the writer needs only the
//! compact range ([`Frontier`]) in memory.

use ring::digest::{Context, SHA256, digest};

pub type Hash = [u8; 32];

/// SHA-256 of the empty string: the root of the empty tree.
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(&[0x00]);
    ctx.update(data);
    to_hash(ctx.finish().as_ref())
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 65];
    buf[0] = 0x01;
    buf[1..33].copy_from_slice(left);
    buf[33..].copy_from_slice(right);
    to_hash(digest(&SHA256, &buf).as_ref())
}

fn to_hash(b: &[u8]) -> Hash {
    let mut h = [0u8; 32];
    h.copy_from_slice(b);
    h
}

/// A perfect subtree: `level` L and `index` i cover leaves [i·2^L, (i+1)·2^L).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u32,
    pub index: u64,
}

impl NodeId {
    /// The tree size at which this node completes; the store's key.
    pub fn end(&self) -> u64 {
        (self.index + 1) << self.level
    }

    pub fn from_end(end: u64, level: u32) -> NodeId {
        NodeId {
            level,
            index: (end >> level) - 1,
        }
    }
}

/// The compact range of a tree [0, size): the roots of the perfect subtrees
/// of size's binary decomposition, largest (leftmost) first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    stack: Vec<Hash>,
}

impl Frontier {
    pub fn new() -> Frontier {
        Frontier::default()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// RFC 6962 MTH of the whole tree.
    pub fn root(&self) -> Hash {
        let mut it = self.stack.iter().rev();
        let Some(last) = it.next() else {
            return EMPTY_ROOT;
        };
        it.fold(*last, |acc, left| node_hash(left, &acc))
    }

    /// Appends a leaf; `on_node` sees every perfect node it completes, level
    /// 0 (the leaf itself) first. Allocates nothing.
    pub fn push_with(&mut self, leaf_hash: Hash, mut on_node: impl FnMut(NodeId, &Hash)) {
        let mut index = self.size;
        let mut level = 0;
        let mut h = leaf_hash;
        on_node(NodeId { level, index }, &h);
        while index & 1 == 1 {
            let left = self
                .stack
                .pop()
                .expect("an odd index has a left sibling on the stack");
            h = node_hash(&left, &h);
            level += 1;
            index >>= 1;
            on_node(NodeId { level, index }, &h);
        }
        self.stack.push(h);
        self.size += 1;
    }

    /// Appends a leaf and returns the nodes it completes (see `push_with`).
    pub fn push(&mut self, leaf_hash: Hash) -> Vec<(NodeId, Hash)> {
        let mut out = Vec::with_capacity(2);
        self.push_with(leaf_hash, |id, h| out.push((id, *h)));
        out
    }

    /// The perfect nodes of `size`'s decomposition, largest first.
    pub fn perfect_nodes_for(size: u64) -> Vec<NodeId> {
        let mut out = Vec::new();
        let mut start = 0u64;
        for level in (0..64u32).rev() {
            if size & (1u64 << level) != 0 {
                out.push(NodeId {
                    level,
                    index: start >> level,
                });
                start += 1u64 << level;
            }
        }
        out
    }

    /// Rebuilds the frontier at `size` from stored nodes; None if one is missing.
    pub fn from_nodes(size: u64, mut get: impl FnMut(NodeId) -> Option<Hash>) -> Option<Frontier> {
        let stack = Frontier::perfect_nodes_for(size)
            .into_iter()
            .map(&mut get)
            .collect::<Option<Vec<_>>>()?;
        Some(Frontier { size, stack })
    }
}

/// Largest power of two strictly less than n (n ≥ 2).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// MTH of leaves [start, end) for ranges of the RFC recursion (start aligned
/// to every power of two below the range's size), from perfect nodes.
pub fn subtree_root(
    start: u64,
    end: u64,
    get: &mut impl FnMut(NodeId) -> Option<Hash>,
) -> Option<Hash> {
    let n = end - start;
    if n == 0 {
        return Some(EMPTY_ROOT);
    }
    if n.is_power_of_two() && start.is_multiple_of(n) {
        let level = n.trailing_zeros();
        return get(NodeId {
            level,
            index: start >> level,
        });
    }
    let k = split(n);
    let left = subtree_root(start, start + k, get)?;
    let right = subtree_root(start + k, end, get)?;
    Some(node_hash(&left, &right))
}

fn path(
    m: u64,
    start: u64,
    n: u64,
    get: &mut impl FnMut(NodeId) -> Option<Hash>,
    out: &mut Vec<Hash>,
) -> Option<()> {
    if n <= 1 {
        return Some(());
    }
    let k = split(n);
    if m < k {
        path(m, start, k, get, out)?;
        out.push(subtree_root(start + k, start + n, get)?);
    } else {
        path(m - k, start + k, n - k, get, out)?;
        out.push(subtree_root(start, start + k, get)?);
    }
    Some(())
}

/// RFC 9162 §2.1.3.1 inclusion proof of leaf `index` in the tree of `size`.
pub fn inclusion_proof(
    index: u64,
    size: u64,
    mut get: impl FnMut(NodeId) -> Option<Hash>,
) -> Option<Vec<Hash>> {
    if index >= size {
        return None;
    }
    let mut out = Vec::new();
    path(index, 0, size, &mut get, &mut out)?;
    Some(out)
}

fn subproof(
    m: u64,
    start: u64,
    n: u64,
    complete: bool,
    get: &mut impl FnMut(NodeId) -> Option<Hash>,
    out: &mut Vec<Hash>,
) -> Option<()> {
    if m == n {
        if !complete {
            out.push(subtree_root(start, start + n, get)?);
        }
        return Some(());
    }
    let k = split(n);
    if m <= k {
        subproof(m, start, k, complete, get, out)?;
        out.push(subtree_root(start + k, start + n, get)?);
    } else {
        subproof(m - k, start + k, n - k, false, get, out)?;
        out.push(subtree_root(start, start + k, get)?);
    }
    Some(())
}

/// RFC 9162 §2.1.4.1 consistency proof between tree sizes `old` ≤ `new`.
pub fn consistency_proof(
    old: u64,
    new: u64,
    mut get: impl FnMut(NodeId) -> Option<Hash>,
) -> Option<Vec<Hash>> {
    if old > new {
        return None;
    }
    let mut out = Vec::new();
    if old == 0 || old == new {
        return Some(out);
    }
    subproof(old, 0, new, true, &mut get, &mut out)?;
    Some(out)
}

/// The nodes a computation touches, found by running it with a recording
/// lookup (the paths do not depend on hash values), so the store can fetch
/// them in one query.
fn collect(run: impl FnOnce(&mut dyn FnMut(NodeId) -> Option<Hash>)) -> Vec<NodeId> {
    let mut ids = Vec::new();
    run(&mut |id| {
        ids.push(id);
        Some([0u8; 32])
    });
    ids.sort();
    ids.dedup();
    ids
}

pub fn inclusion_proof_nodes(index: u64, size: u64) -> Vec<NodeId> {
    collect(|get| {
        let _ = inclusion_proof(index, size, get);
    })
}

pub fn consistency_proof_nodes(old: u64, new: u64) -> Vec<NodeId> {
    collect(|get| {
        let _ = consistency_proof(old, new, get);
    })
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    #[error("index {index} is not in a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("old size {old} is larger than new size {new}")]
    OldAfterNew { old: u64, new: u64 },
    #[error("the proof has the wrong number of hashes")]
    WrongLength,
    #[error("the proof does not lead to the expected root")]
    RootMismatch,
}

/// RFC 9162 §2.1.3.2.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf_hash: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf_hash;
    for p in proof {
        if s == 0 {
            return Err(ProofError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength);
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old > new {
        return Err(ProofError::OldAfterNew { old, new });
    }
    if old == new {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    if old == 0 {
        // Every tree extends the empty one.
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(ProofError::WrongLength)
        };
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return Err(ProofError::WrongLength);
    };
    let (mut f, mut s) = (old - 1, new - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return Err(ProofError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr != *old_root || sr != *new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Plain recursive MTH: the reference the optimised paths are checked against.
pub fn root_of(leaf_hashes: &[Hash]) -> Hash {
    match leaf_hashes.len() {
        0 => EMPTY_ROOT,
        1 => leaf_hashes[0],
        n => {
            let k = split(n as u64) as usize;
            node_hash(&root_of(&leaf_hashes[..k]), &root_of(&leaf_hashes[k..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn tree(n: u64) -> (Vec<Hash>, HashMap<NodeId, Hash>, Frontier) {
        let mut f = Frontier::new();
        let mut nodes = HashMap::new();
        let mut leaves = Vec::new();
        for i in 0..n {
            let l = leaf_hash(&i.to_be_bytes());
            leaves.push(l);
            for (id, h) in f.push(l) {
                assert_eq!(
                    id.end(),
                    i + 1,
                    "push returns the nodes completing at the new size"
                );
                nodes.insert(id, h);
            }
        }
        (leaves, nodes, f)
    }

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(EMPTY_ROOT.as_slice(), digest(&SHA256, b"").as_ref());
    }

    #[test]
    fn frontier_matches_reference_and_rebuilds_from_nodes() {
        let (leaves, nodes, _) = tree(300);
        let mut f = Frontier::new();
        for (i, l) in leaves.iter().enumerate() {
            f.push(*l);
            let n = i as u64 + 1;
            assert_eq!(f.root(), root_of(&leaves[..=i]), "size {n}");
            let rebuilt = Frontier::from_nodes(n, |id| nodes.get(&id).copied()).unwrap();
            assert_eq!(rebuilt, f);
        }
    }

    #[test]
    fn proofs_verify_for_all_small_trees_and_fail_when_altered() {
        for n in 1..=70u64 {
            let (leaves, nodes, f) = tree(n);
            let root = f.root();
            let get = |id: NodeId| nodes.get(&id).copied();
            for i in 0..n {
                let p = inclusion_proof(i, n, get).unwrap();
                verify_inclusion(i, n, &leaves[i as usize], &p, &root).unwrap();
                assert!(
                    inclusion_proof_nodes(i, n)
                        .iter()
                        .all(|id| nodes.contains_key(id))
                );
                if let Some(first) = p.first() {
                    let mut bad = p.clone();
                    bad[0][0] ^= 1;
                    assert!(verify_inclusion(i, n, &leaves[i as usize], &bad, &root).is_err());
                    assert!(verify_inclusion(i, n, &leaves[i as usize], &p[1..], &root).is_err());
                    let _ = first;
                }
                if n > 1 {
                    assert!(
                        verify_inclusion((i + 1) % n, n, &leaves[i as usize], &p, &root).is_err()
                    );
                }
            }
            for m in 0..=n {
                let old_root = root_of(&leaves[..m as usize]);
                let p = consistency_proof(m, n, get).unwrap();
                verify_consistency(m, n, &old_root, &root, &p).unwrap();
                if !p.is_empty() {
                    let mut bad = p.clone();
                    let last = bad.len() - 1;
                    bad[last][5] ^= 1;
                    assert!(verify_consistency(m, n, &old_root, &root, &bad).is_err());
                }
            }
        }
    }
}
