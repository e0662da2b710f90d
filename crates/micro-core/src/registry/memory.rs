//! [`MemoryRegistry`]: the registry the server embeds by default.
//!
//! It drives [`RegistryState`] with tokio's clock (so tests can pause time) and fans changes
//! out to watchers over a broadcast channel. Expired nodes are dropped lazily on every call and,
//! so that watchers hear about them without traffic, by a reaper task started with
//! [`MemoryRegistry::spawn_reaper`].

use std::{
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use futures::StreamExt;
use tokio::sync::broadcast;
use tokio_stream::wrappers::{BroadcastStream, errors::BroadcastStreamRecvError};

use super::{Registry, RegistryState, Service, Watcher, state::Change};
use crate::{Error, metadata::ALL_NAMESPACES};

const ID: &str = "micro.registry";

/// An in-process registry with TTL expiry and watch.
#[derive(Debug)]
pub struct MemoryRegistry {
    state: Mutex<RegistryState>,
    changes: broadcast::Sender<Change>,
}

impl Default for MemoryRegistry {
    fn default() -> Self {
        // The last changes are kept whole (a record is up to a registration's size), so the
        // ring is kept short; a watcher that falls further behind is told to re-read.
        let (changes, _) = broadcast::channel(256);
        Self {
            state: Mutex::new(RegistryState::new()),
            changes,
        }
    }
}

impl MemoryRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a task that expires nodes every `every`, so watchers see expiry as it happens.
    /// The task ends when the registry is dropped.
    pub fn spawn_reaper(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(registry) = weak.upgrade() else {
                    return;
                };
                registry.with_state(|_, _| ());
            }
        })
    }

    /// Runs `f` on the state after expiring what is due, and publishes every change.
    fn with_state<T>(&self, f: impl FnOnce(&mut RegistryState, std::time::Instant) -> T) -> T {
        let now = tokio::time::Instant::now().into_std();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for change in state.expire(now) {
            let _ = self.changes.send(change);
        }
        f(&mut state, now)
    }

    fn publish(&self, change: Option<Change>) {
        if let Some(change) = change {
            // No receivers is not an error: nobody is watching.
            let _ = self.changes.send(change);
        }
    }
}

#[async_trait::async_trait]
impl Registry for MemoryRegistry {
    async fn register(
        &self,
        namespace: &str,
        service: &Service,
        ttl: Duration,
    ) -> Result<(), Error> {
        let change = self.with_state(|st, now| st.register(namespace, service, ttl, now))?;
        self.publish(change);
        Ok(())
    }

    async fn deregister(&self, namespace: &str, service: &Service) -> Result<(), Error> {
        let change = self.with_state(|st, _| st.deregister(namespace, service));
        self.publish(change);
        Ok(())
    }

    async fn get_service(&self, namespace: &str, name: &str) -> Result<Vec<Service>, Error> {
        let found = self.with_state(|st, now| st.get(namespace, name, now));
        if found.is_empty() {
            return Err(Error::not_found(
                ID,
                format!("Service \"{name}\" not found"),
            ));
        }
        Ok(found)
    }

    async fn list_services(&self, namespace: &str) -> Result<Vec<Service>, Error> {
        Ok(self.with_state(|st, now| st.list(namespace, now)))
    }

    async fn watch(&self, namespace: &str, service: Option<&str>) -> Result<Watcher, Error> {
        let namespace = namespace.to_owned();
        let service = service.map(str::to_owned);
        let stream = BroadcastStream::new(self.changes.subscribe()).filter_map(move |item| {
            let out = match item {
                Ok((ns, event)) => {
                    let ns_ok = namespace == ALL_NAMESPACES || ns == namespace;
                    let name_ok = service.as_deref().is_none_or(|s| s == event.service.name);
                    (ns_ok && name_ok).then_some(Ok(event))
                }
                Err(BroadcastStreamRecvError::Lagged(n)) => Some(Err(Error::unavailable(
                    ID,
                    format!("watch fell behind and missed {n} changes; re-read the registry"),
                ))),
            };
            futures::future::ready(out)
        });
        Ok(Box::pin(stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::contract;

    #[tokio::test(start_paused = true)]
    async fn passes_the_registry_contract() {
        let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
        contract::run_all(registry, contract::PausedClock).await;
    }

    #[tokio::test(start_paused = true)]
    async fn reaper_tells_watchers_about_expiry() {
        let registry = Arc::new(MemoryRegistry::new());
        let _reaper = registry.spawn_reaper(Duration::from_secs(1));
        let mut watch = registry.watch("micro", None).await.unwrap();
        let start = tokio::time::Instant::now();
        let svc = Service::new("hw", "v1").with_node(crate::Node::new("n1", "127.0.0.1:1"));
        registry
            .register("micro", &svc, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            watch.next().await.unwrap().unwrap().action,
            crate::WatchAction::Create
        );
        // No calls on the registry: only the reaper can produce the delete.
        let deleted = watch.next().await.unwrap().unwrap();
        assert_eq!(deleted.action, crate::WatchAction::Delete);
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_secs(5) && waited <= Duration::from_secs(7),
            "{waited:?}"
        );
    }
}
