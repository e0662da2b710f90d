//! [`Limit`]: answers `RESOURCE_EXHAUSTED` when the calls in flight or the calls this second are
//! at their limit. Its future holds the call's place until the inner answer is ready; there is
//! no error of its own (a refusal is an answer).

use std::{
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures::future::{BoxFuture, FutureExt};
use tokio::sync::Semaphore;
use tonic::body::Body;

use super::Rate;

/// Health checks and reflection are never shed: they are cheap, and without them the
/// platform could neither probe the node nor describe its endpoints to the gateway.
fn exempt(request: &http::Request<Body>) -> bool {
    let path = request.uri().path();
    path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
}

/// Whose limits these are: the refusal says so, since a caller acts differently on its own
/// client's limit than on a service's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Whose {
    Service,
    Client,
}

impl Whose {
    fn subject(self) -> &'static str {
        match self {
            Whose::Service => "the service is",
            Whose::Client => "this client is",
        }
    }
}

/// The limits one layer shares among every service it makes.
#[derive(Debug)]
pub(super) struct Limits {
    pub(super) whose: Whose,
    pub(super) in_flight: Option<(Semaphore, usize)>,
    pub(super) rate: Option<Mutex<Rate>>,
}

impl Limits {
    fn none(&self) -> bool {
        self.in_flight.is_none() && self.rate.is_none()
    }

    fn refusal(&self, why: String) -> http::Response<Body> {
        tonic::Status::resource_exhausted(format!("{} at its limit of {why}", self.whose.subject()))
            .into_http()
    }
}

/// See [`super::LimitLayer`].
#[derive(Debug, Clone)]
pub struct Limit<S> {
    pub(super) inner: S,
    pub(super) limits: Arc<Limits>,
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
        let limits = &self.limits;
        if limits.none() || exempt(&request) {
            return self.inner.call(request).boxed();
        }
        // The place in flight first: a call refused for it then takes no token of the rate.
        let permit = match &limits.in_flight {
            Some((permits, max)) => match permits.try_acquire() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    let refusal =
                        limits.refusal(format!("{max} calls in flight; try again shortly"));
                    return futures::future::ready(Ok(refusal)).boxed();
                }
            },
            None => None,
        };
        if let Some(rate) = &limits.rate {
            let mut rate = rate.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(wait) = rate.admit(Instant::now()) {
                let wait = wait.max(Duration::from_millis(1));
                let refusal = limits.refusal(format!(
                    "{} calls a second; try again in {} ms",
                    rate.per_second(),
                    wait.as_millis()
                ));
                return futures::future::ready(Ok(refusal)).boxed();
            }
        }
        // Held as a count, not a borrow: the answer outlives this call. Given back by
        // `Release` whatever happens next, a panic in the inner `call` included.
        let held = permit.map(|permit| {
            permit.forget();
            Release(self.limits.clone())
        });
        let answer = self.inner.call(request);
        async move {
            let answer = answer.await;
            drop(held);
            answer
        }
        .boxed()
    }
}

/// Gives the place in flight back when the answer is ready, or when the call is dropped.
struct Release(Arc<Limits>);

impl Drop for Release {
    fn drop(&mut self) {
        if let Some((permits, _)) = &self.0.in_flight {
            permits.add_permits(1);
        }
    }
}
