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
/// often. The status carries it as `RetryInfo`; the message says it too.
pub(crate) const RETRY_AFTER_SECS: u64 = 1;

/// Errors a request can end in. Messages say what to fix and never repeat
/// personal data from the request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExchangeError {
    /// A field does not say what it must: the field's path and what to fix.
    #[error("{0}")]
    Invalid(Invalid),
    /// The request is not one message of the method's type (bytes that do
    /// not decode, broken framing, not gRPC).
    #[error("{0}")]
    Malformed(String),
    /// The message is larger than the node's `max_message_bytes`, `max`
    /// (`size`, when the node read it).
    #[error("{}", too_large(*.size, *.max))]
    TooLarge { size: Option<usize>, max: usize },
    #[error(
        "this client certificate is not registered with this node; ask the node operator to register your organisation's OIN or key fingerprint"
    )]
    Unregistered,
    /// The connection's certificate passed when it opened but not under the
    /// configuration reloaded since (revoked, or its CA removed).
    #[error(
        "this connection's client certificate is no longer accepted ({0}); it may have been revoked — connect again with a valid certificate"
    )]
    CertificateNoLongerValid(crate::net::tls::CertRejected),
    #[error("{0}")]
    Forbidden(String),
    #[error("{}", .0.message)]
    NotFound(Missing),
    /// The case was crypto-erased (its retention period ended, GDPR art.
    /// 5(1)(e) and 17): its data and key are gone for good. Its id (a
    /// node-issued UUID) and when. `NOT_FOUND` per AIP-193: the data does
    /// not exist and no change of state brings it back (what
    /// `FAILED_PRECONDITION` would promise); the reason `CASE_ERASED` tells
    /// it from a case that never existed.
    #[error(
        "the case's data was erased at {} (its retention period ended); nothing of it can be read again, and its access log remains",
        crate::model::clock::rfc3339(*.at)
    )]
    Erased { case_id: String, at: i64 },
    #[error("this consent was already withdrawn")]
    ConsentWithdrawn,
    #[error("{0}")]
    FailedPrecondition(String),
    /// The client's `request_id` names an earlier request of this caller
    /// that differs from this one (AIP-155).
    #[error(
        "request_id was used before by you for a different request (another method or other content); use a new request_id for a new request, or resend the first request unchanged to get its answer"
    )]
    RequestIdReused,
    /// A request with the same `request_id` is being processed now.
    #[error(
        "a request with this request_id is being processed now; retry in {RETRY_AFTER_SECS} s to get its answer"
    )]
    RequestInProgress,
    /// An index or size past the end of the log: the field and what the
    /// log holds.
    #[error("{0}")]
    OutOfRange(Invalid),
    /// A service or method this node does not serve.
    #[error("{0}")]
    Unimplemented(String),
    /// A message compression the node does not take (refused by the
    /// transport before any handler).
    #[error(
        "this node takes gzip-compressed or uncompressed messages only: send grpc-encoding gzip or identity, or none"
    )]
    UnsupportedEncoding,
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
    /// The entry asked for is in the log but no signed checkpoint covers it
    /// yet, and none did within the wait (twice the checkpoint interval):
    /// the writer is behind, and a retry is answered once it signs.
    #[error(
        "the entry is not yet covered by a signed checkpoint (the next is signed within the checkpoint interval); retry in {RETRY_AFTER_SECS} s"
    )]
    CheckpointPending,
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
    /// The caller asked for more statistics than `[statistics]
    /// requests_per_minute` allows; the next one is possible after the
    /// delay (ms).
    #[error(
        "your organisation may ask for at most {per_minute} statistics a minute, so nothing was computed; retry in {} s",
        retry_after_ms.div_ceil(1000)
    )]
    RateLimited {
        per_minute: u32,
        retry_after_ms: u64,
    },
    /// The node failed (a store, a key, stored data that does not decode).
    /// Names only the part that failed; the cause is in the node's log.
    #[error("internal error ({0}); nothing was released")]
    Internal(&'static str),
    /// The federation node that holds the case answered a forwarded call
    /// with this code; the message names the node and gives its reason
    /// (which, by that node's own rule, holds nothing personal).
    #[error("{message}")]
    PeerNode { code: Code, message: String },
    /// The case was referred to federation node `node`, which holds it now.
    #[error(
        "this case was referred to federation node '{0}', which holds it now: ask again with x-sluis-holding-node: {0}"
    )]
    Referred(String),
    /// A case this node never held, about which it forwarded calls to
    /// federation node `node`: the case's trail starts there.
    #[error(
        "this node holds no case with this case_id; it forwarded calls about it to federation node '{0}', which holds it or knows where it went: ask the subject access report at that node (it covers every node that served the case, this one included)"
    )]
    HeldAt(String),
    /// A subject (asked for by V-number or BSN) whose every case this node
    /// held was referred away, the last to federation node `node`: the
    /// report is asked there.
    #[error(
        "this node holds no case of this subject now: it referred the subject's case to federation node '{0}', which holds it now: ask the subject access report at that node (it covers every node that served the case, this one included)"
    )]
    SubjectReferred(String),
    /// Categories asked for by name that only an emergency rule permits,
    /// in a request without a justification or without the acting
    /// employee: nothing was released.
    #[error(
        "{} can be released only under the emergency rule {}: in an emergency, set emergency_justification (one line, no names) and name the acting employee in x-sluis-actor; the privacy officer reviews every such access",
        .categories.join(", "), .rules.join(", ")
    )]
    JustificationRequired {
        categories: Vec<String>,
        rules: Vec<String>,
    },
}

