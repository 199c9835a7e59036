//! Safe retries of writes (AIP-155): a client names a write with a
//! `request_id` of its own choosing; sent again with the same `request_id`
//! and the same request, the write is answered from what the first call
//! did, and nothing is written twice.
//!
//! - The key is stored in the write's own transaction ([`RequestKey`]), so
//!   a write and its key are durable together or not at all: a retry after
//!   a crash either finds both or repeats the write once.
//! - Keys are per caller and kept for [`RETENTION_MS`]; an older key is
//!   forgotten and its `request_id` names a new write.
//! - What identifies "the same request" is a keyed hash of the method and
//!   the request's encoding without its `request_id` (the gRPC layer hands
//!   both over); the database never holds the request.
//! - A retry is itself an access, recorded like any other: its record says
//!   which access record answered first, and that nothing was written.
//! - The same `request_id` for another request is `RequestIdReused`
//!   (`ALREADY_EXISTS`); while a request with that `request_id` is being
//!   processed by this node, another is `RequestInProgress` (`ABORTED`).
//!   Two replicas on one PostgreSQL database that race on one key: the
//!   second write fails on the key's primary key and writes nothing (an
//!   internal error); its retry is then answered from the first.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::gateway::error::ExchangeError;
use crate::gateway::exchange::{Exchange, RequestCtx};
use crate::gateway::validate;
use crate::model::consent::Millis;
use crate::store::RequestKey;
use crate::tlog::{AccessRecord, Decision, Recorded};

/// How long a `request_id` is kept: a client retrying a write retries within
/// minutes; a week covers a back-end that was down over a weekend.
const RETENTION_MS: Millis = 7 * 86_400_000;

/// How often expired keys are deleted, at most.
const PURGE_EVERY_MS: Millis = 3_600_000;

/// A client's idempotency key for a write, as the gRPC layer hands it over:
/// the `request_id` (empty: none) and the request's encoding without it.
pub(crate) struct IdempotencyKey {
    pub(crate) request_id: String,
    pub(crate) body: Vec<u8>,
}

/// The keys this node is processing now, and when it last purged.
#[derive(Default)]
pub(super) struct InFlight {
    keys: Mutex<HashSet<(String, String)>>,
    last_purge: AtomicI64,
}

/// What a key says about a write.
enum Claim<'a> {
    /// Write: with the key to store with it (none when the client gave
    /// none), held against concurrent use until dropped.
    Fresh(Option<Held<'a>>),
    /// Answer from the first call, as stored.
    Replay(RequestKey),
}

/// A key this node is processing: no other request with it runs until this
/// is dropped.
pub(super) struct Held<'a> {
    in_flight: &'a InFlight,
    caller: String,
    request_id: String,
    method: &'static str,
    digest: String,
}

impl Held<'_> {
    /// The row to store with the write: it made or changed `resource_id`,
    /// leaving `seq` (events of a consent, or a case's version), in the call
    /// whose access record is `rec`.
    pub(super) fn row(&self, resource_id: &str, seq: i64, rec: &AccessRecord) -> RequestKey {
        RequestKey {
            caller: self.caller.clone(),
            request_id: self.request_id.clone(),
            method: self.method.to_string(),
            digest: self.digest.clone(),
            resource_id: resource_id.to_string(),
            seq,
            record_id: rec.request_id.clone(),
            at: rec.at,
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Ok(mut keys) = self.in_flight.keys.lock() {
            keys.remove(&(
                std::mem::take(&mut self.caller),
                std::mem::take(&mut self.request_id),
            ));
        }
    }
}

impl Exchange {
    /// Looks a write's key up (see [`begin_write`](Self::begin_write)). Errors: `Invalid` (a `request_id` that is
    /// not a lower-case UUID), `RequestIdReused`, `RequestInProgress`, a
    /// store error.
    async fn claim(
        &self,
        ctx: &RequestCtx,
        method: &'static str,
        key: Option<IdempotencyKey>,
        now: Millis,
    ) -> Result<Claim<'_>, ExchangeError> {
        let Some(key) = key.filter(|k| !k.request_id.is_empty()) else {
            return Ok(Claim::Fresh(None));
        };
        let caller = self.caller(ctx)?;
        validate::uuid("request_id", &key.request_id)?;
        let digest = self
            .pseudonyms
            .request_digest(&caller.participant, method, &key.body);
        {
            let mut keys = self
                .in_flight
                .keys
                .lock()
                .map_err(|_| ExchangeError::Internal("request keys"))?;
            if !keys.insert((caller.participant.clone(), key.request_id.clone())) {
                return Err(ExchangeError::RequestInProgress);
            }
        }
        let held = Held {
            in_flight: &self.in_flight,
            caller: caller.participant.clone(),
            request_id: key.request_id,
            method,
            digest,
        };
        let found = self
            .store
            .request_key(&held.caller, &held.request_id)
            .await
            .map_err(|e| ExchangeError::store("request keys", &e))?;
        match found {
            Some(k) if k.at >= now - RETENTION_MS => {
                if k.method == method && k.digest == held.digest {
                    Ok(Claim::Replay(k))
                } else {
                    Err(ExchangeError::RequestIdReused)
                }
            }
            Some(_) => {
                // Expired: the request_id names a new write now.
                self.store
                    .forget_request_keys(Some((&held.caller, &held.request_id)), now)
                    .await
                    .map_err(|e| ExchangeError::store("request keys", &e))?;
                Ok(Claim::Fresh(Some(held)))
            }
            None => {
                self.purge_request_keys(now);
                Ok(Claim::Fresh(Some(held)))
            }
        }
    }

    /// Starts a write with its key: `Ok` with the key to store with the write
    /// (none without one), or `Err` with the answer the call ends with,
    /// already recorded — a retry answered by `replay` from what its first
    /// call left, or a refusal of the key.
    pub(super) async fn begin_write<T>(
        &self,
        ctx: &RequestCtx,
        method: &'static str,
        key: Option<IdempotencyKey>,
        rec: &mut AccessRecord,
        replay: impl AsyncFnOnce(RequestKey, &mut AccessRecord) -> Result<T, ExchangeError>,
    ) -> Result<Option<Held<'_>>, Result<Recorded<T>, ExchangeError>> {
        let replayed = match self.claim(ctx, method, key, rec.at).await {
            Ok(Claim::Fresh(held)) => return Ok(held),
            Ok(Claim::Replay(k)) => replay(k, rec).await,
            Err(e) => Err(e),
        };
        Err(self.finish(rec.clone(), replayed).await)
    }

    /// Fills in the record of a retry answered from its first call: allowed,
    /// naming the first call's access record, nothing written.
    pub(super) fn record_replay(rec: &mut AccessRecord, k: &RequestKey) {
        rec.decision = Decision::Allowed;
        rec.rules = vec!["retry:request_id".into()];
        rec.detail = format!(
            "retry of an earlier request with the same request_id, answered as access record {}; nothing written",
            k.record_id
        );
    }

    /// Deletes expired keys, at most once per [`PURGE_EVERY_MS`], in the
    /// background (a failure only leaves them for the next time).
    fn purge_request_keys(&self, now: Millis) {
        let last = self.in_flight.last_purge.load(Ordering::Relaxed);
        if now - last < PURGE_EVERY_MS
            || self
                .in_flight
                .last_purge
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.forget_request_keys(None, now - RETENTION_MS).await {
                tracing::warn!(error = %e, "expired request keys not deleted; trying again later");
            }
        });
    }
}
