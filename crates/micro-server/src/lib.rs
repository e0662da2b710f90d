//! # micro-server
//!
//! `micro server`: one process hosting the platform. It serves, on one gRPC port, the platform
//! services `registry`, `store`, `config`, `broker`, `events` and `runtime` (each registered under that
//! name like any other service, with its endpoints and schemas, and each isolating namespaces)
//! and the JSON proxy (`micro.proxy.Proxy`) the CLI calls through, plus health and reflection;
//! the HTTP API gateway ([`gateway`]) and the web dashboard ([`dashboard`]) listen on ports of their
//! own. With [`Options::home`] set, the store, config and event log live in redb files under
//! `home/server/` (see `micro-backends`); without, in memory. The registry and broker are the
//! embedded in-memory ones. The [`runtime`] builds and runs services from uploaded source. Every backend passes its trait's contract suite.
//!
//! ```no_run
//! # async fn f() -> Result<(), micro_core::Error> {
//! let platform = micro_server::start(micro_server::Options::default()).await?;
//! println!("grpc listening on {}", platform.grpc_address());
//! platform.stop().await;
//! # Ok(()) }
//! ```

pub mod auth;
mod backends;
mod browser;
pub mod dashboard;
pub mod gateway;
pub mod listener;
mod long_call;
pub mod metrics;
mod namespace;
pub mod proxy;
mod recent;
mod request_body;
pub mod runtime;
mod services;
pub mod sidecar;
mod stopping;
mod tls;
mod ws_close;

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use micro::{Strategy, schema, service::Registration};
use micro_core::{
    Error, Node, Service,
    metadata::{DEFAULT_NAMESPACE, NODE_PACKAGE, NODE_PROTOCOL},
};
use prost_reflect::DescriptorPool;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tonic::{service::Routes, transport::Server};

pub use auth::{AuthOptions, Authority, Checked};
pub use backends::{Engine, Engines};
pub use proxy::ProxyService;
pub use services::AuthService;
pub use services::BrokerService;
pub use services::ConfigService;
pub use services::EventsService;
pub use services::RegistryService;
pub use services::RuntimeService;
pub use services::StoreService;

/// Whether `name` is one of the platform's own services (`store`, `auth`, `runtime`, ...).
pub fn is_platform_service(name: &str) -> bool {
    services::names::is_platform_service(name)
}

const ID: &str = "micro.server";

/// How the platform is started.
#[derive(Debug, Clone)]
pub struct Options {
    /// gRPC address (`host:port` or `:port`; port 0 picks one). Default `:8081`.
    pub address: String,
    /// HTTP API gateway address; `None` serves no gateway. Default `:8080`.
    pub api_address: Option<String>,
    /// Web dashboard address; `None` serves no dashboard. Default `:8082`.
    pub web_address: Option<String>,
    /// How the proxy picks nodes.
    pub strategy: Strategy,
    /// How often expired registrations are swept (watchers hear of expiry this promptly).
    pub reap_interval: Duration,
    /// The gateway's body limit and CORS.
    pub gateway: gateway::GatewayOptions,
    /// Where data lives (`MICRO_HOME`): the store, event log and config key go under
    /// `home/server/`. `None` keeps everything in memory.
    pub home: Option<PathBuf>,
    /// The Cargo target directory the runtime's builds share (`MICRO_BUILD_DIR`). Default
    /// `home/server/runtime/target`.
    pub build_dir: Option<PathBuf>,
    /// Tokens, rules and the default account.
    pub auth: AuthOptions,
    /// Connection limits and timeouts of every listener.
    pub limits: listener::ListenerLimits,
    /// Serve TLS on every listener (`--tls-cert`, `--tls-key`).
    pub tls: Option<TlsFiles>,
    /// The engine of each concern: embedded by default, or shared (etcd, NATS, PostgreSQL,
    /// Redis) so that several servers act as one platform.
    pub engines: Engines,
    /// The key signing tokens and the key sealing config secrets, from files given by the
    /// operator (`--token-key`, `--secret-key`). By default they are files under `home` on one
    /// server, and records on the shared store (made by the first server) on shared engines.
    pub keys: KeyFiles,
}

/// Key files that override where the server's keys come from (a file that does not exist yet
/// is made).
#[derive(Debug, Clone, Default)]
pub struct KeyFiles {
    /// The Ed25519 key signing access tokens.
    pub token: Option<PathBuf>,
    /// The key sealing config secrets.
    pub secret: Option<PathBuf>,
}

