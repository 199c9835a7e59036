//! Result rows of either driver, mapped to the domain types once, and the
//! few column encodings both backends share (comma-joined lists, recipient
//! kinds).
//!
//! The queries that feed these mappers are in `sql`; column positions here
//! follow their SELECT lists.

use crate::store::witness::{AlarmAck, StoredCosignature, WitnessAlarm, Witnessed};
use std::str::FromStr;

use crate::model::Category;
use crate::model::Role;
use crate::model::consent::{Consent, ConsentEvent, EventKind, Recipient};
use crate::store::{
    CaseMeta, CaseWithData, LogRow, ReleaseKey, RequestKey, SealedCase, StoreError,
    StoredCheckpoint, StoredRelease,
};

/// A result row, read by column position. Each backend implements it for
/// its driver's row type; a value of another type than asked for is an
/// error, never a panic.
pub(super) trait Columns {
    fn int(&self, i: usize) -> Result<i64, StoreError>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError>;
    fn text(&self, i: usize) -> Result<String, StoreError>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError>;
    fn blob(&self, i: usize) -> Result<Vec<u8>, StoreError>;
    fn opt_blob(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError>;
}

/// Implements [`Columns`] for a driver's row type whose method `$get`
/// reads a column by position into any type the driver decodes.
macro_rules! columns_by {
    ($row:ty, $get:ident) => {
        impl $crate::store::rows::Columns for $row {
            fn int(&self, i: usize) -> Result<i64, $crate::store::StoreError> {
                Ok(self.$get(i)?)
            }
            fn opt_int(&self, i: usize) -> Result<Option<i64>, $crate::store::StoreError> {
                Ok(self.$get(i)?)
            }
            fn text(&self, i: usize) -> Result<String, $crate::store::StoreError> {
                Ok(self.$get(i)?)
            }
            fn opt_text(&self, i: usize) -> Result<Option<String>, $crate::store::StoreError> {
                Ok(self.$get(i)?)
            }
            fn blob(&self, i: usize) -> Result<Vec<u8>, $crate::store::StoreError> {
                Ok(self.$get(i)?)
            }
            fn opt_blob(&self, i: usize) -> Result<Option<Vec<u8>>, $crate::store::StoreError> {
                Ok(self.$get(i)?)
            }
        }
    };
}
pub(super) use columns_by;

/// `id, owner, subject_ref, version, updated_at, subject_id, case_key,
/// erased_at` (`sql::case_columns`).
pub(super) fn case_meta(r: &dyn Columns) -> Result<CaseMeta, StoreError> {
    Ok(CaseMeta {
        id: r.text(0)?,
        owner: r.text(1)?,
        subject_ref: r.blob(2)?,
        version: r.int(3)?,
        updated_at: r.int(4)?,
        subject_id: r.opt_blob(5)?,
        case_key: r.opt_blob(6)?,
        erased_at: r.opt_int(7)?,
    })
}

/// The number of columns [`case_meta`] reads.
pub(super) const CASE_COLUMNS: usize = 8;

/// `sql::REQUEST_KEY`'s columns.
pub(super) fn request_key(r: &dyn Columns) -> Result<RequestKey, StoreError> {
    Ok(RequestKey {
        caller: r.text(0)?,
        request_id: r.text(1)?,
        method: r.text(2)?,
        digest: r.text(3)?,
        resource_id: r.text(4)?,
        seq: r.int(5)?,
        record_id: r.text(6)?,
        at: r.int(7)?,
    })
}

/// `table_name, quarter, breakdown, scope, computed_at, body, sha256`.
pub(super) fn release(r: &dyn Columns) -> Result<StoredRelease, StoreError> {
    Ok(StoredRelease {
        key: ReleaseKey {
            table: r.text(0)?,
            quarter: r.text(1)?,
            breakdown: r.text(2)?,
            scope: r.text(3)?,
        },
        computed_at: r.int(4)?,
        body: r.text(5)?,
        sha256: r.text(6)?,
    })
}

/// `seq, request_id, at, caller, role, method, case_id, subject, purpose,
/// decision, record`.
pub(super) fn log_row(r: &dyn Columns) -> Result<LogRow, StoreError> {
    Ok(LogRow {
        seq: r.int(0)?,
        request_id: r.text(1)?,
        at: r.int(2)?,
        caller: r.text(3)?,
        role: r.text(4)?,
        method: r.text(5)?,
        case_id: r.opt_text(6)?,
        subject: r.opt_text(7)?,
        purpose: r.opt_text(8)?,
        decision: r.text(9)?,
        record: r.blob(10)?,
        subjects: Vec::new(),
        emergency: false,
        closes: None,
    })
}

/// `size, root, at, note`.
pub(super) fn checkpoint(r: &dyn Columns) -> Result<StoredCheckpoint, StoreError> {
    Ok(StoredCheckpoint {
        size: r.int(0)?,
        root: r.blob(1)?,
        at: r.int(2)?,
        note: r.text(3)?,
    })
}

/// `seq, record`.
pub(super) fn leaf(r: &dyn Columns) -> Result<(i64, Vec<u8>), StoreError> {
    Ok((r.int(0)?, r.blob(1)?))
}

/// Two text columns.
pub(super) fn text_pair(r: &dyn Columns) -> Result<(String, String), StoreError> {
    Ok((r.text(0)?, r.text(1)?))
}

pub(super) fn text(r: &dyn Columns) -> Result<String, StoreError> {
    r.text(0)
}

pub(super) fn int(r: &dyn Columns) -> Result<i64, StoreError> {
    r.int(0)
}

pub(super) fn opt_int(r: &dyn Columns) -> Result<Option<i64>, StoreError> {
    r.opt_int(0)
}

pub(super) fn category(code: i64) -> Result<Category, StoreError> {
    i32::try_from(code)
        .ok()
        .and_then(Category::from_code)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown category code {code}")))
}

/// Folds the rows of `sql::CASE_WITH_DATA` (the case's columns as in
/// [`case_meta`], then `category, sealed`, NULL for a case without data).
#[derive(Default)]
pub(super) struct CaseFold(Option<CaseWithData>);

impl CaseFold {
    pub(super) fn add(&mut self, r: &dyn Columns) -> Result<(), StoreError> {
        let (_, data) = match &mut self.0 {
            Some(c) => c,
            None => self.0.insert((case_meta(r)?, Vec::new())),
        };
        if let Some(code) = r.opt_int(CASE_COLUMNS)? {
            data.push((category(code)?, r.blob(CASE_COLUMNS + 1)?));
        }
        Ok(())
    }

