//! [`TransparentLayer`]: puts [`Transparent`] in front of the server's own services.

use std::sync::Arc;

use super::{Local, Resolutions, Transparent};
use crate::proxy::ProxyService;

/// Passes calls of services the server does not serve itself to their nodes (see the module
/// docs); behind the guard, which leaves the caller in the request.
#[derive(Clone)]
pub struct TransparentLayer {
    proxy: ProxyService,
    local: Arc<Local>,
    resolutions: Arc<Resolutions>,
}

impl TransparentLayer {
    /// Forwarding through `proxy`'s clients; `local` stays here.
    pub fn new(proxy: ProxyService, local: Local) -> Self {
        Self {
            proxy,
            local: Arc::new(local),
            resolutions: Arc::default(),
        }
    }
}

impl<S> tower::Layer<S> for TransparentLayer {
    type Service = Transparent<S>;

    fn layer(&self, inner: S) -> Transparent<S> {
        Transparent {
            inner,
            proxy: self.proxy.clone(),
            local: self.local.clone(),
            resolutions: self.resolutions.clone(),
        }
    }
}
