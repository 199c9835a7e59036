//! The log's Merkle tree as C2SP hash tiles in the database (migration
//! 0007), written and read the same way by both drivers: what an append
//! writes ([`plan`]), how a full tile is put together from its edge rows
//! ([`assemble`]) and a higher one grown ([`extend`]), and how stored tiles
//! answer for tree nodes ([`nodes_from`]) and for the verifier's scan
//! ([`scan_nodes`]). The drivers only run the statements; the tile
//! arithmetic is `tlog::layout`.
//!
//! Why an edge table: at low rates nearly every group commit holds one
//! record, so rewriting the growing level-0 tile (up to 8 KiB) per batch
//! would write more than the one row per tree node it replaces. An append
//! therefore writes one `log_edge` row with its own leaf hashes; the append
//! that fills a tile writes it once to `log_tiles` and removes its edge rows.
//! Higher tiles gain one hash per 256 (65,536, …) entries and are rewritten
//! then, which amortises to a few bytes per entry.

use std::collections::{BTreeSet, HashMap};

use crate::store::StoreError;
use crate::store::scan::{Chunk, Value};
use crate::tlog::layout::{self, TileId, WIDTH};
use crate::tlog::merkle::{Hash, NodeId};

/// A stored hash tile: tile level, index, its hashes.
pub(super) type TileRow = (i64, i64, Vec<u8>);
/// A stored edge row: the log index of its first hash, its hashes.
pub(super) type EdgeRow = (i64, Vec<u8>);

/// What one append stores of the tree.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct TileWrites {
    /// New `log_edge` rows: the log index of the first hash, the hashes.
    pub edge: Vec<EdgeRow>,
    /// Level-0 tiles this append fills: their index, where this append's
    /// part of them starts, its hashes; the rest is in their edge rows.
    pub fills: Vec<(i64, i64, Vec<u8>)>,
    /// Hashes of higher tiles: the tile, the position of the first in it,
    /// the hashes.
    pub upper: Vec<(TileId, usize, Vec<u8>)>,
}

/// What to store of `nodes`, the perfect nodes an append completed in the
/// order the tree completed them. Only nodes at tile levels are stored (the
/// others are hashed from them when needed); the leaf hashes must be
/// consecutive, and so must each higher tile's.
pub(super) fn plan(nodes: &[(NodeId, Hash)]) -> Result<TileWrites, StoreError> {
    let mut out = TileWrites::default();
    let mut leaves: Vec<u8> = Vec::new();
    let mut first_leaf: Option<u64> = None;
    for (id, hash) in nodes {
        if id.level == 0 {
            let first = *first_leaf.get_or_insert(id.index);
            if id.index != first + (leaves.len() / 32) as u64 {
                return Err(StoreError::Corrupt(format!(
                    "leaf hashes to store are not consecutive at {}",
                    id.index
                )));
            }
            leaves.extend_from_slice(hash);
        } else if let Some((tile, at)) = layout::upper_slot(*id) {
            match out.upper.last_mut() {
                Some((t, from, hashes)) if *t == tile && *from + hashes.len() / 32 == at => {
                    hashes.extend_from_slice(hash);
                }
                _ => out.upper.push((tile, at, hash.to_vec())),
            }
        }
    }
    if let Some(first) = first_leaf {
        let mut rest = leaves.as_slice();
        for piece in layout::pieces(first, (leaves.len() / 32) as u64) {
            let (mine, more) = rest.split_at(piece.len as usize * 32);
            rest = more;
            if piece.completes() {
                out.fills
                    .push((piece.bundle() as i64, piece.start as i64, mine.to_vec()));
            } else {
                out.edge.push((piece.start as i64, mine.to_vec()));
            }
        }
    }
    Ok(out)
}

