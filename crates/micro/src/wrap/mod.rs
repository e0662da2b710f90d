//! Wrappers: any tower layer, added to a service's handlers ([`crate::Service::layer`]) or to a
//! client's calls ([`crate::client::ClientBuilder::layer`]) — go-micro's handler and client wrappers, in
//! tower's own shape.
//!
//! A wrapper is written once, generic over the service it wraps, and sees each call as an
//! `http::Request` (the gRPC path, headers and body) and its `http::Response`:
//!
//! - on a service, it wraps the handlers behind the caller check, so it sees only admitted
//!   calls (each a [`Handler`], errors being answers: `Infallible`);
//! - on a client, it wraps the whole call — discovery, balancing, retries and the deadline
//!   included — as a [`Channel`] whose errors are `tonic::Status`.
//!
//! Wrappers run in the order they were added, the first outermost. A client's wrappers are
//! applied to each of its channels (`client.service(..)`), so a layer's own state is per
//! channel; state meant to span them (a shared limit, counters) lives behind an `Arc` in the
//! layer.

mod layer;

use std::{convert::Infallible, sync::Arc};

use tonic::body::Body;
use tower::util::BoxCloneSyncService;

pub use layer::Wrapped;

/// A service's handlers, as a wrapper on a service sees them.
pub type Handler = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, Infallible>;

/// A client's calls, as a wrapper on a client sees them.
pub type Channel = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, tonic::Status>;

/// Wraps one boxed service in another.
type Wrap<T> = Arc<dyn Fn(T) -> T + Send + Sync>;

/// The wrappers added so far, to apply in order (the first outermost).
pub struct Wrappers<T> {
    wraps: Vec<Wrap<T>>,
}

impl<T> Clone for Wrappers<T> {
    fn clone(&self) -> Self {
        Self {
            wraps: self.wraps.clone(),
        }
    }
}

impl<T> Default for Wrappers<T> {
    fn default() -> Self {
        Self { wraps: Vec::new() }
    }
}

impl<T> std::fmt::Debug for Wrappers<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Wrappers({})", self.wraps.len())
    }
}

impl<Req, Rsp, E> Wrappers<BoxCloneSyncService<Req, Rsp, E>>
where
    Req: 'static,
    Rsp: 'static,
    E: 'static,
{
    /// Adds `layer`, inside the ones added before it.
    pub fn push<L>(&mut self, layer: L)
    where
        L: tower::Layer<BoxCloneSyncService<Req, Rsp, E>> + Send + Sync + 'static,
        L::Service: tower::Service<Req, Response = Rsp, Error = E> + Clone + Send + Sync + 'static,
        <L::Service as tower::Service<Req>>::Future: Send + 'static,
    {
        self.wraps.push(Arc::new(move |inner| {
            BoxCloneSyncService::new(layer.layer(inner))
        }));
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.wraps.is_empty()
    }

    /// `inner` wrapped by every wrapper, the first added outermost.
    pub fn apply(
        &self,
        inner: BoxCloneSyncService<Req, Rsp, E>,
    ) -> BoxCloneSyncService<Req, Rsp, E> {
        self.wraps
            .iter()
            .rev()
            .fold(inner, |service, wrap| wrap(service))
    }
}
