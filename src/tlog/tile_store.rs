//! [`TileSource`] over the log as it is stored today: a hash tile from the
//! tree's stored perfect nodes (every perfect subtree is stored, leaf
//! hashes included, so tile hashes at tree level `8L` are read, never
//! computed), an entry bundle from the records. Once the log is stored as
//! tiles, the store serves them itself and this file goes.

use crate::store::Store;
use crate::tlog::tiles::{Tile, TileReadError, TileSource};

impl TileSource for Store {
    async fn hash_tile(&self, tile: Tile) -> Result<Vec<u8>, TileReadError> {
        let ids = tile.nodes();
        let have = self.merkle_nodes(&ids).await?;
        let mut out = Vec::with_capacity(ids.len() * 32);
        for id in &ids {
            out.extend_from_slice(have.get(id).ok_or(TileReadError::Missing("a tree node"))?);
        }
        Ok(out)
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
