//! How a request ends when it does not succeed, and the one table that
//! gives each ending its status code and its decision in the access log.
//!
//! The access record needs the status code's name and the gRPC layer needs
//! the code itself; both read [`ExchangeError::code`], so a record never
//! says one thing while the caller is told another.

use crate::gateway::validate::Invalid;
use crate::store::StoreError;
use crate::tlog::Decision;

/// How long a client should wait before it tries again after `UNAVAILABLE`,
/// in seconds: the node checks its database's reachability about this
/// often. (Machine-readable `RetryInfo` details come with the API's error
/// model; until then the message says it.)
pub const RETRY_AFTER_SECS: u64 = 1;

/// Errors a request can end in. Messages say what to fix and never repeat
/// personal data from the request.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    TooLarge(String),
    #[error(
        "this client certificate is not registered with this node; ask the node operator to register your organisation's OIN or key fingerprint"
    )]
    Unregistered,
    /// The connection's certificate passed when it opened but not under the
    /// configuration reloaded since (revoked, or its CA removed).
    #[error(
        "this connection's client certificate is no longer accepted ({0}); it may have been revoked — connect again with a valid certificate"
    )]
    CertificateNoLongerValid(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// A service or method this node does not serve, or a request encoding
    /// it does not support (refused by the transport before any handler).
    #[error("{0}")]
    Unimplemented(String),
    #[error(
        "the access log cannot be written, so nothing was released or changed; retry in {RETRY_AFTER_SECS} s"
    )]
    AuditUnavailable,
    /// The database cannot be reached (or cannot take work) now: a store
    /// error that is [`StoreError::is_unavailable`].
    #[error(
        "the node's database cannot be reached, so nothing was released or changed; retry in {RETRY_AFTER_SECS} s"
    )]
    DatabaseUnavailable,
    /// The node has as many requests in progress as it takes
    /// (`[limits] max_requests_in_flight`): refused at once, before any
    /// service saw it.
    #[error(
        "the node has {0} requests in progress, as many as it takes, so nothing was done; retry in {RETRY_AFTER_SECS} s"
    )]
    Busy(usize),
    /// The caller has its share of the node's requests in progress
    /// (`[limits] max_requests_in_flight_per_caller`).
    #[error(
        "your organisation has {0} requests in progress at this node, as many as one caller may have, so nothing was done; retry in {RETRY_AFTER_SECS} s"
    )]
    CallerBusy(usize),
    /// The request's message was not complete this many ms after its
    /// headers (`[limits] message_timeout_ms`): ended before any handler.
    #[error(
        "the request's message did not arrive in full within {0} ms, so nothing was done; send the whole message and end the stream"
    )]
    MessageTimeout(u64),
    /// The caller's deadline (`grpc-timeout`) passed before the answer was
    /// ready. Only ever an answer, never a record: the request goes on to
    /// its end, and its own record says how it ended.
    #[error(
        "the deadline (grpc-timeout) passed before the answer was ready; the request was still carried out to its end and recorded under this x-request-id"
    )]
    DeadlineExceeded,
    /// The database refused this request's access record (a constraint, a
    /// value it does not take), while it took the others written with it:
    /// nothing was released or changed, and retrying will not help.
    #[error(
        "internal error (access log: the database refused this request's record); nothing was released or changed"
    )]
    AuditRefused,
    /// The node failed (a store, a key, stored data that does not decode).
    /// Names only the part that failed; the cause is in the node's log.
    #[error("internal error ({0}); nothing was released")]
    Internal(&'static str),
}

/// The canonical status codes a request can end with: gRPC's, with their
/// numbers (<https://grpc.github.io/grpc/core/md_doc_statuscodes.html>,
/// `google.rpc.Code`), so the gRPC layer converts by number, not by a
/// second table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Code {
    Ok = 0,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
}

