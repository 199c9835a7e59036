//! The log as C2SP tlog-tiles (<https://c2sp.org/tlog-tiles>): tile
//! coordinates, their paths, which tiles a tree has, and [`TileSource`],
//! what serves them — pure: no I/O here.
//!
//! A hash tile at level `L`, index `N`, width `W` holds, for `i` in
//! `0..W`, the Merkle Tree Hash of the `256^L` entries starting at
//! `(N·256 + i)·256^L` — the perfect subtree at tree level `8L`, index
//! `N·256 + i` (RFC 6962 §2.1). Level 0 holds leaf hashes. An entry bundle
//! holds the entries of the level-0 tile with the same `N` and `W`, each
//! prefixed by its length as a big-endian `u16`. A tile of width 256 is
//! full; one of 1 to 255 is partial and is named with `.p/<W>`.

#[cfg(test)]
use crate::tlog::merkle::NodeId;

/// Hashes in a full tile, entries in a full bundle (2^8: the tile height
/// is 8 levels of the tree).
pub(crate) const TILE_WIDTH: u64 = 256;
/// Tree levels one tile level spans.
const TILE_HEIGHT: u32 = 8;
/// The highest level a path may name (the spec's bound). A tile at level 8
/// or above would span 2^64 entries or more, so no tree of this log has
/// one; such a path is well formed and answered as absent.
const MAX_LEVEL: u8 = 63;

/// A tile's place: level, index within the level, width (1 to 256).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tile {
    pub(crate) level: u8,
    pub(crate) index: u64,
    pub(crate) width: u16,
}

/// What a path of the read API names (relative to the log's prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resource {
    /// `checkpoint`: the latest signed checkpoint.
    Checkpoint,
    /// `tile/<L>/<N>[.p/<W>]`: a hash tile.
    Hashes(Tile),
    /// `tile/entries/<N>[.p/<W>]`: the entry bundle of level-0 tile `N`
    /// (its `level` is 0).
    Entries(Tile),
}

/// Why a path names nothing of the read API; the message says what the
/// spec asks for.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BadPath(&'static str);

impl Tile {
    /// The tree level of the hashes in this tile (`8 · level`); `None` when
    /// no tree of at most 2^64 − 1 entries reaches it.
    fn tree_level(self) -> Option<u32> {
        let l = u32::from(self.level) * TILE_HEIGHT;
        (l < 64).then_some(l)
    }

    /// Whether the tree of `size` entries has this tile: its last hash (or
    /// entry) covers only entries below `size`. A partial tile of any
    /// width up to the tree's edge is served, not only the width of the
    /// current tree: the content of a tile of given width never changes,
    /// and a client verifying an older checkpoint asks for that one.
    pub(crate) fn within(self, size: u64) -> bool {
        let Some(level) = self.tree_level() else {
            return false;
        };
        let hashes = self
            .index
            .checked_mul(TILE_WIDTH)
            .and_then(|n| n.checked_add(u64::from(self.width)));
        // Entries up to the tile's last hash: hashes · 256^L.
        match hashes.and_then(|h| h.checked_mul(1u64 << level)) {
            Some(end) => end <= size,
            // Past u64: hashes ≥ 1 with level ≥ 8 overflowed, no tree has it.
            None => false,
        }
    }

    /// Whether this is a full tile, whose URL names it forever (and so
    /// may be cached as immutable).
    pub(crate) fn is_full(self) -> bool {
        u64::from(self.width) == TILE_WIDTH
    }

    /// The perfect subtrees whose hashes make this tile, in order.
    /// Empty for a tile above every tree (see [`Tile::within`]). The
    /// store reads tiles whole; the tests check coordinates with it.
    #[cfg(test)]
    pub(crate) fn nodes(self) -> Vec<NodeId> {
        let Some(level) = self.tree_level() else {
            return Vec::new();
        };
        let first = self.index.saturating_mul(TILE_WIDTH);
        (0..u64::from(self.width))
            .map(|i| NodeId {
                level,
                index: first.saturating_add(i),
            })
            .collect()
    }

    /// The log positions of the entries of this tile's bundle
    /// (`[start, start + width)`, for level 0).
    pub(crate) fn entries(self) -> std::ops::Range<u64> {
        let start = self.index.saturating_mul(TILE_WIDTH);
        start..start.saturating_add(u64::from(self.width))
    }

    /// The path of this hash tile, `tile/<L>/<N>[.p/<W>]`.
    #[cfg(test)]
    pub(crate) fn path(self) -> String {
        format!("tile/{}/{}", self.level, self.suffix())
    }

