//! The gateway: what a request may get, decided and recorded before
//! anything leaves.
//!
//! Every data request takes this path, in this order (`Exchange`):
//!
//! 1. **identify** — the typed caller the TLS layer resolved (a registered
//!    participant with a role, or an unregistered fingerprint), never a
//!    certificate;
//! 2. **validate** — purpose mandatory and known; ids, BSN, V-number, dates
//!    and text checked for meaning ([`validate`]); bad input is refused with
//!    `INVALID_ARGUMENT` before anything is stored or released;
//! 3. **decide** — per category, policy × consent × presence, as a pure
//!    function (`release::plan`);
//! 4. **pseudonymise** — the subject as the caller's own pseudonym
//!    ([`pseudonym`]); in the log, as the audit domain's pseudonym;
//! 5. **record** — the access record is appended and made durable by the
//!    log writer before the answer is handed back;
//! 6. **respond** — released categories (opened from the [`vault`] only
//!    now), withheld ones with reasons, and the request id.
//!
//! Invariants it holds:
//!
//! - **Nothing leaves before its record is durable.** Every public request
//!   method of `Exchange` returns `Result<Recorded<T>, ExchangeError>`;
//!   only the log writer makes a [`Recorded`](crate::tlog::Recorded). A
//!   write is applied after its record is durable; if applying fails, a
//!   second record says so. If the record cannot be written, the answer is
//!   `UNAVAILABLE` and nothing is released (fail closed); if the database
//!   refuses this one record while taking the others written with it,
//!   that request alone ends `INTERNAL`, releasing nothing.
//! - **Every request is recorded**, refused ones too, and failed TLS
//!   handshakes — except that an unregistered certificate, refused
//!   whatever it asks, has its first `unregistered_records_per_certificate`
//!   requests per interval recorded one by one and the rest counted in one
//!   `tls.unregistered` record with its fingerprint (`unregistered`).
//! - **Default deny per category**; `identity` needs consent except for
//!   the case owner; consent is evaluated at request time.
//! - **No raw identity leaves the vault**: records carry pseudonyms and
//!   keyed hashes; error messages never echo request values.
//! - **One status table**: `ExchangeError::code` gives the code the
//!   record names and the gRPC layer answers with, and
//!   `ExchangeError::reason` the reason programs read (`ErrorInfo`).
//! - **A write retried with its `request_id` writes once** (AIP-155): the
//!   key is stored in the write's transaction and a retry is answered from
//!   what the first call did (`IdempotencyKey`); the retry is recorded.
//!
//! Statistics take the same path (`Exchange::statistics`): the policy
//! (a rule with a legal basis), the figures computed and protected inside
//! the node ([`crate::stats`]), an access record, then the table.
//!
//! To the rest of the crate it exposes `Exchange` with its request and
//! answer types, the error with its `Code` and `Reason` table (and the
//! `Resource` a `NOT_FOUND` names), the `IdempotencyKey` the gRPC layer
//! builds for a write, `validate` for the gRPC
//! layer's and the `sluis audit` commands' calls on meaning,
//! `oversight` for the `sluis audit` report, and the tlog-tiles read API's
//! answer (`Served`) and method names (`tiles_method`). Outside the crate only the
//! [`vault`] keys and [`pseudonym`] derivation (which the benchmarks time
//! and use to load data as a node would), [`validate::METHODS`], the
//! statistics request types and the bound on remembered pseudonyms (which
//! the soak benchmark reports) are public.

pub(crate) mod emergency;
mod error;
mod exchange;
mod forwarded;
mod idempotency;
pub(crate) mod network_report;
pub mod officer;
pub(crate) mod oversight;
pub mod pseudonym;
mod referral;
mod release;
mod retention;
mod statistics;
mod tiles;
mod unregistered;
pub mod validate;
pub mod vault;
mod witness;

pub(crate) use error::Code;
#[cfg(test)]
pub(crate) use error::Reason;
pub(crate) use error::{ExchangeError, Resource};
pub use exchange::REMEMBERED_PSEUDONYMS;
pub(crate) use exchange::{
    CaseRef, Exchange, FindCases, GetCase, LdvSettings, Named, NewConsent, RequestCtx, Scope,
};
pub(crate) use forwarded::{Relayed, Target};
pub(crate) use idempotency::IdempotencyKey;
pub(crate) use referral::{Incoming, Outgoing, ReferCase};
pub(crate) use retention::ERASE_METHOD;
pub use retention::{Erased, KeyStatus, Progress};
pub use statistics::{National, Released, StatisticsQuery};
pub(crate) use tiles::{Served, tiles_method};
