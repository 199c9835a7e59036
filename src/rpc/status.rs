//! Error → gRPC status, in one place: the gateway decides each error's
//! canonical code and reason ([`ExchangeError::code`],
//! [`ExchangeError::reason`]); here they become a `tonic::Status` by the
//! code's number, with `google.rpc.Status` details (AIP-193) and the
//! request id attached:
//!
//! - always `ErrorInfo`: the reason, the domain [`ERROR_DOMAIN`], and
//!   metadata a program can act on (the field's path, the size limit);
//! - `BadRequest` with one field violation for an invalid field;
//! - `RetryInfo` for errors a retry cures by itself (`UNAVAILABLE`, the
//!   node or the caller busy among them, and `ABORTED`);
//! - `ResourceInfo` for `NOT_FOUND`: the kind of resource and, when the node
//!   issued it, its id.
//!
//! None of them holds a request value the gateway did not put in the error;
//! the gateway's errors never hold one that could be personal.

use std::collections::HashMap;

use tonic::Status;
use tonic::metadata::MetadataValue;
use tonic_types::{ErrorDetails, StatusExt};

use crate::gateway::{ExchangeError, Resource};
use crate::rpc::REQUEST_ID_HEADER;

/// `ErrorInfo.domain` of every error: names the API the reasons belong to
/// (`sluis.v1.ErrorReason`).
pub(crate) const ERROR_DOMAIN: &str = "sluis.nl";

/// Error → gRPC status: the gateway's code, by its gRPC number, with the
/// error's message, its details and the request id.
pub(crate) fn status(e: ExchangeError, request_id: &str) -> Status {
    let code = tonic::Code::from_i32(e.code() as i32);
    let mut details = ErrorDetails::new();
    let mut metadata = HashMap::new();
    match &e {
        ExchangeError::Invalid(invalid) => {
            for (field, message) in invalid.violations() {
                details.add_bad_request_violation(field, message);
            }
            metadata.insert("field".to_string(), invalid.field().to_string());
        }
        ExchangeError::OutOfRange(beyond) => {
            metadata.insert("field".to_string(), beyond.field().to_string());
        }
        ExchangeError::TooLarge { max, .. } => {
            metadata.insert("max_message_bytes".to_string(), max.to_string());
        }
        ExchangeError::Busy(max) => {
            metadata.insert("max_requests_in_flight".to_string(), max.to_string());
        }
        ExchangeError::CallerBusy(max) => {
            metadata.insert(
                "max_requests_in_flight_per_caller".to_string(),
                max.to_string(),
            );
        }
        ExchangeError::RateLimited { per_minute, .. } => {
            metadata.insert("requests_per_minute".to_string(), per_minute.to_string());
        }
        ExchangeError::MessageTimeout(ms) => {
            metadata.insert("message_timeout_ms".to_string(), ms.to_string());
        }
        ExchangeError::Referred(node)
        | ExchangeError::HeldAt(node)
        | ExchangeError::SubjectReferred(node) => {
            metadata.insert("holding_node".to_string(), node.clone());
        }
        ExchangeError::JustificationRequired { categories, rules } => {
            metadata.insert("categories".to_string(), categories.join(","));
            metadata.insert("rules".to_string(), rules.join(","));
        }
        ExchangeError::Erased { case_id, at } => {
            metadata.insert("erased_at".to_string(), crate::model::clock::rfc3339(*at));
            details.set_resource_info(
                Resource::Case.type_name(),
                case_id.clone(),
                "",
                "erased at the end of its retention period",
            );
        }
        ExchangeError::NotFound(missing) => {
            details.set_resource_info(
                missing.resource.type_name(),
                missing.name.clone().unwrap_or_default(),
                "",
                missing.message.clone(),
            );
        }
        _ => {}
    }
    if let Some(after) = e.retry_after() {
        details.set_retry_info(Some(after));
    }
    details.set_error_info(e.reason().as_str(), ERROR_DOMAIN, metadata);
    with_id(
        Status::with_error_details(code, e.to_string(), details),
        request_id,
    )
}

/// Error → plain HTTP answer, for the tlog-tiles read API (`rpc::tiles`):
/// the HTTP status of the gateway's code as `google/rpc/code.proto` maps
/// them, the message as `text/plain` (the same words a gRPC caller gets),
/// the reason a program acts on in `x-error-reason`
/// (`sluis.v1.ErrorReason` without its prefix), the request id, and
/// `Retry-After` (seconds, RFC 9110 §10.2.3) when a retry cures it.
pub(crate) fn http_error(e: ExchangeError, request_id: &str) -> http::Response<tonic::body::Body> {
    use crate::gateway::Code;
    use http::{HeaderValue, StatusCode as S, header};
    let status = match e.code() {
        Code::Ok => S::OK,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => S::BAD_REQUEST,
        Code::Unauthenticated => S::UNAUTHORIZED,
        Code::PermissionDenied => S::FORBIDDEN,
        Code::NotFound => S::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => S::CONFLICT,
        Code::ResourceExhausted => S::TOO_MANY_REQUESTS,
        Code::Internal => S::INTERNAL_SERVER_ERROR,
        Code::Unimplemented => S::NOT_IMPLEMENTED,
        Code::Unavailable => S::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => S::GATEWAY_TIMEOUT,
    };
    let retry = e
        .retry_after()
        .map(|d| (d.as_millis() as u64).div_ceil(1000).max(1));
    let reason = e.reason().as_str();
    let mut resp = http::Response::new(tonic::body::Body::new(e.to_string() + "\n"));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-error-reason", HeaderValue::from_static(reason));
    if let Some(secs) = retry {
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert(REQUEST_ID_HEADER, v);
    }
    resp
}

