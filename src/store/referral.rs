//! What a referral moves and what the nodes keep of it (ARCHITECTURE.md,
//! "Federation"): a case read whole to be sent, a referred case stored
//! whole on arrival, the pointer the old node keeps in place of the case,
//! and which node a pseudonym a participant received belongs to.
//!
//! Each write is one transaction, so a case is never half here: the old
//! node's pointer and the deletion of every row of the case commit
//! together, and so do the new node's rows of it.

use crate::model::Category;
use crate::model::consent::{Consent, Millis};
use crate::store::{Backend, CaseMeta, Store, StoreError};

/// A case as it leaves: its row, its sealed data, consents (with their
/// recipients and events) and the pseudonyms issued for it, as
/// (recipient, pseudonym).
pub(crate) struct CaseExport {
    pub(crate) meta: CaseMeta,
    pub(crate) created_at: Millis,
    pub(crate) sealed: Vec<(Category, Vec<u8>)>,
    pub(crate) consents: Vec<Consent>,
    pub(crate) pseudonyms: Vec<(String, String)>,
}

/// A case as it arrives, sealed under the receiving node's key, with the
/// subject index recomputed under its secret.
pub(crate) struct ReferredCase {
    pub(crate) id: String,
    pub(crate) owner: String,
    pub(crate) subject_ref: Vec<u8>,
    pub(crate) version: i64,
    pub(crate) created_at: Millis,
    pub(crate) updated_at: Millis,
    pub(crate) subject_id: Option<Vec<u8>>,
    /// The case's own key as this node wraps it, and the data key version
    /// wrapping it (the sending node's key never travels).
    pub(crate) case_key: (Vec<u8>, i64),
    pub(crate) sealed: Vec<(Category, Vec<u8>)>,
    pub(crate) subject_index: Vec<(String, String)>,
    pub(crate) consents: Vec<Consent>,
    pub(crate) pseudonyms: Vec<(String, String)>,
}

/// A case that left: where it went, under which request, and the
/// pseudonyms issued for it (kept as pointers to that node).
pub(crate) struct ReferredOut {
    pub(crate) case_id: String,
    pub(crate) node: String,
    pub(crate) request_id: String,
    pub(crate) at: Millis,
    pub(crate) pseudonyms: Vec<(String, String)>,
    /// The ids of the case's consents, kept pointing at the case.
    pub(crate) consent_ids: Vec<String>,
}

impl Store {
    /// The whole of a case, to refer it; `None` if this node does not hold
    /// it.
    pub(crate) async fn case_for_referral(
        &self,
        case_id: &str,
    ) -> Result<Option<CaseExport>, StoreError> {
        let Some((meta, sealed)) = self.case_with_data(case_id).await? else {
            return Ok(None);
        };
        let consents = self.consents_for_case(case_id).await?;
        let (created_at, pseudonyms) =
            on_store!(&self.backend, b => b.referral_rows(case_id).await)?;
        Ok(Some(CaseExport {
            meta,
            created_at,
            sealed,
            consents,
            pseudonyms,
        }))
    }

    /// Stores a case referred to this node, in one transaction; pointers
    /// this node kept to it (it left before, or its pseudonyms were
    /// located elsewhere) are dropped. Errors: a case with that id is
    /// here already (a constraint), or the store's.
    pub(crate) async fn accept_referred(&self, case: ReferredCase) -> Result<(), StoreError> {
        on_store!(&self.backend, b => b.accept_referred(case).await)
    }

    /// Writes the pointer of a case that left, keeps its pseudonyms as
    /// located at that node, and deletes every row of the case, in one
    /// transaction.
    pub(crate) async fn refer_out(&self, out: ReferredOut) -> Result<(), StoreError> {
        on_store!(&self.backend, b => b.refer_out(out).await)
    }

    /// The node a case was referred to, if it left this node.
    pub(crate) async fn referred_to(&self, case_id: &str) -> Result<Option<String>, StoreError> {
        on_store!(&self.backend, b => b.referred_to(case_id).await)
    }

    /// The cases this node referred away whose subject has the keyed
    /// lookup (`kind`, `digest`) (as `subject_index` held it), each with
    /// the node it went to.
    pub(crate) async fn referred_by_subject(
        &self,
        kind: &str,
        digest: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        on_store!(&self.backend, b => b.referred_by_subject(kind, digest).await)
    }

    /// The case a pseudonym this node issued to `recipient` was of, if
    /// that case left this node.
    pub(crate) async fn referred_pseudonym_case(
        &self,
        recipient: &str,
        pseudonym: &str,
    ) -> Result<Option<String>, StoreError> {
        on_store!(&self.backend, b => b.referred_pseudonym_case(recipient, pseudonym).await)
    }

    /// The case a consent was of and the node that case was referred to,
    /// if it left this node.
    pub(crate) async fn consent_referred_to(
        &self,
        consent_id: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        on_store!(&self.backend, b => b.consent_referred_to(consent_id).await)
    }

    /// The node that holds the case of a pseudonym `recipient` received
    /// through this node from another node (or whose case left this node).
    pub(crate) async fn located(
        &self,
        recipient: &str,
        pseudonym: &str,
    ) -> Result<Option<String>, StoreError> {
        on_store!(&self.backend, b => b.located(recipient, pseudonym).await)
    }

    /// Records that this node runs with federation directory `serial` and
    /// answers the highest serial it has ever run with (this one or a
    /// higher one): a caller refuses a directory below it.
    pub(crate) async fn directory_serial_seen(&self, serial: u64) -> Result<u64, StoreError> {
        let serial = i64::try_from(serial).unwrap_or(i64::MAX);
        let highest = on_store!(&self.backend, b => b.directory_serial_seen(serial).await)?;
        Ok(u64::try_from(highest).unwrap_or(0))
    }

    /// Claims `case_id` for the referral `request_id` from `at` until
    /// `expires_at` (unix ms), in one statement on the shared database, so
    /// every process serving it sees the claim. `false`: another referral
    /// holds a live claim (a claim expired by `at` is taken over).
    pub(crate) async fn claim_referral(
        &self,
        case_id: &str,
        request_id: &str,
        at: Millis,
        expires_at: Millis,
    ) -> Result<bool, StoreError> {
        on_store!(&self.backend, b => b.claim_referral(case_id, request_id, at, expires_at).await)
    }

    /// Ends the claim `request_id` holds on `case_id`; a claim another
    /// referral took over after this one's expired is left alone.
    pub(crate) async fn release_referral(
        &self,
        case_id: &str,
        request_id: &str,
    ) -> Result<(), StoreError> {
        on_store!(&self.backend, b => b.release_referral(case_id, request_id).await)
    }

    /// Remembers that `node` issued `pseudonym` to `recipient`.
    pub(crate) async fn remember_located(
        &self,
        recipient: &str,
        pseudonym: &str,
        node: &str,
    ) -> Result<(), StoreError> {
        on_store!(&self.backend, b => b.remember_located(recipient, pseudonym, node).await)
    }
}