/// The message of [`ExchangeError::TooLarge`]: the request's size when the
/// node read it, and the limit.
fn too_large(size: Option<usize>, max: usize) -> String {
    match size {
        Some(size) => {
            format!("request is {size} bytes; this node accepts at most {max} bytes per message")
        }
        None => {
            format!(
                "request is more than {max} bytes; this node accepts at most {max} bytes per message"
            )
        }
    }
}

/// What a `NOT_FOUND` was looking for: the kind of resource, its id when the
/// node issued it (never a value that could be personal, such as a
/// pseudonym), and the message.
#[derive(Debug)]
pub(crate) struct Missing {
    pub(crate) resource: Resource,
    pub(crate) name: Option<String>,
    pub(crate) message: String,
}

/// The kinds of resource a call can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resource {
    Case,
    Consent,
    AccessEntry,
    Checkpoint,
    /// A service a health check named that this node does not serve.
    Service,
    /// A tile or entry bundle of the tlog-tiles read API.
    Tile,
    /// The alert of an emergency access.
    EmergencyAlert,
    /// A witness alarm this node keeps.
    WitnessAlarm,
}

impl Resource {
    /// Its protobuf message name, as `ResourceInfo.resource_type` holds it.
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            Resource::Case => "sluis.v1.Case",
            Resource::Consent => "sluis.v1.Consent",
            Resource::AccessEntry => "sluis.v1.AccessEntry",
            Resource::Checkpoint => "sluis.v1.Checkpoint",
            Resource::Service => "service",
            Resource::Tile => "tlog-tiles tile",
            Resource::EmergencyAlert => "sluis.v1.EmergencyAlert",
            Resource::WitnessAlarm => "sluis.v1.WitnessAlarm",
        }
    }
}

impl ExchangeError {
    /// `NOT_FOUND` for a `resource` with the node-issued id `name` (none
    /// when the caller named it otherwise).
    pub(crate) fn not_found(
        resource: Resource,
        name: Option<&str>,
        message: &str,
    ) -> ExchangeError {
        ExchangeError::NotFound(Missing {
            resource,
            name: name.map(str::to_string),
            message: message.to_string(),
        })
    }
}

/// Why a request failed, for programs: `ErrorInfo.reason` (AIP-193), the
/// names of `sluis.v1.ErrorReason` without their prefix. Stable: a reason
/// is never renamed or given another meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    InvalidField,
    MalformedRequest,
    MessageTooLarge,
    CertificateNotRegistered,
    CertificateNoLongerValid,
    NotPermitted,
    NotFound,
    ConsentAlreadyWithdrawn,
    PreconditionFailed,
    RequestIdReused,
    RequestInProgress,
    BeyondLogEnd,
    MethodNotServed,
    EncodingNotSupported,
    AccessLogUnavailable,
    DatabaseUnavailable,
    Internal,
    NodeBusy,
    CallerBusy,
    MessageTimeout,
    DeadlinePassed,
    AccessRecordRefused,
    RateLimited,
    CheckpointPending,
    PeerNode,
    CaseReferred,
    JustificationRequired,
    CaseErased,
}

