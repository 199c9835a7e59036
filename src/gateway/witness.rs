//! Witnessing (ARCHITECTURE.md, "Witnessing"), both sides.
//!
//! Served to peer nodes (`rpc::witness`): this node's latest checkpoint
//! with a consistency proof from the size a witness saw last, and the
//! cosignatures witnesses hand back, verified under the witness key the
//! directory lists for the calling node and kept with the checkpoint. Both
//! are recorded like any call, naming the calling node.
//!
//! Made by this node ([`Exchange::witness_peer`]): a peer's checkpoint,
//! checked against the last one this node cosigned of it
//! (`federation::witness::judge`), then cosigned, or an alarm with the two
//! signed checkpoints kept as evidence.

use super::oversight::proof_error;
use super::validate::Invalid;
use super::{Exchange, ExchangeError, RequestCtx};
use crate::federation::directory::DirectoryNode;
use crate::federation::witness::{AlarmKind, Judgement, WitnessOutcome, judge};
use crate::net::identity::Peer;
use crate::store::StoredCheckpoint;
use crate::store::witness::{StoredCosignature, WitnessAlarm, Witnessed};
use crate::tlog::checkpoint::{self, Checkpoint};
use crate::tlog::cosignature::{self, WitnessKey};
use crate::tlog::merkle::Hash;
use crate::tlog::{Decision, Recorded, proof};

/// How far in the future a cosignature's timestamp may be, in seconds
/// (C2SP tlog-cosignature: verifiers may refuse future timestamps; clocks
/// of two nodes differ a little).
const MAX_FUTURE_SECS: i64 = 300;

/// What a witness asked for: the latest checkpoint and the consistency
/// proof to it from the size the witness saw last.
pub(crate) struct ForWitness {
    pub(crate) checkpoint: StoredCheckpoint,
    pub(crate) proof: Vec<Hash>,
}

fn invalid(field: &str, message: impl Into<String>) -> ExchangeError {
    ExchangeError::Invalid(Invalid::new(field, message))
}

/// The body of a signed note (its text before the signatures).
fn body_of(note: &str) -> &str {
    note.rfind("\n\n").map_or(note, |i| &note[..i + 1])
}

impl Exchange {
    /// The node's federation, if it is in one.
    pub(crate) fn federation(&self) -> Option<&std::sync::Arc<crate::federation::Federation>> {
        self.federation.as_ref()
    }

    /// The calling peer node, as the running directory has it. Errors:
    /// `Unimplemented` (this node is in no federation), `FailedPrecondition`
    /// (the directory is not valid now), `Forbidden` (not a node of it).
    fn calling_node(&self, ctx: &RequestCtx) -> Result<DirectoryNode, ExchangeError> {
        let federation = self
            .federation
            .as_ref()
            .ok_or_else(|| ExchangeError::Unimplemented("this node is in no federation".into()))?;
        let running = federation
            .current(self.now())
            .map_err(|e| ExchangeError::FailedPrecondition(e.to_string()))?;
        let Peer::Registered(c) = &ctx.peer else {
            return Err(ExchangeError::Unregistered);
        };
        running
            .directory
            .node(&c.participant)
            .cloned()
            .ok_or_else(|| {
                ExchangeError::Forbidden(format!(
                    "witnessing is between the nodes of the federation directory (serial {}); '{}' is not one",
                    running.directory.serial, c.participant
                ))
            })
    }

