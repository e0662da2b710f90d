//! [`Service`]: a gRPC server that registers itself, heartbeats, and leaves cleanly.
//!
//! ```no_run
//! # use micro::Service;
//! # async fn f<S>(handler: S) -> Result<(), micro::Error>
//! # where S: tower::Service<http::Request<tonic::body::Body>, Response = http::Response<tonic::body::Body>, Error = std::convert::Infallible>
//! #   + tonic::server::NamedService + Clone + Send + Sync + 'static, S::Future: Send + 'static {
//! Service::new("helloworld")
//!     .descriptors(&[]) // micro::include_descriptors!()
//!     .handle(handler)  // pb::helloworld_server::HelloworldServer::new(Handler)
//!     .run()
//!     .await
//! # }
//! ```
//!
//! `run()` binds (`MICRO_SERVICE_ADDRESS`, else an ephemeral port on 127.0.0.1), serves the
//! handlers with `grpc.health.v1` and reflection, registers one node with every endpoint and its
//! schemas, re-registers every interval, and on SIGINT or SIGTERM deregisters first — so callers
//! stop picking it at once — then stops accepting and drains the calls in flight.
//!
//! Every call to a handler passes the platform's rules first (see [`crate::gate`]): a caller
//! the rules refuse gets 401 or 403, however it reached the service.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use micro_core::{
    Error, Node, Registry, Service as ServiceRecord,
    metadata::{ENDPOINT_GRPC_SERVICE, NODE_PACKAGE, NODE_PROTOCOL},
};
use prost_reflect::DescriptorPool;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tonic::{body::Body, server::NamedService, service::Routes, transport::Server};

use crate::{
    env::Env,
    gate::{AdmitLayer, Gate},
    registry::RemoteRegistry,
    remote::Connection,
    schema,
};

mod introspection;
mod registration;

pub use introspection::{introspected, reflection};
pub use registration::{Registration, heartbeat};

const ID: &str = "micro.service";

/// Default registration TTL.
pub const DEFAULT_TTL: Duration = Duration::from_secs(90);
/// Default re-registration interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

/// A service under construction. Ends in [`Service::run`] or [`Service::start`].
pub struct Service {
    name: String,
    version: String,
    metadata: Vec<(String, String)>,
    routes: Routes,
    handlers: Vec<&'static str>,
    descriptor_sets: Vec<&'static [u8]>,
    registry: Option<Arc<dyn Registry>>,
    server: Option<String>,
    namespace: Option<String>,
    address: Option<String>,
    ttl: Option<Duration>,
    interval: Option<Duration>,
    broker: Option<Arc<dyn micro_core::broker::Broker>>,
    subscriptions: Vec<Subscriber>,
    wrappers: crate::wrap::Wrappers<crate::wrap::Handler>,
    max_in_flight: Option<usize>,
    max_rate: Option<u32>,
}

/// What a subscriber does with each message.
type OnMessage = Arc<
    dyn Fn(micro_core::broker::Message) -> futures::future::BoxFuture<'static, ()> + Send + Sync,
>;

