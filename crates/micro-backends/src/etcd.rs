//! [`EtcdRegistry`]: service discovery on etcd, shared by every server pointed at it.
//!
//! Each node is one key, `/micro/registry/NS/NAME/VERSION/NODE` (each name escaped so no `/`
//! can reach another's keys), holding the service with that one node as JSON and attached to a
//! lease of the registration's TTL: a heartbeat is a new registration on a new lease, and etcd
//! deletes a node whose lease ran out. Reads and watches put the nodes back together with the
//! embedded registry's own bookkeeping ([`RegistryState`]), so every backend merges versions,
//! validates and sorts alike; a watch reads the namespace at a revision and follows etcd's
//! watch from the next one, turning node puts and deletes into create, update and delete
//! events of service versions.
//!
//! The client is `micro_proto::etcd`, generated from etcd's protos with protox: no protoc.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use micro_core::{
    Error,
    metadata::ALL_NAMESPACES,
    registry::{Registry, RegistryState, Service, WatchAction, WatchEvent, Watcher},
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tonic::transport::Channel;

use micro_proto::etcd::{self as api, client, client::segment};

use api::{
    DeleteRangeRequest, LeaseGrantRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
    WatchCreateRequest, WatchRequest, event::EventType, kv_client::KvClient,
    lease_client::LeaseClient, request_op, watch_client::WatchClient, watch_request,
};

const ID: &str = "micro.registry";
const ROOT: &str = "/micro/registry/";

/// How long nodes read back from etcd count as alive for the bookkeeping: etcd itself expires
/// them, so this only has to outlast one read.
const READ_TTL: Duration = Duration::from_secs(365 * 86_400);

/// The registry on etcd.
#[derive(Clone, Debug)]
pub struct EtcdRegistry {
    channel: Channel,
}

/// What a node's key holds.
#[derive(Serialize, Deserialize)]
struct Stored {
    namespace: String,
    service: Service,
}

fn namespace_prefix(namespace: &str) -> String {
    if namespace == ALL_NAMESPACES {
        ROOT.to_owned()
    } else {
        format!("{ROOT}{}/", segment(namespace))
    }
}

fn service_prefix(namespace: &str, name: &str) -> String {
    format!("{}{}/", namespace_prefix(namespace), segment(name))
}

fn node_key(namespace: &str, service: &Service, node: &str) -> String {
    format!(
        "{}{}/{}",
        service_prefix(namespace, &service.name),
        segment(&service.version),
        segment(node)
    )
}

/// The end of the key range of every key starting with `prefix` (`\0`: to the end).
fn range_end(prefix: &str) -> Vec<u8> {
    crate::successor(prefix.as_bytes()).unwrap_or_else(|| vec![0])
}

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::unavailable(ID, format!("etcd: {e}"))
}

fn status(e: tonic::Status) -> Error {
    match e.code() {
        tonic::Code::InvalidArgument => {
            Error::bad_request(ID, format!("etcd refused it: {}", e.message()))
        }
        _ => unavailable(e.message()),
    }
}

/// The most a registry read may hold: every node of a namespace, schemas included.
const MAX_READ: usize = 256 * 1024 * 1024;

fn decode(value: &[u8]) -> Option<Stored> {
    serde_json::from_slice(value).ok()
}

impl EtcdRegistry {
    /// Connects to the comma-separated etcd client `addresses` (`host:port` or URLs).
    pub async fn connect(addresses: &str) -> Result<Self, Error> {
        let registry = Self {
            channel: client::channel(addresses).map_err(|e| Error::bad_request(ID, e))?,
        };
        // Fail at start when etcd is not there, rather than at the first registration.
        registry.range(ROOT, true).await?;
        Ok(registry)
    }

