//! Retention and the data key's life: what the node does to stored cases on
//! its own, each step recorded in the access log like any access.
//!
//! - **Crypto-erasure** (GDPR art. 5(1)(e) storage limitation, art. 17
//!   erasure): [`Exchange::erase_due`] deletes the ciphertext of every
//!   category past its `[retention]` period, counted from the case's last
//!   update; a case whose every category is past its period, or that is
//!   past the whole-case period, loses its case key and sealed subject id
//!   too, so nothing of it can ever be opened again — not by its owner,
//!   not from a copy of the database. The case's row (its id, owner and
//!   random `subject_ref`), its pseudonyms and its subject-index entries
//!   (keyed hashes) stay: the access log refers to them, the subject's
//!   access report still lists every access, and a read is answered
//!   `CASE_ERASED`. The log holds no personal data in clear, so its
//!   records and proofs keep verifying.
//! - **Per-case keys for old cases**: [`Exchange::move_legacy_cases`] moves
//!   the values of a case from before per-case keys (sealed under data key
//!   version 1 directly) under a key of the case's own.
//! - **Data key rotation**: [`Exchange::rewrap_case_keys`] re-wraps every
//!   case key under the newest data key version (32 bytes per case; the
//!   case data is not re-encrypted). Progress is in the database (each
//!   case's `key_version`), so a crash loses nothing and the next run goes
//!   on from there.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::gateway::error::{Code, ExchangeError};
use crate::gateway::exchange::Exchange;
use crate::model::Category;
use crate::model::clock::now_millis;
use crate::model::consent::Millis;
use crate::store::{CaseChange, Rewrap};
use crate::tlog::{AccessRecord, Decision};

/// Cases read, re-sealed or re-wrapped per transaction.
const BATCH: i64 = 256;

/// The method names of the records this module writes.
pub(crate) const ERASE_METHOD: &str = "case.erase";
pub(crate) const ROTATE_METHOD: &str = "keys.rotate_data";

/// The `[retention]` periods in force (ms), counted from a case's last
/// update. None configured: nothing is ever erased by the node.
#[derive(Clone, Debug, Default)]
pub(crate) struct Retention {
    pub(crate) categories: Vec<(Category, Millis)>,
    pub(crate) case: Option<Millis>,
}

/// A progress line's receiver (`tracing` in the node, stderr in `sluis`).
pub type Progress<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// What one run of [`Exchange::erase_due`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Erased {
    /// Cases whose key was destroyed (erased as a whole).
    pub cases: u64,
    /// Cases of which some categories were erased.
    pub partly: u64,
    /// Cases changed while they were being erased: left for the next run.
    pub postponed: u64,
}

/// Where a data key rotation stands, as `sluis keys status` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyStatus {
    /// The data key version new case keys are wrapped under.
    pub current: u32,
    /// The versions whose files the node holds.
    pub versions: Vec<u32>,
    /// Case keys per data key version wrapping them.
    pub wrapped: Vec<(i64, i64)>,
    /// Cases whose values are still sealed under data key version 1
    /// directly (from before per-case keys).
    pub legacy: i64,
}

impl KeyStatus {
    /// Where the data key rotation stands in `store` for the data key
    /// versions `keys` holds: reads only, so it may run beside a serving
    /// node (`sluis keys status`) as well as in it.
    pub(crate) async fn read(
        keys: &crate::gateway::vault::Keys,
        store: &crate::store::Store,
    ) -> Result<KeyStatus, crate::store::StoreError> {
        let (wrapped, legacy) = store.key_versions().await?;
        Ok(KeyStatus {
            current: keys.data_key_version(),
            versions: keys.data_key_versions(),
            wrapped,
            legacy,
        })
    }

