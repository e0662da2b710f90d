//! `micro::Client`'s own HTTP/2 exchange against a real tonic node on loopback: bodies larger
//! than every flow-control window, an error answered with its head alone, a bidirectional
//! stream the caller abandons, and a request that fails on the caller's side.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::Stream;
use micro_core::{MemoryRegistry, Node, Registry, Service};
use micro_e2e::helloworld::{
    self, Ping, Pong, Request, helloworld_client::HelloworldClient,
    helloworld_server::HelloworldServer,
};
use tokio::sync::{Notify, mpsc};
use tonic::Code;

/// Echoes names and strokes; tells when a ping-pong's answer stream is dropped (the node's
/// side of a stream the caller reset).
#[derive(Default, Clone)]
struct Echo {
    dropped: Arc<Notify>,
    answered: Arc<AtomicBool>,
}

type Pongs = Pin<Box<dyn Stream<Item = Result<Pong, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl helloworld::helloworld_server::Helloworld for Echo {
    async fn call(
        &self,
        r: tonic::Request<Request>,
    ) -> Result<tonic::Response<helloworld::Response>, tonic::Status> {
        self.answered.store(true, Ordering::SeqCst);
        Ok(tonic::Response::new(helloworld::Response {
            msg: r.into_inner().name,
        }))
    }
    type StreamStream =
        tonic::codegen::tokio_stream::Empty<Result<helloworld::StreamingResponse, tonic::Status>>;
    async fn stream(
        &self,
        _: tonic::Request<helloworld::StreamingRequest>,
    ) -> Result<tonic::Response<Self::StreamStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("no messages here"))
    }
    type PingPongStream = Pongs;
    async fn ping_pong(
        &self,
        r: tonic::Request<tonic::Streaming<Ping>>,
    ) -> Result<tonic::Response<Pongs>, tonic::Status> {
        struct OnDrop(Arc<Notify>);
        impl Drop for OnDrop {
            fn drop(&mut self) {
                self.0.notify_one();
            }
        }
        let guard = OnDrop(self.dropped.clone());
        let pongs =
            futures::stream::unfold((r.into_inner(), guard), |(mut pings, guard)| async move {
                match pings.message().await {
                    Ok(Some(ping)) => Some((
                        Ok(Pong {
                            stroke: ping.stroke,
                        }),
                        (pings, guard),
                    )),
                    _ => None,
                }
            });
        Ok(tonic::Response::new(Box::pin(pongs)))
    }
}

/// A node serving `echo` and a client that finds it through a registry, as services do.
async fn node(echo: Echo) -> (micro::Client, tokio::task::JoinHandle<()>) {
    node_with(echo, tonic::transport::Server::builder()).await
}