    /// `<N>[.p/<W>]`: the index in 3-digit elements, all but the last
    /// prefixed with `x`, then the width of a partial tile.
    #[cfg(test)]
    fn suffix(self) -> String {
        let mut groups = vec![self.index % 1000];
        let mut n = self.index / 1000;
        while n > 0 {
            groups.push(n % 1000);
            n /= 1000;
        }
        let mut s = String::new();
        for (i, g) in groups.iter().rev().enumerate() {
            if i > 0 {
                s.push('/');
            }
            if i + 1 < groups.len() {
                s.push('x');
            }
            s.push_str(&format!("{g:03}"));
        }
        if !self.is_full() {
            s.push_str(&format!(".p/{}", self.width));
        }
        s
    }
}

/// Reads a path of the read API (without the leading `/`), exactly as the
/// spec writes it: no leading zeros in a level or width, each index element
/// three digits, `x` before every element but the last, widths 1 to 255.
pub(crate) fn parse(path: &str) -> Result<Resource, BadPath> {
    if path == "checkpoint" {
        return Ok(Resource::Checkpoint);
    }
    let rest = path.strip_prefix("tile/").ok_or(BadPath(
        "the read API serves checkpoint, tile/<L>/<N>[.p/<W>] and tile/entries/<N>[.p/<W>]",
    ))?;
    let (level, rest) = rest
        .split_once('/')
        .ok_or(BadPath("a tile path is tile/<L>/<N>[.p/<W>]"))?;
    let (n, width) = match rest.split_once(".p/") {
        Some((n, w)) => (n, partial_width(w)?),
        None => (rest, TILE_WIDTH as u16),
    };
    let index = index(n)?;
    if level == "entries" {
        return Ok(Resource::Entries(Tile {
            level: 0,
            index,
            width,
        }));
    }
    let level = crate::model::canonical_decimal(level)
        .filter(|l| *l <= u64::from(MAX_LEVEL))
        .ok_or(BadPath(
            "a tile level is a number from 0 to 63 without leading zeros",
        ))? as u8;
    Ok(Resource::Hashes(Tile {
        level,
        index,
        width,
    }))
}

fn partial_width(s: &str) -> Result<u16, BadPath> {
    crate::model::canonical_decimal(s)
        .filter(|w| (1..TILE_WIDTH).contains(w))
        .map(|w| w as u16)
        .ok_or(BadPath(
            "a partial tile's width is a number from 1 to 255 without leading zeros",
        ))
}

/// `x001/x234/067` → 1234067.
fn index(s: &str) -> Result<u64, BadPath> {
    const MSG: &str = "a tile index is written in 3-digit elements, each but the last prefixed with x (1234067 is x001/x234/067)";
    let elements: Vec<&str> = s.split('/').collect();
    // u64::MAX has 20 digits: at most 7 elements.
    if elements.len() > 7 {
        return Err(BadPath(MSG));
    }
    let mut n: u64 = 0;
    for (i, e) in elements.iter().enumerate() {
        let digits = if i + 1 < elements.len() {
            e.strip_prefix('x').ok_or(BadPath(MSG))?
        } else {
            e
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BadPath(MSG));
        }
        let g: u64 = digits.parse().map_err(|_| BadPath(MSG))?;
        // One number, one path: no leading element of zeros.
        if i == 0 && g == 0 && elements.len() > 1 {
            return Err(BadPath(MSG));
        }
        n = n
            .checked_mul(1000)
            .and_then(|n| n.checked_add(g))
            .ok_or(BadPath(MSG))?;
    }
    Ok(n)
}

/// An entry longer than a bundle's `u16` length prefix can say.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "entry {index} is {len} bytes, more than an entry bundle's 16-bit length prefix can say (65535)"
)]
pub(crate) struct EntryTooLong {
    pub(crate) index: u64,
    pub(crate) len: usize,
}