/// The server's certificate and key (PEM), and the CA its own clients trust.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key of the leaf.
    pub key: PathBuf,
    /// The CA that signed the certificate, for the server's own calls to its nodes and for the
    /// services its runtime starts (`MICRO_TLS_CA`); `None`: the system's roots.
    pub ca: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            address: ":8081".to_owned(),
            api_address: Some(":8080".to_owned()),
            web_address: Some(":8082".to_owned()),
            strategy: Strategy::default(),
            reap_interval: Duration::from_secs(1),
            gateway: gateway::GatewayOptions::default(),
            home: None,
            build_dir: None,
            auth: AuthOptions::default(),
            limits: listener::ListenerLimits::default(),
            tls: None,
            engines: Engines::default(),
            keys: KeyFiles::default(),
        }
    }
}

/// A running platform.
#[derive(Debug)]
pub struct Platform {
    grpc_address: SocketAddr,
    api_address: Option<SocketAddr>,
    web_address: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    /// Served until `stop`, then awaited.
    tasks: Vec<JoinHandle<()>>,
    /// Endless (reaper, refreshes): aborted on `stop`.
    background: Vec<JoinHandle<()>>,
    /// The platform services' records, taken off the registry on `stop`.
    registration: Registration,
    runtime: runtime::LocalRuntime,
    /// The runtime's directory when there is no home: removed with the platform.
    _scratch: Option<tempfile::TempDir>,
}

impl Platform {
    /// The bound gRPC address.
    pub fn grpc_address(&self) -> SocketAddr {
        self.grpc_address
    }

    /// The bound gateway address, if serving one.
    pub fn api_address(&self) -> Option<SocketAddr> {
        self.api_address
    }

    /// The bound dashboard address, if serving one.
    pub fn web_address(&self) -> Option<SocketAddr> {
        self.web_address
    }

