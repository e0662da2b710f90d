//! [`answer`]: the steps every method of a platform service takes, in one place — admit the
//! caller (settle its namespace, or who it is), handle the request's body in the platform's
//! error type, and answer with the result or with the error as a gRPC status. A method is then
//! only what it does. A method that answers with a stream does the same through
//! [`answer_stream`], whose stream also ends once the caller may no longer make the call.

use std::pin::Pin;

use futures::Stream;
use micro::status::into_status;
use micro_core::Error;
use tonic::{Request, Response, Status};

use crate::long_call::LongCall;

/// Answers `req`: `admit` reads what the method needs of the caller from the request (a
/// refusal is the answer), then `handle` gets that and the request's body.
pub(crate) async fn answer<T, A, R, Fut>(
    req: Request<T>,
    admit: impl FnOnce(&Request<T>) -> Result<A, Error>,
    handle: impl FnOnce(A, T) -> Fut,
) -> Result<Response<R>, Status>
where
    Fut: Future<Output = Result<R, Error>>,
{
    let admitted = admit(&req).map_err(into_status)?;
    handle(admitted, req.into_inner())
        .await
        .map(Response::new)
        .map_err(into_status)
}

/// A stream a platform service answers with.
pub(crate) type Answers<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Answers `req` with a stream, as [`answer`] does, which the guard's check of the call is
/// made on again while it lives: a token revoked or a rule changed ends it, and so does the
/// server stopping (see [`LongCall`]).
pub(crate) async fn answer_stream<T, A, I, Fut>(
    req: Request<T>,
    admit: impl FnOnce(&Request<T>) -> Result<A, Error>,
    handle: impl FnOnce(A, T) -> Fut,
) -> Result<Response<Answers<I>>, Status>
where
    Fut: Future<Output = Result<Answers<I>, Error>>,
    I: Send + 'static,
{
    let long = LongCall::of(&req);
    let stream = answer(req, admit, handle).await?.into_inner();
    Ok(Response::new(long.end(stream, into_status)))
}
