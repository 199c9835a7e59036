//! What witnessing keeps (ARCHITECTURE.md, "Witnessing"): the cosignatures
//! peers made on this node's checkpoints, the newest checkpoint of each
//! peer this node cosigned, and the evidence of a peer whose log forked or
//! went back.

use crate::model::consent::Millis;
use crate::store::{Backend, Store, StoreError};

/// A peer's cosignature on one of this node's checkpoints, verified under
/// the witness key the directory lists for it before it was stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCosignature {
    /// The checkpoint's size.
    pub size: i64,
    /// The witness's key name (`<node id>/witness`).
    pub witness: String,
    /// When the witness cosigned, POSIX seconds (its clock).
    pub timestamp: i64,
    /// The signature line, ending in a newline: appended to the checkpoint's
    /// signed note it makes the cosigned checkpoint.
    pub line: String,
}

/// The newest checkpoint of a peer this node checked and cosigned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Witnessed {
    pub node: String,
    pub size: i64,
    /// The peer's signed note.
    pub note: String,
    pub at: Millis,
}

/// A peer whose log forked or went back, with the evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessAlarm {
    pub id: i64,
    /// The peer's node id.
    pub node: String,
    /// `fork` or `rollback`.
    pub kind: String,
    /// The checkpoint this node had seen and cosigned (signed by the peer).
    pub seen_note: String,
    /// The conflicting checkpoint the peer offered (signed by the peer).
    pub offered_note: String,
    /// What did not hold, in words.
    pub detail: String,
    pub at: Millis,
    /// An operator's acknowledgement, once made.
    pub acknowledged: Option<AlarmAck>,
}

impl WitnessAlarm {
    /// Whether it still stands (no operator acknowledged it).
    pub fn open(&self) -> bool {
        self.acknowledged.is_none()
    }
}

/// An operator's acknowledgement of a witness alarm: the alarm's evidence
/// stays; the alarm no longer marks the node's health, and its peer is
/// witnessed again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlarmAck {
    /// The participant (a privacy officer) who acknowledged it.
    pub by: String,
    /// What was done about it, one line (checked by
    /// `gateway::validate::free_line`).
    pub note: String,
    /// The acknowledgement's access record.
    pub request_id: String,
    pub at: Millis,
}

impl Store {
    /// Keeps a verified cosignature; an older one by the same witness on the
    /// same checkpoint is replaced, a newer one kept.
    pub(crate) async fn put_cosignature(
        &self,
        c: &StoredCosignature,
        at: Millis,
    ) -> Result<(), StoreError> {
        let c = c.clone();
        on_store!(&self.backend, b => b.put_cosignature(c, at).await)
    }

    /// The cosignatures held for this node's checkpoint of `size`, by
    /// witness name. Each verified when it arrived; a reader that does not
    /// trust the database verifies them again (`tlog::cosignature`).
    pub async fn cosignatures(&self, size: i64) -> Result<Vec<StoredCosignature>, StoreError> {
        on_store!(&self.backend, b => b.cosignatures(size).await)
    }

    /// The sizes of this node's checkpoints that hold cosignatures, largest
    /// first.
    pub async fn cosigned_sizes(&self) -> Result<Vec<i64>, StoreError> {
        on_store!(&self.backend, b => b.cosigned_sizes().await)
    }

    /// The newest checkpoint of `node` this node cosigned.
    pub(crate) async fn witnessed(&self, node: &str) -> Result<Option<Witnessed>, StoreError> {
        on_store!(&self.backend, b => b.witnessed(node).await)
    }

    /// Keeps `w` as the newest checkpoint of its node this node cosigned.
    pub(crate) async fn put_witnessed(&self, w: &Witnessed) -> Result<(), StoreError> {
        let w = w.clone();
        on_store!(&self.backend, b => b.put_witnessed(w).await)
    }

    /// Keeps an alarm's evidence; the same pair of checkpoints of the same
    /// node is kept once. Returns whether it was new.
    pub(crate) async fn put_witness_alarm(&self, a: &WitnessAlarm) -> Result<bool, StoreError> {
        let a = a.clone();
        on_store!(&self.backend, b => b.put_witness_alarm(a).await)
    }

    /// Keeps an operator's acknowledgement of alarm `id`. Returns whether it
    /// was new (false: acknowledged before).
    pub(crate) async fn put_alarm_ack(&self, id: i64, ack: &AlarmAck) -> Result<bool, StoreError> {
        let ack = ack.clone();
        on_store!(&self.backend, b => b.put_alarm_ack(id, ack).await)
    }

    /// Every alarm kept, oldest first, with its acknowledgement if any.
    pub async fn witness_alarms(&self) -> Result<Vec<WitnessAlarm>, StoreError> {
        on_store!(&self.backend, b => b.witness_alarms().await)
    }
}