impl Reason {
    /// Every reason, for the test that holds them to `errors.proto`.
    #[cfg(test)]
    pub(crate) const ALL: [Reason; 28] = [
        Reason::InvalidField,
        Reason::MalformedRequest,
        Reason::MessageTooLarge,
        Reason::CertificateNotRegistered,
        Reason::CertificateNoLongerValid,
        Reason::NotPermitted,
        Reason::NotFound,
        Reason::ConsentAlreadyWithdrawn,
        Reason::PreconditionFailed,
        Reason::RequestIdReused,
        Reason::RequestInProgress,
        Reason::BeyondLogEnd,
        Reason::MethodNotServed,
        Reason::EncodingNotSupported,
        Reason::AccessLogUnavailable,
        Reason::DatabaseUnavailable,
        Reason::Internal,
        Reason::NodeBusy,
        Reason::CallerBusy,
        Reason::MessageTimeout,
        Reason::DeadlinePassed,
        Reason::AccessRecordRefused,
        Reason::RateLimited,
        Reason::CheckpointPending,
        Reason::PeerNode,
        Reason::CaseReferred,
        Reason::JustificationRequired,
        Reason::CaseErased,
    ];

    /// The name, as `ErrorInfo.reason` holds it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidField => "INVALID_FIELD",
            Reason::MalformedRequest => "MALFORMED_REQUEST",
            Reason::MessageTooLarge => "MESSAGE_TOO_LARGE",
            Reason::CertificateNotRegistered => "CERTIFICATE_NOT_REGISTERED",
            Reason::CertificateNoLongerValid => "CERTIFICATE_NO_LONGER_VALID",
            Reason::NotPermitted => "NOT_PERMITTED",
            Reason::NotFound => "NOT_FOUND",
            Reason::ConsentAlreadyWithdrawn => "CONSENT_ALREADY_WITHDRAWN",
            Reason::PreconditionFailed => "PRECONDITION_FAILED",
            Reason::RequestIdReused => "REQUEST_ID_REUSED",
            Reason::RequestInProgress => "REQUEST_IN_PROGRESS",
            Reason::BeyondLogEnd => "BEYOND_LOG_END",
            Reason::MethodNotServed => "METHOD_NOT_SERVED",
            Reason::EncodingNotSupported => "ENCODING_NOT_SUPPORTED",
            Reason::AccessLogUnavailable => "ACCESS_LOG_UNAVAILABLE",
            Reason::DatabaseUnavailable => "DATABASE_UNAVAILABLE",
            Reason::Internal => "INTERNAL",
            Reason::NodeBusy => "NODE_BUSY",
            Reason::CallerBusy => "CALLER_BUSY",
            Reason::MessageTimeout => "MESSAGE_TIMEOUT",
            Reason::DeadlinePassed => "DEADLINE_PASSED",
            Reason::AccessRecordRefused => "ACCESS_RECORD_REFUSED",
            Reason::RateLimited => "RATE_LIMITED",
            Reason::CheckpointPending => "CHECKPOINT_PENDING",
            Reason::PeerNode => "PEER_NODE",
            Reason::CaseReferred => "CASE_REFERRED",
            Reason::JustificationRequired => "JUSTIFICATION_REQUIRED",
            Reason::CaseErased => "CASE_ERASED",
        }
    }
}

/// The canonical status codes a request can end with: gRPC's, with their
/// numbers (<https://grpc.github.io/grpc/core/md_doc_statuscodes.html>,
/// `google.rpc.Code`), so the gRPC layer converts by number, not by a
/// second table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub(crate) enum Code {
    Ok = 0,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
}

impl Code {
    /// The code's canonical name, as the access record's `status` holds it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Code::Ok => "OK",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Aborted => "ABORTED",
            Code::OutOfRange => "OUT_OF_RANGE",
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
            Code::InvalidArgument
            | Code::ResourceExhausted
            | Code::Unimplemented
            | Code::AlreadyExists
            | Code::Aborted => Decision::Invalid,
            Code::PermissionDenied | Code::Unauthenticated | Code::FailedPrecondition => {
                Decision::Denied
            }
            Code::NotFound | Code::OutOfRange => Decision::NotFound,
            Code::Internal | Code::Unavailable | Code::DeadlineExceeded => Decision::Error,
        }
    }
}

