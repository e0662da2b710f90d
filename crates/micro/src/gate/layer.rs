//! [`AdmitLayer`]: the tower layer that puts an [`Admit`](super::Admit) in front of every handler.

use std::sync::Arc;

use super::Admitted;

/// A tower layer that puts an [`Admit`](super::Admit) in front of every handler of a tonic server
/// (`Server::builder().layer(AdmitLayer::new(admit))`).
pub struct AdmitLayer<A> {
    admit: Arc<A>,
}

impl<A> AdmitLayer<A> {
    /// `admit` in front of every handler.
    pub fn new(admit: A) -> Self {
        Self {
            admit: Arc::new(admit),
        }
    }
}

impl<A> Clone for AdmitLayer<A> {
    fn clone(&self) -> Self {
        Self {
            admit: self.admit.clone(),
        }
    }
}

impl<A, S> tower::Layer<S> for AdmitLayer<A> {
    type Service = Admitted<S, A>;

    fn layer(&self, inner: S) -> Admitted<S, A> {
        Admitted {
            inner,
            admit: self.admit.clone(),
        }
    }
}
