//! `store::witness` on PostgreSQL: each write one statement.

use super::PgStore;
use crate::model::consent::Millis;
use crate::store::rows::{cosignature, witness_alarm, witnessed};
use crate::store::witness::{AlarmAck, StoredCosignature, WitnessAlarm, Witnessed};
use crate::store::{StoreError, sql};

impl PgStore {
    pub(in crate::store) async fn put_cosignature(
        &self,
        c: StoredCosignature,
        at: Millis,
    ) -> Result<(), StoreError> {
        sqlx::query(sql::PUT_COSIGNATURE)
            .bind(c.size)
            .bind(c.witness)
            .bind(c.timestamp)
            .bind(c.line)
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(in crate::store) async fn cosignatures(
        &self,
        size: i64,
    ) -> Result<Vec<StoredCosignature>, StoreError> {
        self.all(sqlx::query(sql::COSIGNATURES).bind(size), cosignature)
            .await
    }

    pub(in crate::store) async fn cosigned_sizes(&self) -> Result<Vec<i64>, StoreError> {
        self.all(sqlx::query(sql::COSIGNED_SIZES), |r| r.int(0))
            .await
    }

    pub(in crate::store) async fn witnessed(
        &self,
        node: &str,
    ) -> Result<Option<Witnessed>, StoreError> {
        self.first(sqlx::query(sql::WITNESSED).bind(node.to_owned()), witnessed)
            .await
    }

    pub(in crate::store) async fn put_witnessed(&self, w: Witnessed) -> Result<(), StoreError> {
        sqlx::query(sql::PUT_WITNESSED)
            .bind(w.node)
            .bind(w.size)
            .bind(w.note)
            .bind(w.at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(in crate::store) async fn put_witness_alarm(
        &self,
        a: WitnessAlarm,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::PUT_WITNESS_ALARM)
            .bind(a.node)
            .bind(a.kind)
            .bind(a.seen_note)
            .bind(a.offered_note)
            .bind(a.detail)
            .bind(a.at)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub(in crate::store) async fn put_alarm_ack(
        &self,
        id: i64,
        k: AlarmAck,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::PUT_ALARM_ACK)
            .bind(id)
            .bind(k.by)
            .bind(k.note)
            .bind(k.request_id)
            .bind(k.at)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub(in crate::store) async fn witness_alarms(&self) -> Result<Vec<WitnessAlarm>, StoreError> {
        self.all(sqlx::query(sql::WITNESS_ALARMS), witness_alarm)
            .await
    }
}
