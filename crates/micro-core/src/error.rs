//! One error type for the whole platform.
//!
//! Micro's error is `{id, code, detail, status}`: `id` names who raised it (`micro.client`,
//! `helloworld`), `code` is an HTTP status code, `detail` is the human sentence and `status` the
//! HTTP reason phrase. The same value crosses every boundary: it rides in gRPC status details
//! between services, becomes the HTTP status and lower-case JSON body at the gateway, and picks
//! the CLI's exit code. The mapping to gRPC codes lives here, once, as plain numbers so this crate
//! needs no gRPC library; `micro` converts to and from `tonic::Status` with it.

use serde::{Deserialize, Serialize};

/// The platform error: who raised it, an HTTP-style code, a sentence, and the reason phrase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{detail}")]
pub struct Error {
    /// Who raised the error, e.g. `micro.client` or the service name.
    pub id: String,
    /// HTTP-style status code (400, 404, 500, ...).
    pub code: u16,
    /// What went wrong, as a sentence a user can act on.
    pub detail: String,
    /// The reason phrase of `code` (`Not Found`).
    pub status: String,
}

/// gRPC status codes, as numbers (the values of `grpc.Code`).
pub mod grpc {
    #![expect(missing_docs, reason = "the names are the gRPC specification's")]
    pub const OK: i32 = 0;
    pub const CANCELLED: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const DEADLINE_EXCEEDED: i32 = 4;
    pub const NOT_FOUND: i32 = 5;
    pub const ALREADY_EXISTS: i32 = 6;
    pub const PERMISSION_DENIED: i32 = 7;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const FAILED_PRECONDITION: i32 = 9;
    pub const ABORTED: i32 = 10;
    pub const OUT_OF_RANGE: i32 = 11;
    pub const UNIMPLEMENTED: i32 = 12;
    pub const INTERNAL: i32 = 13;
    pub const UNAVAILABLE: i32 = 14;
    pub const DATA_LOSS: i32 = 15;
    pub const UNAUTHENTICATED: i32 = 16;
}

impl Error {
    /// An error with an explicit code; `status` is derived from the code.
    pub fn new(id: impl Into<String>, code: u16, detail: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            code,
            detail: detail.into(),
            status: reason_phrase(code).to_owned(),
        }
    }

    /// 400: the caller sent something malformed.
    pub fn bad_request(id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(id, 400, detail)
    }
    /// 401: the caller has no (valid) credentials.
    pub fn unauthorized(id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(id, 401, detail)
    }
    /// 403: the caller is known but not allowed.
    pub fn forbidden(id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(id, 403, detail)
    }
    /// 404: the thing asked for does not exist.
    pub fn not_found(id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(id, 404, detail)
    }
    /// 408: the request took longer than the caller allowed.
    pub fn timeout(id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(id, 408, detail)
    }
    /// 409: the write conflicts with what exists.
    pub fn conflict(id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(id, 409, detail)
    }
    /// 500: something broke on our side.
    pub fn internal(id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(id, 500, detail)
    }
    /// 503: the service (or every node of it) cannot be reached.
    pub fn unavailable(id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(id, 503, detail)
    }

    /// The HTTP status to answer with: `code` when it is a valid status, else 500.
    pub fn http_status(&self) -> u16 {
        if (100..=599).contains(&self.code) {
            self.code
        } else {
            500
        }
    }

    /// The gRPC status code this error travels as.
    pub fn grpc_code(&self) -> i32 {
        match self.code {
            200 => grpc::OK,
            400 => grpc::INVALID_ARGUMENT,
            401 => grpc::UNAUTHENTICATED,
            403 => grpc::PERMISSION_DENIED,
            404 => grpc::NOT_FOUND,
            408 | 504 => grpc::DEADLINE_EXCEEDED,
            409 => grpc::ALREADY_EXISTS,
            412 => grpc::FAILED_PRECONDITION,
            429 => grpc::RESOURCE_EXHAUSTED,
            499 => grpc::CANCELLED,
            501 => grpc::UNIMPLEMENTED,
            503 => grpc::UNAVAILABLE,
            500 => grpc::INTERNAL,
            _ => grpc::UNKNOWN,
        }
    }

    /// The HTTP-style code for a gRPC status code (used when a plain gRPC server, which sends no
    /// Micro error in its details, answers with a bare status).
    pub fn code_from_grpc(grpc_code: i32) -> u16 {
        match grpc_code {
            grpc::OK => 200,
            grpc::INVALID_ARGUMENT | grpc::OUT_OF_RANGE => 400,
            grpc::UNAUTHENTICATED => 401,
            grpc::PERMISSION_DENIED => 403,
            grpc::NOT_FOUND => 404,
            grpc::DEADLINE_EXCEEDED => 408,
            grpc::ALREADY_EXISTS | grpc::ABORTED => 409,
            grpc::FAILED_PRECONDITION => 412,
            grpc::RESOURCE_EXHAUSTED => 429,
            grpc::CANCELLED => 499,
            grpc::UNIMPLEMENTED => 501,
            grpc::UNAVAILABLE => 503,
            _ => 500,
        }
    }

    /// An error made from a bare gRPC status (one that carried no Micro error in its details).
    pub fn from_grpc(id: &str, grpc_code: i32, message: &str) -> Self {
        Self::new(id, Self::code_from_grpc(grpc_code), message)
    }

    /// The error as its JSON object (lower-case keys), each text cut to [`MAX_DETAIL`] bytes:
    /// details often quote what the caller sent, and an answer should not echo megabytes.
    pub fn to_json(&self) -> String {
        let bounded = Self {
            id: bounded(&self.id),
            code: self.code,
            detail: bounded(&self.detail),
            status: bounded(&self.status),
        };
        serde_json::to_string(&bounded)
            .unwrap_or_else(|_| format!("{{\"detail\":{:?}}}", bounded.detail))
    }

    /// Parses the JSON object form; `None` when the bytes are not a Micro error.
    pub fn from_json(bytes: &[u8]) -> Option<Self> {
        if bytes.is_empty() {
            return None;
        }
        let err: Self = serde_json::from_slice(bytes).ok()?;
        (err.code != 0).then_some(err)
    }
}

