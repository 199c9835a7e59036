//! `store::witness` on SQLite: each write one statement on the writer thread.

use rusqlite::params;

use super::{SqliteStore, all, first};
use crate::model::consent::Millis;
use crate::store::rows::{cosignature, witness_alarm, witnessed};
use crate::store::witness::{AlarmAck, StoredCosignature, WitnessAlarm, Witnessed};
use crate::store::{StoreError, sql};

impl SqliteStore {
    pub(in crate::store) async fn put_cosignature(
        &self,
        c: StoredCosignature,
        at: Millis,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.prepare_cached(sql::PUT_COSIGNATURE)?.execute(params![
                c.size,
                c.witness,
                c.timestamp,
                c.line,
                at
            ])?;
            Ok(())
        })
        .await
    }

    pub(in crate::store) async fn cosignatures(
        &self,
        size: i64,
    ) -> Result<Vec<StoredCosignature>, StoreError> {
        self.read(move |c| all(c, sql::COSIGNATURES, [size], cosignature))
            .await
    }

    pub(in crate::store) async fn cosigned_sizes(&self) -> Result<Vec<i64>, StoreError> {
        self.read(move |c| all(c, sql::COSIGNED_SIZES, [], |r| r.int(0)))
            .await
    }

    pub(in crate::store) async fn witnessed(
        &self,
        node: &str,
    ) -> Result<Option<Witnessed>, StoreError> {
        let node = node.to_owned();
        self.read(move |c| first(c, sql::WITNESSED, [&node], witnessed))
            .await
    }

    pub(in crate::store) async fn put_witnessed(&self, w: Witnessed) -> Result<(), StoreError> {
        self.write(move |c| {
            c.prepare_cached(sql::PUT_WITNESSED)?
                .execute(params![w.node, w.size, w.note, w.at])?;
            Ok(())
        })
        .await
    }

    pub(in crate::store) async fn put_witness_alarm(
        &self,
        a: WitnessAlarm,
    ) -> Result<bool, StoreError> {
        self.write(move |c| {
            let n = c.prepare_cached(sql::PUT_WITNESS_ALARM)?.execute(params![
                a.node,
                a.kind,
                a.seen_note,
                a.offered_note,
                a.detail,
                a.at
            ])?;
            Ok(n > 0)
        })
        .await
    }

    pub(in crate::store) async fn put_alarm_ack(
        &self,
        id: i64,
        k: AlarmAck,
    ) -> Result<bool, StoreError> {
        self.write(move |c| {
            let n = c.prepare_cached(sql::PUT_ALARM_ACK)?.execute(params![
                id,
                k.by,
                k.note,
                k.request_id,
                k.at
            ])?;
            Ok(n > 0)
        })
        .await
    }

    pub(in crate::store) async fn witness_alarms(&self) -> Result<Vec<WitnessAlarm>, StoreError> {
        self.read(move |c| all(c, sql::WITNESS_ALARMS, [], witness_alarm))
            .await
    }
}
