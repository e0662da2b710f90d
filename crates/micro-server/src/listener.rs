//! Limits on every listener (gRPC, gateway, dashboard), so that connections nobody uses cannot
//! take the doors from those who do.
//!
//! - **A connection limit per listener.** Past it, a new connection is answered at once (a 503
//!   on the HTTP doors; closed on the gRPC door) instead of holding a file descriptor.
//! - **A handshake timeout.** A connection that has not sent its first 24 bytes (an HTTP/2
//!   preface, a TLS hello, a request line) within [`ListenerLimits::handshake_timeout`] of
//!   being accepted is closed, however it drips them; a TLS handshake must finish in that time
//!   too.
//! - **An idle timeout.** A connection on which nothing is read or written for
//!   [`ListenerLimits::idle_timeout`] is closed. gRPC keep-alive pings count as traffic, so a
//!   live watch or subscription is never idle; a dead peer fails its pings.
//! - **A header-read timeout** on the HTTP doors (slow headers; it also closes a keep-alive
//!   connection that waits longer than it for its next request), and on the gRPC door a bound
//!   on concurrent streams and header size per connection (set where the server is built).
//! - **A cap per peer address** (a quarter of the listener's, loopback exempt), so one
//!   machine cannot take every place.
//! - **The soft file-descriptor limit is raised** to the hard one at start
//!   ([`raise_fd_limit`]), and the default connection limit is derived from it.

use std::{
    future::Future as _,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::Router;
use futures::Stream;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, watch},
    task::JoinHandle,
    time::{Instant, Sleep},
};

/// How each listener bounds its connections.
#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    /// The most connections one listener holds at once; `None` derives it from the
    /// file-descriptor limit (a third of it each, at most 10,000).
    pub max_connections: Option<usize>,
    /// How long a new connection may stay silent.
    pub handshake_timeout: Duration,
    /// How long a connection may carry nothing either way.
    pub idle_timeout: Duration,
    /// How long an HTTP client may take to send a request's headers (and a keep-alive
    /// connection may wait for its next request).
    pub header_read_timeout: Duration,
    /// The most concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            max_connections: None,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            header_read_timeout: Duration::from_secs(60),
            max_concurrent_streams: 1024,
        }
    }
}

impl ListenerLimits {
    /// The connection limit of one listener.
    pub fn connections(&self) -> usize {
        self.max_connections.unwrap_or_else(|| {
            let fds = fd_limit().unwrap_or(1024);
            usize::try_from(fds.saturating_sub(128) / 3)
                .unwrap_or(usize::MAX)
                .clamp(16, 10_000)
        })
    }
}

/// The soft limit on open files.
fn fd_limit() -> Option<u64> {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

/// Raises the soft limit on open files to the hard limit; answers the limit in force.
pub fn raise_fd_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some(hard);
    }
    Some(soft)
}

/// The address of the peer an HTTP request came from (a request extension on the HTTP doors).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

/// Bytes a connection must send before the handshake deadline gives way to the idle one.
const HANDSHAKE_BYTES: usize = 24;

/// A connection that holds its place under the limit, and closes itself when idle.
///
/// Activity only records when it happened; the one timer is moved when it fires, so a busy
/// connection pays a clock read per read or write, not a timer update.
pub(crate) struct Limited {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    _peer: Option<PeerSlot>,
    idle: Duration,
    /// The handshake's deadline, then the earliest the idle one can be.
    deadline: Pin<Box<Sleep>>,
    /// Bytes read so far, counted up to [`HANDSHAKE_BYTES`].
    received: usize,
    /// The last read or write once the handshake is done; `None` before.
    last_active: Option<Instant>,
}

impl Limited {
    fn new(
        stream: TcpStream,
        permit: OwnedSemaphorePermit,
        peer: Option<PeerSlot>,
        limits: &ListenerLimits,
    ) -> Self {
        Self {
            stream,
            _permit: permit,
            _peer: peer,
            idle: limits.idle_timeout,
            deadline: Box::pin(tokio::time::sleep(limits.handshake_timeout)),
            received: 0,
            last_active: None,
        }
    }