    /// The versions whose file may be removed: older than the current one,
    /// wrapping no case key, and (for version 1) sealing no old case.
    pub fn removable(&self) -> Vec<u32> {
        self.versions
            .iter()
            .copied()
            .filter(|v| *v != self.current)
            .filter(|v| {
                !self
                    .wrapped
                    .iter()
                    .any(|(w, n)| *w == i64::from(*v) && *n > 0)
            })
            .filter(|v| *v != 1 || self.legacy == 0)
            .collect()
    }

    /// Case keys not yet under the current version, and old cases.
    pub fn pending(&self) -> i64 {
        self.wrapped
            .iter()
            .filter(|(v, _)| *v != i64::from(self.current))
            .map(|(_, n)| n)
            .sum::<i64>()
            + self.legacy
    }
}

/// The data key version whose rotation was last announced in the log, so
/// a rotation is recorded once when it starts, not at every run.
#[derive(Debug, Default)]
pub(crate) struct Announced(AtomicU32);

impl Exchange {
    /// A record of the node's own doing (erasure, key rotation).
    fn own_record(&self, method: &str) -> AccessRecord {
        let mut rec = AccessRecord::new(uuid::Uuid::now_v7().to_string(), now_millis(), method);
        rec.caller = self.node_name.clone();
        rec.decision = Decision::Allowed;
        rec.status = Code::Ok.name().into();
        rec.policy = Some(self.policy().sha256());
        rec
    }

    async fn append_own(&self, rec: &AccessRecord) -> Result<(), ExchangeError> {
        self.audit.append(rec).await.map(|_| ()).map_err(|e| {
            tracing::error!(error = %e, method = %rec.method, "the node's own step could not be recorded; not done");
            ExchangeError::AuditUnavailable
        })
    }

    /// Erases what is past its `[retention]` period now (see the module
    /// docs): each erased case is one `case.erase` record, durable before
    /// the erasure. Errors: `AuditUnavailable` (nothing more is erased),
    /// a store error.
    pub(crate) async fn erase_due(&self, progress: Progress<'_>) -> Result<Erased, ExchangeError> {
        let r = &self.retention;
        let shortest = r.categories.iter().map(|(_, p)| *p).chain(r.case).min();
        let Some(shortest) = shortest else {
            return Ok(Erased::default());
        };
        let now = now_millis();
        let mut done = Erased::default();
        let mut after = String::new();
        let mut seen = 0u64;
        loop {
            let ids = self
                .store
                .cases_unchanged_since(now - shortest, &after, BATCH)
                .await
                .map_err(stored)?;
            let Some(last) = ids.last() else { break };
            after = last.clone();
            for id in &ids {
                self.erase_one(id, now, &mut done).await?;
            }
            seen += ids.len() as u64;
            progress(&format!(
                "retention: {seen} cases past the shortest period checked; {} erased, {} partly, {} postponed",
                done.cases, done.partly, done.postponed
            ));
        }
        if done.cases + done.partly > 0 {
            // The erased bytes are overwritten in the pages the erasure
            // wrote; until those reach the database file, and the older
            // copies of them leave the WAL, the file still holds them.
            // Not done now (a reader in the way), the background
            // checkpoints do it.
            if let Err(e) = self.store.settle_erasure().await {
                tracing::warn!(error = %e, "the erasure's pages are not yet copied into the database file; the background checkpoint will");
            }
        }
        Ok(done)
    }