/// The full level-0 tile `tile` from its edge rows (`(start, hashes)` in
/// order of `start`) and the hashes of the append that fills it, which
/// start at `from`: the edge rows must cover the tile from its start up to
/// `from` without gap.
pub(super) fn assemble(
    tile: i64,
    edge: &[EdgeRow],
    from: i64,
    hashes: &[u8],
) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(WIDTH as usize * 32);
    let mut at = tile * WIDTH as i64;
    for (start, h) in edge {
        if *start != at || !h.len().is_multiple_of(32) {
            return Err(StoreError::Corrupt(format!(
                "the tree's edge rows of tile {tile} do not follow each other at {at}"
            )));
        }
        out.extend_from_slice(h);
        at += (h.len() / 32) as i64;
    }
    if at != from {
        return Err(StoreError::Corrupt(format!(
            "the tree's edge of tile {tile} ends at {at}, not at {from}"
        )));
    }
    out.extend_from_slice(hashes);
    if out.len() != WIDTH as usize * 32 {
        return Err(StoreError::Corrupt(format!(
            "tile {tile} would hold {} hashes",
            out.len() / 32
        )));
    }
    Ok(out)
}

/// A higher tile grown by `hashes` at position `at`: what is stored must
/// end exactly there.
pub(super) fn extend(
    tile: TileId,
    stored: Option<Vec<u8>>,
    at: usize,
    hashes: &[u8],
) -> Result<Vec<u8>, StoreError> {
    let mut bytes = stored.unwrap_or_default();
    if bytes.len() != at * 32 {
        return Err(StoreError::Corrupt(format!(
            "tile {}/{} holds {} bytes where {} hashes were expected",
            tile.level,
            tile.index,
            bytes.len(),
            at
        )));
    }
    bytes.extend_from_slice(hashes);
    Ok(bytes)
}

/// The level-0 tile `tile` as far as its edge rows go (`(start, hashes)`
/// in order of `start`): consecutive hashes from the tile's start, cut at
/// the first gap.
pub(super) fn edge_tile(tile: u64, edge: &[EdgeRow]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = (tile * WIDTH) as i64;
    for (start, h) in edge {
        if *start != at || !h.len().is_multiple_of(32) {
            break;
        }
        out.extend_from_slice(h);
        at += (h.len() / 32) as i64;
    }
    out
}

/// The tiles that hold the nodes `ids`.
pub(super) fn tiles_for(ids: &[NodeId]) -> BTreeSet<TileId> {
    ids.iter().map(|id| layout::locate(*id).0).collect()
}

/// The hashes of `ids` found in `tiles` (each tile's stored bytes); a node
/// whose tile is missing or too short is left out.
pub(super) fn nodes_from(
    ids: &[NodeId],
    tiles: &HashMap<TileId, Vec<u8>>,
) -> HashMap<NodeId, Hash> {
    let mut out = HashMap::with_capacity(ids.len());
    for id in ids {
        let (tile, range) = layout::locate(*id);
        let Some(bytes) = tiles.get(&tile) else {
            continue;
        };
        let Some(slice) = bytes.get(range.start * 32..range.end * 32) else {
            continue;
        };
        let Some(hashes) = layout::hashes(slice) else {
            continue;
        };
        out.insert(*id, layout::subtree(&hashes));
    }
    out
}

/// The tile levels a scan of end sizes up to `up_to` reads: those with a
/// node that ends there (level `L` nodes end at multiples of `256^L`).
pub(super) fn scan_levels(up_to: i64) -> impl Iterator<Item = u32> {
    (0..8u32).take_while(move |l| *l == 0 || 1i64.checked_shl(8 * l).is_some_and(|s| s <= up_to))
}

/// The indexes of level-`level` tiles that hold a node ending in
/// `(after, up_to]`.
pub(super) fn scan_tile_range(level: u32, after: i64, up_to: i64) -> (i64, i64) {
    let span = |l: u32| 1i64.checked_shl(8 * l).unwrap_or(i64::MAX);
    // A node of tile level L, index j, ends at (j + 1) · 256^L; its tile is
    // j / 256.
    let node_lo = after.max(0) / span(level);
    let node_hi = (up_to.max(1) - 1) / span(level);
    (node_lo / WIDTH as i64, node_hi / WIDTH as i64)
}