    /// Stops serving and waits for calls in flight — at most [`STOP_GRACE`]: streams that
    /// never end on their own (a client's registry watch, a subscription) are then closed.
    pub async fn stop(self) {
        // Services first, while the registry still answers their deregistration; then this
        // server's own records, so no caller picks it once it stops answering.
        self.runtime.shutdown().await;
        self.registration.stop().await;
        let _ = self.stop.send(true);
        for task in self.background {
            task.abort();
        }
        let mut tasks = self.tasks;
        let drained = tokio::time::timeout(STOP_GRACE, async {
            for task in &mut tasks {
                let _ = task.await;
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "calls still open after {STOP_GRACE:?} (streams, watches): closing them"
            );
            for task in &tasks {
                task.abort();
            }
        }
    }
}

/// How long [`Platform::stop`] waits for calls in flight.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Parses `:8081` (all interfaces), `host:port` or a bare port.
pub fn bind_address(address: &str) -> Result<String, Error> {
    let address = address.trim();
    let full = if let Some(port) = address.strip_prefix(':') {
        format!("0.0.0.0:{port}")
    } else if address.parse::<u16>().is_ok() {
        format!("0.0.0.0:{address}")
    } else {
        address.to_owned()
    };
    if full
        .rsplit_once(':')
        .is_none_or(|(_, p)| p.parse::<u16>().is_err())
    {
        return Err(Error::bad_request(
            ID,
            format!("invalid address {address:?}: write it as :8081, 127.0.0.1:8081 or host:port"),
        ));
    }
    Ok(full)
}

/// Binds and serves the platform.
pub async fn start(options: Options) -> Result<Platform, Error> {
    listener::raise_fd_limit();
    let (listener, grpc_address) = listen(&options.address).await?;
    let api = match &options.api_address {
        Some(a) => Some(listen(a).await?),
        None => None,
    };
    let web = match &options.web_address {
        Some(a) => Some(listen(a).await?),
        None => None,
    };

    let tls = match &options.tls {
        Some(files) => Some(tls::Served::load(files)?),
        None => None,
    };
    let backends = backends::Backends::open(
        &options.engines,
        options.home.as_deref(),
        options.keys.secret.as_deref(),
        options.reap_interval,
    )
    .await?;
    let authority = if backends.shared {
        Authority::open_shared(
            backends.store.clone(),
            options.keys.token.as_deref(),
            options.auth.clone(),
        )
        .await?
    } else {
        let auth_key = options.keys.token.clone().or_else(|| {
            options
                .home
                .as_ref()
                .map(|home| micro_backends::ServerFiles::new(home).auth_key())
        });
        Authority::open(
            backends.store.clone(),
            auth_key.as_deref(),
            options.auth.clone(),
        )
        .await?
    };
    let registry = backends.registry.clone();

    let (runtime_root, scratch) = match &options.home {
        Some(home) => (home.join("server").join("runtime"), None),
        None => {
            let scratch = tempfile::tempdir().map_err(|e| {
                Error::internal(ID, format!("cannot make a runtime directory: {e}"))
            })?;
            (scratch.path().to_path_buf(), Some(scratch))
        }
    };
    let runtime = runtime::LocalRuntime::open(
        runtime::RuntimeOptions {
            root: runtime_root,
            target_dir: options.build_dir.clone(),
            server_address: micro::service::advertise(grpc_address).to_string(),
            accounts: authority
                .enabled()
                .then(|| Arc::new(authority.clone()) as Arc<dyn runtime::ServiceAccounts>),
            service_env: tls
                .as_ref()
                .map(tls::Served::service_env)
                .unwrap_or_default(),
        },
        registry.clone(),
    )?;

    let (stop, mut stop_rx) = watch::channel(false);
    let incoming = listener::grpc_incoming(listener, options.limits);
    let proxy = ProxyService::with_authority(registry.clone(), options.strategy, authority.clone());
    proxy.stops_with(stopping::Stopping::new(stop.subscribe()));
    let mut tasks = Vec::new();
    let api_address = api.map(|(listener, address)| {
        tasks.push(listener::serve_http(
            listener,
            gateway::router(proxy.clone(), options.gateway.clone()),
            options.limits,
            tls.as_ref().map(tls::Served::acceptor),
            stop.subscribe(),
        ));
        address
    });
    let web_address = web.map(|(listener, address)| {
        tasks.push(listener::serve_http(
            listener,
            dashboard::router(proxy.clone(), tls.is_some(), api_address),
            options.limits,
            tls.as_ref().map(tls::Served::acceptor),
            stop.subscribe(),
        ));
        address
    });
    let (auth_server, accounts_server, rules_server) =
        AuthService::new(authority.clone()).into_servers();
    let routes = Routes::new(auth_server)
        .add_service(accounts_server)
        .add_service(rules_server)
        .add_service(RegistryService::new(registry.clone()).into_server())
        .add_service(StoreService::new(backends.store.clone()).into_server())
        .add_service(ConfigService::new(backends.config.clone()).into_server())
        .add_service(BrokerService::new(backends.broker.clone()).into_server())
        .add_service(EventsService::new(backends.events.clone()).into_server())
        .add_service(RuntimeService::new(runtime.clone()).into_server())
        .add_service(proxy.clone().into_server());
    let served: Vec<&'static str> = services::names::PLATFORM_SERVICES
        .iter()
        .flat_map(|(_, services)| services.iter().copied())
        .chain(["micro.proxy.Proxy"])
        .collect();
    let routes =
        micro::service::introspected(routes, &[micro_proto::FILE_DESCRIPTOR_SET], &served).await?;
    let mut builder = Server::builder();
    if let Some(tls) = &tls {
        builder = builder
            .tls_config(tls.grpc())
            .map_err(|e| Error::internal(ID, format!("cannot serve TLS: {e}")))?;
    }
    let router = builder
        // Live peers answer pings (so a watch is never idle); dead ones are found.
        .http2_keepalive_interval(Some(Duration::from_secs(60)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .max_concurrent_streams(options.limits.max_concurrent_streams)
        .http2_max_header_list_size(64 * 1024)
        .layer(micro::trace::TraceLayer::grpc())
        .layer(micro::undecodable::UndecodableLayer)
        .layer(micro::gate::AdmitLayer::new(auth::guard::Guard::new(
            authority.clone(),
            services::names::grpc_names(),
            stopping::Stopping::new(stop.subscribe()),
        )))
        .layer(proxy::transparent::TransparentLayer::new(
            proxy.clone(),
            proxy::transparent::Local::new(
                services::names::grpc_names()
                    .into_keys()
                    .chain(["micro.proxy.Proxy".to_owned()]),
            ),
        ))
        .add_routes(routes);
    let server = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        };
        if let Err(e) = router
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
        {
            tracing::error!("grpc server failed: {e}");
        }
    });

    let advertised = micro::service::advertise(grpc_address).to_string();
    let server_id = server_id(options.home.as_deref())?;
    let mut records = platform_records(&advertised, &server_id)?;
    if tls.is_some() {
        // This process's proxy dials its own nodes over TLS; others learn it from the metadata.
        micro::tls::mark_secure(&advertised);
        for node in records.iter_mut().flat_map(|r| r.nodes.iter_mut()) {
            node.metadata
                .insert(micro::tls::TRANSPORT_METADATA.to_owned(), "tls".to_owned());
        }
    }
    let mut background = vec![authority.spawn_refresh()];
    if backends.shared {
        // Every server's deployments in `micro status`, wherever it is asked.
        // Known by id: hosts with default flags all advertise 127.0.0.1:8081.
        background.push(runtime.share(runtime::SharedRecords::new(
            backends.store.clone(),
            server_id.clone(),
            advertised.clone(),
        )));
    }
    background.extend(backends.tasks);
    let registration = Registration::start(
        registry.clone(),
        DEFAULT_NAMESPACE,
        records,
        micro::service::DEFAULT_TTL,
        micro::service::DEFAULT_INTERVAL,
    )
    .await?;
    tasks.push(server);
    // Services that were running start again once the platform answers them.
    runtime.resume().await?;
    Ok(Platform {
        grpc_address,
        api_address,
        web_address,
        stop,
        tasks,
        background,
        registration,
        runtime,
        _scratch: scratch,
    })
}

