//! The caller's namespace: the one the auth guard settled on (from the token, or the
//! `micro-namespace` metadata the token allows), else the request's `micro-namespace`.

use micro_core::{
    Error,
    metadata::{DEFAULT_NAMESPACE, NAMESPACE_HEADER},
};

use crate::auth::Caller;

/// The namespace a gRPC request acts in.
pub(crate) fn of<T>(request: &tonic::Request<T>) -> Result<String, Error> {
    Caller::of(request).map(|c| c.namespace)
}

/// The namespace of a request only an admin of `micro` may make (`what` names the operation).
pub(crate) fn platform_admin<T>(request: &tonic::Request<T>, what: &str) -> Result<String, Error> {
    let caller = Caller::of(request)?;
    caller.require_platform_admin(what)?;
    Ok(caller.namespace)
}

/// The namespace of a request that needs an admin or a service there (`what` names the
/// operation): the store and config.
pub(crate) fn user<T>(request: &tonic::Request<T>, what: &str) -> Result<String, Error> {
    let caller = Caller::of(request)?;
    caller.require_user(what)?;
    Ok(caller.namespace)
}

/// The request's `micro-namespace` metadata, else `micro`.
pub(crate) fn from_metadata<T>(request: &tonic::Request<T>) -> Result<String, Error> {
    of_headers(request.metadata().as_ref())
}

/// An HTTP request's `micro-namespace` header, else `micro`. Asked for twice, it is refused:
/// which one was meant is not for the server to guess (as [`crate::auth::guard::one_header`]
/// says at the doors).
pub(crate) fn of_headers(headers: &http::HeaderMap) -> Result<String, Error> {
    let mut values = headers.get_all(NAMESPACE_HEADER).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(Error::bad_request(
            "micro.server",
            format!("the {NAMESPACE_HEADER} header is sent more than once"),
        ));
    }
    named(first.map(http::HeaderValue::as_bytes))
}

fn named(value: Option<&[u8]>) -> Result<String, Error> {
    let Some(value) = value else {
        return Ok(DEFAULT_NAMESPACE.to_owned());
    };
    let ns = std::str::from_utf8(value)
        .ok()
        .filter(|v| v.bytes().all(|b| b == b'\t' || (b' '..0x7f).contains(&b)))
        .ok_or_else(|| {
            Error::bad_request("micro.server", "the micro-namespace header is not text")
        })?
        .trim();
    Ok(if ns.is_empty() {
        DEFAULT_NAMESPACE.to_owned()
    } else {
        ns.to_owned()
    })
}
