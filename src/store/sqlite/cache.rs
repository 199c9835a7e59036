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
//! bounded twice: at most `entries` cases and as many consent lists, and
//! at most `bytes` of them together (as [`Weigh`] counts them: the heap
//! they hold plus a fixed overhead per entry, so the bound is close to
//! what they cost). When a new entry would pass either bound, arbitrary
//! entries are dropped until it fits; an entry larger than an eighth of
//! the byte bound is not kept at all, so that one large case cannot empty
//! the cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::model::consent::{Consent, Recipient};
use crate::store::CaseWithData;

/// How many entries and how many bytes the cache may hold.
#[derive(Clone, Copy, Debug)]
pub struct CacheBounds {
    /// Cases, and as many consent lists (0: no cache).
    pub entries: usize,
    /// Bytes of cases and consent lists together, as [`Weigh`] counts.
    pub bytes: usize,
}

pub(super) struct ReadCache {
    bounds: CacheBounds,
    inner: Mutex<Inner>,
}

/// One map of the cache, with the bytes its entries weigh.
struct Map<V> {
    entries: HashMap<String, (Arc<V>, usize)>,
    bytes: usize,
}

impl<V> Default for Map<V> {
    fn default() -> Self {
        Map {
            entries: HashMap::new(),
            bytes: 0,
        }
    }
}

impl<V> Map<V> {
    fn get(&self, key: &str) -> Option<Arc<V>> {
        self.entries.get(key).map(|(v, _)| v.clone())
    }

