//! Whether the PostgreSQL server answers, so that requests fail at once
//! while it does not.
//!
//! With the server stopped, every statement waits `acquire_timeout` for a
//! connection that does not come, and the log writer, one batch at a time,
//! adds those waits up: a request waited for its read, then behind the
//! batches queued before its record, and was answered after 6–9 s. Once a
//! statement finds the server unreachable ([`StoreError::Unavailable`]),
//! statements fail at once with the same error — those already waiting
//! too, so none waits out its own timeout after another has found the
//! server gone; one every [`PROBE_EVERY`] is let through to find out whether
//! the server is back (and the health check's ping always is), and the
//! first that gets an answer opens the way for all. Probes do not overlap:
//! a probe may itself wait out `acquire_timeout`, and a request whose read
//! was one probe must not then queue behind the log writer waiting out
//! another, or it is answered after twice the timeout.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::store::StoreError;

/// How often, while the server is unreachable, a statement is let through
/// to try it.
pub(super) const PROBE_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug)]
pub(in crate::store) struct Reachable {
    /// Whether the server is known to be unreachable; statements in flight
    /// watch it.
    down: watch::Sender<bool>,
    next_probe: Mutex<Instant>,
    /// How long a probe may take at most (the pool's `acquire_timeout`):
    /// no second probe is let through while one may still be waiting.
    probe_takes: Duration,
}

impl Reachable {
    /// `acquire_timeout`: the pool's, the longest a probe waits for a
    /// connection.
    pub(in crate::store) fn new(acquire_timeout: Duration) -> Reachable {
        Reachable {
            down: watch::Sender::new(false),
            next_probe: Mutex::new(Instant::now()),
            probe_takes: acquire_timeout,
        }
    }

    /// Lets a statement through, or fails it at once while the server is
    /// known to be unreachable and no probe is due.
    pub(in crate::store) fn admit(&self) -> Result<(), StoreError> {
        if !*self.down.borrow() {
            return Ok(());
        }
        let mut next = self.next_probe.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if now >= *next {
            // Until it ends (observe) or surely has.
            *next = now + self.probe_takes + PROBE_EVERY;
            return Ok(());
        }
        Err(StoreError::unavailable(
            "the server did not answer the last attempt; the next is under way shortly",
        ))
    }

    /// Runs a statement admitted by [`admit`](Self::admit), cut short with
    /// [`StoreError::Unavailable`] if another statement finds the server
    /// unreachable meanwhile (dropping it: a connection it held was lost
    /// anyway, and a transaction not committed rolls back).
    pub(in crate::store) async fn run<T>(
        &self,
        statement: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let mut down = self.down.subscribe();
        down.mark_unchanged();
        let found_down = async {
            // Only a change to "down" counts: a probe starts while it is.
            while down.changed().await.is_ok() {
                if *down.borrow_and_update() {
                    return;
                }
            }
            std::future::pending::<()>().await
        };
        tokio::select! {
            result = statement => result,
            () = found_down => Err(StoreError::unavailable(
                "another statement found the server unreachable",
            )),
        }
    }

    /// Learns from a statement's outcome: unreachable, or answering (an
    /// error the server itself returned is an answer too).
    pub(in crate::store) fn observe<T>(&self, result: &Result<T, StoreError>) {
        let unreachable = matches!(result, Err(e) if e.is_unavailable());
        if unreachable {
            // Never earlier than already set: a failed health ping while
            // a probe is out must not let a second one through beside it.
            let mut next = self.next_probe.lock().unwrap_or_else(|p| p.into_inner());
            *next = (*next).max(Instant::now() + PROBE_EVERY);
        }
        let changed = self.down.send_if_modified(|down| {
            let was = std::mem::replace(down, unreachable);
            was != unreachable
        });
        match result {
            Err(e) if changed && unreachable => {
                tracing::warn!(error = %e, "PostgreSQL is unreachable; requests fail at once with UNAVAILABLE until it answers again")
            }
            _ if changed => tracing::info!("PostgreSQL answers again"),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreachable() -> Result<(), StoreError> {
        Err(StoreError::unavailable("connection refused"))
    }

    #[test]
    fn once_unreachable_it_fails_fast_but_probes_and_recovers() {
        let r = Reachable::new(Duration::from_millis(50));
        assert!(r.admit().is_ok());
        // An answer with an error is still an answer.
        r.observe::<()>(&Err(StoreError::Corrupt("x".into())));
        assert!(r.admit().is_ok());
        r.observe(&unreachable());
        let e = r.admit().unwrap_err();
        assert!(e.is_unavailable(), "{e}");
        std::thread::sleep(PROBE_EVERY);
        assert!(r.admit().is_ok(), "a probe is let through");
        assert!(r.admit().is_err(), "one probe at a time");
        // A failed ping while the probe is out lets no second one through
        // when PROBE_EVERY has passed but the probe's timeout has not.
        r.observe(&unreachable());
        std::thread::sleep(PROBE_EVERY);
        assert!(r.admit().is_err(), "the probe may still be waiting");
        std::thread::sleep(Duration::from_millis(60));
        assert!(r.admit().is_ok(), "its timeout is over: the next probe");
        r.observe(&Ok(()));
        assert!(r.admit().is_ok());
        assert!(r.admit().is_ok());
    }

    /// A statement already waiting is cut short when another finds the
    /// server gone; a probe that starts while it is gone is not.
    #[tokio::test]
    async fn statements_in_flight_stop_waiting_when_the_server_is_found_gone() {
        let r = std::sync::Arc::new(Reachable::new(Duration::from_millis(50)));
        let waiting = {
            let r = r.clone();
            tokio::spawn(async move {
                r.run(async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Ok::<_, StoreError>(())
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        r.observe(&unreachable());
        let cut = tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("cut short")
            .unwrap();
        assert!(cut.unwrap_err().is_unavailable());
        let probe = r.run(async { Ok::<_, StoreError>(7) }).await;
        assert_eq!(probe.unwrap(), 7);
    }
}
