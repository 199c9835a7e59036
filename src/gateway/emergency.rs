//! Emergency ("break-glass") accesses under the privacy officer's review.
//!
//! A read that released a category under an emergency rule of the policy
//! (`@break_glass`, with the request's written justification and the acting
//! employee; `release::plan`) is recorded like any other read, its record
//! naming the emergency basis per category (`tlog::CategoryBasis`). Its
//! append opens an alert (`Store::emergency_alerts`, stored in the same
//! transaction as the entry). The alert stays open until a privacy officer
//! closes it with a verdict and a note: that call is an access record of
//! its own (`tlog::Review`, naming the access and, as its subject, the
//! person whose data it was, so it appears in their access report), and
//! its append closes the alert, once — a second review of one access is
//! refused by the store's key, whatever races.

use crate::gateway::error::{ExchangeError, Resource};
use crate::gateway::exchange::{Exchange, RequestCtx};
use crate::gateway::validate::{self, Invalid};
use crate::store::{LogFilter, LogRow, StoreError};
use crate::tlog::{AccessRecord, Decision, MAX_JUSTIFICATION, Recorded, Review, Verdict};

/// An emergency access and, once closed, the review that closed it.
#[derive(Clone, Debug)]
pub(crate) struct Alert {
    pub(crate) access: LogRow,
    /// Whether an officer has closed it.
    pub(crate) closed: bool,
    /// The review's own entry, when it was read (a listing of open alerts
    /// reads none).
    pub(crate) review: Option<LogRow>,
}

/// Alerts one listing returns when the caller names no page size, and at
/// most (AIP-158).
const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 1000;

fn stored(e: StoreError) -> ExchangeError {
    ExchangeError::store("access log", &e)
}

/// The listing an alerts page token is sealed to.
fn alerts_listing(show_closed: bool) -> &'static str {
    if show_closed {
        "emergency-alerts/all"
    } else {
        "emergency-alerts/open"
    }
}

/// The answer to closing an alert that is closed: who closed it, when, and
/// the review's log position, so the officer can read that verdict.
fn closed_already(access: i64, review: &LogRow) -> ExchangeError {
    ExchangeError::FailedPrecondition(format!(
        "the alert of the emergency access #{access} is closed already: closed by {} at {} (the review #{}); read that review rather than closing it again",
        review.caller,
        crate::model::clock::rfc3339_ms(review.at),
        review.seq
    ))
}

impl Exchange {
    /// The alerts of emergency accesses from the page token on (a log
    /// position this node gave), open ones only unless `show_closed`; the
    /// next page's token, empty when done. Errors: `Forbidden` (not a
    /// privacy officer), `Invalid` (page size, token), `AuditUnavailable`,
    /// `Internal`.
    pub(crate) async fn list_emergency_alerts(
        &self,
        ctx: &RequestCtx,
        page_size: i32,
        page_token: &str,
        show_closed: bool,
    ) -> Result<Recorded<(Vec<Alert>, String)>, ExchangeError> {
        let mut rec = self.record(ctx, "ListEmergencyAlerts");
        let result = async {
            self.officer(ctx)?;
            let limit = validate::page_size(page_size, DEFAULT_PAGE, MAX_PAGE, "alerts")?;
            // The token is sealed to its caller and its listing (open
            // alerts, or all): AIP-158 wants the other fields the same
            // from page to page, and a position is no one's to forge.
            let caller = self.caller(ctx)?;
            let listing = alerts_listing(show_closed);
            let bad_token = || {
                ExchangeError::from(Invalid::new(
                    "page_token",
                    "page_token is not one this node gave you for this listing (the same show_closed as the request that returned it): pass the next_page_token of the previous answer, or none to start",
                ))
            };
            let start = match self.open_page_token(caller, listing, page_token, bad_token)? {
                p if p.is_empty() => 0,
                p => p.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(bad_token)?,
            };
            let mut rows = self
                .store
                .emergency_alerts(start, show_closed, limit + 1)
                .await
                .map_err(stored)?;
            let next = if rows.len() as i64 > limit {
                rows.truncate(limit as usize);
                match rows.last() {
                    Some(r) => self.seal_page_token(caller, listing, &(r.seq + 1).to_string())?,
                    None => String::new(),
                }
            } else {
                String::new()
            };
            let mut alerts = Vec::with_capacity(rows.len());
            for access in rows {
                let review = if show_closed {
                    self.store
                        .emergency_review(access.seq)
                        .await
                        .map_err(stored)?
                } else {
                    None
                };
                alerts.push(Alert {
                    closed: review.is_some(),
                    access,
                    review,
                });
            }
            // The entries handed out name their subjects: each of their
            // reports shows that an officer read them.
            rec.subjects = alerts
                .iter()
                .flat_map(|a| super::oversight::subjects_named(&a.access.record))
                .collect();
            rec.decision = Decision::Allowed;
            rec.detail = format!("{} emergency alerts from index {start}", alerts.len());
            Ok((alerts, next))
        }
        .await;
        self.finish(rec, result).await
    }

