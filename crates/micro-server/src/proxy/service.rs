//! [`ProxyService`]: what every JSON door calls through — a [`Client`] per namespace, the
//! descriptor cache and the auth it checks with — and `micro.proxy.Proxy`, the CLI's door.
//!
//! A call takes one path whichever door it comes through: a [`Target`] (resolve, then the
//! rules, see `target`), then an invocation (see `invoke`).

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex},
};

use futures::{Stream, StreamExt};
use micro::{Client, Strategy, status::to_status, transcode};
use micro_core::{
    Error, Registry,
    auth::Resource,
    metadata::{AUTHORIZATION_HEADER, DEFAULT_NAMESPACE, NAMESPACE_HEADER},
};
use micro_proto::proxy::{self as pb, proxy_server};
use tonic::{Request, Response, Status};

use super::{DescriptorCache, Fallback, Target};
use crate::{
    auth::{Authority, Caller},
    metrics::{ClientSource, Metrics},
};

const ID: &str = "micro.proxy";

/// The most namespaces the proxy keeps a client for at once.
pub const MAX_CLIENTS: usize = 256;

/// Headers only the platform sets on a call it passes to a service: who calls, in which
/// namespace, from where, for which service. Every proxy door drops a caller's own.
pub const PLATFORM_HEADERS: &[&str] = &[
    NAMESPACE_HEADER,
    AUTHORIZATION_HEADER,
    crate::auth::PEER_HEADER,
    crate::auth::PEER_PROOF_HEADER,
    super::transparent::SERVICE_HEADER,
    crate::services::FORWARDED_HEADER,
];

/// Calls any registered endpoint with JSON.
#[derive(Clone)]
pub struct ProxyService {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Arc<dyn Registry>,
    strategy: Strategy,
    clients: Mutex<HashMap<String, Client>>,
    descriptors: DescriptorCache,
    authority: Option<Authority>,
    metrics: Metrics,
    /// The platform's stop, which ends the streams the proxy opened.
    stopping: std::sync::OnceLock<crate::stopping::Stopping>,
}

/// The figures of a proxy's clients, for its metrics (a weak reference: the metrics live in
/// the proxy they read).
struct ProxyClients(std::sync::Weak<Inner>);

impl ClientSource for ProxyClients {
    fn client_stats(&self) -> Vec<(String, micro::client::ClientStats)> {
        let Some(inner) = self.0.upgrade() else {
            return Vec::new();
        };
        let clients: Vec<(String, Client)> = inner
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(ns, c)| (ns.clone(), c.clone()))
            .collect();
        clients
            .into_iter()
            .map(|(ns, client)| (ns, client.stats()))
            .collect()
    }
}

impl ProxyService {
    /// A proxy that resolves services in `registry` and picks nodes with `strategy`.
    pub fn new(registry: Arc<dyn Registry>, strategy: Strategy) -> Self {
        Self::build(registry, strategy, None)
    }

    /// The same proxy, checking each call against `authority`'s rules (the gateway does too).
    pub fn with_authority(
        registry: Arc<dyn Registry>,
        strategy: Strategy,
        authority: Authority,
    ) -> Self {
        Self::build(registry, strategy, Some(authority))
    }

