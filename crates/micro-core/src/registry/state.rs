//! The registry's bookkeeping as pure logic: no clock, no I/O, no locks.
//!
//! Every method that depends on time takes `now`, and every change returns the [`WatchEvent`]s it
//! caused, so the same code drives the in-memory registry (on tokio's clock, paused in tests) and
//! can be tested without a runtime at all.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use super::{Node, Service, WatchAction, WatchEvent};
use crate::Error;

const ID: &str = "micro.registry";

/// Live registrations of every namespace.
#[derive(Debug, Default)]
pub struct RegistryState {
    /// namespace → service name → version → record
    namespaces: BTreeMap<String, BTreeMap<String, BTreeMap<String, Record>>>,
}

#[derive(Debug)]
struct Record {
    /// The service as registered, without nodes.
    service: Service,
    /// node id → (node, when it expires)
    nodes: BTreeMap<String, (Node, Instant)>,
}

impl Record {
    fn snapshot(&self) -> Service {
        let mut service = self.service.clone();
        service.nodes = self.nodes.values().map(|(n, _)| n.clone()).collect();
        service
    }
}

/// A change caused by an operation, tagged with the namespace it happened in.
pub(crate) type Change = (String, WatchEvent);

impl RegistryState {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the nodes of `service` until `now + ttl`. Returns the change it made, if any: a
    /// heartbeat that changes nothing returns `None`.
    pub fn register(
        &mut self,
        namespace: &str,
        service: &Service,
        ttl: Duration,
        now: Instant,
    ) -> Result<Option<Change>, Error> {
        use crate::limits::MAX_VERSIONS;
        validate(namespace, service)?;
        let expires = now + ttl;
        let services = self.namespaces.entry(namespace.to_owned()).or_default();
        // Totals, not only per call: the registry is shared by everyone in the namespace.
        let known = services
            .get(&service.name)
            .is_some_and(|v| v.contains_key(&service.version));
        if !known && services.values().map(BTreeMap::len).sum::<usize>() >= MAX_VERSIONS {
            return Err(Error::new(
                ID,
                429,
                format!(
                    "namespace {namespace:?} holds {MAX_VERSIONS} service versions, the most it may; deregister some first"
                ),
            ));
        }
        if let Some(record) = services
            .get(&service.name)
            .and_then(|v| v.get(&service.version))
        {
            let new = service
                .nodes
                .iter()
                .filter(|n| !record.nodes.contains_key(&n.id))
                .count();
            if record.nodes.len() + new > crate::limits::MAX_NODES {
                return Err(Error::new(
                    ID,
                    429,
                    format!(
                        "service {:?} version {:?} has {} nodes, the most it may",
                        service.name,
                        service.version,
                        crate::limits::MAX_NODES
                    ),
                ));
            }
        }
        let versions = services.entry(service.name.clone()).or_default();
        let mut bare = service.clone();
        bare.nodes.clear();
        let (action, changed) = match versions.get_mut(&service.version) {
            None => {
                versions.insert(
                    service.version.clone(),
                    Record {
                        service: bare,
                        nodes: BTreeMap::new(),
                    },
                );
                (WatchAction::Create, true)
            }
            Some(record) => {
                let changed = record.service != bare;
                record.service = bare;
                (WatchAction::Update, changed)
            }
        };
        let record = versions.get_mut(&service.version).expect("inserted above");
        let mut changed = changed;
        for node in &service.nodes {
            match record
                .nodes
                .insert(node.id.clone(), (node.clone(), expires))
            {
                Some((old, _)) if old == *node => {}
                _ => changed = true,
            }
        }
        Ok(changed.then(|| {
            (
                namespace.to_owned(),
                WatchEvent {
                    action,
                    service: record.snapshot(),
                },
            )
        }))
    }

    /// Removes the nodes of `service`; returns the change it made, if any.
    pub fn deregister(&mut self, namespace: &str, service: &Service) -> Option<Change> {
        let versions = self.namespaces.get_mut(namespace)?.get_mut(&service.name)?;
        let record = versions.get_mut(&service.version)?;
        let before = record.nodes.len();
        for node in &service.nodes {
            record.nodes.remove(&node.id);
        }
        if record.nodes.len() == before {
            return None;
        }
        let event = if record.nodes.is_empty() {
            let record = versions.remove(&service.version).expect("present");
            WatchEvent {
                action: WatchAction::Delete,
                service: record.snapshot(),
            }
        } else {
            WatchEvent {
                action: WatchAction::Update,
                service: record.snapshot(),
            }
        };
        self.prune(namespace, &service.name);
        Some((namespace.to_owned(), event))
    }