    fn read(&mut self, bytes: usize) {
        self.received = self.received.saturating_add(bytes).min(HANDSHAKE_BYTES);
        self.active();
    }

    fn active(&mut self) {
        // Still in the handshake: its deadline stands, whatever the server writes.
        if self.received >= HANDSHAKE_BYTES {
            self.last_active = Some(Instant::now());
        }
    }

    /// `Err(TimedOut)` once the deadline has passed with no activity since (and wakes the task
    /// then).
    fn expired(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        while self.deadline.as_mut().poll(cx).is_ready() {
            match self.last_active.map(|at| at + self.idle) {
                Some(due) if due > Instant::now() => self.deadline.as_mut().reset(due),
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the connection was idle for too long",
                    ));
                }
            }
        }
        Ok(())
    }
}

impl AsyncRead for Limited {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = buf.filled().len() - before;
                if read > 0 {
                    this.read(read);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.expired(cx) {
                Err(e) => Poll::Ready(Err(e)),
                Ok(()) => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Limited {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.active();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending => match this.expired(cx) {
                Err(e) => Poll::Ready(Err(e)),
                Ok(()) => Poll::Pending,
            },
            other => other,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Limited {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

/// Connections per peer address, for the per-peer cap.
#[derive(Default)]
struct Peers {
    open: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

/// One connection's place in its peer's count; given back on drop.
pub(crate) struct PeerSlot {
    peers: Arc<Peers>,
    ip: std::net::IpAddr,
}

impl Peers {
    /// A place for a connection from `ip`, if it has fewer than `cap` open.
    fn take(self: &Arc<Self>, ip: std::net::IpAddr, cap: usize) -> Option<PeerSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(ip).or_default();
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(PeerSlot {
            peers: self.clone(),
            ip,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self.peers.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// What happens to a connection past the limit.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    /// Closed at once (gRPC clients retry another node or report unavailable).
    Close,
    /// A 503 saying why, then closed.
    Http503,
}

/// Accepts connections from `listener` under `limits`, refusing those past the limit.
fn accept(
    listener: TcpListener,
    limits: ListenerLimits,
    refusal: Refusal,
) -> impl Stream<Item = io::Result<Limited>> {
    let permits = Arc::new(Semaphore::new(limits.connections()));
    let per_peer = (limits.connections() / 4).max(1);
    let peers = Arc::new(Peers::default());
    // Refusals being answered at once; past these, a refused connection is simply closed.
    let answering = Arc::new(Semaphore::new(64));
    futures::stream::unfold(
        (listener, permits, answering),
        move |(listener, permits, answering)| {
            let peers = peers.clone();
            async move {
                loop {
                    let (stream, from) = match listener.accept().await {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            // Out of descriptors, or a connection reset before it was taken:
                            // wait a moment and go on accepting.
                            tracing::warn!("accept failed: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let peer = if from.ip().is_loopback() {
                        None
                    } else {
                        match peers.take(from.ip(), per_peer) {
                            Some(slot) => Some(slot),
                            None => {
                                refuse(stream, refusal, &answering);
                                continue;
                            }
                        }
                    };
                    match permits.clone().try_acquire_owned() {
                        Ok(permit) => {
                            let _ = stream.set_nodelay(true);
                            let limited = Limited::new(stream, permit, peer, &limits);
                            return Some((Ok(limited), (listener, permits, answering)));
                        }
                        Err(_) => refuse(stream, refusal, &answering),
                    }
                }
            }
        },
    )
}

fn refuse(mut stream: TcpStream, refusal: Refusal, answering: &Arc<Semaphore>) {
    tracing::warn!("connection limit reached: refusing a connection");
    let Refusal::Http503 = refusal else { return };
    let Ok(slot) = answering.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _slot = slot;
        let body = r#"{"id":"micro.server","code":503,"detail":"the server holds as many connections as it may; try again shortly","status":"Service Unavailable"}"#;
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            stream.write_all(answer.as_bytes()).await?;
            stream.shutdown().await?;
            // Read what the client sent until it closes, so closing does not reset the
            // connection before the client has read the answer.
            let mut sink = [0u8; 1024];
            while tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await? > 0 {}
            Ok::<_, io::Error>(())
        })
        .await;
    });
}

/// The gRPC door's incoming connections.
pub(crate) fn grpc_incoming(
    listener: TcpListener,
    limits: ListenerLimits,
) -> impl Stream<Item = io::Result<Limited>> {
    accept(listener, limits, Refusal::Close)
}

/// Serves `router` (the gateway or the dashboard) on `listener` under `limits` until `stop`,
/// then lets connections finish for up to ten seconds.
pub(crate) fn serve_http(
    listener: TcpListener,
    router: Router,
    limits: ListenerLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.max_concurrent_streams);
        let graceful = GracefulShutdown::new();
        // A plaintext 503 means nothing to a TLS client: it is simply closed.
        let refusal = if tls.is_some() {
            Refusal::Close
        } else {
            Refusal::Http503
        };
        let incoming = accept(listener, limits, refusal);
        futures::pin_mut!(incoming);
        let mut connections = tokio::task::JoinSet::new();
        loop {
            // Reap the connections that ended, so the set holds only live ones.
            while connections.try_join_next().is_some() {}
            let next = tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                next = futures::StreamExt::next(&mut incoming) => next,
            };
            let Some(Ok(io)) = next else { continue };
            let peer = io.stream.peer_addr().ok().map(Peer);
            let mut router = router.clone();
            if let Some(peer) = peer {
                router = router.layer(axum::Extension(peer));
            }
            let service = TowerToHyperService::new(router);
            match &tls {
                None => {
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
                    let conn = graceful.watch(conn.into_owned());
                    connections.spawn(async move {
                        let _ = conn.await;
                    });
                }
                Some(acceptor) => {
                    // The handshake runs on the connection's task, within the handshake time.
                    let accepting =
                        tokio::time::timeout(limits.handshake_timeout, acceptor.accept(io));
                    let builder = builder.clone();
                    let watcher = graceful.watcher();
                    connections.spawn(async move {
                        let Ok(Ok(io)) = accepting.await else { return };
                        let conn =
                            builder.serve_connection_with_upgrades(TokioIo::new(io), service);
                        let _ = watcher.watch(conn.into_owned()).await;
                    });
                }
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
        // Whatever is still open after the grace period (a client holding a socket) ends with
        // the listener. (An upgraded WebSocket runs on a task of its own, bounded by its
        // connection's idle timeout.)
        connections.abort_all();
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn silent_connections_are_closed_and_the_limit_refuses_with_a_503() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let limits = ListenerLimits {
            max_connections: Some(2),
            handshake_timeout: Duration::from_millis(300),
            ..ListenerLimits::default()
        };
        let router = Router::new().route("/", axum::routing::get(|| async { "hi" }));
        let (stop, stop_rx) = watch::channel(false);
        let server = serve_http(listener, router, limits, None, stop_rx);

        let mut first = TcpStream::connect(address).await.unwrap();
        let _second = TcpStream::connect(address).await.unwrap();
        // Accepted in order: the third is past the limit.
        let mut third = TcpStream::connect(address).await.unwrap();
        let mut answer = String::new();
        third.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");

        // The silent first connection is closed after the handshake timeout.
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(5), first.read(&mut buf))
            .await
            .expect("closed, not left hanging");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        // Dripping a byte at a time does not keep the handshake alive.
        let mut drip = TcpStream::connect(address).await.unwrap();
        let dripped = tokio::time::timeout(Duration::from_secs(5), async {
            for _ in 0..40 {
                if drip.write_all(b"G").await.is_err() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let mut buf = [0u8; 1];
            matches!(drip.read(&mut buf).await, Ok(0) | Err(_))
        })
        .await
        .expect("closed in time");
        assert!(dripped, "a dripping handshake is closed");
        // With room again (once the second is closed too), a request is served.
        let served = async {
            loop {
                let mut next = TcpStream::connect(address).await.unwrap();
                next.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                    .await
                    .unwrap();
                let mut answer = String::new();
                let _ = next.read_to_string(&mut answer).await;
                if answer.starts_with("HTTP/1.1 200") {
                    return;
                }
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), served)
            .await
            .expect("served once the silent connections were closed");
        let _ = stop.send(true);
        server.await.unwrap();
    }
}