    fn build(
        registry: Arc<dyn Registry>,
        strategy: Strategy,
        authority: Option<Authority>,
    ) -> Self {
        Self {
            inner: Arc::new_cyclic(|weak| Inner {
                registry,
                strategy,
                clients: Mutex::new(HashMap::new()),
                descriptors: DescriptorCache::default(),
                authority,
                metrics: Metrics::new(ProxyClients(weak.clone())),
                stopping: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Ends the streams this proxy opens when `stopping` fires (the platform's stop).
    pub(crate) fn stops_with(&self, stopping: crate::stopping::Stopping) {
        let _ = self.inner.stopping.set(stopping);
    }

    /// The stop signal streams end with, if the platform gave one.
    pub(crate) fn stopping(&self) -> Option<crate::stopping::Stopping> {
        self.inner.stopping.get().cloned()
    }

    /// The platform's metrics, which this proxy's calls are recorded in.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The auth it checks calls with, if any.
    pub fn authority(&self) -> Option<&Authority> {
        self.inner.authority.as_ref()
    }

    /// Lets `caller` call `endpoint` of `service`, or says why not (401/403).
    pub async fn authorize(
        &self,
        caller: &Caller,
        service: &str,
        endpoint: &str,
    ) -> Result<(), Error> {
        match &self.inner.authority {
            Some(authority) => {
                authority
                    .authorize(caller, &Resource::service(service, endpoint))
                    .await
            }
            None => Ok(()),
        }
    }

    /// `services` cut down to what `caller` may call: each keeps the endpoints the rules let
    /// the caller reach, and a service with none left is dropped. What the dashboard and
    /// `/openapi.json` show, so neither tells a caller of what it may not call.
    pub async fn callable(
        &self,
        caller: &Caller,
        services: Vec<micro_core::Service>,
    ) -> Vec<micro_core::Service> {
        if self.inner.authority.is_none() {
            return services;
        }
        let mut shown = Vec::with_capacity(services.len());
        for mut service in services {
            let mut kept = Vec::with_capacity(service.endpoints.len());
            for endpoint in std::mem::take(&mut service.endpoints) {
                if self
                    .authorize(caller, &service.name, &endpoint.name)
                    .await
                    .is_ok()
                {
                    kept.push(endpoint);
                }
            }
            if !kept.is_empty() {
                service.endpoints = kept;
                shown.push(service);
            }
        }
        shown
    }

    /// The registry it resolves services in.
    pub fn registry(&self) -> &Arc<dyn Registry> {
        &self.inner.registry
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> proxy_server::ProxyServer<Self> {
        proxy_server::ProxyServer::new(self)
            .max_decoding_message_size(micro_core::limits::MAX_MESSAGE)
    }

    /// The client that finds `service` for a caller in `namespace`. The platform's services
    /// (`store`, `auth`, ...) are registered once, in `micro`, and serve every namespace: they
    /// act in the namespace the call carries. A service of the same name registered in another
    /// namespace is never picked instead, so it cannot pose as the platform (and take the
    /// secrets sent to `auth`).
    pub fn client_for(&self, namespace: &str, service: &str) -> Client {
        if crate::services::names::is_platform_service(service) {
            self.client(DEFAULT_NAMESPACE)
        } else {
            self.client(namespace)
        }
    }

    /// The client for a namespace (one per namespace, each with its own cache; at most
    /// [`MAX_CLIENTS`], so callers naming namespace after namespace — with auth off, any
    /// name goes — cannot grow the proxy without bound: a client over the limit replaces
    /// another namespace's, which starts afresh on its next call).
    pub fn client(&self, namespace: &str) -> Client {
        let mut clients = self.inner.clients.lock().unwrap_or_else(|p| p.into_inner());
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(namespace) {
            let evicted = clients
                .keys()
                .find(|ns| ns.as_str() != DEFAULT_NAMESPACE)
                .cloned();
            if let Some(ns) = evicted {
                clients.remove(&ns);
            }
        }
        clients
            .entry(namespace.to_owned())
            .or_insert_with(|| {
                Client::builder(self.inner.registry.clone())
                    .namespace(namespace)
                    .strategy(self.inner.strategy)
                    .on_behalf_of_callers()
                    .build()
            })
            .clone()
    }

    /// The cache of services' descriptors.
    pub(crate) fn descriptors(&self) -> &DescriptorCache {
        &self.inner.descriptors
    }
}

#[tonic::async_trait]
impl proxy_server::Proxy for ProxyService {
    async fn call(
        &self,
        req: Request<pb::CallRequest>,
    ) -> Result<Response<pb::CallResponse>, Status> {
        let caller = proxied_caller(&req)?;
        let body = req.into_inner();
        let target = self
            .target_of(caller, &body)
            .await
            .map_err(|e| to_status(&e))?;
        let json = self
            .call_json(&target, &body.json)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::CallResponse {
            json: json.to_string(),
        }))
    }

    type StreamStream = Pin<Box<dyn Stream<Item = Result<pb::CallResponse, Status>> + Send>>;

    async fn stream(
        &self,
        req: Request<pb::CallRequest>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let caller = proxied_caller(&req)?;
        let body = req.into_inner();
        let target = self
            .target_of(caller, &body)
            .await
            .map_err(|e| to_status(&e))?;
        if target.resolved.method.is_client_streaming() {
            return Err(to_status(&Error::bad_request(
                ID,
                format!(
                    "{} reads a stream of requests; call it over the gateway's WebSocket",
                    target.endpoint()
                ),
            )));
        }
        let request = transcode::json_to_protobuf(&target.resolved.method.input(), &body.json)
            .map_err(|e| to_status(&e))?;
        let responses = self
            .stream(&target, futures::stream::iter([request]))
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(Box::pin(responses.map(|item| {
            item.map(|json| pb::CallResponse {
                json: json.to_string(),
            })
            .map_err(|e| to_status(&e))
        }))))
    }
}

/// The node filter a caller asks for: a version and metadata pairs, bounded like metadata;
/// `None` when it asks for nothing.
pub(crate) fn filter(
    version: &str,
    selector: &HashMap<String, String>,
) -> Result<Option<micro::client::Filter>, Error> {
    micro_core::limits::metadata(ID, selector.iter())?;
    let mut filter = micro::client::Filter::default();
    let mut any = false;
    if !version.is_empty() {
        micro_core::limits::name(ID, "version", version)?;
        filter = filter.version(version);
        any = true;
    }
    for (key, value) in selector {
        filter = filter.metadata(key, value);
        any = true;
    }
    Ok(any.then_some(filter))
}

/// The nodes a caller asks for: `Micro-Version: v2` and `Micro-Select: track=canary,zone=a`
/// (node metadata pairs), as `micro call --version --select` does — HTTP headers at the
/// gateway, gRPC metadata at the transparent proxy.
pub(crate) fn node_filter(
    headers: &http::HeaderMap,
) -> Result<Option<micro::client::Filter>, Error> {
    let text = |name: &str| {
        headers
            .get(name)
            .map(|v| {
                v.to_str()
                    .map_err(|_| Error::bad_request(ID, format!("the {name} header is not text")))
            })
            .transpose()
    };
    let version = text("micro-version")?.unwrap_or("").trim().to_owned();
    let mut selector = std::collections::HashMap::new();
    if let Some(select) = text("micro-select")? {
        for pair in select.split(',').filter(|p| !p.trim().is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                Error::bad_request(
                    ID,
                    format!("Micro-Select takes key=value pairs, comma-separated; got {pair:?}"),
                )
            })?;
            selector.insert(k.trim().to_owned(), v.trim().to_owned());
        }
    }
    crate::proxy::filter(&version, &selector)
}

/// Who is calling through the proxy, and from where (for the platform's login throttle).
fn proxied_caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    let mut caller = Caller::of(req).map_err(|e| to_status(&e))?;
    caller.peer = caller.peer.or_else(|| req.remote_addr().map(|a| a.ip()));
    Ok(caller)
}

