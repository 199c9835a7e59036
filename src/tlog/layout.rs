//! The access log laid out as C2SP tlog-tiles (<https://c2sp.org/tlog-tiles>):
//! where each entry and each tree hash lives once the log is stored as
//! entry bundles and hash tiles. Pure arithmetic, no I/O; the store keeps the
//! bytes, [`merkle`](super::merkle) keeps the hashing.
//!
//! The spec's layout, in the terms used here:
//!
//! - A **hash tile** at tile level `L`, index `N`, holds up to 256 hashes of
//!   tree level `8·L`: the perfect nodes `N·256 .. N·256 + W` of that level,
//!   32 bytes each, concatenated. `W` is its width; a tile with `W < 256` is
//!   *partial* (`tile/L/N.p/W`), and a tree of `size` leaves has exactly one
//!   partial tile per level at most — its right edge ([`TileId::width_at`]).
//!   The tree levels between `8·L` and `8·L + 8` are not stored: they are
//!   hashed from the tile's own hashes ([`subtree`]).
//! - An **entry bundle** `N` holds entries `N·256 .. N·256 + W`, each
//!   prefixed by its length as a 2-byte big-endian integer; the level-0 tile
//!   `N` holds the leaf hashes of the same entries, so an append is cut at
//!   the same boundaries for both ([`pieces`]).
//!
//! So a perfect node of the RFC 6962 tree, [`NodeId`], is found by
//! [`locate`]: the tile that holds its subtree's hashes at the tile's level,
//! and which of them.

use std::ops::Range;

use crate::tlog::merkle::{Hash, NodeId, node_hash};

/// Tree levels per tile level (the spec's tile height).
pub(crate) const HEIGHT: u32 = 8;
/// Hashes in a full tile, entries in a full bundle: `2^HEIGHT`.
pub(crate) const WIDTH: u64 = 1 << HEIGHT;

/// A hash tile's coordinates (spec: `tile/<L>/<N>`), without its width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TileId {
    /// Tile level `L`: the tile holds tree level `8·L`.
    pub(crate) level: u32,
    /// Tile index `N` within its level.
    pub(crate) index: u64,
}

impl TileId {
    /// How many hashes this tile holds in a tree of `size` leaves: 256 for a
    /// full tile, fewer for the partial one at the right edge, 0 for a tile
    /// beyond the tree (spec: a tile exists only for `W ≥ 1`).
    #[cfg(test)]
    #[must_use]
    pub(crate) fn width_at(&self, size: u64) -> u64 {
        let nodes = size.checked_shr(self.level * HEIGHT).unwrap_or(0);
        nodes.saturating_sub(self.index * WIDTH).min(WIDTH)
    }
}

/// Where the hashes of perfect node `id` are: its tile and the range of
/// that tile's hashes (of the tile's level) that `id`'s subtree spans; the
/// node's hash is [`subtree`] of them. A node at a tile level is one hash of
/// its tile.
#[must_use]
pub(crate) fn locate(id: NodeId) -> (TileId, Range<usize>) {
    let level = id.level / HEIGHT;
    let above = id.level % HEIGHT;
    let first = id.index << above;
    let tile = TileId {
        level,
        index: first >> HEIGHT,
    };
    let start = (first & (WIDTH - 1)) as usize;
    (tile, start..start + (1usize << above))
}

/// For a node at a tile level other than 0 (tree level 8, 16, …): its tile
/// and its position there. The writer stores these as they complete; level-0
/// tiles are written from the leaf hashes of their bundle.
#[must_use]
pub(crate) fn upper_slot(id: NodeId) -> Option<(TileId, usize)> {
    (id.level >= HEIGHT && id.level.is_multiple_of(HEIGHT)).then(|| {
        let (tile, at) = locate(id);
        (tile, at.start)
    })
}

/// The Merkle Tree Hash of a perfect subtree given its hashes at the
/// tile's level, left to right. `hashes.len()` must be a power of two
/// (what [`locate`] spans).
#[must_use]
pub(crate) fn subtree(hashes: &[Hash]) -> Hash {
    debug_assert!(hashes.len().is_power_of_two());
    match hashes {
        [one] => *one,
        _ => {
            let (left, right) = hashes.split_at(hashes.len() / 2);
            node_hash(&subtree(left), &subtree(right))
        }
    }
}

/// The hashes of a stored tile, or `None` if its length is not a whole
/// number of hashes (a damaged row).
#[must_use]
pub(crate) fn hashes(bytes: &[u8]) -> Option<Vec<Hash>> {
    if !bytes.len().is_multiple_of(32) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(32)
            .map(|c| c.try_into().expect("32 bytes"))
            .collect(),
    )
}

/// The part of an append that falls into one entry bundle: entries
/// `start .. start + len` of the log, in bundle `start / 256`. A batch
/// crossing a bundle boundary is cut into one piece per bundle
/// ([`pieces`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Piece {
    /// Log index of the piece's first entry.
    pub(crate) start: u64,
    pub(crate) len: u64,
}