impl Code {
    /// The code's canonical name, as the access record's `status` holds it.
    pub fn name(self) -> &'static str {
        match self {
            Code::Ok => "OK",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::NotFound => "NOT_FOUND",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
            Code::Unavailable => "UNAVAILABLE",
            Code::Unauthenticated => "UNAUTHENTICATED",
        }
    }

    /// How a privacy officer reads a request that ended with this code.
    /// (`Ok` is decided by the request itself: allowed, partial or denied.)
    fn decision(self) -> Decision {
        match self {
            Code::Ok => Decision::Allowed,
            Code::InvalidArgument | Code::ResourceExhausted | Code::Unimplemented => {
                Decision::Invalid
            }
            Code::PermissionDenied | Code::Unauthenticated | Code::FailedPrecondition => {
                Decision::Denied
            }
            Code::NotFound => Decision::NotFound,
            Code::Internal | Code::Unavailable | Code::DeadlineExceeded => Decision::Error,
        }
    }
}

impl ExchangeError {
    /// The one error → status table.
    pub fn code(&self) -> Code {
        match self {
            ExchangeError::Invalid(_) => Code::InvalidArgument,
            ExchangeError::TooLarge(_) => Code::ResourceExhausted,
            ExchangeError::Unregistered | ExchangeError::Forbidden(_) => Code::PermissionDenied,
            ExchangeError::CertificateNoLongerValid(_) => Code::Unauthenticated,
            ExchangeError::NotFound(_) => Code::NotFound,
            ExchangeError::FailedPrecondition(_) => Code::FailedPrecondition,
            ExchangeError::Unimplemented(_) => Code::Unimplemented,
            ExchangeError::AuditUnavailable
            | ExchangeError::DatabaseUnavailable
            | ExchangeError::Busy(_)
            | ExchangeError::CallerBusy(_) => Code::Unavailable,
            ExchangeError::DeadlineExceeded | ExchangeError::MessageTimeout(_) => {
                Code::DeadlineExceeded
            }
            ExchangeError::Internal(_) | ExchangeError::AuditRefused => Code::Internal,
        }
    }

    /// The decision the access record of a request ending in this error holds.
    pub(crate) fn decision(&self) -> Decision {
        self.code().decision()
    }

    /// A failure of the node itself: logged here with its cause, answered
    /// with only the failing part's name, so a cause that could carry
    /// request content never reaches the caller.
    pub(crate) fn internal(part: &'static str, cause: &dyn std::fmt::Display) -> ExchangeError {
        tracing::error!(error = %cause, part, "internal error; failing closed");
        ExchangeError::Internal(part)
    }

    /// A store error of `part`: [`ExchangeError::DatabaseUnavailable`] when
    /// the database cannot take work now (the store has logged that once),
    /// an internal error otherwise.
    pub(crate) fn store(part: &'static str, e: &StoreError) -> ExchangeError {
        if e.is_unavailable() {
            tracing::debug!(error = %e, part, "database unavailable; failing closed");
            ExchangeError::DatabaseUnavailable
        } else {
            ExchangeError::internal(part, e)
        }
    }
}

impl From<Invalid> for ExchangeError {
    fn from(e: Invalid) -> Self {
        ExchangeError::Invalid(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database that cannot be reached is UNAVAILABLE with advice to
    /// retry, never INTERNAL; other store failures stay internal.
    #[test]
    fn an_unreachable_database_is_unavailable_with_retry_advice() {
        let down = StoreError::unavailable("no connection within the acquire timeout");
        let e = ExchangeError::store("storage", &down);
        assert_eq!(e.code(), Code::Unavailable);
        assert!(e.to_string().contains("retry in 1 s"), "{e}");
        assert!(
            ExchangeError::AuditUnavailable
                .to_string()
                .contains("retry in 1 s")
        );
        let broken = StoreError::Corrupt("x".into());
        assert_eq!(
            ExchangeError::store("storage", &broken).code(),
            Code::Internal
        );
    }
}
