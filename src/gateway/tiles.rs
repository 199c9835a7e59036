//! The log's C2SP tlog-tiles read API (<https://c2sp.org/tlog-tiles>), as
//! the gateway decides it: who may read what, and one access record per
//! request, durable before the answer leaves.
//!
//! - the latest signed **checkpoint** and the **hash tiles** to every
//!   registered participant: hashes say nothing about a person, and they
//!   let any participant check the log it is written into;
//! - **entry bundles** only to privacy officers: the records name subjects
//!   by pseudonym and carry their sealed ids. The record of a bundle
//!   fetch names every subject of the bundle's entries, so each subject's
//!   access report shows the officer read them.
//!
//! Tiles are served as far as the latest signed checkpoint reaches
//! ([`Tile::within`]): a tile past it is `NOT_FOUND`, and what is served
//! never changes, so a client can cache it.
//!
//! One record per request, as for every other request. A client fetching
//! tiles costs the log what the same number of gRPC calls would, and is
//! held to the same bounds (requests in flight per caller and node-wide);
//! fetching a proof takes a handful of tiles, mirroring the log takes one
//! bundle per 256 entries.

use crate::gateway::oversight::{MAX_NAMED, proof_error, subjects_named};
use crate::gateway::{Exchange, ExchangeError, RequestCtx, Resource};
use crate::model::Role;
use crate::tlog::Recorded;
use crate::tlog::proof;
use crate::tlog::tiles::{self, Tile, TileReadError, TileSource};

/// How the access log names a request of the read API.
pub(crate) const METHOD_CHECKPOINT: &str = "tlog-tiles/checkpoint";
pub(crate) const METHOD_TILE: &str = "tlog-tiles/tile";
pub(crate) const METHOD_ENTRIES: &str = "tlog-tiles/entries";

/// What a request of the read API gets.
#[derive(Debug)]
pub(crate) enum Served {
    /// The signed note, text.
    Checkpoint(String),
    /// A hash tile's or entry bundle's bytes, and whether it is full (its
    /// URL then names these bytes forever; a partial one is replaced by
    /// the full tile once the log grows past it).
    Tile { bytes: Vec<u8>, full: bool },
}

/// The access log's method name for what a path names (`unknown` for a
/// path that names nothing of the API).
pub(crate) fn tiles_method(resource: Option<&tiles::Resource>) -> &'static str {
    match resource {
        Some(tiles::Resource::Checkpoint) => METHOD_CHECKPOINT,
        Some(tiles::Resource::Hashes(_)) => METHOD_TILE,
        Some(tiles::Resource::Entries(_)) => METHOD_ENTRIES,
        None => "unknown",
    }
}

impl Exchange {
    /// One request of the read API. Errors: `Unregistered`, `Forbidden`
    /// (an entry bundle to anyone but a privacy officer), `NotFound` (a
    /// tile past the latest checkpoint), `CheckpointPending` (no checkpoint
    /// signed yet), `FailedPrecondition` (a bundle naming more than
    /// `MAX_NAMED` subjects, or holding an entry too long for the bundle
    /// format), `AuditUnavailable`, `DatabaseUnavailable`, `Internal`.
    pub(crate) async fn read_tiles(
        &self,
        ctx: &RequestCtx,
        resource: tiles::Resource,
    ) -> Result<Recorded<Served>, ExchangeError> {
        let mut rec = self.record(ctx, tiles_method(Some(&resource)));
        let result = async {
            let caller = self.caller(ctx)?;
            if matches!(resource, tiles::Resource::Entries(_))
                && caller.role != Role::PrivacyOfficer
            {
                return Err(ExchangeError::Forbidden(
                    "entry bundles hold the access records: only a privacy officer (role privacy_officer) may read them; checkpoint and hash tiles are open to every participant".into(),
                ));
            }
            let cp = proof::checkpoint(&self.store, None)
                .await
                .map_err(proof_error)?;
            let size = cp.size as u64;
            let within = |t: Tile| {
                if t.within(size) {
                    Ok(t)
                } else {
                    Err(ExchangeError::not_found(
                        Resource::Tile,
                        None,
                        &format!("no such tile in the tree of the latest checkpoint ({size} entries)"),
                    ))
                }
            };
            let served = match resource {
                tiles::Resource::Checkpoint => {
                    rec.detail = format!("checkpoint of size {size}");
                    Served::Checkpoint(cp.note)
                }
                tiles::Resource::Hashes(t) => {
                    let t = within(t)?;
                    rec.detail = format!("level {} tile {} width {}", t.level, t.index, t.width);
                    let bytes = TileSource::hash_tile(&self.store, t)
                        .await
                        .map_err(read_failed)?;
                    Served::Tile {
                        bytes,
                        full: t.is_full(),
                    }
                }
                tiles::Resource::Entries(t) => {
                    let t = within(t)?;
                    let entries = self.store.entry_bundle(t).await.map_err(read_failed)?;
                    let mut named = std::collections::BTreeSet::new();
                    for e in &entries {
                        named.extend(subjects_named(e));
                    }
                    // A record that cannot name them all would hide reads
                    // from a subject's report: nothing goes out.
                    if named.len() > MAX_NAMED {
                        return Err(ExchangeError::FailedPrecondition(format!(
                            "this bundle's entries name more than {MAX_NAMED} subjects, more than one access record names; read them with QueryAccess, page by page"
                        )));
                    }
                    let bytes = tiles::bundle(t.entries().start, &entries).map_err(|e| {
                        ExchangeError::FailedPrecondition(format!(
                            "{e}; read it with QueryAccess"
                        ))
                    })?;
                    rec.subjects = named.into_iter().collect();
                    rec.detail = format!("entry bundle {} width {}", t.index, t.width);
                    Served::Tile {
                        bytes,
                        full: t.is_full(),
                    }
                }
            };
            rec.decision = crate::tlog::Decision::Allowed;
            Ok(served)
        }
        .await;
        self.finish(rec, result).await
    }
}

/// A tile that cannot be read: the database unreachable, or the stored log
/// damaged (which the node's log says, never the caller's answer).
fn read_failed(e: TileReadError) -> ExchangeError {
    match e {
        TileReadError::Store(e) => ExchangeError::store("access log", &e),
        e => ExchangeError::internal("access log", &e),
    }
}
