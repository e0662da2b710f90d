//! One node's connection: an HTTP/2 connection dialled on first use, and again after it closes,
//! that calls are sent on straight from the caller's task.
//!
//! Why not tonic's `Channel`: a channel puts a queue and a worker task in front of its
//! connection, so that its clones can share it and it can reconnect on its own. The client
//! already keeps one connection per node, picks the node itself and decides when to dial again
//! (its breaker), so that worker was only one more task switch on every call. hyper's HTTP/2
//! `SendRequest` is itself shared by cheap clones; sending on it from the caller's task was
//! measured at 1.07–1.16× the calls/s of a tonic channel on the same node (the client bench).
//!
//! While a call is in flight and the node has sent nothing for a second, an HTTP/2 ping must
//! be answered within a second, or the connection is dropped and the call fails: a frozen node
//! (a stopped process, a dead VM, a cut network) is found in about two seconds instead of at
//! the call's timeout, and its breaker ejects it. Idle connections are not pinged.
//!
//! A dial runs in a task of its own, so a caller that gives up does not stall it or leave it
//! half done for the next. Callers that find the connection being dialled wait for that dial
//! rather than start their own; a dial that fails fails them all at once, and the next call
//! dials again.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::{
    FutureExt,
    future::{BoxFuture, Shared},
};
use http::uri::{Authority, PathAndQuery, Scheme};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use micro_core::Error;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tonic::body::Body;

const ID: &str = "micro.client";

/// How long each step of a dial may take: TCP, TLS when the node serves it, HTTP/2.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// While a call is in flight, how long the node may stay silent before it is pinged, and how
/// long it then has to answer.
const KEEP_ALIVE: Duration = Duration::from_secs(1);

/// Why a call was not answered.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// The node could not be dialled: the request went nowhere.
    #[error("{0}")]
    Dial(Arc<str>),
    /// The connection failed with the request on it (or before it, if its body is unread).
    #[error("{0}")]
    Lost(#[from] hyper::Error),
}

type Dial = Shared<BoxFuture<'static, Result<SendRequest<Body>, Arc<str>>>>;

/// Why a connection to a node cannot even be set up.
#[derive(Debug)]
pub(crate) enum Unusable {
    /// The node's address is not `host:port`: the node's fault (its registration).
    Address(Error),
    /// TLS cannot be set up here (the CA, the name): this process's fault, not the node's.
    Local(Error),
}