/// The longest text an error carries over the wire, at every door (a gRPC status, a JSON body):
/// details often quote what the caller sent, and a status travels in HTTP/2 headers, which
/// peers bound (a longer one would turn a clear refusal into a protocol error).
pub const MAX_DETAIL: usize = 1024;

/// `text`, cut to [`MAX_DETAIL`] bytes at a character boundary (and marked with `…` if cut).
pub fn bounded(text: &str) -> String {
    if text.len() <= MAX_DETAIL {
        return text.to_owned();
    }
    let mut end = MAX_DETAIL;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The reason phrase of an HTTP status code.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        409 => "Conflict",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        499 => "Client Closed Request",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_grpc() {
        for code in [400u16, 401, 403, 404, 409, 412, 429, 499, 500, 501, 503] {
            let err = Error::new("t", code, "x");
            assert_eq!(Error::code_from_grpc(err.grpc_code()), code, "code {code}");
        }
        // Both timeouts travel as DEADLINE_EXCEEDED and come back as a request timeout.
        assert_eq!(
            Error::new("t", 504, "x").grpc_code(),
            grpc::DEADLINE_EXCEEDED
        );
        assert_eq!(Error::code_from_grpc(grpc::DEADLINE_EXCEEDED), 408);
    }

    #[test]
    fn json_round_trips_and_bare_statuses_get_a_code() {
        let err = Error::not_found("helloworld", "no such greeting");
        assert_eq!(Error::from_json(err.to_json().as_bytes()), Some(err));
        assert_eq!(Error::from_json(b"{\"detail\":\"no code\"}"), None);
        let bare = Error::from_grpc("proxy", grpc::UNAVAILABLE, "down");
        assert_eq!(
            (bare.code, bare.detail.as_str(), bare.status.as_str()),
            (503, "down", "Service Unavailable")
        );
    }

    #[test]
    fn json_has_lower_case_keys() {
        let json = Error::bad_request("gw", "bad").to_json();
        assert_eq!(
            json,
            r#"{"id":"gw","code":400,"detail":"bad","status":"Bad Request"}"#
        );
    }

    #[test]
    fn http_status_is_always_valid() {
        assert_eq!(Error::new("x", 42, "odd").http_status(), 500);
        assert_eq!(Error::new("x", 404, "nf").http_status(), 404);
    }
}
