//! The client's view of the registry: looked up once per service, kept fresh by one watch.
//!
//! A lookup fills an entry; a watch on the namespace drops the entry of any service that
//! changes, so the next call looks it up again. If the watch breaks (the server restarted,
//! say), every entry is dropped and the watch is re-established with back-off. Entries also
//! age out after [`MAX_AGE`], so a watch that silently misses a change costs at most that long.
//! The watch ends when the cache is dropped (an open watch stream would otherwise keep a
//! server's graceful shutdown waiting).

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, RwLock, Weak, atomic::AtomicUsize},
    time::Duration,
};

use futures::StreamExt;
use micro_core::{Error, Node, Registry, Service};
use tokio::{sync::OnceCell, time::Instant};

/// How long an entry is trusted without a watch event.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(60);

/// What the client knows of one service, worked out once per lookup rather than per call.
pub(crate) struct Entry {
    /// Every live version, as the registry returned them.
    pub(crate) services: Arc<Vec<Service>>,
    /// Every node of every version, sorted by id so selection is stable.
    pub(crate) nodes: Vec<Node>,
    /// The version (an index into `services`) of each node, in the same order.
    pub(crate) owners: Vec<usize>,
    /// Whether each node is dialled over TLS, in the same order (see [`crate::tls::serves_tls`]).
    pub(crate) secure: Vec<bool>,
    /// The round-robin position (kept across lookups of the same service).
    pub(crate) counter: Arc<AtomicUsize>,
    /// The methods (`/pkg.Svc/Method`) the service marks safe to repeat.
    pub(crate) repeatable: HashSet<String>,
    fetched: Instant,
}

pub(crate) struct Cache {
    registry: Arc<dyn Registry>,
    namespace: String,
    entries: RwLock<HashMap<String, Arc<Entry>>>,
    watching: OnceCell<()>,
    /// Dropped with the cache, which ends the watch.
    _alive: tokio::sync::watch::Sender<()>,
    alive: tokio::sync::watch::Receiver<()>,
}

impl Cache {
    pub(crate) fn new(registry: Arc<dyn Registry>, namespace: String) -> Arc<Self> {
        let (alive_tx, alive) = tokio::sync::watch::channel(());
        Arc::new(Self {
            registry,
            namespace,
            entries: RwLock::new(HashMap::new()),
            watching: OnceCell::new(),
            _alive: alive_tx,
            alive,
        })
    }

    pub(crate) fn registry(&self) -> &Arc<dyn Registry> {
        &self.registry
    }

    pub(crate) fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The service's entry, from cache or from the registry.
    pub(crate) async fn get(self: &Arc<Self>, name: &str) -> Result<Arc<Entry>, Error> {
        self.watching
            .get_or_init(|| async {
                let mut alive = self.alive.clone();
                let watching = watch(Arc::downgrade(self));
                tokio::spawn(async move {
                    tokio::select! {
                        () = watching => {}
                        _ = alive.changed() => {}
                    }
                });
            })
            .await;
        if let Some(entry) = self.read().get(name)
            && entry.fetched.elapsed() < MAX_AGE
        {
            return Ok(entry.clone());
        }
        let services = self.registry.get_service(&self.namespace, name).await?;
        let mut pairs: Vec<(Node, usize)> = services
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.nodes.iter().map(move |n| (n.clone(), i)))
            .collect();
        pairs.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        let (nodes, owners): (Vec<Node>, Vec<usize>) = pairs.into_iter().unzip();
        let secure = nodes.iter().map(crate::tls::serves_tls).collect();
        let counter = self
            .read()
            .get(name)
            .map(|e| e.counter.clone())
            .unwrap_or_default();
        let entry = Arc::new(Entry {
            repeatable: repeatable(&services),
            services: Arc::new(services),
            nodes,
            owners,
            secure,
            counter,
            fetched: Instant::now(),
        });
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), entry.clone());
        Ok(entry)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Entry>>> {
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    fn forget(&self, name: Option<&str>) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        match name {
            Some(name) => {
                entries.remove(name);
            }
            None => entries.clear(),
        }
    }
}

