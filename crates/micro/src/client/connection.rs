//! One node's connection: an HTTP/2 connection dialled on first use, and again after it closes,
//! that calls are sent on straight from the caller's task.
//!
//! Why not tonic's `Channel`: a channel puts a queue and a worker task in front of its
//! connection, so that its clones can share it and it can reconnect on its own. The client
//! already keeps one connection per node, picks the node itself and decides when to dial again
//! (its breaker), so that worker was only one more task switch on every call. Nor hyper's
//! HTTP/2 client under it, which passes each request to a dispatch task and spawns one more per
//! request to wait for the answer. The connection here is h2's: the caller's task opens its
//! stream on the shared connection state and is woken when the answer arrives
//! ([`super::exchange`]); one task per connection does the socket's reading and writing.
//!
//! While calls are in flight and the node has sent nothing for a second, it is pinged; if it
//! still sends nothing within the next second, the connection is dropped and its calls fail
//! with `UNAVAILABLE`: a frozen node (a stopped process, a dead VM, a cut network) is found in
//! about two seconds instead of at the call's timeout, and its breaker ejects it. A node busy
//! sending is not pinged, and idle connections are not either.
//!
//! A connection the node closes (GOAWAY) opens no new stream; the call that finds it so dials
//! again once instead of blaming the node, as nothing was sent.
//!
//! A dial runs in a task of its own, so a caller that gives up does not stall it or leave it
//! half done for the next. Callers that find the connection being dialled wait for that dial
//! rather than start their own; a dial that fails fails them all at once, and the next call
//! dials again.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    task::Poll,
    time::Duration,
};

use bytes::Bytes;
use futures::{
    FutureExt,
    future::{BoxFuture, Shared},
};
use http::uri::{Authority, PathAndQuery, Scheme};
use micro_core::Error;

use super::exchange::Failed;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tonic::body::Body;

const ID: &str = "micro.client";

/// How long each step of a dial may take: TCP, TLS when the node serves it, HTTP/2.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// While calls are in flight, how long the node may be silent before it is pinged, and how
/// long it then has to send anything.
const KEEP_ALIVE: Duration = Duration::from_secs(1);

/// Why a call was not answered.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// The node could not be dialled: the request went nowhere.
    #[error("{0}")]
    Dial(Arc<str>),
    /// The connection failed with the request on it (or before it, if its body is unread).
    #[error("{0}")]
    Lost(#[from] h2::Error),
    /// The request's own body failed: nothing to do with the node.
    #[error("{0}")]
    Request(tonic::Status),
}

type Dial = Shared<BoxFuture<'static, Result<Live, Arc<str>>>>;

