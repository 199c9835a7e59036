//! Error → gRPC status, in one place: the gateway decides each error's
//! canonical code ([`ExchangeError::code`]); here it becomes a
//! `tonic::Status` by the code's number, with the request id attached.

use tonic::Status;
use tonic::metadata::MetadataValue;

use crate::gateway::ExchangeError;
use crate::rpc::REQUEST_ID_HEADER;

/// Error → gRPC status: the gateway's code, by its gRPC number, with the
/// error's message and the request id.
pub(crate) fn status(e: ExchangeError, request_id: &str) -> Status {
    let code = tonic::Code::from_i32(e.code() as i32);
    with_id(Status::new(code, e.to_string()), request_id)
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
    use crate::gateway::Code;

    /// The gateway's codes carry gRPC's numbers and names.
    #[test]
    fn codes_are_grpcs() {
        for (ours, theirs) in [
            (Code::Ok, tonic::Code::Ok),
            (Code::InvalidArgument, tonic::Code::InvalidArgument),
            (Code::DeadlineExceeded, tonic::Code::DeadlineExceeded),
            (Code::NotFound, tonic::Code::NotFound),
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
        let s = status(ExchangeError::NotFound("gone".into()), "id-1");
        assert_eq!((s.code(), s.message()), (tonic::Code::NotFound, "gone"));
        assert_eq!(s.metadata().get(REQUEST_ID_HEADER).unwrap(), "id-1");
    }
}