    pub(super) fn finish(self) -> Option<CaseWithData> {
        self.0
    }
}

/// Folds the rows of `sql::STATISTICS_PAGE` (`id, owner, created_at,
/// category, sealed, case_key`) into one entry per case, in order.
#[derive(Default)]
pub(super) struct StatisticsFold(Vec<SealedCase>);

impl StatisticsFold {
    pub(super) fn add(&mut self, r: &dyn Columns) -> Result<(), StoreError> {
        let id = r.text(0)?;
        if self.0.last().is_none_or(|c| c.id != id) {
            self.0.push(SealedCase {
                id,
                owner: r.text(1)?,
                registered: r.int(2)?,
                case_key: r.opt_blob(5)?,
                sealed: Vec::new(),
            });
        }
        if let (Some(code), Some(case)) = (r.opt_int(3)?, self.0.last_mut()) {
            case.sealed.push((category(code)?, r.blob(4)?));
        }
        Ok(())
    }

    pub(super) fn finish(self) -> Vec<SealedCase> {
        self.0
    }
}

/// Folds the rows of `sql::CONSENTS_BY_CASE` / `sql::CONSENT_BY_ID`: one
/// per (consent, recipient, event), consents in order, recipients by kind
/// and value, events by sequence. Every consent has at least one recipient
/// and one event, written with it; the query's LEFT JOINs keep a damaged
/// one visible instead of dropping it.
#[derive(Default)]
pub(super) struct ConsentFold {
    out: Vec<Consent>,
    /// Event sequence numbers of the last consent, to skip the repeats the
    /// join makes (one per recipient).
    event_seqs: Vec<i64>,
}

impl ConsentFold {
    pub(super) fn add(&mut self, r: &dyn Columns) -> Result<(), StoreError> {
        let id = r.text(0)?;
        if self.out.last().is_none_or(|c| c.id != id) {
            let categories = split(&r.text(3)?)
                .map(Category::from_str)
                .collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::Corrupt)?;
            self.event_seqs.clear();
            self.out.push(Consent {
                id,
                case_id: r.text(1)?,
                recorded_by: r.text(2)?,
                recipients: Vec::new(),
                categories,
                purposes: split(&r.text(4)?).map(String::from).collect(),
                valid_from: r.int(5)?,
                valid_until: r.opt_int(6)?,
                evidence_ref: r.text(7)?,
                created_at: r.int(8)?,
                events: Vec::new(),
            });
        }
        let Some(c) = self.out.last_mut() else {
            return Ok(());
        };
        if let (Some(kind), Some(value)) = (r.opt_text(9)?, r.opt_text(10)?) {
            let recipient = match kind.as_str() {
                "participant" => Recipient::Participant(value),
                _ => value
                    .parse::<Role>()
                    .map(Recipient::Role)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            };
            if !c.recipients.contains(&recipient) {
                c.recipients.push(recipient);
            }
        }
        if let Some(seq) = r.opt_int(11)?
            && !self.event_seqs.contains(&seq)
        {
            self.event_seqs.push(seq);
            c.events.push(ConsentEvent {
                kind: if r.text(12)? == "withdrawn" {
                    EventKind::Withdrawn
                } else {
                    EventKind::Given
                },
                at: r.int(13)?,
                by: r.text(14)?,
                note: r.text(15)?,
            });
        }
        Ok(())
    }