/// A subscription declared on the builder.
struct Subscriber {
    topic: String,
    queue: Option<String>,
    handler: OnMessage,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("handlers", &self.handlers)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// A service called `name`, version `latest`. `MICRO_SERVICE_NAME` and
    /// `MICRO_SERVICE_VERSION` override what the code says.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: "latest".to_owned(),
            metadata: Vec::new(),
            routes: Routes::default(),
            handlers: Vec::new(),
            descriptor_sets: Vec::new(),
            registry: None,
            server: None,
            namespace: None,
            address: None,
            ttl: None,
            interval: None,
            broker: None,
            subscriptions: Vec::new(),
            wrappers: Default::default(),
            max_in_flight: None,
            max_rate: None,
        }
    }

    /// At most `max` calls in the handlers at once; one beyond is answered at once with
    /// `RESOURCE_EXHAUSTED` (see [`crate::limit`]). `MICRO_MAX_IN_FLIGHT` overrides it.
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = Some(max);
        self
    }

    /// At most `per_second` calls a second in the handlers (a burst of one second's worth
    /// after a quiet spell); a call beyond is answered at once with `RESOURCE_EXHAUSTED`
    /// saying when to try again (see [`crate::limit`]). `MICRO_MAX_RATE` overrides it.
    pub fn max_rate(mut self, per_second: u32) -> Self {
        self.max_rate = Some(per_second);
        self
    }

    /// Wraps every handler in `layer`, any tower layer (see [`crate::wrap`]): it sees each
    /// admitted call and its answer. Wrappers run in the order added, the first outermost.
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: tower::Layer<crate::wrap::Handler> + Send + Sync + 'static,
        L::Service: tower::Service<
                http::Request<Body>,
                Response = http::Response<Body>,
                Error = std::convert::Infallible,
            > + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower::Service<http::Request<Body>>>::Future: Send + 'static,
    {
        self.wrappers.push(layer);
        self
    }

    /// The version (default `latest`).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Adds service metadata.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.push((key.into(), value.into()));
        self
    }

    /// The encoded descriptor set of the service's protos (`micro::include_descriptors!()`):
    /// it gives every endpoint its schema and feeds reflection.
    pub fn descriptors(mut self, set: &'static [u8]) -> Self {
        self.descriptor_sets.push(set);
        self
    }

    /// Serves a tonic-generated server (`HelloworldServer::new(handler)`).
    pub fn handle<S>(mut self, svc: S) -> Self
    where
        S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.handlers.push(S::NAME);
        self.routes = self.routes.add_service(svc);
        self
    }

    /// Serves the gRPC service `name` (`package.Service`) with `svc`, for protos known only
    /// when the process runs (`micro sidecar` makes them from its command line): every method
    /// path under `/name/` goes to `svc`. Its descriptors must be among
    /// [`Service::descriptors`], as for [`Service::handle`].
    pub fn handle_dynamic<S>(mut self, name: &'static str, svc: S) -> Self
    where
        S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        use tower::ServiceExt;
        self.handlers.push(name);
        let router = std::mem::take(self.routes.axum_router_mut());
        *self.routes.axum_router_mut() = router.route_service(
            &format!("/{name}/{{*rest}}"),
            svc.map_request(|req: http::Request<axum::body::Body>| req.map(Body::new)),
        );
        self
    }

    /// Registers in `registry` instead of the server at `MICRO_SERVER_ADDRESS`. Without
    /// [`Service::server`] as well, the service then has no platform to check its callers with,
    /// and serves everyone (for tests and registries run without a platform).
    pub fn registry(mut self, registry: Arc<dyn Registry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Uses the platform at `address` (`host:port`) — registry, broker, and the check of every
    /// caller — instead of `MICRO_SERVER_ADDRESS`.
    pub fn server(mut self, address: impl Into<String>) -> Self {
        self.server = Some(address.into());
        self
    }

    /// Registers in `namespace` instead of `MICRO_NAMESPACE`.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Binds `address` (`host:port`) unless `MICRO_SERVICE_ADDRESS` says otherwise.
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = Some(address.into());
        self
    }

    /// How long the registration lives without a heartbeat (default 90s).
    pub fn register_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// How often to re-register (default 30s).
    pub fn register_interval(mut self, interval: Duration) -> Self {
        self.interval = Some(interval);
        self
    }

    /// Starts, then runs until SIGINT or SIGTERM, then deregisters and drains.
    pub async fn run(self) -> Result<(), Error> {
        let name = crate::env::Env::read()
            .service_name
            .unwrap_or_else(|| self.name.clone());
        crate::init_tracing_as(&name);
        let running = self.start().await?;
        tracing::info!(
            service = %running.record().name,
            address = %running.address,
            "serving; stop with Ctrl-C"
        );
        shutdown_signal().await;
        tracing::info!(service = %running.record().name, "stopping: deregistering, then draining calls in flight");
        let stopped = running.stop().await;
        crate::trace::shutdown().await;
        stopped
    }

    /// Subscribes to broker `topic` for as long as the service runs, calling `handler` with each
    /// message. With a `queue`, the service's instances (and anyone else in that queue) share
    /// the messages; without, every instance gets every message.
    pub fn subscribe<F, Fut>(mut self, topic: &str, queue: Option<&str>, handler: F) -> Self
    where
        F: Fn(micro_core::broker::Message) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.subscriptions.push(Subscriber {
            topic: topic.to_owned(),
            queue: queue.map(str::to_owned),
            handler: Arc::new(move |m| Box::pin(handler(m))),
        });
        self
    }

    /// Uses `broker` for subscriptions instead of the server's (e.g. a `MemoryBroker` in tests).
    pub fn broker(mut self, broker: Arc<dyn micro_core::broker::Broker>) -> Self {
        self.broker = Some(broker);
        self
    }

    /// Binds, serves and registers; returns a handle to stop it.
    pub async fn start(self) -> Result<Running, Error> {
        let env = Env::read();
        let name = env.service_name.clone().unwrap_or(self.name);
        let version = env.service_version.clone().unwrap_or(self.version);
        let namespace = self.namespace.unwrap_or(env.namespace.clone());
        let ttl = env.register_ttl.or(self.ttl).unwrap_or(DEFAULT_TTL);
        let interval = env
            .register_interval
            .or(self.interval)
            .unwrap_or(DEFAULT_INTERVAL);
        // Callers are checked by the platform the service belongs to; a service with a registry
        // of its own and no server named has none.
        let has_platform = self.registry.is_none() || self.server.is_some();
        let platform = self.server.unwrap_or_else(|| env.server_address.clone());
        let registry: Arc<dyn Registry> = match self.registry {
            Some(r) => r,
            None => Arc::new(RemoteRegistry::new(&platform)?),
        };
        let bind = env
            .service_address
            .clone()
            .or(self.address)
            .unwrap_or_else(|| "127.0.0.1:0".to_owned());

        let pool = decode_pool(&self.descriptor_sets)?;
        let mut endpoints = Vec::new();
        let mut package = None;
        for handler in &self.handlers {
            let svc = pool.get_service_by_name(handler).ok_or_else(|| {
                Error::internal(
                    ID,
                    format!(
                        "no descriptor for gRPC service {handler}: pass micro::include_descriptors!() to Service::descriptors"
                    ),
                )
            })?;
            package.get_or_insert_with(|| svc.package_name().to_owned());
            endpoints.extend(schema::endpoints(&svc));
        }
        if self.handlers.is_empty() {
            return Err(Error::internal(
                ID,
                format!("service {name} has no handlers: add one with Service::handle"),
            ));
        }

        let listener = TcpListener::bind(&bind)
            .await
            .map_err(|e| Error::internal(ID, format!("failed to bind {bind}: {e}")))?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::internal(ID, format!("failed to read the bound address: {e}")))?;
        let address = advertise(local);

        let mut record = ServiceRecord::new(name.clone(), version);
        record.metadata.extend(self.metadata);
        record.endpoints = endpoints;
        let id = env
            .service_id
            .clone()
            .unwrap_or_else(|| format!("{name}-{}", uuid::Uuid::new_v4()));
        let mut node = Node::new(id, address.to_string());
        node.metadata
            .insert(NODE_PROTOCOL.to_owned(), "grpc".to_owned());
        if let Some(package) = package {
            node.metadata.insert(NODE_PACKAGE.to_owned(), package);
        }
        node.metadata.insert(
            crate::metrics::NODE_METRICS.to_owned(),
            crate::metrics::METRICS_PATH.to_owned(),
        );
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        node.metadata.insert(
            micro_core::metadata::NODE_STARTED.to_owned(),
            started.to_string(),
        );
        record.nodes.push(node);
        let metrics = crate::metrics::ServiceMetrics::new(
            &name,
            record.endpoints.iter().filter_map(|e| {
                let grpc_service = e.metadata.get(ENDPOINT_GRPC_SERVICE)?;
                let (_, method) = e.name.split_once('.')?;
                Some((grpc_service.clone(), method.to_owned()))
            }),
        );

        let handlers = self.handlers.clone();
        let routes = introspected(self.routes, &self.descriptor_sets, &handlers).await?;
        let checker = if has_platform {
            Some(Connection::lazy(&platform)?)
        } else {
            tracing::warn!(
                service = %name,
                "callers are not checked: the service has a registry of its own and no platform (name one with Service::server)"
            );
            None
        };
        let gate = AdmitLayer::new(Gate::new(&name, &namespace, handlers.clone(), checker));
        let (stop_tx, mut stop_rx) = watch::channel(false);
        // No Nagle: an answer written while an earlier one is unacknowledged would otherwise
        // wait for the caller's delayed ACK (40 ms on Linux), the p99 of every busy service.
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let wrappers = self.wrappers.clone();
        let max_in_flight = env.max_in_flight.or(self.max_in_flight);
        let max_rate = env.max_rate.or(self.max_rate);
        let server = tokio::spawn(async move {
            Server::builder()
                // `GET /metrics` is plain HTTP/1.1 for Prometheus.
                .accept_http1(true)
                .layer(crate::metrics::MetricsLayer::new(metrics))
                .layer(crate::trace::TraceLayer::grpc())
                .layer(crate::deadline::DeadlineLayer)
                .layer(crate::undecodable::UndecodableLayer)
                .layer(gate)
                .layer(crate::limit::LimitLayer::service(max_in_flight, max_rate))
                .layer(crate::wrap::Wrapped(wrappers))
                .add_routes(routes)
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stop_rx.wait_for(|stop| *stop).await;
                })
                .await
        });

        // Logged in before anything reaches the server, so a locked-down platform lets it in.
        crate::auth::from_env().await?;

        let broker: Arc<dyn micro_core::broker::Broker> = match self.broker {
            Some(b) => b,
            None => Arc::new(crate::broker::RemoteBroker::new(&platform)?),
        };
        let mut subscriptions = Vec::new();
        for sub in self.subscriptions {
            // Subscribed before the service registers, so no message sent to it is missed.
            let mut messages = broker
                .subscribe(&namespace, &sub.topic, sub.queue.as_deref())
                .await?;
            subscriptions.push(tokio::spawn(async move {
                while let Some(message) = futures::StreamExt::next(&mut messages).await {
                    let span = crate::trace::consumer_span(&sub.topic, &message.header);
                    tracing::Instrument::instrument((sub.handler)(message), span).await;
                }
                tracing::warn!(topic = sub.topic, "the subscription ended");
            }));
        }

        let registration =
            Registration::start(registry, &namespace, vec![record], ttl, interval).await?;
        Ok(Running {
            address,
            registration,
            namespace,
            server,
            stop: stop_tx,
            subscriptions,
        })
    }
}