    /// The checkpoint other witnesses cosigned most recently, when witness
    /// `node` has not cosigned it and has seen no larger one: offered
    /// instead of the latest, so that cosignatures gather on one checkpoint
    /// (a quorum a client can require) rather than each witness's on its
    /// own, while the log grows between their rounds. Once a witness has
    /// cosigned it, it gets the latest again, so no checkpoint holds a
    /// witness back by more than one round.
    async fn to_gather(
        &self,
        node: &str,
        old_size: u64,
    ) -> Result<Option<StoredCheckpoint>, ExchangeError> {
        let store = |e: crate::store::StoreError| ExchangeError::store("witness", &e);
        let Some(size) = self
            .store
            .cosigned_sizes()
            .await
            .map_err(store)?
            .first()
            .copied()
        else {
            return Ok(None);
        };
        if (size as u64) < old_size {
            return Ok(None);
        }
        let name = crate::federation::directory::witness_name(node);
        let held = self.store.cosignatures(size).await.map_err(store)?;
        if held.iter().any(|c| c.witness == name) {
            return Ok(None);
        }
        self.store.checkpoint(size).await.map_err(store)
    }

    /// This node's checkpoint for a witnessing peer (the latest, or the
    /// one other witnesses are gathering on: `to_gather`), with the
    /// consistency proof from `old_size` (none when `old_size` is 0, equal
    /// or past the checkpoint's size). Errors: those of `calling_node`,
    /// `CheckpointPending` (none signed yet), `AuditUnavailable`, `Internal`.
    pub(crate) async fn witness_checkpoint(
        &self,
        ctx: &RequestCtx,
        old_size: u64,
    ) -> Result<Recorded<ForWitness>, ExchangeError> {
        let mut rec = self.record(ctx, "GetWitnessCheckpoint");
        let result = async {
            let node = self.calling_node(ctx)?;
            let cp = match self.to_gather(&node.id, old_size).await? {
                Some(cp) => cp,
                None => proof::checkpoint(&self.store, None)
                    .await
                    .map_err(proof_error)?,
            };
            let size = cp.size as u64;
            let proof = if old_size == 0 || old_size >= size {
                Vec::new()
            } else {
                proof::consistency_proof(&self.store, old_size, Some(size))
                    .await
                    .map_err(proof_error)?
                    .hashes
            };
            rec.decision = Decision::Allowed;
            rec.detail = format!(
                "checkpoint of size {size} to witness node '{}', proof from size {old_size}",
                node.id
            );
            Ok(ForWitness {
                checkpoint: cp,
                proof,
            })
        }
        .await;
        self.finish(rec, result).await
    }

