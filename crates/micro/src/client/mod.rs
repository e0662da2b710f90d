//! [`Client`]: calls services by name.
//!
//! `client.service("helloworld")` is a gRPC channel that any tonic-generated client accepts. For
//! each call it looks the service up (cached, kept fresh by a registry watch), picks a node with
//! the [`Strategy`], applies the per-call timeout, and — when the node cannot be reached and never
//! saw the request — tries the next node. Connections are kept per node address and shared by
//! every service channel of the client.
//!
//! ```no_run
//! # async fn f() -> Result<(), micro::Error> {
//! let client = micro::Client::from_env()?;
//! let channel = client.service("helloworld");
//! // let mut hello = pb::helloworld_client::HelloworldClient::new(channel);
//! # Ok(()) }
//! ```

mod body;
mod cache;
pub mod selector;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use futures::future::BoxFuture;
use micro_core::{Error, Registry, Service, metadata};
use tokio::time::Instant;
use tonic::{Status, body::Body, transport::Channel};
use tower::ServiceExt;

pub use selector::Strategy;

use crate::{registry::RemoteRegistry, status::to_status};
use body::Slot;
use cache::Cache;

const ID: &str = "micro.client";

/// The default per-call timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a node that could not be reached is tried last.
const PENALTY: Duration = Duration::from_secs(5);

/// At most this many nodes are tried for one call.
const MAX_ATTEMPTS: usize = 3;

/// Calls services by name through the registry.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    cache: Arc<Cache>,
    strategy: Strategy,
    timeout: Duration,
    channels: Mutex<HashMap<String, Channel>>,
    failed: Mutex<HashMap<String, Instant>>,
    /// Whether a call without a token of its own carries this process's.
    own_identity: bool,
}

/// Builds a [`Client`].
pub struct ClientBuilder {
    registry: Arc<dyn Registry>,
    namespace: String,
    strategy: Strategy,
    timeout: Duration,
    own_identity: bool,
}

impl ClientBuilder {
    /// The namespace services are looked up in (default `micro`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// How nodes are picked (default round-robin).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// The per-call timeout (default 5s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Calls carry only the caller's own token, never this process's (a proxy or gateway that
    /// calls on behalf of others must not lend them its identity).
    pub fn on_behalf_of_callers(mut self) -> Self {
        self.own_identity = false;
        self
    }

    /// The client.
    pub fn build(self) -> Client {
        Client {
            inner: Arc::new(Inner {
                cache: Cache::new(self.registry, self.namespace),
                strategy: self.strategy,
                timeout: self.timeout,
                channels: Mutex::new(HashMap::new()),
                failed: Mutex::new(HashMap::new()),
                own_identity: self.own_identity,
            }),
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("namespace", &self.inner.cache.namespace())
            .field("strategy", &self.inner.strategy)
            .field("timeout", &self.inner.timeout)
            .finish()
    }
}

impl Client {
    /// A builder over `registry`.
    pub fn builder(registry: Arc<dyn Registry>) -> ClientBuilder {
        ClientBuilder {
            registry,
            namespace: metadata::DEFAULT_NAMESPACE.to_owned(),
            strategy: Strategy::default(),
            timeout: DEFAULT_TIMEOUT,
            own_identity: true,
        }
    }

    /// A client of the server at `MICRO_SERVER_ADDRESS` (default `127.0.0.1:8081`) in
    /// `MICRO_NAMESPACE` (default `micro`).
    pub fn from_env() -> Result<Self, Error> {
        let env = crate::env::Env::read();
        let registry = RemoteRegistry::new(&env.server_address)?;
        Ok(Self::builder(Arc::new(registry))
            .namespace(env.namespace)
            .build())
    }

    /// The registry this client looks services up in.
    pub fn registry(&self) -> &Arc<dyn Registry> {
        self.inner.cache.registry()
    }

    /// The namespace this client looks services up in.
    pub fn namespace(&self) -> &str {
        self.inner.cache.namespace()
    }

    /// A gRPC channel to the service `name`: pass it to a generated client.
    pub fn service(&self, name: &str) -> ServiceChannel {
        ServiceChannel {
            client: self.clone(),
            target: Target::Service(name.into()),
            timeout: self.inner.timeout,
        }
    }

    /// A gRPC channel to one node, bypassing discovery and selection.
    pub fn node(&self, address: &str) -> ServiceChannel {
        ServiceChannel {
            client: self.clone(),
            target: Target::Address(address.into()),
            timeout: self.inner.timeout,
        }
    }

    /// Every live version of `name`, from the client's cache.
    pub async fn lookup(&self, name: &str) -> Result<Arc<Vec<Service>>, Error> {
        Ok(self.inner.cache.get(name).await?.services)
    }