    /// Every node under `prefix` (keys only when `keys_only`), and the revision read at.
    async fn range(
        &self,
        prefix: &str,
        keys_only: bool,
    ) -> Result<(Vec<api::KeyValue>, i64), Error> {
        let response = KvClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_READ)
            .range(RangeRequest {
                key: prefix.as_bytes().to_vec(),
                range_end: range_end(prefix),
                keys_only,
                ..RangeRequest::default()
            })
            .await
            .map_err(status)?
            .into_inner();
        let revision = response.header.map_or(0, |h| h.revision);
        Ok((response.kvs, revision))
    }

    /// Refuses a registration past the namespace's totals (versions, nodes per version), as the
    /// embedded registry does — counted from the keys, so a namespace cannot fill etcd.
    async fn check_totals(&self, namespace: &str, service: &Service) -> Result<(), Error> {
        use micro_core::limits::{MAX_NODES, MAX_VERSIONS};
        let prefix = namespace_prefix(namespace);
        let (kvs, _) = self.range(&prefix, true).await?;
        let mut versions = std::collections::BTreeMap::<
            (String, String),
            std::collections::BTreeSet<String>,
        >::new();
        for kv in &kvs {
            let key = String::from_utf8_lossy(&kv.key);
            let mut parts = key.get(prefix.len()..).unwrap_or_default().split('/');
            if let (Some(name), Some(version), Some(node)) =
                (parts.next(), parts.next(), parts.next())
            {
                versions
                    .entry((name.to_owned(), version.to_owned()))
                    .or_default()
                    .insert(node.to_owned());
            }
        }
        let this = (segment(&service.name), segment(&service.version));
        let Some(nodes) = versions.get(&this) else {
            if versions.len() >= MAX_VERSIONS {
                return Err(Error::new(
                    ID,
                    429,
                    format!(
                        "namespace {namespace:?} holds {MAX_VERSIONS} service versions, the most it may; deregister some first"
                    ),
                ));
            }
            return Ok(());
        };
        let new = service
            .nodes
            .iter()
            .filter(|n| !nodes.contains(&segment(&n.id)))
            .count();
        if nodes.len() + new > MAX_NODES {
            return Err(Error::new(
                ID,
                429,
                format!(
                    "service {:?} version {:?} has {MAX_NODES} nodes, the most it may",
                    service.name, service.version
                ),
            ));
        }
        Ok(())
    }

    /// The live registrations under `prefix`, put back together.
    async fn state(&self, prefix: &str) -> Result<(RegistryState, i64), Error> {
        let (kvs, revision) = self.range(prefix, false).await?;
        let mut state = RegistryState::new();
        let now = Instant::now();
        for kv in kvs {
            if let Some(stored) = decode(&kv.value) {
                // Stored by a register that validated it; a damaged entry is skipped.
                let _ = state.register(&stored.namespace, &stored.service, READ_TTL, now);
            }
        }
        Ok((state, revision))
    }
}

/// A service version: namespace, name, version.
type VersionKey = (String, String, String);

fn version_of(state: &RegistryState, key: &VersionKey, now: Instant) -> Option<Service> {
    state
        .get(&key.0, &key.1, now)
        .into_iter()
        .find(|s| s.version == key.2)
}

/// The watch events that etcd's node `events` make, applied to `state`. The events of one
/// revision are one registration or deregistration (a transaction), so each service version
/// they touch yields one event: created, updated or deleted, compared with before.
fn changes(state: &mut RegistryState, events: Vec<api::Event>) -> Vec<WatchEvent> {
    let now = Instant::now();
    let mut out = Vec::new();
    let mut events = events.into_iter().peekable();
    while let Some(first) = events.next() {
        let revision = |e: &api::Event| e.kv.as_ref().map_or(0, |kv| kv.mod_revision);
        let mut batch = vec![first];
        while let Some(next) = events.next_if(|e| revision(e) == revision(&batch[0])) {
            batch.push(next);
        }
        let mut touched: Vec<(VersionKey, Option<Service>)> = Vec::new();
        for event in batch {
            let delete = event.r#type == EventType::Delete as i32;
            let kv = if delete { &event.prev_kv } else { &event.kv };
            let Some(stored) = kv.as_ref().and_then(|kv| decode(&kv.value)) else {
                continue;
            };
            let key = (
                stored.namespace.clone(),
                stored.service.name.clone(),
                stored.service.version.clone(),
            );
            if !touched.iter().any(|(k, _)| *k == key) {
                let before = version_of(state, &key, now);
                touched.push((key, before));
            }
            if delete {
                state.deregister(&stored.namespace, &stored.service);
            } else {
                let _ = state.register(&stored.namespace, &stored.service, READ_TTL, now);
            }
        }
        for (key, before) in touched {
            let after = version_of(state, &key, now);
            let event = match (before, after) {
                (None, Some(service)) => WatchEvent {
                    action: WatchAction::Create,
                    service,
                },
                (Some(before), Some(service)) if before != service => WatchEvent {
                    action: WatchAction::Update,
                    service,
                },
                (Some(service), None) => WatchEvent {
                    action: WatchAction::Delete,
                    service,
                },
                _ => continue,
            };
            out.push(event);
        }
    }
    out
}

