//! [`Client`]: calls services by name.
//!
//! `client.service("helloworld")` is a gRPC channel that any tonic-generated client accepts. For
//! each call it looks the service up (cached, kept fresh by a registry watch), picks a node with
//! the [`Strategy`] (by default the cheaper of two random nodes by peak-EWMA latency and calls in
//! flight), and bounds the call by the smaller of its timeout and the deadline of the call being
//! handled (see [`crate::deadline`]), which travels on as `grpc-timeout`.
//!
//! Each node has a circuit breaker ([`health`]): a node that cannot be connected to is ejected
//! at once; one whose connection breaks under a call (HTTP/2 pings find a frozen node within
//! about two seconds) gets no calls until a health-check probe says it still answers; five
//! timeouts in a row eject it too (only timeouts of attempts that had a second or more: a
//! caller's own short deadline says nothing of the node). What a service answers, errors
//! included, never counts against its node. An ejected node gets no calls until a probe is
//! answered (after 1 s, then 2 s, 4 s … up to 30 s). When every node of a service is ejected,
//! calls fail at once with `UNAVAILABLE` rather than wait out their timeouts.
//!
//! A call that never reached a node is tried on the next one, at most three nodes in all, with a
//! short jittered back-off — and only while the client's retry budget lasts (tower's
//! `TpsBudget`: retries may add 20 % to the calls of the last ten seconds, plus ten a second),
//! so an outage cannot turn into a retry storm. A call that reached a node is repeated only when
//! the service's proto marks the method safe to repeat (`idempotency_level` `NO_SIDE_EFFECTS` or
//! `IDEMPOTENT`, registered as endpoint metadata `idempotent`) and the connection broke before
//! an answer: its request is kept for that, and goes to the next node within the same budget.
//! Connections are kept per node address and shared by every service channel of the client;
//! [`Client::stats`] says what the client has seen.
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
mod connection;
mod exchange;
pub mod filter;
pub mod health;
mod probe;
pub mod selector;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use futures::future::BoxFuture;
use micro_core::{Error, Registry, Service, metadata};
use tokio::time::Instant;
use tonic::{Status, body::Body};
use tower::retry::budget::{Budget, TpsBudget};

pub use filter::Filter;
pub use health::NodeHealth;
pub use selector::Strategy;

use crate::{registry::RemoteRegistry, status::to_status};
use body::Slot;
use cache::Cache;
use connection::{Connection, SendError, Unusable};
use health::{Nodes, breaker::Outcome};

const ID: &str = "micro.client";

/// The default per-call timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// At most this many nodes are tried for one call.
const MAX_ATTEMPTS: usize = 3;

/// Marks a request whose body its sender already holds in memory (the JSON proxy's, made from
/// the caller's decoded message): keeping it to send again, if the method is safe to repeat,
/// costs nothing more, however the client was built.
#[derive(Debug, Clone, Copy)]
pub struct InMemory;

/// The largest request of a caller's a client acting for callers keeps to send again.
const PASSED_ON_REPLAY_MAX: u64 = 64 * 1024;

/// The back-off before the first retry (doubled for the next, with full jitter).
const RETRY_BACKOFF: Duration = Duration::from_millis(5);

/// The retry budget: how long a call counts, retries allowed a second regardless, and the share
/// of recent calls that may be retried.
const BUDGET_TTL: Duration = Duration::from_secs(10);
const BUDGET_MIN_PER_SEC: u32 = 10;
const BUDGET_RATIO: f32 = 0.2;

/// Calls services by name through the registry.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    cache: Arc<Cache>,
    strategy: Strategy,
    timeout: Duration,
    connections: Mutex<HashMap<String, Arc<Connection>>>,
    nodes: Nodes,
    budget: TpsBudget,
    counters: Counters,
    /// The identity a call without a token of its own carries; `None` on behalf of callers.
    credentials: Option<crate::auth::Credentials>,
    wrappers: crate::wrap::Wrappers<crate::wrap::Channel>,
}

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    retries: AtomicU64,
    retries_refused: AtomicU64,
    ejections: AtomicU64,
    refused: AtomicU64,
}

