//! Per-source accounting of connections that are not (yet) authenticated:
//! how many handshakes each source has in progress, and what became of the
//! connections that never presented a certificate.
//!
//! Two things a peer without a certificate must not be able to do:
//!
//! - **write the permanent log one entry per connection.** Garbage bytes, a
//!   ClientHello and then nothing, a handshake without a client certificate,
//!   a timeout: each is counted here, per source and kind, and the node
//!   writes one access record per source per interval saying how many and
//!   why (`Summary`). A refused handshake that *did* present a
//!   certificate (unknown CA, expired, revoked) is evidence and keeps its
//!   own record with the fingerprint — the first
//!   `refused_certificate_records_per_source` distinct certificates per
//!   source and interval; a certificate costs an attacker nothing to make
//!   up, so further ones (and repeats) are counted in the summary instead.
//! - **hold every handshake slot.** A source has at most
//!   `max_handshakes_per_source` handshakes in progress; a further
//!   connection from it is closed at once and counted.
//!
//! A source is an IPv4 address or an IPv6 /64 (the usual allocation to one
//! subscriber: rotating addresses inside it does not make a new source).
//! Every map here is bounded: in-progress entries exist only while their
//! handshake does (at most `max_handshakes`), and an interval tracks at
//! most `MAX_SOURCES` sources before the rest are summed as one.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// At most one limit-reached warning per this long (see
/// [`Sources::limit_reached`]).
const WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Sources tracked one by one per interval; beyond, they are summed under
/// [`Source::Other`].
pub(crate) const MAX_SOURCES: usize = 4096;

/// Where a connection comes from, as limits and summaries count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// An IPv4 address, or the first 64 bits of an IPv6 address (the rest
    /// zero). An IPv4-mapped IPv6 address counts as its IPv4 address.
    Addr(IpAddr),
    /// Sources beyond `MAX_SOURCES` in one interval.
    Other,
}

impl Source {
    pub fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source::Addr(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::Addr(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    Source::Addr(IpAddr::V6(prefix.into()))
                }
            },
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Addr(IpAddr::V4(a)) => write!(f, "{a}"),
            Source::Addr(IpAddr::V6(a)) => write!(f, "{a}/64"),
            Source::Other => f.write_str("other sources"),
        }
    }
}

/// How many ways there are of [`Unauthenticated`].
const KINDS: usize = 8;

/// How a connection ended without an accepted certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unauthenticated {
    /// Closed, or sent nothing before the first-byte timeout.
    Silent,
    /// Its first byte does not start a TLS handshake record.
    NotTls,
    /// Began a TLS handshake, then closed or stalled before presenting a
    /// certificate.
    Incomplete,
    /// Finished its side of the handshake without a client certificate.
    NoCertificate,
    /// Refused by TLS before any certificate (no common version or cipher
    /// suite, a protocol error).
    TlsRefused,
    /// Closed at once: its source had `max_handshakes_per_source`
    /// handshakes in progress.
    OverLimit,
    /// Presented a refused certificate already recorded in this interval,
    /// or beyond the per-source number recorded one by one.
    CertificateNotRecorded,
    /// Closed at once: its source had `max_connections_per_source`
    /// connections open, or the node `max_connections`.
    OverConnectionLimit,
}

impl Unauthenticated {
    pub const ALL: [Unauthenticated; KINDS] = [
        Unauthenticated::Silent,
        Unauthenticated::NotTls,
        Unauthenticated::Incomplete,
        Unauthenticated::NoCertificate,
        Unauthenticated::TlsRefused,
        Unauthenticated::OverLimit,
        Unauthenticated::CertificateNotRecorded,
        Unauthenticated::OverConnectionLimit,
    ];

    /// How a summary names it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Unauthenticated::Silent => "silent",
            Unauthenticated::NotTls => "not TLS",
            Unauthenticated::Incomplete => "handshake not finished",
            Unauthenticated::NoCertificate => "no client certificate",
            Unauthenticated::TlsRefused => "TLS refused",
            Unauthenticated::OverLimit => "over the per-source handshake limit",
            Unauthenticated::CertificateNotRecorded => "refused certificate not recorded again",
            Unauthenticated::OverConnectionLimit => "over a limit of open connections",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What one source did without authenticating, in one interval: the
/// content of one access record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Summary {
    pub(crate) source: Source,
    /// First and last such connection, ms since the Unix epoch.
    pub(crate) first: i64,
    pub(crate) last: i64,
    /// Connections per kind, in the order of [`Unauthenticated::ALL`].
    pub(crate) counts: [u64; KINDS],
}

