//! [`Limit`]: answers `RESOURCE_EXHAUSTED` when the service has all the calls it may have. Its
//! future holds the call's permit until the handler's answer is ready; there is no error of its
//! own (a refusal is an answer).

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::{BoxFuture, FutureExt};
use tokio::sync::Semaphore;
use tonic::body::Body;

/// Health checks and reflection are never shed: they are cheap, and without them the
/// platform could neither probe the node nor describe its endpoints to the gateway.
fn exempt(request: &http::Request<Body>) -> bool {
    let path = request.uri().path();
    path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
}

/// See [`super::LimitLayer`].
#[derive(Debug, Clone)]
pub struct Limit<S> {
    pub(super) inner: S,
    pub(super) permits: Option<(Arc<Semaphore>, usize)>,
}

impl<S> tower::Service<http::Request<Body>> for Limit<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<http::Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let Some((permits, max)) = self.permits.as_ref().filter(|_| !exempt(&request)) else {
            return self.inner.call(request).boxed();
        };
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let answer = self.inner.call(request);
                async move {
                    let answer = answer.await;
                    drop(permit);
                    answer
                }
                .boxed()
            }
            Err(_) => {
                let status = tonic::Status::resource_exhausted(format!(
                    "the service is at its limit of {max} calls in flight; try again shortly"
                ));
                futures::future::ready(Ok(status.into_http())).boxed()
            }
        }
    }
}