/// The methods (`/pkg.Svc/Method`) the service marks safe to repeat: every version registers
/// the method and says it is idempotent and takes one request (a client stream is never
/// replayed) — during a roll-out, a version that dropped the mark, or does not say, wins.
pub(crate) fn repeatable(services: &[Service]) -> HashSet<String> {
    use micro_core::metadata::{ENDPOINT_GRPC_SERVICE, ENDPOINT_IDEMPOTENT, ENDPOINT_STREAM};
    // Per method: the versions that mark it safe (each counted once, however many of its
    // endpoints name the method), and whether any registers it unmarked.
    let mut marked: HashMap<String, (HashSet<usize>, bool)> = HashMap::new();
    for (version, service) in services.iter().enumerate() {
        for endpoint in &service.endpoints {
            let (Some(grpc_service), Some((_, method))) = (
                endpoint.metadata.get(ENDPOINT_GRPC_SERVICE),
                endpoint.name.split_once('.'),
            ) else {
                continue;
            };
            let safe = endpoint
                .metadata
                .get(ENDPOINT_IDEMPOTENT)
                .is_some_and(|v| v == "true")
                && !matches!(
                    endpoint.metadata.get(ENDPOINT_STREAM).map(String::as_str),
                    Some("client" | "bidi")
                );
            let (safe_in, unmarked) = marked
                .entry(format!("/{grpc_service}/{method}"))
                .or_default();
            if safe {
                safe_in.insert(version);
            } else {
                *unmarked = true;
            }
        }
    }
    marked
        .into_iter()
        .filter_map(|(path, (safe_in, unmarked))| {
            (!unmarked && safe_in.len() == services.len()).then_some(path)
        })
        .collect()
}

/// Keeps the cache fresh until the cache is dropped.
async fn watch(cache: Weak<Cache>) {
    let mut backoff = Duration::from_millis(250);
    loop {
        let stream = {
            let Some(cache) = cache.upgrade() else { return };
            cache.registry.watch(&cache.namespace, None).await
        };
        if let Ok(mut stream) = stream {
            backoff = Duration::from_millis(250);
            while let Some(item) = stream.next().await {
                let Some(cache) = cache.upgrade() else { return };
                match item {
                    Ok(event) => cache.forget(Some(&event.service.name)),
                    Err(_) => cache.forget(None),
                }
            }
        }
        // The watch ended or never started: what we hold may be stale.
        let Some(c) = cache.upgrade() else { return };
        c.forget(None);
        drop(c);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use micro_core::{
        Endpoint, Service,
        metadata::{ENDPOINT_GRPC_SERVICE, ENDPOINT_IDEMPOTENT, ENDPOINT_STREAM},
    };

    use super::repeatable;

    fn is_repeatable(services: &[Service], path: &str) -> bool {
        repeatable(services).contains(path)
    }

    fn version(version: &str, marks: &[(&str, &str)]) -> Service {
        let mut service = Service::new("hw", version);
        let mut endpoint = Endpoint::new("Helloworld.Call");
        endpoint
            .metadata
            .insert(ENDPOINT_GRPC_SERVICE.into(), "helloworld.Helloworld".into());
        for (k, v) in marks {
            endpoint.metadata.insert((*k).into(), (*v).into());
        }
        service.endpoints.push(endpoint);
        service
    }

    #[test]
    fn only_a_method_every_version_marks_safe_is_repeated() {
        let path = "/helloworld.Helloworld/Call";
        let marked = version("v1", &[(ENDPOINT_IDEMPOTENT, "true")]);
        assert!(is_repeatable(std::slice::from_ref(&marked), path));
        assert!(!is_repeatable(
            std::slice::from_ref(&marked),
            "/helloworld.Helloworld/Other"
        ));
        assert!(!is_repeatable(
            std::slice::from_ref(&marked),
            "/other.Helloworld/Call"
        ));
        assert!(!is_repeatable(&[], path));
        // A roll-out where v2 dropped the mark, or made the method a client stream.
        let unmarked = version("v2", &[]);
        assert!(!is_repeatable(&[marked.clone(), unmarked], path));
        let streaming = version(
            "v2",
            &[(ENDPOINT_IDEMPOTENT, "true"), (ENDPOINT_STREAM, "bidi")],
        );
        assert!(!is_repeatable(&[marked.clone(), streaming], path));
        // A version that registers no metadata for it (an older or foreign service).
        let silent = Service::new("hw", "v3");
        assert!(!is_repeatable(&[marked.clone(), silent.clone()], path));
        // A version naming the method twice still counts once.
        let mut twice = marked.clone();
        twice.endpoints.push(twice.endpoints[0].clone());
        assert!(!is_repeatable(&[twice, silent], path));
    }
}