impl Summary {
    pub(crate) fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub(crate) fn count(&self, kind: Unauthenticated) -> u64 {
        self.counts[kind.index()]
    }
}

impl fmt::Display for Summary {
    /// `127.0.0.1: 1000 connections without an accepted client certificate
    /// from 2026-05-01T10:00:00.000Z to 2026-05-01T10:00:59.412Z: 1000 not TLS`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.total();
        write!(
            f,
            "{}: {total} connection{} without an accepted client certificate from {} to {}:",
            self.source,
            if total == 1 { "" } else { "s" },
            rfc3339_ms(self.first),
            rfc3339_ms(self.last)
        )?;
        let mut sep = " ";
        for kind in Unauthenticated::ALL {
            let n = self.count(kind);
            if n > 0 {
                write!(f, "{sep}{n} {}", kind.as_str())?;
                sep = ", ";
            }
        }
        Ok(())
    }
}

fn rfc3339_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// The limits [`Sources`] enforces.
#[derive(Clone, Copy, Debug)]
pub struct SourceLimits {
    /// Handshakes in progress at once per source.
    pub(crate) max_handshakes_per_source: usize,
    /// Refused certificates recorded one by one per source and interval.
    pub(crate) refused_certificate_records_per_source: usize,
    /// Connections open at once per source, handshakes included, whatever
    /// certificate they present: one source cannot hold the node's
    /// connection slots (`max_connections`).
    pub(crate) max_connections_per_source: usize,
}

#[derive(Default)]
struct Tally {
    first: i64,
    last: i64,
    counts: [u64; KINDS],
    /// Fingerprints recorded one by one in this interval.
    recorded: Vec<String>,
}

#[derive(Default)]
struct Interval {
    by_source: HashMap<Source, Tally>,
}

impl Interval {
    fn tally(&mut self, source: Source, now: i64) -> &mut Tally {
        let source = if self.by_source.len() >= MAX_SOURCES && !self.by_source.contains_key(&source)
        {
            Source::Other
        } else {
            source
        };
        let t = self.by_source.entry(source).or_insert_with(|| Tally {
            first: now,
            ..Tally::default()
        });
        t.last = now;
        t
    }
}

/// The accounting of one listener (see the module documentation).
pub struct Sources {
    limits: SourceLimits,
    in_progress: Mutex<HashMap<Source, usize>>,
    /// Connections open per source; an entry exists only while one does.
    open: Mutex<HashMap<Source, usize>>,
    /// When a limit-reached warning was last logged, and how many times a
    /// limit was reached since (see [`Sources::limit_reached`]).
    warned: Mutex<(Option<std::time::Instant>, u64)>,
    interval: Mutex<Interval>,
    totals: [AtomicU64; KINDS],
}

/// A handshake in progress, or an open connection, counted against its
/// source until dropped.
pub(crate) struct InProgress {
    sources: Arc<Sources>,
    source: Source,
    map: fn(&Sources) -> &Mutex<HashMap<Source, usize>>,
}

impl Drop for InProgress {
    fn drop(&mut self) {
        let mut map = lock((self.map)(&self.sources));
        if let Some(n) = map.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.source);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_ms() -> i64 {
    crate::model::clock::now_millis()
}

impl Sources {
    pub fn new(limits: SourceLimits) -> Arc<Sources> {
        Arc::new(Sources {
            limits,
            in_progress: Mutex::default(),
            open: Mutex::default(),
            warned: Mutex::default(),
            interval: Mutex::default(),
            totals: Default::default(),
        })
    }

    /// Counts a handshake in progress for `source`, or `None` when it
    /// already has `max_handshakes_per_source` (the caller closes the
    /// connection and counts it as [`Unauthenticated::OverLimit`]).
    pub(crate) fn begin(self: &Arc<Self>, source: Source) -> Option<InProgress> {
        self.take_slot(
            source,
            |s| &s.in_progress,
            self.limits.max_handshakes_per_source,
        )
    }

