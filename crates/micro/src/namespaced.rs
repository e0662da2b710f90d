//! [`Namespaced`]: a platform backend as one namespace sees it. The broker, events and config a
//! service holds ([`crate::broker::Broker`], [`crate::events::Events`], [`crate::config::Config`])
//! are each this over their backend trait, so holding one, cloning it, printing it and building
//! it are written once; each adds only its own methods, which pass the namespace on.

use std::sync::Arc;

/// `backend` (a trait object of `micro-core`, in memory or a micro server) in one namespace.
pub struct Namespaced<B: ?Sized> {
    backend: Arc<B>,
    namespace: String,
}

impl<B: ?Sized> Namespaced<B> {
    /// `backend` in `namespace`.
    pub fn new(backend: Arc<B>, namespace: &str) -> Self {
        Self {
            backend,
            namespace: namespace.to_owned(),
        }
    }

    /// The namespace acted in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The backend, for what takes the namespace itself.
    pub fn backend(&self) -> &Arc<B> {
        &self.backend
    }
}

impl<B: ?Sized> Clone for Namespaced<B> {
    fn clone(&self) -> Self {
        Self {
            backend: self.backend.clone(),
            namespace: self.namespace.clone(),
        }
    }
}

impl<B: ?Sized> std::fmt::Debug for Namespaced<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespaced")
            .field("backend", &std::any::type_name::<B>())
            .field("namespace", &self.namespace)
            .finish()
    }
}