    /// Drops every node whose TTL has passed at `now`, returning what changed.
    pub fn expire(&mut self, now: Instant) -> Vec<Change> {
        let mut changes = Vec::new();
        for (namespace, services) in &mut self.namespaces {
            for versions in services.values_mut() {
                versions.retain(|_, record| {
                    let before = record.nodes.len();
                    let mut last = record.snapshot();
                    record.nodes.retain(|_, (_, expires)| *expires > now);
                    if record.nodes.len() == before {
                        return true;
                    }
                    if record.nodes.is_empty() {
                        // Report the version as it was last seen, minus nothing: its nodes are gone.
                        last.nodes.clear();
                        changes.push((
                            namespace.clone(),
                            WatchEvent {
                                action: WatchAction::Delete,
                                service: last,
                            },
                        ));
                        false
                    } else {
                        changes.push((
                            namespace.clone(),
                            WatchEvent {
                                action: WatchAction::Update,
                                service: record.snapshot(),
                            },
                        ));
                        true
                    }
                });
            }
            services.retain(|_, versions| !versions.is_empty());
        }
        self.namespaces.retain(|_, services| !services.is_empty());
        changes
    }

    /// The versions of `name` in `namespace` with at least one node alive at `now`.
    pub fn get(&self, namespace: &str, name: &str, now: Instant) -> Vec<Service> {
        let Some(versions) = self.namespaces.get(namespace).and_then(|s| s.get(name)) else {
            return Vec::new();
        };
        versions
            .values()
            .filter_map(|record| live(record, now))
            .collect()
    }

    /// Every service version alive at `now` in `namespace` (or all namespaces for `*`).
    pub fn list(&self, namespace: &str, now: Instant) -> Vec<Service> {
        let mut out: Vec<Service> = self
            .namespaces
            .iter()
            .filter(|(ns, _)| {
                namespace == crate::metadata::ALL_NAMESPACES || ns.as_str() == namespace
            })
            .flat_map(|(_, services)| services.values())
            .flat_map(|versions| versions.values())
            .filter_map(|record| live(record, now))
            .collect();
        out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        out
    }

    fn prune(&mut self, namespace: &str, name: &str) {
        if let Some(services) = self.namespaces.get_mut(namespace) {
            if services.get(name).is_some_and(|v| v.is_empty()) {
                services.remove(name);
            }
            if services.is_empty() {
                self.namespaces.remove(namespace);
            }
        }
    }
}

fn live(record: &Record, now: Instant) -> Option<Service> {
    let mut service = record.service.clone();
    service.nodes = record
        .nodes
        .values()
        .filter(|(_, expires)| *expires > now)
        .map(|(n, _)| n.clone())
        .collect();
    (!service.nodes.is_empty()).then_some(service)
}

fn validate(namespace: &str, service: &Service) -> Result<(), Error> {
    if namespace.is_empty() || namespace == crate::metadata::ALL_NAMESPACES {
        return Err(Error::bad_request(
            ID,
            format!("cannot register in namespace {namespace:?}"),
        ));
    }
    if service.name.is_empty() {
        return Err(Error::bad_request(ID, "a service needs a name to register"));
    }
    if service.nodes.is_empty() {
        return Err(Error::bad_request(
            ID,
            format!("service {:?} has no nodes to register", service.name),
        ));
    }
    bounded(service)?;
    if let Some(node) = service
        .nodes
        .iter()
        .find(|n| n.id.is_empty() || n.address.is_empty())
    {
        return Err(Error::bad_request(
            ID,
            format!(
                "node {:?} of service {:?} needs an id and an address",
                node.id, service.name
            ),
        ));
    }
    Ok(())
}