    /// The consents, each's recipients in their one order (not the
    /// database's collation's).
    pub(super) fn finish(mut self) -> Vec<Consent> {
        for c in &mut self.out {
            c.recipients
                .sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        }
        self.out
    }
}

/// The `consent_recipients` columns (kind, value) of a recipient.
pub(super) fn recipient_columns(r: &Recipient) -> (&'static str, &str) {
    match r {
        Recipient::Participant(p) => ("participant", p.as_str()),
        Recipient::Role(role) => ("role", role.as_str()),
    }
}

/// A consent's categories as stored: names, comma-separated.
pub(super) fn categories_column(c: &Consent) -> String {
    join(c.categories.iter().map(|c| c.as_str()))
}

/// A consent's purposes as stored, comma-separated.
pub(super) fn purposes_column(c: &Consent) -> String {
    join(c.purposes.iter().map(String::as_str))
}

fn join<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(",")
}

fn split(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').filter(|p| !p.is_empty())
}

pub(super) fn cosignature(r: &dyn Columns) -> Result<StoredCosignature, StoreError> {
    Ok(StoredCosignature {
        size: r.int(0)?,
        witness: r.text(1)?,
        timestamp: r.int(2)?,
        line: r.text(3)?,
    })
}

pub(super) fn witnessed(r: &dyn Columns) -> Result<Witnessed, StoreError> {
    Ok(Witnessed {
        node: r.text(0)?,
        size: r.int(1)?,
        note: r.text(2)?,
        at: r.int(3)?,
    })
}

pub(super) fn witness_alarm(r: &dyn Columns) -> Result<WitnessAlarm, StoreError> {
    Ok(WitnessAlarm {
        id: r.int(0)?,
        node: r.text(1)?,
        kind: r.text(2)?,
        seen_note: r.text(3)?,
        offered_note: r.text(4)?,
        detail: r.text(5)?,
        at: r.int(6)?,
        acknowledged: match r.opt_text(7)? {
            None => None,
            Some(by) => Some(AlarmAck {
                by,
                note: r.text(8)?,
                request_id: r.text(9)?,
                at: r.int(10)?,
            }),
        },
    })
}