/// What a TLS dial needs: the connector, and the name the certificate must carry.
type TlsTo = (tokio_rustls::TlsConnector, ServerName<'static>);

enum State {
    /// No connection: the next call dials.
    Idle,
    Dialing(Dial),
    Ready(SendRequest<Body>),
}

/// The connection to one node.
pub(crate) struct Connection {
    address: Arc<str>,
    scheme: Scheme,
    authority: Authority,
    tls: Option<TlsTo>,
    state: Arc<Mutex<State>>,
}

impl Connection {
    /// A connection to `address` (`host:port`), over TLS when `secure`; nothing is dialled yet.
    pub(crate) fn new(address: &str, secure: bool) -> Result<Self, Unusable> {
        let authority: Authority = address.parse().map_err(|e| {
            Unusable::Address(Error::bad_request(
                ID,
                format!("invalid node address {address:?}: {e}"),
            ))
        })?;
        let tls = secure
            .then(|| crate::tls::connector(address))
            .transpose()
            .map_err(Unusable::Local)?;
        Ok(Self {
            address: address.into(),
            scheme: if tls.is_some() {
                Scheme::HTTPS
            } else {
                Scheme::HTTP
            },
            authority,
            tls,
            state: Arc::new(Mutex::new(State::Idle)),
        })
    }

    /// Whether this connection is dialled over TLS.
    pub(crate) fn secure(&self) -> bool {
        self.tls.is_some()
    }

    /// Sends `request` (its URI's path is kept; the scheme and authority are the node's) and
    /// waits for the answer's head.
    pub(crate) async fn send(
        &self,
        mut request: http::Request<Body>,
    ) -> Result<http::Response<Body>, SendError> {
        let mut sender = self.sender().await.map_err(SendError::Dial)?;
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(
            request
                .uri()
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        );
        *request.uri_mut() =
            http::Uri::from_parts(parts).expect("a scheme, an authority and a path make a URI");
        request
            .headers_mut()
            .entry(http::header::USER_AGENT)
            .or_insert(http::HeaderValue::from_static(USER_AGENT));
        let response = sender.send_request(request).await?;
        Ok(response.map(Body::new))
    }

    /// A sender on a live connection: the one there is, the one being dialled, or a new one.
    async fn sender(&self) -> Result<SendRequest<Body>, Arc<str>> {
        let dial = {
            let mut state = lock(&self.state);
            match &*state {
                State::Ready(sender) if !sender.is_closed() => return Ok(sender.clone()),
                State::Dialing(dial) => dial.clone(),
                State::Ready(_) | State::Idle => {
                    // The task settles the state when the dial ends; it cannot do so before
                    // `Dialing` is stored, as that needs this lock.
                    let settle = Arc::downgrade(&self.state);
                    let task = tokio::spawn(dial(self.address.clone(), self.tls.clone()).map(
                        move |result| {
                            if let Some(state) = settle.upgrade() {
                                *lock(&state) = match &result {
                                    Ok(sender) => State::Ready(sender.clone()),
                                    Err(_) => State::Idle,
                                };
                            }
                            result
                        },
                    ));
                    let dial = async move {
                        task.await
                            .unwrap_or_else(|e| Err(format!("the dial did not finish: {e}").into()))
                    }
                    .boxed()
                    .shared();
                    *state = State::Dialing(dial.clone());
                    dial
                }
            }
        };
        dial.await
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// `user-agent` of every call, as gRPC clients say who they are.
const USER_AGENT: &str = concat!("micro-rust/", env!("CARGO_PKG_VERSION"));

/// Dials `address` and opens HTTP/2 on it; the connection runs in a task of its own until it
/// fails or every sender is gone.
async fn dial(address: Arc<str>, tls: Option<TlsTo>) -> Result<SendRequest<Body>, Arc<str>> {
    let tcp = step("connect to", &address, TcpStream::connect(&*address)).await?;
    tcp.set_nodelay(true)
        .map_err(|e| failed("connect to", &address, e))?;
    let Some((connector, name)) = tls else {
        return handshake(tcp, &address).await;
    };
    let tls = step("complete TLS with", &address, connector.connect(name, tcp)).await?;
    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err(failed(
            "use HTTP/2 with",
            &address,
            "the server did not offer h2",
        ));
    }
    handshake(tls, &address).await
}

/// One step of a dial, within [`CONNECT_TIMEOUT`]; its failure says `what` could not be done.
async fn step<T, E: std::fmt::Display>(
    what: &str,
    address: &str,
    step: impl Future<Output = Result<T, E>>,
) -> Result<T, Arc<str>> {
    match tokio::time::timeout(CONNECT_TIMEOUT, step).await {
        Ok(done) => done.map_err(|e| failed(what, address, e)),
        Err(_) => Err(failed(
            what,
            address,
            format!("no answer in {CONNECT_TIMEOUT:?}"),
        )),
    }
}

fn failed(what: &str, address: &str, e: impl std::fmt::Display) -> Arc<str> {
    format!("cannot {what} {address}: {e}").into()
}

async fn handshake<I>(io: I, address: &str) -> Result<SendRequest<Body>, Arc<str>>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let handshake = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(KEEP_ALIVE)
        .keep_alive_timeout(KEEP_ALIVE)
        .keep_alive_while_idle(false)
        .handshake(TokioIo::new(io));
    // Bounded too: a dial that never ends would hold every caller that waits for it.
    let (sender, connection) = step("open HTTP/2 to", address, handshake).await?;
    let address = address.to_owned();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(%address, error = %e, "connection to a node ended");
        }
    });
    Ok(sender)
}
