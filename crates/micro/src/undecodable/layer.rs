//! [`UndecodableLayer`]: puts [`Undecodable`] in front of a server.

use super::Undecodable;

/// Answers requests that do not decode with `INVALID_ARGUMENT` (see the module docs):
/// `Server::builder().layer(UndecodableLayer)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct UndecodableLayer;

impl<S> tower::Layer<S> for UndecodableLayer {
    type Service = Undecodable<S>;

    fn layer(&self, inner: S) -> Undecodable<S> {
        Undecodable::new(inner)
    }
}
