//! Requests of unregistered certificates: recorded one by one up to a
//! number per certificate and interval, then counted, for one summary
//! record per certificate and interval.
//!
//! A certificate the CA vouches for but no participant is registered for
//! is refused whatever it asks. Its first requests are evidence and get
//! their records; a client looping on refusals would otherwise write the
//! permanent log as fast as it can send. As for refused handshakes
//! (`net::sources`), the rest are summed. Bounded: an interval tracks at
//! most [`MAX_CERTIFICATES`] certificates, the rest summed as one.

use std::collections::HashMap;
use std::sync::Mutex;

/// Certificates tracked one by one per interval.
pub(crate) const MAX_CERTIFICATES: usize = 4096;

/// What stands for certificates beyond [`MAX_CERTIFICATES`].
pub(crate) const OTHERS: &str = "other unregistered certificates";

#[derive(Default)]
struct Tally {
    recorded: usize,
    counted: u64,
    first: i64,
    last: i64,
}

/// The per-certificate accounting (see the module documentation).
pub(crate) struct Unregistered {
    per_certificate: usize,
    interval: Mutex<HashMap<String, Tally>>,
}

/// Requests of one unregistered certificate in one interval that were
/// refused without a record of their own.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Counted {
    /// Lowercase hex SHA-256 of the certificate, or [`OTHERS`].
    pub(crate) fingerprint: String,
    pub(crate) requests: u64,
    /// First and last such request, ms since the Unix epoch.
    pub(crate) first: i64,
    pub(crate) last: i64,
}

impl Unregistered {
    pub(crate) fn new(per_certificate: usize) -> Unregistered {
        Unregistered {
            per_certificate,
            interval: Mutex::default(),
        }
    }

    /// Whether this request of the certificate `fingerprint` gets a record
    /// of its own; if not, it is counted.
    pub(crate) fn record(&self, fingerprint: &str, now: i64) -> bool {
        let mut interval = self.interval.lock().unwrap_or_else(|p| p.into_inner());
        let key = if interval.len() >= MAX_CERTIFICATES && !interval.contains_key(fingerprint) {
            OTHERS
        } else {
            fingerprint
        };
        let tally = interval.entry(key.to_string()).or_default();
        if key != OTHERS && tally.recorded < self.per_certificate {
            tally.recorded += 1;
            return true;
        }
        if tally.counted == 0 {
            tally.first = now;
        }
        tally.counted += 1;
        tally.last = now;
        false
    }

    /// Ends the interval: what was counted, per certificate.
    pub(crate) fn take(&self) -> Vec<Counted> {
        let interval =
            std::mem::take(&mut *self.interval.lock().unwrap_or_else(|p| p.into_inner()));
        let mut out: Vec<Counted> = interval
            .into_iter()
            .filter(|(_, t)| t.counted > 0)
            .map(|(fingerprint, t)| Counted {
                fingerprint,
                requests: t.counted,
                first: t.first,
                last: t.last,
            })
            .collect();
        out.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_up_to_the_limit_per_certificate_then_counted() {
        let u = Unregistered::new(2);
        assert!(u.record("a", 1));
        assert!(u.record("a", 2));
        assert!(!u.record("a", 3));
        assert!(!u.record("a", 4));
        assert!(u.record("b", 5), "per certificate");
        assert_eq!(
            u.take(),
            vec![Counted {
                fingerprint: "a".into(),
                requests: 2,
                first: 3,
                last: 4
            }]
        );
        assert!(u.record("a", 6), "a new interval");
    }

    #[test]
    fn certificates_beyond_the_bound_are_summed_as_one() {
        let u = Unregistered::new(1);
        for i in 0..MAX_CERTIFICATES + 3 {
            u.record(&i.to_string(), 0);
        }
        let taken = u.take();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].fingerprint, OTHERS);
        assert_eq!(taken[0].requests, 3);
    }
}