/// Refuses a registration past the [`limits`](crate::limits): long names, too many nodes or
/// endpoints, big metadata, or schemas too deep or too large (they are drawn and walked by the
/// dashboard, the CLI and the gateway).
fn bounded(service: &Service) -> Result<(), Error> {
    use crate::limits::{self, MAX_ENDPOINTS, MAX_JSON_DEPTH, MAX_NODES, MAX_SCHEMA_FIELDS};
    limits::name(ID, "service name", &service.name)?;
    if !service.version.is_empty() {
        limits::name(ID, "service version", &service.version)?;
    }
    limits::metadata(ID, service.metadata.iter())?;
    if service.nodes.len() > MAX_NODES || service.endpoints.len() > MAX_ENDPOINTS {
        return Err(Error::bad_request(
            ID,
            format!(
                "service {:?} registers {} nodes and {} endpoints; the limits are {MAX_NODES} and {MAX_ENDPOINTS}",
                service.name,
                service.nodes.len(),
                service.endpoints.len()
            ),
        ));
    }
    for node in &service.nodes {
        limits::name(ID, "node id", &node.id)?;
        limits::name(ID, "node address", &node.address)?;
        limits::metadata(ID, node.metadata.iter())?;
    }
    let mut fields = 0usize;
    for endpoint in &service.endpoints {
        limits::name(ID, "endpoint name", &endpoint.name)?;
        limits::metadata(ID, endpoint.metadata.iter())?;
        for schema in [&endpoint.request, &endpoint.response]
            .into_iter()
            .flatten()
        {
            // Walked without recursion: depth and size are known before anyone recurses.
            let mut stack = vec![(schema, 0usize)];
            while let Some((value, depth)) = stack.pop() {
                fields += 1;
                if depth > MAX_JSON_DEPTH || fields > MAX_SCHEMA_FIELDS {
                    return Err(Error::bad_request(
                        ID,
                        format!(
                            "the schemas of {:?} nest deeper than {MAX_JSON_DEPTH} or hold more than {MAX_SCHEMA_FIELDS} fields",
                            endpoint.name
                        ),
                    ));
                }
                if value.name.len() > limits::MAX_NAME || value.r#type.len() > limits::MAX_NAME {
                    return Err(Error::bad_request(
                        ID,
                        format!(
                            "a field name or type in the schemas of {:?} is longer than {} bytes",
                            endpoint.name,
                            limits::MAX_NAME
                        ),
                    ));
                }
                stack.extend(value.values.iter().map(|v| (v, depth + 1)));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(version: &str, nodes: &[&str]) -> Service {
        let mut s = Service::new("hw", version);
        for n in nodes {
            s.nodes
                .push(Node::new(*n, format!("127.0.0.1:{}", n.len())));
        }
        s
    }

    #[test]
    fn registrations_past_the_limits_are_refused() {
        let mut st = RegistryState::new();
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        let mut deep = crate::Value::default();
        for _ in 0..100 {
            deep = crate::Value {
                name: "f".into(),
                r#type: "m".into(),
                values: vec![deep],
            };
        }
        let mut s = svc("v1", &["a"]);
        s.endpoints.push(crate::Endpoint {
            request: Some(deep),
            ..crate::Endpoint::new("X.Y")
        });
        let err = st.register("micro", &s, ttl, t0).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(err.detail.contains("nest deeper"), "{}", err.detail);
        let mut s = svc("v1", &["a"]);
        s.name = "n".repeat(300);
        assert_eq!(st.register("micro", &s, ttl, t0).unwrap_err().code, 400);
        let mut s = svc("v1", &["a"]);
        for i in 0..100 {
            s.metadata.insert(format!("k{i}"), "v".into());
        }
        assert_eq!(st.register("micro", &s, ttl, t0).unwrap_err().code, 400);
        // Nodes add up across registrations, up to the limit.
        for i in 0..crate::limits::MAX_NODES {
            let one = svc("v9", &[&format!("n{i}")]);
            st.register("micro", &one, ttl, t0).unwrap();
        }
        let err = st
            .register("micro", &svc("v9", &["one-too-many"]), ttl, t0)
            .unwrap_err();
        assert_eq!(err.code, 429, "{err:?}");
        st.register("micro", &svc("v9", &["n0"]), ttl, t0)
            .expect("a known node heartbeats");
    }

    #[test]
    fn heartbeat_without_change_emits_nothing() {
        let mut st = RegistryState::new();
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        let first = st.register("micro", &svc("v1", &["a"]), ttl, t0).unwrap();
        assert_eq!(first.unwrap().1.action, WatchAction::Create);
        assert!(
            st.register(
                "micro",
                &svc("v1", &["a"]),
                ttl,
                t0 + Duration::from_secs(5)
            )
            .unwrap()
            .is_none()
        );
        let joined = st
            .register("micro", &svc("v1", &["b"]), ttl, t0)
            .unwrap()
            .unwrap();
        assert_eq!(joined.1.action, WatchAction::Update);
        assert_eq!(joined.1.service.nodes.len(), 2);
    }

    #[test]
    fn heartbeat_extends_ttl() {
        let mut st = RegistryState::new();
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        st.register("micro", &svc("v1", &["a"]), ttl, t0).unwrap();
        st.register(
            "micro",
            &svc("v1", &["a"]),
            ttl,
            t0 + Duration::from_secs(8),
        )
        .unwrap();
        assert!(st.expire(t0 + Duration::from_secs(12)).is_empty());
        assert_eq!(st.get("micro", "hw", t0 + Duration::from_secs(12)).len(), 1);
        let gone = st.expire(t0 + Duration::from_secs(19));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].1.action, WatchAction::Delete);
        assert!(
            st.get("micro", "hw", t0 + Duration::from_secs(19))
                .is_empty()
        );
    }

    #[test]
    fn rejects_what_cannot_be_found_again() {
        let mut st = RegistryState::new();
        let now = Instant::now();
        let ttl = Duration::from_secs(1);
        assert_eq!(
            st.register("micro", &svc("v1", &[]), ttl, now)
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            st.register("*", &svc("v1", &["a"]), ttl, now)
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            st.register("micro", &Service::new("", "v"), ttl, now)
                .unwrap_err()
                .code,
            400
        );
    }
}