impl Piece {
    #[must_use]
    pub(crate) fn bundle(&self) -> u64 {
        self.start / WIDTH
    }
    /// Whether the piece ends its bundle: with it, the bundle and its
    /// level-0 tile are full.
    #[must_use]
    pub(crate) fn completes(&self) -> bool {
        (self.start + self.len).is_multiple_of(WIDTH)
    }
}

/// The pieces of an append of `len` entries at log index `first`, in order.
pub(crate) fn pieces(first: u64, len: u64) -> impl Iterator<Item = Piece> {
    let end = first + len;
    let mut at = first;
    std::iter::from_fn(move || {
        (at < end).then(|| {
            let stop = ((at / WIDTH + 1) * WIDTH).min(end);
            let piece = Piece {
                start: at,
                len: stop - at,
            };
            at = stop;
            piece
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::merkle::{Frontier, leaf_hash, root_of};

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    /// The tiles of a tree built from the frontier's completed nodes, as
    /// the writer stores them: level 0 from leaf hashes, upper levels from
    /// `upper_slot`.
    fn tiles(n: u64) -> std::collections::BTreeMap<TileId, Vec<Hash>> {
        let mut tiles: std::collections::BTreeMap<TileId, Vec<Hash>> = Default::default();
        let mut f = Frontier::new();
        for leaf in leaves(n) {
            f.push_with(leaf, |id, h| {
                let slot = if id.level == 0 {
                    Some(locate(id)).map(|(t, r)| (t, r.start))
                } else {
                    upper_slot(id)
                };
                if let Some((tile, at)) = slot {
                    let t = tiles.entry(tile).or_default();
                    assert_eq!(t.len(), at, "hashes of a tile arrive in order");
                    t.push(*h);
                }
            });
        }
        tiles
    }

    #[test]
    fn every_perfect_node_is_found_in_its_tile() {
        // Past two tile levels, so that level-1 tiles are full and
        // level-2 ones exist.
        let n = 256 * 256 + 256 * 3 + 17;
        let tiles = tiles(n);
        let leaves = leaves(n);
        let mut f = Frontier::new();
        let mut checked = 0;
        for leaf in &leaves {
            f.push_with(*leaf, |id, h| {
                let (tile, range) = locate(id);
                let stored = &tiles[&tile];
                assert_eq!(&subtree(&stored[range]), h, "{id:?}");
                checked += 1;
            });
        }
        assert!(checked > n);
        // Widths: the edge of each level is partial, the rest full.
        assert_eq!(tiles[&TileId { level: 0, index: 0 }].len(), 256);
        let edge = TileId {
            level: 0,
            index: n / 256,
        };
        assert_eq!(tiles[&edge].len() as u64, edge.width_at(n));
        assert_eq!(edge.width_at(n), 17);
        let l1 = TileId { level: 1, index: 1 };
        assert_eq!(tiles[&l1].len() as u64, l1.width_at(n));
        assert_eq!(l1.width_at(n), 3);
        assert_eq!(TileId { level: 2, index: 0 }.width_at(n), 1);
        assert_eq!(
            TileId {
                level: 0,
                index: n / 256 + 1
            }
            .width_at(n),
            0
        );
        assert_eq!(TileId { level: 7, index: 0 }.width_at(n), 0);
        // The whole tree from tiles alone.
        let root = Frontier::from_nodes(n, |id| {
            let (tile, range) = locate(id);
            tiles.get(&tile).and_then(|t| t.get(range)).map(subtree)
        })
        .unwrap()
        .root();
        assert_eq!(root, root_of(&leaves));
    }

    #[test]
    fn upper_slots_are_tile_levels_only() {
        assert_eq!(upper_slot(NodeId { level: 0, index: 5 }), None);
        assert_eq!(upper_slot(NodeId { level: 3, index: 5 }), None);
        assert_eq!(
            upper_slot(NodeId {
                level: 8,
                index: 300
            }),
            Some((TileId { level: 1, index: 1 }, 44))
        );
        assert_eq!(
            upper_slot(NodeId {
                level: 16,
                index: 2
            }),
            Some((TileId { level: 2, index: 0 }, 2))
        );
    }

    #[test]
    fn a_batch_is_cut_at_bundle_boundaries() {
        let p: Vec<Piece> = pieces(250, 600).collect();
        assert_eq!(
            p,
            vec![
                Piece { start: 250, len: 6 },
                Piece {
                    start: 256,
                    len: 256
                },
                Piece {
                    start: 512,
                    len: 256
                },
                Piece {
                    start: 768,
                    len: 82
                },
            ]
        );
        assert!(p[0].completes() && p[1].completes());
        assert!(!p[3].completes());
        assert_eq!(p[3].bundle(), 3);
        assert_eq!(pieces(0, 0).count(), 0);
        assert_eq!(
            pieces(3, 1).collect::<Vec<_>>(),
            vec![Piece { start: 3, len: 1 }]
        );
    }

    #[test]
    fn tile_hashes_must_be_whole() {
        assert_eq!(hashes(&[0; 64]).unwrap().len(), 2);
        assert_eq!(hashes(&[0; 63]), None);
    }
}
