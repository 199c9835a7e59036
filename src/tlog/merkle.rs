//! The Merkle tree behind the tamper-evident access log (RFC 6962 / RFC 9162).
//!
//! Every access the gateway records becomes a leaf of an append-only Merkle
//! tree. A signed checkpoint then commits to the whole log in 32 bytes. Anyone
//! who holds a checkpoint can later check two things offline: that a given
//! entry is in the log (an inclusion proof), and that a later checkpoint
//! extends an earlier one without rewriting history (a consistency proof).
//! We use the Certificate Transparency tree exactly as the RFCs define it, not
//! a home-made variant, so that auditors can use existing tools and the
//! published test vectors.
//!
//! # Why the code is split the way it is
//!
//! * **Hashing** ([`leaf_hash`], `node_hash`, `EMPTY_ROOT`): the RFC 6962
//!   domain separation (`0x00` for leaves, `0x01` for interior nodes). Without
//!   it, an interior node could be passed off as a leaf (a second-preimage
//!   attack on the tree).
//! * **`Frontier`**: the compact range `[0, size)`, at most 64 hashes. The
//!   writer keeps it in memory, so an append costs O(log n) hashes and never
//!   reads storage. `sluis audit verify` uses the same type to recompute the
//!   root of a million entries per second.
//! * **Stored perfect nodes** (`NodeId`): the store keeps every *perfect*
//!   subtree (2^level leaves, aligned), which is exactly the set of nodes
//!   that `Frontier::push_with` completes. Perfect nodes never change once they
//!   exist, so the table is insert-only. Any other subtree (the ragged right
//!   edge of a tree whose size is not a power of two) is rebuilt from at most
//!   64 perfect nodes when a proof needs it.
//! * **Proof generation** (`inclusion_proof`, `consistency_proof`,
//!   `subtree_root`): pure functions over a lookup closure. This module does
//!   no I/O. Each proof comes with a `*_nodes` function that lists the nodes
//!   it will look up, so the store can load them all in one query into a map
//!   and then call the proof function with a closure that reads the map.
//! * **Verification** ([`verify_inclusion`], [`verify_consistency`]): the RFC
//!   9162 algorithms, written apart from generation so that a bug in one does
//!   not hide a bug in the other, and so that auditors can run them without a
//!   store.
//! * **`root_of`** (tests only): the plain recursive definition, the
//!   reference the frontier and the proofs are checked against.
//!
//! Outside the crate only the hashing of a leaf and the two verifications
//! are public: what an auditor needs to check a proof from a node.
//!
//! A proof checks out against a root *and a tree size*. The sizes come from
//! the signed checkpoint, never from the proof. Several sizes can share the
//! same proof shape, so a proof alone does not fix the size.

use std::fmt;

use ring::digest::{Context, SHA256, digest};

/// A SHA-256 output: a leaf hash, an interior node hash, or a tree root.
pub type Hash = [u8; 32];

/// The Merkle Tree Hash of the empty tree, `SHA-256("")` (RFC 6962 §2.1).
///
/// This is a constant, not computed, so that it can be used in `const`
/// contexts and compared without hashing. A test checks it against ring.
pub(crate) const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// Domain separator for leaves: `MTH({d}) = SHA-256(0x00 || d)`.
const LEAF_PREFIX: [u8; 1] = [0x00];
/// Domain separator for interior nodes: `SHA-256(0x01 || left || right)`.
const NODE_PREFIX: [u8; 1] = [0x01];

/// Copies ring's digest into a fixed array. SHA-256 always gives 32 bytes,
/// so the copy cannot fail.
#[inline]
fn to_hash(d: ring::digest::Digest) -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The leaf hash of one log entry: `SHA-256(0x00 || data)`.
///
/// The data is streamed into the hash context as it is, without a copy, so
/// large entries cost no extra memory.
#[must_use]
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(&LEAF_PREFIX);
    ctx.update(data);
    to_hash(ctx.finish())
}

/// The hash of an interior node: `SHA-256(0x01 || left || right)`.
///
/// This is the hot path of every append and every audit. The 65 bytes are
/// laid out once on the stack and hashed with one `digest` call. ring then
/// compresses the first 64-byte block straight from that buffer. Streaming
/// the three parts through a `Context` copies the same bytes into ring's
/// block buffer anyway, and measured about 10% slower.
#[inline]
#[must_use]
pub(crate) fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 65];
    buf[0] = NODE_PREFIX[0];
    buf[1..33].copy_from_slice(left);
    buf[33..].copy_from_slice(right);
    to_hash(digest(&SHA256, &buf))
}

/// The largest power of two strictly less than `n`, i.e. the RFC's split
/// point `k`. Requires `n >= 2`.
#[inline]
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Writes a hash as lowercase hex, for `Debug` output.
fn write_hex(f: &mut fmt::Formatter<'_>, hash: &Hash) -> fmt::Result {
    for byte in hash {
        write!(f, "{byte:02x}")?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Node addressing
// ---------------------------------------------------------------------------

/// A perfect subtree: `2^level` leaves starting at leaf `index << level`,
/// i.e. the leaves `[index·2^level, (index+1)·2^level)`.
///
/// Only perfect subtrees are stored, because once they are complete they
/// never change, whatever is appended later. The derived order (level, then
/// index) exists only so that `NodeId` can key a `BTreeMap`. The store's own
/// order is `(end, level)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct NodeId {
    /// Height above the leaves. Level 0 is a single leaf hash.
    pub(crate) level: u32,
    /// Position among the nodes of the same level, counted from the left.
    pub(crate) index: u64,
}

impl NodeId {
    /// The exclusive end of the leaf range, `(index + 1) << level`.
    ///
    /// The store keys nodes by `(end, level)` because an append-only tree
    /// completes nodes in order of `end`: appending leaf `size - 1`
    /// completes exactly the nodes with `end == size`. So the key grows with
    /// time and the table is insert-only.
    #[must_use]
    pub(crate) fn end(&self) -> u64 {
        (self.index + 1) << self.level
    }

    /// The first leaf covered by this node, `index << level`.
    #[cfg(test)]
    #[must_use]
    pub(crate) fn start(&self) -> u64 {
        self.index << self.level
    }

    /// The inverse of [`NodeId::end`]: the node at `level` whose range ends
    /// at `end`.
    ///
    /// # Panics
    ///
    /// If `level >= 64` or `end` is not a positive multiple of `2^level`. No
    /// perfect node has such an address, so a stored row with one is corrupt,
    /// and it is better to stop than to serve a proof built on it.
    #[cfg(test)]
    #[must_use]
    pub(crate) fn from_end(end: u64, level: u32) -> NodeId {
        assert!(
            level < 64 && end != 0 && end.trailing_zeros() >= level,
            "no perfect node at level {level} ends at {end}"
        );
        NodeId {
            level,
            index: (end >> level) - 1,
        }
    }
}

/// The perfect nodes whose concatenation is the range `[start, end)`, from
/// left to right (largest first). Each node is the highest power of two that
/// still fits the rest of the range.
///
/// This is the binary decomposition of `end - start`. It matches the RFC's
/// recursive split only when `start` is a multiple of the largest power of
/// two `<= end - start`. Callers check that (see [`is_rfc_range`]).
fn decomposition(start: u64, end: u64) -> impl Iterator<Item = NodeId> {
    let mut pos = start;
    std::iter::from_fn(move || {
        if pos >= end {
            return None;
        }
        let level = 63 - (end - pos).leading_zeros();
        let id = NodeId {
            level,
            index: pos >> level,
        };
        pos += 1u64 << level;
        Some(id)
    })
}

/// Whether `[start, end)` is a range that the RFC recursion can produce, and
/// so has a Merkle Tree Hash made of perfect nodes: not empty, and `start`
/// aligned to the largest power of two `<= end - start`.
fn is_rfc_range(start: u64, end: u64) -> bool {
    if start >= end {
        return false;
    }
    let top = 1u64 << (63 - (end - start).leading_zeros());
    start & (top - 1) == 0
}

/// Folds the hashes of a decomposition (given left to right) into the Merkle
/// Tree Hash of the whole range. The RFC splits off the largest power of two
/// on the left, so the fold runs from the right:
/// `MTH = H(n0, H(n1, H(n2, ...)))`.
fn fold_right<'a>(hashes: impl DoubleEndedIterator<Item = &'a Hash>) -> Option<Hash> {
    hashes.rev().fold(None, |acc, h| {
        Some(match acc {
            None => *h,
            Some(right) => node_hash(h, &right),
        })
    })
}