    /// Keeps a peer's cosignature `line` on this node's checkpoint `note`,
    /// after checking that this node signed that checkpoint, that the line
    /// verifies under the witness key the directory lists for the calling
    /// node, and that its time is not ahead. Returns how many witnesses'
    /// cosignatures the checkpoint now has. Errors: those of
    /// `calling_node`; `Forbidden` (no witness key for the node);
    /// `Invalid` (`checkpoint`, `cosignature`: what is wrong with it);
    /// `AuditUnavailable`, `DatabaseUnavailable`.
    pub(crate) async fn add_cosignature(
        &self,
        ctx: &RequestCtx,
        note: String,
        line: String,
    ) -> Result<Recorded<u32>, ExchangeError> {
        let mut rec = self.record(ctx, "AddCosignature");
        let checked = async {
            let node = self.calling_node(ctx)?;
            let key = node.witness_key.as_deref().ok_or_else(|| {
                ExchangeError::Forbidden(format!(
                    "the federation directory lists no witness-key for node '{}', so its cosignatures are not taken: the network's operator lists the node's witness key in the directory",
                    node.id
                ))
            })?;
            let key = WitnessKey::parse(key).map_err(|e| ExchangeError::internal("directory", &e))?;
            let name = cosignature::line_name(&line).map_err(|e| invalid("cosignature", e.to_string()))?;
            if name != key.name {
                return Err(invalid(
                    "cosignature",
                    format!("the cosignature is signed as '{name}', but node '{}' cosigns as '{}'", node.id, key.name),
                ));
            }
            let cp = Checkpoint::verify(&note, &self.verifier_key()).map_err(|e| {
                invalid(
                    "checkpoint",
                    format!("not a checkpoint this node signed ({e}): send the checkpoint GetWitnessCheckpoint gave"),
                )
            })?;
            let stored = self
                .store
                .checkpoint(cp.size as i64)
                .await
                .map_err(|e| ExchangeError::store("witness", &e))?
                .ok_or_else(|| invalid("checkpoint", format!("this node keeps no checkpoint of size {}", cp.size)))?;
            if stored.root != cp.root {
                // Signed by this node's key, yet not its log: the log or
                // its key is not what it should be. Loud, here.
                tracing::error!(size = cp.size, witness = %node.id, "a checkpoint signed with this node's key has another root than the log's at that size");
                return Err(invalid(
                    "checkpoint",
                    format!("this node's checkpoint of size {} has another root", cp.size),
                ));
            }
            let timestamp = key
                .verify(&format!("{}{line}", stored.note))
                .map_err(|e| invalid("cosignature", e.to_string()))?;
            let timestamp = i64::try_from(timestamp).unwrap_or(i64::MAX);
            if timestamp > self.now() / 1000 + MAX_FUTURE_SECS {
                return Err(invalid(
                    "cosignature",
                    "the cosignature's time is ahead of this node's clock by more than 300 s: check the witness node's clock",
                ));
            }
            rec.decision = Decision::Allowed;
            rec.detail = format!("cosignature by node '{}' on the checkpoint of size {}", node.id, cp.size);
            Ok(StoredCosignature {
                size: cp.size as i64,
                witness: key.name,
                timestamp,
                line,
            })
        }
        .await;
        let (c, recorded) = self.finish(rec, checked).await?.into_parts();
        self.store
            .put_cosignature(&c, self.now())
            .await
            .map_err(|e| ExchangeError::store("witness", &e))?;
        let held = self
            .cosignatures_held(c.size as u64)
            .await
            .map_err(|e| ExchangeError::store("witness", &e))?;
        Ok(recorded.map(|()| held.len() as u32))
    }

    /// The cosignatures this node holds for its checkpoint of `size`, each
    /// verified when it arrived (for a subject access report that proves
    /// against a cosigned checkpoint, or anyone who needs them).
    pub(crate) async fn cosignatures_held(
        &self,
        size: u64,
    ) -> Result<Vec<StoredCosignature>, crate::store::StoreError> {
        self.store
            .cosignatures(i64::try_from(size).unwrap_or(i64::MAX))
            .await
    }

