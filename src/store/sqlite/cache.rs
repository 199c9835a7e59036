//! Cases (sealed) and their consents kept in memory for the request path,
//! on a node that is the only writer of its database.
//!
//! Every `GetCase` reads its case and the case's consents. Each read is a
//! hop to a reader thread and, because the access log is written between
//! any two reads, a fresh read transaction whose page cache starts empty:
//! profiling put two thirds of a request's database time there. A SQLite file belongs to one node (the node holds a lock on it),
//! so the node sees every change to cases and consents: the store forgets
//! an entry right after the transaction that changed it commits, before the
//! change is answered. A request that starts after a withdrawal was
//! answered therefore never sees the consent from before it.
//!
//! A read that raced with a change must not put the old state back: each
//! change bumps a generation, and a read result is kept only when the
//! generation did not move while it was read.
//!
//! On PostgreSQL, replicas share the database and change it behind each
//! other's backs; there the store has no cache and every request reads.
//!
//! The cache holds what the database holds (case data still sealed) and is
//! bounded; when full it drops an arbitrary entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::model::consent::Consent;
use crate::store::CaseWithData;

pub(super) struct ReadCache {
    max_entries: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    generation: u64,
    cases: HashMap<String, Arc<CaseWithData>>,
    consents: HashMap<String, Arc<Vec<Consent>>>,
}

/// Taken before a database read; the result may be kept only if nothing
/// changed since.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Generation(u64);

impl ReadCache {
    /// A cache of at most `max_entries` cases and as many consent lists.
    pub(super) fn new(max_entries: usize) -> ReadCache {
        ReadCache {
            max_entries,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-made entry
        // (every change is one insert or remove), so a poisoned lock is
        // still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn generation(&self) -> Generation {
        Generation(self.lock().generation)
    }

    pub(super) fn case(&self, case_id: &str) -> Option<Arc<CaseWithData>> {
        self.lock().cases.get(case_id).cloned()
    }

    pub(super) fn consents(&self, case_id: &str) -> Option<Arc<Vec<Consent>>> {
        self.lock().consents.get(case_id).cloned()
    }

    /// Keeps a case read at generation `read_at`, unless something changed
    /// since.
    pub(super) fn keep_case(&self, read_at: Generation, case: CaseWithData) -> Arc<CaseWithData> {
        let case = Arc::new(case);
        let mut inner = self.lock();
        if inner.generation == read_at.0 && self.max_entries > 0 {
            let max = self.max_entries;
            make_room(&mut inner.cases, max);
            inner.cases.insert(case.0.id.clone(), case.clone());
        }
        case
    }

    pub(super) fn keep_consents(
        &self,
        read_at: Generation,
        case_id: &str,
        consents: Vec<Consent>,
    ) -> Arc<Vec<Consent>> {
        let consents = Arc::new(consents);
        let mut inner = self.lock();
        if inner.generation == read_at.0 && self.max_entries > 0 {
            let max = self.max_entries;
            make_room(&mut inner.consents, max);
            inner.consents.insert(case_id.to_string(), consents.clone());
        }
        consents
    }

    /// After a change to a case or to its consents has committed.
    pub(super) fn forget_case(&self, case_id: &str) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.cases.remove(case_id);
        inner.consents.remove(case_id);
    }

    /// After a change to a consent whose case is not at hand.
    pub(super) fn forget_all_consents(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.consents.clear();
    }
}

fn make_room<V>(map: &mut HashMap<String, V>, max: usize) {
    if map.len() >= max
        && let Some(k) = map.keys().next().cloned()
    {
        map.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CaseMeta;

    fn case(id: &str, version: i64) -> CaseWithData {
        (
            CaseMeta {
                id: id.into(),
                owner: "o".into(),
                subject_ref: "s".into(),
                version,
                updated_at: 0,
            },
            vec![],
        )
    }

    #[test]
    fn a_read_that_raced_with_a_change_is_not_kept() {
        let c = ReadCache::new(10);
        let before = c.generation();
        // The change commits while the read is under way...
        c.forget_case("a");
        // ...so what the read saw may be the old state: not kept.
        c.keep_case(before, case("a", 1));
        assert!(c.case("a").is_none());
        let now = c.generation();
        c.keep_case(now, case("a", 2));
        assert_eq!(c.case("a").map(|k| k.0.version), Some(2));
        c.forget_case("a");
        assert!(c.case("a").is_none());
    }

    #[test]
    fn consents_are_forgotten_with_their_case_or_all_at_once() {
        let c = ReadCache::new(10);
        let g = c.generation();
        c.keep_consents(g, "a", vec![]);
        c.keep_consents(g, "b", vec![]);
        c.forget_case("a");
        assert!(c.consents("a").is_none());
        assert!(c.consents("b").is_some());
        c.forget_all_consents();
        assert!(c.consents("b").is_none());
    }

    #[test]
    fn it_stays_within_its_bound() {
        let c = ReadCache::new(3);
        for i in 0..10 {
            let g = c.generation();
            c.keep_case(g, case(&i.to_string(), 1));
        }
        assert_eq!(c.lock().cases.len(), 3);
        let off = ReadCache::new(0);
        let g = off.generation();
        off.keep_case(g, case("a", 1));
        assert!(off.case("a").is_none());
    }
}