// ---------------------------------------------------------------------------
// Frontier
// ---------------------------------------------------------------------------

/// The compact range `[0, size)`: the roots of the perfect subtrees in the
/// binary decomposition of `size`, one for each set bit.
///
/// This is all the state an append needs. The writer keeps a `Frontier` in
/// memory next to the store, and every append costs O(log n) hashes with no
/// storage reads. After a restart, [`Frontier::from_nodes`] rebuilds it from
/// at most 64 stored nodes.
#[derive(Clone)]
pub(crate) struct Frontier {
    size: u64,
    /// `nodes[level]` holds the perfect subtree at that level when bit
    /// `level` of `size` is set. Otherwise it holds stale data and is never
    /// read. A fixed array (2 KiB), not a `Vec`, so that `push` never
    /// allocates and never checks a length.
    nodes: [Hash; 64],
}

impl Frontier {
    /// The frontier of the empty tree.
    #[must_use]
    pub(crate) fn new() -> Frontier {
        Frontier {
            size: 0,
            nodes: [[0u8; 32]; 64],
        }
    }

    /// The number of leaves appended so far.
    #[must_use]
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// The Merkle Tree Hash of the whole tree `[0, size)` (RFC 6962 §2.1), or
    /// [`EMPTY_ROOT`] when the tree is empty.
    ///
    /// This costs one hash for each set bit of `size` after the first. It
    /// is not cached, because the writer needs the root only when it signs a
    /// checkpoint, not on every append.
    #[must_use]
    pub(crate) fn root(&self) -> Hash {
        // The smallest subtree is the rightmost, so go from low bits to high.
        let mut acc: Option<Hash> = None;
        let mut bits = self.size;
        while bits != 0 {
            let level = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            acc = Some(match acc {
                None => self.nodes[level],
                Some(right) => node_hash(&self.nodes[level], &right),
            });
        }
        acc.unwrap_or(EMPTY_ROOT)
    }

    /// The perfect nodes of the frontier with their hashes, left to right.
    /// These are the same nodes as [`Frontier::perfect_nodes_for`].
    pub(crate) fn nodes(&self) -> impl Iterator<Item = (NodeId, &Hash)> + '_ {
        decomposition(0, self.size).map(|id| (id, &self.nodes[id.level as usize]))
    }

    /// Appends one leaf hash and calls `on_node` for every perfect node the
    /// append completes, level 0 (the leaf hash itself) first. These are
    /// exactly the nodes with `end() == self.size()` after the call.
    ///
    /// This is the version for bulk work such as `sluis audit verify`: it
    /// allocates nothing. It hashes once per completed node above level 0,
    /// which averages one hash per append (at most 63).
    ///
    /// # Panics
    ///
    /// If the tree already holds `u64::MAX` leaves. Nothing could address a
    /// larger tree.
    pub(crate) fn push_with(&mut self, leaf_hash: Hash, mut on_node: impl FnMut(NodeId, &Hash)) {
        assert!(self.size < u64::MAX, "Merkle tree is full");
        let old_size = self.size;
        let new_size = old_size + 1;
        let mut hash = leaf_hash;
        let mut level = 0u32;
        on_node(
            NodeId {
                level,
                index: old_size,
            },
            &hash,
        );
        // Each set low bit of the old size is a complete left sibling. Merge
        // it with the new right edge until a zero bit is reached. Since
        // old_size < u64::MAX, a zero bit exists below level 64.
        while (old_size >> level) & 1 == 1 {
            hash = node_hash(&self.nodes[level as usize], &hash);
            level += 1;
            on_node(
                NodeId {
                    level,
                    index: (new_size >> level) - 1,
                },
                &hash,
            );
        }
        self.nodes[level as usize] = hash;
        self.size = new_size;
    }

    /// Appends one leaf hash and returns every perfect node it completes,
    /// level 0 first: [`Frontier::push_with`] collected, for the tests.
    ///
    /// The only allocation is the returned `Vec`, sized exactly.
    ///
    /// # Panics
    ///
    /// If the tree already holds `u64::MAX` leaves.
    #[cfg(test)]
    pub(crate) fn push(&mut self, leaf_hash: Hash) -> Vec<(NodeId, Hash)> {
        let completed = (self.size.wrapping_add(1)).trailing_zeros() as usize + 1;
        let mut out = Vec::with_capacity(completed);
        self.push_with(leaf_hash, |id, h| out.push((id, *h)));
        out
    }

    /// The stored nodes that [`Frontier::from_nodes`] needs for a tree of
    /// `size` leaves: the binary decomposition of `size`, left to right
    /// (highest level first). There is one node for each set bit, so at
    /// most 64.
    #[must_use]
    pub(crate) fn perfect_nodes_for(size: u64) -> Vec<NodeId> {
        decomposition(0, size).collect()
    }

    /// Rebuilds the frontier of a tree of `size` leaves from stored perfect
    /// nodes. `get` is called once for each node of
    /// [`Frontier::perfect_nodes_for`], in that order.
    ///
    /// Returns `None` if any node is missing. The caller should treat that as
    /// a damaged store, not as an empty tree.
    pub(crate) fn from_nodes(
        size: u64,
        mut get: impl FnMut(NodeId) -> Option<Hash>,
    ) -> Option<Frontier> {
        let mut frontier = Frontier::new();
        for id in decomposition(0, size) {
            frontier.nodes[id.level as usize] = get(id)?;
        }
        frontier.size = size;
        Some(frontier)
    }
}

impl Default for Frontier {
    fn default() -> Self {
        Frontier::new()
    }
}

/// Two frontiers are equal when they describe the same tree. Stale slots
/// left over from merges are ignored.
impl PartialEq for Frontier {
    fn eq(&self, other: &Self) -> bool {
        self.size == other.size && self.nodes().zip(other.nodes()).all(|(a, b)| a.1 == b.1)
    }
}

impl Eq for Frontier {}

impl fmt::Debug for Frontier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Frontier {{ size: {}, nodes: [", self.size)?;
        for (i, (id, hash)) in self.nodes().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "({}, {}): ", id.level, id.index)?;
            write_hex(f, hash)?;
        }
        f.write_str("] }")
    }
}

