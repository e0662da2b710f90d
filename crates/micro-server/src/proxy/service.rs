//! [`ProxyService`]: `micro.proxy.Proxy`, and the resolution every JSON edge shares.
//!
//! Resolution turns (namespace, service, endpoint) into a gRPC path and the request and response
//! descriptors: the registry (through a per-namespace [`Client`] and its cache) says which
//! versions exist and what endpoints they registered, and the service's own reflection (cached)
//! supplies the descriptors to transcode with.

use std::{
    collections::HashMap,
    pin::Pin,
    str::FromStr,
    sync::{Arc, Mutex},
    time::Duration,
    time::Instant,
};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::uri::PathAndQuery;
use micro::{
    Client, Strategy,
    client::ServiceChannel,
    codec::BytesCodec,
    status::{from_status, to_status},
    transcode,
};
use micro_core::{
    Error, Registry,
    auth::Resource,
    metadata::{AUTHORIZATION_HEADER, DEFAULT_NAMESPACE, ENDPOINT_GRPC_SERVICE, NAMESPACE_HEADER},
};
use micro_proto::proxy::{self as pb, proxy_server};
use prost_reflect::MethodDescriptor;
use tonic::{
    Request, Response, Status,
    metadata::{MetadataKey, MetadataValue},
};

use super::DescriptorCache;
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

/// Metadata the JSON proxy sets itself: a caller may not choose them.
const RESERVED: &[&str] = &[
    NAMESPACE_HEADER,
    AUTHORIZATION_HEADER,
    crate::auth::PEER_HEADER,
    crate::auth::PEER_PROOF_HEADER,
    super::transparent::SERVICE_HEADER,
    crate::services::FORWARDED_HEADER,
    "content-type",
    "te",
    "host",
    "user-agent",
    "cookie",
];