    /// A privacy officer's acknowledgement of witness alarm `id` (its
    /// evidence stays): recorded with `note` (one line, at most 512
    /// characters, what was done; refused if it holds a V-number or BSN
    /// shape, `validate::free_line`), kept with the alarm; the alarm's peer
    /// is witnessed again, and once every alarm is acknowledged the node's
    /// health (`sluis.witness`) is SERVING again. Returns the alarm and how
    /// many stay unacknowledged. Errors: `Forbidden` (not an officer),
    /// `Invalid` (`alarm_id`, `note`), `NotFound` (no such alarm),
    /// `FailedPrecondition` (acknowledged before, naming by whom and when),
    /// `AuditUnavailable`, `DatabaseUnavailable`.
    pub(crate) async fn acknowledge_witness_alarm(
        &self,
        ctx: &RequestCtx,
        id: u64,
        note: String,
    ) -> Result<Recorded<(WitnessAlarm, usize)>, ExchangeError> {
        let mut rec = self.record(ctx, "AcknowledgeWitnessAlarm");
        let store = |e: crate::store::StoreError| ExchangeError::store("witness", &e);
        let checked = async {
            self.officer(ctx)?;
            if id == 0 {
                return Err(invalid("alarm_id", "alarm_id: the alarm's number, as `sluis audit witness-alarms` shows it"));
            }
            if note.trim().is_empty() {
                return Err(invalid("note", "note: say in one line what was done about the alarm (no names, V-numbers or BSNs)"));
            }
            super::validate::free_line("note", &note, 512, &[])?;
            let alarms = self.store.witness_alarms().await.map_err(store)?;
            let alarm = alarms
                .into_iter()
                .find(|a| u64::try_from(a.id).ok() == Some(id))
                .ok_or_else(|| {
                    ExchangeError::not_found(
                        super::Resource::WitnessAlarm,
                        Some(&id.to_string()),
                        "no witness alarm with this alarm_id on this node: `sluis audit witness-alarms` lists them",
                    )
                })?;
            if let Some(k) = &alarm.acknowledged {
                return Err(ExchangeError::FailedPrecondition(format!(
                    "witness alarm {id} was acknowledged by '{}' at {} (record {})",
                    k.by,
                    crate::model::clock::rfc3339(k.at),
                    k.request_id
                )));
            }
            rec.decision = Decision::Allowed;
            rec.detail = format!(
                "witness alarm {id} (node '{}', {}) acknowledged: {note}",
                alarm.node, alarm.kind
            );
            Ok(alarm)
        }
        .await;
        let (mut alarm, recorded) = self.finish(rec.clone(), checked).await?.into_parts();
        let ack = crate::store::witness::AlarmAck {
            by: rec.caller.clone(),
            note,
            request_id: ctx.request_id.clone(),
            at: rec.at,
        };
        match self.store.put_alarm_ack(alarm.id, &ack).await {
            Ok(true) => {}
            // Another officer's acknowledgement came in between.
            Ok(false) => {
                return Err(ExchangeError::FailedPrecondition(format!(
                    "witness alarm {id} was acknowledged meanwhile"
                )));
            }
            Err(e) => return Err(self.failed_after_record(rec, store(e)).await),
        }
        alarm.acknowledged = Some(ack);
        let open = self
            .store
            .witness_alarms()
            .await
            .map_err(store)?
            .iter()
            .filter(|a| a.open())
            .count();
        if open == 0
            && let Some(f) = &self.federation
        {
            f.settle_alarms();
        }
        tracing::warn!(alarm = id, peer = %alarm.node, open, "a witness alarm was acknowledged");
        Ok(recorded.map(|()| (alarm, open)))
    }