    fn channel(&self, address: &str) -> Result<Channel, Error> {
        let mut channels = self
            .inner
            .channels
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(ch) = channels.get(address) {
            return Ok(ch.clone());
        }
        let ch = crate::remote::endpoint(address)?.connect_lazy();
        channels.insert(address.to_owned(), ch.clone());
        Ok(ch)
    }

    fn mark_failed(&self, address: &str) {
        self.inner
            .channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(address);
        self.inner
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(address.to_owned(), Instant::now());
    }

    fn penalised(&self, address: &str) -> bool {
        let failed = self.inner.failed.lock().unwrap_or_else(|p| p.into_inner());
        failed.get(address).is_some_and(|at| at.elapsed() < PENALTY)
    }

    /// The addresses to try for a call, best first.
    async fn candidates(&self, target: &Target) -> Result<Vec<String>, Status> {
        let name = match target {
            Target::Address(address) => return Ok(vec![address.to_string()]),
            Target::Service(name) => name,
        };
        let entry = self
            .inner
            .cache
            .get(name)
            .await
            .map_err(|e| to_status(&e))?;
        if entry.nodes.is_empty() {
            return Err(to_status(&Error::not_found(
                ID,
                format!("Service \"{name}\" not found"),
            )));
        }
        for node in entry.nodes.iter() {
            if node
                .metadata
                .get(crate::tls::TRANSPORT_METADATA)
                .is_some_and(|t| t == "tls")
            {
                crate::tls::mark_secure(&node.address);
            }
        }
        let ordered = selector::order(self.inner.strategy, entry.nodes.len(), &entry.counter)
            .map(|i| entry.nodes[i].address.clone());
        let (mut fresh, stale): (Vec<_>, Vec<_>) = ordered.partition(|a| !self.penalised(a));
        fresh.extend(stale);
        fresh.truncate(MAX_ATTEMPTS);
        Ok(fresh)
    }

    async fn dispatch(
        self,
        target: Target,
        request: http::Request<Body>,
    ) -> Result<http::Response<Body>, Status> {
        if self.inner.own_identity {
            crate::auth::from_env().await.map_err(|e| to_status(&e))?;
        }
        let candidates = self.candidates(&target).await?;
        let (parts, body) = request.into_parts();
        let slot = Slot::new(body);
        let mut last = String::new();
        for address in candidates {
            let channel = self.channel(&address).map_err(|e| to_status(&e))?;
            let mut attempt = http::Request::new(slot.body());
            *attempt.method_mut() = parts.method.clone();
            *attempt.uri_mut() = parts.uri.clone();
            *attempt.version_mut() = parts.version;
            *attempt.headers_mut() = parts.headers.clone();
            if self.inner.own_identity
                && !attempt
                    .headers()
                    .contains_key(micro_core::metadata::AUTHORIZATION_HEADER)
            {
                crate::auth::authorize(attempt.headers_mut());
            }
            *attempt.extensions_mut() = parts.extensions.clone();
            match channel.oneshot(attempt).await {
                Ok(response) => return Ok(response),
                Err(err) if slot.untouched() => {
                    tracing::debug!(%address, error = %err, "node unreachable, trying the next");
                    self.mark_failed(&address);
                    last = format!("{address}: {err}");
                }
                Err(err) => return Err(Status::from_error(Box::new(err))),
            }
        }
        let what = match &target {
            Target::Service(name) => format!("service \"{name}\""),
            Target::Address(address) => format!("node {address}"),
        };
        Err(to_status(&Error::unavailable(
            ID,
            format!("could not reach {what} ({last})"),
        )))
    }
}

#[derive(Clone, Debug)]
enum Target {
    Service(Arc<str>),
    Address(Arc<str>),
}

/// A gRPC channel that discovers, selects, times out and retries. Made by [`Client::service`]
/// and [`Client::node`].
#[derive(Clone, Debug)]
pub struct ServiceChannel {
    client: Client,
    target: Target,
    timeout: Duration,
}

impl ServiceChannel {
    /// The same channel with another per-call timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl tower::Service<http::Request<Body>> for ServiceChannel {
    type Response = http::Response<Body>;
    type Error = Status;
    type Future = BoxFuture<'static, Result<http::Response<Body>, Status>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let client = self.client.clone();
        let target = self.target.clone();
        let timeout = self.timeout;
        if !request.headers().contains_key("grpc-timeout")
            && let Ok(v) = format!("{}m", timeout.as_millis().max(1)).parse()
        {
            request.headers_mut().insert("grpc-timeout", v);
        }
        Box::pin(async move {
            match tokio::time::timeout(timeout, client.dispatch(target, request)).await {
                Ok(result) => result,
                Err(_) => Err(to_status(&Error::timeout(ID, "Request timed out"))),
            }
        })
    }
}