/// An endpoint ready to call.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// `/<package>.<Service>/<Method>`.
    pub path: PathAndQuery,
    /// Request and response descriptors.
    pub method: MethodDescriptor,
}

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
            }),
        }
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
    }

    /// The client that finds `service` for a caller in `namespace`. The platform's services
    /// (`store`, `auth`, ...) are registered once, in `micro`, and serve every namespace: they
    /// act in the namespace the call carries. A service of the same name registered in another
    /// namespace is never picked instead, so it cannot pose as the platform (and take the
    /// secrets sent to `auth`).
    pub fn client_for(&self, namespace: &str, service: &str) -> Client {
        if crate::is_platform_service(service) {
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

    /// Finds `endpoint` (`Service.Method`) of `service` and its descriptors.
    pub async fn resolve(
        &self,
        namespace: &str,
        service: &str,
        endpoint: &str,
    ) -> Result<Resolved, Error> {
        let client = self.client_for(namespace, service);
        let versions = client.lookup(service).await.map_err(|e| {
            if e.code == 404 {
                Error::not_found(ID, format!("Service \"{service}\" not found"))
            } else {
                e
            }
        })?;
        let Some((version, registered)) = versions
            .iter()
            .find_map(|v| v.endpoint(endpoint).map(|e| (v, e)))
        else {
            let mut names: Vec<&str> = versions
                .iter()
                .flat_map(|v| v.endpoints.iter().map(|e| e.name.as_str()))
                .collect();
            names.sort_unstable();
            names.dedup();
            return Err(Error::not_found(
                ID,
                format!(
                    "Endpoint \"{endpoint}\" not found on service \"{service}\"; it has: {}",
                    if names.is_empty() {
                        "no endpoints".to_owned()
                    } else {
                        names.join(", ")
                    }
                ),
            ));
        };
        let (_, method_name) = endpoint.split_once('.').unwrap_or(("", endpoint));
        let grpc_service = match registered.metadata.get(ENDPOINT_GRPC_SERVICE) {
            Some(s) => s.clone(),
            None => {
                // Registered without our metadata: the package from node metadata, else none.
                let package = version
                    .nodes
                    .iter()
                    .find_map(|n| n.metadata.get(micro_core::metadata::NODE_PACKAGE))
                    .map(|p| format!("{p}."))
                    .unwrap_or_default();
                format!(
                    "{package}{}",
                    endpoint.split_once('.').map_or(endpoint, |(s, _)| s)
                )
            }
        };
        let pool = self
            .inner
            .descriptors
            .get(&client, namespace, version, &grpc_service)
            .await?;
        let method = pool
            .get_service_by_name(&grpc_service)
            .and_then(|s| s.methods().find(|m| m.name() == method_name))
            .ok_or_else(|| {
                Error::not_found(
                    ID,
                    format!("service \"{service}\" serves no method {grpc_service}/{method_name}"),
                )
            })?;
        let path =
            PathAndQuery::from_str(&format!("/{grpc_service}/{method_name}")).map_err(|e| {
                Error::bad_request(
                    ID,
                    format!("endpoint {endpoint:?} does not make a gRPC path: {e}"),
                )
            })?;
        Ok(Resolved { path, method })
    }

    /// Calls a unary endpoint with a JSON request and returns the JSON response.
    pub async fn call_json(&self, call: JsonCall<'_>) -> Result<serde_json::Value, Error> {
        let resolved = self
            .resolve(call.namespace, call.service, call.endpoint)
            .await?;
        self.call_resolved(&call, &resolved).await
    }

    /// [`Self::call_json`] for an endpoint already resolved.
    pub async fn call_resolved(
        &self,
        call: &JsonCall<'_>,
        resolved: &Resolved,
    ) -> Result<serde_json::Value, Error> {
        if resolved.method.is_client_streaming() || resolved.method.is_server_streaming() {
            return Err(Error::bad_request(
                ID,
                format!(
                    "{} is a streaming endpoint; use micro stream",
                    call.endpoint
                ),
            ));
        }
        let body = transcode::json_to_protobuf(&resolved.method.input(), call.json)?;
        let response = self.call_protobuf(call, resolved, body).await?;
        transcode::protobuf_to_json(&resolved.method.output(), &response)
    }

    /// A unary call with an encoded request message; answers the encoded response. The
    /// call's `json` is ignored.
    pub async fn call_protobuf(
        &self,
        call: &JsonCall<'_>,
        resolved: &Resolved,
        message: Bytes,
    ) -> Result<Bytes, Error> {
        let (mut grpc, request) = self.prepare(call, message).await?;
        let started = Instant::now();
        let answer = grpc.unary(request, resolved.path.clone(), BytesCodec).await;
        self.measure(call, &answer, started);
        Ok(answer
            .map_err(|s| from_status(call.service, &s))?
            .into_inner())
    }

    /// Opens a stream to any kind of endpoint: `requests` are the protobuf request messages
    /// (one for a server-streaming endpoint), and the answer yields each response as JSON as
    /// it arrives. The stream ends after the service's last message, or with its error.
    pub async fn stream_resolved<S>(
        &self,
        call: &JsonCall<'_>,
        resolved: &Resolved,
        requests: S,
    ) -> Result<JsonStream, Error>
    where
        S: Stream<Item = Bytes> + Send + 'static,
    {
        let (mut grpc, request) = self.prepare(call, requests).await?;
        let service = call.service.to_owned();
        let output = resolved.method.output();
        // A stream counts once, when it opens (its length is the caller's business).
        let started = Instant::now();
        let opened = grpc
            .streaming(request, resolved.path.clone(), BytesCodec)
            .await;
        self.measure(call, &opened, started);
        let responses = opened.map_err(|s| from_status(&service, &s))?.into_inner();
        Ok(Box::pin(responses.map(move |item| match item {
            Ok(bytes) => transcode::protobuf_to_json(&output, &bytes),
            Err(status) => Err(from_status(&service, &status)),
        })))
    }

    /// Records a call that began at `started` and ended with `answer` in the metrics.
    fn measure<T>(&self, call: &JsonCall<'_>, answer: &Result<T, Status>, started: Instant) {
        let code = answer
            .as_ref()
            .map_or_else(|s| s.code(), |_| tonic::Code::Ok);
        self.inner
            .metrics
            .call(call.service, call.endpoint, code, started.elapsed());
    }

    /// A ready gRPC client for the call's target and the request with the call's metadata.
    async fn prepare<T>(
        &self,
        call: &JsonCall<'_>,
        message: T,
    ) -> Result<(tonic::client::Grpc<ServiceChannel>, Request<T>), Error> {
        let client = self.client_for(call.namespace, call.service);
        let channel = match call.address {
            Some(address) => {
                // Only a node the service registered: the server dials nothing else for a
                // caller.
                let versions = client.lookup(call.service).await?;
                if !versions
                    .iter()
                    .flat_map(|v| &v.nodes)
                    .any(|n| n.address == address)
                {
                    return Err(Error::bad_request(
                        ID,
                        format!(
                            "{address:?} is not a registered node of service \"{}\"",
                            call.service
                        ),
                    ));
                }
                client.node(address)
            }
            None => client.service(call.service),
        };
        let channel = match call.timeout {
            Some(t) => channel.with_timeout(t),
            None => channel,
        };
        let mut grpc = tonic::client::Grpc::new(channel);
        let mut request = Request::new(message);
        // The service sees who is calling and in which namespace, as the proxy did.
        let ns = MetadataValue::try_from(call.namespace)
            .map_err(|_| Error::bad_request(ID, "invalid namespace"))?;
        request.metadata_mut().insert(NAMESPACE_HEADER, ns);
        // The platform's own services get the caller's token; any other service one that opens
        // it alone, which it cannot replay elsewhere — or none, never the caller's own.
        let token = match (call.token, &self.inner.authority) {
            (Some(token), Some(authority)) if !crate::is_platform_service(call.service) => {
                authority.pass_on(token, call.namespace, call.service)
            }
            (token, _) => token.map(str::to_owned),
        };
        if let Some(token) = token {
            let bearer = MetadataValue::try_from(format!("Bearer {token}"))
                .map_err(|_| Error::unauthorized(ID, "the token is not valid header text"))?;
            request.metadata_mut().insert(AUTHORIZATION_HEADER, bearer);
        }
        for (k, v) in &call.metadata {
            let lower = k.to_ascii_lowercase();
            if RESERVED.contains(&lower.as_str())
                || lower.starts_with("grpc-")
                || lower.starts_with(':')
            {
                return Err(Error::bad_request(
                    ID,
                    format!("metadata {k:?} is set by the proxy, not by the caller"),
                ));
            }
            let key = MetadataKey::from_str(&lower)
                .map_err(|_| Error::bad_request(ID, format!("invalid metadata key {k:?}")))?;
            let value = MetadataValue::try_from(v.as_str())
                .map_err(|_| Error::bad_request(ID, format!("invalid metadata value for {k:?}")))?;
            request.metadata_mut().insert(key, value);
        }
        // Only to the platform's own services: a tenant's service must not collect proofs to
        // replay.
        if let (Some(peer), Some(authority)) = (call.peer, &self.inner.authority)
            && crate::is_platform_service(call.service)
            && let (Ok(ip), Ok(proof)) = (
                MetadataValue::try_from(peer.to_string()),
                MetadataValue::try_from(authority.vouch(peer)),
            )
        {
            request.metadata_mut().insert(crate::auth::PEER_HEADER, ip);
            request
                .metadata_mut()
                .insert(crate::auth::PEER_PROOF_HEADER, proof);
        }
        grpc.ready().await.map_err(|e| {
            Error::unavailable(
                ID,
                format!("service \"{}\" is not ready: {e}", call.service),
            )
        })?;
        Ok((grpc, request))
    }
}

/// Responses of a streaming call, as JSON.
pub type JsonStream = Pin<Box<dyn Stream<Item = Result<serde_json::Value, Error>> + Send>>;

/// One JSON call through the proxy.
#[derive(Debug, Clone)]
pub struct JsonCall<'a> {
    /// The caller's namespace.
    pub namespace: &'a str,
    /// The service name.
    pub service: &'a str,
    /// `Service.Method`.
    pub endpoint: &'a str,
    /// The request JSON.
    pub json: &'a str,
    /// A node to call instead of selecting one.
    pub address: Option<&'a str>,
    /// Metadata for the service.
    pub metadata: Vec<(String, String)>,
    /// Per-call timeout.
    pub timeout: Option<Duration>,
    /// The caller's token, passed on to the service.
    pub token: Option<&'a str>,
    /// Where the caller is, passed on (with this process's proof) so that the platform counts
    /// failed logins per real peer, not per gateway.
    pub peer: Option<std::net::IpAddr>,
}

