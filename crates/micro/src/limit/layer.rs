//! [`LimitLayer`]: puts [`Limit`] in front of a server's handlers, or inside a client's calls.

use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use super::{
    Limit, Rate,
    service::{Limits, Whose},
};

/// At most `max_in_flight` calls at once and `max_rate` calls a second (see the module docs);
/// `None` lets every call through. The limits are shared by every service the layer makes.
#[derive(Debug, Clone)]
pub struct LimitLayer {
    limits: Arc<Limits>,
}

impl LimitLayer {
    /// A service's limits: what its handlers take (`Service::max_in_flight`,
    /// `Service::max_rate`).
    pub fn service(max_in_flight: Option<usize>, max_rate: Option<u32>) -> Self {
        Self::new(Whose::Service, max_in_flight, max_rate)
    }

    /// A client's limits: what it sends, to every service together
    /// (`ClientBuilder::max_in_flight`, `ClientBuilder::max_rate`).
    pub fn client(max_in_flight: Option<usize>, max_rate: Option<u32>) -> Self {
        Self::new(Whose::Client, max_in_flight, max_rate)
    }

    fn new(whose: Whose, max_in_flight: Option<usize>, max_rate: Option<u32>) -> Self {
        Self {
            limits: Arc::new(Limits {
                whose,
                in_flight: max_in_flight.map(|m| {
                    let m = m.clamp(1, Semaphore::MAX_PERMITS);
                    (Semaphore::new(m), m)
                }),
                rate: max_rate.map(|r| Mutex::new(Rate::new(r))),
            }),
        }
    }
}

impl<S> tower::Layer<S> for LimitLayer {
    type Service = Limit<S>;

    fn layer(&self, inner: S) -> Limit<S> {
        Limit {
            inner,
            limits: self.limits.clone(),
        }
    }
}