/// What a [`Client`] has seen since it was built.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientStats {
    /// Calls made (each counted once, however many nodes it tried).
    pub calls: u64,
    /// Extra attempts on another node after a node could not be reached.
    pub retries: u64,
    /// Retries the budget refused.
    pub retries_refused: u64,
    /// Times a node was ejected.
    pub ejections: u64,
    /// Calls failed at once because every node of the service was ejected.
    pub refused: u64,
    /// Every node the client has called lately.
    pub nodes: Vec<NodeHealth>,
}

/// Builds a [`Client`].
pub struct ClientBuilder {
    registry: Arc<dyn Registry>,
    namespace: String,
    strategy: Strategy,
    timeout: Duration,
    credentials: Option<crate::auth::Credentials>,
    wrappers: crate::wrap::Wrappers<crate::wrap::Channel>,
    max_in_flight: Option<usize>,
    max_rate: Option<u32>,
}

impl ClientBuilder {
    /// The namespace services are looked up in (default `micro`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// How nodes are picked (default [`Strategy::LeastLoaded`]).
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
        self.credentials = None;
        self
    }

    /// Calls without a token of their own carry `credentials` instead of the process's own
    /// identity (see [`crate::auth`]): one process, several identities.
    pub fn credentials(mut self, credentials: crate::auth::Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// At most `max` calls in flight from this client, to every service together; one beyond
    /// fails at once with `RESOURCE_EXHAUSTED`, sent nowhere (see [`crate::limit`]).
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = Some(max);
        self
    }

    /// At most `per_second` calls a second from this client, to every service together (a
    /// burst of one second's worth after a quiet spell); one beyond fails at once with
    /// `RESOURCE_EXHAUSTED` saying when to try again, sent nowhere (see [`crate::limit`]).
    pub fn max_rate(mut self, per_second: u32) -> Self {
        self.max_rate = Some(per_second);
        self
    }

    /// Wraps every call in `layer`, any tower layer (see [`crate::wrap`]): it sees the whole
    /// call, discovery, balancing and retries included. Wrappers run in the order added, the
    /// first outermost. They are applied to each channel (`client.service(..)`): a layer
    /// whose state must span channels (a shared limit, a counter) keeps it behind an `Arc`.
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: tower::Layer<crate::wrap::Channel> + Send + Sync + 'static,
        L::Service: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Status>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower::Service<http::Request<Body>>>::Future: Send + 'static,
    {
        self.wrappers.push(layer);
        self
    }

    /// The client.
    pub fn build(mut self) -> Client {
        // Innermost of the wrappers, so that a user's wrapper sees the calls it refuses.
        if self.max_in_flight.is_some() || self.max_rate.is_some() {
            self.wrappers.push(crate::limit::LimitLayer::client(
                self.max_in_flight,
                self.max_rate,
            ));
        }
        Client {
            inner: Arc::new(Inner {
                cache: Cache::new(self.registry, self.namespace),
                strategy: self.strategy,
                timeout: self.timeout,
                connections: Mutex::new(HashMap::new()),
                nodes: Nodes::default(),
                budget: TpsBudget::new(BUDGET_TTL, BUDGET_MIN_PER_SEC, BUDGET_RATIO),
                counters: Counters::default(),
                credentials: self.credentials,
                wrappers: self.wrappers,
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
            credentials: Some(crate::auth::Credentials::process()),
            wrappers: Default::default(),
            max_in_flight: None,
            max_rate: None,
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
        ServiceChannel::new(Core {
            client: self.clone(),
            target: Target::Service(name.into(), None),
            timeout: self.inner.timeout,
        })
    }

    /// A gRPC channel to one node, bypassing discovery and selection; the node is called even
    /// if ejected (a call to a node in rotation counts towards its health as any other).
    pub fn node(&self, address: &str) -> ServiceChannel {
        ServiceChannel::new(Core {
            client: self.clone(),
            target: Target::Address(address.into()),
            timeout: self.inner.timeout,
        })
    }

    /// Every live version of `name`, from the client's cache.
    pub async fn lookup(&self, name: &str) -> Result<Arc<Vec<Service>>, Error> {
        Ok(self.inner.cache.get(name).await?.services.clone())
    }

    /// What the client has seen: calls, retries, ejections, and each node's health.
    pub fn stats(&self) -> ClientStats {
        let c = &self.inner.counters;
        ClientStats {
            calls: c.calls.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            retries_refused: c.retries_refused.load(Ordering::Relaxed),
            ejections: c.ejections.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            nodes: self.inner.nodes.snapshot(),
        }
    }

    /// Which of `addresses` calls may go to now: not those whose breaker has ejected them (for
    /// callers that pick a node themselves, such as the proxy fetching descriptors). Starts the
    /// probes that are due, as a call would.
    pub fn usable(&self, addresses: &[&str]) -> Vec<bool> {
        self.health(addresses)
            .into_iter()
            .map(|(allowed, _)| allowed)
            .collect()
    }

    /// Each of `addresses`' health now (whether calls may go to it, its cost), having started
    /// the probes that are due.
    fn health(&self, addresses: &[&str]) -> Vec<(bool, f64)> {
        let view = self.inner.nodes.view(Instant::now(), addresses);
        if !view.forgotten.is_empty() {
            // Nodes not called for minutes: their connections go too.
            let mut connections = self.connections();
            for address in &view.forgotten {
                connections.remove(address);
            }
        }
        for address in view.probes {
            self.probe(address);
        }
        view.nodes
    }

    /// The connection to `address`, shared by every call to that node; over TLS when `secure`
    /// (a connection made otherwise before is replaced).
    fn connection(&self, address: &str, secure: bool) -> Result<Arc<Connection>, Unusable> {
        let mut connections = self.connections();
        if let Some(connection) = connections.get(address)
            && connection.secure() == secure
        {
            return Ok(connection.clone());
        }
        let connection = Arc::new(Connection::new(address, secure)?);
        connections.insert(address.to_owned(), connection.clone());
        Ok(connection)
    }

    fn connections(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Connection>>> {
        self.inner
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Drops `connection` to `address` (not a newer one made since): the next call dials
    /// afresh.
    fn disconnect(&self, address: &str, connection: &Arc<Connection>) {
        let mut connections = self.connections();
        if connections
            .get(address)
            .is_some_and(|c| Arc::ptr_eq(c, connection))
        {
            connections.remove(address);
        }
    }

    /// The nodes to try for a call, best first (at most [`MAX_ATTEMPTS`]), each with whether
    /// it is dialled over TLS; and whether the service marks the method at `path` safe to
    /// repeat (see [`cache::repeatable`]).
    async fn candidates(
        &self,
        target: &Target,
        path: &str,
    ) -> Result<(Vec<(String, bool)>, bool), Status> {
        let (name, filter) = match target {
            Target::Address(address) => {
                let secure = crate::tls::is_secure(address);
                return Ok((vec![(address.to_string(), secure)], false));
            }
            Target::Service(name, filter) => (name, filter),
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
        let admitted: Vec<usize> = (0..entry.nodes.len())
            .filter(|&i| {
                filter.as_ref().is_none_or(|f| {
                    entry
                        .services
                        .get(entry.owners[i])
                        .is_some_and(|s| f.admits(s, &entry.nodes[i]))
                })
            })
            .collect();
        let addresses: Vec<&str> = admitted
            .iter()
            .map(|&i| entry.nodes[i].address.as_str())
            .collect();
        if addresses.is_empty()
            && let Some(filter) = filter
        {
            return Err(to_status(&Error::not_found(
                ID,
                format!(
                    "no node of service \"{name}\" has {} ({} nodes do not)",
                    filter.describe(),
                    entry.nodes.len()
                ),
            )));
        }
        let health = self.health(&addresses);
        let mut ordered: Vec<(String, bool)> =
            selector::order(self.inner.strategy, &health, &entry.counter)
                .into_iter()
                .map(|i| (addresses[i].to_owned(), entry.secure[admitted[i]]))
                .collect();
        ordered.truncate(MAX_ATTEMPTS);
        let repeatable = entry.repeatable.contains(path);
        if ordered.is_empty() {
            self.inner.counters.refused.fetch_add(1, Ordering::Relaxed);
            return Err(to_status(&Error::unavailable(
                ID,
                format!(
                    "every node of service \"{name}\" is failing ({} ejected; each is probed and \
                     comes back when it answers)",
                    addresses.len()
                ),
            )));
        }
        Ok((ordered, repeatable))
    }

    /// Sends the health-check probe the breaker of `address` asked for. However the probe
    /// ends — answered, not, or its task cancelled — the breaker hears of it, so no node is
    /// left waiting for a probe that will never report.
    fn probe(&self, address: String) {
        /// Reports "not answered" unless disarmed with the result.
        struct Report {
            client: Client,
            address: String,
            answered: Option<bool>,
        }
        impl Report {
            fn answered(&mut self, answered: bool) {
                self.answered = Some(answered);
            }
        }
        impl Drop for Report {
            fn drop(&mut self) {
                let answered = self.answered.unwrap_or(false);
                tracing::debug!(address = %self.address, answered, "probed a node");
                self.client
                    .inner
                    .nodes
                    .probed(Instant::now(), &self.address, answered);
            }
        }
        let mut report = Report {
            client: self.clone(),
            address,
            answered: None,
        };
        tokio::spawn(async move {
            // A fresh connection (the old one may be the one that hung), dialled as it was.
            let secure = report
                .client
                .connections()
                .remove(&report.address)
                .map_or_else(|| crate::tls::is_secure(&report.address), |c| c.secure());
            let answered = match report.client.connection(&report.address, secure) {
                Ok(connection) => probe::answers(&connection).await,
                Err(_) => false,
            };
            report.answered(answered);
        });
    }

    async fn dispatch(
        self,
        target: Target,
        request: http::Request<Body>,
        deadline: Instant,
    ) -> Result<http::Response<Body>, Status> {
        if self
            .inner
            .credentials
            .as_ref()
            .is_some_and(crate::auth::Credentials::is_process)
        {
            crate::auth::from_env().await.map_err(|e| to_status(&e))?;
        }
        self.inner.counters.calls.fetch_add(1, Ordering::Relaxed);
        let (candidates, repeatable) = self.candidates(&target, request.uri().path()).await?;
        let in_memory = request.extensions().get::<InMemory>().is_some();
        self.inner.budget.deposit();
        let (mut parts, body) = request.into_parts();
        // A call safe to repeat keeps its request, so it can go to another node even after one
        // read it; any other's body goes to one node at most.
        let replayed = |bytes: &bytes::Bytes| Body::new(http_body_util::Full::new(bytes.clone()));
        // A caller's request passed on (the proxies) is kept only when it says it is small: a
        // caller must not make this process hold what flow control would have held back.
        let small = http_body::Body::size_hint(&body)
            .upper()
            .is_some_and(|n| n <= PASSED_ON_REPLAY_MAX);
        let keep = repeatable
            && candidates.len() > 1
            && (self.inner.credentials.is_some() || in_memory || small);
        let (replay, mut slot) = if keep {
            let bytes = http_body_util::BodyExt::collect(body).await?.to_bytes();
            let slot = Slot::new(replayed(&bytes));
            (Some(bytes), slot)
        } else {
            (None, Slot::new(body))
        };
        let mut last = String::new();
        let tries = candidates.len();
        for (tried, (address, secure)) in candidates.into_iter().enumerate() {
            if let Some(bytes) = &replay
                && !slot.untouched()
            {
                slot = Slot::new(replayed(bytes));
            }
            if tried > 0 {
                if !self.inner.budget.withdraw() {
                    self.inner
                        .counters
                        .retries_refused
                        .fetch_add(1, Ordering::Relaxed);
                    last.push_str("; no retry: the retry budget is spent");
                    break;
                }
                self.inner.counters.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(retry_backoff(tried)).await;
            }
            let connection = match self.connection(&address, secure) {
                Ok(connection) => connection,
                Err(Unusable::Local(e)) => return Err(to_status(&e)),
                Err(Unusable::Address(e)) => {
                    // A registration no call can use: out of rotation like a node that is down.
                    Attempt::begin(&self, &address, deadline).end(Outcome::Unreachable, false);
                    last = e.detail;
                    continue;
                }
            };
            // The last attempt takes the request's head; an earlier one sends a copy.
            let head = if tried + 1 == tries {
                std::mem::replace(&mut parts, http::Request::new(()).into_parts().0)
            } else {
                parts.clone()
            };
            let mut attempt = http::Request::from_parts(head, slot.body());
            if let Some(credentials) = &self.inner.credentials
                && !attempt
                    .headers()
                    .contains_key(micro_core::metadata::AUTHORIZATION_HEADER)
            {
                credentials.authorize(attempt.headers_mut());
            }
            // What is left now, not what was left when the call began.
            let left = deadline.saturating_duration_since(Instant::now());
            if let Some(v) = crate::deadline::grpc_timeout_header(left) {
                attempt.headers_mut().insert("grpc-timeout", v);
            }
            let watch = Attempt::begin(&self, &address, deadline);
            match connection.send(attempt).await {
                Ok(response) => {
                    // An error answered at once says nothing of how fast the node is: only
                    // answers that are not errors teach the latency estimate.
                    let failed = response
                        .headers()
                        .get("grpc-status")
                        .is_some_and(|s| s.as_bytes() != b"0");
                    watch.end(Outcome::Answered, !failed);
                    return Ok(response);
                }
                Err(SendError::Request(status)) => {
                    // The caller's own request failed (a message too large, a stream that
                    // errored): nothing learnt of the node.
                    watch.abandon();
                    return Err(status);
                }
                Err(err) if slot.untouched() => {
                    tracing::debug!(%address, error = %err, "node unreachable, trying the next");
                    watch.end(Outcome::Unreachable, false);
                    self.disconnect(&address, &connection);
                    last = format!("{address}: {err}");
                }
                Err(err) if replay.is_some() && tried + 1 < tries => {
                    // It may have run, but the service says that is harmless: the next node.
                    tracing::debug!(%address, error = %err, "connection lost; the call is safe to repeat");
                    watch.end(Outcome::Lost, false);
                    self.disconnect(&address, &connection);
                    last = format!("{address}: the connection was lost ({err})");
                }
                Err(err) => {
                    // It may have run: not repeated. The node is probed before it gets
                    // another call.
                    watch.end(Outcome::Lost, false);
                    self.disconnect(&address, &connection);
                    return Err(to_status(&Error::unavailable(
                        ID,
                        format!(
                            "the connection to {address} was lost before it answered ({err}); \
                             the call may or may not have run: retry only if it is safe to repeat"
                        ),
                    )));
                }
            }
        }
        let what = match &target {
            Target::Service(name, _) => format!("service \"{name}\""),
            Target::Address(address) => format!("node {address}"),
        };
        Err(to_status(&Error::unavailable(
            ID,
            format!("could not reach {what} ({last})"),
        )))
    }
}

/// The back-off before retry number `tried`: full jitter over an exponential ceiling.
fn retry_backoff(tried: usize) -> Duration {
    let ceiling = RETRY_BACKOFF.saturating_mul(1 << tried.min(6));
    ceiling.mul_f64(rand::random::<f64>())
}

/// One attempt on one node, as the node's health sees it: begun, and ended with an outcome —
/// or dropped, when the call's deadline passed or the caller went away.
///
/// A timeout counts against the node only when the attempt had at least [`TIMEOUT_FLOOR`]: a
/// caller who allows 1 ms must not be able to eject a healthy node for everyone.
struct Attempt<'a> {
    client: &'a Client,
    address: &'a str,
    started: Instant,
    deadline: Instant,
    ended: bool,
}

/// The least time an attempt must have had for its timeout to count against the node.
const TIMEOUT_FLOOR: Duration = Duration::from_secs(1);

impl<'a> Attempt<'a> {
    fn begin(client: &'a Client, address: &'a str, deadline: Instant) -> Self {
        let started = Instant::now();
        client.inner.nodes.begin(started, address);
        Self {
            client,
            address,
            started,
            deadline,
            ended: false,
        }
    }

    /// Ended with `outcome`; `timed` if its round trip says how fast the node is.
    fn end(mut self, outcome: Outcome, timed: bool) {
        self.ended = true;
        let now = Instant::now();
        let rtt = timed.then(|| now - self.started);
        self.finish(now, Some(outcome), rtt);
    }

    /// Ended by something that says nothing of the node.
    fn abandon(mut self) {
        self.ended = true;
        self.finish(Instant::now(), None, None);
    }

    fn finish_timed_out(&self, now: Instant) {
        let counts = self.deadline.saturating_duration_since(self.started) >= TIMEOUT_FLOOR;
        // A timeout teaches the estimate too: the node took at least this long.
        let rtt = now - self.started;
        self.finish(now, counts.then_some(Outcome::Failed), Some(rtt));
    }

    fn finish(&self, now: Instant, outcome: Option<Outcome>, rtt: Option<Duration>) {
        if self.client.inner.nodes.end(now, self.address, outcome, rtt) {
            tracing::info!(
                address = self.address,
                ?outcome,
                "node taken out of rotation"
            );
            self.client
                .inner
                .counters
                .ejections
                .fetch_add(1, Ordering::Relaxed);
            if outcome == Some(Outcome::Lost) {
                self.client.probe(self.address.to_owned());
            }
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let now = Instant::now();
        if now >= self.deadline {
            self.finish_timed_out(now);
        } else {
            // The caller went away: nothing learnt.
            self.finish(now, None, None);
        }
    }
}

#[derive(Clone, Debug)]
enum Target {
    /// Any node of the service that passes the filter.
    Service(Arc<str>, Option<Arc<Filter>>),
    Address(Arc<str>),
}

/// A gRPC channel that discovers, balances, ejects failing nodes, times out and retries —
/// inside the client's wrappers, if it has any. Made by [`Client::service`] and
/// [`Client::node`].
#[derive(Clone)]
pub struct ServiceChannel {
    core: Core,
    /// The core inside the client's wrappers.
    wrapped: Option<crate::wrap::Channel>,
}

impl std::fmt::Debug for ServiceChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceChannel")
            .field("target", &self.core.target)
            .field("timeout", &self.core.timeout)
            .finish()
    }
}

impl ServiceChannel {
    fn new(core: Core) -> Self {
        let wrappers = &core.client.inner.wrappers;
        let wrapped =
            (!wrappers.is_empty()).then(|| wrappers.apply(crate::wrap::Channel::new(core.clone())));
        Self { core, wrapped }
    }

    /// The same channel with another per-call timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.core.timeout = timeout;
        Self::new(self.core)
    }

    /// The same channel, calling only nodes that pass `filter` (a version, node metadata);
    /// no effect on a channel to one node.
    pub fn with_filter(mut self, filter: Filter) -> Self {
        if let Target::Service(name, _) = &self.core.target {
            self.core.target = Target::Service(name.clone(), Some(Arc::new(filter)));
        }
        Self::new(self.core)
    }
}

impl tower::Service<http::Request<Body>> for ServiceChannel {
    type Response = http::Response<Body>;
    type Error = Status;
    type Future = BoxFuture<'static, Result<http::Response<Body>, Status>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        match &mut self.wrapped {
            Some(wrapped) => wrapped.poll_ready(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        // A span for the call, a child of the caller's, and its `traceparent` on the request
        // (nothing at all when tracing is off).
        let span = crate::trace::client(&mut request);
        let call = match &mut self.wrapped {
            Some(wrapped) => {
                // Read here, in the caller's task: a wrapper may run the call in another.
                if let Some(deadline) = crate::deadline::current() {
                    request.extensions_mut().insert(CallerDeadline(deadline));
                }
                wrapped.call(request)
            }
            None => self.core.call(request),
        };
        if span.is_disabled() {
            call
        } else {
            Box::pin(tracing::Instrument::instrument(call, span))
        }
    }
}

/// The deadline of the call being handled, as the caller's task knew it.
#[derive(Clone, Copy, Debug)]
struct CallerDeadline(Instant);

/// The channel's own steps, inside any wrappers.
#[derive(Clone, Debug)]
struct Core {
    client: Client,
    target: Target,
    timeout: Duration,
}

impl tower::Service<http::Request<Body>> for Core {
    type Response = http::Response<Body>;
    type Error = Status;
    type Future = BoxFuture<'static, Result<http::Response<Body>, Status>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // The least of: this channel's timeout, what the request itself asks for, and what is
        // left of the deadline of the call being handled.
        let asked = request
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(crate::deadline::parse_grpc_timeout);
        let left = match request.extensions().get::<CallerDeadline>() {
            Some(CallerDeadline(deadline)) => {
                Some(deadline.saturating_duration_since(Instant::now()))
            }
            None => crate::deadline::remaining(),
        };
        let timeout = [Some(self.timeout), asked, left]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(self.timeout);
        if timeout.is_zero() {
            return Box::pin(futures::future::ready(Err(Status::deadline_exceeded(
                "the deadline of the call being handled has passed",
            ))));
        }
        // Each attempt sends what is left of it then as `grpc-timeout`.
        let now = Instant::now();
        let deadline = now
            .checked_add(timeout)
            .unwrap_or_else(|| now + crate::deadline::FAR);
        let client = self.client.clone();
        let target = self.target.clone();
        Box::pin(async move {
            match tokio::time::timeout_at(deadline, client.dispatch(target, request, deadline))
                .await
            {
                Ok(result) => result,
                Err(_) => Err(to_status(&Error::timeout(ID, "Request timed out"))),
            }
        })
    }
}