    /// Closes the alert of the emergency access `access_record_id` with the
    /// officer's verdict and note; the call's record holds them. Errors:
    /// `Forbidden`, `Invalid` (id, note), `NotFound` (no emergency access
    /// has that id), `FailedPrecondition` (closed already — also when
    /// another officer's review of it was appended first while this call
    /// ran: one close wins, the other is told who closed it and when),
    /// `AuditUnavailable`, `Internal`.
    pub(crate) async fn close_emergency_alert(
        &self,
        ctx: &RequestCtx,
        access_record_id: &str,
        verdict: Verdict,
        note: &str,
    ) -> Result<Recorded<Alert>, ExchangeError> {
        let mut rec = self.record(ctx, "CloseEmergencyAlert");
        // One close at a time: the check for an earlier review below and
        // this review's append are not interleaved with another close's.
        let _one_at_a_time = self.closing.lock().await;
        let result = async {
            self.officer(ctx)?;
            validate::uuid("access_record_id", access_record_id)?;
            let not_emergency = || {
                ExchangeError::not_found(
                    Resource::EmergencyAlert,
                    Some(access_record_id),
                    "no emergency access has this access_record_id",
                )
            };
            let seq = self
                .store
                .log_position(access_record_id)
                .await
                .map_err(stored)?
                .ok_or_else(not_emergency)?;
            let access = self
                .store
                .query_log(&LogFilter::default(), seq, 1)
                .await
                .map_err(stored)?
                .into_iter()
                .find(|r| r.seq == seq)
                .ok_or_else(not_emergency)?;
            let record = AccessRecord::decode(&access.record).ok_or_else(|| {
                ExchangeError::internal("access log", &"an entry does not decode")
            })?;
            if !record.is_emergency() {
                return Err(not_emergency());
            }
            // Every attempt at a review is about the person whose data the
            // access was, refused ones too: their access report shows it.
            rec.case_id = record.case_id.clone();
            rec.subject = record.subject.clone();
            // Named as the access itself was: with the subject's sealed id
            // while the node holds the case.
            if let Some(case_id) = &record.case_id {
                self.name_case(&mut rec, case_id).await;
            }
            if note.is_empty() {
                return Err(Invalid::new(
                    "note",
                    "note is required: say in one line why the access was or was not justified",
                )
                .into());
            }
            validate::line("note", note, MAX_JUSTIFICATION)?;
            // The note goes into the log: it must not name the person
            // whose data the access was.
            let names = match &record.case_id {
                Some(id) => match self.store.case_meta(id).await {
                    Ok(Some(case)) => self.case_names(&case, None).await,
                    _ => Vec::new(),
                },
                None => Vec::new(),
            };
            validate::free_line("note", note, MAX_JUSTIFICATION, &names)?;
            if let Some(review) = self.store.emergency_review(seq).await.map_err(stored)? {
                return Err(closed_already(seq, &review));
            }
            rec.review = Some(Review {
                access_record_id: access_record_id.to_string(),
                verdict,
                note: note.to_string(),
            });
            rec.decision = Decision::Allowed;
            rec.detail = format!(
                "emergency access at index {seq} reviewed: {}",
                verdict.as_str()
            );
            Ok(access)
        }
        .await;
        // What the call's record says if another officer's review of the
        // same access is appended first (below).
        let mut lost = rec.clone();
        let (access, durable) = match self.finish(rec, result).await {
            Ok(done) => done.into_parts(),
            // The store refuses a second review of one access by its key
            // (a record refused alone is reported as the log failing, one
            // refused beside others as refused): should another review
            // have been appended between the check above and this one's
            // append after all, answered as a sequential second close is,
            // and recorded so.
            Err(e @ (ExchangeError::AuditRefused | ExchangeError::AuditUnavailable)) => {
                let seq = self
                    .store
                    .log_position(access_record_id)
                    .await
                    .ok()
                    .flatten();
                let review = match seq {
                    Some(seq) => self.store.emergency_review(seq).await.ok().flatten(),
                    None => None,
                };
                let (Some(seq), Some(review)) = (seq, review) else {
                    return Err(e);
                };
                lost.review = None;
                lost.at = crate::model::clock::now_millis();
                return Err(
                    match self
                        .finish::<()>(lost, Err(closed_already(seq, &review)))
                        .await
                    {
                        Ok(_) => closed_already(seq, &review),
                        Err(e) => e,
                    },
                );
            }
            Err(e) => return Err(e),
        };
        // The review's own entry, durable now; read back for the answer
        // (a failed read leaves it out: the alert is closed all the same).
        let review = self.store.emergency_review(access.seq).await.ok().flatten();
        Ok(durable.map(|()| Alert {
            access,
            closed: true,
            review,
        }))
    }
}