impl ExchangeError {
    /// The one error → status table: each error's code and its reason
    /// for programs.
    pub(crate) fn code(&self) -> Code {
        self.status().0
    }

    /// Why, for programs (`ErrorInfo.reason`); see [`code`](Self::code).
    pub(crate) fn reason(&self) -> Reason {
        self.status().1
    }

    fn status(&self) -> (Code, Reason) {
        use ExchangeError as E;
        match self {
            E::Invalid(_) => (Code::InvalidArgument, Reason::InvalidField),
            E::Malformed(_) => (Code::InvalidArgument, Reason::MalformedRequest),
            E::TooLarge { .. } => (Code::ResourceExhausted, Reason::MessageTooLarge),
            E::Unregistered => (Code::PermissionDenied, Reason::CertificateNotRegistered),
            E::Forbidden(_) => (Code::PermissionDenied, Reason::NotPermitted),
            E::CertificateNoLongerValid(_) => {
                (Code::Unauthenticated, Reason::CertificateNoLongerValid)
            }
            E::NotFound(_) => (Code::NotFound, Reason::NotFound),
            E::Erased { .. } => (Code::NotFound, Reason::CaseErased),
            E::ConsentWithdrawn => (Code::FailedPrecondition, Reason::ConsentAlreadyWithdrawn),
            E::FailedPrecondition(_) => (Code::FailedPrecondition, Reason::PreconditionFailed),
            E::RequestIdReused => (Code::AlreadyExists, Reason::RequestIdReused),
            E::RequestInProgress => (Code::Aborted, Reason::RequestInProgress),
            E::OutOfRange(_) => (Code::OutOfRange, Reason::BeyondLogEnd),
            E::Unimplemented(_) => (Code::Unimplemented, Reason::MethodNotServed),
            E::UnsupportedEncoding => (Code::Unimplemented, Reason::EncodingNotSupported),
            E::AuditUnavailable => (Code::Unavailable, Reason::AccessLogUnavailable),
            E::DatabaseUnavailable => (Code::Unavailable, Reason::DatabaseUnavailable),
            E::CheckpointPending => (Code::Unavailable, Reason::CheckpointPending),
            E::Busy(_) => (Code::Unavailable, Reason::NodeBusy),
            E::CallerBusy(_) => (Code::Unavailable, Reason::CallerBusy),
            E::MessageTimeout(_) => (Code::DeadlineExceeded, Reason::MessageTimeout),
            E::DeadlineExceeded => (Code::DeadlineExceeded, Reason::DeadlinePassed),
            E::AuditRefused => (Code::Internal, Reason::AccessRecordRefused),
            E::RateLimited { .. } => (Code::ResourceExhausted, Reason::RateLimited),
            E::Internal(_) => (Code::Internal, Reason::Internal),
            E::PeerNode { code, .. } => (*code, Reason::PeerNode),
            E::Referred(_) | E::HeldAt(_) | E::SubjectReferred(_) => {
                (Code::FailedPrecondition, Reason::CaseReferred)
            }
            E::JustificationRequired { .. } => {
                (Code::FailedPrecondition, Reason::JustificationRequired)
            }
        }
    }

    /// How long to wait before trying again, for the errors a retry can
    /// cure by itself (`RetryInfo`).
    pub(crate) fn retry_after(&self) -> Option<std::time::Duration> {
        if let ExchangeError::RateLimited { retry_after_ms, .. } = self {
            return Some(std::time::Duration::from_millis(*retry_after_ms));
        }
        matches!(
            self,
            ExchangeError::AuditUnavailable
                | ExchangeError::DatabaseUnavailable
                | ExchangeError::CheckpointPending
                | ExchangeError::RequestInProgress
                | ExchangeError::Busy(_)
                | ExchangeError::CallerBusy(_)
        )
        .then_some(std::time::Duration::from_secs(RETRY_AFTER_SECS))
    }

    /// The decision the access record of a request ending in this error
    /// holds. A rate limit refuses a well-formed request by the node's
    /// rule (`RESOURCE_EXHAUSTED` otherwise reads as an oversized, so
    /// invalid, request): denied.
    pub(crate) fn decision(&self) -> Decision {
        match self {
            ExchangeError::RateLimited { .. } => Decision::Denied,
            _ => self.code().decision(),
        }
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
        ExchangeError::Invalid(e)
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