pub(crate) fn with_id(mut s: Status, request_id: &str) -> Status {
    if let Ok(v) = MetadataValue::try_from(request_id) {
        s.metadata_mut().insert(REQUEST_ID_HEADER, v);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::{Code, Reason, Resource};

    /// The gateway's codes carry gRPC's numbers and names.
    #[test]
    fn codes_are_grpcs() {
        for (ours, theirs) in [
            (Code::Ok, tonic::Code::Ok),
            (Code::InvalidArgument, tonic::Code::InvalidArgument),
            (Code::DeadlineExceeded, tonic::Code::DeadlineExceeded),
            (Code::NotFound, tonic::Code::NotFound),
            (Code::AlreadyExists, tonic::Code::AlreadyExists),
            (Code::Aborted, tonic::Code::Aborted),
            (Code::OutOfRange, tonic::Code::OutOfRange),
            (Code::Unimplemented, tonic::Code::Unimplemented),
            (Code::PermissionDenied, tonic::Code::PermissionDenied),
            (Code::ResourceExhausted, tonic::Code::ResourceExhausted),
            (Code::FailedPrecondition, tonic::Code::FailedPrecondition),
            (Code::Internal, tonic::Code::Internal),
            (Code::Unavailable, tonic::Code::Unavailable),
            (Code::Unauthenticated, tonic::Code::Unauthenticated),
        ] {
            assert_eq!(tonic::Code::from_i32(ours as i32), theirs);
            let camel: String = ours
                .name()
                .split('_')
                .map(|w| w[..1].to_string() + &w[1..].to_lowercase())
                .collect();
            assert_eq!(camel, format!("{theirs:?}"));
        }
        let s = status(
            ExchangeError::not_found(Resource::Case, Some("c-1"), "gone"),
            "id-1",
        );
        assert_eq!((s.code(), s.message()), (tonic::Code::NotFound, "gone"));
        assert_eq!(s.metadata().get(REQUEST_ID_HEADER).unwrap(), "id-1");
        let d = s.get_error_details();
        let info = d.resource_info().expect("ResourceInfo on NOT_FOUND");
        assert_eq!(
            (info.resource_type.as_str(), info.resource_name.as_str()),
            ("sluis.v1.Case", "c-1")
        );
        assert_eq!(d.error_info().unwrap().reason, "NOT_FOUND");
    }

    /// The reasons the gateway gives are the names `errors.proto` lists,
    /// every one of them, without the prefix.
    #[test]
    fn reasons_are_the_protos() {
        use crate::rpc::proto::v1::ErrorReason;
        let ours: Vec<String> = Reason::ALL.iter().map(|r| r.as_str().to_string()).collect();
        let mut theirs = Vec::new();
        // Numbers may skip (taken ahead by work under way).
        for n in 1..=255 {
            let Ok(r) = ErrorReason::try_from(n) else {
                continue;
            };
            theirs.push(
                r.as_str_name()
                    .trim_start_matches("ERROR_REASON_")
                    .to_string(),
            );
        }
        assert_eq!(ours, theirs);
    }

    /// Every error carries ErrorInfo in the one domain; an invalid field a
    /// BadRequest naming it; UNAVAILABLE a RetryInfo.
    #[test]
    fn every_error_has_its_details() {
        let bad = ExchangeError::Invalid(crate::gateway::validate::Invalid::new(
            "data.identity.bsn",
            "data.identity.bsn must be 9 digits that pass the 11-check",
        ));
        let d = status(bad, "x").get_error_details();
        let v = &d.bad_request().expect("BadRequest").field_violations[0];
        assert_eq!(v.field, "data.identity.bsn");
        let info = d.error_info().unwrap();
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("INVALID_FIELD", ERROR_DOMAIN)
        );
        let d = status(ExchangeError::DatabaseUnavailable, "x").get_error_details();
        assert_eq!(
            d.retry_info().unwrap().retry_delay,
            Some(std::time::Duration::from_secs(1))
        );
        assert_eq!(d.error_info().unwrap().reason, "DATABASE_UNAVAILABLE");
    }
}
