//! [`LimitLayer`]: puts [`Limit`] in front of a server's handlers.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::Limit;

/// At most `max` calls at once (see the module docs); `None` lets every call through.
#[derive(Debug, Clone)]
pub struct LimitLayer {
    permits: Option<(Arc<Semaphore>, usize)>,
}

impl LimitLayer {
    /// A limit of `max` calls in flight (`None`: no limit).
    pub fn new(max: Option<usize>) -> Self {
        Self {
            permits: max.map(|m| {
                let m = m.clamp(1, Semaphore::MAX_PERMITS);
                (Arc::new(Semaphore::new(m)), m)
            }),
        }
    }
}

impl<S> tower::Layer<S> for LimitLayer {
    type Service = Limit<S>;

    fn layer(&self, inner: S) -> Limit<S> {
        Limit {
            inner,
            permits: self.permits.clone(),
        }
    }
}