impl ProxyService {
    /// The [`Target`] a proxy request names, with its node, metadata and timeout.
    async fn target_of(&self, caller: Caller, body: &pb::CallRequest) -> Result<Target, Error> {
        if body.service.is_empty() || body.endpoint.is_empty() {
            return Err(Error::bad_request(
                ID,
                "a call needs a service and an endpoint",
            ));
        }
        micro_core::limits::metadata(ID, body.metadata.iter())?;
        let timeout = match body.timeout_ms {
            0 => None,
            ms => Some(micro_core::limits::duration_ms(
                ID,
                "timeout",
                ms,
                micro_core::limits::MAX_DURATION,
            )?),
        };
        let mut target = self
            .target(caller, &body.service, &body.endpoint, Fallback::Exact)
            .await?;
        target.timeout = timeout;
        target.address = (!body.address.is_empty()).then(|| body.address.clone());
        target.metadata = body
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        target.filter = filter(&body.version, &body.selector)?;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_naming_namespace_after_namespace_cannot_grow_the_clients() {
        let proxy = ProxyService::new(
            Arc::new(micro_core::registry::MemoryRegistry::new()),
            Strategy::default(),
        );
        proxy.client(DEFAULT_NAMESPACE);
        for i in 0..MAX_CLIENTS * 2 {
            proxy.client(&format!("ns-{i}"));
        }
        let clients = proxy.inner.clients.lock().unwrap();
        assert_eq!(clients.len(), MAX_CLIENTS);
        assert!(
            clients.contains_key(DEFAULT_NAMESPACE),
            "the platform's own namespace is never evicted"
        );
        assert!(clients.contains_key(&format!("ns-{}", MAX_CLIENTS * 2 - 1)));
    }
}
