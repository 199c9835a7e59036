//! `store::referral` on SQLite: each write one transaction on the writer
//! thread; the read cache forgets the case afterwards.

use rusqlite::params;

use super::{SqliteStore, all, first, write};
use crate::model::consent::Millis;
use crate::store::referral::{ReferredCase, ReferredOut};
use crate::store::rows;
use crate::store::{StoreError, sql};

impl SqliteStore {
    pub(in crate::store) async fn referral_rows(
        &self,
        case_id: &str,
    ) -> Result<(Millis, Vec<(String, String)>), StoreError> {
        let id = case_id.to_owned();
        self.read(move |c| {
            let created = first(c, sql::CASE_CREATED, [&id], |r| r.int(0))?
                .ok_or(StoreError::BadAnswer("the case vanished while it was read"))?;
            let issued = all(c, sql::PSEUDONYMS_OF_CASE, [&id], |r| {
                Ok((r.text(0)?, r.text(1)?))
            })?;
            Ok((created, issued))
        })
        .await
    }

    pub(in crate::store) async fn accept_referred(
        &self,
        case: ReferredCase,
    ) -> Result<(), StoreError> {
        let id = case.id.clone();
        let result = self
            .write(move |c| {
                let tx = write::begin(c)?;
                tx.prepare_cached(sql::INSERT_REFERRED_CASE)?
                    .execute(params![
                        case.id,
                        case.owner,
                        case.subject_ref,
                        case.version,
                        case.created_at,
                        case.updated_at,
                        case.subject_id,
                        case.case_key.0,
                        case.case_key.1
                    ])?;
                write::put_case_data(&tx, sql::INSERT_CASE_DATA, &case.id, &case.sealed)?;
                write::put_subject_index(&tx, &case.id, &case.subject_index)?;
                for consent in &case.consents {
                    write::put_consent(&tx, consent)?;
                }
                for (recipient, pseudonym) in &case.pseudonyms {
                    tx.prepare_cached(sql::INSERT_REFERRED_PSEUDONYM)?
                        .execute(params![recipient, pseudonym, case.id])?;
                    tx.prepare_cached(sql::FORGET_LOCATED)?
                        .execute(params![recipient, pseudonym])?;
                }
                tx.prepare_cached(sql::FORGET_REFERRED)?
                    .execute(params![case.id])?;
                tx.commit()?;
                Ok(())
            })
            .await;
        self.forget_case(&id);
        result
    }

    pub(in crate::store) async fn refer_out(&self, out: ReferredOut) -> Result<(), StoreError> {
        let case_id = out.case_id.clone();
        let result = self
            .write(move |c| {
                let tx = write::begin(c)?;
                tx.prepare_cached(sql::INSERT_REFERRED)?.execute(params![
                    out.case_id,
                    out.node,
                    out.request_id,
                    out.at
                ])?;
                for (recipient, pseudonym) in &out.pseudonyms {
                    tx.prepare_cached(sql::PUT_LOCATED)?
                        .execute(params![recipient, pseudonym, out.node])?;
                }
                for consent_id in &out.consent_ids {
                    tx.prepare_cached(sql::INSERT_REFERRED_CONSENT)?
                        .execute(params![consent_id, out.case_id])?;
                }
                tx.prepare_cached(sql::KEEP_REFERRED_SUBJECTS)?
                    .execute(params![out.case_id])?;
                tx.prepare_cached(sql::KEEP_REFERRED_PSEUDONYMS)?
                    .execute(params![out.case_id])?;
                for statement in sql::DELETE_CASE_ROWS {
                    tx.prepare_cached(statement)?
                        .execute(params![out.case_id])?;
                }
                tx.commit()?;
                Ok(())
            })
            .await;
        self.forget_case(&case_id);
        if let Some(cache) = &self.cache {
            cache.forget_all_consents();
        }
        result
    }

    pub(in crate::store) async fn referred_to(
        &self,
        case_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let id = [case_id.to_owned()];
        self.read(move |c| first(c, sql::REFERRED_TO, id, rows::text))
            .await
    }

    pub(in crate::store) async fn consent_referred_to(
        &self,
        consent_id: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        let id = [consent_id.to_owned()];
        self.read(move |c| first(c, sql::CONSENT_REFERRED_TO, id, rows::text_pair))
            .await
    }

    pub(in crate::store) async fn referred_by_subject(
        &self,
        kind: &str,
        digest: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let key = [kind.to_owned(), digest.to_owned()];
        self.read(move |c| all(c, sql::REFERRED_BY_SUBJECT, key, rows::text_pair))
            .await
    }

    pub(in crate::store) async fn referred_pseudonym_case(
        &self,
        recipient: &str,
        pseudonym: &str,
    ) -> Result<Option<String>, StoreError> {
        let key = [recipient.to_owned(), pseudonym.to_owned()];
        self.read(move |c| first(c, sql::REFERRED_PSEUDONYM_CASE, key, rows::text))
            .await
    }

    pub(in crate::store) async fn located(
        &self,
        recipient: &str,
        pseudonym: &str,
    ) -> Result<Option<String>, StoreError> {
        let key = [recipient.to_owned(), pseudonym.to_owned()];
        self.read(move |c| first(c, sql::LOCATE_PSEUDONYM, key, rows::text))
            .await
    }

    pub(in crate::store) async fn directory_serial_seen(
        &self,
        serial: i64,
    ) -> Result<i64, StoreError> {
        self.write(move |c| {
            let tx = write::begin(c)?;
            tx.prepare_cached(sql::RAISE_DIRECTORY_SERIAL)?
                .execute(params![serial])?;
            let highest: i64 = tx
                .prepare_cached(sql::DIRECTORY_SERIAL)?
                .query_row([], |r| r.get(0))?;
            tx.commit()?;
            Ok(highest)
        })
        .await
    }

    pub(in crate::store) async fn claim_referral(
        &self,
        case_id: &str,
        request_id: &str,
        at: Millis,
        expires_at: Millis,
    ) -> Result<bool, StoreError> {
        let key = (case_id.to_owned(), request_id.to_owned());
        self.write(move |c| {
            let taken = c
                .prepare_cached(sql::CLAIM_REFERRAL)?
                .execute(params![key.0, key.1, at, expires_at])?;
            Ok(taken == 1)
        })
        .await
    }

    pub(in crate::store) async fn release_referral(
        &self,
        case_id: &str,
        request_id: &str,
    ) -> Result<(), StoreError> {
        let key = [case_id.to_owned(), request_id.to_owned()];
        self.write(move |c| {
            c.prepare_cached(sql::RELEASE_REFERRAL)?.execute(key)?;
            Ok(())
        })
        .await
    }

    pub(in crate::store) async fn remember_located(
        &self,
        recipient: &str,
        pseudonym: &str,
        node: &str,
    ) -> Result<(), StoreError> {
        let row = [recipient.to_owned(), pseudonym.to_owned(), node.to_owned()];
        self.write(move |c| {
            c.prepare_cached(sql::PUT_LOCATED)?.execute(row)?;
            Ok(())
        })
        .await
    }
}