/// Pushes into `chunk` the stored nodes at tile levels that end in
/// `(after, up_to]`, in `(end, level)` order, from the tile rows (`(level,
/// index, bytes)`) and the level-0 edge rows (`(start, bytes)`) read for
/// that range; at most `cap`, the end of the first left out noted as
/// excess. A tile holding more than 256 hashes, or bytes that are not whole
/// hashes, yields its extra or broken part as a node whose hash is not one
/// (the verifier reports it where it falls).
pub(super) fn scan_nodes(
    chunk: &mut Chunk,
    (after, up_to): (i64, i64),
    cap: usize,
    tiles: &[TileRow],
    edge: &[EdgeRow],
) {
    let mut nodes: Vec<(i64, i64, Value<'_>)> = Vec::new();
    for (level, idx, bytes) in tiles {
        expand(
            *level,
            idx.saturating_mul(WIDTH as i64),
            bytes,
            (after, up_to),
            &mut nodes,
        );
    }
    for (start, bytes) in edge {
        expand(0, *start, bytes, (after, up_to), &mut nodes);
    }
    nodes.sort_by_key(|(end, level, _)| (*end, *level));
    for (end, level, hash) in nodes {
        if chunk.nodes.len() == cap {
            chunk.excess_nodes_from = Some(end);
            break;
        }
        chunk.push_node(end, level, hash);
    }
}

/// The nodes of a tile (or edge row) of tile level `level` whose first
/// hash is node `first` of that level: `(end, tree level, hash)` for those
/// ending in `(after, up_to]`.
fn expand<'a>(
    level: i64,
    first: i64,
    bytes: &'a [u8],
    (after, up_to): (i64, i64),
    nodes: &mut Vec<(i64, i64, Value<'a>)>,
) {
    let Ok(l) = u32::try_from(level) else { return };
    let span = 1i64.checked_shl(8 * l).unwrap_or(i64::MAX);
    for (k, h) in bytes.chunks(32).enumerate() {
        let end = (first + k as i64).saturating_add(1).saturating_mul(span);
        if end > after && end <= up_to {
            let v = if h.len() == 32 {
                Value::Bytes(h)
            } else {
                Value::Other
            };
            nodes.push((end, 8 * level, v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::merkle::{Frontier, leaf_hash};

    /// Appends `batches` (sizes) as the writer would and stores them the
    /// way a driver runs a plan: the tiles and edge rows that result.
    fn store(batches: &[u64]) -> (HashMap<TileId, Vec<u8>>, Vec<EdgeRow>, Frontier) {
        let mut tiles: HashMap<TileId, Vec<u8>> = HashMap::new();
        let mut edge: Vec<EdgeRow> = Vec::new();
        let mut f = Frontier::new();
        for n in batches {
            let mut nodes = Vec::new();
            for _ in 0..*n {
                let leaf = leaf_hash(&f.size().to_be_bytes());
                f.push_with(leaf, |id, h| {
                    if id.level % 8 == 0 {
                        nodes.push((id, *h));
                    }
                });
            }
            let w = plan(&nodes).unwrap();
            edge.extend(w.edge);
            for (tile, from, hashes) in w.fills {
                let lo = tile * 256;
                let rows: Vec<_> = edge
                    .iter()
                    .filter(|(s, _)| *s >= lo && *s < lo + 256)
                    .cloned()
                    .collect();
                let full = assemble(tile, &rows, from, &hashes).unwrap();
                tiles.insert(
                    TileId {
                        level: 0,
                        index: tile as u64,
                    },
                    full,
                );
                edge.retain(|(s, _)| *s < lo || *s >= lo + 256);
            }
            for (tile, at, hashes) in w.upper {
                let old = tiles.remove(&tile);
                tiles.insert(tile, extend(tile, old, at, &hashes).unwrap());
            }
        }
        (tiles, edge, f)
    }

    #[test]
    fn an_append_writes_its_own_hashes_and_a_tile_once_full() {
        // One record per batch: one edge row each, nothing rewritten.
        let (tiles, edge, _) = store(&[1, 1, 1]);
        assert!(tiles.is_empty());
        assert_eq!(
            edge.iter().map(|(s, h)| (*s, h.len())).collect::<Vec<_>>(),
            vec![(0, 32), (1, 32), (2, 32)]
        );
        // Filling the tile moves its rows into it.
        let (tiles, edge, _) = store(&[1, 254, 1, 3]);
        assert_eq!(tiles.len(), 2);
        assert_eq!(tiles[&TileId { level: 0, index: 0 }].len(), 256 * 32);
        // And the level-1 tile gets the hash over those 256 entries.
        assert_eq!(tiles[&TileId { level: 1, index: 0 }].len(), 32);
        assert_eq!(
            edge.iter().map(|(s, h)| (*s, h.len())).collect::<Vec<_>>(),
            vec![(256, 96)]
        );
    }

    #[test]
    fn stored_tiles_give_every_node_of_the_tree() {
        let batches: Vec<u64> = [1, 7, 300, 1024, 1, 1, 64_000, 900, 3].to_vec();
        let (mut tiles, edge, f) = store(&batches);
        let size = f.size();
        // The edge tile as a driver reads it.
        let edge_idx = size / 256;
        tiles.insert(
            TileId {
                level: 0,
                index: edge_idx,
            },
            edge_tile(edge_idx, &edge),
        );
        assert_eq!(tiles[&TileId { level: 1, index: 0 }].len(), 256 * 32);
        assert_eq!(tiles[&TileId { level: 2, index: 0 }].len(), 32);
        // Every node the frontier and any proof could ask for.
        let mut all = Vec::new();
        let mut g = Frontier::new();
        for i in 0..size {
            g.push_with(leaf_hash(&i.to_be_bytes()), |id, h| all.push((id, *h)));
        }
        let ids: Vec<NodeId> = all.iter().map(|(id, _)| *id).collect();
        let got = nodes_from(&ids, &tiles);
        for (id, h) in &all {
            assert_eq!(got.get(id), Some(h), "{id:?}");
        }
        let back = Frontier::from_nodes(size, |id| got.get(&id).copied()).unwrap();
        assert_eq!(back.root(), f.root());
    }

    #[test]
    fn a_gap_or_an_overlap_at_the_edge_is_refused() {
        let h = vec![0u8; 32];
        // Edge rows 0..2, then an append claiming to start at 3.
        let edge = vec![(0, h.repeat(2))];
        assert!(assemble(0, &edge, 3, &h.repeat(253)).is_err());
        assert!(assemble(0, &edge, 2, &h.repeat(253)).is_err(), "255 hashes");
        assert!(assemble(0, &edge, 2, &h.repeat(254)).is_ok());
        assert!(extend(TileId { level: 1, index: 0 }, Some(h.clone()), 2, &h).is_err());
        assert!(
            plan(&[
                (NodeId { level: 0, index: 4 }, [0; 32]),
                (NodeId { level: 0, index: 6 }, [0; 32])
            ])
            .is_err()
        );
        assert_eq!(edge_tile(0, &[(0, h.clone()), (2, h.clone())]).len(), 32);
    }

    #[test]
    fn scan_ranges_cover_the_tiles_of_each_level() {
        assert_eq!(scan_levels(255).collect::<Vec<_>>(), vec![0]);
        assert_eq!(scan_levels(256).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(scan_levels(i64::MAX).count(), 8);
        // Ends in (255, 512]: leaves 255..511 are in tiles 0 and 1.
        assert_eq!(scan_tile_range(0, 255, 512), (0, 1));
        // Level-8 nodes ending at 256 and 512 are in level-1 tile 0.
        assert_eq!(scan_tile_range(1, 255, 512), (0, 0));
        assert_eq!(scan_tile_range(1, 0, 256 * 256 * 3), (0, 2));
    }
}