    /// One witnessing step on peer `peer`: `fetch(old_size)` gets its
    /// latest signed checkpoint and the consistency proof from the size this
    /// node cosigned last; the checkpoint must verify under the directory's
    /// `log-key` for the peer and carry its origin; then it is judged
    /// against the last one ([`judge`]). An extension is kept and cosigned
    /// and `send(checkpoint, cosignature)` hands the cosignature back; a
    /// fork or rollback keeps both signed checkpoints, logs, counts, and
    /// marks the node's health, and the peer is not witnessed again while
    /// that alarm is kept. A fetch or send that fails changes nothing
    /// (tried again next round).
    pub(crate) async fn witness_peer(
        &self,
        peer: &DirectoryNode,
        fetch: impl AsyncFnOnce(u64) -> Result<(String, Vec<Vec<u8>>), String>,
        send: impl AsyncFnOnce(String, String) -> Result<u32, String>,
    ) -> WitnessOutcome {
        let Some(federation) = self.federation.as_ref() else {
            return WitnessOutcome::Failed("this node is in no federation".into());
        };
        let Some(signer) = federation.witness() else {
            return WitnessOutcome::Failed("this node has no witness key".into());
        };
        // A peer with an alarm kept is not witnessed again until an
        // operator acknowledged it (`acknowledge_witness_alarm`): one
        // alarm, one log line, one count, whatever it signs next.
        match self.store.witness_alarms().await {
            Ok(alarms) => {
                if let Some(a) = alarms.iter().find(|a| a.node == peer.id && a.open()) {
                    let kind = if a.kind == AlarmKind::Rollback.as_str() {
                        AlarmKind::Rollback
                    } else {
                        AlarmKind::Fork
                    };
                    return WitnessOutcome::Alarm {
                        kind,
                        detail: format!("kept since alarm {}: {}", a.id, a.detail),
                    };
                }
            }
            Err(e) => return WitnessOutcome::Failed(format!("reading the alarms: {e}")),
        }
        let seen = match self.store.witnessed(&peer.id).await {
            Ok(s) => s,
            Err(e) => return WitnessOutcome::Failed(format!("reading what was witnessed: {e}")),
        };
        let seen_cp = match seen.as_ref().map(|s| Checkpoint::parse(body_of(&s.note))) {
            None => None,
            Some(Ok(cp)) => Some(cp),
            Some(Err(e)) => return WitnessOutcome::Failed(format!("the kept checkpoint: {e}")),
        };
        let old_size = seen_cp.as_ref().map_or(0, |c| c.size);
        let (note, proof) = match fetch(old_size).await {
            Ok(got) => got,
            Err(e) => return WitnessOutcome::Failed(e),
        };
        let offered = match Checkpoint::verify(&note, &peer.log_key) {
            Ok(cp) if cp.origin == checkpoint::origin(&peer.id) => cp,
            Ok(cp) => {
                return WitnessOutcome::Failed(format!(
                    "the checkpoint's origin is '{}', not the node's",
                    cp.origin
                ));
            }
            Err(e) => {
                return WitnessOutcome::Failed(format!(
                    "the checkpoint does not verify under the directory's log-key for the node: {e}"
                ));
            }
        };
        let proof: Option<Vec<Hash>> = proof.into_iter().map(|h| h.try_into().ok()).collect();
        let Some(proof) = proof else {
            return WitnessOutcome::Failed("a proof hash is not 32 bytes".into());
        };
        if let Judgement::Alarm { kind, detail } = judge(seen_cp.as_ref(), &offered, &proof) {
            let alarm = WitnessAlarm {
                id: 0,
                node: peer.id.clone(),
                kind: kind.as_str().into(),
                seen_note: seen.map(|s| s.note).unwrap_or_default(),
                offered_note: note,
                detail: detail.clone(),
                at: self.now(),
                acknowledged: None,
            };
            federation.raise_alarm();
            crate::telemetry::metrics::witness_alarm(&peer.id, kind.as_str());
            tracing::error!(
                peer = %peer.id,
                kind = kind.as_str(),
                %detail,
                "WITNESS ALARM: node '{}' {}; both signed checkpoints are kept (`sluis audit witness-alarms`); this node no longer cosigns it",
                peer.id,
                match kind {
                    AlarmKind::Fork => "signed a checkpoint that does not extend one it signed before (a fork)",
                    AlarmKind::Rollback => "signed a checkpoint smaller than one it signed before (its log went back)",
                }
            );
            if let Err(e) = self.store.put_witness_alarm(&alarm).await {
                tracing::error!(peer = %peer.id, error = %e, "the witness alarm's evidence could not be kept");
            }
            return WitnessOutcome::Alarm { kind, detail };
        }
        if offered.size > old_size || seen.is_none() {
            let kept = Witnessed {
                node: peer.id.clone(),
                size: offered.size as i64,
                note: note.clone(),
                at: self.now(),
            };
            if let Err(e) = self.store.put_witnessed(&kept).await {
                return WitnessOutcome::Failed(format!("keeping the witnessed checkpoint: {e}"));
            }
        }
        let line = match signer.cosign(&offered, (self.now() / 1000).max(0) as u64) {
            Ok(l) => l,
            Err(e) => return WitnessOutcome::Failed(format!("cosigning: {e}")),
        };
        match send(note, line).await {
            Ok(held) => {
                crate::telemetry::metrics::witness_cosigned(&peer.id);
                WitnessOutcome::Cosigned {
                    size: offered.size,
                    cosignatures: held,
                }
            }
            Err(e) => WitnessOutcome::Failed(e),
        }
    }
}
