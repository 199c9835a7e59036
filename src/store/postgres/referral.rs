//! `store::referral` on PostgreSQL: each write one transaction.

use super::{PgStore, put_case_data, put_consent, put_subject_index};
use crate::model::consent::Millis;
use crate::store::referral::{ReferredCase, ReferredOut};
use crate::store::rows;
use crate::store::{StoreError, sql};

impl PgStore {
    pub(in crate::store) async fn referral_rows(
        &self,
        case_id: &str,
    ) -> Result<(Millis, Vec<(String, String)>), StoreError> {
        let created = self
            .first(
                sqlx::query(sql::CASE_CREATED).bind(case_id.to_owned()),
                |r| r.int(0),
            )
            .await?
            .ok_or(StoreError::BadAnswer("the case vanished while it was read"))?;
        let issued = self
            .all(
                sqlx::query(sql::PSEUDONYMS_OF_CASE).bind(case_id.to_owned()),
                |r| Ok((r.text(0)?, r.text(1)?)),
            )
            .await?;
        Ok((created, issued))
    }

    pub(in crate::store) async fn accept_referred(
        &self,
        case: ReferredCase,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(sql::INSERT_REFERRED_CASE)
            .bind(&case.id)
            .bind(&case.owner)
            .bind(&case.subject_ref)
            .bind(case.version)
            .bind(case.created_at)
            .bind(case.updated_at)
            .bind(&case.subject_id)
            .bind(&case.case_key.0)
            .bind(case.case_key.1)
            .execute(&mut *tx)
            .await?;
        put_case_data(&mut tx, &case.id, &case.sealed).await?;
        put_subject_index(&mut tx, &case.id, &case.subject_index).await?;
        for consent in &case.consents {
            put_consent(&mut tx, consent).await?;
        }
        for (recipient, pseudonym) in &case.pseudonyms {
            sqlx::query(sql::INSERT_REFERRED_PSEUDONYM)
                .bind(recipient)
                .bind(pseudonym)
                .bind(&case.id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(sql::FORGET_LOCATED)
                .bind(recipient)
                .bind(pseudonym)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(sql::FORGET_REFERRED)
            .bind(&case.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(in crate::store) async fn refer_out(&self, out: ReferredOut) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(sql::INSERT_REFERRED)
            .bind(&out.case_id)
            .bind(&out.node)
            .bind(&out.request_id)
            .bind(out.at)
            .execute(&mut *tx)
            .await?;
        for (recipient, pseudonym) in &out.pseudonyms {
            sqlx::query(sql::PUT_LOCATED)
                .bind(recipient)
                .bind(pseudonym)
                .bind(&out.node)
                .execute(&mut *tx)
                .await?;
        }
        for consent_id in &out.consent_ids {
            sqlx::query(sql::INSERT_REFERRED_CONSENT)
                .bind(consent_id)
                .bind(&out.case_id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(sql::KEEP_REFERRED_SUBJECTS)
            .bind(&out.case_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::KEEP_REFERRED_PSEUDONYMS)
            .bind(&out.case_id)
            .execute(&mut *tx)
            .await?;
        for statement in sql::DELETE_CASE_ROWS {
            sqlx::query(statement)
                .bind(&out.case_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(in crate::store) async fn referred_to(
        &self,
        case_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let q = sqlx::query(sql::REFERRED_TO).bind(case_id.to_owned());
        self.first(q, rows::text).await
    }

    pub(in crate::store) async fn consent_referred_to(
        &self,
        consent_id: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        let q = sqlx::query(sql::CONSENT_REFERRED_TO).bind(consent_id.to_owned());
        self.first(q, rows::text_pair).await
    }

    pub(in crate::store) async fn referred_by_subject(
        &self,
        kind: &str,
        digest: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let q = sqlx::query(sql::REFERRED_BY_SUBJECT)
            .bind(kind.to_owned())
            .bind(digest.to_owned());
        self.all(q, rows::text_pair).await
    }

    pub(in crate::store) async fn referred_pseudonym_case(
        &self,
        recipient: &str,
        pseudonym: &str,
    ) -> Result<Option<String>, StoreError> {
        let q = sqlx::query(sql::REFERRED_PSEUDONYM_CASE)
            .bind(recipient.to_owned())
            .bind(pseudonym.to_owned());
        self.first(q, rows::text).await
    }

    pub(in crate::store) async fn located(
        &self,
        recipient: &str,
        pseudonym: &str,
    ) -> Result<Option<String>, StoreError> {
        let q = sqlx::query(sql::LOCATE_PSEUDONYM)
            .bind(recipient.to_owned())
            .bind(pseudonym.to_owned());
        self.first(q, rows::text).await
    }

    pub(in crate::store) async fn directory_serial_seen(
        &self,
        serial: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(sql::RAISE_DIRECTORY_SERIAL)
            .bind(serial)
            .execute(&mut *tx)
            .await?;
        let highest: i64 = sqlx::query_scalar(sql::DIRECTORY_SERIAL)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(highest)
    }

    pub(in crate::store) async fn claim_referral(
        &self,
        case_id: &str,
        request_id: &str,
        at: Millis,
        expires_at: Millis,
    ) -> Result<bool, StoreError> {
        let taken = sqlx::query(sql::CLAIM_REFERRAL)
            .bind(case_id)
            .bind(request_id)
            .bind(at)
            .bind(expires_at)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(taken == 1)
    }

    pub(in crate::store) async fn release_referral(
        &self,
        case_id: &str,
        request_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(sql::RELEASE_REFERRAL)
            .bind(case_id)
            .bind(request_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(in crate::store) async fn remember_located(
        &self,
        recipient: &str,
        pseudonym: &str,
        node: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(sql::PUT_LOCATED)
            .bind(recipient)
            .bind(pseudonym)
            .bind(node)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