// ---------------------------------------------------------------------------
// Proof generation from stored perfect nodes
// ---------------------------------------------------------------------------

/// The Merkle Tree Hash of the leaves `[start, end)`, built from stored
/// perfect nodes (at most 64 lookups, left to right).
///
/// Only ranges that the RFC recursion can produce are supported: `start`
/// must be a multiple of the largest power of two `<= end - start`. The
/// whole tree `[0, size)` and every subtree named in a proof are such
/// ranges. `[0, 0)` gives [`EMPTY_ROOT`], as the RFC defines for the empty
/// list.
///
/// Returns `None` if the range is not supported or a node is missing.
pub(crate) fn subtree_root(
    start: u64,
    end: u64,
    mut get: impl FnMut(NodeId) -> Option<Hash>,
) -> Option<Hash> {
    if start == 0 && end == 0 {
        return Some(EMPTY_ROOT);
    }
    if !is_rfc_range(start, end) {
        return None;
    }
    // At most 64 nodes. A stack buffer keeps this free of allocation.
    let mut buf = [[0u8; 32]; 64];
    let mut n = 0;
    for id in decomposition(start, end) {
        buf[n] = get(id)?;
        n += 1;
    }
    fold_right(buf[..n].iter())
}

/// The subtree ranges in `PATH(index, D[0:size])` (RFC 9162 §2.1.3.1), in
/// proof order (the leaf's sibling first, the root's child last). Empty if
/// `index >= size`.
fn inclusion_ranges(index: u64, size: u64) -> Vec<(u64, u64)> {
    let mut ranges = Vec::new();
    if index >= size {
        return ranges;
    }
    // Walk down from the root. At each step the RFC splits [lo, hi) at the
    // largest power of two below its length, and the half without the leaf
    // goes into the proof.
    let (mut lo, mut hi) = (0u64, size);
    while hi - lo > 1 {
        let mid = lo + split_point(hi - lo);
        if index < mid {
            ranges.push((mid, hi));
            hi = mid;
        } else {
            ranges.push((lo, mid));
            lo = mid;
        }
    }
    // Top-down order was collected; the proof lists bottom-up.
    ranges.reverse();
    ranges
}

/// The subtree ranges in `PROOF(old, D[0:new])` (RFC 9162 §2.1.4.1), in
/// proof order. Empty when `old == 0`, `old == new` or `old > new`.
fn consistency_ranges(old: u64, new: u64) -> Vec<(u64, u64)> {
    let mut ranges = Vec::new();
    if old == 0 || old >= new {
        return ranges;
    }
    // SUBPROOF(m, D[lo:hi], b) unrolled. `have_root` is the RFC's `b`: it
    // stays true while the old tree's root is a node of the new tree, in
    // which case the verifier already holds it and it is left out.
    let (mut lo, mut hi) = (0u64, new);
    let mut have_root = true;
    loop {
        if old == hi {
            if !have_root {
                ranges.push((lo, hi));
            }
            break;
        }
        let mid = lo + split_point(hi - lo);
        if old <= mid {
            ranges.push((mid, hi));
            hi = mid;
        } else {
            ranges.push((lo, mid));
            lo = mid;
            have_root = false;
        }
    }
    ranges.reverse();
    ranges
}

/// Fetches the Merkle Tree Hash of each range in order.
fn hashes_for_ranges(
    ranges: &[(u64, u64)],
    mut get: impl FnMut(NodeId) -> Option<Hash>,
) -> Option<Vec<Hash>> {
    ranges
        .iter()
        .map(|&(start, end)| subtree_root(start, end, &mut get))
        .collect()
}

/// The stored perfect nodes that [`inclusion_proof`] reads for
/// `(index, size)`, in the order it reads them. No node appears twice, and
/// every node has `end() <= size`, so it was stored by the time the tree
/// reached `size`. Empty if `index >= size`.
#[must_use]
pub(crate) fn inclusion_proof_nodes(index: u64, size: u64) -> Vec<NodeId> {
    inclusion_ranges(index, size)
        .into_iter()
        .flat_map(|(start, end)| decomposition(start, end))
        .collect()
}

/// The inclusion proof `PATH(index, D[0:size])` of RFC 9162 §2.1.3.1, read
/// from stored perfect nodes. Siblings on the ragged right edge, which are not
/// perfect, are computed from their perfect parts.
///
/// `get` is called for exactly the nodes of [`inclusion_proof_nodes`], in
/// that order. Returns `None` if `index >= size` or a node is missing. The
/// caller checks the index first, so `None` here means a damaged store.
pub(crate) fn inclusion_proof(
    index: u64,
    size: u64,
    get: impl FnMut(NodeId) -> Option<Hash>,
) -> Option<Vec<Hash>> {
    if index >= size {
        return None;
    }
    hashes_for_ranges(&inclusion_ranges(index, size), get)
}

/// The stored perfect nodes that [`consistency_proof`] reads for
/// `(old, new)`, in the order it reads them. No node appears twice, and
/// every node has `end() <= new`. Empty when the proof is empty (`old == 0`
/// or `old == new`) or undefined (`old > new`).
#[must_use]
pub(crate) fn consistency_proof_nodes(old: u64, new: u64) -> Vec<NodeId> {
    consistency_ranges(old, new)
        .into_iter()
        .flat_map(|(start, end)| decomposition(start, end))
        .collect()
}

/// The consistency proof `PROOF(old, D[0:new])` of RFC 9162 §2.1.4.1, read
/// from stored perfect nodes.
///
/// The RFC defines the proof for `0 < old < new`. Here `old == new` gives the
/// empty proof (the RFC's `SUBPROOF(m, D[m], true) = {}`). `old == 0` also
/// gives the empty proof, because the empty tree is a prefix of every tree
/// and there is nothing to prove. `get` is called for exactly the nodes of
/// [`consistency_proof_nodes`], in that order. Returns `None` if `old > new`
/// or a node is missing.
pub(crate) fn consistency_proof(
    old: u64,
    new: u64,
    get: impl FnMut(NodeId) -> Option<Hash>,
) -> Option<Vec<Hash>> {
    if old > new {
        return None;
    }
    hashes_for_ranges(&consistency_ranges(old, new), get)
}

// ---------------------------------------------------------------------------
// Verification (offline, by anyone)
// ---------------------------------------------------------------------------

/// Why a proof was rejected.
///
/// The variants say what an operator needs to know. A length error means the
/// proof does not fit the claimed sizes (a bug or a truncated transfer). A
/// root mismatch means the log does not match the checkpoint: tampering, or
/// a log that shows different histories to different people.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is out of range for a tree of size {size}")]
    IndexOutOfRange {
        /// The claimed leaf index.
        index: u64,
        /// The claimed tree size.
        size: u64,
    },
    /// A consistency proof was asked for a tree that shrank.
    #[error("old tree size {old} is larger than new tree size {new}")]
    OldSizeLarger {
        /// The claimed old tree size.
        old: u64,
        /// The claimed new tree size.
        new: u64,
    },
    /// The proof has the wrong number of hashes for the claimed sizes.
    #[error("wrong proof length: expected {expected} hashes, got {actual}")]
    WrongProofLength {
        /// The length the RFC algorithm requires for these sizes.
        expected: usize,
        /// The length of the proof given.
        actual: usize,
    },
    /// The inclusion proof does not lead to the given root.
    #[error("root mismatch: the inclusion proof does not reproduce the tree root")]
    RootMismatch,
    /// The consistency proof does not reproduce the old root. Either the
    /// proof is wrong or the old checkpoint is not a prefix of the new tree.
    /// When `old` is a power of two, the old root is itself the start of the
    /// path, so a wrong old root shows up as [`ProofError::NewRootMismatch`].
    #[error("root mismatch: the consistency proof does not reproduce the old root")]
    OldRootMismatch,
    /// The consistency proof does not reproduce the new root. For
    /// `old == new`, the two roots differ.
    #[error("root mismatch: the consistency proof does not reproduce the new root")]
    NewRootMismatch,
}

