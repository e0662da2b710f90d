//! [`Locks`]: where locks live — a handle on any [`LockBackend`] (micro-core's `Sync`
//! concern), which [`Lock`](super::Lock) and [`Leader`](super::Leader) are written once over;
//! the store and etcd each implement it.

use std::sync::Arc;

pub use micro_core::sync::{Grant, LockBackend};

/// Where locks live: the platform store (the default) or etcd. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Locks(pub(super) Arc<dyn LockBackend>);

impl Locks {
    /// Locks on any engine that implements [`LockBackend`].
    pub fn custom(backend: impl LockBackend + 'static) -> Self {
        Self(Arc::new(backend))
    }
}

impl From<super::Store> for Locks {
    fn from(store: super::Store) -> Self {
        Self(Arc::new(super::on_store::OnStore(store)))
    }
}
