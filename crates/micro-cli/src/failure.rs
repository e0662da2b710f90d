//! How a command fails: one line on stderr and an exit code.

use micro_core::Error;

/// A failed command.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) message: String,
    pub(crate) code: i32,
}

impl Failure {
    /// Exit 1 with `message`.
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 1,
        }
    }

    /// Exit `code` with `message`.
    pub(crate) fn with_code(code: i32, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code,
        }
    }
}

impl From<Error> for Failure {
    /// Platform errors print their detail; a server that cannot be reached exits 4.
    fn from(err: Error) -> Self {
        let code = if is_connect_failure(&err) { 4 } else { 1 };
        Self::with_code(code, err.detail)
    }
}

/// Whether the error says the micro server could not be reached.
pub(crate) fn is_connect_failure(err: &Error) -> bool {
    err.detail
        .starts_with("Failed to connect to micro server at")
}

/// The exit code of `micro call` and dynamic commands for an error (BEHAVIOR.md §1).
pub(crate) fn call_failure(err: Error) -> Failure {
    let code = match err.code {
        _ if is_connect_failure(&err) => 4,
        404 if err.id == "micro.proxy" && err.detail.starts_with("Service \"") => 4,
        408 => return Failure::with_code(1, "Request timed out"),
        401 | 403 => 2,
        _ => 127,
    };
    Failure::with_code(code, err.detail)
}
