//! The access log: one record per request, allowed or not, in a Merkle
//! tree (RFC 6962 / RFC 9162) that nobody, not even the node's operator, can
//! rewrite unnoticed.
//!
//! What it promises:
//!
//! - **One writer.** [`AuditLog`] is the only way in: a single task
//!   group-commits records (one fsync for many) and extends the tree and
//!   its signed checkpoints in the same transaction, so log, tree and
//!   checkpoints never disagree after a crash.
//! - **Durable before answered.** An append resolves to a [`Recorded`] only
//!   once its batch has committed, and only the writer can make one; the
//!   gateway answers with nothing else.
//! - **Consistent with itself.** On start the writer checks the stored tree
//!   against the latest checkpoint and refuses a log that no longer matches
//!   ([`AuditError`]), so every checkpoint it signs extends all earlier ones.
//! - **Checkable by anyone.** Checkpoints are C2SP signed notes
//!   ([`checkpoint`], [`note`]); inclusion and consistency proofs come from
//!   the stored hash tiles ([`proof`]); [`verify`] recomputes everything and
//!   trusts nothing stored but the signatures. The same log is readable
//!   as C2SP tlog-tiles ([`tiles`]: tile coordinates, paths, and the
//!   `TileSource` the read API serves from).
//!
//! It depends on the store below it and on nothing above: it signs through
//! [`note::Signer`], which the gateway's vault implements.

pub mod checkpoint;
pub mod cosignature;
pub mod handover;
pub(crate) mod layout;
pub mod merkle;
pub mod note;
pub mod proof;
mod record;
mod tile_store;
pub(crate) mod tiles;
pub mod verify;
mod writer;

pub(crate) use record::RecordView;
pub use record::{
    AccessRecord, BasisKind, CategoryBasis, Decision, Ldv, LdvStatus, MAX_JUSTIFICATION, Review,
    SealedSubject, SubjectIdType, Verdict,
};
pub(crate) use writer::signed_by_this_key;
pub use writer::{AuditError, AuditLog, Cosigner, LogSettings, Recorded};
