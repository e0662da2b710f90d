//! [`Admitted`]: a handler behind an [`Admit`] — the call goes in if it is admitted, and is
//! answered with the refusal as a gRPC status if not.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use tonic::body::Body;

use super::Admit;
use crate::status::to_status;

/// A handler behind an [`Admit`].
pub struct Admitted<S, A> {
    pub(super) inner: S,
    pub(super) admit: Arc<A>,
}

impl<S: Clone, A> Clone for Admitted<S, A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            admit: self.admit.clone(),
        }
    }
}

impl<S, A> tower::Service<http::Request<Body>> for Admitted<S, A>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    A: Admit,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        // The clone is the ready one's twin; keep the ready one for this call (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let admit = self.admit.clone();
        Box::pin(async move {
            match admit.admit(&mut req).await {
                Ok(()) => inner.call(req).await,
                Err(e) => Ok(to_status(&e).into_http()),
            }
        })
    }
}