    fn remove(&mut self, key: &str) {
        if let Some((_, w)) = self.entries.remove(key) {
            self.bytes -= w;
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

#[derive(Default)]
struct Inner {
    generation: u64,
    cases: Map<CaseWithData>,
    consents: Map<Vec<Consent>>,
}

/// Bytes an entry keeps in memory: a fixed overhead per allocation and
/// entry, plus the bytes of its strings and buffers.
pub(super) trait Weigh {
    fn weigh(&self) -> usize;
}

/// What one entry of a map and one allocation cost besides their bytes.
const ENTRY: usize = 96;
const ALLOCATION: usize = 32;

fn text(s: &str) -> usize {
    ALLOCATION + s.len()
}

impl Weigh for CaseWithData {
    fn weigh(&self) -> usize {
        let (meta, sealed) = self;
        text(&meta.id)
            + text(&meta.owner)
            + ALLOCATION
            + meta.subject_ref.len()
            + meta.subject_id.as_ref().map_or(0, Vec::len)
            + meta.case_key.as_ref().map_or(0, Vec::len)
            + sealed
                .iter()
                .map(|(_, b)| ALLOCATION + 16 + b.len())
                .sum::<usize>()
            + 64
    }
}

impl Weigh for Vec<Consent> {
    fn weigh(&self) -> usize {
        self.iter()
            .map(|c| {
                128 + text(&c.id)
                    + text(&c.case_id)
                    + text(&c.recorded_by)
                    + text(&c.evidence_ref)
                    + ALLOCATION
                    + c.categories.len()
                    + c.recipients
                        .iter()
                        .map(|r| match r {
                            Recipient::Participant(p) => 32 + text(p),
                            Recipient::Role(_) => 32,
                        })
                        .sum::<usize>()
                    + c.purposes.iter().map(|p| 24 + text(p)).sum::<usize>()
                    + c.events
                        .iter()
                        .map(|e| 48 + text(&e.by) + text(&e.note))
                        .sum::<usize>()
            })
            .sum::<usize>()
            + 24
    }
}

/// Taken before a database read; the result may be kept only if nothing
/// changed since.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Generation(u64);

impl ReadCache {
    /// A cache within `bounds` (see the module documentation).
    pub(super) fn new(bounds: CacheBounds) -> ReadCache {
        ReadCache {
            bounds,
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
        self.lock().cases.get(case_id)
    }

    pub(super) fn consents(&self, case_id: &str) -> Option<Arc<Vec<Consent>>> {
        self.lock().consents.get(case_id)
    }

    /// Keeps a case read at generation `read_at`, unless something changed
    /// since.
    pub(super) fn keep_case(&self, read_at: Generation, case: CaseWithData) -> Arc<CaseWithData> {
        let weight = case.weigh();
        let case = Arc::new(case);
        let mut inner = self.lock();
        if inner.generation == read_at.0 {
            let Inner {
                cases, consents, ..
            } = &mut *inner;
            self.keep(
                cases,
                consents.bytes,
                case.0.id.clone(),
                case.clone(),
                weight,
            );
        }
        case
    }

    pub(super) fn keep_consents(
        &self,
        read_at: Generation,
        case_id: &str,
        consents: Vec<Consent>,
    ) -> Arc<Vec<Consent>> {
        let weight = consents.weigh();
        let consents = Arc::new(consents);
        let mut inner = self.lock();
        if inner.generation == read_at.0 {
            let Inner {
                cases,
                consents: map,
                ..
            } = &mut *inner;
            self.keep(
                map,
                cases.bytes,
                case_id.to_string(),
                consents.clone(),
                weight,
            );
        }
        consents
    }

    /// Puts `value` in `map` within the bounds, `other` bytes being held by
    /// the other map: drops arbitrary entries of `map` until it fits, or
    /// keeps nothing if it is too large to be worth it.
    fn keep<V>(&self, map: &mut Map<V>, other: usize, key: String, value: Arc<V>, weight: usize) {
        let CacheBounds { entries, bytes } = self.bounds;
        let weight = weight + ENTRY + key.len();
        if entries == 0 || weight > bytes / 8 {
            return;
        }
        map.remove(&key);
        while !map.entries.is_empty()
            && (map.entries.len() >= entries || other + map.bytes + weight > bytes)
        {
            let Some(k) = map.entries.keys().next().cloned() else {
                break;
            };
            map.remove(&k);
        }
        if other + map.bytes + weight > bytes {
            // The other map holds the room; it makes its own on its next keep.
            return;
        }
        map.bytes += weight;
        map.entries.insert(key, (value, weight));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CaseMeta;

    fn bounds(entries: usize) -> CacheBounds {
        CacheBounds {
            entries,
            bytes: 1 << 20,
        }
    }

    fn case(id: &str, version: i64) -> CaseWithData {
        (
            CaseMeta {
                id: id.into(),
                owner: "o".into(),
                subject_ref: "s".into(),
                version,
                updated_at: 0,
                subject_id: None,
                case_key: None,
                erased_at: None,
            },
            vec![],
        )
    }

    #[test]
    fn a_read_that_raced_with_a_change_is_not_kept() {
        let c = ReadCache::new(bounds(10));
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
        let c = ReadCache::new(bounds(10));
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
        let c = ReadCache::new(bounds(3));
        for i in 0..10 {
            let g = c.generation();
            c.keep_case(g, case(&i.to_string(), 1));
        }
        assert_eq!(c.lock().cases.entries.len(), 3);
        let off = ReadCache::new(bounds(0));
        let g = off.generation();
        off.keep_case(g, case("a", 1));
        assert!(off.case("a").is_none());
    }

    fn sealed(id: &str, bytes: usize) -> CaseWithData {
        let (meta, _) = case(id, 1);
        (
            meta,
            vec![(crate::model::Category::Shelter, vec![0; bytes])],
        )
    }

    /// However many entries it may hold, the cache holds no more than its
    /// bytes: cases and consent lists together. One case larger than an
    /// eighth of them is not kept.
    #[test]
    fn it_stays_within_its_bytes() {
        let c = ReadCache::new(CacheBounds {
            entries: 1000,
            bytes: 64 * 1024,
        });
        for i in 0..100 {
            let g = c.generation();
            c.keep_case(g, sealed(&i.to_string(), 4000));
            let g = c.generation();
            c.keep_consents(g, &i.to_string(), vec![]);
            let inner = c.lock();
            let held = inner.cases.bytes + inner.consents.bytes;
            assert!(held <= 64 * 1024, "{held} bytes held");
            let counted: usize = inner.cases.entries.values().map(|(_, w)| w).sum::<usize>()
                + inner
                    .consents
                    .entries
                    .values()
                    .map(|(_, w)| w)
                    .sum::<usize>();
            assert_eq!(counted, held, "the count follows the entries");
        }
        assert!(c.lock().cases.entries.len() >= 10, "it still caches");
        let g = c.generation();
        c.keep_case(g, sealed("big", 9000));
        assert!(c.case("big").is_none(), "a case over an eighth is not kept");
        c.forget_case("99");
        c.forget_all_consents();
        let inner = c.lock();
        assert_eq!(inner.consents.bytes, 0);
        assert_eq!(
            inner.cases.bytes,
            inner.cases.entries.values().map(|(_, w)| w).sum::<usize>()
        );
    }
}
