//! The requests in progress on a node's listener, bounded in all and per
//! caller.
//!
//! A request holds a [`Permit`] from the moment [`Edge`](super::Edge)
//! admits it until its work — handler and record — has ended, whether or
//! not its caller still waits. A stream's end no longer ends its work, so
//! these permits, not HTTP/2's streams per connection, bound the work a
//! node has in hand. One caller (a registered participant; all
//! unregistered certificates together count as one) holds at most its own
//! share, so that no caller can take every permit — by sending heavy
//! requests, or requests whose message it never finishes — and leave the
//! others refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::net::identity::Peer;

/// The bounds (see the module documentation).
#[derive(Clone)]
pub struct InFlight {
    permits: Arc<Semaphore>,
    limit: u32,
    per_caller: usize,
    /// Requests in progress per caller; an entry exists only while its
    /// caller has one, so there are at most `limit` of them.
    callers: Arc<Mutex<HashMap<String, usize>>>,
}

/// One admitted request's place, given back when dropped.
pub(crate) struct Permit {
    _node: OwnedSemaphorePermit,
    caller: String,
    callers: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut callers = self.callers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = callers.get_mut(&self.caller) {
            *n -= 1;
            if *n == 0 {
                callers.remove(&self.caller);
            }
        }
    }
}

/// Why a request was not admitted: the node's limit, or the caller's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Full {
    Node(usize),
    Caller(usize),
}

impl InFlight {
    /// At most `limit` requests in progress, `per_caller` of them from one
    /// caller (each at least 1; the configuration bounds them far below
    /// [`Semaphore::MAX_PERMITS`]).
    pub fn new(limit: usize, per_caller: usize) -> InFlight {
        let limit = u32::try_from(limit.max(1)).unwrap_or(u32::MAX);
        InFlight {
            permits: Arc::new(Semaphore::new(limit as usize)),
            limit,
            per_caller: per_caller.max(1),
            callers: Arc::default(),
        }
    }

    /// A place for a request of `peer`'s, at once or not at all.
    pub(crate) fn admit(&self, peer: &Peer) -> Result<Permit, Full> {
        let caller = match peer {
            Peer::Registered(c) => c.participant.clone(),
            // Participant ids are never empty: all unregistered
            // certificates share this one share.
            Peer::Unregistered { .. } => String::new(),
        };
        let mut callers = self.callers.lock().unwrap_or_else(|p| p.into_inner());
        let n = callers.get(&caller).copied().unwrap_or(0);
        if n >= self.per_caller {
            return Err(Full::Caller(self.per_caller));
        }
        let node = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| Full::Node(self.limit as usize))?;
        callers.insert(caller.clone(), n + 1);
        Ok(Permit {
            _node: node,
            caller,
            callers: self.callers.clone(),
        })
    }

    /// Requests in progress now.
    pub fn now(&self) -> usize {
        self.limit as usize - self.permits.available_permits()
    }

    /// Waits until no request is in progress: at shutdown, once the server
    /// has stopped taking requests, so that requests whose callers stopped
    /// waiting still end, and are recorded, before the log is closed.
    pub async fn drained(&self) {
        let _ = self.permits.acquire_many(self.limit).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Caller, Role};

    fn peer(id: &str) -> Peer {
        Peer::Registered(Caller {
            participant: id.into(),
            role: Role::Dtv,
            oin: None,
            node: None,
        })
    }

    #[test]
    fn one_caller_cannot_take_every_place() {
        let f = InFlight::new(5, 2);
        let a1 = f.admit(&peer("a")).unwrap();
        let _a2 = f.admit(&peer("a")).unwrap();
        assert_eq!(f.admit(&peer("a")).err(), Some(Full::Caller(2)));
        let _b1 = f.admit(&peer("b")).unwrap();
        let _b2 = f.admit(&peer("b")).unwrap();
        let _c1 = f.admit(&peer("c")).unwrap();
        assert_eq!(f.admit(&peer("d")).err(), Some(Full::Node(5)));
        assert_eq!(f.now(), 5);
        drop(a1);
        let _a3 = f.admit(&peer("a")).expect("a place came free");
        let unregistered = Peer::Unregistered {
            fingerprint: "f".into(),
        };
        assert_eq!(f.admit(&unregistered).err(), Some(Full::Node(5)));
    }

    #[test]
    fn no_entry_outlives_its_requests() {
        let f = InFlight::new(10, 10);
        let held: Vec<_> = (0..10)
            .map(|i| f.admit(&peer(&i.to_string())).unwrap())
            .collect();
        drop(held);
        assert!(f.callers.lock().unwrap().is_empty());
        assert_eq!(f.now(), 0);
    }
}