#[tonic::async_trait]
impl proxy_server::Proxy for ProxyService {
    async fn call(
        &self,
        req: Request<pb::CallRequest>,
    ) -> Result<Response<pb::CallResponse>, Status> {
        let caller = proxied_caller(&req)?;
        let body = req.into_inner();
        let call = call_of(&caller, &body).map_err(|e| to_status(&e))?;
        self.authorize(&caller, call.service, call.endpoint)
            .await
            .map_err(|e| to_status(&e))?;
        let json = self.call_json(call).await.map_err(|e| to_status(&e))?;
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
        let call = call_of(&caller, &body).map_err(|e| to_status(&e))?;
        self.authorize(&caller, call.service, call.endpoint)
            .await
            .map_err(|e| to_status(&e))?;
        let resolved = self
            .resolve(&caller.namespace, call.service, call.endpoint)
            .await
            .map_err(|e| to_status(&e))?;
        if resolved.method.is_client_streaming() {
            return Err(to_status(&Error::bad_request(
                ID,
                format!(
                    "{} reads a stream of requests; call it over the gateway's WebSocket",
                    call.endpoint
                ),
            )));
        }
        let request = transcode::json_to_protobuf(&resolved.method.input(), call.json)
            .map_err(|e| to_status(&e))?;
        let responses = self
            .stream_resolved(&call, &resolved, futures::stream::iter([request]))
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

/// Who is calling through the proxy, and from where (for the platform's login throttle).
fn proxied_caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    let mut caller = Caller::of(req).map_err(|e| to_status(&e))?;
    caller.peer = caller.peer.or_else(|| req.remote_addr().map(|a| a.ip()));
    Ok(caller)
}

/// The [`JsonCall`] a proxy request describes.
fn call_of<'a>(caller: &'a Caller, body: &'a pb::CallRequest) -> Result<JsonCall<'a>, Error> {
    if body.service.is_empty() || body.endpoint.is_empty() {
        return Err(Error::bad_request(
            ID,
            "a call needs a service and an endpoint",
        ));
    }
    micro_core::limits::metadata(ID, body.metadata.iter())?;
    Ok(JsonCall {
        namespace: &caller.namespace,
        service: &body.service,
        endpoint: &body.endpoint,
        json: &body.json,
        address: (!body.address.is_empty()).then_some(body.address.as_str()),
        metadata: body
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        peer: caller.peer,
        timeout: match body.timeout_ms {
            0 => None,
            ms => Some(micro_core::limits::duration_ms(
                ID,
                "timeout",
                ms,
                micro_core::limits::MAX_DURATION,
            )?),
        },
        token: caller.token.as_deref(),
    })
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
