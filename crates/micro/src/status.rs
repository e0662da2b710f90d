//! The one place a [`micro_core::Error`] becomes a `tonic::Status` and back.
//!
//! The error travels the standard way: `grpc-status-details-bin` holds a `google.rpc.Status`
//! whose single detail is a `micro.errors.Error` message. Plain gRPC clients see an ordinary
//! status with our detail as its message; Micro peers get the whole error back, id included.

use bytes::Bytes;
use micro_core::Error;
use prost::Message;
use tonic::{Code, Status};

const ERROR_TYPE_URL: &str = "type.googleapis.com/micro.errors.Error";

/// `google.rpc.Status`.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

/// `micro.errors.Error`.
#[derive(Clone, PartialEq, prost::Message)]
struct ErrorDetail {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(uint32, tag = "2")]
    code: u32,
    #[prost(string, tag = "3")]
    detail: String,
    #[prost(string, tag = "4")]
    status: String,
}

/// The status a Micro error travels as, taking the error (for `map_err(into_status)`).
pub fn into_status(err: Error) -> Status {
    to_status(&err)
}

/// The longest detail an error carries on the wire (see [`micro_core::error::MAX_DETAIL`]).
pub use micro_core::error::MAX_DETAIL;

use micro_core::error::bounded;

/// The status a Micro error travels as.
pub fn to_status(err: &Error) -> Status {
    let message = bounded(&err.detail);
    let detail = ErrorDetail {
        id: bounded(&err.id),
        code: u32::from(err.code),
        detail: message.clone(),
        status: bounded(&err.status),
    };
    let rpc = RpcStatus {
        code: err.grpc_code(),
        message: message.clone(),
        details: vec![prost_types::Any {
            type_url: ERROR_TYPE_URL.to_owned(),
            value: detail.encode_to_vec(),
        }],
    };
    Status::with_details(
        Code::from_i32(err.grpc_code()),
        message,
        Bytes::from(rpc.encode_to_vec()),
    )
}

/// The Micro error a status carries; for a bare status, one made from its code and message with
/// `id` as the error's id.
pub fn from_status(id: &str, status: &Status) -> Error {
    if let Ok(rpc) = RpcStatus::decode(status.details()) {
        for any in rpc.details {
            if any.type_url == ERROR_TYPE_URL
                && let Ok(d) = ErrorDetail::decode(any.value.as_slice())
            {
                // An error is a 4xx or a 5xx; a peer that says otherwise is a bad gateway's
                // peer, and may not pick another status for the edge to answer with.
                let code = u16::try_from(d.code)
                    .ok()
                    .filter(|c| (400..=599).contains(c))
                    .unwrap_or(502);
                return Error {
                    id: d.id,
                    code,
                    status: if u32::from(code) == d.code {
                        d.status
                    } else {
                        micro_core::error::reason_phrase(code).to_owned()
                    },
                    detail: d.detail,
                };
            }
        }
    }
    if lost_connection(status) {
        return Error::unavailable(
            id,
            format!(
                "the connection to the service was lost before it answered ({}); the call may or may \
                 not have run: retry only if it is safe to repeat",
                status.message()
            ),
        );
    }
    Error::from_grpc(id, status.code() as i32, status.message())
}

/// Whether a bare status is the client's own report of a connection that broke (the node died
/// or went away mid-call) rather than an answer from the service.
fn lost_connection(status: &Status) -> bool {
    if !matches!(status.code(), Code::Unknown | Code::Internal) {
        return false;
    }
    let message = status.message();
    [
        "transport error",
        "h2 protocol error",
        "connection reset",
        "broken pipe",
        "connection closed",
        "operation was canceled",
    ]
    .iter()
    .any(|m| message.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_whole_error() {
        let err = Error::not_found("helloworld", "no greeting for Bob");
        let status = to_status(&err);
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "no greeting for Bob");
        assert_eq!(from_status("other", &status), err);
    }

    #[test]
    fn a_broken_connection_is_a_503_that_says_whether_to_retry() {
        let err = from_status("helloworld", &Status::unknown("transport error"));
        assert_eq!(err.code, 503);
        assert!(
            err.detail.contains("may or may not have run"),
            "{}",
            err.detail
        );
        let err = from_status(
            "helloworld",
            &Status::internal("h2 protocol error: error reading a body from connection"),
        );
        assert_eq!(err.code, 503);
        assert_eq!(from_status("x", &Status::internal("boom")).code, 500);
    }

    #[test]
    fn long_details_are_cut_to_travel_in_headers() {
        let err = Error::bad_request("x", format!("invalid path {:?}", "é".repeat(5000)));
        let status = to_status(&err);
        assert!(
            status.message().len() <= MAX_DETAIL + 3,
            "{}",
            status.message().len()
        );
        assert!(status.message().ends_with('…'));
        assert_eq!(from_status("y", &status).detail, status.message());
    }

    #[test]
    fn bare_status_becomes_an_error() {
        let err = from_status("micro.client", &Status::unavailable("connection refused"));
        assert_eq!((err.id.as_str(), err.code), ("micro.client", 503));
    }
}
