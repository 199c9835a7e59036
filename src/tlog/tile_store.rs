//! [`TileSource`] over the store: a hash tile as the store keeps it
//! (`Store::hash_tile`: full tiles written once, the growing level-0 tile
//! put together from its edge rows), cut to the width the read API asks
//! for (a tree size at or below the latest checkpoint); an entry bundle
//! from the records.

use crate::store::Store;
use crate::tlog::tiles::{Tile, TileReadError, TileSource};

impl TileSource for Store {
    async fn hash_tile(&self, tile: Tile) -> Result<Vec<u8>, TileReadError> {
        let want = usize::from(tile.width) * 32;
        let mut stored = Store::hash_tile(self, u32::from(tile.level), tile.index)
            .await?
            .ok_or(TileReadError::Missing("a hash tile"))?;
        // The store's tile may have grown past the size asked for; a
        // shorter one would mean hashes missing below a signed size.
        if stored.len() < want {
            return Err(TileReadError::Missing("a tree node"));
        }
        stored.truncate(want);
        Ok(stored)
    }

    async fn entry_bundle(&self, tile: Tile) -> Result<Vec<Vec<u8>>, TileReadError> {
        let range = tile.entries();
        let leaves = self
            .log_leaves(range.start as i64, (range.end - range.start) as i64)
            .await?;
        // Positions are consecutive from the start, or an entry is missing.
        let whole = leaves.len() as u64 == range.end - range.start
            && leaves
                .iter()
                .zip(range)
                .all(|((seq, _), want)| *seq == want as i64);
        if !whole {
            return Err(TileReadError::Missing("an entry"));
        }
        Ok(leaves.into_iter().map(|(_, record)| record).collect())
    }
}
