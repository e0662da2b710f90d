//! [`MetricsLayer`]: puts [`Measured`] in front of a service's handlers.

use super::{Measured, ServiceMetrics};

/// Counts each call into `metrics` and answers `GET /metrics` (see the module docs).
#[derive(Debug, Clone)]
pub struct MetricsLayer {
    metrics: ServiceMetrics,
}

impl MetricsLayer {
    /// Recording into `metrics`.
    pub fn new(metrics: ServiceMetrics) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = Measured<S>;

    fn layer(&self, inner: S) -> Measured<S> {
        Measured {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}
