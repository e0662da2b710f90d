//! The caller's namespace, read from `micro-namespace` request metadata.

use micro_core::{
    Error,
    metadata::{DEFAULT_NAMESPACE, NAMESPACE_HEADER},
};

/// The namespace of a gRPC request: its `micro-namespace` metadata, else `micro`.
pub(crate) fn of<T>(request: &tonic::Request<T>) -> Result<String, Error> {
    let Some(value) = request.metadata().get(NAMESPACE_HEADER) else {
        return Ok(DEFAULT_NAMESPACE.to_owned());
    };
    let ns = value
        .to_str()
        .map_err(|_| Error::bad_request("micro.server", "the micro-namespace header is not text"))?
        .trim();
    Ok(if ns.is_empty() {
        DEFAULT_NAMESPACE.to_owned()
    } else {
        ns.to_owned()
    })
}
