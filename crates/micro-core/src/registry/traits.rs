//! The [`Registry`] trait every discovery backend implements.

use std::{pin::Pin, time::Duration};

use futures::Stream;

use super::{Service, WatchEvent};
use crate::Error;

/// A stream of registry changes. An `Err` item means the watch lost events (it lagged, or the
/// backend connection broke): the watcher should re-read what it caches.
pub type Watcher = Pin<Box<dyn Stream<Item = Result<WatchEvent, Error>> + Send>>;

/// Service discovery.
///
/// Every method takes the namespace it acts in; namespaces are isolated from each other.
/// Implementations must pass the contract suite in `micro_core::registry::contract`.
#[async_trait::async_trait]
pub trait Registry: Send + Sync + 'static {
    /// Registers (or heartbeats) the nodes of `service`, each to live for `ttl` unless
    /// registered again. Registering again with changed endpoints or metadata updates them.
    /// A service with no nodes, or without a name, is a bad request.
    async fn register(
        &self,
        namespace: &str,
        service: &Service,
        ttl: Duration,
    ) -> Result<(), Error>;

    /// Removes the nodes of `service` (matched by id). Removing the last node of a version
    /// removes the version.
    async fn deregister(&self, namespace: &str, service: &Service) -> Result<(), Error>;

    /// Every live version of `name`, one entry per version, with their live nodes.
    /// A name with no live node is a not-found error.
    async fn get_service(&self, namespace: &str, name: &str) -> Result<Vec<Service>, Error>;

    /// Every live service version in the namespace (`*` for all namespaces), sorted by name
    /// then version.
    async fn list_services(&self, namespace: &str) -> Result<Vec<Service>, Error>;

    /// Changes in the namespace from now on, optionally only those of one service.
    async fn watch(&self, namespace: &str, service: Option<&str>) -> Result<Watcher, Error>;
}
