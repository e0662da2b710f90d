//! [`DeadlineLayer`]: puts [`Deadline`] in front of a server.

use super::Deadline;

/// Runs each request's handler with the deadline its `grpc-timeout` sets (see the module docs):
/// `Server::builder().layer(DeadlineLayer)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeadlineLayer;

impl<S> tower::Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline { inner }
    }
}