/// A started service.
pub struct Running {
    address: SocketAddr,
    registration: Registration,
    namespace: String,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    stop: watch::Sender<bool>,
    subscriptions: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("address", &self.address)
            .field("service", &self.record().name)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// The address the service is reachable at.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// What was registered.
    pub fn record(&self) -> &ServiceRecord {
        &self.registration.records()[0]
    }

    /// Deregisters, stops accepting, and waits for the calls in flight to finish.
    pub async fn stop(self) -> Result<(), Error> {
        for subscription in &self.subscriptions {
            subscription.abort();
        }
        self.registration.stop().await;
        let _ = self.stop.send(true);
        match self.server.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::internal(ID, format!("server failed: {e}"))),
            Err(e) => Err(Error::internal(ID, format!("server task failed: {e}"))),
        }
    }
}

fn decode_pool(sets: &[&'static [u8]]) -> Result<DescriptorPool, Error> {
    let mut pool = DescriptorPool::new();
    for set in sets {
        pool.decode_file_descriptor_set(*set)
            .map_err(|e| Error::internal(ID, format!("invalid descriptor set: {e}")))?;
    }
    Ok(pool)
}

/// The address others should dial: the bound one, with an unspecified IP replaced by loopback.
pub fn advertise(local: SocketAddr) -> SocketAddr {
    if local.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), local.port())
    } else {
        local
    }
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
