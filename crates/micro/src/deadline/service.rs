//! [`Deadline`]: the service that scopes a request's deadline around its handler. Its future
//! is tokio's task-local future; there is no error of its own (an unreadable `grpc-timeout`
//! is tonic's to refuse, and it does).

use std::task::{Context, Poll};

use tokio::{task::futures::TaskLocalFuture, time::Instant};

use super::{DEADLINE, parse_grpc_timeout};

/// See [`super::DeadlineLayer`].
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    pub(super) inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for Deadline<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TaskLocalFuture<Option<Instant>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let deadline = request
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .and_then(|timeout| Instant::now().checked_add(timeout));
        DEADLINE.scope(deadline, self.inner.call(request))
    }
}