    async fn erase_one(
        &self,
        id: &str,
        now: Millis,
        done: &mut Erased,
    ) -> Result<(), ExchangeError> {
        let Some((case, sealed)) = self.store.case_with_data(id).await.map_err(stored)? else {
            return Ok(());
        };
        if case.erased_at.is_some() {
            return Ok(());
        }
        let present: Vec<Category> = sealed.iter().map(|(c, _)| *c).collect();
        let past = |p: Millis| case.updated_at.saturating_add(p) <= now;
        let expired: Vec<Category> = present
            .iter()
            .copied()
            .filter(|c| {
                self.retention
                    .categories
                    .iter()
                    .any(|(rc, p)| rc == c && past(*p))
            })
            .collect();
        let whole = self.retention.case.is_some_and(past)
            || (!present.is_empty() && expired.len() == present.len());
        if expired.is_empty() && !whole {
            return Ok(());
        }
        let mut rec = self.own_record(ERASE_METHOD);
        rec.case_id = Some(case.id.clone());
        // Named before the erasure: afterwards the subject id is gone.
        self.name_subject(&mut rec, &case);
        rec.asked = if whole {
            present.clone()
        } else {
            expired.clone()
        };
        rec.rules = vec!["retention".into()];
        let names: Vec<String> = rec.asked.iter().map(|c| c.to_string()).collect();
        rec.detail = if whole {
            format!(
                "retention period ended: case crypto-erased (case key destroyed); categories: {}",
                names.join(", ")
            )
        } else {
            format!("retention period ended: erased {}", names.join(", "))
        };
        self.append_own(&rec).await?;
        let change = CaseChange {
            case_id: case.id.clone(),
            version: case.version,
            bump: true,
            delete: expired.clone(),
            subject_id: (whole || expired.contains(&Category::Identity)).then_some(None),
            erase_at: whole.then_some(now),
            ..CaseChange::default()
        };
        match self.store.change_case(change).await {
            Ok(Some(_)) if whole => done.cases += 1,
            Ok(Some(_)) => done.partly += 1,
            Ok(None) => {
                // Updated since it was read: its retention starts anew.
                done.postponed += 1;
                let mut again = self.own_record(ERASE_METHOD);
                again.case_id = rec.case_id.clone();
                // The case is still held (updated, not erased): named with
                // its sealed id, as the record it follows is.
                self.name_subject(&mut again, &case);
                again.status = Code::Aborted.name().into();
                again.decision = Decision::Error;
                again.detail = format!(
                    "erasure of record {} not done: the case was updated meanwhile",
                    rec.request_id
                );
                self.append_own(&again).await?;
            }
            Err(e) => return Err(ExchangeError::store("storage", &e)),
        }
        Ok(())
    }

    /// Moves every case from before per-case keys under a key of its own
    /// (its values re-sealed, nothing else changed); one `keys.rotate_data`
    /// record says how many. Answers how many were moved.
    pub(crate) async fn move_legacy_cases(
        &self,
        progress: Progress<'_>,
    ) -> Result<u64, ExchangeError> {
        let mut moved = 0u64;
        let mut after = String::new();
        loop {
            let ids = self
                .store
                .legacy_cases(&after, BATCH)
                .await
                .map_err(stored)?;
            let Some(last) = ids.last() else { break };
            after = last.clone();
            for id in &ids {
                let Some((case, sealed)) = self.store.case_with_data(id).await.map_err(stored)?
                else {
                    continue;
                };
                let vault =
                    |e: crate::gateway::vault::VaultError| ExchangeError::internal("vault", &e);
                let (key, wrapped) = self.keys.new_case_key(&case.id).map_err(vault)?;
                let mut put = Vec::with_capacity(sealed.len());
                for (c, s) in &sealed {
                    let aad = Self::aad(&case.id, *c);
                    let plain = self.keys.open_case(None, &aad, s).map_err(vault)?;
                    put.push((*c, self.keys.seal_case(&key, &aad, &plain).map_err(vault)?));
                }
                let subject_id = match &case.subject_id {
                    Some(s) => {
                        let aad = crate::gateway::exchange::subject_id_aad(&case.id);
                        let plain = self
                            .keys
                            .open_case(None, aad.as_bytes(), s)
                            .map_err(vault)?;
                        Some(Some(
                            self.keys
                                .seal_case(&key, aad.as_bytes(), &plain)
                                .map_err(vault)?,
                        ))
                    }
                    None => None,
                };
                let change = CaseChange {
                    case_id: case.id.clone(),
                    version: case.version,
                    put,
                    subject_id,
                    case_key: Some((wrapped, i64::from(self.keys.data_key_version()))),
                    ..CaseChange::default()
                };
                if self
                    .store
                    .change_case(change)
                    .await
                    .map_err(stored)?
                    .is_some()
                {
                    moved += 1;
                }
            }
            progress(&format!(
                "data key: {moved} cases moved from data key version 1 to keys of their own"
            ));
        }
        if moved > 0 {
            let mut rec = self.own_record(ROTATE_METHOD);
            rec.detail = format!(
                "{moved} cases from before per-case keys moved under keys of their own (wrapped under data key version {})",
                self.keys.data_key_version()
            );
            self.append_own(&rec).await?;
        }
        Ok(moved)
    }