    /// Counts an open connection for `source` (from accept to close), or
    /// `None` when it already has `max_connections_per_source` (the caller
    /// closes the connection and counts it as
    /// [`Unauthenticated::OverConnectionLimit`]).
    pub(crate) fn open(self: &Arc<Self>, source: Source) -> Option<InProgress> {
        self.take_slot(source, |s| &s.open, self.limits.max_connections_per_source)
    }

    fn take_slot(
        self: &Arc<Self>,
        source: Source,
        map: fn(&Sources) -> &Mutex<HashMap<Source, usize>>,
        limit: usize,
    ) -> Option<InProgress> {
        let mut held = lock(map(self));
        let n = held.entry(source).or_insert(0);
        if *n >= limit.max(1) {
            if *n == 0 {
                held.remove(&source);
            }
            return None;
        }
        *n += 1;
        Some(InProgress {
            sources: self.clone(),
            source,
            map,
        })
    }

    /// Connections open now from `source`.
    pub fn open_now(&self, source: Source) -> usize {
        lock(&self.open).get(&source).copied().unwrap_or(0)
    }

    /// Says in the node's log that a connection was closed at a limit
    /// (`which`: the setting), at most once per [`WARN_EVERY`] with how
    /// many times a limit was reached since the last line: an operator
    /// learns the node is refusing connections, and a flood cannot flood
    /// the log instead.
    pub(crate) fn limit_reached(&self, which: &'static str, source: Source) {
        let mut warned = lock(&self.warned);
        warned.1 += 1;
        let now = std::time::Instant::now();
        if warned.0.is_some_and(|t| now.duration_since(t) < WARN_EVERY) {
            return;
        }
        let times = std::mem::take(&mut warned.1);
        warned.0 = Some(now);
        drop(warned);
        tracing::warn!(
            limit = which,
            %source,
            times,
            "connection limit reached: connections closed at once"
        );
    }

    /// Counts one connection from `source` that ended as `kind`.
    pub(crate) fn count(&self, source: Source, kind: Unauthenticated) {
        self.totals[kind.index()].fetch_add(1, Ordering::Relaxed);
        lock(&self.interval).tally(source, now_ms()).counts[kind.index()] += 1;
    }

