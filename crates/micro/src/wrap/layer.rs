//! [`Wrapped`]: a service's wrappers as one layer of its server, innermost (after the caller
//! check), so the server's layer stack keeps one type however many wrappers there are.

use std::convert::Infallible;

use tonic::body::Body;

use super::{Handler, Wrappers};

/// The layer that applies a service's [`Wrappers`] to its handlers.
#[derive(Clone, Debug, Default)]
pub struct Wrapped(pub Wrappers<Handler>);

impl<S> tower::Layer<S> for Wrapped
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    type Service = Handler;

    fn layer(&self, inner: S) -> Handler {
        self.0.apply(Handler::new(inner))
    }
}