    /// Where the data key rotation stands.
    pub(crate) async fn key_status(&self) -> Result<KeyStatus, ExchangeError> {
        KeyStatus::read(&self.keys, &self.store)
            .await
            .map_err(stored)
    }

    /// Re-wraps up to `max` case keys (all, with `None`) that are under an
    /// older data key version, in transactions of [`BATCH`]. The first run
    /// after a new version appears records `keys.rotate_data` (started), the
    /// run that finds none left records it done. Answers how many are left.
    pub(crate) async fn rewrap_case_keys(
        &self,
        max: Option<u64>,
        progress: Progress<'_>,
    ) -> Result<i64, ExchangeError> {
        let current = self.keys.data_key_version();
        let status = self.key_status().await?;
        let pending = status.pending() - status.legacy;
        let announced = self.announced.0.load(Ordering::Relaxed);
        if pending == 0 {
            if announced == current {
                self.announce_done(current, &status).await?;
            }
            return Ok(0);
        }
        if announced != current {
            let mut rec = self.own_record(ROTATE_METHOD);
            rec.detail = format!(
                "data key version {current}: re-wrapping {pending} case keys from older versions"
            );
            self.append_own(&rec).await?;
            self.announced.0.store(current, Ordering::Relaxed);
        }
        let mut done = 0u64;
        while max.is_none_or(|m| done < m) {
            let limit = max.map_or(BATCH, |m| BATCH.min((m - done) as i64));
            let rows = self
                .store
                .case_keys_below(i64::from(current), limit)
                .await
                .map_err(stored)?;
            if rows.is_empty() {
                break;
            }
            let mut batch: Vec<Rewrap> = Vec::with_capacity(rows.len());
            for (id, wrapped, was) in rows {
                let again = self
                    .keys
                    .rewrap(&id, &wrapped)
                    .map_err(|e| ExchangeError::internal("vault", &e))?;
                // Already under the current version (the column lagged
                // behind the key): the column is set right, so no row is
                // read again and the run ends.
                let (w, v) = again.unwrap_or((wrapped, current));
                batch.push((id, w, i64::from(v), was));
            }
            let n = batch.len() as u64;
            self.store.rewrap_case_keys(batch).await.map_err(stored)?;
            done += n;
            progress(&format!(
                "data key version {current}: {done} of {pending} case keys re-wrapped"
            ));
        }
        let left = (pending - done as i64).max(0);
        if left == 0 {
            // Done in this run: said now, not on a later run that a stop
            // of the node could prevent.
            let status = self.key_status().await?;
            if status.pending() - status.legacy == 0 {
                self.announce_done(current, &status).await?;
            }
        }
        Ok(left)
    }

    /// The record that ends a rotation: every case key is wrapped under
    /// `current`, and which older versions' files may go.
    async fn announce_done(&self, current: u32, status: &KeyStatus) -> Result<(), ExchangeError> {
        let mut rec = self.own_record(ROTATE_METHOD);
        rec.detail = format!(
            "data key version {current}: every case key is wrapped under it; older versions removable: {}",
            list(&status.removable())
        );
        self.append_own(&rec).await?;
        self.announced.0.store(0, Ordering::Relaxed);
        Ok(())
    }
}

fn stored(e: crate::store::StoreError) -> ExchangeError {
    ExchangeError::store("storage", &e)
}

fn list(v: &[u32]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}