    /// Whether a refused handshake that presented the certificate with
    /// this fingerprint gets a record of its own: yes for the first
    /// `refused_certificate_records_per_source` distinct certificates per
    /// source and interval; otherwise it is counted as
    /// [`Unauthenticated::CertificateNotRecorded`].
    pub(crate) fn record_refused_certificate(&self, source: Source, fingerprint: &str) -> bool {
        let mut interval = lock(&self.interval);
        let tally = interval.tally(source, now_ms());
        if !tally.recorded.iter().any(|f| f == fingerprint)
            && tally.recorded.len() < self.limits.refused_certificate_records_per_source
        {
            tally.recorded.push(fingerprint.to_string());
            return true;
        }
        tally.counts[Unauthenticated::CertificateNotRecorded.index()] += 1;
        self.totals[Unauthenticated::CertificateNotRecorded.index()]
            .fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Ends the interval: one summary per source that had connections
    /// without an accepted certificate, in source order. Sources whose
    /// refused certificates were all recorded one by one have no summary.
    pub(crate) fn take(&self) -> Vec<Summary> {
        let interval = std::mem::take(&mut *lock(&self.interval));
        let mut out: Vec<Summary> = interval
            .by_source
            .into_iter()
            .filter(|(_, t)| t.counts.iter().any(|&n| n > 0))
            .map(|(source, t)| Summary {
                source,
                first: t.first,
                last: t.last,
                counts: t.counts,
            })
            .collect();
        out.sort_by_key(|s| s.source);
        out
    }

    /// Connections that ended as `kind` since the listener started.
    pub fn total(&self, kind: Unauthenticated) -> u64 {
        self.totals[kind.index()].load(Ordering::Relaxed)
    }

    /// Handshakes in progress from `source` now.
    pub fn in_progress(&self, source: Source) -> usize {
        lock(&self.in_progress).get(&source).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(per_source: usize, certs: usize) -> Arc<Sources> {
        Sources::new(SourceLimits {
            max_handshakes_per_source: per_source,
            refused_certificate_records_per_source: certs,
            max_connections_per_source: per_source,
        })
    }

    fn src(s: &str) -> Source {
        Source::of(s.parse().unwrap())
    }

    #[test]
    fn a_source_is_an_ipv4_address_or_an_ipv6_64() {
        assert_eq!(src("192.0.2.7").to_string(), "192.0.2.7");
        assert_eq!(src("::ffff:192.0.2.7"), src("192.0.2.7"));
        assert_eq!(src("2001:db8:1:2:aaaa::1"), src("2001:db8:1:2:bbbb::9"));
        assert_ne!(src("2001:db8:1:2::1"), src("2001:db8:1:3::1"));
        assert_eq!(src("2001:db8:1:2:aaaa::1").to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn handshakes_in_progress_are_limited_per_source_and_released_on_drop() {
        let s = sources(2, 0);
        let (a, b) = (src("192.0.2.1"), src("192.0.2.2"));
        let first = s.begin(a).expect("first");
        let second = s.begin(a).expect("second");
        assert!(s.begin(a).is_none(), "a third from the same source");
        let other = s.begin(b).expect("another source is not affected");
        drop(first);
        let third = s.begin(a).expect("a slot came free");
        drop((second, third, other));
        assert_eq!(s.in_progress(a), 0);
        assert!(
            lock(&s.in_progress).is_empty(),
            "no entry outlives its handshakes"
        );
    }

    #[test]
    fn one_summary_per_source_and_interval() {
        let s = sources(8, 2);
        let (a, b) = (src("192.0.2.1"), src("2001:db8::1"));
        for _ in 0..1000 {
            s.count(a, Unauthenticated::NotTls);
        }
        s.count(a, Unauthenticated::Silent);
        s.count(b, Unauthenticated::NoCertificate);
        let taken = s.take();
        assert_eq!(taken.len(), 2);
        assert_eq!(taken[0].source, a);
        assert_eq!(taken[0].total(), 1001);
        assert_eq!(taken[0].count(Unauthenticated::NotTls), 1000);
        let text = taken[0].to_string();
        assert!(
            text.starts_with("192.0.2.1: 1001 connections without"),
            "{text}"
        );
        assert!(text.ends_with(": 1 silent, 1000 not TLS"), "{text}");
        assert_eq!(
            taken[1].to_string().split(": ").next(),
            Some("2001:db8::/64")
        );
        assert!(s.take().is_empty(), "the interval ended");
        assert_eq!(s.total(Unauthenticated::NotTls), 1000, "totals stay");
    }

    #[test]
    fn refused_certificates_are_recorded_once_each_up_to_the_limit() {
        let s = sources(8, 2);
        let a = src("192.0.2.1");
        assert!(s.record_refused_certificate(a, "f1"));
        assert!(!s.record_refused_certificate(a, "f1"), "a repeat");
        assert!(s.record_refused_certificate(a, "f2"));
        assert!(!s.record_refused_certificate(a, "f3"), "beyond the limit");
        assert!(
            s.record_refused_certificate(src("192.0.2.2"), "f3"),
            "per source"
        );
        let taken = s.take();
        assert_eq!(
            taken.len(),
            1,
            "a source whose certificates were all recorded has no summary"
        );
        assert_eq!(taken[0].count(Unauthenticated::CertificateNotRecorded), 2);
        assert!(s.record_refused_certificate(a, "f1"), "a new interval");
    }

    #[test]
    fn sources_beyond_the_bound_are_summed_as_one() {
        let s = sources(8, 0);
        for i in 0..(MAX_SOURCES as u32 + 10) {
            s.count(Source::of(IpAddr::V4(i.into())), Unauthenticated::Silent);
        }
        let taken = s.take();
        assert_eq!(taken.len(), MAX_SOURCES + 1);
        let other = taken.last().unwrap();
        assert_eq!(other.source, Source::Other);
        assert_eq!(other.total(), 10);
    }
}