/// An entry bundle: each entry after its length as a big-endian `u16`.
/// `first` is the log position of the first entry, for the error.
pub(crate) fn bundle(first: u64, entries: &[Vec<u8>]) -> Result<Vec<u8>, EntryTooLong> {
    let mut out = Vec::with_capacity(entries.iter().map(|e| e.len() + 2).sum());
    for (i, e) in entries.iter().enumerate() {
        let len = u16::try_from(e.len()).map_err(|_| EntryTooLong {
            index: first + i as u64,
            len: e.len(),
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// Where tiles come from: the store's hash tiles and the log's records
/// (`tlog::tile_store`). The caller has checked [`Tile::within`] against a
/// signed checkpoint's size, so every hash and entry asked for exists in
/// an intact log; one that does not is [`TileReadError::Missing`].
pub(crate) trait TileSource {
    /// The hash tile's bytes: `width` hashes of 32 bytes, in order.
    async fn hash_tile(&self, tile: Tile) -> Result<Vec<u8>, TileReadError>;
    /// The entries of level-0 tile `tile.index`, `tile.width` of them, in
    /// order (each a record's canonical encoding, the leaf).
    async fn entry_bundle(&self, tile: Tile) -> Result<Vec<Vec<u8>>, TileReadError>;
}

/// Why a tile could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TileReadError {
    /// A hash or entry an intact log has is not there.
    #[error("the log's tree is incomplete: {0} is missing; run `sluis audit verify`")]
    Missing(&'static str),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tile(level: u8, index: u64, width: u16) -> Tile {
        Tile {
            level,
            index,
            width,
        }
    }

    #[test]
    fn paths_are_the_specs() {
        // The spec's example: index 1234067 is x001/x234/067.
        assert_eq!(tile(0, 1_234_067, 256).path(), "tile/0/x001/x234/067");
        assert_eq!(tile(2, 0, 1).path(), "tile/2/000.p/1");
        assert_eq!(tile(1, 1000, 17).path(), "tile/1/x001/000.p/17");
        for t in [
            tile(0, 0, 256),
            tile(3, 999, 255),
            tile(0, u64::MAX, 1),
            tile(63, 5, 256),
        ] {
            assert_eq!(parse(&t.path()), Ok(Resource::Hashes(t)));
        }
        assert_eq!(
            parse("tile/entries/x001/002.p/3"),
            Ok(Resource::Entries(tile(0, 1002, 3)))
        );
        assert_eq!(parse("checkpoint"), Ok(Resource::Checkpoint));
    }

    #[test]
    fn malformed_paths_are_refused() {
        for bad in [
            "",
            "tile",
            "tile/0",
            "tile/00/000",
            "tile/64/000",
            "tile/-1/000",
            "tile/0/0",
            "tile/0/0000",
            "tile/0/001/002",
            "tile/0/x001",
            "tile/0/x001/x002",
            "tile/0/x000/001",
            "tile/0/000.p/0",
            "tile/0/000.p/256",
            "tile/0/000.p/01",
            "tile/0/000.p/+1",
            "tile/+1/000",
            "tile/0/+01",
            "tile/0/000.p/",
            "tile/0/000/",
            "tile/entries/0",
            "tile/entries/000.p/300",
            "tile/0/x018/x446/x744/x073/x709/x551/616",
            "tile/0/x018/x446/x744/x073/x709/551/616",
            "checkpoint/",
            "tiles/0/000",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    /// The spec's example: a tree of 70,000 entries has 273 full level-0
    /// tiles, a partial one of width 112, one full level-1 tile, a partial
    /// one of width 17, and a partial level-2 tile of width 1.
    #[test]
    fn which_tiles_a_tree_has() {
        let s = 70_000;
        assert!(tile(0, 272, 256).within(s));
        assert!(!tile(0, 273, 256).within(s));
        assert!(tile(0, 273, 112).within(s));
        assert!(!tile(0, 273, 113).within(s));
        assert!(tile(1, 0, 256).within(s));
        assert!(tile(1, 1, 17).within(s));
        assert!(!tile(1, 1, 18).within(s));
        // A narrower tile an older, smaller tree had is still served.
        assert!(tile(1, 0, 18).within(s));
        assert!(tile(2, 0, 1).within(s));
        assert!(!tile(2, 0, 2).within(s));
        assert!(!tile(3, 0, 1).within(s));
        // A tree of 256: a full level-0 tile and a level-1 tile of width 1.
        assert!(tile(0, 0, 256).within(256));
        assert!(tile(1, 0, 1).within(256));
        assert!(!tile(0, 1, 1).within(256));
        // Nothing of the empty tree; nothing that overflows.
        assert!(!tile(0, 0, 1).within(0));
        assert!(!tile(7, u64::MAX, 256).within(u64::MAX));
        assert!(!tile(8, 0, 1).within(u64::MAX));
        assert!(!tile(63, 0, 1).within(u64::MAX));
    }

    #[test]
    fn tiles_name_their_nodes_and_entries() {
        let t = tile(1, 2, 3);
        assert_eq!(
            t.nodes(),
            vec![
                NodeId {
                    level: 8,
                    index: 512
                },
                NodeId {
                    level: 8,
                    index: 513
                },
                NodeId {
                    level: 8,
                    index: 514
                }
            ]
        );
        assert_eq!(tile(0, 2, 5).entries(), 512..517);
        assert!(tile(8, 0, 1).nodes().is_empty());
    }

    #[test]
    fn bundles_prefix_each_entry_with_its_length() {
        let b = bundle(0, &[b"ab".to_vec(), Vec::new(), vec![7; 300]]).unwrap();
        assert_eq!(&b[..4], &[0, 2, b'a', b'b']);
        assert_eq!(&b[4..6], &[0, 0]);
        assert_eq!(&b[6..8], &[1, 44]);
        assert_eq!(b.len(), 8 + 300);
        assert_eq!(
            bundle(10, &[Vec::new(), vec![0; 65_536]]),
            Err(EntryTooLong {
                index: 11,
                len: 65_536
            })
        );
        assert!(bundle(0, &[vec![0; 65_535]]).is_ok());
    }
}