/// A dialled connection: what opens streams on it, and what its task reports.
#[derive(Clone)]
struct Live {
    sender: h2::client::SendRequest<Bytes>,
    /// Calls on it whose answer is not read to the end: it is pinged only while there are some.
    in_flight: Arc<AtomicUsize>,
    /// Set by its task when it ends.
    closed: Arc<AtomicBool>,
}

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
    Ready(Live),
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
        let mut live = self.live().await.map_err(SendError::Dial)?;
        // A connection the node is closing (GOAWAY) or that broke since its last call opens no
        // stream: nothing was sent, so it is dialled again once rather than the node blamed.
        if let Err(e) = std::future::poll_fn(|cx| live.sender.poll_ready(cx)).await {
            tracing::debug!(address = %self.address, error = %e, "connection closed; dialling again");
            live.closed.store(true, Ordering::Release);
            live = self.live().await.map_err(SendError::Dial)?;
            std::future::poll_fn(|cx| live.sender.poll_ready(cx)).await?;
        }
        let (head, body) = request.into_parts();
        super::exchange::exchange(&mut live.sender, head, body, &live.in_flight)
            .await
            .map_err(|failed| match failed {
                Failed::Request(status) => SendError::Request(status),
                Failed::Stream(e) => SendError::Lost(e),
            })
    }

    /// A live connection: the one there is, the one being dialled, or a new one.
    async fn live(&self) -> Result<Live, Arc<str>> {
        let dial = {
            let mut state = lock(&self.state);
            match &*state {
                State::Ready(live) if !live.closed.load(Ordering::Acquire) => {
                    return Ok(live.clone());
                }
                State::Dialing(dial) => dial.clone(),
                State::Ready(_) | State::Idle => {
                    // The task settles the state when the dial ends; it cannot do so before
                    // `Dialing` is stored, as that needs this lock.
                    let settle = Arc::downgrade(&self.state);
                    let task = tokio::spawn(dial(self.address.clone(), self.tls.clone()).map(
                        move |result| {
                            if let Some(state) = settle.upgrade() {
                                *lock(&state) = match &result {
                                    Ok(live) => State::Ready(live.clone()),
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
async fn dial(address: Arc<str>, tls: Option<TlsTo>) -> Result<Live, Arc<str>> {
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

async fn handshake<I>(io: I, address: &str) -> Result<Live, Arc<str>>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let reads = Arc::new(AtomicU64::new(0));
    let handshake = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_send_buffer_size(SEND_BUFFER)
        .max_header_list_size(HEADER_LIST_MAX)
        .initial_max_send_streams(INITIAL_STREAMS)
        .enable_push(false)
        .handshake::<_, Bytes>(Counted {
            io,
            reads: reads.clone(),
        });
    // Bounded too: a dial that never ends would hold every caller that waits for it.
    let (sender, connection) = step("open HTTP/2 to", address, handshake).await?;
    let live = Live {
        sender,
        in_flight: Arc::default(),
        closed: Arc::default(),
    };
    tokio::spawn(drive(
        connection,
        reads,
        live.in_flight.clone(),
        live.closed.clone(),
        address.to_owned(),
    ));
    Ok(live)
}

/// The window each stream, and the whole connection, opens to the node (hyper's defaults).
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;
/// How much of a request h2 buffers per stream beyond the node's window.
const SEND_BUFFER: usize = 1024 * 1024;
/// How many streams are opened before the node's settings say how many it allows: callers
/// waiting for a dial must not open more than a node is likely to accept, and be refused.
const INITIAL_STREAMS: usize = 100;
/// The largest header block an answer may carry.
const HEADER_LIST_MAX: u32 = 16 * 1024;

/// Runs the connection until it ends. While calls are in flight and the node has sent nothing
/// for a [`KEEP_ALIVE`] tick, it is pinged; if it has still sent nothing by the next tick, the
/// connection is dropped, failing its calls. A node busy sending is never pinged, so a pong
/// queued behind a large answer cannot time out.
async fn drive<I>(
    mut connection: h2::client::Connection<Counted<I>, Bytes>,
    reads: Arc<AtomicU64>,
    in_flight: Arc<AtomicUsize>,
    closed: Arc<AtomicBool>,
    address: String,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut pings = connection.ping_pong();
    let mut tick = tokio::time::interval(KEEP_ALIVE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = 0;
    let mut awaiting = false;
    let ended = std::future::poll_fn(|cx| {
        if let Poll::Ready(done) = std::pin::Pin::new(&mut connection).poll(cx) {
            return Poll::Ready(done.map_err(|e| e.to_string()));
        }
        let Some(pings) = pings.as_mut() else {
            return Poll::Pending;
        };
        if awaiting {
            match pings.poll_pong(cx) {
                Poll::Ready(Ok(_)) => awaiting = false,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.to_string())),
                Poll::Pending => {}
            }
        }
        while tick.poll_tick(cx).is_ready() {
            let now = reads.load(Ordering::Relaxed);
            if now != seen {
                // The node spoke since the last tick.
                seen = now;
                continue;
            }
            if awaiting {
                return Poll::Ready(Err(format!(
                    "nothing from the node for {KEEP_ALIVE:?} after a ping, with calls in flight"
                )));
            }
            if in_flight.load(Ordering::Relaxed) > 0 {
                if let Err(e) = pings.send_ping(h2::Ping::opaque()) {
                    return Poll::Ready(Err(e.to_string()));
                }
                awaiting = true;
                if let Poll::Ready(pong) = pings.poll_pong(cx) {
                    pong.map_err(|e| e.to_string())?;
                    awaiting = false;
                }
            }
        }
        Poll::Pending
    })
    .await;
    closed.store(true, Ordering::Release);
    if let Err(e) = ended {
        tracing::debug!(%address, error = %e, "connection to a node ended");
    }
    // Dropping the connection fails the calls still on it.
}

/// A connection's socket, counting the reads that brought bytes: the keep-alive's evidence
/// that the node is alive.
struct Counted<I> {
    io: I,
    reads: Arc<AtomicU64>,
}

impl<I: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Counted<I> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let read = std::pin::Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.reads.fetch_add(1, Ordering::Relaxed);
        }
        read
    }
}

impl<I: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Counted<I> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