#[async_trait]
impl Registry for EtcdRegistry {
    async fn register(
        &self,
        namespace: &str,
        service: &Service,
        ttl: Duration,
    ) -> Result<(), Error> {
        // The embedded registry's checks, on a scratch copy: one set of rules for every backend.
        RegistryState::new().register(namespace, service, ttl, Instant::now())?;
        self.check_totals(namespace, service).await?;
        let seconds = client::lease_seconds(ttl);
        let lease = LeaseClient::new(self.channel.clone())
            .lease_grant(LeaseGrantRequest {
                ttl: seconds,
                id: 0,
            })
            .await
            .map_err(status)?
            .into_inner();
        if !lease.error.is_empty() {
            return Err(unavailable(lease.error));
        }
        let success = service
            .nodes
            .iter()
            .map(|node| {
                let mut one = service.clone();
                one.nodes = vec![node.clone()];
                let value = serde_json::to_vec(&Stored {
                    namespace: namespace.to_owned(),
                    service: one,
                })
                .map_err(|e| Error::internal(ID, format!("encoding a node: {e}")))?;
                Ok(RequestOp {
                    request: Some(request_op::Request::RequestPut(PutRequest {
                        key: node_key(namespace, service, &node.id).into_bytes(),
                        value,
                        lease: lease.id,
                        prev_kv: false,
                    })),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        KvClient::new(self.channel.clone())
            .txn(TxnRequest {
                compare: Vec::new(),
                success,
                failure: Vec::new(),
            })
            .await
            .map_err(status)?;
        Ok(())
    }

    async fn deregister(&self, namespace: &str, service: &Service) -> Result<(), Error> {
        let success = service
            .nodes
            .iter()
            .map(|node| RequestOp {
                request: Some(request_op::Request::RequestDeleteRange(
                    DeleteRangeRequest {
                        key: node_key(namespace, service, &node.id).into_bytes(),
                        range_end: Vec::new(),
                        prev_kv: false,
                    },
                )),
            })
            .collect();
        KvClient::new(self.channel.clone())
            .txn(TxnRequest {
                compare: Vec::new(),
                success,
                failure: Vec::new(),
            })
            .await
            .map_err(status)?;
        Ok(())
    }

    async fn get_service(&self, namespace: &str, name: &str) -> Result<Vec<Service>, Error> {
        let (state, _) = self.state(&service_prefix(namespace, name)).await?;
        let found = state.get(namespace, name, Instant::now());
        if found.is_empty() {
            return Err(Error::not_found(
                ID,
                format!("Service \"{name}\" not found"),
            ));
        }
        Ok(found)
    }

    async fn list_services(&self, namespace: &str) -> Result<Vec<Service>, Error> {
        let (state, _) = self.state(&namespace_prefix(namespace)).await?;
        Ok(state.list(namespace, Instant::now()))
    }

    async fn watch(&self, namespace: &str, service: Option<&str>) -> Result<Watcher, Error> {
        let prefix = match service {
            Some(name) => service_prefix(namespace, name),
            None => namespace_prefix(namespace),
        };
        let (mut state, revision) = self.state(&prefix).await?;
        let (requests, rx) = mpsc::channel(1);
        requests
            .send(WatchRequest {
                request_union: Some(watch_request::RequestUnion::CreateRequest(
                    WatchCreateRequest {
                        key: prefix.as_bytes().to_vec(),
                        range_end: range_end(&prefix),
                        start_revision: revision + 1,
                        progress_notify: false,
                        prev_kv: true,
                    },
                )),
            })
            .await
            .map_err(unavailable)?;
        let mut responses = WatchClient::new(self.channel.clone())
            .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .map_err(status)?
            .into_inner();
        // Live once etcd confirms the watch: a change made after this returns is seen.
        match responses.message().await.map_err(status)? {
            Some(r) if r.created && !r.canceled => {}
            other => {
                return Err(unavailable(format!(
                    "the watch was not created: {:?}",
                    other.map(|r| r.cancel_reason)
                )));
            }
        }
        let (out, events) = mpsc::channel::<Result<WatchEvent, Error>>(64);
        let requests = Arc::new(requests);
        tokio::spawn(async move {
            // Holding the request side keeps the watch open until the watcher is dropped.
            let _requests = requests;
            loop {
                let response = tokio::select! {
                    () = out.closed() => return,
                    r = responses.message() => r,
                };
                let response = match response {
                    Ok(Some(r)) => r,
                    Ok(None) => {
                        let _ = out
                            .send(Err(unavailable("the watch ended; re-read the registry")))
                            .await;
                        return;
                    }
                    Err(e) => {
                        let _ = out.send(Err(status(e))).await;
                        return;
                    }
                };
                if response.canceled {
                    let _ = out
                        .send(Err(unavailable(format!(
                            "the watch was cancelled ({}); re-read the registry",
                            response.cancel_reason
                        ))))
                        .await;
                    return;
                }
                for event in changes(&mut state, response.events) {
                    if out.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(
            events,
        )))
    }
}