/// The number of hashes in `PATH(index, D[0:size])`, for `index < size`.
///
/// The path has one hash for each level where the leaf and the last leaf
/// fall in different subtrees (`inner`). On top of that, it has one hash for
/// each perfect subtree to the left of the point where they meet (`border`).
/// A closed form that is independent of the generator, so that a wrong proof
/// length is reported as such.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// The number of hashes in `PROOF(old, D[0:new])`, for `0 < old < new`.
///
/// This is the inclusion path of the old tree's last leaf. The levels below
/// the old tree's smallest perfect subtree are dropped, since that subtree is
/// sent whole. That subtree is itself included unless it is the old root
/// (`old` a power of two).
fn consistency_proof_len(old: u64, new: u64) -> usize {
    let shift = old.trailing_zeros();
    let inner = (64 - ((old - 1) ^ (new - 1)).leading_zeros()) - shift;
    let border = ((old - 1) >> shift)
        .checked_shr(inner)
        .unwrap_or(0)
        .count_ones();
    let seed = u32::from(!old.is_power_of_two());
    (inner + border + seed) as usize
}

/// Verifies that `leaf_hash` is the leaf at `index` in the tree of `size`
/// leaves whose root is `root`, using RFC 9162 §2.1.3.2.
///
/// The proof length is checked against the sizes first. A proof with extra
/// or missing hashes is never "nearly right". Hashes are compared with `==`:
/// roots and proofs are public, so a timing side channel leaks nothing.
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
    let expected = inclusion_proof_len(index, size);
    let wrong_length = ProofError::WrongProofLength {
        expected,
        actual: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_length);
    }

    // RFC 9162 §2.1.3.2, step by step. `f` and `s` are the RFC's fn and sn:
    // the leaf's and the last leaf's position at the current level.
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf_hash;
    for p in proof {
        if s == 0 {
            return Err(wrong_length);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                // On the right edge: skip the levels where this node has no
                // sibling, because the tree is not full there.
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(wrong_length);
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Verifies that the tree of `old` leaves with root `old_root` is a prefix of
/// the tree of `new` leaves with root `new_root`, using RFC 9162 §2.1.4.2.
///
/// The RFC algorithm covers `0 < old < new`. The edge cases follow the RFC
/// definitions:
/// * `old == new`: the proof must be empty (`SUBPROOF(m, D[m], true) = {}`)
///   and the two roots must be equal.
/// * `old == 0`: the proof must be empty, and `old_root` must be
///   `EMPTY_ROOT`, the MTH of the empty list. An empty tree with any other
///   root is a malformed checkpoint. If `new` is also 0, `new_root` must be
///   `EMPTY_ROOT` as well.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old > new {
        return Err(ProofError::OldSizeLarger { old, new });
    }
    if old == 0 || old == new {
        if !proof.is_empty() {
            return Err(ProofError::WrongProofLength {
                expected: 0,
                actual: proof.len(),
            });
        }
        if old == 0 && *old_root != EMPTY_ROOT {
            return Err(ProofError::OldRootMismatch);
        }
        if (new == 0 && *new_root != EMPTY_ROOT) || (old == new && old_root != new_root) {
            return Err(ProofError::NewRootMismatch);
        }
        return Ok(());
    }

    let expected = consistency_proof_len(old, new);
    let wrong_length = ProofError::WrongProofLength {
        expected,
        actual: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_length);
    }

    // RFC 9162 §2.1.4.2. If the old tree is a perfect subtree of the new
    // one, its root is the first node of the path (the RFC "prepends"
    // first_hash). Chaining iterators does that without a copy.
    let prepend = old.is_power_of_two().then_some(old_root);
    let mut path = prepend.into_iter().chain(proof.iter());
    let (mut f, mut s) = (old - 1, new - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    // `path` cannot be empty: a proof for 0 < old < new has at least one
    // hash, or the old root was prepended.
    let Some(first) = path.next() else {
        return Err(wrong_length);
    };
    let (mut fr, mut sr) = (*first, *first);
    for c in path {
        if s == 0 {
            return Err(wrong_length);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(wrong_length);
    }
    if fr != *old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(ProofError::NewRootMismatch);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Reference
// ---------------------------------------------------------------------------

/// The Merkle Tree Hash of a list of leaf hashes, by the recursive definition
/// of RFC 6962 §2.1: `MTH({}) = SHA-256("")`, `MTH({d}) = leaf`, and otherwise
/// `H(0x01 || MTH(D[0:k]) || MTH(D[k:n]))` with `k` the largest power of two
/// `< n`.
///
/// This is deliberately the slow, obvious version: the yardstick the tests
/// check the frontier and the proofs against.
#[cfg(test)]
#[must_use]
pub(crate) fn root_of(leaf_hashes: &[Hash]) -> Hash {
    match leaf_hashes.len() {
        0 => EMPTY_ROOT,
        1 => leaf_hashes[0],
        n => {
            let k = split_point(n as u64) as usize;
            node_hash(&root_of(&leaf_hashes[..k]), &root_of(&leaf_hashes[k..]))
        }
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    use ct_merkle::mem_backed_tree::MemoryBackedTree;
    use ct_merkle::{ConsistencyProof, InclusionProof, RootHash};
    use sha2::Sha256;

    // -- helpers ------------------------------------------------------------

    fn unhex(s: &str) -> Vec<u8> {
        assert!(s.len().is_multiple_of(2), "odd hex length");
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn h(s: &str) -> Hash {
        unhex(s).try_into().unwrap()
    }

    fn hs(list: &[&str]) -> Vec<Hash> {
        list.iter().map(|s| h(s)).collect()
    }

    /// SplitMix64: a small, seeded generator. Tests are reproducible without
    /// pulling in `rand`.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A log as the store would hold it: the leaf data, and every perfect
    /// node that `Frontier::push` returned, keyed by `NodeId`.
    struct Log {
        data: Vec<Vec<u8>>,
        leaves: Vec<Hash>,
        store: HashMap<NodeId, Hash>,
        frontier: Frontier,
    }

    impl Log {
        fn new() -> Log {
            Log {
                data: Vec::new(),
                leaves: Vec::new(),
                store: HashMap::new(),
                frontier: Frontier::new(),
            }
        }

        fn append(&mut self, data: Vec<u8>) {
            let lh = leaf_hash(&data);
            for (id, hash) in self.frontier.push(lh) {
                assert!(self.store.insert(id, hash).is_none(), "{id:?} stored twice");
            }
            self.data.push(data);
            self.leaves.push(lh);
        }

        /// A lookup that also checks the node is already complete at `size`
        /// (so proofs never peek into the future of the log).
        fn get_at(&self, size: u64) -> impl FnMut(NodeId) -> Option<Hash> + '_ {
            move |id| {
                assert!(id.end() <= size, "{id:?} is not complete at size {size}");
                self.store.get(&id).copied()
            }
        }
    }

    fn entry(i: u64) -> Vec<u8> {
        format!("sluis access log entry #{i}").into_bytes()
    }

    fn log_with(n: u64) -> Log {
        let mut log = Log::new();
        for i in 0..n {
            log.append(entry(i));
        }
        log
    }

    fn ct_tree(data: &[Vec<u8>]) -> MemoryBackedTree<Sha256, Vec<u8>> {
        let mut t = MemoryBackedTree::new();
        for d in data {
            t.push(d.clone());
        }
        t
    }

    fn flatten(proof: &[Hash]) -> Vec<u8> {
        proof.concat()
    }

    // -- hashing ------------------------------------------------------------

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        let d = ring::digest::digest(&SHA256, b"");
        assert_eq!(EMPTY_ROOT.as_slice(), d.as_ref());
        assert_eq!(root_of(&[]), EMPTY_ROOT);
        assert_eq!(Frontier::new().root(), EMPTY_ROOT);
        assert_eq!(subtree_root(0, 0, |_| None), Some(EMPTY_ROOT));
    }

    #[test]
    fn hashes_use_rfc6962_domain_separation() {
        let d = ring::digest::digest(&SHA256, &[0x00, b'a', b'b']);
        assert_eq!(leaf_hash(b"ab").as_slice(), d.as_ref());
        let (l, r) = ([1u8; 32], [2u8; 32]);
        let mut buf = vec![0x01];
        buf.extend_from_slice(&l);
        buf.extend_from_slice(&r);
        let d = ring::digest::digest(&SHA256, &buf);
        assert_eq!(node_hash(&l, &r).as_slice(), d.as_ref());
    }

    #[test]
    fn node_id_end_round_trips() {
        for level in 0..20u32 {
            for index in 0..50u64 {
                let id = NodeId { level, index };
                assert_eq!(id.end() - id.start(), 1 << level);
                assert_eq!(NodeId::from_end(id.end(), level), id);
            }
        }
        let top = NodeId {
            level: 63,
            index: 0,
        };
        assert_eq!(NodeId::from_end(1 << 63, 63), top);
    }

    #[test]
    #[should_panic(expected = "no perfect node")]
    fn node_id_from_misaligned_end_panics() {
        let _ = NodeId::from_end(6, 2);
    }

    // -- known answers ------------------------------------------------------
    //
    // The Certificate Transparency reference vectors. Leaf inputs, the node
    // hashes of the 8-leaf tree and the roots for sizes 0..=8 come from
    // transparency-dev/merkle, testonly/constants.go (LeafInputs, NodeHashes,
    // RootHashes; commit 582a6ad190b6848f1d26f8bf08ddef29955d9db1). The
    // inclusion and consistency proofs come from testonly/reference_test.go
    // (TestRefInclusionProof, TestRefConsistencyProof; commit
    // 141d627eab770a7e9a2514f46a8b6338e6d90874) and proof/verify_test.go
    // (inclusionProofs, consistencyProofs, where `leaf` is 1-based; commit
    // 02194e9afb6c1d95b5381350007963aa70fff472). They go back to Google's
    // certificate-transparency C++ merkle_tree_test.cc. ct-merkle 0.3 ships
    // the same proofs in tests/known_answer.rs.

    const CT_LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];

    /// RootHashes()[1..]: the root of the tree of the first n leaves.
    const CT_ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    /// NodeHashes(): [level][index] of every perfect node of the 8-leaf tree.
    const CT_NODES: [&[&str]; 4] = [
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
            "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
        ],
        &[
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        ],
        &[
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
        &["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
    ];

    /// (index, size, proof), 0-based index.
    fn ct_inclusion_vectors() -> Vec<(u64, u64, Vec<Hash>)> {
        vec![
            (0, 1, vec![]),
            (
                0,
                2,
                hs(&["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"]),
            ),
            (
                1,
                2,
                hs(&["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"]),
            ),
            (
                2,
                3,
                hs(&["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
            ),
            (
                1,
                5,
                hs(&[
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ]),
            ),
            (
                0,
                8,
                hs(&[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ]),
            ),
            (
                5,
                8,
                hs(&[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ]),
            ),
        ]
    }

    /// (old, new, proof).
    fn ct_consistency_vectors() -> Vec<(u64, u64, Vec<Hash>)> {
        vec![
            (1, 1, vec![]),
            (
                1,
                8,
                hs(&[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ]),
            ),
            (
                6,
                8,
                hs(&[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ]),
            ),
            (
                2,
                5,
                hs(&[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ]),
            ),
            (
                6,
                7,
                hs(&[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ]),
            ),
        ]
    }

    fn ct_log() -> Log {
        let mut log = Log::new();
        for l in CT_LEAVES {
            log.append(unhex(l));
        }
        log
    }

    fn ct_root(size: u64) -> Hash {
        if size == 0 {
            EMPTY_ROOT
        } else {
            h(CT_ROOTS[size as usize - 1])
        }
    }

    #[test]
    fn ct_vectors_roots() {
        let mut frontier = Frontier::new();
        let mut leaves = Vec::new();
        assert_eq!(frontier.root(), EMPTY_ROOT);
        for (i, l) in CT_LEAVES.iter().enumerate() {
            let lh = leaf_hash(&unhex(l));
            frontier.push(lh);
            leaves.push(lh);
            let want = h(CT_ROOTS[i]);
            assert_eq!(frontier.root(), want, "frontier root of size {}", i + 1);
            assert_eq!(root_of(&leaves), want, "root_of size {}", i + 1);
        }
    }

    #[test]
    fn ct_vectors_stored_nodes() {
        let log = ct_log();
        let mut want = HashMap::new();
        for (level, row) in CT_NODES.iter().enumerate() {
            for (index, hex) in row.iter().enumerate() {
                let id = NodeId {
                    level: level as u32,
                    index: index as u64,
                };
                want.insert(id, h(hex));
            }
        }
        assert_eq!(log.store, want);
        for size in 0..=8u64 {
            let get = log.get_at(size);
            assert_eq!(subtree_root(0, size, get), Some(ct_root(size)));
        }
    }

    #[test]
    fn ct_vectors_inclusion() {
        let log = ct_log();
        for (index, size, want) in ct_inclusion_vectors() {
            let got = inclusion_proof(index, size, log.get_at(size)).unwrap();
            assert_eq!(got, want, "PATH({index}, D[{size}])");
            let lh = log.leaves[index as usize];
            verify_inclusion(index, size, &lh, &want, &ct_root(size)).unwrap();
        }
    }

    #[test]
    fn ct_vectors_consistency() {
        let log = ct_log();
        for (old, new, want) in ct_consistency_vectors() {
            let got = consistency_proof(old, new, log.get_at(new)).unwrap();
            assert_eq!(got, want, "PROOF({old}, D[{new}])");
            verify_consistency(old, new, &ct_root(old), &ct_root(new), &want).unwrap();
        }
    }

    /// The probes of transparency-dev/merkle proof/verify_test.go
    /// (corruptInclusionProof) against the known-good vectors: all must fail.
    #[test]
    fn ct_vectors_corrupted_inclusion_fails() {
        let log = ct_log();
        let some = h("abacaba000000000000000000000000000000000000000000060061e00123456");
        for (index, size, proof) in ct_inclusion_vectors() {
            let root = ct_root(size);
            let lh = log.leaves[index as usize];
            let mut probes: Vec<(u64, u64, Hash, Hash, Vec<Hash>)> = vec![
                (index.wrapping_sub(1), size, lh, root, proof.clone()),
                (index + 1, size, lh, root, proof.clone()),
                (index ^ 2, size, lh, root, proof.clone()),
                (index, size * 2, lh, root, proof.clone()),
                (index, size / 2, lh, root, proof.clone()),
                (index, size, leaf_hash(b"WrongLeaf"), root, proof.clone()),
                (index, size, lh, EMPTY_ROOT, proof.clone()),
                (index, size, lh, some, proof.clone()),
                (index, size, lh, root, [proof.clone(), vec![root]].concat()),
                (index, size, lh, root, [vec![root], proof.clone()].concat()),
            ];
            for i in 0..proof.len() {
                let mut p = proof.clone();
                p[i][0] ^= 8;
                probes.push((index, size, lh, root, p));
            }
            if !proof.is_empty() {
                probes.push((index, size, lh, root, proof[..proof.len() - 1].to_vec()));
            }
            if proof.len() > 1 {
                let mut p = proof.clone();
                p.insert(1, some);
                probes.push((index, size, lh, root, p));
            }
            for (i, s, l, r, p) in probes {
                assert!(
                    verify_inclusion(i, s, &l, &p, &r).is_err(),
                    "probe ({i}, {s}) of vector ({index}, {size}) verified"
                );
            }
        }
    }

    /// The probes of transparency-dev/merkle proof/verify_test.go
    /// (corruptConsistencyProof) against the known-good vectors.
    #[test]
    fn ct_vectors_corrupted_consistency_fails() {
        let some = h("abacaba000000000000000000000000000000000000000000060061e00123456");
        for (old, new, proof) in ct_consistency_vectors() {
            if proof.is_empty() {
                continue;
            }
            let (r1, r2) = (ct_root(old), ct_root(new));
            let mut probes: Vec<(u64, u64, Hash, Hash, Vec<Hash>)> = vec![
                (old - 1, new, r1, r2, proof.clone()),
                (old + 1, new, r1, r2, proof.clone()),
                (old ^ 2, new, r1, r2, proof.clone()),
                (old, new * 2, r1, r2, proof.clone()),
                (old, new / 2, r1, r2, proof.clone()),
                (old, new, some, r2, proof.clone()),
                (old, new, r1, some, proof.clone()),
                (old, new, r2, r1, proof.clone()),
                (old, new, r1, r2, vec![]),
                (old, new, r1, r2, [proof.clone(), vec![r1]].concat()),
                (old, new, r1, r2, [proof.clone(), vec![r2]].concat()),
                (old, new, r1, r2, [vec![r1], proof.clone()].concat()),
                (old, new, r1, r2, [vec![r2], proof.clone()].concat()),
                (old, new, r1, r2, [vec![proof[0]], proof.clone()].concat()),
                (old, new, r1, r2, proof[..proof.len() - 1].to_vec()),
            ];
            for i in 0..proof.len() {
                let mut p = proof.clone();
                p[i][0] ^= 16;
                probes.push((old, new, r1, r2, p));
            }
            for (o, n, a, b, p) in probes {
                assert!(
                    verify_consistency(o, n, &a, &b, &p).is_err(),
                    "probe ({o}, {n}) of vector ({old}, {new}) verified"
                );
            }
        }
    }

    // -- edge cases of verification -----------------------------------------

    #[test]
    fn verify_inclusion_errors_are_specific() {
        let log = log_with(13);
        let root = root_of(&log.leaves);
        let proof = inclusion_proof(5, 13, log.get_at(13)).unwrap();
        let lh = log.leaves[5];
        assert_eq!(verify_inclusion(5, 13, &lh, &proof, &root), Ok(()));
        assert_eq!(
            verify_inclusion(13, 13, &lh, &proof, &root),
            Err(ProofError::IndexOutOfRange {
                index: 13,
                size: 13
            })
        );
        assert_eq!(
            verify_inclusion(0, 0, &lh, &[], &EMPTY_ROOT),
            Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
        );
        assert_eq!(
            verify_inclusion(5, 13, &lh, &proof[..3], &root),
            Err(ProofError::WrongProofLength {
                expected: 4,
                actual: 3
            })
        );
        assert_eq!(
            verify_inclusion(5, 13, &lh, &proof, &EMPTY_ROOT),
            Err(ProofError::RootMismatch)
        );
        // The messages name the numbers an operator needs.
        let msg = ProofError::WrongProofLength {
            expected: 4,
            actual: 3,
        }
        .to_string();
        assert!(msg.contains('4') && msg.contains('3'), "{msg}");
        // A single-leaf tree: the leaf hash is the root, the proof is empty.
        assert_eq!(verify_inclusion(0, 1, &lh, &[], &lh), Ok(()));
        assert_eq!(
            verify_inclusion(0, 1, &lh, &[], &EMPTY_ROOT),
            Err(ProofError::RootMismatch)
        );
    }

    #[test]
    fn verify_consistency_edge_cases() {
        let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
        // old == 0: empty proof, old root must be the empty root.
        assert_eq!(
            verify_consistency(0, 0, &EMPTY_ROOT, &EMPTY_ROOT, &[]),
            Ok(())
        );
        assert_eq!(verify_consistency(0, 5, &EMPTY_ROOT, &a, &[]), Ok(()));
        assert_eq!(
            verify_consistency(0, 5, &b, &a, &[]),
            Err(ProofError::OldRootMismatch)
        );
        assert_eq!(
            verify_consistency(0, 0, &EMPTY_ROOT, &a, &[]),
            Err(ProofError::NewRootMismatch)
        );
        assert_eq!(
            verify_consistency(0, 5, &EMPTY_ROOT, &a, &[a]),
            Err(ProofError::WrongProofLength {
                expected: 0,
                actual: 1
            })
        );
        // old == new: empty proof, equal roots.
        assert_eq!(verify_consistency(7, 7, &a, &a, &[]), Ok(()));
        assert_eq!(
            verify_consistency(7, 7, &a, &b, &[]),
            Err(ProofError::NewRootMismatch)
        );
        assert_eq!(
            verify_consistency(7, 7, &a, &a, &[a]),
            Err(ProofError::WrongProofLength {
                expected: 0,
                actual: 1
            })
        );
        // old > new.
        assert_eq!(
            verify_consistency(2, 1, &a, &b, &[]),
            Err(ProofError::OldSizeLarger { old: 2, new: 1 })
        );
        // 0 < old < new with an empty proof.
        assert_eq!(
            verify_consistency(1, 2, &a, &b, &[]),
            Err(ProofError::WrongProofLength {
                expected: 1,
                actual: 0
            })
        );
        // Generation agrees on the edge cases.
        let log = log_with(9);
        assert_eq!(consistency_proof(0, 9, log.get_at(9)), Some(vec![]));
        assert_eq!(consistency_proof(9, 9, log.get_at(9)), Some(vec![]));
        assert_eq!(consistency_proof(9, 8, log.get_at(9)), None);
        assert!(consistency_proof_nodes(0, 9).is_empty());
        assert!(consistency_proof_nodes(4, 4).is_empty());
        assert!(consistency_proof_nodes(5, 4).is_empty());
        assert_eq!(inclusion_proof(9, 9, log.get_at(9)), None);
        assert!(inclusion_proof_nodes(9, 9).is_empty());
    }

    #[test]
    fn missing_node_gives_none() {
        let log = log_with(21);
        let nodes = inclusion_proof_nodes(3, 21);
        for skip in &nodes {
            let got = inclusion_proof(3, 21, |id| {
                if id == *skip {
                    None
                } else {
                    log.store.get(&id).copied()
                }
            });
            assert_eq!(got, None);
        }
        assert_eq!(Frontier::from_nodes(21, |_| None), None);
        assert_eq!(subtree_root(16, 21, |_| None), None);
    }

    #[test]
    fn subtree_root_rejects_ranges_outside_the_recursion() {
        let log = log_with(40);
        // [3, 5) is not a subtree of any RFC tree; [8, 13) is (inside [8, 16)).
        assert_eq!(subtree_root(3, 5, log.get_at(40)), None);
        assert_eq!(subtree_root(5, 5, log.get_at(40)), None);
        assert_eq!(subtree_root(6, 5, log.get_at(40)), None);
        assert_eq!(
            subtree_root(8, 13, log.get_at(40)),
            Some(root_of(&log.leaves[8..13]))
        );
        for start in 0..40u64 {
            for end in start + 1..=40 {
                if is_rfc_range(start, end) {
                    let want = root_of(&log.leaves[start as usize..end as usize]);
                    assert_eq!(subtree_root(start, end, log.get_at(40)), Some(want));
                }
            }
        }
    }

    #[test]
    fn proof_lengths_match_closed_forms() {
        for size in 1..=130u64 {
            for index in 0..size {
                assert_eq!(
                    inclusion_ranges(index, size).len(),
                    inclusion_proof_len(index, size),
                    "({index}, {size})"
                );
            }
            for old in 1..size {
                assert_eq!(
                    consistency_ranges(old, size).len(),
                    consistency_proof_len(old, size),
                    "({old}, {size})"
                );
            }
        }
        // Near the top of the range: no shift overflows.
        let big = u64::MAX;
        assert_eq!(inclusion_ranges(0, big).len(), inclusion_proof_len(0, big));
        assert_eq!(
            inclusion_ranges(big - 1, big).len(),
            inclusion_proof_len(big - 1, big)
        );
        assert_eq!(
            consistency_ranges(1 << 63, big).len(),
            consistency_proof_len(1 << 63, big)
        );
        assert_eq!(
            consistency_ranges(big - 1, big).len(),
            consistency_proof_len(big - 1, big)
        );
    }

    // -- frontier -----------------------------------------------------------

    #[test]
    fn frontier_push_and_from_nodes_up_to_300() {
        let mut frontier = Frontier::new();
        let mut store: HashMap<NodeId, Hash> = HashMap::new();
        let mut leaves = Vec::new();
        for n in 1..=300u64 {
            let lh = leaf_hash(&entry(n - 1));
            leaves.push(lh);
            let nodes = frontier.push(lh);
            assert_eq!(frontier.size(), n);

            // Exactly the nodes with end == n, level 0 first, one per level.
            assert_eq!(nodes.len() as u32, n.trailing_zeros() + 1, "size {n}");
            for (level, (id, hash)) in nodes.iter().enumerate() {
                assert_eq!(id.level, level as u32);
                assert_eq!(id.end(), n);
                assert_eq!(*id, NodeId::from_end(n, id.level));
                let range = id.start() as usize..id.end() as usize;
                assert_eq!(*hash, root_of(&leaves[range]), "{id:?}");
                assert!(store.insert(*id, *hash).is_none());
            }
            assert_eq!(nodes[0].1, lh);

            // Every perfect node with end <= n is stored, and nothing else.
            let perfect = (0..64u32)
                .map(|l| n >> l)
                .take_while(|&c| c > 0)
                .sum::<u64>();
            assert_eq!(store.len() as u64, perfect);

            let root = root_of(&leaves);
            assert_eq!(frontier.root(), root, "size {n}");

            let want = Frontier::perfect_nodes_for(n);
            assert_eq!(want.len() as u32, n.count_ones());
            let mut asked = Vec::new();
            let rebuilt = Frontier::from_nodes(n, |id| {
                asked.push(id);
                store.get(&id).copied()
            })
            .unwrap();
            assert_eq!(asked, want);
            assert_eq!(rebuilt.root(), root);
            assert_eq!(rebuilt, frontier);
            assert_eq!(rebuilt.nodes().map(|(id, _)| id).collect::<Vec<_>>(), want);

            // A rebuilt frontier keeps appending like the original.
            let mut a = frontier.clone();
            let mut b = rebuilt;
            let next = leaf_hash(b"next");
            assert_eq!(a.push(next), b.push(next));
            assert_eq!(a.root(), b.root());
        }
        assert_eq!(Frontier::from_nodes(0, |_| None), Some(Frontier::new()));
        assert!(Frontier::perfect_nodes_for(0).is_empty());
    }

    #[test]
    fn push_and_push_with_agree() {
        let mut a = Frontier::new();
        let mut b = Frontier::default();
        for i in 0..200u64 {
            let lh = leaf_hash(&entry(i));
            let mut seen = Vec::new();
            b.push_with(lh, |id, h| seen.push((id, *h)));
            assert_eq!(a.push(lh), seen);
        }
        assert_eq!(a, b);
        assert!(format!("{a:?}").starts_with("Frontier { size: 200, nodes: [(7, 0): "));
    }

    // -- against ct-merkle --------------------------------------------------

    /// Sizes from the brief plus a few seeded random ones.
    fn cross_check_sizes(rng: &mut Rng) -> Vec<u64> {
        let mut sizes = vec![
            0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 255,
            256, 257,
        ];
        for _ in 0..6 {
            sizes.push(258 + rng.below(1800));
        }
        sizes.sort_unstable();
        sizes.dedup();
        sizes
    }

    #[test]
    fn agrees_with_ct_merkle() {
        let mut rng = Rng(0x5109_1e55);
        let sizes = cross_check_sizes(&mut rng);
        let max = *sizes.last().unwrap();
        let log = log_with(max);
        let mut ct = MemoryBackedTree::<Sha256, Vec<u8>>::new();
        let mut ct_roots: Vec<RootHash<Sha256>> = Vec::new();
        for d in &log.data {
            ct.push(d.clone());
            ct_roots.push(ct.root());
        }

        for &size in &sizes {
            let t = ct_tree(&log.data[..size as usize]);
            let root = subtree_root(0, size, log.get_at(size)).unwrap();
            assert_eq!(root, root_of(&log.leaves[..size as usize]));
            assert_eq!(
                root.as_slice(),
                t.root().as_bytes().as_slice(),
                "root {size}"
            );
            if size == 0 {
                continue;
            }
            let ct_root = t.root();

            // Inclusion: every index up to 300 leaves, a sample above.
            let indices: Vec<u64> = if size <= 300 {
                (0..size).collect()
            } else {
                let mut v: Vec<u64> = (0..64).map(|_| rng.below(size)).collect();
                v.extend([0, 1, size / 2, size - 2, size - 1]);
                v
            };
            for index in indices {
                let ours = inclusion_proof(index, size, log.get_at(size)).unwrap();
                let theirs = t.prove_inclusion(index as usize);
                assert_eq!(flatten(&ours), theirs.as_bytes(), "PATH({index}, {size})");
                verify_inclusion(index, size, &log.leaves[index as usize], &ours, &root).unwrap();
                let ct_proof = InclusionProof::<Sha256>::from_bytes(flatten(&ours));
                ct_root
                    .verify_inclusion(&log.data[index as usize], index, &ct_proof)
                    .unwrap();
            }

            // Consistency: every old size up to 300 leaves, a sample above.
            let olds: Vec<u64> = if size <= 300 {
                (1..=size).collect()
            } else {
                let mut v: Vec<u64> = (0..64).map(|_| 1 + rng.below(size)).collect();
                v.extend([1, 2, size / 2, size - 1, size]);
                v
            };
            for old in olds {
                let ours = consistency_proof(old, size, log.get_at(size)).unwrap();
                let theirs = t.prove_consistency((size - old) as usize);
                assert_eq!(flatten(&ours), theirs.as_bytes(), "PROOF({old}, {size})");
                let old_root = root_of(&log.leaves[..old as usize]);
                verify_consistency(old, size, &old_root, &root, &ours).unwrap();
                let ct_proof = ConsistencyProof::<Sha256>::try_from_bytes(flatten(&ours)).unwrap();
                ct_root
                    .verify_consistency(&ct_roots[old as usize - 1], &ct_proof)
                    .unwrap();
            }
        }
    }

    /// Proofs from stored nodes verify for every (index, size) and
    /// (old, new) up to 160 leaves. They read exactly the nodes their
    /// `*_nodes` function lists. Corrupted proofs fail.
    #[test]
    fn exhaustive_small_trees() {
        let n = 160u64;
        let log = log_with(n);
        let roots: Vec<Hash> = (0..=n)
            .map(|s| root_of(&log.leaves[..s as usize]))
            .collect();
        for size in 1..=n {
            let root = roots[size as usize];
            for index in 0..size {
                let want_nodes = inclusion_proof_nodes(index, size);
                let mut asked = Vec::new();
                let proof = inclusion_proof(index, size, |id| {
                    asked.push(id);
                    log.get_at(size)(id)
                })
                .unwrap();
                assert_eq!(asked, want_nodes);
                let lh = log.leaves[index as usize];
                verify_inclusion(index, size, &lh, &proof, &root).unwrap();

                // Negative: every flipped byte position class, a wrong index,
                // a wrong size, a truncated and an extended proof.
                for i in 0..proof.len() {
                    let mut p = proof.clone();
                    p[i][(i * 7) % 32] ^= 0x01;
                    assert_eq!(
                        verify_inclusion(index, size, &lh, &p, &root),
                        Err(ProofError::RootMismatch)
                    );
                }
                for wrong in [index ^ 1, index + 1, index.wrapping_sub(1), size] {
                    if wrong != index {
                        assert!(verify_inclusion(wrong, size, &lh, &proof, &root).is_err());
                    }
                }
                assert!(verify_inclusion(index, size * 2, &lh, &proof, &root).is_err());
                if !proof.is_empty() {
                    let t = &proof[..proof.len() - 1];
                    assert!(matches!(
                        verify_inclusion(index, size, &lh, t, &root),
                        Err(ProofError::WrongProofLength { .. })
                    ));
                }
                let mut longer = proof.clone();
                longer.push(root);
                assert!(verify_inclusion(index, size, &lh, &longer, &root).is_err());
            }
            for old in 0..=size {
                let want_nodes = consistency_proof_nodes(old, size);
                let mut asked = Vec::new();
                let proof = consistency_proof(old, size, |id| {
                    asked.push(id);
                    log.get_at(size)(id)
                })
                .unwrap();
                assert_eq!(asked, want_nodes);
                let old_root = roots[old as usize];
                verify_consistency(old, size, &old_root, &root, &proof).unwrap();
                if proof.is_empty() {
                    continue;
                }
                for i in 0..proof.len() {
                    let mut p = proof.clone();
                    p[i][31 - (i % 32)] ^= 0x80;
                    assert!(verify_consistency(old, size, &old_root, &root, &p).is_err());
                }
                let t = &proof[..proof.len() - 1];
                assert!(verify_consistency(old, size, &old_root, &root, t).is_err());
                assert!(verify_consistency(old, size * 2, &old_root, &root, &proof).is_err());
                assert!(verify_consistency(old, size, &root, &old_root, &proof).is_err());
                // A different old tree of the same size (one leaf changed)
                // is not a prefix. When `old` is a power of two the old root
                // starts the path, so the mismatch shows at the new root.
                let mut forked = log.leaves[..old as usize].to_vec();
                forked[0][0] ^= 1;
                let want = if old.is_power_of_two() {
                    ProofError::NewRootMismatch
                } else {
                    ProofError::OldRootMismatch
                };
                assert_eq!(
                    verify_consistency(old, size, &root_of(&forked), &root, &proof),
                    Err(want)
                );
            }
        }
    }

    // -- timing -------------------------------------------------------------

    /// `cargo test --release -- --ignored --nocapture push_timing`
    #[test]
    #[ignore = "a timing, meaningful only in release: cargo test --release -- --ignored --nocapture push_timing"]
    fn push_timing() {
        use std::hint::black_box;
        use std::time::Instant;
        const N: u64 = 1_000_000;
        let leaves: Vec<Hash> = (0..N).map(|i| leaf_hash(&i.to_le_bytes())).collect();

        let mut f = Frontier::new();
        let mut nodes = 0u64;
        let t = Instant::now();
        for lh in &leaves {
            f.push_with(*lh, |_, h| {
                black_box(h);
                nodes += 1;
            });
        }
        let root = f.root();
        let el = t.elapsed();
        println!(
            "push_with: {N} leaves, {nodes} nodes in {el:?} = {:.0} leaves/s",
            N as f64 / el.as_secs_f64()
        );

        let mut g = Frontier::new();
        let t = Instant::now();
        for lh in &leaves {
            black_box(g.push(*lh));
        }
        let el = t.elapsed();
        assert_eq!(g.root(), root);
        println!(
            "push (Vec): {N} leaves in {el:?} = {:.0} leaves/s",
            N as f64 / el.as_secs_f64()
        );

        // What `sluis audit verify` does per entry: hash a ~200-byte record,
        // then append it.
        let record = [0x5au8; 200];
        let mut g = Frontier::new();
        let t = Instant::now();
        for i in 0..N {
            let mut r = record;
            r[..8].copy_from_slice(&i.to_le_bytes());
            g.push_with(leaf_hash(&r), |_, h| {
                black_box(h);
            });
        }
        black_box(g.root());
        let el = t.elapsed();
        println!(
            "leaf_hash(200 B) + push_with: {N} entries in {el:?} = {:.0} entries/s",
            N as f64 / el.as_secs_f64()
        );
    }
}