async fn node_with(
    echo: Echo,
    mut server: tonic::transport::Server,
) -> (micro::Client, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        server
            .add_service(
                HelloworldServer::new(echo)
                    .max_decoding_message_size(16 << 20)
                    .max_encoding_message_size(16 << 20),
            )
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    let registry = Arc::new(MemoryRegistry::new());
    let record = Service::new("helloworld", "latest").with_node(Node::new("hw-1", address));
    registry
        .register("micro", &record, Duration::from_secs(60))
        .await
        .unwrap();
    (micro::Client::builder(registry).build(), server)
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_larger_than_every_window_go_both_ways() {
    let (client, server) = node(Echo::default()).await;
    let mut hello = HelloworldClient::new(client.service("helloworld"))
        .max_decoding_message_size(16 << 20)
        .max_encoding_message_size(16 << 20);
    // Past the 64 KiB default window, the 2 MiB stream window and the 1 MiB send buffer.
    let name: String = "abcdefghij".repeat(700_000);
    for _ in 0..3 {
        let answer = hello
            .call(Request { name: name.clone() })
            .await
            .expect("a 7 MB call is answered")
            .into_inner();
        assert_eq!(answer.msg.len(), name.len());
        assert!(answer.msg == name);
    }
    server.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_answered_with_its_head_alone_ends_there() {
    let (client, server) = node(Echo::default()).await;
    let channel = client.service("helloworld");
    // An empty gRPC message to a method the node does not have: it answers UNIMPLEMENTED in
    // one HEADERS frame that ends the stream.
    let request = http::Request::post("/helloworld.Helloworld/Nope")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(http_body_util::Full::new(
            bytes::Bytes::from_static(&[0; 5]),
        )))
        .unwrap();
    let answer = tower::ServiceExt::oneshot(channel.clone(), request)
        .await
        .expect("answered");
    assert_eq!(answer.headers()["grpc-status"], "12");
    assert!(
        http_body::Body::is_end_stream(answer.body()),
        "a trailers-only answer's body says it is over, so proxies pass it on as one"
    );
    let answer = tower::ServiceExt::oneshot(channel, well_formed_call())
        .await
        .expect("answered");
    assert_eq!(answer.status(), 200);
    assert!(!http_body::Body::is_end_stream(answer.body()));
    server.abort();
}

/// A well-formed call, to check the channel still serves after the error.
fn well_formed_call() -> http::Request<tonic::body::Body> {
    // `name: "x"`: field 1, length 1.
    let message = [0, 0, 0, 0, 3, 0x0a, 1, b'x'];
    http::Request::post("/helloworld.Helloworld/Call")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(http_body_util::Full::new(
            bytes::Bytes::copy_from_slice(&message),
        )))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_the_caller_drops_is_reset_at_the_node() {
    let echo = Echo::default();
    let (client, server) = node(echo.clone()).await;
    let mut hello = HelloworldClient::new(client.service("helloworld"));
    let (pings, rx) = mpsc::channel(4);
    pings.send(Ping { stroke: 1 }).await.unwrap();
    let mut pongs = hello
        .ping_pong(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("stream opened")
        .into_inner();
    let pong = pongs.message().await.unwrap().expect("a pong");
    assert_eq!(pong.stroke, 1);
    // The caller stops reading but keeps its sending half open: the node must still learn
    // the call is over, not wait for pings that will never come.
    let dropped = echo.dropped.notified();
    drop(pongs);
    tokio::time::timeout(Duration::from_secs(10), dropped)
        .await
        .expect("the node's side of the stream was dropped");
    drop(pings);
    server.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_that_fails_on_the_callers_side_does_not_count_against_the_node() {
    let echo = Echo::default();
    let (client, server) = node(echo.clone()).await;
    let channel = client.service("helloworld");
    // The caller's own encoder refuses the message: the body fails as it is read.
    let mut tiny = HelloworldClient::new(channel.clone()).max_encoding_message_size(8);
    for _ in 0..6 {
        let status = tiny
            .call(Request {
                name: "far more than eight bytes".into(),
            })
            .await
            .expect_err("too large to send");
        assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    }
    assert!(!echo.answered.load(Ordering::SeqCst));
    // The node was not taken out of rotation for it: the next call goes straight through.
    let answer = HelloworldClient::new(channel)
        .call(Request { name: "ok".into() })
        .await
        .expect("the node is still in rotation");
    assert_eq!(answer.into_inner().msg, "ok");
    server.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_closing_its_connections_every_100ms_loses_no_call_and_is_not_blamed() {
    // The node ends every connection after 100 ms (GOAWAY, then the streams in flight drain):
    // each call goes on the old connection or a new one, and none counts against the node.
    let server = tonic::transport::Server::builder()
        .max_connection_age(Duration::from_millis(100))
        .max_connection_age_grace(Duration::from_secs(5));
    let (client, server) = node_with(Echo::default(), server).await;
    let hello = HelloworldClient::new(client.service("helloworld"));
    // Calls in flight as each connection drains, so that later ones find it closing.
    let until = tokio::time::Instant::now() + Duration::from_millis(1500);
    let callers: Vec<_> = (0..16)
        .map(|_| {
            let mut hello = hello.clone();
            tokio::spawn(async move {
                while tokio::time::Instant::now() < until {
                    hello
                        .call(Request { name: "x".into() })
                        .await
                        .expect("every call is answered");
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
    assert_eq!(client.stats().ejections, 0, "{:?}", client.stats());
    server.abort();
}