/// `micro server recover`: with the server stopped, gives account `id` of namespace `micro`
/// under `home` the secret `secret` and scope `admin` (making it if it is gone), for an
/// operator who has lost every admin's password. It needs the server's files, which is the
/// proof of being the operator.
pub async fn recover_admin(home: &std::path::Path, id: &str, secret: &str) -> Result<(), Error> {
    let files = micro_backends::ServerFiles::new(home);
    let store: Arc<dyn micro_core::store::Store> =
        Arc::new(micro_backends::redb::RedbStore::open(&files.store())?);
    let authority = Authority::open(
        store,
        Some(&files.auth_key()),
        AuthOptions {
            default_account: false,
            ..AuthOptions::default()
        },
    )
    .await?;
    authority.recover(id, secret).await
}

async fn listen(address: &str) -> Result<(TcpListener, SocketAddr), Error> {
    let bind = bind_address(address)?;
    let listener = TcpListener::bind(&bind)
        .await
        .map_err(|e| Error::internal(ID, format!("failed to listen on {bind}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::internal(ID, format!("failed to read the bound address: {e}")))?;
    Ok((listener, bound))
}

/// `/pkg.Service/Method` as (`pkg.Service`, `Method`): exactly two non-empty parts, so every
/// door that decides by a call's path (the guard, the transparent proxy) reads it alike.
pub(crate) fn grpc_path(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}

/// This server's id among every server sharing a registry and a runtime. It is kept in the
/// server's home, so a restarted server knows its own records (the services it claimed, its
/// nodes); a platform without a home gets a new one per [`start`], so two platforms in one
/// process (tests, benches) are two servers too.
fn server_id(home: Option<&std::path::Path>) -> Result<String, Error> {
    let new = || uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let Some(home) = home else {
        return Ok(new());
    };
    let files = micro_backends::ServerFiles::new(home);
    let path = files.dir().join("id");
    let unreadable = |e: std::io::Error| {
        Error::internal(
            ID,
            format!("cannot keep the server's id in {}: {e}", path.display()),
        )
    };
    match std::fs::read_to_string(&path) {
        Ok(id) if is_server_id(id.trim()) => return Ok(id.trim().to_owned()),
        // A damaged id is replaced: the worst is that this server's old records lapse.
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(unreadable(e)),
    }
    let id = new();
    std::fs::create_dir_all(files.dir()).map_err(unreadable)?;
    std::fs::write(&path, &id).map_err(unreadable)?;
    Ok(id)
}

/// Eight hex digits drawn once per process.
fn process_nonce() -> &'static str {
    static NONCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NONCE.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_owned())
}

/// Whether `id` is what [`server_id`] makes: 12 lowercase hex digits.
fn is_server_id(id: &str) -> bool {
    id.len() == 12
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The platform services as registry records: name, endpoints with schemas, this node.
fn platform_records(address: &str, server_id: &str) -> Result<Vec<Service>, Error> {
    let pool = DescriptorPool::decode(micro_proto::FILE_DESCRIPTOR_SET)
        .map_err(|e| Error::internal(ID, format!("invalid platform descriptors: {e}")))?;
    let mut records = Vec::new();
    for (name, grpc_services) in services::names::PLATFORM_SERVICES {
        let mut record = Service::new(*name, "latest");
        let mut package = String::new();
        for grpc_service in *grpc_services {
            let descriptor = pool
                .get_service_by_name(grpc_service)
                .ok_or_else(|| Error::internal(ID, format!("no descriptor for {grpc_service}")))?;
            record.endpoints.extend(schema::endpoints(&descriptor));
            package = descriptor.package_name().to_owned();
        }
        // Unique among every server sharing a registry, on any machine — and among processes
        // that share a home (and so an id) by mistake: one may never deregister another's.
        let mut node = Node::new(format!("{name}-{server_id}-{}", process_nonce()), address);
        node.metadata
            .insert(NODE_PROTOCOL.to_owned(), "grpc".to_owned());
        node.metadata.insert(NODE_PACKAGE.to_owned(), package);
        record.nodes.push(node);
        records.push(record);
    }
    Ok(records)
}
